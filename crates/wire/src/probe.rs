//! verify's requests from a host to services, and what came back: the probe's vocabulary (the
//! agent sends them: `agent::probe`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// GET / over HTTP/1.0; the answer is the body.
    Http,
    /// A TCP connection; the answer is whatever the server sends first.
    Tcp,
    /// One datagram; the answer is the reply.
    Udp,
    /// An SCTP association; the answer is whatever the server sends first.
    Sctp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTarget {
    pub address: IpAddr,
    pub port: u16,
    pub kind: ProbeKind,
    pub count: u32,
    pub timeout_ms: u64,
    /// Send from this port (a trace: the hosts it captures on look for it); any when None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
    /// Without `source_port`: send from none of these local ports (verify: ports the director
    /// still holds connection entries for, which would decide where such a request goes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub avoid_ports: Vec<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub targets: Vec<ProbeTarget>,
    /// HTTP requests at a steady pace, each on a new connection (`verify --failover`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    /// Connections opened at once and finished later (does one survive a failover?).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
}

/// GET / every `interval_ms` for `duration_ms`, each given `timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub address: IpAddr,
    pub port: u16,
    pub interval_ms: u64,
    pub duration_ms: u64,
    pub timeout_ms: u64,
}

/// Opens a connection and sends the first line of a GET at once, the rest `after_ms` later;
/// the answer must then arrive within `timeout_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub address: IpAddr,
    pub port: u16,
    pub after_ms: u64,
    pub timeout_ms: u64,
}

/// One request of a series: when it started (ms after the probe began) and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub at_ms: u64,
    #[serde(flatten)]
    pub answer: Answer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// What came back (trimmed, at most 200 bytes), None when nothing did.
    pub body: Option<String>,
    /// The address a UDP reply came from.
    pub from: Option<IpAddr>,
    pub error: Option<String>,
    pub ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// One list of answers per target, in the request's order.
    pub answers: Vec<Vec<Answer>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Vec<Sample>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Answer>,
}
