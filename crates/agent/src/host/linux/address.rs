//! Addresses over rtnetlink, both families, with the flags lvsctl sets (nodad, deprecated).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::AddressMessageBuilder;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};

use super::{Linux, nl};
use crate::host::{AddrFact, Addresses, Result};

fn address_fact(m: &AddressMessage, names: &HashMap<u32, String>) -> Option<AddrFact> {
    if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let (mut local, mut address, mut label) = (None, None, None);
    // IFA_FLAGS holds all the flags; the header's byte only the first eight.
    let mut flags = AddressFlags::from_bits_retain(m.header.flags.bits() as u32);
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(v) => local = Some(*v),
            AddressAttribute::Address(v) => address = Some(*v),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    // IFA_LOCAL is the host's own address (IFA_ADDRESS is the peer on point-to-point links);
    // IPv6 addresses carry IFA_ADDRESS alone.
    let ip = local.or(address)?;
    Some(AddrFact {
        dev: names.get(&m.header.index)?.clone(),
        address: IpNet::new(ip, m.header.prefix_len).ok()?,
        label,
        nodad: flags.contains(AddressFlags::Nodad),
        deprecated: flags.contains(AddressFlags::Deprecated),
    })
}

impl Addresses for Linux {
    fn addresses(&mut self) -> Result<Vec<AddrFact>> {
        let names = self.link_names()?;
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let mut out = Vec::new();
            let mut s = h.address().get().execute();
            while let Some(m) = s.try_next().await.map_err(nl)? {
                if let Some(a) = address_fact(&m, &names) {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }

    fn add_address(&mut self, a: &AddrFact) -> Result<()> {
        let index = self.need_index(&a.dev)?;
        let mut req = self.handle.address().add(index, a.address.addr(), a.address.prefix_len());
        if let Some(l) = &a.label {
            req.message_mut().attributes.push(AddressAttribute::Label(l.clone()));
        }
        if a.nodad {
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        if a.deprecated {
            // preferred_lft 0, valid forever: `ip addr add … preferred_lft 0`.
            let mut lifetimes = CacheInfo::default();
            lifetimes.ifa_preferred = 0;
            lifetimes.ifa_valid = u32::MAX;
            req.message_mut().attributes.push(AddressAttribute::CacheInfo(lifetimes));
        }
        self.rt.block_on(async move { req.execute().await.map_err(nl) })
    }

    fn del_address(&mut self, a: &AddrFact) -> Result<()> {
        let index = self.need_index(&a.dev)?;
        let msg = match a.address.addr() {
            IpAddr::V4(ip) => {
                AddressMessageBuilder::<Ipv4Addr>::new().index(index).address(ip, a.address.prefix_len()).build()
            }
            IpAddr::V6(ip) => {
                AddressMessageBuilder::<Ipv6Addr>::new().index(index).address(ip, a.address.prefix_len()).build()
            }
        };
        let h = self.handle.clone();
        self.rt.block_on(async move { h.address().del(msg).execute().await.map_err(nl) })
    }
}
