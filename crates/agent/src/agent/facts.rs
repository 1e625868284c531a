//! The live state `lvsctl doctor` reasons about, read in one go on a host.

use std::collections::BTreeMap;

use crate::host::System;

pub use crate::wire::facts::*;

/// How often a host reads its IPVS counters while it waits for them.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);

fn wait_counted<S: System>(sys: &mut S, w: &CountedWait) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(w.max_ms);
    while sys.ipvs_loaded() && !counted(&sys.ipvs_table()?, &w.inpkts) && std::time::Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    Ok(())
}

fn num(s: Option<String>) -> Option<u32> {
    s.and_then(|v| v.trim().parse().ok())
}

/// Reads the facts (never changes anything; IPVS is read only when it is already loaded).
pub fn gather<S: System>(sys: &mut S, lab: &str, req: &FactsRequest) -> std::io::Result<HostFacts> {
    if let Some(w) = &req.ipvs_counted {
        wait_counted(sys, w)?;
    }
    let links = sys.links()?;
    let mut conf = BTreeMap::new();
    let devs = ["all".to_string(), "default".to_string()].into_iter().chain(links.iter().map(|(n, _)| n.clone()));
    for dev in devs {
        let key = |k: &str| crate::plan::conf_key(&dev, k);
        let c = Conf {
            arp_ignore: num(sys.read_sysctl(&key("arp_ignore"))?),
            arp_announce: num(sys.read_sysctl(&key("arp_announce"))?),
            rp_filter: num(sys.read_sysctl(&key("rp_filter"))?),
            forwarding: num(sys.read_sysctl(&key("forwarding"))?),
        };
        conf.insert(dev, c);
    }
    let lookups = req.lookups.iter().map(|d| sys.route_get(*d)).collect::<std::io::Result<Vec<_>>>()?;
    let mut sysctls = BTreeMap::new();
    for name in &req.sysctls {
        if !readable_sysctl(name) {
            return Err(std::io::Error::other(format!("sysctl {name:?} is not one a facts request reads")));
        }
        if let Some(v) = sys.read_sysctl(name)? {
            sysctls.insert(name.clone(), v);
        }
    }
    let exporter_busy = match req.exporter_listen {
        Some(listen) => {
            let f = crate::resource::exporter::read(sys, lab)?;
            // This lab's exporter, while it runs, holds the address its pid file names.
            let ours = match (&f.running, sys.read_file(&crate::paths::exporter_pid_path(lab))?) {
                (Some(_), Some(pid_file)) => {
                    String::from_utf8_lossy(&pid_file.content).split_whitespace().nth(1).and_then(|a| a.parse().ok())
                }
                _ => None,
            };
            crate::resource::exporter::busy(listen, &f.listening, ours)
        }
        None => None,
    };
    let ipvs_timeouts = if req.ipvs_timeouts && sys.ipvs_loaded() { Some(sys.ipvs_timeouts()?) } else { None };
    let mut modules_missing = Vec::new();
    for m in &req.modules {
        if !sys.module_available(m)? {
            modules_missing.push(m.clone());
        }
    }
    Ok(HostFacts {
        addresses: sys.addresses()?,
        routes: sys.routes()?,
        ip_forward: num(sys.read_sysctl("net.ipv4.ip_forward")?),
        ip6_forward: num(sys.read_sysctl("net.ipv6.conf.all.forwarding")?),
        modules: sys.loaded_modules()?,
        gue_ports: sys.fou_ports()?.into_iter().filter(|p| p.gue).map(|p| (p.port, p.ipv6)).collect(),
        ipvs: if sys.ipvs_loaded() { Some(sys.ipvs_table()?) } else { None },
        links,
        conf,
        lookups,
        drift: vec![],
        programs: req.programs.iter().map(|p| (p.clone(), sys.find_program(p))).collect(),
        keepalived: None,
        nft: None,
        drained: Default::default(),
        sysctls,
        ipvs_timeouts,
        exporter_busy,
        modules_missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `up`'s question before it changes anything: which modules the kernel cannot load (one
    /// loaded already counts as loadable, whatever its files say).
    #[test]
    fn modules_the_kernel_lacks_are_named_and_nothing_is_loaded() {
        let mut sys = crate::host::fake::Fake::new();
        sys.state.missing_modules = ["fou".to_string(), "ip_gre".to_string()].into();
        sys.state.modules.insert("ip_gre".into());
        let req = FactsRequest { modules: vec!["fou".into(), "ip_gre".into(), "nft_ct".into()], ..Default::default() };
        let f = gather(&mut sys, "lab", &req).unwrap();
        assert_eq!(f.modules_missing, ["fou"]);
        assert!(!sys.state.modules.contains("nft_ct"), "asking loads nothing");
    }
}
