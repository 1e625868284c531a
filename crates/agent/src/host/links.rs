//! Network interfaces: whether each exists and is up; up and down.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/link.rs`.

use super::*;

/// Network interfaces.
pub trait Links {
    /// Whether the link exists and is administratively up.
    fn link_up(&mut self, dev: &str) -> Result<Option<bool>>;
    /// Every link: (name, administratively up).
    fn links(&mut self) -> Result<Vec<(String, bool)>>;
    fn set_link(&mut self, dev: &str, up: bool) -> Result<()>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl Links for Fake {
        fn link_up(&mut self, dev: &str) -> Result<Option<bool>> {
            Ok(self.state.links.get(dev).copied())
        }

        fn links(&mut self) -> Result<Vec<(String, bool)>> {
            Ok(self.state.links.iter().map(|(k, v)| (k.clone(), *v)).collect())
        }

        fn set_link(&mut self, dev: &str, up: bool) -> Result<()> {
            if !self.state.links.contains_key(dev) {
                return Err(io::Error::from_raw_os_error(libc::ENODEV));
            }
            self.op(format!("link {dev} {}", if up { "up" } else { "down" }))?;
            self.state.links.insert(dev.into(), up);
            if !up {
                // The kernel flushes a link's IPv6 addresses when it goes down (keep_addr_on_down 0).
                self.state.addresses.retain(|a| a.dev != dev || a.address.addr().is_ipv4());
            }
            Ok(())
        }
    }
}
