//! Interface addresses, labelled `DEV:lvs` where the kernel's 15 bytes allow: added when absent;
//! an address someone else holds elsewhere is never taken over; `down` removes only what lvsctl
//! added.

use std::io;

use serde::{Deserialize, Serialize};

use super::{Action as AnyAction, Decision, Key, Live, Undo as AnyUndo, Wants};
use crate::host::{AddrFact, System};
use crate::plan::AddressSpec;

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

pub fn key(a: &AddressSpec) -> Key {
    Key::Address { dev: a.dev.clone(), address: a.address }
}

pub fn wants(specs: &[AddressSpec], w: &mut Wants) {
    w.addresses |= !specs.is_empty();
}

pub fn decide(specs: &[AddressSpec], live: &Live) -> Vec<Decision> {
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

pub fn undo(u: &Undo, live: &Live) -> Decision {
    let a = &u.address;
    let key = Key::Address { dev: a.dev.clone(), address: a.address };
    match &live.addresses {
        Err(e) => Decision::failed(&key, "undo what lvsctl changed", e),
        Ok(have) if have.iter().any(|h| h.dev == a.dev && h.address == a.address) => {
            Decision::revert(key, "present", "absent", AnyAction::Address(Action::Del(a.clone())))
        }
        Ok(_) => Decision::same(key, "is absent"),
    }
}

pub fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<()> {
    match a {
        Action::Add(f) => sys.add_address(f),
        Action::Del(f) => sys.del_address(f),
    }
}

pub fn show(a: &AddressSpec) -> (&'static str, String, String) {
    let label = a.label.as_deref().map(|l| format!(" label {l}")).unwrap_or_default();
    let flags =
        format!("{}{}", if a.nodad { " nodad" } else { "" }, if a.deprecated { " preferred_lft 0" } else { "" });
    ("address", format!("{} dev {}{label}{flags}", a.address, a.dev), a.reason.clone())
}
