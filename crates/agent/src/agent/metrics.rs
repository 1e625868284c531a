//! A director's metrics (`lvsctl metrics`): its IPVS services and real servers from the kernel,
//! named as the inventory names them (the plan's services and real servers), with each real
//! server's health, keepalived's VRRP states and sync daemons, and lvsctl's own state.

use crate::wire::ha::{KeepalivedStatus, VrrpState};
use crate::wire::host::IpvsService;
use crate::wire::ipvs::ServiceKey;
use crate::wire::metrics::{Family, Kind};
use crate::wire::plan::HostPlan;

/// A service as the plan names it, with its real servers (host, address, port, weight).
struct Planned {
    key: ServiceKey,
    name: String,
    real_servers: Vec<(String, std::net::IpAddr, u16, u32)>,
}

fn planned(plan: &HostPlan) -> Vec<Planned> {
    let mut v: Vec<Planned> = plan
        .ipvs
        .iter()
        .map(|s| Planned {
            key: s.ipvs.key(),
            name: s.name.clone().unwrap_or_else(|| s.ipvs.key().to_string()),
            real_servers: s.destinations.iter().map(|d| (d.host.clone(), d.address, d.port, d.weight)).collect(),
        })
        .collect();
    if let Some(k) = &plan.keepalived {
        for vs in &k.virtual_servers {
            if v.iter().any(|p| p.key == vs.key()) {
                continue;
            }
            let mut rs: Vec<(String, std::net::IpAddr, u16, u32)> =
                vs.real_servers.iter().map(|r| (r.host.clone(), r.address, r.port, r.weight)).collect();
            if let (Some((a, p)), Some(h)) = (vs.sorry_server, &vs.sorry_host) {
                rs.push((h.clone(), a, p, 1));
            }
            v.push(Planned {
                key: vs.key(),
                name: vs.name.clone().unwrap_or_else(|| vs.key().to_string()),
                real_servers: rs,
            });
        }
    }
    v
}

/// The labels every series of a service carries.
fn service_labels(lab: &str, director: &str, name: &str, key: &ServiceKey) -> Vec<(&'static str, String)> {
    let (protocol, vip, port) = match key {
        ServiceKey::Addr { protocol, addr, port } => (protocol.to_string(), addr.to_string(), port.to_string()),
        ServiceKey::Mark { fwmark, ipv6 } => {
            (if *ipv6 { "fwmark6" } else { "fwmark" }.to_string(), String::new(), fwmark.to_string())
        }
    };
    vec![
        ("lab", lab.to_string()),
        ("director", director.to_string()),
        ("service", name.to_string()),
        ("protocol", protocol),
        ("vip", vip),
        ("port", port),
    ]
}

/// What lvsctl knows of the director besides the kernel's table.
pub struct State<'a> {
    pub lab: &'a str,
    pub director: &'a str,
    pub keepalived: Option<&'a KeepalivedStatus>,
    /// Real servers `lvsctl drain` keeps drained here.
    pub drained: Vec<String>,
    /// The lab is up here (its journal exists).
    pub applied: bool,
    /// Objects that differ from the plan (status's drift), when read.
    pub drift: Option<usize>,
    /// When the journal was last written (the last `up`), seconds since the epoch.
    pub last_up: Option<u64>,
}

/// The families of one director.
pub fn families(plan: &HostPlan, table: &[IpvsService], st: &State) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let mut svc_conns = Family::new("lvs_service_connections_total", Counter, "Connections the service scheduled.");
    let mut svc_in = Family::new("lvs_service_packets_in_total", Counter, "Packets from clients to the service.");
    let mut svc_out = Family::new("lvs_service_packets_out_total", Counter, "Packets from the service to clients.");
    let mut svc_bin = Family::new("lvs_service_bytes_in_total", Counter, "Bytes from clients to the service.");
    let mut svc_bout = Family::new("lvs_service_bytes_out_total", Counter, "Bytes from the service to clients.");
    let mut rs_conns = Family::new(
        "lvs_real_server_connections_total",
        Counter,
        "Connections the director scheduled to the real server.",
    );
    let mut rs_in = Family::new("lvs_real_server_packets_in_total", Counter, "Packets forwarded to the real server.");
    let mut rs_out =
        Family::new("lvs_real_server_packets_out_total", Counter, "Packets from the real server through the director.");
    let mut rs_bin = Family::new("lvs_real_server_bytes_in_total", Counter, "Bytes forwarded to the real server.");
    let mut rs_bout =
        Family::new("lvs_real_server_bytes_out_total", Counter, "Bytes from the real server through the director.");
    let mut rs_active =
        Family::new("lvs_real_server_active_connections", Gauge, "Established connections to the real server.");
    let mut rs_inactive = Family::new(
        "lvs_real_server_inactive_connections",
        Gauge,
        "Connections to the real server in any other state (closing, closed, UDP).",
    );
    let mut rs_weight = Family::new("lvs_real_server_weight", Gauge, "The real server's weight in the IPVS table.");
    let mut rs_state = Family::new(
        "lvs_real_server_state",
        Gauge,
        "1 for the real server's state: up, quiesced (weight 0 by its health check), drained (lvsctl drain), removed (not in the table).",
    );
    // The kernel's own rate estimates (its two-second estimator): per service and real server.
    let rate = |who: &str, what: &str, help: &str| {
        Family::new(
            &format!("lvs_{who}_{what}_per_second"),
            Gauge,
            &format!("{help} a second, as the kernel estimates it."),
        )
    };
    let mut svc_rates = [
        rate("service", "connections", "New connections"),
        rate("service", "packets_in", "Packets from clients"),
        rate("service", "packets_out", "Packets to clients"),
        rate("service", "bytes_in", "Bytes from clients"),
        rate("service", "bytes_out", "Bytes to clients"),
    ];
    let mut rs_rates = [
        rate("real_server", "connections", "New connections to the real server"),
        rate("real_server", "packets_in", "Packets forwarded to the real server"),
        rate("real_server", "packets_out", "Packets from the real server through the director"),
        rate("real_server", "bytes_in", "Bytes forwarded to the real server"),
        rate("real_server", "bytes_out", "Bytes from the real server through the director"),
    ];
    let rates_of = |r: &crate::wire::ipvs::Rates| [r.cps, r.inpps, r.outpps, r.inbps, r.outbps];
    let plans = planned(plan);
    for svc in table {
        let key = svc.entry.key;
        let p = plans.iter().find(|p| p.key == key);
        let name = p.map(|p| p.name.clone()).unwrap_or_else(|| key.to_string());
        let sl = service_labels(st.lab, st.director, &name, &key);
        let s = &svc.entry.stats;
        svc_conns.push(&sl, s.conns);
        svc_in.push(&sl, s.inpkts);
        svc_out.push(&sl, s.outpkts);
        svc_bin.push(&sl, s.inbytes);
        svc_bout.push(&sl, s.outbytes);
        for (f, v) in svc_rates.iter_mut().zip(rates_of(&s.rates)) {
            f.push(&sl, v);
        }
        for d in &svc.dests {
            let planned = p.and_then(|p| p.real_servers.iter().find(|r| r.1 == d.key.addr && r.2 == d.key.port));
            let host = planned.map(|r| r.0.clone()).unwrap_or_else(|| d.key.addr.to_string());
            let mut l = sl.clone();
            l.extend([
                ("real_server", host.clone()),
                ("address", d.key.addr.to_string()),
                ("real_port", d.key.port.to_string()),
            ]);
            let s = &d.stats;
            rs_conns.push(&l, s.conns);
            rs_in.push(&l, s.inpkts);
            rs_out.push(&l, s.outpkts);
            rs_bin.push(&l, s.inbytes);
            rs_bout.push(&l, s.outbytes);
            for (f, v) in rs_rates.iter_mut().zip(rates_of(&s.rates)) {
                f.push(&l, v);
            }
            rs_active.push(&l, u64::from(d.active_conns));
            rs_inactive.push(&l, u64::from(d.inact_conns));
            rs_weight.push(&l, u64::from(d.config.weight));
            let state = if st.drained.contains(&host) {
                "drained"
            } else if d.config.weight == 0 && planned.is_some_and(|r| r.3 > 0) {
                "quiesced"
            } else {
                "up"
            };
            let mut l = l.clone();
            l.push(("state", state.into()));
            rs_state.push(&l, 1u64);
        }
        // Planned real servers the table does not have: a health check took them out.
        for r in p.iter().flat_map(|p| &p.real_servers) {
            if svc.dests.iter().any(|d| d.key.addr == r.1 && d.key.port == r.2) {
                continue;
            }
            let mut l = sl.clone();
            l.extend([
                ("real_server", r.0.clone()),
                ("address", r.1.to_string()),
                ("real_port", r.2.to_string()),
                ("state", if st.drained.contains(&r.0) { "drained" } else { "removed" }.into()),
            ]);
            rs_state.push(&l, 1u64);
        }
    }
    let base = [("lab", st.lab.to_string()), ("director", st.director.to_string())];
    let mut vrrp = Family::new(
        "lvs_vrrp_master",
        Gauge,
        "1 while this director is the VRRP master of the instance (keepalived), else 0.",
    );
    let mut vrrp_state = Family::new(
        "lvs_vrrp_state",
        Gauge,
        "1 for the instance's VRRP state on this director: init, backup, master, fault, stopped.",
    );
    let mut sync = Family::new(
        "lvs_sync_daemon_running",
        Gauge,
        "1 for each IPVS connection sync daemon that runs (role master or backup).",
    );
    if let Some(k) = st.keepalived {
        for i in &k.instances {
            let mut l = base.to_vec();
            l.push(("instance", i.instance.clone()));
            vrrp.push(&l, u64::from(i.state == VrrpState::Master));
            l.push(("state", format!("{:?}", i.state).to_lowercase()));
            vrrp_state.push(&l, 1u64);
        }
        for d in &k.sync {
            let mut l = base.to_vec();
            l.push(("role", if d.state == 1 { "master" } else { "backup" }.into()));
            l.push(("interface", d.interface.clone()));
            sync.push(&l, 1u64);
        }
    }
    let mut applied =
        Family::new("lvsctl_plan_applied", Gauge, "1 while the lab is up on this host (lvsctl's journal is there).");
    applied.push(&base, u64::from(st.applied));
    let mut drift = Family::new(
        "lvsctl_drift_objects",
        Gauge,
        "Objects that differ from the plan (what `lvsctl status` calls drift).",
    );
    if let Some(n) = st.drift {
        drift.push(&base, n as u64);
    }
    let mut last = Family::new(
        "lvsctl_last_up_timestamp_seconds",
        Gauge,
        "When `lvsctl up` last changed this host's journal, seconds since the epoch.",
    );
    if let Some(t) = st.last_up {
        last.push(&base, t);
    }
    let mut all = vec![svc_conns, svc_in, svc_out, svc_bin, svc_bout];
    all.extend(svc_rates);
    all.extend([rs_conns, rs_in, rs_out, rs_bin, rs_bout]);
    all.extend(rs_rates);
    all.extend([rs_active, rs_inactive, rs_weight, rs_state, vrrp, vrrp_state, sync, applied, drift, last]);
    all
}
