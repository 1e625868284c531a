//! keepalived, the daemon a director of a keepalived lab runs: started through systemd where
//! systemd runs, otherwise started by lvsctl itself as a daemon of its own, tracked in the
//! journal by pid, start time and executable — checked again before every signal, so that a pid
//! the kernel reused (after a reboot) is never signalled. A changed configuration is reloaded
//! (SIGHUP); `down` stops the daemon, which removes the VIPs and IPVS entries it added. The VRRP
//! addresses the host did not have when lvsctl started keepalived are recorded too, and `down`
//! removes any of them still there once keepalived has ended: a keepalived that died without
//! cleaning up (killed, or stopped while it was taking over from the other director) leaves
//! nothing behind.
//!
//! A keepalived that lvsctl did not start is left alone: the daemon is Blocked, since `down`
//! could not give it back what it ran.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::{AddrFact, ProcFact, System};
use crate::plan::HostPlan;
use crate::plan::keepalived::KeepalivedSpec;

/// The daemon's name: its key, its program and its systemd unit (`keepalived.service`).
pub const KEEPALIVED: &str = "keepalived";
/// Where keepalived writes its main process's pid (its default; lab hosts have a private /run).
pub const PID_FILE: &str = "/run/keepalived.pid";
/// How long a stopped keepalived may take to remove its VIPs and IPVS entries and exit.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn unit() -> String {
    format!("{KEEPALIVED}.service")
}

/// The daemon's output when lvsctl runs it (lab hosts have no syslog): `-l` logs to it.
pub fn log_path(lab: &str) -> String {
    format!("{}/lvsctl-{lab}-{KEEPALIVED}.log", crate::paths::RUN_DIR)
}

/// What lvsctl started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub name: String,
    /// The configuration it runs, and its sha256 when it was started or last reloaded.
    pub config: String,
    pub loaded_sha256: String,
    pub how: How,
    /// The VRRP addresses this host did not have when lvsctl started keepalived (or reloaded it
    /// with them): what `down` removes if keepalived left them behind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<AddrFact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum How {
    /// `systemctl start keepalived.service`.
    Systemd,
    /// lvsctl started it. `process` is filled in once it runs; until then (a crash in between)
    /// only a keepalived started after `not_before` can be it.
    Spawned { process: Option<ProcFact>, not_before: u64, log: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start it as a daemon of its own; the record gets the process.
    Spawn {
        argv: Vec<String>,
        log: String,
        record: Box<Undo>,
    },
    /// SIGTERM, once the process is checked to be the one recorded; then wait for it to end.
    Stop {
        process: ProcFact,
        log: Option<String>,
        added: Vec<AddrFact>,
    },
    /// keepalived is gone but left some of these addresses: remove those still there.
    Sweep(Vec<AddrFact>),
    /// SIGHUP, once the process is checked: keepalived reads its configuration again.
    Reload(ProcFact),
    SystemdStart,
    SystemdStop(Vec<AddrFact>),
    SystemdReload,
}

/// What the host runs, as the decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonFact {
    /// The installed program, None when keepalived is not installed.
    pub program: Option<String>,
    /// The keepalived its pid file names, while it runs.
    pub running: Option<ProcFact>,
    /// Where systemd runs: whether keepalived.service is active.
    pub unit_active: bool,
    /// The configuration file's sha256 as it is now (None: absent).
    pub config_sha256: Option<String>,
}

/// Reads the daemon's facts.
pub fn read<S: System>(sys: &mut S, config: &str) -> io::Result<DaemonFact> {
    let program = sys.find_program(KEEPALIVED);
    let running = match sys.read_file(PID_FILE)? {
        Some(f) => match String::from_utf8_lossy(&f.content).trim().parse::<u32>() {
            Ok(pid) => sys.process(pid)?.filter(|p| p.exe.rsplit('/').next() == Some(KEEPALIVED)),
            Err(_) => None,
        },
        None => None,
    };
    let unit_active =
        sys.systemd_running() && sys.systemctl(&["is-active", &unit()]).map(|o| o.trim() == "active").unwrap_or(false);
    let config_sha256 = sys.read_file(config)?.map(|f| super::sha256(&f.content));
    Ok(DaemonFact { program, running, unit_active, config_sha256 })
}

/// The kind.
pub struct Daemon;

impl Kind for Daemon {
    /// Its name (only keepalived).
    type Id = String;
    /// Boxed: the largest record by far.
    type Record = Box<Undo>;
    type Action = Action;
    const STAGE: Stage = Stage::Daemon;

    fn fmt_id(name: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "daemon {name}")
    }

    fn id(u: &Box<Undo>) -> String {
        u.name.clone()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.keepalived.iter().map(|_| KEEPALIVED.to_string()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        if let Some(k) = &plan.keepalived {
            w.daemon = Some(k.config.clone());
            w.systemd = true;
            w.addresses = true;
        }
    }

    fn decide(plan: &HostPlan, live: &Live, journal: &dyn Recorded, intent: Intent) -> Vec<Decision> {
        decide(plan.keepalived.as_ref(), &plan.lab, live, journal, intent)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        plan.keepalived.iter().map(show).collect()
    }

    fn undo_wants(u: &Box<Undo>, w: &mut Wants) {
        w.daemon = Some(u.config.clone());
        w.systemd = true;
        w.addresses = true;
    }

    fn undo(u: &Box<Undo>, live: &Live) -> Decision {
        undo(u, live)
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Spawn { .. } | Action::SystemdStart => ChangeKind::Add,
            Action::Reload(_) | Action::SystemdReload => ChangeKind::Change,
            Action::Stop { .. } | Action::Sweep(_) | Action::SystemdStop(_) => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Box<Undo>>> {
        act(sys, a)
    }

    fn check(u: &Box<Undo>, lab: &str, _: &std::path::Path) -> Result<(), String> {
        check(u, lab)
    }

    /// A restarted or reloaded keepalived is recorded afresh (its process, its addresses).
    fn merge(_: &Box<Undo>, newer: Box<Undo>) -> Box<Undo> {
        newer
    }
}

/// The spec's VRRP addresses the host does not have now, with those an earlier record already
/// holds (a reload keeps what the first start recorded).
fn absent(k: &KeepalivedSpec, live: &Live, earlier: Option<&Undo>) -> Result<Vec<AddrFact>, String> {
    let have = live.addresses.as_ref().map_err(|e| format!("cannot read the addresses: {e}"))?;
    let mut out: Vec<AddrFact> = earlier.map(|u| u.added.clone()).unwrap_or_default();
    for a in k.instances.iter().flat_map(|i| &i.addresses) {
        let address = a.address;
        let here = |f: &AddrFact| f.dev == a.dev && f.address == address;
        if !have.iter().any(here) && !out.iter().any(here) {
            out.push(AddrFact { dev: a.dev.clone(), address, label: None, nodad: false, deprecated: false });
        }
    }
    Ok(out)
}

/// The process the journal says lvsctl started, if it still runs as that process.
fn ours<'a>(how: &How, live: &'a Live) -> Option<&'a ProcFact> {
    let running = live.daemon.as_ref()?.as_ref().ok()?.running.as_ref()?;
    match how {
        How::Spawned { process: Some(p), .. } => running.same(p).then_some(running),
        How::Spawned { process: None, not_before, .. } => (running.start_time >= *not_before).then_some(running),
        How::Systemd => None,
    }
}

fn decide(
    spec: Option<&KeepalivedSpec>,
    lab: &str,
    live: &Live,
    journal: &dyn Recorded,
    intent: Intent,
) -> Vec<Decision> {
    let Some(k) = spec else { return vec![] };
    let key = Key::Daemon(KEEPALIVED.to_string());
    let object = key.to_string();
    let f = match &live.daemon {
        Some(Ok(f)) => f,
        Some(Err(e)) => return vec![Decision::failed(&key, &k.reason, e)],
        None => return vec![Decision::failed(&key, &k.reason, "not read")],
    };
    let Some(program) = &f.program else {
        return vec![Decision::Blocked {
            object,
            before: "not installed".into(),
            after: "running".into(),
            reason: k.reason.clone(),
            error: "keepalived is not installed on this host: install the package keepalived (apt-get install keepalived, or dnf install keepalived); lvsctl does not install packages".into(),
        }];
    };
    let Some(sha) = &f.config_sha256 else {
        // Its configuration is written by the files stage of the same run.
        return vec![Decision::Pending {
            object,
            before: "stopped".into(),
            after: "running".into(),
            reason: k.reason.clone(),
            error: format!("{} is missing", k.config),
        }];
    };
    let recorded = match journal.recorded(&key) {
        Some(AnyUndo::Daemon(u)) => Some(&**u),
        _ => None,
    };
    let added = match absent(k, live, recorded) {
        Ok(a) => a,
        Err(e) => return vec![Decision::failed(&key, &k.reason, &e)],
    };
    let record = |how: How| Undo {
        name: KEEPALIVED.into(),
        config: k.config.clone(),
        loaded_sha256: sha.clone(),
        how,
        added: added.clone(),
    };
    let short = &sha[..12];
    if live.systemd {
        let mine = matches!(recorded, Some(Undo { how: How::Systemd, .. }));
        return vec![match (f.unit_active, mine) {
            (true, true) if recorded.is_some_and(|u| &u.loaded_sha256 == sha) => {
                Decision::same(key, "runs the planned configuration")
            }
            (true, true) => Decision::change(
                key,
                "running an older configuration",
                format!("reloaded (configuration {short})"),
                &k.reason,
                Some(AnyUndo::Daemon(Box::new(record(How::Systemd)))),
                AnyAction::Daemon(Action::SystemdReload),
            ),
            (true, false) => foreign(object, k, "keepalived.service is active", "systemctl stop keepalived"),
            (false, _) => Decision::change(
                key,
                "stopped",
                format!("running through systemd ({})", unit()),
                &k.reason,
                Some(AnyUndo::Daemon(Box::new(record(How::Systemd)))),
                AnyAction::Daemon(Action::SystemdStart),
            ),
        }];
    }
    let mine = recorded.and_then(|u| ours(&u.how, live).map(|p| (u, p)));
    if let Some((u, p)) = mine {
        if &u.loaded_sha256 == sha {
            return vec![Decision::same(key, format!("runs the planned configuration (pid {})", p.pid))];
        }
        // Only a process lvsctl started is `ours`: its record keeps its log, and gets the pid.
        let how = How::Spawned { process: Some(p.clone()), not_before: p.start_time, log: log_path(lab) };
        return vec![Decision::change(
            key,
            format!("pid {} running an older configuration", p.pid),
            format!("reloaded (configuration {short})"),
            &k.reason,
            Some(AnyUndo::Daemon(Box::new(record(how)))),
            AnyAction::Daemon(Action::Reload(p.clone())),
        )];
    }
    if let Some(p) = &f.running {
        return vec![foreign(
            object,
            k,
            &format!("keepalived already runs (pid {})", p.pid),
            &format!("kill {}", p.pid),
        )];
    }
    let log = log_path(lab);
    let how = How::Spawned { process: None, not_before: live.now_ticks, log: log.clone() };
    let argv = argv(program, &k.config);
    let after = if intent == Intent::Apply {
        "running (started by lvsctl: systemd does not run here)".to_string()
    } else {
        "running".to_string()
    };
    vec![Decision::change(
        key,
        "stopped",
        after,
        &k.reason,
        Some(AnyUndo::Daemon(Box::new(record(how.clone())))),
        AnyAction::Daemon(Action::Spawn { argv, log, record: Box::new(record(how)) }),
    )]
}

/// keepalived in the foreground of its own session (lvsctl tracks the process), logging to its
/// output (lab hosts have no syslog).
fn argv(program: &str, config: &str) -> Vec<String> {
    [program, "--dont-fork", "--log-console", "--log-detail", "--use-file", config].map(String::from).to_vec()
}

/// A keepalived lvsctl did not start: never taken over, since `down` could not give it back.
fn foreign(object: String, k: &KeepalivedSpec, what: &str, stop: &str) -> Decision {
    Decision::Blocked {
        object,
        before: format!("{what}, not started by lvsctl"),
        after: "running lvsctl's configuration".into(),
        reason: k.reason.clone(),
        error: format!(
            "{what} and lvsctl did not start it: stop it first (`{stop}`); lvsctl keeps and restores its {}",
            k.config
        ),
    }
}

/// The recorded addresses still on the host (all of them when the addresses could not be read:
/// the sweep reads them again and removes only those it finds).
fn left(u: &Undo, live: &Live) -> Vec<AddrFact> {
    match &live.addresses {
        Ok(have) => {
            u.added.iter().filter(|a| have.iter().any(|f| f.dev == a.dev && f.address == a.address)).cloned().collect()
        }
        Err(_) => u.added.clone(),
    }
}

/// The decision for a keepalived that is no longer running: nothing, or the addresses it left.
fn gone(key: Key, u: &Undo, live: &Live, what: &str) -> Decision {
    let left = left(u, live);
    if left.is_empty() {
        return Decision::same(key, what);
    }
    let list: Vec<String> = left.iter().map(|a| format!("{} on {}", a.address, a.dev)).collect();
    Decision::revert(
        key,
        format!("{what}, but it left {}", list.join(", ")),
        "stopped, its addresses removed",
        AnyAction::Daemon(Action::Sweep(left)),
    )
}

pub fn undo(u: &Undo, live: &Live) -> Decision {
    let key = Key::Daemon(u.name.clone());
    match &u.how {
        How::Systemd => match &live.daemon {
            Some(Ok(f)) if f.unit_active => {
                Decision::revert(key, "running", "stopped", AnyAction::Daemon(Action::SystemdStop(u.added.clone())))
            }
            Some(Err(e)) => Decision::failed(&key, "undo what lvsctl changed", e),
            _ => gone(key, u, live, "not running"),
        },
        How::Spawned { log, .. } => match (&live.daemon, ours(&u.how, live)) {
            (Some(Err(e)), _) => Decision::failed(&key, "undo what lvsctl changed", e),
            (_, Some(p)) => Decision::revert(
                key,
                format!("running (pid {})", p.pid),
                "stopped",
                AnyAction::Daemon(Action::Stop { process: p.clone(), log: Some(log.clone()), added: u.added.clone() }),
            ),
            _ => gone(key, u, live, "not running (the process lvsctl started is gone)"),
        },
    }
}

/// Starts again a daemon lvsctl runs and someone stopped (`verify --failover` brings the master
/// back), from its journal record: the same program and configuration.
pub fn restart(u: &Undo, lab: &str, live: &Live) -> Decision {
    let key = Key::Daemon(u.name.clone());
    let f = match &live.daemon {
        Some(Ok(f)) => f,
        Some(Err(e)) => return Decision::failed(&key, "start it again", e),
        None => return Decision::failed(&key, "start it again", "not read"),
    };
    let reason = "started again";
    match &u.how {
        How::Systemd if f.unit_active => Decision::same(key, "is running"),
        How::Systemd => Decision::change(
            key,
            "stopped",
            "running through systemd",
            reason,
            None,
            AnyAction::Daemon(Action::SystemdStart),
        ),
        How::Spawned { .. } => {
            if let Some(p) = ours(&u.how, live) {
                return Decision::same(key, format!("is running (pid {})", p.pid));
            }
            if let Some(p) = &f.running {
                return Decision::failed(&key, reason, &format!("another keepalived runs (pid {})", p.pid));
            }
            let Some(program) = &f.program else {
                return Decision::failed(&key, reason, "keepalived is not installed any more");
            };
            let log = log_path(lab);
            let record =
                Undo { how: How::Spawned { process: None, not_before: live.now_ticks, log: log.clone() }, ..u.clone() };
            let argv = argv(program, &u.config);
            Decision::change(
                key,
                "stopped",
                "running (started by lvsctl)",
                reason,
                Some(AnyUndo::Daemon(Box::new(record.clone()))),
                AnyAction::Daemon(Action::Spawn { argv, log, record: Box::new(record) }),
            )
        }
    }
}

/// The process must still be the one recorded before it gets a signal.
fn still<S: System>(sys: &S, p: &ProcFact) -> io::Result<()> {
    match sys.process(p.pid)? {
        Some(now) if now.same(p) => Ok(()),
        _ => Err(io::Error::from_raw_os_error(libc::ESRCH)),
    }
}

/// Ends a process lvsctl started (`what` names it in errors): SIGTERM once it is checked to be
/// the one recorded (never another that reused its pid), then waits until it is gone, `wait` at
/// most.
pub fn terminate<S: System>(sys: &mut S, p: &ProcFact, what: &str, wait: std::time::Duration) -> io::Result<()> {
    still(sys, p)?;
    sys.signal(p.pid, libc::SIGTERM)?;
    let started = std::time::Instant::now();
    while sys.process(p.pid)?.is_some_and(|now| now.same(p)) {
        if started.elapsed() > wait {
            return Err(io::Error::other(format!(
                "{what} (pid {}) did not stop within {} s of SIGTERM",
                p.pid,
                wait.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

fn act<S: System>(sys: &mut S, a: &Action) -> io::Result<Option<Box<Undo>>> {
    match a {
        Action::Spawn { argv, log, record } => {
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            let p = sys.spawn_daemon(&args, log)?;
            let mut r = (**record).clone();
            if let How::Spawned { process, .. } = &mut r.how {
                *process = Some(p);
            }
            Ok(Some(Box::new(r)))
        }
        Action::Stop { process, log, added } => {
            terminate(sys, process, KEEPALIVED, STOP_WAIT)?;
            if let Some(l) = log {
                let _ = sys.remove_file(l);
            }
            sweep(sys, added).map(|_| None)
        }
        Action::Sweep(added) => sweep(sys, added).map(|_| None),
        Action::Reload(p) => {
            still(sys, p)?;
            sys.signal(p.pid, libc::SIGHUP).map(|_| None)
        }
        Action::SystemdStart => sys.systemctl(&["start", &unit()]).map(|_| None),
        Action::SystemdStop(added) => {
            sys.systemctl(&["stop", &unit()])?;
            sweep(sys, added).map(|_| None)
        }
        Action::SystemdReload => sys.systemctl(&["reload", &unit()]).map(|_| None),
    }
}

/// Removes those of `added` still on the host, once keepalived has ended (it cannot add them
/// again). Read afresh: only what is there is removed, with its own label.
fn sweep<S: System>(sys: &mut S, added: &[AddrFact]) -> io::Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    for f in sys.addresses()? {
        if added.iter().any(|a| a.dev == f.dev && a.address == f.address) {
            sys.del_address(&f)?;
        }
    }
    Ok(())
}

fn show(k: &KeepalivedSpec) -> super::Line {
    let mut what = vec![];
    if !k.instances.is_empty() {
        let addrs: Vec<String> =
            k.instances.iter().flat_map(|i| i.addresses.iter().map(|a| a.address.to_string())).collect();
        what.push(format!("VRRP for {}", addrs.join(", ")));
    }
    if !k.virtual_servers.is_empty() {
        what.push(format!("checks of {}", crate::plural(k.virtual_servers.len(), "service")));
    }
    ("daemon", format!("{KEEPALIVED} running {}", k.config), format!("{} ({})", k.reason, what.join("; ")))
}

/// Only keepalived, with the lab's log and a configuration of its own kind.
pub fn check(u: &Undo, lab: &str) -> Result<(), String> {
    if u.name != KEEPALIVED || u.config != crate::plan::keepalived::CONFIG {
        return Err(format!("daemon {:?} with {:?} is not one lvsctl runs", u.name, u.config));
    }
    match &u.how {
        How::Spawned { log, .. } if *log != log_path(lab) => Err(format!("daemon log {log:?} is not lab {lab}'s")),
        _ => Ok(()),
    }
}
