//! Named network namespaces (the `ip netns` convention: a bind mount at /run/netns/NAME), and
//! rtnetlink handles bound to a given namespace.

use std::ffi::CString;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

pub const NETNS_DIR: &str = "/run/netns";

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in paths")
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Makes /run/netns a shared mount point, as `ip netns` does, so that deleting a namespace there
/// is seen by every mount namespace.
fn prepare_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_DIR)?;
    let dir = cstr(NETNS_DIR);
    let none = cstr("none");
    // SAFETY: mount(2) with valid NUL-terminated strings.
    unsafe {
        if libc::mount(none.as_ptr(), dir.as_ptr(), std::ptr::null(), libc::MS_SHARED | libc::MS_REC, std::ptr::null())
            == 0
        {
            return Ok(());
        }
        check(libc::mount(dir.as_ptr(), dir.as_ptr(), none.as_ptr(), libc::MS_BIND | libc::MS_REC, std::ptr::null()))?;
        check(libc::mount(
            none.as_ptr(),
            dir.as_ptr(),
            std::ptr::null(),
            libc::MS_SHARED | libc::MS_REC,
            std::ptr::null(),
        ))
    }
}

/// Creates the named namespace `name` (like `ip netns add NAME`).
pub fn create(name: &str) -> io::Result<()> {
    prepare_dir()?;
    let target = path(name);
    std::fs::OpenOptions::new().write(true).create_new(true).open(&target)?;
    let t = target.clone();
    let result = std::thread::spawn(move || -> io::Result<()> {
        // unshare(CLONE_NEWNET) moves only this thread; its namespace file is then pinned.
        // SAFETY: plain syscalls on valid strings.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNET))?;
            let src = cstr("/proc/thread-self/ns/net");
            let dst = cstr(t.to_str().expect("UTF-8"));
            let none = cstr("none");
            check(libc::mount(src.as_ptr(), dst.as_ptr(), none.as_ptr(), libc::MS_BIND, std::ptr::null()))
        }
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?;
    if result.is_err() {
        let _ = std::fs::remove_file(&target);
    }
    result
}

/// Deletes the named namespace (like `ip netns delete NAME`); its interfaces go with it once no
/// process uses it.
pub fn delete(name: &str) -> io::Result<()> {
    let target = path(name);
    if !target.exists() {
        return Ok(());
    }
    let t = cstr(target.to_str().expect("UTF-8"));
    // SAFETY: umount2 on a valid path.
    let r = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    std::fs::remove_file(&target)
}

/// Runs `f` on a thread that is inside the namespace at `ns` (for netlink sockets, which stay
/// bound to the namespace they were created in).
pub fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || -> io::Result<T> {
        let file = std::fs::File::open(&ns)?;
        // SAFETY: setns on a valid namespace descriptor, on this thread only.
        check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) })?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// An rtnetlink handle whose socket lives in the namespace at `ns`; its connection runs on `rt`.
pub fn handle_in(ns: &Path, rt: &tokio::runtime::Handle) -> io::Result<rtnetlink::Handle> {
    let rt2 = rt.clone();
    let (conn, handle) = in_netns(ns, move || -> io::Result<_> {
        let _g = rt2.enter();
        let (conn, handle, _) = rtnetlink::new_connection()?;
        Ok((conn, handle))
    })??;
    rt.spawn(conn);
    Ok(handle)
}
