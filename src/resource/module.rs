//! Kernel modules (`modprobe`): loaded when missing; `down` unloads what the load brought in.

use std::io;

use serde::{Deserialize, Serialize};

use super::{Action as AnyAction, Decision, Key, Live, Undo as AnyUndo, Wants};
use crate::host::{System, is_not_found};
use crate::plan::ModuleSpec;

/// lvsctl loaded the module; `loaded` lists every module the load brought in (dependencies
/// too), filled in once the load finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub name: String,
    pub loaded: Option<Vec<String>>,
}

impl Undo {
    /// A later record without the load's results keeps the results already recorded.
    pub fn merge(&self, new: Undo) -> Undo {
        match (&self.loaded, &new.loaded) {
            (Some(l), None) => Undo { name: new.name, loaded: Some(l.clone()) },
            _ => new,
        }
    }
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

pub fn wants(specs: &[ModuleSpec], w: &mut Wants) {
    w.modules |= !specs.is_empty();
}

pub fn decide(specs: &[ModuleSpec], live: &Live) -> Vec<Decision> {
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
                let record = AnyUndo::Module(Undo { name: m.name.clone(), loaded: None });
                let action = AnyAction::Module(Action::Load(m.name.clone()));
                Decision::change(key, "not loaded", "loaded", &m.reason, Some(record), action)
            }
        })
        .collect()
}

pub fn undo(u: &Undo, live: &Live) -> Decision {
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
    Decision::revert(key, format!("loaded ({shown})"), "unloaded", AnyAction::Module(Action::Unload(names)))
}

/// A load returns the record of what it brought in, so that `down` can unload it all.
pub fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<Option<AnyUndo>> {
    match a {
        Action::Load(name) => {
            let before = sys.loaded_modules()?;
            sys.load_module(name)?;
            let Ok(after) = sys.loaded_modules() else { return Ok(None) };
            let new: Vec<String> = after.into_iter().filter(|x| !before.contains(x)).collect();
            Ok(Some(AnyUndo::Module(Undo { name: name.clone(), loaded: Some(new) })))
        }
        Action::Unload(names) => unload_all(sys, names).map(|_| None),
    }
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

pub fn show(m: &ModuleSpec) -> (&'static str, String, String) {
    ("module", m.name.clone(), m.reason.clone())
}

/// A kernel module name as modprobe takes it; so are the ones recorded as loaded with it.
pub fn check(u: &Undo) -> Result<(), String> {
    let ok = |n: &str| {
        !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !ok(&u.name) || u.loaded.iter().flatten().any(|n| !ok(n)) {
        return Err(format!("module {:?} is not a module name", u.name));
    }
    Ok(())
}
