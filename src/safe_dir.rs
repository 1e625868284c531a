//! Writing a tree of files below a directory the user named, without trusting what is already
//! in it: no symlink below it is followed (each component is opened with O_NOFOLLOW relative to
//! its parent), each file is written to a private temporary file (O_EXCL, 0600), given its mode,
//! then renamed over the old name, so an existing file's permissions or a planted link never
//! decide where the content goes or who can read it. A group- or world-writable directory that
//! belongs to someone else is refused: whoever can write it could swap files under us.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

pub struct SafeDir {
    fd: OwnedFd,
}

fn cstr(s: &std::ffi::OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a path"))
}

fn check_owner(meta: &std::fs::Metadata, what: &Path) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.mode() & 0o022 != 0 && meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by others and belongs to uid {}: choose a directory of your own",
                what.display(),
                meta.uid()
            ),
        ));
    }
    Ok(())
}

impl SafeDir {
    /// Opens (creating it if needed) the directory the user named.
    pub fn open(dir: &Path) -> io::Result<SafeDir> {
        match std::fs::create_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let c = cstr(dir.as_os_str())?;
        // SAFETY: a valid NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned here.
        let d = SafeDir { fd: unsafe { OwnedFd::from_raw_fd(fd) } };
        check_owner(&d.file()?.metadata()?, dir)?;
        Ok(d)
    }

    fn file(&self) -> io::Result<File> {
        Ok(File::from(self.fd.try_clone()?))
    }

    /// The subdirectory `name` (one component), created 0755 if missing, never through a symlink.
    fn child(&self, name: &std::ffi::OsStr, shown: &Path) -> io::Result<SafeDir> {
        let c = cstr(name)?;
        // SAFETY: valid descriptor and path; the results are checked.
        unsafe {
            if libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o755) != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
            }
            let fd = libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            );
            if fd < 0 {
                let e = io::Error::last_os_error();
                return Err(match e.raw_os_error() {
                    Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{} is not a plain directory (a symlink?): lvsctl does not write through it",
                            shown.display()
                        ),
                    ),
                    _ => e,
                });
            }
            let d = SafeDir { fd: OwnedFd::from_raw_fd(fd) };
            check_owner(&d.file()?.metadata()?, shown)?;
            Ok(d)
        }
    }

    /// Writes `content` at `rel` (relative, no `..`) with `mode`, atomically, as described above.
    pub fn write(&self, rel: &Path, content: &[u8], mode: u32, shown: &Path) -> io::Result<()> {
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(p) => parts.push(p),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{}: not a plain relative path", rel.display()),
                    ));
                }
            }
        }
        let (name, dirs) =
            parts.split_last().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty path"))?;
        let mut here: Option<SafeDir> = None;
        let mut walked = shown.to_path_buf();
        for d in dirs {
            walked.push(d);
            let next = here.as_ref().unwrap_or(self).child(d, &walked)?;
            here = Some(next);
        }
        let dir = here.as_ref().unwrap_or(self);
        let tmp = cstr(std::ffi::OsStr::new(&format!(".{}.lvsctl-{}", name.to_string_lossy(), std::process::id())))?;
        let target = cstr(name)?;
        // SAFETY: valid descriptor and paths; results checked; the fd is owned by the File.
        let mut f = unsafe {
            let fd = libc::openat(
                dir.fd.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            File::from_raw_fd(fd)
        };
        let done = (|| {
            f.write_all(content)?;
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            f.sync_all()?;
            // SAFETY: valid descriptors and paths.
            if unsafe { libc::renameat(dir.fd.as_raw_fd(), tmp.as_ptr(), dir.fd.as_raw_fd(), target.as_ptr()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })();
        if done.is_err() {
            // SAFETY: valid descriptor and path.
            unsafe { libc::unlinkat(dir.fd.as_raw_fd(), tmp.as_ptr(), 0) };
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let out = t.path().join("out");
        std::fs::create_dir_all(out.join("web1")).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("web1/x.conf")).unwrap();
        let d = SafeDir::open(&out).unwrap();
        d.write(Path::new("web1/x.conf"), b"new", 0o644, &out).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep", "the link's target is untouched");
        let m = std::fs::symlink_metadata(out.join("web1/x.conf")).unwrap();
        assert!(m.is_file() && m.permissions().mode() & 0o777 == 0o644);
        assert_eq!(std::fs::read_to_string(out.join("web1/x.conf")).unwrap(), "new");
    }

    #[test]
    fn a_symlinked_directory_is_not_written_through() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = t.path().join("etc");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let out = t.path().join("out");
        std::fs::create_dir_all(out.join("web1")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("web1/etc")).unwrap();
        let d = SafeDir::open(&out).unwrap();
        let e = d.write(Path::new("web1/etc/sysctl.d/x.conf"), b"x", 0o644, &out).unwrap_err();
        assert!(e.to_string().contains("not a plain directory"), "{e}");
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "nothing written through the link");
    }

    #[test]
    fn a_directory_others_can_write_and_someone_else_owns_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: making a directory of another user needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(&shared, Some(65534), Some(65534)).unwrap();
        let e = SafeDir::open(&shared).err().unwrap();
        assert!(e.to_string().contains("writable by others and belongs to uid 65534"), "{e}");
        // Our own world-writable directory is our business.
        std::os::unix::fs::chown(&shared, Some(0), Some(0)).unwrap();
        assert!(SafeDir::open(&shared).is_ok());
    }

    #[test]
    fn an_existing_files_permissions_do_not_survive() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("secret.sh");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        SafeDir::open(t.path()).unwrap().write(Path::new("secret.sh"), b"new", 0o755, t.path()).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o755);
    }
}
