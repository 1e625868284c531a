//! What `verify` and `verify --failover` share: the directors' facts, and the client's requests
//! with the director's counters read around them, judged by `crate::judge`.

use std::sync::Arc;
use std::time::Duration;

use super::fleet::Job;
use super::outcome::Outcome;
use super::printer::Printer;
use crate::agent::facts::{CountedWait, FactsRequest};
use crate::agent::probe::{ProbeRequest, ProbeTarget};
use crate::agent::protocol::{Operation, Request};
use crate::cli::VerifyArgs;
use crate::exit::Exit;
use crate::host::IpvsService;
use crate::inventory::{Lab, Service};
use crate::ipvs::ServiceKey;
use crate::judge::{ServiceResult, counted_by_now, judge, persistence_across_ports, probe_targets, probe_units};

/// How long the director may take to count the run's packets (three of IPVS's two-second sums,
/// with room for a loaded machine).
const COUNTED_WAIT: Duration = Duration::from_millis(7500);

/// A director's facts as verify reads them: its IPVS table, and the client ports it holds
/// connection entries for to every (VIP, port) verify sends to.
pub fn facts_job(lab: &Lab, host: &crate::inventory::Host) -> Job {
    let held_ports =
        probe_units(lab).iter().map(|s| ServiceKey::addr(s.ipvs.protocol, s.ipvs.vip, s.ipvs.port)).collect();
    let facts = FactsRequest { held_ports, ..Default::default() };
    let request = Request::new(&lab.name, &host.name, Operation::Facts { plan: None, facts });
    Job { host: host.name.clone(), ssh: host.ssh.clone(), request }
}

pub fn ipvs_of(outcomes: &[Outcome]) -> Option<Vec<IpvsService>> {
    outcomes.first()?.result.as_ref().ok()?.facts()?.ipvs.clone()
}

fn held_of(outcomes: &[Outcome]) -> Held {
    outcomes.first().and_then(|o| o.result.as_ref().ok()?.facts().map(held)).unwrap_or_default()
}

fn held(f: &crate::agent::facts::HostFacts) -> Held {
    f.held_ports.iter().cloned().collect()
}

/// Client ports a director holds connection entries for, by (protocol, VIP, port): a request
/// from one goes where its entry points (IPVS schedules only new connections), so verify sends
/// from others.
pub type Held = std::collections::BTreeMap<ServiceKey, Vec<u16>>;

/// A director as verify sees it: its IPVS table and its addresses.
#[derive(Debug, Clone)]
pub struct DirectorView<'h> {
    pub host: &'h str,
    pub table: Option<Vec<IpvsService>>,
    pub addresses: Vec<std::net::IpAddr>,
    /// The real servers `lvsctl drain` keeps drained there.
    pub drained: Drains,
    pub held: Held,
}

/// Drained real servers by host name, as a director keeps them.
pub type Drains = std::collections::BTreeMap<String, crate::agent::protocol::Drained>;

/// The director whose addresses include every VIP (None when none, or more than one, does).
pub fn active_director<'a>(lab: &'a Lab, facts: &[DirectorView]) -> Option<&'a crate::inventory::Host> {
    let holders: Vec<&str> = facts
        .iter()
        .filter(|d| lab.services.iter().all(|s| s.vips().iter().all(|v| d.addresses.contains(v))))
        .map(|d| d.host)
        .collect();
    match holders.as_slice() {
        [one] => lab.host(one),
        _ => None,
    }
}

/// What verify needs to talk to the hosts.
pub struct Verifier<'a> {
    pub lab: &'a Lab,
    pub session: &'a super::Session,
    pub client: &'a crate::inventory::Host,
    pub printer: Arc<Printer>,
    pub args: &'a VerifyArgs,
}

impl Verifier<'_> {
    /// Each director's IPVS table and addresses, read together.
    pub fn director_facts<'h>(&self, directors: Vec<&'h crate::inventory::Host>) -> Vec<DirectorView<'h>> {
        let jobs: Vec<Job> = directors.iter().map(|d| facts_job(self.lab, d)).collect();
        let outcomes = self.session.run(jobs, self.printer.clone());
        directors
            .iter()
            .map(|d| {
                let f =
                    outcomes.iter().find(|o| o.host == d.name).and_then(|o| o.result.as_ref().ok()?.facts().cloned());
                let table = f.as_ref().and_then(|f| f.ipvs.clone());
                let drained = f.as_ref().map(|f| f.drained.clone()).unwrap_or_default();
                let held = f.as_ref().map(held).unwrap_or_default();
                let addrs = f.map(|f| f.addresses.iter().map(|a| a.address.addr()).collect()).unwrap_or_default();
                DirectorView { host: d.name.as_str(), table, addresses: addrs, drained, held }
            })
            .collect()
    }

    /// Requests from the client to every service, each answer attributed and the split judged,
    /// with `director`'s counters read around them (`view`: what was read of it already) and
    /// its drains honoured (a drained real server is expected to get nothing). The client sends
    /// from ports the director holds no connection entry for.
    pub fn split(
        &self,
        director: Option<&crate::inventory::Host>,
        view: Option<&DirectorView>,
    ) -> anyhow::Result<Vec<ServiceResult>> {
        let (lab, client, args) = (self.lab, self.client, self.args);
        let drained = &view.map(|d| d.drained.clone()).unwrap_or_default();
        let (services, mut targets) = probe_targets(lab, args.requests, args.timeout);
        eprintln!(
            "verify: {} requests to each of {} from {}{}",
            args.requests,
            crate::plural(services.len(), "service"),
            client.name,
            match director {
                Some(d) => format!(", reading {}'s IPVS counters before and after", d.name),
                None => String::new(),
            }
        );
        let director_job = director.map(|d| facts_job(lab, d));
        let (before_t, held) = match (&director_job, view.and_then(|v| v.table.clone())) {
            (_, Some(t)) => (Some(t), view.map(|v| v.held.clone()).unwrap_or_default()),
            (Some(j), None) => {
                let o = self.session.run(vec![j.clone()], self.printer.clone());
                (ipvs_of(&o), held_of(&o))
            }
            (None, None) => (None, Held::new()),
        };
        let avoided = avoid_held(&services, &mut targets, &held);
        if let Some(d) = director.filter(|_| avoided.iter().any(|n| *n > 0)) {
            eprintln!(
                "verify: {} still holds connection entries for {} of the client's ports (a request from one goes where \
                 its entry points): the client sends from other ports",
                d.name,
                avoided.iter().sum::<usize>()
            );
        }
        let probe = ProbeRequest { targets, ..Default::default() };
        let probe = Request::new(&lab.name, &client.name, Operation::Probe { probe });
        let probed = self.session.run(
            vec![Job { host: client.name.clone(), ssh: client.ssh.clone(), request: probe }],
            self.printer.clone(),
        );
        let report = match &probed[0].result {
            Ok(r) => r.clone(),
            Err(e) => {
                return Err(Exit::new(
                    super::fleet::exit_code(&probed),
                    format!("cannot send requests from {}: {e}", client.name),
                )
                .into());
            }
        };
        let answers = report.probe().map(|p| p.answers.clone()).unwrap_or_default();
        // keepalived decides which real servers take part: the split expected is among those
        // the director's table holds (a failed one is reported down, not as a failure).
        let effective: Vec<Service> =
            services.iter().map(|s| with_drains(&with_health(s, before_t.as_deref()), drained)).collect();
        let services: Vec<&Service> = services.iter().collect();
        // IPVS sums its counters every two seconds (later on a loaded machine): the director
        // answers once its counters account for the answers, or after COUNTED_WAIT (answers that
        // bypassed it are never counted: judged below).
        let after = director_job.map(|mut j| {
            if let Operation::Facts { facts, .. } = &mut j.request.op {
                facts.held_ports.clear();
                facts.ipvs_counted = Some(CountedWait {
                    inpkts: counted_by_now(&effective, &answers, &before_t),
                    max_ms: COUNTED_WAIT.as_millis() as u64,
                });
            }
            self.session.run(vec![j], self.printer.clone())
        });
        let after_t = after.as_deref().and_then(ipvs_of);
        if director.is_some() && (before_t.is_none() || after_t.is_none()) {
            let why = after
                .as_ref()
                .and_then(|o| o[0].result.as_ref().err().map(|e| e.to_string()))
                .unwrap_or_else(|| "IPVS is not loaded".into());
            eprintln!(
                "verify: no IPVS counters from the director ({why}): answers are attributed by their bodies only"
            );
        }
        let mut results: Vec<ServiceResult> = effective
            .iter()
            .zip(answers.iter())
            .zip(avoided)
            .map(|((s, a), avoided)| {
                let mut r = judge(s, a, &before_t, &after_t);
                r.client_ports_avoided = avoided as u64;
                mark_down(&mut r, s, services.iter().find(|x| x.index == s.index).copied());
                mark_drained(&mut r, s, drained);
                r
            })
            .collect();
        persistence_across_ports(&mut results, &effective);
        Ok(results)
    }
}

/// Each target's requests avoid the client ports `held` names for its service (the targets
/// are `services`' in order); how many each avoids.
fn avoid_held(services: &[Service], targets: &mut [ProbeTarget], held: &Held) -> Vec<usize> {
    services
        .iter()
        .zip(targets.iter_mut())
        .map(|(s, t)| {
            let key = ServiceKey::addr(s.ipvs.protocol, t.address, t.port);
            t.avoid_ports = held.get(&key).cloned().unwrap_or_default();
            t.avoid_ports.len()
        })
        .collect()
}

/// A service keepalived checks, as its table shows it now: real servers it took out (or
/// quiesced) get weight 0, and its sorry server, when in the table, becomes one more real server.
pub fn with_health(s: &Service, table: Option<&[IpvsService]>) -> Service {
    let mut e = s.clone();
    let Some(table) = table.filter(|_| s.keepalived_managed()) else { return e };
    for b in &mut e.real_servers {
        if super::status::Health::of(table, s, b.address, b.port) != super::status::Health::Healthy {
            b.weight = 0;
        }
    }
    if let Some(x) = &s.sorry_server
        && super::status::Health::of(table, s, x.address, x.port) == super::status::Health::Healthy
    {
        e.real_servers.push(crate::inventory::Backend {
            host: x.host.clone().unwrap_or_else(|| x.address.to_string()),
            address: x.address,
            port: x.port,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        });
    }
    e
}

/// A service as `lvsctl drain` left it on the director: its drained real servers at weight 0
/// (taken out or not, they must get no new connection).
pub fn with_drains(s: &Service, drained: &Drains) -> Service {
    let mut e = s.clone();
    for b in &mut e.real_servers {
        if drained.get(&b.host).is_some_and(|d| d.services.contains(&s.key())) {
            b.weight = 0;
        }
    }
    e
}

/// Drained real servers that got nothing are reported as drained (one that answered stays a
/// failure: weight 0 takes no new connection).
fn mark_drained(r: &mut ServiceResult, s: &Service, drained: &Drains) {
    for x in &mut r.real_servers {
        if let Some(d) = drained.get(&x.host).filter(|d| d.services.contains(&s.key()))
            && x.answered == 0
        {
            let how = if d.removed { "taken out" } else { "weight 0" };
            x.verdict = format!("DRAINED since {} ({how}; `lvsctl undrain` gives it back)", d.since_utc());
        }
    }
}

/// Real servers keepalived took out are reported as down, not as a failure.
fn mark_down(r: &mut ServiceResult, effective: &Service, original: Option<&Service>) {
    let Some(original) = original.filter(|o| o.keepalived_managed()) else { return };
    for x in &mut r.real_servers {
        let was = original.real_servers.iter().find(|b| b.host == x.host);
        let now = effective.real_servers.iter().find(|b| b.host == x.host);
        if let (Some(was), Some(now)) = (was, now)
            && was.weight > 0
            && now.weight == 0
            && x.answered == 0
        {
            x.verdict = "DOWN: its health check fails (keepalived took it out)".into();
        }
        if original
            .sorry_server
            .as_ref()
            .is_some_and(|s| s.host.as_deref() == Some(&x.host) || s.address.to_string() == x.host)
        {
            x.verdict = format!("{} (sorry server: every real server is down)", x.verdict);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::probe::Answer;
    use crate::agent::protocol::Drained;

    fn web() -> Service {
        let lab =
            crate::inventory::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/dr.toml")))
                .unwrap();
        lab.services[0].clone()
    }

    fn answers(names: &[(&str, u32)]) -> Vec<Answer> {
        names
            .iter()
            .flat_map(|(n, k)| {
                (0..*k).map(move |_| Answer { body: Some(n.to_string()), from: None, error: None, ms: 1 })
            })
            .collect()
    }

    /// verify expects nothing of a drained real server and says since when it is drained; one
    /// that still answers is a failure; a drain from another service changes nothing here.
    #[test]
    fn a_drained_real_server_is_expected_to_get_nothing() {
        let s = web();
        assert_eq!(s.real_servers.iter().map(|b| b.weight).collect::<Vec<_>>(), [3, 1], "dr.toml's weights");
        let mut d = Drains::new();
        d.insert("web1".into(), Drained { since: 1_796_407_560, services: vec![s.key()], removed: false });
        let e = with_drains(&s, &d);
        let mut r = judge(&e, &answers(&[("web2", 8)]), &None, &None);
        mark_drained(&mut r, &s, &d);
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(
            r.real_servers[0].verdict,
            "DRAINED since 2026-12-04 18:06:00 UTC (weight 0; `lvsctl undrain` gives it back)"
        );

        let mut r = judge(&e, &answers(&[("web1", 2), ("web2", 6)]), &None, &None);
        mark_drained(&mut r, &s, &d);
        assert!(!r.ok() && r.real_servers[0].verdict.starts_with("UNEXPECTED"), "{:?}", r.real_servers[0]);

        let other = crate::ipvs::ServiceKey::addr(crate::ipvs::Protocol::Udp, s.ipvs.vip, 53);
        d.get_mut("web1").unwrap().services = vec![other];
        assert_eq!(with_drains(&s, &d).real_servers[0].weight, 3);
    }
}
