//! Sysctls (`/proc/sys`): set to the planned value; `down` gives back the value found before,
//! unless someone changed it since.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Wants, same_value};
use crate::host::System;
use crate::plan::{HostPlan, SysctlSpec};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub key: String,
    pub prior: String,
    pub applied: String,
}

/// `sysctl -w KEY=VALUE`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub key: String,
    pub value: String,
}

/// The kind.
pub struct Sysctl;

impl Kind for Sysctl {
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Sysctls;

    fn fmt_id(key: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sysctl {key}")
    }

    fn id(u: &Undo) -> String {
        u.key.clone()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.sysctls.iter().map(|s| s.key.clone()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.sysctls.extend(plan.sysctls.iter().map(|s| s.key.clone()));
        // A missing key may only be waiting for a module of the plan.
        w.modules |= !plan.sysctls.is_empty() && !plan.modules.is_empty();
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        let pending = live.modules_pending(plan);
        plan.sysctls.iter().map(|s| decide_one(s, live.sysctls.get(&s.key), pending)).collect()
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.sysctls.iter().map(|s| ("sysctl", format!("{} = {}", s.key, s.value), s.reason.clone())).collect()
    }

    fn undo_wants(u: &Undo, w: &mut Wants) {
        w.sysctls.insert(u.key.clone());
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        undo(u, live)
    }

    fn sign(_: &Action) -> ChangeKind {
        ChangeKind::Change
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        sys.write_sysctl(&a.key, &a.value).map(|_| None)
    }

    /// A key under net. (the only ones lvsctl sets) that names a file of /proc/sys and nothing
    /// above it, and values without control characters.
    fn check(u: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        let k = &u.key;
        let key_ok = k.starts_with("net.")
            && k.len() <= 256
            && k.split('.').all(|p| !p.is_empty() && p != "..")
            && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !key_ok {
            return Err(format!("sysctl key {k:?} is not one lvsctl sets"));
        }
        if [&u.prior, &u.applied].iter().any(|v| v.len() > 4096 || v.chars().any(|c| c.is_control() && c != '\t')) {
            return Err(format!("sysctl {k}: a recorded value is not a sysctl value"));
        }
        Ok(())
    }

    fn merge(first: &Undo, newer: Undo) -> Undo {
        Undo { prior: first.prior.clone(), ..newer }
    }
}

fn decide_one(s: &SysctlSpec, current: Option<&super::Fact<Option<String>>>, modules_pending: bool) -> Decision {
    let key = Key::Sysctl(s.key.clone());
    let missing = || format!("no sysctl {} on this host (missing interface or module?)", s.key);
    match current {
        None => Decision::failed(&key, &s.reason, "not read"),
        Some(Err(e)) => Decision::failed(&key, &s.reason, e),
        Some(Ok(Some(cur))) if same_value(cur, &s.value) => Decision::same(key, format!("is {}", s.value)),
        Some(Ok(Some(cur))) => {
            let cur = cur.trim().to_string();
            let record = super::Undo::Sysctl(Undo { key: s.key.clone(), prior: cur.clone(), applied: s.value.clone() });
            let action = super::Action::Sysctl(Action { key: s.key.clone(), value: s.value.clone() });
            Decision::change(key, cur, s.value.clone(), &s.reason, Some(record), action)
        }
        Some(Ok(None)) if modules_pending => Decision::Pending {
            object: key.to_string(),
            before: "absent until its module loads".into(),
            after: s.value.clone(),
            reason: s.reason.clone(),
            error: missing(),
        },
        Some(Ok(None)) => Decision::Blocked {
            object: key.to_string(),
            before: "absent".into(),
            after: s.value.clone(),
            reason: s.reason.clone(),
            error: missing(),
        },
    }
}

fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::Sysctl(u.key.clone());
    match live.sysctls.get(&u.key) {
        None => Decision::failed(&key, "undo what lvsctl changed", "not read"),
        Some(Err(e)) => Decision::failed(&key, "undo what lvsctl changed", e),
        // The device went away, and its settings with it.
        Some(Ok(None)) => Decision::same(key, "gone with its device"),
        Some(Ok(Some(cur))) if same_value(cur, &u.prior) => Decision::same(key, format!("is {} again", u.prior)),
        Some(Ok(Some(cur))) if same_value(cur, &u.applied) => Decision::revert(
            key,
            cur.trim(),
            u.prior.clone(),
            super::Action::Sysctl(Action { key: u.key.clone(), value: u.prior.clone() }),
        ),
        Some(Ok(Some(cur))) => Decision::Keep {
            key,
            why: format!(
                "changed by someone else since lvsctl set it (now {}, lvsctl set {}, it was {} before): left as it is",
                cur.trim(),
                u.applied,
                u.prior
            ),
        },
    }
}
