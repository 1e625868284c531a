//! What the controller and the agent say to each other: one JSON request on the agent's stdin,
//! JSON lines on its stdout (events as they happen, then one report).

use serde::{Deserialize, Serialize};

use crate::host::IpvsService;
use crate::plan::HostPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Make the host match the plan, journaling every change.
    Apply,
    /// Say what `apply` would change; change nothing.
    DryRun,
    /// Compare the host with the plan (status): differences are drift.
    Check,
    /// Undo everything in the journal, then remove the journal.
    Down,
    /// Read the state doctor needs (and, with a plan, how the host drifted from it).
    Facts,
    /// Send requests to services (verify).
    Probe,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub op: Op,
    pub lab: String,
    pub host: String,
    #[serde(default)]
    pub plan: Option<HostPlan>,
    /// Fault injection for crash-consistency tests: abort the agent after this many changes.
    #[serde(default)]
    pub abort_after: Option<u32>,
    /// Fault injection: stop for STALL_SECONDS after this many changes, then go on (tests of a
    /// controller that goes away mid-apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<super::facts::FactsRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<super::probe::ProbeRequest>,
}

impl Request {
    pub fn new(op: Op, lab: &str, host: &str) -> Request {
        Request {
            op,
            lab: lab.to_string(),
            host: host.to_string(),
            plan: None,
            abort_after: None,
            stall_after: None,
            facts: None,
            probe: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Changed.
    Done,
    /// Could not be changed.
    Failed,
    /// Would change (dry run).
    Planned,
    /// Differs from the plan (status).
    Drift,
    /// Deliberately left as it is (someone else changed it since lvsctl did).
    Kept,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// What changes: `sysctl net.ipv4.conf.all.arp_ignore`, `address 10.0.0.1/32 dev lo`, …
    pub object: String,
    pub before: String,
    pub after: String,
    pub reason: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub host: String,
    /// Changes made (apply, down), planned (dry run) or drifted (check).
    pub changes: u32,
    pub failed: u32,
    pub kept: u32,
    /// Items already as planned.
    pub unchanged: u32,
    pub notes: Vec<String>,
    /// Problems that stopped the whole operation on this host.
    pub errors: Vec<String>,
    pub duration_ms: u64,
    /// Entries left in the journal afterwards.
    pub journal_entries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs: Option<Vec<IpvsService>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Box<super::facts::HostFacts>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<super::probe::ProbeResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    Change(ChangeEvent),
    Note { message: String },
    Report(Box<Report>),
}
