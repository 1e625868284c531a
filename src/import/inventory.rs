//! An inventory from imported services (pure): a director `lvs` with an address on every subnet
//! of the VIPs and real servers, one host per real-server address, the services as they were.
//! What the source cannot know (ssh addresses, interface names, the director's own addresses) is
//! filled with a plausible value and marked `CHANGE`, as `lvsctl init` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::ipvsadm::RuleService;
use crate::ipvs::{Forward, Netmask, ServiceKey};

/// The inventory's text, and what was left out of it (each with its line in the source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub text: String,
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

/// The inventory for `services` (from `source`, named in its comments), lab `name`; what was left
/// out when none of them could be imported.
pub fn inventory(services: &[RuleService], name: &str, source: &str) -> Result<Imported, Vec<String>> {
    let mut left_out = Vec::new();
    let mut kept: Vec<&RuleService> = Vec::new();
    for s in services {
        if let ServiceKey::Mark { fwmark, .. } = s.key {
            left_out.push(format!(
                "line {}: firewall-mark service {fwmark}: its packets are marked by iptables or nftables rules, which \
                 ipvsadm's rules do not hold; add it by hand with a `match` of the addresses and ports it marks",
                s.line
            ));
            continue;
        }
        let methods: Vec<Forward> = s.dests.iter().map(|d| d.forward).fold(Vec::new(), |mut v, f| {
            if !v.contains(&f) {
                v.push(f);
            }
            v
        });
        if methods.len() > 1 {
            left_out.push(format!(
                "line {}: {}: its real servers use different forwarding methods ({}), and an inventory's service has one \
                 mode; add it by hand as one service per method",
                s.line,
                s.key,
                methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        if s.dests.is_empty() {
            left_out.push(format!("line {}: {}: no real server (no -a line for it)", s.line, s.key));
            continue;
        }
        kept.push(s);
    }
    if kept.is_empty() {
        if left_out.is_empty() {
            left_out.push("no -A line: the rules hold no service".into());
        }
        return Err(left_out);
    }
    let forward = |s: &RuleService| s.dests[0].forward;
    // The lab's mode is the most common one; a service of another mode says its own.
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &kept {
        *count.entry(mode_of(forward(s))).or_default() += 1;
    }
    let mode = count.iter().max_by_key(|(m, n)| (**n, *m == &"dr")).map_or("dr", |(m, _)| *m);

    // Real servers by address, in order of appearance.
    let mut rs: Vec<IpAddr> = Vec::new();
    for d in kept.iter().flat_map(|s| &s.dests) {
        if !rs.contains(&d.address) {
            rs.push(d.address);
        }
    }
    let rs_name = |a: IpAddr| format!("rs{}", rs.iter().position(|x| *x == a).expect("listed") + 1);
    // The director: an address on each subnet of the VIPs, then of the real servers.
    let vips: Vec<IpAddr> = kept
        .iter()
        .filter_map(|s| match s.key {
            ServiceKey::Addr { addr, .. } => Some(addr),
            ServiceKey::Mark { .. } => None,
        })
        .collect();
    let mut nets: Vec<(IpAddr, u8)> = Vec::new();
    for a in vips.iter().chain(&rs) {
        let n = subnet(*a);
        if !nets.contains(&n) {
            nets.push(n);
        }
    }
    let taken: Vec<IpAddr> = vips.iter().chain(&rs).copied().collect();

    let mut w = String::new();
    let _ = writeln!(w, "# lvsctl inventory imported by `lvsctl import` from {source}.");
    let _ = writeln!(w, "#");
    let _ = writeln!(w, "# The services and real servers are the rules'. What the rules cannot know is a guess marked");
    let _ = writeln!(w, "# CHANGE: how lvsctl reaches each host (ssh), the interface names, the director's addresses");
    let _ = writeln!(w, "# and the subnets' prefixes. Then `lvsctl check FILE` and `lvsctl plan FILE`.");
    for l in &left_out {
        let _ = writeln!(w, "# Left out: {l}");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "name = {name:?}");
    let _ = writeln!(w, "mode = {mode:?}");
    let _ = writeln!(w);
    let _ = writeln!(w, "[ssh]");
    let _ = writeln!(w, "user = \"root\"   # CHANGE: your login user; with a non-root user, add become = \"sudo\"");
    let _ = writeln!(w, "host_key = \"accept-new\"");
    let _ = writeln!(w);
    let _ = writeln!(w, "[hosts.lvs]");
    let _ = writeln!(w, "role = \"director\"");
    let ifs: Vec<(String, IpAddr, u8)> =
        nets.iter().enumerate().map(|(i, n)| (format!("eth{i}"), free_on(*n, &taken), n.1)).collect();
    let _ = writeln!(w, "ssh = \"{}\"   # CHANGE: how lvsctl reaches the director", ifs[0].1);
    let list: Vec<String> = ifs.iter().map(|(d, a, p)| format!("{d} = [\"{a}/{p}\"]")).collect();
    let _ = writeln!(w, "interfaces = {{ {} }}   # CHANGE: its interfaces and addresses", list.join(", "));
    for a in &rs {
        let (_, p) = subnet(*a);
        let _ = writeln!(w);
        let _ = writeln!(w, "[hosts.{}]", rs_name(*a));
        let _ = writeln!(w, "role = \"real-server\"");
        let _ = writeln!(w, "ssh = \"{a}\"   # CHANGE: how lvsctl reaches it");
        let _ = writeln!(w, "interfaces = {{ eth0 = [\"{a}/{p}\"] }}   # CHANGE: its interface name and prefix");
    }
    for s in &kept {
        let ServiceKey::Addr { protocol, addr, port } = s.key else { unreachable!("marks were left out") };
        let _ = writeln!(w);
        let _ = writeln!(w, "# from line {}", s.line);
        let _ = writeln!(w, "[[services]]");
        let _ = writeln!(w, "vip = \"{addr}\"");
        let _ = writeln!(w, "port = {port}");
        let _ = writeln!(w, "protocol = \"{}\"", protocol.as_str());
        let _ = writeln!(w, "scheduler = {:?}", s.scheduler);
        if mode_of(forward(s)) != mode {
            let _ = writeln!(w, "mode = {:?}", mode_of(forward(s)));
        }
        if !s.flags.is_empty() {
            let flags: Vec<String> = s.flags.iter().map(|f| format!("{f:?}")).collect();
            let _ = writeln!(w, "scheduler_flags = [{}]", flags.join(", "));
        }
        if s.persistence > 0 {
            let _ = writeln!(w, "persistence = {}", s.persistence);
            match s.netmask {
                Some(m) if m == Netmask::host(addr.is_ipv6()) => {}
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
                let mut e = format!("{{ host = \"{}\", weight = {}", rs_name(d.address), d.weight);
                if d.port != port {
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
    }
    Ok(Imported { text: w, left_out })
}

#[cfg(test)]
mod tests {
    use super::super::ipvsadm::parse;
    use super::*;

    /// The rules of a service, order aside, as the round trip compares them.
    fn rules_of(services: &[RuleService]) -> Vec<String> {
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
    /// rules (order aside); its firewall-mark services are left out, each said with its line.
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
                let before = parse(&text).unwrap();
                let marks = before.iter().filter(|s| matches!(s.key, ServiceKey::Mark { .. })).count();
                let imported = match inventory(&before, "imported", "test") {
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
                let after = parse(&rules.content).unwrap();
                assert_eq!(rules_of(&after), rules_of(&before), "{}:\n{}", file.display(), imported.text);
                done += 1;
            }
        }
        assert!(done >= 5, "{done} rules files");
    }
}
