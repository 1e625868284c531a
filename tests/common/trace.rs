//! `lvsctl trace` against a capture the test takes itself: tcpdump on every interface of every
//! lab host while the trace runs, then every hop trace names must be a packet tcpdump saw there
//! (same interface, same direction, same addresses), and every host and interface where tcpdump
//! saw the probe's packets must be a hop of trace's walk.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use super::lab::{Lab, text};

/// (host, interface, "in" | "out")
type Where = (String, String, String);

/// tcpdump's spelling of an endpoint: `10.0.0.1.80`, `2001:db8::1.80`.
fn dotted(endpoint: &str) -> String {
    let sa: std::net::SocketAddr = endpoint.parse().unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    format!("{}.{}", sa.ip(), sa.port())
}

/// Starts tcpdump on every interface of every host (never the SSH management traffic), all hosts
/// at once, each returning once its tcpdump writes: (host, pid, file).
fn start(l: &Lab, tag: &str, skip: &[&str]) -> Vec<(String, String, String)> {
    let hosts: Vec<String> = l.hosts().into_iter().filter(|h| !skip.contains(&h.as_str())).collect();
    std::thread::scope(|s| {
        let running: Vec<_> = hosts
            .iter()
            .map(|h| {
                s.spawn(move || {
                    // The host's own /tmp (each lab host has a private one).
                    let file = format!("/tmp/lvsctl-test-{tag}.pcap");
                    let pid = l.sh(
                        h,
                        &format!(
                            "rm -f {file}; tcpdump -Z root -i any -nn -U -s 256 -w {file} 'not tcp port 22' \
                             >/dev/null 2>&1 & p=$!; i=0; while [ ! -s {file} ] && [ $i -lt 100 ]; do sleep 0.1; \
                             i=$((i+1)); done; [ -s {file} ] && echo $p"
                        ),
                    );
                    let pid = pid.trim().to_string();
                    assert!(!pid.is_empty(), "{h}: tcpdump did not start writing {file}");
                    (h.clone(), pid, file)
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().expect("tcpdump started")).collect()
    })
}

/// Stops each tcpdump (by its PID) and reads back what it saw of the client port: request and
/// reply sightings as (host, interface, direction), with the line.
fn stop(
    l: &Lab,
    running: Vec<(String, String, String)>,
    port: u16,
) -> (BTreeMap<Where, String>, BTreeMap<Where, String>) {
    let gue_ports: Vec<u16> = l
        .lab
        .services
        .iter()
        .filter(|s| s.encap.tun_type == lvsctl::ipvs::TunType::Gue)
        .map(|s| s.encap.port)
        .collect();
    // -U wrote every packet as it came; give the last ones a moment, then end them all.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let read: Vec<(String, String)> = std::thread::scope(|s| {
        let t: Vec<_> = running
            .iter()
            .map(|(h, pid, file)| {
                s.spawn(move || {
                    let lines = l.sh(
                        h,
                        &format!(
                            "kill {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.1; done; \
                             tcpdump -nn -r {file} 2>/dev/null; rm -f {file}"
                        ),
                    );
                    (h.clone(), lines)
                })
            })
            .collect();
        t.into_iter().map(|t| t.join().expect("tcpdump read")).collect()
    });
    let (mut req, mut rep) = (BTreeMap::new(), BTreeMap::new());
    for (h, lines) in read {
        for line in lines.lines() {
            // `TIME IFACE DIR IP ...` for captures on `any` (Linux cooked v2); P (another host's
            // frame), B and M are not hops.
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() < 4 || !matches!(w[2], "In" | "Out") {
                continue;
            }
            let key = (h.clone(), w[1].to_string(), w[2].to_lowercase());
            // GUE is UDP to the lab's GUE port, which tcpdump does not open: the outer header is
            // all it shows of the request there (the hop check compares that).
            let gue = gue_ports.iter().any(|g| line.contains(&format!(".{g}: UDP")));
            if line.contains(&format!(".{port} >")) || gue {
                req.entry(key).or_insert_with(|| line.to_string());
            } else if line.contains(&format!(".{port}:")) {
                rep.entry(key).or_insert_with(|| line.to_string());
            }
        }
    }
    (req, rep)
}

/// Runs `lvsctl trace ARGS --output json` with tcpdump beside it on every host (but the
/// `stopped` ones); checks the JSON against its schema, one exec per host, and each walk against
/// tcpdump's packets. Returns the document.
pub fn trace_as_tcpdump_sees_it(l: &Lab, args: &[&str], want_ok: bool, stopped: &[&str]) -> serde_json::Value {
    let running = start(l, "trace", stopped);
    let before = l.ssh_execs();
    let mut argv = vec!["trace", "--output", "json"];
    argv.extend_from_slice(args);
    let out: Output = l.lvsctl(&argv);
    let after = l.ssh_execs();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("trace --output json is not JSON ({e}):\n{}", text(&out)));
    let port = doc["client_port"].as_u64().expect("client_port") as u16;
    let (req, rep) = stop(l, running, port);
    super::schema::assert_valid(&super::lab::lvsctl_bin(), "trace", &doc);
    let execs: BTreeMap<String, usize> = after.iter().map(|(h, n)| (h.clone(), n - before[h])).collect();
    let once: BTreeMap<String, usize> =
        l.hosts().into_iter().map(|h| (h.clone(), usize::from(!stopped.contains(&h.as_str())))).collect();
    assert_eq!(execs, once, "ssh execs per host of trace");
    let code = out.status.code();
    if want_ok {
        assert_eq!(code, Some(0), "trace {args:?}:\n{}", text(&out));
        assert_eq!(doc["ok"], true, "{doc:#}");
        assert!(doc["departures"].as_array().is_some_and(|d| d.is_empty()), "{doc:#}");
        assert!(doc["answered_by"].is_string(), "{doc:#}");
    } else {
        assert_eq!(code, Some(6), "trace {args:?} departs:\n{}", text(&out));
        assert_eq!(doc["ok"], false, "{doc:#}");
    }
    for (walk, seen) in [("request", &req), ("reply", &rep)] {
        let hops = doc[walk].as_array().unwrap_or_else(|| panic!("{walk}: {doc:#}"));
        assert!(!hops.is_empty(), "the {walk} has hops: {doc:#}");
        let mut named: BTreeSet<Where> = BTreeSet::new();
        for hop in hops {
            let s = |k: &str| hop[k].as_str().unwrap_or_else(|| panic!("{k} of {hop}")).to_string();
            let key = (s("host"), s("interface"), s("direction"));
            let line = seen.get(&key).unwrap_or_else(|| {
                panic!("trace's {walk} hop {key:?} is not in tcpdump's capture there: {seen:#?}\n{doc:#}")
            });
            let pair = format!("{} > {}", dotted(&s("src")), dotted(&s("dst")));
            let gue = hop["outer"].as_str().is_some_and(|o| o.ends_with("(gue)"));
            assert!(gue || line.contains(&pair), "{walk} hop {key:?}: trace says {pair}, tcpdump saw: {line}");
            if let Some(outer) = hop["outer"].as_str() {
                let (a, rest) = outer.split_once(" > ").expect("outer: A > B (kind)");
                let b = rest.split(' ').next().unwrap();
                // tcpdump writes GUE's outer header with its UDP ports: `A.PORT > B.6080`.
                let seen = line.contains(&format!("{a} > {b}"))
                    || (gue && line.contains(&format!(" {a}.")) && line.contains(&format!("> {b}.")));
                assert!(seen, "{walk} hop {key:?}: outer {outer}, tcpdump: {line}");
            }
            named.insert(key);
        }
        let unnamed: Vec<&Where> = seen.keys().filter(|k| !named.contains(*k)).collect();
        assert!(unnamed.is_empty(), "tcpdump saw the {walk} where trace has no hop: {unnamed:?}\n{doc:#}");
    }
    doc
}

/// The host of the walk's director hop (the request's), if any.
pub fn director_of(doc: &serde_json::Value) -> Option<String> {
    doc["request"]
        .as_array()?
        .iter()
        .find(|h| h["role"] == "director")
        .and_then(|h| h["host"].as_str())
        .map(String::from)
}

/// One trace per service and family (each of its VIPs' first port), as `trace` arguments; SCTP
/// services are left out (see the README: an IPv6 DR real server answers an SCTP INIT from its
/// own address, which trace reports as a departure).
pub fn targets(lab: &lvsctl::inventory::Lab) -> Vec<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for u in lvsctl::judge::probe_units(lab) {
        if u.ipvs.protocol == lvsctl::ipvs::Protocol::Sctp || !seen.insert((u.index, u.ipvs.vip)) {
            continue;
        }
        let mut args = vec!["--vip".into(), u.ipvs.vip.to_string(), "--port".into(), u.ipvs.port.to_string()];
        if let Some(n) = &u.name {
            args.extend(["--service".into(), n.clone()]);
        }
        out.push(args);
    }
    out
}
