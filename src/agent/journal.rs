//! The journal: what lvsctl changed on this host and what was there before, written *before* each
//! change (write-ahead), so a dropped session or a killed controller or agent never leaves a change
//! that `down` cannot undo. One entry per object; the prior value is the one found the first time
//! lvsctl changed the object, so repeated `up`s never overwrite it.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::resource::file::Backup;
use crate::resource::{Backups, Key, Recorded, Undo};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Unix time of the change.
    pub at: u64,
    #[serde(flatten)]
    pub undo: Undo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalData {
    pub version: u32,
    pub lab: String,
    pub host: String,
    /// The lvsctl version that last wrote the journal.
    pub lvsctl: String,
    pub next_seq: u64,
    pub entries: Vec<Entry>,
}

/// The journal of one lab on this host, persisted at `DIR/journal.json`.
pub struct Journal {
    pub dir: PathBuf,
    pub data: JournalData,
    /// False in dry runs and checks: nothing is written.
    pub persist: bool,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Journal {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("journal.json")
    }

    /// The journal at `dir`, or an empty one (not yet written) when there is none.
    pub fn open(dir: &Path, lab: &str, host: &str, persist: bool) -> io::Result<Journal> {
        let path = Self::path(dir);
        let data = match std::fs::read(&path) {
            Ok(bytes) => {
                let data: JournalData = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{}: unreadable journal: {e}", path.display()))
                })?;
                if data.version > VERSION {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: journal version {} is newer than this lvsctl understands ({VERSION})",
                            path.display(),
                            data.version
                        ),
                    ));
                }
                data
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => JournalData {
                version: VERSION,
                lab: lab.to_string(),
                host: host.to_string(),
                lvsctl: env!("CARGO_PKG_VERSION").to_string(),
                next_seq: 1,
                entries: vec![],
            },
            Err(e) => return Err(e),
        };
        Ok(Journal { dir: dir.to_path_buf(), data, persist })
    }

    /// Refuses a journal lvsctl of `lab` cannot have written as it is (see `Undo::check`):
    /// nothing recorded by someone else is acted on as root. `root` is where the host's files are.
    pub fn check(&self, lab: &str, root: &Path) -> io::Result<()> {
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {why}: this journal is not as lvsctl wrote it; nothing is undone from it",
                    Self::path(&self.dir).display()
                ),
            )
        };
        if self.data.lab != lab {
            return Err(bad(format!("it is lab {:?}'s journal, not {lab:?}'s", self.data.lab)));
        }
        for e in &self.data.entries {
            e.undo.check(lab, root).map_err(|why| bad(format!("entry {}: {why}", e.seq)))?;
        }
        Ok(())
    }

    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).exists()
    }

    pub fn get(&self, key: &Key) -> Option<&Undo> {
        self.data.entries.iter().find(|e| e.undo.key() == *key).map(|e| &e.undo)
    }

    /// The entries, newest first (the order in which they are undone).
    pub fn newest_first(&self) -> impl Iterator<Item = &Undo> {
        self.data.entries.iter().rev().map(|e| &e.undo)
    }

    fn save(&mut self) -> io::Result<()> {
        if !self.persist {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        self.data.lvsctl = env!("CARGO_PKG_VERSION").to_string();
        let mut bytes = serde_json::to_vec_pretty(&self.data).expect("journal serializes");
        bytes.push(b'\n');
        crate::host::write_atomic(&Self::path(&self.dir), &bytes, 0o600)
    }

    /// Records (before the change is made) how to undo it. When the object already has an
    /// entry, its original prior is kept and only what was applied is updated.
    pub fn record(&mut self, undo: Undo) -> io::Result<()> {
        let key = undo.key();
        if let Some(e) = self.data.entries.iter_mut().find(|e| e.undo.key() == key) {
            e.undo = e.undo.merge(undo);
            e.at = now();
        } else {
            let seq = self.data.next_seq;
            self.data.next_seq += 1;
            self.data.entries.push(Entry { seq, at: now(), undo });
        }
        self.save()
    }

    pub fn remove(&mut self, key: &Key) -> io::Result<()> {
        self.data.entries.retain(|e| e.undo.key() != *key);
        self.save()
    }
}

impl Recorded for Journal {
    fn recorded(&self, key: &Key) -> Option<&Undo> {
        self.get(key)
    }
}

impl Backups for Journal {
    /// Stores a copy of a file's prior content; returns its name in the backup directory.
    fn backup(&mut self, content: &[u8], mode: u32) -> io::Result<Backup> {
        let file = format!("{}", self.data.next_seq);
        self.data.next_seq += 1;
        if self.persist {
            let dir = self.dir.join("backup");
            std::fs::create_dir_all(&dir)?;
            crate::host::write_atomic(&dir.join(&file), content, 0o600)?;
        }
        Ok(Backup { file, mode })
    }

    fn read_backup(&self, b: &Backup) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join("backup").join(&b.file))
    }
}

impl Journal {
    /// Deletes the journal, its backups and its directory (the end of `down`).
    pub fn delete(&mut self) -> io::Result<()> {
        self.data.entries.clear();
        if !self.persist {
            return Ok(());
        }
        let _ = std::fs::remove_dir_all(self.dir.join("backup"));
        match std::fs::remove_file(Self::path(&self.dir)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let _ = std::fs::remove_dir(&self.dir);
        Ok(())
    }
}

/// An exclusive lock for one lab on this host, so that `up`, `down` and the boot unit never
/// interleave. Held until dropped.
pub struct LabLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

impl LabLock {
    /// Takes the lab's lock, waiting at most `timeout` while another process holds it; `on_wait`
    /// is told once, with the holder's pid when it left one, so that nobody waits in silence.
    /// The holder writes its pid into the lock file for the next one to read.
    pub fn acquire(path: &Path, timeout: Duration, on_wait: &mut dyn FnMut(Option<u32>)) -> io::Result<LabLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file =
            std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).mode(0o600).open(path)?;
        let deadline = Instant::now() + timeout;
        let mut told = false;
        loop {
            // SAFETY: flock on a valid open descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(e);
            }
            let holder = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u32>().ok());
            if !told {
                on_wait(holder);
                told = true;
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "still held by {} after {} s (another lvsctl up or down, or the boot unit, is working on this lab)",
                        holder.map_or("another process".to_string(), |p| format!("pid {p}")),
                        timeout.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        file.set_len(0)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        Ok(LabLock { _file: file, path: path.to_path_buf() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{link, module, sysctl};

    fn sysctl(prior: &str, applied: &str) -> Undo {
        Undo::Sysctl(sysctl::Undo { key: "net.ipv4.ip_forward".into(), prior: prior.into(), applied: applied.into() })
    }

    #[test]
    fn a_held_lock_is_waited_for_out_loud_then_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = LabLock::acquire(&path, Duration::from_secs(1), &mut |_| panic!("free")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), std::process::id().to_string());
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let mut told = vec![];
            let l = LabLock::acquire(&p, Duration::from_secs(20), &mut |pid| told.push(pid));
            (l.is_ok(), told)
        });
        std::thread::sleep(Duration::from_millis(500));
        drop(held);
        let (ok, told) = waiter.join().unwrap();
        assert!(ok);
        assert_eq!(told, [Some(std::process::id())], "told once, with the holder's pid");
    }

    #[test]
    fn a_lock_held_too_long_is_an_error_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let _held = LabLock::acquire(&path, Duration::from_secs(1), &mut |_| {}).unwrap();
        let e = LabLock::acquire(&path, Duration::from_millis(300), &mut |_| {}).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains(&format!("pid {}", std::process::id())), "{e}");
    }

    #[test]
    fn first_prior_survives_later_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        j.record(sysctl("2", "1")).unwrap();
        j.record(sysctl("1", "3")).unwrap();
        let j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        assert_eq!(j.data.entries.len(), 1);
        assert_eq!(j.data.entries[0].undo, sysctl("2", "3"));
    }

    #[test]
    fn dry_run_journal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("lab"), "lab", "h", false).unwrap();
        j.record(Undo::LinkUp(link::Undo { dev: "eth0".into() })).unwrap();
        assert!(!dir.path().join("lab").exists());
    }

    #[test]
    fn module_load_results_are_kept_when_recorded_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        let loaded = Some(vec!["ipip".to_string(), "tunnel4".to_string()]);
        j.record(Undo::Module(module::Undo { name: "ipip".into(), loaded: loaded.clone() })).unwrap();
        j.record(Undo::Module(module::Undo { name: "ipip".into(), loaded: None })).unwrap();
        assert_eq!(
            j.get(&Key::Module("ipip".into())),
            Some(&Undo::Module(module::Undo { name: "ipip".into(), loaded }))
        );
    }

    #[test]
    fn delete_removes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        let mut j = Journal::open(&lab, "lab", "h", true).unwrap();
        j.backup(b"old", 0o644).unwrap();
        j.record(Undo::LinkUp(link::Undo { dev: "eth0".into() })).unwrap();
        assert!(Journal::exists(&lab));
        j.delete().unwrap();
        assert!(!lab.exists());
    }

    /// Journals written by lvsctl 0.1.0 before its resources were restructured (one per mode,
    /// every kind of entry among them) read back, and write back byte for byte the same.
    #[test]
    fn journals_of_the_previous_release_read_and_write_unchanged() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1");
        let mut kinds = std::collections::BTreeSet::new();
        for name in ["dr-lvs", "nat-web1", "tun-web1"] {
            let text = std::fs::read_to_string(dir.join(format!("{name}.journal.json"))).unwrap();
            let data: JournalData = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!data.entries.is_empty());
            for e in &data.entries {
                kinds.insert(serde_json::to_value(&e.undo).unwrap()["kind"].as_str().unwrap().to_string());
            }
            let mut again = serde_json::to_string_pretty(&data).unwrap();
            again.push('\n');
            assert_eq!(again, text, "{name}");
            // What lvsctl wrote passes the check `down` makes before acting on it.
            let lab = data.lab.clone();
            let j = Journal { dir: dir.clone(), data, persist: false };
            j.check(&lab, Path::new("/")).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(kinds.len(), 10, "every kind of entry is in the fixtures: {kinds:?}");
    }

    /// A journal edited by someone else is not acted on as root: each entry names only what
    /// lvsctl of that lab can have written.
    #[test]
    fn entries_lvsctl_cannot_have_written_are_refused() {
        use crate::resource::{dir, file, unit};
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1/dr-lvs.journal.json"),
        )
        .unwrap();
        let good: JournalData = serde_json::from_str(&text).unwrap();
        let with = |u: Undo| {
            let mut d = good.clone();
            d.entries.push(Entry { seq: 99, at: 0, undo: u });
            Journal { dir: PathBuf::from("/var/lib/lvsctl/dr"), data: d, persist: false }
        };
        let sysctl_key = |k: &str| Undo::Sysctl(sysctl::Undo { key: k.into(), prior: "0".into(), applied: "1".into() });
        let file_at = |p: &str| Undo::File(file::Undo { path: p.into(), prior: None, applied_sha256: "x".into() });
        for (u, why) in [
            (file_at("/etc/passwd"), "not one lvsctl writes"),
            (file_at("/etc/lvsctl/dr/../../shadow"), "not one lvsctl writes"),
            (file_at("/etc/lvsctl/other/host.json"), "not one lvsctl writes"),
            (
                Undo::File(file::Undo {
                    path: "/etc/lvsctl/dr/host.json".into(),
                    prior: Some(Backup { file: "../../../../etc/shadow".into(), mode: 0o644 }),
                    applied_sha256: "x".into(),
                }),
                "backup",
            ),
            (sysctl_key("kernel.core_pattern"), "not one lvsctl sets"),
            (sysctl_key("net.ipv4.conf.eth0/../../../kernel/core_pattern"), "not one lvsctl sets"),
            (
                Undo::Sysctl(sysctl::Undo {
                    key: "net.ipv4.ip_forward".into(),
                    prior: "1\n0".into(),
                    applied: "1".into(),
                }),
                "value",
            ),
            (Undo::Unit(unit::Undo { name: "ssh.service".into() }), "not lab dr's"),
            (Undo::Dir(dir::Undo { path: "/root".into() }), "not one lvsctl makes"),
            (Undo::Module(module::Undo { name: "../../evil".into(), loaded: None }), "not a module name"),
            (Undo::LinkUp(link::Undo { dev: "eth0; reboot".into() }), "link"),
        ] {
            let e = with(u.clone()).check("dr", Path::new("/")).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("entry 99") && e.contains("nothing is undone"), "{u:?}: {e}");
        }
        assert!(with(sysctl_key("net.ipv4.ip_forward")).check("dr", Path::new("/")).is_ok());
        let e =
            Journal { dir: PathBuf::from("/x"), data: good, persist: false }.check("nat", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("lab \"dr\"'s journal"), "{e}");
    }
}
