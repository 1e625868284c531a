//! Reaching hosts: SSH (the openssh crate, so ssh_config, the agent and ProxyJump all work) or
//! this machine, installing the agent there, and running it.
//!
//! No command is ever built from inventory values: the only programs run on hosts are the two
//! fixed scripts below, whose only arguments are the agent's sha256 and size. The request (the
//! host's plan) travels as JSON on the agent's stdin.

pub mod binary;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::agent::protocol::{Event, Report, Request};
use crate::inventory::{Become, HostKeyPolicy, SshSettings, SshTarget};
use crate::paths::INSTALL_ROOT;
use binary::AgentBinary;

/// The first line SERVE_SCRIPT prints when the installed agent is run: the request may follow.
const READY_MARK: &str = "lvsctl-agent-ready";
/// The first line SERVE_SCRIPT prints when the agent must be sent, with the host's architecture,
/// why (`absent` or `changed`) and whether the host can undo gzip (`gzip` or `raw`).
const MISSING_MARK: &str = "lvsctl-agent-missing";

/// The one program run on a host per command, over one ssh exec even on first contact. Its
/// arguments are the agent's sha256 and `install` or `ephemeral`; everything else is a
/// conversation on stdin and stdout:
///
/// - The installed agent runs only when nobody but root can have changed it (the file and every
///   directory above it root's and not writable by group or others) and it is the very binary
///   asked for (its sha256). Then the script says READY_MARK and becomes the agent, which reads
///   the request from stdin. Hashing 4 MB costs a third of a second on an emulated host, on
///   every command: once a hash matched, `lvsctl.checked` (root's, checked as the binary is)
///   records the sha256 with the file's device, inode, size, mtime and ctime, and while all of
///   them are the same the file is the one hashed (any write changes its ctime, which nobody
///   can set back), so it runs without hashing again.
/// - Otherwise it says MISSING_MARK with the host's architecture, why, and whether it has gzip,
///   and reads the controller's answer: `gzip SIZE` or `raw SIZE` followed by exactly SIZE bytes
///   of agent (`dd iflag=fullblock` never reads past them, so the request that follows reaches the
///   agent), or `abort` (another architecture) before anything is written. The agent is checked
///   against its sha256, then installed 0700 under its hash with an atomic rename (`install`), or
///   run from a private directory removed afterwards, with lvsctl's directory if it made it
///   (`ephemeral`: dry runs and status leave no trace).
const SERVE_SCRIPT: &str = r#"r=/usr/local/lib/lvsctl
a=$r/$1/lvsctl
k=$a.checked
why=absent
if [ -x "$a" ]; then
    c=
    if [ -e "$k" ]; then c=$k; fi
    if [ -n "$(find / /usr /usr/local "${r%/*}" "$r" "$r/$1" "$a" ${c:+"$c"} -maxdepth 0 \( ! -user 0 -o -perm /022 \) -print 2>&1)" ]; then
        echo "lvsctl: $a, or a directory above it, is not root's alone (owned by another user, or writable by group or others): refusing to run it as root" >&2
        exit 96
    fi
    id=$(stat -L -c '%d %i %s %Y %Z' "$a" 2>/dev/null) || id=
    seen=
    if [ -n "$id" ] && [ -f "$k" ]; then IFS= read -r seen < "$k" || seen=; fi
    if [ -n "$id" ] && [ "$seen" = "$1 $id" ]; then echo lvsctl-agent-ready; exec "$a" agent serve; fi
    s=$(sha256sum < "$a")
    if [ "${s%% *}" = "$1" ]; then
        if [ "$2" = install ] && [ -n "$id" ]; then
            (umask 077 && printf '%s\n' "$1 $id" > "$k.$$" && mv -f "$k.$$" "$k") 2>/dev/null || rm -f "$k.$$"
        fi
        echo lvsctl-agent-ready
        exec "$a" agent serve
    fi
    why=changed
fi
z=raw
if command -v gzip >/dev/null 2>&1; then z=gzip; fi
echo "lvsctl-agent-missing $(uname -m) $why $z"
read -r how size || exit 99
case $how:$size in
    gzip:[1-9]*|raw:[1-9]*) ;;
    *) exit 99 ;;
esac
case $size in *[!0-9]*) exit 99 ;; esac
set -e
umask 077
made=0
[ -d "$r" ] || made=1
if [ "$2" = ephemeral ]; then
    d=$r/.run.$$
    trap 'rm -rf "$d"; if [ $made = 1 ]; then rmdir "$r" 2>/dev/null || true; fi' EXIT
else
    d=$r/$1
fi
mkdir -p "$d"
t=$d/.upload.$$
[ "$2" = ephemeral ] || trap 'rm -f "$t" "$t.in"' EXIT
dd of="$t.in" bs="$size" count=1 iflag=fullblock status=none
if [ "$how" = gzip ]; then gzip -dc < "$t.in" > "$t"; else mv -f "$t.in" "$t"; fi
rm -f "$t.in"
s=$(sha256sum < "$t")
if [ "${s%% *}" != "$1" ]; then echo "lvsctl: the uploaded agent's sha256 does not match" >&2; exit 98; fi
chmod 0700 "$t"
if [ "$2" = ephemeral ]; then "$t" agent serve; exit; fi
mv -f "$t" "$d/lvsctl"
trap - EXIT
if id=$(stat -L -c '%d %i %s %Y %Z' "$a" 2>/dev/null); then
    (printf '%s\n' "$1 $id" > "$k.$$" && mv -f "$k.$$" "$k") 2>/dev/null || rm -f "$k.$$"
fi
exec "$d/lvsctl" agent serve"#;

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where ssh keeps its control sockets (must be short: socket paths are limited to 108 bytes).
    pub control_dir: PathBuf,
    /// An ssh_config used for hosts whose inventory names none (the lab's, for instance).
    pub ssh_config: Option<PathBuf>,
    /// Keep master connections for the next command (ssh ControlPersist), or close them at the end.
    pub persist: Option<Persist>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { control_dir: runtime_dir(current_uid()).join("once"), ssh_config: None, persist: None }
    }
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The user's directory for ssh control sockets (sockets belong in a tmpfs): never a fixed name
/// shared under /tmp, which another user could have made first.
fn runtime_dir(uid: u32) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("lvsctl-ssh"),
        _ if uid == 0 => PathBuf::from("/run/lvsctl/ssh"),
        _ => std::env::temp_dir().join(format!("lvsctl-ssh-{uid}")),
    }
}

/// How long a master that is not kept outlives a controller killed before it could close it
/// (normally it is closed when the command ends): longer than any wait inside one command.
/// LVSCTL_SSH_ORPHAN_IDLE sets it (the tests make it short to watch an orphan end).
fn unkept_idle() -> std::num::NonZeroUsize {
    std::env::var("LVSCTL_SSH_ORPHAN_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .and_then(std::num::NonZeroUsize::new)
        .unwrap_or(std::num::NonZeroUsize::new(600).expect("not 0"))
}

/// Connections kept open between commands: each master lives in a directory named after everything
/// that decides where and how it connects, and exits by itself after `idle` seconds unused.
#[derive(Debug, Clone)]
pub struct Persist {
    /// Private (0700) directory of the kept masters.
    pub dir: PathBuf,
    pub idle: std::num::NonZeroUsize,
    /// The network namespace the connections start from: the same address in two local labs is
    /// two different hosts.
    pub netns: String,
    uid: u32,
}

/// Longest control socket path: sockaddr_un holds 108 bytes; the openssh crate adds
/// `/.ssh-connectionXXXXXX/master` (29 bytes) below the directory.
const MAX_CONTROL_DIR: usize = 70;

impl Persist {
    /// Kept connections in the runtime directory (sockets belong in a tmpfs), made 0700 on first
    /// use; None for 0 seconds.
    pub fn new(idle_seconds: u32) -> Option<Persist> {
        let idle = std::num::NonZeroUsize::new(idle_seconds as usize)?;
        let uid = current_uid();
        let dir = runtime_dir(uid);
        let netns = std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| format!("{}:{}", std::os::unix::fs::MetadataExt::dev(&m), std::os::unix::fs::MetadataExt::ino(&m)))
            .unwrap_or_default();
        Some(Persist { dir, idle, netns, uid })
    }

    /// The directory of the masters for one host's settings.
    fn slot(&self, s: &SshSettings, config: Option<&PathBuf>) -> PathBuf {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        // An edited ssh_config may send the same name elsewhere: its version is part of the key.
        let version = config
            .and_then(|c| std::fs::metadata(expand_home(c)).ok())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos());
        h.update(serde_json::to_vec(&(s, config, version, &self.netns)).expect("settings serialize"));
        let digest = h.finalize();
        let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }
}

/// Creates `dir` 0700 if needed and refuses one that others could write to or that is not ours.
fn private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if dir.as_os_str().len() > MAX_CONTROL_DIR - 17 {
        return Err(format!("{} is too long a path for ssh control sockets", dir.display()));
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // Created 0700 at once: created 0755 and then narrowed, a second command (or a second host's
    // connection of this one) could find it in between and refuse it.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(format!("{} is not a private directory of this user (0700, owned by uid {uid})", dir.display()));
    }
    Ok(())
}

/// A kept master for this slot that still answers, if any; dead ones are cleared away.
async fn resume(slot: &Path) -> Option<openssh::Session> {
    let entries = std::fs::read_dir(slot).ok()?;
    for e in entries.flatten() {
        let dir = e.path();
        let ctl = dir.join("master");
        if !e.file_name().to_string_lossy().starts_with(".ssh-connection") {
            continue;
        }
        if !ctl.exists() {
            // A master that exited (its socket is gone), unless another lvsctl is starting it now.
            let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if old.is_some_and(|age| age > Duration::from_secs(600)) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            continue;
        }
        let session = openssh::Session::resume_mux(ctl.into_boxed_path(), Some(dir.join("log").into_boxed_path()));
        match tokio::time::timeout(Duration::from_secs(10), session.check()).await {
            Ok(Ok(())) => return Some(session),
            _ => {
                // Its socket is left but nothing answers: the master died.
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    None
}

/// Why a host could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Agent(String),
}

impl HostError {
    /// The exit status of a command that failed on this host alone.
    pub fn exit_code(&self) -> u8 {
        match self {
            HostError::Unreachable(_) => crate::exit::UNREACHABLE,
            HostError::Agent(_) => crate::exit::ERROR,
        }
    }
}

pub enum Transport {
    Local,
    Ssh(Box<SshHost>),
}

pub struct SshHost {
    session: openssh::Session,
    /// Whether the master is kept for the next command when this one ends.
    kept: bool,
    become_: Become,
    /// `user@host` for messages.
    login: String,
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
    let config = s.config.as_ref().or(opts.ssh_config.as_ref());
    let mut control_dir = opts.control_dir.clone();
    let mut persist = openssh::ControlPersist::IdleFor(unkept_idle());
    let mut kept = false;
    let usable = |p: &&Persist| match private_dir(&p.dir, p.uid) {
        Ok(()) => true,
        Err(why) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| eprintln!("lvsctl: ssh connections are not kept between commands: {why}"));
            false
        }
    };
    if let Some(p) = opts.persist.as_ref().filter(usable) {
        let slot = p.slot(s, config);
        if let Some(session) = resume(&slot).await {
            return Ok(Transport::ssh(session, true, s, &dest));
        }
        if std::fs::create_dir(&slot).is_ok() {
            let _ = std::fs::set_permissions(&slot, std::os::unix::fs::PermissionsExt::from_mode(0o700));
        }
        control_dir = slot;
        persist = openssh::ControlPersist::IdleFor(p.idle);
        kept = true;
    }
    if !kept {
        // Its own directory, checked like the kept ones': 0700 and ours, or no connection.
        let uid = current_uid();
        let parent = control_dir.parent().filter(|p| *p == runtime_dir(uid));
        parent
            .map_or(Ok(()), |p| private_dir(p, uid))
            .and_then(|()| private_dir(&control_dir, uid))
            .map_err(|why| HostError::Unreachable(format!("ssh control sockets: {why}")))?;
    }
    let mut b = openssh::SessionBuilder::default();
    b.user(s.user.clone())
        .port(s.port)
        .connect_timeout(Duration::from_secs(s.connect_timeout as u64))
        .server_alive_interval(Duration::from_secs(15))
        .control_directory(&control_dir)
        .control_persist(persist)
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
    if let Some(c) = config {
        b.config_file(expand_home(c));
    }
    // ssh's ConnectTimeout covers only the TCP connect; bound the whole handshake too.
    let limit = Duration::from_secs(s.connect_timeout as u64 * 3 + 30);
    match tokio::time::timeout(limit, b.connect_mux(&dest)).await {
        Ok(Ok(session)) => Ok(Transport::ssh(session, kept, s, &dest)),
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
    let bytes = agent.bytes().map_err(std::io::Error::other)?;
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(Path::new(INSTALL_ROOT), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    crate::host::write_atomic(&path, bytes, 0o700)?;
    Ok(path)
}

/// What the agent's stdout said.
struct AgentOutput {
    report: Option<Report>,
    other: Vec<String>,
}

/// SERVE_SCRIPT's first line.
#[derive(Debug, PartialEq, Eq)]
enum Handshake {
    /// The installed agent runs: send the request.
    Ready,
    /// The agent must be sent first.
    Missing {
        /// As `uname -m` prints it.
        arch: String,
        /// An agent was installed under this hash, but it is not that binary any more.
        changed: bool,
        /// The host can undo gzip.
        gzip: bool,
    },
    /// Anything else (an early error, or nothing at all): not SERVE_SCRIPT speaking.
    Other(String),
}

impl Handshake {
    fn parse(line: &str) -> Handshake {
        let line = line.trim_end_matches(['\r', '\n']);
        if line == READY_MARK {
            return Handshake::Ready;
        }
        let Some(rest) = line.strip_prefix(MISSING_MARK).and_then(|r| r.strip_prefix(' ')) else {
            return Handshake::Other(line.to_string());
        };
        let mut words = rest.split(' ');
        let arch = words.next().unwrap_or_default().to_string();
        let changed = words.next() == Some("changed");
        let gzip = words.next() == Some("gzip");
        Handshake::Missing { arch, changed, gzip }
    }
}

async fn read_events<R: AsyncRead + Unpin>(out: R, on_event: &mut (dyn FnMut(Event) + Send)) -> AgentOutput {
    let mut lines = BufReader::new(out).lines();
    let mut o = AgentOutput { report: None, other: vec![] };
    while let Ok(Some(line)) = lines.next_line().await {
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

/// When the agent's stdin closes: at once (the request is all it reads), or when the controller
/// releases it (a capture runs until then), or when the agent has ended anyway.
pub type Release = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn feed<W: AsyncWrite + Unpin>(
    w: Option<W>,
    parts: Vec<Cow<'_, [u8]>>,
    release: Option<Release>,
    ended: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    if let Some(mut w) = w {
        for p in parts {
            w.write_all(&p).await?;
        }
        w.flush().await?;
        if let Some(release) = release {
            tokio::select! {
                _ = release => {}
                _ = ended => {}
            }
        }
        w.shutdown().await?;
    }
    Ok(())
}

/// read_events, saying when it is done (the agent's stdout closed).
async fn read_events_then<R: AsyncRead + Unpin>(
    out: R,
    on_event: &mut (dyn FnMut(Event) + Send),
    done: tokio::sync::oneshot::Sender<()>,
) -> AgentOutput {
    let o = read_events(out, on_event).await;
    let _ = done.send(());
    o
}

/// What a failed `sudo -n` said, in words that say what to do.
fn explain_sudo(stderr: &str, login: &str) -> Option<String> {
    let user = login.split('@').next().unwrap_or(login);
    let e = stderr.to_lowercase();
    if e.contains("a password is required") || e.contains("a terminal is required") {
        Some(format!(
            "{login}: sudo wants a password, and lvsctl never types one (become = \"sudo\" runs `sudo -n`): \
             let {user} run commands as root without one, e.g. `{user} ALL=(root) NOPASSWD: ALL` in \
             /etc/sudoers.d/lvsctl (visudo -f), or log in as root"
        ))
    } else if e.contains("not in the sudoers file") || e.contains("is not allowed to execute") {
        Some(format!(
            "{login}: {user} may not use sudo on this host (become = \"sudo\"): add {user} to the sudoers, \
             e.g. `{user} ALL=(root) NOPASSWD: ALL` in /etc/sudoers.d/lvsctl, or log in as root"
        ))
    } else if e.contains("sudo: not found") || e.contains("sudo: command not found") {
        Some(format!("{login}: sudo is not installed (become = \"sudo\"): install it, or log in as root"))
    } else if e.contains("must have a tty") {
        Some(format!(
            "{login}: sudo requires a terminal (Defaults requiretty): add `Defaults:{user} !requiretty` to the sudoers"
        ))
    } else {
        None
    }
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
        self.run_agent_held(agent, req, on_event, on_install, None).await
    }

    /// run_agent, with the agent's stdin kept open until `release` (a capture ends when it closes).
    pub async fn run_agent_held(
        &self,
        agent: &AgentBinary,
        req: &Request,
        on_event: &mut (dyn FnMut(Event) + Send),
        on_install: &mut (dyn FnMut() + Send),
        release: Option<Release>,
    ) -> Result<Report, HostError> {
        let mut line = serde_json::to_vec(req).expect("requests serialize");
        line.push(b'\n');
        // Operations that change nothing must not install anything either.
        let ephemeral = req.op.leaves_no_trace();
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
                let (ended_tx, ended) = tokio::sync::oneshot::channel();
                let (fed, out, err) = tokio::join!(
                    feed(stdin, vec![Cow::Owned(line)], release, ended),
                    read_events_then(stdout, on_event, ended_tx),
                    read_all(stderr)
                );
                fed.map_err(|e| HostError::Agent(format!("cannot send the request: {e}")))?;
                let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                finish(out, status, err)
            }
            Transport::Ssh(host) => host.serve(agent, line, ephemeral, on_event, on_install, release).await,
        }
    }

    fn ssh(session: openssh::Session, kept: bool, s: &SshSettings, dest: &str) -> Transport {
        Transport::Ssh(Box::new(SshHost { session, kept, become_: s.become_, login: format!("{}@{dest}", s.user) }))
    }

    /// Ends the command's use of the connection: a kept master stays for the next command (it
    /// exits by itself when idle), any other is closed.
    pub async fn close(self) {
        match self {
            Transport::Ssh(h) if h.kept => {
                let _ = h.session.detach();
            }
            Transport::Ssh(h) => {
                let _ = h.session.close().await;
            }
            Transport::Local => {}
        }
    }
}

impl SshHost {
    fn finish(&self, o: AgentOutput, status: String, stderr: String) -> Result<Report, HostError> {
        if o.report.is_none()
            && self.become_ == Become::Sudo
            && let Some(why) = explain_sudo(&stderr, &self.login)
        {
            return Err(HostError::Agent(why));
        }
        finish(o, status, stderr)
    }

    /// Runs the agent over one ssh exec of SERVE_SCRIPT, sending it first when the host lacks it;
    /// with `become = "sudo"`, through `sudo -n` (never a prompt: a password requirement fails at
    /// once, and says so).
    async fn serve(
        &self,
        agent: &AgentBinary,
        request: Vec<u8>,
        ephemeral: bool,
        on_event: &mut (dyn FnMut(Event) + Send),
        on_install: &mut (dyn FnMut() + Send),
        release: Option<Release>,
    ) -> Result<Report, HostError> {
        let mut cmd = match self.become_ {
            Become::None => self.session.command("sh"),
            Become::Sudo => {
                let mut c = self.session.command("sudo");
                // sudo clears the environment: pass on where the session comes from (a fixed
                // word the login shell expands; nothing of the inventory is in it).
                c.args(["-n", "--", "env"]).raw_arg("\"LVSCTL_SSH_CONNECTION=$SSH_CONNECTION\"").arg("sh");
                c
            }
        };
        cmd.arg("-c").arg(SERVE_SCRIPT).arg("lvsctl-agent").arg(&agent.sha256).arg(if ephemeral {
            "ephemeral"
        } else {
            "install"
        });
        let mut child = cmd
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| HostError::Agent(format!("cannot start the agent over ssh: {e}")))?;
        let (stdin, stdout, stderr) =
            (child.stdin().take(), child.stdout().take().expect("piped"), child.stderr().take());
        let conversation = async {
            let mut out = BufReader::new(stdout);
            let mut first = String::new();
            let _ = out.read_line(&mut first).await;
            let handshake = Handshake::parse(&first);
            let (input, refused) = match &handshake {
                Handshake::Ready => (vec![Cow::Owned(request)], None),
                Handshake::Missing { arch, .. } if *arch != agent.arch => (
                    vec![Cow::Borrowed(&b"abort\n"[..])],
                    Some(format!(
                        "the host is {arch} but the agent binary {} is {}: build lvsctl for {arch} and pass it with --agent-binary",
                        agent.path.display(),
                        agent.arch
                    )),
                ),
                Handshake::Missing { changed, gzip, .. } => {
                    if *changed {
                        on_event(Event::Note {
                            message: format!(
                                "the installed agent {} did not match its sha256 (it changed since it was installed): not run, installed again",
                                agent.install_path()
                            ),
                            live: false,
                        });
                    }
                    if !ephemeral {
                        on_install();
                    }
                    match agent.upload(*gzip) {
                        Ok((how, bytes)) => {
                            let head = format!("{how} {}\n", bytes.len()).into_bytes();
                            (vec![Cow::Owned(head), Cow::Borrowed(bytes), Cow::Owned(request)], None)
                        }
                        Err(e) => (vec![Cow::Borrowed(&b"abort\n"[..])], Some(e)),
                    }
                }
                Handshake::Other(_) => (vec![], None),
            };
            // Held open only for the agent itself (a refusal ends the script at once).
            let release = if refused.is_none() { release } else { None };
            let (ended_tx, ended) = tokio::sync::oneshot::channel();
            let (fed, mut o) =
                tokio::join!(feed(stdin, input, release, ended), read_events_then(out, on_event, ended_tx));
            if let Handshake::Other(line) = handshake
                && !line.trim().is_empty()
            {
                o.other.insert(0, line);
            }
            (fed, o, refused)
        };
        let ((fed, out, refused), err) = tokio::join!(conversation, read_all(stderr));
        let status = match child.wait().await {
            Ok(st) => st.to_string(),
            // openssh reports a remote process killed by a signal as an error.
            Err(e) => e.to_string(),
        };
        if let Some(why) = refused {
            return Err(HostError::Agent(why));
        }
        if let Err(e) = fed
            && out.report.is_none()
        {
            // The script ended early (a refused agent directory), or sudo refused to run it.
            if self.become_ == Become::Sudo
                && let Some(why) = explain_sudo(&err, &self.login)
            {
                return Err(HostError::Agent(why));
            }
            if err.trim().is_empty() {
                return Err(HostError::Agent(format!("cannot send the request: {e}")));
            }
        }
        self.finish(out, status, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The scripts are fixed text (never built from inventory values): they spell the install
    /// root themselves, and must spell the one the agent uses.
    #[test]
    fn install_scripts_use_the_agent_install_root() {
        assert!(SERVE_SCRIPT.contains(&format!("={INSTALL_ROOT}")), "{SERVE_SCRIPT}");
        assert_eq!(SERVE_SCRIPT.matches("/usr/local/lib").count(), 1, "{SERVE_SCRIPT}");
        assert!(SERVE_SCRIPT.contains(&format!("echo {READY_MARK};")));
        assert!(SERVE_SCRIPT.contains(&format!("echo \"{MISSING_MARK} $(uname -m) $why $z\"")));
    }

    #[test]
    fn the_first_line_says_whether_the_agent_must_be_sent() {
        assert_eq!(Handshake::parse("lvsctl-agent-ready\n"), Handshake::Ready);
        assert_eq!(
            Handshake::parse("lvsctl-agent-missing x86_64 absent gzip\n"),
            Handshake::Missing { arch: "x86_64".into(), changed: false, gzip: true }
        );
        assert_eq!(
            Handshake::parse("lvsctl-agent-missing aarch64 changed raw"),
            Handshake::Missing { arch: "aarch64".into(), changed: true, gzip: false }
        );
        assert_eq!(Handshake::parse(""), Handshake::Other(String::new()));
        // An agent's JSON line, or a login banner, is not the script's answer.
        assert_eq!(Handshake::parse("lvsctl-agent-readyX"), Handshake::Other("lvsctl-agent-readyX".into()));
        assert!(matches!(Handshake::parse("{\"event\":\"note\"}"), Handshake::Other(_)));
    }

    fn host(addr: &str, port: u16) -> SshSettings {
        SshSettings { port, ..SshSettings::defaults_for(SshTarget::Remote(addr.into())) }
    }

    fn persist(dir: &Path, netns: &str) -> Persist {
        Persist { dir: dir.into(), idle: std::num::NonZeroUsize::new(60).unwrap(), netns: netns.into(), uid: 0 }
    }

    #[test]
    fn connections_not_kept_use_a_private_directory_of_this_user() {
        let d = ConnectOptions::default().control_dir;
        assert_eq!(d.parent(), Some(runtime_dir(current_uid()).as_path()));
        assert_ne!(d, std::env::temp_dir().join("lvsctl-ssh"), "a fixed shared name under /tmp");
    }

    #[test]
    fn sudo_refusals_say_what_to_do() {
        let login = "lab@10.0.0.1";
        let e = explain_sudo("sudo: a password is required\n", login).unwrap();
        assert!(e.contains("NOPASSWD") && e.contains("lab ALL=(root)") && e.contains("sudo -n"), "{e}");
        let e = explain_sudo("lab is not in the sudoers file.  This incident will be reported.\n", login).unwrap();
        assert!(e.contains("may not use sudo"), "{e}");
        assert!(explain_sudo("sh: 1: sudo: not found\n", login).unwrap().contains("not installed"));
        assert!(explain_sudo("the agent's own error\n", login).is_none());
    }

    #[test]
    fn a_kept_connection_is_reused_only_for_the_same_settings_from_the_same_namespace() {
        let d = Path::new("/run/x");
        let p = persist(d, "4:100");
        let a = p.slot(&host("10.0.0.1", 22), None);
        assert_eq!(a, p.slot(&host("10.0.0.1", 22), None));
        assert_ne!(a, p.slot(&host("10.0.0.1", 2222), None));
        assert_ne!(a, p.slot(&host("10.0.0.2", 22), None));
        let mut strict_off = host("10.0.0.1", 22);
        strict_off.host_key = HostKeyPolicy::AcceptNew;
        assert_ne!(a, p.slot(&strict_off, None));
        assert_ne!(a, p.slot(&host("10.0.0.1", 22), Some(&PathBuf::from("/nonexistent/ssh_config"))));
        // The same address in another lab's management network is another host.
        assert_ne!(a, persist(d, "4:101").slot(&host("10.0.0.1", 22), None));
    }

    #[test]
    fn kept_connections_live_only_in_a_private_directory() {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("ssh");
        private_dir(&dir, uid).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&dir, uid).unwrap_err();
        assert!(e.contains("not a private directory"), "{e}");
        let e = private_dir(&dir, uid + 1).unwrap_err();
        assert!(e.contains("owned by uid"), "{e}");
        let long = t.path().join("x".repeat(80));
        assert!(private_dir(&long, uid).unwrap_err().contains("too long"));
    }
}
