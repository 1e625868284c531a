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
/// out when none of them could be imported. With `lab`, for `lvsctl lab create`: a client on a
/// front segment of its own, a router between it and every subnet, management ssh addresses.
pub fn inventory(services: &[RuleService], name: &str, source: &str, lab: bool) -> Result<Imported, Vec<String>> {
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
    let mut taken: Vec<IpAddr> = vips.iter().chain(&rs).copied().collect();
    let director: Vec<(String, IpAddr, u8)> = nets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let a = free_on(*n, &taken);
            taken.push(a);
            (format!("eth{i}"), a, n.1)
        })
        .collect();
    let lab = lab.then(|| Layout::new(&nets, &mut taken));
    // Real servers of a NAT service route through the director (lvsctl derives it).
    let nat_rs: Vec<IpAddr> =
        kept.iter().filter(|s| forward(s) == Forward::Masq).flat_map(|s| s.dests.iter().map(|d| d.address)).collect();
    let change = |what: &str| if lab.is_some() { String::new() } else { format!("   # CHANGE: {what}") };

    let mut w = String::new();
    let _ = writeln!(w, "# lvsctl inventory imported by `lvsctl import` from {source}.");
    let _ = writeln!(w, "#");
    if lab.is_some() {
        let _ =
            writeln!(w, "# The services and real servers are the rules', on this machine: `lvsctl lab create FILE`");
        let _ = writeln!(
            w,
            "# builds the hosts (a client and a router added), then `lvsctl up FILE`, `lvsctl verify FILE`."
        );
    } else {
        let _ =
            writeln!(w, "# The services and real servers are the rules'. What the rules cannot know is a guess marked");
        let _ =
            writeln!(w, "# CHANGE: how lvsctl reaches each host (ssh), the interface names, the director's addresses");
        let _ = writeln!(w, "# and the subnets' prefixes. Then `lvsctl check FILE` and `lvsctl plan FILE`.");
    }
    for l in &left_out {
        let _ = writeln!(w, "# Left out: {l}");
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
        None => {
            let _ =
                writeln!(w, "user = \"root\"   # CHANGE: your login user; with a non-root user, add become = \"sudo\"");
            let _ = writeln!(w, "host_key = \"accept-new\"");
        }
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
        let mut ifs: Vec<(String, Vec<String>)> =
            l.router.iter().enumerate().map(|(i, (a, p))| (format!("eth{i}"), vec![format!("{a}/{p}")])).collect();
        ifs.push((format!("eth{}", l.router.len()), l.front_addresses(200)));
        let _ = writeln!(w, "{}", ifs_line(&ifs));
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "[hosts.lvs]");
    let _ = writeln!(w, "role = \"director\"");
    match &lab {
        Some(l) => {
            let _ = writeln!(w, "ssh = \"{MGMT}.8\"");
            if let Some(g) = gateway_line(&l.gateways_on(&nets)) {
                let _ = writeln!(w, "{g}");
            }
        }
        None => {
            let _ = writeln!(w, "ssh = \"{}\"{}", director[0].1, change("how lvsctl reaches the director"));
        }
    }
    let ifs: Vec<(String, Vec<String>)> =
        director.iter().map(|(d, a, p)| (d.clone(), vec![format!("{a}/{p}")])).collect();
    let _ = writeln!(w, "{}{}", ifs_line(&ifs), change("its interfaces and addresses"));
    for (i, a) in rs.iter().enumerate() {
        let net = subnet(*a);
        let _ = writeln!(w);
        let _ = writeln!(w, "[hosts.{}]", rs_name(*a));
        let _ = writeln!(w, "role = \"real-server\"");
        match &lab {
            Some(l) => {
                let _ = writeln!(w, "ssh = \"{MGMT}.{}\"", 10 + i);
                if !nat_rs.contains(a)
                    && let Some(g) = gateway_line(&l.gateways_on(&[net]))
                {
                    let _ = writeln!(w, "{g}");
                }
            }
            None => {
                let _ = writeln!(w, "ssh = \"{a}\"{}", change("how lvsctl reaches it"));
            }
        }
        let ifs = [("eth0".to_string(), vec![format!("{a}/{}", net.1)])];
        let _ = writeln!(w, "{}{}", ifs_line(&ifs), change("its interface name and prefix"));
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
    if let Some(l) = &lab {
        let _ = writeln!(w);
        let _ = writeln!(w, "[lab]");
        let mut segs: Vec<String> = Vec::new();
        for (k, n) in nets.iter().enumerate() {
            let mut members = vec![format!("\"router:eth{k}\""), format!("\"lvs:eth{k}\"")];
            members.extend(rs.iter().filter(|a| subnet(**a) == *n).map(|a| format!("\"{}:eth0\"", rs_name(*a))));
            segs.push(format!("net{k} = [{}]", members.join(", ")));
        }
        segs.push(format!("front = [\"client:eth0\", \"router:eth{}\"]", l.router.len()));
        let _ = writeln!(w, "segments = {{ {} }}", segs.join(", "));
    }
    Ok(Imported { text: w, left_out })
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
                for lab in [false, true] {
                    let imported = match inventory(&before, "imported", "test", lab) {
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
                    assert_eq!(l.lab.is_some(), lab, "{}", imported.text);
                    assert_eq!(imported.text.contains("CHANGE"), !lab, "{}", imported.text);
                    done += 1;
                }
            }
        }
        assert!(done >= 5, "{done} rules files");
    }
}
