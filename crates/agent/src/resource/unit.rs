//! The systemd boot unit: enabled where systemd runs, so that the host comes back provisioned
//! after a reboot; `down` disables it.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::System;
use crate::plan::HostPlan;

/// lvsctl enabled the systemd unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `systemctl enable`
    Enable(String),
    /// `systemctl disable`
    Disable(String),
}

/// The kind.
pub struct Unit;

impl Kind for Unit {
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Unit;
    const RUNTIME: bool = false;

    fn fmt_id(name: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unit {name}")
    }

    fn id(u: &Undo) -> String {
        u.name.clone()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.boot_unit.iter().cloned().collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.units.extend(plan.boot_unit.clone());
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, intent: Intent) -> Vec<Decision> {
        decide(plan.boot_unit.as_deref(), live, intent)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        let line = |name: &String| ("unit", name.clone(), "enabled at boot where systemd runs".to_string());
        plan.boot_unit.iter().map(line).collect()
    }

    fn undo_wants(_: &Undo, w: &mut Wants) {
        w.systemd = true;
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let key = Key::Unit(u.name.clone());
        if !live.systemd {
            return Decision::same(key, "systemd does not run here");
        }
        Decision::revert(key, "enabled", "disabled", AnyAction::Unit(Action::Disable(u.name.clone())))
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Enable(_) => ChangeKind::Add,
            Action::Disable(_) => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        match a {
            Action::Enable(n) => sys.systemctl(&["enable", n])?,
            Action::Disable(n) => sys.systemctl(&["disable", n])?,
        };
        Ok(None)
    }

    /// The lab's own unit, and no other.
    fn check(u: &Undo, lab: &str, _: &std::path::Path) -> Result<(), String> {
        if u.name == crate::paths::unit_name(lab) {
            Ok(())
        } else {
            Err(format!("unit {:?} is not lab {lab}'s", u.name))
        }
    }

    fn merge(_: &Undo, newer: Undo) -> Undo {
        newer
    }
}

fn decide(unit: Option<&str>, live: &Live, intent: Intent) -> Vec<Decision> {
    let Some(name) = unit else { return vec![] };
    if !live.systemd {
        if intent != Intent::Apply {
            return vec![];
        }
        return vec![Decision::Note(format!(
            "systemd does not run on this host: {name} is installed but not enabled (run its ExecStart at boot)"
        ))];
    }
    let key = Key::Unit(name.to_string());
    if live.units.get(name).copied().unwrap_or(false) {
        return vec![Decision::same(key, "is enabled")];
    }
    let record = AnyUndo::Unit(Undo { name: name.to_string() });
    let action = AnyAction::Unit(Action::Enable(name.to_string()));
    vec![Decision::change(key, "disabled", "enabled", "re-applies this host's state at boot", Some(record), action)]
}

/// Before the unit is read: systemd learns of a unit file lvsctl wrote or changed.
pub fn daemon_reload<S: System>(sys: &mut S) -> io::Result<()> {
    sys.systemctl(&["daemon-reload"]).map(|_| ())
}

/// After `up`: the unit runs (so that its stop undoes the runtime state at shutdown).
/// `--no-block`: the unit's start takes the lab lock the agent holds.
pub fn start_if_inactive<S: System>(sys: &mut S, name: &str) -> io::Result<()> {
    let active = sys.systemctl(&["is-active", name]).map(|o| o.trim() == "active").unwrap_or(false);
    if active { Ok(()) } else { sys.systemctl(&["start", "--no-block", name]).map(|_| ()) }
}

/// Whether the unit is running (`down` stops it first: its stop undoes the runtime state).
pub fn is_active<S: System>(sys: &mut S, name: &str) -> bool {
    sys.systemd_running() && sys.systemctl(&["is-active", name]).map(|o| o.trim() == "active").unwrap_or(false)
}
