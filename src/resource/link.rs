//! Links: brought up when down; `down` takes down only what lvsctl brought up.

use std::io;

use serde::{Deserialize, Serialize};

use super::{Action as AnyAction, Decision, Key, Live, Undo as AnyUndo, Wants};
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

pub fn wants(plan: &HostPlan, w: &mut Wants) {
    w.links.extend(plan.links_up.iter().map(|l| l.dev.clone()));
    // A missing link may only be waiting for a module of the plan (tunl0 comes with ipip).
    w.modules |= !plan.links_up.is_empty() && !plan.modules.is_empty();
}

pub fn decide(specs: &[LinkSpec], live: &Live, modules_pending: bool) -> Vec<Decision> {
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
                    let record = AnyUndo::LinkUp(Undo { dev: l.dev.clone() });
                    let action = AnyAction::Link(Action { dev: l.dev.clone(), up: true });
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

pub fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::Link(u.dev.clone());
    match live.links.get(&u.dev) {
        None => Decision::failed(&key, "undo what lvsctl changed", "not read"),
        Some(Err(e)) => Decision::failed(&key, "undo what lvsctl changed", e),
        Some(Ok(Some(true))) => {
            Decision::revert(key, "up", "down", AnyAction::Link(Action { dev: u.dev.clone(), up: false }))
        }
        Some(Ok(_)) => Decision::same(key, "down or gone"),
    }
}

pub fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<()> {
    sys.set_link(&a.dev, a.up)
}

pub fn show(l: &LinkSpec) -> (&'static str, String, String) {
    ("link", format!("{} up", l.dev), l.reason.clone())
}

/// An interface name the kernel would take.
pub fn check(u: &Undo) -> Result<(), String> {
    match crate::inventory::parse::interface_name_problem(&u.dev) {
        Some(why) => Err(format!("link {:?} {why}", u.dev)),
        None => Ok(()),
    }
}
