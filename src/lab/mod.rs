//! Labs on this machine: hosts as network namespaces with a real sshd each, and a qemu guest for
//! kernels without IPVS.

pub mod build;
pub mod faults;
pub mod impair;
pub mod initramfs;
pub mod links;
pub mod load;
pub mod netns;
pub mod responder;
pub mod vm;

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Where a lab keeps its state while it exists (lost at reboot, like the lab itself).
pub const RUN_DIR: &str = "/run/lvsctl/labs";

pub fn run_dir(lab: &str) -> PathBuf {
    Path::new(RUN_DIR).join(lab)
}

/// The namespace holding the lab's bridges and its end of the management network.
pub fn control_netns(lab: &str) -> PathBuf {
    PathBuf::from(format!("/run/netns/lvsctl-{lab}"))
}

/// How the controller reaches a lab built on this machine.
pub struct LabContext {
    pub ssh_config: PathBuf,
    pub netns: PathBuf,
}

/// The lab on this machine that `lvsctl lab create` built from this very inventory file, if any.
/// A lab of the same name built from another file is not this inventory's hosts: its commands
/// then reach their hosts directly, and are told why.
pub fn context(lab: &str, inventory: &Path) -> Option<LabContext> {
    let ssh_config = run_dir(lab).join("ssh_config");
    let netns = control_netns(lab);
    if !(ssh_config.exists() && netns.exists()) {
        return None;
    }
    let built_from = build::LabState::load(lab).map(|s| PathBuf::from(s.inventory))?;
    let this = std::fs::canonicalize(inventory).unwrap_or_else(|_| inventory.to_path_buf());
    if built_from != this {
        eprintln!(
            "lvsctl: a lab named {lab} runs on this machine, built from {}; {} is another inventory, so its hosts are reached directly, not through that lab",
            built_from.display(),
            this.display()
        );
        return None;
    }
    Some(LabContext { ssh_config, netns })
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter_netns(path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: setns on a valid namespace file descriptor.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
