//! The lab's real-server responder: answers every TCP connection and SCTP association (an HTTP
//! response) and every UDP datagram with the host's name, so tests and `lvsctl verify` can tell
//! who answered. `GET /bytes/N` adds N bytes after the name (a large body), `GET /slow/N` sends
//! them paced (a slow download: 16 KiB every 50 ms, about 320 KB/s), for traffic that lasts. A
//! `POST` is read whole (its Content-Length, at most `MAX_BODY`) and answered with the name and
//! `received N`: an upload, whose large packets go client to real server. `GET /peer` answers
//! the name and `peer ADDRESS`: whom the real server sees as its client (one-armed NAT's director).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::io::FromRawFd;
use std::time::Duration;

use anyhow::{Context, bail};

/// An HTTP/1.0 response whose body is `name` and a newline.
pub fn http_response(name: &str) -> String {
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}\n",
        name.len() + 1
    )
}

/// The largest body `/bytes/N` and `/slow/N` send.
pub const MAX_BODY: usize = 64 << 20;
/// A slow download's pace: this many bytes, then a pause.
const SLOW_CHUNK: usize = 16 << 10;
const SLOW_PAUSE: Duration = Duration::from_millis(50);

/// What a request asks for: extra body bytes (at most `MAX_BODY`), and whether they are paced.
pub fn asked(request: &[u8]) -> (usize, bool) {
    let line = request.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (Some("GET"), Some(target)) = (words.next(), words.next()) else { return (0, false) };
    let (slow, n) = match (target.strip_prefix("/bytes/"), target.strip_prefix("/slow/")) {
        (Some(n), _) => (false, n),
        (_, Some(n)) => (true, n),
        _ => return (0, false),
    };
    (n.parse::<usize>().map_or(0, |n| n.min(MAX_BODY)), slow)
}

/// Whether `request` is `GET /peer` (what address the real server sees the client at).
pub fn asks_peer(request: &[u8]) -> bool {
    let line = request.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    (words.next(), words.next()) == (Some("GET"), Some("/peer"))
}

/// A POST's Content-Length (at most `MAX_BODY`), and how much of the body `request` holds
/// already after its head. None for anything but a POST with a length.
pub fn upload(request: &[u8]) -> Option<(usize, usize)> {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&request[..end]);
    if !head.starts_with("POST ") {
        return None;
    }
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    })?;
    Some((length.min(MAX_BODY), request.len() - end))
}

/// Reads the rest of an upload's body; the bytes received in all.
fn read_body(s: &mut impl Read, length: usize, have: usize) -> usize {
    let mut got = have;
    let mut buf = vec![0u8; 64 << 10];
    while got < length {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// Sends the answer to `request`: headers, the name, then the extra bytes asked for.
fn answer(s: &mut impl Write, name: &str, request: &[u8]) -> std::io::Result<()> {
    let (extra, slow) = asked(request);
    if extra == 0 {
        return s.write_all(http_response(name).as_bytes());
    }
    let head = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}\n",
        name.len() + 1 + extra
    );
    s.write_all(head.as_bytes())?;
    let chunk = vec![b'.'; SLOW_CHUNK];
    let mut left = extra;
    while left > 0 {
        let n = left.min(SLOW_CHUNK);
        s.write_all(&chunk[..n])?;
        left -= n;
        if slow && left > 0 {
            std::thread::sleep(SLOW_PAUSE);
        }
    }
    Ok(())
}

pub(super) fn serve_tcp(l: TcpListener, name: String) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let name = name.clone();
        std::thread::spawn(move || {
            // Read what the client sends first (an HTTP request), if anything, then answer. A
            // client that sends nothing within half a second gets the answer anyway (plain TCP
            // probes); one that started a request gets time to finish it (verify --failover
            // holds a connection open across a failover).
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 2048];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 64 * 1024 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                    }
                }
            }
            let peer = asks_peer(&got).then(|| s.peer_addr().map(|p| p.ip().to_canonical()));
            if let Some(body) = match (upload(&got), peer) {
                (Some((length, have)), _) => Some(format!("{name}\nreceived {}\n", read_body(&mut s, length, have))),
                (None, Some(Ok(ip))) => Some(format!("{name}\npeer {ip}\n")),
                _ => None,
            } {
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(format!("{head}{body}").as_bytes());
            } else {
                let _ = answer(&mut s, &name, &got);
            }
            close_after_client(&mut s);
        });
    }
}

/// How long, at most, an answered connection waits for its client to close.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Ends an answered connection without a reset: the answer's end is sent (a half close), then
/// what the client still sends is read and dropped until it closes its side. A socket closed with
/// unread data, or one that receives data once closed, answers with a reset, and a reset makes the
/// client's kernel drop the answer it has not read yet: a client slow to send its request (a loaded
/// guest descheduled it past the half second that makes its connection a plain TCP probe) got its
/// answer and then "connection reset by peer" (CI, e2e_dr_ha, while keepalived reloaded).
fn close_after_client(s: &mut std::net::TcpStream) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    let deadline = std::time::Instant::now() + CLOSE_WAIT;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A UDP socket bound to `addr` even before the address exists on the host (IP_FREEBIND; an
/// IPv6 one only for IPv6).
fn freebind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    // SAFETY: socket/setsockopt/bind on a descriptor this function owns; on success it is handed to
    // UdpSocket, which closes it.
    unsafe {
        let family = if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
        let fd = libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let opt = |level, name| libc::setsockopt(fd, level, name, &one as *const _ as *const libc::c_void, len);
        // IP_FREEBIND applies to IPv6 sockets too (inet_sk's freebind flag).
        opt(libc::SOL_IP, libc::IP_FREEBIND);
        opt(libc::SOL_SOCKET, libc::SO_REUSEADDR);
        let bound = match addr {
            SocketAddr::V4(a) => {
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                    sin_zero: [0; 8],
                };
                libc::bind(fd, &sa as *const _ as *const libc::sockaddr, std::mem::size_of_val(&sa) as libc::socklen_t)
            }
            SocketAddr::V6(a) => {
                opt(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY);
                let sa = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: 0,
                };
                libc::bind(fd, &sa as *const _ as *const libc::sockaddr, std::mem::size_of_val(&sa) as libc::socklen_t)
            }
        };
        if bound != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(UdpSocket::from_raw_fd(fd))
    }
}

fn serve_udp(s: UdpSocket, name: String) {
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((_, peer)) = s.recv_from(&mut buf) {
            let _ = s.send_to(format!("{name}\n").as_bytes(), peer);
        }
    }
}

/// Answers every `tcp:PORT` / `udp:PORT` / `sctp:PORT` of `listen` with `name`; UDP answers come from the VIP
/// the datagram was sent to (one of `vips`).
pub fn run(name: &str, listen: &[String], vips: &[IpAddr]) -> anyhow::Result<u8> {
    let mut threads = Vec::new();
    for spec in listen {
        let (proto, port) = spec
            .split_once(':')
            .with_context(|| format!("--listen {spec}: expected tcp:PORT, udp:PORT or sctp:PORT"))?;
        let port: u16 = port.parse().with_context(|| format!("--listen {spec}: bad port"))?;
        let name = name.to_string();
        match proto {
            "tcp" => {
                // [::] takes IPv4 connections too (bindv6only is 0); a host without IPv6 gets 0.0.0.0.
                let l = TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
                    .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
                    .with_context(|| format!("cannot listen on tcp port {port}"))?;
                threads.push(std::thread::spawn(move || serve_tcp(l, name)));
            }
            "udp" => {
                // The wildcard socket answers NAT traffic (addressed to this host); each VIP gets its
                // own socket so that DR/TUN replies leave from the VIP the client asked.
                let any = freebind_udp(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))
                    .with_context(|| format!("cannot listen on udp port {port}"))?;
                let n = name.clone();
                threads.push(std::thread::spawn(move || serve_udp(any, n)));
                // The IPv6 wildcard, where the host has IPv6.
                if let Ok(any6) = freebind_udp(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)) {
                    let n = name.clone();
                    threads.push(std::thread::spawn(move || serve_udp(any6, n)));
                }
                for vip in vips {
                    let s = freebind_udp(SocketAddr::new(*vip, port))
                        .with_context(|| format!("cannot listen on udp {vip}:{port}"))?;
                    let n = name.clone();
                    threads.push(std::thread::spawn(move || serve_udp(s, n)));
                }
            }
            "sctp" => {
                let l = crate::sctp::listen(port).with_context(|| format!("cannot listen on sctp port {port}"))?;
                threads.push(std::thread::spawn(move || serve_tcp(l, name)));
            }
            other => bail!("--listen {spec}: unknown protocol {other} (tcp, udp or sctp)"),
        }
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_slow_bodies_start_with_the_name() {
        assert_eq!(asked(b"GET / HTTP/1.0\r\n\r\n"), (0, false));
        assert_eq!(asked(b"GET /bytes/1000 HTTP/1.0\r\n"), (1000, false));
        assert_eq!(asked(b"GET /slow/20 HTTP/1.1\r\nHost: x\r\n"), (20, true));
        assert_eq!(asked(b"GET /bytes/999999999999 HTTP/1.0\r\n"), (MAX_BODY, false));
        assert_eq!(asked(b"GET /bytes/x HTTP/1.0\r\n"), (0, false));
        assert_eq!(asked(b"POST /bytes/5 HTTP/1.0\r\n"), (0, false));
        assert!(asks_peer(b"GET /peer HTTP/1.0\r\n\r\n"));
        assert!(!asks_peer(b"GET /peers HTTP/1.0\r\n") && !asks_peer(b"POST /peer HTTP/1.0\r\n"));
        assert_eq!(upload(b"POST /up HTTP/1.1\r\nHost: x\r\ncontent-length: 1048576\r\n\r\nabc"), Some((1048576, 3)));
        assert_eq!(upload(b"POST /up HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n"), Some((MAX_BODY, 0)));
        assert_eq!(upload(b"POST /up HTTP/1.1\r\nHost: x\r\n\r\n"), None, "no length, no upload");
        assert_eq!(upload(b"GET / HTTP/1.0\r\nContent-Length: 5\r\n\r\n"), None);
        assert_eq!(upload(b"POST /up HTTP/1.1\r\nContent-Length: 5\r\n"), None, "the head is not complete");
        let mut out = Vec::new();
        answer(&mut out, "web1", b"GET /slow/40000 HTTP/1.0\r\n\r\n").unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Length: 40005"), "{head}");
        assert_eq!(body.len(), 40005);
        assert!(body.starts_with("web1\n..."));
        let mut plain = Vec::new();
        answer(&mut plain, "web1", b"").unwrap();
        assert_eq!(plain, http_response("web1").as_bytes());
    }

    /// A client that sends its request only after the half second that makes a connection a plain
    /// TCP probe gets the answer, and what it sends after the answer is read, not reset.
    #[test]
    fn a_late_request_is_answered_and_never_reset() {
        use std::net::TcpStream;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || serve_tcp(l, "web1".into()));
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        std::thread::sleep(Duration::from_millis(800));
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, http_response("web1").as_bytes());
        // The responder's side is still open for reading: more data is taken, not reset.
        c.write_all(b"more").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.write_all(b"and more").unwrap();
        assert!(c.take_error().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(300));
        assert!(c.take_error().unwrap().is_none(), "the responder reset the connection");
    }
}
