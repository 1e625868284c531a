//! GUE receive ports on TUN-over-GUE real servers (`ip fou add port PORT gue [-6]`): opened
//! when absent; `down` closes only the ports lvsctl opened.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Wants};
use crate::host::System;
use crate::plan::HostPlan;

/// lvsctl opened the port; it was not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub port: u16,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ipv6: bool,
}

/// Open (`ip fou add … gue`) or close (`ip fou del`) one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub port: u16,
    pub ipv6: bool,
    pub open: bool,
}

/// The kind.
pub struct GuePort;

fn family(ipv6: bool) -> &'static str {
    if ipv6 { " (IPv6)" } else { "" }
}

impl Kind for GuePort {
    type Id = (u16, bool);
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Links;

    fn fmt_id((port, ipv6): &(u16, bool), f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gue port {port}{}", family(*ipv6))
    }

    fn id(u: &Undo) -> (u16, bool) {
        (u.port, u.ipv6)
    }

    fn desired(plan: &HostPlan) -> Vec<(u16, bool)> {
        plan.gue_ports.iter().map(|g| (g.port, g.ipv6)).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.gue_ports |= !plan.gue_ports.is_empty();
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        plan.gue_ports
            .iter()
            .map(|g| {
                let key = Key::GuePort((g.port, g.ipv6));
                let open = match &live.gue_ports {
                    Err(e) => return Decision::failed(&key, &g.reason, e),
                    Ok(l) => l.iter().find(|p| p.port == g.port && p.ipv6 == g.ipv6),
                };
                match open {
                    Some(p) if p.gue => Decision::same(key, "is open (gue)"),
                    Some(_) => Decision::Blocked {
                        object: key.to_string(),
                        before: "open, direct".into(),
                        after: "open, gue".into(),
                        reason: g.reason.clone(),
                        error: format!(
                            "fou port {} is open as a direct (not GUE) port: it would not unwrap the director's GUE packets; close it (ip fou del port {}) or choose another tun_port",
                            g.port, g.port
                        ),
                    },
                    None => {
                        let record = super::Undo::GuePort(Undo { port: g.port, ipv6: g.ipv6 });
                        let action = super::Action::GuePort(Action { port: g.port, ipv6: g.ipv6, open: true });
                        Decision::change(key, "closed", "open (gue)", &g.reason, Some(record), action)
                    }
                }
            })
            .collect()
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.gue_ports
            .iter()
            .map(|g| {
                let six = if g.ipv6 { " -6" } else { "" };
                (
                    "gue",
                    format!("port {}{} (ip fou add port {} gue{six})", g.port, family(g.ipv6), g.port),
                    g.reason.clone(),
                )
            })
            .collect()
    }

    fn undo_wants(_: &Undo, w: &mut Wants) {
        w.gue_ports = true;
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let key = Key::GuePort((u.port, u.ipv6));
        match &live.gue_ports {
            Err(e) => Decision::failed(&key, "undo what lvsctl changed", e),
            Ok(l) if l.iter().any(|p| p.port == u.port && p.ipv6 == u.ipv6) => Decision::revert(
                key,
                "open",
                "closed",
                super::Action::GuePort(Action { port: u.port, ipv6: u.ipv6, open: false }),
            ),
            Ok(_) => Decision::same(key, "is closed"),
        }
    }

    fn sign(a: &Action) -> ChangeKind {
        if a.open { ChangeKind::Add } else { ChangeKind::Remove }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        if a.open { sys.add_gue_port(a.port, a.ipv6) } else { sys.del_fou_port(a.port, a.ipv6) }.map(|_| None)
    }

    /// A port number and a family: nothing that could name another object.
    fn check(u: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        if u.port == 0 { Err("gue port 0".into()) } else { Ok(()) }
    }

    fn merge(_: &Undo, newer: Undo) -> Undo {
        newer
    }
}
