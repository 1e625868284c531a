//! What keepalived is doing on a director, for `status` and `doctor`: whether it runs, and the
//! state of each VRRP instance as keepalived reports it (its JSON dump, written on the signal
//! `keepalived --signum=JSON` names), or — when it cannot report — as the host shows it (an
//! instance whose addresses the host holds is master).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::host::System;
use crate::plan::keepalived::KeepalivedSpec;
use crate::resource::daemon;

/// Where keepalived writes its JSON dump (its tmp directory).
const JSON_DUMP: &str = "/tmp/keepalived.json";
/// How long keepalived may take to write it.
const DUMP_WAIT: Duration = Duration::from_secs(3);

pub use crate::wire::ha::*;

/// Reads keepalived's state on this host.
pub fn status<S: System>(
    sys: &mut S,
    spec: &KeepalivedSpec,
    lab: &str,
    test_config: bool,
) -> std::io::Result<KeepalivedStatus> {
    let f = daemon::read(sys, &spec.config)?;
    let addrs = sys.addresses()?;
    let holds = |i: &crate::plan::keepalived::VrrpInstance| -> Vec<String> {
        i.addresses
            .iter()
            .filter(|a| addrs.iter().any(|x| x.address.addr() == a.address.addr()))
            .map(|a| a.address.addr().to_string())
            .collect()
    };
    let reported = match (&f.running, &f.program) {
        (Some(p), Some(prog)) if !spec.instances.is_empty() => dump(sys, prog, p.pid),
        _ => None,
    };
    let source = if reported.is_some() { "keepalived" } else { "addresses" };
    let instances = spec
        .instances
        .iter()
        .map(|i| {
            let held = holds(i);
            let state = if f.running.is_none() {
                VrrpState::Stopped
            } else if let Some(s) = reported.as_ref().and_then(|r| r.get(&i.name)) {
                *s
            } else if !held.is_empty() && held.len() == i.addresses.len() {
                VrrpState::Master
            } else {
                VrrpState::Backup
            };
            VrrpStatus { instance: i.name.clone(), state, holds: held }
        })
        .collect();
    let log = match sys.read_file(&daemon::log_path(lab))? {
        Some(l) => {
            let text = String::from_utf8_lossy(&l.content).into_owned();
            let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
            lines[lines.len().saturating_sub(20)..].to_vec()
        }
        None => vec![],
    };
    let sync = if sys.ipvs_loaded() { sys.ipvs_daemons().unwrap_or_default() } else { vec![] };
    let config_error = match (&f.program, &f.config_sha256) {
        (Some(prog), Some(_)) if test_config => sys
            .output(&[prog, "-t", "-f", &spec.config])
            .err()
            .map(|e| e.to_string().trim_start_matches(&format!("{prog}: ")).to_string()),
        (_, None) if test_config => Some(format!("{} is missing", spec.config)),
        _ => None,
    };
    Ok(KeepalivedStatus { running: f.running, instances, source: source.into(), log, sync, config_error })
}

/// keepalived's own view: it writes the state of every instance to its JSON dump on a signal
/// whose number it tells (`--signum=JSON`; none when it was built without JSON support).
fn dump<S: System>(sys: &mut S, program: &str, pid: u32) -> Option<BTreeMap<String, VrrpState>> {
    // Asked once per program and process: the exporter reads it at every scrape.
    static SIGNUMS: std::sync::Mutex<BTreeMap<String, i32>> = std::sync::Mutex::new(BTreeMap::new());
    let known = SIGNUMS.lock().ok().and_then(|m| m.get(program).copied());
    let signum = match known {
        Some(n) => n,
        None => {
            let n: i32 = sys.output(&[program, "--signum=JSON"]).ok()?.trim().parse().ok()?;
            if let Ok(mut m) = SIGNUMS.lock() {
                m.insert(program.to_string(), n);
            }
            n
        }
    };
    let asked = SystemTime::now();
    sys.signal(pid, signum).ok()?;
    let started = std::time::Instant::now();
    loop {
        // A dump written after the signal (mtimes can lag the clock by a tick: allow a second).
        let fresh =
            sys.modified(JSON_DUMP).ok().flatten().is_some_and(|m| {
                m + Duration::from_secs(1) >= asked && m <= SystemTime::now() + Duration::from_secs(1)
            });
        if fresh && let Some(states) = parse_dump(&sys.read_file(JSON_DUMP).ok()??.content) {
            return Some(states);
        }
        if started.elapsed() > DUMP_WAIT {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `[{"data": {"iname": NAME, "state": N, …}, "stats": {…}}, …]`
pub fn parse_dump(bytes: &[u8]) -> Option<BTreeMap<String, VrrpState>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut out = BTreeMap::new();
    for i in v.as_array()? {
        let d = i.get("data")?;
        let name = d.get("iname")?.as_str()?.to_string();
        let state = VrrpState::from_keepalived(d.get("state")?.as_i64()?)?;
        out.insert(name, state);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_dumps_read_as_states() {
        // As keepalived 2.2.7 writes it (shortened).
        let dump = br#"[{"data":{"iname":"dr-ha-eth0","vrid":51,"state":2,"wantstate":2,"vips":["192.168.188.100 dev eth0 scope global set"]},"stats":{"advert_sent":12}},
                        {"data":{"iname":"dr-ha-eth1","state":1},"stats":{}}]"#;
        let m = parse_dump(dump).unwrap();
        assert_eq!(m["dr-ha-eth0"], VrrpState::Master);
        assert_eq!(m["dr-ha-eth1"], VrrpState::Backup);
        assert!(parse_dump(b"[{\"data\":{}}]").is_none());
        assert!(parse_dump(b"half a dump [{").is_none());
    }
}
