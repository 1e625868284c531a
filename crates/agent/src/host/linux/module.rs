//! Kernel modules: modprobe to load (it resolves dependencies), delete_module(2) to unload.

use std::ffi::CString;
use std::io;
use std::process::Command;

use super::Linux;
use crate::host::{Modules, Result};

fn valid_module_name(name: &str) -> io::Result<()> {
    if !name.is_empty() && name.len() <= 56 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid module name {name:?}")))
    }
}

impl Modules for Linux {
    fn loaded_modules(&self) -> Result<Vec<String>> {
        let s = match std::fs::read_to_string("/proc/modules") {
            Ok(s) => s,
            // A kernel without loadable-module support has no /proc/modules: everything is built in.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        Ok(s.lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect())
    }

    fn load_module(&mut self, name: &str) -> Result<()> {
        valid_module_name(name)?;
        let out = Command::new("modprobe")
            .arg("--")
            .arg(name)
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run modprobe (install kmod): {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("modprobe {name}: {}", String::from_utf8_lossy(&out.stderr).trim())))
        }
    }

    fn unload_module(&mut self, name: &str) -> Result<()> {
        valid_module_name(name)?;
        let c = CString::new(name).expect("validated");
        // SAFETY: delete_module(2) with a valid NUL-terminated name; O_NONBLOCK fails with
        // EWOULDBLOCK instead of waiting when the module is in use.
        let r = unsafe { libc::syscall(libc::SYS_delete_module, c.as_ptr(), libc::O_NONBLOCK) };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// Loaded (or built in with parameters: /sys/module/NAME), or resolved by `modprobe -n` the
    /// way a load would be (built in, or in the running kernel's modules.dep; nothing changes).
    /// A kernel without a modules.dep cannot tell: the load itself will.
    fn module_available(&self, name: &str) -> Result<bool> {
        valid_module_name(name)?;
        if std::path::Path::new(&format!("/sys/module/{}", name.replace('-', "_"))).exists() {
            return Ok(true);
        }
        let out = Command::new("modprobe")
            .args(["-n", "-q", "--"])
            .arg(name)
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run modprobe (install kmod): {e}")))?;
        if out.status.success() {
            return Ok(true);
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
        Ok(!std::path::Path::new(&format!("/lib/modules/{}/modules.dep", release.trim())).exists())
    }

    fn module_refcount(&self, name: &str) -> Result<Option<u32>> {
        match std::fs::read_to_string(format!("/sys/module/{name}/refcnt")) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
