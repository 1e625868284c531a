//! `lvsctl lab impair` and `lab show`: the kernel's netem (delay, jitter, loss, rate) on a lab's
//! own links, and what each link has. A segment's impairment is on every port of its bridge (a
//! qdisc on the bridge itself would not shape what the bridge forwards), so each packet crossing
//! the segment meets it once; a host's link (`HOST:IFACE`) gets it on both of its ends, so it acts
//! both ways. Only links `lab create` made are touched, and `--clear` removes only a netem qdisc.
//! Settings are data to `tc` (its arguments, never a shell line).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::links::{Port, links, ports_of};
use crate::inventory::Lab;

/// What netem does on a link; None leaves that part out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// One-way delay, microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_us: Option<u64>,
    /// Percent of packets dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_percent: Option<f64>,
    /// Bits per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<u64>,
}

/// The longest delay or jitter taken (netem would take more; a lab link needs no more).
const MAX_DELAY_US: u64 = 60_000_000;

/// `50ms`, `1s`, `200us`, `1.5ms`: microseconds.
pub fn parse_duration(what: &str, s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        bail!("--{what} {s:?}: give a unit: 50ms, 1s or 200us");
    };
    let v: f64 = num.parse().map_err(|_| anyhow::anyhow!("--{what} {s:?}: not a number before the unit"))?;
    let us = v * mult;
    if !us.is_finite() || !(0.0..=MAX_DELAY_US as f64).contains(&us) {
        bail!("--{what} {s:?}: from 0 to 60s");
    }
    Ok(us.round() as u64)
}

/// `5%` or `5`: a percentage from 0 to 100.
pub fn parse_loss(s: &str) -> anyhow::Result<f64> {
    let n = s.trim().trim_end_matches('%');
    let v: f64 = n.parse().map_err(|_| anyhow::anyhow!("--loss {s:?}: a percentage, such as 5%"))?;
    if !v.is_finite() || !(0.0..=100.0).contains(&v) {
        bail!("--loss {s:?}: a percentage from 0 to 100");
    }
    Ok(v)
}

/// `10mbit`, `500kbit`, `1gbit`, `9600bit`: bits per second.
pub fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .iter()
        .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n.to_string(), *m)))
        .ok_or_else(|| anyhow::anyhow!("--rate {s:?}: give a unit: 10mbit, 500kbit, 1gbit"))?;
    let v: f64 = num.parse().map_err(|_| anyhow::anyhow!("--rate {s:?}: not a number before the unit"))?;
    let bps = v * mult;
    if !bps.is_finite() || !(8.0..=100e9).contains(&bps) {
        bail!("--rate {s:?}: from 8bit to 100gbit");
    }
    Ok(bps.round() as u64)
}

impl Impairment {
    pub fn is_empty(&self) -> bool {
        *self == Impairment::default()
    }

    /// netem's arguments for `tc qdisc replace ... root`.
    fn netem_args(&self) -> Vec<String> {
        let mut a = vec!["netem".to_string()];
        if let Some(d) = self.delay_us {
            a.extend(["delay".into(), format!("{d}us")]);
            if let Some(j) = self.jitter_us {
                a.push(format!("{j}us"));
            }
        }
        if let Some(l) = self.loss_percent {
            a.extend(["loss".into(), format!("{l}%")]);
        }
        if let Some(r) = self.rate_bps {
            a.extend(["rate".into(), format!("{r}bit")]);
        }
        a
    }

    /// For people: `delay 50ms ±10ms, loss 5%, rate 10mbit`.
    pub fn describe(&self) -> String {
        let ms = |us: u64| if us.is_multiple_of(1000) { format!("{}ms", us / 1000) } else { format!("{}us", us) };
        let mut v = Vec::new();
        if let Some(d) = self.delay_us {
            v.push(match self.jitter_us {
                Some(j) => format!("delay {} ±{}", ms(d), ms(j)),
                None => format!("delay {}", ms(d)),
            });
        }
        if let Some(l) = self.loss_percent {
            v.push(format!("loss {l}%"));
        }
        if let Some(r) = self.rate_bps {
            v.push(if r.is_multiple_of(1_000_000) {
                format!("rate {}mbit", r / 1_000_000)
            } else {
                format!("rate {r}bit")
            });
        }
        v.join(", ")
    }
}

/// Where `lab impair` records what it set (by target), so that `lab show` can say it.
fn state_file(lab: &str) -> PathBuf {
    crate::lab::run_dir(lab).join("impairments.json")
}

fn load(lab: &str) -> BTreeMap<String, Impairment> {
    std::fs::read(state_file(lab)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn tc(port: &Port, args: &[String]) -> anyhow::Result<std::process::Output> {
    Command::new("tc")
        .arg("-n")
        .arg(&port.netns)
        .args(args)
        .output()
        .context("cannot run tc (iproute2): scripts/setup.sh installs it")
}

/// The root qdisc of `port` is a netem (one `lab impair` set).
fn has_netem(port: &Port) -> anyhow::Result<bool> {
    let out = tc(port, &["-j".into(), "qdisc".into(), "show".into(), "dev".into(), port.dev.clone(), "root".into()])?;
    if !out.status.success() {
        bail!("tc cannot read {} in {}: {}", port.dev, port.netns, String::from_utf8_lossy(&out.stderr).trim());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(v.as_array().into_iter().flatten().any(|q| q["kind"] == "netem"))
}

/// Sets (or with `clear`, removes) the impairment on every port of `target`; records it.
pub fn impair(lab: &Lab, target: &str, imp: &Impairment, clear: bool) -> anyhow::Result<()> {
    if !crate::lab::run_dir(&lab.name).exists() {
        bail!("lab {} is not created on this machine: `lvsctl lab create {}` first", lab.name, lab.file.display());
    }
    if !clear && imp.is_empty() {
        bail!("nothing to set: give --delay, --jitter (with --delay), --loss or --rate, or --clear");
    }
    if imp.jitter_us.is_some() && imp.delay_us.is_none() {
        bail!("--jitter varies a delay: give --delay too");
    }
    let ports = ports_of(lab, target)?;
    let mut state = load(&lab.name);
    for p in &ports {
        if clear {
            if has_netem(p)? {
                let out = tc(p, &["qdisc".into(), "del".into(), "dev".into(), p.dev.clone(), "root".into()])?;
                if !out.status.success() {
                    bail!("tc cannot clear {} in {}: {}", p.dev, p.netns, String::from_utf8_lossy(&out.stderr).trim());
                }
            }
            continue;
        }
        let mut args: Vec<String> = ["qdisc", "replace", "dev", &p.dev, "root"].iter().map(|s| s.to_string()).collect();
        args.extend(imp.netem_args());
        let out = tc(p, &args)?;
        if !out.status.success() {
            bail!(
                "tc cannot impair {} in {}: {} (is the kernel's sch_netem module there?)",
                p.dev,
                p.netns,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    if clear {
        state.remove(target);
        crate::outln!("lab {}: {target} cleared", lab.name);
    } else {
        state.insert(target.to_string(), imp.clone());
        crate::outln!("lab {}: {target}: {} ({} ports)", lab.name, imp.describe(), ports.len());
    }
    std::fs::write(state_file(&lab.name), serde_json::to_vec_pretty(&state)?)?;
    Ok(())
}

/// What `lab impair`, `lab cut` and `lab stop` did to the lab, for `graph`; None when the lab
/// is not created on this machine.
pub fn graph_state(lab: &Lab) -> Option<crate::graph::LabState> {
    if !crate::lab::run_dir(&lab.name).exists() {
        return None;
    }
    let mut st = crate::graph::LabState::default();
    for (target, imp) in load(&lab.name) {
        match target.split_once(':') {
            Some((h, i)) => st.links.insert((h.to_string(), i.to_string()), imp.describe()),
            None => st.segments.insert(target, imp.describe()),
        };
    }
    let faults = super::faults::load(&lab.name);
    for c in faults.cut {
        if let Some((h, i)) = c.split_once(':') {
            st.cut.insert((h.to_string(), i.to_string()));
        }
    }
    st.stopped = faults.stopped;
    Some(st)
}

/// One link as `lab show` says it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ShownLink {
    pub segment: String,
    pub host: String,
    pub interface: String,
    /// What netem does on it (a segment's or its own), as set by `lab impair`; None when nothing.
    pub impairment: Option<String>,
    /// Set by which target: the segment, or HOST:IFACE.
    pub by: Option<String>,
    /// netem is still on the link (a `lab reboot` of the host takes its own end's away).
    pub active: bool,
    /// Down at the bridge (`lab cut`, or its host stopped).
    pub cut: bool,
}

/// `lab show`: every link with what impairs it.
pub fn show(lab: &Lab) -> anyhow::Result<Vec<ShownLink>> {
    if !crate::lab::run_dir(&lab.name).exists() {
        bail!("lab {} is not created on this machine: `lvsctl lab create {}` first", lab.name, lab.file.display());
    }
    let state = load(&lab.name);
    let faults = super::faults::load(&lab.name);
    let mut out = Vec::new();
    for l in links(lab) {
        let own = format!("{}:{}", l.host, l.iface);
        let by = if state.contains_key(&own) {
            Some(own)
        } else if state.contains_key(&l.segment) {
            Some(l.segment.clone())
        } else {
            None
        };
        let active = has_netem(&l.bridge_port)?;
        let cut = faults.cut.contains(&format!("{}:{}", l.host, l.iface)) || faults.stopped.contains(&l.host);
        out.push(ShownLink {
            cut,
            segment: l.segment,
            host: l.host,
            interface: l.iface,
            impairment: by.as_ref().map(|b| state[b].describe()),
            by,
            active,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_with_their_units_and_bounds() {
        assert_eq!(parse_duration("delay", "50ms").unwrap(), 50_000);
        assert_eq!(parse_duration("delay", "1.5ms").unwrap(), 1_500);
        assert_eq!(parse_duration("delay", "2s").unwrap(), 2_000_000);
        assert_eq!(parse_duration("jitter", "200us").unwrap(), 200);
        assert!(parse_duration("delay", "50").unwrap_err().to_string().contains("give a unit"));
        assert!(parse_duration("delay", "fast ms").unwrap_err().to_string().contains("not a number"));
        assert!(parse_duration("delay", "61s").unwrap_err().to_string().contains("from 0 to 60s"));
        assert_eq!(parse_loss("5%").unwrap(), 5.0);
        assert_eq!(parse_loss("100").unwrap(), 100.0);
        assert!(parse_loss("150%").unwrap_err().to_string().contains("from 0 to 100"));
        assert!(parse_loss("lots").is_err());
        assert_eq!(parse_rate("10mbit").unwrap(), 10_000_000);
        assert_eq!(parse_rate("500kbit").unwrap(), 500_000);
        assert!(parse_rate("10mb").unwrap_err().to_string().contains("give a unit"));
        let i = Impairment {
            delay_us: Some(50_000),
            jitter_us: Some(10_000),
            loss_percent: Some(5.0),
            rate_bps: Some(10_000_000),
        };
        assert_eq!(i.netem_args(), ["netem", "delay", "50000us", "10000us", "loss", "5%", "rate", "10000000bit"]);
        assert_eq!(i.describe(), "delay 50ms ±10ms, loss 5%, rate 10mbit");
    }

    #[test]
    fn a_target_is_a_segment_or_one_hosts_link_and_a_wrong_one_says_what_there_is() {
        let lab = crate::inventory::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/dr.toml"))
            .unwrap();
        let back = ports_of(&lab, "back").unwrap();
        assert_eq!(back.len(), 4, "router, lvs, web1, web2 on back: {back:?}");
        assert!(back.iter().all(|p| p.netns == "lvsctl-dr"));
        let web2 = ports_of(&lab, "web2:eth0").unwrap();
        assert_eq!(web2.len(), 2, "both ends of web2's link");
        assert_eq!(web2[1], Port { netns: "lvsctl-dr.web2".into(), dev: "eth0".into() });
        assert!(web2[0].netns == "lvsctl-dr" && web2[0].dev.starts_with('h'));
        let e = ports_of(&lab, "nowhere").unwrap_err().to_string();
        assert!(e.contains("no segment \"nowhere\"") && e.contains("front, back"), "{e}");
        let e = ports_of(&lab, "web9:eth0").unwrap_err().to_string();
        assert!(e.contains("no host \"web9\"") && e.contains("web1"), "{e}");
        let e = ports_of(&lab, "web2:eth7").unwrap_err().to_string();
        assert!(e.contains("no interface \"eth7\"") && e.contains("eth0"), "{e}");
    }
}
