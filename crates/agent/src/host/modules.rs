//! Kernel modules: listed, loaded (with what a load brings in), unloaded.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/module.rs`.

use super::*;

/// Kernel modules.
pub trait Modules {
    /// Names of the loaded modules (as /proc/modules writes them: underscores).
    fn loaded_modules(&self) -> Result<Vec<String>>;
    fn load_module(&mut self, name: &str) -> Result<()>;
    /// Unloads a module that nothing uses; EBUSY/EAGAIN when it is in use.
    fn unload_module(&mut self, name: &str) -> Result<()>;
    /// How many users a module has (`/sys/module/NAME/refcnt`).
    fn module_refcount(&self, name: &str) -> Result<Option<u32>>;
    /// Whether `load_module(name)` can succeed: loaded, built in, or installed for the running
    /// kernel (asked before anything is changed).
    fn module_available(&self, name: &str) -> Result<bool>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    /// Which modules a load brings in, and which module each one needs.
    fn deps(m: &str) -> Vec<&'static str> {
        match m {
            "ipip" => vec!["tunnel4", "ip_tunnel"],
            "ip_vs" => vec!["nf_conntrack"],
            s if s.starts_with("ip_vs_") => vec!["ip_vs", "nf_conntrack"],
            _ => vec![],
        }
    }

    impl Modules for Fake {
        fn loaded_modules(&self) -> Result<Vec<String>> {
            Ok(self.state.modules.iter().cloned().collect())
        }

        fn load_module(&mut self, name: &str) -> Result<()> {
            self.op(format!("modprobe {name}"))?;
            for d in deps(name) {
                if d == "ip_vs" && !self.state.modules.contains("ip_vs") {
                    self.state.ipvs = Some(vec![]);
                }
                self.state.modules.insert(d.to_string());
            }
            self.state.modules.insert(name.to_string());
            if (name == "ip_vs" || deps(name).contains(&"ip_vs")) && self.state.ipvs.is_none() {
                self.state.ipvs = Some(vec![]);
            }
            if self.state.ipvs.is_some() {
                // The IPVS sysctls exist once ip_vs is loaded.
                for k in ["expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode"] {
                    self.state.sysctls.entry(format!("net.ipv4.vs.{k}")).or_insert_with(|| "0".into());
                }
            }
            if let Some(dev) = fallback_device(name)
                && !self.state.links.contains_key(dev)
            {
                self.state.links.insert(dev.into(), false);
                for (k, v) in [("arp_ignore", "0"), ("arp_announce", "0"), ("rp_filter", "2")] {
                    self.state.sysctls.insert(format!("net.ipv4.conf.{dev}.{k}"), v.into());
                }
            }
            Ok(())
        }

        fn unload_module(&mut self, name: &str) -> Result<()> {
            if !self.state.modules.contains(name) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            let used = self.state.modules.iter().any(|m| deps(m).contains(&name))
                || name
                    .strip_prefix("ip_vs_")
                    .is_some_and(|sched| self.state.ipvs.iter().flatten().any(|s| s.entry.config.scheduler == sched));
            if used {
                return Err(io::Error::from_raw_os_error(libc::EWOULDBLOCK));
            }
            self.op(format!("rmmod {name}"))?;
            self.state.modules.remove(name);
            if name == "ip_vs" {
                self.state.ipvs = None;
                self.state.sysctls.retain(|k, _| !k.starts_with("net.ipv4.vs."));
            }
            if let Some(dev) = fallback_device(name) {
                self.state.links.remove(dev);
                self.state.sysctls.retain(|k, _| !k.contains(&format!(".{dev}.")));
                self.state.addresses.retain(|a| a.dev != dev);
            }
            if name == "fou" {
                // The module's exit closes every port.
                self.state.fou_ports.clear();
            }
            Ok(())
        }

        fn module_refcount(&self, name: &str) -> Result<Option<u32>> {
            Ok(self.state.modules.contains(name).then_some(0))
        }

        fn module_available(&self, name: &str) -> Result<bool> {
            Ok(self.state.modules.contains(name) || !self.state.missing_modules.contains(name))
        }
    }

    /// The tunnel device a module makes when it loads (as the kernel's fallback devices).
    fn fallback_device(module: &str) -> Option<&'static str> {
        match module {
            "ipip" => Some("tunl0"),
            "ip_gre" => Some("gre0"),
            _ => None,
        }
    }
}
