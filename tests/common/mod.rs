//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod lab;
pub mod pty;
pub mod schema;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the calling test again in a child process inside fresh network and mount namespaces
/// (`unshare --net --mount`). Returns true in the child, which then runs the test body; in the
/// parent it waits for the child, fails the test if the child failed, and returns false. Without
/// root the test is skipped (with a message) and false is returned.
pub fn in_fresh_netns(test: &str) -> bool {
    if std::env::var("LVSCTL_NETNS_CHILD").as_deref() == Ok(test) {
        return true;
    }
    if !is_root() {
        eprintln!("skipped {test}: needs root for network namespaces");
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env("LVSCTL_NETNS_CHILD", test)
        .output()
        .expect("run unshare");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "test {test} failed in its namespace:\n{text}");
    assert!(text.contains("1 passed"), "test {test} did not run in its namespace:\n{text}");
    false
}

/// Runs a command, panicking with its output when it fails; returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Everything the tests compare before and after: links, addresses, routes and the sysctls lvsctl
/// may touch, as the kernel reports them through iproute2 (an observer independent of lvsctl).
pub fn net_snapshot() -> String {
    let mut s = String::new();
    // A link's first `up` attaches its default qdisc (noop becomes noqueue on veth) and the kernel
    // keeps it after `down`; lvsctl never manages qdiscs, so they are not compared.
    for line in sh(&["ip", "-o", "link", "show"]).lines() {
        let mut words: Vec<&str> = line.split(' ').collect();
        if let Some(i) = words.iter().position(|w| *w == "qdisc") {
            words.drain(i..(i + 2).min(words.len()));
        }
        s += &words.join(" ");
        s.push('\n');
    }
    s += &sh(&["ip", "-o", "-4", "addr", "show"]);
    s += &sh(&["ip", "-4", "route", "show", "table", "all"]);
    for dir in std::fs::read_dir("/proc/sys/net/ipv4/conf").unwrap() {
        let dir = dir.unwrap().path();
        for key in ["arp_ignore", "arp_announce", "rp_filter", "forwarding"] {
            let v = std::fs::read_to_string(dir.join(key)).unwrap_or_default();
            s += &format!("{}/{key} = {}", dir.display(), v);
        }
    }
    s += &format!("ip_forward = {}", std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap());
    s
}

/// Files under `root`, with their content, for before/after comparisons.
pub fn files_snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(p: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                out.push((e.clone(), vec![]));
                walk(&e, out);
            } else {
                out.push((e.clone(), std::fs::read(&e).unwrap()));
            }
        }
    }
    walk(root, &mut out);
    out
}

/// What a terminal or a pipe shows, made comparable: durations, sizes and hashes (which differ
/// from run to run and build to build) replaced.
pub fn normalized(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut words = Vec::new();
        for w in line.split(' ') {
            let core = w.trim_end_matches([',', ')', ':']);
            let tail = &w[core.len()..];
            let hex = core.len() >= 12 && core.chars().all(|c| c.is_ascii_hexdigit());
            let decimal = core.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && (a.trim_start_matches('(').chars().chain(b.chars())).all(|c| c.is_ascii_digit())
            });
            words.push(if hex {
                format!("HASH{tail}")
            } else if decimal {
                format!("{}N.N{tail}", if core.starts_with('(') { "(" } else { "" })
            } else {
                w.to_string()
            });
        }
        out.push_str(words.join(" ").trim_end());
        out.push('\n');
    }
    out
}
