//! `lvsctl status`: every host compared with the plan, and the director's IPVS table.

use std::sync::Arc;

use super::fleet;
use super::printer::Printer;
use crate::agent::protocol::Operation;
use crate::cli::{StatusArgs, StreamOutput};
use crate::ipvs::fwd_name;
use crate::remote::HostError;

pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let planned = super::Planned::open(&args.inv, &args.connect, &args.tpl)?;
    let jobs = planned.jobs(&args.connect.filter, |plan| Operation::Check { plan: plan.clone() });
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    // Drift lines are printed as they come; connection chatter is not.
    let mut printer = match args.out.output {
        StreamOutput::Jsonl => Printer::new(&names, false).jsonl(&planned.lab),
        o => Printer::new(&names, o == StreamOutput::Json),
    };
    printer.progress = false;
    let printer = Arc::new(printer);
    let outcomes = planned.session.run(jobs, printer.clone());
    let drifted = outcomes.iter().any(|o| o.result.as_ref().is_ok_and(|r| r.changes > 0));
    let ok = !drifted && crate::commands::fleet::exit_code(&outcomes) == crate::exit::OK;
    if args.out.output == StreamOutput::Json {
        let body = crate::contract::RunBody::of(&outcomes, false, &planned.lab);
        crate::outln!("{}", crate::contract::Output::new("status", Some(&planned.lab.name), ok, body).pretty());
    } else if args.out.output == StreamOutput::Jsonl {
        super::stream_end("status", &planned.lab.name, ok, None);
    } else {
        for o in &outcomes {
            match &o.result {
                Ok(r) if r.changes == 0 && r.failed == 0 && r.errors.is_empty() => {
                    printer.line(&o.host, &format!("in sync ({} items as planned)", r.unchanged))
                }
                Ok(r) if !r.errors.is_empty() => printer.line(&o.host, &format!("error: {}", r.errors.join("; "))),
                Ok(r) => printer.line(
                    &o.host,
                    &format!(
                        "DRIFTED: {} of {} items differ from the plan (lvsctl up restores them)",
                        r.changes,
                        r.changes + r.unchanged
                    ),
                ),
                Err(HostError::Unreachable(e)) => printer.line(&o.host, &format!("unreachable: {e}")),
                Err(e) => printer.line(&o.host, &format!("error: {e}")),
            }
        }
        printer.flush_notes(&outcomes);
        for line in keepalived_view(&planned.lab, &outcomes) {
            crate::outln!("{line}");
        }
        for o in &outcomes {
            let Ok(r) = &o.result else { continue };
            let Some(table) = r.ipvs() else { continue };
            crate::outln!("\nIPVS on {} (counters since the service was added):", o.host);
            if let Some(t) = r.ipvs_timeouts {
                crate::outln!("  timeouts (tcp tcpfin udp): {} {} {}", t.tcp, t.tcp_fin, t.udp);
            }
            crate::outln!(
                "  {:<26} {:<8} {:>7} {:>7} {:>8} {:>8} {:>8}",
                "service / real server",
                "forward",
                "weight",
                "active",
                "inactive",
                "conns",
                "inpkts"
            );
            for s in table {
                crate::outln!(
                    "  {:<26} {:<8} {:>7} {:>7} {:>8} {:>8} {:>8}",
                    s.entry.key.to_string(),
                    s.entry.config.describe(),
                    "",
                    "",
                    "",
                    s.entry.stats.conns,
                    s.entry.stats.inpkts
                );
                let lab_service = planned.lab.services.iter().find(|x| x.key() == s.entry.key);
                // The drains kept here, on this service: by the real server's host.
                let drained_here = |host: &str| r.drained.get(host).filter(|d| d.services.contains(&s.entry.key));
                for d in &s.dests {
                    let host = lab_service
                        .and_then(|x| x.real_servers.iter().find(|b| b.address == d.key.addr && b.port == d.key.port))
                        .map(|b| b.host.as_str());
                    let mark = host
                        .and_then(|h| Some((h, drained_here(h)?)))
                        .map(|(h, x)| format!("  {h} drained since {}", x.since_utc()))
                        .unwrap_or_default();
                    crate::outln!(
                        "    -> {:<20} {:<8} {:>7} {:>7} {:>8} {:>8} {:>8}{mark}",
                        d.key.to_string(),
                        fwd_name(d.config.fwd),
                        d.config.weight,
                        d.active_conns,
                        d.inact_conns,
                        d.stats.conns,
                        d.stats.inpkts
                    );
                }
            }
            for (host, x) in &r.drained {
                crate::outln!(
                    "  {host} is kept drained ({}) since {}: `lvsctl undrain {} {host}` gives it back",
                    if x.removed { "taken out" } else { "weight 0" },
                    x.since_utc(),
                    planned.lab.file.display()
                );
            }
        }
    }
    let code = fleet::exit_code(&outcomes);
    Ok(if code == crate::exit::OK && drifted { crate::exit::CHECK_FAILED } else { code })
}

/// Health of one real server (or the sorry server) of a service keepalived checks, as the
/// director's IPVS table shows keepalived's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Healthy,
    Quiesced,
    Removed,
    /// The table has no such service at all.
    NoService,
}

impl Health {
    pub fn of(
        table: &[crate::host::IpvsService],
        s: &crate::inventory::Service,
        addr: std::net::IpAddr,
        port: u16,
    ) -> Health {
        let Some(svc) = table.iter().find(|x| x.entry.key == s.key()) else {
            return Health::NoService;
        };
        match svc.dests.iter().find(|d| d.key.addr == addr && d.key.port == port) {
            Some(d) if d.config.weight > 0 => Health::Healthy,
            Some(_) => Health::Quiesced,
            None => Health::Removed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Quiesced => "FAILING (quiesced: weight 0)",
            Health::Removed => "FAILING (removed)",
            Health::NoService => "service not in the table",
        }
    }
}

/// What keepalived does on the directors: running or not, each VRRP instance's state, who holds
/// each VIP, and each checked real server's health. A backup without the VIPs, a failed real
/// server out of the table and a sorry server in it are keepalived doing its job, not drift.
fn keepalived_view(lab: &crate::inventory::Lab, outcomes: &[super::outcome::Outcome]) -> Vec<String> {
    let mut out = Vec::new();
    let reports: Vec<(&str, &crate::agent::protocol::Report)> =
        outcomes.iter().filter_map(|o| Some((o.host.as_str(), o.result.as_ref().ok()?))).collect();
    let ka: Vec<(&str, &crate::agent::ha::KeepalivedStatus)> =
        reports.iter().filter_map(|(h, r)| Some((*h, r.keepalived.as_ref()?))).collect();
    if ka.is_empty() {
        return out;
    }
    out.push(String::new());
    out.push("keepalived:".into());
    for (h, k) in &ka {
        let run = match &k.running {
            Some(p) => format!("running (pid {})", p.pid),
            None => "NOT RUNNING".into(),
        };
        let vrrp: Vec<String> = k
            .instances
            .iter()
            .map(|i| {
                let holds = if i.holds.is_empty() { String::new() } else { format!(", holds {}", i.holds.join(" ")) };
                format!("{} {}{holds}", i.instance, i.state.as_str())
            })
            .collect();
        let vrrp = if vrrp.is_empty() { String::new() } else { format!("; VRRP {}", vrrp.join("; ")) };
        out.push(format!("  {h:<10} {run}{vrrp}"));
    }
    if lab.ha.is_some() {
        for vip in lab.vips() {
            let on: Vec<&str> = ka
                .iter()
                .filter(|(_, k)| k.instances.iter().any(|i| i.holds.contains(&vip.to_string())))
                .map(|(h, _)| *h)
                .collect();
            let where_ = match on.len() {
                0 => "on NO director".to_string(),
                1 => format!("on {}", on[0]),
                _ => format!("on {} at once (split brain)", on.join(" and ")),
            };
            out.push(format!("  VIP {vip} {where_}"));
        }
    }
    for s in lab.services.iter().filter(|s| s.keepalived_managed()) {
        for (h, r) in &reports {
            if r.keepalived.is_none() {
                continue;
            }
            let Some(table) = r.ipvs() else {
                out.push(format!("  {} on {h}: no IPVS table", s.label()));
                continue;
            };
            let mut parts: Vec<String> = s
                .real_servers
                .iter()
                .map(|b| match r.drained.get(&b.host).filter(|d| d.services.contains(&s.key())) {
                    // At weight 0 by `lvsctl drain`, not by a failed check.
                    Some(d) => format!("{} drained since {} (weight 0)", b.host, d.since_utc()),
                    None => {
                        format!("{} {} (weight {})", b.host, Health::of(table, s, b.address, b.port).as_str(), b.weight)
                    }
                })
                .collect();
            if let Some(x) = &s.sorry_server {
                let name = x.host.clone().unwrap_or_else(|| x.address.to_string());
                let used = !matches!(Health::of(table, s, x.address, x.port), Health::Quiesced | Health::Removed);
                parts.push(format!("sorry server {name} {}", if used { "IN USE" } else { "not in use" }));
            }
            out.push(format!("  {} as {h} checks it: {}", s.label(), parts.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Health;
    use crate::host::IpvsService;
    use crate::ipvs::*;

    #[test]
    fn health_is_read_from_the_directors_table() {
        let lab = crate::inventory::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/inventories/dr-ha.toml"
        )))
        .unwrap();
        let s = &lab.services[0];
        let dest = |a: &str, weight| DestEntry {
            key: DestKey { addr: a.parse().unwrap(), port: 80 },
            config: DestConfig::plain(FWD_ROUTE, weight),
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: Stats::default(),
        };
        let table = vec![IpvsService {
            entry: ServiceEntry {
                key: ServiceKey::addr(s.ipvs.protocol, s.ipvs.vip, s.ipvs.port),
                config: ServiceConfig::persistent("wrr", 0, None),
                stats: Stats::default(),
            },
            dests: vec![dest("192.168.188.81", 3), dest("192.168.188.82", 0)],
        }];
        let of = |a: &str| Health::of(&table, s, a.parse().unwrap(), 80);
        assert_eq!(of("192.168.188.81"), Health::Healthy);
        assert_eq!(of("192.168.188.82"), Health::Quiesced);
        assert_eq!(of("192.168.188.90"), Health::Removed);
        assert_eq!(Health::of(&[], s, "192.168.188.81".parse().unwrap(), 80), Health::NoService);
    }
}
