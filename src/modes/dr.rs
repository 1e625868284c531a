//! DR (direct routing, `ipvsadm -g`): the director only rewrites the destination MAC, so each
//! real server receives packets addressed to the VIP and answers clients directly.

use super::{Gateway, Ipv6, Mode, Profile, RealServer, RealServer6, Rewrite, VipOn, Walk};
use crate::ipvs::Forward;

/// The VIP is local on every real server; only the director may answer ARP for it.
pub(super) const WHY_IGNORE: &str = "answer ARP only for addresses on the asking interface, never for the VIP";
pub(super) const WHY_ANNOUNCE: &str = "never use the VIP as ARP source address";

pub const PROFILE: Profile = Profile {
    mode: Mode::Dr,
    name: "dr",
    forward: Forward::Route,
    director_sysctls: &[],
    // The packet reaches the real server unchanged, port included.
    port_mapping: false,
    real_server: RealServer {
        // Replies go straight to the client; the director would drop them.
        // doctor: dr-gateway-director
        gateway: Gateway::NotDirector,
        // The director sends each packet to the real server's MAC.
        same_l2: true,
        modules: &[],
        sysctls: &[
            ("all", "arp_ignore", "1", WHY_IGNORE),
            ("all", "arp_announce", "2", WHY_ANNOUNCE),
            ("lo", "arp_ignore", "1", WHY_IGNORE),
            ("lo", "arp_announce", "2", WHY_ANNOUNCE),
        ],
        links_up: &[],
        // doctor: vip-missing, vip-on-interface
        vip: Some(VipOn {
            dev: "lo",
            reason: "DR: accept packets for VIP {vip} (no ARP: arp_ignore)",
            why: "DR real servers hold the VIP on lo, so they accept its packets without answering ARP for it",
        }),
        // doctor: arp-ignore, arp-announce on every data interface
        quiet_arp: true,
        decap: None,
    },
    clients_off_real_server_subnets: false,
    ipv6: Ipv6 {
        // DR forwards without routing: IPv6 forwarding stays as it is.
        director_sysctls: &[],
        director_vip_deprecated: false,
        real_server: RealServer6 {
            modules: &[],
            links_up: &[],
            // Linux answers neighbour solicitations only for addresses of the interface they
            // arrive on: a VIP on lo is never claimed, and IPv6 has no arp_ignore to set.
            vip: Some(VipOn {
                dev: "lo",
                reason: "DR: accept packets for VIP {vip} (on lo it never answers neighbour solicitations for it)",
                why: "DR real servers hold the IPv6 VIP on lo, where it accepts the director's frames and never answers neighbour solicitations",
            }),
            decap: None,
        },
    },
    walk: Walk {
        director_does: Rewrite::MacOnly,
        reply_through_director: false,
        why: "in DR the director changes only the MAC (the real server holds the VIP itself), and the real server answers the client directly, never through the director",
    },
};
