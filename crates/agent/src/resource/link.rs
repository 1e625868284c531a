//! Links: brought up when down; `down` takes down only what lvsctl brought up.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Wants};
use crate::host::System;
use crate::plan::{HostPlan, LinkSpec};

/// lvsctl brought the link up; it was down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub dev: String,
}

/// `ip link set DEV up|down`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub dev: String,
    pub up: bool,
}

/// The kind.
pub struct Link;

impl Kind for Link {
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Links;

    fn fmt_id(dev: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link {dev}")
    }

    fn id(u: &Undo) -> String {
        u.dev.clone()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.links_up.iter().map(|l| l.dev.clone()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.links.extend(plan.links_up.iter().map(|l| l.dev.clone()));
        // A missing link may only be waiting for a module of the plan (tunl0 comes with ipip).
        w.modules |= !plan.links_up.is_empty() && !plan.modules.is_empty();
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        decide(&plan.links_up, live, live.modules_pending(plan))
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.links_up.iter().map(|l| ("link", format!("{} up", l.dev), l.reason.clone())).collect()
    }

    fn undo_wants(u: &Undo, w: &mut Wants) {
        w.links.insert(u.dev.clone());
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let key = Key::Link(u.dev.clone());
        match live.links.get(&u.dev) {
            None => Decision::failed(&key, "undo what lvsctl changed", "not read"),
            Some(Err(e)) => Decision::failed(&key, "undo what lvsctl changed", e),
            Some(Ok(Some(true))) => {
                Decision::revert(key, "up", "down", super::Action::Link(Action { dev: u.dev.clone(), up: false }))
            }
            Some(Ok(_)) => Decision::same(key, "down or gone"),
        }
    }

    fn sign(_: &Action) -> ChangeKind {
        ChangeKind::Change
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        act(sys, a).map(|_| None)
    }

    /// An interface name the kernel would take.
    fn check(u: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        match crate::wire::names::interface_name_problem(&u.dev) {
            Some(why) => Err(format!("link {:?} {why}", u.dev)),
            None => Ok(()),
        }
    }

    fn merge(_: &Undo, newer: Undo) -> Undo {
        newer
    }
}

fn decide(specs: &[LinkSpec], live: &Live, modules_pending: bool) -> Vec<Decision> {
    specs
        .iter()
        .map(|l| {
            let key = Key::Link(l.dev.clone());
            let missing = || format!("no interface {} on this host", l.dev);
            match live.links.get(&l.dev) {
                None => Decision::failed(&key, &l.reason, "not read"),
                Some(Err(e)) => Decision::failed(&key, &l.reason, e),
                Some(Ok(Some(true))) => Decision::same(key, "is up"),
                Some(Ok(Some(false))) => {
                    let record = super::Undo::Link(Undo { dev: l.dev.clone() });
                    let action = super::Action::Link(Action { dev: l.dev.clone(), up: true });
                    Decision::change(key, "down", "up", &l.reason, Some(record), action)
                }
                Some(Ok(None)) if modules_pending => Decision::Pending {
                    object: key.to_string(),
                    before: "absent until its module loads".into(),
                    after: "up".into(),
                    reason: l.reason.clone(),
                    error: missing(),
                },
                Some(Ok(None)) => Decision::Blocked {
                    object: key.to_string(),
                    before: "absent".into(),
                    after: "up".into(),
                    reason: l.reason.clone(),
                    error: missing(),
                },
            }
        })
        .collect()
}

/// Taking a link down flushes its IPv6 addresses (the kernel's `keep_addr_on_down` is 0 by
/// default): those it held are put back (on a down link they stay), so that `down` leaves the
/// addresses that were there before lvsctl. lvsctl's own are gone already: undo runs in reverse,
/// addresses before links. Link-local ones come back by themselves when the link comes up.
fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<()> {
    if a.up {
        return sys.set_link(&a.dev, true);
    }
    let held: Vec<crate::host::AddrFact> = sys
        .addresses()?
        .into_iter()
        .filter(|x| {
            x.dev == a.dev && x.address.addr().is_ipv6() && !crate::wire::names::is_link_local(x.address.addr())
        })
        .collect();
    sys.set_link(&a.dev, false)?;
    let now = sys.addresses()?;
    for x in held.iter().filter(|x| !now.iter().any(|n| n.dev == x.dev && n.address == x.address)) {
        sys.add_address(x)?;
    }
    Ok(())
}

#[cfg(test)]
mod act_tests {
    use super::*;
    use crate::host::AddrFact;
    use crate::host::fake::Fake;

    fn addr(dev: &str, cidr: &str) -> AddrFact {
        AddrFact { dev: dev.into(), address: cidr.parse().unwrap(), label: None, nodad: true, deprecated: false }
    }

    /// The fake flushes IPv6 addresses on link down, as the kernel does: the ones held before
    /// are back afterwards, and the IPv4 one was never gone.
    #[test]
    fn taking_a_link_down_keeps_the_ipv6_addresses_it_held() {
        let mut sys = Fake::new();
        sys.state.links.insert("eth0".into(), true);
        sys.state.addresses =
            vec![addr("eth0", "2001:db8:188::100/128"), addr("eth0", "192.0.2.1/24"), addr("eth1", "2001:db8::1/64")];
        act(&mut sys, &Action { dev: "eth0".into(), up: false }).unwrap();
        assert!(!sys.state.links["eth0"]);
        let mut have: Vec<String> = sys.state.addresses.iter().map(|a| format!("{} {}", a.dev, a.address)).collect();
        have.sort();
        assert_eq!(have, ["eth0 192.0.2.1/24", "eth0 2001:db8:188::100/128", "eth1 2001:db8::1/64"]);
        assert!(sys.state.addresses.iter().all(|a| a.nodad), "put back as they were");
    }
}
