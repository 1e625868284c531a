//! A virtual service as IPVS takes it — what it matches (protocol, VIP and port, or a firewall
//! mark of the VIP's family) and how it schedules (scheduler and its flags, one-packet
//! scheduling, persistence and its granularity). The inventory's service holds one, the plan's
//! spec is one with its destinations, and keepalived's virtual server and the rendered ipvsadm
//! lines are made from one: the fields are written here once, and so are the rules that give its
//! IPVS key and configuration.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ipvs::{Netmask, Protocol, SVC_F_ONEPACKET, ServiceConfig, ServiceKey};
use crate::vocab::SchedulerFlag;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VirtualService {
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
    /// A firewall-mark service (`ipvsadm -f`) of the VIP's family; protocol and port are not
    /// part of it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    pub scheduler: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_flags: Vec<SchedulerFlag>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_packet: bool,
    /// Persistence timeout in seconds; 0 = off.
    pub persistence: u32,
    pub netmask: Option<Netmask>,
}

impl VirtualService {
    /// Its identity in the IPVS table: the firewall mark and family, or protocol, VIP and port.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::of(self.protocol, self.vip, self.port, self.fwmark)
    }

    /// Its configuration as IPVS holds it: scheduler, flags, persistence and granularity.
    pub fn config(&self) -> ServiceConfig {
        let flags =
            self.scheduler_flags.iter().fold(0, |f, x| f | x.bit()) | if self.one_packet { SVC_F_ONEPACKET } else { 0 };
        ServiceConfig::persistent(&self.scheduler, self.persistence, self.netmask)
            .with_flags(flags)
            .for_family(&self.key())
    }
}
