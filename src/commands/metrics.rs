//! `lvsctl metrics`: every director's metrics, gathered once over SSH and printed as one
//! Prometheus text exposition (for labs without the exporter, and to see what it serves).

use std::sync::Arc;

use super::printer::Printer;
use crate::agent::protocol::Operation;
use crate::cli::MetricsArgs;

pub fn run(args: &MetricsArgs) -> anyhow::Result<u8> {
    let connect = super::every_director(&args.inv, &args.connect, "metrics reads every director: it takes no --host")?;
    let planned = super::Planned::open(&args.inv, &connect, &args.tpl)?;
    let jobs = planned.jobs(&connect.filter, |plan| Operation::Metrics { plan: plan.clone() });
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    let mut printer = Printer::new(&names, true);
    printer.progress = false;
    let outcomes = planned.session.run(jobs, Arc::new(printer));
    let mut families = Vec::new();
    for o in &outcomes {
        match &o.result {
            Ok(r) if !r.errors.is_empty() => eprintln!("metrics: {}: {}", o.host, r.errors.join("; ")),
            Ok(r) => families.extend(r.metrics().cloned().unwrap_or_default()),
            Err(e) => eprintln!("metrics: {}: {e}", o.host),
        }
    }
    crate::out!("{}", crate::wire::metrics::exposition(&crate::wire::metrics::merge(families)));
    Ok(super::fleet::exit_code(&outcomes))
}
