//! Processes, programs and systemd: the daemons lvsctl runs, the programs that check a
//! configuration.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/process.rs`.

use super::*;

/// Processes, programs and systemd.
pub trait Processes {
    /// Whether systemd manages this host (it is PID 1).
    fn systemd_running(&self) -> bool;
    fn systemctl(&mut self, args: &[&str]) -> Result<String>;
    /// The process with this pid, if one runs (a zombie does not count).
    fn process(&self, pid: u32) -> Result<Option<ProcFact>>;
    /// Now, in the clock of `ProcFact::start_time`.
    fn now_ticks(&self) -> Result<u64>;
    /// The absolute path of an installed program (an executable regular file in the system's
    /// sbin and bin directories), None when it is not installed.
    fn find_program(&self, name: &str) -> Option<String>;
    /// Starts `argv` as a daemon of its own (new session, stdin from /dev/null, output appended
    /// to `log`), checks that it is still running a moment later, and returns it.
    fn spawn_daemon(&mut self, argv: &[&str], log: &str) -> Result<ProcFact>;
    fn signal(&mut self, pid: u32, signal: i32) -> Result<()>;
    /// Has the program that reads a file accept `content` before the file is replaced.
    fn check_config(&mut self, check: crate::plan::FileCheck, content: &[u8]) -> Result<()>;
    /// Runs an installed program (an absolute path) that only reports; its standard output.
    fn output(&mut self, argv: &[&str]) -> Result<String>;
    /// The TCP sockets listening in this network namespace, by local address.
    fn listening(&self) -> Result<Vec<std::net::SocketAddr>>;
    /// The agent's own executable: what the exporter runs.
    fn own_program(&self) -> Result<String>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl Processes for Fake {
        fn systemd_running(&self) -> bool {
            self.state.systemd
        }

        fn systemctl(&mut self, args: &[&str]) -> Result<String> {
            match args {
                ["is-enabled", u] => {
                    Ok(if self.state.enabled.contains(*u) { "enabled\n" } else { "disabled\n" }.into())
                }
                ["is-active", u] => Ok(if self.state.active.contains(*u) { "active\n" } else { "inactive\n" }.into()),
                _ => {
                    self.op(format!("systemctl {}", args.join(" ")))?;
                    match args {
                        ["enable", u] => {
                            self.state.enabled.insert(u.to_string());
                        }
                        ["disable", u] => {
                            self.state.enabled.remove(*u);
                        }
                        ["start", "--no-block", u] => {
                            self.state.active.insert(u.to_string());
                        }
                        ["stop", u] => {
                            self.state.active.remove(*u);
                        }
                        ["start", u] => {
                            self.state.active.insert(u.to_string());
                        }
                        _ => {}
                    }
                    Ok(String::new())
                }
            }
        }

        fn process(&self, pid: u32) -> Result<Option<ProcFact>> {
            Ok(self.state.processes.get(&pid).cloned())
        }

        fn now_ticks(&self) -> Result<u64> {
            Ok(self.state.ticks)
        }

        fn find_program(&self, name: &str) -> Option<String> {
            self.state.programs.get(name).cloned()
        }

        fn spawn_daemon(&mut self, argv: &[&str], log: &str) -> Result<ProcFact> {
            self.op(format!("spawn {} > {log}", argv.join(" ")))?;
            self.state.next_pid = self.state.next_pid.max(100) + 1;
            self.state.ticks += 10;
            let p = ProcFact { pid: self.state.next_pid, start_time: self.state.ticks, exe: argv[0].to_string() };
            self.state.processes.insert(p.pid, p.clone());
            // The exporter listens, then names itself in its pid file.
            if let ["--lab", lab, "--listen", listen] = argv[argv.len().saturating_sub(4)..] {
                if let Ok(a) = listen.parse() {
                    self.state.exporters.insert(p.pid, a);
                }
                let content = format!("{} {listen}\n", p.pid).into_bytes();
                let f = crate::host::FileFact { content, mode: 0o644 };
                self.state.files.insert(crate::paths::exporter_pid_path(lab), f);
            }
            Ok(p)
        }

        fn signal(&mut self, pid: u32, signal: i32) -> Result<()> {
            self.op(format!("kill -{signal} {pid}"))?;
            if !self.state.processes.contains_key(&pid) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if signal == libc::SIGTERM {
                self.state.processes.remove(&pid);
                self.state.exporters.remove(&pid);
            }
            Ok(())
        }

        fn check_config(&mut self, check: crate::plan::FileCheck, content: &[u8]) -> Result<()> {
            self.op(format!("check {check:?} {} bytes", content.len()))
        }

        fn output(&mut self, argv: &[&str]) -> Result<String> {
            Err(io::Error::other(format!("{}: not in the fake", argv.join(" "))))
        }

        fn listening(&self) -> Result<Vec<std::net::SocketAddr>> {
            let running = self.state.exporters.iter().filter(|(pid, _)| self.state.processes.contains_key(pid));
            Ok(self.state.listening.iter().copied().chain(running.map(|(_, a)| *a)).collect())
        }

        fn own_program(&self) -> Result<String> {
            Ok("/usr/local/lib/lvsctl/0123/lvsctl".into())
        }
    }
}
