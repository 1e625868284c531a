//! `lvsctl drain` under a load from the lab's client, shared by the real-kernel scenarios.

use std::process::Command;
use std::time::Instant;

use super::lab::{Lab, lvsctl_bin, text};
use super::vm::assert_split;

/// Which real server `drain_under_load` drains.
#[derive(Clone, Copy)]
pub enum Drain<'a> {
    /// This one, from a plain TCP service it serves.
    Host(&'a str),
    /// The one the client's persistence template names, in a persistent TCP service: with
    /// persistence the client's new connections follow the template, weight 0 or not, unless
    /// the director lets the templates of a weight-0 server expire.
    Persistent,
}

impl std::fmt::Display for Drain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Drain::Host(h) => f.write_str(h),
            Drain::Persistent => f.write_str("the real server the client's persistence template names"),
        }
    }
}

/// `lvsctl drain INV RS ARGS…` / `undrain` (the inventory comes before the real server).
fn drain_cmd(l: &Lab, verb: &str, rs: &str, args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    let out = Command::new(lvsctl_bin())
        .arg(verb)
        .arg(&l.inv)
        .arg(rs)
        .args(args)
        .env("LVSCTL_STATE_DIR", l.state_dir.path())
        .env("LVSCTL_SSH_PERSIST", "900")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    eprintln!("lvsctl {verb} {rs} {}: {} in {:.1} s", args.join(" "), out.status, started.elapsed().as_secs_f64());
    out
}

/// `lvsctl lab load INV --from client --to TO …`: a bounded load from the lab's client.
fn load_command(l: &Lab, to: &str, seconds: u32, slow: u32, slow_bytes: u64) -> Command {
    let mut c = Command::new(lvsctl_bin());
    c.args(["lab", "load"])
        .arg(&l.inv)
        .args(["--from", "client", "--to", to, "--seconds", &seconds.to_string(), "--concurrency", "4"])
        .args(["--slow", &slow.to_string(), "--slow-bytes", &slow_bytes.to_string()])
        // Under the client's port wrap: a DR director's entries of closed connections (FIN_WAIT,
        // 2 minutes) would send later requests on those ports to their old real server, and
        // the scenario's splits after the drain would follow them instead of the scheduler.
        .args(["--rate", "40"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// A load from the client running while the caller works. Each slow worker starts its next
/// paced download when one ends (4 MB: about 12 s each), so that downloads are open whenever a
/// drain sets the weight to 0, however long a loaded guest takes to get there, and drain has
/// them to wait for.
fn load_in_background(l: &Lab, to: &str, seconds: u32, slow: u32) -> std::process::Child {
    load_command(l, to, seconds, slow, 4_000_000).spawn().unwrap()
}

/// Ends a load early, as its deadline would (it still reports).
fn stop_load(child: &std::process::Child) {
    // SAFETY: a signal to our own child, by its pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

fn load_report(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("lab load: {e}:\n{}", text(&out)))
}

/// `rs` drained while the client sends short requests and paced downloads through the director:
/// not one request fails, no request that started after the director's "weight 0" reaches `rs`,
/// the downloads finish, and drain returns once `rs` has no active connection. `up` keeps the
/// drain, `status` sees no drift; `undrain` brings the split back; `drain --remove` takes `rs` out
/// with no client left hanging; `undrain` puts it back.
pub fn drain_under_load(l: &Lab, which: Drain) {
    // What the load goes to: one IPv4 VIP and port of the service (a probe unit: one port of a
    // firewall-mark service).
    let units = super::vm::units(&l.lab);
    let unit = units
        .iter()
        .find(|u| {
            u.ipvs.protocol == lvsctl::ipvs::Protocol::Tcp
                && u.ipvs.vip.is_ipv4()
                && match which {
                    Drain::Host(rs) => u.ipvs.fwmark.is_none() && u.real_servers.iter().any(|r| r.host == rs),
                    Drain::Persistent => u.ipvs.persistence > 0,
                }
        })
        .unwrap_or_else(|| panic!("a TCP service to drain {which} from"));
    let rs_name = match which {
        Drain::Host(rs) => rs.to_string(),
        Drain::Persistent => {
            let first = super::vm::traffic(l, unit, 1);
            first.keys().next().expect("an answer").clone()
        }
    };
    let rs = rs_name.as_str();
    eprintln!("drain under load: {rs} from {}", unit.label());
    let svc = unit;
    let to = format!("{}", std::net::SocketAddr::new(svc.ipvs.vip, svc.ipvs.port));
    // The load runs until a few seconds after the drain is done (at most 3 minutes): requests
    // before and after weight 0, however long a loaded guest takes to get there.
    let load = load_in_background(l, &to, 180, 4);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let out = drain_cmd(l, "drain", rs, &["--timeout", "120", "--output", "jsonl"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    stop_load(&load);
    if !out.status.success() {
        // What kept it: the directors' connection entries, and the load's own account.
        let tables: Vec<String> = l
            .lab
            .hosts
            .iter()
            .filter(|h| h.role == lvsctl::inventory::Role::Director)
            .map(|d| format!("{}:\n{}", d.name, l.sh(&d.name, "ipvsadm -Lnc; ipvsadm -Ln --stats")))
            .collect();
        let report = load_report(load);
        panic!("drain {rs}:\n{}\n{}\nload: {report:#}", text(&out), tables.join("\n"));
    }
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|x| serde_json::from_str(x).unwrap()).collect();
    // One line per director and phase. Nothing reaches the server once its weight is 0 on every
    // director (keepalived's reload may take longer on one of a pair than on the other): the
    // latest director's "weight-0" is the moment.
    let phase = |p: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|x| x["type"] == "drain" && x["phase"] == p).collect()
    };
    let directors = l.lab.directors().count();
    let zeros = phase("weight-0");
    assert_eq!(zeros.len(), directors, "each director says when the weight is 0 there:\n{}", text(&out));
    let zero = *zeros.iter().max_by_key(|x| x["at_ms"].as_u64()).unwrap();
    let drained = phase("drained");
    assert_eq!(drained.len(), directors, "drain ends drained on each director:\n{}", text(&out));
    for d in &drained {
        assert_eq!(d["active"], 0, "{d}");
    }
    let drained = drained[0];
    let zero_at = zero["at_ms"].as_u64().unwrap();
    // Its connections at weight 0, on whichever director carries them.
    let zero_active: u64 = zeros.iter().map(|x| x["active"].as_u64().unwrap_or(0)).sum();
    let r = load_report(load);
    assert_eq!(r["short_failed"], 0, "no request failed during the drain: {}", r["failures"]);
    let slow = r["slow"].as_array().unwrap();
    for d in slow {
        // Whole, or still arriving when the test ended the load (after drain had returned).
        assert!(d["ok"] == true || d["cut"] == true, "no paced download failed: {d}");
    }
    let answered = r["answered"].as_array().unwrap();
    let late: Vec<&serde_json::Value> =
        answered.iter().chain(slow).filter(|a| a["started_ms"].as_u64() > Some(zero_at) && a["server"] == rs).collect();
    assert!(late.is_empty(), "no request or download that started after weight 0 reached {rs}: {late:?}");
    // The paced downloads open on `rs` when its weight became 0 (the client and the director
    // share the guest's clock): drain counted them, and waited for them to finish.
    let open_at = |d: &&serde_json::Value| {
        d["started_ms"].as_u64() < Some(zero_at) && d["ended_ms"].as_u64().is_some_and(|e| e > zero_at)
    };
    let slow_on_rs: Vec<&serde_json::Value> = slow.iter().filter(|d| d["server"] == rs).filter(open_at).collect();
    for d in &slow_on_rs {
        assert!(d["ok"] == true, "drain returned only once its downloads open at weight 0 had finished whole: {d}");
    }
    eprintln!(
        "drain of {rs}: weight 0 with {} active; drained after {} ms; {} of its paced downloads open then",
        zero_active,
        drained["elapsed_ms"],
        slow_on_rs.len()
    );
    assert!(
        slow.iter().any(|d| open_at(&d)),
        "paced downloads were open when drain set weight 0 (else it proves no wait): {slow:?}"
    );
    if !slow_on_rs.is_empty() {
        assert!(zero_active >= 1, "its open downloads counted at weight 0: {zeros:?}");
        assert!(lines.iter().any(|x| x["phase"] == "waiting"), "drain showed the count falling:\n{}", text(&out));
    }
    let before = answered.iter().filter(|a| a["started_ms"].as_u64() < Some(zero_at) && a["server"] == rs).count();
    let after = answered.iter().filter(|a| a["started_ms"].as_u64() > Some(zero_at)).count();
    assert!(before > 0 && after > 0, "the load ran on both sides of the drain: {before} to {rs} before, {after} after");

    let up = l.ok(&["up"]);
    assert!(up.contains(&format!("kept {rs} drained (weight 0) since")), "up keeps the drain and says so:\n{up}");
    let status = l.ok(&["status"]);
    assert!(!status.contains("DRIFTED"), "a drain is not drift:\n{status}");
    assert!(status.contains(&format!("{rs} is kept drained (weight 0) since")), "status says so:\n{status}");
    let out = l.lvsctl(&["status", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let st = super::schema::parse(&lvsctl_bin(), "status", &out.stdout);
    let director = l.lab.director().expect("a director").name.clone();
    let report = st["hosts"].as_array().unwrap().iter().find(|h| h["host"] == director.as_str()).expect("the director");
    let drained = &report["report"]["drained"];
    assert!(drained[0]["host"] == rs && drained[0]["removed"] == false, "status --output json: {report:#}");
    assert!(report["report"]["ipvs_timeouts"]["tcp_fin"].as_u64().is_some(), "live timeouts in JSON: {report:#}");
    // verify expects nothing of a drained real server, and says it is drained.
    let v = l.ok(&["verify"]);
    assert!(v.contains("DRAINED since"), "verify honours the drain:\n{v}");
    let d = l.ok(&["doctor"]);
    assert!(d.contains("no problem found"), "doctor: a drained real server is no problem:\n{d}");
    let out = drain_cmd(l, "undrain", rs, &[]);
    assert!(out.status.success(), "undrain {rs}:\n{}", text(&out));
    for s in &super::vm::units(&l.lab) {
        assert_split(l, s, 16);
    }

    if svc.keepalived_managed() {
        // keepalived keeps its real servers in the table: --remove is refused, nothing changes.
        // The table as ipvsadm-save writes it (services, real servers, weights): `ipvsadm -Ln`'s
        // connection counts change by themselves as closed connections expire.
        let before = l.run(&l.lab.director().expect("a director").name, &["ipvsadm-save", "-n"]);
        let out = drain_cmd(l, "drain", rs, &["--remove"]);
        let t = text(&out);
        assert!(!out.status.success() && t.contains("--remove applies to services lvsctl programs itself"), "{t}");
        let after = l.run(&l.lab.director().expect("a director").name, &["ipvsadm-save", "-n"]);
        assert_eq!(before, after, "a refused drain --remove changes nothing");
        return;
    }
    // Out of the table once drained: the clients that come after are all answered.
    let out = drain_cmd(l, "drain", rs, &["--remove", "--timeout", "120"]);
    assert!(out.status.success() && text(&out).contains("taken out of the table"), "drain --remove:\n{}", text(&out));
    let table = l.run(&l.lab.director().expect("a director").name, &["ipvsadm", "-Ln"]);
    let rs_addr = svc.address_of(rs).expect("its address").to_string();
    assert!(!table.contains(&format!("{rs_addr}:")), "{rs} is out of the table:\n{table}");
    let r = load_report(load_in_background(l, &to, 3, 0));
    assert_eq!(r["short_failed"], 0, "no client hangs after --remove: {}", r["failures"]);
    assert!(r["by_server"].get(rs).is_none(), "{}", r["by_server"]);
    let out = drain_cmd(l, "undrain", rs, &[]);
    assert!(out.status.success(), "undrain {rs}:\n{}", text(&out));
    for s in &super::vm::units(&l.lab) {
        assert_split(l, s, 16);
    }
}
