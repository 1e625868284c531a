//! What `--output json` and `--output jsonl` print: one type per command, and the schemas
//! `lvsctl schema COMMAND` prints are generated from these very types, so the two cannot differ.
//!
//! Names are the same for the same objects everywhere: a virtual service is `protocol`, `vip`,
//! `port`, `scheduler`, `persistence` and `destinations` (each `address`, `port`, `forward`,
//! `weight`) in `plan` and in `status`; durations are milliseconds (`*_ms`); file modes are octal
//! strings (`"0644"`).

use schemars::JsonSchema;
use serde::Serialize;

use crate::agent::protocol::ChangeEvent;
use crate::host::IpvsService;
use crate::output::{Envelope, SCHEMA_VERSION};

/// A command's whole JSON: the envelope, then the command's own fields.
#[derive(Serialize, JsonSchema)]
pub struct Output<'a, B> {
    #[serde(flatten)]
    pub envelope: Envelope<'a>,
    #[serde(flatten)]
    pub body: B,
}

impl<'a, B: Serialize> Output<'a, B> {
    pub fn new(command: &'a str, lab: Option<&'a str>, ok: bool, body: B) -> Self {
        Output { envelope: Envelope::new(command, lab, ok), body }
    }

    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("serializes")
    }
}

/// `plan`: the desired state of every host.
#[derive(Serialize, JsonSchema)]
pub struct PlanBody<'a> {
    pub hosts: &'a [crate::plan::HostPlan],
}

/// `check --output json`: the envelope every command's JSON shares, with the inventory's problems
/// (each located by file, line and column) or, when it is valid, what it holds.
#[derive(Serialize, JsonSchema)]
pub struct CheckBody<'a> {
    pub inventory: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    pub hosts: Vec<HostLine<'a>>,
    pub services: usize,
    pub diagnostics: Vec<Problem<'a>>,
}

#[derive(Serialize, JsonSchema)]
pub struct HostLine<'a> {
    pub host: &'a str,
    pub role: String,
}

/// One diagnostic for programs: where (1-based line and column, and the column after the
/// marked text) and what, with the key path and the help line.
#[derive(Serialize, JsonSchema)]
pub struct Problem<'a> {
    pub severity: &'static str,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_column: usize,
    pub key: &'a str,
    pub message: &'a str,
    pub help: Option<&'a str>,
}

/// `render --output json`.
#[derive(Serialize, JsonSchema)]
pub struct RenderBody {
    pub hosts: Vec<HostFiles>,
}

#[derive(Serialize, JsonSchema)]
pub struct HostFiles {
    pub host: String,
    pub files: Vec<FileJson>,
}

/// One rendered file: where it goes on the host, its mode as an octal string ("0644"), its size
/// and sha256, where `--out` wrote it, and its text.
#[derive(Serialize, JsonSchema)]
pub struct FileJson {
    pub path: String,
    pub mode: String,
    pub bytes: usize,
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    pub content: String,
}

/// `up`, `down` and `status`: what each host did (or would do, or differs in).
#[derive(Serialize, JsonSchema)]
pub struct RunBody {
    pub hosts: Vec<HostOutcome>,
    /// A dry run's pending changes, as terraform counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanCounts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PlanCounts {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
}

/// One host's result.
#[derive(Serialize, JsonSchema)]
pub struct HostOutcome {
    pub host: String,
    /// Nothing failed on this host.
    pub ok: bool,
    /// It could not be reached (nothing was done on it).
    pub unreachable: bool,
    /// Why the host could not be worked on (unreachable, or the agent failed as a whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time on this host, connecting included.
    pub duration_ms: u64,
    /// What the agent reported; none when it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<HostReport>,
    /// Every item the host changed, would change, or found drifted, kept or failed, in order.
    pub events: Vec<ChangeEvent>,
}

/// What the agent on one host reported.
#[derive(Serialize, JsonSchema)]
pub struct HostReport {
    /// Items changed (up, down), pending (a dry run) or drifted (status).
    pub changes: u32,
    pub failed: u32,
    /// Items left as they are because someone else changed them since lvsctl did.
    pub kept: u32,
    /// Items already as planned.
    pub unchanged: u32,
    pub notes: Vec<String>,
    /// Problems that stopped the whole operation on this host.
    pub errors: Vec<String>,
    /// The agent's own time on the host.
    pub duration_ms: u64,
    /// Entries left in the host's journal afterwards (what `down` would undo).
    pub journal_entries: u32,
    /// status: the director's IPVS table, in the names `plan` uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipvs: Option<Vec<ServiceState>>,
    /// status: what keepalived is doing on a director that runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalived: Option<crate::agent::ha::KeepalivedStatus>,
    /// status: the director's IPVS connection timeouts as they are (seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipvs_timeouts: Option<crate::plan::IpvsTimeouts>,
    /// status: the real servers `lvsctl drain` keeps drained on the director.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drained: Vec<DrainedState>,
}

/// A real server kept drained on a director (`lvsctl drain`), until `lvsctl undrain`.
#[derive(Serialize, JsonSchema)]
pub struct DrainedState {
    pub host: String,
    /// When the drain began: seconds since the epoch, and the same in UTC.
    pub since: u64,
    pub since_utc: String,
    /// The services it is drained from.
    pub services: Vec<ServiceIdent>,
    /// Taken out of the table (`drain --remove`), not only at weight 0.
    pub removed: bool,
}

/// A virtual service as the kernel has it: `plan`'s fields, and its counters.
#[derive(Serialize, JsonSchema)]
pub struct ServiceState {
    #[serde(flatten)]
    pub service: ServiceIdent,
    pub scheduler: String,
    /// Persistence timeout in seconds; 0 = off.
    pub persistence: u32,
    /// An IPv4 netmask (`"255.255.255.0"`) or an IPv6 prefix length (`64`).
    pub netmask: Option<crate::ipvs::Netmask>,
    pub destinations: Vec<DestState>,
    /// Counted since the service was added.
    pub stats: crate::ipvs::Stats,
}

/// What identifies a service: its protocol, VIP and port, or its firewall mark and family.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ServiceIdent {
    Addr { protocol: crate::ipvs::Protocol, vip: std::net::IpAddr, port: u16 },
    Mark { fwmark: u32, family: crate::ipvs::Family },
}

impl From<crate::ipvs::ServiceKey> for ServiceIdent {
    fn from(k: crate::ipvs::ServiceKey) -> ServiceIdent {
        match k {
            crate::ipvs::ServiceKey::Addr { protocol, addr, port } => ServiceIdent::Addr { protocol, vip: addr, port },
            crate::ipvs::ServiceKey::Mark { fwmark, ipv6 } => {
                ServiceIdent::Mark { fwmark, family: crate::ipvs::Family::of(ipv6) }
            }
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub struct DestState {
    /// The inventory host at this address, when the plan has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub address: std::net::IpAddr,
    pub port: u16,
    /// `masq`, `route` or `tunnel` (as in the plan), or `local`.
    pub forward: String,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: crate::ipvs::Stats,
}

impl ServiceState {
    /// The kernel's table in the plan's names; `host_of` names the inventory host at an address.
    pub fn of(s: &IpvsService, host_of: &dyn Fn(std::net::IpAddr) -> Option<String>) -> ServiceState {
        let c = &s.entry.config;
        let persistent = c.flags & crate::ipvs::SVC_F_PERSISTENT != 0;
        ServiceState {
            service: s.entry.key.into(),
            scheduler: c.scheduler.clone(),
            persistence: if persistent { c.timeout } else { 0 },
            netmask: (persistent && c.netmask != crate::ipvs::Netmask::host(s.entry.key.is_ipv6()))
                .then_some(c.netmask),
            destinations: s
                .dests
                .iter()
                .map(|d| DestState {
                    host: host_of(d.key.addr),
                    address: d.key.addr,
                    port: d.key.port,
                    forward: crate::ipvs::fwd_name(d.config.fwd).to_string(),
                    weight: d.config.weight,
                    u_threshold: d.config.u_threshold,
                    l_threshold: d.config.l_threshold,
                    active_conns: d.active_conns,
                    inactive_conns: d.inact_conns,
                    persistent_conns: d.persist_conns,
                    stats: d.stats,
                })
                .collect(),
            stats: s.entry.stats,
        }
    }
}

/// `doctor`: the hosts it asked and what it found.
#[derive(Serialize, JsonSchema)]
pub struct DoctorBody<'a> {
    pub hosts: Vec<&'a str>,
    pub findings: &'a [crate::doctor::Finding],
}

/// `verify`: each service's traffic split, and the failover when asked.
#[derive(Serialize, JsonSchema)]
pub struct VerifyBody<'a> {
    pub services: &'a [crate::judge::ServiceResult],
    pub failover: Option<&'a crate::judge::failover::Failover>,
}

/// `trace`: one request's walk from the client to a real server and back, hop by hop.
#[derive(Serialize, JsonSchema)]
pub struct TraceBody<'a> {
    /// The service, as verify names it.
    pub service: String,
    pub mode: &'a str,
    pub client: &'a str,
    /// The client's source port: the probe's packets are those with it.
    pub client_port: u16,
    /// What the client's request got back (the body, or the error).
    pub answer: Option<String>,
    #[serde(flatten)]
    pub walk: &'a crate::packets::walk::Walked,
    /// Packets of the probe's flow each host captured (every hop, retransmissions, the rest of
    /// the connection).
    pub captured: std::collections::BTreeMap<String, u32>,
}

/// One line of `--output jsonl`: the events as they happen, then one line per host when it is
/// done, then the end with the envelope's fields.
#[derive(Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StreamLine<'a> {
    /// An item changed, would change, drifted, was kept or failed on a host.
    Change {
        host: &'a str,
        #[serde(flatten)]
        change: &'a ChangeEvent,
    },
    /// Something a host wants the user to know.
    Note { host: &'a str, message: &'a str },
    /// `drain`: the drained real server's connections on a director, as they fall.
    Drain {
        host: &'a str,
        #[serde(flatten)]
        progress: &'a crate::agent::protocol::DrainProgress,
    },
    /// A host is done.
    Host(&'a HostOutcome),
    /// The command is done: the envelope, and a dry run's counts.
    End {
        #[serde(flatten)]
        envelope: Envelope<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        plan: Option<PlanCounts>,
    },
}

/// The commands `lvsctl schema` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaOf {
    Check,
    Plan,
    Render,
    Up,
    Down,
    Status,
    Verify,
    Doctor,
    Trace,
    /// The lines of `--output jsonl` (up, down, status).
    Events,
}

impl SchemaOf {
    pub const ALL: [SchemaOf; 10] = [
        SchemaOf::Check,
        SchemaOf::Plan,
        SchemaOf::Render,
        SchemaOf::Up,
        SchemaOf::Down,
        SchemaOf::Status,
        SchemaOf::Verify,
        SchemaOf::Doctor,
        SchemaOf::Trace,
        SchemaOf::Events,
    ];

    /// As `lvsctl schema NAME` takes it, and as the schema's title says it.
    pub fn name(self) -> &'static str {
        match self {
            SchemaOf::Check => "check",
            SchemaOf::Plan => "plan",
            SchemaOf::Render => "render",
            SchemaOf::Up => "up",
            SchemaOf::Down => "down",
            SchemaOf::Status => "status",
            SchemaOf::Verify => "verify",
            SchemaOf::Doctor => "doctor",
            SchemaOf::Trace => "trace",
            SchemaOf::Events => "events",
        }
    }

    /// What it describes, where the name does not say it.
    pub fn about(self) -> Option<&'static str> {
        (self == SchemaOf::Events).then_some("The lines of `--output jsonl` (up, down, status)")
    }

    pub fn named(name: &str) -> Option<SchemaOf> {
        SchemaOf::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The JSON Schema (draft 2020-12) of a command's `--output json`.
pub fn schema(of: SchemaOf) -> serde_json::Value {
    let s = match of {
        SchemaOf::Check => schemars::schema_for!(Output<CheckBody>),
        SchemaOf::Plan => schemars::schema_for!(Output<PlanBody>),
        SchemaOf::Render => schemars::schema_for!(Output<RenderBody>),
        SchemaOf::Up | SchemaOf::Down | SchemaOf::Status => schemars::schema_for!(Output<RunBody>),
        SchemaOf::Verify => schemars::schema_for!(Output<VerifyBody>),
        SchemaOf::Doctor => schemars::schema_for!(Output<DoctorBody>),
        SchemaOf::Trace => schemars::schema_for!(Output<TraceBody>),
        SchemaOf::Events => schemars::schema_for!(StreamLine),
    };
    let mut v = s.to_value();
    let name = of.name();
    if of == SchemaOf::Events {
        v["title"] = format!("lvsctl up|down|status --output jsonl, one line (schema_version {SCHEMA_VERSION})").into();
    } else {
        v["title"] = format!("lvsctl {name} --output json (schema_version {SCHEMA_VERSION})").into();
        // The document names its command: a status document is not an up document.
        v["properties"]["command"] = serde_json::json!({ "const": name });
        v["properties"]["schema_version"] = serde_json::json!({ "const": SCHEMA_VERSION });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::*;

    /// A sticky service expects no share: null in verify's JSON, which its schema allows.
    #[test]
    fn a_sticky_services_expected_share_is_null_and_valid() {
        let lab =
            crate::inventory::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/dr.toml")))
                .unwrap();
        let mut s = lab.services[0].clone();
        s.ipvs.persistence = 300;
        let answers: Vec<crate::agent::probe::Answer> = (0..20)
            .map(|_| crate::agent::probe::Answer { body: Some("web2".into()), from: None, error: None, ms: 1 })
            .collect();
        let r = crate::judge::judge(&s, &answers, &None, &None);
        assert!(r.ok(), "{:?}", r.problems);
        let body = VerifyBody { services: std::slice::from_ref(&r), failover: None };
        let doc = serde_json::to_value(Output::new("verify", Some("t"), true, body)).unwrap();
        assert!(doc["services"][0]["real_servers"][0]["expected"].is_null(), "{doc}");
        let v = jsonschema::validator_for(&schema(SchemaOf::Verify)).unwrap();
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    fn keys(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// A service read from the kernel (status) carries every field of the planned one (plan) under
    /// the same name, with the same values for the same service: no codec shape leaks out.
    #[test]
    fn status_names_a_service_as_plan_does() {
        let lab =
            crate::inventory::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/inventories/dr.toml")))
                .unwrap();
        let templates = crate::templates::Templates::load(None).unwrap();
        let ctx = crate::plan::Context { agent_path: "/x".into(), templates: &templates };
        let plans = crate::plan::plan(&lab, &ctx).unwrap();
        let spec = plans.iter().find_map(|p| p.ipvs.first()).expect("a director with a service");
        let kernel = IpvsService {
            entry: ServiceEntry {
                key: ServiceKey::addr(spec.ipvs.protocol, spec.ipvs.vip, spec.ipvs.port),
                config: ServiceConfig::persistent(&spec.ipvs.scheduler, spec.ipvs.persistence, spec.ipvs.netmask),
                stats: Stats::default(),
            },
            dests: spec
                .destinations
                .iter()
                .map(|d| DestEntry {
                    key: DestKey { addr: d.address, port: d.port },
                    config: d.config(),
                    active_conns: 0,
                    inact_conns: 0,
                    persist_conns: 0,
                    stats: Stats::default(),
                })
                .collect(),
        };
        let host_of = |a| lab.host_with_ip(a).map(|h| h.name.clone());
        let state = serde_json::to_value(ServiceState::of(&kernel, &host_of)).unwrap();
        let planned = serde_json::to_value(spec).unwrap();
        let mut shared = keys(&planned);
        shared.remove("reason");
        // The inventory's name for the service, which the kernel does not keep.
        shared.remove("name");
        for k in &shared {
            if k == "destinations" {
                continue;
            }
            assert_eq!(state[k], planned[k], "{k}");
        }
        assert!(shared.is_subset(&keys(&state)), "{shared:?} vs {:?}", keys(&state));
        for (s, p) in state["destinations"].as_array().unwrap().iter().zip(planned["destinations"].as_array().unwrap())
        {
            for k in keys(p) {
                assert_eq!(s[&k], p[&k], "destination {k}");
            }
        }
    }
}
