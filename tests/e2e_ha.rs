//! HA pairs and health checks, end to end on a real IPVS kernel with a real, packaged keepalived
//! on the directors: `up`, the split, `verify --failover`, a real server whose web server stops
//! leaving the split and coming back, the sorry server when none is left, `up` again changing
//! nothing, `down` giving every host back exactly as it was, and keepalived missing on one
//! director stopping `up` before any host changed.
//!
//! The observers are independent of lvsctl: curl on the client, iproute2 and ipvsadm on the
//! directors, and each host's overlay upper layers.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, assert_same, lvsctl_bin, snapshot, text};
use common::vm::{assert_split, assert_sticky_across_ports, here_or_in_vm, traffic, units};

/// The deadline of a wait for the pair or keepalived to settle: it ends as soon as the condition
/// holds, and is long because six labs share two emulated vCPUs in the test guest (a pair took
/// over 20 s to settle there once).
const SETTLE: u64 = 60;

/// Polls `f` every half second until it holds, for at most `secs`.
fn wait_until(what: &str, secs: u64, f: impl FnMut() -> bool) -> Duration {
    waited(secs, 1, f).unwrap_or_else(|| panic!("{what}: not within {secs} s"))
}

/// How long `f` took to hold, polled every half second; None when it did not within `secs` and
/// `min_polls` polls.
fn waited(secs: u64, min_polls: u32, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    let mut polls = 0;
    while !f() {
        polls += 1;
        if started.elapsed() >= Duration::from_secs(secs) && polls >= min_polls {
            eprintln!("still false after {polls} polls in {:.1} s", started.elapsed().as_secs_f64());
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Some(started.elapsed())
}

/// `wait_until` for where the VIP is, looking at least 30 times: each look asks two hosts (an
/// exec each), and when the guest's two vCPUs are starved by the labs beside this one a look takes
/// tens of seconds (in one CI run the failed phase lasted 64 s longer than `up` and this 60 s
/// deadline together: a few looks in all). When
/// the pair does not settle: what every director held and what its keepalived said last.
fn wait_for_pair(l: &Lab, what: &str, secs: u64, f: impl FnMut() -> bool) -> Duration {
    waited(secs, 30, f).unwrap_or_else(|| {
        for d in l.lab.hosts_with_role(lvsctl::inventory::Role::Director) {
            let script = format!(
                "date +%s.%N; ip -o addr show; ps -eo pid,stat,etime,args | grep [k]eepalived; \
                 tail -n 40 /run/lvsctl-{}-keepalived.log 2>/dev/null",
                l.lab.name
            );
            eprintln!("{} when the pair had not settled: {}", d.name, l.sh(&d.name, &script));
        }
        panic!("{what}: not within {secs} s")
    })
}

/// Every VRRP instance of `master` scraped as master, every one of `backup` as not.
fn vrrp_master_is(p: &common::metrics::Prometheus, master: &str, backup: &str) {
    p.wait(&format!("{master} scraped as VRRP master"), 60, |p| {
        let of = |d: &str| p.query(&format!("lvs_vrrp_master{{director=\"{d}\"}}"));
        let (m, b) = (of(master), of(backup));
        !m.is_empty() && !b.is_empty() && m.iter().all(|(_, v)| *v == 1.0) && b.iter().all(|(_, v)| *v == 0.0)
    });
}

fn holds(l: &Lab, host: &str, addr: &str) -> bool {
    l.sh(host, "ip -o addr show").split_whitespace().any(|w| w.starts_with(&format!("{addr}/")))
}

/// The real server lines of service `svc` in a director's IPVS table: (address:port as
/// ipvsadm writes it, weight).
fn table(l: &Lab, director: &str, svc: &lvsctl::inventory::Service) -> Vec<(String, u32)> {
    let mut mine = false;
    l.sh(director, "ipvsadm -Ln")
        .lines()
        .filter_map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.first() != Some(&"->") {
                // A service's header line: its protocol, then VIP:PORT; or FWM, the mark, and
                // IPv6 for that family.
                mine = match svc.ipvs.fwmark {
                    Some(mark) => {
                        w.first() == Some(&"FWM")
                            && w.get(1) == Some(&mark.to_string().as_str())
                            && (w.get(2) == Some(&"IPv6")) == svc.ipvs.vip.is_ipv6()
                    }
                    None => w.get(1) == Some(&svc.endpoint().as_str()),
                };
                return None;
            }
            (mine && w.get(1).is_some_and(|a| a.contains(':')) && w[1] != "RemoteAddress:Port")
                .then(|| (w[1].to_string(), w[3].parse().unwrap_or(0)))
        })
        .collect()
}

/// Whether real server `host` is out of `svc`'s split on `director`: removed, or at weight 0
/// when the service quiesces failed real servers.
fn out_of_split(l: &Lab, director: &str, svc: &lvsctl::inventory::Service, host: &str) -> bool {
    let addr = std::net::SocketAddr::new(svc.address_of(host).unwrap(), svc.port_of(host).unwrap()).to_string();
    let quiesce = svc.on_failure == lvsctl::inventory::OnFailure::Quiesce;
    match table(l, director, svc).iter().find(|(a, _)| *a == addr) {
        None => !quiesce,
        Some((_, w)) => quiesce && *w == 0,
    }
}

/// The pid of the responder `lab create` started on `host`.
fn responder_pid(l: &Lab, host: &str) -> u32 {
    let state = lvsctl::lab::build::LabState::load(&l.lab.name).expect("lab state");
    state.hosts[host]
        .pids
        .iter()
        .copied()
        .find(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.windows(9).any(|w| w == b"responder")))
        .unwrap_or_else(|| panic!("{host} has no responder"))
}

/// A responder started again on `host` by the test, as `lab create` started it (killed by its
/// pid at the end). `lab exec` runs it as `/proc/self/exe`: the host has a /tmp of its own, where
/// the test's binary may be.
fn start_responder(l: &Lab, host: &str) -> Child {
    Command::new(lvsctl_bin())
        .args(["lab", "exec"])
        .arg(&l.inv)
        .arg(host)
        .arg("--")
        .arg("/proc/self/exe")
        .args(["lab", "responder"])
        .args(lvsctl::lab::build::responder_args(&l.lab, host))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a responder")
}

fn kill(pid: u32) {
    // SAFETY: kill(2) of a process this test started (or the lab created for it).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
}

/// `render`'s files alone run the lab, keepalived included: copied to each host as the README
/// says, started with the standalone script, stopped again.
fn rendered_files_alone(l: &Lab, before: &common::lab::Snapshot, director: &str) {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("render");
    l.ok(&["render", "--out", dir.to_str().unwrap()]);
    assert!(dir.join(format!("keepalived-{}-{director}.conf", l.lab.name)).exists());
    let script = format!("/usr/local/sbin/lvsctl-{}.sh", l.lab.name);
    for h in l.hosts() {
        let tree = Command::new("tar").arg("-C").arg(dir.join(&h)).args(["-c", "."]).output().unwrap();
        assert!(tree.status.success());
        l.pipe(&h, &["tar", "-C", "/", "-x", "--no-same-owner", "--no-overwrite-dir"], &tree.stdout);
    }
    for h in l.hosts() {
        let t = l.run(&h, &[&script, "start"]);
        assert!(t.contains("started"), "{h}: {t}");
    }
    let t = l.run(director, &[&script, "status"]);
    assert!(t.contains("keepalived runs (pid"), "{t}");
    let svc = &l.lab.services[0];
    wait_until("keepalived put the real servers in the table", SETTLE, || {
        table(l, director, svc).len() == svc.real_servers.len()
    });
    assert_split(l, svc, 8);
    for h in l.hosts() {
        let t = l.run(&h, &[&script, "stop"]);
        assert!(t.contains("stopped"), "{h}: {t}");
    }
    assert!(!l.sh(director, "ls /run").contains("keepalived.pid"), "the script stopped keepalived");
    for h in l.hosts() {
        assert_eq!(common::lab::kernel_state(l, &h), before[&h].0, "{h}: kernel state after the script's stop");
    }
}

/// Both real servers, and only they, answered all `n` requests.
fn both_answered(counts: &std::collections::BTreeMap<String, u32>, both: [&str; 2], n: u32) -> bool {
    counts.len() == 2 && both.iter().all(|h| counts.contains_key(*h)) && counts.values().sum::<u32>() == n
}

/// A request nobody answered (or a host other than the two) is not "both answered", which
/// `len() == 2` alone accepted.
#[test]
fn both_answered_counts_only_the_two_real_servers() {
    let counts = |pairs: &[(&str, u32)]| pairs.iter().map(|(h, n)| (h.to_string(), *n)).collect();
    assert!(both_answered(&counts(&[("web1", 4), ("web2", 4)]), ["web1", "web2"], 8));
    assert!(!both_answered(&counts(&[("web2", 7), ("FAILED", 1)]), ["web1", "web2"], 8));
    assert!(!both_answered(&counts(&[("web1", 4), ("sorry", 4)]), ["web1", "web2"], 8));
    assert!(!both_answered(&counts(&[("web1", 8)]), ["web1", "web2"], 8));
}

/// What one HA lab's cycle checks besides the common steps.
struct Ha<'a> {
    inv: &'a str,
    /// The director (of a pair: the higher priority), and the pair's other one.
    master: &'a str,
    backup: Option<&'a str>,
    /// The real server stopped first, and the other one.
    first: &'a str,
    second: &'a str,
    /// The host that answers when no real server is left.
    sorry: Option<&'a str>,
    /// keepalived is hidden on this director first: `up` must stop before changing any host.
    hide_keepalived_on: Option<&'a str>,
    /// `verify --failover-phase` (seconds); None runs the default (30 s), as one pair must.
    failover_phase: Option<&'a str>,
    /// `first` drained under load, through keepalived (`common::drain::drain_under_load`).
    drain: bool,
    /// `lab stop` of the master: the backup takes over; `lab start`: the master again.
    host_faults: bool,
}

/// Prints what `ha_cycle` runs for `c`, from the same values, without running it.
fn list_ha(test: &str, c: &Ha) {
    let lab = lvsctl::inventory::load(&common::repo().join(c.inv)).unwrap();
    let line = |l: &str| common::scenario_line(test, l);
    let pair = c.backup.map_or(format!("one director {}", c.master), |b| format!("pair {} and {b}", c.master));
    line(&format!("lab {} ({} hosts, {pair}, {} probe units)", c.inv, lab.hosts.len(), units(&lab).len()));
    line("the operator's own keepalived.conf on the master: kept, put back by down");
    if let Some(d) = c.hide_keepalived_on {
        line(&format!("up refused without keepalived on {d}, nothing changed"));
    }
    line("up: keepalived running, the pair settled (status: MASTER holds the VIPs, BACKUP none)");
    line("traffic: every probe unit split by weight through the master, persistence across ports; up again: 0 changes");
    if c.drain {
        line(&format!(
            "drain {} under load through keepalived (its weight parameter 0, a reload): none failed, nothing new \
             reaches it after weight 0; up keeps it; status, verify and doctor see a drain; undrain; --remove refused",
            c.first
        ));
    }
    line(&format!("trace: the walk goes through {}, every hop as tcpdump sees it", c.master));
    line("metrics: promtool accepts them, counters equal ipvsadm's on each director, VRRP master named");
    if lab.metrics.is_some() {
        line(
            "exporter: a real Prometheus scrapes both directors: counters equal ipvsadm's, firewall-mark services there, \
             the VRRP master series flips with lab stop and start, a failed health check scraped as quiesced or removed",
        );
    }
    if let (true, Some(b)) = (c.host_faults, c.backup) {
        line(&format!(
            "lab stop {}: {b} takes the VIPs and the traffic, trace walks through {b}; lab start: {} master again, \
             its links and processes back; top through a pipe shows each of them master in turn",
            c.master, c.master
        ));
    }
    match c.backup {
        Some(b) => line(&format!("verify --failover: VIPs on {b} under traffic, then back as preemption says")),
        None => line("verify --failover refused: it needs an HA pair"),
    }
    line("keepalived killed on the standby: doctor names keepalived-down and drift, up starts it again");
    line(&format!("{}'s web server stopped: it leaves the split, every request answered by {}", c.first, c.second));
    if let Some(sorry) = c.sorry {
        line(&format!("{} stopped too: the sorry server {sorry} answers", c.second));
    }
    line(&format!("{} back: both real servers answer again; up changes nothing", c.first));
    line("down: keepalived stopped, every host as before");
    if c.backup.is_none() {
        line("render's files alone run it, keepalived included; the script's stop restores every host");
    }
}

fn ha_cycle(test: &str, c: Ha) {
    if common::listing_scenarios() {
        return list_ha(test, &c);
    }
    let started = Instant::now();
    let mut ph = common::Phases::start(test);
    let l = Lab::create(c.inv);
    // The operator's own keepalived.conf: kept while lvsctl's runs, put back by down.
    l.sh(
        c.master,
        "mkdir -p /etc/keepalived && echo '# the operator s own, not running' > /etc/keepalived/keepalived.conf",
    );
    let before = snapshot(&l);
    ph.done("lab create");
    let svc = l.lab.services[0].clone();
    let vip = svc.ipvs.vip.to_string();

    if let Some(d) = c.hide_keepalived_on {
        // A director without keepalived (hidden in its mount namespace): nothing changes anywhere.
        l.sh(d, "mount --bind /dev/null /usr/sbin/keepalived");
        let out = l.lvsctl(&["up"]);
        let t = text(&out);
        assert!(!out.status.success(), "up must fail without keepalived on {d}:\n{t}");
        for want in [
            &format!("{d}: keepalived is not installed") as &str,
            "apt-get install keepalived",
            "dnf install keepalived",
            "nothing was changed on any host",
        ] {
            assert!(t.contains(want), "up's error names {want:?}:\n{t}");
        }
        assert_same(&before, &snapshot(&l), "after up refused to start without keepalived");
        l.sh(d, "umount /usr/sbin/keepalived");
        ph.done("refusals");
    }

    let out = l.ok(&["up"]);
    assert!(out.contains("daemon keepalived: stopped -> running"), "{out}");
    let preempt = l.lab.ha.as_ref().is_none_or(|h| h.preempt);
    // Both directors start as BACKUP. With preemption the higher priority becomes master within a
    // few adverts; without it (keepalived's nopreempt) the first to finish its wait keeps the
    // role, and `up` starts the two in parallel: either may be it.
    let (master, backup) = match c.backup {
        Some(b) if !preempt => {
            let mut first = None;
            wait_for_pair(&l, "a director holds the VIP", SETTLE, || {
                first = [c.master, b].into_iter().find(|h| holds(&l, h, &vip));
                first.is_some()
            });
            let m = first.unwrap();
            (m, Some(if m == c.master { b } else { c.master }))
        }
        b => (c.master, b),
    };
    let status = if let Some(backup) = backup {
        // Both start as BACKUP and `up` starts them in parallel: under emulation the lower
        // priority may finish its wait first and hold the VIP until the master's first advert
        // reaches it. The pair has settled when only the master holds it.
        wait_for_pair(&l, "the master alone holds the VIP", SETTLE, || {
            holds(&l, master, &vip) && !holds(&l, backup, &vip)
        });
        let status = l.ok(&["status"]);
        let line =
            |h: &str| status.lines().find(|l| l.trim_start().starts_with(&format!("{h} ")) && l.contains("VRRP"));
        assert!(line(master).is_some_and(|l| l.contains(&format!("MASTER, holds {vip}"))), "{status}");
        assert!(line(backup).is_some_and(|l| l.contains("BACKUP") && !l.contains("holds")), "{status}");
        assert!(status.contains(&format!("VIP {vip} on {}", master)), "{status}");
        status
    } else {
        // One director: the VIP is lvsctl's, keepalived only checks.
        assert!(holds(&l, c.master, &vip));
        let status = l.ok(&["status"]);
        assert!(status.contains(&format!("{} ", c.master)) && status.contains("running (pid"), "{status}");
        status
    };
    assert!(!status.contains("DRIFTED"), "{status}");
    ph.done("up");
    let checked: Vec<lvsctl::inventory::Service> =
        l.lab.services.iter().filter(|s| s.keepalived_managed()).cloned().collect();
    wait_until("keepalived put every real server in the table", SETTLE, || {
        checked.iter().all(|s| table(&l, master, s).len() == s.real_servers.len())
    });
    // A tunnel type other than IP-in-IP is keepalived's to set (`lb_kind TUN type gue port N`):
    // the kernel holds it for each real server (traffic alone would not tell: IP-in-IP arrives too).
    let saved = l.sh(master, "ipvsadm-save -n");
    for s in l.lab.services.iter().filter(|s| !s.encap.is_ipip()) {
        for b in &s.real_servers {
            let dest = format!("-r {} ", std::net::SocketAddr::new(b.address, b.port));
            let line = saved.lines().find(|x| x.contains(&dest)).unwrap_or_else(|| panic!("{dest} in:\n{saved}"));
            assert!(
                line.contains(&s.encap.ipvsadm_save_args()),
                "{} tunnels as {}: {line}",
                s.label(),
                s.encap.describe()
            );
        }
    }
    assert_split(&l, &svc, 16);
    // Every other service through the master: each family, each port of a firewall-mark service
    // on its own, and a persistent client on one real server across the ports of one.
    let others: Vec<lvsctl::inventory::Service> = units(&l.lab).into_iter().filter(|u| u.key() != svc.key()).collect();
    for u in &others {
        assert_split(&l, u, 8);
    }
    assert_sticky_across_ports(&l, 4);
    let again = l.ok(&["up"]);
    assert!(again.contains(" 0 changed"), "a second up changes nothing:\n{again}");

    ph.done("traffic");
    // trace: the director hop is the one that holds the VIP.
    let svc_args = ["--vip".to_string(), svc.ipvs.vip.to_string(), "--port".into(), svc.ipvs.port.to_string()];
    let svc_args: Vec<&str> = svc_args.iter().map(String::as_str).collect();
    let doc = common::trace::trace_as_tcpdump_sees_it(&l, &svc_args, true, &[]);
    assert_eq!(common::trace::director_of(&doc).as_deref(), Some(master), "{doc:#}");
    ph.done("trace");
    let m = common::metrics::metrics_equal_ipvsadm(&l);
    if let Some(backup) = backup {
        for (d, is) in [(master, 1), (backup, 0)] {
            let line =
                m.lines().find(|x| x.starts_with("lvs_vrrp_master{") && x.contains(&format!("director=\"{d}\"")));
            assert!(line.is_some_and(|x| x.ends_with(&format!(" {is}"))), "{d}: lvs_vrrp_master {is}:\n{m}");
        }
    }
    // The exporter on each director: a real Prometheus scrapes them; the master says so.
    let prom = common::metrics::Prometheus::start(&l);
    if let Some(p) = &prom {
        common::metrics::scraped_equal_ipvsadm(&l, p);
        if let Some(backup) = backup {
            vrrp_master_is(p, master, backup);
        }
    }
    ph.done("metrics");
    if c.drain {
        common::drain::drain_under_load(&l, common::drain::Drain::Host(c.first));
        ph.done("drain");
    }
    if let (true, Some(backup)) = (c.host_faults, backup) {
        // The master as a machine whose power was pulled: its peers hear nothing more.
        let lab_cmd = |verb: &str, host: &str| {
            let out = Command::new(lvsctl_bin()).args(["lab", verb]).arg(&l.inv).arg(host).output().unwrap();
            assert!(out.status.success(), "lab {verb} {host}: {}", text(&out));
            text(&out)
        };
        // top watches through it all (the stopped master's agent is frozen with it). The master is
        // stopped once top has shown it as master: its ssh connections may take many seconds in
        // a loaded guest, and a master frozen before top reached it never shows.
        let top = common::lab::Watching::spawn(l.command(&["top"]).args(["--seconds", "300"]));
        let is_master = |d: &str| {
            let vrrp = format!(" {d} vrrp ");
            move |x: &str| x.contains(&vrrp) && x.ends_with(" master")
        };
        let shown = top.wait_for(&format!("top shows {master} as VRRP master"), 90, is_master(master));
        eprintln!("top showed {master} as VRRP master {:.1} s after it started", shown.as_secs_f64());
        let out = lab_cmd("stop", master);
        assert!(out.contains(&format!("{master} stopped")) && out.contains("processes frozen"), "{out}");
        let took = wait_for_pair(&l, "the backup holds the VIP", SETTLE, || holds(&l, backup, &vip));
        eprintln!("{backup} took the VIP {:.1} s after {master} stopped", took.as_secs_f64());
        top.wait_for(&format!("top shows {backup} as VRRP master"), 20, is_master(backup));
        if let Some(p) = &prom {
            // The stopped master cannot be scraped; the backup's series flips to master.
            p.wait(&format!("{backup} scraped as VRRP master"), 60, |p| {
                p.query(&format!("lvs_vrrp_master{{director=\"{backup}\"}}")).iter().all(|(_, v)| *v == 1.0)
                    && !p.query(&format!("lvs_vrrp_master{{director=\"{backup}\"}}")).is_empty()
            });
            p.wait(&format!("{master} down for Prometheus"), 60, |p| {
                p.query("up == 0").iter().any(|(l, _)| {
                    p.targets.iter().any(|(d, a)| d == master && l.get("instance") == Some(&a.to_string()))
                })
            });
        }
        assert_split(&l, &svc, 8);
        // The walk goes through the backup now; the stopped master is left out of the capture.
        let doc = common::trace::trace_as_tcpdump_sees_it(&l, &svc_args, true, &[master]);
        assert_eq!(common::trace::director_of(&doc).as_deref(), Some(backup), "{doc:#}");
        let out = lab_cmd("start", master);
        assert!(out.contains(&format!("{master} started")), "{out}");
        wait_for_pair(&l, "the master alone holds the VIP again", SETTLE, || {
            holds(&l, master, &vip) && !holds(&l, backup, &vip)
        });
        if let Some(p) = &prom {
            p.wait("the master scraped again", 60, |p| p.query("up == 1").len() == p.targets.len());
            p.fresh();
            vrrp_master_is(p, master, backup);
        }
        assert_split(&l, &svc, 8);
        // Ctrl-C ends top: every director's agent, the one frozen and thawed too, ends its watch.
        top.interrupt();
        let (_, out) = top.finish();
        assert!(out.status.success(), "top, after a director was frozen and thawed: {}", text(&out));
        ph.done("host faults");
    }
    // Failover under traffic, then failback.
    let mut master_after = master;
    if let Some(backup) = backup {
        let mut args = vec!["verify", "--failover"];
        if let Some(p) = c.failover_phase {
            args.extend(["--failover-phase", p]);
        }
        let f = l.ok(&args);
        assert!(f.contains("verify --failover: ok"), "{f}");
        assert!(f.contains(&format!("VIPs now on {backup}")), "{f}");
        if l.lab.ha.as_ref().unwrap().sync {
            assert!(f.contains("completed after it (connection sync)"), "{f}");
        }
        if !preempt {
            master_after = backup;
        }
        wait_for_pair(&l, "the VIP is where preemption puts it", SETTLE, || holds(&l, master_after, &vip));
        for u in &others {
            assert_split(&l, u, 4);
        }
    } else {
        let f = l.lvsctl(&["verify", "--failover"]);
        assert!(!f.status.success() && text(&f).contains("--failover needs an HA pair"), "{}", text(&f));
    }

    ph.done("failover");
    let d = l.ok(&["doctor"]);
    assert!(d.contains("no problem found"), "{d}");
    // keepalived killed behind lvsctl's back: doctor names it (and status calls it drift), up
    // starts it again.
    // The victim is the director not holding the VIPs now, so the pair keeps them where they are.
    let standby = backup.map(|b| if master_after == master { b } else { master });
    let victim = standby.unwrap_or(master);
    l.sh(victim, "kill $(cat /run/keepalived.pid)");
    wait_until("keepalived ended", SETTLE, || !l.sh(victim, "ls /run").contains("keepalived.pid"));
    let d = l.lvsctl(&["doctor", "--output", "json"]);
    let doc = common::schema::parse(&lvsctl_bin(), "doctor", &d.stdout);
    let findings: Vec<serde_json::Value> = doc["findings"].as_array().expect("findings").clone();
    let got: std::collections::BTreeSet<(String, String)> = findings
        .iter()
        .map(|f| (f["host"].as_str().unwrap().to_string(), f["code"].as_str().unwrap().to_string()))
        .collect();
    assert!(got.contains(&(victim.to_string(), "keepalived-down".to_string())), "{got:?}");
    assert!(got.contains(&(victim.to_string(), "drift".to_string())), "{got:?}");
    let repaired = l.ok(&["up", "--host", victim]);
    assert!(repaired.contains("daemon keepalived: stopped -> running"), "{repaired}");
    if let Some(standby) = standby {
        wait_for_pair(&l, "the pair settled", SETTLE, || {
            l.ok(&["status"]).lines().any(|x| x.trim_start().starts_with(standby) && x.contains("BACKUP"))
        });
    } else {
        wait_until("keepalived put every real server back", SETTLE, || {
            table(&l, c.master, &svc).len() == svc.real_servers.len()
        });
    }
    let d = l.ok(&["doctor"]);
    assert!(d.contains("no problem found"), "after up: {d}");
    ph.done("breaks");

    // A real server whose web server stopped leaves the split within interval × retries (plus
    // the checks' own timeouts and a margin); every request still gets an answer.
    let hc = svc.health_check.clone().expect("a checked service");
    let limit = (hc.interval * (hc.retries + 1) + hc.timeout * (hc.retries + 1) + hc.retries + 10) as u64;
    let addr = |h: &str| std::net::SocketAddr::new(svc.address_of(h).unwrap(), svc.port_of(h).unwrap()).to_string();
    kill(responder_pid(&l, c.first));
    let took = wait_until(&format!("{} leaves the split", c.first), limit, || {
        checked.iter().all(|s| out_of_split(&l, master_after, s, c.first))
    });
    eprintln!("{} left the split {:.1} s after its web server stopped", c.first, took.as_secs_f64());
    if let Some(p) = &prom {
        // Its failed health check, as scraped: in every service keepalived checks it in,
        // quiesced or removed, and no longer up (each service's checker acts on its own time).
        for s in checked.iter().filter(|s| s.real_servers.iter().any(|b| b.host == c.first)) {
            let name = s.name.clone().unwrap_or_else(|| s.key().to_string());
            let series = |state: &str| {
                format!(
                    "lvs_real_server_state{{director=\"{master_after}\",real_server=\"{}\",service=\"{name}\",state=~\"{state}\"}} == 1",
                    c.first
                )
            };
            let (failing, up) = (series("quiesced|removed"), series("up"));
            p.wait(&format!("{} scraped as failing in {name}", c.first), 60, |p| {
                !p.query(&failing).is_empty() && p.query(&up).is_empty()
            });
        }
    }
    for u in others.iter().filter(|u| u.keepalived_managed()) {
        let counts = traffic(&l, u, 6);
        assert_eq!(
            counts.get(c.second).copied(),
            Some(6),
            "{}: every request answered by {}: {counts:?}",
            u.label(),
            c.second
        );
    }
    let counts = traffic(&l, &svc, 20);
    assert_eq!(counts.get(c.second).copied(), Some(20), "every request answered by {}: {counts:?}", c.second);
    let v = l.ok(&["verify", "--requests", "20"]);
    assert!(v.contains("every service answers as configured"), "{v}");
    assert!(v.contains("DOWN: its health check fails"), "verify reports {} down:\n{v}", c.first);
    let status = l.ok(&["status"]);
    assert!(status.contains(&format!("{} FAILING", c.first)), "{status}");
    assert!(!status.contains("DRIFTED"), "a failed real server is keepalived's business, not drift:\n{status}");

    // None left: the sorry server answers.
    if let Some(sorry) = c.sorry {
        kill(responder_pid(&l, c.second));
        wait_until("the sorry server answers", limit + 10, || traffic(&l, &svc, 2).get(sorry) == Some(&2));
        let status = l.ok(&["status"]);
        assert!(status.contains(&format!("sorry server {sorry} IN USE")), "{status}");
    }

    // A web server back: its real server comes back into the split.
    let mut back = vec![start_responder(&l, c.first)];
    if c.sorry.is_some() {
        back.push(start_responder(&l, c.second));
    }
    wait_until(&format!("{} comes back", c.first), limit + 10, || {
        table(&l, master_after, &svc).iter().any(|(a, w)| *a == addr(c.first) && *w > 0)
    });
    wait_until("both real servers answer again", SETTLE, || {
        both_answered(&traffic(&l, &svc, 8), [c.first, c.second], 8)
    });
    ph.done("health checks");

    let again = l.ok(&["up"]);
    assert!(again.contains(" 0 changed"), "up after all that changes nothing:\n{again}");
    l.ok(&["down"]);
    for d in [Some(c.master), c.backup].into_iter().flatten() {
        let ps = l.sh(d, "ls /run");
        assert!(!ps.contains("keepalived.pid"), "{d}: keepalived stopped: {ps}");
    }
    assert_same(&before, &snapshot(&l), "after down");
    ph.done("down");
    if c.backup.is_none() {
        rendered_files_alone(&l, &before, c.master);
        ph.done("rendered");
    }
    for mut child in back {
        kill(child.id());
        let _ = child.wait();
    }
    eprintln!("{}: HA cycle in {:.0} s", c.inv, started.elapsed().as_secs_f64());
}

#[test]
fn e2e_dr_ha() {
    if !here_or_in_vm("e2e_dr_ha") {
        return;
    }
    ha_cycle(
        "e2e_dr_ha",
        Ha {
            inv: "inventories/dr-ha.toml",
            master: "lvs1",
            backup: Some("lvs2"),
            first: "web1",
            second: "web2",
            sorry: Some("sorry"),
            failover_phase: None,
            hide_keepalived_on: Some("lvs2"),
            drain: true,
            host_faults: false,
        },
    );
}

/// The DR pair over both families: the IPv6 service is the one traffic, failover and the
/// health checks are proven on; its VRRP instance is in one sync group with the IPv4 one.
#[test]
fn e2e_dr6_ha() {
    if !here_or_in_vm("e2e_dr6_ha") {
        return;
    }
    ha_cycle(
        "e2e_dr6_ha",
        Ha {
            inv: "inventories/dr6-ha.toml",
            master: "lvs1",
            backup: Some("lvs2"),
            first: "web1",
            second: "web2",
            sorry: Some("sorry"),
            failover_phase: Some("20"),
            hide_keepalived_on: None,
            drain: false,
            host_faults: false,
        },
    );
}

/// NAT: the VIP and the real servers' floating gateway move together (one sync group); a
/// failed real server is quiesced (weight 0), not removed.
#[test]
fn e2e_nat_ha() {
    if !here_or_in_vm("e2e_nat_ha") {
        return;
    }
    ha_cycle(
        "e2e_nat_ha",
        Ha {
            inv: "inventories/nat-ha.toml",
            master: "lvs1",
            backup: Some("lvs2"),
            first: "web1",
            second: "web2",
            sorry: Some("sorry"),
            failover_phase: Some("20"),
            hide_keepalived_on: None,
            drain: false,
            host_faults: true,
        },
    );
}

/// TUN with unicast VRRP and preempt = false: the backup keeps the VIP after the failback.
#[test]
fn e2e_tun_ha() {
    if !here_or_in_vm("e2e_tun_ha") {
        return;
    }
    ha_cycle(
        "e2e_tun_ha",
        Ha {
            inv: "inventories/tun-ha.toml",
            master: "lvs1",
            backup: Some("lvs2"),
            first: "web1",
            second: "web2",
            sorry: None,
            failover_phase: Some("20"),
            hide_keepalived_on: None,
            drain: false,
            host_faults: false,
        },
    );
}

/// One director with health checks only: keepalived checks, lvsctl keeps the VIP; with no real
/// server left, the director answers itself (its sorry server is 127.0.0.1).
#[test]
fn e2e_health_checks_single_director() {
    if !here_or_in_vm("e2e_health_checks_single_director") {
        return;
    }
    ha_cycle(
        "e2e_health_checks_single_director",
        Ha {
            inv: "tests/fixtures/dr-checks.toml",
            master: "lvs",
            backup: None,
            first: "web1",
            second: "web2",
            sorry: Some("lvs"),
            failover_phase: None,
            hide_keepalived_on: None,
            drain: false,
            host_faults: false,
        },
    );
}
