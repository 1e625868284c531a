//! `lvsctl-agent agent metrics --lab LAB --listen ADDR:PORT`: the director's metrics (the same
//! families as `lvsctl metrics`) served to Prometheus over HTTP/1.0, read afresh at each scrape
//! from the kernel, keepalived and the lab's persisted plan (so an `up` that changes the plan is
//! seen at the next scrape). `up` starts it (`resource::exporter`); it never changes the host.
//!
//! It answers `GET /metrics` only, and holds every client to bounds: a request head of at most
//! `HEAD_MAX` bytes read within `READ_DEADLINE`, at most `CONNECTIONS` clients at once (more wait
//! in the kernel's listen queue), one scrape at a time — requests that arrived while one ran get
//! its answer, so a slow host never piles scrapes up — and a write that must progress within
//! `WRITE_TIMEOUT`. A slow or hostile client costs at most a thread and 8 KiB for a few seconds.
//!
//! Scrapes stay cheap: lvsctl's drift count (a whole check of the runtime state) is taken apart,
//! at start and every `DRIFT_EVERY`, and served as last counted.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Paths, Request};
use crate::plan::HostPlan;
use crate::wire::protocol::Operation;

/// The most a request head (request line and headers) may take.
pub const HEAD_MAX: usize = 8 * 1024;
/// How long a client has to send its whole request head.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long a write may block before the client is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients served at once.
pub const CONNECTIONS: usize = 16;
/// How long a closing connection reads (and drops) what its client still sends: at most 64 KiB.
const LINGER: Duration = Duration::from_secs(1);
/// How often the drift count is taken again.
pub const DRIFT_EVERY: Duration = Duration::from_secs(15);

/// What a request asks for, once its head is read.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    Metrics,
    /// Status, reason, body.
    Refused(u16, &'static str, String),
}

/// Judges a request head (bytes up to the blank line). Only `GET /metrics` (with any query
/// string: Prometheus may add one) is served.
pub fn judge(head: &[u8]) -> Asked {
    let Ok(text) = std::str::from_utf8(head) else {
        return Asked::Refused(400, "Bad Request", "the request is not text\n".into());
    };
    let line = text.lines().next().unwrap_or_default();
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Asked::Refused(400, "Bad Request", "expected: GET /metrics HTTP/1.1\n".into());
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::Refused(400, "Bad Request", "HTTP/1.0 or HTTP/1.1 only\n".into());
    }
    if method != "GET" {
        return Asked::Refused(405, "Method Not Allowed", "lvsctl's exporter answers GET /metrics only\n".into());
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Asked::Refused(404, "Not Found", "lvsctl's exporter serves /metrics only\n".into());
    }
    Asked::Metrics
}

/// Reads a request head within the deadline and the size bound. None: the client was too slow,
/// sent too much, or went away (it is dropped without an answer, except for a head too large).
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Asked> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = find_end(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() >= HEAD_MAX {
            return Err(Asked::Refused(431, "Request Header Fields Too Large", "request head over 8 KiB\n".into()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Asked::Refused(408, "Request Timeout", "the request head took too long\n".into()));
        }
        stream.set_read_timeout(Some(left)).map_err(|_| closed())?;
        let room = (HEAD_MAX - head.len()).min(buf.len());
        match stream.read(&mut buf[..room]) {
            Ok(0) => return Err(closed()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(Asked::Refused(408, "Request Timeout", "the request head took too long\n".into()));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(closed()),
        }
    }
}

/// A client that went away: nothing to answer.
fn closed() -> Asked {
    Asked::Refused(0, "", String::new())
}

fn find_end(head: &[u8]) -> Option<usize> {
    head.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| head.windows(2).position(|w| w == b"\n\n"))
}

fn respond(stream: &mut TcpStream, status: u16, reason: &str, content_type: &str, body: &[u8]) {
    if status == 0 {
        return;
    }
    let head = format!(
        "HTTP/1.0 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status == 405 { "Allow: GET\r\n" } else { "" }
    );
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body));
    // A lingering close: what the client still sends is read (a bounded amount, for a second)
    // before the socket closes, or the kernel would answer it with a reset that can destroy
    // the response before the client reads it.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// The lab's persisted plan: what names the kernel's and keepalived's state.
fn persisted(paths: &Paths, lab: &str) -> Result<HostPlan, String> {
    let path = paths.config_root.join(lab).join(crate::paths::HOST_PLAN_FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the scrapes share: the last answer (when it was begun, what it was) and the drift count.
struct Shared {
    paths: Paths,
    lab: String,
    last: Mutex<Option<(Instant, Result<String, String>)>>,
    drift: Mutex<Option<usize>>,
}

impl Shared {
    /// One scrape, or the answer of one begun after this request arrived.
    fn scrape(&self, arrived: Instant) -> Result<String, String> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((begun, answer)) = last.as_ref()
            && *begun >= arrived
        {
            return answer.clone();
        }
        let begun = Instant::now();
        let drift = *self.drift.lock().unwrap_or_else(|p| p.into_inner());
        let answer = self.read(super::DriftCount::Known(drift));
        *last = Some((begun, answer.clone()));
        answer
    }

    fn read(&self, drift: super::DriftCount) -> Result<String, String> {
        let plan = persisted(&self.paths, &self.lab)?;
        let mut sys = crate::host::linux::Linux::new().map_err(|e| format!("cannot open netlink: {e}"))?;
        let req = Request::new(&self.lab, &plan.host, Operation::Metrics { plan: plan.clone() });
        let families = super::metrics_of(&mut sys, &self.paths, &req, &plan, drift).map_err(|e| e.to_string())?;
        Ok(crate::wire::metrics::exposition(&families))
    }

    /// Counts the drift of the runtime state (what `status` would call drift there) now.
    fn count_drift(&self) -> Option<usize> {
        let plan = persisted(&self.paths, &self.lab).ok()?;
        let mut sys = crate::host::linux::Linux::new().ok()?;
        let req = Request::new(&self.lab, &plan.host, Operation::Metrics { plan: plan.clone() });
        let (overlaid, _, _) = super::drained(&self.paths, &self.lab, &plan);
        super::drift(&mut sys, &self.paths, &req, &overlaid, crate::resource::Scope::Runtime).ok().map(|d| d.len())
    }
}

fn serve_one(mut stream: TcpStream, shared: &Shared) {
    let arrived = Instant::now();
    match read_head(&mut stream).map(|head| judge(&head)) {
        Ok(Asked::Metrics) => match shared.scrape(arrived) {
            Ok(body) => respond(&mut stream, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body.as_bytes()),
            Err(e) => respond(&mut stream, 500, "Internal Server Error", "text/plain", format!("{e}\n").as_bytes()),
        },
        Ok(Asked::Refused(status, reason, body)) | Err(Asked::Refused(status, reason, body)) => {
            respond(&mut stream, status, reason, "text/plain", body.as_bytes())
        }
        Err(Asked::Metrics) => {}
    }
}

/// Listens, names itself in its pid file, and serves until it is killed.
pub fn run(lab: &str, listen: &str) -> i32 {
    super::ignore_hangups();
    if let Err(e) = super::valid_lab(lab) {
        eprintln!("lvsctl-agent: {e}");
        return 2;
    }
    let Ok(addr) = listen.parse::<SocketAddr>() else {
        eprintln!("lvsctl-agent: --listen {listen:?} is not ADDR:PORT");
        return 2;
    };
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lvsctl-agent: cannot listen on {addr}: {e}");
            return 1;
        }
    };
    let paths = Paths::default();
    let pid_file = std::path::PathBuf::from(crate::paths::exporter_pid_path(lab));
    let named = format!("{} {addr}\n", std::process::id());
    if let Err(e) = crate::host::write_atomic(&pid_file, named.as_bytes(), 0o644) {
        eprintln!("lvsctl-agent: cannot write {}: {e}", pid_file.display());
        return 1;
    }
    let shared = Arc::new(Shared { paths, lab: lab.to_string(), last: Mutex::new(None), drift: Mutex::new(None) });
    let counting = shared.clone();
    let _ = std::thread::Builder::new().name("drift".into()).spawn(move || {
        loop {
            let n = counting.count_drift();
            *counting.drift.lock().unwrap_or_else(|p| p.into_inner()) = n;
            std::thread::sleep(DRIFT_EVERY);
        }
    });
    accept(listener, move |stream| serve_one(stream, &shared));
    0
}

/// Serves each connection on a thread of its own, at most `CONNECTIONS` at once: while all are
/// busy the loop waits, and new clients wait in the kernel's listen queue.
fn accept(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) {
    let serve = Arc::new(serve);
    let slots = Arc::new((Mutex::new(0usize), Condvar::new()));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        {
            let (busy, freed) = &*slots;
            let mut n = busy.lock().unwrap_or_else(|p| p.into_inner());
            while *n >= CONNECTIONS {
                n = freed.wait(n).unwrap_or_else(|p| p.into_inner());
            }
            *n += 1;
        }
        let (done, serve) = (slots.clone(), serve.clone());
        let release = move || {
            let (busy, freed) = &*done;
            *busy.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            freed.notify_one();
        };
        let spawned = std::thread::Builder::new().name("scrape".into()).spawn({
            let release = release.clone();
            move || {
                serve(stream);
                release();
            }
        });
        if spawned.is_err() {
            release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        assert_eq!(judge(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*"), Asked::Metrics);
        assert_eq!(judge(b"GET /metrics?format=text HTTP/1.0"), Asked::Metrics);
        let status = |head: &[u8]| match judge(head) {
            Asked::Refused(s, ..) => s,
            Asked::Metrics => 200,
        };
        assert_eq!(status(b"POST /metrics HTTP/1.1"), 405);
        assert_eq!(status(b"DELETE /metrics HTTP/1.1"), 405);
        assert_eq!(status(b"GET / HTTP/1.1"), 404);
        assert_eq!(status(b"GET /metrics/../etc HTTP/1.1"), 404);
        assert_eq!(status(b"GET /metrics"), 400);
        assert_eq!(status(b"GET /metrics SPDY/3"), 400);
        assert_eq!(status(b"\xff\xfe"), 400);
    }

    /// Sixteen clients that send nothing hold every slot: the seventeenth waits (in the listen
    /// queue) and is served once a slot is free.
    #[test]
    fn at_most_sixteen_clients_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            accept(listener, |mut s| match read_head(&mut s).map(|h| judge(&h)) {
                Ok(Asked::Metrics) => respond(&mut s, 200, "OK", "text/plain", b"ok\n"),
                Ok(Asked::Refused(c, r, b)) | Err(Asked::Refused(c, r, b)) => {
                    respond(&mut s, c, r, "text/plain", b.as_bytes())
                }
                Err(Asked::Metrics) => {}
            })
        });
        let silent: Vec<TcpStream> = (0..CONNECTIONS).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let waiting = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(!waiting.is_finished(), "the seventeenth waits while sixteen hold the slots");
        drop(silent);
        let served = waiting.join().unwrap();
        assert!(served.starts_with("HTTP/1.0 200 ") && served.ends_with("ok\n"), "{served}");
    }

    /// A real socket: a head over 8 KiB is refused with 431 once 8 KiB are in, without reading
    /// more; a client that sends nothing is answered 408 after the deadline, not held forever.
    #[test]
    fn hostile_clients_are_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut codes = vec![];
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let started = Instant::now();
                let code = match read_head(&mut s) {
                    Err(Asked::Refused(c, ..)) => c,
                    _ => 200,
                };
                codes.push((code, started.elapsed()));
            }
            codes
        });
        let mut big = TcpStream::connect(addr).unwrap();
        let _ = big.write_all(&[b'a'; 3 * HEAD_MAX]);
        let silent = TcpStream::connect(addr).unwrap();
        let codes = server.join().unwrap();
        drop((big, silent));
        assert_eq!(codes[0].0, 431);
        assert_eq!(codes[1].0, 408);
        assert!(codes[1].1 >= READ_DEADLINE && codes[1].1 < READ_DEADLINE + Duration::from_secs(2), "{codes:?}");
    }
}
