//! Running a test on a real IPVS kernel (this one, or a qemu guest), and the traffic checks
//! the lab tests share.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::is_root;
use super::lab::{Lab, lvsctl_bin};

pub fn kernel_has_ipvs() -> bool {
    lvsctl::lab::build::kernel_has_ipvs()
}

/// True when the test body should run here; otherwise the test was run inside a guest (and
/// asserted) or skipped.
pub fn here_or_in_vm(test: &str) -> bool {
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
        .args(["lab", "vm", "--cpus", "2", "--memory", "2048", "--timeout", "2400", "--"])
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

/// Which real server answered each of `n` requests from the client.
pub fn traffic(l: &Lab, svc: &lvsctl::inventory::Service, n: u32) -> BTreeMap<String, u32> {
    let client = l.lab.hosts_with_role(lvsctl::inventory::Role::Client).next().expect("a client").name.clone();
    let out = match svc.protocol {
        lvsctl::inventory::Protocol::Tcp => l.sh(
            &client,
            // -g: an IPv6 URL's brackets are the address's, not curl's globbing.
            &format!("for i in $(seq {n}); do curl -g -s -m 5 http://{}/ || echo FAILED; done", svc.endpoint()),
        ),
        // bash's /dev/udp: a new connected socket (a new source port) per datagram; head reads
        // the whole reply datagram at once.
        lvsctl::inventory::Protocol::Udp => l.sh(
            &client,
            &format!(
                "for i in $(seq {n}); do bash -c 'exec 3<>/dev/udp/{}/{} && echo who >&3 && timeout 3 head -n 1 <&3' \
                 || echo TIMEOUT; done",
                svc.vip, svc.port
            ),
        ),
        // Python's socket module has SCTP one-to-one sockets: a new association (a new source
        // port) per request; the responder's answer ends with the host's name.
        lvsctl::inventory::Protocol::Sctp => l.sh(
            &client,
            &format!(
                "python3 -c '
import socket
for i in range({n}):
    try:
        s = socket.socket(socket.AF_INET6 if \":\" in \"{vip}\" else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        s.settimeout(3)
        s.connect((\"{vip}\", {port}))
        got = b\"\"
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
        s.close()
        print(got.decode().strip().splitlines()[-1])
    except Exception:
        print(\"FAILED\")
'",
                vip = svc.vip,
                port = svc.port
            ),
        ),
    };
    let mut counts = BTreeMap::new();
    for line in out.lines().map(str::trim).filter(|x| !x.is_empty()) {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Every real server answers, and the split follows the weights (±1 request).
pub fn assert_split(l: &Lab, svc: &lvsctl::inventory::Service, n: u32) {
    let counts = traffic(l, svc, n);
    if lvsctl::commands::verify::policy(svc) == lvsctl::commands::verify::Policy::Sticky {
        // One client stays on one real server (persistence, or a hashing scheduler).
        assert_eq!(
            counts.len(),
            1,
            "{}: {} keeps one client on one real server: {counts:?}",
            svc.label(),
            if svc.persistence > 0 { "persistence" } else { svc.scheduler.as_str() }
        );
        assert_eq!(counts.values().sum::<u32>(), n, "{}: every request answered: {counts:?}", svc.label());
        return;
    }
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

/// What a client sends requests to: each service, and each (VIP, port) of a firewall-mark
/// service on its own (verify's probe units, so that the tests and verify agree).
pub fn units(lab: &lvsctl::inventory::Lab) -> Vec<lvsctl::inventory::Service> {
    lvsctl::commands::verify::probe_units(lab)
}

/// A persistent firewall-mark service keeps the client on one real server across all its ports
/// of one family: which one each port of each IPVS service answered from.
pub fn assert_sticky_across_ports(l: &Lab, n: u32) {
    let mut by_key: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for u in units(&l.lab).iter().filter(|u| u.fwmark.is_some() && u.persistence > 0) {
        let counts = traffic(l, u, n);
        let seen = by_key.entry(u.key().to_string()).or_default();
        for (h, c) in counts {
            *seen.entry(h).or_default() += c;
        }
    }
    for (key, seen) in by_key {
        assert_eq!(seen.len(), 1, "{key}: every port reached the same real server: {seen:?}");
    }
}
