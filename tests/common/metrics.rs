//! `lvsctl metrics` against the kernel's own count: `ipvsadm -Ln --stats --exact` on each
//! director, read before and after (no traffic between them), must equal every real server's
//! counters in the exposition, which `promtool check metrics` accepts.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use super::lab::Lab;

/// Where scripts/setup.sh unpacks Prometheus's tools.
pub const PROMTOOL: &str = "/var/cache/lvsctl-tests/prometheus/usr/bin/promtool";

/// (service as the exposition labels it: protocol, vip, port) → (address, port) → the five
/// counters ipvsadm shows (conns, inpkts, outpkts, inbytes, outbytes).
type Counted = BTreeMap<(String, String, String), BTreeMap<(String, String), [u64; 5]>>;

/// `[2001:db8::1]:80` or `10.0.0.1:80` → (address, port).
fn endpoint(s: &str) -> (String, String) {
    let (a, p) = s.rsplit_once(':').unwrap_or_else(|| panic!("{s}: no port"));
    (a.trim_start_matches('[').trim_end_matches(']').to_string(), p.to_string())
}

/// ipvsadm's `--stats --exact` table of a director.
fn ipvsadm(l: &Lab, director: &str) -> Counted {
    let text = l.run(director, &["ipvsadm", "-Ln", "--stats", "--exact"]);
    let mut out = Counted::new();
    let mut current = None;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let nums = |from: usize| -> [u64; 5] {
            let v: Vec<u64> = w[from..from + 5].iter().map(|n| n.parse().unwrap()).collect();
            [v[0], v[1], v[2], v[3], v[4]]
        };
        match w.first().copied() {
            Some("TCP" | "UDP" | "SCTP") if w.len() >= 7 => {
                let (vip, port) = endpoint(w[1]);
                let key = (w[0].to_lowercase(), vip, port);
                out.entry(key.clone()).or_default();
                current = Some(key);
            }
            // `FWM  10 …`; an IPv6 mark service says IPv6 after its mark.
            Some("FWM") => {
                let v6 = w.get(2) == Some(&"IPv6");
                let key = (if v6 { "fwmark6" } else { "fwmark" }.to_string(), String::new(), w[1].to_string());
                out.entry(key.clone()).or_default();
                current = Some(key);
            }
            Some("->") if w.len() >= 7 && current.is_some() => {
                let n = nums(2);
                out.get_mut(current.as_ref().unwrap()).unwrap().insert(endpoint(w[1]), n);
            }
            _ => {}
        }
    }
    out
}

/// A sample's labels and value from an exposition line.
fn sample(line: &str) -> Option<(String, BTreeMap<String, String>, String)> {
    let (name_labels, value) = line.rsplit_once(' ')?;
    let (name, labels) = match name_labels.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (name_labels, ""),
    };
    let mut m = BTreeMap::new();
    // Label values here hold no `",` of their own (names and addresses).
    for pair in labels.split("\",").filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once("=\"")?;
        m.insert(k.to_string(), v.trim_end_matches('"').to_string());
    }
    Some((name.to_string(), m, value.to_string()))
}

/// Runs `lvsctl metrics`: one exec per director and none elsewhere, promtool accepts it, and
/// each real server's counters equal ipvsadm's. Returns the exposition.
pub fn metrics_equal_ipvsadm(l: &Lab) -> String {
    let directors: Vec<String> = l.lab.directors().map(|d| d.name.clone()).collect();
    let before: Vec<Counted> = directors.iter().map(|d| ipvsadm(l, d)).collect();
    let (text, execs) = l.counted(&["metrics"]);
    let after: Vec<Counted> = directors.iter().map(|d| ipvsadm(l, d)).collect();
    assert_eq!(before, after, "no traffic while the metrics were read");
    let want: BTreeMap<String, usize> =
        l.hosts().into_iter().map(|h| (h.clone(), usize::from(directors.contains(&h)))).collect();
    assert_eq!(execs, want, "ssh execs per host of metrics");
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/setup.sh unpacks it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = child.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let names = [
        "lvs_real_server_connections_total",
        "lvs_real_server_packets_in_total",
        "lvs_real_server_packets_out_total",
        "lvs_real_server_bytes_in_total",
        "lvs_real_server_bytes_out_total",
    ];
    let mut compared = 0;
    for (d, table) in directors.iter().zip(&after) {
        for ((protocol, vip, port), dests) in table {
            for ((addr, rport), counts) in dests {
                for (i, name) in names.iter().enumerate() {
                    let found = text.lines().filter_map(sample).find(|(n, l, _)| {
                        n == name
                            && l.get("director") == Some(d)
                            && l.get("protocol") == Some(protocol)
                            && l.get("vip") == Some(vip)
                            && l.get("port") == Some(port)
                            && l.get("address") == Some(addr)
                            && l.get("real_port") == Some(rport)
                    });
                    let (_, labels, value) = found.unwrap_or_else(|| {
                        panic!("{d}: no {name} for {protocol} {vip}:{port} -> {addr}:{rport} in:\n{text}")
                    });
                    assert_eq!(value, counts[i].to_string(), "{d}: {name} of {labels:?}");
                    let host = labels.get("real_server").unwrap();
                    // The kernel's rate estimate of the same real server is there too.
                    let rate = name.replace("_total", "_per_second");
                    assert!(
                        text.lines().filter_map(sample).any(|(n, l, _)| n == rate && l == labels),
                        "{d}: no {rate} beside {name} of {labels:?}"
                    );
                    assert!(l.lab.host(host).is_some(), "{d}: {addr} is named by its inventory host: {labels:?}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 0, "ipvsadm showed real servers to compare:\n{text}");
    text
}
