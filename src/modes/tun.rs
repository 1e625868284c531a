//! TUN (IP-in-IP, `ipvsadm -i`): the director encapsulates each packet to the real server, which
//! may be behind routers; the real server decapsulates it on tunl0 and answers clients directly.

use super::{Decap, Gateway, Ipv6, Mode, Profile, RealServer, RealServer6, Rewrite, VipOn, Walk};
use crate::ipvs::Forward;

pub const PROFILE: Profile = Profile {
    mode: Mode::Tun,
    name: "tun",
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
        decap: Some(IPIP),
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
            decap: Some(IP6IP6),
        },
    },
    walk: Walk {
        director_does: Rewrite::Encapsulate,
        reply_through_director: false,
        why: "in TUN the director wraps the packet in an outer header to the real server, which unwraps it (the VIP is on its tunnel device) and answers the client directly, never through the director",
    },
};

const IPIP: Decap =
    Decap { module: "ipip", dev: "tunl0", what: "IP-in-IP", missing_code: "ipip-missing", down_code: "tunl0-down" };

const IP6IP6: Decap = Decap {
    module: "ip6_tunnel",
    dev: "ip6tnl0",
    what: "IPv6-in-IPv6",
    missing_code: "ip6-tunnel-missing",
    down_code: "ip6tnl0-down",
};

/// TUN over GUE (`tun_type = "gue"`): the director sends each packet in UDP to the service's
/// `tun_port`; the real server's GUE port (fou, one per port, planned per service) unwraps the
/// UDP and hands the IP-in-IP packet inside to ipip's tunl0, where the VIP is. Checked on 6.1:
/// everything IP-in-IP needs, plus fou and the port.
pub const GUE: Profile = Profile {
    name: "tun-gue",
    real_server: RealServer {
        modules: &[
            ("ipip", "receives the IP-in-IP packets GUE carries (creates tunl0)"),
            ("fou", "opens the GUE port that unwraps the director's UDP packets"),
        ],
        ..PROFILE.real_server
    },
    ipv6: Ipv6 {
        real_server: RealServer6 {
            modules: &[
                ("ip6_tunnel", "receives the IPv6-in-IPv6 packets GUE carries (creates ip6tnl0)"),
                ("fou6", "GUE over IPv6"),
            ],
            ..PROFILE.ipv6.real_server
        },
        ..PROFILE.ipv6
    },
    walk: Walk {
        why: "in TUN over GUE the director wraps the packet in an outer IP and UDP header to the real server's GUE port, which unwraps it (the VIP is on its tunnel device) and answers the client directly, never through the director",
        ..PROFILE.walk
    },
    ..PROFILE
};

const GRE4: Decap =
    Decap { module: "ip_gre", dev: "gre0", what: "GRE", missing_code: "gre-missing", down_code: "gre0-down" };

const GRE6: Decap = Decap {
    module: "ip6_gre",
    dev: "ip6gre0",
    what: "GRE over IPv6",
    missing_code: "ip6-gre-missing",
    down_code: "ip6gre0-down",
};

/// TUN over GRE (`tun_type = "gre"`): the real server receives on ip_gre's gre0 (no ipip, no
/// tunl0), where it holds the VIP; checked on 6.1. gre0 takes GRE without a checksum only
/// (inventory refuses tun_checksum for GRE).
pub const GRE: Profile = Profile {
    name: "tun-gre",
    real_server: RealServer {
        modules: &[("ip_gre", "decapsulates the director's GRE packets (creates gre0)")],
        sysctls: &[
            ("all", "arp_ignore", "1", super::dr::WHY_IGNORE),
            ("all", "arp_announce", "2", super::dr::WHY_ANNOUNCE),
            ("gre0", "rp_filter", "0", "decapsulated packets from clients arrive on gre0: no reverse-path filter"),
            ("all", "rp_filter", "0", "the effective rp_filter of gre0 is the max of `all` and gre0"),
        ],
        links_up: &[("gre0", "receives the director's GRE packets")],
        vip: Some(VipOn {
            dev: "gre0",
            reason: "TUN over GRE: accept decapsulated packets for VIP {vip}",
            why: "TUN real servers of a GRE service hold the VIP on gre0, where the director's GRE packets are decapsulated",
        }),
        decap: Some(GRE4),
        ..PROFILE.real_server
    },
    ipv6: Ipv6 {
        real_server: RealServer6 {
            modules: &[("ip6_gre", "decapsulates the director's GRE packets over IPv6 (creates ip6gre0)")],
            links_up: &[("ip6gre0", "receives the director's GRE packets over IPv6")],
            vip: Some(VipOn {
                dev: "ip6gre0",
                reason: "TUN over GRE: accept decapsulated packets for VIP {vip}",
                why: "TUN real servers of a GRE service hold the IPv6 VIP on ip6gre0, where the director's GRE packets are decapsulated",
            }),
            decap: Some(GRE6),
        },
        ..PROFILE.ipv6
    },
    walk: Walk {
        why: "in TUN over GRE the director wraps the packet in an outer IP and GRE header to the real server, which unwraps it on gre0 (where the VIP is) and answers the client directly, never through the director",
        ..PROFILE.walk
    },
    ..PROFILE
};
