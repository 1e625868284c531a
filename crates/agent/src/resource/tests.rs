//! Decision tables, as pyinfra's operation tests: desired state + live facts (+ journal) in, the
//! decisions out — changes, no-ops with their reasons, undos. No host and no fake: `decide` and
//! `undo` are pure.

use std::collections::BTreeMap;

use super::*;
use crate::host::{FileFact, ProcFact, RTPROT_LVSCTL};
use crate::ipvs::Protocol;
use crate::ipvs::{DestConfig, DestEntry, ServiceConfig, ServiceEntry, Stats};
use crate::plan::{
    AddressSpec, DestSpec, FileSpec, Forward, LinkSpec, ModuleSpec, RouteSpec, SysctlSpec, VirtualServiceSpec,
};
use crate::wire::service::VirtualService;
use crate::wire::vocab::Role;

/// One decision as a line: `~` change, `=` no-op, `!` blocked, `?` pending, `k` kept, `x` failed.
fn line(d: &Decision) -> String {
    match d {
        Decision::Same { key, why } => format!("= {key}: {why}"),
        Decision::Change(c) => format!("~ {}: {} -> {}", c.key, c.before, c.after),
        Decision::Blocked { object, before, after, error, .. } => format!("! {object}: {before} -> {after} ({error})"),
        Decision::Pending { object, before, after, .. } => format!("? {object}: {before} -> {after}"),
        Decision::Keep { key, why } => format!("k {key}: {why}"),
        Decision::Failed { object, error, .. } => format!("x {object}: {error}"),
        Decision::Note(m) => format!("note {m}"),
    }
}

fn lines(ds: &[Decision]) -> Vec<String> {
    ds.iter().map(line).collect()
}

fn empty_plan() -> HostPlan {
    HostPlan::empty("t", "h", Role::Director)
}

fn decide(stage: Stage, plan: &HostPlan, live: &Live, journal: &[Undo], intent: Intent) -> Vec<String> {
    lines(&stage.decide(plan, live, &journal.to_vec(), intent))
}

fn change(d: &Decision) -> &Change {
    match d {
        Decision::Change(c) => c,
        other => panic!("not a change: {other:?}"),
    }
}

fn sysctls(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Fact<Option<String>>> {
    pairs.iter().map(|(k, v)| (k.to_string(), Ok(v.map(String::from)))).collect()
}

fn addr(dev: &str, a: &str) -> AddrFact {
    AddrFact { dev: dev.into(), address: a.parse().unwrap(), label: None, nodad: false, deprecated: false }
}

fn route(dst: &str, gw: &str, protocol: u8) -> RouteFact {
    RouteFact {
        destination: dst.parse().unwrap(),
        gateway: Some(gw.parse().unwrap()),
        dev: None,
        metric: 0,
        protocol,
        scope: 0,
        prefsrc: None,
        advmss: None,
    }
}

#[test]
fn modules() {
    let mut p = empty_plan();
    p.modules = vec![
        ModuleSpec { name: "ip_vs".into(), reason: "IPVS".into() },
        ModuleSpec { name: "ip_vs_wrr".into(), reason: "scheduler".into() },
    ];
    let live = Live { modules: Ok(vec!["ip_vs".into(), "nf_conntrack".into()]), ..Live::default() };
    let ds = Stage::Modules.decide(&p, &live, &Vec::new(), Intent::Apply);
    assert_eq!(lines(&ds), ["= module ip_vs: module ip_vs is loaded", "~ module ip_vs_wrr: not loaded -> loaded"]);
    let c = change(&ds[1]);
    assert_eq!(c.action, Action::Module(module::Action::Load("ip_vs_wrr".into())));
    assert_eq!(c.record, Some(Undo::Module(module::Undo { name: "ip_vs_wrr".into(), loaded: None })));

    let unreadable = Live { modules: Err("no /proc/modules".into()), ..Live::default() };
    assert_eq!(decide(Stage::Modules, &p, &unreadable, &[], Intent::Apply), ["x modules: no /proc/modules"]);

    // Undo: only what the load brought in and is still there.
    let u =
        module::Undo { name: "ipip".into(), loaded: Some(vec!["ipip".into(), "tunnel4".into(), "ip_tunnel".into()]) };
    let live = Live { modules: Ok(vec!["ipip".into(), "tunnel4".into()]), ..Live::default() };
    let d = undo(&Undo::Module(u.clone()), &live);
    assert_eq!(line(&d), "~ module ipip: loaded (ipip tunnel4) -> unloaded");
    assert_eq!(change(&d).action, Action::Module(module::Action::Unload(vec!["ipip".into(), "tunnel4".into()])));
    assert_eq!(line(&undo(&Undo::Module(u), &Live::default())), "= module ipip: not loaded");
}

#[test]
fn sysctls_table() {
    let mut p = empty_plan();
    let spec = |k: &str, v: &str| SysctlSpec { key: k.into(), value: v.into(), reason: "r".into() };
    p.sysctls = vec![
        spec("net.ipv4.ip_forward", "1"),
        spec("net.ipv4.conf.all.arp_ignore", "1"),
        spec("net.ipv4.ip_local_port_range", "1024 65000"),
        spec("net.ipv4.conf.tunl0.rp_filter", "0"),
    ];
    let live = Live {
        sysctls: sysctls(&[
            ("net.ipv4.ip_forward", Some("1\n")),
            ("net.ipv4.conf.all.arp_ignore", Some("2")),
            ("net.ipv4.ip_local_port_range", Some("1024\t65000")),
            ("net.ipv4.conf.tunl0.rp_filter", None),
        ]),
        ..Live::default()
    };
    let ds = Stage::Sysctls.decide(&p, &live, &Vec::new(), Intent::Apply);
    assert_eq!(
        lines(&ds),
        [
            "= sysctl net.ipv4.ip_forward: is 1",
            "~ sysctl net.ipv4.conf.all.arp_ignore: 2 -> 1",
            "= sysctl net.ipv4.ip_local_port_range: is 1024 65000",
            "! sysctl net.ipv4.conf.tunl0.rp_filter: absent -> 0 (no sysctl net.ipv4.conf.tunl0.rp_filter on this host (missing interface or module?))",
        ]
    );
    assert_eq!(
        change(&ds[1]).record,
        Some(Undo::Sysctl(sysctl::Undo {
            key: "net.ipv4.conf.all.arp_ignore".into(),
            prior: "2".into(),
            applied: "1".into()
        }))
    );
    // The key appears with a module the plan loads: pending, not impossible.
    p.modules = vec![ModuleSpec { name: "ipip".into(), reason: "r".into() }];
    let ds = Stage::Sysctls.decide(&p, &live, &Vec::new(), Intent::DryRun);
    assert_eq!(line(&ds[3]), "? sysctl net.ipv4.conf.tunl0.rp_filter: absent until its module loads -> 0");

    // Undo: the prior comes back only over lvsctl's own value.
    let u = |prior: &str| Undo::Sysctl(sysctl::Undo { key: "k".into(), prior: prior.into(), applied: "1".into() });
    let at = |v: Option<&str>| Live { sysctls: sysctls(&[("k", v)]), ..Live::default() };
    assert_eq!(line(&undo(&u("2"), &at(Some("1")))), "~ sysctl k: 1 -> 2");
    assert_eq!(line(&undo(&u("2"), &at(Some("2")))), "= sysctl k: is 2 again");
    assert_eq!(
        line(&undo(&u("2"), &at(Some("3")))),
        "k sysctl k: changed by someone else since lvsctl set it (now 3, lvsctl set 1, it was 2 before): left as it is"
    );
    assert_eq!(line(&undo(&u("2"), &at(None))), "= sysctl k: gone with its device");
}

#[test]
fn links() {
    let mut p = empty_plan();
    p.links_up = ["eth0", "eth1", "tunl0"].map(|d| LinkSpec { dev: d.into(), reason: "r".into() }).to_vec();
    let live = Live {
        links: [("eth0", Some(true)), ("eth1", Some(false)), ("tunl0", None)]
            .into_iter()
            .map(|(d, s)| (d.to_string(), Ok(s)))
            .collect(),
        ..Live::default()
    };
    assert_eq!(
        decide(Stage::Links, &p, &live, &[], Intent::Apply),
        [
            "= link eth0: is up",
            "~ link eth1: down -> up",
            "! link tunl0: absent -> up (no interface tunl0 on this host)"
        ]
    );
    p.modules = vec![ModuleSpec { name: "ipip".into(), reason: "r".into() }];
    assert_eq!(
        decide(Stage::Links, &p, &live, &[], Intent::DryRun)[2],
        "? link tunl0: absent until its module loads -> up"
    );

    let u = Undo::Link(link::Undo { dev: "eth1".into() });
    let at = |s: Option<bool>| Live { links: [("eth1".to_string(), Ok(s))].into(), ..Live::default() };
    assert_eq!(line(&undo(&u, &at(Some(true)))), "~ link eth1: up -> down");
    assert_eq!(line(&undo(&u, &at(Some(false)))), "= link eth1: down or gone");
}

#[test]
fn gue_ports() {
    use crate::host::FouPort;
    let mut p = empty_plan();
    p.gue_ports = vec![
        crate::plan::GuePortSpec { port: 6080, ipv6: false, reason: "r".into() },
        crate::plan::GuePortSpec { port: 6080, ipv6: true, reason: "r".into() },
        crate::plan::GuePortSpec { port: 7000, ipv6: false, reason: "r".into() },
    ];
    assert!(Stage::Links.wants(&p).gue_ports);
    let live = Live {
        gue_ports: Ok(vec![
            FouPort { port: 6080, ipv6: false, gue: true },
            FouPort { port: 7000, ipv6: false, gue: false },
        ]),
        ..Live::default()
    };
    assert_eq!(
        decide(Stage::Links, &p, &live, &[], Intent::Apply),
        [
            "= gue port 6080: is open (gue)",
            "~ gue port 6080 (IPv6): closed -> open (gue)",
            "! gue port 7000: open, direct -> open, gue (fou port 7000 is open as a direct (not GUE) port: it would not unwrap the director's GUE packets; close it (ip fou del port 7000) or choose another tun_port)"
        ]
    );
    let failed = Live { gue_ports: Err("EPERM".into()), ..Live::default() };
    assert!(decide(Stage::Links, &p, &failed, &[], Intent::Apply)[0].starts_with("x gue port 6080"));

    let u = Undo::GuePort(gue_port::Undo { port: 6080, ipv6: true });
    let at = |open: bool| Live {
        gue_ports: Ok(if open { vec![FouPort { port: 6080, ipv6: true, gue: true }] } else { vec![] }),
        ..Live::default()
    };
    assert_eq!(line(&undo(&u, &at(true))), "~ gue port 6080 (IPv6): open -> closed");
    assert_eq!(line(&undo(&u, &at(false))), "= gue port 6080 (IPv6): is closed");
}

#[test]
fn addresses() {
    let mut p = empty_plan();
    let spec = |dev: &str, a: &str| AddressSpec {
        dev: dev.into(),
        address: a.parse().unwrap(),
        label: Some(format!("{dev}:lvs")),
        nodad: false,
        deprecated: false,
        reason: "r".into(),
    };
    p.addresses = vec![spec("eth0", "10.0.0.1/24"), spec("lo", "10.0.0.100/32"), spec("lo", "10.0.0.7/32")];
    // lo's loopback address shares the device, not the address: 10.0.0.100 is still absent.
    let live = Live {
        addresses: Ok(vec![addr("lo", "127.0.0.1/8"), addr("eth0", "10.0.0.1/24"), addr("eth1", "10.0.0.7/24")]),
        ..Live::default()
    };
    let ds = Stage::Addresses.decide(&p, &live, &Vec::new(), Intent::Apply);
    assert_eq!(
        lines(&ds),
        [
            "= address 10.0.0.1/24 dev eth0: is present",
            "~ address 10.0.0.100/32 dev lo: absent -> present",
            "! address 10.0.0.7/32 dev lo: 10.0.0.7/24 dev eth1 -> present (10.0.0.7 is already on eth1 as 10.0.0.7/24, not managed by lvsctl: remove it or change the inventory)",
        ]
    );
    let want = AddrFact { label: Some("lo:lvs".into()), ..addr("lo", "10.0.0.100/32") };
    assert_eq!(change(&ds[1]).action, Action::Address(address::Action::Add(want.clone())));

    let u = Undo::Address(address::Undo { address: want.clone() });
    let d = undo(&u, &Live { addresses: Ok(vec![want.clone()]), ..Live::default() });
    assert_eq!(line(&d), "~ address 10.0.0.100/32 dev lo: present -> absent");
    assert_eq!(change(&d).action, Action::Address(address::Action::Del(want)));
    assert_eq!(line(&undo(&u, &Live::default())), "= address 10.0.0.100/32 dev lo: is absent");
    // Only that address on that device is ours to remove.
    for other in [addr("lo", "127.0.0.1/8"), addr("eth0", "10.0.0.100/32")] {
        let d = undo(&u, &Live { addresses: Ok(vec![other]), ..Live::default() });
        assert_eq!(line(&d), "= address 10.0.0.100/32 dev lo: is absent");
    }
}

#[test]
fn routes() {
    let mut p = empty_plan();
    let spec = |dst: &str, gw: &str| RouteSpec {
        destination: dst.parse().unwrap(),
        gateway: Some(gw.parse().unwrap()),
        dev: None,
        advmss: None,
        reason: "r".into(),
    };
    p.routes =
        vec![spec("0.0.0.0/0", "10.0.0.254"), spec("10.9.0.100/32", "10.0.0.2"), spec("10.9.0.101/32", "10.0.0.2")];
    let dhcp = route("0.0.0.0/0", "10.0.0.1", 16);
    let live = Live { routes: Ok(vec![dhcp.clone(), route("10.9.0.101/32", "10.0.0.2", 4)]), ..Live::default() };
    let ds = Stage::Routes.decide(&p, &live, &Vec::new(), Intent::Apply);
    assert_eq!(
        lines(&ds),
        [
            "~ route default: default via 10.0.0.1 proto dhcp -> default via 10.0.0.254 proto lvsctl",
            "~ route 10.9.0.100/32: absent -> 10.9.0.100/32 via 10.0.0.2 proto lvsctl",
            "= route 10.9.0.101/32: is in place",
        ]
    );
    let ours = route("0.0.0.0/0", "10.0.0.254", RTPROT_LVSCTL);
    assert_eq!(change(&ds[0]).action, Action::Route(route::Action::Add { route: ours.clone(), replace: true }));
    assert_eq!(
        change(&ds[0]).record,
        Some(Undo::Route(route::Undo { applied: ours.clone(), prior: Some(dhcp.clone()) }))
    );

    // Undo: the replaced route comes back with every attribute; a route someone else put in the
    // slot since stays.
    let replaced = Undo::Route(route::Undo { applied: ours.clone(), prior: Some(dhcp.clone()) });
    let added = Undo::Route(route::Undo { applied: ours.clone(), prior: None });
    let at = |r: Vec<RouteFact>| Live { routes: Ok(r), ..Live::default() };
    let d = undo(&replaced, &at(vec![ours.clone()]));
    assert_eq!(line(&d), "~ route default: default via 10.0.0.254 proto lvsctl -> default via 10.0.0.1 proto dhcp");
    assert_eq!(change(&d).action, Action::Route(route::Action::Add { route: dhcp.clone(), replace: true }));
    assert_eq!(
        line(&undo(&added, &at(vec![ours.clone()]))),
        "~ route default: default via 10.0.0.254 proto lvsctl -> absent"
    );
    assert_eq!(line(&undo(&replaced, &at(vec![]))), "~ route default: absent -> default via 10.0.0.1 proto dhcp");
    assert_eq!(line(&undo(&added, &at(vec![]))), "= route default: is absent");
    assert_eq!(
        line(&undo(&added, &at(vec![route("0.0.0.0/0", "10.0.0.9", 4)]))),
        "k route default: now default via 10.0.0.9 proto static, not the route lvsctl set: left as it is"
    );
    // The same gateway set again by someone else (another protocol) is theirs now.
    assert_eq!(
        line(&undo(&added, &at(vec![route("0.0.0.0/0", "10.0.0.254", 4)]))),
        "k route default: now default via 10.0.0.254 proto static, not the route lvsctl set: left as it is"
    );
}

/// A planned default route that would re-route the SSH session lvsctl arrives on is refused
/// (unless `--force`); one that leaves it alone (its client on a connected subnet, or the same
/// gateway) goes ahead.
#[test]
fn a_default_route_carrying_the_ssh_session_is_not_replaced_without_force() {
    let mut p = empty_plan();
    p.routes = vec![RouteSpec {
        destination: "0.0.0.0/0".parse().unwrap(),
        gateway: Some("10.0.0.254".parse().unwrap()),
        dev: None,
        advmss: None,
        reason: "r".into(),
    }];
    let connected = RouteFact { gateway: None, scope: 253, ..route("10.0.0.0/24", "10.0.0.1", 2) };
    let dhcp = RouteFact { metric: 100, ..route("0.0.0.0/0", "10.0.0.1", 16) };
    let at = |peer: &str, force: bool| Live {
        routes: Ok(vec![connected.clone(), dhcp.clone()]),
        session: Session { ssh_peer: Some(peer.parse().unwrap()), force },
        ..Live::default()
    };
    let ds = Stage::Routes.decide(&p, &at("192.0.2.7", false), &Vec::new(), Intent::Apply);
    let got = line(&ds[0]);
    assert!(got.starts_with("! route default: absent -> default via 10.0.0.254 proto lvsctl ("), "{got}");
    assert!(
        got.contains("comes from 192.0.2.7") && got.contains("default via 10.0.0.1 proto dhcp metric 100"),
        "{got}"
    );
    assert!(got.contains("lvsctl up --force"), "{got}");
    // With --force, on a connected subnet, or not over SSH: a change as usual.
    for live in
        [at("192.0.2.7", true), at("10.0.0.9", false), Live { session: Session::default(), ..at("192.0.2.7", false) }]
    {
        let ds = Stage::Routes.decide(&p, &live, &Vec::new(), Intent::Apply);
        assert_eq!(lines(&ds), ["~ route default: absent -> default via 10.0.0.254 proto lvsctl"]);
    }
}

fn service_key() -> ServiceKey {
    ServiceKey::addr(Protocol::Tcp, "10.0.0.100".parse::<std::net::Ipv4Addr>().unwrap(), 80)
}

fn dest(a: &str, weight: u32) -> DestSpec {
    DestSpec {
        host: format!("rs-{a}"),
        address: a.parse().unwrap(),
        port: 80,
        forward: Forward::Route,
        weight,
        u_threshold: 0,
        l_threshold: 0,
        encap: Default::default(),
    }
}

fn dest_entry(a: &str, weight: u32) -> DestEntry {
    DestEntry {
        key: DestKey { addr: a.parse().unwrap(), port: 80 },
        config: DestConfig::plain(crate::ipvs::FWD_ROUTE, weight),
        active_conns: 0,
        inact_conns: 0,
        persist_conns: 0,
        stats: Stats::default(),
    }
}

fn table(scheduler: &str, dests: Vec<DestEntry>) -> Vec<IpvsService> {
    let config = ServiceConfig::persistent(scheduler, 0, None);
    vec![IpvsService { entry: ServiceEntry { key: service_key(), config, stats: Stats::default() }, dests }]
}

#[test]
fn ipvs_services_and_destinations() {
    let mut p = empty_plan();
    p.ipvs = vec![VirtualServiceSpec {
        name: None,
        ipvs: VirtualService {
            protocol: Protocol::Tcp,
            vip: "10.0.0.100".parse().unwrap(),
            port: 80,
            fwmark: None,
            scheduler: "wrr".into(),
            scheduler_flags: vec![],
            one_packet: false,
            persistence: 0,
            netmask: None,
        },
        destinations: vec![dest("10.0.0.11", 3), dest("10.0.0.12", 1), dest("10.0.0.13", 1)],
        reason: "r".into(),
    }];
    let ipvs = |t| Live { ipvs: Ok(t), ..Live::default() };
    // Nothing there yet: a dry run lists everything; an apply that finds no IPVS fails once.
    assert_eq!(
        decide(Stage::Ipvs, &p, &ipvs(None), &[], Intent::DryRun),
        [
            "~ ipvs service tcp 10.0.0.100:80: absent -> wrr",
            "~ ipvs dest 10.0.0.11:80 of tcp 10.0.0.100:80: absent -> route weight 3",
            "~ ipvs dest 10.0.0.12:80 of tcp 10.0.0.100:80: absent -> route weight 1",
            "~ ipvs dest 10.0.0.13:80 of tcp 10.0.0.100:80: absent -> route weight 1",
        ]
    );
    assert_eq!(decide(Stage::Ipvs, &p, &ipvs(None), &[], Intent::Apply), ["x ipvs: IPVS is not loaded (module ip_vs)"]);
    // A service with another scheduler, one destination right, one with another weight, one
    // missing, and one lvsctl does not manage.
    let live = ipvs(Some(table(
        "rr",
        vec![dest_entry("10.0.0.11", 3), dest_entry("10.0.0.12", 7), dest_entry("10.0.0.99", 1)],
    )));
    let ds = Stage::Ipvs.decide(&p, &live, &Vec::new(), Intent::Apply);
    assert_eq!(
        lines(&ds),
        [
            "~ ipvs service tcp 10.0.0.100:80: rr -> wrr",
            "= ipvs dest 10.0.0.11:80 of tcp 10.0.0.100:80: is route weight 3",
            "~ ipvs dest 10.0.0.12:80 of tcp 10.0.0.100:80: route weight 7 -> route weight 1",
            "~ ipvs dest 10.0.0.13:80 of tcp 10.0.0.100:80: absent -> route weight 1",
            "note ipvs service tcp 10.0.0.100:80 has destination 10.0.0.99:80 that lvsctl does not manage: left as it is",
        ]
    );
    let k = service_key();
    let web2 = DestKey { addr: "10.0.0.12".parse().unwrap(), port: 80 };
    let one = DestConfig::plain(crate::ipvs::FWD_ROUTE, 1);
    assert_eq!(change(&ds[2]).action, Action::Dest(ipvs_dest::Action::Set(k, web2, one.clone())));
    assert_eq!(
        change(&ds[0]).record,
        Some(Undo::Service(ipvs_service::Undo {
            key: k,
            prior: Some(ServiceConfig::persistent("rr", 0, None)),
            applied: ServiceConfig::persistent("wrr", 0, None)
        }))
    );
    // A destination lvsctl added earlier and the inventory dropped is not foreign: the stale
    // pass removes it.
    let ours = [Undo::Dest(ipvs_dest::Undo {
        service: k,
        key: DestKey { addr: "10.0.0.99".parse().unwrap(), port: 80 },
        prior: None,
        applied: one.clone(),
    })];
    assert!(!decide(Stage::Ipvs, &p, &live, &ours[..], Intent::Apply).iter().any(|l| l.starts_with("note")));

    // Undo: created → deleted; changed → its prior config; as before → nothing.
    let created =
        Undo::Service(ipvs_service::Undo { key: k, prior: None, applied: ServiceConfig::persistent("wrr", 0, None) });
    let changed = Undo::Service(ipvs_service::Undo {
        key: k,
        prior: Some(ServiceConfig::persistent("rr", 0, None)),
        applied: ServiceConfig::persistent("wrr", 0, None),
    });
    let now = ipvs(Some(table("wrr", vec![dest_entry("10.0.0.12", 1)])));
    assert_eq!(line(&undo(&created, &now)), "~ ipvs service tcp 10.0.0.100:80: wrr -> absent");
    assert_eq!(line(&undo(&changed, &now)), "~ ipvs service tcp 10.0.0.100:80: wrr -> rr");
    assert_eq!(
        line(&undo(&changed, &ipvs(Some(table("rr", vec![]))))),
        "= ipvs service tcp 10.0.0.100:80: is rr again"
    );
    assert_eq!(line(&undo(&created, &ipvs(None))), "= ipvs service tcp 10.0.0.100:80: is absent");
    let seven = DestConfig { weight: 7, ..one.clone() };
    let dest_added = Undo::Dest(ipvs_dest::Undo { service: k, key: web2, prior: None, applied: one.clone() });
    let dest_changed = Undo::Dest(ipvs_dest::Undo { service: k, key: web2, prior: Some(seven.clone()), applied: one });
    assert_eq!(
        line(&undo(&dest_added, &now)),
        "~ ipvs dest 10.0.0.12:80 of tcp 10.0.0.100:80: route weight 1 -> absent"
    );
    let d = undo(&dest_changed, &now);
    assert_eq!(line(&d), "~ ipvs dest 10.0.0.12:80 of tcp 10.0.0.100:80: route weight 1 -> route weight 7");
    assert_eq!(change(&d).action, Action::Dest(ipvs_dest::Action::Set(k, web2, seven)));
    assert_eq!(
        line(&undo(&dest_added, &ipvs(Some(table("wrr", vec![]))))),
        "= ipvs dest 10.0.0.12:80 of tcp 10.0.0.100:80: is absent"
    );
}

fn file_fact(content: &str, mode: u32) -> Fact<Option<FileFact>> {
    Ok(Some(FileFact { content: content.as_bytes().to_vec(), mode }))
}

#[test]
fn files_and_their_directories() {
    let mut p = empty_plan();
    let spec = |path: &str, content: &str| FileSpec {
        path: path.into(),
        mode: 0o644,
        content: content.into(),
        reason: "r".into(),
        check: None,
        runtime_plan: false,
    };
    p.files = vec![
        spec("/etc/lvsctl/t/host.json", "{}\n"),
        spec("/etc/lvsctl/t/other.json", "[]\n"),
        spec("/etc/sysctl.d/90-lvsctl-t.conf", "x\n"),
        spec("/etc/systemd/system/lvsctl-t.service", "unit\n"),
    ];
    let mut live = Live::default();
    live.files.insert("/etc/lvsctl/t/host.json".into(), Ok(None));
    live.files.insert("/etc/lvsctl/t/other.json".into(), Ok(None));
    live.files.insert("/etc/sysctl.d/90-lvsctl-t.conf".into(), file_fact("x\n", 0o600));
    live.files.insert("/etc/systemd/system/lvsctl-t.service".into(), file_fact("mine\n", 0o644));
    for d in ["/etc", "/etc/sysctl.d", "/etc/systemd", "/etc/systemd/system"] {
        live.dirs.insert(d.into(), true);
    }
    live.dirs.insert("/etc/lvsctl".into(), false);
    live.dirs.insert("/etc/lvsctl/t".into(), false);
    let ds = Stage::Files.decide(&p, &live, &Vec::new(), Intent::Apply);
    let sha = |s: &str| sha256(s.as_bytes())[..12].to_string();
    assert_eq!(
        lines(&ds),
        [
            "~ dir /etc/lvsctl: absent -> present".to_string(),
            "~ dir /etc/lvsctl/t: absent -> present".to_string(),
            format!("~ file /etc/lvsctl/t/host.json: absent -> 3 bytes, sha256 {}, mode 0644", sha("{}\n")),
            format!("~ file /etc/lvsctl/t/other.json: absent -> 3 bytes, sha256 {}, mode 0644", sha("[]\n")),
            format!("~ file /etc/sysctl.d/90-lvsctl-t.conf: mode 0600 -> 2 bytes, sha256 {}, mode 0644", sha("x\n")),
            format!(
                "~ file /etc/systemd/system/lvsctl-t.service: 5 bytes, sha256 {} -> 5 bytes, sha256 {}, mode 0644",
                sha("mine\n"),
                sha("unit\n")
            ),
        ]
    );
    // A file replaced for the first time is backed up; once journaled, its first prior stays.
    let unit = change(&ds[5]);
    let Action::File(file::Action::Write { backup, .. }) = &unit.action else { panic!() };
    assert_eq!(backup.as_ref().map(|b| b.content.clone()), Some(b"mine\n".to_vec()));
    let journal = [Undo::File(file::Undo {
        path: "/etc/systemd/system/lvsctl-t.service".into(),
        prior: Some(file::Backup { file: "3".into(), mode: 0o644 }),
        applied_sha256: sha256(b"old unit\n"),
    })];
    let ds = Stage::Files.decide(&p, &live, &journal.to_vec(), Intent::Apply);
    let Action::File(file::Action::Write { backup, .. }) = &change(&ds[5]).action else { panic!() };
    assert_eq!(*backup, None);
    // Everything in place: no-ops only.
    for f in &p.files {
        live.files.insert(f.path.clone(), file_fact(&f.content, 0o644));
    }
    live.dirs.insert("/etc/lvsctl".into(), true);
    live.dirs.insert("/etc/lvsctl/t".into(), true);
    let ds = decide(Stage::Files, &p, &live, &[], Intent::Apply);
    assert!(ds.iter().all(|l| l.ends_with("has the planned content and mode")), "{ds:?}");

    // Undo.
    let path = "/etc/systemd/system/lvsctl-t.service".to_string();
    let backup = file::Backup { file: "3".into(), mode: 0o600 };
    let with_prior =
        Undo::File(file::Undo { path: path.clone(), prior: Some(backup.clone()), applied_sha256: sha256(b"unit\n") });
    let without = Undo::File(file::Undo { path: path.clone(), prior: None, applied_sha256: sha256(b"unit\n") });
    let at = |c: Fact<Option<FileFact>>| Live { files: [(path.clone(), c)].into(), ..Live::default() };
    let d = undo(&with_prior, &at(file_fact("unit\n", 0o644)));
    assert_eq!(line(&d), format!("~ file {path}: lvsctl's version -> the prior version"));
    assert_eq!(change(&d).action, Action::File(file::Action::Restore { path: path.clone(), backup }));
    assert_eq!(line(&undo(&without, &at(file_fact("unit\n", 0o644)))), format!("~ file {path}: present -> absent"));
    assert_eq!(line(&undo(&with_prior, &at(Ok(None)))), format!("~ file {path}: absent -> the prior version"));
    assert_eq!(line(&undo(&without, &at(Ok(None)))), format!("= file {path}: is absent"));
    assert_eq!(
        line(&undo(&without, &at(file_fact("edited\n", 0o644)))),
        format!("k file {path}: changed by someone else since lvsctl wrote it: left as it is")
    );
    let dir = Undo::Dir(dir::Undo { path: "/etc/lvsctl".into() });
    let d = undo(&dir, &Live { dirs: [("/etc/lvsctl".to_string(), true)].into(), ..Live::default() });
    assert_eq!(change(&d).action, Action::Dir(dir::Action::RemoveIfEmpty("/etc/lvsctl".into())));
    assert_eq!(line(&undo(&dir, &Live::default())), "= dir /etc/lvsctl: is absent");
}

#[test]
fn boot_unit() {
    let mut p = empty_plan();
    p.boot_unit = Some("lvsctl-t.service".into());
    let no_systemd = Live::default();
    assert_eq!(
        decide(Stage::Unit, &p, &no_systemd, &[], Intent::Apply),
        [
            "note systemd does not run on this host: lvsctl-t.service is installed but not enabled (run its ExecStart at boot)"
        ]
    );
    assert!(decide(Stage::Unit, &p, &no_systemd, &[], Intent::DryRun).is_empty());
    let at = |enabled: bool| Live {
        systemd: true,
        units: [("lvsctl-t.service".to_string(), enabled)].into(),
        ..Live::default()
    };
    assert_eq!(decide(Stage::Unit, &p, &at(true), &[], Intent::Apply), ["= unit lvsctl-t.service: is enabled"]);
    assert_eq!(
        decide(Stage::Unit, &p, &at(false), &[], Intent::Apply),
        ["~ unit lvsctl-t.service: disabled -> enabled"]
    );
    let u = Undo::Unit(unit::Undo { name: "lvsctl-t.service".into() });
    assert_eq!(line(&undo(&u, &at(true))), "~ unit lvsctl-t.service: enabled -> disabled");
    assert_eq!(line(&undo(&u, &no_systemd)), "= unit lvsctl-t.service: systemd does not run here");
}

#[test]
fn entries_the_plan_no_longer_wants_are_stale_within_their_scope() {
    let mut p = empty_plan();
    p.addresses = vec![AddressSpec {
        dev: "lo".into(),
        address: "10.0.0.100/32".parse().unwrap(),
        label: None,
        nodad: false,
        deprecated: false,
        reason: "r".into(),
    }];
    p.files = vec![FileSpec {
        path: "/etc/lvsctl/t/host.json".into(),
        mode: 0o644,
        content: String::new(),
        reason: "r".into(),
        check: None,
        runtime_plan: false,
    }];
    let kept = Undo::Address(address::Undo { address: addr("lo", "10.0.0.100/32") });
    let moved = Undo::Address(address::Undo { address: addr("eth0", "10.0.0.100/32") });
    let dir = Undo::Dir(dir::Undo { path: "/etc/lvsctl/t".into() });
    let old_file = Undo::File(file::Undo { path: "/etc/old".into(), prior: None, applied_sha256: String::new() });
    let entries = [kept, moved.clone(), dir, old_file.clone()];
    assert_eq!(stale(entries.iter(), &p, Scope::All), [moved.clone(), old_file]);
    assert_eq!(stale(entries.iter(), &p, Scope::Runtime), [moved]);
}

/// The plans of an example inventory (`inventories/NAME.toml`), as the planner makes them.
fn example_plans(name: &str) -> Vec<HostPlan> {
    crate::golden::plans(name)
}

#[test]
fn every_kind_is_shown_with_its_reason() {
    let plans = example_plans("tun");
    let kinds: std::collections::BTreeSet<&str> = plans.iter().flat_map(show).map(|(k, _, _)| k).collect();
    assert_eq!(kinds, ["", "address", "file", "ipvs", "link", "module", "route", "sysctl", "unit"].into());
    assert!(plans.iter().flat_map(show).all(|(_, item, reason)| !item.is_empty() && !reason.is_empty()));
}

#[test]
fn parent_directories_stop_before_the_root() {
    assert_eq!(dir::parents("/etc/lvsctl/t/host.json"), ["/etc/lvsctl/t", "/etc/lvsctl", "/etc"]);
    assert_eq!(dir::parents("/host.json"), Vec::<String>::new());
}

/// Boot-time restore (`--runtime`) re-applies the kernel's state; files and units outlive a
/// reboot and are left out.
#[test]
fn the_runtime_scope_leaves_out_files_and_units() {
    let runtime: Vec<Stage> = STAGES.into_iter().filter(|s| s.in_scope(Scope::Runtime)).collect();
    let kernel: Vec<Stage> = STAGES.into_iter().filter(|s| !matches!(s, Stage::Files | Stage::Unit)).collect();
    assert_eq!(runtime, kernel);
    assert_eq!(runtime.len(), STAGES.len() - 2);
    assert!(STAGES.into_iter().all(|s| s.in_scope(Scope::All)));
}

/// The registry lists the kinds in the order they are applied, each stage has a kind, and each
/// kind its own journal tag.
#[test]
fn the_kinds_are_registered_in_stage_order_with_distinct_tags() {
    let position = |s: Stage| STAGES.iter().position(|x| *x == s).expect("a stage of STAGES");
    let order: Vec<usize> = super::REGISTERED.iter().map(|(_, s)| position(*s)).collect();
    assert!(order.is_sorted(), "{:?}", super::REGISTERED);
    assert!(STAGES.iter().all(|s| super::REGISTERED.iter().any(|(_, k)| k == s)), "a stage without a kind");
    let tags: std::collections::BTreeSet<&str> = super::REGISTERED.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags.len(), super::REGISTERED.len());
}

fn keepalived_plan() -> HostPlan {
    example_plans("dr-ha").into_iter().find(|p| p.keepalived.is_some()).expect("a director runs keepalived")
}

/// A keepalived recorded before its pid was known (lvsctl crashed between starting it and
/// recording it) is ours only if it started no earlier than lvsctl started one.
#[test]
fn a_keepalived_is_ours_only_if_it_started_after_lvsctl_started_one() {
    let p = keepalived_plan();
    let k = p.keepalived.as_ref().unwrap();
    let running = ProcFact { pid: 42, start_time: 1000, exe: "/usr/sbin/keepalived".into() };
    let live = Live {
        systemd: false,
        daemon: Some(Ok(daemon::DaemonFact {
            program: Some("/usr/sbin/keepalived".into()),
            running: Some(running),
            unit_active: false,
            config_sha256: Some("ab".repeat(32)),
        })),
        ..Live::default()
    };
    let recorded = |not_before: u64| {
        vec![Undo::Daemon(Box::new(daemon::Undo {
            name: daemon::KEEPALIVED.into(),
            config: k.config.clone(),
            loaded_sha256: "ab".repeat(32),
            how: daemon::How::Spawned { process: None, not_before, log: daemon::log_path(&p.lab) },
            added: vec![],
        }))]
    };
    for not_before in [999, 1000] {
        assert_eq!(
            decide(Stage::Daemon, &p, &live, &recorded(not_before), Intent::Apply),
            ["= daemon keepalived: runs the planned configuration (pid 42)"],
            "started at 1000, lvsctl started one at {not_before}"
        );
    }
    let got = decide(Stage::Daemon, &p, &live, &recorded(1001), Intent::Apply);
    assert!(got[0].starts_with("! daemon keepalived: keepalived already runs (pid 42)"), "{got:?}");
}

/// A journal names only keepalived with lvsctl's configuration and the lab's log: anything
/// else in it is refused before lvsctl signals a process.
#[test]
fn a_daemon_record_is_checked_before_it_is_trusted() {
    let good = daemon::Undo {
        name: daemon::KEEPALIVED.into(),
        config: crate::plan::keepalived::CONFIG.into(),
        loaded_sha256: String::new(),
        how: daemon::How::Systemd,
        added: vec![],
    };
    assert_eq!(daemon::check(&good, "t"), Ok(()));
    for bad in [
        daemon::Undo { name: "sshd".into(), ..good.clone() },
        daemon::Undo { config: "/etc/other.conf".into(), ..good.clone() },
        daemon::Undo {
            how: daemon::How::Spawned { process: None, not_before: 0, log: daemon::log_path("other") },
            ..good.clone()
        },
    ] {
        assert!(daemon::check(&bad, "t").is_err(), "{bad:?}");
    }
}

/// What a host reads for its decisions carries the session it runs in: the guard against
/// cutting the SSH session (above) depends on it.
#[test]
fn live_facts_carry_the_session() {
    let session = Session { ssh_peer: Some("192.0.2.7".parse().unwrap()), force: true };
    let live = Live::read(&mut crate::host::fake::Fake::new(), &Wants::default(), &session);
    assert_eq!(live.session, session);
}

/// An object changed twice in one journal keeps the first prior (what `down` must give back)
/// and the latest applied value.
#[test]
fn a_second_change_keeps_the_first_prior() {
    let m = |old: Undo, new: Undo| old.merge(new);
    let s = |prior: &str, applied: &str| {
        Undo::Sysctl(sysctl::Undo { key: "k".into(), prior: prior.into(), applied: applied.into() })
    };
    assert_eq!(m(s("0", "1"), s("1", "2")), s("0", "2"));
    let backup = |f: &str| Some(file::Backup { file: f.into(), mode: 0o644 });
    let f = |prior, sha: &str| Undo::File(file::Undo { path: "/p".into(), prior, applied_sha256: sha.into() });
    assert_eq!(m(f(backup("first"), "a"), f(None, "b")), f(backup("first"), "b"));
    let cfg = |w| DestConfig::plain(crate::ipvs::FWD_ROUTE, w);
    let d = |prior: Option<u32>, applied| {
        Undo::Dest(ipvs_dest::Undo {
            service: service_key(),
            key: dest_entry("10.0.0.81", 1).key,
            prior: prior.map(cfg),
            applied: cfg(applied),
        })
    };
    assert_eq!(m(d(Some(5), 1), d(Some(1), 2)), d(Some(5), 2));
    let sc = |sched: &str| ServiceConfig::persistent(sched, 0, None);
    let v = |prior: Option<&str>, applied| {
        Undo::Service(ipvs_service::Undo { key: service_key(), prior: prior.map(sc), applied: sc(applied) })
    };
    assert_eq!(m(v(Some("wlc"), "rr"), v(Some("rr"), "sh")), v(Some("wlc"), "sh"));
    let n = |prior: Option<nft::Objects>| Undo::Nft(nft::Undo { table: "t".into(), prior });
    assert_eq!(m(n(Some(nft::Objects::default())), n(None)), n(Some(nft::Objects::default())));
}

/// `verify --failover` starts again the keepalived it stopped: the new record is of a process
/// not yet known, started no earlier than now (the old process's record would match nothing).
#[test]
fn a_restarted_keepalived_is_recorded_afresh() {
    let p = keepalived_plan();
    let old = ProcFact { pid: 42, start_time: 1000, exe: "/usr/sbin/keepalived".into() };
    let u = daemon::Undo {
        name: daemon::KEEPALIVED.into(),
        config: p.keepalived.as_ref().unwrap().config.clone(),
        loaded_sha256: "ab".repeat(32),
        how: daemon::How::Spawned { process: Some(old), not_before: 1000, log: daemon::log_path(&p.lab) },
        added: vec![],
    };
    let live = Live {
        now_ticks: 5000,
        daemon: Some(Ok(daemon::DaemonFact {
            program: Some("/usr/sbin/keepalived".into()),
            running: None,
            unit_active: false,
            config_sha256: Some("ab".repeat(32)),
        })),
        ..Live::default()
    };
    let d = daemon::restart(&u, &p.lab, &live);
    assert_eq!(line(&d), "~ daemon keepalived: stopped -> running (started by lvsctl)");
    let fresh = daemon::How::Spawned { process: None, not_before: 5000, log: daemon::log_path(&p.lab) };
    assert_eq!(change(&d).record, Some(Undo::Daemon(Box::new(daemon::Undo { how: fresh, ..u.clone() }))));
}
