//! What keepalived is doing on a director, as a host reports it (`status`, `doctor`).

use serde::{Deserialize, Serialize};

use crate::host::ProcFact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    Init,
    Backup,
    Master,
    Fault,
    /// keepalived does not run.
    Stopped,
}

impl VrrpState {
    /// The state as keepalived numbers it in its JSON dump.
    pub fn from_keepalived(n: i64) -> Option<VrrpState> {
        match n {
            0 => Some(VrrpState::Init),
            1 => Some(VrrpState::Backup),
            2 => Some(VrrpState::Master),
            3 => Some(VrrpState::Fault),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
            VrrpState::Stopped => "STOPPED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VrrpStatus {
    pub instance: String,
    pub state: VrrpState,
    /// The instance's addresses this host holds now.
    pub holds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeepalivedStatus {
    /// The keepalived that runs (the one its pid file names), None when none does.
    pub running: Option<ProcFact>,
    pub instances: Vec<VrrpStatus>,
    /// Where the VRRP states come from: "keepalived" (its own report) or "addresses".
    pub source: String,
    /// The last lines of the log of a keepalived lvsctl runs (its config errors, VRRP events).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// The IPVS connection sync daemons that run.
    #[serde(default)]
    pub sync: Vec<crate::ipvs::SyncDaemon>,
    /// What `keepalived -t` says of the installed configuration, when asked (doctor): None when
    /// it accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
}
