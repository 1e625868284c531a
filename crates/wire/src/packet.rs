//! Reading captured packets (`capture`, `trace`): the headers LVS touches — Ethernet, IPv4 and
//! IPv6 with their extension headers, the encapsulations TUN mode adds (IP in IP, IPv6 in IPv4 or
//! IPv6, GRE) — down to the innermost TCP, UDP or SCTP ports. Pure functions over bytes: the agent
//! filters with them, the controller explains with them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_SCTP: u8 = 132;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// One IP header of a packet, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IpHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The protocol it carries (IPv6: after its extension headers).
    pub protocol: u8,
    /// TTL or hop limit.
    pub ttl: u8,
}

/// The innermost transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Transport {
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP's flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10); SCTP's first chunk
    /// type (INIT 1, INIT-ACK 2, …); 0 for UDP.
    #[serde(default)]
    pub tcp_flags: u8,
    /// TCP's sequence number, 0 for the others.
    #[serde(default)]
    pub seq: u32,
    /// Bytes after the transport header, as far as the capture holds them.
    #[serde(default)]
    pub payload: u32,
}

/// What a packet is, as far as its headers go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Decoded {
    /// Source and destination MAC, for frames that have them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<(Mac, Mac)>,
    /// IP headers, outermost first: two or more when the packet is encapsulated.
    pub ip: Vec<IpHeader>,
    /// Whether a GRE header sits between the outer and the inner IP header.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gre: bool,
    /// Whether a UDP and a GUE header do (TUN over GUE).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gue: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl Decoded {
    /// The innermost IP header: the addresses the client and the service see.
    pub fn inner(&self) -> Option<&IpHeader> {
        self.ip.last()
    }
    /// The outermost IP header: the one routers route on.
    pub fn outer(&self) -> Option<&IpHeader> {
        self.ip.first()
    }
    /// Whether the packet is wrapped in a second IP header (TUN mode).
    pub fn encapsulated(&self) -> bool {
        self.ip.len() > 1
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes a frame: Ethernet (`ethernet`, with VLAN tags) or a bare IP packet (tunnel devices).
/// A packet that is not IP, or is cut short, gives what could be read (possibly nothing).
pub fn decode(ethernet: bool, frame: &[u8]) -> Decoded {
    let mut d = Decoded::default();
    let mut rest = frame;
    if ethernet {
        let (Some(dst), Some(src)) = (frame.get(0..6), frame.get(6..12)) else { return d };
        d.macs = Some((Mac(src.try_into().expect("6 bytes")), Mac(dst.try_into().expect("6 bytes"))));
        let mut at = 12;
        let mut ethertype = be16(frame, at).unwrap_or(0);
        while ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            at += 4;
            ethertype = be16(frame, at).unwrap_or(0);
        }
        if ethertype != ETH_P_IP && ethertype != ETH_P_IPV6 {
            return d;
        }
        rest = frame.get(at + 2..).unwrap_or_default();
    }
    ip(&mut d, rest, 0);
    d
}

/// Reads one IP header at the start of `b` and what it carries.
fn ip(d: &mut Decoded, b: &[u8], depth: u8) {
    if depth > 4 {
        return;
    }
    let Some(&first) = b.first() else { return };
    let (header, payload) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            let (Some(src), Some(dst), Some(&proto), Some(&ttl)) = (b.get(12..16), b.get(16..20), b.get(9), b.get(8))
            else {
                return;
            };
            if ihl < 20 {
                return;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(src).expect("4 bytes"));
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(dst).expect("4 bytes"));
            let total = usize::from(be16(b, 2).unwrap_or(0));
            // A fragment after the first carries no transport header of its own.
            let frag_offset = be16(b, 6).unwrap_or(0) & 0x1fff;
            let end = if total >= ihl { total.min(b.len()) } else { b.len() };
            let payload = if frag_offset == 0 { b.get(ihl..end).unwrap_or_default() } else { &[][..] };
            (IpHeader { src: src.into(), dst: dst.into(), protocol: proto, ttl }, payload)
        }
        6 => {
            let (Some(src), Some(dst), Some(&next), Some(&hops)) = (b.get(8..24), b.get(24..40), b.get(6), b.get(7))
            else {
                return;
            };
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(src).expect("16 bytes"));
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(dst).expect("16 bytes"));
            let end = (40 + usize::from(be16(b, 4).unwrap_or(0))).min(b.len());
            let mut proto = next;
            let mut at = 40;
            let mut fragment_tail = false;
            // Hop-by-hop, routing, fragment, destination options: skipped to what they carry.
            loop {
                match proto {
                    0 | 43 | 60 => {
                        let (Some(&n), Some(&len)) = (b.get(at), b.get(at + 1)) else { break };
                        proto = n;
                        at += (usize::from(len) + 1) * 8;
                    }
                    44 => {
                        let Some(&n) = b.get(at) else { break };
                        fragment_tail = be16(b, at + 2).unwrap_or(0) >> 3 != 0;
                        proto = n;
                        at += 8;
                    }
                    _ => break,
                }
            }
            let payload = if fragment_tail || at > end { &[][..] } else { &b[at..end] };
            (IpHeader { src: src.into(), dst: dst.into(), protocol: proto, ttl: hops }, payload)
        }
        _ => return,
    };
    d.ip.push(header);
    match header.protocol {
        IPPROTO_IPIP | IPPROTO_IPV6 => ip(d, payload, depth + 1),
        IPPROTO_GRE => {
            // RFC 2784/2890: checksum, key and sequence number are optional words.
            let (Some(flags), Some(proto)) = (be16(payload, 0), be16(payload, 2)) else { return };
            if flags & 0x0007 != 0 {
                return; // GRE version 1 (PPTP) carries no IP of ours
            }
            let words = [0x8000u16, 0x2000, 0x1000].iter().filter(|&&f| flags & f != 0).count();
            if proto == ETH_P_IP || proto == ETH_P_IPV6 {
                d.gre = true;
                ip(d, payload.get(4 + 4 * words..).unwrap_or_default(), depth + 1);
            }
        }
        IPPROTO_TCP => {
            let (Some(sp), Some(dp), Some(seq), Some(&off), Some(&flags)) =
                (be16(payload, 0), be16(payload, 2), be32(payload, 4), payload.get(12), payload.get(13))
            else {
                return;
            };
            let hlen = usize::from(off >> 4) * 4;
            let data = payload.len().saturating_sub(hlen) as u32;
            d.transport = Some(Transport {
                protocol: IPPROTO_TCP,
                src_port: sp,
                dst_port: dp,
                tcp_flags: flags,
                seq,
                payload: data,
            });
        }
        IPPROTO_UDP if depth < 4 && gue_inner(payload).is_some() => {
            d.gue = true;
            ip(d, gue_inner(payload).unwrap_or_default(), depth + 1);
        }
        IPPROTO_UDP | IPPROTO_SCTP => {
            let (Some(sp), Some(dp)) = (be16(payload, 0), be16(payload, 2)) else { return };
            let hlen = if header.protocol == IPPROTO_UDP { 8 } else { 12 };
            let data = payload.len().saturating_sub(hlen) as u32;
            let chunk = if header.protocol == IPPROTO_SCTP { payload.get(12).copied().unwrap_or(0) } else { 0 };
            d.transport = Some(Transport {
                protocol: header.protocol,
                src_port: sp,
                dst_port: dp,
                tcp_flags: chunk,
                seq: 0,
                payload: data,
            });
        }
        _ => {}
    }
}

/// The IP packet a UDP datagram carries in GUE (draft-ietf-intarea-gue): version 0 with an
/// IP-in-IP or IPv6 protocol and the header length it says, or version 1 (the IP header right
/// after UDP's). Only when what follows is an IP header of that version: a GUE port is not known
/// from the packet alone, and other UDP must not read as a tunnel.
fn gue_inner(udp: &[u8]) -> Option<&[u8]> {
    let g = udp.get(8..)?;
    let first = *g.first()?;
    let (inner, version) = match first >> 6 {
        0 => {
            // C (control) bit clear, HLEN in 32-bit words after the 4-byte base header.
            if first & 0x20 != 0 {
                return None;
            }
            let hlen = 4 + usize::from(first & 0x1f) * 4;
            let version = match *g.get(1)? {
                IPPROTO_IPIP => 4,
                IPPROTO_IPV6 => 6,
                _ => return None,
            };
            (g.get(hlen..)?, version)
        }
        1 => (g, first >> 4),
        _ => return None,
    };
    let min = if version == 4 { 20 } else { 40 };
    (inner.len() >= min && inner[0] >> 4 == version && (version == 6 || inner[0] & 0x0f >= 5)).then_some(inner)
}

/// `SYN`, `SYN,ACK`, `ACK`, `PSH,ACK`, `FIN,ACK`, `RST`.
pub fn tcp_flags(flags: u8) -> String {
    let names = [(0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK")];
    let v: Vec<&str> = names.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    if v.is_empty() { "none".into() } else { v.join(",") }
}

/// SCTP's chunk type by name: `INIT`, `INIT-ACK`, `COOKIE-ECHO`, ….
pub fn sctp_chunk(t: u8) -> String {
    let names = [
        "DATA",
        "INIT",
        "INIT-ACK",
        "SACK",
        "HEARTBEAT",
        "HEARTBEAT-ACK",
        "ABORT",
        "SHUTDOWN",
        "SHUTDOWN-ACK",
        "ERROR",
        "COOKIE-ECHO",
        "COOKIE-ACK",
    ];
    match names.get(usize::from(t)) {
        Some(n) => n.to_string(),
        None if t == 14 => "SHUTDOWN-COMPLETE".into(),
        None => format!("chunk {t}"),
    }
}

/// `tcp`, `udp`, `sctp`, or the number.
pub fn protocol_name(p: u8) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_SCTP => "sctp".into(),
        IPPROTO_IPIP => "ipip".into(),
        IPPROTO_IPV6 => "ipv6".into(),
        IPPROTO_GRE => "gre".into(),
        n => format!("proto {n}"),
    }
}

/// A probe's packets, whatever the hops did to them: the transport protocol and the client's
/// port on one side, one of the service's ports (the VIP's or a real server's) on the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub protocol: u8,
    pub client_port: u16,
    pub service_ports: Vec<u16>,
}

impl Flow {
    pub fn matches(&self, d: &Decoded) -> bool {
        let Some(t) = d.transport else { return false };
        t.protocol == self.protocol
            && ((t.src_port == self.client_port && self.service_ports.contains(&t.dst_port))
                || (t.dst_port == self.client_port && self.service_ports.contains(&t.src_port)))
    }
}

/// A TCP connection to leave out of a capture, both ways (the capture's own SSH session: its
/// packets carry the capture, and would capture themselves without end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversation {
    pub a: (IpAddr, u16),
    pub b: (IpAddr, u16),
}

impl Conversation {
    /// From `SSH_CONNECTION` (`client-ip client-port server-ip server-port`).
    pub fn from_ssh_connection(s: &str) -> Option<Conversation> {
        let w: Vec<&str> = s.split_whitespace().collect();
        let [ca, cp, sa, sp] = w.as_slice() else { return None };
        let unscoped = |a: &str| a.split('%').next().unwrap_or(a).parse::<IpAddr>().ok();
        Some(Conversation { a: (unscoped(ca)?, cp.parse().ok()?), b: (unscoped(sa)?, sp.parse().ok()?) })
    }

    pub fn matches(&self, d: &Decoded) -> bool {
        let (Some(ip), Some(t)) = (d.inner(), d.transport) else { return false };
        if t.protocol != IPPROTO_TCP {
            return false;
        }
        let (s, r) = ((ip.src, t.src_port), (ip.dst, t.dst_port));
        let same = |x: (IpAddr, u16), y: (IpAddr, u16)| canonical(x.0) == canonical(y.0) && x.1 == y.1;
        (same(s, self.a) && same(r, self.b)) || (same(s, self.b) && same(r, self.a))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (sshd reports either).
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4 header (no options) with `payload`, checksum left 0.
    pub fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut b = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
        b[2..4].copy_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&src);
        b.extend_from_slice(&dst);
        b.extend_from_slice(payload);
        b
    }

    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        b.extend_from_slice(&[next, 63]);
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(payload);
        b
    }

    pub fn tcp(sport: u16, dport: u16, flags: u8, seq: u32, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        b.extend_from_slice(data);
        b
    }

    pub fn eth(src: [u8; 6], dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut b = dst.to_vec();
        b.extend_from_slice(&src);
        b.extend_from_slice(&ethertype.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn a_tunnelled_syn_reads_down_to_its_ports() {
        let inner = v4([10, 0, 1, 10], [10, 0, 0, 100], IPPROTO_TCP, &tcp(12345, 80, 0x02, 7, b""));
        let outer = v4([10, 0, 2, 1], [10, 0, 2, 11], IPPROTO_IPIP, &inner);
        let frame = eth([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], ETH_P_IP, &outer);
        let d = decode(true, &frame);
        assert_eq!(d.macs.unwrap().0.to_string(), "02:00:00:00:00:01");
        assert_eq!(d.ip.len(), 2);
        assert!(d.encapsulated());
        assert_eq!(d.outer().unwrap().dst, "10.0.2.11".parse::<IpAddr>().unwrap());
        assert_eq!(d.inner().unwrap().dst, "10.0.0.100".parse::<IpAddr>().unwrap());
        let t = d.transport.unwrap();
        assert_eq!((t.src_port, t.dst_port, t.tcp_flags, t.seq), (12345, 80, 0x02, 7));
        assert_eq!(tcp_flags(t.tcp_flags), "SYN");
        let flow = Flow { protocol: IPPROTO_TCP, client_port: 12345, service_ports: vec![80] };
        assert!(flow.matches(&d));
        assert!(!Flow { client_port: 12346, ..flow.clone() }.matches(&d));
        assert!(!Flow { protocol: IPPROTO_UDP, ..flow }.matches(&d));
    }

    #[test]
    fn ipv6_extension_headers_gre_and_vlans_are_read_through() {
        let a: Ipv6Addr = "fd00::10".parse().unwrap();
        let b: Ipv6Addr = "fd00::100".parse().unwrap();
        // Destination options (8 bytes) before UDP.
        let mut payload = vec![IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0];
        payload.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
        let pkt = v6(a, b, 60, &payload);
        let d = decode(false, &pkt);
        let t = d.transport.unwrap();
        assert_eq!((t.protocol, t.src_port, t.dst_port, t.payload), (IPPROTO_UDP, 12345, 53, 4));
        assert_eq!(d.inner().unwrap().ttl, 63);
        // GRE with a key, carrying IPv4, in a VLAN-tagged frame.
        let inner = v4([1, 1, 1, 1], [2, 2, 2, 2], IPPROTO_TCP, &tcp(1, 2, 0x12, 0, b"xy"));
        let mut gre = vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 9];
        gre.extend_from_slice(&inner);
        let outer = v4([3, 3, 3, 3], [4, 4, 4, 4], IPPROTO_GRE, &gre);
        let mut tagged = vec![0, 5];
        tagged.extend_from_slice(&ETH_P_IP.to_be_bytes());
        tagged.extend_from_slice(&outer);
        let d = decode(true, &eth([0; 6], [1; 6], ETH_P_8021Q, &tagged));
        assert!(d.gre && d.encapsulated(), "{d:?}");
        let t = d.transport.unwrap();
        assert_eq!((t.tcp_flags, t.payload), (0x12, 2));
        assert_eq!(tcp_flags(0x12), "SYN,ACK");
    }

    #[test]
    fn a_gue_packet_reads_down_to_its_inner_ports_and_plain_udp_stays_udp() {
        let inner = v4([192, 168, 10, 6], [192, 168, 188, 100], IPPROTO_TCP, &tcp(40000, 80, 0x02, 7, &[]));
        let mut gue = vec![0, IPPROTO_IPIP, 0, 0];
        gue.extend(&inner);
        let mut udp = vec![0xc3, 0x50, 0x17, 0xc0, 0, 0, 0, 0];
        udp.extend(&gue);
        let outer = v4([192, 168, 188, 8], [192, 168, 188, 81], IPPROTO_UDP, &udp);
        let d = decode(false, &outer);
        assert!(d.gue && !d.gre && d.encapsulated(), "{d:?}");
        assert_eq!(d.inner().unwrap().dst, IpAddr::from([192, 168, 188, 100]));
        let t = d.transport.unwrap();
        assert_eq!((t.src_port, t.dst_port, t.tcp_flags), (40000, 80, 0x02));
        // A DNS answer is not a tunnel, nor a datagram that only starts like GUE.
        let dns =
            v4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, &[0, 53, 0x9c, 0x40, 0, 20, 0, 0, 0x12, 0x34, 0x81, 0x80]);
        let d = decode(false, &dns);
        assert!(!d.gue && !d.encapsulated() && d.transport.unwrap().src_port == 53, "{d:?}");
        let mut fake = vec![0x17, 0xc0, 0x17, 0xc0, 0, 0, 0, 0, 0, IPPROTO_IPIP, 0, 0];
        fake.extend([0x55; 20]);
        assert!(!decode(false, &v4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_UDP, &fake)).gue);
    }

    #[test]
    fn short_and_foreign_frames_give_what_they_hold() {
        assert_eq!(decode(true, &[1, 2, 3]), Decoded::default());
        let arp = eth([0; 6], [0xff; 6], 0x0806, &[0; 28]);
        let d = decode(true, &arp);
        assert!(d.ip.is_empty() && d.macs.is_some());
        let cut = v4([1, 1, 1, 1], [2, 2, 2, 2], IPPROTO_TCP, &[0, 1]);
        let d = decode(false, &cut);
        assert_eq!(d.ip.len(), 1);
        assert!(d.transport.is_none());
    }

    #[test]
    fn the_own_ssh_session_is_known_both_ways() {
        let c = Conversation::from_ssh_connection("::ffff:10.0.0.1 40000 10.0.0.2 22").unwrap();
        let out = decode(false, &v4([10, 0, 0, 2], [10, 0, 0, 1], IPPROTO_TCP, &tcp(22, 40000, 0x18, 0, b"x")));
        let back = decode(false, &v4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_TCP, &tcp(40000, 22, 0x10, 0, b"")));
        let other = decode(false, &v4([10, 0, 0, 1], [10, 0, 0, 2], IPPROTO_TCP, &tcp(40001, 22, 0x10, 0, b"")));
        assert!(c.matches(&out) && c.matches(&back));
        assert!(!c.matches(&other));
        assert!(Conversation::from_ssh_connection("garbage").is_none());
    }
}
