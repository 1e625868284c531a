//! `lvsctl capture`: a bounded capture on one host of the lab, written as pcapng.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use super::captures;
use super::fleet::Job;
use crate::agent::protocol::{Operation, Request};
use crate::cli::CaptureArgs;
use crate::exit::{self, Exit};
use crate::wire::capture::CaptureRequest;

pub fn run(args: &CaptureArgs) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&args.inv.inventory)?;
    let Some(host) = lab.host(&args.host) else {
        let names: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
        let hint = crate::inventory::diag::did_you_mean(&args.host, &names)
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        return Err(Exit::new(
            exit::INVALID,
            format!("no host {:?} in {}{hint}; its hosts: {}", args.host, lab.file.display(), names.join(", ")),
        )
        .into());
    };
    // The file is created before any host is reached: a name that cannot be written fails first.
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(&args.out) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Exit::new(
                exit::ERROR,
                format!(
                    "{} exists: lvsctl capture never overwrites a file (remove it, or choose another)",
                    args.out.display()
                ),
            )
            .into());
        }
        Err(e) => return Err(Exit::new(exit::ERROR, format!("cannot create {}: {e}", args.out.display())).into()),
    };
    let written = capture_to(&lab, host, args, &mut file);
    if written.is_err() {
        let _ = std::fs::remove_file(&args.out);
    }
    written
}

fn capture_to(
    lab: &crate::inventory::Lab,
    host: &crate::inventory::Host,
    args: &CaptureArgs,
    file: &mut std::fs::File,
) -> anyhow::Result<u8> {
    let mut connect = args.connect.clone();
    connect.filter.hosts = vec![host.name.clone()];
    let session = super::Session::open(lab, &connect)?;
    let capture = CaptureRequest {
        interface: args.interface.clone(),
        flow: None,
        count: args.count,
        seconds: args.seconds,
        snaplen: args.snaplen,
        probe: None,
        linger_ms: 0,
    };
    let request = Request::new(&lab.name, &host.name, Operation::Capture { capture });
    let job = Job { host: host.name.clone(), ssh: host.ssh.clone(), request };
    eprintln!(
        "capture: on {} ({}), until {} packets or {} s (Ctrl-C ends it sooner)",
        host.name,
        args.interface.as_deref().map(|i| format!("interface {i}")).unwrap_or_else(|| "every interface".into()),
        args.count,
        args.seconds
    );
    let terminal = std::io::stderr().is_terminal();
    let on_packets: captures::OnPackets = Arc::new(move |_, n| {
        if terminal {
            eprint!("\rcapture: {n} packets");
            let _ = std::io::stderr().flush();
        }
    });
    let ctrl_c: crate::remote::Release = Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    // Connecting and starting the agent take a moment (seconds on a loaded host): the user's
    // traffic is seen from this line on.
    let capturing = |states: &captures::ReadyStates| {
        for (h, _) in states.iter().filter(|(_, up)| up.is_some()) {
            eprintln!("capture: {h} is capturing");
        }
        true
    };
    let mut got = captures::run(&session, vec![job], None, &capturing, Some(ctrl_c), on_packets);
    if terminal {
        eprintln!();
    }
    let c = got.pop().expect("one host");
    for n in &c.notes {
        eprintln!("{}: {n}", c.host);
    }
    let report = match c.result {
        Ok(r) => r,
        Err(e) => return Err(Exit::new(e.exit_code(), format!("{}: {e}", c.host)).into()),
    };
    if let Some(e) = report.errors.first() {
        return Err(Exit::new(exit::ERROR, format!("{}: {e}", c.host)).into());
    }
    let bytes = crate::packets::pcapng::write(&c.host, &c.interfaces, &c.packets, args.snaplen);
    file.write_all(&bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
    let summary = report.capture().cloned().unwrap_or_default();
    let why = match summary.ended_by.as_str() {
        "count" => "--count reached",
        "seconds" => "--seconds up",
        "stopped" => "stopped",
        other => other,
    };
    eprintln!(
        "capture: {} from {} written to {} ({why}{})",
        crate::plural(c.packets.len(), "packet"),
        c.host,
        args.out.display(),
        if summary.dropped > 0 {
            format!("; the kernel dropped {} the agent did not read in time", summary.dropped)
        } else {
            String::new()
        }
    );
    Ok(exit::OK)
}
