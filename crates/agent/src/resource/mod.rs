//! Everything lvsctl manages on a host, one file per kind of object. Each kind implements
//! `Kind`: its identity, its journal record, its action, what it reads, the pure decision
//! (desired state + live facts + journal → a change, or a no-op with its reason), how the change
//! is made (`act`), how it is undone from the journal, how it is checked and how it is shown.
//! The `kinds!` list below registers each kind by one line; the `Key`, `Undo` and `Action` enums
//! and every dispatch over kinds (`registry.rs`) follow from it.
//!
//! The agent's executor (`agent::apply`) walks `STAGES` in order: for each stage it reads the
//! facts the stage's kinds need (`wants` → `Live::read`), asks them for decisions (`decide`), and,
//! when applying, executes them. Dry runs and `status` stop after `decide`. Nothing in this module
//! writes to the host except the kinds' `act`, which only the executor calls.
//!
//! Adding a kind: a file here with a type that implements `Kind` (and its tests), one line in
//! `kinds!`, a stage in `STAGES` if none fits, and a field in `Wants`/`Live` if it reads a fact
//! no kind reads yet. README, "Adding a kind", walks through it.

pub mod address;
pub mod daemon;
mod decision;
pub mod dir;
pub mod exporter;
pub mod file;
pub mod gue_port;
pub mod ipvs_dest;
pub mod ipvs_service;
pub mod ipvs_timeouts;
pub mod link;
pub mod module;
pub mod nft;
mod registry;
pub mod route;
pub mod sysctl;
#[cfg(test)]
mod tests;
pub mod unit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::host::{AddrFact, FileFact, IpvsService, RouteFact, System};
use crate::ipvs::{DestKey, ServiceKey};
use crate::plan::HostPlan;

/// What the caller wants done with the decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Make the changes (`up`, `down`, the boot unit).
    Apply,
    /// Say what would change (`up --dry-run`).
    DryRun,
    /// Compare: differences are drift (`status`).
    Check,
}

/// Which objects an operation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (`up`, `down`).
    All,
    /// Kernel state only (the boot unit's start and stop): files and the unit stay.
    Runtime,
}

/// A `plan` line: (kind, item, reason).
pub type Line = (&'static str, String, String);

/// One kind of object lvsctl manages, everything about it in one file; registered in `kinds!`.
/// All of it is pure except `act` and `prepare`, which only the executor calls.
pub trait Kind {
    /// The identity of one object: the journal holds at most one entry per identity.
    type Id: fmt::Debug + Clone + PartialEq + Eq + PartialOrd + Ord + std::hash::Hash;
    /// How one change is undone: the journal's entry. Its serde shape is what journals on hosts
    /// hold (the journal-v1 fixture guards it).
    type Record: fmt::Debug + Clone + PartialEq + Eq + Serialize + serde::de::DeserializeOwned;
    /// One effect on the host, as data.
    type Action: fmt::Debug + Clone + PartialEq + Eq;
    /// When it is applied.
    const STAGE: Stage;
    /// Whether its objects are runtime state, which a reboot loses and the boot unit's start and
    /// stop make and undo; false for what is on disk (files, the unit).
    const RUNTIME: bool = true;

    /// How an object is named in messages (`sysctl net.ipv4.ip_forward`).
    fn fmt_id(id: &Self::Id, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// The object a record undoes.
    fn id(record: &Self::Record) -> Self::Id;
    /// Every object of this kind the plan wants: journal entries of others are stale.
    fn desired(plan: &HostPlan) -> Vec<Self::Id>;
    /// What its decisions read.
    fn wants(plan: &HostPlan, w: &mut Wants);
    /// A decision per object of the plan, in order: from the plan, the live facts and the journal.
    fn decide(plan: &HostPlan, live: &Live, journal: &dyn Recorded, intent: Intent) -> Vec<Decision>;
    /// `lvsctl plan`'s lines for its objects.
    fn show(plan: &HostPlan) -> Vec<Line>;
    /// What undoing a record reads.
    fn undo_wants(record: &Self::Record, w: &mut Wants);
    /// How to undo a record, given the live state.
    fn undo(record: &Self::Record, live: &Live) -> Decision;
    /// Whether an action adds, changes or removes (the diff's `+`, `~` and `-`).
    fn sign(action: &Self::Action) -> ChangeKind;
    /// Performs one action. A kind that learns something only by acting (which modules a load
    /// brought in) returns a refined record to journal.
    fn act<S: System>(sys: &mut S, action: &Self::Action, backups: &dyn Backups) -> io::Result<Option<Self::Record>>;
    /// Whether lvsctl of lab `lab` can have written this record (see `Undo::check`).
    fn check(record: &Self::Record, lab: &str, root: &std::path::Path) -> Result<(), String>;
    /// The record of an object changed again: what `down` gives back stays the first prior.
    fn merge(first: &Self::Record, newer: Self::Record) -> Self::Record;
    /// Work before the record is journaled (a file's backup).
    fn prepare<S: System>(
        _sys: &mut S,
        _action: &Self::Action,
        _record: &mut Self::Record,
        _backups: &mut dyn Backups,
    ) -> io::Result<()> {
        Ok(())
    }
    /// The IPVS change an action is, if it is one: those are made in batches.
    fn ipvs_op(_action: &Self::Action) -> Option<crate::ipvs::TableOp> {
        None
    }
}

registry::kinds! {
    Module = "module" => module::Module,
    Sysctl = "sysctl" => sysctl::Sysctl,
    Link = "link-up" => link::Link,
    /// A GUE receive port (fou) of a TUN-over-GUE real server.
    GuePort = "gue-port" => gue_port::GuePort,
    Address = "address" => address::Address,
    Route = "route" => route::Route,
    /// lvsctl's nftables table (`inet NAME`).
    Nft = "nft" => nft::Nft,
    /// IPVS's connection timeouts (`ipvsadm --set`).
    IpvsTimeouts = "ipvs-timeouts" => ipvs_timeouts::Timeouts,
    Service = "service" => ipvs_service::Service,
    Dest = "dest" => ipvs_dest::Dest,
    File = "file" => file::File,
    Dir = "dir" => dir::Dir,
    Daemon = "daemon" => daemon::Daemon,
    /// lvsctl's exporter of Prometheus metrics.
    Exporter = "exporter" => exporter::Exporter,
    Unit = "unit" => unit::Unit,
}

pub use decision::{Change, ChangeKind, Decision};

impl Undo {
    fn in_scope(&self, scope: Scope) -> bool {
        scope == Scope::All || self.is_runtime()
    }
}

/// What lvsctl recorded on this host (the journal), as decisions see it.
pub trait Recorded {
    fn recorded(&self, key: &Key) -> Option<&Undo>;
}

impl Recorded for Vec<Undo> {
    fn recorded(&self, key: &Key) -> Option<&Undo> {
        self.iter().find(|u| u.key() == *key)
    }
}

/// Where file backups are kept (next to the journal).
pub trait Backups {
    fn backup(&mut self, content: &[u8], mode: u32) -> io::Result<file::Backup>;
    fn read_backup(&self, b: &file::Backup) -> io::Result<Vec<u8>>;
}

/// For the tests of kinds that change no file.
#[cfg(test)]
pub(crate) struct NoBackups;

#[cfg(test)]
impl Backups for NoBackups {
    fn backup(&mut self, _: &[u8], _: u32) -> io::Result<file::Backup> {
        unreachable!("no file is changed")
    }
    fn read_backup(&self, _: &file::Backup) -> io::Result<Vec<u8>> {
        unreachable!("no file is changed")
    }
}

/// A read that may have failed (the error is reported as a failed item, not an abort).
pub type Fact<T> = Result<T, String>;

/// The live state a stage's decisions need. Only what `Wants` asked for is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub modules: Fact<Vec<String>>,
    pub sysctls: BTreeMap<String, Fact<Option<String>>>,
    pub links: BTreeMap<String, Fact<Option<bool>>>,
    /// Open fou ports, when asked for.
    pub gue_ports: Fact<Vec<crate::host::FouPort>>,
    pub addresses: Fact<Vec<AddrFact>>,
    pub routes: Fact<Vec<RouteFact>>,
    /// None: IPVS is not loaded.
    pub ipvs: Fact<Option<Vec<IpvsService>>>,
    /// IPVS's connection timeouts, when asked for (inside: None when IPVS is not loaded).
    pub ipvs_timeouts: Option<Fact<Option<crate::plan::IpvsTimeouts>>>,
    /// lvsctl's nftables tables by name: their objects, None when absent.
    pub nft: BTreeMap<String, Fact<Option<nft::Objects>>>,
    pub files: BTreeMap<String, Fact<Option<FileFact>>>,
    pub dirs: BTreeMap<String, bool>,
    pub systemd: bool,
    /// Unit name → enabled.
    pub units: BTreeMap<String, bool>,
    /// keepalived, when asked for.
    pub daemon: Option<Fact<daemon::DaemonFact>>,
    /// lvsctl's exporter, when asked for.
    pub exporter: Option<Fact<exporter::ExporterFact>>,
    /// Now, in the clock of process start times (when `daemon` was read).
    pub now_ticks: u64,
    /// The session this agent runs in.
    pub session: Session,
    /// Where each service and destination of `ipvs` is, built on the first lookup.
    pub ipvs_index: IpvsIndex,
}

/// Lookups into the IPVS table by key: a table of 10,000 destinations is searched thousands of
/// times by one run. Not part of what a `Live` is (always equal).
#[derive(Debug, Clone, Default)]
pub struct IpvsIndex(std::sync::OnceLock<HashMap<IpvsObject, (usize, usize)>>);

/// A service (no destination) or one of its destinations.
type IpvsObject = (ServiceKey, Option<DestKey>);

impl PartialEq for IpvsIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Where the SSH session that runs the agent comes from, and what the operator allowed: a
/// planned default route must not silently cut the connection lvsctl itself arrives on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The SSH client's address as this host sees it (`SSH_CONNECTION`); None when not over SSH
    /// (a local host, the boot unit).
    pub ssh_peer: Option<std::net::IpAddr>,
    /// `up --force`: replace a route even when it carries the SSH session.
    pub force: bool,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            modules: Ok(vec![]),
            sysctls: BTreeMap::new(),
            links: BTreeMap::new(),
            gue_ports: Ok(vec![]),
            addresses: Ok(vec![]),
            routes: Ok(vec![]),
            ipvs: Ok(None),
            ipvs_timeouts: None,
            nft: BTreeMap::new(),
            files: BTreeMap::new(),
            dirs: BTreeMap::new(),
            systemd: false,
            units: BTreeMap::new(),
            daemon: None,
            exporter: None,
            now_ticks: 0,
            session: Session::default(),
            ipvs_index: IpvsIndex::default(),
        }
    }
}

/// What to read before deciding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    pub modules: bool,
    pub sysctls: BTreeSet<String>,
    pub links: BTreeSet<String>,
    pub gue_ports: bool,
    pub addresses: bool,
    pub routes: bool,
    pub ipvs: bool,
    pub ipvs_timeouts: bool,
    /// nftables tables (family inet) to list.
    pub nft: BTreeSet<String>,
    pub files: BTreeSet<String>,
    pub dirs: BTreeSet<String>,
    pub systemd: bool,
    pub units: BTreeSet<String>,
    /// keepalived, with the path of its configuration.
    pub daemon: Option<String>,
    /// lvsctl's exporter of this lab.
    pub exporter: Option<String>,
}

fn fact<T>(r: io::Result<T>) -> Fact<T> {
    r.map_err(|e| e.to_string())
}

impl Live {
    /// The IPVS table as read: None when IPVS is not loaded.
    fn ipvs_table(&self) -> &[IpvsService] {
        match &self.ipvs {
            Ok(Some(t)) => t,
            _ => &[],
        }
    }

    fn ipvs_position(&self, s: ServiceKey, d: Option<DestKey>) -> Option<(usize, usize)> {
        let index = self.ipvs_index.0.get_or_init(|| {
            let mut m = HashMap::new();
            for (i, svc) in self.ipvs_table().iter().enumerate() {
                m.insert((svc.entry.key, None), (i, 0));
                for (j, dest) in svc.dests.iter().enumerate() {
                    m.insert((svc.entry.key, Some(dest.key)), (i, j));
                }
            }
            m
        });
        index.get(&(s, d)).copied()
    }

    /// The live service of this key.
    pub fn ipvs_service(&self, k: ServiceKey) -> Option<&IpvsService> {
        self.ipvs_position(k, None).map(|(i, _)| &self.ipvs_table()[i])
    }

    /// The live destination `d` of service `s`.
    pub fn ipvs_dest(&self, s: ServiceKey, d: DestKey) -> Option<&crate::ipvs::DestEntry> {
        self.ipvs_position(s, Some(d)).map(|(i, j)| &self.ipvs_table()[i].dests[j])
    }

    /// Reads what `w` asks for; nothing else, and nothing is changed.
    pub fn read<S: System>(sys: &mut S, w: &Wants, session: &Session) -> Live {
        let mut live = Live { session: session.clone(), ..Live::default() };
        if w.modules {
            live.modules = fact(sys.loaded_modules());
        }
        for k in &w.sysctls {
            live.sysctls.insert(k.clone(), fact(sys.read_sysctl(k)));
        }
        for d in &w.links {
            live.links.insert(d.clone(), fact(sys.link_up(d)));
        }
        if w.gue_ports {
            live.gue_ports = fact(sys.fou_ports());
        }
        if w.addresses {
            live.addresses = fact(sys.addresses());
        }
        if w.routes {
            live.routes = fact(sys.routes());
        }
        if w.ipvs {
            // Reading must not load IPVS: only a loaded module's table is read.
            live.ipvs = if sys.ipvs_loaded() { fact(sys.ipvs_table().map(Some)) } else { Ok(None) };
        }
        if w.ipvs_timeouts {
            live.ipvs_timeouts = Some(if sys.ipvs_loaded() { fact(sys.ipvs_timeouts().map(Some)) } else { Ok(None) });
        }
        for t in &w.nft {
            live.nft.insert(t.clone(), fact(sys.nft_table(t)));
        }
        for p in &w.files {
            live.files.insert(p.clone(), fact(sys.read_file(p)));
        }
        for d in &w.dirs {
            live.dirs.insert(d.clone(), sys.dir_exists(d));
        }
        if w.systemd || !w.units.is_empty() {
            live.systemd = sys.systemd_running();
        }
        if let Some(config) = &w.daemon {
            live.daemon = Some(fact(daemon::read(sys, config)));
            live.now_ticks = sys.now_ticks().unwrap_or(0);
        }
        if let Some(lab) = &w.exporter {
            live.exporter = Some(fact(exporter::read(sys, lab)));
            live.now_ticks = sys.now_ticks().unwrap_or(0);
        }
        if live.systemd {
            for u in &w.units {
                let enabled = sys.systemctl(&["is-enabled", u]).map(|o| o.trim() == "enabled").unwrap_or(false);
                live.units.insert(u.clone(), enabled);
            }
        }
        live
    }

    /// Whether a module the plan loads is not loaded yet (objects it creates are still absent).
    fn modules_pending(&self, plan: &HostPlan) -> bool {
        match &self.modules {
            Ok(l) => plan.modules.iter().any(|m| !l.contains(&module::normalize(&m.name))),
            Err(_) => false,
        }
    }
}

/// `path` as a path of the host, when it lies under `root` (`/` on hosts).
pub fn on_host(path: &str, root: &std::path::Path) -> Option<String> {
    let rel = std::path::Path::new(path).strip_prefix(root).ok()?;
    // No `..` that would climb back out (`/etc/lvsctl/x/../../shadow`).
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return None;
    }
    Some(format!("/{}", rel.display()))
}

/// The kinds, in the order they are applied: each may need the ones before it (tunl0's sysctls
/// need ipip, addresses need their link, IPVS needs ip_vs, files need their directories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Modules,
    Sysctls,
    Links,
    Addresses,
    Routes,
    /// Before IPVS: the marks of firewall-mark services.
    Nftables,
    Ipvs,
    Files,
    /// After the files: a daemon needs its configuration.
    Daemon,
    Unit,
}

pub const STAGES: [Stage; 10] = [
    Stage::Modules,
    Stage::Sysctls,
    Stage::Links,
    Stage::Addresses,
    Stage::Routes,
    Stage::Nftables,
    Stage::Ipvs,
    Stage::Files,
    Stage::Daemon,
    Stage::Unit,
];

/// Journal entries (newest first) in `scope` that `plan` no longer wants.
pub fn stale<'a>(entries: impl Iterator<Item = &'a Undo>, plan: &HostPlan, scope: Scope) -> Vec<Undo> {
    let wanted = desired_keys(plan, scope);
    entries.filter(|u| u.in_scope(scope) && !wanted.contains(&u.key())).cloned().collect()
}

/// Journal entries (newest first) in `scope`: what a full revert undoes.
pub fn in_scope<'a>(entries: impl Iterator<Item = &'a Undo>, scope: Scope) -> Vec<Undo> {
    entries.filter(|u| u.in_scope(scope)).cloned().collect()
}

/// What undoing `entries` needs to read.
pub fn undo_wants(entries: &[Undo]) -> Wants {
    let mut w = Wants::default();
    for u in entries {
        u.wants(&mut w);
    }
    w
}

/// How to undo one entry, given the live state. Pure.
pub fn undo(u: &Undo, live: &Live) -> Decision {
    u.decide_undo(live)
}

/// The IPVS change an action is, if it is one: those are made in batches (`System::ipvs_apply`).
pub fn ipvs_op(action: &Action) -> Option<crate::ipvs::TableOp> {
    action.ipvs_op()
}

/// An IPVS change (of a service or a destination) as the diff shows it.
fn ipvs_sign(op: &crate::ipvs::TableOp) -> ChangeKind {
    use crate::ipvs::TableOp::*;
    match op {
        NewService(..) | NewDest(..) => ChangeKind::Add,
        SetService(..) | SetDest(..) => ChangeKind::Change,
        DelService(..) | DelDest(..) => ChangeKind::Remove,
    }
}

/// One IPVS change made on its own (the executor batches them: `ipvs_op`).
fn ipvs_act<S: System>(sys: &mut S, op: crate::ipvs::TableOp) -> io::Result<()> {
    sys.ipvs_apply(&[op]).remove(0)
}

/// Performs one action. Some kinds learn something only by acting (which modules a load
/// brought in): they return a refined record to journal.
pub fn act<S: System>(sys: &mut S, action: &Action, backups: &dyn Backups) -> io::Result<Option<Undo>> {
    action.act(sys, backups)
}

/// Sysctl values compare by their fields (the kernel separates multi-value ones with tabs).
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

pub fn sha256(b: &[u8]) -> String {
    crate::hex(&Sha256::digest(b))
}
