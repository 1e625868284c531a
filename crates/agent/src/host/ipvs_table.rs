//! The IPVS table (services and their destinations) and its sync daemons.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/ipvs.rs`.

use super::*;

/// The IPVS table and its sync daemons (generic netlink).
pub trait IpvsTable {
    /// Whether IPVS is loaded (reading it must not load it).
    fn ipvs_loaded(&self) -> bool;
    fn ipvs_table(&mut self) -> Result<Vec<IpvsService>>;
    fn ipvs_new_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()>;
    fn ipvs_set_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()>;
    fn ipvs_del_service(&mut self, k: &ServiceKey) -> Result<()>;
    fn ipvs_new_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()>;
    fn ipvs_set_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()>;
    fn ipvs_del_dest(&mut self, s: &ServiceKey, k: &DestKey) -> Result<()>;
    /// Makes each change in order; one result per change. Linux sends them in batches.
    fn ipvs_apply(&mut self, ops: &[crate::ipvs::TableOp]) -> Vec<Result<()>> {
        use crate::ipvs::TableOp;
        ops.iter()
            .map(|op| match op {
                TableOp::NewService(k, c) => self.ipvs_new_service(k, c),
                TableOp::SetService(k, c) => self.ipvs_set_service(k, c),
                TableOp::DelService(k) => self.ipvs_del_service(k),
                TableOp::NewDest(s, k, c) => self.ipvs_new_dest(s, k, c),
                TableOp::SetDest(s, k, c) => self.ipvs_set_dest(s, k, c),
                TableOp::DelDest(s, k) => self.ipvs_del_dest(s, k),
            })
            .collect()
    }
    /// The connection sync daemons that run (IPVS loaded).
    fn ipvs_daemons(&mut self) -> Result<Vec<crate::ipvs::SyncDaemon>>;
    /// The connection timeouts (IPVS loaded).
    fn ipvs_timeouts(&mut self) -> Result<crate::plan::IpvsTimeouts>;
    /// Sets the connection timeouts (ipvsadm --set); a 0 leaves that one as it is.
    fn ipvs_set_timeouts(&mut self, t: &crate::plan::IpvsTimeouts) -> Result<()>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;
    use crate::ipvs::{DestEntry, ServiceEntry, Stats};

    impl IpvsTable for Fake {
        fn ipvs_loaded(&self) -> bool {
            self.state.ipvs.is_some()
        }

        fn ipvs_table(&mut self) -> Result<Vec<IpvsService>> {
            self.ipvs_reads += 1;
            self.state.ipvs.clone().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
        }

        fn ipvs_new_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()> {
            if self.svc(k).is_ok() {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.op(format!("ipvs add {k} {}", c.describe()))?;
            let sched = format!("ip_vs_{}", c.scheduler);
            self.state.modules.insert(sched); // the kernel autoloads the scheduler
            self.state.ipvs.as_mut().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?.push(IpvsService {
                entry: ServiceEntry { key: *k, config: c.clone(), stats: Stats::default() },
                dests: vec![],
            });
            Ok(())
        }

        fn ipvs_set_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> Result<()> {
            self.svc(k)?;
            self.op(format!("ipvs set {k} {}", c.describe()))?;
            self.svc(k)?.entry.config = c.clone();
            Ok(())
        }

        fn ipvs_del_service(&mut self, k: &ServiceKey) -> Result<()> {
            self.svc(k)?;
            self.op(format!("ipvs del {k}"))?;
            self.state.ipvs.as_mut().expect("checked").retain(|s| s.entry.key != *k);
            Ok(())
        }

        fn ipvs_new_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()> {
            if self.svc(s)?.dests.iter().any(|d| d.key == *k) {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.op(format!("ipvs add dest {k} to {s} {}", c.describe()))?;
            self.svc(s)?.dests.push(DestEntry {
                key: *k,
                config: c.clone(),
                active_conns: 0,
                inact_conns: 0,
                persist_conns: 0,
                stats: Stats::default(),
            });
            Ok(())
        }

        fn ipvs_set_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> Result<()> {
            if !self.svc(s)?.dests.iter().any(|d| d.key == *k) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            self.op(format!("ipvs set dest {k} of {s} {}", c.describe()))?;
            self.svc(s)?.dests.iter_mut().find(|d| d.key == *k).expect("checked").config = c.clone();
            Ok(())
        }

        fn ipvs_del_dest(&mut self, s: &ServiceKey, k: &DestKey) -> Result<()> {
            if !self.svc(s)?.dests.iter().any(|d| d.key == *k) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            self.op(format!("ipvs del dest {k} of {s}"))?;
            self.svc(s)?.dests.retain(|d| d.key != *k);
            Ok(())
        }

        fn ipvs_daemons(&mut self) -> Result<Vec<crate::ipvs::SyncDaemon>> {
            Ok(vec![])
        }

        fn ipvs_timeouts(&mut self) -> Result<crate::plan::IpvsTimeouts> {
            self.state.ipvs.as_ref().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            Ok(self.state.ipvs_timeouts.unwrap_or(crate::plan::IpvsTimeouts::KERNEL))
        }

        fn ipvs_set_timeouts(&mut self, t: &crate::plan::IpvsTimeouts) -> Result<()> {
            let now = self.ipvs_timeouts()?;
            self.op(format!("ipvs set timeouts {t}"))?;
            let keep = |new: u32, old: u32| if new == 0 { old } else { new };
            self.state.ipvs_timeouts = Some(crate::plan::IpvsTimeouts {
                tcp: keep(t.tcp, now.tcp),
                tcp_fin: keep(t.tcp_fin, now.tcp_fin),
                udp: keep(t.udp, now.udp),
            });
            Ok(())
        }
    }
}
