//! The lab's words that plans carry to hosts: a host's role, a scheduler's flags, a health check's
//! kind (the inventory reads them; `inventory::model` re-exports them).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Client,
    Router,
    Director,
    RealServer,
    /// Answers a service's clients when every real server failed its health check (keepalived's
    /// `sorry_server`): provisioned like a real server of that service.
    SorryServer,
}

impl Role {
    pub const NAMES: [&'static str; 5] = ["client", "router", "director", "real-server", "sorry-server"];
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "client" => Some(Role::Client),
            "router" => Some(Role::Router),
            "director" => Some(Role::Director),
            "real-server" => Some(Role::RealServer),
            "sorry-server" => Some(Role::SorryServer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Router => "router",
            Role::Director => "director",
            Role::RealServer => "real-server",
            Role::SorryServer => "sorry-server",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scheduler's own flag (ipvsadm's `-b`): each belongs to one scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerFlag {
    /// sh: a real server of weight 0 (or overloaded) hands its clients to the next one.
    ShFallback,
    /// sh: the source port is hashed too.
    ShPort,
    /// mh: as sh-fallback, for the maglev hash.
    MhFallback,
    /// mh: as sh-port, for the maglev hash.
    MhPort,
}

impl SchedulerFlag {
    pub const NAMES: [&'static str; 4] = ["sh-fallback", "sh-port", "mh-fallback", "mh-port"];
    pub fn parse(s: &str) -> Option<SchedulerFlag> {
        match s {
            "sh-fallback" => Some(SchedulerFlag::ShFallback),
            "sh-port" => Some(SchedulerFlag::ShPort),
            "mh-fallback" => Some(SchedulerFlag::MhFallback),
            "mh-port" => Some(SchedulerFlag::MhPort),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    /// The scheduler it belongs to.
    pub fn scheduler(self) -> &'static str {
        match self {
            SchedulerFlag::ShFallback | SchedulerFlag::ShPort => "sh",
            SchedulerFlag::MhFallback | SchedulerFlag::MhPort => "mh",
        }
    }
    /// The IPVS service flag bit: the scheduler's first or second flag.
    pub fn bit(self) -> u32 {
        match self {
            SchedulerFlag::ShFallback | SchedulerFlag::MhFallback => crate::ipvs::SVC_F_SCHED1,
            SchedulerFlag::ShPort | SchedulerFlag::MhPort => crate::ipvs::SVC_F_SCHED2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connection opens.
    Tcp,
    /// `GET path` answers `status` (and, with `expect`, a body that contains it).
    Http { path: String, status: u16, expect: Option<String> },
}
