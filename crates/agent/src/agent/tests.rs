//! The agent's logic against a recording fake host: what it changes, what it journals, and that
//! `down` restores the host exactly.

use std::path::Path;

use super::journal::Journal;
use super::protocol::{Answer, Event, Operation, Report, Request, Status};
use super::{Paths, handle};
use crate::host::fake::{Fake, FakeState};
use crate::host::{AddrFact, RTPROT_LVSCTL, RouteFact};
use crate::plan::HostPlan;
use crate::resource::{Key, Undo, sysctl};

/// The agent's state under `root`; the fake host's files keep their real paths (under `/`).
fn fake_paths(root: &Path) -> Paths {
    Paths { root: "/".into(), ..super::paths_under(root) }
}

/// `inventories/NAME.toml`'s plan for `host`, as the planner makes it (its golden file).
fn plan_for(inv: &str, host: &str) -> HostPlan {
    let name = inv.strip_prefix("inventories/").and_then(|n| n.strip_suffix(".toml")).expect("inventories/NAME.toml");
    crate::golden::plan(name, host)
}

/// The operations these tests run, each given the plan it needs.
#[derive(Clone, Copy)]
enum Op {
    Apply,
    DryRun,
    Check,
    Down,
}

impl Op {
    fn with(self, plan: Option<&HostPlan>) -> Operation {
        let plan = || plan.expect("this operation needs a plan").clone();
        match self {
            Op::Apply => Operation::apply(plan()),
            Op::DryRun => Operation::DryRun { plan: plan() },
            Op::Check => Operation::Check { plan: plan() },
            Op::Down => Operation::Down,
        }
    }
}

fn run(fake: &mut Fake, root: &Path, op: Op, plan: Option<&HostPlan>) -> (Report, Vec<Event>) {
    let lab = plan.map(|p| p.lab.clone()).unwrap_or_else(|| "dr".into());
    run_lab(fake, root, op, &lab, plan)
}

fn run_lab(fake: &mut Fake, root: &Path, op: Op, lab: &str, plan: Option<&HostPlan>) -> (Report, Vec<Event>) {
    let req = Request::new(lab, "h", op.with(plan));
    let mut events = Vec::new();
    let report = handle(fake, &fake_paths(root), req, &mut |e| events.push(e));
    (report, events)
}

fn changes(events: &[Event]) -> Vec<(String, String, String, Status)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Change(c) => Some((c.object.clone(), c.before.clone(), c.after.clone(), c.status)),
            _ => None,
        })
        .collect()
}

fn journal(root: &Path, lab: &str) -> Journal {
    Journal::open(&fake_paths(root).lab_dir(lab), lab, "h", false).unwrap()
}

#[test]
fn dr_real_server_up_changes_exactly_the_plan_and_journals_priors() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "web1");
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!((r.failed, r.errors.len()), (0, 0), "{r:?}");
    assert_eq!(
        &f.log[..8],
        &[
            "sysctl net.ipv4.conf.all.arp_ignore=1",
            "sysctl net.ipv4.conf.all.arp_announce=2",
            "sysctl net.ipv4.conf.lo.arp_ignore=1",
            "sysctl net.ipv4.conf.lo.arp_announce=2",
            "link eth0 up",
            "addr add 192.168.188.81/24 dev eth0",
            "addr add 192.168.188.100/32 dev lo",
            "route add default via 192.168.188.200 proto lvsctl",
        ]
    );
    assert!(f.log.contains(&"write /etc/systemd/system/lvsctl-dr.service".to_string()));
    let j = journal(root.path(), "dr");
    assert!(j.entries().any(|e| e.undo
        == Undo::Sysctl(sysctl::Undo {
            key: "net.ipv4.conf.all.arp_ignore".into(),
            prior: "0".into(),
            applied: "1".into()
        })));
    assert_eq!(f.state.addresses.iter().find(|a| a.dev == "lo").unwrap().label.as_deref(), Some("lo:lvs"));
}

/// A TUN-over-GUE real server (IPv4 part: the fake has no IPv6 tunnel modules): fou loaded
/// before its port opens, the port open once, and `down` gives the host back exactly; a GRE one
/// gets gre0 and no ipip.
#[test]
fn gue_and_gre_real_servers_get_their_receivers_and_lose_them_on_down() {
    for (inv, expect, absent) in [
        ("inventories/tun-gue.toml", &["modprobe fou", "fou add port 6080 gue"][..], "modprobe ip_gre"),
        (
            "inventories/tun-gre.toml",
            &["modprobe ip_gre", "link gre0 up", "addr add 192.168.188.100/32 dev gre0"][..],
            "modprobe ipip",
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let mut f = Fake::new();
        let before = f.state.clone();
        let mut p = plan_for(inv, "web1");
        // The IPv4 half: IPv6 tunnel modules and devices are not in the fake.
        p.modules.retain(|m| !["ip6_tunnel", "fou6", "ip6_gre"].contains(&m.name.as_str()));
        p.links_up.retain(|l| !l.dev.starts_with("ip6"));
        p.gue_ports.retain(|g| !g.ipv6);
        p.addresses.retain(|a| a.address.addr().is_ipv4());
        p.routes.retain(|r| r.destination.addr().is_ipv4());
        let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
        assert_eq!((r.failed, r.errors.len()), (0, 0), "{inv}: {r:?} {:?}", changes(&ev));
        let at =
            |op: &str| f.log.iter().position(|l| l == op).unwrap_or_else(|| panic!("{inv}: no {op} in {:?}", f.log));
        for pair in expect.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{inv}: {} before {}", pair[0], pair[1]);
        }
        assert!(!f.log.iter().any(|l| l == absent), "{inv}: {absent} in {:?}", f.log);
        let n = f.log.len();
        let (again, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
        assert_eq!((again.changes, f.log.len()), (0, n), "{inv}: {:?}", changes(&ev));
        let (r, ev) = run_lab(&mut f, root.path(), Op::Down, &p.lab, None);
        assert_eq!((r.failed, r.kept), (0, 0), "{inv}: {:?}", changes(&ev));
        assert_eq!(f.state, before, "{inv}");
    }
}

#[test]
fn second_up_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "web1");
    let (first, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert!(first.notes.iter().any(|n| n.starts_with("systemd does not run")), "{:?}", first.notes);
    let n = f.log.len();
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.changes, 0, "{:?}", changes(&ev));
    assert_eq!(f.log.len(), n);
    assert!(r.notes.is_empty(), "a no-op up has nothing to tell: {:?}", r.notes);
    let (r, _) = run(&mut f, root.path(), Op::Check, Some(&p));
    assert_eq!(r.changes, 0, "status reports in sync");
}

#[test]
fn down_restores_the_host_exactly_including_non_default_priors() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    // Someone set arp_ignore to 2 before lvsctl came: down must give 2 back, not 0.
    f.state.sysctls.insert("net.ipv4.conf.all.arp_ignore".into(), "2".into());
    let before = f.state.clone();
    let p = plan_for("inventories/dr.toml", "web1");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(f.state.sysctls["net.ipv4.conf.all.arp_ignore"], "1");
    let (r, ev) = run(&mut f, root.path(), Op::Down, None);
    assert_eq!((r.failed, r.kept), (0, 0), "{:?}", changes(&ev));
    assert_eq!(f.state, before);
    assert!(!fake_paths(root.path()).lab_dir("dr").exists(), "journal removed last");
    assert!(!fake_paths(root.path()).state_root.exists(), "empty state directory removed");
}

#[test]
fn pre_existing_address_and_default_route_survive_down_exactly() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    // The VIP is already the director's (NAT director whose VIP is its own address), and the host
    // has a DHCP default route that lvsctl will replace.
    f.state.links.insert("eth0".into(), true);
    f.state.addresses.push(AddrFact {
        dev: "eth0".into(),
        address: "192.168.188.8/24".parse().unwrap(),
        label: None,
        nodad: false,
        deprecated: false,
    });
    f.state.addresses.push(AddrFact {
        dev: "eth0".into(),
        address: "192.168.188.100/32".parse().unwrap(),
        label: None,
        nodad: false,
        deprecated: false,
    });
    let dhcp = RouteFact {
        destination: "0.0.0.0/0".parse().unwrap(),
        gateway: Some("192.168.188.1".parse().unwrap()),
        dev: Some("eth0".into()),
        metric: 0,
        protocol: 16,
        scope: 0,
        prefsrc: Some("192.168.188.8".parse().unwrap()),
        advmss: None,
    };
    f.state.routes.push(dhcp.clone());
    let before = f.state.clone();
    let p = plan_for("inventories/dr.toml", "lvs");
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 0, "{:?}", changes(&ev));
    assert!(!f.log.iter().any(|l| l.starts_with("addr add")), "present addresses are not re-added: {:?}", f.log);
    assert_eq!(f.state.routes[0].gateway, Some("192.168.188.200".parse().unwrap()));
    assert_eq!(f.state.routes[0].protocol, RTPROT_LVSCTL);
    let j = journal(root.path(), "dr");
    assert!(!j.entries().any(|e| matches!(e.undo, Undo::Address(_))), "nothing journaled for pre-existing addresses");
    run(&mut f, root.path(), Op::Down, None);
    // The fake's clock and next pid moved on when the exporter started: bookkeeping, not state.
    let after = FakeState { ticks: before.ticks, next_pid: before.next_pid, ..f.state.clone() };
    assert_eq!(
        after, before,
        "addresses kept, DHCP route back with every attribute, IPVS module unloaded, exporter gone"
    );
}

#[test]
fn a_value_changed_by_someone_else_after_up_is_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "web1");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    f.state.sysctls.insert("net.ipv4.conf.lo.arp_announce".into(), "1".into());
    let (r, ev) = run(&mut f, root.path(), Op::Down, None);
    assert_eq!(r.kept, 1);
    assert!(ev.iter().any(|e| matches!(e, Event::Change(c) if c.status == Status::Kept && c.object == "sysctl net.ipv4.conf.lo.arp_announce")));
    assert_eq!(f.state.sysctls["net.ipv4.conf.lo.arp_announce"], "1");
    assert_eq!(f.state.sysctls["net.ipv4.conf.all.arp_ignore"], "0");
}

#[test]
fn a_failed_change_is_still_journaled_so_down_can_finish() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let before = f.state.clone();
    f.fail = vec!["route add".into()];
    let p = plan_for("inventories/dr.toml", "web1");
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 1);
    assert!(
        journal(root.path(), "dr").get(&Key::Route("0.0.0.0/0".parse().unwrap())).is_some(),
        "written before the attempt"
    );
    f.fail.clear();
    let (r, _) = run(&mut f, root.path(), Op::Down, None);
    assert_eq!(r.failed, 0);
    assert_eq!(f.state, before);
}

#[test]
fn dry_run_and_check_change_nothing_and_write_no_journal() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let before = f.state.clone();
    let p = plan_for("inventories/tun.toml", "web1");
    let (r, ev) = run(&mut f, root.path(), Op::DryRun, Some(&p));
    assert!(r.changes > 5);
    assert!(changes(&ev).iter().all(|c| c.3 == Status::Planned));
    // tunl0 appears only once ipip is loaded: the dry run says so rather than failing.
    assert!(
        changes(&ev)
            .iter()
            .any(|c| c.0 == "sysctl net.ipv4.conf.tunl0.rp_filter" && c.1.contains("until its module loads"))
    );
    assert_eq!(f.state, before);
    assert!(f.log.is_empty());
    assert!(!fake_paths(root.path()).state_root.exists());
    let (r, ev) = run(&mut f, root.path(), Op::Check, Some(&p));
    assert!(r.changes > 5 && changes(&ev).iter().all(|c| c.3 == Status::Drift));
}

#[test]
fn status_reads_the_ipvs_table_once_and_shows_it() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "lvs");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    f.ipvs_reads = 0;
    let (r, _) = run(&mut f, root.path(), Op::Check, Some(&p));
    assert_eq!(r.changes, 0);
    assert_eq!(f.ipvs_reads, 1, "one read for both the comparison and the table shown");
    match r.answer {
        Some(Answer::Ipvs(t)) => assert_eq!(Some(t), f.state.ipvs),
        other => panic!("status answers the IPVS table, not {other:?}"),
    }
}

#[test]
fn status_reports_drift_after_someone_undoes_a_change() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "web1");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    f.state.addresses.retain(|a| a.dev != "lo");
    let (r, ev) = run(&mut f, root.path(), Op::Check, Some(&p));
    assert_eq!(r.changes, 1);
    assert_eq!(
        changes(&ev),
        vec![("address 192.168.188.100/32 dev lo".into(), "absent".into(), "present".into(), Status::Drift)]
    );
}

#[test]
fn tun_loads_ipip_and_down_unloads_it_with_its_dependencies() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let before = f.state.clone();
    let p = plan_for("inventories/tun.toml", "web1");
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 0, "{:?}", changes(&ev));
    assert_eq!(f.state.links.get("tunl0"), Some(&true));
    assert_eq!(f.state.sysctls["net.ipv4.conf.tunl0.rp_filter"], "0");
    assert!(f.state.addresses.iter().any(|a| a.dev == "tunl0" && a.address.to_string() == "192.168.188.100/32"));
    let j = journal(root.path(), "tun");
    match j.get(&Key::Module("ipip".into())) {
        Some(Undo::Module(crate::resource::module::Undo { loaded: Some(l), .. })) => assert_eq!(l.len(), 3, "{l:?}"),
        other => panic!("{other:?}"),
    }
    let (r, ev) = run_lab(&mut f, root.path(), Op::Down, "tun", None);
    assert_eq!(r.failed, 0, "{:?}", changes(&ev));
    assert_eq!(f.state, before);
}

#[test]
fn director_ipvs_rules_are_set_and_restored_without_touching_foreign_destinations() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "lvs");
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 0, "{:?}", changes(&ev));
    assert!(f.log.contains(&"ipvs add tcp 192.168.188.100:80 wrr".to_string()));
    assert!(f.log.contains(&"ipvs add dest 192.168.188.81:80 to tcp 192.168.188.100:80 route weight 3".to_string()));
    // Someone adds a destination by hand: lvsctl neither removes it on up nor on down.
    use crate::ipvs::*;
    let key =
        ServiceKey::addr(crate::ipvs::Protocol::Tcp, "192.168.188.100".parse::<std::net::Ipv4Addr>().unwrap(), 80);
    let foreign = DestKey { addr: "192.168.188.99".parse().unwrap(), port: 80 };
    crate::host::IpvsTable::ipvs_new_dest(&mut f, &key, &foreign, &DestConfig::plain(FWD_ROUTE, 1)).unwrap();
    let (_, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert!(f.state.ipvs.as_ref().unwrap()[0].dests.iter().any(|d| d.key == foreign));
    run(&mut f, root.path(), Op::Down, None);
    // The service was lvsctl's: it is deleted, with the foreign destination in it.
    assert!(f.state.ipvs.is_none(), "ip_vs was loaded by lvsctl and unloaded again");
}

#[test]
fn editing_a_weight_sets_the_destination_and_down_restores_a_pre_existing_one() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let mut p = plan_for("inventories/dr.toml", "lvs");
    // The service already exists with web1 at weight 7.
    use crate::ipvs::*;
    crate::host::Modules::load_module(&mut f, "ip_vs").unwrap();
    let key =
        ServiceKey::addr(crate::ipvs::Protocol::Tcp, "192.168.188.100".parse::<std::net::Ipv4Addr>().unwrap(), 80);
    let s = &mut f as &mut dyn crate::host::System;
    s.ipvs_new_service(&key, &ServiceConfig::persistent("rr", 0, None)).unwrap();
    let web1 = DestKey { addr: "192.168.188.81".parse().unwrap(), port: 80 };
    s.ipvs_new_dest(&key, &web1, &DestConfig::plain(FWD_ROUTE, 7)).unwrap();
    let before = f.state.clone();
    f.log.clear();
    run(&mut f, root.path(), Op::Apply, Some(&p));
    assert!(f.log.contains(&"ipvs set tcp 192.168.188.100:80 wrr".to_string()), "{:?}", f.log);
    assert!(f.log.contains(&"ipvs set dest 192.168.188.81:80 of tcp 192.168.188.100:80 route weight 3".to_string()));
    // The inventory changes web1's weight again: the first prior (7) is what down restores.
    p.ipvs[0].destinations[0].weight = 5;
    run(&mut f, root.path(), Op::Apply, Some(&p));
    run(&mut f, root.path(), Op::Down, None);
    let svc = &f.state.ipvs.as_ref().unwrap()[0];
    assert_eq!(svc.entry.config.scheduler, "rr");
    assert_eq!(svc.dests.len(), 1);
    assert_eq!(svc.dests[0].config.weight, 7);
    assert_eq!(f.state.ipvs, before.ipvs);
}

#[test]
fn removing_something_from_the_inventory_removes_it_on_the_next_up() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let mut p = plan_for("inventories/dr.toml", "web1");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    p.addresses.retain(|a| a.dev != "lo");
    let runtime = serde_json::to_string_pretty(&p.runtime()).unwrap() + "\n";
    p.files.iter_mut().find(|f| f.path.ends_with("host.json")).unwrap().content = runtime;
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.changes, 2, "{:?}", changes(&ev)); // the VIP goes, and host.json changes
    assert!(!f.state.addresses.iter().any(|a| a.dev == "lo"));
    assert!(
        journal(root.path(), "dr")
            .get(&Key::Address(crate::resource::address::Id {
                dev: "lo".into(),
                address: "192.168.188.100/32".parse().unwrap()
            }))
            .is_none()
    );
}

#[test]
fn a_replaced_file_gets_its_prior_content_back() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let unit = "/etc/systemd/system/lvsctl-dr.service".to_string();
    f.state.files.insert(unit.clone(), crate::host::FileFact { content: b"mine\n".to_vec(), mode: 0o600 });
    let before = f.state.clone();
    let p = plan_for("inventories/dr.toml", "web1");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_ne!(f.state.files[&unit].content, b"mine\n");
    run(&mut f, root.path(), Op::Down, None);
    assert_eq!(f.state, before);
}

#[test]
fn boot_stop_and_start_touch_runtime_state_only() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "web1");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    let provisioned = f.state.clone();
    // The unit's start reads the persisted runtime plan.
    let paths = fake_paths(root.path());
    std::fs::create_dir_all(paths.config_root.join("dr")).unwrap();
    std::fs::write(paths.config_root.join("dr/host.json"), serde_json::to_vec(&p.runtime()).unwrap()).unwrap();
    let r = super::boot_run(&mut f, &paths, super::BootAction::Stop, "dr", &mut |_| {}).unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(f.state.sysctls["net.ipv4.conf.all.arp_ignore"], "0");
    assert!(f.state.files.contains_key("/etc/systemd/system/lvsctl-dr.service"), "files stay");
    let r = super::boot_run(&mut f, &paths, super::BootAction::Start, "dr", &mut |_| {}).unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(f.state, provisioned);
}

#[test]
fn systemd_hosts_get_the_unit_enabled_and_disabled_again() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    f.state.systemd = true;
    let p = plan_for("inventories/dr.toml", "client");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    assert!(f.log.contains(&"systemctl daemon-reload".to_string()));
    assert!(f.state.enabled.contains("lvsctl-dr.service"));
    assert!(f.log.contains(&"systemctl start --no-block lvsctl-dr.service".to_string()));
    run(&mut f, root.path(), Op::Down, None);
    assert!(!f.state.enabled.contains("lvsctl-dr.service"));
    assert!(f.log.contains(&"systemctl stop lvsctl-dr.service".to_string()));
    assert!(!f.state.files.keys().any(|k| k.contains("lvsctl")));
}

#[test]
fn down_without_a_journal_is_a_no_op() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let (r, _) = run(&mut f, root.path(), Op::Down, None);
    assert_eq!((r.changes, r.failed), (0, 0));
    assert!(r.notes[0].contains("nothing to undo"));
}

/// An `up` stopped between installing the agent and running it (another host failed, Ctrl-C)
/// leaves the agent and no journal: `down` removes the agent when no lab is left, and keeps it
/// while another lab's journal is there.
#[test]
fn down_without_a_journal_removes_an_agent_no_lab_uses() {
    let root = tempfile::tempdir().unwrap();
    let paths = fake_paths(root.path());
    let agent = paths.install_root.join("5f85/lvsctl");
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
    std::fs::write(&agent, b"agent").unwrap();
    let other = paths.state_root.join("other-lab");
    std::fs::create_dir_all(&other).unwrap();
    let (r, _) = run(&mut Fake::new(), root.path(), Op::Down, None);
    assert!(agent.exists(), "lab other-lab still uses it: {:?}", r.notes);
    std::fs::remove_dir(&other).unwrap();
    let (r, _) = run(&mut Fake::new(), root.path(), Op::Down, None);
    assert!(!paths.install_root.exists(), "{:?}", r.notes);
    assert!(r.notes.iter().any(|n| n.contains("removed lvsctl's agent")), "{:?}", r.notes);
}

#[test]
fn a_request_is_refused_whole_with_the_step_that_failed() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "web1");
    let (r, _) = run_lab(&mut f, root.path(), Op::Apply, "tun", Some(&p));
    assert_eq!(r.errors, ["plan is for lab dr, request for tun"]);
    let (r, _) = run_lab(&mut f, root.path(), Op::Down, "../etc", None);
    assert_eq!(r.errors, ["invalid lab name \"../etc\""]);
    assert!(f.log.is_empty(), "nothing was touched: {:?}", f.log);
}

#[test]
fn what_cannot_be_done_fails_an_apply_and_is_drift_for_status() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    // Someone else holds web1's VIP on eth0: lvsctl never takes it over.
    f.state.addresses.push(AddrFact {
        dev: "eth0".into(),
        address: "192.168.188.100/24".parse().unwrap(),
        label: None,
        nodad: false,
        deprecated: false,
    });
    let p = plan_for("inventories/dr.toml", "web1");
    let vip = "address 192.168.188.100/32 dev lo".to_string();
    let (_, ev) = run(&mut f, root.path(), Op::Check, Some(&p));
    assert!(changes(&ev).contains(&(
        vip.clone(),
        "192.168.188.100/24 dev eth0".into(),
        "present".into(),
        Status::Drift
    )));
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 1, "{:?}", changes(&ev));
    assert!(changes(&ev).contains(&(vip, String::new(), String::new(), Status::Failed)));
    assert!(!f.log.iter().any(|l| l.contains("192.168.188.100/32")), "{:?}", f.log);
}

#[test]
fn a_dry_run_lists_the_directories_up_creates() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "web1");
    let (_, dry) = run(&mut f, root.path(), Op::DryRun, Some(&p));
    let planned: Vec<String> = changes(&dry).into_iter().map(|c| c.0).collect();
    assert!(planned.contains(&"dir /etc/lvsctl".to_string()) && planned.contains(&"dir /etc/lvsctl/dr".to_string()));
    let (_, applied) = run(&mut f, root.path(), Op::Apply, Some(&p));
    let done: Vec<String> = changes(&applied).into_iter().map(|c| c.0).collect();
    assert_eq!(planned, done, "the dry run lists exactly what up then does");
}

#[test]
fn the_ssh_client_is_read_from_sshds_variable() {
    use super::parse_ssh_connection as p;
    assert_eq!(p("10.250.0.1 41234 10.250.0.8 22"), Some("10.250.0.1".parse().unwrap()));
    assert_eq!(p("::ffff:10.250.0.1 41234 ::ffff:10.250.0.8 22"), Some("10.250.0.1".parse().unwrap()));
    assert_eq!(p("2001:db8::1 41234 2001:db8::8 22"), None);
    assert_eq!(p(""), None);
}

/// A director of an HA pair on a host without systemd: lvsctl starts keepalived itself, reloads
/// it when its configuration changes, and `down` stops exactly the process it started.
#[test]
fn keepalived_is_started_reloaded_and_stopped_by_its_recorded_process() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    f.state.programs.insert("keepalived".into(), "/usr/sbin/keepalived".into());
    f.state.dirs.insert("/etc/keepalived".into());
    let p = plan_for("inventories/dr-ha.toml", "lvs1");
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!((r.failed, r.errors.len()), (0, 0), "{r:?} {ev:?}");
    let spawn = f.log.iter().find(|l| l.starts_with("spawn ")).expect("keepalived started");
    assert_eq!(
        spawn,
        "spawn /usr/sbin/keepalived --dont-fork --log-console --log-detail --use-file /etc/keepalived/keepalived.conf > /run/lvsctl-dr-ha-keepalived.log"
    );
    assert!(
        f.log.iter().position(|l| l.starts_with("check Keepalived"))
            < f.log.iter().position(|l| l.starts_with("spawn"))
    );
    let pid = *f.state.processes.keys().next().unwrap();
    // keepalived writes its pid file itself.
    f.state.files.insert(
        "/run/keepalived.pid".into(),
        crate::host::FileFact { content: format!("{pid}\n").into_bytes(), mode: 0o644 },
    );
    let recorded = journal(root.path(), "dr-ha").entries().map(|e| &e.undo).any(|u| {
        matches!(u, Undo::Daemon(d) if matches!(&d.how, crate::resource::daemon::How::Spawned { process: Some(p), .. } if p.pid == pid))
    });
    assert!(recorded, "the journal names the process");

    // Again: nothing to do.
    f.log.clear();
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.changes, 0, "{:?}", f.log);

    // A new configuration is reloaded, not restarted.
    let mut p2 = p.clone();
    let conf = p2.files.iter_mut().find(|x| x.path == "/etc/keepalived/keepalived.conf").unwrap();
    conf.content.push_str("# changed\n");
    f.log.clear();
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p2));
    assert_eq!(r.failed, 0);
    assert!(f.log.contains(&format!("kill -{} {pid}", libc::SIGHUP)), "{:?}", f.log);

    // down stops it (SIGTERM) before it restores the files.
    f.log.clear();
    let (r, _) = run_lab(&mut f, root.path(), Op::Down, "dr-ha", None);
    assert_eq!(r.failed, 0, "{r:?}");
    let term = f
        .log
        .iter()
        .position(|l| *l == format!("kill -{} {pid}", libc::SIGTERM))
        .unwrap_or_else(|| panic!("not stopped: {:?} {r:?}", f.log));
    let conf = f.log.iter().position(|l| l.contains("/etc/keepalived/keepalived.conf")).expect("config removed");
    assert!(term < conf, "{:?}", f.log);
    assert!(f.state.processes.is_empty());
}

/// A keepalived that died without cleaning up (killed with SIGKILL, or stopped while it took
/// over from the other director) leaves the VIP it held; `down` removes it, and only the VRRP
/// addresses the host did not have before: one the operator had stays.
#[test]
fn down_removes_the_vips_a_dead_keepalived_left_and_keeps_the_operators() {
    let addr = |dev: &str, a: &str| crate::host::AddrFact {
        dev: dev.into(),
        address: a.parse().unwrap(),
        label: None,
        nodad: false,
        deprecated: false,
    };
    let p = plan_for("inventories/dr-ha.toml", "lvs1");
    let vips: Vec<crate::host::AddrFact> = p.keepalived.as_ref().unwrap().instances[0]
        .addresses
        .iter()
        .map(|a| addr(&a.dev, &a.address.to_string()))
        .collect();
    assert!(!vips.is_empty());
    for operator_had_it in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let mut f = Fake::new();
        f.state.programs.insert("keepalived".into(), "/usr/sbin/keepalived".into());
        f.state.dirs.insert("/etc/keepalived".into());
        if operator_had_it {
            f.state.addresses.push(vips[0].clone());
        }
        let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
        assert_eq!(r.failed, 0, "{r:?}");
        // keepalived became master and added its VIPs, then was killed: it removed nothing.
        for v in &vips {
            if !f.state.addresses.contains(v) {
                f.state.addresses.push(v.clone());
            }
        }
        f.state.processes.clear();
        let (r, _) = run_lab(&mut f, root.path(), Op::Down, "dr-ha", None);
        assert_eq!(r.failed, 0, "{r:?}");
        let left: Vec<_> = f.state.addresses.iter().filter(|a| vips.contains(a)).cloned().collect();
        let expected = if operator_had_it { vec![vips[0].clone()] } else { vec![] };
        assert_eq!(left, expected, "operator_had_it = {operator_had_it}: {:?}", f.log);
    }
}

/// A pid the kernel gave to another process (after a reboot) never gets lvsctl's signal.
#[test]
fn a_reused_pid_is_never_signalled() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    f.state.programs.insert("keepalived".into(), "/usr/sbin/keepalived".into());
    f.state.dirs.insert("/etc/keepalived".into());
    let p = plan_for("inventories/dr-ha.toml", "lvs1");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    let pid = *f.state.processes.keys().next().unwrap();
    // The same pid, another process: a later start time.
    f.state.processes.get_mut(&pid).unwrap().start_time += 5000;
    f.state.files.insert(
        "/run/keepalived.pid".into(),
        crate::host::FileFact { content: format!("{pid}\n").into_bytes(), mode: 0o644 },
    );
    f.log.clear();
    let (r, _) = run_lab(&mut f, root.path(), Op::Down, "dr-ha", None);
    assert!(r.changes > 0, "down ran: {r:?}");
    assert!(!f.log.iter().any(|l| l.starts_with("kill")), "{:?}", f.log);
    assert_eq!(r.failed, 0, "{r:?}");
}

/// keepalived missing, or one lvsctl did not start: Blocked, nothing taken over.
#[test]
fn keepalived_missing_or_foreign_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    f.state.dirs.insert("/etc/keepalived".into());
    let p = plan_for("inventories/dr-ha.toml", "lvs1");
    let (r, ev) = run(&mut f, root.path(), Op::DryRun, Some(&p));
    let failed: Vec<String> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Change(c) if c.status == Status::Failed => c.error.clone(),
            _ => None,
        })
        .collect();
    assert!(failed.iter().any(|e| e.contains("apt-get install keepalived")), "{failed:?} {r:?}");
    f.state.programs.insert("keepalived".into(), "/usr/sbin/keepalived".into());
    f.state.processes.insert(77, crate::host::ProcFact { pid: 77, start_time: 1, exe: "/usr/sbin/keepalived".into() });
    f.state
        .files
        .insert("/run/keepalived.pid".into(), crate::host::FileFact { content: b"77\n".to_vec(), mode: 0o644 });
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert!(r.failed >= 1, "{r:?}");
    let err: Vec<String> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Change(c) if c.object == "daemon keepalived" => c.error.clone(),
            _ => None,
        })
        .collect();
    assert!(err[0].contains("keepalived already runs (pid 77)"), "{err:?}");
    assert!(!f.log.iter().any(|l| l.starts_with("kill") || l.starts_with("spawn")), "{:?}", f.log);
}

/// Where systemd runs, keepalived is keepalived.service: started by `up`, reloaded when its
/// configuration changes, stopped by `down`; an active one lvsctl did not start is refused.
#[test]
fn keepalived_runs_through_systemd_where_systemd_runs() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    f.state.systemd = true;
    f.state.programs.insert("keepalived".into(), "/usr/sbin/keepalived".into());
    f.state.dirs.insert("/etc/keepalived".into());
    let p = plan_for("inventories/dr-ha.toml", "lvs1");
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!((r.failed, r.errors.len()), (0, 0), "{r:?} {ev:?}");
    assert!(f.log.contains(&"systemctl start keepalived.service".to_string()), "{:?}", f.log);
    assert!(!f.log.iter().any(|l| l.starts_with("spawn")), "{:?}", f.log);
    let mut p2 = p.clone();
    p2.files.iter_mut().find(|x| x.path == "/etc/keepalived/keepalived.conf").unwrap().content.push_str("# new\n");
    f.log.clear();
    run(&mut f, root.path(), Op::Apply, Some(&p2));
    assert!(f.log.contains(&"systemctl reload keepalived.service".to_string()), "{:?}", f.log);
    f.log.clear();
    let (r, _) = run_lab(&mut f, root.path(), Op::Down, "dr-ha", None);
    assert_eq!(r.failed, 0, "{r:?}");
    assert!(f.log.contains(&"systemctl stop keepalived.service".to_string()), "{:?}", f.log);
    assert!(!f.state.active.contains("keepalived.service"));

    // Someone else's keepalived.service is running: not taken over.
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    f.state.systemd = true;
    f.state.programs.insert("keepalived".into(), "/usr/sbin/keepalived".into());
    f.state.dirs.insert("/etc/keepalived".into());
    f.state.active.insert("keepalived.service".into());
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert!(r.failed >= 1, "{r:?}");
    let err = ev.iter().find_map(|e| match e {
        Event::Change(c) if c.object == "daemon keepalived" => c.error.clone(),
        _ => None,
    });
    assert!(err.is_some_and(|e| e.contains("keepalived.service is active") && e.contains("systemctl stop keepalived")));
    assert!(!f.log.iter().any(|l| l.contains("keepalived.service") && !l.contains("is-active")), "{:?}", f.log);
}

fn drain_op(p: &HostPlan, undrain: bool, remove: bool) -> Operation {
    Operation::Drain {
        plan: p.clone(),
        drain: super::protocol::DrainRequest {
            real_server: "web1".into(),
            services: vec![],
            undrain,
            remove,
            wait_inactive: false,
            timeout_s: 5,
        },
    }
}

fn drain(fake: &mut Fake, root: &Path, op: Operation) -> (Report, Vec<Event>) {
    let mut events = Vec::new();
    let report = handle(fake, &fake_paths(root), Request::new("dr", "h", op), &mut |e| events.push(e));
    (report, events)
}

fn weights(f: &Fake) -> Vec<(String, u32)> {
    let t = f.state.ipvs.as_ref().unwrap();
    t.iter().flat_map(|s| s.dests.iter().map(|d| (d.key.to_string(), d.config.weight))).collect()
}

/// A drain is kept on the director: weight 0 journaled (down gives the weight back), kept by
/// every later up and by status, undone by undrain; --remove takes the destination out; down
/// forgets the drain with the rest.
#[test]
fn a_drain_is_kept_by_up_and_status_until_undrain_and_down_restores() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "lvs");
    let (r, _) = drain(&mut f, root.path(), drain_op(&p, false, false));
    assert!(r.errors[0].contains("not up on this host"), "a lab that is not up: {r:?}");
    assert!(f.log.is_empty(), "nothing changed");
    run(&mut f, root.path(), Op::Apply, Some(&p));
    let planned = weights(&f);
    assert!(planned.contains(&("192.168.188.81:80".into(), 3)), "{planned:?}");

    let (r, ev) = drain(&mut f, root.path(), drain_op(&p, false, false));
    assert_eq!((r.failed, r.errors.len(), r.changes), (0, 0, 1), "{r:?}");
    assert!(weights(&f).contains(&("192.168.188.81:80".into(), 0)));
    let phases: Vec<String> =
        ev.iter().filter_map(|e| if let Event::Drain(d) = e { Some(d.phase.clone()) } else { None }).collect();
    assert_eq!(phases, ["weight-0", "drained"]);

    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.changes, 0, "up keeps the drain: {:?}", changes(&ev));
    assert!(ev.iter().any(
        |e| matches!(e, Event::Note { message, .. } if message.starts_with("kept web1 drained (weight 0) since"))
    ));
    let (r, _) = run(&mut f, root.path(), Op::Check, Some(&p));
    assert_eq!(r.changes, 0, "status: a drain is not drift");

    let (r, _) = drain(&mut f, root.path(), drain_op(&p, true, false));
    assert_eq!(r.changes, 1, "{r:?}");
    assert_eq!(weights(&f), planned, "undrain gives the weight back");

    let (r, ev) = drain(&mut f, root.path(), drain_op(&p, false, true));
    assert_eq!(r.errors.len(), 0, "{r:?}");
    assert!(!weights(&f).iter().any(|(k, _)| k == "192.168.188.81:80"), "removed: {:?}", weights(&f));
    assert!(ev.iter().any(|e| matches!(e, Event::Drain(d) if d.phase == "removed")));
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.changes, 0, "up keeps it out");

    run(&mut f, root.path(), Op::Down, None);
    assert!(f.state.ipvs.as_ref().is_none_or(|t| t.is_empty()), "down removes the lab's services");
    assert!(!fake_paths(root.path()).lab_dir("dr").join("drained.json").exists(), "down forgets the drain");
}

/// In a keepalived lab the drain goes through keepalived's configuration: the drained real
/// server's weight parameter is 0 in the keepalived.conf the plan writes, nothing else changes;
/// a configuration without the parameter (a template of the user's own) is said, not ignored.
#[test]
fn a_drain_of_a_service_keepalived_runs_sets_its_weight_parameter_to_zero() {
    use crate::wire::drain::Drained;
    let mut p = plan_for("inventories/dr-ha.toml", "lvs1");
    let k = p.keepalived.clone().expect("keepalived");
    let vs = &k.virtual_servers[0];
    let web1 = vs.real_servers.iter().find(|r| r.host == "web1").unwrap().clone();
    assert!(p.ipvs.iter().all(|s| s.ipvs.key() != vs.key()), "keepalived owns the service");
    let conf = |p: &HostPlan| p.files.iter().find(|f| f.path == k.config).unwrap().content.clone();
    let before = conf(&p);
    assert!(before.contains(&format!("\n${}={}\n", web1.weight_param, web1.weight)), "{before}");
    assert!(before.contains(&format!("weight ${}\n", web1.weight_param)), "{before}");
    let mut state = super::drain::DrainState::new();
    state.insert("web1".into(), Drained { since: 0, services: vec![vs.key()], removed: false });
    let mut drained = p.clone();
    let notes = super::drain::overlay(&mut drained, &state);
    assert!(notes.len() == 1 && notes[0].starts_with("kept web1 drained (weight 0)"), "{notes:?}");
    let after = conf(&drained);
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed, [(format!("${}=3", web1.weight_param).as_str(), format!("${}=0", web1.weight_param).as_str())]);
    assert_eq!(before.lines().count(), after.lines().count());
    assert!(after.ends_with('\n'));

    for f in p.files.iter_mut().filter(|f| f.path == k.config) {
        f.content = f.content.replace(&format!("${}=", web1.weight_param), "$SOMETHING_ELSE=");
    }
    let notes = super::drain::overlay(&mut p, &state);
    assert!(notes.iter().any(|n| n.contains("cannot keep web1 drained through keepalived")), "{notes:?}");
}

/// A director's metrics name its services and real servers as the plan does, say each real
/// server's state as the table and the drains make it, and say whether the lab is up and how far
/// it drifted.
#[test]
fn metrics_name_the_table_by_the_plan_with_each_real_servers_state() {
    use crate::ipvs::*;
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "lvs");
    let metrics = |f: &mut Fake| -> String {
        let req = Request::new("dr", "lvs", Operation::Metrics { plan: p.clone() });
        let report = handle(f, &fake_paths(root.path()), req, &mut |_| {});
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        crate::wire::metrics::exposition(report.metrics().expect("metrics"))
    };
    let before = metrics(&mut f);
    assert!(before.contains("lvsctl_plan_applied{lab=\"dr\",director=\"lvs\"} 0"), "{before}");
    assert!(!before.contains("lvs_service_connections_total"), "no table yet: {before}");
    let (r, ev) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 0, "{:?}", changes(&ev));
    let up = metrics(&mut f);
    let svc = "lab=\"dr\",director=\"lvs\",service=\"web\",protocol=\"tcp\",vip=\"192.168.188.100\",port=\"80\"";
    for want in [
        format!("lvs_service_connections_total{{{svc}}} 0"),
        format!("lvs_real_server_weight{{{svc},real_server=\"web1\",address=\"192.168.188.81\",real_port=\"80\"}} 3"),
        format!(
            "lvs_real_server_state{{{svc},real_server=\"web2\",address=\"192.168.188.82\",real_port=\"80\",state=\"up\"}} 1"
        ),
        "lvsctl_plan_applied{lab=\"dr\",director=\"lvs\"} 1".into(),
        "lvsctl_drift_objects{lab=\"dr\",director=\"lvs\"} 0".into(),
        "# TYPE lvs_real_server_connections_total counter".into(),
    ] {
        assert!(up.contains(&want), "{want}\n{up}");
    }
    // web2 at weight 0 (as a health check quiesces it), web1 out of the table.
    let key = ServiceKey::addr(Protocol::Tcp, "192.168.188.100".parse::<std::net::IpAddr>().unwrap(), 80);
    let web2 = DestKey { addr: "192.168.188.82".parse().unwrap(), port: 80 };
    crate::host::IpvsTable::ipvs_set_dest(&mut f, &key, &web2, &DestConfig::plain(FWD_ROUTE, 0)).unwrap();
    crate::host::IpvsTable::ipvs_del_dest(&mut f, &key, &DestKey { addr: "192.168.188.81".parse().unwrap(), port: 80 })
        .unwrap();
    let broken = metrics(&mut f);
    assert!(broken.contains("real_server=\"web2\",address=\"192.168.188.82\",real_port=\"80\",state=\"quiesced\"} 1"));
    assert!(broken.contains("real_server=\"web1\",address=\"192.168.188.81\",real_port=\"80\",state=\"removed\"} 1"));
    assert!(broken.contains("lvsctl_drift_objects{lab=\"dr\",director=\"lvs\"} 2"), "{broken}");
}

/// The exporter: started once it listens, left alone while it runs, never started where
/// something else listens, stopped by down (its pid file and log gone), and never signalled as
/// another process that reused its pid.
#[test]
fn the_exporter_is_started_kept_refused_on_a_busy_port_and_stopped() {
    let root = tempfile::tempdir().unwrap();
    let mut p = plan_for("inventories/dr.toml", "lvs");
    let listen: std::net::SocketAddr = "10.250.0.8:9382".parse().unwrap();
    p.exporter = Some(crate::plan::ExporterSpec { listen, reason: "test".into() });

    // Something else listens on the port: up leaves it alone and fails that item only.
    let mut busy = Fake::new();
    busy.state.listening.push("0.0.0.0:9382".parse().unwrap());
    let (r, events) = run(&mut busy, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 1, "{r:?}");
    let failed: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Change(c) if c.status == Status::Failed => {
                Some((c.object.clone(), c.error.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "exporter 10.250.0.8:9382");
    assert!(failed[0].1.contains("port 9382 is in use on this host (a socket listens on 0.0.0.0:9382)"), "{failed:?}");
    assert!(!busy.log.iter().any(|l| l.starts_with("spawn")), "{:?}", busy.log);
    run(&mut busy, root.path(), Op::Down, None);

    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!((r.failed, r.errors.len()), (0, 0), "{r:?}");
    let spawned: Vec<&String> = f.log.iter().filter(|l| l.starts_with("spawn")).collect();
    assert_eq!(
        spawned,
        [
            "spawn /usr/local/lib/lvsctl/0123/lvsctl agent metrics --lab dr --listen 10.250.0.8:9382 > /run/lvsctl-dr-metrics.log"
        ]
    );
    let pid = *f.state.processes.keys().next().unwrap();
    let Some(Undo::Exporter(u)) =
        crate::resource::Recorded::recorded(&journal(root.path(), "dr"), &Key::Exporter(listen.to_string())).cloned()
    else {
        panic!("no exporter record")
    };
    assert_eq!(u.process.as_ref().map(|p| p.pid), Some(pid));

    // Running: a second up and status see it as planned; its own port is not "busy".
    let before = f.log.len();
    let (r, events) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!((r.changes, r.failed), (0, 0), "{events:?}");
    assert_eq!(f.log.len(), before, "{:?}", &f.log[before..]);

    // Stopped by someone: status says so, up starts it again.
    f.state.processes.clear();
    f.state.listening.clear();
    let (r, _) = run(&mut f, root.path(), Op::Check, Some(&p));
    assert_eq!(r.changes, 1, "{r:?}");

    // A process that reused the pid is not the exporter: down leaves it alone.
    let reused = crate::host::ProcFact { pid, start_time: 999, exe: "/usr/bin/other".into() };
    f.state.processes.insert(pid, reused);
    f.state.listening.clear();
    let before = f.log.len();
    let (r, _) = run(&mut f, root.path(), Op::Down, None);
    assert_eq!(r.failed, 0, "{r:?}");
    assert!(!f.log[before..].iter().any(|l| l.starts_with("kill")), "{:?}", &f.log[before..]);

    // Up again, then down: SIGTERM to the recorded process, pid file and log removed.
    f.state.processes.clear();
    f.state.listening.clear();
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 0, "{r:?}");
    let pid = *f.state.processes.keys().next().unwrap();
    let before = f.log.len();
    let (r, _) = run(&mut f, root.path(), Op::Down, None);
    assert_eq!(r.failed, 0, "{r:?}");
    assert!(f.log[before..].contains(&format!("kill -{} {pid}", libc::SIGTERM)), "{:?}", &f.log[before..]);
    assert!(!f.state.files.contains_key("/run/lvsctl-dr-metrics.pid"));
    assert!(f.state.processes.is_empty());
}

/// The exporter reads the persisted plan, which holds runtime state only: its drift is counted
/// in that scope, so a host just brought up has none (counted over everything, the files and
/// unit the persisted plan leaves out would look stale).
#[test]
fn the_exporters_drift_is_of_the_runtime_state() {
    let root = tempfile::tempdir().unwrap();
    let mut f = Fake::new();
    let p = plan_for("inventories/dr.toml", "lvs");
    let (r, _) = run(&mut f, root.path(), Op::Apply, Some(&p));
    assert_eq!(r.failed, 0, "{r:?}");
    let persisted = p.runtime();
    let req = Request::new("dr", "lvs", Operation::Metrics { plan: persisted.clone() });
    let drift = |f: &mut Fake, scope| {
        let families =
            super::metrics_of(f, &fake_paths(root.path()), &req, &persisted, super::DriftCount::In(scope)).unwrap();
        let family = families.iter().find(|x| x.name == "lvsctl_drift_objects").expect("the drift series");
        match family.samples[0].value {
            crate::wire::metrics::Value::Int(n) => n,
            crate::wire::metrics::Value::Float(x) => x as u64,
        }
    };
    assert_eq!(drift(&mut f, crate::resource::Scope::Runtime), 0);
    assert!(drift(&mut f, crate::resource::Scope::All) > 0, "the persisted plan leaves the files out");
    f.state.sysctls.insert("net.ipv4.vs.expire_nodest_conn".into(), "0".into());
    assert_eq!(drift(&mut f, crate::resource::Scope::Runtime), 1, "a sysctl put back by hand");
}
