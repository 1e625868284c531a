//! `lvsctl verify --failover`: an HA pair proven by failing over under traffic. The client sends
//! a request every 200 ms while keepalived is stopped on the master; the longest time without an
//! answer is the outage. The backup must then hold the VIPs and split the traffic as configured;
//! with connection sync, a connection opened before the failover must still complete after it.
//! Then keepalived starts again on the master, and the failback is measured the same way.

use serde::Serialize;

use super::fleet::Job;
use super::verify::{DirectorView, ServiceResult, Verifier, active_director};
use crate::agent::probe::{Hold, ProbeKind, ProbeRequest, Sample, Series};
use crate::agent::protocol::{DaemonAction, Operation, Request};

/// A request every INTERVAL_MS during a phase of `--failover-phase` seconds (30 by default);
/// keepalived is stopped (or started) on the master ACT_AFTER_MS into it.
const INTERVAL_MS: u64 = 200;
const ACT_AFTER_MS: u64 = 5_000;
/// The held connection sends the rest of its request this long before the phase ends (20 s
/// after it opened with the default phase): well after the backup took over.
const HOLD_BEFORE_END_MS: u64 = 10_000;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Phase {
    /// The longest time the VIP went unanswered (seconds here, milliseconds in JSON).
    #[serde(rename = "outage_ms", serialize_with = "as_ms")]
    #[schemars(rename = "outage_ms", with = "u64")]
    pub outage_s: f64,
    pub requests: usize,
    pub failed: usize,
    /// Requests that failed after the VIP answered again.
    pub failed_after: usize,
    /// The director holding the VIPs at the end.
    pub holder: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Failover {
    pub master: String,
    pub backup: String,
    pub service: String,
    /// `--max-outage` (seconds here, milliseconds in JSON).
    #[serde(rename = "max_outage_ms", serialize_with = "as_ms")]
    #[schemars(rename = "max_outage_ms", with = "u64")]
    pub max_outage_s: f64,
    pub takeover: Phase,
    /// The connection opened before the failover: who answered it after, or why it failed.
    #[serde(serialize_with = "held_json")]
    #[schemars(with = "Option<Held>")]
    pub held: Option<Result<String, String>>,
    pub through_backup: Vec<ServiceResult>,
    pub failback: Phase,
    pub preempt: bool,
    pub problems: Vec<String>,
}

/// The held connection in JSON: the body that answered it, or why it failed.
#[derive(Serialize, schemars::JsonSchema)]
struct Held<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn held_json<S: serde::Serializer>(h: &Option<Result<String, String>>, s: S) -> Result<S::Ok, S::Error> {
    h.as_ref()
        .map(|r| match r {
            Ok(body) => Held { answered_by: Some(body), error: None },
            Err(e) => Held { answered_by: None, error: Some(e) },
        })
        .serialize(s)
}

fn as_ms<S: serde::Serializer>(seconds: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64((seconds * 1000.0).round() as u64)
}

impl Failover {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let t = &self.takeover;
        s.push_str(&format!(
            "\nfailover: {} was master; keepalived stopped on it while {} requests went to {} (one every {} ms)\n",
            self.master, t.requests, self.service, INTERVAL_MS
        ));
        s.push_str(&format!(
            "  takeover: the VIP went unanswered for {:.1} s (at most {:.0} s allowed); {} failed, {} of them after it answered again; VIPs now on {}\n",
            t.outage_s,
            self.max_outage_s,
            t.failed,
            t.failed_after,
            t.holder.as_deref().unwrap_or("no single director")
        ));
        match &self.held {
            Some(Ok(who)) => s.push_str(&format!(
                "  a connection opened before the failover completed after it (connection sync): answered by {who}\n"
            )),
            Some(Err(e)) => s.push_str(&format!("  a connection opened before the failover did not complete: {e}\n")),
            None => {}
        }
        for r in &self.through_backup {
            s.push_str(&format!("  through {}: ", self.backup));
            s.push_str(&super::verify::render(r, "the client"));
        }
        let f = &self.failback;
        s.push_str(&format!(
            "  failback: keepalived started again on {}: {:.1} s without an answer, {} failed; VIPs now on {}{}\n",
            self.master,
            f.outage_s,
            f.failed,
            f.holder.as_deref().unwrap_or("no single director"),
            if self.preempt { "" } else { " (preempt = false: the backup keeps them)" }
        ));
        if self.ok() {
            s.push_str(&format!("verify --failover: ok, {:.1} s of outage\n", t.outage_s));
        } else {
            for p in &self.problems {
                s.push_str(&format!("  FAILED: {p}\n"));
            }
            s.push_str("verify --failover: FAILED\n");
        }
        s
    }
}

/// The longest time without an answer in a series, in seconds (a request that answered marks
/// the VIP answered at the time it was sent), and the failures after that stretch.
pub fn outage(samples: &[Sample], interval_ms: u64) -> (f64, usize) {
    let ok: Vec<bool> = samples.iter().map(|s| s.answer.body.is_some()).collect();
    let mut worst = 0u64;
    let mut worst_end = 0usize;
    let mut last_ok: Option<u64> = None;
    let mut i = 0;
    while i < samples.len() {
        if ok[i] {
            last_ok = Some(samples[i].at_ms);
            i += 1;
            continue;
        }
        let from = last_ok.unwrap_or(samples[i].at_ms);
        let mut j = i;
        while j < samples.len() && !ok[j] {
            j += 1;
        }
        // Unanswered until the next answer (or, never answered again, the end of the series).
        let to = if j < samples.len() {
            samples[j].at_ms
        } else {
            let l = &samples[j - 1];
            l.at_ms + l.answer.ms
        };
        let gap = to.saturating_sub(from).saturating_sub(if last_ok.is_some() { interval_ms } else { 0 });
        if gap >= worst {
            worst = gap;
            worst_end = j;
        }
        i = j;
    }
    let after = ok[worst_end.min(ok.len())..].iter().filter(|o| !**o).count();
    (worst as f64 / 1000.0, after)
}

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
        address: target.vip,
        port: target.port,
        interval_ms: INTERVAL_MS,
        duration_ms: v.args.failover_phase * 1000,
        timeout_ms: 1000,
    };
    let holds = if hold {
        vec![Hold {
            address: target.vip,
            port: target.port,
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

fn summarize(samples: &[Sample], holder: Option<String>) -> Phase {
    let (outage_s, failed_after) = outage(samples, INTERVAL_MS);
    Phase {
        outage_s,
        requests: samples.len(),
        failed: samples.iter().filter(|s| s.answer.body.is_none()).count(),
        failed_after,
        holder,
    }
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
        .find(|s| super::verify::probe_kind(s.protocol, s.port) == ProbeKind::Http)
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
    let backup_table = after.iter().find(|d| d.host == backup.name).and_then(|d| d.table.clone());
    let through_backup = v.split(Some(backup), backup_table)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::probe::Answer;

    fn series(pattern: &str) -> Vec<Sample> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| Sample {
                at_ms: i as u64 * 200,
                answer: Answer {
                    body: (c == '.').then(|| "web1".into()),
                    from: None,
                    error: (c != '.').then(|| "timed out".into()),
                    ms: if c == '.' { 5 } else { 1000 },
                },
            })
            .collect()
    }

    #[test]
    fn the_outage_is_the_longest_time_without_an_answer() {
        assert_eq!(outage(&series("........"), 200), (0.0, 0));
        // Answered at 0.6 s, then next at 1.6 s: 0.8 s beyond the pace.
        assert_eq!(outage(&series("...XXXX..."), 200), (0.8, 0));
        // A failure after the recovery is counted.
        assert_eq!(outage(&series("..XXXXXX..X.."), 200).1, 1);
        // Never answered again: until the end of the last request.
        let (o, _) = outage(&series("..XXX"), 200);
        assert!((o - 1.4).abs() < 1e-9, "from the last answer at 0.2 s to the end at 1.8 s: {o}");
    }
}
