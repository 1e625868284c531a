//! Requests sent from a host to services (`lvsctl verify`): each on a new connection, so IPVS
//! schedules each one.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// GET / over HTTP/1.0; the answer is the body.
    Http,
    /// A TCP connection; the answer is whatever the server sends first.
    Tcp,
    /// One datagram; the answer is the reply.
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTarget {
    pub address: Ipv4Addr,
    pub port: u16,
    pub kind: ProbeKind,
    pub count: u32,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    pub targets: Vec<ProbeTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// What came back (trimmed, at most 200 bytes), None when nothing did.
    pub body: Option<String>,
    /// The address a UDP reply came from.
    pub from: Option<Ipv4Addr>,
    pub error: Option<String>,
    pub ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// One list of answers per target, in the request's order.
    pub answers: Vec<Vec<Answer>>,
}

fn clip(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    s.chars().take(200).collect()
}

fn tcp(t: &ProbeTarget, http: bool) -> Result<(String, Option<Ipv4Addr>), String> {
    let to = Duration::from_millis(t.timeout_ms);
    let addr = SocketAddrV4::new(t.address, t.port);
    let mut s = TcpStream::connect_timeout(&addr.into(), to).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(to)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(to)).map_err(|e| e.to_string())?;
    if http {
        let req =
            format!("GET / HTTP/1.0\r\nHost: {}\r\nUser-Agent: lvsctl-verify\r\nConnection: close\r\n\r\n", t.address);
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

fn udp(t: &ProbeTarget) -> Result<(String, Option<Ipv4Addr>), String> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(t.timeout_ms))).map_err(|e| e.to_string())?;
    s.send_to(b"lvsctl-verify\n", SocketAddrV4::new(t.address, t.port)).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    let (n, from) = s
        .recv_from(&mut buf)
        .map_err(|e| if e.kind() == std::io::ErrorKind::WouldBlock { "no reply".to_string() } else { e.to_string() })?;
    let from = match from {
        std::net::SocketAddr::V4(a) => Some(*a.ip()),
        _ => None,
    };
    Ok((clip(&buf[..n]), from))
}

pub fn run(req: &ProbeRequest) -> ProbeResult {
    let mut result = ProbeResult::default();
    for t in &req.targets {
        let mut answers = Vec::new();
        for _ in 0..t.count {
            let start = Instant::now();
            let r = match t.kind {
                ProbeKind::Http => tcp(t, true),
                ProbeKind::Tcp => tcp(t, false),
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
    result
}
