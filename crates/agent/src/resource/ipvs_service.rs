//! IPVS virtual services (generic netlink, no ipvsadm): created, or set to the planned
//! scheduler and persistence; `down` deletes what lvsctl created and restores what it changed.
//! Each service decides its destinations (`ipvs_dest`) right after itself.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants, ipvs_dest,
};
use crate::host::System;
use crate::ipvs::{ServiceConfig, ServiceKey};
use crate::plan::{HostPlan, VirtualServiceSpec};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub key: ServiceKey,
    pub prior: Option<ServiceConfig>,
    pub applied: ServiceConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `ipvsadm -A`
    New(ServiceKey, ServiceConfig),
    /// `ipvsadm -E`
    Set(ServiceKey, ServiceConfig),
    /// `ipvsadm -D`
    Del(ServiceKey),
}

/// The kind: a service, and with it (in its stage) its destinations.
pub struct Service;

impl Kind for Service {
    type Id = ServiceKey;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Ipvs;

    fn fmt_id(k: &ServiceKey, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipvs service {k}")
    }

    fn id(u: &Undo) -> ServiceKey {
        u.key
    }

    fn desired(plan: &HostPlan) -> Vec<ServiceKey> {
        plan.ipvs.iter().map(|v| v.ipvs.key()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.ipvs |= !plan.ipvs.is_empty();
    }

    /// Each service, then its destinations.
    fn decide(plan: &HostPlan, live: &Live, journal: &dyn Recorded, intent: Intent) -> Vec<Decision> {
        decide(&plan.ipvs, live, journal, intent)
    }

    /// Each service, then its destinations.
    fn show(plan: &HostPlan) -> Vec<super::Line> {
        let mut lines = Vec::new();
        for s in &plan.ipvs {
            lines.push(show(s));
            lines.extend(s.destinations.iter().map(ipvs_dest::show));
        }
        lines
    }

    fn undo_wants(_: &Undo, w: &mut Wants) {
        w.ipvs = true;
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        undo(u, live)
    }

    fn sign(a: &Action) -> ChangeKind {
        super::ipvs_sign(&op(a))
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        super::ipvs_act(sys, op(a)).map(|_| None)
    }

    /// Typed netlink data: addresses, ports, numbers.
    fn check(_: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        Ok(())
    }

    fn merge(first: &Undo, newer: Undo) -> Undo {
        Undo { prior: first.prior.clone(), ..newer }
    }

    fn ipvs_op(a: &Action) -> Option<crate::ipvs::TableOp> {
        Some(op(a))
    }
}

fn decide(specs: &[VirtualServiceSpec], live: &Live, journal: &dyn Recorded, intent: Intent) -> Vec<Decision> {
    if specs.is_empty() {
        return vec![];
    }
    match &live.ipvs {
        Err(e) => return vec![Decision::failed("ipvs", "read the IPVS table", e)],
        // Only a dry run or a check gets here before ip_vs is loaded: an apply loads it first.
        Ok(None) if intent == Intent::Apply => {
            return vec![Decision::failed("ipvs", "IPVS", "IPVS is not loaded (module ip_vs)")];
        }
        Ok(_) => {}
    }
    let mut out = Vec::new();
    for v in specs {
        let k = v.ipvs.key();
        let want = v.ipvs.config();
        let existing = live.ipvs_service(k);
        out.push(match existing {
            Some(s) if s.entry.config == want => Decision::same(Key::Service(k), format!("is {}", want.describe())),
            Some(s) => {
                let record =
                    AnyUndo::Service(Undo { key: k, prior: Some(s.entry.config.clone()), applied: want.clone() });
                let before = s.entry.config.describe();
                let after = want.describe();
                Decision::change(
                    Key::Service(k),
                    before,
                    after,
                    &v.reason,
                    Some(record),
                    AnyAction::Service(Action::Set(k, want)),
                )
            }
            None => {
                let record = AnyUndo::Service(Undo { key: k, prior: None, applied: want.clone() });
                let after = want.describe();
                Decision::change(
                    Key::Service(k),
                    "absent",
                    after,
                    &v.reason,
                    Some(record),
                    AnyAction::Service(Action::New(k, want)),
                )
            }
        });
        let dests = existing.map(|s| s.dests.as_slice()).unwrap_or_default();
        out.extend(ipvs_dest::decide(k, &v.destinations, dests, journal));
    }
    out
}

fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::Service(u.key);
    if let Err(e) = &live.ipvs {
        return Decision::failed(&key, "undo what lvsctl changed", e);
    }
    let Some(cur) = live.ipvs_service(u.key) else { return Decision::same(key, "is absent") };
    let current = &cur.entry.config;
    match &u.prior {
        None => Decision::revert(key, current.describe(), "absent", AnyAction::Service(Action::Del(u.key))),
        Some(p) if p == current => Decision::same(key, format!("is {} again", p.describe())),
        Some(p) => {
            Decision::revert(key, current.describe(), p.describe(), AnyAction::Service(Action::Set(u.key, p.clone())))
        }
    }
}

fn op(a: &Action) -> crate::ipvs::TableOp {
    use crate::ipvs::TableOp;
    match a {
        Action::New(k, c) => TableOp::NewService(*k, c.clone()),
        Action::Set(k, c) => TableOp::SetService(*k, c.clone()),
        Action::Del(k) => TableOp::DelService(*k),
    }
}

fn show(s: &VirtualServiceSpec) -> super::Line {
    let v = &s.ipvs;
    let what = match v.fwmark {
        Some(_) => v.key().to_string(),
        None => format!("{} {}", v.protocol, std::net::SocketAddr::new(v.vip, v.port)),
    };
    let head = format!("{what} {}", v.config().describe());
    ("ipvs", head, s.reason.clone())
}
