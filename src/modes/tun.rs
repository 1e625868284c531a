//! TUN (IP-in-IP, `ipvsadm -i`): the director encapsulates each packet to the real server, which
//! may be behind routers; the real server decapsulates it on tunl0 and answers clients directly.

use super::{Gateway, Ipv6, Mode, Profile, RealServer, RealServer6, Rewrite, VipOn, Walk};
use crate::ipvs::Forward;

pub const PROFILE: Profile = Profile {
    mode: Mode::Tun,
    forward: Forward::Tunnel,
    director_sysctls: &[],
    port_mapping: false,
    real_server: RealServer {
        gateway: Gateway::Any,
        // Tunnelled packets cross routers: the real server only needs an address the director
        // can route to.
        same_l2: false,
        modules: &[("ipip", "decapsulates the director's IP-in-IP packets (creates tunl0)")],
        sysctls: &[
            ("all", "arp_ignore", "1", super::dr::WHY_IGNORE),
            ("all", "arp_announce", "2", super::dr::WHY_ANNOUNCE),
            ("tunl0", "arp_ignore", "1", "answer ARP only for addresses on the asking interface"),
            ("tunl0", "arp_announce", "2", "never use the VIP as ARP source address"),
            // Decapsulated packets arrive on tunl0 with the client's source address, which routes
            // via another interface: reverse-path filtering would drop them. The effective value
            // is the max of `all` and the interface, so both must be 0.
            ("tunl0", "rp_filter", "0", "decapsulated packets from clients arrive on tunl0: no reverse-path filter"),
            ("all", "rp_filter", "0", "the effective rp_filter of tunl0 is the max of `all` and tunl0"),
        ],
        links_up: &[("tunl0", "receives the director's IP-in-IP packets")],
        // doctor: vip-missing, vip-on-interface
        vip: Some(VipOn {
            dev: "tunl0",
            reason: "TUN: accept decapsulated packets for VIP {vip}",
            why: "TUN real servers hold the VIP on tunl0, where the director's IP-in-IP packets are decapsulated",
        }),
        // doctor: arp-ignore, arp-announce on every data interface
        quiet_arp: true,
        // doctor: ipip-missing, tunl0-down, tun-rp-filter
        decapsulates: true,
    },
    clients_off_real_server_subnets: false,
    ipv6: Ipv6 {
        director_sysctls: &[],
        // Checked: with the VIP usable as a source, the kernel picked it as the outer source of
        // the IPv6-in-IPv6 packets, and the real servers (which hold it too) dropped them all.
        director_vip_deprecated: true,
        real_server: RealServer6 {
            modules: &[("ip6_tunnel", "decapsulates the director's IPv6-in-IPv6 packets (creates ip6tnl0)")],
            links_up: &[("ip6tnl0", "receives the director's IPv6-in-IPv6 packets")],
            vip: Some(VipOn {
                dev: "ip6tnl0",
                reason: "TUN: accept decapsulated packets for VIP {vip}",
                why: "TUN real servers hold the IPv6 VIP on ip6tnl0, where the director's IPv6-in-IPv6 packets are decapsulated",
            }),
        },
    },
    walk: Walk {
        director_does: Rewrite::Encapsulate,
        reply_through_director: false,
        why: "in TUN the director wraps the packet in an outer header to the real server, which unwraps it (the VIP is on its tunnel device) and answers the client directly, never through the director",
    },
};
