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

/// IPVS's connection table as the kernel prints it: a heading, then one entry per line,
/// `Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires …`, IPv4 addresses as 8 hex digits,
/// IPv6 ones with colons, ports as 4 hex digits.
pub const CONN_TABLE: &str = "/proc/net/ip_vs_conn";

/// The client ports `table` (`CONN_TABLE`'s text) holds entries for, to each of the addressed
/// services `wanted` names; those with none are left out. Persistence templates (client port
/// 0) hold no port.
pub fn held_ports(table: &str, wanted: &[crate::ipvs::ServiceKey]) -> Vec<(crate::ipvs::ServiceKey, Vec<u16>)> {
    use crate::ipvs::{Protocol, ServiceKey};
    let mut held: BTreeMap<ServiceKey, std::collections::BTreeSet<u16>> =
        wanted.iter().filter(|k| matches!(k, ServiceKey::Addr { .. })).map(|k| (*k, Default::default())).collect();
    for line in table.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [pro, _client, cport, vaddr, vport, ..] = w[..] else { continue };
        let Some(protocol) = Protocol::parse(&pro.to_ascii_lowercase()) else { continue };
        let (Some(vaddr), Ok(vport), Ok(cport)) =
            (conn_addr(vaddr), u16::from_str_radix(vport, 16), u16::from_str_radix(cport, 16))
        else {
            continue;
        };
        if cport == 0 {
            continue;
        }
        if let Some(ports) = held.get_mut(&ServiceKey::addr(protocol, vaddr, vport)) {
            ports.insert(cport);
        }
    }
    held.into_iter().filter(|(_, p)| !p.is_empty()).map(|(k, p)| (k, p.into_iter().collect())).collect()
}

/// An address of `CONN_TABLE`: IPv6 with colons, IPv4 as 8 hex digits.
fn conn_addr(s: &str) -> Option<std::net::IpAddr> {
    if s.contains(':') {
        s.parse::<std::net::Ipv6Addr>().ok().map(Into::into)
    } else if s.len() == 8 {
        u32::from_str_radix(s, 16).ok().map(|n| std::net::Ipv4Addr::from(n).into())
    } else {
        None
    }
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
    let held_ports = match (req.held_ports.is_empty(), sys.ipvs_loaded()) {
        (false, true) => match sys.read_file(CONN_TABLE)? {
            Some(f) => held_ports(&String::from_utf8_lossy(&f.content), &req.held_ports),
            None => vec![],
        },
        _ => vec![],
    };
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
        held_ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table as the kernel prints it (its format: `ip_vs_conn_seq_show`): IPv4 entries in
    /// hex, IPv6 ones with colons, a persistence template with client port 0; only the wanted
    /// services' client ports are kept, each once, ascending.
    #[test]
    fn held_client_ports_are_read_from_the_kernels_connection_table() {
        use crate::ipvs::{Protocol, ServiceKey};
        let table = "\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0A8BC0A 9C41 C0A8BC64 0050 0A140051 0050 SYN_RECV         57
TCP C0A8BC0A 9C3F C0A8BC64 0050 0A140052 1F90 TIME_WAIT       110
TCP C0A8BC0A 9C41 C0A8BC64 0050 0A140051 0050 SYN_RECV         57
TCP C0A8BC0A 0000 C0A8BC64 0050 0A140051 0050 NONE            300
UDP C0A8BC0A D431 C0A8BC64 0035 0A140051 0035 UDP             290
TCP 2001:0db8:0188:0000:0000:0000:0000:000a A001 2001:0db8:0188:0000:0000:0000:0000:0100 0050 2001:0db8:0020:0000:0000:0000:0000:0081 0050 SYN_RECV 41
TCP C0A8BC0A 9C43 C0A8BC65 0050 0A140051 0050 ESTABLISHED     899
";
        let web = ServiceKey::addr(Protocol::Tcp, "192.168.188.100".parse::<std::net::IpAddr>().unwrap(), 80);
        let web6 = ServiceKey::addr(Protocol::Tcp, "2001:db8:188::100".parse::<std::net::IpAddr>().unwrap(), 80);
        let dns = ServiceKey::addr(Protocol::Udp, "192.168.188.100".parse::<std::net::IpAddr>().unwrap(), 53);
        let idle = ServiceKey::addr(Protocol::Tcp, "192.168.188.100".parse::<std::net::IpAddr>().unwrap(), 443);
        let got = held_ports(table, &[web, web6, dns, idle]);
        assert_eq!(got, vec![(web, vec![0x9c3f, 0x9c41]), (web6, vec![0xa001]), (dns, vec![0xd431])]);
        assert!(held_ports(table, &[]).is_empty());
    }

    /// Asked for, with IPVS loaded, the facts carry the held ports; not asked, nothing is read.
    #[test]
    fn held_ports_come_with_the_facts_only_when_asked_for() {
        use crate::ipvs::{Protocol, ServiceKey};
        let mut sys = crate::host::fake::Fake::new();
        sys.state.ipvs = Some(vec![]);
        let line = "TCP C0A8BC0A 9C41 C0A8BC64 0050 0A140051 0050 SYN_RECV         57\n";
        sys.state
            .files
            .insert(CONN_TABLE.into(), crate::host::FileFact { content: line.as_bytes().to_vec(), mode: 0o444 });
        let web = ServiceKey::addr(Protocol::Tcp, "192.168.188.100".parse::<std::net::IpAddr>().unwrap(), 80);
        let f = gather(&mut sys, "lab", &FactsRequest { held_ports: vec![web], ..Default::default() }).unwrap();
        assert_eq!(f.held_ports, vec![(web, vec![0x9c41])]);
        assert!(gather(&mut sys, "lab", &FactsRequest::default()).unwrap().held_ports.is_empty());
    }

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
