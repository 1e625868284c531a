//! `lvsctl doctor`: read live state on every host and explain what breaks the lab.

use std::sync::Arc;

use super::fleet::{self, Job, Printer};
use crate::agent::facts::FactsRequest;
use crate::agent::protocol::{Operation, Request};
use crate::cli::{DoctorArgs, Output};
use crate::doctor::{Facts, diagnose, render_text};
use crate::plan::{self, Context};

pub fn run(args: &DoctorArgs) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&args.inventory)?;
    super::check_host_filter(&lab, &args.connect.hosts)?;
    let templates = super::load_templates(args.templates.as_deref())?;
    let session = super::Session::open(&lab, &args.connect)?;
    let plans = plan::plan(&lab, &Context { agent_path: session.agent.install_path(), templates: &templates })?;
    let vips: Vec<std::net::Ipv4Addr> =
        lab.services.iter().map(|s| s.vip).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let jobs: Vec<Job> = fleet::selected(&lab, &args.connect.hosts)
        .iter()
        .map(|h| {
            let plan = plans.iter().find(|p| p.host == h.name).cloned();
            let request = Request::new(
                &lab.name,
                &h.name,
                Operation::Facts { plan, facts: FactsRequest { lookups: vips.clone() } },
            );
            Job { host: h.name.clone(), ssh: h.ssh.clone(), request }
        })
        .collect();
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    let mut printer = Printer::new(&names, true);
    printer.progress = false;
    let outcomes = session.run(jobs, Arc::new(printer));
    let facts: Facts = outcomes
        .iter()
        .map(|o| {
            let f = match &o.result {
                Ok(r) if !r.errors.is_empty() => Err(r.errors.join("; ")),
                Ok(r) => r.facts.clone().map(|f| *f).ok_or_else(|| "the agent sent no facts".to_string()),
                Err(e) => Err(e.to_string()),
            };
            (o.host.clone(), f)
        })
        .collect();
    let findings = diagnose(&lab, &facts);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
        Output::Text if findings.is_empty() => {
            println!(
                "doctor: no problem found on {} ({} mode): every host matches the rules and the plan",
                crate::plural(facts.len(), "host"),
                lab.mode
            )
        }
        Output::Text => {
            print!("{}", render_text(&findings));
            let hosts: std::collections::BTreeSet<&str> = findings.iter().map(|f| f.host.as_str()).collect();
            println!("doctor: {} on {}", crate::plural(findings.len(), "problem"), crate::plural(hosts.len(), "host"));
        }
    }
    Ok(if findings.is_empty() { crate::exit::OK } else { crate::exit::CHECK_FAILED })
}
