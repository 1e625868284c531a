//! `lvsctl trace`: from the packets every host captured, the walk of one request and its reply,
//! hop by hop, what each hop changed, and where the walk departs from what the mode requires
//! (`modes::Walk`). Hops are chained by the frames themselves (a frame sent by one host is the
//! frame the next host received: same destination MAC, same outer addresses), not by clocks, so
//! hosts whose clocks differ still give the right order.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::Role;
use crate::modes::{Rewrite, Walk};
use crate::wire::packet::{Decoded, IpHeader, protocol_name, tcp_flags};

/// One packet as a host saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub host: String,
    pub role: Role,
    pub interface: String,
    pub outgoing: bool,
    pub at_ns: u64,
    pub packet: Decoded,
}

impl Seen {
    fn dst_mac(&self) -> Option<crate::wire::packet::Mac> {
        self.packet.macs.map(|(_, d)| d)
    }
    /// The same frame on the wire: what a receiver saw of a sender's packet.
    fn same_frame(&self, other: &Seen) -> bool {
        self.dst_mac().is_some()
            && self.dst_mac() == other.dst_mac()
            && outer_pair(&self.packet) == outer_pair(&other.packet)
    }
}

fn outer_pair(d: &Decoded) -> Option<(IpAddr, IpAddr)> {
    d.outer().map(|h| (h.src, h.dst))
}

/// One hop of a walk, as printed and in `--output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Hop {
    pub host: String,
    pub role: String,
    pub interface: String,
    /// `in` (received) or `out` (sent).
    pub direction: String,
    /// Microseconds after the client sent the request (hosts' clocks: exact in a lab, whose
    /// hosts share one kernel).
    pub at_us: i64,
    /// The innermost addresses and ports: what the client and the service see.
    pub src: String,
    pub dst: String,
    /// The outer header of an encapsulated packet: `SRC > DST (ipip)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outer: Option<String>,
    /// `SRC-MAC > DST-MAC` on Ethernet links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    pub ttl: u8,
    /// TCP's flags, or the protocol.
    pub what: String,
    /// What this hop changed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// The walk of a request and its reply, and what is wrong with it.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Walked {
    pub request: Vec<Hop>,
    pub reply: Vec<Hop>,
    /// The real server whose answer reached the client (None when none did).
    pub answered_by: Option<String>,
    /// Where the walk departs from the mode, each naming the hop.
    pub departures: Vec<String>,
}

/// What the walk must look like.
pub struct Expect<'a> {
    pub walk: &'a Walk,
    pub mode: &'a str,
    /// The VIP and port the client sent to.
    pub vip: IpAddr,
    pub port: u16,
    pub client_port: u16,
    /// The service's real servers: host and address.
    pub real_servers: Vec<(String, IpAddr)>,
}

fn endpoint(a: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(a, port).to_string()
}

fn inner(s: &Seen) -> (IpHeader, u16, u16) {
    let h = *s.packet.inner().expect("a flow packet has an IP header");
    let t = s.packet.transport.expect("a flow packet has ports");
    (h, t.src_port, t.dst_port)
}

fn role_name(r: Role) -> String {
    r.as_str().to_string()
}

fn hop(s: &Seen, t0: u64, change: Option<String>) -> Hop {
    let (h, sp, dp) = inner(s);
    let t = s.packet.transport.expect("ports");
    let outer = s.packet.encapsulated().then(|| {
        let o = s.packet.outer().expect("outer");
        let kind = if s.packet.gre {
            "gre".to_string()
        } else if s.packet.gue {
            "gue".to_string()
        } else {
            protocol_name(o.protocol)
        };
        format!("{} > {} ({kind})", o.src, o.dst)
    });
    Hop {
        host: s.host.clone(),
        role: role_name(s.role),
        interface: s.interface.clone(),
        direction: if s.outgoing { "out" } else { "in" }.into(),
        at_us: (s.at_ns as i64 - t0 as i64) / 1000,
        src: endpoint(h.src, sp),
        dst: endpoint(h.dst, dp),
        outer,
        mac: s.packet.macs.map(|(a, b)| format!("{a} > {b}")),
        ttl: s.packet.outer().map(|o| o.ttl).unwrap_or(h.ttl),
        what: match t.protocol {
            crate::wire::packet::IPPROTO_TCP => tcp_flags(t.tcp_flags),
            crate::wire::packet::IPPROTO_SCTP => format!("sctp {}", crate::wire::packet::sctp_chunk(t.tcp_flags)),
            p => protocol_name(p),
        },
        change,
    }
}

/// The first packet of each direction per host, interface and way (a retransmission is the same
/// packet again).
fn firsts(seen: &[Seen], request: bool, client_port: u16) -> Vec<Seen> {
    let mut keys = BTreeSet::new();
    let mut v: Vec<&Seen> =
        seen.iter().filter(|s| s.packet.transport.is_some_and(|t| (t.src_port == client_port) == request)).collect();
    v.sort_by_key(|s| s.at_ns);
    v.into_iter().filter(|s| keys.insert((s.host.clone(), s.interface.clone(), s.outgoing))).cloned().collect()
}

/// The hops from `start` (a packet sent), following each frame to the host that received it.
fn chain(obs: &[Seen], start: usize) -> Vec<usize> {
    let mut path = vec![start];
    let mut used: BTreeSet<usize> = [start].into();
    let mut cur = start;
    while let Some(next) = (0..obs.len())
        .filter(|i| !used.contains(i) && !obs[*i].outgoing && obs[*i].host != obs[cur].host)
        .find(|i| obs[*i].same_frame(&obs[cur]))
    {
        path.push(next);
        used.insert(next);
        let host = obs[next].host.clone();
        let at = obs[next].at_ns;
        // Received again on another device of the host, decapsulated by a tunnel device: with
        // fewer headers. (The same flow received again with as many is a later pass through the
        // host: a router that one-armed NAT's director sends the request back through.)
        let layers = obs[next].packet.ip.len();
        let mut more: Vec<usize> = (0..obs.len())
            .filter(|i| {
                !used.contains(i)
                    && obs[*i].host == host
                    && !obs[*i].outgoing
                    && obs[*i].at_ns >= at
                    && obs[*i].packet.ip.len() < layers
            })
            .collect();
        more.sort_by_key(|i| obs[*i].at_ns);
        for i in more {
            path.push(i);
            used.insert(i);
        }
        let out = (0..obs.len())
            .filter(|i| !used.contains(i) && obs[*i].host == host && obs[*i].outgoing && obs[*i].at_ns >= at)
            .min_by_key(|i| obs[*i].at_ns);
        match out {
            Some(o) => {
                path.push(o);
                used.insert(o);
                cur = o;
            }
            None => break,
        }
    }
    path
}

/// What changed between two sightings of the packet on one host (`before` received, `after`
/// received again or sent).
fn change_between(
    before: &Seen,
    after: &Seen,
    next: Option<&str>,
    names: &dyn Fn(IpAddr) -> Option<String>,
) -> Option<String> {
    let (bi, bs, bd) = inner(before);
    let (ai, as_, ad) = inner(after);
    let named = |a: IpAddr| names(a).map(|n| format!(" ({n})")).unwrap_or_default();
    let mut what = Vec::new();
    let (bl, al) = (before.packet.ip.len(), after.packet.ip.len());
    if al > bl {
        let o = after.packet.outer().expect("outer");
        let kind = if after.packet.gre {
            "GRE".to_string()
        } else if after.packet.gue {
            "GUE (UDP)".to_string()
        } else {
            "IP-in-IP".to_string()
        };
        what.push(format!("outer header added: {} > {}{} ({kind})", o.src, o.dst, named(o.dst)));
    } else if al < bl {
        let o = before.packet.outer().expect("outer");
        what.push(format!("outer header {} > {} removed (on {})", o.src, o.dst, after.interface));
    }
    if (bi.dst, bd) != (ai.dst, ad) {
        what.push(format!(
            "destination rewritten: {} -> {}{}",
            endpoint(bi.dst, bd),
            endpoint(ai.dst, ad),
            named(ai.dst)
        ));
    }
    if (bi.src, bs) != (ai.src, as_) {
        what.push(format!("source rewritten: {} -> {}", endpoint(bi.src, bs), endpoint(ai.src, as_)));
    }
    if what.is_empty() && after.outgoing {
        let ttl = |s: &Seen| s.packet.outer().map(|o| o.ttl).unwrap_or(0);
        let mac = after.dst_mac().map(|m| format!(" ({m})")).unwrap_or_default();
        let to = next.map(|n| format!(" to {n}")).unwrap_or_default();
        let hops =
            if ttl(before) != ttl(after) { format!(", TTL {} -> {}", ttl(before), ttl(after)) } else { String::new() };
        if after.role == Role::Director {
            what.push(format!("only the MAC changed{to}{mac}{hops}; addresses untouched"));
        } else {
            what.push(format!("routed{to}{hops}"));
        }
    }
    (!what.is_empty()).then(|| what.join("; "))
}

/// The walk of the probe's first request packet and first reply packet through `seen`.
pub fn walk(seen: &[Seen], e: &Expect) -> Walked {
    let names = |a: IpAddr| e.real_servers.iter().find(|(_, r)| *r == a).map(|(h, _)| h.clone());
    let mut w = Walked::default();
    let req = firsts(seen, true, e.client_port);
    let rep = firsts(seen, false, e.client_port);
    let t0 = req.iter().chain(rep.iter()).map(|s| s.at_ns).min().unwrap_or(0);
    let is_rs = |s: &Seen| matches!(s.role, Role::RealServer | Role::SorryServer);

    // The request, from the client's first packet.
    let Some(start) = req.iter().position(|s| s.role == Role::Client && s.outgoing) else {
        w.departures.push("the client sent nothing that was captured: see the probe's error above".into());
        return w;
    };
    let path = chain(&req, start);
    w.request = hops(&req, &path, t0, &names, "sent by the client");
    let director_in = path.iter().position(|&i| req[i].role == Role::Director && !req[i].outgoing);
    let director_out = path.iter().position(|&i| req[i].role == Role::Director && req[i].outgoing);
    let last = &req[*path.last().expect("the start")];
    match (director_in, director_out) {
        (None, _) => w.departures.push(format!(
            "the request never reached a director: last seen {} {} on {} ({} {})",
            if last.outgoing { "leaving" } else { "arriving at" },
            last.host,
            last.interface,
            endpoint(inner(last).0.src, inner(last).1),
            endpoint(inner(last).0.dst, inner(last).2),
        )),
        (Some(_), None) => w.departures.push(format!(
            "the director {} received the request but did not forward it to a real server (no IPVS service for {}, or no real server it could use)",
            last.host,
            endpoint(e.vip, e.port)
        )),
        (Some(a), Some(b)) => {
            let (got, sent) = (&req[path[a]], &req[path[b]]);
            if let Some(why) = director_rewrite(got, sent, e) {
                w.departures.push(format!("at {} (out on {}): {why}; {}", sent.host, sent.interface, e.walk.why));
            }
        }
    }
    if director_out.is_some() && !is_rs(last) {
        w.departures.push(format!(
            "the request did not reach a real server of the service: last seen {} {} on {}",
            if last.outgoing { "leaving" } else { "arriving at" },
            last.host,
            last.interface
        ));
    }

    // The reply, from the real server that sent it.
    let Some(start) = rep.iter().position(|s| is_rs(s) && s.outgoing) else {
        w.departures.push("no real server sent a reply".into());
        return w;
    };
    let path = chain(&rep, start);
    let answered = rep[start].host.clone();
    w.reply = hops(&rep, &path, t0, &names, &format!("answered by {answered}"));
    let through: Vec<&Seen> = path.iter().map(|&i| &rep[i]).filter(|s| s.role == Role::Director).collect();
    let end = &rep[*path.last().expect("the start")];
    if e.walk.reply_through_director && through.is_empty() {
        w.departures.push(format!(
            "the reply from {answered} did not pass through the director (it went {}): {}",
            path.iter().map(|&i| rep[i].host.as_str()).collect::<Vec<_>>().join(" > ").replace_dups(),
            e.walk.why
        ));
    }
    if !e.walk.reply_through_director
        && let Some(d) = through.first()
    {
        w.departures.push(format!(
            "the reply from {answered} passed through the director {} (in on {}): {}",
            d.host, d.interface, e.walk.why
        ));
    }
    if end.role == Role::Client && !end.outgoing {
        let (h, sp, _) = inner(end);
        if (h.src, sp) == (e.vip, e.port) {
            w.answered_by = Some(answered);
        } else {
            w.departures.push(format!(
                "the client received the reply from {} instead of the VIP {}: it will not match it to its request",
                endpoint(h.src, sp),
                endpoint(e.vip, e.port)
            ));
        }
    } else {
        w.departures.push(format!(
            "the reply did not reach the client: last seen {} {} on {}",
            if end.outgoing { "leaving" } else { "arriving at" },
            end.host,
            end.interface
        ));
    }
    w
}

trait Dedup {
    fn replace_dups(self) -> String;
}

impl Dedup for String {
    /// `web1 > web1 > router > router` → `web1 > router`.
    fn replace_dups(self) -> String {
        let mut v: Vec<&str> = Vec::new();
        for p in self.split(" > ") {
            if v.last() != Some(&p) {
                v.push(p);
            }
        }
        v.join(" > ")
    }
}

/// Why the director's forwarding is not the mode's (None when it is).
fn director_rewrite(got: &Seen, sent: &Seen, e: &Expect) -> Option<String> {
    let (gi, _, gd) = inner(got);
    let (si, _, sd) = inner(sent);
    let rips: Vec<IpAddr> = e.real_servers.iter().map(|(_, a)| *a).collect();
    let layers = (got.packet.ip.len(), sent.packet.ip.len());
    match e.walk.director_does {
        Rewrite::Destination if layers.1 == layers.0 && rips.contains(&si.dst) => None,
        Rewrite::Destination => Some(format!(
            "expected the destination rewritten to a real server's address, but it left as {}",
            endpoint(si.dst, sd)
        )),
        Rewrite::DestinationAndSource if layers.1 == layers.0 && rips.contains(&si.dst) && si.src != gi.src => None,
        Rewrite::DestinationAndSource => Some(format!(
            "expected the destination rewritten to a real server's address and the source to the director's, but it left as {} > {}",
            si.src,
            endpoint(si.dst, sd)
        )),
        Rewrite::MacOnly if layers.1 == layers.0 && (si.src, si.dst) == (gi.src, gi.dst) && sd == gd => None,
        Rewrite::MacOnly => Some(format!(
            "expected only the MAC to change, but it left as {} > {}{}",
            si.src,
            endpoint(si.dst, sd),
            if layers.1 > layers.0 { " inside an outer header" } else { "" }
        )),
        Rewrite::Encapsulate
            if layers.1 == layers.0 + 1 && sent.packet.outer().is_some_and(|o| rips.contains(&o.dst)) =>
        {
            None
        }
        Rewrite::Encapsulate => Some(format!(
            "expected an outer header to a real server, but it left {}",
            match sent.packet.outer() {
                Some(o) if layers.1 > layers.0 => format!("wrapped to {}", o.dst),
                _ => format!("unwrapped, to {}", endpoint(si.dst, sd)),
            }
        )),
    }
}

fn hops(obs: &[Seen], path: &[usize], t0: u64, names: &dyn Fn(IpAddr) -> Option<String>, first: &str) -> Vec<Hop> {
    let mut out: Vec<Hop> = Vec::new();
    for (n, &i) in path.iter().enumerate() {
        let s = &obs[i];
        let change = if n == 0 {
            Some(first.to_string())
        } else {
            // Against the packet as this host first received it.
            let before = path[..n].iter().rev().map(|&j| &obs[j]).find(|p| p.host == s.host && !p.outgoing);
            // The host that received what this one sent.
            let next = path.get(n + 1).map(|&j| obs[j].host.as_str()).filter(|h| *h != s.host);
            match before {
                Some(b) => change_between(b, s, next, names),
                None => None,
            }
        };
        out.push(hop(s, t0, change));
    }
    if let Some(last) = path.last().map(|&i| &obs[i])
        && !last.outgoing
        && let Some(h) = out.last_mut()
        && h.change.is_none()
    {
        h.change = Some(format!("delivered to {}'s socket", last.host));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::{Mac, Transport};

    const CLIENT: &str = "192.168.10.6";
    const VIP: &str = "192.168.188.100";
    const RIP: &str = "192.168.188.81";
    const DIP: &str = "192.168.188.8";

    fn ip(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    struct P {
        layers: Vec<(&'static str, &'static str, u8)>,
        sport: u16,
        dport: u16,
        macs: Option<(u8, u8)>,
    }

    fn seen(host: &str, role: Role, iface: &str, out: bool, at: u64, p: P) -> Seen {
        let n = p.layers.len();
        let ip = p
            .layers
            .iter()
            .enumerate()
            .map(|(i, (s, d, ttl))| IpHeader {
                src: ip(s),
                dst: ip(d),
                protocol: if i + 1 < n { 4 } else { 6 },
                ttl: *ttl,
            })
            .collect();
        let transport =
            Some(Transport { protocol: 6, src_port: p.sport, dst_port: p.dport, tcp_flags: 2, seq: 1, payload: 0 });
        Seen {
            host: host.into(),
            role,
            interface: iface.into(),
            outgoing: out,
            at_ns: at,
            packet: Decoded { macs: p.macs.map(|(a, b)| (mac(a), mac(b))), ip, gre: false, gue: false, transport },
        }
    }

    fn req(layers: Vec<(&'static str, &'static str, u8)>, macs: (u8, u8)) -> P {
        P { layers, sport: 20000, dport: 80, macs: Some(macs) }
    }
    fn rep(layers: Vec<(&'static str, &'static str, u8)>, macs: (u8, u8)) -> P {
        P { layers, sport: 80, dport: 20000, macs: Some(macs) }
    }

    /// client(1) - router(2 front, 3 back) - lvs(4) - web1(5)
    fn dr_lab(reply_via_director: bool) -> Vec<Seen> {
        use Role::*;
        let mut v = vec![
            seen("client", Client, "eth0", true, 10, req(vec![(CLIENT, VIP, 64)], (1, 2))),
            seen("router", Router, "eth1", false, 20, req(vec![(CLIENT, VIP, 64)], (1, 2))),
            seen("router", Router, "eth0", true, 30, req(vec![(CLIENT, VIP, 63)], (3, 4))),
            seen("lvs", Director, "eth0", false, 40, req(vec![(CLIENT, VIP, 63)], (3, 4))),
            seen("lvs", Director, "eth0", true, 50, req(vec![(CLIENT, VIP, 63)], (4, 5))),
            seen("web1", RealServer, "eth0", false, 60, req(vec![(CLIENT, VIP, 63)], (4, 5))),
        ];
        if reply_via_director {
            v.extend([
                seen("web1", RealServer, "eth0", true, 70, rep(vec![(VIP, CLIENT, 64)], (5, 4))),
                seen("lvs", Director, "eth0", false, 80, rep(vec![(VIP, CLIENT, 64)], (5, 4))),
                seen("lvs", Director, "eth0", true, 90, rep(vec![(VIP, CLIENT, 63)], (4, 3))),
            ]);
        } else {
            v.push(seen("web1", RealServer, "eth0", true, 70, rep(vec![(VIP, CLIENT, 64)], (5, 3))));
        }
        v.extend([
            seen("router", Router, "eth0", false, 100, rep(vec![(VIP, CLIENT, 63)], (4, 3))),
            seen("router", Router, "eth0", false, 100, rep(vec![(VIP, CLIENT, 64)], (5, 3))),
            seen("router", Router, "eth1", true, 110, rep(vec![(VIP, CLIENT, 62)], (2, 1))),
            seen("client", Client, "eth0", false, 120, rep(vec![(VIP, CLIENT, 62)], (2, 1))),
        ]);
        // Only one of the two router sightings is real in each case.
        let keep = if reply_via_director { 63 } else { 64 };
        v.retain(|s| {
            !(s.host == "router"
                && !s.outgoing
                && s.packet.transport.unwrap().src_port == 80
                && s.packet.ip[0].ttl != keep)
        });
        v
    }

    fn expect(walk: &'static Walk, mode: &'static str) -> Expect<'static> {
        Expect {
            walk,
            mode,
            vip: ip(VIP),
            port: 80,
            client_port: 20000,
            real_servers: vec![("web1".into(), ip(RIP)), ("web2".into(), ip("192.168.188.82"))],
        }
    }

    #[test]
    fn a_dr_walk_changes_only_the_mac_at_the_director_and_bypasses_it_back() {
        let w = walk(&dr_lab(false), &expect(&crate::modes::dr::PROFILE.walk, "dr"));
        assert!(w.departures.is_empty(), "{:?}", w.departures);
        assert_eq!(w.answered_by.as_deref(), Some("web1"));
        let path: Vec<String> =
            w.request.iter().map(|h| format!("{} {} {}", h.host, h.interface, h.direction)).collect();
        assert_eq!(
            path,
            ["client eth0 out", "router eth1 in", "router eth0 out", "lvs eth0 in", "lvs eth0 out", "web1 eth0 in"]
        );
        assert_eq!(w.request[2].change.as_deref(), Some("routed to lvs, TTL 64 -> 63"), "{:?}", w.request[2]);
        assert_eq!(
            w.request[4].change.as_deref(),
            Some("only the MAC changed to web1 (02:00:00:00:00:05); addresses untouched")
        );
        let back: Vec<&str> = w.reply.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(back, ["web1", "router", "router", "client"]);
    }

    #[test]
    fn a_dr_reply_through_the_director_is_a_departure_that_names_it() {
        let w = walk(&dr_lab(true), &expect(&crate::modes::dr::PROFILE.walk, "dr"));
        assert_eq!(w.departures.len(), 1, "{:?}", w.departures);
        assert!(w.departures[0].contains("passed through the director lvs (in on eth0)"), "{}", w.departures[0]);
        assert!(w.departures[0].contains("in DR"));
        // The same packets are what NAT requires of its reply, but NAT's director rewrites.
        let w = walk(&dr_lab(true), &expect(&crate::modes::nat::PROFILE.walk, "nat"));
        assert!(w.departures.iter().any(|d| d.contains("expected the destination rewritten")), "{:?}", w.departures);
    }

    #[test]
    fn a_tun_walk_adds_the_outer_header_at_the_director_and_removes_it_on_tunl0() {
        use Role::*;
        let seen = vec![
            seen("client", Client, "eth0", true, 10, req(vec![(CLIENT, VIP, 64)], (1, 4))),
            seen("lvs", Director, "eth0", false, 40, req(vec![(CLIENT, VIP, 64)], (1, 4))),
            seen("lvs", Director, "eth0", true, 50, req(vec![(DIP, RIP, 64), (CLIENT, VIP, 64)], (4, 5))),
            seen("web1", RealServer, "eth0", false, 60, req(vec![(DIP, RIP, 64), (CLIENT, VIP, 64)], (4, 5))),
            seen("web1", RealServer, "tunl0", false, 61, P { macs: None, ..req(vec![(CLIENT, VIP, 64)], (0, 0)) }),
            seen("web1", RealServer, "eth0", true, 70, rep(vec![(VIP, CLIENT, 64)], (5, 1))),
            seen("client", Client, "eth0", false, 80, rep(vec![(VIP, CLIENT, 64)], (5, 1))),
        ];
        let w = walk(&seen, &expect(&crate::modes::tun::PROFILE.walk, "tun"));
        assert!(w.departures.is_empty(), "{:?}", w.departures);
        assert!(
            w.request[2]
                .change
                .as_deref()
                .unwrap()
                .contains("outer header added: 192.168.188.8 > 192.168.188.81 (web1)")
        );
        assert_eq!(w.request[2].outer.as_deref(), Some("192.168.188.8 > 192.168.188.81 (ipip)"));
        assert!(w.request[4].change.as_deref().unwrap().contains("removed (on tunl0)"), "{:?}", w.request[4]);
        assert_eq!(w.reply.len(), 2);
        // A DR expectation of the same packets departs at the director.
        let w = walk(&seen, &expect(&crate::modes::dr::PROFILE.walk, "dr"));
        assert!(
            w.departures[0].contains("at lvs (out on eth0): expected only the MAC to change"),
            "{:?}",
            w.departures
        );
    }

    #[test]
    fn a_nat_walk_rewrites_both_ways_and_a_missing_reply_is_named() {
        use Role::*;
        let mut seen = vec![
            seen("client", Client, "eth0", true, 10, req(vec![(CLIENT, VIP, 64)], (1, 4))),
            seen("lvs", Director, "eth0", false, 40, req(vec![(CLIENT, VIP, 64)], (1, 4))),
            seen("lvs", Director, "eth1", true, 50, req(vec![(CLIENT, RIP, 63)], (6, 5))),
            seen("web1", RealServer, "eth0", false, 60, req(vec![(CLIENT, RIP, 63)], (6, 5))),
            seen("web1", RealServer, "eth0", true, 70, rep(vec![(RIP, CLIENT, 64)], (5, 6))),
            seen("lvs", Director, "eth1", false, 80, rep(vec![(RIP, CLIENT, 64)], (5, 6))),
            seen("lvs", Director, "eth0", true, 90, rep(vec![(VIP, CLIENT, 63)], (4, 1))),
            seen("client", Client, "eth0", false, 100, rep(vec![(VIP, CLIENT, 63)], (4, 1))),
        ];
        let w = walk(&seen, &expect(&crate::modes::nat::PROFILE.walk, "nat"));
        assert!(w.departures.is_empty(), "{:?}", w.departures);
        assert!(
            w.request[2]
                .change
                .as_deref()
                .unwrap()
                .contains("destination rewritten: 192.168.188.100:80 -> 192.168.188.81:80 (web1)")
        );
        assert!(
            w.reply[2].change.as_deref().unwrap().contains("source rewritten: 192.168.188.81:80 -> 192.168.188.100:80")
        );
        assert_eq!(w.request[0].at_us, 0);
        seen.truncate(5);
        let w = walk(&seen, &expect(&crate::modes::nat::PROFILE.walk, "nat"));
        assert!(w.departures.iter().any(|d| d.contains("did not pass through the director")), "{:?}", w.departures);
        assert!(
            w.departures.iter().any(|d| d.contains("did not reach the client: last seen leaving web1")),
            "{:?}",
            w.departures
        );
        assert_eq!(w.answered_by, None);
    }

    /// One-armed NAT: the request leaves the director with its address as the source (one arm,
    /// eth0 both ways), the reply comes back to it and leaves from the VIP to the client; the
    /// same packets under two-armed NAT's expectation are fine too, but two-armed NAT's packets
    /// are not one-armed.
    #[test]
    fn a_one_armed_nat_walk_rewrites_the_source_too() {
        use Role::*;
        // As captured in nat-onearm.toml's lab: the real server sits behind the router, which
        // each packet crosses twice (the director has one arm, towards the router).
        const RIP: &str = "10.20.0.81";
        let one = vec![
            seen("client", Client, "eth0", true, 10, req(vec![(CLIENT, VIP, 64)], (1, 2))),
            seen("router", Router, "eth1", false, 20, req(vec![(CLIENT, VIP, 64)], (1, 2))),
            seen("router", Router, "eth0", true, 30, req(vec![(CLIENT, VIP, 63)], (3, 4))),
            seen("lvs", Director, "eth0", false, 40, req(vec![(CLIENT, VIP, 63)], (3, 4))),
            seen("lvs", Director, "eth0", true, 50, req(vec![(DIP, RIP, 62)], (4, 3))),
            seen("router", Router, "eth0", false, 55, req(vec![(DIP, RIP, 62)], (4, 3))),
            seen("router", Router, "eth2", true, 57, req(vec![(DIP, RIP, 61)], (7, 5))),
            seen("web1", RealServer, "eth0", false, 60, req(vec![(DIP, RIP, 61)], (7, 5))),
            seen("web1", RealServer, "eth0", true, 70, rep(vec![(RIP, DIP, 64)], (5, 7))),
            seen("router", Router, "eth2", false, 72, rep(vec![(RIP, DIP, 64)], (5, 7))),
            seen("router", Router, "eth0", true, 75, rep(vec![(RIP, DIP, 63)], (3, 4))),
            seen("lvs", Director, "eth0", false, 80, rep(vec![(RIP, DIP, 63)], (3, 4))),
            seen("lvs", Director, "eth0", true, 90, rep(vec![(VIP, CLIENT, 62)], (4, 3))),
            seen("router", Router, "eth0", false, 92, rep(vec![(VIP, CLIENT, 62)], (4, 3))),
            seen("router", Router, "eth1", true, 95, rep(vec![(VIP, CLIENT, 61)], (2, 1))),
            seen("client", Client, "eth0", false, 100, rep(vec![(VIP, CLIENT, 61)], (2, 1))),
        ];
        let one_arm = &crate::modes::nat::ONE_ARM.walk;
        let behind = |e: Expect<'static>| Expect { real_servers: vec![("web1".into(), ip(RIP))], ..e };
        let w = walk(&one, &behind(expect(one_arm, "nat")));
        assert!(w.departures.is_empty(), "{:?}", w.departures);
        assert_eq!(w.answered_by.as_deref(), Some("web1"));
        let at = |hops: &[Hop]| {
            hops.iter().map(|h| format!("{} {} {}", h.host, h.interface, h.direction)).collect::<Vec<_>>()
        };
        let there_and_back = [
            "client eth0 out",
            "router eth1 in",
            "router eth0 out",
            "lvs eth0 in",
            "lvs eth0 out",
            "router eth0 in",
            "router eth2 out",
            "web1 eth0 in",
        ];
        assert_eq!(at(&w.request), there_and_back);
        let change = w.request[4].change.as_deref().unwrap();
        assert!(change.contains("source rewritten: 192.168.10.6:20000 -> 192.168.188.8:20000"), "{change}");
        let change = w.reply[4].change.as_deref().unwrap();
        assert!(change.contains("destination rewritten: 192.168.188.8:20000 -> 192.168.10.6:20000"), "{change}");
        assert_eq!(w.reply.len(), 8);
        // Two-armed NAT's packets (the client's source kept) depart from one-armed NAT's walk.
        let two = vec![
            seen("client", Client, "eth0", true, 10, req(vec![(CLIENT, VIP, 64)], (1, 4))),
            seen("lvs", Director, "eth0", false, 40, req(vec![(CLIENT, VIP, 64)], (1, 4))),
            seen("lvs", Director, "eth1", true, 50, req(vec![(CLIENT, RIP, 63)], (6, 5))),
            seen("web1", RealServer, "eth0", false, 60, req(vec![(CLIENT, RIP, 63)], (6, 5))),
        ];
        let w = walk(&two, &expect(one_arm, "nat"));
        assert!(
            w.departures.iter().any(|d| d.contains(
                "expected the destination rewritten to a real server's address and the source to the director's"
            )),
            "{:?}",
            w.departures
        );
    }
}
