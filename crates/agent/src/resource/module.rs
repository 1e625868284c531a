//! Kernel modules (`modprobe`): loaded when missing; `down` unloads what the load brought in.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Wants};
use crate::host::{System, is_not_found};
use crate::plan::HostPlan;

/// lvsctl loaded the module; `loaded` lists every module the load brought in (dependencies
/// too), filled in once the load finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub name: String,
    pub loaded: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `modprobe NAME`
    Load(String),
    /// `modprobe -r` of each, in whatever order their users allow.
    Unload(Vec<String>),
}

/// /proc/modules writes names with underscores.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The kind.
pub struct Module;

impl Kind for Module {
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Modules;

    fn fmt_id(name: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module {name}")
    }

    fn id(u: &Undo) -> String {
        u.name.clone()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.modules.iter().map(|m| m.name.clone()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.modules |= !plan.modules.is_empty();
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        decide(&plan.modules, live)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.modules.iter().map(|m| ("module", m.name.clone(), m.reason.clone())).collect()
    }

    fn undo_wants(_: &Undo, w: &mut Wants) {
        w.modules = true;
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let key = Key::Module(u.name.clone());
        let present = match &live.modules {
            Ok(l) => l,
            Err(e) => return Decision::failed(&key, "undo what lvsctl changed", e),
        };
        let names = u.loaded.clone().unwrap_or_else(|| vec![normalize(&u.name)]);
        let names: Vec<String> = names.into_iter().filter(|n| present.contains(n)).collect();
        if names.is_empty() {
            return Decision::same(key, "not loaded");
        }
        let shown = names.join(" ");
        Decision::revert(key, format!("loaded ({shown})"), "unloaded", super::Action::Module(Action::Unload(names)))
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Load(_) => ChangeKind::Add,
            Action::Unload(_) => ChangeKind::Remove,
        }
    }

    /// A load returns the record of what it brought in, so that `down` can unload it all.
    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        match a {
            Action::Load(name) => {
                let before = sys.loaded_modules()?;
                sys.load_module(name)?;
                let Ok(after) = sys.loaded_modules() else { return Ok(None) };
                let new: Vec<String> = after.into_iter().filter(|x| !before.contains(x)).collect();
                Ok(Some(Undo { name: name.clone(), loaded: Some(new) }))
            }
            Action::Unload(names) => unload_all(sys, names).map(|_| None),
        }
    }

    /// A kernel module name as modprobe takes it; so are the ones recorded as loaded with it.
    fn check(u: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        let ok = |n: &str| {
            !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !ok(&u.name) || u.loaded.iter().flatten().any(|n| !ok(n)) {
            return Err(format!("module {:?} is not a module name", u.name));
        }
        Ok(())
    }

    /// A later record without the load's results keeps the results already recorded.
    fn merge(first: &Undo, newer: Undo) -> Undo {
        match (&first.loaded, &newer.loaded) {
            (Some(l), None) => Undo { name: newer.name, loaded: Some(l.clone()) },
            _ => newer,
        }
    }
}

fn decide(specs: &[crate::plan::ModuleSpec], live: &Live) -> Vec<Decision> {
    if specs.is_empty() {
        return vec![];
    }
    let loaded = match &live.modules {
        Ok(l) => l,
        Err(e) => return vec![Decision::failed("modules", "read /proc/modules", e)],
    };
    specs
        .iter()
        .map(|m| {
            let key = Key::Module(m.name.clone());
            if loaded.contains(&normalize(&m.name)) {
                Decision::same(key, format!("module {} is loaded", m.name))
            } else {
                let record = super::Undo::Module(Undo { name: m.name.clone(), loaded: None });
                let action = super::Action::Module(Action::Load(m.name.clone()));
                Decision::change(key, "not loaded", "loaded", &m.reason, Some(record), action)
            }
        })
        .collect()
}

/// Unloads modules in whatever order their users allow (a module is unloadable once the modules
/// using it are gone), waiting briefly for references the kernel drops asynchronously.
fn unload_all<S: System>(s: &mut S, names: &[String]) -> io::Result<()> {
    let mut left: Vec<String> = names.to_vec();
    for _round in 0..30 {
        let mut progress = false;
        let mut still = Vec::new();
        for m in left {
            match s.unload_module(&m) {
                Ok(()) => progress = true,
                Err(e) if is_not_found(&e) => progress = true,
                Err(_) => still.push(m),
            }
        }
        left = still;
        if left.is_empty() {
            return Ok(());
        }
        if !progress {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Err(io::Error::new(io::ErrorKind::ResourceBusy, format!("still in use, left loaded: {}", left.join(" "))))
}
