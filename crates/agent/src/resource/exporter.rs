//! lvsctl's exporter: the agent itself serving Prometheus's `/metrics` on a director
//! (`lvsctl-agent agent metrics --lab LAB --listen ADDR:PORT`, `agent::exporter`), started by `up`
//! and by the boot unit, stopped by `down`. Like keepalived where lvsctl runs it, it is tracked
//! by pid, start time and executable — checked again before every signal — and it writes its pid
//! file only once it listens. An address something else listens on blocks it (`up` asks before
//! it changes any host, see `busy`).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{
    Action as AnyAction, Backups, ChangeKind, Decision, Intent, Key, Kind, Live, Recorded, Stage, Undo as AnyUndo,
    Wants,
};
use crate::host::{ProcFact, System};
use crate::plan::HostPlan;

/// How long a stopped exporter may take to end, and a started one to listen.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What lvsctl started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undo {
    pub lab: String,
    pub listen: SocketAddr,
    /// The agent it runs (an upgraded lvsctl restarts it with the new one).
    pub program: String,
    /// Filled in once it runs; until then (a crash in between) only an exporter started after
    /// `not_before` can be it.
    pub process: Option<ProcFact>,
    pub not_before: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start it; the record gets the process once it listens.
    Spawn { argv: Vec<String>, lab: String, listen: SocketAddr, record: Box<Undo> },
    /// SIGTERM once the process is checked to be the one recorded, wait for it to end, then start
    /// the new one.
    Restart { old: ProcFact, argv: Vec<String>, lab: String, listen: SocketAddr, record: Box<Undo> },
    /// SIGTERM, once the process is checked; its pid file and log are removed when it ended.
    Stop { process: ProcFact, lab: String },
}

/// What the host runs, as the decisions need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExporterFact {
    /// The exporter its pid file names, while that process runs.
    pub running: Option<ProcFact>,
    /// Every listening TCP socket of the host's network namespace.
    pub listening: Vec<SocketAddr>,
    /// The agent reading this: what a new exporter runs.
    pub program: String,
}

/// Reads the exporter's facts.
pub fn read<S: System>(sys: &mut S, lab: &str) -> io::Result<ExporterFact> {
    let running = match sys.read_file(&crate::paths::exporter_pid_path(lab))? {
        Some(f) => match String::from_utf8_lossy(&f.content).split_whitespace().next().map(str::parse::<u32>) {
            Some(Ok(pid)) => sys.process(pid)?,
            _ => None,
        },
        None => None,
    };
    Ok(ExporterFact { running, listening: sys.listening()?, program: sys.own_program()? })
}

/// What else listens where `listen` would: the same port on the same address or on a wildcard
/// (an IPv6 wildcard may take IPv4 too). `ours` is this lab's exporter's address while it runs.
pub fn busy(listen: SocketAddr, listening: &[SocketAddr], ours: Option<SocketAddr>) -> Option<String> {
    let clash = |l: &&SocketAddr| {
        l.port() == listen.port()
            && Some(**l) != ours
            && (l.ip() == listen.ip()
                || listen.ip().is_unspecified()
                || (l.ip().is_unspecified() && (l.is_ipv6() || listen.is_ipv4())))
    };
    listening.iter().find(clash).map(|l| format!("port {} is in use on this host (a socket listens on {l})", l.port()))
}

/// The exporter of this record, if it still runs as that process.
fn ours<'a>(u: &Undo, f: &'a ExporterFact) -> Option<&'a ProcFact> {
    let p = f.running.as_ref()?;
    match &u.process {
        Some(recorded) => recorded.same(p).then_some(p),
        None => (p.start_time >= u.not_before && p.exe == u.program).then_some(p),
    }
}

/// The kind.
pub struct Exporter;

impl Kind for Exporter {
    /// Its address.
    type Id = String;
    type Record = Undo;
    type Action = Action;
    const STAGE: Stage = Stage::Daemon;

    fn fmt_id(listen: &String, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exporter {listen}")
    }

    fn id(u: &Undo) -> String {
        u.listen.to_string()
    }

    fn desired(plan: &HostPlan) -> Vec<String> {
        plan.exporter.iter().map(|e| e.listen.to_string()).collect()
    }

    fn wants(plan: &HostPlan, w: &mut Wants) {
        if plan.exporter.is_some() {
            w.exporter = Some(plan.lab.clone());
        }
    }

    fn decide(plan: &HostPlan, live: &Live, journal: &dyn Recorded, _: Intent) -> Vec<Decision> {
        decide(plan, live, journal)
    }

    fn show(plan: &HostPlan) -> Vec<super::Line> {
        let line = |e: &crate::plan::ExporterSpec| {
            ("exporter", format!("lvsctl's exporter serving http://{}/metrics", e.listen), e.reason.clone())
        };
        plan.exporter.iter().map(line).collect()
    }

    fn undo_wants(u: &Undo, w: &mut Wants) {
        w.exporter = Some(u.lab.clone());
    }

    fn undo(u: &Undo, live: &Live) -> Decision {
        let key = Key::Exporter(u.listen.to_string());
        match &live.exporter {
            Some(Ok(f)) => match ours(u, f) {
                Some(p) => Decision::revert(
                    key,
                    format!("serving /metrics (pid {})", p.pid),
                    "stopped",
                    AnyAction::Exporter(Action::Stop { process: p.clone(), lab: u.lab.clone() }),
                ),
                None => Decision::same(key, "not running (the process lvsctl started is gone)"),
            },
            Some(Err(e)) => Decision::failed(&key, "undo what lvsctl changed", e),
            None => Decision::failed(&key, "undo what lvsctl changed", "not read"),
        }
    }

    fn sign(a: &Action) -> ChangeKind {
        match a {
            Action::Spawn { .. } => ChangeKind::Add,
            Action::Restart { .. } => ChangeKind::Change,
            Action::Stop { .. } => ChangeKind::Remove,
        }
    }

    fn act<S: System>(sys: &mut S, a: &Action, _: &dyn Backups) -> io::Result<Option<Undo>> {
        match a {
            Action::Spawn { argv, lab, listen, record } => spawn(sys, argv, lab, *listen, record).map(Some),
            Action::Restart { old, argv, lab, listen, record } => {
                stop(sys, old, lab)?;
                spawn(sys, argv, lab, *listen, record).map(Some)
            }
            Action::Stop { process, lab } => stop(sys, process, lab).map(|_| None),
        }
    }

    /// Only this lab's exporter, run by an agent lvsctl installed.
    fn check(u: &Undo, lab: &str, _: &std::path::Path) -> Result<(), String> {
        if u.lab != lab {
            return Err(format!("exporter of lab {:?} in lab {lab}'s journal", u.lab));
        }
        let installed = u.program.starts_with(&format!("{}/", crate::paths::INSTALL_ROOT));
        if !installed || u.program.contains("/../") {
            return Err(format!("exporter program {:?} is not an agent lvsctl installed", u.program));
        }
        Ok(())
    }

    /// A restarted exporter is recorded afresh.
    fn merge(_: &Undo, newer: Undo) -> Undo {
        newer
    }
}

fn argv(program: &str, lab: &str, listen: SocketAddr) -> Vec<String> {
    [program, "agent", "metrics", "--lab", lab, "--listen", &listen.to_string()].map(String::from).to_vec()
}

fn decide(plan: &HostPlan, live: &Live, journal: &dyn Recorded) -> Vec<Decision> {
    let Some(spec) = &plan.exporter else { return vec![] };
    let key = Key::Exporter(spec.listen.to_string());
    let f = match &live.exporter {
        Some(Ok(f)) => f,
        Some(Err(e)) => return vec![Decision::failed(&key, &spec.reason, e)],
        None => return vec![Decision::failed(&key, &spec.reason, "not read")],
    };
    let recorded = match journal.recorded(&key) {
        Some(AnyUndo::Exporter(u)) => Some(u),
        _ => None,
    };
    let record = Box::new(Undo {
        lab: plan.lab.clone(),
        listen: spec.listen,
        program: f.program.clone(),
        process: None,
        not_before: live.now_ticks,
    });
    let argv = argv(&f.program, &plan.lab, spec.listen);
    let (lab, listen) = (plan.lab.clone(), spec.listen);
    let serving = format!("serving http://{listen}/metrics");
    match recorded.and_then(|u| ours(u, f).map(|p| (u, p))) {
        Some((u, p)) if u.program == f.program => {
            vec![Decision::same(key, format!("serving http://{listen}/metrics (pid {})", p.pid))]
        }
        Some((_, p)) => vec![Decision::change(
            key,
            format!("pid {} runs an older agent", p.pid),
            format!("{serving} (restarted with this agent)"),
            &spec.reason,
            Some(AnyUndo::Exporter((*record).clone())),
            AnyAction::Exporter(Action::Restart { old: p.clone(), argv, lab, listen, record }),
        )],
        None => {
            if let Some(why) = busy(listen, &f.listening, None) {
                return vec![Decision::Blocked {
                    object: key.to_string(),
                    before: why.clone(),
                    after: serving,
                    reason: spec.reason.clone(),
                    error: format!(
                        "{why}: stop what listens there, or choose another port ([metrics] port, or the host's metrics_listen)"
                    ),
                }];
            }
            vec![Decision::change(
                key,
                "not running",
                serving,
                &spec.reason,
                Some(AnyUndo::Exporter((*record).clone())),
                AnyAction::Exporter(Action::Spawn { argv, lab, listen, record }),
            )]
        }
    }
}

/// Starts the exporter and waits until it listens (its pid file names it): one that cannot bind
/// exits at once with the reason in its log.
fn spawn<S: System>(sys: &mut S, argv: &[String], lab: &str, listen: SocketAddr, record: &Undo) -> io::Result<Undo> {
    let pid_file = crate::paths::exporter_pid_path(lab);
    let _ = sys.remove_file(&pid_file);
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let p = sys.spawn_daemon(&args, &crate::paths::exporter_log_path(lab))?;
    let started = std::time::Instant::now();
    loop {
        let named = sys
            .read_file(&pid_file)?
            .is_some_and(|f| String::from_utf8_lossy(&f.content).split_whitespace().next() == Some(&p.pid.to_string()));
        if named {
            return Ok(Undo { process: Some(p), ..record.clone() });
        }
        if started.elapsed() > WAIT || sys.process(p.pid)?.is_none() {
            return Err(io::Error::other(format!(
                "the exporter (pid {}) did not start listening on {listen} within {} s (see {})",
                p.pid,
                WAIT.as_secs(),
                crate::paths::exporter_log_path(lab)
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Ends the recorded exporter (never another process that reused its pid) and removes its
/// pid file and log.
fn stop<S: System>(sys: &mut S, p: &ProcFact, lab: &str) -> io::Result<()> {
    super::daemon::terminate(sys, p, "the exporter", WAIT)?;
    let _ = sys.remove_file(&crate::paths::exporter_pid_path(lab));
    let _ = sys.remove_file(&crate::paths::exporter_log_path(lab));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::busy;

    #[test]
    fn an_address_is_busy_when_the_port_is_taken_there_or_on_a_wildcard() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let listen = at("10.0.0.8:9382");
        assert!(busy(listen, &[at("10.0.0.8:22"), at("10.0.0.9:9382")], None).is_none());
        assert!(busy(listen, &[at("10.0.0.8:9382")], None).unwrap().contains("10.0.0.8:9382"));
        assert!(busy(listen, &[at("0.0.0.0:9382")], None).is_some());
        assert!(busy(listen, &[at("[::]:9382")], None).is_some(), "a dual-stack wildcard takes IPv4 too");
        assert!(busy(at("[fd00::8]:9382"), &[at("0.0.0.0:9382")], None).is_none());
        assert!(busy(at("0.0.0.0:9382"), &[at("10.0.0.9:9382")], None).is_some());
        // This lab's exporter, running there, is not in the way.
        assert!(busy(listen, &[at("10.0.0.8:9382")], Some(listen)).is_none());
    }
}
