//! Capturing packets on a host (`lvsctl capture`, `lvsctl trace`): what the controller asks,
//! and what the agent streams back while it captures.

use serde::{Deserialize, Serialize};

use crate::packet::Flow;
use crate::probe::{ProbeRequest, ProbeResult};

/// What to capture, and for how long. The capture ends at whichever comes first: `count`
/// packets kept, `seconds` gone, the controller closing the agent's stdin, or (with a probe)
/// `linger_ms` after the probe's answers are in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureRequest {
    /// One interface, by name; every interface of the host when None.
    #[serde(default)]
    pub interface: Option<String>,
    /// Only the probe's packets (trace); every packet but the capture's own SSH session when None.
    #[serde(default)]
    pub flow: Option<Flow>,
    pub count: u32,
    pub seconds: u64,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Sent by this host once it captures (the client in a trace).
    #[serde(default)]
    pub probe: Option<ProbeRequest>,
    #[serde(default)]
    pub linger_ms: u64,
}

/// An interface as the capture saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaptureInterface {
    pub index: u32,
    pub name: String,
    /// Whether its frames start with an Ethernet header (otherwise with the IP header: tunnels).
    pub ethernet: bool,
    /// A GRE device (gre0, ip6gre0): what it receives is captured with the outer IP and GRE
    /// header it came in as the link-layer header, though the device delivers the inner packet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gre_device: bool,
}

/// A packet as the interface delivers it: on a GRE device, without the outer header its
/// capture still shows (tcpdump shows it so too).
pub fn delivered(iface: Option<&CaptureInterface>, bytes: &[u8]) -> crate::packet::Decoded {
    let mut d = crate::packet::decode(iface.is_none_or(|i| i.ethernet), bytes);
    if iface.is_some_and(|i| i.gre_device) && d.gre && d.ip.len() > 1 {
        d.ip.remove(0);
        d.gre = false;
    }
    d
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacket {
    /// The kernel's timestamp, nanoseconds since the epoch.
    pub at_ns: u64,
    pub interface: u32,
    /// Sent by this host (otherwise received).
    pub outgoing: bool,
    /// Its length on the wire (`data` may hold less: the snap length).
    pub length: u32,
    /// The bytes, in hexadecimal.
    pub data: String,
}

impl CapturedPacket {
    pub fn bytes(&self) -> Vec<u8> {
        (0..self.data.len() / 2).filter_map(|i| u8::from_str_radix(self.data.get(2 * i..2 * i + 2)?, 16).ok()).collect()
    }
}

/// What the agent streams while it captures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum CaptureEvent {
    /// Capturing from now on: the interfaces, and whether the lab is up on this host (its journal).
    Ready {
        interfaces: Vec<CaptureInterface>,
        lab_up: bool,
    },
    Packets {
        packets: Vec<CapturedPacket>,
    },
}

/// How a capture ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureSummary {
    pub packets: u32,
    /// Packets the kernel dropped because the agent did not read them in time.
    pub dropped: u32,
    /// `count`, `seconds`, `stopped` (stdin closed) or `probe` (the probe is done).
    pub ended_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_bytes_travel_as_hex() {
        let p = CapturedPacket { at_ns: 1, interface: 2, outgoing: true, length: 3, data: crate::hex(&[0, 0xab, 255]) };
        assert_eq!(p.bytes(), vec![0, 0xab, 255]);
    }
}
