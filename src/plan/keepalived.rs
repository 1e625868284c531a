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
        // keepalived runs one VRRP instance per interface and family (an instance's addresses
        // are all of one family): LAB-eth0, and LAB-eth0-6 for IPv6.
        let mut add = |dev: &str, address: IpNet, what: String, deprecated: bool| {
            let v6 = address.addr().is_ipv6();
            let name = instance_name(&lab.name, &if v6 { format!("{dev}-6") } else { dev.to_string() });
            let i = match instances.iter_mut().position(|i| i.name == name) {
                Some(i) => i,
                None => {
                    let unicast = ha.unicast.then(|| {
                        let own = host.interface_for(address.addr()).map(|(_, a)| a.addr());
                        let theirs = peer.interface_for(address.addr()).map(|(_, a)| a.addr());
                        (own.expect("validated"), theirs.expect("validated"))
                    });
                    instances.push(VrrpInstance {
                        name,
                        interface: dev.to_string(),
                        virtual_router_id: ha.virtual_router_id,
                        priority: host.priority.expect("validated"),
                        advert_interval: ha.advert_interval,
                        preempt: ha.preempt,
                        unicast,
                        addresses: vec![],
                    });
                    instances.len() - 1
                }
            };
            if !instances[i].addresses.iter().any(|a| a.address == address) {
                instances[i].addresses.push(VrrpAddress { address, dev: dev.to_string(), what, deprecated });
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
        assert_eq!(
            names,
            [("nat-ha-eth0", "eth0"), ("nat-ha-eth0-6", "eth0"), ("nat-ha-eth1", "eth1"), ("nat-ha-eth1-6", "eth1")]
        );
        assert_eq!(k.sync_group.as_deref(), Some("nat-ha-group"));
        assert!(k.instances.iter().all(|i| i.priority == 100 && i.virtual_router_id == 52));
        assert_eq!(k.instances[2].addresses[0].address.to_string(), "10.10.0.1/24");
        assert_eq!(k.instances[3].addresses[0].address.to_string(), "fd00:10::1/64");
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
        // The IPv6 instance speaks to the peer's IPv6 address; both move together.
        let i6 = &k.instances[1];
        assert_eq!(i6.unicast, Some(("2001:db8:188::8".parse().unwrap(), "2001:db8:188::9".parse().unwrap())));
        assert_eq!(k.sync_group.as_deref(), Some("tun-ha-group"));
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
