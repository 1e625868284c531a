//! What the controller and the agent say to each other: one JSON request on the agent's stdin,
//! JSON lines on its stdout (events as they happen, then one report).

use serde::{Deserialize, Serialize};

use crate::host::IpvsService;
use crate::plan::HostPlan;

/// One request: which lab and host it is for, and the operation with exactly the payload that
/// operation needs (a request without it does not parse).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub lab: String,
    pub host: String,
    #[serde(flatten)]
    pub op: Operation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Operation {
    /// Make the host match the plan, journaling every change.
    Apply {
        plan: HostPlan,
        /// Crash-consistency tests only (builds with the `fault-injection` feature).
        #[cfg(feature = "fault-injection")]
        #[serde(default)]
        faults: super::apply::Faults,
    },
    /// Say what `apply` would change; change nothing.
    DryRun { plan: HostPlan },
    /// Compare the host with the plan (status): differences are drift.
    Check { plan: HostPlan },
    /// Undo everything in the journal, then remove the journal.
    Down,
    /// Read the state doctor needs and, with a plan, how the host drifted from it.
    Facts { plan: Option<HostPlan>, facts: super::facts::FactsRequest },
    /// Send requests to services (verify).
    Probe { probe: super::probe::ProbeRequest },
}

impl Operation {
    /// An apply without injected faults.
    pub fn apply(plan: HostPlan) -> Operation {
        Operation::Apply {
            plan,
            #[cfg(feature = "fault-injection")]
            faults: Default::default(),
        }
    }

    /// Whether the operation must leave no trace on the host (not even an installed agent).
    pub fn leaves_no_trace(&self) -> bool {
        matches!(
            self,
            Operation::DryRun { .. } | Operation::Check { .. } | Operation::Facts { .. } | Operation::Probe { .. }
        )
    }
}

impl Request {
    pub fn new(lab: &str, host: &str, op: Operation) -> Request {
        Request { lab: lab.to_string(), host: host.to_string(), op }
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
