//! The files `up` installs on a host (the runtime plan, sysctl.d, the boot unit), rendered from
//! the templates with what every template sees of a host's plan.

use serde::Serialize;

use super::{Context, FileSpec, HostPlan};
use crate::inventory::{Lab, Protocol};
use crate::templates::{KEEPALIVED_CONF, RenderError, SERVICE_UNIT, SYSCTL_CONF};

#[derive(Serialize)]
struct SysctlLine<'a> {
    key: &'a str,
    value: &'a str,
    reason: &'a str,
    /// Keys of devices that may not exist when systemd-sysctl runs at boot (tunl0 appears only
    /// once ipip is loaded): `-` tells systemd-sysctl to ignore a failure; the unit sets them.
    boot_optional: bool,
}

#[derive(Serialize)]
struct AddressLine<'a> {
    dev: &'a str,
    address: String,
    ip: String,
    label: Option<&'a str>,
    v6: bool,
    deprecated: bool,
    reason: &'a str,
}

#[derive(Serialize)]
struct RouteLine<'a> {
    destination_ip: String,
    gateway: String,
    dev: Option<&'a str>,
    v6: bool,
    advmss: Option<u32>,
    reason: &'a str,
}

#[derive(Serialize)]
struct DestLine {
    address: String,
    port: u16,
    flag: &'static str,
    /// ` --tun-type …` for tunnelled destinations, as `ipvsadm-save` prints it.
    tun: String,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
}

#[derive(Serialize)]
struct ServiceLine {
    flag: &'static str,
    vip: String,
    port: u16,
    /// What follows the flag: `VIP:PORT`, or the mark of a firewall-mark service.
    target: String,
    /// `-6` for an IPv6 firewall-mark service (ipvsadm's only way to say its family).
    family: Option<&'static str>,
    scheduler: String,
    /// `-b sh-fallback,sh-port`.
    scheduler_flags: Option<String>,
    /// `-o`.
    one_packet: bool,
    persistence: u32,
    netmask: Option<String>,
    destinations: Vec<DestLine>,
}

#[derive(Serialize)]
struct NftLine {
    table: String,
    path: String,
}

/// What every template sees.
#[derive(Serialize)]
pub struct TemplateContext<'a> {
    lab: &'a str,
    host: &'a str,
    role: &'a str,
    version: &'static str,
    agent: &'a str,
    plan_path: String,
    unit: String,
    /// What the unit runs: the agent for hosts `up` provisioned, the standalone script for hosts
    /// provisioned from `render`'s files alone.
    exec_start: String,
    exec_stop: String,
    standalone: bool,
    /// `sha256sum --check` input the unit verifies the agent with before each start and stop.
    agent_check: String,
    script: String,
    rules: String,
    /// The nftables table of firewall-mark services: its name and the JSON file that loads it.
    nft: Option<NftLine>,
    state: String,
    runtime_state: String,
    modules: &'a [super::ModuleSpec],
    sysctls: Vec<SysctlLine<'a>>,
    links_up: &'a [super::LinkSpec],
    gue_ports: &'a [super::GuePortSpec],
    addresses: Vec<AddressLine<'a>>,
    routes: Vec<RouteLine<'a>>,
    ipvs: Vec<ServiceLine>,
    keepalived: Option<&'a super::keepalived::KeepalivedSpec>,
    /// `[ipvs] timeouts`: ipvsadm --set in the script, lvs_timeouts in keepalived.conf.
    timeouts: Option<super::IpvsTimeouts>,
}

fn protocol_flag(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
        Protocol::Sctp => "--sctp-service",
    }
}

fn boot_optional(key: &str) -> bool {
    match key.strip_prefix("net.ipv4.conf.") {
        Some(rest) => !matches!(rest.split('.').next(), Some("all" | "default" | "lo")),
        None => false,
    }
}

/// How the boot unit applies the host's state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// `lvsctl up` installed its agent and the plan: the unit runs the agent.
    Agent,
    /// `lvsctl render`'s files only: the unit runs the standalone script.
    Script,
}

/// An IPVS netmask worth writing: `ipvsadm-save` leaves out the default (255.255.255.255, 128).
fn shown_netmask(m: Option<crate::ipvs::Netmask>) -> Option<String> {
    m.filter(|m| *m != crate::ipvs::Netmask::host(false) && *m != crate::ipvs::Netmask::host(true))
        .map(|m| m.to_string())
}

impl<'a> TemplateContext<'a> {
    pub fn new(p: &'a HostPlan, agent: &'a str) -> Self {
        Self::with_boot(p, agent, Boot::Agent)
    }

    pub fn with_boot(p: &'a HostPlan, agent: &'a str, boot: Boot) -> Self {
        let script = crate::paths::script_path(&p.lab);
        let (exec_start, exec_stop) = match boot {
            Boot::Agent => (
                format!("{agent} agent boot start --lab {}", p.lab),
                format!("{agent} agent boot stop --lab {}", p.lab),
            ),
            Boot::Script => (format!("{script} start"), format!("{script} stop")),
        };
        // In `ipvsadm-save -n` order (ipvsadm sorts what the kernel lists): by mark (0 for
        // services of an address), protocol, address as the kernel stores it, and port; real
        // servers by address and port.
        let mut services: Vec<&super::VirtualServiceSpec> = p.ipvs.iter().collect();
        services.sort_by_key(|s| match s.ipvs.fwmark {
            Some(m) => (m, 0, [0; 16], 0, s.ipvs.vip.is_ipv6()),
            None => (0, s.ipvs.protocol.number(), kernel_order(s.ipvs.vip), s.ipvs.port, false),
        });
        TemplateContext {
            lab: &p.lab,
            host: &p.host,
            role: p.role.as_str(),
            version: env!("CARGO_PKG_VERSION"),
            agent,
            plan_path: crate::paths::host_plan_path(&p.lab),
            unit: crate::paths::unit_name(&p.lab),
            exec_start,
            exec_stop,
            standalone: boot == Boot::Script,
            agent_check: crate::paths::agent_check_path(&p.lab),
            script,
            rules: crate::paths::ipvsadm_rules_path(&p.lab),
            nft: p
                .nftables
                .as_ref()
                .map(|t| NftLine { table: t.name.clone(), path: crate::paths::nftables_path(&p.lab) }),
            state: crate::paths::script_state_path(&p.lab),
            runtime_state: crate::paths::script_runtime_state_path(&p.lab),
            modules: &p.modules,
            sysctls: p
                .sysctls
                .iter()
                .map(|s| SysctlLine {
                    key: &s.key,
                    value: &s.value,
                    reason: &s.reason,
                    boot_optional: boot_optional(&s.key),
                })
                .collect(),
            links_up: &p.links_up,
            gue_ports: &p.gue_ports,
            addresses: p
                .addresses
                .iter()
                .map(|a| AddressLine {
                    dev: &a.dev,
                    address: a.address.to_string(),
                    ip: a.address.addr().to_string(),
                    label: a.label.as_deref(),
                    v6: a.address.addr().is_ipv6(),
                    deprecated: a.deprecated,
                    reason: &a.reason,
                })
                .collect(),
            routes: p
                .routes
                .iter()
                .filter_map(|r| {
                    Some(RouteLine {
                        destination_ip: if r.destination.prefix_len() == 0 {
                            "default".into()
                        } else {
                            r.destination.to_string()
                        },
                        gateway: r.gateway?.to_string(),
                        dev: r.dev.as_deref(),
                        v6: r.destination.addr().is_ipv6(),
                        advmss: r.advmss,
                        reason: &r.reason,
                    })
                })
                .collect(),
            ipvs: services
                .into_iter()
                .map(|s| ServiceLine {
                    flag: if s.ipvs.fwmark.is_some() { "-f" } else { protocol_flag(s.ipvs.protocol) },
                    vip: crate::ipvs::bracketed(s.ipvs.vip),
                    port: s.ipvs.port,
                    target: match s.ipvs.fwmark {
                        Some(m) => m.to_string(),
                        None => format!("{}:{}", crate::ipvs::bracketed(s.ipvs.vip), s.ipvs.port),
                    },
                    family: (s.ipvs.fwmark.is_some() && s.ipvs.vip.is_ipv6()).then_some("-6"),
                    scheduler: s.ipvs.scheduler.clone(),
                    scheduler_flags: (!s.ipvs.scheduler_flags.is_empty())
                        .then(|| s.ipvs.scheduler_flags.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")),
                    one_packet: s.ipvs.one_packet,
                    persistence: s.ipvs.persistence,
                    netmask: shown_netmask(s.ipvs.netmask),
                    destinations: {
                        let mut d: Vec<_> = s.destinations.iter().collect();
                        d.sort_by_key(|d| (kernel_order(d.address), d.port));
                        d
                    }
                    .into_iter()
                    .map(|d| DestLine {
                        address: crate::ipvs::bracketed(d.address),
                        port: d.port,
                        flag: d.forward.ipvsadm_flag(),
                        tun: if d.forward == crate::ipvs::Forward::Tunnel {
                            d.encap.ipvsadm_save_args()
                        } else {
                            String::new()
                        },
                        weight: d.weight,
                        u_threshold: d.u_threshold,
                        l_threshold: d.l_threshold,
                    })
                    .collect(),
                })
                .collect(),
            keepalived: p.keepalived.as_ref(),
            // 0 for one the inventory leaves out: ipvsadm --set leaves it unchanged.
            timeouts: p
                .ipvs_timeouts
                .as_ref()
                .map(|t| t.applied_to(super::IpvsTimeouts { tcp: 0, tcp_fin: 0, udp: 0 })),
        }
    }
}

/// An address as IPVS stores it (`union nf_inet_addr`: an IPv4 address in the first four of
/// sixteen bytes), which is what ipvsadm compares when it sorts.
fn kernel_order(a: std::net::IpAddr) -> [u8; 16] {
    let mut b = [0; 16];
    match a {
        std::net::IpAddr::V4(v) => b[..4].copy_from_slice(&v.octets()),
        std::net::IpAddr::V6(v) => b = v.octets(),
    }
    b
}

/// The files `lvsctl up` installs on a host so that it comes back provisioned after a reboot.
pub fn persistent_files(lab: &Lab, runtime: &HostPlan, ctx: &Context) -> Result<Vec<FileSpec>, RenderError> {
    let tc = TemplateContext::new(runtime, &ctx.agent_path);
    let mut files = Vec::new();
    files.push(FileSpec {
        path: crate::paths::host_plan_path(&lab.name),
        mode: 0o644,
        content: runtime.runtime_json(),
        reason: "the runtime state the boot unit re-applies".into(),
        check: None,
        runtime_plan: true,
    });
    if !runtime.sysctls.is_empty() {
        files.push(FileSpec {
            path: crate::paths::sysctl_conf_path(&lab.name),
            mode: 0o644,
            content: ctx.templates.render(SYSCTL_CONF, &tc)?,
            reason: "sysctls set early at boot by systemd-sysctl".into(),
            check: None,
            runtime_plan: false,
        });
    }
    // The agent's directory is named after its sha256: the unit checks the binary against it
    // before running it as root at boot.
    let sha = std::path::Path::new(&ctx.agent_path)
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    files.push(FileSpec {
        path: crate::paths::agent_check_path(&lab.name),
        mode: 0o644,
        content: format!("{sha}  {}\n", ctx.agent_path),
        reason: "the agent's sha256, checked by the boot unit before it runs the agent".into(),
        check: None,
        runtime_plan: false,
    });
    if let Some(k) = &runtime.keepalived {
        files.push(FileSpec {
            path: k.config.clone(),
            mode: 0o644,
            content: ctx.templates.render(KEEPALIVED_CONF, &tc)?,
            reason: format!("{}; checked with keepalived -t before it is put in place", k.reason),
            check: Some(super::FileCheck::Keepalived),
            runtime_plan: false,
        });
    }
    files.push(FileSpec {
        path: crate::paths::unit_path(&lab.name),
        mode: 0o644,
        content: ctx.templates.render(SERVICE_UNIT, &tc)?,
        reason: "re-applies this host's state at boot; systemctl stop undoes it".into(),
        check: None,
        runtime_plan: false,
    });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::Templates;

    #[test]
    fn boot_optional_only_for_devices_that_may_be_missing() {
        assert!(boot_optional("net.ipv4.conf.tunl0.rp_filter"));
        assert!(!boot_optional("net.ipv4.conf.all.rp_filter"));
        assert!(!boot_optional("net.ipv4.conf.lo.arp_ignore"));
        assert!(!boot_optional("net.ipv4.ip_forward"));
    }

    #[test]
    fn override_replaces_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SERVICE_UNIT), "custom unit for {{ host }}\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let p = HostPlan::empty("l", "h", crate::inventory::Role::Client);
        let out = t.render(SERVICE_UNIT, &TemplateContext::new(&p, "/a")).unwrap();
        assert_eq!(out, "custom unit for h\n");
        assert_eq!(t.overridden.len(), 1);
    }
}
