//! Routes of the main table over rtnetlink, both families, and the kernel's route lookup.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteScope, RouteType,
};

use super::{Linux, nl};
use crate::host::{Lookup, LookupRoute, Result, RouteFact, Routes};

impl Linux {
    fn route_message(&mut self, r: &RouteFact) -> Result<RouteMessage> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.destination.addr(), r.destination.prefix_len())
            .map_err(invalid)?
            .protocol(RouteProtocol::from(r.protocol))
            .scope(RouteScope::from(r.scope));
        if let Some(g) = r.gateway {
            b = b.gateway(g).map_err(invalid)?;
        }
        if let Some(dev) = &r.dev {
            b = b.output_interface(self.need_index(dev)?);
        }
        if r.metric != 0 {
            b = b.priority(r.metric);
        }
        if let Some(src) = r.prefsrc {
            b = b.pref_source(src).map_err(invalid)?;
        }
        let mut m = b.build();
        if let Some(mss) = r.advmss {
            m.attributes.push(RouteAttribute::Metrics(vec![RouteMetric::Advmss(mss)]));
        }
        Ok(m)
    }
}

/// A route the builder refuses (an address of another family than the route's).
fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn route_fact(m: &RouteMessage, names: &HashMap<u32, String>) -> Option<RouteFact> {
    let unspecified: IpAddr = match m.header.address_family {
        AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    if m.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = m.header.table as u32;
    let (mut dst, mut gateway, mut dev, mut metric, mut prefsrc) = (unspecified, None, None, 0, None);
    let mut advmss = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip_of(d)?,
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::Oif(i) => dev = names.get(i).cloned(),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::PrefSource(s) => prefsrc = ip_of(s),
            RouteAttribute::Metrics(ms) => {
                advmss = ms.iter().find_map(|x| if let RouteMetric::Advmss(v) = x { Some(*v) } else { None })
            }
            _ => {}
        }
    }
    if table != RouteHeader::RT_TABLE_MAIN as u32 {
        return None;
    }
    Some(RouteFact {
        destination: IpNet::new(dst, m.header.destination_prefix_length).ok()?,
        gateway,
        dev,
        metric,
        protocol: m.header.protocol.into(),
        scope: m.header.scope.into(),
        prefsrc,
        advmss,
    })
}

impl Routes for Linux {
    fn routes(&mut self) -> Result<Vec<RouteFact>> {
        let names = self.link_names()?;
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let mut out = Vec::new();
            // AF_UNSPEC: the routes of every family (route_fact keeps IPv4 and IPv6).
            let mut s = h.route().get(RouteMessageBuilder::<IpAddr>::new().build()).execute();
            while let Some(m) = s.try_next().await.map_err(nl)? {
                if let Some(r) = route_fact(&m, &names) {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    fn add_route(&mut self, r: &RouteFact, replace: bool) -> Result<()> {
        let msg = self.route_message(r)?;
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let req = h.route().add(msg);
            let req = if replace { req.replace() } else { req };
            req.execute().await.map_err(nl)
        })
    }

    fn del_route(&mut self, r: &RouteFact) -> Result<()> {
        let msg = self.route_message(r)?;
        let h = self.handle.clone();
        self.rt.block_on(async move { h.route().del(msg).execute().await.map_err(nl) })
    }

    fn route_get(&mut self, dst: IpAddr) -> Result<Lookup> {
        let names = self.link_names()?;
        let h = self.handle.clone();
        let msg = match dst {
            IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(a, 32).build(),
            IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(a, 128).build(),
        };
        self.rt.block_on(async move {
            let mut s = h.route().get(msg).execute();
            match s.try_next().await {
                Ok(Some(m)) => {
                    let mut r = LookupRoute { gateway: None, dev: None, local: m.header.kind == RouteType::Local };
                    for a in &m.attributes {
                        match a {
                            RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
                            RouteAttribute::Oif(i) => r.dev = names.get(i).cloned(),
                            _ => {}
                        }
                    }
                    Ok(Lookup { destination: dst, route: Some(r) })
                }
                Ok(None) => Ok(Lookup { destination: dst, route: None }),
                Err(e) => {
                    let e = nl(e);
                    // No route: the kernel answers ENETUNREACH (or EHOSTUNREACH for unreachable routes).
                    if matches!(e.raw_os_error(), Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL)) {
                        Ok(Lookup { destination: dst, route: None })
                    } else {
                        Err(e)
                    }
                }
            }
        })
    }
}
