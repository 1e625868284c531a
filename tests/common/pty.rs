//! Runs a command on a pseudo-terminal, as a person at a terminal would, and gives what the
//! terminal then shows (a vt100 screen): live lines that redraw leave only their last state.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::process::{Command, ExitStatus, Stdio};

/// Runs `cmd` with a terminal of `cols` columns as its stdout and stderr; returns its status and
/// the screen's text at the end.
pub fn screen(mut cmd: Command, cols: u16) -> (ExitStatus, String) {
    let rows = 400;
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two descriptors it opened into the given ints.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are ours alone from here on.
    let (mut master, slave) = unsafe { (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave)) };
    cmd.stdin(Stdio::null()).stdout(slave.try_clone().unwrap()).stderr(slave);
    let mut child = cmd.spawn().expect("spawn on the terminal");
    // The terminal's other end closes when the child (and its children) end: the parent's copies
    // go with the Command.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                // EIO: every writer is gone.
                Err(_) => break,
            }
        }
        bytes
    });
    let status = child.wait().unwrap();
    let bytes = reader.join().unwrap();
    let size = |n: u16| std::num::NonZero::new(n).expect("not zero");
    let mut parser = vt100::Parser::new(size(rows), size(cols), 0);
    parser.process(&bytes);
    (status, parser.screen().contents())
}
