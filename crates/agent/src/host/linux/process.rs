//! Processes: systemctl, the daemons lvsctl starts and stops on hosts without systemd (named by pid, start
//! time and executable), and the programs that check a configuration before it is installed.

use std::io;
use std::process::Command;

use std::path::Path;

use super::Linux;
use crate::host::{ProcFact, Processes, Result, System};

/// Where `find_program` looks (not $PATH, which a login shell may have set to anything).
pub const PROGRAM_DIRS: [&str; 6] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"];

pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// `/proc/PID`: its start time and executable; None when no such process runs (or it is a zombie).
pub fn read(pid: u32) -> Result<Option<ProcFact>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The command name is in parentheses and may hold anything: fields count after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| io::Error::other("unreadable /proc stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return Ok(None);
    }
    let start_time =
        fields.get(19).and_then(|v| v.parse().ok()).ok_or_else(|| io::Error::other("unreadable /proc stat"))?;
    let exe = match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(ProcFact { pid, start_time, exe }))
}

/// How long a new daemon must keep running before it counts as started: keepalived exits at
/// once on a configuration it cannot use, or when another instance holds its pid file.
const SPAWN_SETTLE: std::time::Duration = std::time::Duration::from_millis(1500);

pub fn spawn_daemon(argv: &[&str], log: &str) -> Result<ProcFact> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let (prog, args) = argv.split_first().ok_or_else(|| io::Error::other("nothing to start"))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open the daemon's log {log}: {e}")))?;
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(std::process::Stdio::null()).stdout(out.try_clone()?).stderr(out);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid and signal.
    unsafe {
        cmd.pre_exec(|| {
            // A session of its own: the SSH session that started it can end.
            libc::setsid();
            // The agent ignores SIGHUP and SIGPIPE; the daemon gets the defaults back.
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("cannot start {prog}: {e}")))?;
    let started = std::time::Instant::now();
    while started.elapsed() < SPAWN_SETTLE {
        if let Some(status) = child.try_wait()? {
            let tail = log_tail(log);
            return Err(io::Error::other(format!("{prog} exited at once ({status}): {tail}")));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    read(child.id())?.ok_or_else(|| io::Error::other(format!("{prog} is gone right after it started")))
}

/// The last lines of a log, on one line, for an error message.
fn log_tail(log: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(4)..];
    if tail.is_empty() { format!("nothing in {log}") } else { format!("{} (see {log})", tail.join(" | ")) }
}

pub fn check_config(sys: &impl System, check: crate::plan::FileCheck, content: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match check {
        crate::plan::FileCheck::Keepalived => {
            let prog = sys.find_program("keepalived").ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "keepalived is not installed (apt-get install keepalived, or dnf install keepalived)",
                )
            })?;
            // A private name in /run, created exclusively: nobody else can have put it there.
            let tmp = format!("{}/.lvsctl-check-{}-{}.conf", crate::paths::RUN_DIR, std::process::id(), nonce());
            let r = (|| {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&tmp)?;
                f.write_all(content)?;
                drop(f);
                let out = Command::new(&prog).args(["-t", "-f", &tmp]).stdin(std::process::Stdio::null()).output()?;
                if out.status.success() {
                    return Ok(());
                }
                let why = String::from_utf8_lossy(&out.stderr).replace(&tmp, "keepalived.conf");
                let why: Vec<&str> = why.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                Err(io::Error::other(format!("keepalived -t refused the new configuration: {}", why.join(" | "))))
            })();
            let _ = std::fs::remove_file(&tmp);
            r
        }
    }
}

fn nonce() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0)
}

impl Processes for Linux {
    fn systemd_running(&self) -> bool {
        // sd_booted(3): systemd is PID 1 when this directory exists.
        Path::new("/run/systemd/system").is_dir()
    }

    fn systemctl(&mut self, args: &[&str]) -> Result<String> {
        let out = Command::new("systemctl").args(args).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(io::Error::other(format!(
                "systemctl {}: {}{}",
                args.join(" "),
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    fn process(&self, pid: u32) -> Result<Option<ProcFact>> {
        read(pid)
    }

    fn now_ticks(&self) -> Result<u64> {
        let up = std::fs::read_to_string("/proc/uptime")?;
        let secs: f64 = up
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other("cannot read /proc/uptime"))?;
        Ok((secs * clock_ticks() as f64) as u64)
    }

    fn find_program(&self, name: &str) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        PROGRAM_DIRS
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
    }

    fn spawn_daemon(&mut self, argv: &[&str], log: &str) -> Result<ProcFact> {
        spawn_daemon(argv, log)
    }

    fn signal(&mut self, pid: u32, signal: i32) -> Result<()> {
        let pid = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: kill(2) with a checked positive pid has no memory effects.
        if unsafe { libc::kill(pid, signal) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    fn check_config(&mut self, check: crate::plan::FileCheck, content: &[u8]) -> Result<()> {
        check_config(self, check, content)
    }

    fn listening(&self) -> Result<Vec<std::net::SocketAddr>> {
        let mut out = Vec::new();
        for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
            match std::fs::read_to_string(file) {
                Ok(text) => out.extend(parse_listening(&text, v6)),
                // No IPv6 in this kernel.
                Err(e) if e.kind() == io::ErrorKind::NotFound && v6 => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{file}: {e}"))),
            }
        }
        Ok(out)
    }

    fn own_program(&self) -> Result<String> {
        Ok(std::fs::read_link("/proc/self/exe")?.to_string_lossy().into_owned())
    }

    fn output(&mut self, argv: &[&str]) -> Result<String> {
        let (prog, args) = argv.split_first().ok_or_else(|| io::Error::other("nothing to run"))?;
        let out = Command::new(prog).args(args).stdin(std::process::Stdio::null()).output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(format!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim())))
        }
    }
}

/// The listening sockets of `/proc/net/tcp` or `tcp6` (state 0A): `local_address` is the
/// address's 32-bit words as the host stores them, in hex, and the port in hex.
pub fn parse_listening(text: &str, v6: bool) -> Vec<std::net::SocketAddr> {
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(|w| w.to_ne_bytes());
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip: std::net::IpAddr = if v6 {
                if addr.len() != 32 {
                    return None;
                }
                let mut b = [0u8; 16];
                for i in 0..4 {
                    b[i * 4..i * 4 + 4].copy_from_slice(&word(&addr[i * 8..i * 8 + 8])?);
                }
                std::net::Ipv6Addr::from(b).into()
            } else {
                std::net::Ipv4Addr::from(word(addr)?).into()
            };
            Some(std::net::SocketAddr::new(ip, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_listening;

    #[test]
    fn listening_sockets_of_proc_net_tcp() {
        // As an x86 (little-endian) kernel writes them: 127.0.0.1:22 listening, one established.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0800FA0A:0016 0100FA0A:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 00000000:249E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
";
        let got = parse_listening(v4, false);
        assert_eq!(got, vec!["127.0.0.1:22".parse().unwrap(), "0.0.0.0:9374".parse().unwrap()]);
        let v6 = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: B80D0120000000000000000001000000:249E 00000000000000000000000000000000:0000 0A 00000000:00000000
";
        let got = parse_listening(v6, true);
        assert_eq!(got, vec!["[::1]:22".parse().unwrap(), "[2001:db8::1]:9374".parse().unwrap()]);
    }
}
