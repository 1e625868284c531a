//! `[metrics]` and a director's `metrics_listen`: where lvsctl's exporter of Prometheus metrics
//! listens on each director.

use std::net::IpAddr;

use super::hosts::DraftHost;
use super::keys;
use super::model::{MetricsSettings, Role, SshTarget};
use super::reader::{Reader, Table};

pub(super) fn parse_metrics(r: &mut Reader, t: Table) -> Option<(MetricsSettings, String)> {
    let port = t
        .require(r, "port", "add `port = 9382`: the TCP port each director's exporter listens on")
        .and_then(|i| i.int_in(r, 1, 65535, "port").map(|p| (p as u16, i.path.clone())));
    t.finish(r, &keys::METRICS.names());
    port.map(|(port, path)| (MetricsSettings { port }, path))
}

/// `metrics_listen` only on directors and on one of the director's own addresses; with
/// `[metrics]`, every director without one needs an SSH address that is an address.
pub(super) fn check_metrics(r: &mut Reader, hosts: &[DraftHost], metrics: Option<&(MetricsSettings, String)>) {
    for h in hosts {
        let Some((listen, path)) = &h.metrics_listen else { continue };
        if h.role.is_some_and(|role| role != Role::Director) {
            r.error_at(
                path,
                format!("metrics_listen on {}, which is not a director", h.name),
                Some("the exporter serves a director's IPVS table: set metrics_listen on a director".into()),
            );
            continue;
        }
        let ip = listen.ip();
        let ssh_ip = match h.ssh.as_ref().map(|s| &s.target) {
            Some(SshTarget::Remote(s)) => s.parse::<IpAddr>().ok(),
            _ => None,
        };
        let own = ip.is_unspecified() || ssh_ip == Some(ip) || h.addresses().any(|(_, _, a)| a.addr() == ip);
        if !own && !h.incomplete {
            r.error_at(
                path,
                format!("{ip} is not one of {}'s addresses", h.name),
                Some(format!(
                    "give its SSH address or an address of its interfaces table{}",
                    ssh_ip
                        .map(|a| format!(", e.g. \"{}\"", std::net::SocketAddr::new(a, listen.port())))
                        .unwrap_or_default()
                )),
            );
        }
    }
    let Some((m, path)) = metrics else { return };
    for h in hosts.iter().filter(|h| h.role == Some(Role::Director) && h.metrics_listen.is_none()) {
        let target = h.ssh.as_ref().map(|s| &s.target);
        let named = match target {
            Some(SshTarget::Remote(s)) if s.parse::<IpAddr>().is_err() => format!("its ssh address \"{s}\" is a name"),
            Some(SshTarget::Local) => "it is reached locally (ssh = \"local\")".to_string(),
            _ => continue,
        };
        r.error_at(
            path,
            format!("[metrics] listens on each director's SSH address, but {}: {named}", h.name),
            Some(format!("set `metrics_listen = \"ADDRESS:{}\"` in {} with one of its addresses", m.port, h.path)),
        );
    }
}
