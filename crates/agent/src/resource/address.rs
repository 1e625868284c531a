//! Interface addresses, labelled `DEV:lvs` where the kernel's 15 bytes allow: added when absent;
//! an address someone else holds elsewhere is never taken over; `down` removes only what lvsctl
//! added.

use std::fmt;
use std::io;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::{AddrFact, System};
use crate::plan::{AddressSpec, HostPlan};

/// lvsctl added the address; it was absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub address: AddrFact,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `ip addr add ADDRESS dev DEV label LABEL`
    Add(AddrFact),
    /// `ip addr del ADDRESS dev DEV`
    Del(AddrFact),
}

/// An address on a device (the same address on two devices is two objects).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id {
    pub dev: String,
    pub address: IpNet,
}

fn key(a: &AddressSpec) -> Key {
    Key::Address(Id { dev: a.dev.clone(), address: a.address })
}

/// The kind.
pub struct Address;

impl Kind for Address {
    type Id = Id;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Addresses;

    fn fmt_id(id: &Id, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} dev {}", id.address, id.dev)
    }

    fn id(u: &Undo) -> Id {
        Id { dev: u.address.dev.clone(), address: u.address.address }
    }

    fn desired(plan: &HostPlan) -> Vec<Id> {
        plan.addresses.iter().map(|a| Id { dev: a.dev.clone(), address: a.address }).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.addresses |= !plan.addresses.is_empty();
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        decide(&plan.addresses, live)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.addresses.iter().map(show).collect()
    }

    fn undo_wants(_: &Undo, w: &mut Wants) {
        w.addresses = true;
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let a = &u.address;
        let key = Key::Address(Self::id(u));
        match &live.addresses {
            Err(e) => Decision::failed(&key, "undo what lvsctl changed", e),
            Ok(have) if have.iter().any(|h| h.dev == a.dev && h.address == a.address) => {
                Decision::revert(key, "present", "absent", AnyAction::Address(Action::Del(a.clone())))
            }
            Ok(_) => Decision::same(key, "is absent"),
        }
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Add(_) => ChangeKind::Add,
            Action::Del(_) => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        match a {
            Action::Add(f) => sys.add_address(f)?,
            Action::Del(f) => sys.del_address(f)?,
        }
        Ok(None)
    }

    /// Typed netlink data: an address and a prefix; the device is only looked up.
    fn check(_: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        Ok(())
    }

    fn merge(_: &Undo, newer: Undo) -> Undo {
        newer
    }
}

fn decide(specs: &[AddressSpec], live: &Live) -> Vec<Decision> {
    if specs.is_empty() {
        return vec![];
    }
    let have = match &live.addresses {
        Ok(a) => a,
        Err(e) => return vec![Decision::failed("addresses", "read addresses", e)],
    };
    specs
        .iter()
        .map(|a| {
            let key = key(a);
            if have.iter().any(|h| h.dev == a.dev && h.address == a.address) {
                return Decision::same(key, "is present");
            }
            if let Some(other) = have.iter().find(|h| h.address.addr() == a.address.addr()) {
                // The same IP elsewhere (another device or prefix) belongs to someone else.
                return Decision::Blocked {
                    object: key.to_string(),
                    before: format!("{} dev {}", other.address, other.dev),
                    after: "present".into(),
                    reason: a.reason.clone(),
                    error: format!(
                        "{} is already on {} as {}, not managed by lvsctl: remove it or change the inventory",
                        a.address.addr(),
                        other.dev,
                        other.address
                    ),
                };
            }
            let fact = AddrFact {
                dev: a.dev.clone(),
                address: a.address,
                label: a.label.clone(),
                nodad: a.nodad,
                deprecated: a.deprecated,
            };
            let record = AnyUndo::Address(Undo { address: fact.clone() });
            Decision::change(key, "absent", "present", &a.reason, Some(record), AnyAction::Address(Action::Add(fact)))
        })
        .collect()
}

fn show(a: &AddressSpec) -> super::Line {
    let label = a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default();
    let flags =
        format!("{}{}", if a.nodad { " nodad" } else { "" }, if a.deprecated { " preferred_lft 0" } else { "" });
    ("address", format!("{} dev {}{label}{flags}", a.address, a.dev), a.reason.clone())
}
