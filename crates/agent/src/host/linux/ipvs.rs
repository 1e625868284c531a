//! The IPVS table over generic netlink (the codec is `crate::ipvs`): read in one dump per
//! service, changed in batches.

use std::io;
use std::path::Path;

use super::Linux;
use crate::host::{IpvsService, IpvsTable, Result};
use crate::ipvs::client::IpvsClient;
use crate::ipvs::{DestConfig, DestKey, ServiceConfig, ServiceKey};

impl Linux {
    fn client(&mut self) -> Result<&mut IpvsClient> {
        if self.ipvs.is_none() {
            self.ipvs = Some(IpvsClient::connect()?);
        }
        Ok(self.ipvs.as_mut().expect("just set"))
    }
}

impl IpvsTable for Linux {
    fn ipvs_loaded(&self) -> bool {
        Path::new("/proc/thread-self/net/ip_vs").exists()
    }

    fn ipvs_table(&mut self) -> Result<Vec<IpvsService>> {
        // The destinations come one dump per service (IPVS has no dump of them all): from this
        // many services on, a second socket on a second thread reads the second half.
        const SPLIT_FROM: usize = 64;
        let c = self.client()?;
        let services = c.services()?;
        let dests =
            |c: &mut IpvsClient, part: &[crate::ipvs::ServiceEntry]| -> Result<Vec<Vec<crate::ipvs::DestEntry>>> {
                part.iter().map(|e| c.dests(&e.key)).collect()
            };
        let lists = if services.len() < SPLIT_FROM || std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            dests(c, &services)?
        } else {
            let (first, second) = services.split_at(services.len() / 2);
            std::thread::scope(|s| {
                let other = s.spawn(|| dests(&mut IpvsClient::connect()?, second));
                let mut lists = dests(c, first)?;
                let rest = other.join().map_err(|_| io::Error::other("the thread reading IPVS destinations failed"))?;
                lists.extend(rest?);
                Ok::<_, io::Error>(lists)
            })?
        };
        Ok(services.into_iter().zip(lists).map(|(entry, dests)| IpvsService { entry, dests }).collect())
    }

    fn ipvs_daemons(&mut self) -> Result<Vec<crate::ipvs::SyncDaemon>> {
        self.client()?.daemons()
    }

    fn ipvs_timeouts(&mut self) -> Result<crate::plan::IpvsTimeouts> {
        self.client()?.timeouts()
    }

    fn ipvs_set_timeouts(&mut self, t: &crate::plan::IpvsTimeouts) -> Result<()> {
        self.client()?.set_timeouts(t)
    }

    fn ipvs_new_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()> {
        self.client()?.new_service(k, c)
    }
    fn ipvs_set_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()> {
        self.client()?.set_service(k, c)
    }
    fn ipvs_del_service(&mut self, k: &ServiceKey) -> Result<()> {
        self.client()?.del_service(k)
    }
    fn ipvs_new_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()> {
        self.client()?.new_dest(s, k, c)
    }
    fn ipvs_set_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()> {
        self.client()?.set_dest(s, k, c)
    }
    fn ipvs_del_dest(&mut self, s: &ServiceKey, k: &DestKey) -> Result<()> {
        self.client()?.del_dest(s, k)
    }
    fn ipvs_apply(&mut self, ops: &[crate::ipvs::TableOp]) -> Vec<Result<()>> {
        match self.client() {
            Ok(c) => c.batch(&ops.iter().map(crate::ipvs::TableOp::message).collect::<Vec<_>>()),
            Err(e) => ops.iter().map(|_| Err(std::io::Error::new(e.kind(), e.to_string()))).collect(),
        }
    }
}
