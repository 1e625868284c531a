//! `lvsctl graph`: the lab's topology as a picture, like `containerlab graph`. One pure step
//! builds a [`Topology`] from the validated lab (hosts with their roles and addresses, the L2
//! segments, who holds each VIP, the services with their real servers and weights); three
//! renderers turn it into Mermaid, Graphviz DOT or an SVG drawn here, with no external program.
//!
//! The SVG is a network ("bus") diagram: each segment a horizontal bar, each host a box hanging
//! from the bars it is wired to, the services listed under it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::inventory::{Lab, Role};

/// What the pictures show, in drawing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub lab: String,
    pub mode: String,
    pub segments: Vec<Segment>,
    pub hosts: Vec<Node>,
    pub services: Vec<Svc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `back` from `[lab] segments`, or the subnet when the inventory names none.
    pub name: String,
    pub subnets: Vec<IpNet>,
    /// (host, interface).
    pub members: Vec<(String, String)>,
    /// What a lab on this machine does to it now (`lab impair`), shown beside its name.
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub role: Role,
    /// The lines of its box after the name: role, addresses, VIPs, gateway.
    pub lines: Vec<String>,
    /// What a lab on this machine does to it now (`lab stop`, `lab cut`, `lab impair` of one
    /// of its links), shown in red after its lines.
    pub alerts: Vec<String>,
    pub stopped: bool,
    /// Its interfaces whose link is down at the bridge (`lab cut`, or the host stopped).
    pub cut: Vec<String>,
}

/// What `lab impair`, `lab cut` and `lab stop` did to a lab on this machine, for the picture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabState {
    /// Segment name → its impairment.
    pub segments: BTreeMap<String, String>,
    /// (host, interface) → the impairment of that link alone.
    pub links: BTreeMap<(String, String), String>,
    pub cut: BTreeSet<(String, String)>,
    pub stopped: BTreeSet<String>,
}

impl Topology {
    /// Shows `state` on the segments and hosts it concerns.
    pub fn overlay(&mut self, state: &LabState) {
        for s in &mut self.segments {
            s.state = state.segments.get(&s.name).map(|i| format!("impaired: {i}"));
        }
        for h in &mut self.hosts {
            h.stopped = state.stopped.contains(&h.name);
            if h.stopped {
                h.alerts.push("STOPPED (lab stop): links down, processes frozen".into());
            }
            for ((host, iface), i) in &state.links {
                if *host == h.name {
                    h.alerts.push(format!("{iface} impaired: {i}"));
                }
            }
            for (host, iface) in &state.cut {
                if *host == h.name {
                    h.alerts.push(format!("{iface} cut (lab cut)"));
                    h.cut.push(iface.clone());
                }
            }
            if h.stopped {
                for s in &self.segments {
                    for (m, i) in &s.members {
                        if *m == h.name && !h.cut.contains(i) {
                            h.cut.push(i.clone());
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svc {
    /// `web (tcp 192.168.188.100:80)`.
    pub label: String,
    pub vip: IpAddr,
    pub scheduler: String,
    /// The hosts the VIP is on: the director, or both of a pair.
    pub directors: Vec<String>,
    /// (host, weight) of each real server.
    pub real_servers: Vec<(String, u32)>,
    pub sorry: Option<String>,
    pub check: Option<String>,
    /// How the director forwards, when it is not the mode's plain way: `one-armed NAT, source
    /// 192.168.188.8`, `GUE port 6080 csum`, `GRE`.
    pub forwarding: Option<String>,
}

/// The segments of the lab: `[lab] segments` when the inventory has them, else one per subnet.
fn segments(lab: &Lab) -> Vec<Segment> {
    let subnet_of = |host: &str, iface: &str| -> Vec<IpNet> {
        lab.host(host)
            .and_then(|h| h.interfaces.iter().find(|i| i.name == iface))
            .map(|i| i.addresses.iter().map(|a| a.trunc()).collect())
            .unwrap_or_default()
    };
    if let Some(spec) = &lab.lab {
        return spec
            .segments
            .iter()
            .map(|s| {
                let mut subnets: Vec<IpNet> = s.members.iter().flat_map(|(h, i)| subnet_of(h, i)).collect();
                subnets.sort();
                subnets.dedup();
                Segment { name: s.name.clone(), subnets, members: s.members.clone(), state: None }
            })
            .collect();
    }
    let mut out: Vec<Segment> = Vec::new();
    for h in &lab.hosts {
        for i in &h.interfaces {
            for a in &i.addresses {
                let net = a.trunc();
                let member = (h.name.clone(), i.name.clone());
                match out.iter_mut().find(|s| s.subnets.contains(&net)) {
                    Some(s) if !s.members.contains(&member) => s.members.push(member),
                    Some(_) => {}
                    None => out.push(Segment {
                        name: net.to_string(),
                        subnets: vec![net],
                        members: vec![member],
                        state: None,
                    }),
                }
            }
        }
    }
    out
}

/// Segments ordered from the clients outwards (breadth first through the hosts that join
/// them), so that the picture reads client → router → director → real servers.
fn order(mut segs: Vec<Segment>, lab: &Lab) -> Vec<Segment> {
    let rank = |s: &Segment| {
        s.members.iter().filter_map(|(h, _)| lab.host(h)).map(|h| h.role).min().unwrap_or(Role::SorryServer)
    };
    let mut done: Vec<Segment> = Vec::new();
    while !segs.is_empty() {
        // The next: one sharing a host with those placed, else the one nearest the client.
        let next = segs
            .iter()
            .position(|s| done.iter().any(|d| d.members.iter().any(|(h, _)| s.members.iter().any(|(x, _)| x == h))))
            .filter(|_| !done.is_empty())
            .unwrap_or_else(|| (0..segs.len()).min_by_key(|&i| (rank(&segs[i]), i)).expect("not empty"));
        done.push(segs.remove(next));
    }
    done
}

/// The topology of a validated lab (no host is contacted: VIP holders are as planned).
pub fn topology(lab: &Lab) -> Topology {
    let pair = lab.ha.as_ref();
    let master = lab.director().map(|h| h.name.clone());
    let mut hosts: Vec<Node> = lab
        .hosts
        .iter()
        .map(|h| {
            let mut lines = vec![match (h.role, h.priority, pair) {
                (Role::Director, Some(p), Some(ha)) if ha.preempt && master.as_deref() == Some(&h.name) => {
                    format!("director, VRRP priority {p} (master)")
                }
                (Role::Director, Some(p), Some(ha)) if ha.preempt => format!("director, VRRP priority {p} (backup)"),
                (Role::Director, Some(p), Some(_)) => format!("director, VRRP priority {p} (no preemption)"),
                (role, ..) => role.to_string(),
            }];
            for (dev, a) in h.all_addresses() {
                lines.push(format!("{dev} {a}"));
            }
            let mut vips: Vec<IpAddr> = Vec::new();
            for (s, vip) in lab.services.iter().flat_map(|s| s.vips().into_iter().map(move |v| (s, v))) {
                if vips.contains(&vip) {
                    continue;
                }
                let serves = s.real_servers.iter().any(|b| b.host == h.name)
                    || s.sorry_server.as_ref().is_some_and(|x| x.host.as_deref() == Some(&h.name));
                let line = match h.role {
                    Role::Director if pair.is_some() => Some(format!("VIP {vip} while master")),
                    Role::Director => Some(format!("VIP {vip}")),
                    Role::RealServer | Role::SorryServer if serves => {
                        let p = s.profile();
                        let on = if vip.is_ipv6() { &p.ipv6.real_server.vip } else { &p.real_server.vip };
                        let quiet = if vip.is_ipv6() { "no neighbour answers" } else { "no ARP" };
                        on.as_ref().map(|v| format!("VIP {vip} on {} ({quiet})", v.dev))
                    }
                    _ => None,
                };
                if let Some(l) = line {
                    vips.push(vip);
                    lines.push(l);
                }
            }
            if let (Role::Director, Some(p)) = (h.role, pair) {
                for g in &p.floating_gateway {
                    lines.push(format!("gateway {g} while master"));
                }
            }
            for g in &h.gateways {
                match &g.dev {
                    Some(d) => lines.push(format!("default via {}%{d}", g.via)),
                    None => lines.push(format!("default via {}", g.via)),
                }
            }
            Node { name: h.name.clone(), role: h.role, lines, alerts: vec![], stopped: false, cut: vec![] }
        })
        .collect();
    hosts.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    let directors: Vec<String> = lab.directors().map(|h| h.name.clone()).collect();
    let services = lab
        .services
        .iter()
        .map(|s| Svc {
            label: s.label(),
            vip: s.ipvs.vip,
            scheduler: s.ipvs.scheduler.clone(),
            directors: directors.clone(),
            real_servers: s.real_servers.iter().map(|b| (b.host.clone(), b.weight)).collect(),
            sorry: s
                .sorry_server
                .as_ref()
                .map(|x| x.host.clone().unwrap_or_else(|| std::net::SocketAddr::new(x.address, x.port).to_string())),
            check: s.health_check.as_ref().map(|c| match &c.kind {
                crate::inventory::CheckKind::Tcp => "tcp check".to_string(),
                crate::inventory::CheckKind::Http { path, status, .. } => format!("http check GET {path} → {status}"),
            }),
            forwarding: forwarding(lab, s),
        })
        .collect();
    Topology { lab: lab.name.clone(), mode: lab.mode.to_string(), segments: order(segments(lab), lab), hosts, services }
}

/// A service's forwarding in words, when it is not its mode's plain way.
fn forwarding(lab: &Lab, s: &crate::inventory::Service) -> Option<String> {
    if s.snat {
        let from: std::collections::BTreeSet<String> = lab
            .director()
            .map(|d| {
                s.real_servers
                    .iter()
                    .filter_map(|b| crate::plan::snat_address(d, b.address))
                    .map(|a| a.to_string())
                    .collect()
            })
            .unwrap_or_default();
        return Some(format!("one-armed NAT, source {}", from.into_iter().collect::<Vec<_>>().join(", ")));
    }
    (!s.encap.is_ipip()).then(|| {
        let d = s.encap.describe();
        let (kind, rest) = d.split_once(' ').unwrap_or((&d, ""));
        format!("tunnel {} {rest}", kind.to_uppercase()).trim_end().to_string()
    })
}

impl Segment {
    pub fn title(&self) -> String {
        let nets: Vec<String> = self.subnets.iter().map(|n| n.to_string()).collect();
        if nets.len() == 1 && nets[0] == self.name {
            self.name.clone()
        } else {
            format!("{} {}", self.name, nets.join(" "))
        }
    }

    /// The title, with what is done to the segment now.
    pub fn title_with_state(&self) -> String {
        match &self.state {
            Some(st) => format!("{} ({st})", self.title()),
            None => self.title(),
        }
    }
}

impl Svc {
    /// `web (tcp 192.168.188.100:80), wrr: web1 ×3, web2 ×1; sorry server sorry; http check …`.
    pub fn summary(&self) -> String {
        let rs: Vec<String> = self.real_servers.iter().map(|(h, w)| format!("{h} weight {w}")).collect();
        let mut s = format!("{}, {}: {}", self.label, self.scheduler, rs.join(", "));
        if let Some(f) = &self.forwarding {
            s.push_str(&format!("; {f}"));
        }
        if let Some(c) = &self.check {
            s.push_str(&format!("; {c}"));
        }
        if let Some(x) = &self.sorry {
            s.push_str(&format!("; sorry server {x}"));
        }
        s
    }
}

/// An identifier for Mermaid and DOT: host and segment names are validated to letters, digits,
/// '-' and '_', so a prefix keeps them apart from each other and from keywords.
fn id(kind: &str, name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{kind}_{clean}")
}

/// Text inside a Mermaid label: its entity codes, never a character that ends the label.
fn mermaid_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => "#quot;".to_string(),
            '<' => "#lt;".to_string(),
            '>' => "#gt;".to_string(),
            '#' => "#35;".to_string(),
            '&' => "#amp;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// `flowchart` text for Markdown (GitHub, GitLab and most wikis draw it).
pub fn mermaid(t: &Topology) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "%% lab {} ({} mode), drawn by lvsctl graph", t.lab, t.mode);
    let _ = writeln!(o, "flowchart TB");
    for s in &t.segments {
        let _ = writeln!(o, "  {}[/\"{}\"/]", id("seg", &s.name), mermaid_text(&s.title_with_state()));
    }
    for h in &t.hosts {
        let body: Vec<String> = h.lines.iter().chain(&h.alerts).map(|l| mermaid_text(l)).collect();
        let _ = writeln!(o, "  {}[\"<b>{}</b><br/>{}\"]", id("host", &h.name), h.name, body.join("<br/>"));
    }
    for s in &t.segments {
        for (h, i) in &s.members {
            let cut = t.hosts.iter().any(|n| n.name == *h && n.cut.contains(i));
            let link = if cut { "-.-" } else { "---" };
            let _ = writeln!(o, "  {} {link}|{}| {}", id("host", h), i, id("seg", &s.name));
        }
    }
    for s in &t.services {
        for d in &s.directors {
            for (h, w) in &s.real_servers {
                let _ =
                    writeln!(o, "  {} -.->|\"{} w{}\"| {}", id("host", d), mermaid_text(&s.label), w, id("host", h));
            }
            if let Some(x) = s.sorry.as_ref().filter(|x| t.hosts.iter().any(|h| &h.name == *x)) {
                let _ = writeln!(o, "  {} -.->|\"{} sorry\"| {}", id("host", d), mermaid_text(&s.label), id("host", x));
            }
        }
    }
    o
}

/// A DOT string's content.
fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz: `lvsctl graph --format dot INV | dot -Tpng > lab.png`.
pub fn dot(t: &Topology) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "// lab {} ({} mode), drawn by lvsctl graph", t.lab, t.mode);
    let _ = writeln!(o, "graph \"{}\" {{", dot_text(&t.lab));
    let _ = writeln!(o, "  rankdir=TB;");
    let _ = writeln!(o, "  node [shape=box, fontname=\"monospace\", fontsize=10];");
    let _ = writeln!(o, "  edge [fontname=\"monospace\", fontsize=9];");
    for s in &t.segments {
        let _ = writeln!(
            o,
            "  {} [shape=ellipse, style=filled, fillcolor=\"#dde8f5\", label=\"{}\"];",
            id("seg", &s.name),
            dot_text(&s.title_with_state())
        );
    }
    for h in &t.hosts {
        let mut label = h.name.clone();
        for l in h.lines.iter().chain(&h.alerts) {
            label.push_str("\\n");
            label.push_str(&dot_text(l));
        }
        let _ = writeln!(o, "  {} [label=\"{}\"];", id("host", &h.name), label);
    }
    for s in &t.segments {
        for (h, i) in &s.members {
            let cut = t.hosts.iter().any(|n| n.name == *h && n.cut.contains(i));
            let style = if cut { ", style=dashed, color=\"#c0392b\"" } else { "" };
            let _ = writeln!(o, "  {} -- {} [label=\"{}\"{style}];", id("host", h), id("seg", &s.name), dot_text(i));
        }
    }
    for s in &t.services {
        for d in &s.directors {
            for (h, w) in &s.real_servers {
                let _ = writeln!(
                    o,
                    "  {} -- {} [style=dashed, color=\"#b05a00\", fontcolor=\"#b05a00\", label=\"{} w{}\"];",
                    id("host", d),
                    id("host", h),
                    dot_text(&s.label),
                    w
                );
            }
        }
    }
    o.push_str("}\n");
    o
}

/// Text for SVG: XML's five escapes.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// A character's advance at the picture's 12 px monospace (0.6 em), rounded up.
const CHAR_W: usize = 8;
const LINE_H: usize = 15;
const COL_GAP: usize = 24;
const MARGIN: usize = 20;
/// The room left of the bars for their labels, at least (a longer label widens it).
const BAR_LABEL_W: usize = 180;

fn role_colour(r: Role) -> &'static str {
    match r {
        Role::Client => "#eef6ee",
        Role::Router => "#f3eefa",
        Role::Director => "#fdf1e3",
        Role::RealServer => "#e9f1fb",
        Role::SorryServer => "#f6f6f6",
    }
}

/// The picture, drawn here: no Graphviz, no browser, no network.
pub fn svg(t: &Topology) -> String {
    // Columns: one per host, as wide as its longest line.
    let widths: Vec<usize> = t
        .hosts
        .iter()
        .map(|h| {
            (h.lines.iter().chain(&h.alerts).map(|l| l.chars().count()).max().unwrap_or(0).max(h.name.len()) * CHAR_W
                + 16)
                .max(110)
        })
        .collect();
    // The bars begin right of their longest label (a segment's name and prefixes).
    let label_w = t
        .segments
        .iter()
        .map(|s| s.title().chars().count().max(s.state.as_ref().map_or(0, |x| x.chars().count())) * CHAR_W + 24)
        .max()
        .unwrap_or(0)
        .max(BAR_LABEL_W);
    let mut xs = Vec::new();
    let mut x = MARGIN + label_w;
    for w in &widths {
        xs.push(x);
        x += w + COL_GAP;
    }
    let width = x - COL_GAP + MARGIN;
    let box_h = |h: &Node| (h.lines.len() + h.alerts.len() + 1) * LINE_H + 12;
    let band = t.hosts.iter().map(box_h).max().unwrap_or(40) + 50;
    let segs_of = |h: &Node| -> Vec<usize> {
        t.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.members.iter().any(|(m, _)| *m == h.name))
            .map(|(i, _)| i)
            .collect()
    };
    let bar_y = |i: usize| MARGIN + 40 + i * band;
    let n_bars = t.segments.len().max(1);
    let hosts_bottom = bar_y(n_bars - 1) + band;
    let svc_top = hosts_bottom + 20;
    let height = svc_top + (t.services.len() + 1) * (LINE_H + 4) + MARGIN;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">"#
    );
    let _ = writeln!(o, r#"<title>lab {} ({} mode)</title>"#, xml(&t.lab), xml(&t.mode));
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{MARGIN}" y="{}" font-size="15" font-weight="bold">lab {} — {} mode</text>"#,
        MARGIN + 8,
        xml(&t.lab),
        xml(&t.mode)
    );
    // Bars: from the first to the last host wired to each, with the segment's name at the left.
    for (i, s) in t.segments.iter().enumerate() {
        let cols: Vec<usize> = t
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| s.members.iter().any(|(m, _)| *m == h.name))
            .map(|(c, _)| c)
            .collect();
        let (Some(&first), Some(&last)) = (cols.first(), cols.last()) else { continue };
        let y = bar_y(i);
        // An impaired segment: its bar dashed red, what is done to it under its name.
        let (colour, dash) =
            if s.state.is_some() { ("#c0392b", r#" stroke-dasharray="10 6""#) } else { ("#3b6ea5", "") };
        let _ = writeln!(
            o,
            r##"<g class="segment"><line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="5" stroke-linecap="round"{dash}/><text x="{MARGIN}" y="{}" fill="{colour}" font-weight="bold">{}</text>"##,
            xs[first].min(MARGIN + label_w) - 10,
            xs[last] + widths[last] / 2 + 10,
            y + 4,
            xml(&s.title())
        );
        if let Some(st) = &s.state {
            let _ =
                writeln!(o, r##"<text x="{MARGIN}" y="{}" fill="#c0392b" font-size="11">{}</text>"##, y + 20, xml(st));
        }
        o.push_str("</g>\n");
    }
    // Hosts: in the band under their first bar, wired to each of their bars.
    for (c, h) in t.hosts.iter().enumerate() {
        let mine = segs_of(h);
        let band_of = mine.first().copied().unwrap_or(n_bars - 1);
        let top = bar_y(band_of) + 30;
        let cx = xs[c] + widths[c] / 2;
        let _ = writeln!(o, r#"<g class="host" id="{}">"#, xml(&id("host", &h.name)));
        for &i in &mine {
            let s = &t.segments[i];
            let iface = s.members.iter().find(|(m, _)| *m == h.name).map(|(_, i)| i.as_str()).unwrap_or("");
            let (y1, y2) = if i <= band_of { (bar_y(i), top) } else { (top + box_h(h), bar_y(i)) };
            let style = if h.cut.iter().any(|c| c == iface) {
                r##"stroke="#c0392b" stroke-width="2" stroke-dasharray="4 4""##
            } else {
                r##"stroke="#3b6ea5" stroke-width="2""##
            };
            let _ = writeln!(o, r##"<line x1="{cx}" y1="{y1}" x2="{cx}" y2="{y2}" {style}/>"##);
            let _ = writeln!(
                o,
                r##"<text x="{}" y="{}" font-size="10" fill="#3b6ea5">{}</text>"##,
                cx + 4,
                if i <= band_of { y1 + 14 } else { y2 - 6 },
                xml(iface)
            );
        }
        let _ = writeln!(
            o,
            r##"<rect x="{}" y="{top}" width="{}" height="{}" rx="6" fill="{}" stroke="{}"{}/>"##,
            xs[c],
            widths[c],
            box_h(h),
            if h.stopped { "#dddddd" } else { role_colour(h.role) },
            if h.stopped { "#c0392b" } else { "#555" },
            if h.stopped { r#" stroke-dasharray="6 4""# } else { "" }
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            xs[c] + 8,
            top + LINE_H + 2,
            xml(&h.name)
        );
        for (k, l) in h.lines.iter().enumerate() {
            let _ = writeln!(o, r#"<text x="{}" y="{}">{}</text>"#, xs[c] + 8, top + (k + 2) * LINE_H + 2, xml(l));
        }
        for (k, l) in h.alerts.iter().enumerate() {
            let y = top + (h.lines.len() + k + 2) * LINE_H + 2;
            let _ =
                writeln!(o, r##"<text x="{}" y="{y}" fill="#c0392b" font-weight="bold">{}</text>"##, xs[c] + 8, xml(l));
        }
        o.push_str("</g>\n");
    }
    let _ = writeln!(o, r#"<text x="{MARGIN}" y="{}" font-weight="bold">services</text>"#, svc_top + LINE_H);
    for (k, s) in t.services.iter().enumerate() {
        let _ = writeln!(
            o,
            r#"<text class="service" x="{}" y="{}">{}</text>"#,
            MARGIN + 10,
            svc_top + (k + 2) * (LINE_H + 4),
            xml(&s.summary())
        );
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(inv: &str) -> Lab {
        crate::inventory::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(inv)).unwrap()
    }

    #[test]
    fn segments_run_from_the_client_outwards_and_name_their_subnets() {
        let t = topology(&lab("inventories/nat.toml"));
        let names: Vec<&str> = t.segments.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(t.segments[0].members.iter().filter(|(h, _)| h == "client").count(), 1, "{names:?}");
        assert!(t.segments.iter().all(|s| !s.subnets.is_empty()), "{:?}", t.segments);
        let roles: Vec<Role> = t.hosts.iter().map(|h| h.role).collect();
        assert!(roles.windows(2).all(|w| w[0] <= w[1]), "hosts by role: {roles:?}");
    }

    #[test]
    fn a_pair_shows_who_is_master_and_the_vip_while_master() {
        let t = topology(&lab("inventories/dr-ha.toml"));
        let lvs1 = t.hosts.iter().find(|h| h.name == "lvs1").unwrap();
        assert!(lvs1.lines[0].contains("(master)"), "{lvs1:?}");
        assert!(lvs1.lines.iter().any(|l| l.ends_with("while master")), "{lvs1:?}");
        let web1 = t.hosts.iter().find(|h| h.name == "web1").unwrap();
        assert!(web1.lines.iter().any(|l| l.contains("on lo (no ARP)")), "{web1:?}");
    }

    #[test]
    fn text_from_the_inventory_cannot_break_out_of_a_label() {
        assert_eq!(mermaid_text(r#"a"b<c>#&"#), "a#quot;b#lt;c#gt;#35;#amp;");
        assert_eq!(dot_text(r#"a"b\"#), r#"a\"b\\"#);
        assert_eq!(xml(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;");
    }
}
