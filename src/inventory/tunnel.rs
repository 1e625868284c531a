//! A TUN service's encapsulation: `tun_type`, `tun_port`, `tun_checksum` (ipvsadm's
//! `--tun-type`, `--tun-port`, `--tun-csum`/`--tun-remcsum`), read from `[[services]]` and
//! held to what the kernel and lvsctl's receivers on the real servers take.

use std::collections::BTreeMap;

use super::model::{Mode, Service};
use super::reader::{Item, Reader, Table, join};
use super::value::parse_enum;
use crate::wire::ipvs::{Encap, TunChecksum, TunType};

/// The three keys as written (each with its path, for errors).
#[derive(Clone, Default)]
pub struct DraftTunnel {
    pub tun_type: Option<(TunType, String)>,
    pub port: Option<(u16, String)>,
    pub checksum: Option<(TunChecksum, String)>,
    /// tun_port is written, valid or not (a bad one is reported already: no follow-on error).
    pub port_written: bool,
}

impl DraftTunnel {
    fn given(&self) -> Vec<&str> {
        [self.tun_type.as_ref().map(|x| &x.1), self.port.as_ref().map(|x| &x.1), self.checksum.as_ref().map(|x| &x.1)]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

pub(super) fn parse_tunnel(r: &mut Reader, t: &Table) -> DraftTunnel {
    let path = |i: &Item| i.path.clone();
    DraftTunnel {
        tun_type: t
            .get(r, "tun_type")
            .and_then(|i| parse_enum(r, &i, &TunType::NAMES, TunType::parse, "tun_type").map(|v| (v, path(&i)))),
        port: t.get(r, "tun_port").and_then(|i| i.int_in(r, 1, 65535, "tun_port").map(|p| (p as u16, path(&i)))),
        port_written: t.get(r, "tun_port").is_some(),
        checksum: t.get(r, "tun_checksum").and_then(|i| {
            parse_enum(r, &i, &TunChecksum::NAMES, TunChecksum::parse, "tun_checksum").map(|v| (v, path(&i)))
        }),
    }
}

/// The encapsulation of a service in `mode` (IP-in-IP when nothing is said); every combination
/// the kernel or the real servers' receivers cannot take is an error at its key.
pub(super) fn check_tunnel(r: &mut Reader, service_path: &str, d: &DraftTunnel, mode: Mode) -> Encap {
    if mode != Mode::Tun {
        for at in d.given() {
            let key = at.rsplit('.').next().unwrap_or(at);
            r.error_at(
                at,
                format!("{key} is for TUN services, and this one is {}", mode.as_str().to_uppercase()),
                Some(format!("remove {key}, or set mode = \"tun\" on the service")),
            );
        }
        return Encap::IPIP;
    }
    let tun_type = d.tun_type.as_ref().map(|x| x.0).unwrap_or_default();
    let mut e = Encap { tun_type, ..Encap::IPIP };
    match (&d.port, tun_type) {
        (Some((p, _)), TunType::Gue) => e.port = *p,
        (None, TunType::Gue) if !d.port_written => {
            let at = d.tun_type.as_ref().map(|x| x.1.clone()).unwrap_or_else(|| join(service_path, "tun_type"));
            r.error_at(
                &at,
                "a GUE tunnel needs tun_port: the UDP port the real servers receive it on",
                Some(
                    "add `tun_port = 6080` (any free UDP port; lvsctl opens it on every real server of the service)"
                        .into(),
                ),
            );
        }
        (Some((_, at)), other) => r.error_at(
            at,
            format!(
                "tun_port is GUE's UDP port, and this service tunnels in {}",
                if other == TunType::Gre { "GRE" } else { "IP-in-IP" }
            ),
            Some("set tun_type = \"gue\", or remove tun_port".into()),
        ),
        (None, _) => {}
    }
    if let Some((c, at)) = &d.checksum {
        match (tun_type, c) {
            (_, TunChecksum::None) => {}
            (TunType::Gue, TunChecksum::Csum) => e.checksum = *c,
            (TunType::Gue, TunChecksum::Remcsum) => r.error_at(
                at,
                "remote checksum offload leaves the inner TCP checksum wrong on the real servers: they count a checksum error per packet and the client retransmits (measured on Linux 6.1: a 1 MB upload took 2 s instead of 0.2 s)",
                Some("use tun_checksum = \"csum\" (a UDP checksum), or remove tun_checksum".into()),
            ),
            (TunType::Ipip, _) => r.error_at(
                at,
                "IP-in-IP has no checksum: tun_checksum is for GUE",
                Some("set tun_type = \"gue\", or remove tun_checksum".into()),
            ),
            (TunType::Gre, TunChecksum::Remcsum) => r.error_at(
                at,
                "GRE has no remote checksum offload (GUE has)",
                Some("remove tun_checksum, or set tun_type = \"gue\"".into()),
            ),
            (TunType::Gre, TunChecksum::Csum) => r.error_at(
                at,
                "the real servers receive GRE on gre0, which takes no checksummed GRE: the kernel hands a GRE packet only to a device with the same checksum flag, and drops it (measured on Linux 6.1)",
                Some("remove tun_checksum, or use tun_type = \"gue\" with tun_checksum = \"csum\"".into()),
            ),
        }
    }
    e
}

/// A real server opens one GUE port per port its services use, and the fou socket takes every
/// UDP datagram to that port: one of its own UDP services on the same port would never be
/// answered.
pub(super) fn check_gue_ports(r: &mut Reader, services: &[Service], paths: &BTreeMap<usize, String>) {
    for s in services.iter().filter(|s| s.encap.tun_type == TunType::Gue) {
        for b in &s.real_servers {
            let clash = services.iter().find(|o| {
                o.ipvs.protocol == crate::wire::ipvs::Protocol::Udp
                    && o.real_servers.iter().any(|x| x.host == b.host && x.port == s.encap.port)
            });
            if let Some(o) = clash {
                let at = paths.get(&s.index).map(|p| join(p, "tun_port")).unwrap_or_default();
                r.error_at(
                    &at,
                    format!(
                        "tun_port {} is also the UDP port {} serves on {}: the GUE port would take its datagrams",
                        s.encap.port,
                        o.label(),
                        b.host
                    ),
                    Some("choose another tun_port".into()),
                );
                return;
            }
        }
    }
}
