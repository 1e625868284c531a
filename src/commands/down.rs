//! `lvsctl down`: undo on every host what `up` did, from the host's journal.

use std::sync::Arc;
use std::time::Instant;

use super::fleet::{self, ControllerState, Job};
use crate::agent::protocol::{Operation, Request};
use crate::cli::{DownArgs, StreamOutput};

pub fn run(args: &DownArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let lab = super::load_inventory(&args.inv.inventory)?;
    let state_dir = fleet::state_dir(&args.connect);
    let mut state = ControllerState::load(&state_dir, &lab.name)?;
    // The inventory's hosts, and hosts `up` reached that the inventory no longer lists.
    let mut targets: Vec<(String, crate::inventory::SshSettings)> =
        lab.hosts.iter().map(|h| (h.name.clone(), h.ssh.clone())).collect();
    for (name, ssh) in &state.hosts {
        if !targets.iter().any(|(n, _)| n == name) {
            targets.push((name.clone(), ssh.clone()));
        }
    }
    for h in &args.connect.filter.hosts {
        if !targets.iter().any(|(n, _)| n == h) {
            let known: Vec<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
            anyhow::bail!(crate::exit::Exit::new(
                crate::exit::INVALID,
                format!(
                    "--host {h}: not in {} nor in the hosts `up` reached ({})",
                    lab.file.display(),
                    known.join(", ")
                )
            ));
        }
    }
    targets.retain(|(n, _)| args.connect.filter.hosts.is_empty() || args.connect.filter.hosts.contains(n));
    let session = super::Session::open(&lab, &args.connect)?;
    let jobs: Vec<Job> = targets
        .iter()
        .map(|(name, ssh)| Job {
            host: name.clone(),
            ssh: ssh.clone(),
            request: Request::new(&lab.name, name, if args.dry_run { Operation::DownDryRun } else { Operation::Down }),
        })
        .collect();
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    if args.out.output == StreamOutput::Text && crate::output::verbosity() != crate::output::Verbosity::Quiet {
        let gone: Vec<&str> = targets.iter().filter(|(n, _)| lab.host(n).is_none()).map(|(n, _)| n.as_str()).collect();
        let extra =
            if gone.is_empty() { String::new() } else { format!(" (no longer in the inventory: {})", gone.join(", ")) };
        let what = if args.dry_run { "dry run of down: nothing is changed" } else { "undoing" };
        crate::outln!("lab {}: {what} on {}{extra}", lab.name, crate::plural(jobs.len(), "host"));
    }
    let mut printer = super::printer_for(&names, args.out.output, &lab, args.dry_run);
    printer.verb = if args.dry_run { "to undo" } else { "undone" };
    let printer = Arc::new(printer);
    let outcomes = session.run(jobs, printer.clone());
    if args.dry_run {
        let f = super::Finish {
            command: "down",
            lab: &lab,
            verb: "to undo",
            output: args.out.output,
            dry_run: true,
            detailed_exitcode: args.detailed_exitcode,
        };
        return super::finish(&outcomes, &printer, started, f);
    }
    for o in &outcomes {
        if let Ok(r) = &o.result
            && r.failed == 0
            && r.errors.is_empty()
            && r.journal_entries == 0
        {
            state.hosts.remove(&o.host);
        }
    }
    state
        .save(&state_dir)
        .map_err(|e| anyhow::anyhow!("cannot write the controller state in {}: {e}", state_dir.display()))?;
    let f = super::Finish {
        command: "down",
        lab: &lab,
        verb: "undone",
        output: args.out.output,
        dry_run: false,
        detailed_exitcode: false,
    };
    super::finish(&outcomes, &printer, started, f)
}
