//! `lvsctl status`: every host compared with the plan, and the director's IPVS table.

use std::sync::Arc;

use super::fleet::{self, Printer};
use crate::agent::protocol::Operation;
use crate::cli::{Output, StatusArgs};
use crate::ipvs::fwd_name;
use crate::remote::HostError;

pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let planned = super::Planned::open(&args.inv, &args.connect, &args.tpl)?;
    let jobs = planned.jobs(&args.connect.filter, |plan| Operation::Check { plan: plan.clone() });
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    // Drift lines are printed as they come; connection chatter is not.
    let mut printer = Printer::new(&names, args.out.output == Output::Json);
    printer.progress = false;
    let printer = Arc::new(printer);
    let outcomes = planned.session.run(jobs, printer.clone());
    let drifted = outcomes.iter().any(|o| o.result.as_ref().is_ok_and(|r| r.changes > 0));
    if args.out.output == Output::Json {
        crate::outln!("{}", super::outcomes_json(&outcomes));
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
        for o in &outcomes {
            let Ok(r) = &o.result else { continue };
            let Some(table) = r.ipvs() else { continue };
            crate::outln!("\nIPVS on {} (counters since the service was added):", o.host);
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
                for d in &s.dests {
                    crate::outln!(
                        "    -> {:<20} {:<8} {:>7} {:>7} {:>8} {:>8} {:>8}",
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
        }
    }
    let code = fleet::exit_code(&outcomes);
    Ok(if code == crate::exit::OK && drifted { crate::exit::CHECK_FAILED } else { code })
}
