//! Desired state versus live state, one item at a time, in dependency order: modules, sysctls,
//! links, addresses, routes, IPVS, files, boot unit. The same walk applies changes (journaling
//! each one first), only lists them (dry run), or reports them as drift (status). Reverting walks
//! the journal backwards.

use std::collections::BTreeSet;
use std::io;

use sha2::{Digest, Sha256};

use super::journal::{self, Journal, Undo};
use super::protocol::{ChangeEvent, Event, Report, Status};
use super::system::{AddrFact, IpvsService, RTPROT_LVSCTL, RouteFact, System, is_not_found};
use crate::ipvs::{DestConfig, DestKey, ServiceConfig, ServiceKey, fwd_of};
use crate::plan::HostPlan;
use crate::remote::binary::hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    DryRun,
    Check,
}

/// Which journal entries an operation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (`up`, `down`).
    All,
    /// Kernel state only (the boot unit's start and stop): files and the unit stay.
    Runtime,
}

pub struct Engine<'a, S: System> {
    pub sys: &'a mut S,
    pub journal: &'a mut Journal,
    pub mode: Mode,
    emit: &'a mut dyn FnMut(Event),
    pub report: Report,
    /// Fault injection: abort after this many changes (crash-consistency tests).
    pub abort_after: Option<u32>,
    /// Fault injection: stop for STALL_SECONDS after this many changes, then go on.
    pub stall_after: Option<u32>,
    units_changed: bool,
}

/// How long a stall injected by `stall_after` lasts.
const STALL_SECONDS: u64 = 5;

fn sha256(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// Sysctl values compare by their fields (the kernel separates multi-value ones with tabs).
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

fn err_text(e: &io::Error) -> String {
    e.to_string()
}

/// The journal ids of everything a plan wants (entries with other ids are no longer wanted).
pub fn desired_ids(plan: &HostPlan, scope: Scope) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for m in &plan.modules {
        ids.insert(format!("module:{}", m.name));
    }
    for s in &plan.sysctls {
        ids.insert(format!("sysctl:{}", s.key));
    }
    for l in &plan.links_up {
        ids.insert(format!("link:{}", l.dev));
    }
    for a in &plan.addresses {
        ids.insert(journal::address_id(&a.dev, a.address));
    }
    for r in &plan.routes {
        ids.insert(journal::route_id(r.destination));
    }
    for v in &plan.ipvs {
        let k = ServiceKey { protocol: v.protocol, addr: v.vip, port: v.port };
        ids.insert(journal::service_id(&k));
        for d in &v.destinations {
            ids.insert(journal::dest_id(&k, &DestKey { addr: d.address, port: d.port }));
        }
    }
    if scope == Scope::All {
        for f in &plan.files {
            ids.insert(format!("file:{}", f.path));
            let mut p = std::path::Path::new(&f.path).parent();
            while let Some(dir) = p {
                if dir.as_os_str().len() > 1 {
                    ids.insert(format!("dir:{}", dir.display()));
                }
                p = dir.parent();
            }
        }
        if let Some(u) = &plan.boot_unit {
            ids.insert(format!("unit:{u}"));
        }
    }
    ids
}

fn in_scope(u: &Undo, scope: Scope) -> bool {
    scope == Scope::All || u.is_runtime()
}

impl<'a, S: System> Engine<'a, S> {
    pub fn new(
        sys: &'a mut S,
        journal: &'a mut Journal,
        mode: Mode,
        emit: &'a mut dyn FnMut(Event),
        host: &str,
    ) -> Self {
        Engine {
            sys,
            journal,
            mode,
            emit,
            report: Report { host: host.to_string(), ..Default::default() },
            abort_after: None,
            stall_after: None,
            units_changed: false,
        }
    }

    pub fn note(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.report.notes.push(message.clone());
        (self.emit)(Event::Note { message });
    }

    fn event(
        &mut self,
        object: String,
        before: String,
        after: String,
        reason: &str,
        status: Status,
        error: Option<String>,
    ) {
        match status {
            Status::Failed => self.report.failed += 1,
            Status::Kept => self.report.kept += 1,
            _ => self.report.changes += 1,
        }
        (self.emit)(Event::Change(ChangeEvent { object, before, after, reason: reason.to_string(), status, error }));
        if status == Status::Done
            && let Some(n) = self.abort_after
            && self.report.changes >= n
        {
            // Simulates a crash at a known point: the journal must be enough for `down`.
            std::process::abort();
        }
        if status == Status::Done && self.stall_after == Some(self.report.changes) {
            // Holds the agent mid-apply so that a test can take its controller away.
            std::thread::sleep(std::time::Duration::from_secs(STALL_SECONDS));
        }
    }

    fn fail(&mut self, object: String, reason: &str, e: &io::Error) {
        self.event(object, String::new(), String::new(), reason, Status::Failed, Some(err_text(e)));
    }

    /// One change: journal it, then make it (apply); or only report it (dry run, check).
    fn change(
        &mut self,
        object: String,
        before: String,
        after: String,
        reason: &str,
        undo: Option<Undo>,
        act: impl FnOnce(&mut S) -> io::Result<()>,
    ) -> bool {
        match self.mode {
            Mode::DryRun => {
                self.event(object, before, after, reason, Status::Planned, None);
                true
            }
            Mode::Check => {
                self.event(object, before, after, reason, Status::Drift, None);
                true
            }
            Mode::Apply => {
                if let Some(u) = undo
                    && let Err(e) = self.journal.record(u)
                {
                    let e = io::Error::new(e.kind(), format!("cannot write the journal, change not made: {e}"));
                    self.event(object, before, after, reason, Status::Failed, Some(err_text(&e)));
                    return false;
                }
                match act(self.sys) {
                    Ok(()) => {
                        self.event(object, before, after, reason, Status::Done, None);
                        true
                    }
                    Err(e) => {
                        self.event(object, before, after, reason, Status::Failed, Some(err_text(&e)));
                        false
                    }
                }
            }
        }
    }

    fn unchanged(&mut self) {
        self.report.unchanged += 1;
    }

    /// Makes the host match `plan` (or reports how it differs).
    pub fn apply(&mut self, plan: &HostPlan, scope: Scope) {
        self.remove_unwanted(plan, scope);
        self.modules(plan);
        self.sysctls(plan);
        self.links(plan);
        self.addresses(plan);
        self.routes(plan);
        self.ipvs(plan);
        if scope == Scope::All {
            self.files(plan);
            self.unit(plan);
        }
    }

    /// Entries lvsctl made earlier that the plan no longer wants (the inventory changed).
    fn remove_unwanted(&mut self, plan: &HostPlan, scope: Scope) {
        let wanted = desired_ids(plan, scope);
        let stale: Vec<Undo> = self
            .journal
            .data
            .entries
            .iter()
            .rev()
            .map(|e| e.undo.clone())
            .filter(|u| in_scope(u, scope) && !wanted.contains(&u.id()))
            .collect();
        for u in stale {
            self.revert_one(&u, "no longer in the inventory");
        }
    }

    fn modules(&mut self, plan: &HostPlan) {
        if plan.modules.is_empty() {
            return;
        }
        let loaded = match self.sys.loaded_modules() {
            Ok(l) => l,
            Err(e) => return self.fail("modules".into(), "read /proc/modules", &e),
        };
        for m in &plan.modules {
            let norm = m.name.replace('-', "_");
            if loaded.contains(&norm) {
                self.unchanged();
                continue;
            }
            let object = format!("module {}", m.name);
            let before = loaded.clone();
            let name = m.name.clone();
            let ok = self.change(
                object,
                "not loaded".into(),
                "loaded".into(),
                &m.reason,
                Some(Undo::Module { name: name.clone(), loaded: None }),
                |s| s.load_module(&name),
            );
            if ok && self.mode == Mode::Apply {
                // Record what the load brought in, dependencies included, so `down` can unload them.
                if let Ok(after) = self.sys.loaded_modules() {
                    let new: Vec<String> = after.into_iter().filter(|x| !before.contains(x)).collect();
                    if let Err(e) = self.journal.record(Undo::Module { name: m.name.clone(), loaded: Some(new) }) {
                        self.note(format!("cannot record the modules loaded with {}: {e}", m.name));
                    }
                }
            }
        }
    }

    fn sysctls(&mut self, plan: &HostPlan) {
        let modules_pending = self.mode != Mode::Apply
            && self
                .sys
                .loaded_modules()
                .map(|l| plan.modules.iter().any(|m| !l.contains(&m.name.replace('-', "_"))))
                .unwrap_or(false);
        for s in &plan.sysctls {
            let object = format!("sysctl {}", s.key);
            let current = match self.sys.read_sysctl(&s.key) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(object, &s.reason, &e);
                    continue;
                }
            };
            match current {
                Some(cur) if same_value(&cur, &s.value) => self.unchanged(),
                Some(cur) => {
                    let (key, value) = (s.key.clone(), s.value.clone());
                    let undo = Undo::Sysctl { key: key.clone(), prior: cur.trim().to_string(), applied: value.clone() };
                    self.change(object, cur.trim().to_string(), value.clone(), &s.reason, Some(undo), |sys| {
                        sys.write_sysctl(&key, &value)
                    });
                }
                None if modules_pending => {
                    // The key appears once the planned module is loaded (tunl0 with ipip).
                    self.change(
                        object,
                        "absent until its module loads".into(),
                        s.value.clone(),
                        &s.reason,
                        None,
                        |_| Ok(()),
                    );
                }
                None => {
                    let e = io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no sysctl {} on this host (missing interface or module?)", s.key),
                    );
                    if self.mode == Mode::Check {
                        self.event(object, "absent".into(), s.value.clone(), &s.reason, Status::Drift, None);
                    } else {
                        self.fail(object, &s.reason, &e);
                    }
                }
            }
        }
    }

    fn links(&mut self, plan: &HostPlan) {
        for l in &plan.links_up {
            let object = format!("link {}", l.dev);
            match self.sys.link_up(&l.dev) {
                Ok(Some(true)) => self.unchanged(),
                Ok(Some(false)) => {
                    let dev = l.dev.clone();
                    self.change(
                        object,
                        "down".into(),
                        "up".into(),
                        &l.reason,
                        Some(Undo::LinkUp { dev: dev.clone() }),
                        |s| s.set_link(&dev, true),
                    );
                }
                Ok(None) if self.mode == Mode::DryRun && l.dev == "tunl0" => {
                    self.change(object, "absent until ipip loads".into(), "up".into(), &l.reason, None, |_| Ok(()));
                }
                Ok(None) => {
                    let e = io::Error::new(io::ErrorKind::NotFound, format!("no interface {} on this host", l.dev));
                    if self.mode == Mode::Check {
                        self.event(object, "absent".into(), "up".into(), &l.reason, Status::Drift, None);
                    } else {
                        self.fail(object, &l.reason, &e);
                    }
                }
                Err(e) => self.fail(object, &l.reason, &e),
            }
        }
    }

    fn addresses(&mut self, plan: &HostPlan) {
        if plan.addresses.is_empty() {
            return;
        }
        let have = match self.sys.addresses() {
            Ok(a) => a,
            Err(e) => return self.fail("addresses".into(), "read addresses", &e),
        };
        for a in &plan.addresses {
            let object = format!("address {} dev {}", a.address, a.dev);
            if have.iter().any(|h| h.dev == a.dev && h.address == a.address) {
                self.unchanged();
                continue;
            }
            if let Some(other) = have.iter().find(|h| h.address.addr() == a.address.addr()) {
                // The same IP elsewhere (another device or prefix) belongs to someone else.
                let e = io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} is already on {} as {}, not managed by lvsctl: remove it or change the inventory",
                        a.address.addr(),
                        other.dev,
                        other.address
                    ),
                );
                if self.mode == Mode::Check {
                    self.event(
                        object,
                        format!("{} dev {}", other.address, other.dev),
                        "present".into(),
                        &a.reason,
                        Status::Drift,
                        None,
                    );
                } else {
                    self.fail(object, &a.reason, &e);
                }
                continue;
            }
            let fact = AddrFact { dev: a.dev.clone(), address: a.address, label: a.label.clone() };
            let undo = Undo::Address { address: fact.clone() };
            self.change(object, "absent".into(), "present".into(), &a.reason, Some(undo), |s| s.add_address(&fact));
        }
    }

    fn routes(&mut self, plan: &HostPlan) {
        if plan.routes.is_empty() {
            return;
        }
        let have = match self.sys.routes() {
            Ok(r) => r,
            Err(e) => return self.fail("routes".into(), "read routes", &e),
        };
        for r in &plan.routes {
            let dst = journal::route_dst(r.destination);
            let object = format!("route {dst}");
            let want = RouteFact {
                destination: r.destination,
                gateway: r.gateway,
                dev: r.dev.clone(),
                metric: 0,
                protocol: RTPROT_LVSCTL,
                scope: 0,
                prefsrc: None,
            };
            let slot: Vec<&RouteFact> =
                have.iter().filter(|h| h.destination == r.destination && h.metric == 0).collect();
            if slot.iter().any(|h| h.gateway == r.gateway && (r.dev.is_none() || h.dev == r.dev)) {
                self.unchanged();
                continue;
            }
            let after = want.describe();
            match slot.first() {
                Some(old) => {
                    let undo = Undo::Route { applied: want.clone(), prior: Some((*old).clone()) };
                    let before = old.describe();
                    self.change(object, before, after, &r.reason, Some(undo), |s| s.add_route(&want, true));
                }
                None => {
                    let undo = Undo::Route { applied: want.clone(), prior: None };
                    self.change(object, "absent".into(), after, &r.reason, Some(undo), |s| s.add_route(&want, false));
                }
            }
        }
    }

    fn ipvs(&mut self, plan: &HostPlan) {
        if plan.ipvs.is_empty() {
            return;
        }
        let table: Vec<IpvsService> = if self.sys.ipvs_loaded() {
            match self.sys.ipvs_table() {
                Ok(t) => t,
                Err(e) => return self.fail("ipvs".into(), "read the IPVS table", &e),
            }
        } else if self.mode == Mode::Apply {
            return self.fail(
                "ipvs".into(),
                "IPVS",
                &io::Error::new(io::ErrorKind::NotFound, "IPVS is not loaded (module ip_vs)"),
            );
        } else {
            vec![]
        };
        for v in &plan.ipvs {
            let key = ServiceKey { protocol: v.protocol, addr: v.vip, port: v.port };
            let want = ServiceConfig::persistent(&v.scheduler, v.persistence, v.netmask);
            let object = format!("ipvs service {key}");
            let existing = table.iter().find(|s| s.entry.key == key);
            match existing {
                Some(s) if s.entry.config == want => self.unchanged(),
                Some(s) => {
                    let undo = Undo::Service { key, prior: Some(s.entry.config.clone()), applied: want.clone() };
                    let (k, w) = (key, want.clone());
                    self.change(object, s.entry.config.describe(), want.describe(), &v.reason, Some(undo), |sys| {
                        sys.ipvs_set_service(&k, &w)
                    });
                }
                None => {
                    let undo = Undo::Service { key, prior: None, applied: want.clone() };
                    let (k, w) = (key, want.clone());
                    self.change(object, "absent".into(), want.describe(), &v.reason, Some(undo), |sys| {
                        sys.ipvs_new_service(&k, &w)
                    });
                }
            }
            let dests = existing.map(|s| s.dests.clone()).unwrap_or_default();
            for d in &v.destinations {
                let dk = DestKey { addr: d.address, port: d.port };
                let dc = DestConfig {
                    fwd: fwd_of(d.forward),
                    weight: d.weight,
                    u_threshold: d.u_threshold,
                    l_threshold: d.l_threshold,
                };
                let object = format!("ipvs dest {dk} of {key}");
                let reason = format!("real server {}", d.host);
                match dests.iter().find(|x| x.key == dk) {
                    Some(x) if x.config == dc => self.unchanged(),
                    Some(x) => {
                        let undo =
                            Undo::Dest { service: key, key: dk, prior: Some(x.config.clone()), applied: dc.clone() };
                        let before = x.config.describe();
                        self.change(object, before, dc.describe(), &reason, Some(undo), |sys| {
                            sys.ipvs_set_dest(&key, &dk, &dc)
                        });
                    }
                    None => {
                        let undo = Undo::Dest { service: key, key: dk, prior: None, applied: dc.clone() };
                        self.change(object, "absent".into(), dc.describe(), &reason, Some(undo), |sys| {
                            sys.ipvs_new_dest(&key, &dk, &dc)
                        });
                    }
                }
            }
            for x in &dests {
                let wanted = v.destinations.iter().any(|d| d.address == x.key.addr && d.port == x.key.port);
                let ours = self.journal.get(&journal::dest_id(&key, &x.key)).is_some();
                if !wanted && !ours {
                    self.note(format!(
                        "ipvs service {key} has destination {} that lvsctl does not manage: left as it is",
                        x.key
                    ));
                }
            }
        }
    }

    /// Creates missing parent directories (journaled, so `down` removes them when empty).
    fn ensure_dirs(&mut self, path: &str) -> bool {
        let mut missing = Vec::new();
        let mut p = std::path::Path::new(path).parent();
        while let Some(dir) = p {
            if dir.as_os_str().len() <= 1 || self.sys.dir_exists(&dir.to_string_lossy()) {
                break;
            }
            missing.push(dir.to_string_lossy().into_owned());
            p = dir.parent();
        }
        for dir in missing.into_iter().rev() {
            let d = dir.clone();
            if !self.change(
                format!("dir {dir}"),
                "absent".into(),
                "present".into(),
                "holds lvsctl's files",
                Some(Undo::Dir { path: dir }),
                |s| s.make_dir(&d),
            ) {
                return false;
            }
        }
        true
    }

    fn files(&mut self, plan: &HostPlan) {
        for f in &plan.files {
            let object = format!("file {}", f.path);
            let current = match self.sys.read_file(&f.path) {
                Ok(c) => c,
                Err(e) => {
                    self.fail(object, &f.reason, &e);
                    continue;
                }
            };
            let applied_sha256 = sha256(f.content.as_bytes());
            let before = match &current {
                Some(c) if c.content == f.content.as_bytes() && c.mode & 0o7777 == f.mode => {
                    self.unchanged();
                    continue;
                }
                Some(c) if c.content == f.content.as_bytes() => format!("mode {:04o}", c.mode & 0o7777),
                Some(c) => format!("{} bytes, sha256 {}", c.content.len(), &sha256(&c.content)[..12]),
                None => "absent".into(),
            };
            let after = format!("{} bytes, sha256 {}, mode {:04o}", f.content.len(), &applied_sha256[..12], f.mode);
            if self.mode == Mode::Apply && !self.ensure_dirs(&f.path) {
                continue;
            }
            let prior = match (&current, self.mode) {
                (Some(c), Mode::Apply) => match self.journal.get(&format!("file:{}", f.path)) {
                    Some(_) => None, // the first prior is already backed up
                    None => match self.journal.backup(&c.content, c.mode & 0o7777) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            self.fail(
                                object,
                                &f.reason,
                                &io::Error::new(e.kind(), format!("cannot back up the current file: {e}")),
                            );
                            continue;
                        }
                    },
                },
                _ => None,
            };
            if f.path.ends_with(".service") {
                self.units_changed = true;
            }
            let undo = Undo::File { path: f.path.clone(), prior, applied_sha256 };
            let (path, content, mode) = (f.path.clone(), f.content.clone(), f.mode);
            self.change(object, before, after, &f.reason, Some(undo), |s| {
                s.write_file(&path, content.as_bytes(), mode)
            });
        }
    }

    fn unit(&mut self, plan: &HostPlan) {
        let Some(name) = plan.boot_unit.clone() else { return };
        if !self.sys.systemd_running() {
            if self.mode == Mode::Apply {
                self.note(format!(
                    "systemd does not run on this host: {name} is installed but not enabled (run its ExecStart at boot)"
                ));
            }
            return;
        }
        if self.units_changed
            && self.mode == Mode::Apply
            && let Err(e) = self.sys.systemctl(&["daemon-reload"])
        {
            self.fail("systemd daemon-reload".into(), "load the new unit", &e);
        }
        let enabled = self.sys.systemctl(&["is-enabled", &name]).map(|o| o.trim() == "enabled").unwrap_or(false);
        if enabled {
            self.unchanged();
        } else {
            let n = name.clone();
            self.change(
                format!("unit {name}"),
                "disabled".into(),
                "enabled".into(),
                "re-applies this host's state at boot",
                Some(Undo::Unit { name: name.clone() }),
                |s| s.systemctl(&["enable", &n]).map(|_| ()),
            );
        }
        if self.mode == Mode::Apply {
            let active = self.sys.systemctl(&["is-active", &name]).map(|o| o.trim() == "active").unwrap_or(false);
            if !active {
                // --no-block: the unit's start takes the lab lock this agent holds.
                if let Err(e) = self.sys.systemctl(&["start", "--no-block", &name]) {
                    self.note(format!("cannot start {name}: {e}"));
                }
            }
        }
    }

    /// Undoes every journal entry in `scope`, newest first. Entries that cannot be undone stay.
    pub fn revert_all(&mut self, scope: Scope) {
        let entries: Vec<Undo> =
            self.journal.data.entries.iter().rev().map(|e| e.undo.clone()).filter(|u| in_scope(u, scope)).collect();
        for u in entries {
            self.revert_one(&u, "undo what lvsctl changed");
        }
        if scope == Scope::All && self.sys.systemd_running() && self.units_changed && self.mode == Mode::Apply {
            let _ = self.sys.systemctl(&["daemon-reload"]);
        }
    }

    /// Undoes one entry and drops it from the journal unless the undo failed.
    fn revert_one(&mut self, u: &Undo, reason: &str) {
        let object = u.object();
        let outcome = self.undo(u);
        let drop = match outcome {
            Outcome::Nothing => {
                self.unchanged();
                true
            }
            Outcome::Would { before, after, act } => {
                if self.mode == Mode::Apply {
                    match act(self.sys) {
                        Ok(()) => {
                            self.event(object, before, after, reason, Status::Done, None);
                            true
                        }
                        Err(e) if is_not_found(&e) => {
                            self.unchanged();
                            true
                        }
                        Err(e) => {
                            self.event(object, before, after, reason, Status::Failed, Some(err_text(&e)));
                            false
                        }
                    }
                } else {
                    let st = if self.mode == Mode::DryRun { Status::Planned } else { Status::Drift };
                    self.event(object, before, after, reason, st, None);
                    false
                }
            }
            Outcome::Keep(why) => {
                self.event(object, String::new(), String::new(), &why, Status::Kept, None);
                true
            }
            Outcome::Error(e) => {
                self.fail(object, reason, &e);
                false
            }
        };
        if drop && self.mode == Mode::Apply {
            if matches!(u, Undo::File { .. }) && u.object().ends_with(".service") {
                self.units_changed = true;
            }
            if let Err(e) = self.journal.remove(&u.id()) {
                self.note(format!("cannot update the journal: {e}"));
            }
        }
    }

    fn undo(&mut self, u: &Undo) -> Outcome<S> {
        match u {
            Undo::Sysctl { key, prior, applied } => match self.sys.read_sysctl(key) {
                Ok(None) => Outcome::Nothing,
                Ok(Some(cur)) if same_value(&cur, prior) => Outcome::Nothing,
                Ok(Some(cur)) if same_value(&cur, applied) => {
                    let (k, p) = (key.clone(), prior.clone());
                    Outcome::would(cur.trim(), prior, move |s: &mut S| s.write_sysctl(&k, &p))
                }
                Ok(Some(cur)) => Outcome::Keep(format!(
                    "changed by someone else since lvsctl set it (now {}, lvsctl set {applied}, it was {prior} before): left as it is",
                    cur.trim()
                )),
                Err(e) => Outcome::Error(e),
            },
            Undo::LinkUp { dev } => match self.sys.link_up(dev) {
                Ok(Some(true)) => {
                    let d = dev.clone();
                    Outcome::would("up", "down", move |s: &mut S| s.set_link(&d, false))
                }
                Ok(_) => Outcome::Nothing,
                Err(e) => Outcome::Error(e),
            },
            Undo::Address { address } => match self.sys.addresses() {
                Ok(have) if have.iter().any(|h| h.dev == address.dev && h.address == address.address) => {
                    let a = address.clone();
                    Outcome::would("present", "absent", move |s: &mut S| s.del_address(&a))
                }
                Ok(_) => Outcome::Nothing,
                Err(e) => Outcome::Error(e),
            },
            Undo::Route { applied, prior } => {
                let have = match self.sys.routes() {
                    Ok(r) => r,
                    Err(e) => return Outcome::Error(e),
                };
                let current = have.iter().find(|h| h.destination == applied.destination && h.metric == applied.metric);
                match (current, prior) {
                    (Some(c), _) if !(c.gateway == applied.gateway && c.protocol == RTPROT_LVSCTL) => {
                        Outcome::Keep(format!("now {}, not the route lvsctl set: left as it is", c.describe()))
                    }
                    (Some(c), Some(p)) => {
                        let p2 = p.clone();
                        Outcome::would(&c.describe(), &p.describe(), move |s: &mut S| s.add_route(&p2, true))
                    }
                    (Some(c), None) => {
                        let c2 = c.clone();
                        Outcome::would(&c.describe(), "absent", move |s: &mut S| s.del_route(&c2))
                    }
                    (None, Some(p)) => {
                        let p2 = p.clone();
                        Outcome::would("absent", &p.describe(), move |s: &mut S| s.add_route(&p2, false))
                    }
                    (None, None) => Outcome::Nothing,
                }
            }
            Undo::Service { key, prior, .. } => {
                let table = match self.table() {
                    Ok(t) => t,
                    Err(e) => return Outcome::Error(e),
                };
                let Some(cur) = table.iter().find(|s| s.entry.key == *key) else { return Outcome::Nothing };
                let k = *key;
                match prior {
                    None => {
                        Outcome::would(&cur.entry.config.describe(), "absent", move |s: &mut S| s.ipvs_del_service(&k))
                    }
                    Some(p) if *p == cur.entry.config => Outcome::Nothing,
                    Some(p) => {
                        let p2 = p.clone();
                        Outcome::would(&cur.entry.config.describe(), &p.describe(), move |s: &mut S| {
                            s.ipvs_set_service(&k, &p2)
                        })
                    }
                }
            }
            Undo::Dest { service, key, prior, .. } => {
                let table = match self.table() {
                    Ok(t) => t,
                    Err(e) => return Outcome::Error(e),
                };
                let Some(cur) =
                    table.iter().find(|s| s.entry.key == *service).and_then(|s| s.dests.iter().find(|d| d.key == *key))
                else {
                    return Outcome::Nothing;
                };
                let (sk, dk) = (*service, *key);
                match prior {
                    None => {
                        Outcome::would(&cur.config.describe(), "absent", move |s: &mut S| s.ipvs_del_dest(&sk, &dk))
                    }
                    Some(p) if *p == cur.config => Outcome::Nothing,
                    Some(p) => {
                        let p2 = p.clone();
                        Outcome::would(&cur.config.describe(), &p.describe(), move |s: &mut S| {
                            s.ipvs_set_dest(&sk, &dk, &p2)
                        })
                    }
                }
            }
            Undo::File { path, prior, applied_sha256 } => {
                let current = match self.sys.read_file(path) {
                    Ok(c) => c,
                    Err(e) => return Outcome::Error(e),
                };
                let restore = match prior {
                    Some(b) => match self.journal.read_backup(b) {
                        Ok(content) => Some((content, b.mode)),
                        Err(e) => {
                            return Outcome::Error(io::Error::new(
                                e.kind(),
                                format!("cannot read the backup of {path}: {e}"),
                            ));
                        }
                    },
                    None => None,
                };
                let p = path.clone();
                match (current, restore) {
                    (Some(c), _) if sha256(&c.content) != *applied_sha256 => {
                        Outcome::Keep("changed by someone else since lvsctl wrote it: left as it is".into())
                    }
                    (Some(_), Some((content, mode))) => {
                        Outcome::would("lvsctl's version", "the prior version", move |s: &mut S| {
                            s.write_file(&p, &content, mode)
                        })
                    }
                    (Some(_), None) => Outcome::would("present", "absent", move |s: &mut S| s.remove_file(&p)),
                    (None, Some((content, mode))) => {
                        Outcome::would("absent", "the prior version", move |s: &mut S| s.write_file(&p, &content, mode))
                    }
                    (None, None) => Outcome::Nothing,
                }
            }
            Undo::Dir { path } => {
                if !self.sys.dir_exists(path) {
                    return Outcome::Nothing;
                }
                let p = path.clone();
                Outcome::would("present", "absent", move |s: &mut S| match s.remove_dir_if_empty(&p) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(io::Error::new(
                        io::ErrorKind::DirectoryNotEmpty,
                        "holds files lvsctl did not write: left in place",
                    )),
                    Err(e) => Err(e),
                })
            }
            Undo::Unit { name } => {
                if !self.sys.systemd_running() {
                    return Outcome::Nothing;
                }
                let n = name.clone();
                Outcome::would("enabled", "disabled", move |s: &mut S| s.systemctl(&["disable", &n]).map(|_| ()))
            }
            Undo::Module { name, loaded } => {
                let names = loaded.clone().unwrap_or_else(|| vec![name.replace('-', "_")]);
                let present = match self.sys.loaded_modules() {
                    Ok(l) => l,
                    Err(e) => return Outcome::Error(e),
                };
                let names: Vec<String> = names.into_iter().filter(|n| present.contains(n)).collect();
                if names.is_empty() {
                    return Outcome::Nothing;
                }
                let shown = names.join(" ");
                Outcome::would(&format!("loaded ({shown})"), "unloaded", move |s: &mut S| unload_all(s, &names))
            }
        }
    }

    fn table(&mut self) -> io::Result<Vec<IpvsService>> {
        if !self.sys.ipvs_loaded() {
            return Ok(vec![]);
        }
        self.sys.ipvs_table()
    }
}

/// Unloads modules in whatever order their users allow (a module is unloadable once the modules
/// using it are gone), waiting briefly for references the kernel drops asynchronously.
fn unload_all<S: System>(s: &mut S, names: &[String]) -> io::Result<()> {
    let mut left: Vec<String> = names.to_vec();
    for _round in 0..30 {
        let mut progress = false;
        let mut still = Vec::new();
        for m in left {
            match s.unload_module(&m) {
                Ok(()) => progress = true,
                Err(e) if is_not_found(&e) => progress = true,
                Err(_) => still.push(m),
            }
        }
        left = still;
        if left.is_empty() {
            return Ok(());
        }
        if !progress {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Err(io::Error::new(io::ErrorKind::ResourceBusy, format!("still in use, left loaded: {}", left.join(" "))))
}

type Act<S> = Box<dyn FnOnce(&mut S) -> io::Result<()>>;

enum Outcome<S> {
    /// Already as it was before lvsctl.
    Nothing,
    /// Undo by running `act`, which turns `before` into `after`.
    Would {
        before: String,
        after: String,
        act: Act<S>,
    },
    /// Someone else changed the object after lvsctl did: leave it.
    Keep(String),
    Error(io::Error),
}

impl<S> Outcome<S> {
    fn would(before: &str, after: &str, act: impl FnOnce(&mut S) -> io::Result<()> + 'static) -> Self {
        Outcome::Would { before: before.to_string(), after: after.to_string(), act: Box::new(act) }
    }
}
