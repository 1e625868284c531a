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

/// The five counters of each real server, in ipvsadm's `--stats` order.
const COUNTERS: [&str; 5] = [
    "lvs_real_server_connections_total",
    "lvs_real_server_packets_in_total",
    "lvs_real_server_packets_out_total",
    "lvs_real_server_bytes_in_total",
    "lvs_real_server_bytes_out_total",
];

/// `promtool check metrics` accepts `text`.
fn promtool_accepts(text: &str) {
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
}

/// `[2001:db8::1]:80` or `10.0.0.1:80` → (address, port).
fn endpoint(s: &str) -> (String, String) {
    let (a, p) = s.rsplit_once(':').unwrap_or_else(|| panic!("{s}: no port"));
    (a.trim_start_matches('[').trim_end_matches(']').to_string(), p.to_string())
}

/// A director's table once its counters have caught up with the traffic before: the 6.1 kernel
/// sums its per-CPU counters in its estimator, every two seconds (later in a loaded guest), so
/// requests answered just before can still be counted after. CI once saw the last two requests
/// of a verify counted between the metrics' "before" and "after". Two readings 2.5 s apart that
/// agree are settled; the scenario sends nothing meanwhile.
fn settled(l: &Lab, director: &str) -> Counted {
    let mut last = ipvsadm(l, director);
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let now = ipvsadm(l, director);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("{director}'s IPVS counters still moved after 15 s without traffic: {last:?}");
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
    let before: Vec<Counted> = directors.iter().map(|d| settled(l, d)).collect();
    let (text, execs) = l.counted(&["metrics"]);
    let after: Vec<Counted> = directors.iter().map(|d| ipvsadm(l, d)).collect();
    assert_eq!(before, after, "no traffic while the metrics were read");
    let want: BTreeMap<String, usize> =
        l.hosts().into_iter().map(|h| (h.clone(), usize::from(directors.contains(&h)))).collect();
    assert_eq!(execs, want, "ssh execs per host of metrics");
    promtool_accepts(&text);
    let names = COUNTERS;
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

/// Where scripts/setup.sh unpacks the Prometheus server (Debian's package, not installed).
pub const PROMETHEUS: &str = "/var/cache/lvsctl-tests/prometheus/usr/bin/prometheus";

/// A real Prometheus scraping every director's exporter every two seconds, run in the lab's control
/// namespace (where lvsctl's own ssh connections start: it reaches the directors' SSH addresses,
/// and this machine's namespace gets nothing), stopped by its pid when dropped.
pub struct Prometheus {
    child: std::process::Child,
    _data: tempfile::TempDir,
    web: std::net::SocketAddr,
    netns: std::path::PathBuf,
    pub targets: Vec<(String, std::net::SocketAddr)>,
}

/// Runs `f` on a thread of its own inside the network namespace at `netns`.
pub fn in_netns<T: Send + 'static>(netns: &std::path::Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(netns).unwrap_or_else(|e| panic!("{}: {e}", netns.display()));
    std::thread::spawn(move || {
        use std::os::unix::io::AsRawFd;
        // SAFETY: setns on this thread only, with a namespace file kept open for the call.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("a thread in the lab's namespace")
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Labels and value of one sample of a query's answer.
pub type Found = Vec<(BTreeMap<String, String>, f64)>;

/// `s` for a URL's query string.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One HTTP/1.0 exchange: the status and the body.
pub fn http(to: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

impl Prometheus {
    /// Starts it when some director serves metrics (`[metrics]` or `metrics_listen`).
    pub fn start(l: &Lab) -> Option<Prometheus> {
        let targets: Vec<(String, std::net::SocketAddr)> =
            l.lab.directors().filter_map(|d| l.lab.metrics_listen(d).map(|a| (d.name.clone(), a))).collect();
        if targets.is_empty() {
            return None;
        }
        let data = tempfile::tempdir().unwrap();
        let list: Vec<String> = targets.iter().map(|(_, a)| format!("\"{a}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\nscrape_configs:\n  - job_name: lvsctl\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(data.path().join("prometheus.yml"), config).unwrap();
        // The control namespace holds nothing else that listens.
        let web: std::net::SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let netns = lvsctl::lab::control_netns(&l.lab.name);
        let name = netns.file_name().unwrap().to_string_lossy().into_owned();
        let child = Command::new("ip")
            .args(["netns", "exec", &name, PROMETHEUS])
            .arg(format!("--config.file={}", data.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", data.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={web}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus (scripts/setup.sh unpacks it)");
        let p = Prometheus { child, _data: data, web, netns, targets };
        p.wait("every director scraped", 120, |p| {
            p.query("up").len() == p.targets.len() && p.query("up").iter().all(|(_, v)| *v == 1.0)
        });
        Some(p)
    }

    /// An instant query's samples; none while Prometheus is not answering yet.
    pub fn query(&self, q: &str) -> Found {
        let req = format!("GET /api/v1/query?query={} HTTP/1.0\r\nHost: {}\r\n\r\n", url_encode(q), self.web);
        let web = self.web;
        let out = in_netns(&self.netns, move || {
            let Ok(mut s) = std::net::TcpStream::connect(web) else { return String::new() };
            drop(s.write_all(req.as_bytes()));
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut out);
            out
        });
        let Some((_, body)) = out.split_once("\r\n\r\n") else { return vec![] };
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(body) else { return vec![] };
        let empty = vec![];
        doc["data"]["result"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default();
                let value = r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }

    pub fn wait(&self, what: &str, secs: u64, mut f: impl FnMut(&Prometheus) -> bool) {
        let started = std::time::Instant::now();
        while !f(self) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(secs),
                "prometheus: {what}: not within {secs} s"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// Waits for two more scrapes of every director than now: what it answers after is what the
    /// hosts held after this call.
    pub fn fresh(&self) {
        let count =
            |p: &Prometheus| -> f64 { p.query("sum(count_over_time(up[1h]))").first().map(|(_, v)| *v).unwrap_or(0.0) };
        let now = count(self);
        let want = now + 2.0 * self.targets.len() as f64;
        self.wait("two more scrapes", 60, |p| count(p) >= want);
    }
}

/// The first scraped counter that differs from the kernel's count, if any.
fn mismatch(l: &Lab, p: &Prometheus, kernel: &[(String, Counted)]) -> Option<String> {
    let names = COUNTERS;
    let mut compared = 0;
    for (i, name) in names.iter().enumerate() {
        let found = p.query(name);
        for (d, table) in kernel {
            for ((protocol, vip, port), dests) in table {
                for ((addr, rport), counts) in dests {
                    let hit = found.iter().find(|(l, _)| {
                        l.get("director") == Some(d)
                            && l.get("protocol") == Some(protocol)
                            && l.get("vip").map(String::as_str).unwrap_or("") == vip
                            && l.get("port") == Some(port)
                            && l.get("address") == Some(addr)
                            && l.get("real_port") == Some(rport)
                    });
                    let Some((labels, value)) = hit else {
                        return Some(format!("{d}: no {name} of {protocol} {vip}:{port} -> {addr}:{rport}"));
                    };
                    if *value != counts[i] as f64 {
                        return Some(format!(
                            "{d}: {name} of {labels:?} scraped as {value}, ipvsadm says {}",
                            counts[i]
                        ));
                    }
                    assert!(labels.get("real_server").is_some_and(|h| l.lab.host(h).is_some()), "{labels:?}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 0, "ipvsadm showed real servers to compare");
    None
}

/// What Prometheus scraped from every director equals the kernel's count: each real server's five
/// counters as `ipvsadm -Ln --stats --exact` shows them, read once traffic has stopped and the
/// counters have settled, with the scrapes taken after that read. Firewall-mark services too.
pub fn scraped_equal_ipvsadm(l: &Lab, p: &Prometheus) {
    let kernel: Vec<(String, Counted)> = p.targets.iter().map(|(d, _)| (d.clone(), settled(l, d))).collect();
    p.fresh();
    // A scrape that timed out on a loaded machine leaves the series stale for a moment: what
    // Prometheus answers must come to equal the kernel's count (which does not move).
    let mut last = String::new();
    let started = std::time::Instant::now();
    loop {
        match mismatch(l, p, &kernel) {
            None => break,
            Some(m) if started.elapsed() < std::time::Duration::from_secs(60) => {
                last = m;
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            Some(m) => panic!("scraped counters never equalled ipvsadm's within 60 s: {m} (before: {last})"),
        }
    }
    // lvsctl's own, as `status` sees the directors: applied, nothing drifted.
    // (The drift count is taken apart from the scrapes, every 15 s: the first one may be older.)
    for (d, _) in &p.targets {
        for (name, want) in [("lvsctl_plan_applied", 1.0), ("lvsctl_drift_objects", 0.0)] {
            let q = format!("{name}{{director=\"{d}\"}}");
            p.wait(&format!("{d}: {name} scraped as {want}"), 60, |p| {
                let got = p.query(&q);
                got.len() == 1 && got[0].1 == want
            });
        }
    }
    if l.lab.services.iter().any(|s| s.ipvs.fwmark.is_some()) {
        let marks = p.query("lvs_service_connections_total{protocol=~\"fwmark6?\"}");
        assert!(!marks.is_empty(), "firewall-mark services are scraped");
    }
}

/// The endpoint as a client sees it: the exposition promtool accepts, and every request that is
/// not `GET /metrics` refused without a scrape.
pub fn endpoint_answers_only_get_metrics(l: &Lab, listen: std::net::SocketAddr) {
    let netns = lvsctl::lab::control_netns(&l.lab.name);
    let http = |request: &[u8]| {
        let request = request.to_vec();
        in_netns(&netns, move || http(listen, &request))
    };
    let (status, body) = http(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    promtool_accepts(&body);
    assert!(body.contains("lvs_real_server_connections_total{"), "{body}");
    for (request, want) in [
        (&b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..], 405),
        (b"DELETE /metrics HTTP/1.0\r\n\r\n", 405),
        (b"GET / HTTP/1.0\r\n\r\n", 404),
        (b"GET /metrics/../journal HTTP/1.0\r\n\r\n", 404),
    ] {
        assert_eq!(http(request).0, want, "{}", String::from_utf8_lossy(request));
    }
    let mut huge = b"GET /metrics HTTP/1.0\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 9000));
    assert_eq!(http(&huge).0, 431, "a request head over 8 KiB");
}
