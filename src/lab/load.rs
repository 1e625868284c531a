//! `lvsctl lab load`: a bounded HTTP load against a service, from wherever it runs (a lab client,
//! through `lab exec`): many short requests at once and a few slow downloads (the responder's
//! `/slow/N`), every answer checked whole and attributed to the real server that sent it. Each
//! slow worker starts its next download when one ends, so that slow connections are open at any
//! moment of the load (a drain, whenever it sets the weight to 0, has some to wait for). It stops
//! by itself: at the deadline the short-request workers finish the request they are in, and a
//! slow download still arriving is cut there and reported as cut (neither whole nor failed), so
//! that the load lasts what it was asked to. SIGTERM or SIGINT end it the same way before the
//! deadline (the report is still printed), so that a caller can keep it running exactly as long
//! as what it measures takes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The bounds of a load: it must end, and stay small.
pub const MAX_SECONDS: u64 = 600;
pub const MAX_WORKERS: usize = 64;
pub const MAX_SLOW: usize = 16;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub to: SocketAddr,
    pub seconds: u64,
    /// Workers sending short requests, one after the other each.
    pub concurrency: usize,
    /// Slow-download workers: each downloads `slow_bytes`, then the next, until the deadline.
    pub slow: usize,
    pub slow_bytes: usize,
    /// How long one request may take (a slow download: this plus its pacing).
    pub timeout: Duration,
    /// At most this many short requests per second, all workers together.
    pub rate: Option<u64>,
}

/// One answered short request: when it started (ms since the epoch) and who answered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Answered {
    pub started_ms: u64,
    pub server: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlowDownload {
    pub server: Option<String>,
    pub bytes: usize,
    /// The whole answer arrived.
    pub ok: bool,
    /// The load ended (its deadline, SIGTERM) while this download was still arriving: not a
    /// failure, and not whole either (`bytes` is what had arrived).
    pub cut: bool,
    /// When it started and ended, ms since the epoch (the client's clock).
    pub started_ms: u64,
    pub ended_ms: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub to: String,
    pub short_ok: usize,
    pub short_failed: usize,
    pub by_server: BTreeMap<String, usize>,
    pub slow: Vec<SlowDownload>,
    /// The first failures, with what failed.
    pub failures: Vec<String>,
    /// Every answered short request, in the order they started.
    pub answered: Vec<Answered>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One GET: the answering server's name and the body's size, checked against Content-Length.
/// The load's source ports: below the kernel's ephemeral range (32768-60999), so that what the
/// same host connects later (a test's requests, a user's curl) never takes a port whose old entry
/// a director still keeps — a DR or TUN director keeps a closed connection for its tcp_fin timeout
/// and sends a new connection on that port where the entry points (to a real server drained in
/// between, or past a persistence template). 22,000 ports: at 40 requests a second the load
/// comes back to a port after nine minutes, long after its own entries expired.
const SOURCE_PORTS: std::ops::Range<u32> = 10_000..32_000;

/// The next source port's index in `SOURCE_PORTS` (starting where the process id says, so that
/// two loads one after the other do not start on the same ports).
static NEXT_PORT: AtomicU32 = AtomicU32::new(u32::MAX);

fn connect(to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let span = SOURCE_PORTS.end - SOURCE_PORTS.start;
    let _ = NEXT_PORT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let mut last = None;
    for _ in 0..64 {
        let port = (SOURCE_PORTS.start + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        let sock = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
        let local = SocketAddr::new(
            if to.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() },
            port,
        );
        // A port still in use here (or its connection to `to` in TIME_WAIT): the next one.
        let tried = sock.bind(&local.into()).and_then(|()| sock.connect_timeout(&to.into(), timeout));
        match tried {
            Ok(()) => return Ok(sock.into()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable) => {
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

/// Why a GET brought no whole answer.
#[derive(Debug, PartialEq, Eq)]
enum Unanswered {
    Failed(String),
    /// `stop` said so while the answer was arriving: the server's name if it had come, and the
    /// body's bytes so far.
    Cut(Option<String>, usize),
}

/// How often a read that waits for bytes looks at `stop`.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// One GET, ended early when `stop` says so; `timeout` bounds the connect, the send, and each
/// wait for the next bytes.
fn get_until(
    to: SocketAddr,
    path: &str,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> Result<(String, usize), Unanswered> {
    let failed = Unanswered::Failed;
    let mut s = connect(to, timeout).map_err(|e| failed(format!("connect: {e}")))?;
    s.set_read_timeout(Some(STOP_CHECK.min(timeout))).map_err(|e| failed(e.to_string()))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| failed(e.to_string()))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).map_err(|e| failed(format!("send: {e}")))?;
    let mut all = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let mut last = Instant::now();
    loop {
        // Bytes that keep coming never time a read out: `stop` is asked after each read.
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                all.extend_from_slice(&buf[..n]);
                last = Instant::now();
                if stop() {
                    return cut_short(&all);
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if stop() {
                    return cut_short(&all);
                }
                if last.elapsed() >= timeout {
                    return Err(failed(format!("receive after {} bytes: nothing for {timeout:?}", all.len())));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(format!("receive after {} bytes: {e}", all.len()))),
        }
    }
    parse_answer(&all).map_err(failed)
}

/// What had arrived of an answer when it was cut: the server's name (the body's first line) once
/// it is whole, and the body's bytes.
fn cut_short(all: &[u8]) -> Result<(String, usize), Unanswered> {
    // Every byte had come, only the close had not.
    if let Ok(whole) = parse_answer(all) {
        return Ok(whole);
    }
    let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(Unanswered::Cut(None, 0));
    };
    let body = &all[end + 4..];
    let name = body.iter().position(|b| *b == b'\n').map(|n| String::from_utf8_lossy(&body[..n]).into_owned());
    Err(Unanswered::Cut(name, body.len()))
}

/// One GET to its end: the answering server's name and the body's size.
pub fn get(to: SocketAddr, path: &str, timeout: Duration) -> Result<(String, usize), String> {
    get_until(to, path, timeout, &|| false).map_err(|e| match e {
        Unanswered::Failed(e) => e,
        Unanswered::Cut(_, n) => format!("cut after {n} bytes of its body"),
    })
}

/// The server's name and the body's size of a whole HTTP answer.
pub fn parse_answer(all: &[u8]) -> Result<(String, usize), String> {
    let end =
        all.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("no header end in {} bytes", all.len()))?;
    let head = String::from_utf8_lossy(&all[..end]);
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answer {:?}", head.lines().next().unwrap_or("")));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no Content-Length")?;
    let body = &all[end + 4..];
    if body.len() != length {
        return Err(format!("a body of {} bytes where {length} were announced", body.len()));
    }
    let name = body.split(|b| *b == b'\n').next().unwrap_or(&[]);
    Ok((String::from_utf8_lossy(name).into_owned(), body.len()))
}

/// Set by SIGTERM or SIGINT: the load ends as at its deadline.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// From now on SIGTERM and SIGINT end the load early instead of the process.
pub fn stop_on_signals() {
    let handler = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

fn running(deadline: Instant) -> bool {
    Instant::now() < deadline && !STOP.load(Ordering::Relaxed)
}

/// One paced download of `o.slow_bytes`, cut at the load's end.
fn slow_download(o: &LoadOptions, deadline: Instant) -> SlowDownload {
    let started = Instant::now();
    let started_ms = now_ms();
    // The pacing is 16 KiB per 50 ms: time for that, and the timeout besides.
    let paced = Duration::from_millis((o.slow_bytes as u64 / (16 << 10) + 1) * 50);
    let r = get_until(o.to, &format!("/slow/{}", o.slow_bytes), o.timeout + paced, &|| !running(deadline));
    let seconds = started.elapsed().as_secs_f64();
    let ended_ms = now_ms();
    let (server, bytes, cut, error) = match r {
        Ok((server, bytes)) => (Some(server), bytes, false, None),
        Err(Unanswered::Cut(server, n)) => (server, n, true, None),
        Err(Unanswered::Failed(e)) => (None, 0, false, Some(e)),
    };
    let ok = !cut && error.is_none();
    SlowDownload { server, bytes, ok, cut, started_ms, ended_ms, seconds, error }
}

pub fn run(o: &LoadOptions) -> LoadReport {
    let deadline = Instant::now() + Duration::from_secs(o.seconds.min(MAX_SECONDS));
    let answered = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let slow = std::thread::scope(|s| {
        let slow: Vec<_> = (0..o.slow.min(MAX_SLOW))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    while running(deadline) {
                        done.push(slow_download(o, deadline));
                    }
                    done
                })
            })
            .collect();
        let workers = o.concurrency.clamp(1, MAX_WORKERS);
        // With a rate, each worker starts a request every `workers / rate` seconds.
        let every = o.rate.map(|r| Duration::from_secs_f64(workers as f64 / r.max(1) as f64));
        let (answered, failures) = (&answered, &failures);
        for _ in 0..workers {
            s.spawn(move || {
                let mut next = Instant::now();
                while running(deadline) {
                    if let Some(every) = every {
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        next = next.max(Instant::now() - every) + every;
                    }
                    let started_ms = now_ms();
                    match get(o.to, "/", o.timeout) {
                        Ok((server, _)) => answered.lock().unwrap().push(Answered { started_ms, server }),
                        Err(e) => failures.lock().unwrap().push(format!("{started_ms}: {e}")),
                    }
                }
            });
        }
        slow.into_iter().flat_map(|h| h.join().expect("a slow download")).collect::<Vec<_>>()
    });
    let mut slow = slow;
    slow.sort_by_key(|d| d.started_ms);
    let mut answered = answered.into_inner().unwrap();
    answered.sort_by_key(|a| a.started_ms);
    let failures = failures.into_inner().unwrap();
    let mut by_server = BTreeMap::new();
    for a in &answered {
        *by_server.entry(a.server.clone()).or_insert(0) += 1;
    }
    LoadReport {
        to: o.to.to_string(),
        short_ok: answered.len(),
        short_failed: failures.len(),
        by_server,
        slow,
        failures: failures.into_iter().take(20).collect(),
        answered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The load's connections come from below the kernel's ephemeral range, each from another port.
    #[test]
    fn the_load_connects_from_its_own_ports() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = l.local_addr().unwrap();
        let a = connect(to, Duration::from_secs(2)).unwrap().local_addr().unwrap().port();
        let b = connect(to, Duration::from_secs(2)).unwrap().local_addr().unwrap().port();
        assert!(SOURCE_PORTS.contains(&u32::from(a)) && SOURCE_PORTS.contains(&u32::from(b)), "{a} {b}");
        assert!(a < 32768 && a != b, "{a} {b}");
    }

    #[test]
    fn an_answer_counts_only_whole() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nweb1\n...";
        assert_eq!(parse_answer(ok), Ok(("web1".to_string(), 8)));
        let short = b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nweb1\n...";
        assert!(parse_answer(short).unwrap_err().contains("8 bytes where 9"));
        assert!(parse_answer(b"HTTP/1.0 503 No\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.0 200 OK\r\nContent-Length: 8").is_err(), "cut in the header");
    }

    /// The lab's own responder on a loopback port, answering as "here".
    fn responder_here() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to = l.local_addr().unwrap();
        std::thread::spawn(move || super::super::responder::serve_tcp(l, "here".into()));
        to
    }

    /// What a cut answer had brought: the sender once its name's line is whole; a whole answer
    /// whose close had not come is not cut.
    #[test]
    fn a_cut_answer_keeps_what_had_come() {
        let cut = |b: &[u8]| cut_short(b);
        assert_eq!(cut(b"HTTP/1.0 200 OK\r\nContent-Le"), Err(Unanswered::Cut(None, 0)));
        assert_eq!(cut(b"HTTP/1.0 200 OK\r\nContent-Length: 99\r\n\r\nwe"), Err(Unanswered::Cut(None, 2)));
        assert_eq!(
            cut(b"HTTP/1.0 200 OK\r\nContent-Length: 99\r\n\r\nweb1\n...."),
            Err(Unanswered::Cut(Some("web1".into()), 9))
        );
        assert_eq!(cut(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nweb1\n"), Ok(("web1".into(), 5)));
    }

    /// Against the lab's own responder on a loopback port: every request answered whole, the
    /// slow worker's downloads one after the other until the deadline, and the load ends there.
    #[test]
    fn a_load_against_the_responder_ends_and_counts_every_answer() {
        let to = responder_here();
        let started = Instant::now();
        let r = run(&LoadOptions {
            to,
            seconds: 1,
            concurrency: 3,
            slow: 1,
            slow_bytes: 40_000,
            timeout: Duration::from_secs(5),
            rate: None,
        });
        assert!(started.elapsed() < Duration::from_secs(3), "it ends at its deadline: {:?}", started.elapsed());
        assert_eq!((r.short_failed, r.failures.len()), (0, 0), "{:?}", r.failures);
        assert!(r.short_ok > 0 && r.by_server["here"] == r.short_ok);
        // 40 KB paced at 16 KiB per 50 ms: some 150 ms each, so several in the second.
        let whole: Vec<_> = r.slow.iter().filter(|d| d.ok).collect();
        assert!(whole.len() >= 3, "one download after the other: {:?}", r.slow);
        for d in &r.slow {
            assert!(d.started_ms <= d.ended_ms && d.error.is_none(), "{d:?}");
            assert!(d.ok != d.cut, "whole or cut at the deadline: {d:?}");
            assert!(!d.ok || d.bytes == 40_005, "{d:?}");
        }
        assert!(r.slow.iter().filter(|d| d.cut).count() <= 1, "only the last can be cut: {:?}", r.slow);
        for w in r.slow.windows(2) {
            assert!(w[0].ended_ms <= w[1].started_ms, "one worker: the next starts when one ends: {:?}", r.slow);
        }
    }

    /// A download longer than the load is cut at the deadline, reported with what had arrived
    /// and who sent it, and not as a failure.
    #[test]
    fn a_download_still_arriving_at_the_deadline_is_cut_there() {
        let to = responder_here();
        let started = Instant::now();
        // 4 MB paced: some 12 s.
        let r = run(&LoadOptions {
            to,
            seconds: 1,
            concurrency: 1,
            slow: 2,
            slow_bytes: 4_000_000,
            timeout: Duration::from_secs(5),
            rate: None,
        });
        assert!(started.elapsed() < Duration::from_secs(3), "cut at the deadline: {:?}", started.elapsed());
        assert_eq!(r.slow.len(), 2, "{:?}", r.slow);
        for d in &r.slow {
            assert!(d.cut && !d.ok && d.error.is_none(), "{d:?}");
            assert_eq!(d.server.as_deref(), Some("here"), "{d:?}");
            assert!(d.bytes > 0 && d.bytes < 4_000_000, "{d:?}");
        }
    }

    /// `rate` caps the short requests of all workers together: 20 a second for 2 s are about
    /// 40 (the loopback answers hundreds a second without it).
    #[test]
    fn a_rate_caps_the_short_requests() {
        let to = responder_here();
        let o = LoadOptions {
            to,
            seconds: 2,
            concurrency: 4,
            slow: 0,
            slow_bytes: 0,
            timeout: Duration::from_secs(5),
            rate: Some(20),
        };
        let r = run(&o);
        assert!((36..=44).contains(&r.short_ok), "{} requests in 2 s at 20/s", r.short_ok);
        let free = run(&LoadOptions { rate: None, ..o });
        assert!(free.short_ok > 2 * r.short_ok, "without a rate: {}", free.short_ok);
    }
}
