//! NAT (masquerading, `ipvsadm -m`): the director rewrites the destination of each request to a
//! real server and the source of each reply back to the VIP, so every reply must come back
//! through it.

use super::{Gateway, Ipv6, Mode, Profile, RealServer, RealServer6, Rewrite, Walk};
use crate::ipvs::Forward;

pub const PROFILE: Profile = Profile {
    mode: Mode::Nat,
    name: "nat",
    forward: Forward::Masq,
    // doctor: forwarding-off
    director_sysctls: &[("net.ipv4.ip_forward", "1", "NAT director routes the real servers' replies back to clients")],
    // The director rewrites the packet, port included.
    port_mapping: true,
    real_server: RealServer {
        // Replies must return through the director so it can undo the address translation.
        // doctor: nat-gateway; validation derives it when left out
        gateway: Gateway::ViaDirector { reason: "NAT real server: replies return through the director" },
        same_l2: true,
        modules: &[],
        sysctls: &[],
        links_up: &[],
        // The real server answers for its own address; the VIP stays on the director.
        vip: None,
        quiet_arp: false,
        decap: None,
    },
    // A client on a real server's subnet would get replies straight from it, untranslated.
    // doctor: nat-client-on-rs-subnet
    clients_off_real_server_subnets: true,
    ipv6: Ipv6 {
        // Checked: without it every IPv6 request failed.
        director_sysctls: &[(
            "net.ipv6.conf.all.forwarding",
            "1",
            "NAT: the director routes IPv6 replies back to the clients",
        )],
        director_vip_deprecated: false,
        real_server: RealServer6 { modules: &[], links_up: &[], vip: None, decap: None },
    },
    walk: Walk {
        director_does: Rewrite::Destination,
        reply_through_director: true,
        why: "in NAT the director rewrites the VIP to the real server's address, and the reply must come back through it to have the VIP put back as its source",
    },
};

/// One-armed NAT (a NAT service with `snat = true`): the director rewrites each request's
/// destination to a real server and its source to the director's own address, so the reply
/// comes back to the director whatever the real server's routes are; the real server never sees
/// the client's address. Checked on Linux 6.1: IPVS must keep conntrack entries
/// (`net.ipv4.vs.conntrack`) for the source NAT rule in lvsctl's nftables table to act on, and
/// the director forwards the de-NATed replies (ip_forward; IPv6 forwarding).
pub const ONE_ARM: Profile = Profile {
    mode: Mode::Nat,
    name: "nat-onearm",
    forward: Forward::Masq,
    // doctor: forwarding-off, nat-conntrack-off
    director_sysctls: &[
        ("net.ipv4.ip_forward", "1", "one-armed NAT director routes the real servers' replies back to clients"),
        (
            "net.ipv4.vs.conntrack",
            "1",
            "one-armed NAT: IPVS keeps conntrack entries, which the director's source NAT rule rewrites",
        ),
    ],
    port_mapping: true,
    real_server: RealServer {
        // The director's address is the requests' source: replies reach it by any route.
        gateway: Gateway::Any,
        same_l2: false,
        modules: &[],
        sysctls: &[],
        links_up: &[],
        vip: None,
        quiet_arp: false,
        decap: None,
    },
    // Replies go to the director's address, never straight to a client.
    clients_off_real_server_subnets: false,
    ipv6: Ipv6 {
        director_sysctls: &[
            (
                "net.ipv6.conf.all.forwarding",
                "1",
                "one-armed NAT: the director routes IPv6 replies back to the clients",
            ),
            (
                "net.ipv4.vs.conntrack",
                "1",
                "one-armed NAT: IPVS keeps conntrack entries (IPv6 too), which the director's source NAT rule rewrites",
            ),
        ],
        director_vip_deprecated: false,
        real_server: RealServer6 { modules: &[], links_up: &[], vip: None, decap: None },
    },
    walk: Walk {
        director_does: Rewrite::DestinationAndSource,
        reply_through_director: true,
        why: "in one-armed NAT the director rewrites the VIP to the real server's address and the client's address to its own, and the reply comes back to it to have both put back",
    },
};
