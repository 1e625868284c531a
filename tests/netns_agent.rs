//! The agent against this machine's real kernel, inside throwaway network and mount namespaces:
//! sysctls, links, addresses, routes, files, the journal, and an exact restore. IPVS and ipip are
//! proven in the real-kernel lab tests (this kernel has neither). Skipped without root.

mod common;

use std::path::Path;

use lvsctl::agent::protocol::{Event, Operation, Report, Request};
use lvsctl::agent::{handle, paths_under};
use lvsctl::host::linux::Linux;
use lvsctl::plan::{self, Context, HostPlan};
use lvsctl::templates::Templates;

use common::{files_snapshot, in_fresh_netns, net_snapshot, sh};

/// The inventory's plan for `host`, with persistent files moved under `root`.
fn plan_for(inv: &str, host: &str, root: &Path) -> HostPlan {
    let lab = lvsctl::inventory::load(&common::repo().join(inv)).unwrap();
    let t = Templates::embedded();
    let ctx = Context { agent_path: "/usr/local/lib/lvsctl/X/lvsctl".into(), templates: &t };
    let mut p = plan::plan(&lab, &ctx).unwrap().into_iter().find(|p| p.host == host).unwrap();
    for f in &mut p.files {
        f.path = root.join(f.path.trim_start_matches('/')).to_string_lossy().into_owned();
    }
    // The exporter runs the agent's own binary (here the test's) and keeps its pid file in /run:
    // it is proven in the lab kernel's cycles (tests/common/metrics.rs), not here.
    p.exporter = None;
    p
}

#[derive(Clone, Copy)]
enum Op {
    Apply,
    Check,
    Down,
}

fn run(op: Op, lab: &str, plan: Option<&HostPlan>, root: &Path) -> (Report, Vec<Event>) {
    let mut sys = Linux::new().unwrap();
    let op = match op {
        Op::Apply => Operation::apply(plan.unwrap().clone()),
        Op::Check => Operation::Check { plan: plan.unwrap().clone() },
        Op::Down => Operation::Down,
    };
    let req = Request::new(lab, "h", op);
    let mut events = Vec::new();
    let r = handle(&mut sys, &paths_under(root), req, &mut |e| events.push(e));
    (r, events)
}

fn setup_links(names: &[&str]) {
    sh(&["ip", "link", "set", "lo", "up"]);
    // This machine's kernel has veth but no dummy interfaces.
    for (i, n) in names.iter().enumerate() {
        let peer = format!("peer{i}");
        sh(&["ip", "link", "add", n, "type", "veth", "peer", "name", &peer]);
        // The far end is plugged in: the link has carrier once lvsctl brings it up.
        sh(&["ip", "link", "set", &peer, "up"]);
    }
}

#[test]
fn dr_real_server_up_then_down_restores_the_kernel_and_files_exactly() {
    if !in_fresh_netns("dr_real_server_up_then_down_restores_the_kernel_and_files_exactly") {
        return;
    }
    setup_links(&["eth0"]);
    // A non-default prior value: down must bring back 2, not 0.
    std::fs::write("/proc/sys/net/ipv4/conf/all/arp_ignore", "2").unwrap();
    let root = tempfile::tempdir().unwrap();
    // What every host has: lvsctl only adds (and removes again) its own entries below them.
    for d in ["etc/systemd/system", "var/lib", "run"] {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    let net_before = net_snapshot();
    let files_before = files_snapshot(root.path());
    let p = plan_for("inventories/dr.toml", "web1", root.path());

    let (r, ev) = run(Op::Apply, "dr", Some(&p), root.path());
    assert_eq!((r.failed, r.errors.len()), (0, 0), "{r:?}\n{ev:?}");
    // The kernel now holds what the plan says, as iproute2 reports it.
    let addrs = sh(&["ip", "-o", "-4", "addr", "show"]);
    assert!(addrs.contains("inet 192.168.188.100/32 scope global lo:lvs"), "{addrs}");
    assert!(addrs.contains("inet 192.168.188.81/24"), "{addrs}");
    let routes = sh(&["ip", "-4", "route", "show"]);
    assert!(routes.contains("default via 192.168.188.200 dev eth0 proto 76"), "{routes}");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/arp_ignore").unwrap().trim(), "1");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/conf/lo/arp_announce").unwrap().trim(), "2");
    assert!(sh(&["ip", "-o", "link", "show", "eth0"]).contains(",UP"));
    let unit = root.path().join("etc/systemd/system/lvsctl-dr.service");
    assert!(std::fs::read_to_string(&unit).unwrap().contains("ExecStart="));

    // Idempotent: a second up changes nothing; status is in sync.
    let (r, ev) = run(Op::Apply, "dr", Some(&p), root.path());
    assert_eq!(r.changes, 0, "{ev:?}");
    let (r, _) = run(Op::Check, "dr", Some(&p), root.path());
    assert_eq!(r.changes, 0);

    let (r, ev) = run(Op::Down, "dr", None, root.path());
    assert_eq!((r.failed, r.kept, r.errors.len()), (0, 0, 0), "{ev:?}");
    assert_eq!(net_snapshot(), net_before);
    assert_eq!(files_snapshot(root.path()), files_before);
}

#[test]
fn a_replaced_default_route_and_a_pre_existing_address_come_back_exactly() {
    if !in_fresh_netns("a_replaced_default_route_and_a_pre_existing_address_come_back_exactly") {
        return;
    }
    setup_links(&["eth0"]);
    sh(&["ip", "link", "set", "eth0", "up"]);
    sh(&["ip", "addr", "add", "192.168.188.8/24", "dev", "eth0"]);
    // The VIP is already here (the director's own), and a DHCP-like default route exists.
    sh(&["ip", "addr", "add", "192.168.188.100/32", "dev", "eth0"]);
    sh(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.168.188.1",
        "dev",
        "eth0",
        "proto",
        "dhcp",
        "src",
        "192.168.188.8",
    ]);
    let root = tempfile::tempdir().unwrap();
    let net_before = net_snapshot();
    let mut p = plan_for("inventories/dr.toml", "lvs", root.path());
    // IPVS is not in this kernel: leave the director's IPVS part (its module, table and
    // net.ipv4.vs settings) to the real-kernel lab.
    p.modules.clear();
    p.ipvs.clear();
    p.sysctls.retain(|s| !s.key.starts_with("net.ipv4.vs."));
    let (r, ev) = run(Op::Apply, "dr", Some(&p), root.path());
    assert_eq!(r.failed, 0, "{ev:?}");
    let routes = sh(&["ip", "-4", "route", "show", "default"]);
    assert_eq!(routes.trim(), "default via 192.168.188.200 dev eth0 proto 76");
    let (r, ev) = run(Op::Down, "dr", None, root.path());
    assert_eq!((r.failed, r.kept), (0, 0), "{ev:?}");
    assert_eq!(net_snapshot(), net_before);
    let routes = sh(&["ip", "-4", "route", "show", "default"]);
    assert_eq!(routes.trim(), "default via 192.168.188.1 dev eth0 proto dhcp src 192.168.188.8");
}

#[test]
fn sysctls_of_interfaces_with_dots_in_their_names_are_reachable() {
    if !in_fresh_netns("sysctls_of_interfaces_with_dots_in_their_names_are_reachable") {
        return;
    }
    // A VLAN-style name (the kernel here has no 802.1Q; any link can carry such a name).
    setup_links(&["eth0.100"]);
    let mut sys = Linux::new().unwrap();
    use lvsctl::host::Sysctls;
    let key = "net.ipv4.conf.eth0/100.rp_filter";
    let before = sys.read_sysctl(key).unwrap().expect("exists");
    let other = if before == "1" { "2" } else { "1" };
    sys.write_sysctl(key, other).unwrap();
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/conf/eth0.100/rp_filter").unwrap().trim(), other);
    sys.write_sysctl(key, &before).unwrap();
}
