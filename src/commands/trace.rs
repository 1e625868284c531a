//! `lvsctl trace`: one request from the client to a service, captured on every host of the lab,
//! walked hop by hop and checked against the service's mode (`packets::walk`).

use std::sync::Arc;

use super::captures;
use super::fleet::Job;
use crate::agent::protocol::{Operation, Request};
use crate::cli::{Output, TraceArgs};
use crate::exit::{self, Exit};
use crate::inventory::{Lab, Role, Service};
use crate::packets::walk::{Expect, Hop, Seen, Walked, walk};
use crate::wire::capture::CaptureRequest;
use crate::wire::packet::{Flow, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::wire::probe::{ProbeRequest, ProbeTarget};

/// The client port the probe sends from: below the kernel's ephemeral range (32768-60999), so no
/// other connection of the client has it, and fresh each run, so no director's entry of an
/// earlier trace decides where this one goes.
fn client_port() -> u16 {
    let mut b = [0u8; 2];
    let r = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    let n = if r.is_ok() { u16::from_le_bytes(b) } else { std::process::id() as u16 };
    10000 + n % 22000
}

/// The (VIP, port) of a service to send to, as verify sends: `--service` (default: the first
/// service), narrowed by `--vip` and `--port`.
fn unit(lab: &Lab, args: &TraceArgs) -> anyhow::Result<Service> {
    let names = || -> String {
        let mut v: Vec<String> = Vec::new();
        for s in &lab.services {
            let n = s.name.clone().unwrap_or_else(|| format!("(unnamed: {})", s.label()));
            if !v.contains(&n) {
                v.push(n);
            }
        }
        v.join(", ")
    };
    let file = lab.file.display();
    if lab.services.is_empty() {
        return Err(Exit::new(exit::INVALID, format!("{file} has no service to send a request to")).into());
    }
    let units = crate::judge::probe_units(lab);
    let mut picked: Vec<&Service> = match &args.service {
        Some(name) => units.iter().filter(|u| u.name.as_deref() == Some(name)).collect(),
        // --vip and --port alone choose among every service.
        None if args.vip.is_some() || args.port.is_some() => units.iter().collect(),
        None => units.iter().filter(|u| u.index == lab.services[0].index).collect(),
    };
    if picked.is_empty() {
        let name = args.service.as_deref().unwrap_or_default();
        return Err(Exit::new(
            exit::INVALID,
            format!("--service {name}: no service of that name in {file}; its services: {}", names()),
        )
        .into());
    }
    let what = args.service.as_ref().map(|n| format!("service {n}")).unwrap_or_else(|| "the lab's services".into());
    let offered =
        |p: &[&Service]| p.iter().map(|u| format!("{}:{}", u.ipvs.vip, u.ipvs.port)).collect::<Vec<_>>().join(", ");
    if let Some(vip) = args.vip {
        let all = offered(&picked);
        picked.retain(|u| u.ipvs.vip == vip);
        if picked.is_empty() {
            return Err(Exit::new(exit::INVALID, format!("--vip {vip}: not a VIP of {what} (they are: {all})")).into());
        }
    }
    if let Some(port) = args.port {
        let all = offered(&picked);
        picked.retain(|u| u.ipvs.port == port);
        if picked.is_empty() {
            return Err(
                Exit::new(exit::INVALID, format!("--port {port}: not a port of {what} (they are: {all})")).into()
            );
        }
    }
    Ok(picked[0].clone())
}

pub fn run(args: &TraceArgs) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&args.inv.inventory)?;
    let client = super::client_of(&lab, args.from.as_deref())?;
    if !args.connect.filter.hosts.is_empty() {
        return Err(Exit::new(
            exit::INVALID,
            "trace captures on every host of the lab: choose the sender with --from HOST, not --host",
        )
        .into());
    }
    let unit = unit(&lab, args)?;
    let port = client_port();
    let protocol = match unit.ipvs.protocol {
        crate::ipvs::Protocol::Tcp => IPPROTO_TCP,
        crate::ipvs::Protocol::Udp => IPPROTO_UDP,
        crate::ipvs::Protocol::Sctp => IPPROTO_SCTP,
    };
    let mut service_ports = vec![unit.ipvs.port];
    for b in &unit.real_servers {
        if !service_ports.contains(&b.port) {
            service_ports.push(b.port);
        }
    }
    let flow = Flow { protocol, client_port: port, service_ports };
    let target = ProbeTarget {
        address: unit.ipvs.vip,
        port: unit.ipvs.port,
        kind: crate::judge::probe_kind(unit.ipvs.protocol, unit.ipvs.port),
        count: 1,
        timeout_ms: args.timeout * 1000,
        source_port: Some(port),
        avoid_ports: vec![],
    };
    let capture = |probe: Option<ProbeRequest>| CaptureRequest {
        interface: None,
        flow: Some(flow.clone()),
        count: 500,
        seconds: if probe.is_some() { args.timeout + 10 } else { 300 },
        snaplen: 256,
        probe,
        linger_ms: 300,
    };
    let job = |h: &crate::inventory::Host, probe: Option<ProbeRequest>| Job {
        host: h.name.clone(),
        ssh: h.ssh.clone(),
        request: Request::new(&lab.name, &h.name, Operation::Capture { capture: capture(probe) }),
    };
    // A lab host stopped by `lab stop` cannot run anything: it is left out, and said so.
    let stopped = crate::lab::faults::load(&lab.name).stopped;
    if stopped.contains(&client.name) {
        return Err(Exit::new(
            exit::ERROR,
            format!(
                "trace: {} is stopped (lvsctl lab stop): `lvsctl lab start {} {}` first",
                client.name,
                lab.file.display(),
                client.name
            ),
        )
        .into());
    }
    for h in &stopped {
        eprintln!("trace: {h} is stopped (lvsctl lab stop): not captured there");
    }
    let watchers: Vec<Job> = lab
        .hosts
        .iter()
        .filter(|h| h.name != client.name && !stopped.contains(&h.name))
        .map(|h| job(h, None))
        .collect();
    let probe = ProbeRequest { targets: vec![target], ..Default::default() };
    let probing = job(client, Some(probe));

    let mut connect = args.connect.clone();
    connect.filter.hosts = lab.hosts.iter().filter(|h| !stopped.contains(&h.name)).map(|h| h.name.clone()).collect();
    let session = super::Session::open(&lab, &connect)?;
    eprintln!(
        "trace: capturing on {}; then one request from {} port {port} to {} ({})",
        crate::plural(watchers.len(), "host"),
        client.name,
        unit.label(),
        unit.mode
    );
    let not_up = std::sync::Mutex::new(Vec::new());
    let go = |states: &[(String, Option<bool>)]| {
        let mut down: Vec<String> = states.iter().filter(|(_, up)| *up != Some(true)).map(|(h, _)| h.clone()).collect();
        down.sort();
        let ok = down.is_empty();
        *not_up.lock().unwrap_or_else(|e| e.into_inner()) = down;
        ok
    };
    let captured = captures::run(&session, watchers, Some(probing), &go, None, Arc::new(|_, _| {}));
    drop(session);

    // Hosts that did not capture: unreachable, or failed; say why and stop.
    let mut problems = Vec::new();
    for c in &captured {
        for n in &c.notes {
            eprintln!("{}: {n}", c.host);
        }
        match &c.result {
            Err(e) => problems.push((c.host.clone(), e.to_string(), e.exit_code())),
            Ok(r) if !r.errors.is_empty() => problems.push((c.host.clone(), r.errors.join("; "), exit::ERROR)),
            Ok(_) => {}
        }
    }
    if !problems.is_empty() {
        let code = problems.iter().map(|p| p.2).max().unwrap_or(exit::ERROR);
        let lines: Vec<String> = problems.iter().map(|(h, e, _)| format!("{h}: {e}")).collect();
        return Err(Exit::new(code, format!("trace: {}; nothing was sent", lines.join("; "))).into());
    }
    let down = not_up.into_inner().unwrap_or_else(|e| e.into_inner());
    let probing_ran = captured.iter().any(|c| c.host == client.name);
    if !probing_ran {
        let why = if down.is_empty() {
            "not every host started capturing in time".to_string()
        } else {
            format!(
                "lab {} is not up on {} (lvsctl's journal is not there): `lvsctl up {}` first",
                lab.name,
                down.join(", "),
                lab.file.display()
            )
        };
        return Err(Exit::new(exit::ERROR, format!("trace: {why}; nothing was sent")).into());
    }

    let mut seen = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for c in &captured {
        let role = lab.host(&c.host).map(|h| h.role).unwrap_or(Role::Client);
        counts.insert(c.host.clone(), c.packets.len() as u32);
        for p in &c.packets {
            let iface = c.interfaces.iter().find(|i| i.index == p.interface);
            seen.push(Seen {
                host: c.host.clone(),
                role,
                interface: iface.map(|i| i.name.clone()).unwrap_or_else(|| format!("if{}", p.interface)),
                outgoing: p.outgoing,
                at_ns: p.at_ns,
                packet: crate::wire::capture::delivered(iface, &p.bytes()),
            });
        }
    }
    let mut real_servers: Vec<(String, std::net::IpAddr)> =
        unit.real_servers.iter().map(|b| (b.host.clone(), b.address)).collect();
    if let Some(s) = &unit.sorry_server
        && let Some(h) = &s.host
    {
        real_servers.push((h.clone(), s.address));
    }
    let profile = unit.profile();
    let expect = Expect {
        walk: &profile.walk,
        mode: unit.mode.as_str(),
        vip: unit.ipvs.vip,
        port: unit.ipvs.port,
        client_port: port,
        real_servers,
    };
    let walked = walk(&seen, &expect);
    let answer = captured
        .iter()
        .find(|c| c.host == client.name)
        .and_then(|c| c.result.as_ref().ok()?.capture()?.probe.clone())
        .and_then(|p| p.answers.first()?.first().cloned());
    let answer_text = answer.as_ref().map(|a| match (&a.body, &a.error) {
        (Some(b), _) => format!("{b:?} in {} ms", a.ms),
        (None, Some(e)) => format!("no answer: {e}"),
        (None, None) => "no answer".into(),
    });
    let ok = walked.departures.is_empty() && walked.answered_by.is_some();
    match args.out.output {
        Output::Json => {
            let body = crate::contract::TraceBody {
                service: unit.label(),
                mode: unit.mode.as_str(),
                client: &client.name,
                client_port: port,
                answer: answer_text,
                walk: &walked,
                captured: counts,
            };
            crate::outln!("{}", crate::contract::Output::new("trace", Some(&lab.name), ok, body).pretty());
        }
        Output::Text => crate::out!("{}", render(&unit, &client.name, port, answer_text.as_deref(), &walked)),
    }
    Ok(if ok { exit::OK } else { exit::CHECK_FAILED })
}

/// The walk as people read it: one line per hop, what changed beside it.
pub fn render(unit: &Service, client: &str, port: u16, answer: Option<&str>, w: &Walked) -> String {
    let mut s = format!("trace {} from {client} port {port}, mode {}\n", unit.label(), unit.mode);
    let all: Vec<&Hop> = w.request.iter().chain(&w.reply).collect();
    let width = |f: &dyn Fn(&Hop) -> usize| all.iter().map(|h| f(h)).max().unwrap_or(0);
    let (wh, wi, ws, wd) =
        (width(&|h| h.host.len()), width(&|h| h.interface.len()), width(&|h| h.src.len()), width(&|h| h.dst.len()));
    for (title, hops) in [("request", &w.request), ("reply", &w.reply)] {
        s += &format!("{title}\n");
        if hops.is_empty() {
            s += "  (not seen on any host)\n";
        }
        for h in hops {
            s += &format!(
                "  {:>7.3} ms  {:wh$}  {:wi$} {:3}  {:ws$} > {:wd$}  {:8} ttl {:3}",
                h.at_us as f64 / 1000.0,
                h.host,
                h.interface,
                h.direction,
                h.src,
                h.dst,
                h.what,
                h.ttl
            );
            if let Some(c) = &h.change {
                s += &format!("  {c}");
            }
            s += "\n";
            if let Some(o) = &h.outer {
                // Under the addresses: the header around them.
                s += &format!("{:pad$}outer {o}\n", "", pad = 2 + 7 + 3 + 2 + wh + 2 + wi + 1 + 3 + 2);
            }
        }
    }
    if let Some(a) = answer {
        s += &format!("answer: {a}\n");
    }
    if w.departures.is_empty() && w.answered_by.is_some() {
        s += &format!(
            "trace: the walk is as {} requires; answered by {}\n",
            unit.mode.as_str().to_uppercase(),
            w.answered_by.as_deref().unwrap_or("?")
        );
    } else {
        for d in &w.departures {
            s += &format!("DEPARTS: {d}\n");
        }
        s += &format!(
            "trace: FAILED: the walk departs from {} ({})\n",
            unit.mode.as_str().to_uppercase(),
            crate::plural(w.departures.len(), "finding")
        );
    }
    s
}
