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
        if touched > 0 {
            let how = if d.removed { "drained and taken out" } else { "drained (weight 0)" };
            notes.push(format!(
                "kept {rs} {how} since {} in {}: `lvsctl undrain` gives it back",
                utc(d.since),
                crate::plural(d.services.len(), "service")
            ));
        }
    }
    notes
}

/// `2026-12-04 18:06:00 UTC`.
pub fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The services of `plan` that `rs` serves, or those of `wanted` (each must be one of them).
fn services_of(plan: &HostPlan, rs: &str, wanted: &[ServiceKey]) -> Result<Vec<ServiceKey>, Error> {
    let serves: Vec<ServiceKey> =
        plan.ipvs.iter().filter(|s| s.destinations.iter().any(|d| d.host == rs)).map(|s| s.ipvs.key()).collect();
    if serves.is_empty() {
        return Err(Error::Request(format!("{rs} is a real server of no IPVS service lvsctl manages on this host")));
    }
    if let Some(k) = wanted.iter().find(|k| !serves.contains(k)) {
        return Err(Error::Request(format!("{rs} is not a real server of {k} on this host")));
    }
    Ok(if wanted.is_empty() { serves } else { wanted.to_vec() })
}

/// The real server's connections on this host: (active, inactive), over `services`.
fn connections<S: System>(sys: &mut S, plan: &HostPlan, rs: &str, services: &[ServiceKey]) -> io::Result<(u32, u32)> {
    let table = sys.ipvs_table()?;
    let (mut active, mut inactive) = (0, 0);
    for spec in plan.ipvs.iter().filter(|s| services.contains(&s.ipvs.key())) {
        let Some(live) = table.iter().find(|t| t.entry.key == spec.ipvs.key()) else { continue };
        for d in spec.destinations.iter().filter(|d| d.host == rs) {
            let key = crate::resource::ipvs_dest::key(d);
            if let Some(l) = live.dests.iter().find(|x| x.key == key) {
                active += l.active_conns;
                inactive += l.inact_conns;
            }
        }
    }
    Ok((active, inactive))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_407_560), "2026-12-04 18:06:00 UTC");
    }
}
