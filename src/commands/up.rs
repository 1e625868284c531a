//! `lvsctl up`: apply the plan on every host and persist it.

use std::sync::Arc;
use std::time::Instant;

use super::fleet::{self, ControllerState, Job, Printer};
use crate::agent::protocol::{Operation, Request};
use crate::cli::{Output, UpArgs};
use crate::plan::{self, Context};

pub fn run(args: &UpArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let lab = super::load_inventory(&args.inventory)?;
    super::check_host_filter(&lab, &args.connect.hosts)?;
    let templates = super::load_templates(args.templates.as_deref())?;
    let session = super::Session::open(&lab, &args.connect)?;
    let plans = plan::plan(&lab, &Context { agent_path: session.agent.install_path(), templates: &templates })?;
    let hosts = fleet::selected(&lab, &args.connect.hosts);
    let jobs: Vec<Job> = hosts
        .iter()
        .map(|h| Job {
            host: h.name.clone(),
            ssh: h.ssh.clone(),
            request: {
                let plan = plans.iter().find(|p| p.host == h.name).cloned().expect("a plan per host");
                let op = if args.dry_run { Operation::DryRun { plan } } else { with_faults(Operation::apply(plan)) };
                Request::new(&lab.name, &h.name, op)
            },
        })
        .collect();
    let state_dir = fleet::state_dir(&args.connect);
    if !args.dry_run {
        // Remember the hosts before touching them, so a killed controller's `down` still finds them.
        let mut state = ControllerState::load(&state_dir, &lab.name);
        for h in &hosts {
            state.hosts.insert(h.name.clone(), h.ssh.clone());
        }
        state
            .save(&state_dir)
            .map_err(|e| anyhow::anyhow!("cannot write the controller state in {}: {e}", state_dir.display()))?;
    }
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    let printer = Arc::new(Printer::new(&names, args.output == Output::Json));
    if args.output == Output::Text {
        let what = if args.dry_run { "dry run: nothing is changed" } else { "applying" };
        println!("lab {} ({} mode), {}: {what}", lab.name, lab.mode, crate::plural(jobs.len(), "host"));
    }
    let outcomes = session.run(jobs, printer.clone());
    let verb = if args.dry_run { "to change" } else { "changed" };
    match args.output {
        Output::Text => {
            println!();
            let s = fleet::summary(&outcomes, verb, &printer, started);
            println!("{s}");
        }
        Output::Json => println!("{}", super::outcomes_json(&outcomes)),
    }
    Ok(fleet::exit_code(&outcomes))
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
