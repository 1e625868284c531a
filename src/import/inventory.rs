//! An inventory from imported services (pure): a director `lvs` with an address on every subnet
//! of the VIPs and real servers, one host per real-server address, the services as they were.
//! What the source cannot know (ssh addresses, interface names, the director's own addresses) is
//! filled with a plausible value and marked `CHANGE`, as `lvsctl init` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::model::{Loc, Note, Service, Setup};
use crate::ipvs::{Forward, Netmask, ServiceKey};

/// The inventory's text, and what was left out of it (each with its line in the source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub text: String,
    /// How many services of the inventory were written.
    pub services: usize,
    pub left_out: Vec<String>,
}

fn mode_of(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "nat",
        Forward::Route => "dr",
        Forward::Tunnel => "tun",
    }
}

/// The subnet a host address is taken to be on (/24, /64): a guess, marked CHANGE.
fn subnet(a: IpAddr) -> (IpAddr, u8) {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            (IpAddr::from([o[0], o[1], o[2], 0]), 24)
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            (IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0]), 64)
        }
    }
}

/// A free host address on `net` for the director: from the top of the subnet down.
fn free_on(net: (IpAddr, u8), taken: &[IpAddr]) -> IpAddr {
    for n in (1..=254u16).rev() {
        let a = match net.0 {
            IpAddr::V4(v) => {
                let o = v.octets();
                IpAddr::from([o[0], o[1], o[2], n as u8])
            }
            IpAddr::V6(v) => {
                let s = v.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, n])
            }
        };
        if !taken.contains(&a) {
            return a;
        }
    }
    net.0
}

/// A host the inventory gets for the source's real and sorry servers.
struct Host {
    name: String,
    role: &'static str,
    addrs: Vec<IpAddr>,
    /// It serves a NAT service (its gateway is the director's, which lvsctl derives).
    nat: bool,
}

/// The services an inventory can say, made ready for it (what the source says that it cannot is
/// a note): a mark's guessed VIPs, a check's timeout within its interval.
fn usable(setup: &Setup) -> (Vec<Service>, Vec<Note>) {
    let mut notes: Vec<Note> = setup.notes.clone();
    let note = |notes: &mut Vec<Note>, at: &Loc, text: String| notes.push(Note { at: at.clone(), text });
    let mut kept: Vec<Service> = Vec::new();
    for s in &setup.services {
        let mut s = s.clone();
        // A real server on the director itself (ldirectord's `real=127.0.0.1:143`) is no host.
        s.dests.retain(|d| {
            let special = d.address.is_loopback() || d.address.is_unspecified() || d.address.is_multicast();
            if special {
                notes.push(Note {
                    at: d.at.clone(),
                    text: format!("real server {}: the director itself, which no host of an inventory is", d.address),
                });
            }
            !special
        });
        if let (ServiceKey::Mark { fwmark, .. }, Some((a, p))) = (s.key, s.sorry) {
            note(
                &mut notes,
                &s.at,
                format!("sorry server {a}:{p} of firewall-mark service {fwmark}: an inventory has none for a mark yet"),
            );
            s.sorry = None;
        }
        if let ServiceKey::Addr { protocol: crate::ipvs::Protocol::Udp, .. } = s.key
            && s.check.as_ref().is_some_and(|c| c.port.is_none())
        {
            note(&mut notes, &s.at, "a UDP service's check without a TCP port to connect to: not checked".into());
            s.check = None;
            s.quiesce = false;
        }
        if let Some(first) = kept.iter().find(|k| k.key == s.key) {
            note(
                &mut notes,
                &s.at,
                format!("{}: the same service as at {}; its real servers are not added", s.key, first.at),
            );
            continue;
        }
        let s = &s;
        let mut methods: Vec<Forward> = Vec::new();
        for d in &s.dests {
            if !methods.contains(&d.forward) {
                methods.push(d.forward);
            }
        }
        if methods.len() > 1 {
            note(
                &mut notes,
                &s.at,
                format!(
                    "{}: its real servers use different forwarding methods ({}), and an inventory's service has one \
                     mode; add it by hand as one service per method",
                    s.key,
                    methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        }
        if s.dests.is_empty() {
            note(&mut notes, &s.at, format!("{}: no real server", s.key));
            continue;
        }
        if s.dests.iter().any(|d| d.encap != s.dests[0].encap) {
            note(
                &mut notes,
                &s.at,
                format!(
                    "{}: its real servers are tunnelled differently ({}), and an inventory's service has one tun_type; add it by hand as one service per tunnel",
                    s.key,
                    s.dests.iter().map(|d| d.encap.describe()).collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        }
        let e = s.dests[0].encap;
        if e.tun_type == crate::ipvs::TunType::Ipip && (e.port != 0 || e.checksum != crate::ipvs::TunChecksum::None) {
            note(
                &mut notes,
                &s.at,
                format!("{}: IP-in-IP with a port or checksum option, which IP-in-IP does not take: left out", s.key),
            );
        }
        kept.push(s.clone());
    }
    // A VIP that is also a real server's address cannot be held by the director alone.
    let servers: Vec<IpAddr> =
        kept.iter().flat_map(|s| s.dests.iter().map(|d| d.address).chain(s.sorry.map(|x| x.0))).collect();
    kept.retain(|s| match s.key {
        ServiceKey::Addr { addr, .. } if servers.contains(&addr) => {
            note(
                &mut notes,
                &s.at,
                format!("{}: its VIP is also a real server's address, which no host can be for the director", s.key),
            );
            false
        }
        _ => true,
    });
    // A firewall-mark service whose VIPs the source does not say: one on its first real
    // server's subnet (counted from .100 up), a guess the mark's note says.
    let mut guessed: Vec<IpAddr> = Vec::new();
    for i in 0..kept.len() {
        if !matches!(kept[i].key, ServiceKey::Mark { .. }) || !kept[i].mark_vips.is_empty() {
            continue;
        }
        let net = subnet(kept[i].dests[0].address);
        let in_use: Vec<IpAddr> = servers
            .iter()
            .chain(&guessed)
            .copied()
            .chain(kept.iter().flat_map(|s| match s.key {
                ServiceKey::Addr { addr, .. } => vec![addr],
                ServiceKey::Mark { .. } => s.mark_vips.clone(),
            }))
            .collect();
        if let Some(v) = (100..=250u8).map(|n| host_on(net.0, n)).find(|a| !in_use.contains(a)) {
            guessed.push(v);
            kept[i].mark_vips.push(v);
        }
    }
    // A check must end before the next starts (the inventory refuses a timeout over the interval).
    for s in &mut kept {
        if let Some(c) = &mut s.check
            && c.timeout > c.interval
        {
            note(
                &mut notes,
                &s.at,
                format!(
                    "its check's timeout ({} s) is longer than its interval ({} s), which an inventory refuses; timeout {} s written",
                    c.timeout, c.interval, c.interval
                ),
            );
            c.timeout = c.interval;
        }
    }
    (kept, notes)
}

/// One `[[services]]` table's keys after its name: the VIP and port or the mark (with `match`
/// from `mark_vips`), the scheduler and its settings, the real servers (`host_of` names them),
/// the check and the sorry server.
fn write_service(
    w: &mut String,
    s: &Service,
    mode: &str,
    mark_vips: &[IpAddr],
    sorry: Option<&str>,
    host_of: &dyn Fn(IpAddr) -> String,
) {
    let port = match s.key {
        ServiceKey::Addr { protocol, addr, port } => {
            let _ = writeln!(w, "vip = \"{addr}\"");
            let _ = writeln!(w, "port = {port}");
            let _ = writeln!(w, "protocol = \"{}\"", protocol.as_str());
            port
        }
        ServiceKey::Mark { fwmark, .. } => {
            let _ = writeln!(w, "fwmark = {fwmark}");
            let family: Vec<IpAddr> = mark_vips.to_vec();
            let ports = s.check.as_ref().and_then(|c| c.port).unwrap_or(80);
            let _ = writeln!(w, "match = [   # CHANGE: what your firewall marks (the source does not say)");
            for v in &family {
                let _ = writeln!(w, "    {{ vip = \"{v}\", protocol = \"tcp\", ports = [{ports}] }},");
            }
            let _ = writeln!(w, "]");
            0
        }
    };
    let _ = writeln!(w, "scheduler = {:?}", s.scheduler);
    if mode_of(s.dests[0].forward) != mode {
        let _ = writeln!(w, "mode = {:?}", mode_of(s.dests[0].forward));
    }
    let e = s.dests[0].encap;
    if s.dests[0].forward == Forward::Tunnel && e.tun_type != crate::ipvs::TunType::Ipip {
        let _ = writeln!(w, "tun_type = {:?}", e.tun_type.as_str());
        if e.tun_type == crate::ipvs::TunType::Gue {
            let _ = writeln!(w, "tun_port = {}", e.port);
        }
        if e.checksum != crate::ipvs::TunChecksum::None {
            let _ = writeln!(w, "tun_checksum = {:?}", e.checksum.as_str());
        }
    }
    if !s.flags.is_empty() {
        let flags: Vec<String> = s.flags.iter().map(|f| format!("{f:?}")).collect();
        let _ = writeln!(w, "scheduler_flags = [{}]", flags.join(", "));
    }
    if s.persistence > 0 {
        let _ = writeln!(w, "persistence = {}", s.persistence);
        let v6 = match s.key {
            ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
            ServiceKey::Mark { ipv6, .. } => ipv6,
        };
        match s.netmask {
            Some(m) if m == Netmask::host(v6) => {}
            Some(Netmask::V4(m)) => {
                let _ = writeln!(w, "netmask = \"{m}\"");
            }
            Some(Netmask::V6(n)) => {
                let _ = writeln!(w, "netmask = {n}");
            }
            None => {}
        }
    }
    if s.one_packet {
        let _ = writeln!(w, "one_packet = true");
    }
    let list: Vec<String> = s
        .dests
        .iter()
        .map(|d| {
            let mut e = format!("{{ host = \"{}\", weight = {}", host_of(d.address), d.weight);
            if port != 0 && d.port != port {
                let _ = write!(e, ", port = {}", d.port);
            }
            if d.u_threshold > 0 {
                let _ = write!(e, ", u_threshold = {}", d.u_threshold);
            }
            if d.l_threshold > 0 {
                let _ = write!(e, ", l_threshold = {}", d.l_threshold);
            }
            e + " }"
        })
        .collect();
    let _ = writeln!(w, "real_servers = [{}]", list.join(", "));
    if let Some(c) = &s.check {
        let mut e = match &c.http {
            Some(h) => {
                let mut e = format!("type = \"http\", path = {:?}, status = {}", h.path, h.status);
                if let Some(x) = &h.expect {
                    let _ = write!(e, ", expect = {x:?}");
                }
                e
            }
            None => "type = \"tcp\"".to_string(),
        };
        let _ = write!(e, ", interval = {}, timeout = {}, retries = {}", c.interval, c.timeout, c.retries);
        if let Some(p) = c.port
            && p != port
        {
            let _ = write!(e, ", port = {p}");
        }
        let _ = writeln!(w, "health_check = {{ {e} }}");
        if s.quiesce {
            let _ = writeln!(w, "on_failure = \"quiesce\"");
        }
    }
    if let (Some(h), Some((_, p))) = (sorry, s.sorry) {
        let _ = writeln!(w, "sorry_server = {{ host = \"{h}\", port = {p} }}");
    }
}

/// The inventory for `setup` (read from `source`, named in its comments), lab `name`; what was
/// left out, each with its location, when no service could be imported. With `lab`, for `lvsctl
/// lab create`: a client on a front segment of its own, a router between it and every subnet,
/// management ssh addresses.
pub fn inventory(setup: &Setup, name: &str, source: &str, lab: bool) -> Result<Imported, Vec<String>> {
    let (kept, mut notes) = usable(setup);
    let note = |notes: &mut Vec<Note>, at: &Loc, text: String| notes.push(Note { at: at.clone(), text });
    let kept: Vec<&Service> = kept.iter().collect();
    let left_out = |notes: &[Note]| notes.iter().map(Note::to_string).collect::<Vec<_>>();
    if kept.is_empty() {
        if notes.is_empty() {
            notes.push(Note {
                at: Loc { file: source.to_string(), line: 1 },
                text: "no virtual service: the source holds none".into(),
            });
        }
        return Err(left_out(&notes));
    }
    let forward = |s: &Service| s.dests[0].forward;
    // The lab's mode is the most common one; a service of another mode says its own.
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &kept {
        *count.entry(mode_of(forward(s))).or_default() += 1;
    }
    let mode = count.iter().max_by_key(|(m, n)| (**n, *m == &"dr")).map_or("dr", |(m, _)| *m);

    // The hosts of the real servers (named by the source, or rs1, rs2, … by address) and of the
    // sorry servers, each with its addresses.
    let pair = setup.pair.as_ref();
    let directors: Vec<String> = {
        let first = setup.director.clone().filter(|d| d != "client" && d != "router");
        match pair {
            Some(_) => {
                let one = first.unwrap_or_else(|| "lvs1".into());
                let two = if one == "lvs2" { "lvs1".to_string() } else { "lvs2".to_string() };
                vec![one, two]
            }
            None => vec![first.unwrap_or_else(|| "lvs".into())],
        }
    };
    let mut hosts: Vec<Host> = Vec::new();
    let reserved = |n: &str| n == "client" || n == "router" || directors.iter().any(|d| d == n);
    let mut unnamed = 0;
    for s in &kept {
        for d in &s.dests {
            if hosts.iter().any(|h| h.addrs.contains(&d.address)) {
                continue;
            }
            let named = setup.names.get(&d.address).filter(|n| !reserved(n));
            match named.and_then(|n| hosts.iter_mut().find(|h| &h.name == n)) {
                // The same host's address of another family (lvsctl's own files name them).
                Some(h) if h.addrs.iter().all(|a| a.is_ipv6() != d.address.is_ipv6()) => h.addrs.push(d.address),
                _ => {
                    let name = match named.filter(|n| !hosts.iter().any(|h| &h.name == *n)) {
                        Some(n) => n.clone(),
                        None => loop {
                            unnamed += 1;
                            let n = format!("rs{unnamed}");
                            if !reserved(&n) && !hosts.iter().any(|h| h.name == n) {
                                break n;
                            }
                        },
                    };
                    hosts.push(Host { name, role: "real-server", addrs: vec![d.address], nat: false });
                }
            }
        }
    }
    let mut sorry_of: Vec<Option<String>> = Vec::new();
    for s in &kept {
        let Some((addr, _)) = s.sorry else {
            sorry_of.push(None);
            continue;
        };
        // ldirectord's fallback to the director itself (127.0.0.1).
        if addr.is_loopback() {
            if directors.len() == 1 {
                sorry_of.push(Some(directors[0].clone()));
            } else {
                note(
                    &mut notes,
                    &s.at,
                    format!("sorry server {addr}: each director itself, which a pair's inventory cannot say"),
                );
                sorry_of.push(None);
            }
            continue;
        }
        if let Some(h) = hosts.iter().find(|h| h.addrs.contains(&addr)) {
            if h.role == "sorry-server" {
                sorry_of.push(Some(h.name.clone()));
            } else {
                note(
                    &mut notes,
                    &s.at,
                    format!(
                        "sorry server {addr} is also a real server ({}), which an inventory's host cannot be both",
                        h.name
                    ),
                );
                sorry_of.push(None);
            }
            continue;
        }
        // Named by the source: the same host's address of the other family joins it.
        let named = setup.names.get(&addr).filter(|n| !reserved(n));
        if let Some(h) = named.and_then(|n| hosts.iter_mut().find(|h| &h.name == n && h.role == "sorry-server"))
            && h.addrs.iter().all(|a| a.is_ipv6() != addr.is_ipv6())
        {
            h.addrs.push(addr);
            sorry_of.push(Some(h.name.clone()));
            continue;
        }
        let n = match named.filter(|n| !hosts.iter().any(|h| &h.name == *n)) {
            Some(n) => n.clone(),
            None => (1..)
                .map(|i| if i == 1 { "sorry".to_string() } else { format!("sorry{i}") })
                .find(|n| !reserved(n) && !hosts.iter().any(|h| &h.name == n))
                .expect("a free name"),
        };
        hosts.push(Host { name: n.clone(), role: "sorry-server", addrs: vec![addr], nat: false });
        sorry_of.push(Some(n));
    }
    for s in kept.iter().filter(|s| forward(s) == Forward::Masq) {
        let served: Vec<IpAddr> = s.dests.iter().map(|d| d.address).chain(s.sorry.map(|x| x.0)).collect();
        for h in hosts.iter_mut().filter(|h| h.addrs.iter().any(|a| served.contains(a))) {
            h.nat = true;
        }
    }

    // The subnets (a /24 or /64 around each address), joined into links: a host's addresses of
    // both families are on one link, as are the first IPv4 and IPv6 subnets of the VIPs.
    let vips: Vec<IpAddr> = kept
        .iter()
        .flat_map(|s| match s.key {
            ServiceKey::Addr { addr, .. } => vec![addr],
            ServiceKey::Mark { .. } => s.mark_vips.clone(),
        })
        .collect();
    let mut floating: Vec<(IpAddr, u8)> = Vec::new();
    let mut floating_guessed = false;
    if let Some(p) = pair {
        for f in &p.floating {
            if floating.iter().any(|x| x.0.is_ipv6() == f.0.is_ipv6()) {
                note(
                    &mut notes,
                    &p.at,
                    format!(
                        "{}: a second address the pair moves on the real servers' subnet; an inventory's pair moves one gateway per family",
                        f.0
                    ),
                );
            } else {
                floating.push(*f);
            }
        }
        // A NAT pair needs the real servers' gateway it moves: guessed when the source has none.
        for six in [false, true] {
            let nat_rs = kept
                .iter()
                .filter(|s| forward(s) == Forward::Masq)
                .flat_map(|s| &s.dests)
                .map(|d| d.address)
                .find(|a| a.is_ipv6() == six);
            if let Some(a) = nat_rs
                && !floating.iter().any(|f| f.0.is_ipv6() == six)
            {
                let net = subnet(a);
                let in_use: Vec<IpAddr> =
                    hosts.iter().flat_map(|h| h.addrs.iter().copied()).chain(vips.iter().copied()).collect();
                if let Some(g) = (1..=250u8).map(|n| host_on(net.0, n)).find(|g| !in_use.contains(g)) {
                    floating.push((g, net.1));
                    floating_guessed = true;
                }
            }
        }
    }
    let mut links: Vec<Vec<(IpAddr, u8)>> = Vec::new();
    let mut join = |nets: Vec<(IpAddr, u8)>| {
        let mut merged: Vec<(IpAddr, u8)> = Vec::new();
        links.retain(|l| {
            if l.iter().any(|n| nets.contains(n)) {
                merged.extend(l.iter().copied());
                false
            } else {
                true
            }
        });
        for n in nets {
            if !merged.contains(&n) {
                merged.push(n);
            }
        }
        merged.sort_by_key(|n| n.0.is_ipv6());
        links.push(merged);
    };
    let first_of = |six: bool| vips.iter().find(|a| a.is_ipv6() == six).map(|a| subnet(*a));
    join(first_of(false).into_iter().chain(first_of(true)).collect());
    for a in &vips {
        join(vec![subnet(*a)]);
    }
    for h in &hosts {
        join(h.addrs.iter().map(|a| subnet(*a)).collect());
    }
    for (a, _) in &floating {
        join(vec![subnet(*a)]);
    }
    // Links in order of first use: the VIPs' first.
    let nets: Vec<(IpAddr, u8)> = links.iter().flatten().copied().collect();
    let mut taken: Vec<IpAddr> =
        vips.iter().chain(hosts.iter().flat_map(|h| &h.addrs)).chain(floating.iter().map(|f| &f.0)).copied().collect();
    if let Some((src, peer)) = pair.and_then(|p| p.unicast) {
        taken.extend([src, peer]);
    }
    // Each director's address on each subnet: the unicast addresses where they are on it.
    let mut director_addrs: Vec<Vec<Vec<(IpAddr, u8)>>> = Vec::new();
    for (k, _) in directors.iter().enumerate() {
        let per_link = links
            .iter()
            .map(|l| {
                l.iter()
                    .map(|n| {
                        let known = pair.and_then(|p| p.unicast).map(|u| if k == 0 { u.0 } else { u.1 });
                        let a = match known.filter(|a| subnet(*a) == *n) {
                            Some(a) => a,
                            None => {
                                let a = free_on(*n, &taken);
                                taken.push(a);
                                a
                            }
                        };
                        (a, n.1)
                    })
                    .collect()
            })
            .collect();
        director_addrs.push(per_link);
    }
    // Hosts read live say themselves (for the machines they are, not for a lab).
    let known = |name: &str| setup.known.iter().find(|k| k.name == name).filter(|_| !lab);
    let lab = lab.then(|| Layout::new(&nets, &mut taken));
    let change = |what: &str| if lab.is_some() { String::new() } else { format!("   # CHANGE: {what}") };
    let link_of = |a: IpAddr| links.iter().position(|l| l.contains(&subnet(a))).expect("every address is on a link");

    let host_of = |a: IpAddr| hosts.iter().find(|h| h.addrs.contains(&a)).map_or("?", |h| h.name.as_str());
    // A mark of both families is one service of the inventory, with both families' VIPs: the
    // second family's is not written again (and is left out when its real servers differ).
    let mut second_family: Vec<bool> = Vec::new();
    let mut marks: Vec<(u32, Vec<&str>)> = Vec::new();
    // Per mark, the VIPs of the families written as one service.
    let mut mark_vips: BTreeMap<u32, Vec<IpAddr>> = BTreeMap::new();
    for s in &kept {
        let rs_hosts: Vec<&str> = s.dests.iter().map(|d| host_of(d.address)).collect();
        let ServiceKey::Mark { fwmark, .. } = s.key else {
            second_family.push(false);
            continue;
        };
        match marks.iter().find(|(m, _)| *m == fwmark) {
            Some((_, first)) => {
                if *first == rs_hosts {
                    mark_vips.entry(fwmark).or_default().extend(s.mark_vips.iter().copied());
                } else {
                    note(
                        &mut notes,
                        &s.at,
                        format!(
                            "firewall-mark service {fwmark} of the other family has other real servers ({}), and an \
                             inventory's mark service has one list for both",
                            rs_hosts.join(", ")
                        ),
                    );
                }
                second_family.push(true);
            }
            None => {
                mark_vips.entry(fwmark).or_default().extend(s.mark_vips.iter().copied());
                marks.push((fwmark, rs_hosts));
                second_family.push(false);
            }
        }
    }
    for (s, second) in kept.iter().zip(&second_family) {
        if let ServiceKey::Mark { fwmark, .. } = s.key
            && !second
        {
            let ports = s.check.as_ref().and_then(|c| c.port).unwrap_or(80);
            let vips: Vec<String> = mark_vips.get(&fwmark).into_iter().flatten().map(|a| a.to_string()).collect();
            note(
                &mut notes,
                &s.at,
                format!(
                    "firewall-mark service {fwmark}: which packets carry the mark is set by firewall rules the \
                     source does not hold; its `match` is a guess (the VIPs {}, tcp port {ports}): change it to \
                     what your firewall marks",
                    vips.join(", ")
                ),
            );
        }
    }

    let mut w = String::new();
    let _ = writeln!(w, "# lvsctl inventory imported by `lvsctl import` from {source}.");
    let _ = writeln!(w, "#");
    if lab.is_some() {
        let _ =
            writeln!(w, "# The services and real servers are the source's, on this machine: `lvsctl lab create FILE`");
        let _ = writeln!(
            w,
            "# builds the hosts (a client and a router added), then `lvsctl up FILE`, `lvsctl verify FILE`."
        );
    } else if !setup.known.is_empty() {
        let _ =
            writeln!(w, "# Each host read says itself as the kernel has it (interfaces, addresses, gateway, the IPVS");
        let _ = writeln!(w, "# table and settings): `lvsctl up FILE` on those hosts changes none of it. A real server");
        let _ = writeln!(w, "# that was not read (--real-server) is a guess marked CHANGE.");
    } else {
        let _ = writeln!(w, "# The services and real servers are the source's. What it cannot know is a guess marked");
        let _ =
            writeln!(w, "# CHANGE: how lvsctl reaches each host (ssh), the interface names, the directors' addresses");
        let _ = writeln!(w, "# and the subnets' prefixes. Then `lvsctl check FILE` and `lvsctl plan FILE`.");
    }
    for n in &notes {
        let _ = writeln!(w, "# Left out: {n}");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "name = {name:?}");
    let _ = writeln!(w, "mode = {mode:?}");
    let _ = writeln!(w);
    let _ = writeln!(w, "[ssh]");
    match &lab {
        Some(_) => {
            let _ = writeln!(w, "host_key = \"strict\"   # the lab trusts its hosts' keys through its own ssh_config");
        }
        None => match setup.ssh_user.clone().or_else(|| (!setup.known.is_empty()).then(|| "root".to_string())) {
            Some(u) => {
                let _ = writeln!(w, "user = {u:?}");
                let _ = writeln!(w, "host_key = \"accept-new\"");
            }
            None => {
                let _ = writeln!(
                    w,
                    "user = \"root\"   # CHANGE: your login user; with a non-root user, add become = \"sudo\""
                );
                let _ = writeln!(w, "host_key = \"accept-new\"");
            }
        },
    }
    if let Some(p) = pair {
        let _ = writeln!(w);
        let _ = writeln!(w, "# from {}", p.at);
        let _ = writeln!(w, "[ha]");
        let _ = writeln!(w, "virtual_router_id = {}", p.virtual_router_id);
        let _ = writeln!(w, "advert_interval = {}", p.advert_interval);
        if !p.sync {
            let _ = writeln!(w, "sync = false");
        }
        if !p.preempt {
            let _ = writeln!(w, "preempt = false");
        }
        if p.unicast.is_some() {
            let _ = writeln!(w, "unicast = true");
        }
        let nat = kept.iter().any(|s| forward(s) == Forward::Masq);
        let gws: Vec<String> = floating.iter().map(|(a, _)| format!("\"{a}/{}\"", subnet(*a).1)).collect();
        let guess = if floating_guessed { change("the real servers' gateway the pair moves") } else { String::new() };
        match gws.len() {
            0 => {}
            _ if !nat => {}
            1 => {
                let _ = writeln!(w, "floating_gateway = {}{guess}", gws[0]);
            }
            _ => {
                let _ = writeln!(w, "floating_gateway = [{}]{guess}", gws.join(", "));
            }
        }
    }
    if let Some(t) = setup.timeouts {
        let mut v = Vec::new();
        for (k, x) in [("tcp", t.tcp), ("tcp_fin", t.tcp_fin), ("udp", t.udp)] {
            if let Some(x) = x {
                v.push(format!("{k} = {x}"));
            }
        }
        if !v.is_empty() {
            let _ = writeln!(w);
            let _ = writeln!(w, "[ipvs]");
            let _ = writeln!(w, "timeouts = {{ {} }}", v.join(", "));
        }
    }
    if !setup.ipvs_sysctls.is_empty() {
        if !w.contains("\n[ipvs]\n") {
            let _ = writeln!(w);
            let _ = writeln!(w, "[ipvs]");
        }
        let v: Vec<String> = setup.ipvs_sysctls.iter().map(|(k, x)| format!("{k} = {x}")).collect();
        let _ =
            writeln!(w, "# as the director has them (where lvsctl would set another value, or the kernel has another)");
        let _ = writeln!(w, "sysctl = {{ {} }}", v.join(", "));
    }
    let ifs_line = |ifs: &[(String, Vec<String>)]| -> String {
        let list: Vec<String> = ifs
            .iter()
            .map(|(d, a)| format!("{d} = [{}]", a.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ")))
            .collect();
        format!("interfaces = {{ {} }}", list.join(", "))
    };
    let gateway_line = |gws: &[IpAddr]| -> Option<String> {
        match gws {
            [] => None,
            [one] => Some(format!("gateway = \"{one}\"")),
            many => {
                Some(format!("gateway = [{}]", many.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", ")))
            }
        }
    };
    if let Some(l) = &lab {
        let _ = writeln!(w);
        let _ = writeln!(w, "[hosts.client]");
        let _ = writeln!(w, "role = \"client\"");
        let _ = writeln!(w, "ssh = \"{MGMT}.6\"");
        let _ = writeln!(w, "{}", gateway_line(&l.front_gateways()).expect("a front subnet"));
        let _ = writeln!(w, "{}", ifs_line(&[("eth0".into(), l.front_addresses(6))]));
        let _ = writeln!(w);
        let _ = writeln!(w, "[hosts.router]");
        let _ = writeln!(w, "role = \"router\"");
        let _ = writeln!(w, "ssh = \"{MGMT}.200\"");
        let mut ifs: Vec<(String, Vec<String>)> = links
            .iter()
            .enumerate()
            .map(|(i, link)| {
                let addrs = l.router.iter().filter(|(a, _)| link.contains(&subnet(*a)));
                (format!("eth{i}"), addrs.map(|(a, p)| format!("{a}/{p}")).collect())
            })
            .collect();
        ifs.push((format!("eth{}", links.len()), l.front_addresses(200)));
        let _ = writeln!(w, "{}", ifs_line(&ifs));
    }
    for (k, d) in directors.iter().enumerate() {
        let _ = writeln!(w);
        let _ = writeln!(w, "[hosts.{d}]");
        let _ = writeln!(w, "role = \"director\"");
        if let Some(p) = pair {
            if k == 0 {
                let _ = writeln!(w, "priority = {}", p.priority);
            } else {
                // The other director's, which this file does not hold: the master is the higher.
                let other = if p.priority > 100 { 100 } else { p.priority.saturating_add(50).min(254) };
                let _ = writeln!(w, "priority = {other}{}", change("the other director's priority"));
            }
        }
        if let Some(kh) = known(d) {
            let _ = writeln!(w, "ssh = {:?}", kh.ssh);
            if let Some(g) = gateway_line(&kh.gateways) {
                let _ = writeln!(w, "{g}");
            }
            let ifs: Vec<(String, Vec<String>)> =
                kh.interfaces.iter().map(|(dev, a)| (dev.clone(), a.iter().map(|n| n.to_string()).collect())).collect();
            let _ = writeln!(w, "{}", ifs_line(&ifs));
            continue;
        }
        let first = director_addrs[k][0][0].0;
        match &lab {
            Some(l) => {
                let _ = writeln!(w, "ssh = \"{MGMT}.{}\"", 8 + k);
                if let Some(g) = gateway_line(&l.gateways_on(&nets)) {
                    let _ = writeln!(w, "{g}");
                }
            }
            None => {
                let _ = writeln!(w, "ssh = \"{first}\"{}", change("how lvsctl reaches the director"));
            }
        }
        let ifs: Vec<(String, Vec<String>)> = director_addrs[k]
            .iter()
            .enumerate()
            .map(|(i, addrs)| (format!("eth{i}"), addrs.iter().map(|(a, p)| format!("{a}/{p}")).collect()))
            .collect();
        let _ = writeln!(w, "{}{}", ifs_line(&ifs), change("its interfaces and addresses"));
    }
    for (i, h) in hosts.iter().enumerate() {
        let _ = writeln!(w);
        let _ = writeln!(w, "[hosts.{}]", h.name);
        let _ = writeln!(w, "role = \"{}\"", h.role);
        if let Some(kh) = known(&h.name) {
            let _ = writeln!(w, "ssh = {:?}", kh.ssh);
            // A NAT real server's gateway is the director: lvsctl derives it.
            if !h.nat
                && let Some(g) = gateway_line(&kh.gateways)
            {
                let _ = writeln!(w, "{g}");
            }
            let ifs: Vec<(String, Vec<String>)> =
                kh.interfaces.iter().map(|(dev, a)| (dev.clone(), a.iter().map(|n| n.to_string()).collect())).collect();
            let _ = writeln!(w, "{}", ifs_line(&ifs));
            continue;
        }
        match &lab {
            Some(l) => {
                let _ = writeln!(w, "ssh = \"{MGMT}.{}\"", 10 + i);
                let on: Vec<(IpAddr, u8)> = h.addrs.iter().map(|a| subnet(*a)).collect();
                if !h.nat
                    && let Some(g) = gateway_line(&l.gateways_on(&on))
                {
                    let _ = writeln!(w, "{g}");
                }
            }
            None => {
                let _ = writeln!(w, "ssh = \"{}\"{}", h.addrs[0], change("how lvsctl reaches it"));
            }
        }
        let addrs: Vec<String> = h.addrs.iter().map(|a| format!("{a}/{}", subnet(*a).1)).collect();
        let _ = writeln!(w, "{}{}", ifs_line(&[("eth0".to_string(), addrs)]), change("its interface name and prefix"));
    }
    let mut names: Vec<String> = Vec::new();
    for ((s, sorry), skip) in kept.iter().zip(&sorry_of).zip(&second_family) {
        if *skip {
            continue;
        }
        let _ = writeln!(w);
        let _ = writeln!(w, "# from {}", s.at);
        let _ = writeln!(w, "[[services]]");
        if let Some(n) = &s.name {
            let mut n = n.clone();
            let mut k = 1;
            while names.contains(&n) {
                k += 1;
                n = format!("{}-{k}", s.name.as_deref().unwrap_or_default());
            }
            let _ = writeln!(w, "name = {n:?}");
            names.push(n);
        }
        let vips = match s.key {
            ServiceKey::Mark { fwmark, .. } => mark_vips.get(&fwmark).cloned().unwrap_or_default(),
            ServiceKey::Addr { .. } => vec![],
        };
        write_service(&mut w, s, mode, &vips, sorry.as_deref(), &|a| host_of(a).to_string());
    }
    if lab.is_some() {
        let _ = writeln!(w);
        let _ = writeln!(w, "[lab]");
        let mut segs: Vec<String> = Vec::new();
        for (k, _) in links.iter().enumerate() {
            let mut members = vec![format!("\"router:eth{k}\"")];
            members.extend(directors.iter().map(|d| format!("\"{d}:eth{k}\"")));
            members.extend(hosts.iter().filter(|h| link_of(h.addrs[0]) == k).map(|h| format!("\"{}:eth0\"", h.name)));
            segs.push(format!("net{k} = [{}]", members.join(", ")));
        }
        segs.push(format!("front = [\"client:eth0\", \"router:eth{}\"]", links.len()));
        let _ = writeln!(w, "segments = {{ {} }}", segs.join(", "));
    }
    let services = second_family.iter().filter(|x| !**x).count();
    Ok(Imported { text: w, services, left_out: left_out(&notes) })
}

/// The lab's management subnet (the ssh addresses), as `lvsctl init --lab` writes it.
const MGMT: &str = "10.250.0";

/// What `--lab` adds: the router's address on each subnet, and the client's front subnets.
struct Layout {
    router: Vec<(IpAddr, u8)>,
    front4: IpAddr,
    front6: Option<IpAddr>,
}

impl Layout {
    fn new(nets: &[(IpAddr, u8)], taken: &mut Vec<IpAddr>) -> Layout {
        let router = nets
            .iter()
            .map(|n| {
                let a = free_on(*n, taken);
                taken.push(a);
                (a, n.1)
            })
            .collect();
        let front4 = (10..=250u8)
            .map(|k| IpAddr::from([192, 168, k, 0]))
            .find(|f| !nets.contains(&(*f, 24)))
            .unwrap_or(IpAddr::from([192, 168, 251, 0]));
        let front6 = nets.iter().any(|n| n.0.is_ipv6()).then(|| {
            (0x10..=0xffu16)
                .map(|k| IpAddr::from([0xfd00, k, 0, 0, 0, 0, 0, 0]))
                .find(|f| !nets.contains(&(*f, 64)))
                .unwrap_or(IpAddr::from([0xfd00, 0x100, 0, 0, 0, 0, 0, 0]))
        });
        Layout { router, front4, front6 }
    }

    /// Host number `n` on the front subnets, with their prefixes.
    fn front_addresses(&self, n: u8) -> Vec<String> {
        let mut v = vec![format!("{}/24", host_on(self.front4, n))];
        if let Some(f) = self.front6 {
            v.push(format!("{}/64", host_on(f, n)));
        }
        v
    }

    /// The router on the front subnets: the client's gateways.
    fn front_gateways(&self) -> Vec<IpAddr> {
        std::iter::once(self.front4).chain(self.front6).map(|f| host_on(f, 200)).collect()
    }

    /// The router's address on the first IPv4 and the first IPv6 of `on`: a host's gateways.
    fn gateways_on(&self, on: &[(IpAddr, u8)]) -> Vec<IpAddr> {
        let mut v = Vec::new();
        for six in [false, true] {
            if let Some((a, _)) = self.router.iter().find(|(a, _)| a.is_ipv6() == six && on.contains(&subnet(*a))) {
                v.push(*a);
            }
        }
        v
    }
}

/// Host `n` of the /24 or /64 at `net`.
fn host_on(net: IpAddr, n: u8) -> IpAddr {
    match net {
        IpAddr::V4(v) => {
            let o = v.octets();
            IpAddr::from([o[0], o[1], o[2], n])
        }
        IpAddr::V6(v) => {
            // The same digits as the IPv4 host number (`::200`, not `::c8`).
            let last = u16::from_str_radix(&n.to_string(), 16).unwrap_or(n as u16);
            let s = v.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, last])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ipvsadm::parse;
    use super::*;

    /// The rules of a service, order aside, as the round trip compares them.
    fn rules_of(services: &[Service]) -> Vec<String> {
        let mut v: Vec<String> = services
            .iter()
            .filter(|s| matches!(s.key, ServiceKey::Addr { .. }))
            .map(|s| {
                let mut d: Vec<String> = s
                    .dests
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} {:?} w{} x{} y{}",
                            d.address, d.port, d.forward, d.weight, d.u_threshold, d.l_threshold
                        )
                    })
                    .collect();
                d.sort();
                format!(
                    "{} {} {:?} p{} {:?} o{} [{}]",
                    s.key,
                    s.scheduler,
                    s.flags,
                    s.persistence,
                    s.netmask,
                    s.one_packet,
                    d.join("; ")
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Every rules file lvsctl's render writes, imported and rendered again, gives back the same
    /// rules (order aside); each firewall-mark service is said with its line (its `match` a guess).
    #[test]
    fn rules_imported_and_rendered_again_are_the_same() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let templates = crate::templates::Templates::embedded();
        let mut done = 0;
        for lab in std::fs::read_dir(&root).unwrap().flatten() {
            let lab_name = lab.file_name().to_string_lossy().into_owned();
            for host in std::fs::read_dir(lab.path()).into_iter().flatten().flatten() {
                let file = host.path().join("etc/lvsctl").join(&lab_name).join("ipvsadm.rules");
                let Ok(text) = std::fs::read_to_string(&file) else { continue };
                let before = parse(&text, "rules").unwrap().0;
                let setup = Setup { services: before.clone(), ..Setup::default() };
                let marks = before.iter().filter(|s| matches!(s.key, ServiceKey::Mark { .. })).count();
                for lab in [false, true] {
                    let imported = match inventory(&setup, "imported", "test", lab) {
                        Ok(i) => i,
                        Err(left_out) => {
                            assert_eq!((left_out.len(), marks), (before.len(), before.len()), "{}", file.display());
                            continue;
                        }
                    };
                    assert_eq!(imported.left_out.len(), marks, "{}: {:?}", file.display(), imported.left_out);
                    let l = crate::inventory::parse_str(std::path::Path::new("imported.toml"), &imported.text)
                        .unwrap_or_else(|d| {
                            panic!("{}: the imported inventory is invalid:\n{d}\n{}", file.display(), imported.text)
                        });
                    let ctx = crate::plan::Context { agent_path: "/a".into(), templates: &templates };
                    let plans = crate::plan::plan(&l, &ctx).unwrap();
                    let lvs = plans.iter().find(|p| p.host == "lvs").expect("the director");
                    let files = crate::render::render_host(lvs, &ctx).unwrap();
                    let rules = files.iter().find(|f| f.name.ends_with("ipvsadm.rules")).expect("the rules file");
                    let after = parse(&rules.content, "rules").unwrap().0;
                    assert_eq!(rules_of(&after), rules_of(&before), "{}:\n{}", file.display(), imported.text);
                    assert_eq!(l.lab.is_some(), lab, "{}", imported.text);
                    // Only a mark's guessed `match` says CHANGE in a lab's inventory.
                    let change = imported.text.lines().any(|l| l.contains("CHANGE") && !l.starts_with("match = "));
                    assert_eq!(change, !lab, "{}", imported.text);
                    done += 1;
                }
            }
        }
        assert!(done >= 5, "{done} rules files");
    }
}
