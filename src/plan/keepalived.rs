//! What keepalived runs on a director: VRRP instances for an HA pair (the VIPs and, in NAT, the
//! floating gateway), the connection sync daemon, and a virtual server for each service it
//! checks. Pure: from the validated lab to the spec the `keepalived.conf` template renders and the
//! daemon kind starts.

use ipnet::IpNet;

use crate::inventory::{Family, Host, Lab, Netmask, Service};

pub use crate::wire::plan::keepalived::*;

/// The VRRP instance names of a lab (keepalived takes any word).
fn instance_name(lab: &str, what: &str) -> String {
    format!("{lab}-{what}")
}

/// The spec for director `host`, or None when the lab does not run keepalived.
pub fn spec(lab: &Lab, host: &Host) -> Option<KeepalivedSpec> {
    if !lab.uses_keepalived() {
        return None;
    }
    let mut instances: Vec<VrrpInstance> = Vec::new();
    let peer = lab.directors().find(|d| d.name != host.name);
    if let (Some(ha), Some(peer)) = (&lab.ha, peer) {
        // The addresses keepalived moves, per interface, in the lab's order.
        let mut per_dev: Vec<(String, Vec<VrrpAddress>)> = Vec::new();
        let mut add = |dev: &str, address: IpNet, what: String, deprecated: bool| {
            let i = match per_dev.iter().position(|(d, _)| d == dev) {
                Some(i) => i,
                None => {
                    per_dev.push((dev.to_string(), vec![]));
                    per_dev.len() - 1
                }
            };
            if !per_dev[i].1.iter().any(|a| a.address == address) {
                per_dev[i].1.push(VrrpAddress { address, dev: dev.to_string(), what, deprecated, excluded: false });
            }
        };
        for vip in lab.vips() {
            let (dev, _) = host.interface_for(vip).expect("validated: the VIP is on both directors' subnet");
            let users: Vec<String> =
                lab.services.iter().filter(|x| x.vips().contains(&vip)).map(|x| x.label()).collect();
            let deprecated = vip.is_ipv6()
                && lab.services.iter().any(|x| x.vips().contains(&vip) && x.profile().ipv6.director_vip_deprecated);
            add(dev, IpNet::from(vip), format!("VIP of {}", users.join(", ")), deprecated);
        }
        for &fg in &ha.floating_gateway {
            let (dev, _) = host.interface_for(fg.addr()).expect("validated: on the real-server subnet");
            add(dev, fg, "the real servers' gateway".into(), false);
        }
        // One VRRP instance per interface: its adverts are IPv4 when it moves any IPv4 address
        // (LAB-eth0), else IPv6 (LAB-eth0-6, VRRP version 3). An advert names addresses of its
        // own family only; those of the other family go in `virtual_ipaddress_excluded`, held
        // and moved by the same instance. One instance cannot split its addresses between the
        // directors, as two instances of a sync group can when both directors time out together
        // (seen with keepalived 2.2.7 in lvsctl's loaded test guest: the backup kept the IPv6
        // VIP of the group it had synced back to BACKUP).
        for (dev, mut addresses) in per_dev {
            let v6 = addresses.iter().all(|a| a.address.addr().is_ipv6());
            for a in &mut addresses {
                a.excluded = a.address.addr().is_ipv6() != v6;
            }
            let advertised = addresses.iter().find(|a| !a.excluded).expect("one address of the instance's family");
            let unicast = ha.unicast.then(|| {
                let own = host.interface_for(advertised.address.addr()).map(|(_, a)| a.addr());
                let theirs = peer.interface_for(advertised.address.addr()).map(|(_, a)| a.addr());
                (own.expect("validated"), theirs.expect("validated"))
            });
            instances.push(VrrpInstance {
                name: instance_name(&lab.name, &if v6 { format!("{dev}-6") } else { dev.clone() }),
                interface: dev,
                virtual_router_id: ha.virtual_router_id,
                priority: host.priority.expect("validated"),
                advert_interval: ha.advert_interval,
                preempt: ha.preempt,
                unicast,
                addresses,
            });
        }
    }
    let sync_group = (instances.len() > 1).then(|| instance_name(&lab.name, "group"));
    let sync_daemon = match (&lab.ha, instances.first()) {
        (Some(ha), Some(i)) if ha.sync => Some((i.interface.clone(), i.name.clone())),
        _ => None,
    };
    let virtual_servers =
        lab.services.iter().filter(|s| s.keepalived_managed()).enumerate().map(|(i, s)| virtual_server(i, s)).collect();
    let reason = if lab.ha.is_some() {
        "keepalived: VRRP between the two directors, and the checks of the real servers".to_string()
    } else {
        "keepalived: checks the real servers and keeps the IPVS table in step".to_string()
    };
    Some(KeepalivedSpec {
        config: CONFIG.to_string(),
        router_id: host.name.clone(),
        sync_daemon,
        instances,
        sync_group,
        virtual_servers,
        reason,
    })
}

fn virtual_server(index: usize, s: &Service) -> KaVirtualServer {
    // A firewall-mark service's real servers have no port of their own: the check goes to the
    // port the inventory names, or to the first port its rules mark.
    let first_port = s.matches.iter().flat_map(|m| m.ports.first()).next().copied();
    let check = s.health_check.as_ref().map(|hc| KaCheck {
        kind: hc.kind.clone(),
        timeout: hc.timeout,
        retries: hc.retries,
        port: hc.port.or(first_port),
    });
    KaVirtualServer {
        label: s.label(),
        name: s.name.clone(),
        protocol: s.ipvs.protocol,
        vip: s.ipvs.vip,
        port: s.ipvs.port,
        fwmark: s.ipvs.fwmark,
        ipv6: s.family() == Family::Ipv6,
        scheduler: s.ipvs.scheduler.clone(),
        scheduler_flags: s.ipvs.scheduler_flags.iter().map(|f| f.as_str().to_string()).collect(),
        one_packet: s.ipvs.one_packet,
        forward: s.profile().forward,
        tun_options: s.encap.keepalived_words(),
        persistence: s.ipvs.persistence,
        netmask: s.ipvs.netmask.filter(|m| *m != Netmask::host(s.family() == Family::Ipv6)),
        interval: s.health_check.as_ref().map_or(crate::inventory::services::DEFAULT_CHECK_INTERVAL, |h| h.interval),
        quiesce: s.on_failure == crate::inventory::OnFailure::Quiesce,
        sorry_server: s.sorry_server.as_ref().map(|x| (x.address, x.port)),
        sorry_host: s.sorry_server.as_ref().and_then(|x| x.host.clone()),
        real_servers: s
            .real_servers
            .iter()
            .enumerate()
            .map(|(j, b)| KaRealServer {
                host: b.host.clone(),
                address: b.address,
                port: b.port,
                weight: b.weight,
                weight_param: crate::plan::keepalived::weight_param(index, j),
                u_threshold: b.u_threshold,
                l_threshold: b.l_threshold,
                check: check.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(inv: &str) -> Lab {
        crate::inventory::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(inv)).unwrap()
    }

    #[test]
    fn a_nat_pair_moves_the_vip_and_the_floating_gateway_together() {
        let l = lab("inventories/nat-ha.toml");
        let k = spec(&l, l.host("lvs2").unwrap()).unwrap();
        let names: Vec<(&str, &str)> = k.instances.iter().map(|i| (i.name.as_str(), i.interface.as_str())).collect();
        // One instance per interface, in one sync group: the VIPs and the gateways move together.
        assert_eq!(names, [("nat-ha-eth0", "eth0"), ("nat-ha-eth1", "eth1")]);
        assert_eq!(k.sync_group.as_deref(), Some("nat-ha-group"));
        assert!(k.instances.iter().all(|i| i.priority == 100 && i.virtual_router_id == 52));
        let gateways: Vec<(String, bool)> =
            k.instances[1].addresses.iter().map(|a| (a.address.to_string(), a.excluded)).collect();
        assert_eq!(gateways, [("10.10.0.1/24".to_string(), false), ("fd00:10::1/64".to_string(), true)]);
        assert_eq!(k.sync_daemon, Some(("eth0".into(), "nat-ha-eth0".into())));
        let vs = &k.virtual_servers[0];
        assert!(vs.quiesce && vs.lb_kind() == "NAT");
        assert_eq!(vs.sorry_server, Some(("10.10.0.90".parse().unwrap(), 80)));
    }

    #[test]
    fn unicast_vrrp_names_the_peer() {
        let l = lab("inventories/tun-ha.toml");
        let k = spec(&l, l.host("lvs1").unwrap()).unwrap();
        let i = &k.instances[0];
        assert_eq!(i.unicast, Some(("192.168.188.8".parse().unwrap(), "192.168.188.9".parse().unwrap())));
        assert!(!i.preempt);
        // The IPv6 VIPs move with the IPv4 instance (excluded from its adverts): one instance,
        // no sync group.
        assert_eq!(k.instances.len(), 1);
        assert!(i.addresses.iter().all(|a| a.excluded == a.address.addr().is_ipv6()), "{:?}", i.addresses);
        assert!(i.addresses.iter().any(|a| a.excluded));
        assert_eq!(k.sync_group, None);
    }

    /// An interface with IPv6 addresses only: its instance advertises over IPv6 (VRRP version 3)
    /// and speaks unicast to the peer's IPv6 address.
    #[test]
    fn an_ipv6_only_interface_has_an_ipv6_instance() {
        let mut l = lab("inventories/tun-ha.toml");
        l.services.retain(|s| s.ipvs.vip.is_ipv6());
        for s in &mut l.services {
            s.matches.retain(|m| m.vip.is_ipv6());
        }
        assert!(!l.services.is_empty() && l.vips().iter().all(|v| v.is_ipv6()));
        let k = spec(&l, l.host("lvs1").unwrap()).unwrap();
        let names: Vec<&str> = k.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["tun-ha-eth0-6"]);
        let i = &k.instances[0];
        assert!(i.addresses.iter().all(|a| !a.excluded && a.address.addr().is_ipv6()));
        assert_eq!(i.unicast, Some(("2001:db8:188::8".parse().unwrap(), "2001:db8:188::9".parse().unwrap())));
    }

    /// A checked firewall-mark service: one `virtual_server fwmark` per family, real servers
    /// without a port, checked on the first port the rules mark.
    #[test]
    fn a_checked_firewall_mark_service_is_a_fwmark_virtual_server_per_family() {
        let l = lab("inventories/tun-ha.toml");
        let k = spec(&l, l.host("lvs1").unwrap()).unwrap();
        let marks: Vec<(Option<u32>, bool)> = k.virtual_servers.iter().map(|v| (v.fwmark, v.ipv6)).collect();
        assert_eq!(marks, [(None, false), (Some(20), false), (Some(20), true)]);
        for vs in &k.virtual_servers[1..] {
            assert!(vs.real_servers.iter().all(|r| r.port == 0 && r.check.as_ref().unwrap().port == Some(80)));
        }
        assert!(k.virtual_servers[2].real_servers[0].address.is_ipv6());
        let deprecated: Vec<String> = k
            .instances
            .iter()
            .flat_map(|i| &i.addresses)
            .filter(|a| a.deprecated)
            .map(|a| a.address.to_string())
            .collect();
        assert_eq!(deprecated, ["2001:db8:188::101/128"], "TUN's IPv6 VIP is never the director's source");
    }

    #[test]
    fn keepalived_owns_what_it_manages_and_nothing_else() {
        let l = lab("inventories/dr-ha.toml");
        let templates = crate::templates::Templates::embedded();
        let ctx = crate::plan::Context { agent_path: "/a".into(), templates: &templates };
        let p = crate::plan::plan_host(&l, l.host("lvs1").unwrap(), &ctx).unwrap();
        assert!(p.ipvs.is_empty(), "the checked service is keepalived's");
        assert!(!p.addresses.iter().any(|a| a.address.prefix_len() == 32), "VRRP holds the VIP: {:?}", p.addresses);
        assert!(p.files.iter().any(|f| f.path == CONFIG && f.check == Some(crate::plan::FileCheck::Keepalived)));
        // A lab without keepalived gets none.
        let plain = lab("inventories/dr.toml");
        assert!(spec(&plain, plain.director().unwrap()).is_none());
    }
}
