//! The journal: what lvsctl changed on this host and what was there before, written *before* each
//! change (write-ahead), so a dropped session or a killed controller or agent never leaves a change
//! that `down` cannot undo. One entry per object; the prior value is the one found the first time
//! lvsctl changed the object, so repeated `up`s never overwrite it.
//!
//! On disk: `journal.json`, the whole journal as of the end of the last run (the format every
//! release wrote), and `journal.log`, what the current run recorded since, one JSON line per
//! entry written or dropped. The executor stages the records of a batch of changes and makes them
//! durable with one append and one fsync (`flush`) before it acts on any of them; at the end of a
//! run the log is folded into `journal.json` (`finish`). A run killed at any point leaves the
//! base and a log whose complete lines are replayed on the next open (a torn last line is an
//! append that never finished: nothing was acted on after it). Lookups go through an index, so
//! time and memory stay linear in the number of entries.

use std::collections::HashMap;
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

/// `journal.json`.
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

/// One line of `journal.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LogLine {
    /// The entry of its object, new or updated.
    Record { entry: Entry, next_seq: u64 },
    /// The entry with this seq is undone.
    Drop { seq: u64, next_seq: u64 },
}

/// The journal of one lab on this host, persisted at `DIR/journal.json` and `DIR/journal.log`.
pub struct Journal {
    pub dir: PathBuf,
    pub lab: String,
    pub host: String,
    next_seq: u64,
    /// In the order they were first recorded (newest last); None where one was dropped.
    entries: Vec<Option<Entry>>,
    /// Where each object's entry is in `entries`.
    index: HashMap<Key, usize>,
    live: usize,
    /// Recorded in memory, not yet in the log.
    staged: Vec<LogLine>,
    /// The log has lines `journal.json` lacks.
    logged: bool,
    /// False in dry runs and checks: nothing is written.
    pub persist: bool,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()))
}

impl Journal {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("journal.json")
    }

    pub fn log_path(dir: &Path) -> PathBuf {
        dir.join("journal.log")
    }

    /// The journal at `dir` (its base and its log), or an empty one (not yet written) when there
    /// is none.
    pub fn open(dir: &Path, lab: &str, host: &str, persist: bool) -> io::Result<Journal> {
        let path = Self::path(dir);
        let data = match std::fs::read(&path) {
            Ok(bytes) => {
                let data: JournalData =
                    serde_json::from_slice(&bytes).map_err(|e| invalid(&path, format!("unreadable journal: {e}")))?;
                if data.version > VERSION {
                    return Err(invalid(
                        &path,
                        format!("journal version {} is newer than this lvsctl understands ({VERSION})", data.version),
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
        let mut j = Journal::from_data(dir, data, persist);
        let log = Self::log_path(dir);
        match std::fs::read(&log) {
            Ok(bytes) => j.replay(&log, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(j)
    }

    /// The journal `data` holds (`journal.json` without its log).
    pub fn from_data(dir: &Path, data: JournalData, persist: bool) -> Journal {
        let mut j = Journal {
            dir: dir.to_path_buf(),
            lab: data.lab,
            host: data.host,
            next_seq: data.next_seq,
            entries: Vec::with_capacity(data.entries.len()),
            index: HashMap::with_capacity(data.entries.len()),
            live: 0,
            staged: vec![],
            logged: false,
            persist,
        };
        for e in data.entries {
            j.upsert(e);
        }
        j
    }

    /// Applies the log's complete lines. Only the last line may be torn (the append a crash cut
    /// short); any other line that does not read is damage, and refused.
    fn replay(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for (n, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let l: LogLine = serde_json::from_slice(line)
                .map_err(|e| invalid(path, format!("line {}: unreadable journal log: {e}", n + 1)))?;
            match l {
                LogLine::Record { entry, next_seq } => {
                    self.upsert(entry);
                    self.next_seq = self.next_seq.max(next_seq);
                }
                LogLine::Drop { seq, next_seq } => {
                    if let Some(i) = self.entries.iter().rposition(|e| e.as_ref().is_some_and(|e| e.seq == seq)) {
                        self.take(i);
                    }
                    self.next_seq = self.next_seq.max(next_seq);
                }
            }
            self.logged = true;
        }
        Ok(())
    }

    /// Puts `e` in place of its object's entry, or after the others.
    fn upsert(&mut self, e: Entry) {
        let key = e.undo.key();
        match self.index.get(&key) {
            Some(&i) => self.entries[i] = Some(e),
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push(Some(e));
                self.live += 1;
            }
        }
    }

    fn take(&mut self, i: usize) -> Option<Entry> {
        let e = self.entries[i].take()?;
        self.index.remove(&e.undo.key());
        self.live -= 1;
        Some(e)
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
        if self.lab != lab {
            return Err(bad(format!("it is lab {:?}'s journal, not {lab:?}'s", self.lab)));
        }
        for e in self.entries() {
            e.undo.check(lab, root).map_err(|why| bad(format!("entry {}: {why}", e.seq)))?;
        }
        Ok(())
    }

    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).exists() || Self::log_path(dir).exists()
    }

    pub fn get(&self, key: &Key) -> Option<&Undo> {
        self.index.get(key).and_then(|&i| self.entries[i].as_ref()).map(|e| &e.undo)
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The entries, newest first (the order in which they are undone).
    pub fn newest_first(&self) -> impl Iterator<Item = &Undo> {
        self.entries().rev().map(|e| &e.undo)
    }

    /// What `journal.json` holds once the log is folded in.
    pub fn data(&self) -> JournalData {
        JournalData {
            version: VERSION,
            lab: self.lab.clone(),
            host: self.host.clone(),
            lvsctl: env!("CARGO_PKG_VERSION").to_string(),
            next_seq: self.next_seq,
            entries: self.entries().cloned().collect(),
        }
    }

    /// Records in memory (before the change is made) how to undo it; durable at the next
    /// `flush`, which must come before the change is made. When the object already has an entry,
    /// its original prior is kept and only what was applied is updated.
    pub fn stage(&mut self, undo: Undo) {
        let key = undo.key();
        let entry = match self.index.get(&key).and_then(|&i| self.entries[i].clone()) {
            Some(e) => Entry { seq: e.seq, at: now(), undo: e.undo.merge(undo) },
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                Entry { seq, at: now(), undo }
            }
        };
        self.upsert(entry.clone());
        if self.persist {
            self.staged.push(LogLine::Record { entry, next_seq: self.next_seq });
        }
    }

    /// Drops an object's entry (it was undone); durable at the next `flush`.
    pub fn unstage(&mut self, key: &Key) {
        let Some(&i) = self.index.get(key) else { return };
        if let Some(e) = self.take(i)
            && self.persist
        {
            self.staged.push(LogLine::Drop { seq: e.seq, next_seq: self.next_seq });
        }
    }

    /// Makes what was staged durable: one append to the log and one fsync. On failure none of it
    /// is written (a partial append is cut off again) and the caller makes none of the batch's
    /// changes; their records stay in memory only, as intents of changes not made (which undo
    /// finds as they were).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for l in &self.staged {
            serde_json::to_writer(&mut bytes, l).expect("journal lines serialize");
            bytes.push(b'\n');
        }
        let appended = self.append(&bytes);
        self.staged.clear();
        appended?;
        self.logged = true;
        Ok(())
    }

    /// One append to the log, made durable; cut off again when it fails.
    fn append(&self, bytes: &[u8]) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = Self::log_path(&self.dir);
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
        let start = f.metadata()?.len();
        if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_data()) {
            let _ = f.set_len(start);
            return Err(e);
        }
        if new {
            // The log's name must be durable too, or a crash could lose the file it is in.
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Records how to undo one change and makes it durable at once (`stage` + `flush`).
    pub fn record(&mut self, undo: Undo) -> io::Result<()> {
        self.stage(undo);
        self.flush()
    }

    /// Drops an entry and makes that durable at once.
    pub fn remove(&mut self, key: &Key) -> io::Result<()> {
        self.unstage(key);
        self.flush()
    }

    /// The end of a run: whatever is staged is flushed, and the log folded into `journal.json`
    /// (written whole, atomically), so the next run starts from one file.
    pub fn finish(&mut self) -> io::Result<()> {
        if !self.persist {
            return Ok(());
        }
        self.flush()?;
        if !self.logged {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec_pretty(&self.data()).expect("journal serializes");
        bytes.push(b'\n');
        crate::host::write_atomic(&Self::path(&self.dir), &bytes, 0o600)?;
        match std::fs::remove_file(Self::log_path(&self.dir)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.logged = false;
        Ok(())
    }
}

impl Recorded for Journal {
    fn recorded(&self, key: &Key) -> Option<&Undo> {
        self.get(key)
    }
}

impl Backups for Journal {
    /// Stores a copy of a file's prior content; returns its name in the backup directory. (A
    /// backup whose entry never reached the log is an orphan: its name is used again.)
    fn backup(&mut self, content: &[u8], mode: u32) -> io::Result<Backup> {
        let file = format!("{}", self.next_seq);
        self.next_seq += 1;
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
        self.entries.clear();
        self.index.clear();
        self.live = 0;
        self.staged.clear();
        if !self.persist {
            return Ok(());
        }
        let _ = std::fs::remove_dir_all(self.dir.join("backup"));
        for path in [Self::path(&self.dir), Self::log_path(&self.dir)] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
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
        assert_eq!(j.len(), 1);
        assert_eq!(j.entries().next().unwrap().undo, sysctl("2", "3"));
    }

    fn link(dev: &str) -> Undo {
        Undo::Link(link::Undo { dev: dev.into() })
    }

    #[test]
    fn a_batch_is_one_append_and_a_killed_run_replays_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        for i in 0..1000 {
            j.stage(link(&format!("d{i}")));
        }
        assert!(!Journal::exists(dir.path()), "nothing is written before the flush");
        j.flush().unwrap();
        let log = std::fs::read_to_string(Journal::log_path(dir.path())).unwrap();
        assert_eq!(log.lines().count(), 1000);
        j.unstage(&Key::Link("d7".into()));
        j.flush().unwrap();
        // Killed here: no journal.json yet, the log is the journal.
        drop(j);
        let j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        assert_eq!(j.len(), 999);
        assert!(j.get(&Key::Link("d7".into())).is_none());
        assert_eq!(j.newest_first().next(), Some(&link("d999")));
        let mut j = j;
        j.finish().unwrap();
        assert!(!Journal::log_path(dir.path()).exists(), "folded into journal.json");
        let again = Journal::open(dir.path(), "lab", "h", true).unwrap();
        assert_eq!(again.data(), j.data());
        assert_eq!(again.next_seq, 1001);
    }

    #[test]
    fn a_torn_last_line_is_an_append_that_never_finished_and_damage_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        j.record(link("a")).unwrap();
        j.record(link("b")).unwrap();
        let log = Journal::log_path(dir.path());
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::write(&log, format!("{text}{{\"record\":{{\"entry\":{{\"seq\":3")).unwrap();
        let j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        assert_eq!(j.len(), 2);
        std::fs::write(&log, format!("{{\"record\":\n{text}")).unwrap();
        let e = Journal::open(dir.path(), "lab", "h", true).err().unwrap();
        assert!(e.to_string().contains("line 1: unreadable journal log"), "{e}");
    }

    #[test]
    fn a_failed_append_leaves_the_log_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        j.record(link("a")).unwrap();
        let before = std::fs::read(Journal::log_path(dir.path())).unwrap();
        // The log cannot be opened for appending: a directory stands where it should be.
        let log = Journal::log_path(dir.path());
        std::fs::rename(&log, dir.path().join("saved")).unwrap();
        std::fs::create_dir(&log).unwrap();
        j.stage(link("b"));
        assert!(j.flush().is_err());
        std::fs::remove_dir(&log).unwrap();
        std::fs::rename(dir.path().join("saved"), &log).unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), before);
        j.flush().unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), before, "the failed batch is not tried again");
        j.stage(link("c"));
        j.flush().unwrap();
        let again = Journal::open(dir.path(), "lab", "h", true).unwrap();
        assert!(again.get(&Key::Link("a".into())).is_some() && again.get(&Key::Link("c".into())).is_some());
        assert!(again.get(&Key::Link("b".into())).is_none());
    }

    /// A journal the previous release wrote (journal.json alone) is read as it is, and a run that
    /// changes nothing leaves it byte for byte.
    #[test]
    fn a_journal_without_a_log_is_the_previous_releases_and_is_kept_as_it_is() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixtures.join("dr-lvs.journal.json"), Journal::path(dir.path())).unwrap();
        let text = std::fs::read_to_string(Journal::path(dir.path())).unwrap();
        let data: JournalData = serde_json::from_str(&text).unwrap();
        let mut j = Journal::open(dir.path(), &data.lab, &data.host, true).unwrap();
        assert_eq!(j.len(), data.entries.len());
        j.finish().unwrap();
        assert_eq!(std::fs::read_to_string(Journal::path(dir.path())).unwrap(), text);
        let last = data.entries.last().unwrap();
        j.unstage(&last.undo.key());
        j.finish().unwrap();
        let after: JournalData = serde_json::from_slice(&std::fs::read(Journal::path(dir.path())).unwrap()).unwrap();
        assert_eq!(after.entries, data.entries[..data.entries.len() - 1]);
    }

    #[test]
    fn dry_run_journal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("lab"), "lab", "h", false).unwrap();
        j.record(Undo::Link(link::Undo { dev: "eth0".into() })).unwrap();
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
        j.record(Undo::Link(link::Undo { dev: "eth0".into() })).unwrap();
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
            let j = Journal::from_data(&dir, data, false);
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
            Journal::from_data(Path::new("/var/lib/lvsctl/dr"), d, false)
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
            (Undo::Link(link::Undo { dev: "eth0; reboot".into() }), "link"),
        ] {
            let e = with(u.clone()).check("dr", Path::new("/")).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("entry 99") && e.contains("nothing is undone"), "{u:?}: {e}");
        }
        assert!(with(sysctl_key("net.ipv4.ip_forward")).check("dr", Path::new("/")).is_ok());
        let e = Journal::from_data(Path::new("/x"), good, false).check("nat", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("lab \"dr\"'s journal"), "{e}");
    }
}
