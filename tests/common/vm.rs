//! Running a test on a real IPVS kernel (this one, or a qemu guest), and the traffic checks
//! the lab tests share.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::is_root;
use super::lab::{Lab, lvsctl_bin};

pub fn kernel_has_ipvs() -> bool {
    lvsctl::lab::build::kernel_has_ipvs()
}

/// True when the test body should run here: inside a guest (`LVSCTL_IN_VM`), or as root on a
/// kernel with IPVS. Otherwise the test is run inside a guest of its own (and asserted there) and
/// false is returned; without root it is `skipped`. `scripts/test.sh` does not come here for the
/// real-kernel tests: it runs them all in one shared guest, where `LVSCTL_IN_VM` is set.
pub fn here_or_in_vm(test: &str) -> bool {
    if super::listing_scenarios() || std::env::var_os("LVSCTL_IN_VM").is_some() || (is_root() && kernel_has_ipvs()) {
        return true;
    }
    in_own_guest(test)
}

/// As `here_or_in_vm`, for a test that changes what a guest forgets (root's known_hosts, a user):
/// it runs only in a guest, one of its own when this one is not.
pub fn in_vm_only(test: &str) -> bool {
    if super::listing_scenarios() || std::env::var_os("LVSCTL_IN_VM").is_some() {
        return true;
    }
    in_own_guest(test)
}

fn in_own_guest(test: &str) -> bool {
    if !super::needs_root(test) {
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
    assert!(!text.contains(&format!("SKIPPED {test}")), "{test} was skipped in the guest");
    false
}

/// The client's side of every traffic check: one long-lived process on the lab's client (Python's
/// socket module: an observer independent of lvsctl) that sends the requests it is asked for, each
/// on a new connection or socket (a new source port), and answers with who replied to each. One
/// process per lab instead of one per request: under emulation a process costs more than the
/// request it would make.
pub struct Requester {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

const REQUESTER: &str = r#"
import socket, sys, time
SRC = ["-"]
def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET
def src(s):
    # The source port the request left from (an IPVS entry is keyed by it).
    try:
        SRC[0] = s.getsockname()[1]
    except Exception:
        pass
def why(s, host, port, what):
    # Why a request failed, to stderr (the test's log): when, from which source port, to where.
    if s is not None:
        src(s)
    print("requester %.3f: tcp %s:%s from port %s: %s" % (time.time(), host, port, SRC[0], what), file=sys.stderr, flush=True)
def tcp(host, port):
    s = None
    try:
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((host, port))
        src(s)
        s.sendall(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")
        got = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
        body = got.partition(b"\r\n\r\n")[2].decode().strip()
        if not body:
            why(s, host, port, "no answer before the close")
        return body or "FAILED"
    except Exception as e:
        why(s, host, port, repr(e))
        return "FAILED"
    finally:
        if s is not None:
            s.close()
def udp(host, port):
    s = None
    try:
        s = socket.socket(family(host), socket.SOCK_DGRAM)
        s.settimeout(3)
        s.connect((host, port))
        src(s)
        s.send(b"who\n")
        return s.recv(4096).decode().strip().splitlines()[0]
    except Exception:
        return "TIMEOUT"
    finally:
        if s is not None:
            s.close()
def sctp(host, port):
    s = None
    try:
        s = socket.socket(family(host), socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        s.settimeout(3)
        s.connect((host, port))
        src(s)
        got = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
        return got.decode().strip().splitlines()[-1]
    except Exception:
        return "FAILED"
    finally:
        if s is not None:
            s.close()
for line in sys.stdin:
    proto, host, port, n = line.split()
    send = {"tcp": tcp, "udp": udp, "sctp": sctp}[proto]
    for _ in range(int(n)):
        SRC[0] = "-"
        who = send(host, int(port))
        print("%s %s" % (who, SRC[0]))
    print(".", flush=True)
"#;

impl Requester {
    fn start(l: &Lab, client: &str) -> Requester {
        let mut child = Command::new(lvsctl_bin())
            .args(["lab", "exec"])
            .arg(&l.inv)
            .arg(client)
            .args(["--", "python3", "-u", "-c", REQUESTER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the request client");
        let input = child.stdin.take().unwrap();
        let output = std::io::BufReader::new(child.stdout.take().unwrap());
        Requester { child, input, output }
    }

    /// The answers to `n` requests of `proto` to `host`:`port`, one per request, in order: who
    /// answered, and the source port the request left from.
    fn send(&mut self, proto: &str, host: &str, port: u16, n: u32) -> Vec<(String, String)> {
        use std::io::{BufRead, Write};
        writeln!(self.input, "{proto} {host} {port} {n}").expect("the request client is gone");
        self.input.flush().unwrap();
        let mut answers = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.output.read_line(&mut line).expect("read the request client");
            assert!(read > 0, "the request client ended: {:?}", self.child.try_wait());
            let line = line.trim().to_string();
            if line == "." {
                return answers;
            }
            let (who, from) = line.rsplit_once(' ').unwrap_or((&line, "-"));
            answers.push((who.to_string(), from.to_string()));
        }
    }
}

impl Drop for Requester {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which real server answered each of `n` requests from the client (`FAILED` or `TIMEOUT` for a
/// request nobody answered).
pub fn traffic(l: &Lab, svc: &lvsctl::inventory::Service, n: u32) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for (who, _) in traffic_from(l, svc, n) {
        *counts.entry(who).or_insert(0) += 1;
    }
    counts
}

/// Who answered each of `n` requests from the client, with the source port each left from.
pub fn traffic_from(l: &Lab, svc: &lvsctl::inventory::Service, n: u32) -> Vec<(String, String)> {
    let client = l.lab.hosts_with_role(lvsctl::inventory::Role::Client).next().expect("a client").name.clone();
    let proto = match svc.ipvs.protocol {
        lvsctl::inventory::Protocol::Tcp => "tcp",
        lvsctl::inventory::Protocol::Udp => "udp",
        lvsctl::inventory::Protocol::Sctp => "sctp",
    };
    let mut slot = l.requester.lock().unwrap();
    let requester = slot.get_or_insert_with(|| Requester::start(l, &client));
    requester.send(proto, &svc.ipvs.vip.to_string(), svc.ipvs.port, n)
}

/// Counts by who answered are well formed for `svc`: every key is one of its real servers (a
/// request nobody answered shows as `FAILED` or `TIMEOUT`, and fails this), and they add up to `n`.
pub fn assert_only_real_servers(svc: &lvsctl::inventory::Service, counts: &BTreeMap<String, u32>, n: u32) {
    for name in counts.keys() {
        assert!(
            svc.real_servers.iter().any(|b| &b.host == name),
            "{}: {name} is not a real server of it (every request must be answered by one): {counts:?}",
            svc.label()
        );
    }
    assert_eq!(counts.values().sum::<u32>(), n, "{}: every request answered by a real server: {counts:?}", svc.label());
}

/// Every request is answered by a real server of `svc`, and the split follows the weights (±1
/// request); a sticky service (persistence, a hashing scheduler) keeps the client on one of them.
///
/// The split is judged on the requests the director scheduled: a request from a client port
/// for which a director already kept an entry (the client's kernel gives a port again while
/// the entry lives on: FIN_WAIT, two minutes, in DR; after a drain under load they number in
/// the thousands) goes where that entry points, as `verify` also says. Those answered by that
/// entry's real server are left out of the split; every request must still be answered.
pub fn assert_split(l: &Lab, svc: &lvsctl::inventory::Service, n: u32) {
    let sticky = lvsctl::judge::policy(svc) == lvsctl::judge::Policy::Sticky;
    let earlier = if sticky { BTreeMap::new() } else { entries_by_client_port(l, svc) };
    let answers = traffic_from(l, svc, n);
    let (followed, scheduled): (Vec<_>, Vec<_>) =
        answers.iter().partition(|(who, port)| earlier.get(port).is_some_and(|to| to == who));
    let mut counts = BTreeMap::new();
    for (who, _) in &scheduled {
        *counts.entry(who.clone()).or_insert(0) += 1;
    }
    if !followed.is_empty() {
        eprintln!("{}: {} answers followed entries the director kept: {followed:?}", svc.label(), followed.len());
    }
    let judged = std::panic::catch_unwind(|| judge_split(svc, &counts, scheduled.len() as u32));
    if let Err(e) = judged {
        eprintln!("{}: who answered, by source port: {answers:?}", svc.label());
        explain_split(l);
        std::panic::resume_unwind(e);
    }
}

/// The directors' connection entries to `svc`'s VIP and port that a new connection from the same
/// client port follows, by client source port: the real server each points to (`ipvsadm -Lnc`; a
/// backup's synced entries are the master's).
fn entries_by_client_port(l: &Lab, svc: &lvsctl::inventory::Service) -> BTreeMap<String, String> {
    let virtual_ = std::net::SocketAddr::new(svc.ipvs.vip, svc.ipvs.port).to_string();
    let mut out = BTreeMap::new();
    for d in l.lab.hosts_with_role(lvsctl::inventory::Role::Director) {
        let got = l.sh(&d.name, "cat /proc/sys/net/ipv4/vs/conn_reuse_mode; ipvsadm -Lnc");
        let (mode, table) = got.split_once('\n').unwrap_or((&got, ""));
        let mode: u32 = mode.trim().parse().unwrap_or_else(|e| panic!("{}: conn_reuse_mode {mode:?}: {e}", d.name));
        out.extend(parse_entries(table, &virtual_, svc, mode));
    }
    out
}

/// The client ports `director`'s connection entries to `svc`'s VIP and port hold for at least
/// `min_left_s` more seconds (`ipvsadm -Lnc`'s expire column, `mm:ss`).
pub fn held_ports(l: &Lab, director: &str, svc: &lvsctl::inventory::Service, min_left_s: u32) -> BTreeSet<u16> {
    let virtual_ = std::net::SocketAddr::new(svc.ipvs.vip, svc.ipvs.port).to_string();
    parse_held(&l.run(director, &["ipvsadm", "-Lnc"]), &virtual_, &svc.ipvs.protocol.to_string(), min_left_s)
}

/// `held_ports`' reading of `ipvsadm -Lnc` lines (`pro expire state source virtual destination`).
pub fn parse_held(table: &str, virtual_: &str, protocol: &str, min_left_s: u32) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for line in table.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [pro, expire, _, source, virt, _] = w[..] else { continue };
        let left = expire.split_once(':').and_then(|(m, s)| Some(m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?));
        let Ok(source) = source.parse::<std::net::SocketAddr>() else { continue };
        if pro.eq_ignore_ascii_case(protocol) && virt == virtual_ && left.is_some_and(|t| t >= min_left_s) {
            out.insert(source.port());
        }
    }
    out
}

/// `pro expire state source virtual destination` lines of `ipvsadm -Lnc` to `virtual_` that a new
/// connection from the same client port follows: client port → the real server (by name) of the
/// destination. With `conn_reuse_mode` on (1, the default), the kernel schedules a new TCP
/// connection afresh over an entry in TIME_WAIT or CLOSE, and with its bit 2 over a DR or TUN
/// entry in FIN_WAIT (`is_new_conn_expected` in ip_vs_core.c); an SCTP entry in CLOSED likewise.
/// The entries of a non-persistent service have no template controlling them.
pub fn parse_entries(
    table: &str,
    virtual_: &str,
    svc: &lvsctl::inventory::Service,
    conn_reuse_mode: u32,
) -> BTreeMap<String, String> {
    let rescheduled = |state: &str| {
        conn_reuse_mode != 0
            && match state {
                "TIME_WAIT" | "CLOSE" | "CLOSED" => true,
                "FIN_WAIT" => conn_reuse_mode & 2 != 0 && svc.mode != lvsctl::modes::Mode::Nat,
                _ => false,
            }
    };
    let mut out = BTreeMap::new();
    for line in table.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [_, _, state, source, virt, dest] = w[..] else { continue };
        if rescheduled(state) {
            continue;
        }
        let (Ok(source), Ok(dest)) = (source.parse::<std::net::SocketAddr>(), dest.parse::<std::net::SocketAddr>())
        else {
            continue;
        };
        if virt != virtual_ {
            continue;
        }
        if let Some(b) = svc.real_servers.iter().find(|b| b.address == dest.ip()) {
            out.insert(source.port().to_string(), b.host.clone());
        }
    }
    out
}

/// What the directors' connection tables and the real servers held when a split was wrong
/// (IPVS keys its entries by the client's source port, which `assert_split` printed).
pub fn explain_split(l: &Lab) {
    for d in l.lab.hosts_with_role(lvsctl::inventory::Role::Director) {
        // The table with its weights, its connections, and what keepalived did last (a reload
        // that re-set a weight restarts wrr's round mid-split).
        let script = format!(
            "date +%s.%N; ipvsadm -Ln; ipvsadm -Lnc; ip neigh; tail -n 30 /run/lvsctl-{}-keepalived.log 2>/dev/null",
            l.lab.name
        );
        eprintln!("{} at the failure: {}", d.name, l.sh(&d.name, &script));
    }
    for h in l.lab.hosts_with_role(lvsctl::inventory::Role::RealServer) {
        eprintln!("{} at the failure: {}", h.name, l.sh(&h.name, "ip -br addr; ip route; ip neigh; ss -tan"));
    }
}

/// `assert_split`'s judgement of counts already taken.
pub fn judge_split(svc: &lvsctl::inventory::Service, counts: &BTreeMap<String, u32>, n: u32) {
    assert_only_real_servers(svc, counts, n);
    if lvsctl::judge::policy(svc) == lvsctl::judge::Policy::Sticky {
        assert_eq!(
            counts.len(),
            1,
            "{}: {} keeps one client on one real server: {counts:?}",
            svc.label(),
            if svc.ipvs.persistence > 0 { "persistence" } else { svc.ipvs.scheduler.as_str() }
        );
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
            svc.ipvs.scheduler
        );
    }
}

/// What a client sends requests to: each service, and each (VIP, port) of a firewall-mark
/// service on its own (verify's probe units, so that the tests and verify agree).
pub fn units(lab: &lvsctl::inventory::Lab) -> Vec<lvsctl::inventory::Service> {
    lvsctl::judge::probe_units(lab)
}

/// A 1 MB download and a 1 MB upload through a TCP service's VIP of each family, from the client:
/// full-size packets both ways (a download's leave the real server, an upload's cross the
/// director, where NAT rewrites them and TUN adds its outer header). Each must arrive whole. One
/// service per family: what is proven is the mode's path, the same for every service of it (and
/// each megabyte costs seconds in a loaded guest).
pub fn big_transfers(l: &Lab) {
    const MB: usize = 1 << 20;
    let mut per_family: Vec<lvsctl::inventory::Service> = Vec::new();
    for u in units(&l.lab).into_iter().filter(|u| u.ipvs.protocol == lvsctl::ipvs::Protocol::Tcp) {
        // A plain service before a firewall-mark one, where a lab has both.
        match per_family.iter().position(|x| x.family() == u.family()) {
            None => per_family.push(u),
            Some(i) if per_family[i].ipvs.fwmark.is_some() && u.ipvs.fwmark.is_none() => per_family[i] = u,
            Some(_) => {}
        }
    }
    for u in per_family {
        let url = format!("http://{}/", std::net::SocketAddr::new(u.ipvs.vip, u.ipvs.port));
        // -H Expect: sends the body at once (curl would wait a second for "100 Continue").
        let out = l.sh(
            "client",
            &format!(
                "curl -sS -g -m 60 -o /dev/null -w 'download %{{http_code}} %{{size_download}}\n' {url}bytes/{MB} && \
                 head -c {MB} /dev/zero | curl -sS -g -m 60 -H Expect: --data-binary @- {url}upload"
            ),
        );
        let mut lines = out.lines();
        let download = lines.next().unwrap_or_default();
        let size: usize = download.strip_prefix("download 200 ").and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(size > MB, "{}: a 1 MB download through the VIP: {out}", u.label());
        assert!(out.contains(&format!("received {MB}")), "{}: a 1 MB upload through the VIP: {out}", u.label());
    }
}

/// TUN without path MTU discovery: the router drops ICMP "fragmentation needed" and "packet too
/// big" (as firewalls do), the client forgets what it learnt, and the 1 MB transfers must still
/// complete — the real servers' advmss keeps the client's segments small enough for the
/// director's outer header — with no PMTU exception on the client for any VIP (none was needed).
pub fn big_transfers_without_icmp(l: &Lab) {
    let router = l.lab.hosts.iter().find(|h| h.role == lvsctl::inventory::Role::Router).expect("a router").name.clone();
    let table = "lvsctl-test-no-pmtu";
    l.sh(
        &router,
        &format!(
            "nft -f - <<'EOF'\ntable inet {table} {{\n  chain f {{\n    type filter hook forward priority 0;\n    \
             icmp type destination-unreachable counter drop\n    icmpv6 type packet-too-big counter drop\n  }}\n}}\nEOF"
        ),
    );
    l.sh("client", "ip route flush cache; ip -6 route flush cache");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        big_transfers(l);
        for u in units(&l.lab) {
            let route = l.sh("client", &format!("ip route get {}", u.ipvs.vip));
            assert!(!route.contains(" mtu "), "{}: the client learnt a smaller path MTU: {route}", u.label());
        }
    }));
    let dropped = l.sh(&router, &format!("nft list table inet {table}; nft delete table inet {table}"));
    if let Err(e) = result {
        eprintln!("what the router dropped:\n{dropped}");
        std::panic::resume_unwind(e);
    }
}

/// A persistent firewall-mark service keeps the client on one real server across all its ports
/// of one family: which one each port of each IPVS service answered from.
pub fn assert_sticky_across_ports(l: &Lab, n: u32) {
    let answers: Vec<(lvsctl::inventory::Service, BTreeMap<String, u32>)> = units(&l.lab)
        .into_iter()
        .filter(|u| u.ipvs.fwmark.is_some() && u.ipvs.persistence > 0)
        .map(|u| {
            let counts = traffic(l, &u, n);
            (u, counts)
        })
        .collect();
    judge_sticky_across_ports(&answers, n);
}

/// `assert_sticky_across_ports`' judgement of counts already taken, per probe unit.
pub fn judge_sticky_across_ports(answers: &[(lvsctl::inventory::Service, BTreeMap<String, u32>)], n: u32) {
    let mut by_key: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for (u, counts) in answers {
        assert_only_real_servers(u, counts, n);
        let seen = by_key.entry(u.key().to_string()).or_default();
        for (h, c) in counts {
            *seen.entry(h.clone()).or_default() += c;
        }
    }
    for (key, seen) in by_key {
        assert_eq!(seen.len(), 1, "{key}: every port reached the same real server: {seen:?}");
    }
}
