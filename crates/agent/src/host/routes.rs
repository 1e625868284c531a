//! The main routing table of both families, and the kernel's route lookup.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/route.rs`.

use super::*;

/// The main routing table, both families.
pub trait Routes {
    /// Unicast routes of the main table, both families.
    fn routes(&mut self) -> Result<Vec<RouteFact>>;
    /// Adds (or with `replace`, replaces the route with the same destination and metric).
    fn add_route(&mut self, r: &RouteFact, replace: bool) -> Result<()>;
    fn del_route(&mut self, r: &RouteFact) -> Result<()>;
    /// The route the kernel would use to reach `dst`.
    fn route_get(&mut self, dst: IpAddr) -> Result<Lookup>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl Routes for Fake {
        fn routes(&mut self) -> Result<Vec<RouteFact>> {
            Ok(self.state.routes.clone())
        }

        fn add_route(&mut self, r: &RouteFact, replace: bool) -> Result<()> {
            let slot = self.state.routes.iter().position(|x| x.destination == r.destination && x.metric == r.metric);
            match (slot, replace) {
                (Some(_), false) => return Err(io::Error::from_raw_os_error(libc::EEXIST)),
                (Some(i), true) => {
                    self.op(format!("route replace {}", r.describe()))?;
                    self.state.routes[i] = r.clone();
                }
                (None, _) => {
                    self.op(format!("route add {}", r.describe()))?;
                    self.state.routes.push(r.clone());
                }
            }
            Ok(())
        }

        fn del_route(&mut self, r: &RouteFact) -> Result<()> {
            self.op(format!("route del {}", r.describe()))?;
            let before = self.state.routes.len();
            self.state
                .routes
                .retain(|x| !(x.destination == r.destination && x.metric == r.metric && x.gateway == r.gateway));
            if self.state.routes.len() == before { Err(io::Error::from_raw_os_error(libc::ESRCH)) } else { Ok(()) }
        }

        fn route_get(&mut self, dst: std::net::IpAddr) -> Result<super::Lookup> {
            use super::{Lookup, LookupRoute};
            if let Some(a) = self.state.addresses.iter().find(|a| a.address.addr() == dst) {
                return Ok(Lookup {
                    destination: dst,
                    route: Some(LookupRoute { gateway: None, dev: Some(a.dev.clone()), local: true }),
                });
            }
            if let Some(a) = self
                .state
                .addresses
                .iter()
                .find(|a| a.address.contains(&dst) && self.state.links.get(&a.dev) == Some(&true))
            {
                return Ok(Lookup {
                    destination: dst,
                    route: Some(LookupRoute { gateway: None, dev: Some(a.dev.clone()), local: false }),
                });
            }
            let best = self
                .state
                .routes
                .iter()
                .filter(|r| r.destination.contains(&dst))
                .max_by_key(|r| r.destination.prefix_len());
            Ok(Lookup {
                destination: dst,
                route: best.map(|r| LookupRoute { gateway: r.gateway, dev: r.dev.clone(), local: false }),
            })
        }
    }
}
