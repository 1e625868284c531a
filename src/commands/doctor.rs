//! `lvsctl doctor`: read live state on every host and explain what breaks the lab.

use std::sync::Arc;

use super::printer::Printer;
use crate::agent::facts::FactsRequest;
use crate::agent::protocol::Operation;
use crate::cli::{DoctorArgs, Output};
use crate::doctor::{Facts, diagnose, render_text};

pub fn run(args: &DoctorArgs) -> anyhow::Result<u8> {
    let planned = super::Planned::open(&args.inv, &args.connect, &args.tpl)?;
    let lab = &planned.lab;
    let vips = lab.vips();
    // One-armed NAT needs IPVS's conntrack entries (doctor: nat-conntrack-off).
    let sysctls: Vec<String> =
        lab.services.iter().any(|s| s.snat).then(|| "net.ipv4.vs.conntrack".into()).into_iter().collect();
    let jobs = planned.jobs(&args.connect.filter, |plan| Operation::Facts {
        plan: Some(plan.clone()),
        facts: FactsRequest { lookups: vips.clone(), sysctls: sysctls.clone(), ..Default::default() },
    });
    let names: Vec<String> = jobs.iter().map(|j| j.host.clone()).collect();
    let mut printer = Printer::new(&names, true);
    printer.progress = false;
    let outcomes = planned.session.run(jobs, Arc::new(printer));
    let facts: Facts = outcomes
        .iter()
        .map(|o| {
            let f = match &o.result {
                Ok(r) if !r.errors.is_empty() => Err(r.errors.join("; ")),
                Ok(r) => r.facts().cloned().ok_or_else(|| "the agent sent no facts".to_string()),
                Err(e) => Err(e.to_string()),
            };
            (o.host.clone(), f)
        })
        .collect();
    let findings = diagnose(lab, &facts);
    match args.out.output {
        Output::Json => {
            let body =
                crate::contract::DoctorBody { hosts: facts.keys().map(|h| h.as_str()).collect(), findings: &findings };
            crate::outln!(
                "{}",
                crate::contract::Output::new("doctor", Some(&lab.name), findings.is_empty(), body).pretty()
            );
        }
        Output::Text if findings.is_empty() => {
            crate::outln!(
                "doctor: no problem found on {} ({} mode): every host matches the rules and the plan",
                crate::plural(facts.len(), "host"),
                lab.mode
            )
        }
        Output::Text => {
            crate::out!("{}", render_text(&findings));
            let hosts: std::collections::BTreeSet<&str> = findings.iter().map(|f| f.host.as_str()).collect();
            crate::outln!(
                "doctor: {} on {}",
                crate::plural(findings.len(), "problem"),
                crate::plural(hosts.len(), "host")
            );
        }
    }
    Ok(if findings.is_empty() { crate::exit::OK } else { crate::exit::CHECK_FAILED })
}
