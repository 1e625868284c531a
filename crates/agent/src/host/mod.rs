//! The host effects the agent needs, one narrow trait per area (modules, sysctls, links, GUE
//! ports, addresses, routes, IPVS, nftables, files, processes) and `System` for all of them. Each area's
//! file holds its trait and the recording fake's side of it (`fake.rs` holds the fake's state),
//! which lets the apply and revert logic be tested without root by asserting on the exact
//! operations it performs; the real implementation talks to the kernel (`linux/`, one file per
//! area, each parsing what it reads).

use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

mod addresses;
#[cfg(any(test, feature = "fake-host"))]
pub mod fake;
mod files;
mod gue_ports;
mod ipvs_table;
mod links;
pub mod linux;
mod modules;
mod nftables;
mod processes;
mod routes;
mod sysctls;

pub use addresses::Addresses;
pub use files::Files;
pub use gue_ports::{FouPort, GuePorts};
pub use ipvs_table::IpvsTable;
pub use links::Links;
pub use modules::Modules;
pub use nftables::Nftables;
pub use processes::Processes;
pub use routes::Routes;
pub use sysctls::Sysctls;

use crate::ipvs::{DestConfig, DestKey, ServiceConfig, ServiceKey};

pub use crate::wire::host::*;

pub type Result<T> = std::result::Result<T, io::Error>;

/// True for the errors that mean "that object is not there" (netlink and file systems say it in
/// several ways): teardown treats them as done.
pub fn is_not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL | libc::ENXIO))
        || e.kind() == io::ErrorKind::NotFound
}

/// Every host effect: what the agent's kinds act through. The real host (`linux/`) implements
/// each area in its own file; the fake (`fake.rs`) records what was asked of it.
pub trait System:
    Modules + Sysctls + Links + GuePorts + Addresses + Routes + IpvsTable + Nftables + Files + Processes
{
}

impl<T: Modules + Sysctls + Links + GuePorts + Addresses + Routes + IpvsTable + Nftables + Files + Processes> System
    for T
{
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
