//! Routes of the main table, marked `proto lvsctl`: added, or replacing the route in their slot
//! (same destination and metric), which `down` puts back with every attribute.

use std::fmt;
use std::io;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::{RTPROT_LVSCTL, RouteFact, System};
use crate::plan::{HostPlan, RouteSpec};

/// lvsctl added the route (no prior) or replaced the prior one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub applied: RouteFact,
    pub prior: Option<RouteFact>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `ip route add` (or `replace`)
    Add { route: RouteFact, replace: bool },
    /// `ip route del`
    Del(RouteFact),
}

pub use crate::host::route_destination as destination;

/// The metric of the slot lvsctl's route takes: 0 for IPv4 (it wins over every other default);
/// for IPv6 the kernel stores a metric of 0 as 1024 (`ip -6 route` shows `metric 1024`), the
/// slot a router-advertised default route also takes, so that one is replaced and restored.
pub fn slot_metric(d: IpNet) -> u32 {
    match d {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1024,
    }
}

/// The kind.
pub struct Route;

impl Kind for Route {
    /// A route's slot is its destination (and the metric `slot_metric` gives it).
    type Id = IpNet;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Routes;

    fn fmt_id(dst: &IpNet, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route {}", destination(*dst))
    }

    fn id(u: &Undo) -> IpNet {
        u.applied.destination
    }

    fn desired(plan: &HostPlan) -> Vec<IpNet> {
        plan.routes.iter().map(|r| r.destination).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        w.routes |= !plan.routes.is_empty();
    }

    fn decide(plan: &HostPlan, live: &Live, _: &dyn Recorded, _: Intent) -> Vec<Decision> {
        decide(&plan.routes, live)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.routes.iter().map(show).collect()
    }

    fn undo_wants(_: &Undo, w: &mut Wants) {
        w.routes = true;
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        undo(u, live)
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Add { replace: true, .. } => ChangeKind::Change,
            Action::Add { .. } => ChangeKind::Add,
            Action::Del(_) => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        match a {
            Action::Add { route, replace } => sys.add_route(route, *replace)?,
            Action::Del(r) => sys.del_route(r)?,
        }
        Ok(None)
    }

    /// Typed netlink data: prefixes, addresses, numbers.
    fn check(_: &Undo, _: &str, _: &std::path::Path) -> Result<(), String> {
        Ok(())
    }

    fn merge(first: &Undo, newer: Undo) -> Undo {
        Undo { applied: newer.applied, prior: first.prior.clone() }
    }
}

fn decide(specs: &[RouteSpec], live: &Live) -> Vec<Decision> {
    if specs.is_empty() {
        return vec![];
    }
    let have = match &live.routes {
        Ok(r) => r,
        Err(e) => return vec![Decision::failed("routes", "read routes", e)],
    };
    specs
        .iter()
        .map(|r| {
            let key = Key::Route(r.destination);
            let want = RouteFact {
                destination: r.destination,
                gateway: r.gateway,
                dev: r.dev.clone(),
                metric: slot_metric(r.destination),
                protocol: RTPROT_LVSCTL,
                scope: 0,
                prefsrc: None,
                advmss: r.advmss,
            };
            let slot: Vec<&RouteFact> = have
                .iter()
                .filter(|h| h.destination == r.destination && h.metric == slot_metric(r.destination))
                .collect();
            if slot
                .iter()
                .any(|h| h.gateway == r.gateway && (r.dev.is_none() || h.dev == r.dev) && h.advmss == r.advmss)
            {
                return Decision::same(key, "is in place");
            }
            let after = want.describe();
            if let Some(why) = cuts_ssh(r, have, &live.session) {
                let before = slot.first().map_or("absent".to_string(), |o| o.describe());
                return Decision::Blocked {
                    object: key.to_string(),
                    before,
                    after,
                    reason: r.reason.clone(),
                    error: why,
                };
            }
            let (before, prior, replace) = match slot.first() {
                Some(old) => (old.describe(), Some((*old).clone()), true),
                None => ("absent".to_string(), None, false),
            };
            let record = AnyUndo::Route(Undo { applied: want.clone(), prior });
            Decision::change(
                key,
                before,
                after,
                &r.reason,
                Some(record),
                AnyAction::Route(Action::Add { route: want, replace }),
            )
        })
        .collect()
}

/// The route the kernel picks for `to` among `routes`: the longest prefix, then the lowest metric.
fn route_for(to: std::net::IpAddr, routes: &[RouteFact]) -> Option<&RouteFact> {
    routes
        .iter()
        .filter(|r| r.destination.contains(&to))
        .min_by_key(|r| (std::cmp::Reverse(r.destination.prefix_len()), r.metric))
}

/// Why adding the planned default route would re-route the SSH session lvsctl arrives on: its
/// client is reached through a default route today, and the planned one (metric 0, so it wins over
/// every other default) goes through another gateway. None when it is safe, or `--force` was given.
fn cuts_ssh(spec: &RouteSpec, have: &[RouteFact], session: &super::Session) -> Option<String> {
    let peer = session.ssh_peer?;
    if session.force || spec.destination.prefix_len() != 0 || !spec.destination.contains(&peer) {
        return None;
    }
    let carrier = route_for(peer, have)?;
    if carrier.destination.prefix_len() != 0 || (carrier.gateway == spec.gateway && spec.gateway.is_some()) {
        return None;
    }
    Some(format!(
        "the SSH session lvsctl arrives on comes from {peer}, which this host reaches through its default route ({}); \
         the planned default route{} would send it elsewhere and could cut lvsctl off this host. \
         Make sure {peer} stays reachable another way (a route of its own, or an ssh address on a subnet this host is on), \
         then run `lvsctl up --force` to replace it anyway",
        carrier.describe(),
        spec.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
    ))
}

fn undo(u: &Undo, live: &Live) -> Decision {
    let applied = &u.applied;
    let key = Key::Route(applied.destination);
    let have = match &live.routes {
        Ok(r) => r,
        Err(e) => return Decision::failed(&key, "undo what lvsctl changed", e),
    };
    let current = have.iter().find(|h| h.destination == applied.destination && h.metric == applied.metric);
    let add = |p: &RouteFact, replace: bool| AnyAction::Route(Action::Add { route: p.clone(), replace });
    match (current, &u.prior) {
        (Some(c), _) if !(c.gateway == applied.gateway && c.protocol == RTPROT_LVSCTL) => {
            Decision::Keep { key, why: format!("now {}, not the route lvsctl set: left as it is", c.describe()) }
        }
        (Some(c), Some(p)) => Decision::revert(key, c.describe(), p.describe(), add(p, true)),
        (Some(c), None) => Decision::revert(key, c.describe(), "absent", AnyAction::Route(Action::Del(c.clone()))),
        (None, Some(p)) => Decision::revert(key, "absent", p.describe(), add(p, false)),
        (None, None) => Decision::same(key, "is absent"),
    }
}

fn show(r: &RouteSpec) -> super::Line {
    let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    let dev = r.dev.as_deref().map(|d| format!(" dev {d}")).unwrap_or_default();
    let mss = r.advmss.map(|m| format!(" advmss {m}")).unwrap_or_default();
    ("route", format!("{}{via}{dev}{mss}", destination(r.destination)), r.reason.clone())
}
