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
    /// `up --force`: change even what would cut the SSH session lvsctl arrives on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// Fault injection for the crash-consistency tests; it acts only in builds with the
/// `fault-injection` feature (the tests' builds), never in a release.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Abort the agent after this many changes.
    pub abort_after: Option<u32>,
    /// Stop for STALL_SECONDS after this many changes, then go on.
    pub stall_after: Option<u32>,
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
        faults: Faults,
    },
    /// Say what `apply` would change; change nothing.
    DryRun { plan: HostPlan },
    /// Compare the host with the plan (status): differences are drift.
    Check { plan: HostPlan },
    /// Undo everything in the journal, then remove the journal.
    Down,
    /// Say what `down` would undo; change nothing (not even the journal).
    DownDryRun,
    /// Read the state doctor needs and, with a plan, how the host drifted from it.
    Facts { plan: Option<HostPlan>, facts: crate::facts::FactsRequest },
    /// Send requests to services (verify).
    Probe { probe: crate::probe::ProbeRequest },
    /// Take a real server out of (or give it back to) the director's services: weight 0 kept as
    /// state on the director, then the connections watched until they are gone (`lvsctl drain`).
    Drain { plan: HostPlan, drain: DrainRequest },
    /// Stop, or start again, a daemon lvsctl runs, by its journal record (`verify --failover`).
    /// The record stays: `up` starts a stopped one again, `down` stops it for good.
    Daemon {
        name: String,
        action: DaemonAction,
        /// Wait this long first (so that it happens while another host's probe runs).
        #[serde(default)]
        delay_ms: u64,
    },
    /// A director's metrics, its services and real servers named by the plan (`lvsctl metrics`).
    Metrics { plan: HostPlan },
    /// The director's metrics every `interval_ms`, streamed, until stdin closes or `seconds`
    /// have passed (`lvsctl top`).
    Watch { plan: HostPlan, interval_ms: u64, seconds: u64 },
    /// Capture packets, streamed as they come (`lvsctl capture`, `lvsctl trace`); with a probe,
    /// send it once capturing.
    Capture { capture: crate::capture::CaptureRequest },
}

/// What `lvsctl drain` / `undrain` asks of a director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRequest {
    /// The real server, by its host name (the plan's destinations carry it).
    pub real_server: String,
    /// The services to drain it from: all it serves when empty.
    #[serde(default)]
    pub services: Vec<crate::ipvs::ServiceKey>,
    /// Give the weight back instead.
    #[serde(default)]
    pub undrain: bool,
    /// Take the destination out once drained.
    #[serde(default)]
    pub remove: bool,
    /// Wait for inactive connection entries too, not only active ones.
    #[serde(default)]
    pub wait_inactive: bool,
    /// How long to wait for the connections (seconds).
    pub timeout_s: u64,
}

/// How a drain goes: the real server's connections on this director, as they fall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrainProgress {
    pub real_server: String,
    /// `weight-0` (set; no new connection reaches it from now on), `waiting`, `drained`,
    /// `removed`, `timeout`.
    pub phase: String,
    pub active: u32,
    pub inactive: u32,
    /// Since the drain began.
    pub elapsed_ms: u64,
    /// This host's clock, milliseconds since the epoch.
    pub at_ms: u64,
}

pub use crate::drain::{Drained, utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaemonAction {
    Stop,
    Start,
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

    /// The host plan the operation carries.
    pub fn plan_mut(&mut self) -> Option<&mut HostPlan> {
        match self {
            Operation::Apply { plan, .. }
            | Operation::DryRun { plan }
            | Operation::Check { plan }
            | Operation::Drain { plan, .. }
            | Operation::Metrics { plan }
            | Operation::Watch { plan, .. } => Some(plan),
            Operation::Facts { plan, .. } => plan.as_mut(),
            Operation::Down
            | Operation::DownDryRun
            | Operation::Probe { .. }
            | Operation::Daemon { .. }
            | Operation::Capture { .. } => None,
        }
    }

    /// Whether the operation must leave no trace on the host (not even an installed agent).
    pub fn leaves_no_trace(&self) -> bool {
        matches!(
            self,
            Operation::DryRun { .. }
                | Operation::DownDryRun
                | Operation::Check { .. }
                | Operation::Facts { .. }
                | Operation::Probe { .. }
                | Operation::Capture { .. }
                | Operation::Metrics { .. }
                | Operation::Watch { .. }
        )
    }
}

impl Request {
    /// A request for `op`; its plan, if any, goes without what the agent derives from it
    /// (`HostPlan::strip_derived`), which `agent::handle` fills in again.
    pub fn new(lab: &str, host: &str, mut op: Operation) -> Request {
        if let Some(plan) = op.plan_mut() {
            plan.strip_derived();
        }
        Request { lab: lab.to_string(), host: host.to_string(), op, force: false }
    }
}

pub use crate::event::{ChangeEvent, ChangeKind, Status};

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
    /// What the operation reads besides its changes (a key of its own in the JSON).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// Check (status) of a director that runs keepalived: what keepalived is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalived: Option<crate::ha::KeepalivedStatus>,
    /// Check (status) of a director with IPVS loaded: its connection timeouts as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_timeouts: Option<crate::plan::IpvsTimeouts>,
    /// Check (status) of a director: the real servers `lvsctl drain` keeps drained there.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub drained: std::collections::BTreeMap<String, Drained>,
}

/// The payload of the operations that read: one variant per operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Check (status): the director's IPVS table.
    Ipvs(Vec<IpvsService>),
    /// Facts (doctor, verify's counters).
    Facts(Box<crate::facts::HostFacts>),
    /// Probe (verify).
    Probe(crate::probe::ProbeResult),
    /// Drain: where it ended (`drained`, `removed`, `undrained` or `timeout`).
    Drain(DrainProgress),
    /// Capture: how it ended.
    Capture(crate::capture::CaptureSummary),
    /// Metrics: the director's families.
    Metrics(Vec<crate::metrics::Family>),
}

impl Report {
    pub fn ipvs(&self) -> Option<&Vec<IpvsService>> {
        match &self.answer {
            Some(Answer::Ipvs(t)) => Some(t),
            _ => None,
        }
    }
    pub fn facts(&self) -> Option<&crate::facts::HostFacts> {
        match &self.answer {
            Some(Answer::Facts(f)) => Some(f),
            _ => None,
        }
    }
    pub fn drain(&self) -> Option<&DrainProgress> {
        match &self.answer {
            Some(Answer::Drain(d)) => Some(d),
            _ => None,
        }
    }
    pub fn metrics(&self) -> Option<&Vec<crate::metrics::Family>> {
        match &self.answer {
            Some(Answer::Metrics(m)) => Some(m),
            _ => None,
        }
    }
    pub fn capture(&self) -> Option<&crate::capture::CaptureSummary> {
        match &self.answer {
            Some(Answer::Capture(c)) => Some(c),
            _ => None,
        }
    }
    pub fn probe(&self) -> Option<&crate::probe::ProbeResult> {
        match &self.answer {
            Some(Answer::Probe(p)) => Some(p),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    Change(ChangeEvent),
    /// Something to tell the user. `live` notes (waiting for a lock) are shown at once; the
    /// others are collected, and identical ones of several hosts shown once with their hosts.
    Note {
        message: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        live: bool,
    },
    /// `lvsctl drain`: the connections left on the drained real server.
    Drain(DrainProgress),
    /// `lvsctl capture` / `trace`: capturing, and the packets.
    Capture(crate::capture::CaptureEvent),
    /// `lvsctl top`: the director's metrics at `at_ms` (its clock, milliseconds since the epoch).
    Metrics {
        at_ms: u64,
        families: Vec<crate::metrics::Family>,
    },
    Report(Box<Report>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload keeps its own key in the report (`ipvs`, `facts`, `probe`), as `--output json`
    /// has always shown it, and reads back as the variant it was.
    #[test]
    fn a_reports_answer_is_a_key_of_its_own() {
        let mut r = Report { host: "lvs".into(), changes: 1, ..Default::default() };
        let plain = serde_json::to_value(&r).unwrap();
        assert!(plain.get("ipvs").is_none() && plain.get("answer").is_none(), "{plain}");
        r.answer = Some(Answer::Ipvs(vec![]));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ipvs"], serde_json::json!([]), "{v}");
        assert_eq!(v["changes"], 1);
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let probe = Answer::Probe(crate::probe::ProbeResult::default());
        let v = serde_json::to_value(Report { answer: Some(probe.clone()), ..Default::default() }).unwrap();
        assert!(v.get("probe").is_some(), "{v}");
        assert_eq!(serde_json::from_value::<Report>(v).unwrap().answer, Some(probe));
    }
}
