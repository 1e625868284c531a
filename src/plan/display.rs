//! `lvsctl plan` output for people: one block per host, one line per desired item with its reason.

use std::fmt::Write;

use super::HostPlan;
use crate::inventory::{Lab, SshTarget};

/// The lines of one host's plan: (kind, item, reason).
pub fn items(p: &HostPlan) -> Vec<(&'static str, String, String)> {
    let mut v = Vec::new();
    for m in &p.modules {
        v.push(("module", m.name.clone(), m.reason.clone()));
    }
    for s in &p.sysctls {
        v.push(("sysctl", format!("{} = {}", s.key, s.value), s.reason.clone()));
    }
    for l in &p.links_up {
        v.push(("link", format!("{} up", l.dev), l.reason.clone()));
    }
    for a in &p.addresses {
        let label = a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default();
        v.push(("address", format!("{} dev {}{label}", a.address, a.dev), a.reason.clone()));
    }
    for r in &p.routes {
        let dst = if r.destination.prefix_len() == 0 { "default".to_string() } else { r.destination.to_string() };
        let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        let dev = r.dev.as_deref().map(|d| format!(" dev {d}")).unwrap_or_default();
        v.push(("route", format!("{dst}{via}{dev}"), r.reason.clone()));
    }
    for s in &p.ipvs {
        let mut head = format!("{} {}:{} {}", s.protocol, s.vip, s.port, s.scheduler);
        if s.persistence > 0 {
            head.push_str(&format!(" persistent {}s", s.persistence));
            if let Some(m) = s.netmask {
                head.push_str(&format!(" netmask {m}"));
            }
        }
        v.push(("ipvs", head, s.reason.clone()));
        for d in &s.destinations {
            let mut line = format!("  -> {}:{} {} weight {}", d.address, d.port, d.forward.as_str(), d.weight);
            if d.u_threshold > 0 {
                line.push_str(&format!(" u_threshold {}", d.u_threshold));
            }
            if d.l_threshold > 0 {
                line.push_str(&format!(" l_threshold {}", d.l_threshold));
            }
            v.push(("", line, format!("real server {}", d.host)));
        }
    }
    for f in &p.files {
        v.push(("file", format!("{} ({:04o})", f.path, f.mode), f.reason.clone()));
    }
    if let Some(u) = &p.boot_unit {
        v.push(("unit", u.clone(), "enabled at boot where systemd runs".into()));
    }
    v
}

pub fn render_text(lab: &Lab, plans: &[HostPlan]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} ({} mode): {}, {}, from {}",
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
            SshTarget::Remote(a) => format!("ssh {}@{}:{}", host.ssh.user, a, host.ssh.port),
        };
        let _ = writeln!(out, "\n{} ({}, {via})", p.host, p.role);
        let lines = items(p);
        let width = lines.iter().map(|(_, item, _)| item.chars().count()).max().unwrap_or(0).min(56);
        for (kind, item, reason) in lines {
            let _ = writeln!(out, "  {kind:<7} {item:<width$}  # {reason}");
        }
    }
    out
}
