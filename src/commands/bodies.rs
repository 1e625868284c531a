//! The command layer assembles the JSON contract's bodies (`contract`) from what the hosts
//! reported (`outcome::Outcome`): the contract names the shapes, this file fills them.

use crate::agent::protocol::{Report, Status};
use crate::contract::{DrainedState, HostOutcome, HostReport, PlanCounts, RunBody, ServiceState};

use super::outcome::Outcome;
use super::printer::Pending;

impl From<Pending> for PlanCounts {
    fn from(p: Pending) -> Self {
        PlanCounts { add: p.add, change: p.change, remove: p.remove }
    }
}

impl HostReport {
    pub fn of(r: &Report, host_of: &dyn Fn(std::net::IpAddr) -> Option<String>) -> HostReport {
        HostReport {
            changes: r.changes,
            failed: r.failed,
            kept: r.kept,
            unchanged: r.unchanged,
            notes: r.notes.clone(),
            errors: r.errors.clone(),
            duration_ms: r.duration_ms,
            journal_entries: r.journal_entries,
            ipvs: r.ipvs().map(|t| t.iter().map(|s| ServiceState::of(s, host_of)).collect()),
            keepalived: r.keepalived.clone(),
            ipvs_timeouts: r.ipvs_timeouts,
            drained: r
                .drained
                .iter()
                .map(|(host, d)| DrainedState {
                    host: host.clone(),
                    since: d.since,
                    since_utc: d.since_utc(),
                    services: d.services.iter().map(|k| (*k).into()).collect(),
                    removed: d.removed,
                })
                .collect(),
        }
    }
}

impl HostOutcome {
    pub fn of(o: &Outcome, host_of: &dyn Fn(std::net::IpAddr) -> Option<String>) -> HostOutcome {
        let duration_ms = (o.seconds * 1000.0).round() as u64;
        match &o.result {
            Ok(r) => HostOutcome {
                host: o.host.clone(),
                ok: r.failed == 0 && r.errors.is_empty(),
                unreachable: false,
                error: None,
                duration_ms,
                report: Some(HostReport::of(r, host_of)),
                events: o.events.clone(),
            },
            Err(e) => HostOutcome {
                host: o.host.clone(),
                ok: false,
                unreachable: matches!(e, crate::remote::HostError::Unreachable(_)),
                error: Some(e.to_string()),
                duration_ms,
                report: None,
                events: o.events.clone(),
            },
        }
    }
}

impl RunBody {
    pub fn of(outcomes: &[Outcome], dry_run: bool, lab: &crate::inventory::Lab) -> RunBody {
        let host_of = |a: std::net::IpAddr| lab.host_with_ip(a).map(|h| h.name.clone());
        let hosts = outcomes.iter().map(|o| HostOutcome::of(o, &host_of)).collect();
        let plan = dry_run.then(|| {
            let mut n = Pending::default();
            for c in outcomes.iter().flat_map(|o| &o.events).filter(|c| c.status == Status::Planned) {
                n.count(c);
            }
            n.into()
        });
        RunBody { hosts, plan }
    }
}
