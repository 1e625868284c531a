//! The host effects the agent needs, one narrow trait per area (modules, sysctls, links,
//! addresses, routes, IPVS, nftables, files, processes) and `System` for all of them: the real
//! implementation talks to the kernel (`linux/`, one file per area, each parsing what it reads),
//! the recording fake (`fake.rs`) lets the apply and revert logic be tested without root by
//! asserting on the exact operations it performs.

use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[cfg(test)]
pub mod fake;
pub mod linux;

use crate::ipvs::{DestConfig, DestKey, ServiceConfig, ServiceKey};

pub use crate::wire::host::*;

pub type Result<T> = std::result::Result<T, io::Error>;

/// True for the errors that mean "that object is not there" (netlink and file systems say it in
/// several ways): teardown treats them as done.
pub fn is_not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL | libc::ENXIO))
        || e.kind() == io::ErrorKind::NotFound
}

/// Kernel modules.
pub trait Modules {
    /// Names of the loaded modules (as /proc/modules writes them: underscores).
    fn loaded_modules(&self) -> Result<Vec<String>>;
    fn load_module(&mut self, name: &str) -> Result<()>;
    /// Unloads a module that nothing uses; EBUSY/EAGAIN when it is in use.
    fn unload_module(&mut self, name: &str) -> Result<()>;
    /// How many users a module has (`/sys/module/NAME/refcnt`).
    fn module_refcount(&self, name: &str) -> Result<Option<u32>>;
}

/// Sysctls (`/proc/sys`).
pub trait Sysctls {
    /// The value of a sysctl (sysctl(8) notation), None when the key does not exist.
    fn read_sysctl(&self, key: &str) -> Result<Option<String>>;
    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<()>;
}

/// Network interfaces.
pub trait Links {
    /// Whether the link exists and is administratively up.
    fn link_up(&mut self, dev: &str) -> Result<Option<bool>>;
    /// Every link: (name, administratively up).
    fn links(&mut self) -> Result<Vec<(String, bool)>>;
    fn set_link(&mut self, dev: &str, up: bool) -> Result<()>;
}

/// Interface addresses, both families.
pub trait Addresses {
    fn addresses(&mut self) -> Result<Vec<AddrFact>>;
    fn add_address(&mut self, a: &AddrFact) -> Result<()>;
    fn del_address(&mut self, a: &AddrFact) -> Result<()>;
}

/// The main routing table, both families.
pub trait Routes {
    /// Unicast routes of the main table, both families.
    fn routes(&mut self) -> Result<Vec<RouteFact>>;
    /// Adds (or with `replace`, replaces the route with the same destination and metric).
    fn add_route(&mut self, r: &RouteFact, replace: bool) -> Result<()>;
    fn del_route(&mut self, r: &RouteFact) -> Result<()>;
    /// The route the kernel would use to reach `dst`.
    fn route_get(&mut self, dst: IpAddr) -> Result<Lookup>;
}

/// The IPVS table and its sync daemons (generic netlink).
pub trait IpvsTable {
    /// Whether IPVS is loaded (reading it must not load it).
    fn ipvs_loaded(&self) -> bool;
    fn ipvs_table(&mut self) -> Result<Vec<IpvsService>>;
    fn ipvs_new_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()>;
    fn ipvs_set_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()>;
    fn ipvs_del_service(&mut self, k: &ServiceKey) -> Result<()>;
    fn ipvs_new_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()>;
    fn ipvs_set_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()>;
    fn ipvs_del_dest(&mut self, s: &ServiceKey, k: &DestKey) -> Result<()>;
    /// Makes each change in order; one result per change. Linux sends them in batches.
    fn ipvs_apply(&mut self, ops: &[crate::ipvs::TableOp]) -> Vec<Result<()>> {
        use crate::ipvs::TableOp;
        ops.iter()
            .map(|op| match op {
                TableOp::NewService(k, c) => self.ipvs_new_service(k, c),
                TableOp::SetService(k, c) => self.ipvs_set_service(k, c),
                TableOp::DelService(k) => self.ipvs_del_service(k),
                TableOp::NewDest(s, k, c) => self.ipvs_new_dest(s, k, c),
                TableOp::SetDest(s, k, c) => self.ipvs_set_dest(s, k, c),
                TableOp::DelDest(s, k) => self.ipvs_del_dest(s, k),
            })
            .collect()
    }
    /// The connection sync daemons that run (IPVS loaded).
    fn ipvs_daemons(&mut self) -> Result<Vec<crate::ipvs::SyncDaemon>>;
}

/// lvsctl's own nftables tables.
pub trait Nftables {
    /// The objects of nftables table `inet NAME` as `nft -j list table` prints them, without
    /// handles; None when there is no such table.
    fn nft_table(&mut self, name: &str) -> Result<Option<NftObjects>>;
    /// Feeds one JSON transaction to `nft -j -f -` (all of it, or nothing, is applied).
    fn nft_apply(&mut self, commands: &serde_json::Value) -> Result<()>;
}

/// Files and directories.
pub trait Files {
    fn read_file(&self, path: &str) -> Result<Option<FileFact>>;
    /// Writes atomically (temporary file, fsync, rename) with the given mode.
    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()>;
    fn remove_file(&mut self, path: &str) -> Result<()>;
    fn dir_exists(&self, path: &str) -> bool;
    fn make_dir(&mut self, path: &str) -> Result<()>;
    /// Removes a directory if it is empty; Ok(false) when it is not.
    fn remove_dir_if_empty(&mut self, path: &str) -> Result<bool>;
    /// When a file was last written, None when it does not exist.
    fn modified(&self, path: &str) -> Result<Option<std::time::SystemTime>>;
}

/// Processes, programs and systemd.
pub trait Processes {
    /// Whether systemd manages this host (it is PID 1).
    fn systemd_running(&self) -> bool;
    fn systemctl(&mut self, args: &[&str]) -> Result<String>;
    /// The process with this pid, if one runs (a zombie does not count).
    fn process(&self, pid: u32) -> Result<Option<ProcFact>>;
    /// Now, in the clock of `ProcFact::start_time`.
    fn now_ticks(&self) -> Result<u64>;
    /// The absolute path of an installed program (an executable regular file in the system's
    /// sbin and bin directories), None when it is not installed.
    fn find_program(&self, name: &str) -> Option<String>;
    /// Starts `argv` as a daemon of its own (new session, stdin from /dev/null, output appended
    /// to `log`), checks that it is still running a moment later, and returns it.
    fn spawn_daemon(&mut self, argv: &[&str], log: &str) -> Result<ProcFact>;
    fn signal(&mut self, pid: u32, signal: i32) -> Result<()>;
    /// Has the program that reads a file accept `content` before the file is replaced.
    fn check_config(&mut self, check: crate::plan::FileCheck, content: &[u8]) -> Result<()>;
    /// Runs an installed program (an absolute path) that only reports; its standard output.
    fn output(&mut self, argv: &[&str]) -> Result<String>;
}

/// Every host effect: what the agent's kinds act through. The real host (`linux/`) implements
/// each area in its own file; the fake (`fake.rs`) records what was asked of it.
pub trait System: Modules + Sysctls + Links + Addresses + Routes + IpvsTable + Nftables + Files + Processes {}

impl<T: Modules + Sysctls + Links + Addresses + Routes + IpvsTable + Nftables + Files + Processes> System for T {}

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
