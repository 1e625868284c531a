//! `lvsctl plan`: the desired state per host, from the inventory alone.

use std::fmt::Write;

use crate::cli::{Output, PlanArgs};
use crate::inventory::{Lab, SshTarget};
use crate::plan::{self, Context, HostPlan};

pub fn run(args: &PlanArgs) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&args.inv.inventory)?;
    super::check_host_filter(&lab, &args.filter.hosts)?;
    let templates = super::load_templates(args.tpl.templates.as_deref())?;
    let ctx = Context { agent_path: super::agent_path_for_display(None), templates: &templates };
    let mut plans = plan::plan(&lab, &ctx)?;
    plans.retain(|p| args.filter.hosts.is_empty() || args.filter.hosts.contains(&p.host));
    match args.out.output {
        Output::Json => {
            let body = crate::contract::PlanBody { hosts: &plans };
            crate::outln!("{}", crate::contract::Output::new("plan", Some(&lab.name), true, body).pretty());
        }
        Output::Text => crate::out!("{}", render_text(&lab, &plans)),
    }
    Ok(crate::exit::OK)
}

/// One block per host, one line per desired item with its reason.
pub fn render_text(lab: &Lab, plans: &[HostPlan]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} ({} mode): {}, {}, from {}\n\
         The desired state of each host, read from the inventory alone (no host is asked):\n\
         `lvsctl up --dry-run` shows what would change on the hosts, `lvsctl up` makes it so.",
        lab.name,
        lab.mode,
        crate::plural(lab.hosts.len(), "host"),
        crate::plural(lab.services.len(), "service"),
        lab.file.display()
    );
    for p in plans {
        let host = lab.host(&p.host).expect("plans come from the lab");
        let via = match &host.ssh.target {
            SshTarget::Local => "this machine".to_string(),
            SshTarget::Remote(a) if a.contains(':') => format!("ssh {}@[{}]:{}", host.ssh.user, a, host.ssh.port),
            SshTarget::Remote(a) => format!("ssh {}@{}:{}", host.ssh.user, a, host.ssh.port),
        };
        let _ = writeln!(out, "\n{} ({}, {via})", p.host, p.role);
        let lines = crate::resource::show(p);
        let width = lines.iter().map(|(_, item, _)| item.chars().count()).max().unwrap_or(0).min(56);
        for (kind, item, reason) in lines {
            let _ = writeln!(out, "  {kind:<7} {item:<width$}  # {reason}");
        }
    }
    out
}
