//! Files and directories: read, written atomically with their mode, removed.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/files.rs`.

use super::*;

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

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl Files for Fake {
        fn read_file(&self, path: &str) -> Result<Option<FileFact>> {
            Ok(self.state.files.get(path).cloned())
        }

        fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()> {
            let parent = std::path::Path::new(path).parent().expect("absolute").to_string_lossy().into_owned();
            if !self.state.dirs.contains(&parent) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            self.op(format!("write {path}"))?;
            self.state.files.insert(path.into(), FileFact { content: content.to_vec(), mode });
            Ok(())
        }

        fn remove_file(&mut self, path: &str) -> Result<()> {
            self.op(format!("rm {path}"))?;
            self.state.files.remove(path).map(|_| ()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
        }

        fn dir_exists(&self, path: &str) -> bool {
            self.state.dirs.contains(path)
        }

        fn make_dir(&mut self, path: &str) -> Result<()> {
            self.op(format!("mkdir {path}"))?;
            self.state.dirs.insert(path.into());
            Ok(())
        }

        fn remove_dir_if_empty(&mut self, path: &str) -> Result<bool> {
            let prefix = format!("{path}/");
            if self.state.files.keys().chain(self.state.dirs.iter()).any(|p| p.starts_with(&prefix)) {
                return Ok(false);
            }
            self.op(format!("rmdir {path}"))?;
            self.state.dirs.remove(path);
            Ok(true)
        }

        fn modified(&self, _path: &str) -> Result<Option<std::time::SystemTime>> {
            Ok(None)
        }
    }
}
