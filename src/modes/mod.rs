//! What each forwarding mode requires, one file per mode (`nat.rs`, `dr.rs`, `tun.rs`): how the
//! director forwards, what each role gets and why, how real servers must be wired, and which
//! problems `doctor` looks for. The files are data; validation (`inventory::validate`), the
//! planner (`plan`) and `doctor` read them and hold no branch per mode, so a new mode — or a new
//! requirement of one — is a change to its file.

pub mod dr;
pub mod nat;
pub mod tun;

use serde::{Deserialize, Serialize};

use crate::ipvs::Forward;

/// How the director forwards to real servers: a lab's `mode`, or a service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Nat,
    Dr,
    Tun,
}

impl Mode {
    pub const NAMES: [&'static str; 3] = ["nat", "dr", "tun"];
    /// What this mode requires.
    pub fn profile(self) -> &'static Profile {
        match self {
            Mode::Nat => &nat::PROFILE,
            Mode::Dr => &dr::PROFILE,
            Mode::Tun => &tun::PROFILE,
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "nat" => Some(Mode::Nat),
            "dr" => Some(Mode::Dr),
            "tun" => Some(Mode::Tun),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Dr => "dr",
            Mode::Tun => "tun",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The requirements of one forwarding mode.
#[derive(Debug)]
pub struct Profile {
    pub mode: Mode,
    /// The profile's name in messages and `plan`: the mode, or the mode and its tunnel
    /// (`tun-gue`, `tun-gre`).
    pub name: &'static str,
    /// How the director hands packets to real servers (`ipvsadm -m`, `-g`, `-i`).
    pub forward: Forward,
    /// Sysctls the director needs: (key, value, reason).
    pub director_sysctls: &'static [(&'static str, &'static str, &'static str)],
    /// A real server may listen on another port than the service's (only when the director
    /// rewrites the packets).
    pub port_mapping: bool,
    pub real_server: RealServer,
    /// Clients must not sit on a real server's subnet (its replies would reach them directly).
    pub clients_off_real_server_subnets: bool,
    /// What IPv6 services of the mode need instead of the IPv4 sysctls, modules and devices
    /// (the gateway, L2 and port rules are the same for both families).
    pub ipv6: Ipv6,
    /// How a request and its reply travel (`lvsctl trace` checks the packets against it).
    pub walk: Walk,
}

/// A packet's way through a lab of the mode.
#[derive(Debug)]
pub struct Walk {
    /// What the director does to a request on its way to the real server.
    pub director_does: Rewrite,
    /// Whether the reply comes back through the director (NAT: it must, for the VIP to become
    /// its source again; DR and TUN: it must not, the real server answers the client itself).
    pub reply_through_director: bool,
    /// The words for it, in trace's findings.
    pub why: &'static str,
}

/// What the director changes in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// The destination becomes the real server's address (and port).
    Destination,
    /// The destination becomes the real server's address (and port), the source the director's
    /// own address (one-armed NAT).
    DestinationAndSource,
    /// Only the Ethernet destination: the frame goes to the real server's MAC, the IP packet is
    /// untouched.
    MacOnly,
    /// A second IP header around the packet, to the real server.
    Encapsulate,
}

/// The IPv6 side of a mode (facts checked on the lab kernel: see the README's mode table).
#[derive(Debug)]
pub struct Ipv6 {
    /// Sysctls the director needs for the mode's IPv6 services: (key, value, reason).
    pub director_sysctls: &'static [(&'static str, &'static str, &'static str)],
    /// The director holds its IPv6 VIPs deprecated (preferred lifetime 0): never chosen as a
    /// source address, still accepting connections.
    pub director_vip_deprecated: bool,
    pub real_server: RealServer6,
}

/// What a real server of the mode needs for its IPv6 services.
#[derive(Debug)]
pub struct RealServer6 {
    /// Modules it loads: (name, reason).
    pub modules: &'static [(&'static str, &'static str)],
    /// Links it brings up: (device, reason).
    pub links_up: &'static [(&'static str, &'static str)],
    /// Where it holds the VIP (as /128, without duplicate address detection), if it does.
    pub vip: Option<VipOn>,
    /// doctor: the tunnel it decapsulates.
    pub decap: Option<Decap>,
}

/// What a real server of the mode needs.
#[derive(Debug)]
pub struct RealServer {
    /// Its default route, relative to the director.
    pub gateway: Gateway,
    /// Shares an L2 segment with the director (the director sends to its MAC, or it routes
    /// through the director); otherwise it may be anywhere the director can route to.
    pub same_l2: bool,
    /// Modules it loads: (name, reason).
    pub modules: &'static [(&'static str, &'static str)],
    /// Sysctls: (device or "all", setting, value, reason), in the order they are applied.
    pub sysctls: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// Links it brings up: (device, reason).
    pub links_up: &'static [(&'static str, &'static str)],
    /// Where it holds the VIP itself, if it does.
    pub vip: Option<VipOn>,
    /// doctor: its data interfaces must neither answer ARP for the VIP nor announce it.
    pub quiet_arp: bool,
    /// doctor: the tunnel it decapsulates (its module loaded, its device up, no reverse-path
    /// filter on it).
    pub decap: Option<Decap>,
}

/// A tunnel receiver on a real server: the module that makes its device, and doctor's codes
/// for each missing piece.
#[derive(Debug)]
pub struct Decap {
    pub module: &'static str,
    pub dev: &'static str,
    /// The packets, in messages: `IP-in-IP`, `GRE`.
    pub what: &'static str,
    /// doctor's codes: module not loaded, device down.
    pub missing_code: &'static str,
    pub down_code: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    /// Its default route must be the director (and is derived when the inventory leaves it
    /// out); `reason` is the plan's reason for that route.
    ViaDirector { reason: &'static str },
    /// Its default route must not be the director.
    NotDirector,
    /// Anything that reaches the clients.
    Any,
}

impl Gateway {
    pub fn is_via_director(self) -> bool {
        matches!(self, Gateway::ViaDirector { .. })
    }
}

/// The VIP on a device of the real server, as a /32 (a /128 for IPv6).
#[derive(Debug)]
pub struct VipOn {
    pub dev: &'static str,
    /// The plan's reason; `{vip}` stands for the address.
    pub reason: &'static str,
    /// Why, as doctor explains it when the VIP is missing or elsewhere.
    pub why: &'static str,
}

/// Every profile, in the order their requirements are applied when a host serves several.
pub const ALL: [&Profile; 6] = [&nat::PROFILE, &nat::ONE_ARM, &dr::PROFILE, &tun::PROFILE, &tun::GUE, &tun::GRE];

/// The profile of a service of `mode` whose tunnel (TUN only) is `tun_type`, one-armed (NAT
/// only) when `snat`.
pub fn profile_of(mode: Mode, tun_type: crate::ipvs::TunType, snat: bool) -> &'static Profile {
    use crate::ipvs::TunType;
    match (mode, tun_type, snat) {
        (Mode::Tun, TunType::Gue, _) => &tun::GUE,
        (Mode::Tun, TunType::Gre, _) => &tun::GRE,
        (Mode::Nat, _, true) => &nat::ONE_ARM,
        (m, _, _) => m.profile(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_profile_is_its_modes() {
        for m in [Mode::Nat, Mode::Dr, Mode::Tun] {
            assert_eq!(m.profile().mode, m);
        }
        assert_eq!(ALL.map(|p| p.name), ["nat", "nat-onearm", "dr", "tun", "tun-gue", "tun-gre"]);
        for p in ALL {
            assert!(p.name.starts_with(p.mode.as_str()), "{}", p.name);
        }
    }
}
