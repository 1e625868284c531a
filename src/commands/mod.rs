//! One module per subcommand.

mod bodies;
pub mod capture;
mod captures;
pub mod check;
pub mod docs;
pub mod doctor;
pub mod down;
pub mod drain;
pub mod failover;
pub mod fleet;
pub mod graph;
pub mod import;
pub mod init;
pub mod lab;
pub mod metrics;
pub mod outcome;
pub mod plan;
pub mod printer;
pub mod render;
pub mod status;
pub mod top;
pub mod trace;
pub mod up;
pub mod verifier;
pub mod verify;

use std::path::Path;

use crate::exit::{self, Exit};
use crate::inventory::{self, Lab, LoadError};

/// Loads and validates an inventory; an invalid one becomes exit code 3 with every diagnostic.
pub fn load_inventory(path: &Path) -> anyhow::Result<Lab> {
    match inventory::load(path) {
        Ok(lab) => Ok(lab),
        Err(LoadError::Invalid(d)) => {
            // Each problem is an `error:` of its own, rendered like rustc's; the summary after
            // them is the command's error.
            eprintln!("{}\n", d.render(crate::output::color_stderr()));
            Err(Exit::new(exit::INVALID, format!("{}; nothing was changed", problems_in(&d, path))).into())
        }
        // Not an invalid inventory: one that could not be read (exit status 1, not 3).
        Err(e @ LoadError::Io { .. }) => Err(Exit::new(exit::ERROR, e.to_string()).into()),
    }
}

/// How `up` or `down` ends.
pub struct Finish<'a> {
    pub command: &'a str,
    pub lab: &'a Lab,
    /// "changed", "to change", "undone", "to undo".
    pub verb: &'a str,
    pub output: crate::cli::StreamOutput,
    pub dry_run: bool,
    pub detailed_exitcode: bool,
}

/// The end of `up` and `down`: the diff of a dry run, the notes, each host's summary and the
/// recap (or the JSON), and the exit status: failures and unreachable hosts first, then with
/// `--detailed-exitcode` whether changes are pending.
pub fn finish(
    outcomes: &[outcome::Outcome],
    printer: &printer::Printer,
    started: std::time::Instant,
    f: Finish,
) -> anyhow::Result<u8> {
    let code = fleet::exit_code(outcomes);
    let planned =
        |o: &outcome::Outcome| o.events.iter().filter(|c| c.status == crate::agent::protocol::Status::Planned).count();
    printer.clear();
    let pending = match f.output {
        crate::cli::StreamOutput::Text => {
            printer.flush_notes(outcomes);
            let pending = if f.dry_run {
                crate::outln!();
                Some(printer::print_diff(outcomes, printer))
            } else {
                None
            };
            if crate::output::verbosity() != crate::output::Verbosity::Quiet {
                crate::outln!();
            }
            crate::outln!("{}", printer::summary(outcomes, f.verb, printer, started));
            if let Some(p) = &pending {
                crate::outln!("{}", p.line());
            }
            pending.map(|p| p.total())
        }
        crate::cli::StreamOutput::Json => {
            let body = crate::contract::RunBody::of(outcomes, f.dry_run, f.lab);
            crate::outln!(
                "{}",
                crate::contract::Output::new(f.command, Some(&f.lab.name), code == exit::OK, body).pretty()
            );
            f.dry_run.then(|| outcomes.iter().map(planned).sum())
        }
        crate::cli::StreamOutput::Jsonl => {
            let plan = crate::contract::RunBody::of(outcomes, f.dry_run, f.lab).plan;
            stream_end(f.command, &f.lab.name, code == exit::OK, plan);
            plan.map(|p| p.add + p.change + p.remove)
        }
    };
    if code == exit::OK && f.detailed_exitcode && pending.is_some_and(|n| n > 0) {
        return Ok(exit::PENDING);
    }
    Ok(code)
}

/// The last line of `--output jsonl`.
pub fn stream_end(command: &str, lab: &str, ok: bool, plan: Option<crate::contract::PlanCounts>) {
    let end = crate::contract::StreamLine::End { envelope: crate::output::Envelope::new(command, Some(lab), ok), plan };
    crate::outln!("{}", serde_json::to_string(&end).expect("serializes"));
}

/// How `up`, `down` and `status` print while they run: live lines on a terminal, plain lines
/// elsewhere, nothing until the end for json, events as lines for jsonl.
pub fn printer_for(hosts: &[String], output: crate::cli::StreamOutput, lab: &Lab, diff: bool) -> printer::Printer {
    use crate::cli::StreamOutput;
    let mut p = match output {
        StreamOutput::Text => printer::Printer::new(hosts, false).live_on_terminal(hosts),
        StreamOutput::Json => printer::Printer::new(hosts, true),
        StreamOutput::Jsonl => printer::Printer::new(hosts, false).jsonl(lab),
    };
    p.diff = diff;
    p
}

/// "3 problems in FILE".
pub fn problems_in(d: &inventory::diag::Diagnostics, path: &Path) -> String {
    crate::plural(d.len(), "problem") + &format!(" in {}", path.display())
}

/// Checks that every `--host` names a host of the lab.
pub fn check_host_filter(lab: &Lab, hosts: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
    for h in hosts {
        if !names.contains(&h.as_str()) {
            let hint = match inventory::diag::did_you_mean(h, &names) {
                Some(s) => format!(" (did you mean {s}?)"),
                None => String::new(),
            };
            return Err(Exit::new(
                exit::INVALID,
                format!("--host {h}: no such host in {}{hint}; hosts are: {}", lab.file.display(), names.join(", ")),
            )
            .into());
        }
    }
    Ok(())
}

/// The agent path shown in plans and rendered into units: the real one when the agent binary is
/// resolvable, else a placeholder that says what it stands for.
pub fn agent_path_for_display(explicit: Option<&Path>) -> String {
    match crate::remote::binary::resolve(explicit, true) {
        Ok(b) => b.install_path(),
        Err(_) => format!("{}/SHA256-OF-STATIC-LVSCTL/lvsctl", crate::paths::INSTALL_ROOT),
    }
}

pub fn load_templates(dir: Option<&Path>) -> anyhow::Result<crate::templates::Templates> {
    crate::templates::Templates::load(dir).map_err(|e| Exit::new(exit::INVALID, e.to_string()).into())
}

/// The host that sends (`verify`, `trace`): `--from HOST`, else the lab's client.
pub fn client_of<'a>(lab: &'a Lab, from: Option<&str>) -> anyhow::Result<&'a crate::inventory::Host> {
    let host = match from {
        Some(h) => lab
            .host(h)
            .ok_or_else(|| Exit::new(exit::INVALID, format!("--from {h}: no such host in {}", lab.file.display())))?,
        None => lab.hosts_with_role(crate::inventory::Role::Client).next().ok_or_else(|| {
            Exit::new(
                exit::INVALID,
                format!(
                    "{} has no host with role = \"client\": name the host to send from with --from HOST",
                    lab.file.display()
                ),
            )
        })?,
    };
    Ok(host)
}

/// The connection settings for a command that reads every director and no other host
/// (`metrics`, `top`); `--host` is refused with `no_host`.
pub fn every_director(
    inv: &crate::cli::InventoryArg,
    connect: &crate::cli::ConnectArgs,
    no_host: &str,
) -> anyhow::Result<crate::cli::ConnectArgs> {
    let mut connect = connect.clone();
    if !connect.filter.hosts.is_empty() {
        return Err(Exit::new(exit::INVALID, no_host.to_string()).into());
    }
    let lab = load_inventory(&inv.inventory)?;
    connect.filter.hosts = lab.directors().map(|h| h.name.clone()).collect();
    if connect.filter.hosts.is_empty() {
        return Err(Exit::new(exit::INVALID, format!("{} has no director", lab.file.display())).into());
    }
    Ok(connect)
}

/// What `up`, `status` and `doctor` share: the validated lab, every host's plan, and a session
/// to its hosts.
pub struct Planned {
    pub lab: Lab,
    pub plans: Vec<crate::plan::HostPlan>,
    pub session: Session,
}

impl Planned {
    pub fn open(
        inv: &crate::cli::InventoryArg,
        connect: &crate::cli::ConnectArgs,
        tpl: &crate::cli::TemplatesArg,
    ) -> anyhow::Result<Planned> {
        let lab = load_inventory(&inv.inventory)?;
        check_host_filter(&lab, &connect.filter.hosts)?;
        let templates = load_templates(tpl.templates.as_deref())?;
        let session = Session::open(&lab, connect)?;
        let ctx = crate::plan::Context { agent_path: session.agent.install_path(), templates: &templates };
        let plans = crate::plan::plan(&lab, &ctx)?;
        Ok(Planned { lab, plans, session })
    }

    /// One job per host the filter selects, asking the agent for `op` of the host's plan.
    pub fn jobs(
        &self,
        filter: &crate::cli::HostFilter,
        op: impl Fn(&crate::plan::HostPlan) -> crate::agent::protocol::Operation,
    ) -> Vec<fleet::Job> {
        fleet::selected(&self.lab, &filter.hosts)
            .iter()
            .map(|h| {
                let plan = self.plans.iter().find(|p| p.host == h.name).expect("a plan per host");
                let request = crate::agent::protocol::Request::new(&self.lab.name, &h.name, op(plan));
                fleet::Job { host: h.name.clone(), ssh: h.ssh.clone(), request }
            })
            .collect()
    }
}

/// What commands that reach hosts share: the agent binary, how to connect, and a runtime
/// started after entering the lab's management namespace (when there is a local lab).
pub struct Session {
    pub agent: std::sync::Arc<crate::remote::binary::AgentBinary>,
    pub pool: std::sync::Arc<fleet::Pool>,
    pub parallel: usize,
    pub(crate) rt: tokio::runtime::Runtime,
}

impl Session {
    pub fn open(lab: &Lab, args: &crate::cli::ConnectArgs) -> anyhow::Result<Session> {
        let mut opts = crate::remote::ConnectOptions { ssh_config: args.ssh_config.clone(), ..Default::default() };
        if let Some(ctx) = crate::lab::context(&lab.name, &lab.file) {
            // Threads inherit the namespace of the thread that creates them: enter it before the
            // runtime exists, so every ssh process starts in the lab's management network.
            crate::lab::enter_netns(&ctx.netns)
                .map_err(|e| anyhow::anyhow!("cannot enter the lab's namespace {}: {e}", ctx.netns.display()))?;
            if opts.ssh_config.is_none() {
                opts.ssh_config = Some(ctx.ssh_config.clone());
            }
            if crate::output::verbosity() == crate::output::Verbosity::Verbose {
                eprintln!(
                    "lvsctl: lab {} runs on this machine: reaching its hosts through its management network",
                    lab.name
                );
            }
        }
        // After entering the lab's namespace: kept connections are per namespace.
        opts.persist = crate::remote::Persist::new(args.ssh_persist);
        let remote =
            fleet::selected(lab, &args.filter.hosts).iter().any(|h| h.ssh.target != crate::inventory::SshTarget::Local);
        let agent = crate::remote::binary::resolve(args.agent_binary.as_deref(), remote)?;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        Ok(Session {
            agent: std::sync::Arc::new(agent),
            pool: std::sync::Arc::new(fleet::Pool::new(opts)),
            parallel: args.parallel as usize,
            rt,
        })
    }

    pub fn run(&self, jobs: Vec<fleet::Job>, printer: std::sync::Arc<printer::Printer>) -> Vec<outcome::Outcome> {
        self.rt.block_on(fleet::run(jobs, self.parallel, self.agent.clone(), self.pool.clone(), printer))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Close the ssh master connections cleanly (dropping them would block on each).
        self.rt.block_on(self.pool.close());
    }
}

/// `text` to standard output (a reader that goes away is no error), or to `out`, which must not
/// exist yet: `command` (`init`, `import`) never overwrites a file.
pub fn write_new(text: &str, out: Option<&std::path::Path>, command: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let Some(path) = out else {
        let mut o = std::io::stdout().lock();
        return match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        };
    };
    let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} exists: lvsctl {command} never overwrites a file (remove it, or choose another)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
