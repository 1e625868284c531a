//! Files lvsctl installs (the runtime plan, sysctl.d, the boot unit): written atomically with
//! their mode; a file they replace is backed up next to the journal, and `down` puts it back —
//! unless someone changed lvsctl's version since.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants, dir, sha256,
};
use crate::host::{FileFact, System};
use crate::plan::{FileSpec, HostPlan};

/// A copy of a file's prior content, kept next to the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// File name inside the journal's backup directory.
    pub file: String,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub path: String,
    pub prior: Option<Backup>,
    pub applied_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write atomically with `mode`, first backing up `backup` (the content it replaces).
    Write {
        path: String,
        content: Vec<u8>,
        mode: u32,
        backup: Option<FileFact>,
        /// The program that must accept the content first.
        check: Option<crate::plan::FileCheck>,
    },
    /// Put the backed-up prior version back.
    Restore {
        path: String,
        backup: Backup,
    },
    Remove(String),
}

/// The kind: a file, and before it (in its stage) the directories it needs.
pub struct File;

impl Kind for File {
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Files;
    const RUNTIME: bool = false;

    fn fmt_id(path: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file {path}")
    }

    fn id(u: &Undo) -> String {
        u.path.clone()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.files.iter().map(|f| f.path.clone()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        for f in &plan.files {
            w.files.insert(f.path.clone());
            w.dirs.extend(dir::parents(&f.path));
        }
    }

    /// Each file, after the directories it needs that are missing.
    fn decide(plan: &HostPlan, live: &Live, journal: &dyn Recorded, _: Intent) -> Vec<Decision> {
        decide(&plan.files, live, journal)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.files.iter().map(|f| ("file", format!("{} ({:04o})", f.path, f.mode), f.reason.clone())).collect()
    }

    fn undo_wants(u: &Undo, w: &mut Wants) {
        w.files.insert(u.path.clone());
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        undo(u, live)
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Write { backup: None, .. } => ChangeKind::Add,
            Action::Write { .. } | Action::Restore { .. } => ChangeKind::Change,
            Action::Remove(_) => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, backups: &dyn Backups) -> io::Result<Option<Undo>> {
        act(sys, a, backups).map(|_| None)
    }

    fn check(u: &Undo, lab: &str, root: &std::path::Path) -> Result<(), String> {
        check(u, lab, root)
    }

    fn merge(first: &Undo, newer: Undo) -> Undo {
        Undo { prior: first.prior.clone(), ..newer }
    }

    fn prepare<S: System>(sys: &mut S, a: &Action, record: &mut Undo, backups: &mut dyn Backups) -> io::Result<()> {
        prepare(sys, a, record, backups)
    }
}

fn short(sha: &str) -> &str {
    &sha[..12]
}

fn decide(specs: &[FileSpec], live: &Live, journal: &dyn Recorded) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut dirs_made = Vec::new();
    for f in specs {
        let key = Key::File(f.path.clone());
        let current = match live.files.get(&f.path) {
            None => {
                out.push(Decision::failed(&key, &f.reason, "not read"));
                continue;
            }
            Some(Err(e)) => {
                out.push(Decision::failed(&key, &f.reason, e));
                continue;
            }
            Some(Ok(c)) => c,
        };
        let applied_sha256 = sha256(f.content.as_bytes());
        let before = match current {
            Some(c) if c.content == f.content.as_bytes() && c.mode & 0o7777 == f.mode => {
                out.push(Decision::same(key, "has the planned content and mode"));
                continue;
            }
            Some(c) if c.content == f.content.as_bytes() => format!("mode {:04o}", c.mode & 0o7777),
            Some(c) => format!("{} bytes, sha256 {}", c.content.len(), short(&sha256(&c.content))),
            None => "absent".into(),
        };
        let after = format!("{} bytes, sha256 {}, mode {:04o}", f.content.len(), short(&applied_sha256), f.mode);
        out.extend(dir::decide_missing(&f.path, live, &mut dirs_made));
        // The first prior is the one to restore: back it up only the first time.
        let backup = match current {
            Some(c) if journal.recorded(&key).is_none() => Some(c.clone()),
            _ => None,
        };
        let record = AnyUndo::File(Undo { path: f.path.clone(), prior: None, applied_sha256 });
        let action = AnyAction::File(Action::Write {
            path: f.path.clone(),
            content: f.content.as_bytes().to_vec(),
            mode: f.mode,
            backup,
            check: f.check,
        });
        out.push(Decision::change(key, before, after, &f.reason, Some(record), action));
    }
    out
}

/// Before anything is journaled: the program that reads the file accepts the new content, and
/// the content it replaces is backed up, so that the journal record names the backup.
fn prepare<S: System>(sys: &mut S, a: &Action, record: &mut Undo, backups: &mut dyn Backups) -> io::Result<()> {
    if let Action::Write { check: Some(c), content, .. } = a {
        sys.check_config(*c, content)?;
    }
    if let Action::Write { backup: Some(c), .. } = a {
        let b = backups
            .backup(&c.content, c.mode & 0o7777)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot back up the current file: {e}")))?;
        record.prior = Some(b);
    }
    Ok(())
}

fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::File(u.path.clone());
    let current = match live.files.get(&u.path) {
        None => return Decision::failed(&key, "undo what lvsctl changed", "not read"),
        Some(Err(e)) => return Decision::failed(&key, "undo what lvsctl changed", e),
        Some(Ok(c)) => c,
    };
    let restore = |before: &str| {
        let backup = u.prior.clone().expect("a prior");
        Decision::revert(
            key.clone(),
            before,
            "the prior version",
            AnyAction::File(Action::Restore { path: u.path.clone(), backup }),
        )
    };
    match (current, &u.prior) {
        (Some(c), _) if sha256(&c.content) != u.applied_sha256 => {
            Decision::Keep { key, why: "changed by someone else since lvsctl wrote it: left as it is".into() }
        }
        (Some(_), Some(_)) => restore("lvsctl's version"),
        (Some(_), None) => Decision::revert(key, "present", "absent", AnyAction::File(Action::Remove(u.path.clone()))),
        (None, Some(_)) => restore("absent"),
        (None, None) => Decision::same(key, "is absent"),
    }
}

fn act<S: System>(sys: &mut S, a: &Action, backups: &dyn Backups) -> io::Result<()> {
    match a {
        Action::Write { path, content, mode, .. } => sys.write_file(path, content, *mode),
        Action::Restore { path, backup } => {
            let content = backups
                .read_backup(backup)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot read the backup of {path}: {e}")))?;
            sys.write_file(path, &content, backup.mode)
        }
        Action::Remove(path) => sys.remove_file(path),
    }
}

/// One of the files `up` writes for `lab` (its runtime plan and agent check under /etc/lvsctl/LAB,
/// its sysctl.d file, its unit), with a backup named inside the journal's directory.
fn check(u: &Undo, lab: &str, root: &std::path::Path) -> Result<(), String> {
    let simple = |n: &str| {
        !n.is_empty()
            && n != "."
            && n != ".."
            && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    let p = &u.path;
    let ours = super::on_host(p, root).is_some_and(|h| {
        h == crate::paths::sysctl_conf_path(lab)
            || h == crate::paths::unit_path(lab)
            || h == crate::plan::keepalived::CONFIG
            || h.strip_prefix(&format!("{}/{lab}/", crate::paths::CONFIG_ROOT)).is_some_and(simple)
    });
    if !ours {
        return Err(format!("file {p} is not one lvsctl writes for lab {lab}"));
    }
    if let Some(b) = &u.prior
        && !simple(&b.file)
    {
        return Err(format!("file {p}: backup {:?} is not a name inside the journal's directory", b.file));
    }
    Ok(())
}
