//! GUE receive ports (fou): which are open; opening and closing one.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/gue.rs`.

use super::*;
pub use crate::fou::FouPort;

/// The fou ports of the host's network namespace.
pub trait GuePorts {
    /// Every open fou port (none when the module is not loaded; reading never loads it).
    fn fou_ports(&mut self) -> Result<Vec<FouPort>>;
    /// Opens a GUE port (`ip fou add port PORT gue [-6]`).
    fn add_gue_port(&mut self, port: u16, ipv6: bool) -> Result<()>;
    /// Closes a fou port (`ip fou del port PORT [-6]`).
    fn del_fou_port(&mut self, port: u16, ipv6: bool) -> Result<()>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl GuePorts for Fake {
        fn fou_ports(&mut self) -> Result<Vec<FouPort>> {
            Ok(self.state.fou_ports.iter().copied().collect())
        }

        fn add_gue_port(&mut self, port: u16, ipv6: bool) -> Result<()> {
            if !self.state.modules.contains("fou") {
                return Err(io::Error::new(io::ErrorKind::NotFound, "the kernel has no fou generic netlink family"));
            }
            if self.state.fou_ports.iter().any(|p| p.port == port && p.ipv6 == ipv6) {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.op(format!("fou add port {port} gue{}", if ipv6 { " -6" } else { "" }))?;
            self.state.fou_ports.insert(FouPort { port, ipv6, gue: true });
            Ok(())
        }

        fn del_fou_port(&mut self, port: u16, ipv6: bool) -> Result<()> {
            if !self.state.modules.contains("fou") {
                // As the kernel answers a request to the fou family that went with its module
                // between the request's lookup and its delivery.
                return Err(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT));
            }
            let Some(p) = self.state.fou_ports.iter().find(|p| p.port == port && p.ipv6 == ipv6).copied() else {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            };
            self.op(format!("fou del port {port}{}", if ipv6 { " -6" } else { "" }))?;
            self.state.fou_ports.remove(&p);
            Ok(())
        }
    }
}
