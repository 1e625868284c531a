//! Sysctls (`/proc/sys`), read and written by sysctl(8) name.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/sysctl.rs`.

use super::*;

/// Sysctls (`/proc/sys`).
pub trait Sysctls {
    /// The value of a sysctl (sysctl(8) notation), None when the key does not exist.
    fn read_sysctl(&self, key: &str) -> Result<Option<String>>;
    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<()>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl Sysctls for Fake {
        fn read_sysctl(&self, key: &str) -> Result<Option<String>> {
            Ok(self.state.sysctls.get(key).cloned())
        }

        fn write_sysctl(&mut self, key: &str, value: &str) -> Result<()> {
            if !self.state.sysctls.contains_key(key) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            self.op(format!("sysctl {key}={value}"))?;
            self.state.sysctls.insert(key.into(), value.into());
            Ok(())
        }
    }
}
