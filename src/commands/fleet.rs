//! Running the agent on many hosts: sorted, in parallel with a bound, one host's failure never
//! stopping or hiding another's; events printed as they arrive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::agent::protocol::{ChangeEvent, Event, Report, Request};
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

use super::outcome::Outcome;
use super::printer::Printer;

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
            crate::inventory::ssh::check_ssh_settings(ssh).map_err(|why| {
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

    pub(crate) async fn get(&self, host: &str, ssh: &SshSettings) -> Result<(Arc<Transport>, bool), HostError> {
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
        let (agent, pool, printer) = (agent.clone(), pool.clone(), printer.clone());
        // Hosts start in name order (the next when a slot frees): the same order every run.
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            printer.started(&job.host);
            let start = Instant::now();
            let mut events = Vec::new();
            let result = run_one(&job, &agent, &pool, &printer, &mut events).await;
            let o = Outcome { host: job.host.clone(), result, seconds: start.elapsed().as_secs_f64(), events };
            printer.host_done(&o);
            o
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
        && printer.verbosity() == crate::output::Verbosity::Verbose
        && !printer.is_live()
        && !pool.conns.lock().await.contains_key(&job.host)
    {
        printer.line(&job.host, "connecting");
    }
    let (t, fresh) = pool.get(&job.host, &job.ssh).await?;
    if fresh && printer.progress && start.elapsed().as_secs_f64() > 1.0 && !printer.is_live() {
        printer.line(&job.host, &format!("connected in {:.1} s", start.elapsed().as_secs_f64()));
    }
    printer.step(&job.host, "running the agent");
    let host = job.host.clone();
    let mut on_event = |e: Event| match e {
        Event::Change(c) => {
            printer.change(&host, &c);
            events.push(c);
        }
        Event::Note { message, live } => printer.note(&host, &message, live),
        Event::Drain(p) => printer.drain(&host, &p),
        Event::Capture(_) | Event::Metrics { .. } | Event::Report(_) => {}
    };
    let mut on_install = || {
        printer.event(
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

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::inventory::{SshSettings, SshTarget};

    fn ssh(target: &str, user: &str) -> SshSettings {
        SshSettings { user: user.into(), ..SshSettings::defaults_for(SshTarget::Remote(target.into())) }
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
