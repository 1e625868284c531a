//! `up`, `down` and `render` behaviours that need no IPVS, checked with the real binary against
//! labs built on this machine's kernel (the director is left out: this kernel may lack IPVS).
//! Needs root; skipped otherwise.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::lab::{Lab, assert_same, lvsctl_bin, snapshot, text};
use common::{in_fresh_netns, needs_root, repo, sh};

const NO_DIRECTOR: [&str; 8] = ["--host", "client", "--host", "router", "--host", "web1", "--host", "web2"];

/// The DR example under another lab name (labs of one name cannot coexist on a machine).
fn dr_copy(dir: &Path, name: &str) -> PathBuf {
    let src = std::fs::read_to_string(repo().join("inventories/dr.toml")).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, src.replace("name = \"dr\"", &format!("name = \"{name}\""))).unwrap();
    path
}

fn subset(l: &Lab, hosts: &[&str]) -> common::lab::Snapshot {
    snapshot(l).into_iter().filter(|(h, _)| hosts.contains(&h.as_str())).collect()
}

/// The `+ ~ -` counts of a dry run's "Plan:" line, checked against its item lines.
fn plan_counts(out: &str) -> [usize; 3] {
    let line = out.lines().find(|l| l.starts_with("Plan: ")).unwrap_or_else(|| panic!("no Plan: line:\n{out}"));
    let n: Vec<usize> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert_eq!(n.len(), 3, "{line}");
    for (sign, count) in ["+", "~", "-"].iter().zip(&n) {
        let items = out.lines().filter(|l| l.starts_with(&format!("  {sign} "))).count();
        assert_eq!(items, *count, "{sign} items against {line}:\n{out}");
    }
    [n[0], n[1], n[2]]
}

/// The recap's total: `4 hosts, 37 changed, 2.1 s`.
fn total(out: &str, verb: &str) -> usize {
    let line = out.lines().rev().find(|l| l.contains(" hosts, ") && l.contains(verb)).expect("the recap");
    line.split(", ").nth(1).and_then(|w| w.split(' ').next()).and_then(|n| n.parse().ok()).expect(line)
}

#[test]
fn dry_run_changes_nothing_and_records_nothing() {
    if !needs_root("dry_run_changes_nothing_and_records_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-dry"));
    let before = snapshot(&l);
    let with = |first: &[&'static str]| {
        let mut v: Vec<&str> = first.to_vec();
        v.extend(NO_DIRECTOR);
        v
    };
    // terraform's plan: + ~ - per item, grouped by host, and the counts.
    let out = l.ok(&with(&["up", "--dry-run"]));
    assert!(out.contains("\n  ~ sysctl net.ipv4.conf.all.arp_ignore: 0 -> 1\n"), "{out}");
    assert!(out.contains("\n  + route default: absent -> default via 192.168.188.200"), "{out}");
    assert!(out.contains("\nweb1:\n"), "{out}");
    let [add, change, remove] = plan_counts(&out);
    assert!(add > 0 && change > 0 && remove == 0, "{out}");
    let pending = l.lvsctl(&with(&["up", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(pending.status.code(), Some(7), "changes pending: {}", text(&pending));
    // The same plan for programs, in the envelope every command's JSON has.
    let json = l.lvsctl(&with(&["up", "--dry-run", "--output", "json"]));
    let v = common::schema::parse(&lvsctl_bin(), "up", &json.stdout);
    assert_eq!(
        (v["schema_version"].as_u64(), v["command"].as_str(), v["lab"].as_str()),
        (Some(1), Some("up"), Some("t-dry"))
    );
    assert_eq!(v["ok"].as_bool(), Some(true));
    let counts = [&v["plan"]["add"], &v["plan"]["change"], &v["plan"]["remove"]].map(|n| n.as_u64().unwrap() as usize);
    assert_eq!(counts, [add, change, remove], "{v}");
    assert_eq!(v["hosts"].as_array().unwrap().len(), 4);
    assert!(v["hosts"].as_array().unwrap().iter().all(|h| h["duration_ms"].is_u64() && h["ok"] == true), "{v}");
    assert_same(&before, &snapshot(&l), "after a dry run");
    assert!(std::fs::read_dir(l.state_dir.path()).unwrap().next().is_none(), "a dry run writes no controller state");

    // The plan's counts are what up then does, and after it nothing is pending.
    let up = l.ok(&with(&["up"]));
    assert_eq!(total(&up, "changed"), add + change + remove, "{up}");
    // Each note once with its hosts.
    let systemd: Vec<&str> = up.lines().filter(|x| x.contains("systemd does not run")).collect();
    assert_eq!(systemd.len(), 1, "{up}");
    assert!(systemd[0].starts_with("note (client, router, web1, web2): "), "{up}");
    // A no-op up: the recap alone (the boot unit's note was told when it was installed); -q the
    // recap alone; -v each host.
    let again = l.ok(&with(&["up"]));
    let lines: Vec<&str> = again.lines().filter(|x| !x.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "the header and the recap:\n{again}");
    assert!(lines[1].starts_with("4 hosts, 0 changed"), "{again}");
    let quiet = l.ok(&with(&["-q", "up"]));
    let quiet: Vec<&str> = quiet.lines().filter(|x| !x.trim().is_empty()).collect();
    assert!(quiet.len() == 1 && quiet[0].starts_with("4 hosts, 0 changed"), "{quiet:?}");
    let verbose = l.ok(&with(&["up", "--verbose"]));
    for h in ["client", "router", "web1", "web2"] {
        assert!(verbose.lines().any(|x| x.starts_with(&format!("{h} ")) && x.contains("0 changed")), "{verbose}");
    }
    let none = l.lvsctl(&with(&["up", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(none.status.code(), Some(0), "{}", text(&none));
    assert!(text(&none).contains("No changes: every host is as planned."), "{}", text(&none));

    let st = l.lvsctl(&with(&["status", "--output", "json"]));
    let v = common::schema::parse(&lvsctl_bin(), "status", &st.stdout);
    assert_eq!((v["command"].as_str(), v["ok"].as_bool()), (Some("status"), Some(true)), "{v}");

    // down --dry-run: what down would undo, nothing changed (the journals included).
    let after_up = snapshot(&l);
    let out = l.ok(&with(&["down", "--dry-run"]));
    let [add, change, remove] = plan_counts(&out);
    assert!(add == 0 && remove > 0, "down only removes and changes back: {out}");
    assert!(out.contains("\n  - route default: default via 192.168.188.200"), "{out}");
    let pending = l.lvsctl(&with(&["down", "--dry-run", "--detailed-exitcode"]));
    assert_eq!(pending.status.code(), Some(7));
    assert_same(&after_up, &snapshot(&l), "after a dry run of down");
    let down = l.ok(&with(&["down"]));
    assert_eq!(total(&down, "undone"), add + change + remove, "{down}");
    assert_same(&before, &snapshot(&l), "after down");
}

#[test]
fn down_reaches_hosts_the_edited_inventory_no_longer_lists() {
    if !needs_root("down_reaches_hosts_the_edited_inventory_no_longer_lists") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inv = dr_copy(dir.path(), "t-edit");
    let l = Lab::create(&inv);
    let hosts = ["client", "router", "web1", "web2"];
    let before = subset(&l, &hosts);
    let mut args = vec!["up"];
    args.extend(NO_DIRECTOR);
    l.ok(&args);
    // The inventory loses web2 and the client's gateway; web1's weight changes.
    let src = std::fs::read_to_string(&inv).unwrap();
    let start = src.find("[hosts.web2]").unwrap();
    let end = src[start..].find("\n[[services]]").unwrap() + start;
    let edited = format!("{}{}", &src[..start], &src[end + 1..])
        .replace("gateway = \"192.168.10.200\"\n", "")
        .replace(", \"web2:eth0\"", "")
        .replace("{ host = \"web1\", weight = 3 }, { host = \"web2\", weight = 1 }", "{ host = \"web1\", weight = 5 }");
    std::fs::write(&inv, edited).unwrap();
    lvsctl::inventory::load(&inv).unwrap_or_else(|e| panic!("edited inventory: {e}"));
    let out = l.ok(&["down"]);
    assert!(out.contains("no longer in the inventory: web2"), "{out}");
    assert!(out.contains("web2    removed address 192.168.188.100/32 dev lo: present -> absent"), "{out}");
    assert_same(&before, &subset(&l, &hosts), "after down with an edited inventory");
    assert!(std::fs::read_dir(l.state_dir.path()).unwrap().next().is_none(), "state emptied once every host is undone");
}

#[test]
fn unreachable_hosts_and_refused_host_keys_do_not_stop_the_others() {
    if !needs_root("unreachable_hosts_and_refused_host_keys_do_not_stop_the_others") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-unreach"));
    // web1's recorded host key is wrong; web2's sshd is gone.
    let known = PathBuf::from("/run/lvsctl/labs/t-unreach/known_hosts");
    let k = std::fs::read_to_string(&known).unwrap();
    let other = k.lines().find(|x| x.starts_with("10.250.0.6 ")).unwrap().split_once(' ').unwrap().1.to_string();
    let forged: String = k
        .lines()
        .map(|x| if x.starts_with("10.250.0.81 ") { format!("10.250.0.81 {other}\n") } else { format!("{x}\n") })
        .collect();
    std::fs::write(&known, forged).unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read("/run/lvsctl/labs/t-unreach/state.json").unwrap()).unwrap();
    let sshd = state["hosts"]["web2"]["pids"][0].as_u64().unwrap() as i32;
    // SAFETY: the sshd this test's lab started.
    unsafe { libc::kill(sshd, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Gone, or a zombie nobody has reaped yet: either way it listens no more.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{sshd}/stat"))
            .is_ok_and(|st| st.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    };
    while alive() {
        assert!(std::time::Instant::now() < deadline, "web2's sshd {sshd} did not end within 30 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let out = l.lvsctl(&["up", "--host", "client", "--host", "web1", "--host", "web2"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "unreachable hosts give exit status 5:\n{t}");
    assert!(t.contains("web1    unreachable: ssh root@10.250.0.81 port 22"), "{t}");
    assert!(t.contains("host_key = \"strict\""), "the refused key says what to do:\n{t}");
    assert!(t.contains("web2    unreachable"), "{t}");
    assert!(t.contains("client  8 changed"), "the reachable host was provisioned:\n{t}");
    assert!(t.contains("unreachable: web1 web2"), "{t}");
    let out = l.lvsctl(&["down", "--host", "client"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_up_interrupted_by_ctrl_c_still_finishes_on_the_host() {
    if !needs_root("an_up_interrupted_by_ctrl_c_still_finishes_on_the_host") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-intr"));
    let before = subset(&l, &["web1"]);
    // The agent stops for a while after its third change; Ctrl-C reaches the controller and its
    // ssh clients (one process group) then, and the session to web1 is gone mid-apply.
    let mut up = Command::new(lvsctl_bin())
        .args(["up", "--host", "web1"])
        .arg(&l.inv)
        .env("LVSCTL_STATE_DIR", l.state_dir.path())
        .env("LVSCTL_FAULT_STALL_AFTER", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while journal_entries("t-intr", "web1") < 3 {
        assert!(std::time::Instant::now() < deadline, "the agent never made its third change");
        assert!(up.try_wait().unwrap().is_none(), "up ended before it was interrupted");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: signals the process group of the child this test started.
    unsafe { libc::kill(-(up.id() as i32), libc::SIGINT) };
    let st = up.wait().unwrap();
    assert!(!st.success(), "the controller was interrupted: {st}");
    // The next up waits for the agent's lab lock, then finds everything done.
    let out = l.lvsctl(&["up", "--host", "web1", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = common::schema::parse(&lvsctl_bin(), "up", &out.stdout);
    assert_eq!(v["hosts"][0]["report"]["changes"], 0, "the interrupted agent finished its plan:\n{}", text(&out));
    assert!(journal_entries("t-intr", "web1") > 3, "and journaled every change");
    l.ok(&["down", "--host", "web1"]);
    assert_same(&before, &subset(&l, &["web1"]), "after an interrupted up and down");
}

#[test]
fn a_host_of_another_architecture_gets_a_clear_error_and_nothing_installed() {
    if !needs_root("a_host_of_another_architecture_gets_a_clear_error_and_nothing_installed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-arch"));
    // The static build, relabelled as an aarch64 executable (ELF e_machine 183).
    let mut elf = std::fs::read(lvsctl_bin()).unwrap();
    elf[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
    let agent = dir.path().join("lvsctl-aarch64");
    std::fs::write(&agent, elf).unwrap();
    let out = l.lvsctl(&["up", "--host", "web1", "--agent-binary", agent.to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("the host is x86_64 but the agent binary"), "{t}");
    assert!(t.contains("is aarch64: build lvsctl for x86_64 and pass it with --agent-binary"), "{t}");
    assert!(
        !Path::new("/run/lvsctl/labs/t-arch/hosts/web1/usr-local/upper/lib/lvsctl").exists(),
        "nothing was uploaded"
    );
}

#[test]
fn rendered_real_server_script_starts_and_stops_exactly() {
    if !needs_root("rendered_real_server_script_starts_and_stops_exactly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-script"));
    // A non-default value before start: stop must restore it, not write 0.
    l.sh("web1", "echo 2 > /proc/sys/net/ipv4/conf/all/arp_ignore");
    let before = subset(&l, &["web1"]);
    let out = dir.path().join("rendered");
    l.ok(&["render", "--host", "web1", "--out", out.to_str().unwrap()]);
    // Lab hosts have their own /tmp (and any directory of this machine may be out of their
    // sight): the script travels as sh's argument, as a copy would.
    let script = std::fs::read_to_string(out.join("web1/usr/local/sbin/lvsctl-t-script.sh")).unwrap();
    let run = |action: &str| l.run("web1", &["sh", "-c", &script, "lvsctl-t-script.sh", action]);
    let started = run("start");
    assert!(started.contains("web1: sysctl net.ipv4.conf.all.arp_ignore: 2 -> 1"), "{started}");
    let state = l
        .sh("web1", "ip -o -4 addr show dev lo; cat /proc/sys/net/ipv4/conf/lo/arp_announce; ip -4 route show default");
    assert!(
        state.contains("192.168.188.100/32")
            && state.contains("\n2\n")
            && state.contains("default via 192.168.188.200"),
        "{state}"
    );
    let status = run("status");
    assert!(status.contains("address 192.168.188.100/32 on lo: present"), "{status}");
    run("stop");
    // The script's state file lived in /var/lib/lvsctl-sh; stop removes the file, not the directory.
    l.sh("web1", "rmdir /var/lib/lvsctl-sh");
    assert_same(&before, &subset(&l, &["web1"]), "after the script's stop");
}

#[test]
fn a_local_host_is_provisioned_without_ssh() {
    if !in_fresh_netns("a_local_host_is_provisioned_without_ssh") {
        return;
    }
    // Private copies of the directories lvsctl writes to, so this machine's files are untouched.
    let scratch = tempfile::tempdir().unwrap();
    sh(&["mount", "-t", "tmpfs", "scratch", scratch.path().to_str().unwrap()]);
    for (i, d) in ["/etc", "/var", "/usr/local"].iter().enumerate() {
        let up = scratch.path().join(format!("{i}/up"));
        let work = scratch.path().join(format!("{i}/work"));
        std::fs::create_dir_all(&up).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        sh(&[
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!("lowerdir={d},upperdir={},workdir={}", up.display(), work.display()),
            d,
        ]);
    }
    sh(&["mount", "-t", "tmpfs", "run", "/run"]);
    sh(&["ip", "link", "set", "lo", "up"]);
    sh(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
    sh(&["ip", "link", "set", "peer0", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(repo().join("inventories/dr.toml"))
        .unwrap()
        .replace("ssh = \"10.250.0.6\"", "ssh = \"local\"");
    // A local host cannot be part of a lab built by `lab create`.
    let src = src[..src.find("[lab]").unwrap()].to_string();
    let inv = dir.path().join("local.toml");
    std::fs::write(&inv, src).unwrap();
    let before = common::net_snapshot();
    // Any build can run on this machine: the debug build is not static.
    let bin = env!("CARGO_BIN_EXE_lvsctl");
    let run = |args: &[&str]| {
        let o =
            Command::new(bin).args(args).arg(&inv).env("LVSCTL_STATE_DIR", dir.path().join("state")).output().unwrap();
        (o.status.success(), text(&o))
    };
    let (ok, t) = run(&["up", "--host", "client"]);
    assert!(ok, "{t}");
    assert!(t.contains("client  added route default: absent -> default via 192.168.10.200"), "{t}");
    assert!(sh(&["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).contains("192.168.10.6/24"));
    assert!(Path::new("/etc/systemd/system/lvsctl-dr.service").exists());
    assert!(Path::new("/var/lib/lvsctl/dr/journal.json").exists());
    let (ok, t) = run(&["down", "--host", "client"]);
    assert!(ok, "{t}");
    assert_eq!(common::net_snapshot(), before);
    assert!(!Path::new("/etc/systemd/system/lvsctl-dr.service").exists());
    assert!(!Path::new("/var/lib/lvsctl").exists());
    assert!(!Path::new("/usr/local/lib/lvsctl").exists());
}

#[test]
fn a_failed_create_removes_what_it_built() {
    if !needs_root("a_failed_create_removes_what_it_built") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inv = dr_copy(dir.path(), "t-fail");
    // A namespace already holding web1's name makes create fail after the first hosts are built.
    sh(&["ip", "netns", "add", "lvsctl-t-fail.web1"]);
    let out = Command::new(lvsctl_bin()).args(["lab", "create"]).arg(&inv).output().unwrap();
    let t = text(&out);
    let _ = Command::new("ip").args(["netns", "delete", "lvsctl-t-fail.web1"]).status();
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("cannot create namespace lvsctl-t-fail.web1"), "{t}");
    assert!(t.contains("removing what was built"), "{t}");
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("lvsctl-t-fail"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(!Path::new("/run/lvsctl/labs/t-fail").exists());
    // destroy after a failed create is harmless.
    let out = Command::new(lvsctl_bin()).args(["lab", "destroy"]).arg(&inv).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// Entries in a lab host's journal, read from outside (its /var's overlay upper layer).
/// The entries of a host's journal: its base (journal.json) and what the run logged since.
fn journal_entries(lab: &str, host: &str) -> usize {
    let dir = PathBuf::from(format!("/run/lvsctl/labs/{lab}/hosts/{host}/var/upper/lib/lvsctl/{lab}"));
    let mut seqs = std::collections::BTreeSet::new();
    if let Some(v) =
        std::fs::read(dir.join("journal.json")).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    {
        seqs.extend(v["entries"].as_array().into_iter().flatten().filter_map(|e| e["seq"].as_u64()));
    }
    let log = std::fs::read_to_string(dir.join("journal.log")).unwrap_or_default();
    for line in log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        if let Some(seq) = line["record"]["entry"]["seq"].as_u64() {
            seqs.insert(seq);
        } else if let Some(seq) = line["drop"]["seq"].as_u64() {
            seqs.remove(&seq);
        }
    }
    seqs.len()
}

fn wait_for_entries(lab: &str, host: &str, n: usize, up: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while journal_entries(lab, host) < n {
        assert!(std::time::Instant::now() < deadline, "the agent never made change {n}");
        assert!(up.try_wait().unwrap().is_none(), "up ended before change {n}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A stalled `up --host web1` of this lab, in the background.
fn stalled_up(l: &Lab, after: &str) -> std::process::Child {
    Command::new(lvsctl_bin())
        .args(["up", "--host", "web1"])
        .arg(&l.inv)
        .env("LVSCTL_STATE_DIR", l.state_dir.path())
        .env("LVSCTL_FAULT_STALL_AFTER", after)
        .env("LVSCTL_SSH_PERSIST", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_session_dropped_by_the_host_mid_up_loses_nothing() {
    if !needs_root("a_session_dropped_by_the_host_mid_up_loses_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-drop"));
    let before = subset(&l, &["web1"]);
    let mut up = stalled_up(&l, "3");
    wait_for_entries("t-drop", "web1", 3, &mut up);
    // The host's side of the connection goes: every session process of web1's sshd (the lab's own
    // sshd, which this test's lab started) is killed, as a dropped link or a restarted sshd would.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read("/run/lvsctl/labs/t-drop/state.json").unwrap()).unwrap();
    let sshd = state["hosts"]["web1"]["pids"][0].as_u64().unwrap();
    let children = std::fs::read_to_string(format!("/proc/{sshd}/task/{sshd}/children")).unwrap();
    assert!(!children.trim().is_empty(), "web1's sshd serves the up");
    for pid in children.split_whitespace() {
        // SAFETY: a session process of the lab sshd this test started.
        unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    }
    let out = up.wait_with_output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "web1 failed, and says so:\n{t}");
    assert!(t.contains("web1"), "{t}");
    // The agent went on without its session: the next up waits for it, then has nothing to do.
    let out = l.lvsctl(&["up", "--host", "web1", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v = common::schema::parse(&lvsctl_bin(), "up", &out.stdout);
    assert_eq!(v["hosts"][0]["report"]["changes"], 0, "the agent finished its plan:\n{}", text(&out));
    l.ok(&["down", "--host", "web1"]);
    assert_same(&before, &subset(&l, &["web1"]), "after a dropped session and down");
}

/// The installed agent is hashed once: later commands find the record of that very file and run
/// it without hashing its megabytes again; a file changed in place (same size, same inode) is
/// hashed, found changed, and installed again.
#[test]
fn the_installed_agent_is_hashed_once_and_a_change_in_place_is_found() {
    if !needs_root("the_installed_agent_is_hashed_once_and_a_change_in_place_is_found") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-hash"));
    let before = subset(&l, &["web1"]);
    l.ok(&["up", "--host", "web1"]);
    let agent = "$(echo /usr/local/lib/lvsctl/*/lvsctl)";
    let sha = l.sh("web1", &format!("sha256sum {agent} | cut -d' ' -f1")).trim().to_string();
    let record = l.sh("web1", &format!("cat {agent}.checked"));
    assert!(record.starts_with(&format!("{sha} ")), "the record names the hash: {record}");
    // With sha256sum failing on the host, only the record lets the agent run.
    l.sh("web1", "printf '#!/bin/sh\\nexit 1\\n' > /run/no-sha && chmod +x /run/no-sha && mount --bind /run/no-sha /usr/bin/sha256sum");
    let again = l.lvsctl(&["up", "--host", "web1"]);
    l.sh("web1", "umount /usr/bin/sha256sum");
    assert!(again.status.success(), "the recorded agent ran without a hash:\n{}", text(&again));
    assert!(!text(&again).contains("installing the agent"), "{}", text(&again));
    // One byte changed in place, once the clock is past the record's second (ctime has whole
    // seconds there): its ctime is not the recorded one.
    let recorded: u64 = record.split_whitespace().last().and_then(|c| c.parse().ok()).expect("the record's ctime");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() <= recorded {
        assert!(std::time::Instant::now() < deadline, "the clock did not pass {recorded}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    l.sh("web1", &format!("printf x | dd of={agent} bs=1 seek=4096 conv=notrunc status=none"));
    let changed = l.ok(&["up", "--host", "web1"]);
    assert!(changed.contains("did not match its sha256"), "{changed}");
    assert_eq!(l.sh("web1", &format!("sha256sum {agent} | cut -d' ' -f1")).trim(), sha, "installed again");
    l.ok(&["down", "--host", "web1"]);
    assert_same(&before, &subset(&l, &["web1"]), "after down");
}

#[test]
fn two_ups_at_once_on_one_lab_take_turns_and_down_restores() {
    if !needs_root("two_ups_at_once_on_one_lab_take_turns_and_down_restores") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-race"));
    let before = subset(&l, &["web1"]);
    let mut first = stalled_up(&l, "2");
    wait_for_entries("t-race", "web1", 2, &mut first);
    let second = l.lvsctl(&["up", "--host", "web1"]);
    let t = text(&second);
    assert!(second.status.success(), "{t}");
    assert!(t.contains("waiting for the lab lock on web1 (held by pid"), "the second up says it waits:\n{t}");
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    l.ok(&["down", "--host", "web1"]);
    assert_same(&before, &subset(&l, &["web1"]), "after two ups at once and down");
}

#[test]
fn a_full_disk_stops_a_change_before_it_is_made() {
    if !needs_root("a_full_disk_stops_a_change_before_it_is_made") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-full"));
    let before = subset(&l, &["web1"]);
    let kernel_before = common::lab::kernel_state(&l, "web1");
    // web1's journal directory is on a file system with no room left (in web1's own mounts).
    l.sh("web1", "mkdir -p /var/lib/lvsctl && mount -t tmpfs -o size=8k full /var/lib/lvsctl && dd if=/dev/zero of=/var/lib/lvsctl/fill bs=4k count=8 2>/dev/null; true");
    let out = l.lvsctl(&["up", "--host", "web1"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("No space left on device"), "the error says why:\n{t}");
    assert_eq!(common::lab::kernel_state(&l, "web1"), kernel_before, "nothing was changed without its record:\n{t}");
    l.sh("web1", "umount /var/lib/lvsctl");
    l.ok(&["up", "--host", "web1"]);
    l.ok(&["down", "--host", "web1"]);
    assert_same(&before, &subset(&l, &["web1"]), "after a full disk, up and down");
}

#[test]
fn an_unwritable_controller_state_stops_up_before_any_host() {
    if !needs_root("an_unwritable_controller_state_stops_up_before_any_host") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-state"));
    let before = subset(&l, &["web1"]);
    // A state directory that can be read but not written (a read-only bind mount, in a mount
    // namespace of lvsctl's own: this machine's mounts are left alone).
    let state = tempfile::tempdir().unwrap();
    let d = state.path().to_str().unwrap();
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$1\" && mount -o remount,bind,ro \"$1\" && exec \"$2\" up --host web1 \"$3\"",
        ])
        .arg("sh")
        .arg(d)
        .arg(lvsctl_bin())
        .arg(&l.inv)
        .env("LVSCTL_STATE_DIR", d)
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("cannot write the controller state in {d}")), "{t}");
    assert_same(&before, &subset(&l, &["web1"]), "nothing happened on the host");
}

#[test]
fn another_inventory_of_the_same_name_is_not_sent_through_the_local_lab() {
    if !needs_root("another_inventory_of_the_same_name_is_not_sent_through_the_local_lab") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-redir"));
    // Another file, same lab name: other machines, as far as lvsctl can know.
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("elsewhere.toml");
    let src = std::fs::read_to_string(&l.inv).unwrap().replace("[ssh]\n", "[ssh]\nconnect_timeout = 1\n");
    std::fs::write(&other, src).unwrap();
    let out = Command::new(lvsctl_bin())
        .args(["status", "--host", "web1"])
        .arg(&other)
        .env("LVSCTL_STATE_DIR", l.state_dir.path())
        .output()
        .unwrap();
    let t = text(&out);
    assert!(t.contains("is another inventory, so its hosts are reached directly"), "{t}");
    assert_eq!(out.status.code(), Some(5), "web1 is not reachable from outside the lab:\n{t}");
    // The lab's own file still goes through it.
    let out = l.lvsctl(&["status", "--host", "web1"]);
    assert!(!text(&out).contains("another inventory"), "{}", text(&out));
}

#[test]
fn a_lab_reboot_boots_only_that_labs_unit() {
    if !needs_root("a_lab_reboot_boots_only_that_labs_unit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-boot"));
    // A unit of another lab (or of anything named lvsctl-*) on the host: not this lab's to start.
    l.sh(
        "web1",
        "mkdir -p /etc/systemd/system && printf '[Service]\\nExecStart=/usr/bin/touch /var/other-lab-started\\n' > /etc/systemd/system/lvsctl-other.service",
    );
    let out = Command::new(lvsctl_bin()).args(["lab", "reboot"]).arg(&l.inv).arg("web1").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no unit of lab t-boot"), "{}", text(&out));
    assert_eq!(l.sh("web1", "test -e /var/other-lab-started && echo started || echo not"), "not\n");
}

/// ssh masters of connections that are not kept, as `ps` shows them (`ssh -S …/once/.ssh-connection…`).
fn unkept_masters() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.starts_with("ssh ") && cmd.contains("/once/.ssh-connection")).then_some(pid)
        })
        .collect()
}

#[test]
fn a_killed_controller_leaves_no_ssh_master_for_long() {
    if !needs_root("a_killed_controller_leaves_no_ssh_master_for_long") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-orphan"));
    let others = unkept_masters();
    let mut up = Command::new(lvsctl_bin())
        .args(["up", "--host", "web1"])
        .arg(&l.inv)
        .env("LVSCTL_STATE_DIR", l.state_dir.path())
        .env("LVSCTL_SSH_PERSIST", "0")
        .env("LVSCTL_SSH_ORPHAN_IDLE", "2")
        .env("LVSCTL_FAULT_STALL_AFTER", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_entries("t-orphan", "web1", 2, &mut up);
    let ours: Vec<u32> = unkept_masters().into_iter().filter(|p| !others.contains(p)).collect();
    assert!(!ours.is_empty(), "the up has an ssh master");
    // Killed with no chance to close anything (SIGKILL: no handler runs).
    up.kill().unwrap();
    up.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ours.iter().any(|p| Path::new(&format!("/proc/{p}")).exists()) {
        assert!(std::time::Instant::now() < deadline, "the orphaned master {ours:?} is still there after 60 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The agent finished on its own; down restores.
    l.ok(&["down", "--host", "web1"]);
}

/// Compares `got` with tests/golden/output/NAME (UPDATE_EXPECT=1 rewrites it).
fn assert_snapshot(name: &str, got: &str) {
    let path = repo().join("tests/golden/output").join(name);
    let got = common::normalized(got);
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(want == got, "{name} differs from {} (UPDATE_EXPECT=1 to accept):\n{got}", path.display());
}

/// The text of up, a no-op up, dry runs, down and a failing host, on a terminal (what the screen
/// shows once the live lines are gone) and through a pipe, kept as snapshots; and the same runs
/// as `--output jsonl`, every line valid against `lvsctl schema events`.
#[test]
fn what_up_and_down_print_on_a_terminal_and_through_a_pipe() {
    if !needs_root("what_up_and_down_print_on_a_terminal_and_through_a_pipe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-snap"));
    let before = snapshot(&l);
    // One host at a time: the order of the hosts' blocks is the same in every run.
    let args = |first: &[&'static str]| {
        let mut v: Vec<&str> = first.to_vec();
        v.extend(["--parallel", "1"]);
        v.extend(NO_DIRECTOR);
        v
    };
    let plain = |name: &str, first: &[&'static str], code: i32| {
        let out = l.lvsctl(&args(first));
        assert_eq!(out.status.code(), Some(code), "{name}: {}", text(&out));
        assert!(!text(&out).contains('\x1b'), "{name}: no escape codes into a pipe:\n{}", text(&out));
        assert_snapshot(&format!("{name}.plain.txt"), &text(&out));
    };
    let tty = |name: &str, first: &[&'static str], code: i32| {
        let mut cmd = l.command(&args(first));
        cmd.env_remove("NO_COLOR");
        let (status, screen) = common::pty::screen(cmd, 140);
        assert_eq!(status.code(), Some(code), "{name}:\n{screen}");
        assert_snapshot(&format!("{name}.tty.txt"), &screen);
    };
    plain("dry-run", &["up", "--dry-run"], 0);
    tty("dry-run", &["up", "--dry-run"], 0);
    plain("up", &["up"], 0);
    plain("noop-up", &["up"], 0);
    tty("noop-up", &["up"], 0);
    plain("down-dry-run", &["down", "--dry-run"], 0);
    tty("down-dry-run", &["down", "--dry-run"], 0);
    plain("down", &["down"], 0);
    tty("up", &["up"], 0);
    tty("down", &["down"], 0);

    // A host whose journal cannot be written fails; the others go on.
    let full = "mkdir -p /var/lib/lvsctl && mount -t tmpfs -o size=8k full /var/lib/lvsctl && dd if=/dev/zero of=/var/lib/lvsctl/fill bs=4k count=8 2>/dev/null; true";
    l.sh("web1", full);
    plain("failing-host", &["up"], 4);
    l.ok(&args(&["down"]));
    tty("failing-host", &["up"], 4);
    l.ok(&args(&["down"]));
    l.sh("web1", "umount /var/lib/lvsctl");

    // --output jsonl: changes as they happen, a line per host when it is done, then the end.
    let bin = lvsctl_bin();
    let schema = common::schema::of(&bin, "events");
    let validator = jsonschema::validator_for(&schema).unwrap();
    for cmd in [&["up"][..], &["status"], &["down", "--dry-run"], &["down"]] {
        let mut a: Vec<&str> = cmd.to_vec();
        a.extend(["--output", "jsonl"]);
        a.extend(NO_DIRECTOR);
        let out = l.lvsctl(&a);
        assert!(out.status.success(), "{a:?}: {}", text(&out));
        let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .map(|x| serde_json::from_str(x).unwrap_or_else(|e| panic!("{a:?}: not a JSON line ({e}): {x}")))
            .collect();
        for x in &lines {
            assert!(validator.is_valid(x), "{a:?}: {x} breaks lvsctl schema events");
        }
        let types: Vec<&str> = lines.iter().map(|x| x["type"].as_str().unwrap()).collect();
        assert_eq!(types.last(), Some(&"end"), "{a:?}: {types:?}");
        assert_eq!(lines.last().unwrap()["command"], cmd[0]);
        assert_eq!(types.iter().filter(|t| **t == "host").count(), 4, "{a:?}: {types:?}");
        let changes = types.iter().filter(|t| **t == "change").count() as u64;
        let reported: u64 =
            lines.iter().filter(|x| x["type"] == "host").map(|x| x["report"]["changes"].as_u64().unwrap()).sum();
        assert_eq!(changes, reported, "{a:?}: a change line per change the hosts counted");
        if cmd[0] == "up" {
            assert!(changes > 0);
            // Every change line comes before its host's line.
            let last_change = types.iter().rposition(|t| *t == "change").unwrap();
            assert!(last_change < types.iter().rposition(|t| *t == "host").unwrap());
        }
    }
    assert_same(&before, &snapshot(&l), "after the runs");
}

/// A host snapshot sees each kind of kernel state this machine's kernel has (IPVS and fou are
/// the guests'): a snapshot that missed one could not tell that `down` left it behind.
#[test]
fn a_snapshot_sees_each_kind_of_state() {
    if !needs_root("a_snapshot_sees_each_kind_of_state") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let l = Lab::create(dr_copy(dir.path(), "t-snap"));
    let base = common::lab::kernel_state(&l, "web1");
    for (what, change, undo) in [
        (
            "a sysctl",
            "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore",
            "echo 0 > /proc/sys/net/ipv4/conf/all/arp_ignore",
        ),
        ("an address", "ip addr add 192.0.2.7/32 dev lo", "ip addr del 192.0.2.7/32 dev lo"),
        ("a route", "ip route add 198.51.100.0/24 dev lo", "ip route del 198.51.100.0/24 dev lo"),
        ("a link", "ip link add t-snap0 type veth peer name t-snap1", "ip link del t-snap0"),
        ("an nft table", "nft add table inet t-snap", "nft delete table inet t-snap"),
    ] {
        l.sh("web1", change);
        let changed = common::lab::kernel_state(&l, "web1");
        l.sh("web1", undo);
        assert_ne!(changed, base, "the snapshot sees {what}");
        assert_eq!(common::lab::kernel_state(&l, "web1"), base, "{what} undone");
    }
    // A socket that listens while the snapshot is taken.
    let listener = l.sh(
        "web1",
        "setsid python3 -c 'import socket,time\ns=socket.socket()\ns.bind((\"0.0.0.0\",4711))\ns.listen()\ntime.sleep(60)' \
         </dev/null >/dev/null 2>&1 & echo $!; sleep 1",
    );
    let changed = common::lab::kernel_state(&l, "web1");
    l.sh("web1", &format!("kill {}", listener.trim()));
    common::lab::wait_gone(&l, "web1", "0.0.0.0:4711");
    assert!(changed.contains("listening tcp 0.0.0.0:4711"), "the snapshot sees a listening socket:\n{changed}");
    assert_eq!(common::lab::kernel_state(&l, "web1"), base, "the socket gone");
}

/// verify's client sends from no port the director holds an entry for: the agent's probe, asked
/// to avoid every even port of the ephemeral range, connects from odd ones only (a server in a
/// fresh network namespace records each request's source port), and every request is answered.
#[test]
fn the_probe_sends_from_no_port_it_must_avoid() {
    use lvsctl::agent::probe::{ProbeKind, ProbeRequest, ProbeTarget, run};
    use std::io::{Read, Write};
    if !in_fresh_netns("the_probe_sends_from_no_port_it_must_avoid") {
        return;
    }
    sh(&["ip", "link", "set", "lo", "up"]);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let [lo, hi]: [u16; 2] =
        range.split_whitespace().map(|w| w.parse().unwrap()).collect::<Vec<_>>().try_into().unwrap();
    let avoid: Vec<u16> = (lo..=hi).filter(|p| p % 2 == 0).collect();
    let server = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    const N: u32 = 24;
    let accepting = std::thread::spawn(move || {
        let mut ports = Vec::new();
        for _ in 0..N {
            let (mut s, peer) = server.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nweb1\n").unwrap();
            ports.push(peer.port());
        }
        ports
    });
    let target = ProbeTarget {
        address: "127.0.0.1".parse().unwrap(),
        port,
        kind: ProbeKind::Http,
        count: N,
        timeout_ms: 5000,
        source_port: None,
        avoid_ports: avoid,
    };
    let result = run(&ProbeRequest { targets: vec![target], ..Default::default() });
    let ports = accepting.join().unwrap();
    let bodies: Vec<Option<&str>> = result.answers[0].iter().map(|a| a.body.as_deref()).collect();
    assert!(bodies.iter().all(|b| *b == Some("web1")), "{:?}", result.answers[0]);
    assert_eq!(ports.len(), N as usize);
    assert!(ports.iter().all(|p| p % 2 == 1 && (lo..=hi).contains(p)), "source ports: {ports:?}");
}
