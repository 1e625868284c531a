//! `lvsctl up`: apply the plan on every host and persist it.

use std::sync::Arc;
use std::time::Instant;

use super::fleet::{self, ControllerState};
use super::printer::Printer;
use crate::agent::protocol::Operation;
use crate::cli::{StreamOutput, UpArgs};

pub fn run(args: &UpArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let planned = super::Planned::open(&args.inv, &args.connect, &args.tpl)?;
    let lab = &planned.lab;
    let hosts = fleet::selected(lab, &args.connect.filter.hosts);
    let mut jobs = planned.jobs(&args.connect.filter, |plan| {
        if args.dry_run {
            Operation::DryRun { plan: plan.clone() }
        } else {
            with_faults(Operation::apply(plan.clone()))
        }
    });
    for j in &mut jobs {
        j.request.force = args.force;
    }
    if !args.dry_run {
        preflight(&planned, &jobs)?;
    }
    let state_dir = fleet::state_dir(&args.connect);
    if !args.dry_run {
        // Remember the hosts before touching them, so a killed controller's `down` still finds them.
        let mut state = ControllerState::load(&state_dir, &lab.name)?;
        for h in &hosts {
            state.hosts.insert(h.name.clone(), h.ssh.clone());
        }
        state
            .save(&state_dir)
            .map_err(|e| anyhow::anyhow!("cannot write the controller state in {}: {e}", state_dir.display()))?;
    }
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    if args.out.output == StreamOutput::Text && crate::output::verbosity() != crate::output::Verbosity::Quiet {
        let what = if args.dry_run { "dry run: nothing is changed" } else { "applying" };
        crate::outln!("lab {} ({} mode), {}: {what}", lab.name, lab.mode, crate::plural(jobs.len(), "host"));
    }
    let mut printer = super::printer_for(&names, args.out.output, lab, args.dry_run);
    printer.verb = if args.dry_run { "to change" } else { "changed" };
    let printer = Arc::new(printer);
    let outcomes = planned.session.run(jobs, printer.clone());
    let verb = if args.dry_run { "to change" } else { "changed" };
    let f = super::Finish {
        command: "up",
        lab,
        verb,
        output: args.out.output,
        dry_run: args.dry_run,
        detailed_exitcode: args.detailed_exitcode,
    };
    super::finish(&outcomes, &printer, started, f)
}

/// The programs a host's plan needs installed (lvsctl does not install packages): keepalived
/// on the directors of a keepalived lab, nft on directors with firewall-mark services.
fn programs_needed(plan: &crate::plan::HostPlan) -> Vec<(&'static str, &'static str)> {
    let mut v = Vec::new();
    if plan.keepalived.is_some() {
        v.push(("keepalived", "keepalived"));
    }
    if plan.nftables.is_some() {
        v.push(("nft", "nftables"));
    }
    v
}

/// The kernel modules of a host's plan that a distribution kernel may lack (GUE's fou, GRE's
/// ip_gre, one-armed NAT's nftables NAT): asked about before any host changes. ip_vs and its
/// schedulers, ipip and ip6_tunnel are in every distribution kernel and are not asked about, so
/// that most hosts keep one exec per command.
fn modules_to_check(plan: &crate::plan::HostPlan) -> Vec<String> {
    let everywhere = |m: &str| m.starts_with("ip_vs") || m == "ipip" || m == "ip6_tunnel";
    plan.modules.iter().map(|m| m.name.clone()).filter(|m| !everywhere(m)).collect()
}

/// What some hosts need, asked before any host is changed: a director of a keepalived lab
/// without keepalived, one with firewall-mark services without nft, a host whose kernel cannot
/// load a module its plan needs, or a director whose exporter's address something else listens
/// on stops `up` here, with nothing changed anywhere.
fn preflight(planned: &super::Planned, jobs: &[fleet::Job]) -> anyhow::Result<()> {
    use crate::agent::facts::FactsRequest;
    let mut wanted: std::collections::BTreeMap<String, Vec<(&'static str, &'static str)>> = Default::default();
    let mut reasons: std::collections::BTreeMap<(String, String), String> = Default::default();
    let needs: Vec<fleet::Job> = jobs
        .iter()
        .filter_map(|j| match &j.request.op {
            Operation::Apply { plan, .. }
                if !programs_needed(plan).is_empty()
                    || plan.exporter.is_some()
                    || !modules_to_check(plan).is_empty() =>
            {
                Some((j, programs_needed(plan), plan.exporter.as_ref().map(|e| e.listen), plan))
            }
            _ => None,
        })
        .map(|(j, programs, exporter_listen, plan)| {
            let facts = FactsRequest {
                programs: programs.iter().map(|(p, _)| p.to_string()).collect(),
                exporter_listen,
                modules: modules_to_check(plan),
                ..Default::default()
            };
            reasons.extend(plan.modules.iter().map(|m| ((j.host.clone(), m.name.clone()), m.reason.clone())));
            wanted.insert(j.host.clone(), programs);
            let request =
                crate::agent::protocol::Request::new(&j.request.lab, &j.host, Operation::Facts { plan: None, facts });
            fleet::Job { host: j.host.clone(), ssh: j.ssh.clone(), request }
        })
        .collect();
    if needs.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = needs.iter().map(|j| j.host.clone()).collect();
    let mut printer = Printer::new(&names, true);
    printer.progress = false;
    let outcomes = planned.session.run(needs, Arc::new(printer));
    let mut problems = Vec::new();
    for o in &outcomes {
        let programs = wanted.get(&o.host).cloned().unwrap_or_default();
        match &o.result {
            Ok(r) => {
                for (program, package) in programs {
                    if r.facts().and_then(|f| f.programs.get(program)).is_some_and(|p| p.is_none()) {
                        problems.push(format!(
                            "{}: {program} is not installed: install the package {package} on {} (apt-get install {package}, or dnf install {package}); lvsctl does not install packages",
                            o.host, o.host
                        ));
                    }
                }
                for m in r.facts().map(|f| f.modules_missing.as_slice()).unwrap_or_default() {
                    let why = reasons.get(&(o.host.clone(), m.clone())).map(String::as_str).unwrap_or("planned");
                    problems.push(format!(
                        "{}: the kernel cannot load module {m} ({why}): it is neither loaded, built in, nor installed for the running kernel (`modprobe -n {m}` fails); install the package that ships it for this kernel (RHEL-family: kernel-modules-extra; Debian's linux-image has it), or change the inventory so that {} does not need it",
                        o.host, o.host
                    ));
                }
                if let Some(busy) = r.facts().and_then(|f| f.exporter_busy.as_ref()) {
                    problems.push(format!(
                        "{}: the exporter cannot listen there: {busy}; stop what listens there, or choose another port in {} ([metrics] port, or metrics_listen in [hosts.{}])",
                        o.host,
                        planned.lab.file.display(),
                        o.host
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: cannot check the host before changing it: {e}", o.host)),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let code = if outcomes.iter().any(|o| o.result.is_err()) { crate::exit::UNREACHABLE } else { crate::exit::ERROR };
    Err(crate::exit::Exit::new(code, format!("{}\nnothing was changed on any host", problems.join("\n"))).into())
}

/// Builds with the `fault-injection` feature (the tests') pass the crash-consistency tests'
/// faults to the agents: LVSCTL_FAULT_ABORT_AFTER, LVSCTL_FAULT_STALL_AFTER.
#[cfg(feature = "fault-injection")]
fn with_faults(op: Operation) -> Operation {
    let fault = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    match op {
        Operation::Apply { plan, .. } => {
            let faults = crate::agent::apply::Faults {
                abort_after: fault("LVSCTL_FAULT_ABORT_AFTER"),
                stall_after: fault("LVSCTL_FAULT_STALL_AFTER"),
            };
            Operation::Apply { plan, faults }
        }
        other => other,
    }
}

#[cfg(not(feature = "fault-injection"))]
fn with_faults(op: Operation) -> Operation {
    op
}
