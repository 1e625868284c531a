//! A lab's links as `lab create` made them: each member `HOST:IFACE` of a segment is a veth whose
//! one end is the host's interface and whose other end is a port of the segment's bridge in the
//! lab's control namespace. `lab impair`, `lab cut` and `lab stop` act on these ends.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::inventory::Lab;

/// One end of a link: the network namespace (its `ip netns` name) and the device in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Port {
    pub netns: String,
    pub dev: String,
}

/// A link of the lab: a member `HOST:IFACE` of a segment, with both of its ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub segment: String,
    pub host: String,
    pub iface: String,
    /// The control namespace's end (its egress goes to the host).
    pub bridge_port: Port,
    /// The host's own interface (its egress leaves the host).
    pub host_port: Port,
}

/// Every link of the lab, segment by segment.
pub fn links(lab: &Lab) -> Vec<Link> {
    let Some(spec) = lab.lab.as_ref() else { return vec![] };
    let control = format!("lvsctl-{}", lab.name);
    let mut out = Vec::new();
    for (si, seg) in spec.segments.iter().enumerate() {
        for (ii, (host, iface)) in seg.members.iter().enumerate() {
            let Some(hi) = lab.hosts.iter().position(|h| &h.name == host) else { continue };
            out.push(Link {
                segment: seg.name.clone(),
                host: host.clone(),
                iface: iface.clone(),
                bridge_port: Port { netns: control.clone(), dev: super::build::segment_port(hi, si, ii) },
                host_port: Port { netns: super::build::host_netns(&lab.name, host), dev: iface.clone() },
            });
        }
    }
    out
}

/// The ports `target` (a segment, or `HOST:IFACE`) names, or why it names none.
pub fn ports_of(lab: &Lab, target: &str) -> anyhow::Result<Vec<Port>> {
    let all = links(lab);
    if all.is_empty() {
        bail!("{} has no [lab] segments: it is not a lab lvsctl builds", lab.file.display());
    }
    if let Some((host, iface)) = target.split_once(':') {
        if !lab.hosts.iter().any(|h| h.name == host) {
            bail!(
                "no host {host:?} in {}: hosts are {}",
                lab.file.display(),
                names(lab.hosts.iter().map(|h| h.name.as_str()))
            );
        }
        let Some(l) = all.iter().find(|l| l.host == host && l.iface == iface) else {
            let ifaces = all.iter().filter(|l| l.host == host).map(|l| l.iface.as_str());
            bail!("{host} has no interface {iface:?} on a lab segment: it has {}", names(ifaces));
        };
        return Ok(vec![l.bridge_port.clone(), l.host_port.clone()]);
    }
    let ports: Vec<Port> = all.iter().filter(|l| l.segment == target).map(|l| l.bridge_port.clone()).collect();
    if ports.is_empty() {
        let mut segs: Vec<&str> = all.iter().map(|l| l.segment.as_str()).collect();
        segs.dedup();
        bail!(
            "no segment {target:?} in {}: give a segment ({}) or HOST:IFACE",
            lab.file.display(),
            names(segs.into_iter())
        );
    }
    Ok(ports)
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}
