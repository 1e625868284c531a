//! Directories lvsctl creates for its files; `down` removes them when empty.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Action as AnyAction, Decision, Key, Live, Undo as AnyUndo};
use crate::host::System;

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

pub fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::Dir(u.path.clone());
    if !live.dirs.get(&u.path).copied().unwrap_or(false) {
        return Decision::same(key, "is absent");
    }
    Decision::revert(key, "present", "absent", AnyAction::Dir(Action::RemoveIfEmpty(u.path.clone())))
}

pub fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<()> {
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
pub fn check(u: &Undo, lab: &str, root: &std::path::Path) -> Result<(), String> {
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
