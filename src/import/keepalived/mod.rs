//! keepalived.conf read into a [`Setup`]: its virtual servers (and virtual server groups) with
//! their real servers, checks, sorry server and `inhibit_on_failure`; its `vrrp_instance`s as an
//! HA pair; the sync daemon and `lvs_timeouts` from `global_defs`. Both spellings of the method
//! and scheduler (`lb_kind`/`lvs_method`, `lb_algo`/`lvs_sched`) are read. Everything the
//! inventory cannot say is a note with its location; nothing is dropped in silence.
//!
//! The files lvsctl renders name their services and real servers in comments (`# web (tcp
//! 192.168.188.100:80)`, `# web1`, `# VIP of web-all (fwmark 30)`): in those files (and only in
//! them) the names are read from there.

pub mod conf;

use std::net::IpAddr;

use conf::Node;

use super::model::{Check, Dest, HttpCheck, Loc, Pair, Service, Setup, Timeouts, valid_name};
use crate::ipvs::{Encap, Forward, Netmask, Protocol, ServiceKey, TunChecksum, TunType};

/// keepalived's defaults for what a file leaves out (keepalived.conf(5)).
const DEFAULT_DELAY_LOOP: u32 = 60;
const DEFAULT_CONNECT_TIMEOUT: u32 = 5;
const DEFAULT_RETRY: u32 = 1;

/// An address a vrrp_instance moves, where it is, and the service lvsctl's comment ties it to.
struct Moved {
    at: Loc,
    addr: IpAddr,
    prefix: Option<u8>,
    /// `VIP of LABEL` in lvsctl's own files.
    label: Option<String>,
}

/// What was read so far.
struct Reader {
    setup: Setup,
    /// The file is one lvsctl rendered (its comments name things).
    own: bool,
    moved: Vec<Moved>,
    groups: Vec<(String, Loc, Vec<Node>)>,
    /// Per service: its label in lvsctl's comments.
    labels: Vec<Option<String>>,
    /// Where the IPVS sync daemon is set (`lvs_sync_daemon`).
    sync: Option<Loc>,
}

/// The setup `nodes` (a keepalived.conf read by [`conf::read`]) describe; `own` when lvsctl wrote
/// the file.
pub fn interpret(nodes: &[Node], own: bool) -> Setup {
    let mut r = Reader { setup: Setup::default(), own, moved: vec![], groups: vec![], labels: vec![], sync: None };
    // Groups first: a virtual_server may name one defined after it.
    for n in nodes {
        if n.keyword() == "virtual_server_group" {
            match (n.arg(0), &n.block) {
                (Some(name), Some(b)) => r.groups.push((name.to_string(), n.at.clone(), b.clone())),
                _ => r.setup.note(&n.at, "virtual_server_group without a name and a block: left out"),
            }
        }
    }
    let mut instances = Vec::new();
    for n in nodes {
        match n.keyword() {
            "global_defs" => r.global_defs(n),
            "vrrp_instance" => instances.push(n),
            "virtual_server" => r.virtual_server(n),
            "virtual_server_group" => {}
            // lvsctl moves all of a pair's addresses together: a sync group says the same.
            "vrrp_sync_group" => r.sync_group(n),
            // How long keepalived waits for its children at stop: lvsctl writes its own.
            "child_wait_time" => {}
            other => {
                let what = match other {
                    "vrrp_script" | "track_file" | "track_process" | "vrrp_track_file" => {
                        "a tracking script or file: lvsctl's pair tracks nothing but its peer"
                    }
                    "static_ipaddress" | "static_routes" | "static_rules" | "virtual_routes" => {
                        "static addresses, routes or rules: give them to the hosts' interfaces, gateway or by hand"
                    }
                    "net_namespace" | "instance" | "linkbeat_use_polling" => "keepalived's own process settings",
                    "bfd_instance" => "BFD: lvsctl's pair does not use it",
                    _ => "not something an inventory says",
                };
                r.setup.note(&n.at, format!("{other}: {what}"));
            }
        }
    }
    r.pair(&instances);
    r.mark_vips();
    for (s, label) in r.setup.services.iter_mut().zip(&r.labels) {
        if s.name.is_none() {
            s.name =
                label.as_deref().and_then(|l| l.split(' ').next()).filter(|n| !n.starts_with('(')).and_then(valid_name);
        }
    }
    r.setup
}

/// A number of `n`'s argument `i`, with a note when it is not one.
fn number(setup: &mut Setup, n: &Node, i: usize) -> Option<u32> {
    match n.arg(i).map(str::parse::<u32>) {
        Some(Ok(v)) => Some(v),
        _ => {
            setup.note(&n.at, format!("{}: expected a whole number, found {:?}", n.keyword(), n.arg(i).unwrap_or("")));
            None
        }
    }
}

/// Seconds that keepalived may write with a fraction (`advert_int 0.5`): rounded up to whole
/// seconds, with a note when it had one.
fn seconds(setup: &mut Setup, n: &Node) -> Option<u32> {
    let v: f64 = match n.arg(0).map(str::parse::<f64>) {
        Some(Ok(v)) if v.is_finite() && v >= 0.0 => v,
        _ => {
            setup.note(&n.at, format!("{}: expected seconds, found {:?}", n.keyword(), n.arg(0).unwrap_or("")));
            return None;
        }
    };
    let whole = v.ceil().max(1.0) as u32;
    if v.fract() != 0.0 || v < 1.0 {
        setup.note(&n.at, format!("{} {v}: an inventory takes whole seconds; {whole} written", n.keyword()));
    }
    Some(whole)
}

/// `ADDR[/PREFIX]`.
fn addr_prefix(s: &str) -> Option<(IpAddr, Option<u8>)> {
    match s.split_once('/') {
        Some((a, p)) => Some((a.parse().ok()?, Some(p.parse().ok()?))),
        None => Some((s.parse().ok()?, None)),
    }
}

impl Reader {
    fn note(&mut self, at: &Loc, text: impl Into<String>) {
        self.setup.note(at, text);
    }

    fn global_defs(&mut self, n: &Node) {
        for g in n.block.iter().flatten() {
            match g.keyword() {
                "router_id" => {
                    if let Some(name) = g.arg(0).and_then(valid_name) {
                        self.setup.director = Some(name);
                    }
                }
                "lvs_sync_daemon" => self.sync_daemon(g),
                "lvs_timeouts" => {
                    let mut t = Timeouts::default();
                    let mut words = g.words[1..].iter();
                    while let Some(k) = words.next() {
                        let v = words.next().and_then(|v| v.parse::<u32>().ok()).filter(|v| *v > 0);
                        match (k.as_str(), v) {
                            ("tcp", Some(v)) => t.tcp = Some(v),
                            ("tcpfin", Some(v)) => t.tcp_fin = Some(v),
                            ("udp", Some(v)) => t.udp = Some(v),
                            _ => {
                                self.note(&g.at, format!("lvs_timeouts {k}: expected tcp, tcpfin or udp with seconds"));
                                break;
                            }
                        }
                    }
                    self.setup.timeouts = Some(t);
                }
                // The VRRP process's nice value: lvsctl writes its own.
                "vrrp_priority" => {}
                // Mail on state changes, script security, keepalived's own tuning: not the lab's.
                other => self.note(&g.at, format!("global_defs {other}: keepalived's own setting, not the lab's")),
            }
        }
    }

    fn sync_daemon(&mut self, g: &Node) {
        // `lvs_sync_daemon IFACE INSTANCE [id N] [maxlen N] [port N] [ttl N] [group ADDR]`
        if g.words.len() > 3 {
            self.note(&g.at, "lvs_sync_daemon's options (id, maxlen, port, ttl, group): lvsctl sets its own");
        }
        self.sync = Some(g.at.clone());
    }

    fn sync_group(&mut self, n: &Node) {
        for g in n.block.iter().flatten() {
            if g.keyword() != "group" {
                self.note(
                    &g.at,
                    format!("vrrp_sync_group {}: lvsctl's pair does not run scripts or tracking", g.keyword()),
                );
            }
        }
    }
}

/// A virtual server's settings that its real servers' checks take as defaults (keepalived 2 lets
/// a virtual server give them).
#[derive(Clone)]
struct CheckDefaults {
    delay_loop: u32,
    connect_timeout: Option<u32>,
    retry: Option<u32>,
    inhibit: bool,
}

/// What one real server says about its check and quiescing, to be compared across a service.
#[derive(Clone, PartialEq, Eq)]
struct RsCheck {
    check: Option<Check>,
    inhibit: bool,
}

impl Reader {
    /// `virtual_server ADDR PORT`, `virtual_server fwmark N`, `virtual_server group NAME`.
    fn virtual_server(&mut self, n: &Node) {
        let Some(block) = &n.block else {
            self.note(&n.at, "virtual_server without a block: left out");
            return;
        };
        // The service's settings, read once; then one service per address the group holds.
        let mut proto = Protocol::Tcp;
        let mut v6_family: Option<bool> = None;
        let mut forward = (Forward::Route, Encap::IPIP);
        let mut template = Service::new(n.at.clone(), ServiceKey::Mark { fwmark: 1, ipv6: false });
        let mut defaults =
            CheckDefaults { delay_loop: DEFAULT_DELAY_LOOP, connect_timeout: None, retry: None, inhibit: false };
        let mut granularity: Option<String> = None;
        let mut refused = false;
        for k in block.iter().filter(|k| k.keyword() != "real_server") {
            match k.keyword() {
                "delay_loop" => defaults.delay_loop = seconds(&mut self.setup, k).unwrap_or(DEFAULT_DELAY_LOOP),
                "lb_algo" | "lvs_sched" => match k.arg(0) {
                    Some(a) => template.scheduler = a.to_string(),
                    None => self.note(&k.at, format!("{} without a scheduler; wlc kept", k.keyword())),
                },
                "lb_kind" | "lvs_method" => match self.method(k) {
                    Some(f) => forward = f,
                    None => refused = true,
                },
                "protocol" => match k.arg(0).map(str::to_ascii_lowercase).as_deref() {
                    Some("tcp") => proto = Protocol::Tcp,
                    Some("udp") => proto = Protocol::Udp,
                    Some("sctp") => proto = Protocol::Sctp,
                    other => {
                        self.note(
                            &k.at,
                            format!("protocol {}: not tcp, udp or sctp; the service is left out", other.unwrap_or("")),
                        );
                        refused = true;
                    }
                },
                "persistence_timeout" => {
                    // keepalived takes `persistence_timeout` alone as 6 minutes.
                    template.persistence = match k.arg(0) {
                        None => 360,
                        Some(_) => number(&mut self.setup, k, 0).unwrap_or(0),
                    }
                }
                "persistence_granularity" => granularity = k.arg(0).map(str::to_string),
                "ops" => template.one_packet = true,
                "ip_family" => v6_family = Some(k.arg(0) == Some("inet6")),
                "hashed" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                    let f = if k.keyword() == "hashed" { "flag-1" } else { k.keyword() };
                    template.flags.push(f.to_string());
                }
                "sorry_server" => {
                    match (k.arg(0).and_then(|a| a.parse::<IpAddr>().ok()), k.arg(1).map(str::parse::<u16>)) {
                        (Some(a), Some(Ok(p))) => {
                            template.sorry = Some((a, p));
                            // lvsctl's own files name its host in the comment above.
                            if let Some(n) = k.comments.last().filter(|_| self.own).and_then(|c| valid_name(c)) {
                                self.setup.names.insert(a, n);
                            }
                        }
                        (Some(a), None) => template.sorry = Some((a, 0)),
                        _ => self.note(&k.at, "sorry_server: expected an address and a port"),
                    }
                }
                "connect_timeout" => defaults.connect_timeout = number(&mut self.setup, k, 0),
                "retry" | "nb_get_retry" => defaults.retry = number(&mut self.setup, k, 0),
                "delay_before_retry" => {}
                "inhibit_on_failure" => defaults.inhibit = true,
                other => {
                    let what = match other {
                        "virtualhost" => "the Host header of HTTP checks: the lab's real servers answer any",
                        "quorum" | "quorum_up" | "quorum_down" | "hysteresis" => {
                            "a quorum of real servers: an inventory's service has none (the sorry server takes over when none is up)"
                        }
                        "alpha" | "omega" => "alpha/omega start-up states of the checks",
                        "sorry_server_inhibit" | "sorry_server_lvs_method" => "the sorry server's own settings",
                        "ha_suspend" => "suspending checks while backup",
                        "flag-1" | "flag-2" | "flag-3" => "a scheduler flag an inventory does not take",
                        _ => "not something an inventory's service says",
                    };
                    self.note(&k.at, format!("{other}: {what}"));
                }
            }
        }
        if let Some(g) = granularity {
            template.netmask = match (g.parse::<std::net::Ipv4Addr>(), g.parse::<u8>()) {
                (Ok(m), _) => Some(Netmask::V4(m)),
                (_, Ok(p)) if p <= 128 => Some(Netmask::V6(p)),
                _ => {
                    self.note(&n.at, format!("persistence_granularity {g}: neither a netmask nor a prefix length"));
                    None
                }
            };
        }
        if refused {
            self.note(&n.at, "this virtual_server is left out (see above)");
            return;
        }
        // Its real servers, with what each says about its check.
        let mut dests: Vec<(Dest, RsCheck, Option<String>)> = Vec::new();
        for rs in block.iter().filter(|k| k.keyword() == "real_server") {
            if let Some(d) = self.real_server(rs, forward, &defaults) {
                dests.push(d);
            }
        }
        // The keys: one, or one per entry of the group.
        let mut keys: Vec<(Loc, ServiceKey, Option<String>)> = Vec::new();
        let label = self
            .own
            .then(|| {
                n.comments
                    .iter()
                    .find(|c| {
                        c.contains(" (")
                            || c.starts_with("tcp ")
                            || c.starts_with("udp ")
                            || c.starts_with("sctp ")
                            || c.starts_with("fwmark ")
                    })
                    .cloned()
            })
            .flatten();
        match (n.arg(0), n.arg(1)) {
            (Some("fwmark"), Some(m)) => match m.parse::<u32>() {
                Ok(mark) if mark > 0 => {
                    keys.push((n.at.clone(), ServiceKey::Mark { fwmark: mark, ipv6: v6_family.unwrap_or(false) }, None))
                }
                _ => {
                    self.note(&n.at, format!("virtual_server fwmark {m}: not a mark (1 or more)"));
                    return;
                }
            },
            (Some("group"), Some(g)) => {
                let Some((_, _, entries)) = self.groups.iter().find(|(name, _, _)| name == g).cloned() else {
                    self.note(&n.at, format!("virtual_server group {g}: no virtual_server_group {g} is defined"));
                    return;
                };
                let name = valid_name(g);
                for e in &entries {
                    keys.extend(self.group_entry(e, proto, v6_family, name.clone()));
                }
            }
            (Some(a), p) => match (a.parse::<IpAddr>(), p.map(str::parse::<u16>)) {
                (Ok(addr), Some(Ok(port))) if port > 0 => {
                    keys.push((n.at.clone(), ServiceKey::addr(proto, addr, port), None))
                }
                (Ok(_), _) => {
                    self.note(&n.at, "virtual_server: a port (1-65535) after the address is needed");
                    return;
                }
                (Err(_), _) => {
                    self.note(&n.at, format!("virtual_server {a}: not an address (names are not resolved)"));
                    return;
                }
            },
            _ => {
                self.note(&n.at, "virtual_server without an address and port, fwmark or group");
                return;
            }
        }
        // One check and one quiesce setting for the whole service: the first real server's.
        if let Some((first, rest)) = dests.split_first() {
            for (d, c, _) in rest {
                if c.check != first.1.check {
                    self.note(&d.at, "this real server's check differs from the first's, and an inventory checks every real server of a service alike; the first's kept");
                }
                if c.inhibit != first.1.inhibit {
                    self.note(&d.at, "inhibit_on_failure on some real servers only: an inventory quiesces all of a service's or none; the first's kept");
                }
            }
        }
        for (at, key, name) in keys {
            let v6 = match key {
                ServiceKey::Addr { addr, .. } => addr.is_ipv6(),
                ServiceKey::Mark { ipv6, .. } => ipv6,
            };
            let mut s = template.clone();
            s.at = at;
            s.key = key;
            s.name = name;
            if let Some((a, _)) = s.sorry
                && a.is_ipv6() != v6
            {
                s.sorry = None;
            }
            if let Some((a, 0)) = s.sorry {
                s.sorry = match key {
                    ServiceKey::Addr { port, .. } => Some((a, port)),
                    ServiceKey::Mark { .. } => {
                        self.note(&s.at, format!("sorry server {a} of a firewall-mark service has no port"));
                        None
                    }
                };
            }
            let port = match key {
                ServiceKey::Addr { port, .. } => port,
                ServiceKey::Mark { .. } => 0,
            };
            for (d, _, rs_name) in &dests {
                if d.address.is_ipv6() != v6 {
                    continue;
                }
                let mut d = d.clone();
                if d.port == 0 {
                    d.port = port;
                }
                if let Some(n) = rs_name {
                    self.setup.names.insert(d.address, n.clone());
                }
                s.dests.push(d);
            }
            if let Some((_, c, _)) = dests.first() {
                s.check = c.check.clone();
                s.quiesce = c.inhibit;
            }
            self.setup.services.push(s);
            self.labels.push(label.clone());
        }
    }

    /// `lb_kind NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`; None (with a
    /// note) for what an inventory cannot say.
    fn method(&mut self, k: &Node) -> Option<(Forward, Encap)> {
        let f = match k.arg(0).map(str::to_ascii_uppercase).as_deref() {
            Some("NAT") => Forward::Masq,
            Some("DR") => Forward::Route,
            Some("TUN") => Forward::Tunnel,
            other => {
                self.note(&k.at, format!("{} {}: not NAT, DR or TUN", k.keyword(), other.unwrap_or("")));
                return None;
            }
        };
        let mut e = Encap::IPIP;
        let mut i = 1;
        let bad = |this: &mut Self, why: &str| {
            this.note(&k.at, format!("{}: {why}", k.words.join(" ")));
            None
        };
        while let Some(w) = k.arg(i) {
            match (w, k.arg(i + 1)) {
                ("type", Some(t)) if f == Forward::Tunnel => match TunType::parse(t) {
                    Some(t) => e.tun_type = t,
                    None => return bad(self, "a tunnel type lvsctl does not know"),
                },
                ("port", Some(p)) if f == Forward::Tunnel => match p.parse::<u16>() {
                    Ok(p) if p > 0 => e.port = p,
                    _ => return bad(self, "not a port"),
                },
                (c, _) if f == Forward::Tunnel && TunChecksum::parse(c.trim_start_matches("no")).is_some() => {
                    e.checksum =
                        if c == "nocsum" { TunChecksum::None } else { TunChecksum::parse(c).unwrap_or_default() };
                    i += 1;
                    continue;
                }
                _ => return bad(self, "options lvsctl does not know after the method"),
            }
            i += 2;
        }
        Some((f, e))
    }

    /// One entry of a virtual_server_group: `ADDR PORT`, `ADDR-LAST PORT` (a range of the last
    /// part), `fwmark N`.
    fn group_entry(
        &mut self,
        e: &Node,
        proto: Protocol,
        family: Option<bool>,
        name: Option<String>,
    ) -> Vec<(Loc, ServiceKey, Option<String>)> {
        let w: Vec<&str> = e.words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["fwmark", m, ..] => match m.parse::<u32>() {
                Ok(mark) if mark > 0 => {
                    vec![(e.at.clone(), ServiceKey::Mark { fwmark: mark, ipv6: family.unwrap_or(false) }, name)]
                }
                _ => {
                    self.note(&e.at, format!("fwmark {m}: not a mark"));
                    vec![]
                }
            },
            [a, p] => {
                let Ok(port) = p.parse::<u16>() else {
                    self.note(&e.at, format!("{a} {p}: not a port"));
                    return vec![];
                };
                let addrs: Vec<IpAddr> = match a.split_once('-') {
                    None => a.parse().ok().into_iter().collect(),
                    Some((first, last)) => match (first.parse::<IpAddr>(), last.parse::<u16>()) {
                        (Ok(IpAddr::V4(f)), Ok(l)) if l <= 255 && l >= u16::from(f.octets()[3]) => {
                            (u16::from(f.octets()[3])..=l)
                                .map(|x| {
                                    let o = f.octets();
                                    IpAddr::from([o[0], o[1], o[2], x as u8])
                                })
                                .collect()
                        }
                        (Ok(IpAddr::V6(f)), Ok(_)) => {
                            let s = f.segments();
                            match u16::from_str_radix(last, 16) {
                                Ok(l) if l >= s[7] && l - s[7] < 256 => (s[7]..=l)
                                    .map(|x| {
                                        let mut t = s;
                                        t[7] = x;
                                        IpAddr::from(t)
                                    })
                                    .collect(),
                                _ => vec![],
                            }
                        }
                        _ => vec![],
                    },
                };
                if addrs.is_empty() {
                    self.note(&e.at, format!("{a}: not an address or a range of one (ADDR-LAST)"));
                }
                let many = addrs.len() > 1 || name.is_some();
                addrs
                    .into_iter()
                    .enumerate()
                    .map(|(i, addr)| {
                        let n = name.clone().map(|n| if many && i > 0 { format!("{n}-{}", i + 1) } else { n });
                        (e.at.clone(), ServiceKey::addr(proto, addr, port), n)
                    })
                    .collect()
            }
            _ => {
                self.note(&e.at, format!("{}: not an ADDR PORT or fwmark N entry", w.join(" ")));
                vec![]
            }
        }
    }

    /// `real_server ADDR [PORT] { ... }`: the destination, its check, and its name in lvsctl's
    /// comments.
    fn real_server(
        &mut self,
        rs: &Node,
        (forward, encap): (Forward, Encap),
        defaults: &CheckDefaults,
    ) -> Option<(Dest, RsCheck, Option<String>)> {
        let Some(address) = rs.arg(0).and_then(|a| a.parse::<IpAddr>().ok()) else {
            self.note(&rs.at, format!("real_server {}: not an address", rs.arg(0).unwrap_or("")));
            return None;
        };
        let port = match rs.arg(1).map(str::parse::<u16>) {
            None => 0,
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                self.note(&rs.at, format!("real_server {address} {}: not a port", rs.arg(1).unwrap_or("")));
                return None;
            }
        };
        let mut d =
            Dest { at: rs.at.clone(), address, port, forward, weight: 1, u_threshold: 0, l_threshold: 0, encap };
        let mut c = RsCheck { check: None, inhibit: defaults.inhibit };
        let mut delay_loop = defaults.delay_loop;
        let mut checks = 0;
        for k in rs.block.iter().flatten() {
            match k.keyword() {
                "weight" => d.weight = number(&mut self.setup, k, 0).unwrap_or(1),
                "uthreshold" => d.u_threshold = number(&mut self.setup, k, 0).unwrap_or(0),
                "lthreshold" => d.l_threshold = number(&mut self.setup, k, 0).unwrap_or(0),
                "inhibit_on_failure" => c.inhibit = true,
                "lb_kind" | "lvs_method" => {
                    if let Some((f, e)) = self.method(k) {
                        (d.forward, d.encap) = (f, e);
                    }
                }
                "delay_loop" => delay_loop = seconds(&mut self.setup, k).unwrap_or(delay_loop),
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" => {
                    checks += 1;
                    if checks > 1 {
                        self.note(
                            &k.at,
                            format!(
                                "{}: a second check of one real server; an inventory has one, the first is kept",
                                k.keyword()
                            ),
                        );
                        continue;
                    }
                    c.check = self.check(k, delay_loop, defaults);
                }
                "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK" | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
                    self.note(
                        &k.at,
                        format!("{}: an inventory checks with TCP connects or HTTP GETs only; this real server is not checked", k.keyword()),
                    );
                }
                other => {
                    let what = match other {
                        "notify_up" | "notify_down" => "a script run on a check's change",
                        "smtp_alert" => "mail on a check's change",
                        _ => "not something an inventory's real server says",
                    };
                    self.note(&k.at, format!("{other}: {what}"));
                }
            }
        }
        let name = if self.own { rs.comments.last().and_then(|c| valid_name(c)) } else { None };
        Some((d, c, name))
    }

    /// A TCP_CHECK, HTTP_GET or SSL_GET block.
    fn check(&mut self, k: &Node, delay_loop: u32, defaults: &CheckDefaults) -> Option<Check> {
        let mut c = Check {
            http: None,
            interval: delay_loop.clamp(1, 3600),
            timeout: defaults.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT).clamp(1, 3600),
            retries: defaults.retry.unwrap_or(DEFAULT_RETRY).min(100),
            port: None,
        };
        if k.keyword() != "TCP_CHECK" {
            c.http = Some(HttpCheck { path: "/".into(), status: 200, expect: None });
            if k.keyword() == "SSL_GET" {
                self.note(&k.at, "SSL_GET: an inventory's http check speaks plain HTTP; checked with HTTP GET instead (the lab's real servers answer plain HTTP)");
            }
        }
        let mut urls = 0;
        for x in k.block.iter().flatten() {
            match x.keyword() {
                "connect_port" => {
                    c.port = number(&mut self.setup, x, 0).and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0)
                }
                "connect_timeout" => c.timeout = number(&mut self.setup, x, 0).unwrap_or(c.timeout).clamp(1, 3600),
                "retry" | "nb_get_retry" => c.retries = number(&mut self.setup, x, 0).unwrap_or(c.retries).min(100),
                "delay_loop" => c.interval = seconds(&mut self.setup, x).unwrap_or(c.interval).clamp(1, 3600),
                "delay_before_retry" => {}
                "url" if c.http.is_some() => {
                    urls += 1;
                    if urls > 1 {
                        self.note(&x.at, "a second url: an inventory's http check GETs one path; the first is kept");
                        continue;
                    }
                    let http = c.http.as_mut().expect("an http check");
                    for u in x.block.iter().flatten() {
                        match (u.keyword(), u.arg(0)) {
                            ("path", Some(p)) => http.path = p.to_string(),
                            ("status_code", Some(s)) => match s.parse::<u16>() {
                                Ok(v) if (100..=599).contains(&v) && u.words.len() == 2 => http.status = v,
                                _ => self.note(
                                    &u.at,
                                    format!(
                                        "status_code {}: an inventory checks one status; 200 kept",
                                        u.words[1..].join(" ")
                                    ),
                                ),
                            },
                            ("regex", Some(r)) if !r.chars().any(|c| "\\^$.|?*+()[]{}".contains(c)) => {
                                http.expect = Some(r.to_string())
                            }
                            ("regex", Some(_)) => self.note(
                                &u.at,
                                "regex: a regular expression; an inventory's check looks for plain text (expect)",
                            ),
                            ("digest", _) => {
                                self.note(&u.at, "digest: an inventory's http check does not compare the body's MD5")
                            }
                            (other, _) => {
                                self.note(&u.at, format!("url {other}: not something an inventory's http check says"))
                            }
                        }
                    }
                }
                other => self.note(&x.at, format!("{} {other}: not something an inventory's check says", k.keyword())),
            }
        }
        Some(c)
    }

    /// The vrrp_instances as one pair: the first one's id, priority and interval; the addresses of
    /// every instance.
    fn pair(&mut self, instances: &[&Node]) {
        let Some(first) = instances.first() else {
            if let Some(at) = self.sync.clone() {
                self.note(&at, "lvs_sync_daemon without a vrrp_instance: sync is for a pair of directors");
            }
            return;
        };
        let mut p = Pair {
            at: first.at.clone(),
            virtual_router_id: 51,
            advert_interval: 1,
            preempt: true,
            priority: 100,
            unicast: None,
            sync: self.sync.is_some(),
            floating: vec![],
        };
        for (i, inst) in instances.iter().enumerate() {
            let mut src: Option<IpAddr> = None;
            let mut peers: Vec<IpAddr> = Vec::new();
            for k in inst.block.iter().flatten() {
                match k.keyword() {
                    "virtual_router_id" => {
                        if let Some(v) = number(&mut self.setup, k, 0) {
                            match u8::try_from(v) {
                                Ok(v) if v > 0 && i == 0 => p.virtual_router_id = v,
                                Ok(v) if v == p.virtual_router_id => {}
                                Ok(v) if v > 0 => self.note(&k.at, format!("virtual_router_id {v}: lvsctl's pair uses one id for all its instances; {} kept", p.virtual_router_id)),
                                _ => self.note(&k.at, format!("virtual_router_id {v}: not 1-255")),
                            }
                        }
                    }
                    "priority" => {
                        if let Some(v) = number(&mut self.setup, k, 0) {
                            match u8::try_from(v) {
                                Ok(v) if (1..=254).contains(&v) && i == 0 => p.priority = v,
                                Ok(v) if v == p.priority => {}
                                _ => self.note(&k.at, format!("priority {v}: lvsctl gives a director one priority (1-254) for all instances; {} kept", p.priority)),
                            }
                        }
                    }
                    "advert_int" => {
                        if let Some(v) = seconds(&mut self.setup, k)
                            && i == 0
                        {
                            p.advert_interval = v;
                        }
                    }
                    "nopreempt" => p.preempt = false,
                    // lvsctl starts both as BACKUP (the higher priority wins) on the interface
                    // of the VIP's subnet.
                    "state" | "interface" => {}
                    "unicast_src_ip" => src = k.arg(0).and_then(|a| a.parse().ok()),
                    "unicast_peer" => {
                        for x in k.block.iter().flatten() {
                            match x.words.first().and_then(|a| a.parse().ok()) {
                                Some(a) => peers.push(a),
                                None => self.note(&x.at, "unicast_peer: not an address"),
                            }
                        }
                    }
                    "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                        for x in k.block.iter().flatten() {
                            match x.words.first().and_then(|a| addr_prefix(a)) {
                                Some((addr, prefix)) => {
                                    let label = if self.own {
                                        x.comments.last().and_then(|c| c.strip_prefix("VIP of ")).map(str::to_string)
                                    } else {
                                        None
                                    };
                                    self.moved.push(Moved { at: x.at.clone(), addr, prefix, label });
                                }
                                None => self.note(&x.at, format!("{}: not an address", x.words.join(" "))),
                            }
                        }
                    }
                    "lvs_sync_daemon_interface" => p.sync = true,
                    other => {
                        let what = match other {
                            "authentication" => {
                                "VRRP authentication (dropped from VRRPv3): lvsctl's pair does not authenticate"
                            }
                            "track_interface" | "track_script" | "track_file" | "track_process" | "track_bfd" => {
                                "tracking: lvsctl's pair tracks nothing but its peer"
                            }
                            "preempt_delay" => "a delay before preempting",
                            s if s.starts_with("notify") => "a script run on a state change",
                            s if s.starts_with("garp") || s.starts_with("gna") => "gratuitous ARP tuning",
                            "use_vmac" | "vmac_xmit_base" => "a VRRP virtual MAC",
                            "smtp_alert" => "mail on a state change",
                            "version" => "the VRRP version",
                            "dont_track_primary" | "skip_check_adv_addr" | "strict_mode" => "keepalived's VRRP tuning",
                            "virtual_routes" | "virtual_rules" => "routes or rules the pair moves",
                            _ => "not something lvsctl's pair says",
                        };
                        self.note(&k.at, format!("{other}: {what}"));
                    }
                }
            }
            if let (Some(s), Some(peer)) = (src, peers.first()) {
                if i == 0 || p.unicast.is_none() {
                    p.unicast = Some((s, *peer));
                }
                if peers.len() > 1 {
                    self.note(
                        &inst.at,
                        "unicast_peer with more than one peer: lvsctl's pair is two directors; the first kept",
                    );
                }
            } else if !peers.is_empty() {
                self.note(&inst.at, "unicast_peer without unicast_src_ip: this director's address is a guess");
            }
        }
        self.setup.pair = Some(p);
    }

    /// The addresses the pair moves: a VIP of a service (lvsctl moves those itself), a firewall
    /// mark's VIP, the real servers' gateway (NAT), or something the inventory does not say.
    fn mark_vips(&mut self) {
        let vips: Vec<IpAddr> = self
            .setup
            .services
            .iter()
            .filter_map(|s| match s.key {
                ServiceKey::Addr { addr, .. } => Some(addr),
                ServiceKey::Mark { .. } => None,
            })
            .collect();
        let rs: Vec<IpAddr> = self.setup.services.iter().flat_map(|s| s.dests.iter().map(|d| d.address)).collect();
        let nat = self.setup.services.iter().any(|s| s.dests.iter().any(|d| d.forward == Forward::Masq));
        let moved = std::mem::take(&mut self.moved);
        let mut unused: Vec<&Moved> = Vec::new();
        for m in &moved {
            if vips.contains(&m.addr) {
                continue;
            }
            // lvsctl's own files say whose VIP it is.
            if let Some(label) = &m.label {
                let target = self.labels.iter().position(|l| l.as_deref() == Some(label.as_str()));
                if let Some(i) = target
                    && matches!(self.setup.services[i].key, ServiceKey::Mark { .. })
                {
                    self.setup.services[i].mark_vips.push(m.addr);
                    continue;
                }
            }
            let on_rs_subnet = rs.iter().any(|r| same_subnet(*r, m.addr, m.prefix));
            if on_rs_subnet && nat {
                if let Some(p) = &mut self.setup.pair {
                    p.floating.push((m.addr, m.prefix.unwrap_or(if m.addr.is_ipv6() { 64 } else { 24 })));
                }
                continue;
            }
            unused.push(m);
        }
        // A firewall-mark service's VIPs, when the file does not say: the moved addresses of its
        // family that nothing else uses (a guess, said by the inventory's writer).
        let mut taken: Vec<IpAddr> = Vec::new();
        for s in self.setup.services.iter_mut() {
            if let ServiceKey::Mark { ipv6, .. } = s.key
                && s.mark_vips.is_empty()
            {
                s.mark_vips = unused.iter().filter(|m| m.addr.is_ipv6() == ipv6).map(|m| m.addr).collect();
                taken.extend(s.mark_vips.iter().copied());
            }
        }
        let leftover: Vec<(Loc, IpAddr)> =
            unused.iter().filter(|m| !taken.contains(&m.addr)).map(|m| (m.at.clone(), m.addr)).collect();
        for (at, a) in leftover {
            self.note(
                &at,
                format!(
                    "{a}: moved by the pair but the VIP of no virtual_server (lvsctl's pair moves its services' VIPs)"
                ),
            );
        }
    }
}

/// Whether `a` is on the subnet of `b` with prefix `prefix` (a /24 or /64 when it has none).
fn same_subnet(a: IpAddr, b: IpAddr, prefix: Option<u8>) -> bool {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            let p = prefix.filter(|p| *p < 32).unwrap_or(24);
            let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(x) & m == u32::from(y) & m
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => {
            let p = prefix.filter(|p| *p < 128).unwrap_or(64);
            let m = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(x) & m == u128::from(y) & m
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn read_text(text: &str, name: &str) -> Setup {
        let open = |p: &Path| std::fs::read_to_string(p);
        let glob = |p: &Path| Ok(vec![PathBuf::from(p)]);
        let reading = conf::Reading { config_id: None, open: &open, glob: &glob };
        let nodes = conf::read(text, name, None, &reading).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        interpret(&nodes, text.starts_with("# Written by lvsctl for director "))
    }

    /// The services and pair without where they were read.
    fn essence(s: &Setup) -> (Vec<Service>, Option<Pair>) {
        let nowhere = Loc { file: String::new(), line: 0 };
        let services = s
            .services
            .iter()
            .map(|x| {
                let mut x = x.clone();
                x.at = nowhere.clone();
                for d in &mut x.dests {
                    d.at = nowhere.clone();
                }
                x
            })
            .collect();
        let pair = s.pair.clone().map(|mut p| {
            p.at = nowhere.clone();
            p
        });
        (services, pair)
    }

    /// Every keepalived.conf lvsctl renders (each HA example's, both directors') imports to an
    /// inventory whose own render of that director reads back the same: services, real servers,
    /// checks, quiescing, sorry servers, the pair, the sync daemon, the names.
    #[test]
    fn keepalived_conf_imported_and_rendered_again_is_the_same() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let templates = crate::templates::Templates::embedded();
        let mut done = 0;
        for lab in std::fs::read_dir(&root).unwrap().flatten() {
            for host in std::fs::read_dir(lab.path()).into_iter().flatten().flatten() {
                let file = host.path().join("etc/keepalived/keepalived.conf");
                let Ok(text) = std::fs::read_to_string(&file) else { continue };
                let before = read_text(&text, &file.display().to_string());
                let director = host.file_name().to_string_lossy().into_owned();
                assert_eq!(before.director.as_deref(), Some(director.as_str()), "{}", file.display());
                assert!(before.pair.is_some() && !before.services.is_empty(), "{}", file.display());
                let imported = crate::import::inventory::inventory(&before, "again", "test", true).unwrap();
                let l = crate::inventory::parse_str(Path::new("imported.toml"), &imported.text)
                    .unwrap_or_else(|d| panic!("{}: invalid:\n{d}\n{}", file.display(), imported.text));
                let ctx = crate::plan::Context { agent_path: "/a".into(), templates: &templates };
                let plans = crate::plan::plan(&l, &ctx).unwrap();
                let plan = plans.iter().find(|p| p.host == director).expect("the same director");
                let files = crate::render::render_host(plan, &ctx).unwrap();
                let conf = files.iter().find(|f| f.name.ends_with("keepalived.conf")).expect("keepalived.conf");
                let after = read_text(&conf.content, "again");
                assert_eq!(essence(&after), essence(&before), "{}:\n{}", file.display(), imported.text);
                // And against the inventory the file was rendered from: each service by VIP and
                // port, with its name, scheduler, real servers and weights, check, quiescing and
                // sorry server (a firewall mark's `match` is a guess, its VIPs aside).
                let lab_name = lab.file_name().to_string_lossy().into_owned();
                let source = crate::inventory::load(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("inventories/{lab_name}.toml")),
                )
                .unwrap();
                let said = |s: &crate::inventory::Service| {
                    let rs: Vec<(String, u32)> = s.real_servers.iter().map(|b| (b.host.clone(), b.weight)).collect();
                    let sorry = s.sorry_server.as_ref().map(|x| format!("{:?} {}", x.host, x.port));
                    let key = if s.ipvs.fwmark.is_some() {
                        format!("mark {:?}", s.ipvs.fwmark)
                    } else {
                        format!("{} {}", s.ipvs.vip, s.ipvs.port)
                    };
                    // A mark's check goes to its first port when the inventory names none.
                    let mut check = s.health_check.clone();
                    if let Some(c) = check.as_mut().filter(|_| s.ipvs.fwmark.is_some()) {
                        c.port = c.port.or_else(|| s.matches.first().and_then(|m| m.ports.first().copied()));
                    }
                    format!(
                        "{key} {:?} {} {} {rs:?} {check:?} {:?} {sorry:?}",
                        s.name, s.ipvs.scheduler, s.ipvs.persistence, s.on_failure
                    )
                };
                let mut want: Vec<String> = source.services.iter().map(said).collect();
                let mut got: Vec<String> = l.services.iter().map(said).collect();
                want.sort();
                got.sort();
                assert_eq!(
                    got,
                    want,
                    "{}: the import says the services of inventories/{lab_name}.toml:\n{}",
                    file.display(),
                    imported.text
                );
                done += 1;
            }
        }
        assert!(done >= 8, "{done} keepalived.conf files");
    }

    /// Both spellings, a group, checks of every kind the inventory takes and the ones it does not:
    /// each construct read or noted with its line.
    #[test]
    fn spellings_groups_and_what_is_left_out() {
        let text = "\
global_defs {
  router_id LVS_A
  lvs_timeouts tcp 900 tcpfin 30 udp 60
  lvs_sync_daemon eth1 VI_1
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 61
  priority 200
  advert_int 0.5
  nopreempt
  unicast_src_ip 10.0.0.2
  unicast_peer {
    10.0.0.3
  }
  authentication {
    auth_type PASS
  }
  virtual_ipaddress {
    10.0.0.100/24 dev eth0
    10.1.0.1/24 dev eth1
    10.9.9.9
  }
}
virtual_server_group WEB {
  10.0.0.100 80
  10.0.0.100 443
}
virtual_server group WEB {
  lvs_sched wlc
  lvs_method NAT
  persistence_timeout 60
  persistence_granularity 255.255.255.0
  quorum 2
  real_server 10.1.0.11 80 {
    weight 3
    inhibit_on_failure
    HTTP_GET {
      url {
        path /health
        status_code 204
        regex \"^OK\"
      }
      connect_timeout 2
      nb_get_retry 4
    }
  }
  real_server 10.1.0.12 80 {
    weight 1
    inhibit_on_failure
    MISC_CHECK {
      misc_path /bin/true
    }
  }
}
virtual_server 10.0.0.100 53 {
  lb_algo rr
  lb_kind TUN type gue port 6080 csum
  protocol UDP
  real_server 10.1.0.11 53 {
  }
}
";
        let s = read_text(text, "k.conf");
        assert_eq!(s.director.as_deref(), Some("lvs-a"));
        assert_eq!(s.timeouts, Some(Timeouts { tcp: Some(900), tcp_fin: Some(30), udp: Some(60) }));
        let p = s.pair.clone().unwrap();
        assert_eq!((p.virtual_router_id, p.priority, p.advert_interval, p.preempt, p.sync), (61, 200, 1, false, true));
        assert_eq!(p.unicast, Some(("10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap())));
        assert_eq!(p.floating, [("10.1.0.1".parse().unwrap(), 24)]);
        assert_eq!(s.services.len(), 3, "the group's two entries, and the GUE service");
        let gue = Encap { tun_type: TunType::Gue, port: 6080, checksum: TunChecksum::Csum };
        assert_eq!(
            s.services[2].dests.iter().map(|d| (d.forward, d.encap)).collect::<Vec<_>>(),
            [(Forward::Tunnel, gue)]
        );
        let web = &s.services[0];
        assert_eq!(web.name.as_deref(), Some("web"));
        assert_eq!(s.services[1].name.as_deref(), Some("web"), "the writer numbers names that repeat");
        assert_eq!((web.scheduler.as_str(), web.persistence, web.quiesce), ("wlc", 60, true));
        assert_eq!(web.netmask, Some(Netmask::V4("255.255.255.0".parse().unwrap())));
        assert_eq!(
            web.dests.iter().map(|d| (d.weight, d.forward)).collect::<Vec<_>>(),
            [(3, Forward::Masq), (1, Forward::Masq)]
        );
        let c = web.check.clone().unwrap();
        assert_eq!((c.interval, c.timeout, c.retries), (DEFAULT_DELAY_LOOP, 2, 4));
        assert_eq!(c.http, Some(HttpCheck { path: "/health".into(), status: 204, expect: None }));
        let noted = |line: usize, what: &str| {
            assert!(
                s.notes.iter().any(|n| n.at.line == line && n.text.contains(what)),
                "no note on line {line} saying {what:?}: {:#?}",
                s.notes
            )
        };
        noted(11, "whole seconds");
        noted(17, "authentication");
        noted(23, "10.9.9.9");
        noted(35, "quorum");
        noted(43, "regular expression");
        noted(49, "check differs");
        noted(52, "MISC_CHECK");
    }
}
