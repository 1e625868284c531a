//! `[ha]`: an HA pair of directors running keepalived (VRRP, sync daemon, floating gateway).

use ipnet::IpNet;

use super::keys;
use super::model::*;
use super::reader::{Item, Reader, Table};
use super::value::*;

pub const DEFAULT_VRID: u8 = 51;

pub struct DraftHa {
    pub path: String,
    pub virtual_router_id: u8,
    pub advert_interval: u32,
    pub sync: bool,
    pub preempt: bool,
    pub unicast: bool,
    pub floating_gateway: Vec<IpNet>,
}

pub(super) fn parse_ha(r: &mut Reader, t: Table) -> DraftHa {
    let path = t.path.clone();
    let virtual_router_id = t
        .get(r, "virtual_router_id")
        .and_then(|i| i.int_in(r, 1, 255, "virtual_router_id"))
        .map_or(DEFAULT_VRID, |v| v as u8);
    let advert_interval =
        t.get(r, "advert_interval").and_then(|i| i.int_in(r, 1, 255, "advert_interval")).map_or(1, |v| v as u32);
    let flag = |r: &mut Reader, k: &str, d: bool| t.get(r, k).and_then(|i| i.bool(r)).unwrap_or(d);
    let sync = flag(r, "sync", true);
    let preempt = flag(r, "preempt", true);
    let unicast = flag(r, "unicast", false);
    let one = |r: &mut Reader, i: &Item| {
        let s = i.str(r)?;
        match parse_interface_cidr(s) {
            Ok(n) => Some(n),
            Err((m, h)) => {
                r.error(i.span(), &i.path, m, Some(h));
                None
            }
        }
    };
    let floating_gateway = t
        .get(r, "floating_gateway")
        .map(|i| parse_per_family(r, &i, "floating gateway", one, |n: &IpNet| Family::of_addr(n.addr())))
        .unwrap_or_default();
    t.finish(r, &keys::HA.names());
    DraftHa { path, virtual_router_id, advert_interval, sync, preempt, unicast, floating_gateway }
}
