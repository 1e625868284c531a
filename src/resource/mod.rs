//! Everything lvsctl manages on a host, one module per kind of object. Each kind holds its typed
//! key, how it is read, the pure decision (desired state + live facts + journal → a change, or a
//! no-op with its reason), how the change is made (`act`), how it is undone from the journal, and
//! how it is shown.
//!
//! The agent's executor (`agent::apply`) walks `STAGES` in order: for each stage it reads the
//! facts the stage needs (`wants` → `Live::read`), asks for the decisions (`decide`), and, when
//! applying, executes them. Dry runs and `status` stop after `decide`. Nothing in this module
//! writes to the host except the `act` functions, which only the executor calls.
//!
//! Adding a kind: a file here with its `Undo`, `Action`, `wants`, `decide`, `undo`, `act` and
//! `show`; then register it below: a variant in `Key`, `Undo` and `Action`, a stage in `STAGES`,
//! and one line in each dispatch (`Stage::wants`, `Stage::decide`, `desired_keys`, `undo_wants`,
//! `undo`, `act`, `show`). The compiler points at each match that lacks it; `desired_keys` and
//! `show` are lists to extend by hand.

pub mod address;
pub mod daemon;
pub mod dir;
pub mod file;
pub mod ipvs_dest;
pub mod ipvs_service;
pub mod link;
pub mod module;
pub mod nft;
pub mod route;
pub mod sysctl;
#[cfg(test)]
mod tests;
pub mod unit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;

use ipnet::IpNet;
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

/// The identity of one managed object; the journal holds at most one entry per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Module(String),
    Sysctl(String),
    Link(String),
    Address {
        dev: String,
        address: IpNet,
    },
    Route(IpNet),
    Service(ServiceKey),
    Dest(ServiceKey, DestKey),
    /// lvsctl's nftables table (`inet NAME`).
    Nft(String),
    File(String),
    Dir(String),
    Daemon(String),
    Unit(String),
}

/// How the object is named in messages: `sysctl net.ipv4.ip_forward`, `route default`, …
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Module(name) => write!(f, "module {name}"),
            Key::Sysctl(key) => write!(f, "sysctl {key}"),
            Key::Link(dev) => write!(f, "link {dev}"),
            Key::Address { dev, address } => write!(f, "address {address} dev {dev}"),
            Key::Route(dst) => write!(f, "route {}", route::destination(*dst)),
            Key::Service(k) => write!(f, "ipvs service {k}"),
            Key::Dest(s, k) => write!(f, "ipvs dest {k} of {s}"),
            Key::Nft(name) => write!(f, "nftables table {} {name}", nft::FAMILY),
            Key::File(path) => write!(f, "file {path}"),
            Key::Dir(path) => write!(f, "dir {path}"),
            Key::Daemon(name) => write!(f, "daemon {name}"),
            Key::Unit(name) => write!(f, "unit {name}"),
        }
    }
}

/// How to undo one change: the journal's entries. The serde shape (`kind` plus the kind's
/// fields) is what journals on hosts hold; it must stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Undo {
    Module(module::Undo),
    Sysctl(sysctl::Undo),
    LinkUp(link::Undo),
    Address(address::Undo),
    Route(route::Undo),
    Service(ipvs_service::Undo),
    Dest(ipvs_dest::Undo),
    Nft(nft::Undo),
    File(file::Undo),
    Dir(dir::Undo),
    Daemon(Box<daemon::Undo>),
    Unit(unit::Undo),
}

impl Undo {
    pub fn key(&self) -> Key {
        match self {
            Undo::Module(u) => Key::Module(u.name.clone()),
            Undo::Sysctl(u) => Key::Sysctl(u.key.clone()),
            Undo::LinkUp(u) => Key::Link(u.dev.clone()),
            Undo::Address(u) => Key::Address { dev: u.address.dev.clone(), address: u.address.address },
            Undo::Route(u) => Key::Route(u.applied.destination),
            Undo::Service(u) => Key::Service(u.key),
            Undo::Dest(u) => Key::Dest(u.service, u.key),
            Undo::Nft(u) => Key::Nft(u.table.clone()),
            Undo::File(u) => Key::File(u.path.clone()),
            Undo::Dir(u) => Key::Dir(u.path.clone()),
            Undo::Daemon(u) => Key::Daemon(u.name.clone()),
            Undo::Unit(u) => Key::Unit(u.name.clone()),
        }
    }

    /// Whether lvsctl of lab `lab` can have written this entry: `down` acts on the journal as
    /// root, so an entry someone else put there (a path outside lvsctl's files, a sysctl key
    /// that climbs out of /proc/sys, a unit of another name) is refused before anything is undone.
    /// `root` is where the host's files are (`/`; a directory in tests).
    pub fn check(&self, lab: &str, root: &std::path::Path) -> Result<(), String> {
        match self {
            Undo::Module(u) => module::check(u),
            Undo::Sysctl(u) => sysctl::check(u),
            Undo::LinkUp(u) => link::check(u),
            Undo::File(u) => file::check(u, lab, root),
            Undo::Dir(u) => dir::check(u, lab, root),
            Undo::Unit(u) => unit::check(u, lab),
            Undo::Daemon(u) => daemon::check(u, lab),
            Undo::Nft(u) => nft::check(u, lab),
            // Typed netlink data: addresses, prefixes, ports, numbers; nothing to climb out of.
            Undo::Address(_) | Undo::Route(_) | Undo::Service(_) | Undo::Dest(_) => Ok(()),
        }
    }

    /// Runtime state is what a reboot loses and `systemctl stop` undoes; the rest is on disk.
    pub fn is_runtime(&self) -> bool {
        !matches!(self, Undo::File(_) | Undo::Dir(_) | Undo::Unit(_))
    }

    fn in_scope(&self, scope: Scope) -> bool {
        scope == Scope::All || self.is_runtime()
    }

    /// The entry for an object changed again: the first prior stays, what was applied is new.
    pub fn merge(&self, newer: Undo) -> Undo {
        match (self, newer) {
            (Undo::Module(old), Undo::Module(new)) => Undo::Module(old.merge(new)),
            (Undo::Sysctl(old), Undo::Sysctl(new)) => Undo::Sysctl(old.merge(new)),
            (Undo::Route(old), Undo::Route(new)) => Undo::Route(old.merge(new)),
            (Undo::Service(old), Undo::Service(new)) => Undo::Service(old.merge(new)),
            (Undo::Dest(old), Undo::Dest(new)) => Undo::Dest(old.merge(new)),
            (Undo::Nft(old), Undo::Nft(new)) => Undo::Nft(old.merge(new)),
            (Undo::File(old), Undo::File(new)) => Undo::File(old.merge(new)),
            (_, new) => new,
        }
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

/// One effect on the host, as data: what `act` performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Module(module::Action),
    Sysctl(sysctl::Action),
    Link(link::Action),
    Address(address::Action),
    Route(route::Action),
    Service(ipvs_service::Action),
    Dest(ipvs_dest::Action),
    Nft(nft::Action),
    File(file::Action),
    Dir(dir::Action),
    Daemon(daemon::Action),
    Unit(unit::Action),
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

impl Action {
    /// Whether the action adds an object, changes one that is there, or removes one (the diff's
    /// `+`, `~` and `-`).
    pub fn kind(&self) -> ChangeKind {
        use ChangeKind::{Add, Change, Remove};
        match self {
            Action::Module(module::Action::Load(_)) => Add,
            Action::Module(module::Action::Unload(_)) => Remove,
            Action::Sysctl(_) | Action::Link(_) => Change,
            Action::Address(address::Action::Add(_)) => Add,
            Action::Address(address::Action::Del(_)) => Remove,
            Action::Route(route::Action::Add { replace: true, .. }) => Change,
            Action::Route(route::Action::Add { .. }) => Add,
            Action::Route(route::Action::Del(_)) => Remove,
            Action::Service(ipvs_service::Action::New(..)) | Action::Dest(ipvs_dest::Action::New(..)) => Add,
            Action::Service(ipvs_service::Action::Set(..)) | Action::Dest(ipvs_dest::Action::Set(..)) => Change,
            Action::Service(ipvs_service::Action::Del(..)) | Action::Dest(ipvs_dest::Action::Del(..)) => Remove,
            Action::Nft(nft::Action::Replace { created: true, .. }) => Add,
            Action::Nft(nft::Action::Replace { .. }) => Change,
            Action::Nft(nft::Action::Delete(_)) => Remove,
            Action::File(file::Action::Write { backup: None, .. }) => Add,
            Action::File(file::Action::Write { .. } | file::Action::Restore { .. }) => Change,
            Action::File(file::Action::Remove(_)) => Remove,
            Action::Dir(dir::Action::Make(_)) => Add,
            Action::Dir(dir::Action::RemoveIfEmpty(_)) => Remove,
            Action::Daemon(daemon::Action::Spawn { .. } | daemon::Action::SystemdStart) => Add,
            Action::Daemon(daemon::Action::Reload(_) | daemon::Action::SystemdReload) => Change,
            Action::Daemon(daemon::Action::Stop { .. } | daemon::Action::Sweep(_) | daemon::Action::SystemdStop(_)) => {
                Remove
            }
            Action::Unit(unit::Action::Enable(_)) => Add,
            Action::Unit(unit::Action::Disable(_)) => Remove,
        }
    }
}

/// A change to make: `before` becomes `after`. `record` is journaled before `action` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Key,
    pub before: String,
    pub after: String,
    pub reason: String,
    pub record: Option<Undo>,
    pub action: Action,
}

/// What one object needs, decided from the plan, the live facts and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already as planned (or, for an undo, as it was before lvsctl): nothing to do, and why.
    Same {
        key: Key,
        why: String,
    },
    Change(Box<Change>),
    /// Wanted but impossible as the host is (a missing interface, an address someone else
    /// holds): a failure when applying, drift for `status`.
    Blocked {
        object: String,
        before: String,
        after: String,
        reason: String,
        error: String,
    },
    /// Possible only after an earlier change of the same run (tunl0's sysctls exist once ipip is
    /// loaded): a dry run says so, `status` reports drift, an apply that gets here failed.
    Pending {
        object: String,
        before: String,
        after: String,
        reason: String,
        error: String,
    },
    /// Undo only: someone else changed the object after lvsctl did, so it is left as it is.
    Keep {
        key: Key,
        why: String,
    },
    /// The facts could not be read.
    Failed {
        object: String,
        reason: String,
        error: String,
    },
    /// Something to tell the user that changes nothing.
    Note(String),
}

impl Decision {
    fn change(
        key: Key,
        before: impl Into<String>,
        after: impl Into<String>,
        reason: &str,
        record: Option<Undo>,
        action: Action,
    ) -> Self {
        Decision::Change(Box::new(Change {
            key,
            before: before.into(),
            after: after.into(),
            reason: reason.to_string(),
            record,
            action,
        }))
    }
    fn same(key: Key, why: impl Into<String>) -> Self {
        Decision::Same { key, why: why.into() }
    }
    fn failed(object: impl fmt::Display, reason: &str, error: &str) -> Self {
        Decision::Failed { object: object.to_string(), reason: reason.to_string(), error: error.to_string() }
    }
    /// An undo: `before` becomes `after` by `action` (nothing is journaled).
    fn revert(key: Key, before: impl Into<String>, after: impl Into<String>, action: Action) -> Self {
        Decision::change(key, before, after, "", None, action)
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
    pub addresses: Fact<Vec<AddrFact>>,
    pub routes: Fact<Vec<RouteFact>>,
    /// None: IPVS is not loaded.
    pub ipvs: Fact<Option<Vec<IpvsService>>>,
    /// lvsctl's nftables tables by name: their objects, None when absent.
    pub nft: BTreeMap<String, Fact<Option<nft::Objects>>>,
    pub files: BTreeMap<String, Fact<Option<FileFact>>>,
    pub dirs: BTreeMap<String, bool>,
    pub systemd: bool,
    /// Unit name → enabled.
    pub units: BTreeMap<String, bool>,
    /// keepalived, when asked for.
    pub daemon: Option<Fact<daemon::DaemonFact>>,
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
            addresses: Ok(vec![]),
            routes: Ok(vec![]),
            ipvs: Ok(None),
            nft: BTreeMap::new(),
            files: BTreeMap::new(),
            dirs: BTreeMap::new(),
            systemd: false,
            units: BTreeMap::new(),
            daemon: None,
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
    pub addresses: bool,
    pub routes: bool,
    pub ipvs: bool,
    /// nftables tables (family inet) to list.
    pub nft: BTreeSet<String>,
    pub files: BTreeSet<String>,
    pub dirs: BTreeSet<String>,
    pub systemd: bool,
    pub units: BTreeSet<String>,
    /// keepalived, with the path of its configuration.
    pub daemon: Option<String>,
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

impl Stage {
    pub fn in_scope(self, scope: Scope) -> bool {
        scope == Scope::All || !matches!(self, Stage::Files | Stage::Unit)
    }

    /// What the stage's decisions read.
    pub fn wants(self, plan: &HostPlan) -> Wants {
        let mut w = Wants::default();
        match self {
            Stage::Modules => module::wants(&plan.modules, &mut w),
            Stage::Sysctls => sysctl::wants(plan, &mut w),
            Stage::Links => link::wants(plan, &mut w),
            Stage::Addresses => address::wants(&plan.addresses, &mut w),
            Stage::Routes => route::wants(&plan.routes, &mut w),
            Stage::Nftables => nft::wants(plan.nftables.as_ref(), &mut w),
            Stage::Ipvs => ipvs_service::wants(&plan.ipvs, &mut w),
            Stage::Files => file::wants(&plan.files, &mut w),
            Stage::Daemon => daemon::wants(plan.keepalived.as_ref(), &mut w),
            Stage::Unit => unit::wants(plan.boot_unit.as_deref(), &mut w),
        }
        w
    }

    /// The stage's decisions, in order. Pure.
    pub fn decide(self, plan: &HostPlan, live: &Live, journal: &dyn Recorded, intent: Intent) -> Vec<Decision> {
        match self {
            Stage::Modules => module::decide(&plan.modules, live),
            Stage::Sysctls => sysctl::decide(&plan.sysctls, live, live.modules_pending(plan)),
            Stage::Links => link::decide(&plan.links_up, live, live.modules_pending(plan)),
            Stage::Addresses => address::decide(&plan.addresses, live),
            Stage::Routes => route::decide(&plan.routes, live),
            Stage::Nftables => nft::decide(plan.nftables.as_ref(), live, journal),
            Stage::Ipvs => ipvs_service::decide(&plan.ipvs, live, journal, intent),
            Stage::Files => file::decide(&plan.files, live, journal),
            Stage::Daemon => daemon::decide(plan.keepalived.as_ref(), &plan.lab, live, journal, intent),
            Stage::Unit => unit::decide(plan.boot_unit.as_deref(), live, intent),
        }
    }
}

/// The keys of everything `plan` wants in `scope`; journal entries with other keys are stale.
pub fn desired_keys(plan: &HostPlan, scope: Scope) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    keys.extend(plan.modules.iter().map(|m| Key::Module(m.name.clone())));
    keys.extend(plan.sysctls.iter().map(|s| Key::Sysctl(s.key.clone())));
    keys.extend(plan.links_up.iter().map(|l| Key::Link(l.dev.clone())));
    keys.extend(plan.addresses.iter().map(address::key));
    keys.extend(plan.routes.iter().map(|r| Key::Route(r.destination)));
    keys.extend(plan.keepalived.iter().map(|_| Key::Daemon(daemon::KEEPALIVED.to_string())));
    keys.extend(plan.nftables.iter().map(nft::key));
    for v in &plan.ipvs {
        let k = ipvs_service::key(v);
        keys.insert(Key::Service(k));
        keys.extend(v.destinations.iter().map(|d| Key::Dest(k, ipvs_dest::key(d))));
    }
    if scope == Scope::All {
        for f in &plan.files {
            keys.insert(Key::File(f.path.clone()));
            keys.extend(dir::parents(&f.path).into_iter().map(Key::Dir));
        }
        keys.extend(plan.boot_unit.iter().map(|u| Key::Unit(u.clone())));
    }
    keys
}

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
        match u {
            Undo::Module(_) => w.modules = true,
            Undo::Sysctl(u) => {
                w.sysctls.insert(u.key.clone());
            }
            Undo::LinkUp(u) => {
                w.links.insert(u.dev.clone());
            }
            Undo::Address(_) => w.addresses = true,
            Undo::Route(_) => w.routes = true,
            Undo::Service(_) | Undo::Dest(_) => w.ipvs = true,
            Undo::Nft(u) => {
                w.nft.insert(u.table.clone());
            }
            Undo::File(u) => {
                w.files.insert(u.path.clone());
            }
            Undo::Dir(u) => {
                w.dirs.insert(u.path.clone());
            }
            Undo::Unit(_) => w.systemd = true,
            Undo::Daemon(u) => daemon::undo_wants(u, &mut w),
        }
    }
    w
}

/// How to undo one entry, given the live state. Pure.
pub fn undo(u: &Undo, live: &Live) -> Decision {
    match u {
        Undo::Module(m) => module::undo(m, live),
        Undo::Sysctl(s) => sysctl::undo(s, live),
        Undo::LinkUp(l) => link::undo(l, live),
        Undo::Address(a) => address::undo(a, live),
        Undo::Route(r) => route::undo(r, live),
        Undo::Service(s) => ipvs_service::undo(s, live),
        Undo::Dest(d) => ipvs_dest::undo(d, live),
        Undo::Nft(n) => nft::undo(n, live),
        Undo::File(f) => file::undo(f, live),
        Undo::Dir(d) => dir::undo(d, live),
        Undo::Daemon(d) => daemon::undo(d, live),
        Undo::Unit(u) => unit::undo(u, live),
    }
}

/// Work that must happen before a change's record is journaled (a backup of the file it
/// replaces, so that the record can name it).
pub fn prepare<S: System>(sys: &mut S, change: &mut Change, backups: &mut dyn Backups) -> io::Result<()> {
    match (&change.action, &mut change.record) {
        (Action::File(a), Some(Undo::File(u))) => file::prepare(sys, a, u, backups),
        _ => Ok(()),
    }
}

/// The IPVS change an action is, if it is one: those are made in batches (`System::ipvs_apply`).
pub fn ipvs_op(action: &Action) -> Option<crate::ipvs::TableOp> {
    match action {
        Action::Service(a) => Some(ipvs_service::op(a)),
        Action::Dest(a) => Some(ipvs_dest::op(a)),
        _ => None,
    }
}

/// Performs one action. Some kinds learn something only by acting (which modules a load
/// brought in): they return a refined record to journal.
pub fn act<S: System>(sys: &mut S, action: &Action, backups: &dyn Backups) -> io::Result<Option<Undo>> {
    match action {
        Action::Module(a) => module::act(sys, a),
        Action::Sysctl(a) => sysctl::act(sys, a).map(|_| None),
        Action::Link(a) => link::act(sys, a).map(|_| None),
        Action::Address(a) => address::act(sys, a).map(|_| None),
        Action::Route(a) => route::act(sys, a).map(|_| None),
        Action::Service(a) => ipvs_service::act(sys, a).map(|_| None),
        Action::Dest(a) => ipvs_dest::act(sys, a).map(|_| None),
        Action::Nft(a) => nft::act(sys, a).map(|_| None),
        Action::File(a) => file::act(sys, a, backups).map(|_| None),
        Action::Dir(a) => dir::act(sys, a).map(|_| None),
        Action::Daemon(a) => daemon::act(sys, a),
        Action::Unit(a) => unit::act(sys, a).map(|_| None),
    }
}

/// `lvsctl plan`'s lines for one host: (kind, item, reason), in apply order.
pub fn show(p: &HostPlan) -> Vec<(&'static str, String, String)> {
    let mut v = Vec::new();
    v.extend(p.modules.iter().map(module::show));
    v.extend(p.sysctls.iter().map(sysctl::show));
    v.extend(p.links_up.iter().map(link::show));
    v.extend(p.addresses.iter().map(address::show));
    v.extend(p.routes.iter().map(route::show));
    v.extend(p.nftables.iter().flat_map(nft::show));
    for s in &p.ipvs {
        v.push(ipvs_service::show(s));
        v.extend(s.destinations.iter().map(ipvs_dest::show));
    }
    v.extend(p.files.iter().map(file::show));
    v.extend(p.keepalived.iter().map(daemon::show));
    v.extend(p.boot_unit.iter().map(|u| unit::show(u)));
    v
}

/// Sysctl values compare by their fields (the kernel separates multi-value ones with tabs).
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

pub fn sha256(b: &[u8]) -> String {
    crate::hex(&Sha256::digest(b))
}
