//! Host faults in a lab: `lab cut HOST:IFACE` / `lab heal` take one of a host's links down at the
//! bridge and back (the host sees its carrier go); `lab stop HOST` / `lab start` take every one of
//! its segment links down and freeze every process in it (SIGSTOP), then thaw them and bring the
//! links back — a director whose power was pulled, as far as its peers can tell. The host's
//! management link stays up, so the kernel keeps lvsctl's sessions to it alive across the stop.
//! Only the lab's own ports and the processes inside the host's namespace are touched; what is cut
//! or stopped is recorded beside the lab for `lab show`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use super::links::{Port, links, ports_of};
use crate::inventory::Lab;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    /// `HOST:IFACE` links cut.
    pub cut: BTreeSet<String>,
    /// Hosts stopped.
    pub stopped: BTreeSet<String>,
}

fn state_file(lab: &str) -> PathBuf {
    crate::lab::run_dir(lab).join("faults.json")
}

pub fn load(lab: &str) -> Faults {
    std::fs::read(state_file(lab)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn save(lab: &str, f: &Faults) -> anyhow::Result<()> {
    std::fs::write(state_file(lab), serde_json::to_vec_pretty(f)?).context("cannot record the lab's faults")
}

fn created(lab: &Lab) -> anyhow::Result<()> {
    if !crate::lab::run_dir(&lab.name).exists() {
        bail!("lab {} is not created on this machine: `lvsctl lab create {}` first", lab.name, lab.file.display());
    }
    Ok(())
}

/// `ip -n NETNS link set dev DEV up|down`.
fn set_link(p: &Port, up: bool) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["-n", &p.netns, "link", "set", "dev", &p.dev, if up { "up" } else { "down" }])
        .output()
        .context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "cannot set {} in {} {}: {}",
            p.dev,
            p.netns,
            if up { "up" } else { "down" },
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The bridge-side port of `HOST:IFACE`, or what there is instead.
fn port_of(lab: &Lab, target: &str) -> anyhow::Result<Port> {
    let Some((host, iface)) = target.split_once(':') else {
        bail!(
            "{target:?}: give HOST:IFACE, one of {}",
            links(lab).iter().map(|l| format!("{}:{}", l.host, l.iface)).collect::<Vec<_>>().join(", ")
        );
    };
    // The same checks and messages as an impairment's target.
    ports_of(lab, target)?;
    let l = links(lab).into_iter().find(|l| l.host == host && l.iface == iface).expect("checked");
    Ok(l.bridge_port)
}

/// `lab cut` (or with `heal`, `lab heal`) of one host's link.
pub fn cut(lab: &Lab, target: &str, heal: bool) -> anyhow::Result<()> {
    created(lab)?;
    let port = port_of(lab, target)?;
    let mut f = load(&lab.name);
    let host = target.split(':').next().unwrap_or_default();
    if heal && f.stopped.contains(host) {
        bail!("{host} is stopped: `lvsctl lab start {} {host}` brings all of its links back", lab.file.display());
    }
    set_link(&port, heal)?;
    if heal {
        f.cut.remove(target);
        crate::outln!("lab {}: {target} healed", lab.name);
    } else {
        f.cut.insert(target.to_string());
        crate::outln!("lab {}: {target} cut (its carrier is gone)", lab.name);
    }
    save(&lab.name, &f)
}

fn signal_all(lab: &Lab, host: &str, signal: libc::c_int) -> usize {
    let ns = super::build::host_netns_path(&lab.name, host);
    let pids = super::build::pids_in(&ns);
    for pid in &pids {
        // SAFETY: kill(2) on a process found inside this lab host's namespace just above.
        unsafe { libc::kill(*pid as libc::pid_t, signal) };
    }
    pids.len()
}

/// `lab stop` (or with `start`, `lab start`) of one host.
pub fn stop(lab: &Lab, host: &str, start: bool) -> anyhow::Result<()> {
    created(lab)?;
    if !lab.hosts.iter().any(|h| h.name == host) {
        bail!(
            "no host {host:?} in {}: hosts are {}",
            lab.file.display(),
            lab.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let mut f = load(&lab.name);
    let ports: Vec<(String, Port)> = links(lab)
        .into_iter()
        .filter(|l| l.host == host)
        .map(|l| (format!("{}:{}", l.host, l.iface), l.bridge_port))
        .collect();
    if start {
        let n = signal_all(lab, host, libc::SIGCONT);
        for (name, p) in &ports {
            set_link(p, true)?;
            f.cut.remove(name);
        }
        f.stopped.remove(host);
        save(&lab.name, &f)?;
        crate::outln!("lab {}: {host} started: {n} processes running again, {} links up", lab.name, ports.len());
    } else {
        // Links first: nothing it still sends while being frozen leaves it.
        for (_, p) in &ports {
            set_link(p, false)?;
        }
        let n = signal_all(lab, host, libc::SIGSTOP);
        f.stopped.insert(host.to_string());
        save(&lab.name, &f)?;
        crate::outln!("lab {}: {host} stopped: {} links down, {n} processes frozen", lab.name, ports.len());
    }
    Ok(())
}
