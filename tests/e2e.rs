//! End to end, on a real IPVS kernel (this one, or a qemu guest through `lvsctl lab vm`): build
//! an example lab, `lvsctl up` over real SSH, send traffic from the client, check idempotence,
//! status, a reboot of a real server, `lvsctl down` restoring every host exactly, and destroy.
//!
//! The observers are independent of lvsctl: curl and a UDP probe on the client, iproute2 and
//! /proc on the hosts, and each host's overlay upper layers (exactly the files it wrote).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::drain::{Drain, drain_under_load};
use common::lab::{Lab, assert_same, lvsctl_bin, snapshot, text};
use common::vm::{assert_split, here_or_in_vm};

fn changes_in_json(out: &str) -> u64 {
    let start = out.find('{').expect("json output");
    let v = common::schema::parse(&lvsctl_bin(), "up", &out.as_bytes()[start..out.rfind('}').unwrap() + 1]);
    assert_eq!((v["schema_version"].as_u64(), v["command"].as_str()), (Some(1), Some("up")), "the envelope");
    v["hosts"].as_array().unwrap().iter().map(|h| h["report"]["changes"].as_u64().expect("every host answered")).sum()
}

/// The README's example after `heading` is what the command printed: each of its lines
/// (durations, sizes and hashes aside; `…` stands for what is left out) is in `screen`.
fn readme_example_is_on_screen(screen: &str, heading: &str) {
    readme_example_is_on_screen_but(screen, heading, |l| l.to_string())
}

/// As `readme_example_is_on_screen`, each line of both passed through `mask` first.
fn readme_example_is_on_screen_but(screen: &str, heading: &str, mask: impl Fn(&str) -> String) {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let start = readme.find(heading).expect("the example in the README") + heading.len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let screen: String = common::normalized(screen).lines().map(|l| mask(l) + "\n").collect();
    for line in common::normalized(block).lines().filter(|l| !l.trim().is_empty() && l.trim() != "…") {
        let line = &mask(line);
        // A line cut short with `…` stands for every line that starts with what it shows.
        let shown = |s: &str| match line.strip_suffix('…') {
            Some(start) => s.starts_with(start),
            None => s == line,
        };
        assert!(screen.lines().any(shown), "the README's {line:?} is not on the screen:\n{screen}");
    }
}

/// A row of verify's table with its director column (the 7th word) as `N`, words joined by one
/// space; any other line as it is.
fn director_column_masked(line: &str) -> String {
    verify_row_masked(line, &[6])
}

/// A row of verify's table with the words at `columns` (0 is the real server's name) as `N`,
/// words joined by one space; any other line as it is.
fn verify_row_masked(line: &str, columns: &[usize]) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let is_row = words.len() > 7 && words[4].ends_with('%');
    if !is_row {
        return line.to_string();
    }
    let masked: Vec<&str> = words.iter().enumerate().map(|(i, w)| if columns.contains(&i) { "N" } else { w }).collect();
    format!("  {}", masked.join(" "))
}

/// `status --output json` shows the director's IPVS table in the names and values of
/// `plan --output json`: each planned service is there, with its destinations as planned.
fn status_json_is_the_plan(l: &Lab) {
    let bin = lvsctl_bin();
    let st = l.lvsctl(&["status", "--output", "json"]);
    let st = common::schema::parse(&bin, "status", &st.stdout);
    let plan = common::schema::parse(&bin, "plan", &l.lvsctl(&["plan", "--output", "json"]).stdout);
    let dests = |s: &serde_json::Value| -> BTreeSet<String> {
        s["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| format!("{} {} {} {}", d["address"], d["port"], d["forward"], d["weight"]))
            .collect()
    };
    for p in plan["hosts"].as_array().unwrap().iter().filter(|p| !p["ipvs"].as_array().unwrap().is_empty()) {
        let host =
            st["hosts"].as_array().unwrap().iter().find(|h| h["host"] == p["host"]).expect("the director's status");
        let table = host["report"]["ipvs"].as_array().unwrap_or_else(|| panic!("no IPVS table in {host:#}"));
        for want in p["ipvs"].as_array().unwrap() {
            // A firewall-mark service is named by its mark and family, any other by its address.
            let same = |s: &serde_json::Value| match want["fwmark"].as_u64() {
                Some(_) => {
                    let family = if want["vip"].as_str().unwrap().contains(':') { "ipv6" } else { "ipv4" };
                    s["fwmark"] == want["fwmark"] && s["family"] == family
                }
                None => ["protocol", "vip", "port"].iter().all(|k| s[k] == want[k]),
            };
            let got = table
                .iter()
                .find(|s| same(s))
                .unwrap_or_else(|| panic!("{want:#} not in {:#}", host["report"]["ipvs"]));
            for k in ["scheduler", "persistence"] {
                assert_eq!(got[k], want[k], "{k} of {}", want["vip"]);
            }
            assert_eq!(dests(got), dests(want), "destinations of {}", want["vip"]);
        }
    }
}

/// One thing broken by hand on a provisioned lab, and what verify and doctor must say of it.
struct Break<'a> {
    what: &'a str,
    /// The host to break, with a shell snippet run there (iproute2, /proc, ipvsadm: not lvsctl).
    host: &'a str,
    script: &'a str,
    /// Text verify's failure must contain; None: traffic still works and verify passes.
    verify_fails_with: Option<&'a str>,
    /// Every (host, cause) doctor must report besides drift on the broken host: no more, no less.
    doctor: &'a [(&'a str, &'a str)],
    /// After `lvsctl up --host HOST` repaired it: a snippet on a host, for state outside any
    /// host's plan (a router's ARP cache poisoned while the real server answered ARP). Without
    /// drift, the only repair.
    after_repair: Option<(&'a str, &'a str)>,
    /// The break changed what the host's plan holds: doctor also reports drift there, and
    /// `lvsctl up --host HOST` repairs it. Otherwise (something added beside the plan, which
    /// lvsctl leaves alone) neither happens.
    drift: bool,
    /// The README's example of doctor's text for this break (the line it starts after).
    readme: Option<&'a str>,
}

/// Breaks one thing, checks verify and doctor, repairs with `lvsctl up --host`.
fn break_one(l: &Lab, b: &Break) {
    l.sh(b.host, b.script);
    let v = l.lvsctl(&["verify", "--requests", "8", "--timeout", "2"]);
    let vt = text(&v);
    match b.verify_fails_with {
        Some(want) => {
            assert_eq!(v.status.code(), Some(6), "{}: verify must fail:\n{vt}", b.what);
            assert!(vt.contains(want), "{}: verify should say {want:?}:\n{vt}", b.what);
        }
        None => assert!(v.status.success(), "{}: verify must pass:\n{vt}", b.what),
    }
    let d = l.lvsctl(&["doctor", "--output", "json"]);
    assert_eq!(d.status.code(), Some(6), "{}: doctor must find it:\n{}", b.what, text(&d));
    let doc = common::schema::parse(&lvsctl_bin(), "doctor", &d.stdout);
    assert_eq!((doc["command"].as_str(), doc["ok"].as_bool()), (Some("doctor"), Some(false)), "the envelope");
    let findings: Vec<serde_json::Value> = doc["findings"].as_array().expect("findings").clone();
    let got: std::collections::BTreeSet<(String, String)> = findings
        .iter()
        .map(|f| (f["host"].as_str().unwrap().to_string(), f["code"].as_str().unwrap().to_string()))
        .collect();
    let mut want: std::collections::BTreeSet<(String, String)> =
        b.doctor.iter().map(|(h, c)| (h.to_string(), c.to_string())).collect();
    if b.drift {
        want.insert((b.host.to_string(), "drift".to_string()));
    }
    assert_eq!(got, want, "{}: doctor's findings:\n{}", b.what, String::from_utf8_lossy(&d.stdout));
    for f in &findings {
        for k in ["cause", "evidence", "fix"] {
            assert!(!f[k].as_str().unwrap().is_empty(), "{}: every finding says its {k}: {f}", b.what);
        }
    }
    if let Some(heading) = b.readme {
        readme_example_is_on_screen(&text(&l.lvsctl(&["doctor"])), heading);
    }
    let out = l.ok(&["up", "--host", b.host, "--output", "json"]);
    if b.drift {
        assert!(changes_in_json(&out) > 0, "{}: up repairs it:\n{out}", b.what);
    } else {
        assert_eq!(changes_in_json(&out), 0, "{}: up leaves what is beside the plan alone:\n{out}", b.what);
    }
    if let Some((host, script)) = b.after_repair {
        l.sh(host, script);
    }
}

struct Checks<'a> {
    /// Run on hosts before the first snapshot: what the host was like before lvsctl.
    prepare: &'a [(&'a str, &'a str)],
    /// Crash the agents mid-up first (LVSCTL_FAULT_ABORT_AFTER), then check down restores.
    crash_first: bool,
    /// Hosts rebooted one after the other (`lab reboot`) near the end; the `after_up` checks hold
    /// again afterwards.
    reboot: &'a [&'a str],
    /// TOML appended to (a copy of) the inventory: an `[ipvs]` table.
    extra: &'a str,
    /// A real server drained under load from the client (`drain_under_load`).
    drain: Option<Drain<'a>>,
    /// Checks after up: (host, shell, text the output must contain).
    after_up: &'a [(&'a str, &'a str, &'a str)],
    breaks: &'a [Break<'a>],
}

/// The inode of the lab's control network namespace, where its controller's ssh runs.
fn lab_control_netns(l: &Lab) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(lvsctl::lab::control_netns(&l.lab.name)).expect("the lab's control namespace").ino()
}

/// PIDs of the ssh masters lvsctl keeps between commands (`ssh -M -S /run/lvsctl/ssh/...`) for
/// this lab: those in its control namespace (labs running at once each have their own).
fn kept_masters(l: &Lab) -> BTreeSet<u32> {
    masters_in(lab_control_netns(l))
}

/// PIDs of kept ssh masters whose network namespace has inode `netns`.
fn masters_in(netns: u64) -> BTreeSet<u32> {
    use std::os::unix::fs::MetadataExt;
    let mut pids = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        if args.iter().any(|a| *a == b"-M")
            && args.iter().any(|a| a.starts_with(b"/run/lvsctl/ssh/"))
            && std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == netns)
        {
            pids.insert(pid);
        }
    }
    pids
}

/// Another process holds the lab's lock on `director` (an `up` whose controller went away, a boot
/// unit): `up` says that it waits, and goes on once the lock is free. Each step waits for what it
/// needs (the lock taken, the note printed, the lock released), never for a fixed time.
fn lock_wait(l: &Lab, director: &str) {
    use std::io::{BufRead, BufReader};
    let lock = format!("/run/lvsctl-{}.lock", l.lab.name);
    let mut holder = Command::new(lvsctl_bin())
        .args(["lab", "exec"])
        .arg(&l.inv)
        .arg(director)
        .args(["--", "flock", &lock, "sh", "-c", "echo held; read _ || :"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut held = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut held).unwrap();
    assert_eq!(held, "held\n", "the holder took the lock on {director}");
    let mut up = l.command(&["up", "--host", director]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> =
        [Box::new(up.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(up.stderr.take().unwrap())]
            .into_iter()
            .map(|stream| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let _ = tx.send(line);
                    }
                })
            })
            .collect();
    drop(tx);
    let want = format!("waiting for the lab lock on {director}");
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains(&want)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("up never said {want:?} ({e}):\n{}", seen.join("\n")),
        }
    }
    // The lock is released: the holder's shell reads the end of its input and exits.
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let status = up.wait().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    seen.extend(rx.iter());
    assert!(status.success(), "up after the lock was released:\n{}", seen.join("\n"));
}

/// Prints what `full_cycle` runs for `c`, from the same values, without running it.
fn list_cycle(test: &str, inv: &str, c: &Checks) {
    let (_dir, path) = with_extra(inv, c.extra);
    let lab = lvsctl::inventory::load(&path).unwrap();
    let line = |l: &str| common::scenario_line(test, l);
    line(&format!("lab {inv} ({} hosts, {} probe units)", lab.hosts.len(), common::vm::units(&lab).len()));
    for (host, script) in c.prepare {
        line(&format!("prepare {host}: {script}"));
    }
    if c.crash_first {
        line("up crashed mid-apply (agent aborted after 4 changes), down restores exactly");
    }
    if lab.services.iter().any(|s| s.ipvs.fwmark.is_some()) {
        line("up refused without nft on the director, nothing changed");
    }
    if lab.metrics.is_some() {
        line("up refused with the exporter's port taken on the director, nothing changed");
    }
    line("up: one exec per host, the agent uploaded is lvsctl-agent");
    for (host, script, want) in c.after_up {
        line(&format!("after up on {host}: `{script}` shows {want:?}"));
    }
    line("traffic: every probe unit split by weight, persistence across ports");
    line("up again: 0 changes over the kept connections; status shows flags and one-packet; status json is the plan");
    if lab.name == "dr" {
        line("the lab lock held by another process: up waits for it");
        line("a changed installed agent: refused at boot, reinstalled by up; an unsafe directory refused");
    }
    line("verify and doctor pass, one exec per host");
    line(
        "trace of each service and family: every hop is a packet tcpdump saw there, and every place tcpdump saw the probe is a hop; one exec per host",
    );
    line(
        "metrics: promtool accepts them; every real server's counters equal ipvsadm --stats --exact; services by their names; one exec per director",
    );
    if lab.name == "dr" {
        line("top through a pipe during verify: each real server's conn/s 0 before, above 0 while requests flow");
    }
    if lab.metrics.is_some() {
        line(
            "exporter: a real Prometheus scrapes the director; its counters equal ipvsadm --stats --exact; the endpoint \
             answers GET /metrics only (promtool accepts it; 405, 404, 431 otherwise)",
        );
    }
    if lab.name == "dr" {
        line(
            "real servers replying through a forwarding director (made by hand): trace exits 6 naming the director; put back",
        );
        line("capture on the director during verify: a pcapng file tcpdump -r reads, with the requests");
    }
    if let Some(rs) = c.drain {
        line(&format!(
            "drain {rs} under load (short requests, paced downloads): none failed, nothing new reaches it after \
             weight 0, drain returns at 0 active; up keeps it; undrain: split by weight again; drain --remove: \
             no client hangs; undrain"
        ));
    }
    for b in c.breaks {
        let verify = b.verify_fails_with.map_or("verify passes".to_string(), |w| format!("verify fails with {w:?}"));
        let doctor: Vec<String> = b.doctor.iter().map(|(h, c)| format!("{h}:{c}")).collect();
        line(&format!("break on {}: {} ({verify}; doctor {})", b.host, b.what, doctor.join(" ")));
    }
    if !c.extra.is_empty() {
        line(&format!("inventory with {}", c.extra.trim().replace('\n', "; ")));
    }
    line(&format!(
        "reboot {}: the boot unit provisions it again, traffic split again, the after-up checks hold",
        c.reboot.join(" then ")
    ));
    line("down: every host as before (kernel state and files), destroy leaves nothing");
}

/// A DR lab made wrong by hand after `up`: the real servers' default route through the
/// director, which forwards (and takes packets from its own VIP). It still answers, the wrong
/// way: trace must exit 6 and name the director; then everything is put back.
fn dr_made_wrong_by_hand(l: &Lab) {
    let director = "lvs";
    let gateways: Vec<(String, String)> = ["web1", "web2"]
        .iter()
        .map(|h| (h.to_string(), l.sh(h, "ip -4 route show default").trim().to_string()))
        .collect();
    let sysctls = "net.ipv4.ip_forward net.ipv4.conf.all.accept_local net.ipv4.conf.eth0.accept_local \
                   net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter";
    let saved = l.sh(director, &format!("sysctl -e {sysctls}"));
    let dip = l.sh(director, "ip -4 -o addr show dev eth0 scope global | awk '{print $4; exit}'");
    let dip = dip.trim().split('/').next().unwrap().to_string();
    for (h, _) in &gateways {
        l.sh(h, &format!("ip route replace default via {dip}"));
    }
    l.sh(
        director,
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.accept_local=1 net.ipv4.conf.eth0.accept_local=1 \
         net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0",
    );
    let doc = common::trace::trace_as_tcpdump_sees_it(l, &[], false, &[]);
    let departures: Vec<&str> = doc["departures"].as_array().unwrap().iter().filter_map(|d| d.as_str()).collect();
    assert!(
        departures.len() == 1 && departures[0].contains(&format!("passed through the director {director}")),
        "{doc:#}"
    );
    assert!(doc["reply"].as_array().unwrap().iter().any(|h| h["host"] == director), "{doc:#}");
    // Put back exactly as it was.
    for (h, route) in &gateways {
        l.sh(h, &format!("ip route replace {route}"));
    }
    let restore: Vec<String> =
        saved.lines().filter_map(|x| x.split_once(" = ")).map(|(k, v)| format!("{k}={}", v.trim())).collect();
    l.sh(director, &format!("sysctl -qw {}", restore.join(" ")));
    let d = l.ok(&["doctor"]);
    assert!(d.contains("no problem found"), "after putting the DR lab back: {d}");
}

/// `lvsctl top` through a pipe while verify sends requests: plain lines per sample, the real
/// servers' connection rates 0 before and above 0 while the requests flow; Ctrl-C ends it.
fn top_shows_rates_rising(l: &Lab) {
    let top = common::lab::Watching::spawn(l.command(&["top"]).args(["--seconds", "120"]));
    let rate_of = |rs: &str, x: &str| -> Option<f64> {
        x.split_once(&format!(" lvs web {rs} conn/s="))?.1.split(' ').next()?.parse().ok()
    };
    // A rate once the second sample is in (top's connection may take seconds in a loaded guest).
    for rs in ["web1", "web2"] {
        top.wait_for(&format!("top shows a rate for {rs}"), 60, |x| rate_of(rs, x).is_some());
    }
    l.ok(&["verify", "--requests", "40"]);
    for rs in ["web1", "web2"] {
        top.wait_for(&format!("top shows {rs}'s rate rising"), 30, |x| rate_of(rs, x).is_some_and(|r| r > 0.0));
    }
    top.interrupt();
    let (t, out) = top.finish();
    assert!(out.status.success(), "top ends on Ctrl-C with status 0: {}", text(&out));
    for rs in ["web1", "web2"] {
        let rates: Vec<f64> = t.lines().filter_map(|x| rate_of(rs, x)).collect();
        assert_eq!(rates[0], 0.0, "{rs}: nothing flows before verify:\n{t}");
        assert!(t.contains(&format!(" lvs web {rs} ")) && t.contains("state=up"), "{t}");
    }
}

/// `lvsctl capture` on the director while verify sends requests: a pcapng file that tcpdump
/// reads, holding the requests to the VIP with their interface.
fn capture_read_back_by_tcpdump(l: &Lab) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lvs.pcapng");
    let file_s = file.to_str().unwrap().to_string();
    // The inventory comes before the host: `capture INV HOST …`.
    let capture = common::lab::Watching::spawn(l.command(&["capture"]).args([
        "lvs",
        "--seconds",
        "60",
        "--count",
        "40",
        "--out",
        &file_s,
    ]));
    // Until the capture runs: it says so once the agent captures.
    capture.wait_for("capture says lvs is capturing", 60, |x| x == "capture: lvs is capturing");
    l.ok(&["verify", "--requests", "12"]);
    let (_, out) = capture.finish();
    assert!(out.status.success(), "capture: {}", text(&out));
    assert!(text(&out).contains("40 packets from lvs written"), "{}", text(&out));
    let read = Command::new("tcpdump").args(["-nn", "-r", &file_s]).output().unwrap();
    let lines = String::from_utf8_lossy(&read.stdout).into_owned();
    assert!(read.status.success(), "tcpdump -r: {}", text(&read));
    assert_eq!(lines.lines().count(), 40, "{lines}");
    let vip = l.lab.services[0].ipvs.vip;
    assert!(lines.lines().any(|x| x.contains(&format!("> {vip}.80: Flags [S]"))), "{lines}");
    // An existing file is never overwritten.
    let again = l.command(&["capture"]).args(["lvs", "--seconds", "1", "--out", &file_s]).output().unwrap();
    assert!(!again.status.success() && text(&again).contains("never overwrites"), "{}", text(&again));
}

/// The inventory `inv` (relative to the repository) with `extra` appended, in a directory that
/// goes with the first value; `inv` itself without.
fn with_extra(inv: &str, extra: &str) -> (Option<tempfile::TempDir>, std::path::PathBuf) {
    let path = common::repo().join(inv);
    if extra.is_empty() {
        return (None, path);
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(path.file_name().unwrap());
    std::fs::write(&copy, std::fs::read_to_string(&path).unwrap() + "\n" + extra).unwrap();
    (Some(dir), copy)
}

fn full_cycle(test: &str, inv: &str, c: Checks) {
    if common::listing_scenarios() {
        return list_cycle(test, inv, &c);
    }
    let started = Instant::now();
    let mut ph = common::Phases::start(test);
    let (_extra_dir, inv_path) = with_extra(inv, c.extra);
    let l = Lab::create(&inv_path);
    for (host, script) in c.prepare {
        l.sh(host, script);
    }
    let before = snapshot(&l);
    ph.done("lab create");

    if c.crash_first {
        let out = Command::new(lvsctl_bin())
            .args(["up"])
            .arg(&l.inv)
            .env("LVSCTL_STATE_DIR", l.state_dir.path())
            .env("LVSCTL_FAULT_ABORT_AFTER", "4")
            // The commands after it reuse its connections: they must be kept as long as theirs
            // (the default 60 idle seconds run out under load before the test counts them).
            .env("LVSCTL_SSH_PERSIST", "900")
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(4), "the crashed up reports failed hosts:\n{t}");
        assert!(t.contains("the agent ended without a report"), "{t}");
        l.ok(&["down"]);
        assert_same(&before, &snapshot(&l), "after a crashed up and down");
        ph.done("crash");
    }
    if l.lab.services.iter().any(|s| s.ipvs.fwmark.is_some()) {
        // A director without nft (hidden in its mount namespace): up stops before any host
        // changed, and says what to install.
        let d = l.lab.director().expect("a director").name.clone();
        l.sh(&d, "mount --bind /dev/null /usr/sbin/nft");
        let out = l.lvsctl(&["up"]);
        let t = text(&out);
        assert!(!out.status.success(), "up must fail without nft on {d}:\n{t}");
        for want in [
            &format!("{d}: nft is not installed") as &str,
            "apt-get install nftables",
            "nothing was changed on any host",
        ] {
            assert!(t.contains(want), "up's error names {want:?}:\n{t}");
        }
        // nft back first: the snapshot lists the ruleset with it.
        l.sh(&d, "umount /usr/sbin/nft");
        assert_same(&before, &snapshot(&l), "after up refused to start without nft");
        ph.done("refusals");
    }
    if let Some(s) = l.lab.services.iter().find(|s| !s.encap.is_ipip()) {
        // A real server whose kernel has no module for the tunnel (its modules directory
        // replaced, in its mount namespace, by one that lists none): up stops before any host
        // changed, and names the module.
        let module = if s.encap.tun_type == lvsctl::ipvs::TunType::Gue { "fou" } else { "ip_gre" };
        let rs = s.real_servers[0].host.clone();
        let moved = "d=$(mktemp -d) && touch $d/modules.dep && mount --bind $d /lib/modules/$(uname -r) && echo $d";
        let dir = l.sh(&rs, moved).trim().to_string();
        let out = l.lvsctl(&["up"]);
        let t = text(&out);
        l.sh(&rs, &format!("umount /lib/modules/$(uname -r) && rm -r {dir}"));
        assert!(!out.status.success(), "up must fail without {module} on {rs}:\n{t}");
        for want in [
            &format!("{rs}: the kernel cannot load module {module}") as &str,
            &format!("modprobe -n {module}"),
            "nothing was changed on any host",
        ] {
            assert!(t.contains(want), "up's error names {want:?}:\n{t}");
        }
        assert_same(&before, &snapshot(&l), "after up refused a kernel without the tunnel's module");
        ph.done("refusals");
    }
    if let Some(d) = l.lab.directors().find(|d| l.lab.metrics_listen(d).is_some()) {
        // Something else listens on the exporter's port: up stops before any host changed.
        let listen = l.lab.metrics_listen(d).unwrap();
        let (name, ip, port) = (d.name.clone(), listen.ip(), listen.port());
        let squatter = l.sh(
            &name,
            &format!(
                "setsid python3 -c 'import socket,time\ns=socket.socket()\ns.bind((\"{ip}\",{port}))\ns.listen()\ntime.sleep(300)' \
                 </dev/null >/dev/null 2>&1 & echo $!; sleep 1"
            ),
        );
        let out = l.lvsctl(&["up"]);
        let t = text(&out);
        assert!(!out.status.success(), "up must fail with {listen} taken on {name}:\n{t}");
        for want in [
            &format!(
                "{name}: the exporter cannot listen there: port {port} is in use on this host (a socket listens on {listen})"
            ) as &str,
            "[metrics] port, or metrics_listen in [hosts.",
            "nothing was changed on any host",
        ] {
            assert!(t.contains(want), "up's error names {want:?}:\n{t}");
        }
        l.sh(&name, &format!("kill {}", squatter.trim()));
        common::lab::wait_gone(&l, &name, &listen.to_string());
        assert_same(&before, &snapshot(&l), "after up refused to start the exporter on a taken port");
        ph.done("refusals");
    }

    // The agent is not on the hosts (a fresh lab, or removed by down): the one exec that finds it
    // missing receives it (gzipped) and runs it. One exec per host per command, always.
    let every = |n: usize| -> BTreeMap<String, usize> { l.hosts().into_iter().map(|h| (h, n)).collect() };
    // The dr lab's first up is also the README's picture of a terminal.
    let (out, execs) = if l.lab.name == "dr" { l.counted_on_terminal(&["up"]) } else { l.counted(&["up"]) };
    assert!(out.contains("changed"), "{out}");
    if l.lab.name == "dr" {
        readme_example_is_on_screen(&out, "$ lvsctl up inventories/dr.toml\n");
    }
    // up asks directors that need a program (nft for firewall-mark and one-armed NAT services)
    // whether it is installed before it changes any host: one exec more there. So does a
    // director whose exporter's address must be free, and a host whose plan has a module a
    // distribution kernel may lack (GUE's fou, GRE's ip_gre: a tunnel's real servers).
    let mut up_execs = every(1);
    for d in l.lab.directors() {
        if l.lab.services.iter().any(|s| s.ipvs.fwmark.is_some() || s.snat) || l.lab.metrics_listen(d).is_some() {
            up_execs.insert(d.name.clone(), 2);
        }
    }
    for s in l.lab.services.iter().filter(|s| !s.encap.is_ipip()) {
        for h in s.real_servers.iter().map(|b| &b.host).chain(s.sorry_server.iter().filter_map(|x| x.host.as_ref())) {
            up_execs.insert(h.clone(), 2);
        }
    }
    assert_eq!(execs, up_execs, "ssh execs per host of the first up");
    // What went to the hosts is the agent-only build beside lvsctl, not lvsctl itself.
    let agent = std::fs::read(lvsctl_bin().with_file_name("lvsctl-agent")).expect("lvsctl-agent beside lvsctl");
    let controller_size = std::fs::metadata(lvsctl_bin()).unwrap().len() as usize;
    for h in l.hosts() {
        let installed = l.sh(&h, "cat /usr/local/lib/lvsctl/*/lvsctl | wc -c");
        assert_eq!(installed.trim(), agent.len().to_string(), "{h}: the installed agent is lvsctl-agent");
        assert!(
            agent.len() < controller_size,
            "lvsctl-agent ({}) is smaller than lvsctl ({controller_size})",
            agent.len()
        );
    }
    ph.done("up");
    let after_up = |when: &str| {
        for (host, script, want) in c.after_up {
            let got = l.sh(host, script);
            let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(squash(&got).contains(&squash(want)), "{host}: `{script}` should show {want:?} {when}:\n{got}");
        }
    };
    after_up("after up");
    for s in &common::vm::units(&l.lab) {
        assert_split(&l, s, 16);
    }
    common::vm::assert_sticky_across_ports(&l, 4);
    common::vm::big_transfers(&l);
    if l.lab.services.iter().any(|s| s.mode == lvsctl::inventory::Mode::Tun) {
        common::vm::big_transfers_without_icmp(&l);
    }
    ph.done("traffic");
    let masters = kept_masters(&l);
    assert_eq!(masters.len(), l.lab.hosts.len(), "one kept ssh connection per host: {masters:?}");
    let (again, execs) = l.counted(&["up", "--output", "json"]);
    assert_eq!(changes_in_json(&again), 0, "a second up changes nothing:\n{again}");
    assert_eq!(kept_masters(&l), masters, "the second command reused every host's connection");
    assert_eq!(execs, up_execs, "ssh execs per host of the second up");
    let (status, execs) = l.counted(&["status"]);
    assert_eq!(execs, every(1), "ssh execs per host of status");
    assert!(!status.contains("DRIFTED"), "{status}");
    assert!(status.contains("IPVS on"), "{status}");
    let t = &l.lab.ipvs.timeouts;
    if let (Some(tcp), Some(fin), Some(udp)) = (t.tcp, t.tcp_fin, t.udp) {
        let line = format!("timeouts (tcp tcpfin udp): {tcp} {fin} {udp}");
        assert!(status.contains(&line), "status shows the director's live timeouts ({line}):\n{status}");
    }
    // The scheduler's flags and one-packet scheduling, as the kernel holds them.
    for s in &l.lab.services {
        let key = s.key().to_string();
        let line = status.lines().find(|x| {
            x.trim_start().strip_prefix(&key).is_some_and(|r| r.starts_with(' ') && !r.trim_start().starts_with("ipv6"))
        });
        let line = line.unwrap_or_else(|| panic!("status shows {}:\n{status}", s.key()));
        for f in &s.ipvs.scheduler_flags {
            assert!(line.contains(f.as_str()), "status shows {} of {}: {line}", f.as_str(), s.label());
        }
        assert_eq!(line.contains("one-packet"), s.ipvs.one_packet, "status shows one-packet of {}: {line}", s.label());
    }
    status_json_is_the_plan(&l);
    if l.lab.name == "dr" {
        // Another process holds the lab's lock on the director (an `up` whose controller went
        // away, a boot unit): `up` says that it waits, and goes on once the lock is free.
        let director = l.lab.director().expect("a director").name.clone();
        lock_wait(&l, &director);

        // The installed agent runs as root only while it is the binary installed and nobody but
        // root could have changed it: a changed one is installed again, an unsafe directory
        // refused.
        l.sh("web1", "for f in /usr/local/lib/lvsctl/*/lvsctl; do printf x >> \"$f\"; done");
        // At boot the unit's check refuses it (sha256sum --check before ExecStart).
        let boot = Command::new(lvsctl_bin()).args(["lab", "reboot"]).arg(&l.inv).arg("web1").output().unwrap();
        assert!(!boot.status.success() && text(&boot).contains("FAILED"), "{}", text(&boot));
        assert!(!text(&boot).contains("changes,"), "the changed agent did not run at boot:\n{}", text(&boot));
        let again = l.ok(&["up", "--host", "web1"]);
        assert!(again.contains("did not match its sha256"), "{again}");
        assert_eq!(l.sh("web1", "cat /usr/local/lib/lvsctl/*/lvsctl | wc -c").trim(), agent.len().to_string());
        l.sh("web1", "chmod g+w /usr/local/lib/lvsctl");
        let refused = l.lvsctl(&["up", "--host", "web1"]);
        assert!(!refused.status.success() && text(&refused).contains("is not root's alone"), "{}", text(&refused));
        l.sh("web1", "chmod g-w /usr/local/lib/lvsctl");
    }

    // verify and doctor agree the lab works; then break one thing at a time.
    let (v, execs) = l.counted(&["verify"]);
    assert!(v.contains("every service answers as configured"), "{v}");
    if l.lab.name == "dr" {
        // The director column counts new IPVS connections: a client port reused while the
        // director still holds its old connection's entry is not a new one, so that column
        // may be lower than the answers by a request now and then (verify allows for it).
        //
        // A request from such a port goes where the old connection went, and verify says so
        // ("N answers followed entries the director kept …") and judges the split on the rest:
        // then the answered and share columns (and the bar) differ from the README's by those
        // answers, and only the rows' other columns are compared.
        if v.contains("answers followed entries the director kept from earlier connections") {
            let masked = |l: &str| verify_row_masked(l, &[3, 4, 6, 8]);
            readme_example_is_on_screen_but(&v, "$ lvsctl verify inventories/dr.toml\n", masked);
        } else {
            readme_example_is_on_screen_but(&v, "$ lvsctl verify inventories/dr.toml\n", director_column_masked);
        }
    }
    // The client sends; the director's counters are read before and after.
    let mut want = every(0);
    want.insert("client".into(), 1);
    want.insert("lvs".into(), 2);
    assert_eq!(execs, want, "ssh execs per host of verify");
    let (d, execs) = l.counted(&["doctor"]);
    assert!(d.contains("no problem found"), "{d}");
    assert_eq!(execs, every(1), "ssh execs per host of doctor");
    ph.done("checks");
    // trace: each service's request and reply, hop by hop, as tcpdump sees them on every host.
    for args in common::trace::targets(&l.lab) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let doc = common::trace::trace_as_tcpdump_sees_it(&l, &args, true, &[]);
        let director = common::trace::director_of(&doc);
        assert_eq!(director.as_deref(), l.lab.director().map(|d| d.name.as_str()), "{doc:#}");
    }
    if l.lab.name == "dr" {
        dr_made_wrong_by_hand(&l);
        capture_read_back_by_tcpdump(&l);
    }
    ph.done("trace");
    // metrics: the kernel's counters, named by the inventory, as ipvsadm counts them.
    let m = common::metrics::metrics_equal_ipvsadm(&l);
    for s in &l.lab.services {
        let name = s.name.clone().unwrap_or_else(|| s.key().to_string());
        assert!(m.contains(&format!("service=\"{name}\"")), "metrics name {name}:\n{m}");
    }
    if l.lab.name == "dr" {
        top_shows_rates_rising(&l);
    }
    // The exporter: a real Prometheus scrapes every director; what it holds is the kernel's count.
    if let Some(p) = common::metrics::Prometheus::start(&l) {
        common::metrics::scraped_equal_ipvsadm(&l, &p);
        common::metrics::endpoint_answers_only_get_metrics(&l, p.targets[0].1);
    }
    ph.done("metrics");
    if let Some(d) = c.drain {
        drain_under_load(&l, d);
        ph.done("drain");
    }
    for b in c.breaks {
        eprintln!("break: {}", b.what);
        break_one(&l, b);
    }
    if !c.breaks.is_empty() {
        // The breaks' own verify runs left connection entries on the director (one-armed NAT's:
        // SYN_RECV, a minute, to where no source NAT was then): verify sends from other ports,
        // at least every one the director will still hold when verify reads its table.
        let units = common::vm::units(&l.lab);
        let single = l.lab.directors().count() == 1;
        let held: Vec<usize> = match l.lab.director().filter(|_| single) {
            Some(d) => units.iter().map(|u| common::vm::held_ports(&l, &d.name, u, 20).len()).collect(),
            None => vec![],
        };
        let out = l.lvsctl(&["verify", "--output", "json"]);
        assert!(out.status.success(), "verify after the repairs:\n{}", text(&out));
        let v = common::schema::parse(&lvsctl_bin(), "verify", &out.stdout);
        let services = v["services"].as_array().expect("services");
        assert!(v["ok"] == true && services.len() == units.len(), "after the repairs: {v:#}");
        assert!(services.iter().all(|s| s["problems"].as_array().is_some_and(|p| p.is_empty())), "{v:#}");
        for (s, n) in services.iter().zip(&held) {
            let avoided = s["client_ports_avoided"].as_u64().expect("client_ports_avoided");
            assert!(
                avoided >= *n as u64,
                "{}: the director held {n} client ports, verify avoided {avoided}",
                s["service"]
            );
        }
        if l.lab.name == "nat-onearm" {
            assert!(held.iter().sum::<usize>() > 0, "the breaks' requests left entries on the director: {held:?}");
        }
        let d = l.ok(&["doctor"]);
        assert!(d.contains("no problem found"), "after the repairs: {d}");
    }

    ph.done("breaks");
    // Reboot: the host's kernel state is gone, its files stay; the boot unit provisions it again.
    for host in c.reboot {
        let out = Command::new(lvsctl_bin()).args(["lab", "reboot"]).arg(&l.inv).arg(host).output().unwrap();
        assert!(out.status.success(), "lab reboot {host}:\n{}", text(&out));
        assert!(text(&out).contains("starting lvsctl-"), "the boot unit ran:\n{}", text(&out));
    }
    after_up("after the reboot");
    for s in &common::vm::units(&l.lab) {
        assert_split(&l, s, 16);
    }
    common::vm::assert_sticky_across_ports(&l, 4);
    let status = l.ok(&["status"]);
    assert!(!status.contains("DRIFTED"), "after the reboot: {status}");

    ph.done("reboot");
    let (_, execs) = l.counted(&["down"]);
    assert_eq!(execs, every(1), "ssh execs per host of down");
    assert_same(&before, &snapshot(&l), "after down");
    let name = l.lab.name.clone();
    let control = lab_control_netns(&l);
    drop(l);
    let leftovers = std::fs::read_dir("/run/netns")
        .map(|d| {
            // The lab's control namespace `lvsctl-LAB` and its hosts' `lvsctl-LAB.HOST`; not those
            // of another lab whose name starts with this one's (dr6 and dr6-ha run at once).
            let ours = |n: &str| n == format!("lvsctl-{name}") || n.starts_with(&format!("lvsctl-{name}."));
            d.flatten().filter(|e| ours(&e.file_name().to_string_lossy())).count()
        })
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "lab destroy leaves no namespace");
    assert_eq!(masters_in(control), BTreeSet::new(), "lab destroy ends the ssh connections kept for its hosts");
    assert!(!Path::new(&format!("/run/lvsctl/labs/{name}")).exists());
    ph.done("down");
    eprintln!("{inv}: full cycle in {:.0} s", started.elapsed().as_secs_f64());
}

#[test]
fn e2e_dr() {
    if !here_or_in_vm("e2e_dr") {
        return;
    }
    full_cycle(
        "e2e_dr",
        "inventories/dr.toml",
        Checks {
            // arp_ignore was 2 before lvsctl: it must be 2 again after down, not 0.
            prepare: &[("web1", "echo 2 > /proc/sys/net/ipv4/conf/all/arp_ignore")],
            crash_first: true,
            reboot: &["web1"],
            extra: "",
            drain: None,
            after_up: &[
                ("web1", "ip -o -4 addr show dev lo", "192.168.188.100/32"),
                ("web1", "cat /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/net/ipv4/conf/lo/arp_announce", "1\n2"),
                ("lvs", "ipvsadm -Ln", "192.168.188.81:80           Route   3"),
            ],
            breaks: &[
                Break {
                    what: "web1 answers ARP for the VIP (lvs_dr_rs.sh stop: arp_ignore and arp_announce back to 0)",
                    host: "web1",
                    // Forget the router's MAC: web1's next reply asks for it, from the VIP.
                    script: "for d in all lo; do echo 0 > /proc/sys/net/ipv4/conf/$d/arp_ignore; \
                             echo 0 > /proc/sys/net/ipv4/conf/$d/arp_announce; done; ip neigh flush dev eth0",
                    verify_fails_with: Some("the director never scheduled to it"),
                    doctor: &[("web1", "arp-ignore"), ("web1", "arp-announce")],
                    after_repair: Some(("router", "ip neigh del 192.168.188.100 dev eth0 || true")),
                    drift: true,
                    readme: Some("$ lvsctl doctor inventories/dr.toml\n"),
                },
                Break {
                    what: "web2 lost the VIP on lo",
                    host: "web2",
                    script: "ip addr del 192.168.188.100/32 dev lo",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("web2", "vip-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "web1 routes its replies through the director",
                    host: "web1",
                    script: "ip route replace default via 192.168.188.8 dev eth0",
                    verify_fails_with: Some("web1 never answered"),
                    doctor: &[("web1", "dr-gateway-director")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "the router stopped forwarding",
                    host: "router",
                    script: "echo 0 > /proc/sys/net/ipv4/ip_forward",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("router", "forwarding-off")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "web2 is no longer a destination",
                    host: "lvs",
                    script: "ipvsadm -d -t 192.168.188.100:80 -r 192.168.188.82:80",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("lvs", "dest-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "web2 quiesced: weight 0",
                    host: "lvs",
                    script: "ipvsadm -e -t 192.168.188.100:80 -r 192.168.188.82:80 -g -w 0",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("lvs", "dest-weight-zero")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "the client lost its route to the VIP",
                    host: "client",
                    script: "ip route del default",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("client", "vip-unroutable")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    // web2 gets the packets with the VIP rewritten to its address and answers the
                    // client from it, straight through the router: the client resets them.
                    what: "web2 is masqueraded in a DR service",
                    host: "lvs",
                    script: "ipvsadm -e -t 192.168.188.100:80 -r 192.168.188.82:80 -m -w 1",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("lvs", "dest-forward")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "the IPVS service is gone (the director itself refuses the connections)",
                    host: "lvs",
                    script: "ipvsadm -D -t 192.168.188.100:80",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("lvs", "service-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    // Nothing listens on the director: its share of the connections is refused.
                    what: "the director is a destination of its own service",
                    host: "lvs",
                    script: "ipvsadm -a -t 192.168.188.100:80 -r 192.168.188.8:80 -w 1",
                    verify_fails_with: Some("requests got no answer"),
                    doctor: &[("lvs", "director-is-real-server")],
                    after_repair: Some(("lvs", "ipvsadm -d -t 192.168.188.100:80 -r 192.168.188.8:80")),
                    drift: false,
                    readme: None,
                },
            ],
        },
    );
}

#[test]
fn e2e_dr6() {
    if !here_or_in_vm("e2e_dr6") {
        return;
    }
    full_cycle(
        "e2e_dr6",
        "inventories/dr6.toml",
        Checks {
            // A default route web2 had before lvsctl (as a router advertisement leaves one, in
            // the slot lvsctl's takes): down puts it back.
            prepare: &[("web2", "ip link set eth0 up && ip -6 route add default via fe80::1 dev eth0 metric 1024")],
            crash_first: false,
            reboot: &["web1"],
            extra: "",
            drain: None,
            after_up: &[
                ("web1", "ip -o -6 addr show dev lo", "2001:db8:188::100/128"),
                ("web2", "ip -6 route show default", "default via 2001:db8:188::200 dev eth0 proto 76 metric 1024"),
                ("lvs", "ip -o -6 addr show dev eth0", "2001:db8:188::100/128"),
                ("lvs", "ipvsadm -Ln", "[2001:db8:188::81]:80 Route 3"),
                ("router", "cat /proc/sys/net/ipv6/conf/all/forwarding", "1"),
            ],
            breaks: &[
                Break {
                    what: "web2 lost the IPv6 VIP on lo",
                    host: "web2",
                    script: "ip addr del 2001:db8:188::100/128 dev lo",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("web2", "vip-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "web1 routes its IPv6 replies through the director",
                    host: "web1",
                    script: "ip -6 route replace default via 2001:db8:188::8 dev eth0",
                    verify_fails_with: Some("web1 never answered"),
                    doctor: &[("web1", "dr-gateway-director")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "the router stopped forwarding IPv6",
                    host: "router",
                    script: "echo 0 > /proc/sys/net/ipv6/conf/all/forwarding",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("router", "forwarding-off")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "web2 is no longer a destination",
                    host: "lvs",
                    script: "ipvsadm -d -t [2001:db8:188::100]:80 -r [2001:db8:188::82]:80",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("lvs", "dest-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "the client lost its IPv6 route to the VIP",
                    host: "client",
                    script: "ip -6 route del default",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("client", "vip-unroutable")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
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
        "e2e_nat",
        "inventories/nat.toml",
        Checks {
            // The director already holds the VIP: it must keep it after down.
            prepare: &[("lvs", "ip addr add 192.168.188.100/32 dev eth0")],
            crash_first: false,
            reboot: &["web2"],
            extra: "",
            drain: Some(Drain::Host("web1")),
            after_up: &[
                ("lvs", "cat /proc/sys/net/ipv4/ip_forward", "1"),
                ("lvs", "ipvsadm -Ln", "10.10.0.82:8080             Masq"),
                ("web1", "ip -4 route show default", "default via 10.10.0.1"),
            ],
            breaks: &[
                Break {
                    what: "web1's replies bypass the director",
                    host: "web1",
                    script: "ip route replace default via 10.10.0.254 dev eth0",
                    verify_fails_with: Some("web1 never answered"),
                    doctor: &[("web1", "nat-gateway")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "the NAT director stopped forwarding",
                    host: "lvs",
                    script: "echo 0 > /proc/sys/net/ipv4/ip_forward",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("lvs", "forwarding-off")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    // Its requests still leave from 192.168.10.6 and work; a client really on that
                    // subnet would get replies that bypass the director's translation.
                    what: "the client has an address on the real servers' subnet",
                    host: "client",
                    script: "ip addr add 10.10.0.99/24 dev eth0",
                    verify_fails_with: None,
                    doctor: &[("client", "nat-client-on-rs-subnet")],
                    after_repair: Some(("client", "ip addr del 10.10.0.99/24 dev eth0")),
                    drift: false,
                    readme: None,
                },
            ],
        },
    );
}

#[test]
fn e2e_nat6() {
    if !here_or_in_vm("e2e_nat6") {
        return;
    }
    full_cycle(
        "e2e_nat6",
        "inventories/nat6.toml",
        Checks {
            // The director already holds the IPv6 VIP (an operator's earlier try): it must keep
            // it after down.
            prepare: &[("lvs", "ip -6 addr add 2001:db8:188::100/128 dev eth0 nodad")],
            crash_first: false,
            reboot: &["web2"],
            extra: "",
            drain: None,
            after_up: &[
                ("lvs", "cat /proc/sys/net/ipv6/conf/all/forwarding", "1"),
                ("lvs", "ipvsadm -Ln", "[fd00:10::82]:8080 Masq"),
                ("web1", "ip -6 route show default", "default via fd00:10::1 dev eth0 proto 76 metric 1024"),
            ],
            breaks: &[
                Break {
                    what: "the NAT director stopped forwarding IPv6",
                    host: "lvs",
                    script: "echo 0 > /proc/sys/net/ipv6/conf/all/forwarding",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("lvs", "forwarding-off")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "web1's IPv6 replies bypass the director",
                    host: "web1",
                    script: "ip -6 route replace default via fd00:10::254 dev eth0",
                    verify_fails_with: Some("web1 never answered"),
                    doctor: &[("web1", "nat-gateway")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
            ],
        },
    );
}

#[test]
fn e2e_tun6() {
    if !here_or_in_vm("e2e_tun6") {
        return;
    }
    full_cycle(
        "e2e_tun6",
        "inventories/tun6.toml",
        Checks {
            prepare: &[],
            crash_first: false,
            reboot: &["web1"],
            extra: "",
            drain: None,
            after_up: &[
                ("web1", "ip -o -6 addr show dev ip6tnl0", "2001:db8:188::100/128"),
                ("web1", "ip -o link show ip6tnl0", ",UP"),
                // Deprecated: never the outer source of the director's IPv6-in-IPv6 packets.
                ("lvs", "ip -6 addr show dev eth0", "preferred_lft 0sec"),
                ("lvs", "ipvsadm -Ln", "[2001:db8:188::82]:80 Tunnel"),
            ],
            breaks: &[
                Break {
                    what: "web2 lost the VIP on ip6tnl0",
                    host: "web2",
                    script: "ip addr del 2001:db8:188::100/128 dev ip6tnl0",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("web2", "vip-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    // The kernel also drops a link's IPv6 addresses when it goes down.
                    what: "web1's ip6tnl0 is down",
                    host: "web1",
                    script: "ip link set ip6tnl0 down",
                    verify_fails_with: Some("web1 never answered"),
                    doctor: &[("web1", "ip6tnl0-down"), ("web1", "vip-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
            ],
        },
    );
}

/// Dual-stack DR with one firewall-mark service over both families and two ports: lvsctl's
/// nftables table marks the packets, one IPVS service per family balances them by the mark, and
/// persistence holds across the ports. down removes the table and nothing else (the snapshot
/// includes the whole ruleset, and a table of the user's is there before and after).
#[test]
fn e2e_dr_fwmark() {
    if !here_or_in_vm("e2e_dr_fwmark") {
        return;
    }
    full_cycle(
        "e2e_dr_fwmark",
        "inventories/dr-fwmark.toml",
        Checks {
            prepare: &[(
                "lvs",
                "nft add table inet users-own && nft add chain inet users-own input '{ type filter hook input priority 0; policy accept; }'",
            )],
            crash_first: false,
            reboot: &["web1"],
            extra: "",
            drain: Some(Drain::Persistent),
            after_up: &[
                (
                    "lvs",
                    "nft list table inet lvsctl-dr-fwmark",
                    "ip6 daddr 2001:db8:188::100 tcp dport { 80, 8080 } meta mark set 0x0000000a",
                ),
                ("lvs", "nft list table inet users-own", "chain input"),
                ("lvs", "ipvsadm -Ln", "FWM 10 IPv6 rr persistent 300"),
                ("lvs", "ipvsadm -Ln", "-> [2001:db8:188::82]:0 Route 1"),
                ("lvs", "ipvsadm -Ln", "-> 192.168.188.81:0 Route 1"),
                ("web1", "ip -o -6 addr show dev lo", "2001:db8:188::100/128"),
            ],
            breaks: &[
                Break {
                    what: "the marking rules are gone",
                    host: "lvs",
                    script: "nft delete table inet lvsctl-dr-fwmark",
                    verify_fails_with: Some("8 of 8 requests got no answer"),
                    doctor: &[("lvs", "fwmark-rules-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                // Weight 0, not removed: a removed destination's lingering connections (IPVS keeps
                // them in TIME_WAIT) drop the client's new ones that reuse their source ports, so
                // verify would fail or not by chance. At weight 0 the persistent client stays
                // where it was and nothing is dropped.
                Break {
                    what: "web2's destination of the IPv6 mark has weight 0",
                    host: "lvs",
                    script: "ipvsadm -e -f 10 -6 -r [2001:db8:188::82]:0 -w 0",
                    verify_fails_with: None,
                    doctor: &[("lvs", "dest-weight-zero")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
            ],
        },
    );
}

/// IPVS at scale: 10,000 destinations (the nat lab plus 4,999 services of
/// its two real servers, on ports 10000 and up, mapped to the ports the real servers answer on). The agent is killed in the middle of the batch and `down` restores every
/// host exactly; then the whole table goes in, a second `up` changes nothing, and `down` restores
/// again. The table is counted by ipvsadm, not by lvsctl.
#[test]
fn e2e_scale_ten_thousand_destinations() {
    let test = "e2e_scale_ten_thousand_destinations";
    if !here_or_in_vm(test) {
        return;
    }
    if common::listing_scenarios() {
        let line = |l: &str| common::scenario_line(test, l);
        line(
            "lab: inventories/nat.toml renamed scale, plus 4,999 services of its two real servers (10,000 destinations)",
        );
        line("up killed mid-batch (agent aborted after 1,500 of its about 15,000 changes), down restores exactly");
        line("up of 10,000 destinations counted by ipvsadm, traffic through the first and last service");
        line("up again: 0 changes; down restores exactly");
        return;
    }
    let mut ph = common::Phases::start(test);
    let dir = tempfile::tempdir().unwrap();
    let nat = std::fs::read_to_string(common::repo().join("inventories/nat.toml")).unwrap();
    let mut inv = nat.replace("name = \"nat\"", "name = \"scale\"").replace("10.250.0.", "10.249.0.");
    let lab_at = inv.find("[lab]").unwrap();
    let mut services = String::new();
    for i in 0..4999 {
        services.push_str(&format!(
            "[[services]]\nname = \"s{i}\"\nvip = \"192.168.188.100\"\nport = {}\nscheduler = \"rr\"\n\
             real_servers = [{{ host = \"web1\", port = 80 }}, {{ host = \"web2\", port = 8080 }}]\n\n",
            10000 + i
        ));
    }
    inv.insert_str(lab_at, &services);
    let path = dir.path().join("scale.toml");
    std::fs::write(&path, inv).unwrap();
    let l = Lab::create(&path);
    let before = snapshot(&l);
    ph.done("lab create");
    // ipvsadm's own exit status is checked (`lab exec` fails on it): a dump cut short must not
    // read as a table with fewer destinations. The kernel resumes a dump of many services at a
    // position counted over every namespace's services, so while the other labs of this kernel
    // change theirs one listing can skip or repeat a service: counted until two listings agree.
    let count = || l.run("lvs", &["ipvsadm", "-Ln"]).lines().filter(|x| x.contains(" Masq ")).count();
    let dests = || {
        let mut last = count();
        for _ in 0..5 {
            let now = count();
            if now == last {
                return now;
            }
            eprintln!("ipvsadm listed {last}, then {now} destinations: another lab changed its table meanwhile");
            last = now;
        }
        panic!("ipvsadm's listings never agreed twice in a row");
    };

    let out =
        l.command(&["up"]).env("LVSCTL_FAULT_ABORT_AFTER", "1500").env("LVSCTL_SSH_PERSIST", "900").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "the director's agent was killed:\n{}", text(&out));
    let partial = dests();
    assert!(partial > 0 && partial < 10_000, "killed in the middle of the batch: {partial} destinations");
    let started = Instant::now();
    l.ok(&["down"]);
    eprintln!("down of a killed batch ({partial} destinations) in {:.1} s", started.elapsed().as_secs_f64());
    assert_same(&before, &snapshot(&l), "after an up killed mid-batch and down");
    ph.done("crash");

    let started = Instant::now();
    l.ok(&["up"]);
    eprintln!("up of 10,000 destinations in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(dests(), 10_000);
    for s in l.lab.services.iter().filter(|s| matches!(s.name.as_deref(), Some("web" | "s4998"))) {
        assert_split(&l, s, 10);
    }
    ph.done("up");
    let started = Instant::now();
    let again = l.ok(&["up", "--output", "json"]);
    eprintln!("no-op up of 10,000 destinations in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(changes_in_json(&again), 0, "a second up changes nothing");
    let started = Instant::now();
    l.ok(&["down"]);
    eprintln!("down of 10,000 destinations in {:.1} s", started.elapsed().as_secs_f64());
    assert_same(&before, &snapshot(&l), "after up and down of 10,000 destinations");
    ph.done("down");
}

#[test]
fn e2e_tun() {
    if !here_or_in_vm("e2e_tun") {
        return;
    }
    full_cycle(
        "e2e_tun",
        "inventories/tun.toml",
        Checks {
            // A host without gzip gets the agent uncompressed ("raw"): full_cycle checks that
            // what it installed is the agent, byte for byte.
            prepare: &[("web1", "mount --bind /dev/null /usr/bin/gzip")],
            crash_first: false,
            reboot: &["web2"],
            extra: "",
            drain: None,
            after_up: &[
                ("web1", "command -v gzip || echo no gzip here", "no gzip here"),
                ("web1", "ip -o -4 addr show dev tunl0", "192.168.188.100/32"),
                ("web1", "ip -o link show tunl0", ",UP"),
                ("web1", "cat /proc/sys/net/ipv4/conf/tunl0/rp_filter /proc/sys/net/ipv4/conf/all/rp_filter", "0\n0"),
                ("lvs", "ipvsadm -Ln", "Tunnel"),
            ],
            breaks: &[
                Break {
                    what: "reverse-path filtering on web1's tunl0",
                    host: "web1",
                    script: "echo 1 > /proc/sys/net/ipv4/conf/tunl0/rp_filter",
                    verify_fails_with: Some("web1 never answered"),
                    doctor: &[("web1", "tun-rp-filter")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "web2's tunl0 is down",
                    host: "web2",
                    script: "ip link set tunl0 down",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("web2", "tunl0-down")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
            ],
        },
    );
}

/// TUN over GUE, both families: the real servers' GUE ports (IPv4 and IPv6), checksummed UDP.
#[test]
fn e2e_tun_gue() {
    if !here_or_in_vm("e2e_tun_gue") {
        return;
    }
    full_cycle(
        "e2e_tun_gue",
        "inventories/tun-gue.toml",
        Checks {
            prepare: &[],
            crash_first: false,
            reboot: &["web1"],
            extra: "",
            drain: None,
            after_up: &[
                ("web1", "ip fou show", "port 6080 gue"),
                ("web1", "ip fou show", "port 6080 gue -6"),
                ("web1", "ip -o -4 addr show dev tunl0", "192.168.188.100/32"),
                ("web1", "ip -o -6 addr show dev ip6tnl0", "2001:db8:188::100/128"),
                ("lvs", "ipvsadm-save -n", "-r 192.168.188.81:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum"),
                (
                    "lvs",
                    "ipvsadm-save -n",
                    "-r [2001:db8:188::82]:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
                ),
            ],
            breaks: &[Break {
                what: "web1's GUE port is closed",
                host: "web1",
                script: "ip fou del port 6080",
                verify_fails_with: Some("web1 never answered"),
                doctor: &[("web1", "fou-port-missing")],
                after_repair: None,
                drift: true,
                readme: None,
            }],
        },
    );
}

/// One-armed NAT, both families: real servers behind the router keep the router as their
/// gateway, and see the director's address as their client's.
#[test]
fn e2e_nat_onearm() {
    if !here_or_in_vm("e2e_nat_onearm") {
        return;
    }
    full_cycle(
        "e2e_nat_onearm",
        "inventories/nat-onearm.toml",
        Checks {
            prepare: &[],
            crash_first: false,
            reboot: &["lvs"],
            extra: "",
            drain: None,
            after_up: &[
                // The real servers' own routes, untouched: the router is their gateway.
                ("web1", "ip route show default", "default via 10.20.0.200"),
                ("web2", "ip -6 route show default", "default via 2001:db8:20::200"),
                ("lvs", "cat /proc/sys/net/ipv4/vs/conntrack /proc/sys/net/ipv4/ip_forward", "1\n1"),
                ("lvs", "nft list table inet lvsctl-nat-onearm", "snat ip to 192.168.188.8"),
                ("lvs", "nft list table inet lvsctl-nat-onearm", "snat ip6 to 2001:db8:188::8"),
                // Whom the real servers see: the director, never the client (192.168.10.6).
                ("client", "curl -s -m 10 http://192.168.188.100/peer", "peer 192.168.188.8\n"),
                ("client", "curl -s -m 10 -g 'http://[2001:db8:188::100]/peer'", "peer 2001:db8:188::8\n"),
            ],
            breaks: &[
                Break {
                    what: "the director keeps no conntrack entries for IPVS",
                    host: "lvs",
                    script: "echo 0 > /proc/sys/net/ipv4/vs/conntrack",
                    verify_fails_with: Some("requests got no answer"),
                    doctor: &[("lvs", "nat-conntrack-off")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    what: "the director's source NAT rules are gone",
                    host: "lvs",
                    script: "nft delete table inet lvsctl-nat-onearm",
                    verify_fails_with: Some("requests got no answer"),
                    doctor: &[("lvs", "snat-rules-missing")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
            ],
        },
    );
}

/// TUN over GRE, both families: gre0 and ip6gre0 hold the VIPs, no ipip.
#[test]
fn e2e_tun_gre() {
    if !here_or_in_vm("e2e_tun_gre") {
        return;
    }
    full_cycle(
        "e2e_tun_gre",
        "inventories/tun-gre.toml",
        Checks {
            prepare: &[],
            crash_first: false,
            reboot: &["web2"],
            extra: "",
            drain: None,
            after_up: &[
                ("web1", "ip -o -4 addr show dev gre0", "192.168.188.100/32"),
                ("web1", "ip -o link show gre0", ",UP"),
                ("web1", "cat /proc/sys/net/ipv4/conf/gre0/rp_filter /proc/sys/net/ipv4/conf/all/rp_filter", "0\n0"),
                ("web1", "ip -o -6 addr show dev ip6gre0", "2001:db8:188::100/128"),
                // No ipip, so no tunl0 (listed, not asked for by name: asking for a device by
                // name makes the kernel load the module that provides it, ipip for tunl0).
                ("web1", "ip -o link show | grep -c tunl0 || true", "0"),
                ("lvs", "ipvsadm-save -n", "-r 192.168.188.82:80 -i -w 1 --tun-type gre --tun-nocsum"),
            ],
            breaks: &[Break {
                what: "web2's gre0 is down",
                host: "web2",
                script: "ip link set gre0 down",
                verify_fails_with: Some("web2 never answered"),
                doctor: &[("web2", "gre0-down")],
                after_repair: None,
                drift: true,
                readme: None,
            }],
        },
    );
}

#[test]
fn e2e_dr_multisubnet() {
    if !here_or_in_vm("e2e_dr_multisubnet") {
        return;
    }
    full_cycle(
        "e2e_dr_multisubnet",
        "inventories/dr-multisubnet.toml",
        Checks {
            // Timeouts and a setting someone chose before lvsctl: down gives back these, not the
            // kernel's defaults.
            prepare: &[("lvs", IPVS_PREPARE)],
            crash_first: false,
            // The director too: its timeouts and settings come back from the boot unit.
            reboot: &["web1", "lvs"],
            // Every setting [ipvs] takes, each away from the kernel's default (and harmless to the
            // lab's traffic: the defenses are automatic, far below the guest's free memory).
            extra: IPVS_SETTINGS,
            drain: Some(Drain::Host("web2")),
            after_up: &[
                ("router", "ip -4 route show 192.168.200.100", "192.168.200.100 via 192.168.188.8"),
                ("lvs", "ip -o -4 addr show dev lo", "192.168.200.100/32"),
                ("lvs", "ipvsadm -L --timeout", "Timeout (tcp tcpfin udp): 600 60 30"),
                ("lvs", IPVS_SETTINGS_READ, IPVS_SETTINGS_SET),
            ],
            breaks: &[
                Break {
                    what: "someone set other IPVS timeouts by hand",
                    host: "lvs",
                    script: "ipvsadm --set 1200 100 200",
                    verify_fails_with: None,
                    doctor: &[],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
                Break {
                    // web1 holds the VIP on lo: it answers everything itself, the director sees nothing.
                    what: "the router sends the VIP to web1 instead of the director",
                    host: "router",
                    script: "ip route replace 192.168.200.100 via 192.168.188.81 dev eth0 proto static",
                    verify_fails_with: Some("web2 never answered"),
                    doctor: &[("router", "vip-misrouted")],
                    after_repair: None,
                    drift: true,
                    readme: None,
                },
            ],
        },
    );
}

/// What the director had before lvsctl, for e2e_dr_multisubnet: timeouts and two settings someone
/// chose (run_estimation 0 stops 6.1's counters, which verify needs: `[ipvs]` sets it back to 1).
const IPVS_PREPARE: &str = "ipvsadm --set 1000 100 200 && cd /proc/sys/net/ipv4/vs && echo 0 > conn_reuse_mode \
                            && echo 0 > run_estimation";

/// `[ipvs]` with every setting it takes, for e2e_dr_multisubnet.
const IPVS_SETTINGS: &str = "[ipvs]
timeouts = { tcp = 600, tcp_fin = 60, udp = 30 }
sysctl = { am_droprate = 20, amemthresh = 2048, backup_only = 1, cache_bypass = 1, conn_reuse_mode = 2, \
conntrack = 1, drop_entry = 1, drop_packet = 1, expire_nodest_conn = 1, expire_quiescent_template = 1, \
ignore_tunneled = 1, nat_icmp_send = 1, pmtu_disc = 0, run_estimation = 1, schedule_icmp = 1, secure_tcp = 1, \
sloppy_sctp = 1, sloppy_tcp = 1, snat_reroute = 0, sync_persist_mode = 1, sync_retries = 3, sync_version = 0 }
";
const IPVS_SETTINGS_READ: &str = "cd /proc/sys/net/ipv4/vs && grep -H '' am_droprate amemthresh backup_only \
cache_bypass conn_reuse_mode conntrack drop_entry drop_packet expire_nodest_conn expire_quiescent_template \
ignore_tunneled nat_icmp_send pmtu_disc run_estimation schedule_icmp secure_tcp sloppy_sctp sloppy_tcp snat_reroute \
sync_persist_mode sync_retries sync_version";
const IPVS_SETTINGS_SET: &str = "am_droprate:20 amemthresh:2048 backup_only:1 cache_bypass:1 conn_reuse_mode:2 \
conntrack:1 drop_entry:1 drop_packet:1 expire_nodest_conn:1 expire_quiescent_template:1 ignore_tunneled:1 \
nat_icmp_send:1 pmtu_disc:0 run_estimation:1 schedule_icmp:1 secure_tcp:1 sloppy_sctp:1 sloppy_tcp:1 \
snat_reroute:0 sync_persist_mode:1 sync_retries:3 sync_version:0";

/// `lab impair` on the lab kernel: 100 % loss on one real server's link makes `verify` name that
/// server, `--clear` makes it clean again; a delay on a segment shows in the round trip across it;
/// `lab show` says what impairs each link; bad targets and values are refused, nothing changed.
#[test]
fn e2e_lab_impairments() {
    let test = "e2e_lab_impairments";
    if !here_or_in_vm(test) {
        return;
    }
    if common::listing_scenarios() {
        let line = |l: &str| common::scenario_line(test, l);
        line("lab inventories/dr.toml (as impaired), up");
        line("web2:eth0 --loss 100%: verify names web2; lab show says it; --clear: verify passes");
        line(
            "web2:eth0 cut at the bridge: web2 loses carrier, verify names web2, lab show says CUT; heal: verify passes",
        );
        line("graph of the lab with web2's link cut and web1 stopped: both drawn");
        line(
            "front --delay 200ms: the client's round trip to the router takes 400 ms more, verify's latency two \
              round trips more, graph shows it; --clear",
        );
        line("an unknown segment, host or interface, a loss of 150 %: refused, nothing changed");
        return;
    }
    let mut ph = common::Phases::start(test);
    let (_dir, inv) = common::lab::renamed("inventories/dr.toml", "impaired");
    let l = Lab::create(&inv);
    ph.done("lab create");
    l.ok(&["up"]);
    ph.done("up");
    let lab_cmd = |args: &[&str]| -> (bool, String) {
        let out = Command::new(lvsctl_bin()).arg("lab").arg(args[0]).arg(&inv).args(&args[1..]).output().unwrap();
        eprintln!("$ lvsctl lab {}\n{}", args.join(" "), text(&out));
        (out.status.success(), text(&out))
    };
    let (ok, out) = lab_cmd(&["impair", "web2:eth0", "--loss", "100%"]);
    assert!(ok && out.contains("web2:eth0: loss 100%"), "{out}");
    let (ok, shown) = lab_cmd(&["show"]);
    assert!(ok && shown.contains("web2:eth0        loss 100% (lab impair web2:eth0)"), "{shown}");
    assert!(shown.contains("web1:eth0        clean"), "{shown}");
    let (ok, json) = lab_cmd(&["show", "--output", "json"]);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let web2 = v["links"].as_array().unwrap().iter().find(|x| x["host"] == "web2").unwrap();
    assert_eq!((web2["active"].as_bool(), web2["by"].as_str()), (Some(true), Some("web2:eth0")), "{json}");
    let out = l.lvsctl(&["verify"]);
    assert_eq!(out.status.code(), Some(6), "verify fails with web2 cut off: {}", text(&out));
    assert!(text(&out).contains("web2 never answered"), "verify names web2: {}", text(&out));
    let (ok, out) = lab_cmd(&["impair", "web2:eth0", "--clear"]);
    assert!(ok && out.contains("web2:eth0 cleared"), "{out}");
    let v = l.ok(&["verify"]);
    assert!(v.contains("every service answers as configured"), "{v}");
    ph.done("loss");

    // web2's link cut at the bridge: the same failure, said by lab show; healed, clean again.
    let (ok, out) = lab_cmd(&["cut", "web2:eth0"]);
    assert!(ok && out.contains("web2:eth0 cut"), "{out}");
    assert!(l.sh("web2", "ip link show eth0").contains("NO-CARRIER"), "web2 sees its carrier go");
    let (ok, shown) = lab_cmd(&["show"]);
    assert!(ok && shown.contains("web2:eth0        CUT, clean"), "{shown}");
    // graph draws what lab does to the lab: the cut link, a stopped host.
    let (ok, out) = lab_cmd(&["stop", "web1"]);
    assert!(ok, "{out}");
    let g = l.ok(&["graph", "--format", "mermaid"]);
    assert!(g.contains("eth0 cut (lab cut)") && g.contains("web2 -.-|eth0|"), "graph shows the cut: {g}");
    assert!(g.contains("STOPPED (lab stop)") && g.contains("web1 -.-|eth0|"), "graph shows web1 stopped: {g}");
    let (ok, out) = lab_cmd(&["start", "web1"]);
    assert!(ok, "{out}");
    let out = l.lvsctl(&["verify"]);
    assert!(out.status.code() == Some(6) && text(&out).contains("web2 never answered"), "{}", text(&out));
    let (ok, out) = lab_cmd(&["heal", "web2:eth0"]);
    assert!(ok && out.contains("web2:eth0 healed"), "{out}");
    let v = l.ok(&["verify"]);
    assert!(v.contains("every service answers as configured"), "{v}");
    ph.done("cut");

    // The round trip across the front segment, client to router, before and with a delay.
    let rtt = || -> f64 {
        let out = l.run("client", &["ping", "-c", "3", "-i", "0.3", "-q", "192.168.10.200"]);
        let avg = out.lines().find(|x| x.contains("min/avg/max")).and_then(|x| x.split('=').nth(1)).unwrap();
        avg.trim().split('/').nth(1).unwrap().parse().unwrap()
    };
    // verify's latency: connect to answer, two round trips of HTTP (the handshake, the GET).
    let latency = || -> serde_json::Value {
        let out = l.lvsctl(&["verify", "--requests", "6", "--output", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        let v = common::schema::parse(&lvsctl_bin(), "verify", &out.stdout);
        v["services"][0]["latency"].clone()
    };
    let before = rtt();
    let clean = latency();
    let (ok, out) = lab_cmd(&["impair", "front", "--delay", "200ms"]);
    assert!(ok && out.contains("front: delay 200ms (2 ports)"), "{out}");
    // netem holds every packet at least its delay, so the bounds are absolute (1 % spared for the
    // clocks), not differences from a baseline that the loaded guest's scheduling moves by tens of
    // ms (CI once measured 14.5 ms before and 403.6 ms with: 389 ms "more", yet every ping had
    // waited its 400 ms).
    let with = rtt();
    assert!(before < 200.0, "the front segment is quick before the delay: {before} ms");
    assert!(with >= 396.0, "200 ms each way on the front segment: {before} ms, then {with} ms");
    let slow = latency();
    let ms = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(
        ms(&clean, "median_ms") < 400 && ms(&slow, "min_ms") >= 792,
        "verify's latency shows two round trips of at least 400 ms each: {clean} then {slow}"
    );
    let g = l.ok(&["graph", "--format", "mermaid"]);
    assert!(g.contains("impaired: delay 200ms"), "graph shows the front segment's delay: {g}");
    let (ok, _) = lab_cmd(&["impair", "front", "--clear"]);
    assert!(ok);
    let after = rtt();
    assert!(after < 200.0, "cleared: {before} ms before, {after} ms after");
    ph.done("delay");

    for (args, says) in [
        (vec!["impair", "nowhere", "--loss", "5%"], "no segment \"nowhere\""),
        (vec!["impair", "web9:eth0", "--loss", "5%"], "no host \"web9\""),
        (vec!["impair", "web2:eth7", "--loss", "5%"], "no interface \"eth7\""),
        (vec!["impair", "web2:eth0", "--loss", "150%"], "from 0 to 100"),
        (vec!["impair", "web2:eth0", "--delay", "fast"], "give a unit"),
    ] {
        let (ok, out) = lab_cmd(&args);
        assert!(!ok && out.contains(says), "{args:?}: {out}");
    }
    let (ok, shown) = lab_cmd(&["show"]);
    assert!(ok && !shown.contains("loss") && !shown.contains("delay"), "nothing impaired after refusals: {shown}");
    ph.done("refusals");
    l.ok(&["down"]);
    ph.done("down");
}

/// `lvsctl import --lab` of a director's saved rules (the NAT lab's, as `render` writes them in
/// `ipvsadm-save -n` form: one real server on another port) builds a lab that works on the lab
/// kernel with the same services: up, every request answered in the split the rules' scheduler
/// makes, verify passes, down restores, destroy leaves nothing.
#[test]
fn e2e_import_lab_from_rules() {
    let test = "e2e_import_lab_from_rules";
    if !here_or_in_vm(test) {
        return;
    }
    if common::listing_scenarios() {
        let line = |l: &str| common::scenario_line(test, l);
        line("inventories/nat.toml's rules (render, ipvsadm-save form) imported with --lab: a client, a router added");
        line("lab create and up of the imported inventory; every request answered, split by the rules; verify passes");
        line("down: every host as before");
        return;
    }
    let mut ph = common::Phases::start(test);
    let work = tempfile::tempdir().unwrap();
    let render = Command::new(lvsctl_bin())
        .args(["render", "inventories/nat.toml", "--out"])
        .arg(work.path().join("render"))
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(render.status.success(), "{}", text(&render));
    let rules = work.path().join("render/lvs/etc/lvsctl/nat/ipvsadm.rules");
    let inv = work.path().join("imported.toml");
    let out = Command::new(lvsctl_bin())
        .arg("import")
        .arg(&rules)
        .args(["--lab", "--name", "imported", "--out"])
        .arg(&inv)
        .output()
        .unwrap();
    assert!(out.status.success(), "import:\n{}", text(&out));
    let l = Lab::create(&inv);
    let before = snapshot(&l);
    ph.done("lab create");
    l.ok(&["up"]);
    ph.done("up");
    for s in &common::vm::units(&l.lab) {
        assert_split(&l, s, 16);
    }
    let v = l.ok(&["verify"]);
    assert!(v.contains("every service answers as configured"), "{v}");
    ph.done("traffic");
    l.ok(&["down"]);
    assert_same(&before, &snapshot(&l), "after down");
    ph.done("down");
}

/// A director set up by hand (`ip addr`, `ipvsadm`) and real servers set up as `lvs_dr_rs.sh`
/// does (ARP sysctls on lo and all, the VIP on lo:0), read back with `import --from-host`: the
/// inventory says each host as it is, so `up` of it on those hosts changes no kernel object (only
/// lvsctl's files); the import with `--lab` is a lab of its own that splits as the hand-made one
/// did and passes verify.
#[test]
fn e2e_import_from_live_hosts() {
    let test = "e2e_import_from_live_hosts";
    if !here_or_in_vm(test) {
        return;
    }
    if common::listing_scenarios() {
        let line = |l: &str| common::scenario_line(test, l);
        line("lab inventories/dr.toml (as handmade): client and router by lvsctl, director and real servers by hand");
        line("the hand-made split (wrr 3:1)");
        line(
            "import --from-host the director and both real servers: up of it changes no kernel object, down as before",
        );
        line("import --from-host --lab: lab create, up, the same split, verify passes, down as before");
        return;
    }
    let mut ph = common::Phases::start(test);
    let (_dir, inv) = common::lab::renamed("inventories/dr.toml", "handmade");
    let l = Lab::create(&inv);
    ph.done("lab create");
    l.ok(&["up", "--host", "client", "--host", "router"]);
    // The director by hand.
    l.sh(
        "lvs",
        "set -e; ip link set eth0 up; ip addr add 192.168.188.8/24 dev eth0; \
         ip route add default via 192.168.188.200; ip addr add 192.168.188.100/32 dev eth0; \
         ipvsadm -A -t 192.168.188.100:80 -s wrr; \
         ipvsadm -a -t 192.168.188.100:80 -r 192.168.188.81:80 -g -w 3; \
         ipvsadm -a -t 192.168.188.100:80 -r 192.168.188.82:80 -g -w 1",
    );
    // The real servers as lvs_dr_rs.sh start does it.
    for (h, a) in [("web1", 81), ("web2", 82)] {
        l.sh(
            h,
            &format!(
                "set -e; ip link set eth0 up; ip addr add 192.168.188.{a}/24 dev eth0; \
                 ip route add default via 192.168.188.200; \
                 echo 1 > /proc/sys/net/ipv4/conf/lo/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/lo/arp_announce; \
                 echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce; \
                 ip addr add 192.168.188.100/32 dev lo label lo:0"
            ),
        );
    }
    let svc = l.lab.services[0].clone();
    assert_split(&l, &svc, 16);
    ph.done("traffic");

    // lvsctl on the lab's management network, as on a machine beside production.
    let work = tempfile::tempdir().unwrap();
    let ns = lvsctl::lab::control_netns(&l.lab.name).file_name().unwrap().to_string_lossy().into_owned();
    let ssh_config = lvsctl::lab::run_dir(&l.lab.name).join("ssh_config");
    let ctl = |args: &[&str]| -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(lvsctl_bin())
            .args(args)
            .current_dir(work.path())
            .env("LVSCTL_SSH_CONFIG", &ssh_config)
            .env("LVSCTL_SSH_PERSIST", "0")
            .env("LVSCTL_STATE_DIR", work.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!("$ lvsctl {}\n{}", args.join(" "), text(&out));
        (out.status.success(), text(&out))
    };
    let from = ["import", "--from-host", "10.250.0.8", "--real-server", "10.250.0.81", "--real-server", "10.250.0.82"];
    let (ok, out) = ctl(&[&from[..], &["--name", "prod", "--out", "prod.toml"]].concat());
    assert!(ok, "{out}");
    let prod = std::fs::read_to_string(work.path().join("prod.toml")).unwrap();
    for want in [
        "[hosts.lvs]\nrole = \"director\"\nssh = \"10.250.0.8\"\ngateway = \"192.168.188.200\"\n",
        "\"192.168.188.8/24\", \"192.168.188.100/32\"",
        "{ host = \"web1\", weight = 3 }",
        "{ host = \"web2\", weight = 1 }",
        "sysctl = { expire_nodest_conn = 0 }",
        "[hosts.web1]\nrole = \"real-server\"\nssh = \"10.250.0.81\"\ngateway = \"192.168.188.200\"\n",
    ] {
        assert!(prod.contains(want), "the import lacks {want:?}:\n{prod}");
    }
    assert!(!prod.contains("# CHANGE:"), "hosts read live need no change:\n{prod}");
    let before = snapshot(&l);
    let (ok, out) = ctl(&["up", "prod.toml", "--output", "jsonl"]);
    assert!(ok, "{out}");
    let kernel = ["address ", "route ", "link ", "sysctl ", "ipvs ", "nftables "];
    let mut changed = Vec::new();
    for line in out.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let object = v.get("object").and_then(|o| o.as_str()).unwrap_or_default();
        if v.get("kind").is_some_and(|k| !k.is_null()) && kernel.iter().any(|k| object.starts_with(k)) {
            changed.push(line.to_string());
        }
    }
    assert!(changed.is_empty(), "up of the import changed kernel objects:\n{}", changed.join("\n"));
    assert!(out.contains("\"object\":\"file /etc/lvsctl/prod/"), "up wrote lvsctl's own files (its boot state): {out}");
    assert_split(&l, &svc, 16);
    let (ok, out) = ctl(&["down", "prod.toml"]);
    assert!(ok, "{out}");
    // The split between took connections: the table's connection counts moved (snapshots leave
    // them out), nothing else.
    assert_same(&before, &snapshot(&l), "after up and down of the import");
    ph.done("up");

    // The same hosts as a lab of their own on this machine.
    let (ok, out) = ctl(&[&from[..], &["--lab", "--name", "replica", "--out", "replica.toml"]].concat());
    assert!(ok, "{out}");
    let replica = Lab::create(work.path().join("replica.toml"));
    let replica_before = snapshot(&replica);
    ph.done("lab create");
    replica.ok(&["up"]);
    let rsvc = replica.lab.services[0].clone();
    assert_eq!(
        rsvc.real_servers.iter().map(|r| (r.host.clone(), r.weight)).collect::<Vec<_>>(),
        svc.real_servers.iter().map(|r| (r.host.clone(), r.weight)).collect::<Vec<_>>(),
        "the replica's real servers are the hand-made ones, by name and weight"
    );
    assert_split(&replica, &rsvc, 16);
    let v = replica.ok(&["verify"]);
    assert!(v.contains("every service answers as configured"), "{v}");
    ph.done("traffic");
    replica.ok(&["down"]);
    assert_same(&replica_before, &snapshot(&replica), "the replica after down");
    ph.done("down");
}

/// A snapshot with the IPVS table's connection counts (ActiveConn, InActConn) left out: traffic
/// through a table that stays changes them.
/// Hosts provisioned from `lvsctl render`'s files alone, as on machines that cannot run lvsctl:
/// no `up`, no agent, no journal. The tree is copied to each host's /, the script's `start` run
/// (as `systemctl enable --now` would), traffic checked; a real server rebooted comes back through
/// its modules-load.d, sysctl.d and unit; `stop` restores every host exactly, a default route of
/// another metric (NetworkManager's 100) included; the director's rules file is what
/// `ipvsadm-save -n` prints and loads with `ipvsadm -R`.
#[test]
fn e2e_rendered_files_alone() {
    let test = "e2e_rendered_files_alone";
    if !here_or_in_vm(test) {
        return;
    }
    if common::listing_scenarios() {
        let line = |l: &str| common::scenario_line(test, l);
        line("lab inventories/tun.toml provisioned from render's files alone: no up, no agent, no journal");
        line("ipip not loaded before: the modules-load.d file is what loads it");
        line("the script's start twice (already started), traffic split; the rules file is what ipvsadm-save prints");
        line("reboot web2: modules-load.d, sysctl.d and the unit bring it back, traffic split again");
        line("the script's stop: every host as before, a NetworkManager-style default route (metric 100) kept");
        line("the rules file loads with ipvsadm -R, adding to the table");
        return;
    }
    let mut ph = common::Phases::start(test);
    let l = Lab::create("inventories/tun.toml");
    let hosts = l.hosts();
    // A fresh guest: nothing has loaded ipip yet, so the modules-load.d file is what loads it.
    let ipip_loaded = || Path::new("/sys/module/ipip").exists();
    assert!(!ipip_loaded(), "ipip is loaded before the test: the modules-load.d check would prove nothing");
    // The client's prior address and default route, as NetworkManager leaves them (with a metric).
    l.sh(
        "client",
        "ip link set eth0 up && ip addr add 192.168.10.50/24 dev eth0 && ip route add default via 192.168.10.1 metric 100",
    );

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("render");
    install_rendered(&l, &dir);
    l.run("web1", &["/lib/systemd/systemd-modules-load", "/etc/modules-load.d/lvsctl-tun.conf"]);
    assert!(ipip_loaded(), "systemd-modules-load did not load ipip from the rendered file");
    // The state to come back to: the files installed, ipip loaded as at every boot from now on.
    let before = snapshot(&l);
    ph.done("lab create");

    for h in &hosts {
        let out = l.run(h, &["/usr/local/sbin/lvsctl-tun.sh", "start"]);
        assert!(out.contains("started"), "{h}: {out}");
        // A second start (a unit restarted, a boot after a start) changes nothing.
        let again = l.run(h, &["/usr/local/sbin/lvsctl-tun.sh", "start"]);
        assert!(again.contains("already started"), "{h}: {again}");
    }
    let svc = &l.lab.services[0];
    assert_split(&l, svc, 8);
    let routes = l.sh("client", "ip -4 route show default");
    assert!(
        routes.contains("default via 192.168.10.200 dev eth0 proto 76") && routes.contains("metric 100"),
        "{routes}"
    );

    // What the director holds is exactly the rules file, in ipvsadm-save's own format and order.
    let rules = std::fs::read_to_string(dir.join("lvs/etc/lvsctl/tun/ipvsadm.rules")).unwrap();
    assert_eq!(l.run("lvs", &["ipvsadm-save", "-n"]), rules);

    ph.done("up");
    // A reboot: kernel state gone, files kept; modules-load.d, sysctl.d and the unit bring it back.
    let out = Command::new(lvsctl_bin()).args(["lab", "reboot"]).arg(&l.inv).arg("web2").output().unwrap();
    assert!(out.status.success(), "lab reboot web2: {}", text(&out));
    let boot = text(&out);
    assert!(boot.contains("systemd-modules-load") && boot.contains("lvsctl-tun.sh start"), "{boot}");
    let rp = l.sh("web2", "cat /proc/sys/net/ipv4/conf/tunl0/rp_filter /proc/sys/net/ipv4/conf/all/rp_filter");
    assert_eq!(rp, "0\n0\n", "web2's tunl0 after the reboot");
    assert_split(&l, svc, 8);
    ph.done("reboot");

    for h in &hosts {
        let out = l.run(h, &["/usr/local/sbin/lvsctl-tun.sh", "stop"]);
        assert!(out.contains("stopped"), "{h}: {out}");
    }
    same_but_installed(&l, &dir, &before);
    ph.done("down");

    // The rules file loads with `ipvsadm -R`, adding to the table without clearing it first.
    l.sh("lvs", "ipvsadm -A -t 192.0.2.1:7 -s rr");
    l.sh("lvs", "ipvsadm -R < /etc/lvsctl/tun/ipvsadm.rules");
    let table = l.run("lvs", &["ipvsadm-save", "-n"]);
    assert_eq!(table, format!("-A -t 192.0.2.1:7 -s rr\n{rules}"), "ipvsadm -R must add, not replace");
    ph.done("checks");
}

/// `lvsctl render` into `dir`, and each host's tree copied to its `/` as the README says
/// (`cd DIR/HOST && find . -type f | tar -c -T - | ssh HOST tar -C / -x`): files only, since tar
/// makes every directory it unpacks 0700 for a moment, `/` too, which locked other labs' non-root
/// logins out of the shared root.
fn install_rendered(l: &Lab, dir: &Path) {
    l.ok(&["render", "--out", dir.to_str().unwrap()]);
    for h in &l.hosts() {
        let script = format!("usr/local/sbin/lvsctl-{}.sh", l.lab.name);
        assert!(dir.join(h).join(&script).exists(), "{h}: no script rendered");
        let tree =
            Command::new("sh").args(["-c", "find . -type f | tar -c -T -"]).current_dir(dir.join(h)).output().unwrap();
        assert!(tree.status.success(), "{}", text(&tree));
        let root_mode = l.sh(h, "stat -c %a /");
        l.pipe(h, &["tar", "-C", "/", "-x", "--no-same-owner"], &tree.stdout);
        assert_eq!(l.sh(h, "stat -c %a /"), root_mode, "{h}: copying the files changed the mode of /");
    }
}

/// Every host as `before`, but for the files the user copied from `dir` (the script's stop leaves
/// them for the next boot) and the script's state directories.
fn same_but_installed(l: &Lab, dir: &Path, before: &common::lab::Snapshot) {
    let hosts = l.hosts();
    // Everything as before, but for the files the user copied (stop leaves them for the next boot).
    let installed: Vec<String> = hosts
        .iter()
        .flat_map(|h| {
            let root = dir.join(h);
            let mut v = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    if e.path().is_dir() {
                        stack.push(e.path());
                    } else {
                        v.push(e.path().strip_prefix(&root).unwrap().display().to_string());
                    }
                }
            }
            v
        })
        .collect();
    let strip = |s: &common::lab::Snapshot| -> common::lab::Snapshot {
        s.iter()
            .map(|(h, (k, files))| {
                let kept: Vec<String> = files
                    .iter()
                    .filter(|f| {
                        let path = f.split(' ').next().unwrap().replacen("usr-local", "usr/local", 1);
                        // Files the user installed, their directories, and the script's state directories.
                        !installed.iter().any(|i| i == &path || i.starts_with(&format!("{path}/")))
                            && !path.starts_with("var/lib/lvsctl-sh")
                    })
                    .cloned()
                    .collect();
                (h.clone(), (k.clone(), kept))
            })
            .collect()
    };
    assert_same(&strip(before), &strip(&snapshot(l)), "after the script's stop");
}

/// The standalone script on a dual-stack lab with a firewall-mark service: IPv6 addresses and
/// routes, the nftables table loaded from its rendered file, `-f MARK -6` services; the rules
/// file is what a real `ipvsadm-save -n` prints; stop leaves every host as it was. The lab is
/// inventories/dr-fwmark.toml under another name, so that e2e_dr_fwmark may run beside it.
#[test]
fn e2e_rendered_files_alone_dual_stack_fwmark() {
    let test = "e2e_rendered_files_alone_dual_stack_fwmark";
    if !here_or_in_vm(test) {
        return;
    }
    if common::listing_scenarios() {
        let line = |l: &str| common::scenario_line(test, l);
        line("lab inventories/dr-fwmark.toml (as rendered-fwmark) provisioned from render's files alone");
        line("web1 already holds its IPv6 address (link down): kept down with it after stop");
        line("the script's start twice, every probe unit split, persistence across ports");
        line("the rules file is what ipvsadm-save prints; the nftables table marks IPv6 ports 80 and 8080");
        line("the script's stop: every host as before");
        return;
    }
    let mut ph = common::Phases::start(test);
    let (_inv_dir, inv) = common::lab::renamed("inventories/dr-fwmark.toml", "rendered-fwmark");
    let l = Lab::create(&inv);
    let name = l.lab.name.clone();
    let hosts = l.hosts();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("render");
    install_rendered(&l, &dir);
    // web1 already has its IPv6 address (its link down): the script's stop takes the link down
    // again, which flushes IPv6 addresses, and must leave it there.
    l.sh("web1", "ip -6 addr add 2001:db8:188::81/64 dev eth0 nodad");
    let before = snapshot(&l);
    ph.done("lab create");
    let script = format!("/usr/local/sbin/lvsctl-{}.sh", l.lab.name);
    for h in &hosts {
        let out = l.run(h, &[&script, "start"]);
        assert!(out.contains("started"), "{h}: {out}");
        let again = l.run(h, &[&script, "start"]);
        assert!(again.contains("already started"), "{h}: {again}");
    }
    for u in &common::vm::units(&l.lab) {
        assert_split(&l, u, 8);
    }
    common::vm::assert_sticky_across_ports(&l, 4);
    ph.done("traffic");
    let rules = std::fs::read_to_string(dir.join(format!("lvs/etc/lvsctl/{name}/ipvsadm.rules"))).unwrap();
    assert_eq!(l.run("lvs", &["ipvsadm-save", "-n"]), rules, "the rules file is what ipvsadm-save prints");
    let table = l.run("lvs", &["nft", "list", "table", "inet", &format!("lvsctl-{name}")]);
    assert!(table.contains("ip6 daddr 2001:db8:188::100 tcp dport { 80, 8080 } meta mark set 0x0000000a"), "{table}");
    for h in &hosts {
        let out = l.run(h, &[&script, "stop"]);
        assert!(out.contains("stopped"), "{h}: {out}");
    }
    same_but_installed(&l, &dir, &before);
    ph.done("down");
}

/// The README's quick start, followed to the letter on three lab hosts standing in for a user's
/// VMs: a non-root login user with passwordless sudo, host keys learnt on first contact, the
/// user's key in an ssh agent, lvsctl run from a machine on the VMs' network. The commands and the
/// inventory are read from README.md, so the README cannot drift from what works.
#[test]
fn e2e_readme_quick_start() {
    // It writes root's known_hosts (host_key = "accept-new") and adds a user: only in a guest,
    // which forgets.
    if !common::vm::in_vm_only("e2e_readme_quick_start") {
        return;
    }
    if common::listing_scenarios() {
        let line = |l: &str| common::scenario_line("e2e_readme_quick_start", l);
        line(
            "lab tests/fixtures/quickstart-vms.toml: the README's quick start as written, a non-root sudo user, accept-new host keys, an ssh agent",
        );
        line("sudo wanting a password: refused with what to do, nothing changed");
        line("a gateway that would re-route the SSH session: refused, nothing done");
        line("down: every VM as before");
        return;
    }
    let mut ph = common::Phases::start("e2e_readme_quick_start");
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let section = readme.split("## Quick start on your own VMs").nth(1).unwrap().split("\n## ").next().unwrap();
    let commands: Vec<String> = section
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .filter_map(|l| l.rsplit_once(": `").map(|(_, c)| c.trim_end_matches('`').to_string()))
        .collect();
    assert_eq!(commands.len(), 4, "the quick start's steps with a command: {commands:?}");
    let inventory: String = section
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("   ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");

    let l = Lab::create("tests/fixtures/quickstart-vms.toml");
    ph.done("lab create");
    // The VMs: a login user `lab` with the user's key, passwordless sudo on all but web1 for now.
    let key = lvsctl::lab::run_dir("vms").join("id_ed25519");
    for h in l.hosts() {
        l.sh(&h, "id lab >/dev/null 2>&1 || useradd -m -s /bin/sh lab 2>/dev/null; usermod -p '*' lab");
        if h != "web1" {
            l.sh(&h, "echo 'lab ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/lab && chmod 440 /etc/sudoers.d/lab");
        }
    }
    std::fs::create_dir_all("/home/lab/.ssh").unwrap();
    std::fs::copy(key.with_extension("pub"), "/home/lab/.ssh/authorized_keys").unwrap();
    std::fs::create_dir_all("/root/.ssh").unwrap();
    let _ = std::fs::remove_file("/root/.ssh/known_hosts");

    let work = tempfile::tempdir().unwrap();
    let agent_sock = work.path().join("agent.sock");
    let mut agent =
        Command::new("ssh-agent").arg("-D").arg("-a").arg(&agent_sock).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while !agent_sock.exists() {
        assert!(agent.try_wait().unwrap().is_none(), "ssh-agent ended before it listened");
        assert!(Instant::now() < deadline, "ssh-agent did not listen on {} within 60 s", agent_sock.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let added = Command::new("ssh-add").arg(&key).env("SSH_AUTH_SOCK", &agent_sock).output().unwrap();
    assert!(added.status.success(), "ssh-add: {}", text(&added));
    let bin_dir = lvsctl_bin().parent().unwrap().to_path_buf();
    // The controller: a shell on the VMs' network (the lab's management side), lvsctl on PATH.
    let user = |cmd: &str| -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", "lvsctl-vms", "sh", "-c", cmd])
            .current_dir(work.path())
            .env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()))
            .env("SSH_AUTH_SOCK", &agent_sock)
            .env("LVSCTL_SSH_PERSIST", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!("$ {cmd}\n{}", text(&out));
        (out.status.success(), text(&out))
    };

    // 1. A starter inventory, valid as written.
    let (ok, out) = user(&commands[0]);
    assert!(ok, "{out}");
    let (ok, out) = user("lvsctl check lab.toml");
    assert!(ok, "the starter inventory is not valid as written: {out}");
    // 2. The user's values: on these VMs eth0 is on 192.168.57.0/24 (ssh arrives on another network).
    let edited: String = inventory
        .lines()
        .map(|l| {
            if l.starts_with("interfaces") || l.starts_with("vip") {
                l.replace("192.168.56.", "192.168.57.")
            } else {
                l.into()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(work.path().join("lab.toml"), edited + "\n").unwrap();

    // Where sudo wants a password, lvsctl says so and what to do, and changes nothing.
    let (ok, out) = user("lvsctl status lab.toml --host web1");
    assert!(!ok && out.contains("sudo wants a password") && out.contains("NOPASSWD"), "{out}");
    l.sh("web1", "echo 'lab ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/lab && chmod 440 /etc/sudoers.d/lab");
    let before = snapshot(&l);

    // 3-5 as written.
    let (ok, out) = user(&commands[1]);
    assert!(ok && out.contains("is valid"), "{out}");
    let (ok, out) = user(&commands[2]);
    assert!(ok, "{out}");
    assert!(out.contains("every service answers as configured"), "{out}");
    assert_eq!(l.sh("web1", "cat /proc/sys/net/ipv4/conf/all/arp_ignore"), "1\n", "the agent ran as root");
    let log = std::fs::read_to_string(lvsctl::lab::build::sshd_log("vms", "lvs")).unwrap();
    assert!(log.contains("Accepted publickey for lab "), "lvsctl logged in as lab");
    assert!(!log.contains("Accepted publickey for root "), "lvsctl logged in as root");
    let known = std::fs::read_to_string("/root/.ssh/known_hosts").unwrap_or_default();
    assert_eq!(known.lines().count(), 3, "accept-new learnt each host's key: {known}");

    // A planned gateway that would re-route the SSH session itself is refused, and nothing of it
    // is done: the controller connects from an address the client reaches only through its
    // default route (ssh_config BindAddress), and the inventory gives the client another gateway.
    let (ok, addrs) = user("ip -o -4 addr show");
    assert!(ok, "{addrs}");
    let mgmt_dev = addrs.lines().find(|l| l.contains("192.168.56.1/24")).unwrap().split_whitespace().nth(1).unwrap();
    assert!(user(&format!("ip addr add 198.51.100.1/32 dev {mgmt_dev}")).0);
    l.sh("client", "ip route add default via 192.168.56.1");
    std::fs::write(work.path().join("bind.ssh_config"), "BindAddress 198.51.100.1\n").unwrap();
    let toml = std::fs::read_to_string(work.path().join("lab.toml")).unwrap();
    let guarded = toml.replacen("[ssh]\n", "[ssh]\nconfig = \"bind.ssh_config\"\n", 1).replacen(
        "role = \"client\"\n",
        "role = \"client\"\ngateway = \"192.168.57.1\"\n",
        1,
    );
    std::fs::write(work.path().join("guarded.toml"), guarded).unwrap();
    let (ok, out) = user("lvsctl up guarded.toml --host client");
    assert!(!ok, "{out}");
    assert!(out.contains("comes from 198.51.100.1") && out.contains("lvsctl up --force"), "{out}");
    let default = l.sh("client", "ip -4 route show default");
    assert_eq!(default.trim(), "default via 192.168.56.1 dev mgmt0", "the session's route is left alone");
    l.sh("client", "ip route del default via 192.168.56.1");
    assert!(user(&format!("ip addr del 198.51.100.1/32 dev {mgmt_dev}")).0);

    ph.done("up");
    let (ok, out) = user(&commands[3]);
    assert!(ok, "{out}");
    // Everything as before `up`, on every VM (the agent removed with the last lab).
    let after = snapshot(&l);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_same(&before, &after, "after the quick start's down");
    ph.done("down");
}

#[test]
fn verify_rows_are_compared_without_the_director_column() {
    let readme = "  web1         192.168.188.81:80           3        9   100%       75%  10         ok  ###";
    let screen = "  web1         192.168.188.81:80           3        9   100%       75%  9          ok  ###";
    assert_eq!(director_column_masked(readme), director_column_masked(screen));
    assert_ne!(director_column_masked(readme), director_column_masked(&screen.replace(" 9   ", " 8   ")));
    let header = "  real server  address                weight answered  share  expected  director   verdict";
    assert_eq!(director_column_masked(header), header);
    // With answers that followed earlier entries, the counts are left out and the rest compared.
    let readme = "  web1         192.168.188.81:80           3       30    75%       75%  30         ok  #######################";
    let screen =
        "  web1         192.168.188.81:80           3       29    72%       75%  29         ok  ######################";
    let counts = |l: &str| verify_row_masked(l, &[3, 4, 6, 8]);
    assert_eq!(counts(readme), counts(screen));
    assert_ne!(counts(readme), counts(&screen.replace(" ok ", " OFF by 7 ")));
    assert_ne!(counts(readme), counts(&screen.replace("192.168.188.81", "192.168.188.82")));
}

/// `assert_split` leaves out requests from client ports the director still held an entry for:
/// it reads them from `ipvsadm -Lnc`, for the service's VIP and port only, and only the entries
/// the kernel follows (not those over which it schedules a new connection afresh).
#[test]
fn client_ports_the_director_holds_are_read_with_their_real_servers() {
    let dr = lvsctl::inventory::load(&common::repo().join("inventories/dr.toml")).unwrap();
    let table = "IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:57  FIN_WAIT    192.168.10.6:26697 192.168.188.100:80 192.168.188.82:80
TCP 01:47  FIN_WAIT    192.168.10.6:40014 192.168.188.100:80 192.168.188.81:80
TCP 01:47  FIN_WAIT    192.168.10.6:40016 192.168.188.100:443 192.168.188.81:443
TCP 01:47  FIN_WAIT    192.168.10.6:40018 192.168.188.100:80 192.168.188.99:80
TCP 01:47  TIME_WAIT   192.168.10.6:40020 192.168.188.100:80 192.168.188.81:80
TCP 00:07  CLOSE       192.168.10.6:40022 192.168.188.100:80 192.168.188.82:80
TCP 00:47  ESTABLISHED 192.168.10.6:40024 192.168.188.100:80 192.168.188.82:80
";
    let followed = BTreeMap::from([
        ("26697".to_string(), "web2".to_string()),
        ("40014".into(), "web1".into()),
        ("40024".into(), "web2".into()),
    ]);
    let m = common::vm::parse_entries(table, "192.168.188.100:80", &dr.services[0], 1);
    assert_eq!(m, followed, "conn_reuse_mode 1: TIME_WAIT and CLOSE are scheduled afresh");
    let m = common::vm::parse_entries(table, "192.168.188.100:80", &dr.services[0], 2);
    assert_eq!(m, BTreeMap::from([("40024".to_string(), "web2".to_string())]), "bit 2: DR's FIN_WAIT too");
    let m = common::vm::parse_entries(table, "192.168.188.100:80", &dr.services[0], 0);
    assert_eq!(m.len(), 5, "conn_reuse_mode 0: every entry is followed: {m:?}");
    // NAT's FIN_WAIT entries see the real server's replies: followed whatever the mode.
    let nat = lvsctl::inventory::load(&common::repo().join("inventories/nat.toml")).unwrap();
    let table = "TCP 01:47  FIN_WAIT    192.168.10.6:40014 192.168.188.100:80 10.10.0.81:80
TCP 01:47  TIME_WAIT   192.168.10.6:40016 192.168.188.100:80 10.10.0.81:80
";
    let m = common::vm::parse_entries(table, "192.168.188.100:80", &nat.services[0], 3);
    assert_eq!(m, BTreeMap::from([("40014".to_string(), "web1".to_string())]));
}

/// The test's own count of the ports verify must avoid: entries of the service's protocol,
/// VIP and port that live at least the given seconds more.
#[test]
fn held_ports_are_read_with_their_time_left() {
    let table = "IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:57  SYN_RECV    192.168.10.6:26697 192.168.188.100:80 10.20.0.81:80
TCP 00:19  SYN_RECV    192.168.10.6:26699 192.168.188.100:80 10.20.0.82:8080
TCP 01:47  TIME_WAIT   192.168.10.6:40014 192.168.188.100:80 10.20.0.81:80
UDP 04:47  UDP         192.168.10.6:40016 192.168.188.100:80 10.20.0.81:80
TCP 01:47  SYN_RECV    [2001:db8:10::6]:40018 [2001:db8:188::100]:80 [2001:db8:20::81]:80
";
    let held = common::vm::parse_held(table, "192.168.188.100:80", "tcp", 20);
    assert_eq!(held, BTreeSet::from([26697, 40014]));
    let held6 = common::vm::parse_held(table, "[2001:db8:188::100]:80", "tcp", 20);
    assert_eq!(held6, BTreeSet::from([40018]));
}

/// The traffic judgements cannot pass when requests failed: a sticky service answered by nobody
/// (`{"FAILED": n}`), or a weighted split with a failure within its ±1 margin.
mod judging {
    use std::collections::BTreeMap;

    use super::common::vm::{judge_split, judge_sticky_across_ports, units};

    fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(h, n)| (h.to_string(), *n)).collect()
    }

    fn lab(inv: &str) -> lvsctl::inventory::Lab {
        lvsctl::inventory::load(&super::common::repo().join(inv)).unwrap()
    }

    /// dr.toml's web service: wrr 3:1, so 8 requests are 6 and 2.
    fn weighted() -> lvsctl::inventory::Service {
        lab("inventories/dr.toml").services[0].clone()
    }

    /// dr-fwmark.toml's persistent firewall-mark units.
    fn sticky() -> Vec<lvsctl::inventory::Service> {
        units(&lab("inventories/dr-fwmark.toml"))
            .into_iter()
            .filter(|u| u.ipvs.fwmark.is_some() && u.ipvs.persistence > 0)
            .collect()
    }

    #[test]
    fn a_split_by_the_weights_passes() {
        judge_split(&weighted(), &counts(&[("web1", 6), ("web2", 2)]), 8);
        judge_split(&sticky()[0], &counts(&[("web2", 8)]), 8);
        let s = sticky();
        judge_sticky_across_ports(&[(s[0].clone(), counts(&[("web1", 4)])), (s[1].clone(), counts(&[("web1", 4)]))], 4);
    }

    #[test]
    #[should_panic(expected = "FAILED is not a real server")]
    fn a_failure_within_the_margin_fails_the_split() {
        judge_split(&weighted(), &counts(&[("web1", 6), ("web2", 1), ("FAILED", 1)]), 8);
    }

    #[test]
    #[should_panic(expected = "FAILED is not a real server")]
    fn a_sticky_service_nobody_answered_fails() {
        judge_split(&sticky()[0], &counts(&[("FAILED", 8)]), 8);
    }

    #[test]
    #[should_panic(expected = "TIMEOUT is not a real server")]
    fn persistence_across_ports_nobody_answered_fails() {
        let s = sticky();
        judge_sticky_across_ports(
            &[(s[0].clone(), counts(&[("TIMEOUT", 4)])), (s[1].clone(), counts(&[("TIMEOUT", 4)]))],
            4,
        );
    }

    #[test]
    #[should_panic(expected = "every port reached the same real server")]
    fn persistence_broken_across_ports_fails() {
        let s = sticky();
        judge_sticky_across_ports(&[(s[0].clone(), counts(&[("web1", 4)])), (s[1].clone(), counts(&[("web2", 4)]))], 4);
    }
}

/// The scenario that proves `[ipvs]` on the lab kernel sets every setting lvsctl accepts, each
/// away from what the director had (the kernel's default, or what the scenario prepared), and
/// reads each back.
#[test]
fn the_ipvs_scenario_changes_every_setting() {
    for s in lvsctl::inventory::keys::IPVS_SETTINGS {
        let set = IPVS_SETTINGS_SET.split_whitespace().find_map(|w| w.strip_prefix(&format!("{}:", s.name)));
        let set: i128 = set.unwrap_or_else(|| panic!("{} is not read back", s.name)).parse().unwrap();
        let prior = if IPVS_PREPARE.contains(&format!("echo 0 > {}", s.name)) { 0 } else { s.kernel };
        assert_ne!(set, prior, "{} is set away from what the director had", s.name);
        assert!(
            IPVS_SETTINGS.contains(&format!(" {} = {set},", s.name))
                || IPVS_SETTINGS.contains(&format!(" {} = {set} }}", s.name)),
            "{}",
            s.name
        );
        assert!(IPVS_SETTINGS_READ.split_whitespace().any(|w| w == s.name), "{}", s.name);
    }
}
