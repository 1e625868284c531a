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

fn tcp(t: &ProbeTarget, http: bool) -> Result<(String, Option<IpAddr>), String> {
    let to = Duration::from_millis(t.timeout_ms);
    let addr = SocketAddr::new(t.address, t.port);
    let s = match (t.kind, t.source_port) {
        (ProbeKind::Sctp, port) => crate::sctp::connect(addr, port, to),
        (_, Some(port)) => connect_from(addr, port, to),
        (_, None) => TcpStream::connect_timeout(&addr, to),
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

/// A TCP connection from a given local port (a trace looks for that port on every hop).
fn connect_from(addr: SocketAddr, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::new(unspecified(addr.ip()), port).into())?;
    s.connect_timeout(&addr.into(), timeout)?;
    Ok(s.into())
}

fn unspecified(like: IpAddr) -> IpAddr {
    if like.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() }
}

fn udp(t: &ProbeTarget) -> Result<(String, Option<IpAddr>), String> {
    let s = UdpSocket::bind((unspecified(t.address), t.source_port.unwrap_or(0))).map_err(|e| e.to_string())?;
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
        out.push(Sample { at_ms, answer: answer(start, tcp(&target, true)) });
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
        for _ in 0..t.count {
            let start = Instant::now();
            let r = match t.kind {
                ProbeKind::Http => tcp(t, true),
                ProbeKind::Tcp | ProbeKind::Sctp => tcp(t, false),
                ProbeKind::Udp => udp(t),
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
