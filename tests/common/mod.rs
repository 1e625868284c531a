//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod drain;
pub mod lab;
pub mod metrics;
pub mod pty;
pub mod schema;
pub mod trace;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this run is CI's (`CI=true`, as CI services set it).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A test that cannot run its subject here. Under CI a test that did not run its subject fails the
/// run (it would otherwise be counted as passed); elsewhere it says plainly that it was skipped.
pub fn skipped(test: &str, why: &str) {
    assert!(!under_ci(), "{test} did not run its subject under CI: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

/// True as root; otherwise the test is `skipped`.
pub fn needs_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skipped(test, "needs root");
    false
}

/// Runs the calling test again in a child process inside fresh network and mount namespaces
/// (`unshare --net --mount`). Returns true in the child, which then runs the test body; in the
/// parent it waits for the child, fails the test if the child failed, and returns false. Without
/// root the test is skipped (with a message) and false is returned.
pub fn in_fresh_netns(test: &str) -> bool {
    if std::env::var("LVSCTL_NETNS_CHILD").as_deref() == Ok(test) {
        return true;
    }
    if !needs_root(test) {
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
/// from run to run and build to build) replaced, and the line lvsctl prints only when an SSH
/// connection took over a second (`HOST  connected in 1.3 s`: a loaded machine's, not lvsctl's)
/// left out.
pub fn normalized(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if matches!(line.split_whitespace().collect::<Vec<_>>()[..], [_, "connected", "in", _, "s"]) {
            continue;
        }
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

/// `LVSCTL_LIST_SCENARIOS=1`: each real-kernel test prints its scenario (the lab, what is
/// prepared, broken and checked, from the same values the test runs on) and returns at once,
/// booting no guest. `scripts/scenarios.sh` runs them so.
pub fn listing_scenarios() -> bool {
    std::env::var_os("LVSCTL_LIST_SCENARIOS").is_some()
}

/// Prints one line of a scenario's listing.
pub fn scenario_line(test: &str, line: &str) {
    println!("SCENARIO {test}: {line}");
}

/// Where one real-kernel scenario's time goes: each phase's seconds, appended as
/// `scenario<TAB>phase<TAB>seconds` lines to the file `LVSCTL_PHASES` names (the shared guest's
/// runner prints them as one table) and printed when the scenario ends. Times of one phase name add up.
pub struct Phases {
    scenario: String,
    mark: std::time::Instant,
    rows: Vec<(String, f64)>,
}

impl Phases {
    pub fn start(scenario: &str) -> Phases {
        Phases { scenario: scenario.to_string(), mark: std::time::Instant::now(), rows: Vec::new() }
    }

    /// Ends the phase that ran since the last mark, as `name`.
    pub fn done(&mut self, name: &str) {
        let now = std::time::Instant::now();
        let secs = now.duration_since(self.mark).as_secs_f64();
        self.mark = now;
        match self.rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => *s += secs,
            None => self.rows.push((name.to_string(), secs)),
        }
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.done("(failed in)");
        } else if self.mark.elapsed().as_secs_f64() >= 0.05 {
            self.done("end");
        }
        let lines: String =
            self.rows.iter().map(|(phase, secs)| format!("{}\t{phase}\t{secs:.1}\n", self.scenario)).collect();
        eprint!("phase times:\n{lines}");
        if let Some(path) = std::env::var_os("LVSCTL_PHASES") {
            use std::io::Write;
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
            // One write per scenario: lines of scenarios running at once do not interleave.
            if let Err(e) = file.and_then(|mut f| f.write_all(lines.as_bytes())) {
                eprintln!("cannot record phase times in {}: {e}", std::path::Path::new(&path).display());
            }
        }
    }
}
