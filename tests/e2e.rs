//! End to end, on a real IPVS kernel (this one, or a qemu guest through `lvsctl lab vm`): build
//! an example lab, `lvsctl up` over real SSH, send traffic from the client, check idempotence,
//! status, a reboot of a real server, `lvsctl down` restoring every host exactly, and destroy.
//!
//! The observers are independent of lvsctl: curl and a UDP probe on the client, iproute2 and
//! /proc on the hosts, and each host's overlay upper layers (exactly the files it wrote).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{is_root, repo};
use sha2::Digest;

const STATIC_TARGET: &str = "target/x86_64-unknown-linux-musl/release/lvsctl";

/// The static lvsctl: hosts run it as their agent. `scripts/test.sh` builds it and sets
/// LVSCTL_BIN; without it, it is built here.
fn lvsctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LVSCTL_BIN") {
        return PathBuf::from(p);
    }
    let path = repo().join(STATIC_TARGET);
    if !path.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "--release", "--target", "x86_64-unknown-linux-musl"])
            .current_dir(repo())
            .status()
            .expect("run cargo");
        assert!(st.success(), "cannot build the static lvsctl (rustup target add x86_64-unknown-linux-musl)");
    }
    path
}

fn kernel_has_ipvs() -> bool {
    lvsctl::lab::build::kernel_has_ipvs()
}

/// True when the test body should run here; otherwise the test was run inside a guest (and
/// asserted) or skipped.
fn here_or_in_vm(test: &str) -> bool {
    if std::env::var_os("LVSCTL_IN_VM").is_some() || (is_root() && kernel_has_ipvs()) {
        return true;
    }
    if !is_root() {
        eprintln!("skipped {test}: needs root");
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let out = Command::new(lvsctl_bin())
        .args(["lab", "vm", "--cpus", "2", "--memory", "2048", "--timeout", "1500", "--"])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env("LVSCTL_BIN", lvsctl_bin())
        .stdin(Stdio::null())
        .output()
        .expect("run lvsctl lab vm");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "{test} failed in the guest ({:.0} s)", started.elapsed().as_secs_f64());
    assert!(text.contains("1 passed"), "{test} did not run in the guest");
    false
}

struct Lab {
    inv: PathBuf,
    lab: lvsctl::inventory::Lab,
    state_dir: tempfile::TempDir,
}

impl Lab {
    fn create(inv: &str) -> Lab {
        let path = repo().join(inv);
        let lab = lvsctl::inventory::load(&path).unwrap();
        let l = Lab { inv: path, lab, state_dir: tempfile::tempdir().unwrap() };
        // A lab left over by an interrupted run of this test is removed first.
        let _ = l.lvsctl(&["lab", "destroy"]);
        let out = l.lvsctl(&["lab", "create"]);
        assert!(out.status.success(), "lab create failed:\n{}", text(&out));
        l
    }

    fn lvsctl(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = Command::new(lvsctl_bin())
            .args(args)
            .arg(&self.inv)
            .env("LVSCTL_STATE_DIR", self.state_dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run lvsctl");
        eprintln!(
            "lvsctl {} {}: {} in {:.1} s",
            args.join(" "),
            self.lab.name,
            out.status,
            started.elapsed().as_secs_f64()
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.lvsctl(args);
        let t = text(&out);
        assert!(out.status.success(), "lvsctl {} failed:\n{t}", args.join(" "));
        t
    }

    /// Runs a shell snippet inside a lab host (network and files).
    fn sh(&self, host: &str, script: &str) -> String {
        let out = Command::new(lvsctl_bin())
            .args(["lab", "exec"])
            .arg(&self.inv)
            .args([host, "--", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("run lvsctl lab exec");
        assert!(out.status.success(), "{host}: {script}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn hosts(&self) -> Vec<String> {
        self.lab.hosts.iter().map(|h| h.name.clone()).collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.lvsctl(&["lab", "destroy"]);
        if !out.status.success() {
            eprintln!("lab destroy failed:\n{}", text(&out));
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Kernel state of a host, as iproute2 and /proc show it. Interface indexes (kernel-assigned
/// numbers, new after a reboot) and qdiscs (attached by the kernel on a link's first up, and
/// never managed by lvsctl) are left out.
fn kernel_state(l: &Lab, host: &str) -> String {
    let raw = l.sh(
        host,
        "ip -o link show; echo; ip -o -4 addr show; echo; ip -4 route show table all; echo; \
         for f in /proc/sys/net/ipv4/conf/*/arp_ignore /proc/sys/net/ipv4/conf/*/arp_announce \
                  /proc/sys/net/ipv4/conf/*/rp_filter /proc/sys/net/ipv4/conf/*/forwarding /proc/sys/net/ipv4/ip_forward; \
         do echo \"$f=$(cat $f)\"; done; echo; \
         if [ -e /proc/net/ip_vs ]; then cat /proc/net/ip_vs; else echo no ipvs; fi",
    );
    raw.lines()
        .map(|line| {
            let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
            if let Some(i) = words.iter().position(|w| w == "qdisc") {
                words.drain(i..(i + 2).min(words.len()));
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
fn files_state(l: &Lab, host: &str) -> Vec<String> {
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
            out.push(format!("{} {mode:o} {}", r.display(), lvsctl::remote::binary::hex(&h)));
        }
    }
}

type Snapshot = BTreeMap<String, (String, Vec<String>)>;

fn snapshot(l: &Lab) -> Snapshot {
    l.hosts().into_iter().map(|h| (h.clone(), (kernel_state(l, &h), files_state(l, &h)))).collect()
}

fn assert_same(before: &Snapshot, after: &Snapshot, when: &str) {
    for (host, (k0, f0)) in before {
        let (k1, f1) = &after[host];
        assert_eq!(k1, k0, "{host}: kernel state {when} differs from before up");
        assert_eq!(f1, f0, "{host}: files {when} differ from before up");
    }
}

/// Which real server answered each of `n` requests from the client.
fn traffic(l: &Lab, svc: &lvsctl::inventory::Service, n: u32) -> BTreeMap<String, u32> {
    let client = l.lab.hosts_with_role(lvsctl::inventory::Role::Client).next().expect("a client").name.clone();
    let out = match svc.protocol {
        lvsctl::inventory::Protocol::Tcp => l.sh(
            &client,
            &format!("for i in $(seq {n}); do curl -s -m 5 http://{}:{}/ || echo FAILED; done", svc.vip, svc.port),
        ),
        lvsctl::inventory::Protocol::Udp => {
            let exe = std::env::current_exe().unwrap();
            let o = Command::new(lvsctl_bin())
                .args(["lab", "exec"])
                .arg(&l.inv)
                .arg(&client)
                .arg("--")
                .arg(exe)
                .args(["--exact", "udp_probe_helper", "--nocapture", "--test-threads", "1"])
                .env("LVSCTL_TEST_UDP", format!("{}:{}:{n}", svc.vip, svc.port))
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|x| x.strip_prefix("reply: "))
                .map(|x| format!("{x}\n"))
                .collect()
        }
        lvsctl::inventory::Protocol::Sctp => panic!("no SCTP client in the lab"),
    };
    let mut counts = BTreeMap::new();
    for line in out.lines().map(str::trim).filter(|x| !x.is_empty()) {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Every real server answers, and the split follows the weights (±1 request).
fn assert_split(l: &Lab, svc: &lvsctl::inventory::Service, n: u32) {
    let counts = traffic(l, svc, n);
    let total: u32 = svc.real_servers.iter().map(|b| b.weight).sum();
    for b in &svc.real_servers {
        let want = (n * b.weight) as f64 / total as f64;
        let got = counts.get(&b.host).copied().unwrap_or(0) as f64;
        assert!(
            (got - want).abs() <= 1.0,
            "{}: {} answered {got} of {n}, expected {want} ({}): {counts:?}",
            svc.label(),
            b.host,
            svc.scheduler
        );
    }
    let sum: u32 = counts.values().sum();
    assert_eq!(sum, n, "{}: every request answered by a real server: {counts:?}", svc.label());
}

fn changes_in_json(out: &str) -> u64 {
    let start = out.find('[').expect("json output");
    let v: serde_json::Value = serde_json::from_str(&out[start..out.rfind(']').unwrap() + 1]).expect("json");
    v.as_array().unwrap().iter().map(|h| h["report"]["changes"].as_u64().expect("every host answered")).sum()
}

struct Checks<'a> {
    /// Run on hosts before the first snapshot: what the host was like before lvsctl.
    prepare: &'a [(&'a str, &'a str)],
    /// Crash the agents mid-up first (LVSCTL_FAULT_ABORT_AFTER), then check down restores.
    crash_first: bool,
    reboot: &'a str,
    /// Checks after up: (host, shell, text the output must contain).
    after_up: &'a [(&'a str, &'a str, &'a str)],
}

fn full_cycle(inv: &str, c: Checks) {
    let started = Instant::now();
    let l = Lab::create(inv);
    for (host, script) in c.prepare {
        l.sh(host, script);
    }
    let before = snapshot(&l);

    if c.crash_first {
        let out = Command::new(lvsctl_bin())
            .args(["up"])
            .arg(&l.inv)
            .env("LVSCTL_STATE_DIR", l.state_dir.path())
            .env("LVSCTL_FAULT_ABORT_AFTER", "4")
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(4), "the crashed up reports failed hosts:\n{t}");
        assert!(t.contains("the agent ended without a report"), "{t}");
        l.ok(&["down"]);
        assert_same(&before, &snapshot(&l), "after a crashed up and down");
    }

    let out = l.ok(&["up"]);
    assert!(out.contains("changed"), "{out}");
    for (host, script, want) in c.after_up {
        let got = l.sh(host, script);
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squash(&got).contains(&squash(want)), "{host}: `{script}` should show {want:?}:\n{got}");
    }
    for s in &l.lab.services {
        assert_split(&l, s, 40);
    }
    let again = l.ok(&["up", "--output", "json"]);
    assert_eq!(changes_in_json(&again), 0, "a second up changes nothing:\n{again}");
    let status = l.ok(&["status"]);
    assert!(!status.contains("DRIFTED"), "{status}");
    assert!(status.contains("IPVS on"), "{status}");

    // Reboot: the host's kernel state is gone, its files stay; the boot unit provisions it again.
    let out = Command::new(lvsctl_bin()).args(["lab", "reboot"]).arg(&l.inv).arg(c.reboot).output().unwrap();
    assert!(out.status.success(), "lab reboot {}:\n{}", c.reboot, text(&out));
    assert!(text(&out).contains("starting lvsctl-"), "the boot unit ran:\n{}", text(&out));
    for s in &l.lab.services {
        assert_split(&l, s, 40);
    }
    let status = l.ok(&["status"]);
    assert!(!status.contains("DRIFTED"), "after the reboot: {status}");

    l.ok(&["down"]);
    assert_same(&before, &snapshot(&l), "after down");
    let name = l.lab.name.clone();
    drop(l);
    let leftovers = std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&format!("lvsctl-{name}"))).count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "lab destroy leaves no namespace");
    assert!(!Path::new(&format!("/run/lvsctl/labs/{name}")).exists());
    eprintln!("{inv}: full cycle in {:.0} s", started.elapsed().as_secs_f64());
}

#[test]
fn e2e_dr() {
    if !here_or_in_vm("e2e_dr") {
        return;
    }
    full_cycle(
        "inventories/dr.toml",
        Checks {
            // arp_ignore was 2 before lvsctl: it must be 2 again after down, not 0.
            prepare: &[("web1", "echo 2 > /proc/sys/net/ipv4/conf/all/arp_ignore")],
            crash_first: true,
            reboot: "web1",
            after_up: &[
                ("web1", "ip -o -4 addr show dev lo", "192.168.188.100/32"),
                ("web1", "cat /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/net/ipv4/conf/lo/arp_announce", "1\n2"),
                ("lvs", "ipvsadm -Ln", "192.168.188.81:80           Route   3"),
            ],
        },
    );
}

#[test]
fn e2e_nat() {
    if !here_or_in_vm("e2e_nat") {
        return;
    }
    full_cycle(
        "inventories/nat.toml",
        Checks {
            // The director already holds the VIP: it must keep it after down.
            prepare: &[("lvs", "ip addr add 192.168.188.100/32 dev eth0")],
            crash_first: false,
            reboot: "web2",
            after_up: &[
                ("lvs", "cat /proc/sys/net/ipv4/ip_forward", "1"),
                ("lvs", "ipvsadm -Ln", "10.10.0.82:8080             Masq"),
                ("web1", "ip -4 route show default", "default via 10.10.0.1"),
            ],
        },
    );
}

#[test]
fn e2e_tun() {
    if !here_or_in_vm("e2e_tun") {
        return;
    }
    full_cycle(
        "inventories/tun.toml",
        Checks {
            prepare: &[],
            crash_first: false,
            reboot: "web2",
            after_up: &[
                ("web1", "ip -o -4 addr show dev tunl0", "192.168.188.100/32"),
                ("web1", "ip -o link show tunl0", ",UP"),
                ("web1", "cat /proc/sys/net/ipv4/conf/tunl0/rp_filter /proc/sys/net/ipv4/conf/all/rp_filter", "0\n0"),
                ("lvs", "ipvsadm -Ln", "Tunnel"),
            ],
        },
    );
}

#[test]
fn e2e_dr_multisubnet() {
    if !here_or_in_vm("e2e_dr_multisubnet") {
        return;
    }
    full_cycle(
        "inventories/dr-multisubnet.toml",
        Checks {
            prepare: &[],
            crash_first: false,
            reboot: "web1",
            after_up: &[
                ("router", "ip -4 route show 192.168.200.100", "192.168.200.100 via 192.168.188.8"),
                ("lvs", "ip -o -4 addr show dev lo", "192.168.200.100/32"),
            ],
        },
    );
}

/// Not a test on its own: the UDP client the e2e tests run on a lab's client host
/// (LVSCTL_TEST_UDP=VIP:PORT:COUNT), one socket per datagram, printing who replied.
#[test]
fn udp_probe_helper() {
    let Ok(spec) = std::env::var("LVSCTL_TEST_UDP") else { return };
    let mut parts = spec.rsplitn(2, ':');
    let n: u32 = parts.next().unwrap().parse().unwrap();
    let addr = parts.next().unwrap().to_string();
    for _ in 0..n {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.connect(&addr).unwrap();
        s.send(b"who\n").unwrap();
        let mut buf = [0u8; 256];
        match s.recv(&mut buf) {
            Ok(k) => println!("reply: {}", String::from_utf8_lossy(&buf[..k]).trim()),
            Err(_) => println!("reply: TIMEOUT"),
        }
    }
}
