//! Directories lvsctl creates for its files; `down` removes them when empty.

use std::fmt;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::System;
use crate::plan::HostPlan;

/// lvsctl created the directory; it is removed when empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Make(String),
    /// Fails with DirectoryNotEmpty when it holds files lvsctl did not write.
    RemoveIfEmpty(String),
}

/// The kind: decided with the files that need it (`file`), undone on its own.
pub struct Dir;

impl Kind for Dir {
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Files;
    const RUNTIME: bool = false;

    fn fmt_id(path: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dir {path}")
    }

    fn id(u: &Undo) -> String {
        u.path.clone()
    }

    /// The parents of the plan's files.
    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.files.iter().flat_map(|f| parents(&f.path)).collect()
    }

    /// Read with the files.
    fn wants(_: &HostPlan, _: &mut Wants) {}

    /// Decided with the files, before each that needs it.
    fn decide(_: &HostPlan, _: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        Vec::new()
    }

    /// Not shown: it follows from the files.
    fn show(_: &HostPlan) -> Vec<super::Line> {
        Vec::new()
    }

    fn undo_wants(u: &Undo, w: &mut Wants) {
        w.dirs.insert(u.path.clone());
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let key = Key::Dir(u.path.clone());
        if !live.dirs.get(&u.path).copied().unwrap_or(false) {
            return Decision::same(key, "is absent");
        }
        Decision::revert(key, "present", "absent", AnyAction::Dir(Action::RemoveIfEmpty(u.path.clone())))
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Make(_) => ChangeKind::Add,
            Action::RemoveIfEmpty(_) => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        act(sys, a).map(|_| None)
    }

    fn check(u: &Undo, lab: &str, root: &std::path::Path) -> Result<(), String> {
        check(u, lab, root)
    }

    fn merge(_: &Undo, newer: Undo) -> Undo {
        newer
    }
}

/// The parent directories of `path`, innermost first (`/` excluded).
pub fn parents(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = Path::new(path).parent();
    while let Some(dir) = p {
        if dir.as_os_str().len() > 1 {
            out.push(dir.to_string_lossy().into_owned());
        }
        p = dir.parent();
    }
    out
}

/// The directories to create before `path` can be written, outermost first; `made` holds the
/// ones earlier files already create.
pub fn decide_missing(path: &str, live: &Live, made: &mut Vec<String>) -> Vec<Decision> {
    let missing: Vec<String> =
        parents(path).into_iter().take_while(|d| !live.dirs.get(d).copied().unwrap_or(false)).collect();
    missing
        .into_iter()
        .rev()
        .filter(|d| {
            let new = !made.contains(d);
            if new {
                made.push(d.clone());
            }
            new
        })
        .map(|d| {
            let record = AnyUndo::Dir(Undo { path: d.clone() });
            let action = AnyAction::Dir(Action::Make(d.clone()));
            Decision::change(Key::Dir(d), "absent", "present", "holds lvsctl's files", Some(record), action)
        })
        .collect()
}

fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<()> {
    match a {
        Action::Make(p) => sys.make_dir(p),
        Action::RemoveIfEmpty(p) => match sys.remove_dir_if_empty(p) {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err(io::Error::new(io::ErrorKind::DirectoryNotEmpty, "holds files lvsctl did not write: left in place"))
            }
            Err(e) => Err(e),
        },
    }
}

/// A directory `up` creates for `lab`: /etc/lvsctl, /etc/lvsctl/LAB, or the sysctl.d and unit
/// directories (and their parents) when a host had none.
fn check(u: &Undo, lab: &str, root: &std::path::Path) -> Result<(), String> {
    let ours = [
        crate::paths::CONFIG_ROOT.to_string(),
        format!("{}/{lab}", crate::paths::CONFIG_ROOT),
        crate::paths::SYSCTL_DIR.to_string(),
        crate::paths::UNIT_DIR.to_string(),
    ];
    // Or a parent of one, made because the host had none (a host without systemd has no
    // /etc/systemd); directories are only ever removed when empty.
    let made_for = |h: &str| ours.iter().any(|o| std::path::Path::new(o).starts_with(h));
    if super::on_host(&u.path, root).is_some_and(|h| made_for(&h)) {
        Ok(())
    } else {
        Err(format!("directory {} is not one lvsctl makes for lab {lab}", u.path))
    }
}
