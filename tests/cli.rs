//! The controller binary as a shell user meets it: closed pipes, odd files given as inventories,
//! exit statuses. No root, no host.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lvsctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvsctl"))
}

/// Runs to completion within `limit`, or is killed (a hang is a failure, not a stuck test).
fn run(mut cmd: Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (st.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reader_that_goes_away_ends_lvsctl_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("big.toml");
    // 50 real servers: render prints far more than a pipe holds, so writes go on after the
    // reader has gone.
    let st = lvsctl().args(["init", "--mode", "dr", "--real-servers", "50", "--out"]).arg(&inv).status().unwrap();
    assert!(st.success());
    let mut child = lvsctl().arg("render").arg(&inv).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("==> "), "{first}");
    // The reader is dropped here, like `| head -1`.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn an_inventory_must_be_a_regular_file_of_reasonable_size() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "#".repeat(5 << 20)).unwrap();
    for (path, want) in [
        (fifo.as_path(), "is a FIFO"),
        (std::path::Path::new("/dev/zero"), "is a device"),
        (dir.path(), "is a directory"),
        (big.as_path(), "bytes, more than an inventory's"),
        (std::path::Path::new("/nonexistent/lab.toml"), "No such file"),
    ] {
        let mut cmd = lvsctl();
        cmd.arg("check").arg(path);
        let (code, err) = run(cmd, Duration::from_secs(20));
        // Exit status 1: the file could not be read; 3 is for inventories that were read and are invalid.
        assert_eq!(code, Some(1), "{}: {err}", path.display());
        assert!(err.contains(want) && err.contains(&path.display().to_string()), "{}: {err}", path.display());
    }
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let out = lvsctl().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(v.starts_with(&format!("lvsctl {}", env!("CARGO_PKG_VERSION"))), "{v}");
    // Built from a git checkout (CI's clone, a developer's tree): the commit is HEAD's.
    let head =
        Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    if let Ok(h) = head
        && h.status.success()
    {
        let h = String::from_utf8_lossy(&h.stdout).trim().to_string();
        assert_eq!(v, format!("lvsctl {} (commit {h})", env!("CARGO_PKG_VERSION")));
    }
}
