//! `lvsctl verify --failover`: an HA pair proven by failing over under traffic. The client sends
//! a request every 200 ms while keepalived is stopped on the master; the longest time without an
//! answer is the outage. The backup must then hold the VIPs and split the traffic as configured;
//! with connection sync, a connection opened before the failover must still complete after it.
//! Then keepalived starts again on the master, and the failback is measured the same way.

use super::fleet::Job;
use super::verifier::{DirectorView, Verifier, active_director};
use crate::agent::probe::{Hold, ProbeKind, ProbeRequest, Sample, Series};
use crate::agent::protocol::{DaemonAction, Operation, Request};
use crate::judge::failover::{Failover, INTERVAL_MS, summarize};

/// keepalived is stopped (or started) on the master ACT_AFTER_MS into a phase (a request every
/// INTERVAL_MS during it, for `--failover-phase` seconds, 30 by default).
const ACT_AFTER_MS: u64 = 5_000;
/// The held connection sends the rest of its request this long before the phase ends (20 s
/// after it opened with the default phase): well after the backup took over.
const HOLD_BEFORE_END_MS: u64 = 10_000;

fn daemon_job(v: &Verifier, host: &crate::inventory::Host, action: DaemonAction) -> Job {
    let op = Operation::Daemon { name: "keepalived".into(), action, delay_ms: ACT_AFTER_MS };
    Job { host: host.name.clone(), ssh: host.ssh.clone(), request: Request::new(&v.lab.name, &host.name, op) }
}

/// What a phase's client saw: its series, and the held connection's answer (or why it failed).
type Seen = (Vec<Sample>, Option<Result<String, String>>);

/// One phase: the series from the client and, during it, `action` on `host`.
fn phase(
    v: &Verifier,
    target: &crate::inventory::Service,
    host: &crate::inventory::Host,
    action: DaemonAction,
    hold: bool,
    problems: &mut Vec<String>,
) -> anyhow::Result<Seen> {
    let series = Series {
        address: target.ipvs.vip,
        port: target.ipvs.port,
        interval_ms: INTERVAL_MS,
        duration_ms: v.args.failover_phase * 1000,
        timeout_ms: 1000,
    };
    let holds = if hold {
        vec![Hold {
            address: target.ipvs.vip,
            port: target.ipvs.port,
            after_ms: v.args.failover_phase * 1000 - HOLD_BEFORE_END_MS,
            timeout_ms: 5000,
        }]
    } else {
        vec![]
    };
    let probe = ProbeRequest { series: vec![series], holds, ..Default::default() };
    let probe = Job {
        host: v.client.name.clone(),
        ssh: v.client.ssh.clone(),
        request: Request::new(&v.lab.name, &v.client.name, Operation::Probe { probe }),
    };
    let outcomes = v.session.run(vec![probe, daemon_job(v, host, action)], v.printer.clone());
    let mut samples = vec![];
    let mut held = None;
    for o in &outcomes {
        match &o.result {
            Ok(r) if o.host == v.client.name => {
                let p = r.probe().cloned().unwrap_or_default();
                samples = p.series.into_iter().next().unwrap_or_default();
                held = p.holds.into_iter().next().map(|a| a.body.ok_or(a.error.unwrap_or_default()));
            }
            Ok(r) if r.failed > 0 || !r.errors.is_empty() => problems
                .push(format!("{}: cannot {action:?} keepalived: {}", o.host, r.errors.join("; ")).to_lowercase()),
            Ok(_) => {}
            Err(e) => anyhow::bail!("{}: {e}", o.host),
        }
    }
    Ok((samples, held))
}

pub fn run(v: &Verifier, facts: &[DirectorView]) -> anyhow::Result<Failover> {
    let lab = v.lab;
    let ha = lab.ha.as_ref().expect("checked: an HA pair");
    let master = active_director(lab, facts).ok_or_else(|| {
        crate::exit::Exit::new(
            crate::exit::CHECK_FAILED,
            "verify --failover: no single director holds the VIPs, so there is no master to fail: see `lvsctl status` and `lvsctl doctor`",
        )
    })?;
    let backup = lab.directors().find(|d| d.name != master.name).expect("a pair");
    let target = lab
        .services
        .iter()
        .find(|s| crate::judge::probe_kind(s.ipvs.protocol, s.ipvs.port) == ProbeKind::Http)
        .ok_or_else(|| {
            crate::exit::Exit::new(
                crate::exit::INVALID,
                "verify --failover sends HTTP requests: the lab has no HTTP service (TCP port 80, 8080 or 8000-8099)",
            )
        })?;
    let mut problems = Vec::new();
    eprintln!(
        "verify --failover: {} is master; stopping keepalived on it in {} s while the client sends requests for {} s",
        master.name,
        ACT_AFTER_MS / 1000,
        v.args.failover_phase
    );
    let (samples, held) = phase(v, target, master, DaemonAction::Stop, ha.sync, &mut problems)?;
    let after = v.director_facts(lab.directors().collect());
    let takeover = summarize(&samples, active_director(lab, &after).map(|d| d.name.clone()));
    if takeover.holder.as_deref() != Some(backup.name.as_str()) {
        problems.push(format!("{} did not take the VIPs over from {}", backup.name, master.name));
    }
    if takeover.outage_s > v.args.max_outage {
        problems.push(format!(
            "the VIP went unanswered for {:.1} s, more than --max-outage {}",
            takeover.outage_s, v.args.max_outage
        ));
    }
    if takeover.failed_after > 0 {
        problems.push(format!("{} requests failed after the backup had taken over", takeover.failed_after));
    }
    if samples.is_empty() {
        problems.push("the client sent no request".into());
    }
    if let Some(Err(e)) = &held {
        problems.push(format!("with sync = true, a connection opened before the failover must complete after it: {e}"));
    }
    let backup_view = after.iter().find(|d| d.host == backup.name);
    let through_backup = v.split(Some(backup), backup_view)?;
    for r in through_backup.iter().filter(|r| !r.ok()) {
        problems.push(format!("through {}: {}", backup.name, r.problems.join("; ")));
    }
    eprintln!("verify --failover: starting keepalived on {} again", master.name);
    let (samples, _) = phase(v, target, master, DaemonAction::Start, false, &mut problems)?;
    let end = v.director_facts(lab.directors().collect());
    let failback = summarize(&samples, active_director(lab, &end).map(|d| d.name.clone()));
    let want = if ha.preempt { &master.name } else { &backup.name };
    if failback.holder.as_ref() != Some(want) {
        problems.push(format!(
            "after keepalived started again on {}, the VIPs are on {} instead of {want}",
            master.name,
            failback.holder.as_deref().unwrap_or("no single director")
        ));
    }
    if failback.outage_s > v.args.max_outage {
        problems.push(format!("the failback left the VIP unanswered for {:.1} s", failback.outage_s));
    }
    Ok(Failover {
        master: master.name.clone(),
        backup: backup.name.clone(),
        service: target.label(),
        max_outage_s: v.args.max_outage,
        takeover,
        held,
        through_backup,
        failback,
        preempt: ha.preempt,
        problems,
    })
}
