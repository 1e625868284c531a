//! The agent: lvsctl running on a host, as root. It reads one request (JSON) on stdin, reads the
//! host's state, and applies, checks or reverts, answering with JSON lines on stdout: one event
//! per change as it happens, then a report.
//!
//! It ignores SIGHUP and SIGPIPE: when the SSH session drops (or the controller is killed), it
//! finishes its plan; every change was journaled before it was made.

pub mod apply;
pub mod capture;
pub mod drain;
pub mod exporter;
pub mod facts;
pub mod ha;
pub mod journal;
pub mod metrics;
pub mod probe;
pub use crate::wire::{event, protocol};
#[cfg(test)]
mod tests;

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::host::System;
pub(crate) use apply::Executor;
use journal::{Journal, LabLock};
use protocol::{Answer, Event, Operation, Report, Request};

use crate::paths;
use crate::plan::HostPlan;
use crate::resource::{Intent, Scope};

/// Where the agent keeps its state on a host.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Journals: `STATE/LAB/journal.json`.
    pub state_root: PathBuf,
    /// Lock files: `RUN/lvsctl-LAB.lock`.
    pub run_dir: PathBuf,
    /// Installed agents (removed when the last lab leaves the host).
    pub install_root: PathBuf,
    /// Persisted plans: `CONFIG/LAB/host.json`.
    pub config_root: PathBuf,
    /// Where the host's files are: `/`, or a test's directory. Journal entries must name files
    /// of lvsctl's below it.
    pub root: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            state_root: PathBuf::from(paths::STATE_ROOT),
            run_dir: PathBuf::from(paths::RUN_DIR),
            install_root: PathBuf::from(paths::INSTALL_ROOT),
            config_root: PathBuf::from(paths::CONFIG_ROOT),
            root: PathBuf::from("/"),
        }
    }
}

impl Paths {
    pub fn lab_dir(&self, lab: &str) -> PathBuf {
        self.state_root.join(lab)
    }
    pub fn lock(&self, lab: &str) -> PathBuf {
        self.run_dir.join(paths::lock_name(lab))
    }
}

/// What stopped an operation on this host, by the step that failed. (Failures of single changes
/// are not errors: they are reported per item and the other items go on.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad request: {0}")]
    Request(String),
    #[error("invalid lab name {0:?}")]
    LabName(String),
    #[error("plan is for lab {plan}, request for {request}")]
    OtherLab { plan: String, request: String },
    #[error("cannot lock lab {lab} ({}): {source}", path.display())]
    Lock { lab: String, path: PathBuf, source: io::Error },
    /// Opening, updating or deleting the journal (the message names the file).
    #[error("{0}")]
    Journal(io::Error),
    #[error("cannot read the host's state: {0}")]
    Facts(io::Error),
    #[error("cannot read the IPVS table: {0}")]
    Ipvs(io::Error),
    /// The runtime plan the boot unit re-applies.
    #[error("{}: {message}", path.display())]
    PersistedPlan { path: PathBuf, message: String },
    #[error("cannot open netlink: {0}")]
    Netlink(io::Error),
    #[error("capture: {0}")]
    Capture(String),
}

/// What the boot unit asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootAction {
    /// Apply the runtime part of the persisted plan.
    Start,
    /// Undo the runtime changes; files stay, so the next start provisions again.
    Stop,
}

impl BootAction {
    pub fn parse(s: &str) -> Option<BootAction> {
        match s {
            "start" => Some(BootAction::Start),
            "stop" => Some(BootAction::Stop),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BootAction::Start => "start",
            BootAction::Stop => "stop",
        }
    }
}

/// How long an operation waits for another one on the same lab (an `up` still finishing after its
/// controller went away, a boot unit) before it gives up and says who holds the lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

fn lock(paths: &Paths, lab: &str, host: &str, emit: &mut dyn FnMut(Event)) -> Result<LabLock, Error> {
    let path = paths.lock(lab);
    let mut on_wait = |holder: Option<u32>| {
        let by = holder.map_or(String::new(), |p| format!(" (held by pid {p})"));
        let on = if host.is_empty() { String::new() } else { format!(" on {host}") };
        emit(Event::Note {
            message: format!(
                "waiting for the lab lock{on}{by}: another lvsctl is working on lab {lab}; giving up after {} s",
                LOCK_WAIT.as_secs()
            ),
            live: true,
        });
    };
    LabLock::acquire(&path, LOCK_WAIT, &mut on_wait).map_err(|source| Error::Lock {
        lab: lab.to_string(),
        path,
        source,
    })
}

/// The SSH client's address, from the variable sshd sets for the session (through sudo, which
/// clears the environment, the controller's fixed command passes it on as LVSCTL_SSH_CONNECTION).
fn ssh_peer() -> Option<std::net::Ipv4Addr> {
    ["LVSCTL_SSH_CONNECTION", "SSH_CONNECTION"].iter().find_map(|v| parse_ssh_connection(&std::env::var(v).ok()?))
}

/// `CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT` → the client's IPv4 address (also when sshd
/// listens on IPv6 and shows it IPv4-mapped).
pub fn parse_ssh_connection(v: &str) -> Option<std::net::Ipv4Addr> {
    let ip = v.split_whitespace().next()?;
    ip.parse().ok().or_else(|| ip.parse::<std::net::Ipv6Addr>().ok()?.to_ipv4_mapped())
}

fn valid_lab(lab: &str) -> Result<(), Error> {
    if !lab.is_empty()
        && lab.len() <= 20
        && lab.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Ok(())
    } else {
        Err(Error::LabName(lab.to_string()))
    }
}

fn ignore_hangups() {
    // SAFETY: setting signal dispositions to SIG_IGN is always safe.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Writes events as JSON lines; a closed stdout (the controller went away) is ignored.
/// The agent's stdout: JSON lines, sent in batches. A line per write would be a write and an
/// ssh channel packet per change (10,000 for 10,000 destinations); lines wait at most
/// `Out::LATENCY` (a flusher thread sends what waits), or until `Out::BATCH` bytes are waiting.
struct Out {
    shared: std::sync::Arc<OutBuf>,
}

#[derive(Default)]
struct OutBuf {
    waiting: std::sync::Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    bytes: Vec<u8>,
    /// stdout is gone (the controller went away): nothing more is written.
    broken: bool,
    done: bool,
}

impl OutBuf {
    fn flush(w: &mut Waiting) {
        if w.broken || w.bytes.is_empty() {
            w.bytes.clear();
            return;
        }
        let mut so = io::stdout().lock();
        if so.write_all(&w.bytes).and_then(|_| so.flush()).is_err() {
            w.broken = true;
        }
        w.bytes.clear();
    }
}

impl Out {
    const LATENCY: std::time::Duration = std::time::Duration::from_millis(50);
    const BATCH: usize = 64 * 1024;

    fn new() -> Out {
        let shared = std::sync::Arc::new(OutBuf::default());
        let flusher = shared.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Out::LATENCY);
                let mut w = flusher.waiting.lock().unwrap_or_else(|p| p.into_inner());
                if w.done {
                    return;
                }
                OutBuf::flush(&mut w);
            }
        });
        Out { shared }
    }

    fn send(&mut self, e: &Event) {
        let mut w = self.shared.waiting.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_writer(&mut w.bytes, e).expect("events serialize");
        w.bytes.push(b'\n');
        // What the user must see at once (a wait for the lab lock), the report, or a full batch.
        let now = matches!(
            e,
            Event::Report(_)
                | Event::Note { live: true, .. }
                | Event::Capture(crate::wire::capture::CaptureEvent::Ready { .. })
        ) || w.bytes.len() >= Out::BATCH;
        if now {
            OutBuf::flush(&mut w);
        }
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let mut w = self.shared.waiting.lock().unwrap_or_else(|p| p.into_inner());
        OutBuf::flush(&mut w);
        w.done = true;
    }
}

/// `lvsctl agent serve`: one request on stdin, events and a report on stdout.
pub fn serve() -> i32 {
    ignore_hangups();
    let mut out = Out::new();
    let mut input = String::new();
    let req: Request = match io::stdin()
        .lock()
        .read_line(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str(&input).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            let report = Report { errors: vec![Error::Request(e).to_string()], ..Default::default() };
            out.send(&Event::Report(Box::new(report)));
            return 2;
        }
    };
    let report = match crate::host::linux::Linux::new() {
        Ok(mut sys) => handle(&mut sys, &Paths::default(), req, &mut |e| out.send(&e)),
        Err(e) => Report { host: req.host.clone(), errors: vec![Error::Netlink(e).to_string()], ..Default::default() },
    };
    let code = if report.errors.is_empty() && report.failed == 0 { 0 } else { 1 };
    out.send(&Event::Report(Box::new(report)));
    code
}

/// Runs one request against a system; every event goes to `emit`, the report is returned.
pub fn handle<S: System>(sys: &mut S, paths: &Paths, mut req: Request, emit: &mut dyn FnMut(Event)) -> Report {
    let start = Instant::now();
    if let Some(plan) = req.op.plan_mut() {
        plan.fill_derived();
    }
    let req = &req;
    let mut report = match run(sys, paths, req, emit) {
        Ok(r) => r,
        Err(e) => Report { host: req.host.clone(), errors: vec![e.to_string()], ..Default::default() },
    };
    report.duration_ms = start.elapsed().as_millis() as u64;
    report
}

fn run<S: System>(sys: &mut S, paths: &Paths, req: &Request, emit: &mut dyn FnMut(Event)) -> Result<Report, Error> {
    valid_lab(&req.lab)?;
    let for_this_lab = |p: &HostPlan| -> Result<(), Error> {
        if p.lab == req.lab { Ok(()) } else { Err(Error::OtherLab { plan: p.lab.clone(), request: req.lab.clone() }) }
    };
    let (plan, intent) = match &req.op {
        Operation::Apply { plan, .. } => (plan, Intent::Apply),
        Operation::DryRun { plan } => (plan, Intent::DryRun),
        Operation::Check { plan } => (plan, Intent::Check),
        Operation::Down => return down(sys, paths, &req.lab, &req.host, emit, Intent::Apply),
        Operation::DownDryRun => return down(sys, paths, &req.lab, &req.host, emit, Intent::DryRun),
        Operation::Drain { plan, drain: d } => {
            for_this_lab(plan)?;
            return drain::run(sys, paths, req, plan, d, emit);
        }
        Operation::Facts { plan, facts } => {
            let mut facts = facts::gather(sys, &req.lab, facts).map_err(Error::Facts)?;
            let mut notes = Vec::new();
            match drain::load(paths, &req.lab) {
                Ok(d) => facts.drained = d,
                Err(e) => notes.push(format!("cannot read the drained real servers: {e}")),
            }
            if let Some(plan) = plan {
                for_this_lab(plan)?;
                let (plan, _, _) = drained(paths, &req.lab, plan);
                let plan = &plan;
                facts.drift = drift(sys, paths, req, plan, Scope::All)?;
                if let Some(k) = &plan.keepalived {
                    facts.keepalived = ha::status(sys, k, &req.lab, true).ok();
                }
                facts.nft = plan.nftables.as_ref().map(|t| crate::resource::nft::fact(sys, t));
            }
            return Ok(Report {
                host: req.host.clone(),
                answer: Some(Answer::Facts(Box::new(facts))),
                notes,
                ..Default::default()
            });
        }
        Operation::Watch { plan, interval_ms, seconds } => {
            for_this_lab(plan)?;
            let stop = stdin_closed();
            let end = Instant::now() + std::time::Duration::from_secs((*seconds).clamp(1, 86_400));
            let every = std::time::Duration::from_millis((*interval_ms).clamp(200, 60_000));
            let mut sent = 0u32;
            loop {
                let tick = Instant::now();
                let families = metrics_of(sys, paths, req, plan, DriftCount::Skip)?;
                let at_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                emit(Event::Metrics { at_ms, families });
                sent += 1;
                while tick.elapsed() < every && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                if stop.load(std::sync::atomic::Ordering::SeqCst) || Instant::now() >= end {
                    break;
                }
            }
            return Ok(Report { host: req.host.clone(), notes: vec![format!("{sent} samples")], ..Default::default() });
        }
        Operation::Metrics { plan } => {
            for_this_lab(plan)?;
            let families = metrics_of(sys, paths, req, plan, DriftCount::In(Scope::All))?;
            return Ok(Report {
                host: req.host.clone(),
                answer: Some(Answer::Metrics(families)),
                ..Default::default()
            });
        }
        Operation::Capture { capture: c } => {
            let lab_up = paths.lab_dir(&req.lab).join("journal.json").exists();
            let summary = capture::run(c, lab_up, c.probe.is_none(), emit).map_err(Error::Capture)?;
            return Ok(Report { host: req.host.clone(), answer: Some(Answer::Capture(summary)), ..Default::default() });
        }
        Operation::Probe { probe } => {
            let probe = probe::run(probe);
            return Ok(Report { host: req.host.clone(), answer: Some(Answer::Probe(probe)), ..Default::default() });
        }
        Operation::Daemon { name, action, delay_ms } => {
            std::thread::sleep(std::time::Duration::from_millis((*delay_ms).min(60_000)));
            return daemon_op(sys, paths, req, name, *action, emit);
        }
    };
    for_this_lab(plan)?;
    let (plan, drain_notes, drains) = drained(paths, &req.lab, plan);
    let plan = &plan;
    // status shows the drains in a line of their own (the report's `drained`).
    for message in drain_notes.into_iter().filter(|_| intent != Intent::Check) {
        emit(Event::Note { message, live: false });
    }
    let apply = intent == Intent::Apply;
    let _lock = if apply { Some(lock(paths, &req.lab, &req.host, emit)?) } else { None };
    let mut journal = Journal::open(&paths.lab_dir(&req.lab), &req.lab, &req.host, apply).map_err(Error::Journal)?;
    journal.check(&req.lab, &paths.root).map_err(Error::Journal)?;
    let mut exec = Executor::new(sys, &mut journal, intent, emit, &req.host);
    exec.session = crate::resource::Session { ssh_peer: ssh_peer().map(Into::into), force: req.force };
    #[cfg(feature = "fault-injection")]
    if let Operation::Apply { faults, .. } = &req.op {
        exec.faults = *faults;
    }
    exec.apply(plan, Scope::All);
    let checked = exec.ipvs_checked.take();
    let mut report = exec.report;
    if intent == Intent::Check && (!plan.ipvs.is_empty() || plan.keepalived.is_some()) && sys.ipvs_loaded() {
        let table = match checked {
            Some(t) => t,
            None => sys.ipvs_table().map_err(Error::Ipvs)?,
        };
        report.answer = Some(Answer::Ipvs(table));
    }
    let director = !plan.ipvs.is_empty() || plan.keepalived.is_some() || plan.ipvs_timeouts.is_some();
    if intent == Intent::Check && director {
        report.drained = drains;
    }
    if intent == Intent::Check && director && sys.ipvs_loaded() {
        match sys.ipvs_timeouts() {
            Ok(t) => report.ipvs_timeouts = Some(t),
            Err(e) => report.notes.push(format!("cannot read IPVS's timeouts: {e}")),
        }
    }
    if intent == Intent::Check
        && let Some(k) = &plan.keepalived
    {
        match ha::status(sys, k, &req.lab, false) {
            Ok(s) => report.keepalived = Some(s),
            Err(e) => report.notes.push(format!("cannot read keepalived's state: {e}")),
        }
    }
    report.journal_entries = journal.len() as u32;
    Ok(report)
}

/// `plan` as this host's drains leave it (`lvsctl drain`), and what they kept; a drain record
/// that cannot be read is said, and the plan taken as it is.
/// Set once the controller closes the agent's stdin (a streaming operation ends then).
fn stdin_closed() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let set = stop.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = io::stdin();
        while matches!(std::io::Read::read(&mut stdin, &mut sink), Ok(n) if n > 0) {}
        set.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    stop
}

/// Drift, as `status` sees it: a check run whose events are kept, not printed.
fn drift<S: System>(
    sys: &mut S,
    paths: &Paths,
    req: &Request,
    plan: &HostPlan,
    scope: Scope,
) -> Result<Vec<crate::wire::event::ChangeEvent>, Error> {
    let mut journal = Journal::open(&paths.lab_dir(&req.lab), &req.lab, &req.host, false).map_err(Error::Journal)?;
    journal.check(&req.lab, &paths.root).map_err(Error::Journal)?;
    let mut drift = Vec::new();
    let mut keep = |e: Event| {
        if let Event::Change(c) = e {
            drift.push(c)
        }
    };
    Executor::new(sys, &mut journal, Intent::Check, &mut keep, &req.host).apply(plan, scope);
    Ok(drift)
}

/// How a metrics read gets lvsctl's drift count.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DriftCount {
    /// Not at all (`top`'s watch).
    Skip,
    /// Counted now, in this scope: everything for a plan from the controller, the runtime state
    /// for the persisted plan (which holds no files).
    In(Scope),
    /// Counted earlier (the exporter counts it apart from its scrapes).
    Known(Option<usize>),
}

/// A director's metrics: its table named by the plan, health, VRRP, sync, lvsctl's state.
fn metrics_of<S: System>(
    sys: &mut S,
    paths: &Paths,
    req: &Request,
    plan: &HostPlan,
    drift_count: DriftCount,
) -> Result<Vec<crate::wire::metrics::Family>, Error> {
    let table = if sys.ipvs_loaded() { sys.ipvs_table().map_err(Error::Ipvs)? } else { Vec::new() };
    let drains = drain::load(paths, &req.lab).unwrap_or_default();
    let journal = paths.lab_dir(&req.lab).join("journal.json");
    let applied = journal.exists();
    let last_up = std::fs::metadata(&journal)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let (overlaid, _, _) = drained(paths, &req.lab, plan);
    let drift = match drift_count {
        DriftCount::In(scope) if applied => Some(drift(sys, paths, req, &overlaid, scope)?.len()),
        DriftCount::Known(n) if applied => n,
        _ => None,
    };
    let keepalived = match &plan.keepalived {
        Some(k) => ha::status(sys, k, &req.lab, false).ok(),
        None => None,
    };
    let state = metrics::State {
        lab: &req.lab,
        director: &req.host,
        keepalived: keepalived.as_ref(),
        drained: drains.keys().cloned().collect(),
        applied,
        drift,
        last_up,
    };
    Ok(metrics::families(plan, &table, &state))
}

fn drained(paths: &Paths, lab: &str, plan: &HostPlan) -> (HostPlan, Vec<String>, drain::DrainState) {
    let mut plan = plan.clone();
    match drain::load(paths, lab) {
        Ok(state) => {
            let notes = drain::overlay(&mut plan, &state);
            (plan, notes, state)
        }
        Err(e) => (
            plan,
            vec![format!("cannot read the drained real servers ({e}): the plan's weights apply")],
            Default::default(),
        ),
    }
}

/// Stops or starts again a daemon of the journal, keeping its record.
fn daemon_op<S: System>(
    sys: &mut S,
    paths: &Paths,
    req: &Request,
    name: &str,
    action: protocol::DaemonAction,
    emit: &mut dyn FnMut(Event),
) -> Result<Report, Error> {
    use crate::resource::{self, Decision, Key, Undo, daemon};
    let _lock = lock(paths, &req.lab, &req.host, emit)?;
    let mut journal = Journal::open(&paths.lab_dir(&req.lab), &req.lab, &req.host, true).map_err(Error::Journal)?;
    journal.check(&req.lab, &paths.root).map_err(Error::Journal)?;
    let key = Key::Daemon(name.to_string());
    let Some(Undo::Daemon(u)) = journal.newest_first().find(|u| u.key() == key).cloned() else {
        return Err(Error::Request(format!("lab {} runs no {name} on this host: run `lvsctl up` first", req.lab)));
    };
    let live = resource::Live::read(sys, &resource::undo_wants(&[Undo::Daemon(u.clone())]), &Default::default());
    let decision = match action {
        protocol::DaemonAction::Stop => daemon::undo(&u, &live),
        protocol::DaemonAction::Start => daemon::restart(&u, &req.lab, &live),
    };
    let mut report = Report { host: req.host.clone(), ..Default::default() };
    let mut event = |report: &mut Report, before: String, after: String, status, error: Option<String>| {
        if status == protocol::Status::Failed {
            report.failed += 1
        } else {
            report.changes += 1
        }
        emit(Event::Change(protocol::ChangeEvent {
            object: key.to_string(),
            before,
            after,
            reason: format!("verify --failover: {:?}", action).to_lowercase(),
            status,
            error,
            kind: None,
        }));
    };
    match decision {
        Decision::Same { .. } => report.unchanged += 1,
        Decision::Change(c) => match resource::act(sys, &c.action, &journal) {
            Ok(refined) => {
                if let Some(r) = refined.or(c.record) {
                    journal.record(r).and_then(|()| journal.finish()).map_err(Error::Journal)?;
                }
                event(&mut report, c.before, c.after, protocol::Status::Done, None);
            }
            Err(e) => event(&mut report, c.before, c.after, protocol::Status::Failed, Some(e.to_string())),
        },
        Decision::Failed { error, .. } | Decision::Blocked { error, .. } | Decision::Pending { error, .. } => {
            event(&mut report, String::new(), String::new(), protocol::Status::Failed, Some(error))
        }
        Decision::Keep { .. } | Decision::Note(_) => {}
    }
    report.journal_entries = journal.len() as u32;
    Ok(report)
}

fn down<S: System>(
    sys: &mut S,
    paths: &Paths,
    lab: &str,
    host: &str,
    emit: &mut dyn FnMut(Event),
    intent: Intent,
) -> Result<Report, Error> {
    let dir = paths.lab_dir(lab);
    if intent != Intent::Apply {
        // A dry run: what the journal says would be undone, read from a copy in memory.
        if !Journal::exists(&dir) {
            let message = format!("nothing to undo: no journal of lab {lab} on this host");
            emit(Event::Note { message: message.clone(), live: false });
            return Ok(Report { host: host.to_string(), notes: vec![message], ..Default::default() });
        }
        let mut journal = Journal::open(&dir, lab, host, false).map_err(Error::Journal)?;
        journal.check(lab, &paths.root).map_err(Error::Journal)?;
        let mut exec = Executor::new(sys, &mut journal, intent, emit, host);
        exec.revert_all(Scope::All);
        let mut report = exec.report;
        report.journal_entries = journal.len() as u32;
        return Ok(report);
    }
    let unit = paths::unit_name(lab);
    if crate::resource::unit::is_active(sys, &unit) {
        // The unit's stop undoes the runtime state (it takes the lab lock, so do it before we do).
        if let Err(e) = sys.systemctl(&["stop", &unit]) {
            emit(Event::Note { message: format!("systemctl stop {unit}: {e}"), live: false });
        }
    }
    let lock = lock(paths, lab, host, emit)?;
    if !Journal::exists(&dir) {
        let message = format!("nothing to undo: no journal of lab {lab} on this host");
        emit(Event::Note { message: message.clone(), live: false });
        let _ = std::fs::remove_file(&lock.path);
        let mut report = Report { host: host.to_string(), notes: vec![message], ..Default::default() };
        // An `up` stopped after it installed the agent and before the agent ran left no journal,
        // only the agent: it goes too when no lab is left.
        cleanup_if_last(paths, &mut report);
        return Ok(report);
    }
    let mut journal = Journal::open(&dir, lab, host, true).map_err(Error::Journal)?;
    journal.check(lab, &paths.root).map_err(Error::Journal)?;
    let mut exec = Executor::new(sys, &mut journal, Intent::Apply, emit, host);
    exec.revert_all(Scope::All);
    let mut report = exec.report;
    report.journal_entries = journal.len() as u32;
    if journal.is_empty() {
        drain::forget(paths, lab);
        journal.delete().map_err(Error::Journal)?;
        let _ = std::fs::remove_file(&lock.path);
        cleanup_if_last(paths, &mut report);
    } else {
        report.notes.push(format!(
            "{} journal entries could not be undone and stay in {}: fix the errors above and run down again",
            report.journal_entries,
            Journal::path(&dir).display()
        ));
    }
    Ok(report)
}

/// When no lab is left on the host, lvsctl's own directories go too (the agent binaries and the
/// empty state directory), so the host is as it was before the first `up`.
fn cleanup_if_last(paths: &Paths, report: &mut Report) {
    let empty = std::fs::read_dir(&paths.state_root).map(|mut d| d.next().is_none()).unwrap_or(true);
    if !empty {
        return;
    }
    let _ = std::fs::remove_dir(&paths.state_root);
    if paths.install_root.exists() {
        match std::fs::remove_dir_all(&paths.install_root) {
            Ok(()) => report.notes.push(format!(
                "removed lvsctl's agent from {} (no lab left on this host)",
                paths.install_root.display()
            )),
            Err(e) => report.notes.push(format!("cannot remove {}: {e}", paths.install_root.display())),
        }
    }
}

/// `lvsctl agent boot start|stop --lab LAB`: what the systemd unit runs. Start applies the
/// runtime part of the persisted plan; stop undoes the runtime changes (files stay, so the next
/// boot or start provisions again).
pub fn boot(action: &str, lab: &str) -> i32 {
    ignore_hangups();
    let Some(action) = BootAction::parse(action) else {
        eprintln!("lvsctl: unknown boot action {action}: start or stop");
        return 2;
    };
    // The unit checked this binary's sha256 before running it; it refuses to go on from a place
    // someone but root could change it in.
    if let Ok(exe) = std::fs::read_link("/proc/self/exe")
        && let Err(why) = root_only(&exe)
    {
        eprintln!("lvsctl: refusing to run {} as root at boot: {why}", exe.display());
        return 1;
    }
    let paths = Paths::default();
    let mut sys = match crate::host::linux::Linux::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lvsctl: {}", Error::Netlink(e));
            return 1;
        }
    };
    let mut print = |e: Event| match e {
        Event::Change(c) => {
            let err = c.error.map(|e| format!(": {e}")).unwrap_or_default();
            println!("{:?} {}: {} -> {}{err}", c.status, c.object, c.before, c.after);
        }
        Event::Note { message, .. } => println!("note: {message}"),
        Event::Drain(_) | Event::Capture(_) | Event::Metrics { .. } | Event::Report(_) => {}
    };
    match boot_run(&mut sys, &paths, action, lab, &mut print) {
        Ok(r) => {
            println!("lvsctl {} lab {lab}: {} changes, {} failed", action.as_str(), r.changes, r.failed);
            if r.failed == 0 { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("lvsctl {} lab {lab}: {e}", action.as_str());
            1
        }
    }
}

/// For an installed agent (under the install root): the file and every directory above it are
/// root's and not writable by group or others. Agents run from elsewhere (tests) are not checked.
pub fn root_only(exe: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !exe.starts_with(paths::INSTALL_ROOT) {
        return Ok(());
    }
    for p in exe.ancestors() {
        let m = std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if m.uid() != 0 || m.mode() & 0o022 != 0 {
            return Err(format!(
                "{} is owned by uid {} with mode {:o}: only root may be able to change it",
                p.display(),
                m.uid(),
                m.mode() & 0o7777
            ));
        }
    }
    Ok(())
}

pub fn boot_run<S: System>(
    sys: &mut S,
    paths: &Paths,
    action: BootAction,
    lab: &str,
    emit: &mut dyn FnMut(Event),
) -> Result<Report, Error> {
    valid_lab(lab)?;
    let _lock = lock(paths, lab, "", emit)?;
    let dir = paths.lab_dir(lab);
    let mut journal = Journal::open(&dir, lab, "", true).map_err(Error::Journal)?;
    journal.check(lab, &paths.root).map_err(Error::Journal)?;
    let host = journal.host.clone();
    match action {
        BootAction::Start => {
            let path = paths.config_root.join(lab).join(paths::HOST_PLAN_FILE);
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::PersistedPlan { path: path.clone(), message: e.to_string() })?;
            let plan: HostPlan = serde_json::from_slice(&bytes)
                .map_err(|e| Error::PersistedPlan { path: path.clone(), message: e.to_string() })?;
            // A drained real server stays drained across a reboot.
            let (plan, notes, _) = drained(paths, lab, &plan);
            for message in notes {
                emit(Event::Note { message, live: false });
            }
            let mut exec = Executor::new(sys, &mut journal, Intent::Apply, emit, &host);
            exec.apply(&plan, Scope::Runtime);
            Ok(exec.report)
        }
        BootAction::Stop => {
            let mut exec = Executor::new(sys, &mut journal, Intent::Apply, emit, &host);
            exec.revert_all(Scope::Runtime);
            Ok(exec.report)
        }
    }
}

/// Used by tests to run the agent against a fake system under a temporary root.
pub fn paths_under(root: &Path) -> Paths {
    Paths {
        state_root: root.join("var/lib/lvsctl"),
        run_dir: root.join("run"),
        install_root: root.join("usr/local/lib/lvsctl"),
        config_root: root.join("etc/lvsctl"),
        root: root.to_path_buf(),
    }
}
