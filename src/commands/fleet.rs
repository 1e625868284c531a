//! Running the agent on many hosts: sorted, in parallel with a bound, one host's failure never
//! stopping or hiding another's; events printed as they arrive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::agent::protocol::{ChangeEvent, Event, Report, Request, Status};
use crate::cli::ConnectArgs;
use crate::inventory::{Lab, SshSettings};
use crate::remote::binary::AgentBinary;
use crate::remote::{ConnectOptions, HostError, Transport, connect};

/// One host to work on.
#[derive(Debug, Clone)]
pub struct Job {
    pub host: String,
    pub ssh: SshSettings,
    pub request: Request,
}

#[derive(Debug)]
pub struct Outcome {
    pub host: String,
    pub result: Result<Report, HostError>,
    pub seconds: f64,
    /// Every change event the host reported, in order.
    pub events: Vec<ChangeEvent>,
}

/// Prints per-host lines; one lock so lines of different hosts never interleave.
pub struct Printer {
    width: usize,
    quiet: bool,
    /// Connection progress lines (connecting, connected in N s).
    pub progress: bool,
    /// A dry run: planned changes are not printed as they arrive but grouped by host after
    /// the run ([`print_diff`]).
    pub diff: bool,
    color: bool,
    verbosity: crate::output::Verbosity,
    /// Notes not shown yet: (message, hosts), in the order first seen.
    notes: Mutex<Vec<(String, Vec<String>)>>,
    /// Notes already shown as they came: (host, message).
    shown: Mutex<Vec<(String, String)>>,
    lock: Mutex<()>,
}

impl Printer {
    pub fn new(hosts: &[String], quiet: bool) -> Printer {
        Printer {
            width: hosts.iter().map(|h| h.len()).max().unwrap_or(4).max(4),
            quiet,
            progress: true,
            diff: false,
            color: crate::output::color_stdout(),
            verbosity: crate::output::verbosity(),
            notes: Mutex::new(Vec::new()),
            shown: Mutex::new(Vec::new()),
            lock: Mutex::new(()),
        }
    }

    pub fn line(&self, host: &str, text: &str) {
        if self.quiet || self.verbosity == crate::output::Verbosity::Quiet {
            return;
        }
        self.always(host, text);
    }

    /// A line shown even with `-q`: a problem.
    pub fn problem(&self, host: &str, text: &str) {
        if self.quiet {
            return;
        }
        self.always(host, text);
    }

    fn always(&self, host: &str, text: &str) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        crate::outln!("{host:<w$}  {text}", w = self.width);
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    pub fn change(&self, host: &str, c: &ChangeEvent) {
        if self.diff && c.status == Status::Planned {
            return;
        }
        let problem = matches!(c.status, Status::Failed | Status::Kept | Status::Drift);
        let (mark, code) = match c.status {
            Status::Done => ("changed", "32"),
            Status::Planned => ("would change", "36"),
            Status::Drift => ("drifted", "33"),
            Status::Kept => ("kept", "33"),
            Status::Failed => ("FAILED", "31"),
        };
        let mut text = format!("{} {}", self.paint(code, mark), c.object);
        if !(c.before.is_empty() && c.after.is_empty()) {
            text.push_str(&format!(": {} -> {}", c.before, c.after));
        }
        if let Some(e) = &c.error {
            text.push_str(&format!(": {}", self.paint("31", e)));
        } else if c.status == Status::Kept {
            text.push_str(&format!(" ({})", c.reason));
        }
        if problem { self.problem(host, &text) } else { self.line(host, &text) }
    }

    /// A note from `host`: shown now when it is live or with `-v`, else kept for
    /// [`Printer::flush_notes`].
    pub fn note(&self, host: &str, message: &str, live: bool) {
        if live || self.verbosity == crate::output::Verbosity::Verbose {
            self.shown.lock().unwrap_or_else(|e| e.into_inner()).push((host.to_string(), message.to_string()));
            return self.line(host, &format!("note: {message}"));
        }
        self.keep(host, message);
    }

    /// Adds `host` to the hosts of `message`, kept for [`Printer::flush_notes`].
    fn keep(&self, host: &str, message: &str) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        match notes.iter_mut().find(|(m, _)| m == message) {
            Some((_, hosts)) if !hosts.iter().any(|h| h == host) => hosts.push(host.to_string()),
            Some(_) => {}
            None => notes.push((message.to_string(), vec![host.to_string()])),
        }
    }

    /// The notes kept during the run, and those the hosts only wrote into their reports (the
    /// journal entries that could not be undone, the agent removed), each message once with
    /// the hosts it came from.
    pub fn flush_notes(&self, outcomes: &[Outcome]) {
        let shown = std::mem::take(&mut *self.shown.lock().unwrap_or_else(|e| e.into_inner()));
        for o in outcomes {
            if let Ok(r) = &o.result {
                for n in r.notes.iter().filter(|n| !shown.iter().any(|(h, m)| *h == o.host && m == *n)) {
                    self.keep(&o.host, n);
                }
            }
        }
        let notes = std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()));
        for (message, mut hosts) in notes {
            hosts.sort();
            if hosts.len() == 1 {
                self.line(&hosts[0], &format!("note: {message}"));
            } else {
                let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                if !self.quiet && self.verbosity != crate::output::Verbosity::Quiet {
                    crate::outln!("note ({}): {message}", hosts.join(", "));
                }
            }
        }
    }
}

/// How many changes of each kind a dry run found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
}

impl Pending {
    /// Counts one planned change.
    pub fn count(&mut self, c: &ChangeEvent) {
        use crate::agent::protocol::ChangeKind;
        match c.kind.unwrap_or(ChangeKind::Change) {
            ChangeKind::Add => self.add += 1,
            ChangeKind::Change => self.change += 1,
            ChangeKind::Remove => self.remove += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.add + self.change + self.remove
    }

    /// terraform's line: `Plan: 3 to add, 2 to change, 1 to remove.`
    pub fn line(&self) -> String {
        if self.total() == 0 {
            return "No changes: every host is as planned.".to_string();
        }
        format!("Plan: {} to add, {} to change, {} to remove.", self.add, self.change, self.remove)
    }
}

/// The pending changes of a dry run, as terraform shows a plan: each host's items, `+` added,
/// `~` changed, `-` removed, with before -> after; hosts with none say so in one line.
pub fn print_diff(outcomes: &[Outcome], printer: &Printer) -> Pending {
    use crate::agent::protocol::ChangeKind;
    let mut n = Pending::default();
    for o in outcomes {
        let planned: Vec<&ChangeEvent> = o.events.iter().filter(|c| c.status == Status::Planned).collect();
        if o.result.is_err() {
            continue;
        }
        if planned.is_empty() {
            crate::outln!("{}: no changes", o.host);
            continue;
        }
        crate::outln!("{}:", o.host);
        for c in planned {
            let kind = c.kind.unwrap_or(ChangeKind::Change);
            n.count(c);
            let code = match kind {
                ChangeKind::Add => "32",
                ChangeKind::Change => "33",
                ChangeKind::Remove => "31",
            };
            let mut text = format!("  {} {}", printer.paint(code, &kind.sign().to_string()), c.object);
            if !(c.before.is_empty() && c.after.is_empty()) {
                text.push_str(&format!(": {} -> {}", c.before, c.after));
            }
            crate::outln!("{text}");
        }
    }
    n
}

/// Where the controller remembers which hosts each lab touched (containerlab's state file): so
/// `down` reaches hosts that were removed from the inventory after `up`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ControllerState {
    pub lab: String,
    pub hosts: BTreeMap<String, SshSettings>,
}

pub fn state_dir(args: &ConnectArgs) -> PathBuf {
    if let Some(d) = &args.state_dir {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(x).join("lvsctl");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".local/state/lvsctl")
}

impl ControllerState {
    fn path(dir: &Path, lab: &str) -> PathBuf {
        dir.join(format!("{lab}.json"))
    }

    /// Which hosts the lab touched; none when the file does not exist. A file that cannot be
    /// read, or whose ssh settings an inventory could not have given (they become ssh's
    /// arguments), is an error naming it: hosts are never forgotten, or reached, in silence.
    pub fn load(dir: &Path, lab: &str) -> anyhow::Result<ControllerState> {
        let path = Self::path(dir, lab);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ControllerState { lab: lab.to_string(), hosts: BTreeMap::new() });
            }
            Err(e) => anyhow::bail!("cannot read the controller state {}: {e}", path.display()),
        };
        let state: ControllerState = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!("{}: unreadable controller state: {e} (move it away to start afresh)", path.display())
        })?;
        if state.lab != lab {
            anyhow::bail!("{}: it is lab {:?}'s state, not {lab:?}'s", path.display(), state.lab);
        }
        for (host, ssh) in &state.hosts {
            crate::inventory::parse::check_ssh_settings(ssh).map_err(|why| {
                anyhow::anyhow!("{}: host {host}: {why}: this file is not as lvsctl wrote it", path.display())
            })?;
        }
        Ok(state)
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let path = Self::path(dir, &self.lab);
        if self.hosts.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(dir)?;
        crate::host::write_atomic(&path, &serde_json::to_vec_pretty(self).expect("serializes"), 0o600)
    }
}

/// Open connections, kept for the whole command: a command that talks to a host several times
/// (verify: the director before and after the client's requests) connects once.
pub struct Pool {
    opts: ConnectOptions,
    conns: tokio::sync::Mutex<BTreeMap<String, Arc<Transport>>>,
}

impl Pool {
    pub fn new(opts: ConnectOptions) -> Pool {
        Pool { opts, conns: tokio::sync::Mutex::new(BTreeMap::new()) }
    }

    async fn get(&self, host: &str, ssh: &SshSettings) -> Result<(Arc<Transport>, bool), HostError> {
        if let Some(t) = self.conns.lock().await.get(host) {
            return Ok((t.clone(), false));
        }
        let t = Arc::new(connect(ssh, &self.opts).await?);
        self.conns.lock().await.insert(host.to_string(), t.clone());
        Ok((t, true))
    }

    pub async fn close(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().await);
        for (_, t) in conns {
            if let Ok(t) = Arc::try_unwrap(t) {
                t.close().await;
            }
        }
    }
}

/// Runs every job, at most `parallel` at a time, in host-name order.
pub async fn run(
    mut jobs: Vec<Job>,
    parallel: usize,
    agent: Arc<AgentBinary>,
    pool: Arc<Pool>,
    printer: Arc<Printer>,
) -> Vec<Outcome> {
    jobs.sort_by(|a, b| a.host.cmp(&b.host));
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::new();
    for job in jobs {
        let (sem, agent, pool, printer) = (sem.clone(), agent.clone(), pool.clone(), printer.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let start = Instant::now();
            let mut events = Vec::new();
            let result = run_one(&job, &agent, &pool, &printer, &mut events).await;
            Outcome { host: job.host.clone(), result, seconds: start.elapsed().as_secs_f64(), events }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(o) => out.push(o),
            Err(e) => out.push(Outcome {
                host: "?".into(),
                result: Err(HostError::Agent(format!("internal error: {e}"))),
                seconds: 0.0,
                events: vec![],
            }),
        }
    }
    out
}

async fn run_one(
    job: &Job,
    agent: &AgentBinary,
    pool: &Pool,
    printer: &Printer,
    events: &mut Vec<ChangeEvent>,
) -> Result<Report, HostError> {
    let start = Instant::now();
    if printer.progress
        && printer.verbosity == crate::output::Verbosity::Verbose
        && !pool.conns.lock().await.contains_key(&job.host)
    {
        printer.line(&job.host, "connecting");
    }
    let (t, fresh) = pool.get(&job.host, &job.ssh).await?;
    if fresh && printer.progress && start.elapsed().as_secs_f64() > 1.0 {
        printer.line(&job.host, &format!("connected in {:.1} s", start.elapsed().as_secs_f64()));
    }
    let host = job.host.clone();
    let mut on_event = |e: Event| match e {
        Event::Change(c) => {
            printer.change(&host, &c);
            events.push(c);
        }
        Event::Note { message, live } => printer.note(&host, &message, live),
        Event::Report(_) => {}
    };
    let mut on_install = || {
        printer.line(
            &host,
            &format!("installing the agent ({:.1} MB, sha256 {})", agent.size as f64 / 1e6, &agent.sha256[..12]),
        )
    };
    t.run_agent(agent, &job.request, &mut on_event, &mut on_install).await
}

/// Exit status for a set of outcomes: failures first, then unreachable hosts.
pub fn exit_code(outcomes: &[Outcome]) -> u8 {
    let failed = outcomes.iter().any(|o| match &o.result {
        Ok(r) => r.failed > 0 || !r.errors.is_empty(),
        Err(HostError::Agent(_)) => true,
        Err(HostError::Unreachable(_)) => false,
    });
    let unreachable = outcomes.iter().any(|o| matches!(o.result, Err(HostError::Unreachable(_))));
    if failed {
        crate::exit::PARTIAL
    } else if unreachable {
        crate::exit::UNREACHABLE
    } else {
        crate::exit::OK
    }
}

/// The hosts a command targets: the inventory's, narrowed by --host.
pub fn selected<'a>(lab: &'a Lab, hosts: &[String]) -> Vec<&'a crate::inventory::Host> {
    lab.hosts.iter().filter(|h| hosts.is_empty() || hosts.contains(&h.name)).collect()
}

/// The per-host summary lines after a run.
pub fn summary(outcomes: &[Outcome], verb: &str, printer: &Printer, started: Instant) -> String {
    let mut changes = 0;
    let mut failed_hosts = Vec::new();
    let mut unreachable = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(r) => {
                changes += r.changes;
                let mut text = format!("{} {verb}, {} unchanged", r.changes, r.unchanged);
                if r.failed > 0 {
                    text.push_str(&format!(", {} FAILED", r.failed));
                    failed_hosts.push(o.host.clone());
                }
                if r.kept > 0 {
                    text.push_str(&format!(", {} kept", r.kept));
                }
                for e in &r.errors {
                    text.push_str(&format!(", error: {e}"));
                    if !failed_hosts.contains(&o.host) {
                        failed_hosts.push(o.host.clone());
                    }
                }
                text.push_str(&format!(" ({:.1} s)", o.seconds));
                let eventful = r.changes > 0 || r.failed > 0 || r.kept > 0 || !r.errors.is_empty();
                if r.failed > 0 || !r.errors.is_empty() {
                    printer.problem(&o.host, &text);
                } else if eventful || printer.verbosity == crate::output::Verbosity::Verbose {
                    // A host with nothing to report is only counted in the recap (unless -v).
                    printer.line(&o.host, &text);
                }
            }
            Err(e) => {
                printer.problem(&o.host, &format!("{e}"));
                match e {
                    HostError::Unreachable(_) => unreachable.push(o.host.clone()),
                    HostError::Agent(_) => failed_hosts.push(o.host.clone()),
                }
            }
        }
    }
    let mut s = format!("{} hosts, {changes} {verb}", outcomes.len());
    if !failed_hosts.is_empty() {
        s.push_str(&format!(", failed: {}", failed_hosts.join(" ")));
    }
    if !unreachable.is_empty() {
        s.push_str(&format!(", unreachable: {}", unreachable.join(" ")));
    }
    s.push_str(&format!(", {:.1} s", started.elapsed().as_secs_f64()));
    s
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::inventory::{Become, HostKeyPolicy, SshSettings, SshTarget};

    fn ssh(target: &str, user: &str) -> SshSettings {
        SshSettings {
            target: SshTarget::Remote(target.into()),
            user: user.into(),
            port: 22,
            identity: None,
            host_key: HostKeyPolicy::Strict,
            known_hosts: None,
            config: None,
            connect_timeout: 10,
            become_: Become::None,
        }
    }

    #[test]
    fn the_controller_state_is_read_back_only_as_lvsctl_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ControllerState::load(dir.path(), "dr").unwrap().hosts.is_empty(), "no file: no hosts");
        let mut s = ControllerState { lab: "dr".into(), hosts: BTreeMap::new() };
        s.hosts.insert("lvs".into(), ssh("10.0.0.8", "root"));
        s.save(dir.path()).unwrap();
        assert_eq!(ControllerState::load(dir.path(), "dr").unwrap().hosts.len(), 1);

        for (target, user, why) in [
            ("-oProxyCommand=touch /tmp/pwned", "root", "ssh destination"),
            ("010.0.0.8", "root", "ssh destination"),
            ("10.0.0.8", "root -oX", "login name"),
        ] {
            s.hosts.insert("lvs".into(), ssh(target, user));
            s.save(dir.path()).unwrap();
            let e = ControllerState::load(dir.path(), "dr").err().unwrap().to_string();
            assert!(e.contains(why) && e.contains("not as lvsctl wrote it"), "{e}");
        }
        std::fs::write(dir.path().join("dr.json"), "{not json").unwrap();
        let e = ControllerState::load(dir.path(), "dr").err().unwrap().to_string();
        assert!(e.contains("unreadable controller state"), "{e}");
    }
}
