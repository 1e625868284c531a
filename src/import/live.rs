//! Live hosts read into a [`Setup`] (`lvsctl import --from-host`): the director's IPVS table,
//! addresses, gateway and `net.ipv4.vs.*` settings, and the real servers asked for with their
//! addresses and gateways, each as the kernel has it — so that `lvsctl up` of the result changes
//! no kernel object of what was read. Pure: the facts each host's agent reported in, the setup
//! out.

use std::net::IpAddr;

use super::model::{Dest, KnownHost, Loc, Service, Setup, Timeouts, valid_name};
use crate::agent::facts::HostFacts;
use crate::ipvs::{
    FWD_MASQ, FWD_ROUTE, FWD_TUNNEL, Forward, SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2,
};

/// One host as read: how it was reached (`[user@]HOST` as given) and what its agent reported.
pub struct Live {
    pub ssh: String,
    pub facts: HostFacts,
}

impl Live {
    /// The host part of `[user@]HOST`.
    pub fn host(&self) -> &str {
        self.ssh.rsplit_once('@').map_or(self.ssh.as_str(), |(_, h)| h)
    }
}

/// The kernel's IPVS timeouts when nobody set them (tcp, tcp_fin, udp).
const KERNEL_TIMEOUTS: (u32, u32, u32) = (900, 120, 300);

/// The `net.ipv4.vs.*` settings the import reads (names without the prefix) — each of the
/// inventory's `[ipvs] sysctl` keys.
pub fn ipvs_sysctl_names() -> Vec<String> {
    crate::inventory::keys::IPVS_SETTINGS.iter().map(|s| format!("net.ipv4.vs.{}", s.name)).collect()
}

/// The host's name: its hostname where that is a valid name, else `fallback`.
fn name_of(l: &Live, fallback: &str, taken: &[String]) -> String {
    let hostname = l.facts.sysctls.get("kernel.hostname").and_then(|h| valid_name(h.split('.').next().unwrap_or(h)));
    match hostname {
        Some(n) if !taken.contains(&n) => n,
        _ => {
            let mut n = fallback.to_string();
            let mut k = 1;
            while taken.contains(&n) {
                k += 1;
                n = format!("{fallback}{k}");
            }
            n
        }
    }
}

/// Interfaces with their global addresses (loopback and link-local left out: the kernel makes
/// them), in the order the host lists its links.
fn interfaces(f: &HostFacts) -> Vec<(String, Vec<ipnet::IpNet>)> {
    let mut out: Vec<(String, Vec<ipnet::IpNet>)> = Vec::new();
    for (dev, _) in &f.links {
        if dev == "lo" {
            continue;
        }
        let addrs: Vec<ipnet::IpNet> = f
            .addresses
            .iter()
            .filter(|a| &a.dev == dev)
            .map(|a| a.address)
            .filter(|n| match n.addr() {
                IpAddr::V4(v) => !v.is_loopback() && !v.is_link_local(),
                IpAddr::V6(v) => !v.is_loopback() && (v.segments()[0] & 0xffc0) != 0xfe80,
            })
            .collect();
        if !addrs.is_empty() {
            out.push((dev.clone(), addrs));
        }
    }
    out
}

fn gateways(f: &HostFacts) -> Vec<IpAddr> {
    [false, true].into_iter().filter_map(|six| f.default_route_of(six).and_then(|r| r.gateway)).collect()
}

/// The setup the director and the real servers describe (`source` names the director in notes).
pub fn setup(director: &Live, real_servers: &[Live]) -> Setup {
    let mut s = Setup::default();
    let at = |_: usize| Loc { file: director.ssh.clone(), line: 0 };
    let f = &director.facts;
    let mut taken: Vec<String> = vec!["client".into(), "router".into()];
    let dname = name_of(director, "lvs", &taken);
    taken.push(dname.clone());
    s.director = Some(dname.clone());
    s.known.push(KnownHost {
        name: dname,
        role: "director",
        ssh: director.host().to_string(),
        interfaces: interfaces(f),
        gateways: gateways(f),
    });
    match &f.ipvs {
        None => s.note(&at(0), "IPVS is not loaded: the host runs no virtual service"),
        Some(table) => {
            for (i, svc) in table.iter().enumerate() {
                let c = &svc.entry.config;
                let mut x = Service::new(at(i + 1), svc.entry.key);
                x.scheduler = c.scheduler.clone();
                for (bit, name) in [(SVC_F_SCHED1, "fallback"), (SVC_F_SCHED2, "port")] {
                    if c.flags & bit != 0 {
                        match c.scheduler.as_str() {
                            "sh" | "mh" => x.flags.push(format!("{}-{name}", c.scheduler)),
                            other => s.notes.push(super::model::Note {
                                at: at(i + 1),
                                text: format!(
                                    "{}: scheduler flag {name} of {other}, which an inventory does not take",
                                    svc.entry.key
                                ),
                            }),
                        }
                    }
                }
                if c.flags & SVC_F_PERSISTENT != 0 {
                    x.persistence = c.timeout;
                    x.netmask = Some(c.netmask);
                }
                x.one_packet = c.flags & SVC_F_ONEPACKET != 0;
                for d in &svc.dests {
                    let forward = match d.config.fwd {
                        FWD_MASQ => Forward::Masq,
                        FWD_ROUTE => Forward::Route,
                        FWD_TUNNEL => Forward::Tunnel,
                        other => {
                            s.notes.push(super::model::Note {
                                at: at(i + 1),
                                text: format!("real server {}: forwarding method {other} (local), which an inventory does not take", d.key),
                            });
                            continue;
                        }
                    };
                    x.dests.push(Dest {
                        at: at(i + 1),
                        address: d.key.addr,
                        port: d.key.port,
                        forward,
                        weight: d.config.weight,
                        u_threshold: d.config.u_threshold,
                        l_threshold: d.config.l_threshold,
                        encap: d.config.encap().unwrap_or_default(),
                    });
                }
                // The kernel lists a service's destinations newest first: by address reads better.
                x.dests.sort_by_key(|d| (d.address, d.port));
                s.services.push(x);
            }
        }
    }
    if let Some(t) = f.ipvs_timeouts
        && (t.tcp, t.tcp_fin, t.udp) != KERNEL_TIMEOUTS
    {
        s.timeouts = Some(Timeouts { tcp: Some(t.tcp), tcp_fin: Some(t.tcp_fin), udp: Some(t.udp) });
    }
    // The vs settings as they are where `up` would set them otherwise (the ones lvsctl derives)
    // or where they are not the kernel's own.
    let persistent = s.services.iter().any(|x| x.persistence > 0);
    for setting in crate::inventory::keys::IPVS_SETTINGS {
        let Some(v) =
            f.sysctls.get(&format!("net.ipv4.vs.{}", setting.name)).and_then(|v| v.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let derived = match setting.name {
            "expire_nodest_conn" => Some(1),
            "expire_quiescent_template" if persistent => Some(1),
            _ => None,
        };
        if derived.map_or(v as i128 != setting.kernel, |d| d != v) {
            s.ipvs_sysctls.push((setting.name.to_string(), v));
        }
    }
    // The real servers asked for: named by their hostnames, each address they serve by it.
    for l in real_servers {
        let name = name_of(l, "rs", &taken);
        taken.push(name.clone());
        let own: Vec<IpAddr> = l.facts.addresses.iter().map(|a| a.address.addr()).collect();
        for d in s.services.iter().flat_map(|x| &x.dests) {
            if own.contains(&d.address) {
                s.names.insert(d.address, name.clone());
            }
        }
        if !s.names.values().any(|n| n == &name) {
            s.note(&Loc { file: l.ssh.clone(), line: 0 }, "serves none of the director's services: left out");
            continue;
        }
        // A DR or TUN real server holds the VIPs itself (on lo or tunl0): lvsctl puts them there.
        let vips: Vec<IpAddr> = s
            .services
            .iter()
            .filter_map(|x| match x.key {
                crate::ipvs::ServiceKey::Addr { addr, .. } => Some(addr),
                crate::ipvs::ServiceKey::Mark { .. } => None,
            })
            .collect();
        let ifs: Vec<(String, Vec<ipnet::IpNet>)> = interfaces(&l.facts)
            .into_iter()
            .filter(|(dev, _)| dev != "tunl0")
            .map(|(dev, a)| (dev, a.into_iter().filter(|n| !vips.contains(&n.addr())).collect::<Vec<_>>()))
            .filter(|(_, a)| !a.is_empty())
            .collect();
        s.known.push(KnownHost {
            name,
            role: "real-server",
            ssh: l.host().to_string(),
            interfaces: ifs,
            gateways: gateways(&l.facts),
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::agent::facts::FactsRequest;
    use crate::agent::protocol::{Answer, Operation, Request};
    use crate::agent::{handle, paths_under};
    use crate::host::fake::Fake;
    use crate::plan::HostPlan;

    fn plans_of(lab: &crate::inventory::Lab) -> Vec<HostPlan> {
        let t = crate::templates::Templates::embedded();
        crate::plan::plan(lab, &crate::plan::Context { agent_path: "/a".into(), templates: &t }).unwrap()
    }

    /// A fake host with `plan` applied.
    fn applied(plan: &HostPlan, root: &Path) -> Fake {
        let mut sys = Fake::new();
        for a in &plan.addresses {
            sys.state.links.entry(a.dev.clone()).or_insert(false);
        }
        // What the kernel makes when a module loads (tunl0 with ipip): there before, on the fake.
        for k in &plan.sysctls {
            sys.state.sysctls.entry(k.key.clone()).or_insert_with(|| "0".into());
        }
        sys.state.sysctls.insert("kernel.hostname".into(), plan.host.clone());
        for setting in crate::inventory::keys::IPVS_SETTINGS {
            sys.state.sysctls.insert(format!("net.ipv4.vs.{}", setting.name), setting.kernel.to_string());
        }
        let mut plan = plan.clone();
        for f in &mut plan.files {
            f.path = root.join(f.path.trim_start_matches('/')).to_string_lossy().into_owned();
        }
        let mut failed = Vec::new();
        let mut keep = |e: crate::agent::protocol::Event| {
            if let crate::agent::protocol::Event::Change(c) = e
                && c.error.is_some()
            {
                failed.push(format!("{}: {:?}", c.object, c.error));
            }
        };
        let r = handle(
            &mut sys,
            &paths_under(root),
            Request::new(&plan.lab, &plan.host, Operation::apply(plan.clone())),
            &mut keep,
        );
        assert!(r.errors.is_empty() && r.failed == 0, "{}: {:?} {failed:?}", plan.host, r.errors);
        sys
    }

    /// A host read as `import --from-host` reads it.
    fn read(sys: &mut Fake, host: &str, root: &Path) -> HostFacts {
        let mut sysctls = ipvs_sysctl_names();
        sysctls.push("kernel.hostname".into());
        let facts = FactsRequest { sysctls, ipvs_timeouts: true, ..Default::default() };
        let r = handle(
            sys,
            &paths_under(root),
            Request::new("import", host, Operation::Facts { plan: None, facts }),
            &mut |_| {},
        );
        match r.answer {
            Some(Answer::Facts(f)) => *f,
            other => panic!("{host}: no facts: {other:?} {:?}", r.errors),
        }
    }

    fn applied_and_read(plan: &HostPlan, root: &Path) -> HostFacts {
        read(&mut applied(plan, root), &plan.host, root)
    }

    /// The kernel objects of a plan, reasons aside: what `up` makes a host hold.
    fn kernel_objects(p: &HostPlan) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        v.extend(p.sysctls.iter().map(|s| format!("sysctl {}={}", s.key, s.value)));
        v.extend(p.addresses.iter().map(|a| format!("address {} dev {}", a.address, a.dev)));
        v.extend(p.routes.iter().map(|r| format!("route {} via {:?} dev {:?}", r.destination, r.gateway, r.dev)));
        for s in &p.ipvs {
            v.push(format!("ipvs {:?}", s.ipvs));
            v.extend(s.destinations.iter().map(|d| {
                format!(
                    "dest {} {} {:?} {} {} {}",
                    d.address, d.port, d.forward, d.weight, d.u_threshold, d.l_threshold
                )
            }));
        }
        v.sort();
        v
    }

    /// A lab built by `up` (on fake hosts), read back host by host: the imported inventory's plan
    /// for the director and for each real server holds the same kernel objects as the original's.
    #[test]
    fn hosts_up_made_read_back_plan_the_same_kernel_objects() {
        for inv in ["inventories/dr.toml", "inventories/nat.toml", "inventories/tun.toml", "inventories/dr6.toml"] {
            let lab = crate::inventory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(inv)).unwrap();
            let plans = plans_of(&lab);
            let root = tempfile::tempdir().unwrap();
            let read = |name: &str| {
                let p = plans.iter().find(|p| p.host == name).unwrap();
                Live { ssh: format!("root@{name}"), facts: applied_and_read(p, &root.path().join(name)) }
            };
            let director = read("lvs");
            let rs: Vec<Live> =
                plans.iter().filter(|p| p.role == crate::inventory::Role::RealServer).map(|p| read(&p.host)).collect();
            let setup = setup(&director, &rs);
            assert!(setup.notes.is_empty(), "{inv}: {:?}", setup.notes);
            let imported = crate::import::inventory::inventory(&setup, "again", "test", false).unwrap();
            assert!(!imported.text.contains("# CHANGE:"), "{inv}: hosts read live need no change:\n{}", imported.text);
            let again = crate::inventory::parse_str(Path::new("again.toml"), &imported.text)
                .unwrap_or_else(|d| panic!("{inv}: invalid:\n{d}\n{}", imported.text));
            let again_plans = plans_of(&again);
            for p in plans
                .iter()
                .filter(|p| p.role != crate::inventory::Role::Client && p.role != crate::inventory::Role::Router)
            {
                let q = again_plans
                    .iter()
                    .find(|q| q.host == p.host)
                    .unwrap_or_else(|| panic!("{inv}: no {} in\n{}", p.host, imported.text));
                assert_eq!(kernel_objects(q), kernel_objects(p), "{inv}: {}:\n{}", p.host, imported.text);
            }
        }
    }
    /// A VIP a hand-made director holds with another prefix than lvsctl's /32 is kept as it is:
    /// the imported inventory lists it on its interface, so up adds no /32 beside it.
    #[test]
    fn a_vip_with_its_own_prefix_is_kept_as_it_is() {
        let lab = crate::inventory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/dr.toml")).unwrap();
        let plans = plans_of(&lab);
        let root = tempfile::tempdir().unwrap();
        let mut sys = applied(plans.iter().find(|p| p.host == "lvs").unwrap(), root.path());
        for a in sys.state.addresses.iter_mut().filter(|a| a.address.addr().to_string() == "192.168.188.100") {
            a.address = "192.168.188.100/24".parse().unwrap();
        }
        let director = Live { ssh: "lvs".into(), facts: read(&mut sys, "lvs", root.path()) };
        let imported = crate::import::inventory::inventory(&setup(&director, &[]), "again", "test", false).unwrap();
        let again = crate::inventory::parse_str(Path::new("again.toml"), &imported.text)
            .unwrap_or_else(|d| panic!("invalid:\n{d}\n{}", imported.text));
        let p = plans_of(&again).into_iter().find(|p| p.host == "lvs").unwrap();
        let vip: Vec<String> = p
            .addresses
            .iter()
            .filter(|a| a.address.addr().to_string() == "192.168.188.100")
            .map(|a| format!("{} dev {}", a.address, a.dev))
            .collect();
        assert_eq!(vip, ["192.168.188.100/24 dev eth0"], "{}", imported.text);
    }
}
