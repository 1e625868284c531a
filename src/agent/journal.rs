//! The journal: what lvsctl changed on this host and what was there before, written *before* each
//! change (write-ahead), so a dropped session or a killed controller or agent never leaves a change
//! that `down` cannot undo. One entry per object; the prior value is the one found the first time
//! lvsctl changed the object, so repeated `up`s never overwrite it.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::system::{AddrFact, RouteFact};
use crate::ipvs::{DestConfig, DestKey, ServiceConfig, ServiceKey};

pub const VERSION: u32 = 1;

/// A copy of a file's prior content, kept next to the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// File name inside the journal's backup directory.
    pub file: String,
    pub mode: u32,
}

/// How to undo one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Undo {
    /// lvsctl loaded the module; `loaded` lists every module the load brought in (dependencies
    /// too), filled in once the load finished.
    Module {
        name: String,
        loaded: Option<Vec<String>>,
    },
    Sysctl {
        key: String,
        prior: String,
        applied: String,
    },
    /// lvsctl brought the link up; it was down.
    LinkUp {
        dev: String,
    },
    /// lvsctl added the address; it was absent.
    Address {
        address: AddrFact,
    },
    /// lvsctl added the route (no prior) or replaced the prior one.
    Route {
        applied: RouteFact,
        prior: Option<RouteFact>,
    },
    Service {
        key: ServiceKey,
        prior: Option<ServiceConfig>,
        applied: ServiceConfig,
    },
    Dest {
        service: ServiceKey,
        key: DestKey,
        prior: Option<DestConfig>,
        applied: DestConfig,
    },
    File {
        path: String,
        prior: Option<Backup>,
        applied_sha256: String,
    },
    /// lvsctl created the directory; it is removed when empty.
    Dir {
        path: String,
    },
    /// lvsctl enabled the systemd unit.
    Unit {
        name: String,
    },
}

fn addr_id(dev: &str, a: Ipv4Net) -> String {
    format!("address:{dev}:{a}")
}

impl Undo {
    /// The identity of the object: at most one entry per object.
    pub fn id(&self) -> String {
        match self {
            Undo::Module { name, .. } => format!("module:{name}"),
            Undo::Sysctl { key, .. } => format!("sysctl:{key}"),
            Undo::LinkUp { dev } => format!("link:{dev}"),
            Undo::Address { address } => addr_id(&address.dev, address.address),
            Undo::Route { applied, .. } => route_id(applied.destination),
            Undo::Service { key, .. } => service_id(key),
            Undo::Dest { service, key, .. } => dest_id(service, key),
            Undo::File { path, .. } => format!("file:{path}"),
            Undo::Dir { path } => format!("dir:{path}"),
            Undo::Unit { name } => format!("unit:{name}"),
        }
    }

    /// Runtime state is what a reboot loses and `systemctl stop` undoes; the rest is on disk.
    pub fn is_runtime(&self) -> bool {
        !matches!(self, Undo::File { .. } | Undo::Dir { .. } | Undo::Unit { .. })
    }

    pub fn object(&self) -> String {
        match self {
            Undo::Module { name, .. } => format!("module {name}"),
            Undo::Sysctl { key, .. } => format!("sysctl {key}"),
            Undo::LinkUp { dev } => format!("link {dev}"),
            Undo::Address { address } => format!("address {} dev {}", address.address, address.dev),
            Undo::Route { applied, .. } => format!("route {}", route_dst(applied.destination)),
            Undo::Service { key, .. } => format!("ipvs service {key}"),
            Undo::Dest { service, key, .. } => format!("ipvs dest {key} of {service}"),
            Undo::File { path, .. } => format!("file {path}"),
            Undo::Dir { path } => format!("dir {path}"),
            Undo::Unit { name } => format!("unit {name}"),
        }
    }
}

pub fn route_dst(d: Ipv4Net) -> String {
    if d.prefix_len() == 0 { "default".into() } else { d.to_string() }
}
pub fn address_id(dev: &str, a: Ipv4Net) -> String {
    addr_id(dev, a)
}
pub fn route_id(d: Ipv4Net) -> String {
    format!("route:{d}")
}
pub fn service_id(k: &ServiceKey) -> String {
    format!("ipvs-service:{}:{}:{}", k.protocol, k.addr, k.port)
}
pub fn dest_id(s: &ServiceKey, k: &DestKey) -> String {
    format!("ipvs-dest:{}:{}:{}:{}:{}", s.protocol, s.addr, s.port, k.addr, k.port)
}

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

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.lvsctl-tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        // The mode given to open() is filtered by the umask; set it exactly.
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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

    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).exists()
    }

    pub fn get(&self, id: &str) -> Option<&Undo> {
        self.data.entries.iter().find(|e| e.undo.id() == id).map(|e| &e.undo)
    }

    fn save(&mut self) -> io::Result<()> {
        if !self.persist {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        self.data.lvsctl = env!("CARGO_PKG_VERSION").to_string();
        let mut bytes = serde_json::to_vec_pretty(&self.data).expect("journal serializes");
        bytes.push(b'\n');
        write_atomic(&Self::path(&self.dir), &bytes, 0o600)
    }

    /// Records (before the change is made) how to undo it. When the object already has an
    /// entry, its original prior is kept and only what was applied is updated.
    pub fn record(&mut self, undo: Undo) -> io::Result<()> {
        let id = undo.id();
        if let Some(e) = self.data.entries.iter_mut().find(|e| e.undo.id() == id) {
            e.undo = merge(&e.undo, undo);
            e.at = now();
        } else {
            let seq = self.data.next_seq;
            self.data.next_seq += 1;
            self.data.entries.push(Entry { seq, at: now(), undo });
        }
        self.save()
    }

    pub fn remove(&mut self, id: &str) -> io::Result<()> {
        self.data.entries.retain(|e| e.undo.id() != id);
        self.save()
    }

    /// Stores a copy of a file's prior content; returns its name in the backup directory.
    pub fn backup(&mut self, content: &[u8], mode: u32) -> io::Result<Backup> {
        let file = format!("{}", self.data.next_seq);
        self.data.next_seq += 1;
        if self.persist {
            let dir = self.dir.join("backup");
            std::fs::create_dir_all(&dir)?;
            write_atomic(&dir.join(&file), content, 0o600)?;
        }
        Ok(Backup { file, mode })
    }

    pub fn read_backup(&self, b: &Backup) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join("backup").join(&b.file))
    }

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

/// Keeps the first prior of an object when it is changed again.
fn merge(old: &Undo, new: Undo) -> Undo {
    match (old, new) {
        (Undo::Sysctl { prior, .. }, Undo::Sysctl { key, applied, .. }) => {
            Undo::Sysctl { key, prior: prior.clone(), applied }
        }
        (Undo::Route { prior, .. }, Undo::Route { applied, .. }) => Undo::Route { applied, prior: prior.clone() },
        (Undo::Service { prior, .. }, Undo::Service { key, applied, .. }) => {
            Undo::Service { key, prior: prior.clone(), applied }
        }
        (Undo::Dest { prior, .. }, Undo::Dest { service, key, applied, .. }) => {
            Undo::Dest { service, key, prior: prior.clone(), applied }
        }
        (Undo::File { prior, .. }, Undo::File { path, applied_sha256, .. }) => {
            Undo::File { path, prior: prior.clone(), applied_sha256 }
        }
        (Undo::Module { loaded: Some(l), .. }, Undo::Module { name, loaded: None }) => {
            Undo::Module { name, loaded: Some(l.clone()) }
        }
        (_, new) => new,
    }
}

/// An exclusive lock for one lab on this host, so that `up`, `down` and the boot unit never
/// interleave. Held until dropped.
pub struct LabLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

impl LabLock {
    pub fn acquire(path: &Path) -> io::Result<LabLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
        // SAFETY: flock on a valid open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(LabLock { _file: file, path: path.to_path_buf() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_prior_survives_later_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        j.record(Undo::Sysctl { key: "k".into(), prior: "2".into(), applied: "1".into() }).unwrap();
        j.record(Undo::Sysctl { key: "k".into(), prior: "1".into(), applied: "3".into() }).unwrap();
        let j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        assert_eq!(j.data.entries.len(), 1);
        assert_eq!(j.data.entries[0].undo, Undo::Sysctl { key: "k".into(), prior: "2".into(), applied: "3".into() });
    }

    #[test]
    fn dry_run_journal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("lab"), "lab", "h", false).unwrap();
        j.record(Undo::LinkUp { dev: "eth0".into() }).unwrap();
        assert!(!dir.path().join("lab").exists());
    }

    #[test]
    fn module_load_results_are_kept_when_recorded_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "lab", "h", true).unwrap();
        j.record(Undo::Module { name: "ipip".into(), loaded: Some(vec!["ipip".into(), "tunnel4".into()]) }).unwrap();
        j.record(Undo::Module { name: "ipip".into(), loaded: None }).unwrap();
        assert_eq!(
            j.get("module:ipip"),
            Some(&Undo::Module { name: "ipip".into(), loaded: Some(vec!["ipip".into(), "tunnel4".into()]) })
        );
    }

    #[test]
    fn delete_removes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        let mut j = Journal::open(&lab, "lab", "h", true).unwrap();
        j.backup(b"old", 0o644).unwrap();
        j.record(Undo::LinkUp { dev: "eth0".into() }).unwrap();
        assert!(Journal::exists(&lab));
        j.delete().unwrap();
        assert!(!lab.exists());
    }
}
