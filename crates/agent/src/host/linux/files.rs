//! Plain files and directories: atomic writes with exact modes.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::Linux;
use crate::host::{FileFact, Files, Result};

impl Files for Linux {
    fn read_file(&self, path: &str) -> Result<Option<FileFact>> {
        match std::fs::read(path) {
            Ok(content) => {
                let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
                Ok(Some(FileFact { content, mode }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        crate::host::write_atomic(Path::new(path), content, mode)
    }

    fn remove_file(&mut self, path: &str) -> Result<()> {
        std::fs::remove_file(path)
    }

    fn dir_exists(&self, path: &str) -> bool {
        Path::new(path).is_dir()
    }

    fn make_dir(&mut self, path: &str) -> Result<()> {
        std::fs::create_dir(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
    }

    fn remove_dir_if_empty(&mut self, path: &str) -> Result<bool> {
        match std::fs::remove_dir(path) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn modified(&self, path: &str) -> Result<Option<std::time::SystemTime>> {
        match std::fs::metadata(path) {
            Ok(m) => m.modified().map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
