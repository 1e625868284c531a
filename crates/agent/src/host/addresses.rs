//! Interface addresses of both families: listed, added, deleted.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/address.rs`.

use super::*;

/// Interface addresses, both families.
pub trait Addresses {
    fn addresses(&mut self) -> Result<Vec<AddrFact>>;
    fn add_address(&mut self, a: &AddrFact) -> Result<()>;
    fn del_address(&mut self, a: &AddrFact) -> Result<()>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl Addresses for Fake {
        fn addresses(&mut self) -> Result<Vec<AddrFact>> {
            Ok(self.state.addresses.clone())
        }

        fn add_address(&mut self, a: &AddrFact) -> Result<()> {
            if !self.state.links.contains_key(&a.dev) {
                return Err(io::Error::from_raw_os_error(libc::ENODEV));
            }
            if self.state.addresses.iter().any(|x| x.dev == a.dev && x.address == a.address) {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.op(format!("addr add {} dev {}", a.address, a.dev))?;
            self.state.addresses.push(a.clone());
            Ok(())
        }

        fn del_address(&mut self, a: &AddrFact) -> Result<()> {
            let before = self.state.addresses.len();
            self.op(format!("addr del {} dev {}", a.address, a.dev))?;
            self.state.addresses.retain(|x| !(x.dev == a.dev && x.address == a.address));
            if self.state.addresses.len() == before {
                Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))
            } else {
                Ok(())
            }
        }
    }
}
