//! Sysctls: the sysctl crate, or /proc/sys directly where it cannot name the key.

use std::io;
use std::path::Path;

use sysctl::Sysctl;

use super::Linux;
use crate::host::{Result, Sysctls};

/// /proc/sys path of a sysctl(8) key: dots separate components, '/' stands for a dot inside one.
pub fn sysctl_path(key: &str) -> String {
    let parts: Vec<String> = key.split('.').map(|p| p.replace('/', ".")).collect();
    format!("/proc/sys/{}", parts.join("/"))
}

impl Sysctls for Linux {
    fn read_sysctl(&self, key: &str) -> Result<Option<String>> {
        let path = sysctl_path(key);
        if !Path::new(&path).exists() {
            return Ok(None);
        }
        if key.contains('/') {
            // The sysctl crate maps every '.' to '/', so it cannot name `eth0.100`.
            return std::fs::read_to_string(&path).map(|s| Some(s.trim().to_string()));
        }
        // A device's sysctls vanish with it, also between the check above and the read.
        match sysctl::Ctl::new(key).and_then(|ctl| ctl.value_string()) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(sysctl::SysctlError::NotFound(_)) => Ok(None),
            Err(e) => Err(sysctl_error(key, e)),
        }
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<()> {
        if key.contains('/') {
            return std::fs::write(sysctl_path(key), value);
        }
        sysctl::Ctl::new(key).and_then(|ctl| ctl.set_value_string(value)).map(|_| ()).map_err(|e| sysctl_error(key, e))
    }
}

/// Keeps "no such sysctl" recognisable as not-found: a device's sysctls disappear with the device
/// (another host of a namespace lab may unload the module that made it), and undo treats that as done.
fn sysctl_error(key: &str, e: sysctl::SysctlError) -> io::Error {
    let kind = match &e {
        sysctl::SysctlError::NotFound(_) => io::ErrorKind::NotFound,
        sysctl::SysctlError::IoError(io) => io.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("sysctl {key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_paths_keep_dots_inside_interface_names() {
        assert_eq!(sysctl_path("net.ipv4.conf.eth0/100.rp_filter"), "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(sysctl_path("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
    }

    #[test]
    fn a_sysctl_that_vanished_with_its_device_reads_as_not_found() {
        let gone = sysctl_error("net.ipv4.conf.tunl0.rp_filter", sysctl::SysctlError::NotFound("x".into()));
        assert!(crate::host::is_not_found(&gone), "{gone}");
        let denied = sysctl_error("k", sysctl::SysctlError::IoError(io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(!crate::host::is_not_found(&denied));
    }
}
