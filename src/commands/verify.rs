//! `lvsctl verify`: send requests from the client to every service, attribute each answer to a
//! real server, and judge the split against the scheduler and the weights (`crate::judge`), and
//! with `--failover` prove an HA pair (`failover`).

use std::sync::Arc;

use super::printer::Printer;
use super::verifier::{Verifier, active_director};
use crate::cli::{Output, VerifyArgs};
use crate::exit::{self, Exit};
use crate::judge::render;

pub fn run(args: &VerifyArgs) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&args.inv.inventory)?;
    let client = super::client_of(&lab, args.from.as_deref())?;
    if !args.connect.filter.hosts.is_empty() {
        return Err(Exit::new(
            exit::INVALID,
            "verify talks to the client and the directors only: choose the host that sends with --from HOST, not --host",
        )
        .into());
    }
    if args.failover && lab.ha.is_none() {
        return Err(Exit::new(
            exit::INVALID,
            format!("--failover needs an HA pair of directors, and {} has one director", lab.file.display()),
        )
        .into());
    }
    let mut connect = args.connect.clone();
    connect.filter.hosts = vec![client.name.clone()];
    connect.filter.hosts.extend(lab.directors().map(|d| d.name.clone()));
    let session = super::Session::open(&lab, &connect)?;
    let names: Vec<String> = connect.filter.hosts.clone();
    let mut printer = Printer::new(&names, args.out.output == Output::Json);
    printer.progress = false;
    let v = Verifier { lab: &lab, session: &session, client, printer: Arc::new(printer), args };
    // The director that holds the VIPs carries the traffic (with an HA pair, the master).
    let facts = v.director_facts(lab.directors().collect());
    let active = active_director(&lab, &facts).or_else(|| lab.director());
    let view = facts.iter().find(|d| Some(d.host) == active.map(|a| a.name.as_str()));
    let results = v.split(active, view)?;
    let mut ok = results.iter().all(|r| r.ok());
    let mut failover = None;
    if args.failover {
        let f = super::failover::run(&v, &facts)?;
        ok &= f.ok();
        failover = Some(f);
    }
    match args.out.output {
        Output::Json => {
            let body = crate::contract::VerifyBody { services: &results, failover: failover.as_ref() };
            crate::outln!("{}", crate::contract::Output::new("verify", Some(&v.lab.name), ok, body).pretty())
        }
        Output::Text => {
            // What the hosts noted on the way (an agent installed again, say), once each.
            v.printer.flush_notes(&[]);
            for r in &results {
                crate::outln!("{}", render(r, &client.name));
            }
            let bad = results.iter().filter(|r| !r.ok()).count();
            if bad == 0 {
                crate::outln!(
                    "verify: every service answers as configured ({})",
                    crate::plural(results.len(), "service")
                );
            } else {
                crate::outln!("verify: FAILED for {bad} of {}", crate::plural(results.len(), "service"));
            }
            if let Some(f) = &failover {
                crate::out!("{}", f.render());
            }
        }
    }
    Ok(if ok { exit::OK } else { exit::CHECK_FAILED })
}
