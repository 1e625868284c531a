//! Reaching hosts: SSH (the openssh crate, so ssh_config, the agent and ProxyJump all work) or
//! this machine, installing the agent there, and running it.
//!
//! No command is ever built from inventory values: the only programs run on hosts are the two
//! fixed scripts below, whose only arguments are the agent's sha256 and size. The request (the
//! host's plan) travels as JSON on the agent's stdin.

pub mod binary;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::agent::protocol::{Event, Op, Report, Request};
use crate::inventory::{HostKeyPolicy, SshSettings, SshTarget};
use binary::{AgentBinary, INSTALL_ROOT};

/// Exit status of RUN_SCRIPT when the agent is not installed yet.
const MISSING: i32 = 97;
const MISSING_MARK: &str = "lvsctl-agent-missing";

/// Runs the installed agent; when it is missing, prints the marker and the host's architecture.
const RUN_SCRIPT: &str = r#"a=/usr/local/lib/lvsctl/$1/lvsctl
if [ -x "$a" ]; then exec "$a" agent serve; fi
echo "lvsctl-agent-missing $(uname -m)"
exit 97"#;

/// Receives the agent on stdin (exactly $2 bytes: `dd iflag=fullblock` never reads past them, so
/// the request that follows reaches the agent), checks its sha256, installs it 0700 under its
/// hash with an atomic rename, and runs it.
const UPLOAD_SCRIPT: &str = r#"set -e
d=/usr/local/lib/lvsctl/$1
umask 077
mkdir -p "$d"
t="$d/.upload.$$"
trap 'rm -f "$t"' EXIT
dd of="$t" bs="$2" count=1 iflag=fullblock status=none
if [ "$(sha256sum "$t" | cut -d ' ' -f 1)" != "$1" ]; then echo "lvsctl: the uploaded agent's sha256 does not match" >&2; exit 98; fi
chmod 0700 "$t"
mv -f "$t" "$d/lvsctl"
trap - EXIT
exec "$d/lvsctl" agent serve"#;

/// Like UPLOAD_SCRIPT, for operations that must leave no trace (dry run, status): the agent runs
/// from a private directory that is removed afterwards, with lvsctl's directory if it made it.
const EPHEMERAL_SCRIPT: &str = r#"set -e
r=/usr/local/lib/lvsctl
made=0
[ -d "$r" ] || made=1
umask 077
d="$r/.run.$$"
mkdir -p "$d"
trap 'rm -rf "$d"; if [ $made = 1 ]; then rmdir "$r" 2>/dev/null || true; fi' EXIT
dd of="$d/lvsctl" bs="$2" count=1 iflag=fullblock status=none
if [ "$(sha256sum "$d/lvsctl" | cut -d ' ' -f 1)" != "$1" ]; then echo "lvsctl: the uploaded agent's sha256 does not match" >&2; exit 98; fi
chmod 0700 "$d/lvsctl"
"$d/lvsctl" agent serve"#;

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where ssh keeps its control sockets (must be short: socket paths are limited to 108 bytes).
    pub control_dir: PathBuf,
    /// An ssh_config used for hosts whose inventory names none (the lab's, for instance).
    pub ssh_config: Option<PathBuf>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { control_dir: std::env::temp_dir().join("lvsctl-ssh"), ssh_config: None }
    }
}

/// Why a host could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Agent(String),
}

pub enum Transport {
    Local,
    Ssh(Box<openssh::Session>),
}

fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// A readable explanation of an ssh failure, with what to do where we know it.
fn explain_ssh(e: &openssh::Error, s: &SshSettings, dest: &str) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        msg.push_str(&format!(": {c}"));
        src = c.source();
    }
    let lower = msg.to_lowercase();
    let hint = if lower.contains("host key verification failed") || lower.contains("no matching host key") {
        if s.host_key == HostKeyPolicy::Strict {
            format!(
                " (host_key = \"strict\": add the host's key to known_hosts, e.g. `ssh-keyscan -p {} {dest} >> ~/.ssh/known_hosts` after checking it, or set host_key = \"accept-new\")",
                s.port
            )
        } else {
            " (the host's key changed since it was recorded: check why before removing the old key)".to_string()
        }
    } else if lower.contains("permission denied") {
        format!(
            " (key-based login as {} failed: lvsctl uses BatchMode, so only the agent or unencrypted keys work)",
            s.user
        )
    } else {
        String::new()
    };
    format!("ssh {}@{dest} port {}: {}{hint}", s.user, s.port, msg.trim())
}

/// Connects to a host (for `local`, nothing to do).
pub async fn connect(s: &SshSettings, opts: &ConnectOptions) -> Result<Transport, HostError> {
    let dest = match &s.target {
        SshTarget::Local => return Ok(Transport::Local),
        SshTarget::Remote(d) => d.clone(),
    };
    std::fs::create_dir_all(&opts.control_dir)
        .map_err(|e| HostError::Unreachable(format!("cannot create {}: {e}", opts.control_dir.display())))?;
    let _ = std::fs::set_permissions(&opts.control_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let mut b = openssh::SessionBuilder::default();
    b.user(s.user.clone())
        .port(s.port)
        .connect_timeout(Duration::from_secs(s.connect_timeout as u64))
        .server_alive_interval(Duration::from_secs(15))
        .control_directory(&opts.control_dir)
        .known_hosts_check(match s.host_key {
            HostKeyPolicy::Strict => openssh::KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => openssh::KnownHosts::Add,
        });
    if let Some(k) = &s.identity {
        b.keyfile(expand_home(k));
    }
    if let Some(k) = &s.known_hosts {
        b.user_known_hosts_file(expand_home(k));
    }
    if let Some(c) = s.config.as_ref().or(opts.ssh_config.as_ref()) {
        b.config_file(expand_home(c));
    }
    // ssh's ConnectTimeout covers only the TCP connect; bound the whole handshake too.
    let limit = Duration::from_secs(s.connect_timeout as u64 * 3 + 30);
    match tokio::time::timeout(limit, b.connect(&dest)).await {
        Ok(Ok(session)) => Ok(Transport::Ssh(Box::new(session))),
        Ok(Err(e)) => Err(HostError::Unreachable(explain_ssh(&e, s, &dest))),
        Err(_) => Err(HostError::Unreachable(format!(
            "ssh {}@{dest} port {}: no answer within {} s",
            s.user,
            s.port,
            limit.as_secs()
        ))),
    }
}

/// Copies the agent into place on this machine (same layout as on remote hosts).
fn install_locally(agent: &AgentBinary) -> std::io::Result<PathBuf> {
    let path = PathBuf::from(agent.install_path());
    if path.exists() {
        return Ok(path);
    }
    let bytes = std::fs::read(&agent.path)?;
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(Path::new(INSTALL_ROOT), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    crate::agent::journal::write_atomic(&path, &bytes, 0o700)?;
    Ok(path)
}

/// How a remote process ended.
struct ExitInfo {
    code: Option<i32>,
    text: String,
}

/// What the agent's stdout said.
struct AgentOutput {
    report: Option<Report>,
    missing_arch: Option<String>,
    other: Vec<String>,
}

async fn read_events<R: AsyncRead + Unpin>(out: R, on_event: &mut (dyn FnMut(Event) + Send)) -> AgentOutput {
    let mut lines = BufReader::new(out).lines();
    let mut o = AgentOutput { report: None, missing_arch: None, other: vec![] };
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(arch) = line.strip_prefix(MISSING_MARK) {
            o.missing_arch = Some(arch.trim().to_string());
            continue;
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(Event::Report(r)) => o.report = Some(*r),
            Ok(e) => on_event(e),
            Err(_) if !line.trim().is_empty() => o.other.push(line),
            Err(_) => {}
        }
    }
    o
}

async fn read_all<R: AsyncRead + Unpin>(r: Option<R>) -> String {
    let mut s = String::new();
    if let Some(mut r) = r {
        let _ = r.read_to_string(&mut s).await;
    }
    s
}

async fn feed<W: AsyncWrite + Unpin>(w: Option<W>, parts: Vec<Vec<u8>>) -> std::io::Result<()> {
    if let Some(mut w) = w {
        for p in parts {
            w.write_all(&p).await?;
        }
        w.shutdown().await?;
    }
    Ok(())
}

fn finish(o: AgentOutput, status: String, stderr: String) -> Result<Report, HostError> {
    match o.report {
        Some(r) => Ok(r),
        None => {
            let mut detail = stderr.trim().to_string();
            if !o.other.is_empty() {
                detail = format!("{detail} {}", o.other.join(" ")).trim().to_string();
            }
            Err(HostError::Agent(format!(
                "the agent ended without a report ({status}){}",
                if detail.is_empty() { String::new() } else { format!(": {detail}") }
            )))
        }
    }
}

impl Transport {
    /// Runs the agent with `req`; events go to `on_event` as they arrive.
    pub async fn run_agent(
        &self,
        agent: &AgentBinary,
        req: &Request,
        on_event: &mut (dyn FnMut(Event) + Send),
        on_install: &mut (dyn FnMut() + Send),
    ) -> Result<Report, HostError> {
        let mut line = serde_json::to_vec(req).expect("requests serialize");
        line.push(b'\n');
        // Operations that change nothing must not install anything either.
        let ephemeral = matches!(req.op, Op::DryRun | Op::Check | Op::Facts | Op::Probe);
        match self {
            Transport::Local => {
                let path = if ephemeral {
                    agent.path.clone()
                } else {
                    install_locally(agent).map_err(|e| {
                        HostError::Agent(format!("cannot install the agent at {}: {e}", agent.install_path()))
                    })?
                };
                let mut child = tokio::process::Command::new(&path)
                    .args(["agent", "serve"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| HostError::Agent(format!("cannot run {}: {e}", path.display())))?;
                let (stdin, stdout, stderr) =
                    (child.stdin.take(), child.stdout.take().expect("piped"), child.stderr.take());
                let (fed, out, err) =
                    tokio::join!(feed(stdin, vec![line]), read_events(stdout, on_event), read_all(stderr));
                fed.map_err(|e| HostError::Agent(format!("cannot send the request: {e}")))?;
                let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                finish(out, status, err)
            }
            Transport::Ssh(session) => {
                let (out, status, err) =
                    self.ssh_exec(session, RUN_SCRIPT, &[&agent.sha256], vec![line.clone()], on_event).await?;
                if out.missing_arch.is_none() || status.code != Some(MISSING) {
                    return finish(out, status.text, err);
                }
                let arch = out.missing_arch.unwrap_or_default();
                if arch != agent.arch {
                    return Err(HostError::Agent(format!(
                        "the host is {arch} but the agent binary {} is {}: build lvsctl for {arch} and pass it with --agent-binary",
                        agent.path.display(),
                        agent.arch
                    )));
                }
                if !ephemeral {
                    on_install();
                }
                let bytes = std::fs::read(&agent.path)
                    .map_err(|e| HostError::Agent(format!("cannot read {}: {e}", agent.path.display())))?;
                let size = bytes.len().to_string();
                let (out, status, err) = self
                    .ssh_exec(
                        session,
                        if ephemeral { EPHEMERAL_SCRIPT } else { UPLOAD_SCRIPT },
                        &[&agent.sha256, &size],
                        vec![bytes, line],
                        on_event,
                    )
                    .await?;
                finish(out, status.text, err)
            }
        }
    }

    async fn ssh_exec(
        &self,
        session: &openssh::Session,
        script: &str,
        args: &[&str],
        input: Vec<Vec<u8>>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(AgentOutput, ExitInfo, String), HostError> {
        let mut cmd = session.command("sh");
        cmd.arg("-c").arg(script).arg("lvsctl-agent");
        for a in args {
            cmd.arg(a);
        }
        let mut child = cmd
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| HostError::Agent(format!("cannot start the agent over ssh: {e}")))?;
        let (stdin, stdout, stderr) =
            (child.stdin().take(), child.stdout().take().expect("piped"), child.stderr().take());
        let (fed, out, err) = tokio::join!(feed(stdin, input), read_events(stdout, on_event), read_all(stderr));
        if let Err(e) = fed {
            // The agent may have finished early (it does not read stdin when missing).
            if out.report.is_none() && out.missing_arch.is_none() {
                return Err(HostError::Agent(format!("cannot send the request: {e}")));
            }
        }
        let status = match child.wait().await {
            Ok(st) => ExitInfo { code: st.code(), text: st.to_string() },
            // openssh reports a remote process killed by a signal as an error.
            Err(e) => ExitInfo { code: None, text: e.to_string() },
        };
        Ok((out, status, err))
    }

    pub async fn close(self) {
        if let Transport::Ssh(s) = self {
            let _ = s.close().await;
        }
    }
}
