//! SCTP one-to-one sockets (`SOCK_STREAM`, `IPPROTO_SCTP`): an association is accepted, read and
//! written like a TCP connection, so once made they are handed to std's TCP types. The kernel
//! loads its `sctp` module on the first such socket.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

const IPPROTO_SCTP: i32 = 132;

fn socket(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::STREAM, Some(Protocol::from(IPPROTO_SCTP)))
}

/// Listens on every address of both families (`[::]`, taking IPv4 associations too), or on
/// `0.0.0.0` where the host has no IPv6.
pub fn listen(port: u16) -> io::Result<TcpListener> {
    let bind = |domain: Domain, addr: SocketAddr| -> io::Result<Socket> {
        let s = socket(domain)?;
        if domain == Domain::IPV6 {
            s.set_only_v6(false)?;
        }
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(128)?;
        Ok(s)
    };
    let s = bind(Domain::IPV6, SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port))
        .or_else(|_| bind(Domain::IPV4, SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)))?;
    Ok(s.into())
}

/// An association with `addr` (from local port `from`, any when None), set up within `timeout`.
pub fn connect(addr: SocketAddr, from: Option<u16>, timeout: Duration) -> io::Result<TcpStream> {
    let s = socket(Domain::for_address(addr))?;
    if let Some(port) = from {
        let any: std::net::IpAddr =
            if addr.is_ipv6() { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::new(any, port).into())?;
    }
    s.connect_timeout(&addr.into(), timeout)?;
    Ok(s.into())
}
