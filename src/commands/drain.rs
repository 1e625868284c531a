//! `lvsctl drain` / `undrain`: a real server's weight to 0 (or back) on every director, through
//! the directors' agents, which keep the drain and watch the connections fall.

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;

use crate::agent::protocol::{DrainRequest, Operation, Request};
use crate::cli::{DrainArgs, DrainTarget, UndrainArgs};
use crate::inventory::{Lab, Role};
use crate::ipvs::ServiceKey;

/// The services `host` is a real server of (only `service` when given), as their keys on the
/// directors; refused, before any host is reached, when there are none (or `--remove` of a service
/// keepalived runs: it keeps its real servers in the table).
fn services(
    lab: &Lab,
    plans: &[crate::plan::HostPlan],
    host: &str,
    service: Option<&str>,
    remove: bool,
) -> anyhow::Result<Vec<ServiceKey>> {
    let Some(h) = lab.host(host) else {
        bail!("{host} is not a host of {}; nothing was changed", lab.file.display());
    };
    if !matches!(h.role, Role::RealServer | Role::SorryServer) {
        bail!("{host} is a {}, not a real server: only real servers are drained; nothing was changed", h.role.as_str());
    }
    let serves: Vec<&crate::inventory::Service> =
        lab.services.iter().filter(|s| s.real_servers.iter().any(|r| r.host == host)).collect();
    let chosen: Vec<&crate::inventory::Service> = match service {
        None => serves.clone(),
        Some(name) => {
            let Some(s) = lab.services.iter().find(|s| s.name.as_deref() == Some(name)) else {
                let names: Vec<&str> = lab.services.iter().filter_map(|s| s.name.as_deref()).collect();
                bail!(
                    "lab {} has no service named {name:?} (its services: {}); nothing was changed",
                    lab.name,
                    names.join(", ")
                );
            };
            if !serves.iter().any(|x| std::ptr::eq(*x, s)) {
                bail!("{host} is not a real server of {}; nothing was changed", s.label());
            }
            vec![s]
        }
    };
    if chosen.is_empty() {
        bail!("{host} serves no service of lab {}: there is nothing to drain; nothing was changed", lab.name);
    }
    if remove && let Some(s) = chosen.iter().find(|s| s.keepalived_managed()) {
        bail!(
            "{} is run by keepalived (health checks or a sorry server), which keeps every real server in the table: \
             a drain sets the weight to 0 through keepalived's configuration, --remove applies to services lvsctl \
             programs itself; nothing was changed",
            s.label()
        );
    }
    // Their keys as the directors' plans hold them (a firewall-mark service of both families is
    // one IPVS service per family); keepalived's virtual servers for the services it runs.
    let ours = |key: crate::ipvs::ServiceKey, fwmark: Option<u32>| {
        chosen.iter().any(|s| match s.ipvs.fwmark {
            Some(m) => fwmark == Some(m),
            None => key == s.ipvs.key(),
        })
    };
    let mut keys = Vec::new();
    for p in plans.iter().filter(|p| p.role == Role::Director) {
        let lvsctl = p
            .ipvs
            .iter()
            .filter(|s| s.destinations.iter().any(|d| d.host == host))
            .map(|s| (s.ipvs.key(), s.ipvs.fwmark));
        let keepalived = p
            .keepalived
            .iter()
            .flat_map(|k| &k.virtual_servers)
            .filter(|vs| vs.real_servers.iter().any(|r| r.host == host))
            .map(|vs| (vs.key(), vs.fwmark));
        for (key, fwmark) in lvsctl.chain(keepalived) {
            if ours(key, fwmark) && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

fn drain(t: &DrainTarget, request: DrainRequest) -> anyhow::Result<u8> {
    let started = Instant::now();
    if !t.connect.filter.hosts.is_empty() {
        bail!("drain reaches the directors of the lab: --host does not apply (name the real server to drain)");
    }
    let planned = super::Planned::open(&t.inv, &t.connect, &t.tpl)?;
    let lab = &planned.lab;
    let mut request = request;
    request.services = services(lab, &planned.plans, &t.host, t.service.as_deref(), request.remove)?;
    let jobs: Vec<super::fleet::Job> = lab
        .directors()
        .map(|h| {
            let plan = planned.plans.iter().find(|p| p.host == h.name).expect("a plan per host").clone();
            let op = Operation::Drain { plan, drain: request.clone() };
            super::fleet::Job {
                host: h.name.clone(),
                ssh: h.ssh.clone(),
                request: Request::new(&lab.name, &h.name, op),
            }
        })
        .collect();
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    let output = t.out.output;
    let mut printer = super::printer_for(&names, output, lab, false);
    printer.verb = "changed";
    let printer = Arc::new(printer);
    let outcomes = planned.session.run(jobs, printer.clone());
    let command = if request.undrain { "undrain" } else { "drain" };
    let f = super::Finish { command, lab, verb: "changed", output, dry_run: false, detailed_exitcode: false };
    let code = super::finish(&outcomes, &printer, started, f)?;
    let timed_out =
        outcomes.iter().any(|o| o.result.as_ref().is_ok_and(|r| r.drain().is_some_and(|p| p.phase == "timeout")));
    Ok(if timed_out { crate::exit::CHECK_FAILED } else { code })
}

/// A drain of `t`'s real server, or (`undrain`) its weight given back.
fn request(t: &DrainTarget, undrain: bool) -> DrainRequest {
    DrainRequest {
        real_server: t.host.clone(),
        services: vec![],
        undrain,
        remove: false,
        wait_inactive: false,
        timeout_s: 1,
    }
}

pub fn run(a: &DrainArgs) -> anyhow::Result<u8> {
    let r = DrainRequest {
        remove: a.remove,
        wait_inactive: a.wait_inactive,
        timeout_s: a.timeout,
        ..request(&a.target, false)
    };
    drain(&a.target, r)
}

pub fn undrain(a: &UndrainArgs) -> anyhow::Result<u8> {
    drain(&a.target, request(&a.target, true))
}
