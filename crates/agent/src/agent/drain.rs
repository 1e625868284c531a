//! Drains (`lvsctl drain` / `undrain`): a real server at weight 0 — or taken out — in a director's
//! services, kept as state next to the journal (`drained.json`) so that every later run on this
//! host (`up`, `status`, the boot unit) keeps it, until `undrain`. The weight is changed through the
//! plan, so the journal records it and `down` gives it back like any other change; then the real
//! server's connections are watched until they are gone, or the deadline passes.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Error, Executor, Journal, Paths, lock};
use crate::host::System;
use crate::ipvs::ServiceKey;
use crate::plan::HostPlan;
use crate::resource::{Intent, Scope};
use crate::wire::protocol::{Answer, DrainProgress, DrainRequest, Drained, Event, Report, Request};

/// Drained real servers by host name.
pub type DrainState = BTreeMap<String, Drained>;

fn path(paths: &Paths, lab: &str) -> PathBuf {
    paths.lab_dir(lab).join("drained.json")
}

/// The drains recorded on this host (none without the file).
pub fn load(paths: &Paths, lab: &str) -> io::Result<DrainState> {
    match std::fs::read(path(paths, lab)) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path(paths, lab).display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DrainState::new()),
        Err(e) => Err(e),
    }
}

/// Writes the drains whole (a temporary file renamed over it); none left removes the file.
fn save(paths: &Paths, lab: &str, state: &DrainState) -> io::Result<()> {
    let p = path(paths, lab);
    if state.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state).expect("drains serialize"))?;
    std::fs::rename(&tmp, &p)
}

/// `down`: the drains go with what they drained.
pub fn forget(paths: &Paths, lab: &str) {
    let _ = std::fs::remove_file(path(paths, lab));
}

/// The plan as the drains leave it: a drained real server's destinations at weight 0, or gone
/// when removed. One note per drain that changed the plan.
pub fn overlay(plan: &mut HostPlan, state: &DrainState) -> Vec<String> {
    let mut notes = Vec::new();
    for (rs, d) in state {
        let mut touched = 0;
        for spec in plan.ipvs.iter_mut().filter(|s| d.services.contains(&s.ipvs.key())) {
            let before = spec.destinations.len();
            if d.removed {
                spec.destinations.retain(|x| x.host != *rs);
                touched += usize::from(spec.destinations.len() != before);
            } else {
                for x in spec.destinations.iter_mut().filter(|x| x.host == *rs) {
                    x.weight = 0;
                    touched += 1;
                }
            }
        }
        match keepalived_weight_zero(plan, rs, d) {
            Ok(n) => touched += n,
            Err(e) => notes.push(e),
        }
        if touched > 0 {
            let how = if d.removed { "drained and taken out" } else { "drained (weight 0)" };
            notes.push(format!(
                "kept {rs} {how} since {} in {}: `lvsctl undrain` gives it back",
                d.since_utc(),
                crate::plural(d.services.len(), "service")
            ));
        }
    }
    notes
}

/// A drained real server of the services keepalived runs here: keepalived owns their IPVS
/// entries, so its weight goes to 0 in keepalived's configuration — the parameter the template
/// defines for it (`$LVSCTL_WEIGHT_1_2=0`) — which the daemon kind then reloads. How many real
/// server entries it set; an error when the configuration has no such parameter.
fn keepalived_weight_zero(plan: &mut HostPlan, rs: &str, d: &Drained) -> Result<usize, String> {
    let Some(k) = plan.keepalived.as_mut() else { return Ok(0) };
    let mut touched = 0;
    let mut missing = Vec::new();
    let file = plan.files.iter_mut().find(|f| f.path == k.config);
    let mut lines: Option<Vec<String>> = file.as_ref().map(|f| f.content.lines().map(str::to_string).collect());
    for vs in k.virtual_servers.iter_mut().filter(|vs| d.services.contains(&vs.key())) {
        for r in vs.real_servers.iter_mut().filter(|r| r.host == rs) {
            r.weight = 0;
            let prefix = format!("${}=", r.weight_param);
            match lines.as_mut().and_then(|l| l.iter_mut().find(|l| l.starts_with(&prefix))) {
                Some(line) => {
                    *line = format!("{prefix}0");
                    touched += 1;
                }
                None => missing.push(format!("${}", r.weight_param)),
            }
        }
    }
    if let (Some(f), Some(lines)) = (file, lines) {
        let end = if f.content.ends_with('\n') { "\n" } else { "" };
        f.content = lines.join("\n") + end;
    }
    if missing.is_empty() {
        Ok(touched)
    } else {
        Err(format!(
            "cannot keep {rs} drained through keepalived: {} defines no {} (a keepalived.conf template of your own must \
             define each real server's weight as a parameter, as lvsctl's does)",
            k.config,
            missing.join(", ")
        ))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The services of `plan` that `rs` serves, or those of `wanted` (each must be one of them).
fn services_of(plan: &HostPlan, rs: &str, wanted: &[ServiceKey]) -> Result<Vec<ServiceKey>, Error> {
    let serves: Vec<ServiceKey> = dests_of(plan, rs, None).into_iter().fold(Vec::new(), |mut v, (k, _, _)| {
        if !v.contains(&k) {
            v.push(k);
        }
        v
    });
    if serves.is_empty() {
        return Err(Error::Request(format!("{rs} is a real server of no IPVS service lvsctl manages on this host")));
    }
    if let Some(k) = wanted.iter().find(|k| !serves.contains(k)) {
        return Err(Error::Request(format!("{rs} is not a real server of {k} on this host")));
    }
    Ok(if wanted.is_empty() { serves } else { wanted.to_vec() })
}

/// The IPVS destinations `rs` is in this host's plan (of `services`, or all), with their planned
/// weights: those lvsctl programs, and those of the services keepalived runs.
fn dests_of(
    plan: &HostPlan,
    rs: &str,
    services: Option<&[ServiceKey]>,
) -> Vec<(ServiceKey, crate::ipvs::DestKey, u32)> {
    let wanted = |k: &ServiceKey| services.is_none_or(|s| s.contains(k));
    let mut out = Vec::new();
    for spec in plan.ipvs.iter().filter(|s| wanted(&s.ipvs.key())) {
        for d in spec.destinations.iter().filter(|d| d.host == rs) {
            out.push((spec.ipvs.key(), crate::resource::ipvs_dest::key(d), d.weight));
        }
    }
    for vs in plan.keepalived.iter().flat_map(|k| &k.virtual_servers).filter(|vs| wanted(&vs.key())) {
        for r in vs.real_servers.iter().filter(|r| r.host == rs) {
            out.push((vs.key(), crate::ipvs::DestKey { addr: r.address, port: r.port }, r.weight));
        }
    }
    out
}

/// The real server's connections on this host: (active, inactive), over `services`.
fn connections<S: System>(sys: &mut S, plan: &HostPlan, rs: &str, services: &[ServiceKey]) -> io::Result<(u32, u32)> {
    let table = sys.ipvs_table()?;
    let (mut active, mut inactive) = (0, 0);
    for (svc, dest, _) in dests_of(plan, rs, Some(services)) {
        let live = table.iter().find(|t| t.entry.key == svc).and_then(|t| t.dests.iter().find(|x| x.key == dest));
        if let Some(l) = live {
            active += l.active_conns;
            inactive += l.inact_conns;
        }
    }
    Ok((active, inactive))
}

/// Waits (as `await_weight_zero`) until `rs`'s destinations in `services` have their planned
/// weights again; whether they have (keepalived keeps a real server whose check fails at 0, or
/// out of the table).
fn await_planned_weights<S: System>(sys: &mut S, plan: &HostPlan, rs: &str, services: &[ServiceKey]) -> bool {
    let want = dests_of(plan, rs, Some(services));
    let deadline = Instant::now() + KEEPALIVED_APPLY;
    loop {
        let Ok(table) = sys.ipvs_table() else { return false };
        let back = want.iter().all(|(svc, dest, w)| {
            table
                .iter()
                .find(|t| t.entry.key == *svc)
                .and_then(|t| t.dests.iter().find(|x| x.key == *dest))
                .is_some_and(|x| x.config.weight == *w)
        });
        if back {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long keepalived may take to apply a reloaded configuration to the IPVS table.
const KEEPALIVED_APPLY: Duration = Duration::from_secs(30);

/// Waits until no destination of `rs` in `services` takes new connections (weight 0, or out of
/// the table): at once for the entries lvsctl sets itself, after its reload for keepalived's.
fn await_weight_zero<S: System>(sys: &mut S, plan: &HostPlan, rs: &str, services: &[ServiceKey]) -> Result<(), Error> {
    let deadline = Instant::now() + KEEPALIVED_APPLY;
    let dests = dests_of(plan, rs, Some(services));
    loop {
        let table = sys.ipvs_table().map_err(Error::Ipvs)?;
        let taking: Vec<String> = dests
            .iter()
            .filter(|(svc, dest, _)| {
                table
                    .iter()
                    .find(|t| t.entry.key == *svc)
                    .and_then(|t| t.dests.iter().find(|x| x.key == *dest))
                    .is_some_and(|x| x.config.weight > 0)
            })
            .map(|(svc, dest, _)| format!("{dest} of {svc}"))
            .collect();
        if taking.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Request(format!(
                "{rs} still takes new connections here after {} s ({}): keepalived did not apply its weight 0 \
                 (see its log); it stays recorded as drained",
                KEEPALIVED_APPLY.as_secs(),
                taking.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Applies `plan` with the drains of this host, under the lab's lock.
fn apply_drained<S: System>(
    sys: &mut S,
    paths: &Paths,
    req: &Request,
    plan: &HostPlan,
    change: impl FnOnce(&mut DrainState),
    emit: &mut dyn FnMut(Event),
) -> Result<Report, Error> {
    let _lock = lock(paths, &req.lab, &req.host, emit)?;
    let dir = paths.lab_dir(&req.lab);
    if !Journal::exists(&dir) {
        return Err(Error::Request(format!(
            "lab {} is not up on this host (no journal): run `lvsctl up` first; nothing was changed",
            req.lab
        )));
    }
    let mut state = load(paths, &req.lab).map_err(Error::Journal)?;
    change(&mut state);
    save(paths, &req.lab, &state).map_err(Error::Journal)?;
    let mut plan = plan.clone();
    overlay(&mut plan, &state);
    let mut journal = Journal::open(&dir, &req.lab, &req.host, true).map_err(Error::Journal)?;
    journal.check(&req.lab, &paths.root).map_err(Error::Journal)?;
    let mut exec = Executor::new(sys, &mut journal, Intent::Apply, emit, &req.host);
    exec.apply(&plan, Scope::All);
    let mut report = exec.report;
    report.journal_entries = journal.len() as u32;
    Ok(report)
}

pub fn run<S: System>(
    sys: &mut S,
    paths: &Paths,
    req: &Request,
    plan: &HostPlan,
    d: &DrainRequest,
    emit: &mut dyn FnMut(Event),
) -> Result<Report, Error> {
    let rs = d.real_server.as_str();
    let services = services_of(plan, rs, &d.services)?;
    let by_keepalived: Vec<String> = plan
        .keepalived
        .iter()
        .flat_map(|k| &k.virtual_servers)
        .filter(|vs| services.contains(&vs.key()))
        .map(|vs| vs.label.clone())
        .collect();
    if d.remove && !by_keepalived.is_empty() {
        return Err(Error::Request(format!(
            "keepalived keeps every real server of {} in the table (at weight 0 when drained): --remove applies to \
             services lvsctl programs itself; nothing was changed",
            by_keepalived.join(", ")
        )));
    }
    let started = Instant::now();
    let progress = |phase: &str, (active, inactive): (u32, u32)| {
        Event::Drain(DrainProgress {
            real_server: rs.to_string(),
            phase: phase.to_string(),
            active,
            inactive,
            elapsed_ms: started.elapsed().as_millis() as u64,
            at_ms: now_ms(),
        })
    };
    if d.undrain {
        let mut was = false;
        let report = apply_drained(sys, paths, req, plan, |s| was = s.remove(rs).is_some(), emit)?;
        if !was {
            emit(Event::Note {
                message: format!("{rs} was not drained here: its weights are as planned"),
                live: false,
            });
        } else if report.failed == 0 && !await_planned_weights(sys, plan, rs, &services) {
            emit(Event::Note {
                message: format!(
                    "{rs}'s weights are not all as planned after {} s: keepalived keeps a real server whose check \
                     fails at weight 0 or out of the table (`lvsctl status` shows its health)",
                    KEEPALIVED_APPLY.as_secs()
                ),
                live: false,
            });
        }
        let counts = connections(sys, plan, rs, &services).unwrap_or((0, 0));
        let last = progress("undrained", counts);
        let mut report = report;
        if let Event::Drain(p) = &last {
            report.answer = Some(Answer::Drain(p.clone()));
        }
        emit(last);
        return Ok(report);
    }
    // A drain again keeps its first time.
    let mark = |removed: bool| {
        let services = services.clone();
        move |s: &mut DrainState| {
            let since = s.get(rs).map_or_else(now_secs, |x| x.since);
            s.insert(rs.to_string(), Drained { since, services, removed });
        }
    };
    let mut report = apply_drained(sys, paths, req, plan, mark(false), emit)?;
    if report.failed > 0 {
        return Ok(report);
    }
    await_weight_zero(sys, plan, rs, &services)?;
    let read = |sys: &mut S| connections(sys, plan, rs, &services).map_err(Error::Ipvs);
    let mut last = read(sys)?;
    emit(progress("weight-0", last));
    let deadline = started + Duration::from_secs(d.timeout_s);
    let done = |(a, i): (u32, u32)| a == 0 && (!d.wait_inactive || i == 0);
    let mut shown = Instant::now();
    while !done(last) {
        if Instant::now() >= deadline {
            let end = progress("timeout", last);
            if let Event::Drain(p) = &end {
                report.answer = Some(Answer::Drain(p.clone()));
            }
            emit(end);
            report.errors.push(format!(
                "{rs} still has {} active and {} inactive connection(s) here after {} s: it stays drained (weight 0); \
                 run drain again to wait longer, or `lvsctl undrain` to give its weight back",
                last.0, last.1, d.timeout_s
            ));
            return Ok(report);
        }
        std::thread::sleep(Duration::from_millis(250));
        let now = read(sys)?;
        // A line when the count waited for changes, and every 5 s.
        let moved = now.0 != last.0 || (d.wait_inactive && now.1 != last.1);
        if moved || shown.elapsed() >= Duration::from_secs(5) {
            emit(progress("waiting", now));
            shown = Instant::now();
        }
        last = now;
    }
    let mut end = progress("drained", last);
    emit(end.clone());
    if d.remove {
        let out = apply_drained(sys, paths, req, plan, mark(true), emit)?;
        report.changes += out.changes;
        report.failed += out.failed;
        report.unchanged = out.unchanged;
        report.journal_entries = out.journal_entries;
        end = progress("removed", last);
        emit(end.clone());
    }
    if let Event::Drain(p) = end {
        report.answer = Some(Answer::Drain(p));
    }
    Ok(report)
}
