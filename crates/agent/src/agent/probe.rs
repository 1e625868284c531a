//! Requests sent from a host to services (`lvsctl verify`): each on a new connection, so IPVS
//! schedules each one.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

pub use crate::wire::probe::*;

fn clip(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    s.chars().take(200).collect()
}

/// Local ports for a target's requests when some must not be used (`ProbeTarget::avoid_ports`):
/// the host's ephemeral range, from a point that differs per run, skipping those ports; a port
/// another socket holds is skipped too.
struct LocalPorts {
    lo: u32,
    span: u32,
    next: u32,
    /// Ascending.
    avoid: Vec<u16>,
}

/// How many ports a request tries before it gives up (each one another socket holds).
const PORT_TRIES: usize = 64;

impl LocalPorts {
    fn new(avoid: &[u16]) -> LocalPorts {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
        let (lo, hi) = parse_port_range(range.as_deref()).unwrap_or((32768, 60999));
        let span = u32::from(hi) - u32::from(lo) + 1;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = now.subsec_nanos() ^ std::process::id().rotate_left(16);
        let mut avoid = avoid.to_vec();
        avoid.sort_unstable();
        LocalPorts { lo: lo.into(), span, next: seed % span, avoid }
    }

    /// The next port of the range not to avoid; None when every one is.
    fn take(&mut self) -> Option<u16> {
        for _ in 0..self.span {
            let port = (self.lo + self.next % self.span) as u16;
            self.next = (self.next + 1) % self.span;
            if self.avoid.binary_search(&port).is_err() {
                return Some(port);
            }
        }
        None
    }

    /// `open` from the next free port: a port some socket of this host holds is passed over.
    fn each<T>(&mut self, mut open: impl FnMut(u16) -> std::io::Result<T>) -> std::io::Result<T> {
        use std::io::ErrorKind::{AddrInUse, AddrNotAvailable};
        for _ in 0..PORT_TRIES {
            let Some(port) = self.take() else { break };
            match open(port) {
                Err(e) if matches!(e.kind(), AddrInUse | AddrNotAvailable) => continue,
                r => return r,
            }
        }
        Err(std::io::Error::other(format!(
            "no free local port outside the {} the director holds entries for",
            self.avoid.len()
        )))
    }
}

/// `net.ipv4.ip_local_port_range`: two ports, the first not above the second.
fn parse_port_range(s: Option<&str>) -> Option<(u16, u16)> {
    let mut w = s?.split_whitespace().map(str::parse::<u16>);
    let (lo, hi) = (w.next()?.ok()?, w.next()?.ok()?);
    (lo <= hi && lo > 0).then_some((lo, hi))
}

fn tcp(t: &ProbeTarget, http: bool, ports: Option<&mut LocalPorts>) -> Result<(String, Option<IpAddr>), String> {
    let to = Duration::from_millis(t.timeout_ms);
    let addr = SocketAddr::new(t.address, t.port);
    let s = match (t.kind, t.source_port, ports) {
        (ProbeKind::Sctp, None, Some(ports)) => ports.each(|p| crate::sctp::connect(addr, Some(p), to)),
        (ProbeKind::Sctp, port, _) => crate::sctp::connect(addr, port, to),
        (_, Some(port), _) => connect_from(addr, port, true, to),
        (_, None, Some(ports)) => ports.each(|p| connect_from(addr, p, false, to)),
        (_, None, None) => TcpStream::connect_timeout(&addr, to),
    };
    let mut s = s.map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(to)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(to)).map_err(|e| e.to_string())?;
    if http {
        let req = format!(
            "GET / HTTP/1.0\r\nHost: {}\r\nUser-Agent: lvsctl-verify\r\nConnection: close\r\n\r\n",
            crate::ipvs::bracketed(t.address)
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if !http || buf.len() > 64 * 1024 {
                    break;
                }
            }
            Err(e) if buf.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    if http {
        let text = String::from_utf8_lossy(&buf);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or(&text);
        Ok((clip(body.as_bytes()), None))
    } else {
        Ok((clip(&buf), None))
    }
}

/// A TCP connection from a given local port (a trace looks for that port on every hop; verify
/// avoids some). `reuse`: the port may be bound while a closed connection's socket holds it.
fn connect_from(addr: SocketAddr, port: u16, reuse: bool, timeout: Duration) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(reuse)?;
    s.bind(&SocketAddr::new(unspecified(addr.ip()), port).into())?;
    s.connect_timeout(&addr.into(), timeout)?;
    Ok(s.into())
}

fn unspecified(like: IpAddr) -> IpAddr {
    if like.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() }
}

fn udp(t: &ProbeTarget, ports: Option<&mut LocalPorts>) -> Result<(String, Option<IpAddr>), String> {
    let any = unspecified(t.address);
    let s = match (t.source_port, ports) {
        (None, Some(ports)) => ports.each(|p| UdpSocket::bind((any, p))),
        (port, _) => UdpSocket::bind((any, port.unwrap_or(0))),
    };
    let s = s.map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(t.timeout_ms))).map_err(|e| e.to_string())?;
    s.send_to(b"lvsctl-verify\n", SocketAddr::new(t.address, t.port)).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    let (n, from) = s
        .recv_from(&mut buf)
        .map_err(|e| if e.kind() == std::io::ErrorKind::WouldBlock { "no reply".to_string() } else { e.to_string() })?;
    Ok((clip(&buf[..n]), Some(from.ip())))
}

fn answer(start: Instant, r: Result<(String, Option<IpAddr>), String>) -> Answer {
    let ms = start.elapsed().as_millis() as u64;
    match r {
        Ok((body, from)) => Answer { body: Some(body), from, error: None, ms },
        Err(e) => Answer { body: None, from: None, error: Some(e), ms },
    }
}

fn series(s: &Series, t0: Instant) -> Vec<Sample> {
    let target = ProbeTarget {
        address: s.address,
        port: s.port,
        kind: ProbeKind::Http,
        count: 1,
        timeout_ms: s.timeout_ms,
        source_port: None,
        avoid_ports: vec![],
    };
    let mut out = Vec::new();
    let mut next = Duration::ZERO;
    let end = Duration::from_millis(s.duration_ms);
    while next < end {
        if let Some(wait) = next.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let start = Instant::now();
        let at_ms = t0.elapsed().as_millis() as u64;
        out.push(Sample { at_ms, answer: answer(start, tcp(&target, true, None)) });
        next += Duration::from_millis(s.interval_ms.max(10));
    }
    out
}

fn hold(h: &Hold) -> Result<(String, Option<IpAddr>), String> {
    let to = Duration::from_millis(h.timeout_ms);
    let addr = SocketAddr::new(h.address, h.port);
    let mut s = TcpStream::connect_timeout(&addr, to).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n").map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(h.after_ms));
    s.set_read_timeout(Some(to)).map_err(|e| e.to_string())?;
    let rest = format!(
        "Host: {}\r\nUser-Agent: lvsctl-verify\r\nConnection: close\r\n\r\n",
        crate::ipvs::bracketed(h.address)
    );
    s.write_all(rest.as_bytes()).map_err(|e| format!("after {} ms: {e}", h.after_ms))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("after {} ms: {e}", h.after_ms))?;
    let text = String::from_utf8_lossy(&buf);
    match text.split_once("\r\n\r\n") {
        Some((_, body)) => Ok((clip(body.as_bytes()), None)),
        None => Err(format!("no answer after {} ms (the connection ended without one)", h.after_ms)),
    }
}

pub fn run(req: &ProbeRequest) -> ProbeResult {
    let t0 = Instant::now();
    let series_threads: Vec<_> =
        req.series.iter().cloned().map(|s| std::thread::spawn(move || series(&s, t0))).collect();
    let hold_threads: Vec<_> = req
        .holds
        .iter()
        .cloned()
        .map(|h| {
            std::thread::spawn(move || {
                let start = Instant::now();
                answer(start, hold(&h))
            })
        })
        .collect();
    let mut result = ProbeResult::default();
    for t in &req.targets {
        let mut answers = Vec::new();
        let mut ports = (!t.avoid_ports.is_empty()).then(|| LocalPorts::new(&t.avoid_ports));
        for _ in 0..t.count {
            let start = Instant::now();
            let r = match t.kind {
                ProbeKind::Http => tcp(t, true, ports.as_mut()),
                ProbeKind::Tcp | ProbeKind::Sctp => tcp(t, false, ports.as_mut()),
                ProbeKind::Udp => udp(t, ports.as_mut()),
            };
            let ms = start.elapsed().as_millis() as u64;
            answers.push(match r {
                Ok((body, from)) => Answer { body: Some(body), from, error: None, ms },
                Err(e) => Answer { body: None, from: None, error: Some(e), ms },
            });
        }
        result.answers.push(answers);
    }
    result.series = series_threads.into_iter().map(|t| t.join().unwrap_or_default()).collect();
    result.holds = hold_threads
        .into_iter()
        .map(|t| {
            t.join().unwrap_or(Answer { body: None, from: None, error: Some("probe thread failed".into()), ms: 0 })
        })
        .collect();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ports handed out skip those to avoid, stay in the range, and are each handed out
    /// once per round; a range the kernel does not give is replaced by the default.
    #[test]
    fn local_ports_skip_the_avoided_ones_and_stay_in_the_range() {
        assert_eq!(parse_port_range(Some("32768\t60999\n")), Some((32768, 60999)));
        assert_eq!(parse_port_range(Some("61000 1024")), None);
        assert_eq!(parse_port_range(None), None);
        let mut p = LocalPorts { lo: 40000, span: 4, next: 3, avoid: vec![40000, 40002] };
        let got: Vec<Option<u16>> = (0..4).map(|_| p.take()).collect();
        assert_eq!(got, [Some(40003), Some(40001), Some(40003), Some(40001)]);
        let mut all = LocalPorts { lo: 40000, span: 2, next: 0, avoid: vec![40000, 40001] };
        assert_eq!(all.take(), None);
        let e = all.each(|_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("no free local port outside the 2"), "{e}");
    }

    /// A port another socket holds is passed over; any other error is the request's.
    #[test]
    fn a_port_in_use_is_passed_over() {
        let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let busy = held.local_addr().unwrap().port();
        let mut p = LocalPorts { lo: busy.into(), span: 1, next: 0, avoid: Default::default() };
        let mut tried = Vec::new();
        let e = p
            .each(|port| {
                tried.push(port);
                std::net::TcpListener::bind(("127.0.0.1", port)).map(|_| ())
            })
            .unwrap_err();
        assert!(e.to_string().contains("no free local port"), "{e}");
        assert_eq!(tried.len(), PORT_TRIES, "every try met the held port");
        let mut q = LocalPorts { lo: 40000, span: 8, next: 0, avoid: Default::default() };
        let e = q.each(|_| Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
