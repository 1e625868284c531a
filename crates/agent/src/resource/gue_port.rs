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

    /// A close that fails is checked against the ports: on a kernel that network namespaces share
    /// (a lab), another host's `down` may unload fou — and every port with it — between this
    /// host's reading of its ports and its close, which then fails (EPROTONOSUPPORT when the
    /// family goes while the request is on its way). A port that is gone is reported as not
    /// found, which `down` counts as undone; the error stands while the port is still open or
    /// the ports cannot be read.
    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        if a.open {
            return sys.add_gue_port(a.port, a.ipv6).map(|_| None);
        }
        match sys.del_fou_port(a.port, a.ipv6) {
            Ok(()) => Ok(None),
            Err(e) => match sys.fou_ports() {
                Ok(l) if !l.iter().any(|p| p.port == a.port && p.ipv6 == a.ipv6) => {
                    Err(io::Error::new(io::ErrorKind::NotFound, format!("the port is gone already ({e})")))
                }
                _ => Err(e),
            },
        }
    }

    /// A port number and a family: nothing that could name another object.
    fn check(u: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        if u.port == 0 { Err("gue port 0".into()) } else { Ok(()) }
    }

    fn merge(_: &Undo, newer: Undo) -> Undo {
        newer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FouPort;
    use crate::host::fake::Fake;
    use crate::host::{Modules, is_not_found};
    use crate::resource::NoBackups;

    fn close(sys: &mut Fake, ipv6: bool) -> io::Result<Option<Undo>> {
        GuePort::act(sys, &Action { port: 6080, ipv6, open: false }, &NoBackups)
    }

    fn host_with_port(ipv6: bool) -> Fake {
        let mut sys = Fake::new();
        sys.state.modules.insert("fou".into());
        sys.state.fou_ports.insert(FouPort { port: 6080, ipv6, gue: true });
        sys
    }

    /// `down` read the port open; before its close, another host's `down` unloaded fou (the
    /// hosts of a lab share a kernel). The close fails, the port is gone: as good as undone.
    #[test]
    fn a_port_gone_with_its_module_before_the_close_is_not_found() {
        let mut sys = host_with_port(false);
        close(&mut sys, false).unwrap();
        assert_eq!(sys.log, ["fou del port 6080"]);
        assert!(sys.state.fou_ports.is_empty());

        let mut sys = host_with_port(false);
        sys.unload_module("fou").unwrap();
        let e = close(&mut sys, false).unwrap_err();
        assert!(is_not_found(&e), "{e}");
        assert!(e.to_string().contains("gone already"), "{e}");
    }

    /// A close the kernel refuses while the port is still open is an error, as before; a port of
    /// the same number in the other family does not make it open.
    #[test]
    fn a_port_still_open_after_a_failed_close_is_an_error() {
        let mut sys = host_with_port(false);
        sys.fail.push("fou del".into());
        let e = close(&mut sys, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        assert!(!is_not_found(&e));

        let mut sys = host_with_port(true);
        sys.fail.push("fou del".into());
        assert_eq!(close(&mut sys, true).unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert!(is_not_found(&close(&mut sys, false).unwrap_err()), "the IPv4 port 6080 was never open");
    }
}
