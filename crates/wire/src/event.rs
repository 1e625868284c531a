//! What a host reports about each object it decided on: the events of the agent's protocol, and
//! the drift in its facts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeEvent {
    /// What changes: `sysctl net.ipv4.conf.all.arp_ignore`, `address 10.0.0.1/32 dev lo`, …
    pub object: String,
    pub before: String,
    pub after: String,
    pub reason: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the object is added, changed or removed (a change made or planned; none for
    /// items kept or failed before anything was decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChangeKind>,
}

/// terraform's `+`, `~` and `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Add,
    Change,
    Remove,
}

impl ChangeKind {
    pub fn sign(self) -> char {
        match self {
            ChangeKind::Add => '+',
            ChangeKind::Change => '~',
            ChangeKind::Remove => '-',
        }
    }
}
