//! A lab built by the real lvsctl binary, removed when dropped, and snapshots of its hosts.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use sha2::Digest;

use super::repo;

/// Where scripts/test.sh builds the static lvsctl with the agent's fault injection (a target
/// directory of its own for the binaries, so that it and the main job's build never overwrite
/// each other; their intermediate files share target/, cargo's build-dir).
const STATIC_TARGET: &str = "target/fault-injection/x86_64-unknown-linux-musl/release/lvsctl";

/// The static lvsctl, with fault injection: hosts run it as their agent. `scripts/test.sh` builds
/// it and sets LVSCTL_BIN; without it, it is built here as there.
pub fn lvsctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LVSCTL_BIN") {
        return PathBuf::from(p);
    }
    let path = repo().join(STATIC_TARGET);
    if !path.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "x86_64-unknown-linux-musl", "--features", "fault-injection"])
            .args(["--target-dir", "target/fault-injection"])
            .env("CARGO_BUILD_BUILD_DIR", repo().join("target"))
            .current_dir(repo())
            .status()
            .expect("run cargo");
        assert!(st.success(), "cannot build the static lvsctl (rustup target add x86_64-unknown-linux-musl)");
    }
    path
}

pub struct Lab {
    pub inv: PathBuf,
    pub lab: lvsctl::inventory::Lab,
    pub state_dir: tempfile::TempDir,
    /// The client's request process, started by the first traffic check.
    pub requester: std::sync::Mutex<Option<super::vm::Requester>>,
}

impl Lab {
    /// Builds the lab of `inv` (relative paths are relative to the repository).
    pub fn create(inv: impl AsRef<Path>) -> Lab {
        let path = repo().join(inv.as_ref());
        let lab = lvsctl::inventory::load(&path).unwrap();
        let l = Lab { inv: path, lab, state_dir: tempfile::tempdir().unwrap(), requester: Default::default() };
        // A lab left over by an interrupted run of this test is removed first.
        let _ = l.lvsctl(&["lab", "destroy"]);
        // The tests' labs trade OpenSSH's preferred key exchange for half the CPU per handshake
        // (the README's main job and e2e_readme_quick_start keep the default).
        let out = l.lvsctl(&["lab", "create", "--fast-ssh"]);
        assert!(out.status.success(), "lab create failed:\n{}", text(&out));
        let config = std::fs::read_to_string(format!("/run/lvsctl/labs/{}/ssh_config", l.lab.name)).unwrap();
        assert!(config.contains("KexAlgorithms curve25519-sha256\n"), "{config}");
        l
    }

    /// `lvsctl ARGS INVENTORY` with this lab's state directory, not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(lvsctl_bin());
        cmd.args(args)
            .arg(&self.inv)
            .env("LVSCTL_STATE_DIR", self.state_dir.path())
            // Kept connections must outlive the test's own slow steps between two commands
            // (traffic checks take over a minute under emulation); `lab destroy` ends them.
            .env("LVSCTL_SSH_PERSIST", "900")
            .stdin(Stdio::null());
        cmd
    }

    pub fn lvsctl(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = self.command(args).output().expect("run lvsctl");
        eprintln!(
            "lvsctl {} {}: {} in {:.1} s",
            args.join(" "),
            self.lab.name,
            out.status,
            started.elapsed().as_secs_f64()
        );
        out
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.lvsctl(args);
        let t = text(&out);
        assert!(out.status.success(), "lvsctl {} failed:\n{t}", args.join(" "));
        t
    }

    /// Runs a shell snippet inside a lab host (network and files).
    pub fn sh(&self, host: &str, script: &str) -> String {
        self.run(host, &["sh", "-c", script])
    }

    /// Runs a command inside a lab host; its output.
    pub fn run(&self, host: &str, argv: &[&str]) -> String {
        let out = Command::new(lvsctl_bin())
            .args(["lab", "exec"])
            .arg(&self.inv)
            .arg(host)
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("run lvsctl lab exec");
        assert!(out.status.success(), "{host}: {argv:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command inside a lab host with `input` on its stdin; its output.
    pub fn pipe(&self, host: &str, argv: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut child = Command::new(lvsctl_bin())
            .args(["lab", "exec"])
            .arg(&self.inv)
            .arg(host)
            .arg("--")
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run lvsctl lab exec");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{host}: {argv:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commands run over ssh on each host since the lab was created, counted in its sshd's log
    /// (one "Starting session: command" line per exec).
    pub fn ssh_execs(&self) -> BTreeMap<String, usize> {
        self.hosts()
            .into_iter()
            .map(|h| {
                let log = std::fs::read_to_string(lvsctl::lab::build::sshd_log(&self.lab.name, &h)).unwrap_or_default();
                let n = log.lines().filter(|l| l.contains("Starting session: command ")).count();
                (h, n)
            })
            .collect()
    }

    /// Runs lvsctl `args` and returns its output with how many ssh execs it cost each host.
    pub fn counted(&self, args: &[&str]) -> (String, BTreeMap<String, usize>) {
        let before = self.ssh_execs();
        let out = self.ok(args);
        let after = self.ssh_execs();
        (out, after.into_iter().map(|(h, n)| (h.clone(), n - before[&h])).collect())
    }

    /// `counted`, with a terminal as stdout and stderr: what the screen shows at the end.
    pub fn counted_on_terminal(&self, args: &[&str]) -> (String, BTreeMap<String, usize>) {
        let before = self.ssh_execs();
        let mut cmd = self.command(args);
        cmd.env_remove("NO_COLOR");
        let (status, screen) = super::pty::screen(cmd, 140);
        eprintln!("lvsctl {} on a terminal: {status}\n{screen}", args.join(" "));
        assert!(status.success(), "lvsctl {} failed:\n{screen}", args.join(" "));
        let after = self.ssh_execs();
        (screen, after.into_iter().map(|(h, n)| (h.clone(), n - before[&h])).collect())
    }

    pub fn hosts(&self) -> Vec<String> {
        self.lab.hosts.iter().map(|h| h.name.clone()).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The request client first: it is this test's process, ended by the test.
        drop(self.requester.lock().map(|mut r| r.take()));
        let out = self.lvsctl(&["lab", "destroy"]);
        if !out.status.success() {
            eprintln!("lab destroy failed:\n{}", text(&out));
        }
    }
}

/// Each line a watch showed, and whether it came on stderr; told when one comes.
type Shown = std::sync::Arc<(std::sync::Mutex<Vec<(bool, String)>>, std::sync::Condvar)>;

/// A command that watches (`top`, `capture`), its output read as it comes: the test waits for what
/// it expects to have been shown instead of sleeping for a time a loaded guest may not keep to.
pub struct Watching {
    child: std::process::Child,
    lines: Shown,
    readers: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Watching {
    pub fn spawn(cmd: &mut Command) -> Watching {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the watch");
        let lines: Shown = std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let read = |stream: Box<dyn std::io::Read + Send>, is_err: bool| {
            let shared = lines.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    shared.0.lock().unwrap().push((is_err, line));
                    shared.1.notify_all();
                }
            })
        };
        let readers = vec![
            read(Box::new(child.stdout.take().unwrap()), false),
            read(Box::new(child.stderr.take().unwrap()), true),
        ];
        Watching { child, lines, readers, started: Instant::now() }
    }

    /// Waits until a line `f` accepts has been shown (stdout or stderr), at most `secs`; how
    /// long after the start.
    pub fn wait_for(&self, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> std::time::Duration {
        let deadline = Instant::now() + std::time::Duration::from_secs(secs);
        let mut lines = self.lines.0.lock().unwrap();
        loop {
            if lines.iter().any(|(_, x)| f(x)) {
                return self.started.elapsed();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let shown: Vec<&str> = lines.iter().map(|(_, x)| x.as_str()).collect();
                panic!("{what}: not within {secs} s; shown so far:\n{}", shown.join("\n"));
            }
            lines = self.lines.1.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Ends the watch as Ctrl-C would (SIGINT to our own child, by its pid).
    pub fn interrupt(&self) {
        // SAFETY: a signal to a process this test started and has not yet waited for.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
    }

    /// Waits for the watch to end: its stdout, and its exit status with both streams.
    pub fn finish(mut self) -> (String, Output) {
        let status = self.child.wait().expect("wait for the watch");
        for r in self.readers.drain(..) {
            r.join().expect("the watch's reader");
        }
        let lines = self.lines.0.lock().unwrap();
        let of = |err: bool| lines.iter().filter(|(e, _)| *e == err).map(|(_, x)| format!("{x}\n")).collect::<String>();
        let (stdout, stderr) = (of(false), of(true));
        (stdout.clone(), Output { status, stdout: stdout.into_bytes(), stderr: stderr.into_bytes() })
    }
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Kernel state of a host, as iproute2 and /proc show it. Interface indexes and fallback tunnels'
/// permanent addresses (kernel-chosen, new after a reboot) and qdiscs (attached by the kernel on a
/// link's first up, and never managed by lvsctl) are left out. A process costs more than its
/// listing under emulation (about 50 ms of guest CPU each), and every scenario takes several
/// snapshots of every host: one `ip -batch` lists links, addresses and routes of both families;
/// one grep every sysctl, /proc/net/ip_vs and every `net.ipv4.vs.*` (where ip_vs is loaded); then
/// IPVS's timeouts, nft, the listening sockets and fou's ports, each one process, their output
/// sorted and labelled here rather than by more processes there.
pub fn kernel_state(l: &Lab, host: &str) -> String {
    let raw = l.sh(
        host,
        // forwarding of IPv6's all and default only (the kernel drops a device's IPv6 settings when
        // a device that cannot carry IPv6, like tunl0, goes up). Globs that match nothing stay
        // as they are: grep's complaint about them goes to /dev/null, and its status is ignored.
        "printf 'link show\\naddr show\\nroute show table all\\n' | ip -o -batch -; echo @@; \
         grep -H '' /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce \
                  /proc/sys/net/ipv4/conf/*/rp_filter /proc/sys/net/ipv4/conf/*/forwarding /proc/sys/net/ipv4/ip_forward \
                  /proc/sys/net/ipv6/conf/all/forwarding /proc/sys/net/ipv6/conf/default/forwarding \
                  /proc/net/ip_vs /proc/sys/net/ipv4/vs/* 2>/dev/null; \
         echo; if [ -d /proc/sys/net/ipv4/vs ]; then ipvsadm -L --timeout; else echo no ipvs; fi; echo; \
         if command -v nft >/dev/null; then nft list ruleset; fi; \
         echo @@ss; ss -Hlntu; echo @@fou; if [ -d /sys/module/fou ]; then ip fou show; fi",
    );
    let (raw, fou) = raw.rsplit_once("@@fou\n").unwrap_or_else(|| panic!("{host}: no fou section in {raw}"));
    let (raw, ss) = raw.rsplit_once("@@ss\n").unwrap_or_else(|| panic!("{host}: no socket listing in {raw}"));
    assert!(raw.contains("/proc/sys/net/ipv4/ip_forward:"), "{host}: no sysctls in {raw}");
    // `ss`'s netid and local address of every listening socket, sorted: the sockets' queues and
    // owners change by themselves.
    let mut listening: Vec<String> = ss
        .lines()
        .filter_map(|x| {
            let w: Vec<&str> = x.split_whitespace().collect();
            Some(format!("listening {} {}", w.first()?, w.get(4)?))
        })
        .collect();
    listening.sort();
    let fou: Vec<String> = fou.lines().map(|x| format!("fou {x}")).collect();
    // /proc/net/ip_vs's real servers without their connection counts, which move by themselves
    // (a closed connection's entry expires after tcp_fin's 2 minutes): a table left by hand
    // beside the lab's keeps the counts of the traffic that went through it.
    let raw: Vec<String> = raw
        .lines()
        .map(|x| match x.strip_prefix("/proc/net/ip_vs:") {
            Some(r) if r.trim_start().starts_with("->") => {
                format!("/proc/net/ip_vs:{}", r.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            }
            _ => x.to_string(),
        })
        .collect();
    let raw = format!("{}\n{}\n{}", raw.join("\n"), listening.join("\n"), fou.join("\n"));
    let (ip, rest) = raw.split_once("@@\n").unwrap_or_else(|| panic!("{host}: no ip listing in {raw}"));
    let (mut links, mut addrs, mut routes) = (Vec::new(), Vec::new(), Vec::new());
    for line in ip.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // Links and addresses start with the interface index and a space ("3: eth0 ..."); an
        // IPv6 route may start with digits and a colon too, but never with a space after it.
        let indexed =
            line.split_once(": ").is_some_and(|(i, _)| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()));
        match (indexed, words.get(2).copied()) {
            (true, Some("inet")) => addrs.push(line),
            // IPv6: global addresses only, not the kernel's own link-local ones (those follow
            // the links' state, which the link list already shows).
            (true, Some("inet6")) => {
                if line.contains(" scope global") {
                    addrs.push(line)
                }
            }
            (true, _) => links.push(line),
            // Nor the kernel's link-local and multicast routes.
            (false, _) => {
                let own =
                    ["fe80::/64 ", "local fe80:", "anycast fe80:", "multicast "].iter().any(|p| line.starts_with(p));
                if !own {
                    routes.push(line)
                }
            }
        }
    }
    let raw = [links.join("\n"), addrs.join("\n"), routes.join("\n"), rest.to_string()].join("\n\n");
    raw.lines()
        .map(|line| {
            let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
            // A fallback tunnel device's permanent address (ip6tnl0's, where ip6_tunnel is loaded)
            // is drawn at random when the namespace is made: new after a host's reboot.
            for kernel_chosen in ["qdisc", "permaddr"] {
                if let Some(i) = words.iter().position(|w| w == kernel_chosen) {
                    words.drain(i..(i + 2).min(words.len()));
                }
            }
            let mut line = words.join(" ");
            if let Some((idx, rest)) = line.split_once(": ")
                && idx.chars().all(|c| c.is_ascii_digit())
                && !idx.is_empty()
            {
                line = rest.to_string();
            }
            if let Some(at) = line.find("@if") {
                let end = line[at + 3..].find(|c: char| !c.is_ascii_digit()).map(|e| at + 3 + e).unwrap_or(line.len());
                line.replace_range(at..end, "");
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a host wrote under /etc, /var, /usr/local and /opt: its overlay upper layers (the lower
/// layer never changes). /var/log holds sshd's login records, not lvsctl's doing.
pub fn files_state(l: &Lab, host: &str) -> Vec<String> {
    let base = PathBuf::from(format!("/run/lvsctl/labs/{}/hosts/{host}", l.lab.name));
    let mut out = Vec::new();
    for (d, lower) in [("etc", "/etc"), ("var", "/var"), ("usr-local", "/usr/local"), ("opt", "/opt")] {
        walk(&base.join(d).join("upper"), Path::new(d), Path::new(lower), &mut out);
    }
    out.retain(|e| !e.starts_with("var/log"));
    out
}

/// Lists an upper layer. A directory that only mirrors the same directory of the lower layer is
/// left out: overlayfs copies a parent up when something is created in it, and keeps the copy
/// after that something is removed, which changes nothing in the merged view.
fn walk(dir: &Path, rel: &Path, lower: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let r = rel.join(e.file_name());
        let m = std::fs::symlink_metadata(&p).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let mode = m.mode() & 0o7777;
        let low = lower.join(e.file_name());
        if m.is_dir() {
            let mirrors = std::fs::symlink_metadata(&low)
                .is_ok_and(|lm| lm.is_dir() && lm.mode() & 0o7777 == mode && lm.uid() == m.uid());
            if !mirrors {
                out.push(format!("{} dir {mode:o}", r.display()));
            }
            walk(&p, &r, &low, out);
        } else if m.file_type().is_char_device() {
            out.push(format!("{} whiteout", r.display()));
        } else if m.file_type().is_symlink() {
            out.push(format!("{} -> {}", r.display(), std::fs::read_link(&p).unwrap().display()));
        } else {
            let h = sha2::Sha256::digest(std::fs::read(&p).unwrap());
            out.push(format!("{} {mode:o} {}", r.display(), lvsctl::hex(&h)));
        }
    }
}

pub type Snapshot = BTreeMap<String, (String, Vec<String>)>;

/// Waits (at most 10 s) until nothing listens on `addr` in `host`.
pub fn wait_gone(l: &Lab, host: &str, addr: &str) {
    for _ in 0..40 {
        if !l.sh(host, "ss -Hltn").split_whitespace().any(|w| w == addr) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("{host}: something still listens on {addr}");
}

/// Every host's kernel state and files, the hosts read at once.
pub fn snapshot(l: &Lab) -> Snapshot {
    std::thread::scope(|s| {
        let reads: Vec<_> = l
            .hosts()
            .into_iter()
            .map(|h| s.spawn(move || (h.clone(), (kernel_state(l, &h), files_state(l, &h)))))
            .collect();
        reads.into_iter().map(|r| r.join().expect("a host's snapshot")).collect()
    })
}

pub fn assert_same(before: &Snapshot, after: &Snapshot, when: &str) {
    for (host, (k0, f0)) in before {
        let (k1, f1) = &after[host];
        assert_eq!(k1, k0, "{host}: kernel state {when} differs from before up");
        assert_eq!(f1, f0, "{host}: files {when} differ from before up");
    }
}

/// A copy of the inventory `inv` (relative to the repository) whose lab is named `name`, so that
/// it can run beside the original (labs of one name cannot coexist on a machine). The directory
/// holding the copy goes with the first value.
pub fn renamed(inv: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let src = std::fs::read_to_string(repo().join(inv)).unwrap();
    let lab = lvsctl::inventory::load(&repo().join(inv)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.toml"));
    let from = format!("name = \"{}\"\n", lab.name);
    assert!(src.starts_with(&from) || src.contains(&format!("\n{from}")), "{inv} names its lab {}", lab.name);
    std::fs::write(&path, src.replacen(&from, &format!("name = \"{name}\"\n"), 1)).unwrap();
    (dir, path)
}
