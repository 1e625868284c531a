//! IPVS destinations (real servers) of one service: added, or set to the planned forwarding
//! method, weight and thresholds. Destinations lvsctl does not manage are reported, never
//! removed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::System;
use crate::ipvs::{DestConfig, DestEntry, DestKey, ServiceKey};
use crate::plan::{DestSpec, HostPlan};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub service: ServiceKey,
    pub key: DestKey,
    pub prior: Option<DestConfig>,
    pub applied: DestConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `ipvsadm -a`
    New(ServiceKey, DestKey, DestConfig),
    /// `ipvsadm -e`
    Set(ServiceKey, DestKey, DestConfig),
    /// `ipvsadm -d`
    Del(ServiceKey, DestKey),
}

/// The kind: decided and shown with its service (`ipvs_service`), undone on its own.
pub struct Dest;

impl Kind for Dest {
    type Id = (ServiceKey, DestKey);
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Ipvs;

    fn fmt_id((s, k): &(ServiceKey, DestKey), f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipvs dest {k} of {s}")
    }

    fn id(u: &Undo) -> (ServiceKey, DestKey) {
        (u.service, u.key)
    }

    fn desired(plan: &HostPlan) -> Vec<(ServiceKey, DestKey)> {
        let mut ids = Vec::new();
        for v in &plan.ipvs {
            let s = v.ipvs.key();
            ids.extend(v.destinations.iter().map(|d| (s, key(d))));
        }
        ids
    }

    /// Read with its service.
    fn wants(_: &HostPlan, _: &mut Wants) {}

    /// Decided with its service, right after it.
    fn decide(_: &HostPlan, _: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        Vec::new()
    }

    /// Shown with its service.
    fn show(_: &HostPlan) -> Vec<super::Line> {
        Vec::new()
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

pub fn key(d: &DestSpec) -> DestKey {
    DestKey { addr: d.address, port: d.port }
}

pub fn config(d: &DestSpec) -> DestConfig {
    d.config()
}

/// The destinations of service `s`, given the ones it has now.
pub fn decide(s: ServiceKey, specs: &[DestSpec], have: &[DestEntry], journal: &dyn Recorded) -> Vec<Decision> {
    let mut out = Vec::new();
    let by_key: HashMap<DestKey, &DestEntry> = have.iter().map(|x| (x.key, x)).collect();
    for d in specs {
        let dk = key(d);
        let want = config(d);
        let k = Key::Dest((s, dk));
        let reason = format!("real server {}", d.host);
        out.push(match by_key.get(&dk) {
            Some(x) if x.config == want => Decision::same(k, format!("is {}", want.describe())),
            Some(x) => {
                let record =
                    AnyUndo::Dest(Undo { service: s, key: dk, prior: Some(x.config.clone()), applied: want.clone() });
                let (before, after) = (x.config.describe(), want.describe());
                Decision::change(k, before, after, &reason, Some(record), AnyAction::Dest(Action::Set(s, dk, want)))
            }
            None => {
                let record = AnyUndo::Dest(Undo { service: s, key: dk, prior: None, applied: want.clone() });
                let after = want.describe();
                Decision::change(k, "absent", after, &reason, Some(record), AnyAction::Dest(Action::New(s, dk, want)))
            }
        });
    }
    let wanted: HashSet<DestKey> = specs.iter().map(key).collect();
    for x in have {
        let wanted = wanted.contains(&x.key);
        if !wanted && journal.recorded(&Key::Dest((s, x.key))).is_none() {
            out.push(Decision::Note(format!(
                "ipvs service {s} has destination {} that lvsctl does not manage: left as it is",
                x.key
            )));
        }
    }
    out
}

fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::Dest((u.service, u.key));
    if let Err(e) = &live.ipvs {
        return Decision::failed(&key, "undo what lvsctl changed", e);
    }
    let Some(cur) = live.ipvs_dest(u.service, u.key) else { return Decision::same(key, "is absent") };
    match &u.prior {
        None => Decision::revert(key, cur.config.describe(), "absent", AnyAction::Dest(Action::Del(u.service, u.key))),
        Some(p) if *p == cur.config => Decision::same(key, format!("is {} again", p.describe())),
        Some(p) => Decision::revert(
            key,
            cur.config.describe(),
            p.describe(),
            AnyAction::Dest(Action::Set(u.service, u.key, p.clone())),
        ),
    }
}

fn op(a: &Action) -> crate::ipvs::TableOp {
    use crate::ipvs::TableOp;
    match a {
        Action::New(s, k, c) => TableOp::NewDest(*s, *k, c.clone()),
        Action::Set(s, k, c) => TableOp::SetDest(*s, *k, c.clone()),
        Action::Del(s, k) => TableOp::DelDest(*s, *k),
    }
}

pub fn show(d: &DestSpec) -> super::Line {
    let to = std::net::SocketAddr::new(d.address, d.port);
    let mut line = format!("  -> {to} {}", d.forward.as_str());
    if !d.encap.is_ipip() {
        line.push_str(&format!(" {}", d.encap.describe()));
    }
    line.push_str(&format!(" weight {}", d.weight));
    if d.u_threshold > 0 {
        line.push_str(&format!(" u_threshold {}", d.u_threshold));
    }
    if d.l_threshold > 0 {
        line.push_str(&format!(" l_threshold {}", d.l_threshold));
    }
    ("", line, format!("real server {}", d.host))
}
