//! A recording fake host for unit tests: state in memory, every mutating call logged.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use super::{AddrFact, FileFact, IpvsService, ProcFact, Result, RouteFact};
use crate::ipvs::ServiceKey;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeState {
    pub modules: BTreeSet<String>,
    /// Modules this kernel has neither built in nor installed.
    pub missing_modules: BTreeSet<String>,
    pub sysctls: BTreeMap<String, String>,
    pub links: BTreeMap<String, bool>,
    /// Open fou (GUE) ports.
    pub fou_ports: BTreeSet<super::FouPort>,
    pub addresses: Vec<AddrFact>,
    pub routes: Vec<RouteFact>,
    /// None: ip_vs not loaded.
    pub ipvs: Option<Vec<IpvsService>>,
    /// IPVS's connection timeouts; None: the kernel's own.
    pub ipvs_timeouts: Option<crate::plan::IpvsTimeouts>,
    /// nftables tables of family inet: name → objects (as `nft -j` lists them, no handles).
    pub nft: BTreeMap<String, super::NftObjects>,
    pub files: BTreeMap<String, FileFact>,
    pub dirs: BTreeSet<String>,
    pub systemd: bool,
    pub enabled: BTreeSet<String>,
    pub active: BTreeSet<String>,
    /// Running processes by pid.
    pub processes: BTreeMap<u32, ProcFact>,
    /// Installed programs: name → path.
    pub programs: BTreeMap<String, String>,
    /// The clock of process start times.
    pub ticks: u64,
    /// The next pid a spawn gets.
    pub next_pid: u32,
    /// Listening TCP sockets (besides those of the exporters).
    pub listening: Vec<std::net::SocketAddr>,
    /// Spawned exporters' addresses by pid: listening while the process runs.
    pub exporters: BTreeMap<u32, std::net::SocketAddr>,
}

#[derive(Debug, Default)]
pub struct Fake {
    pub state: FakeState,
    pub log: Vec<String>,
    /// Operations (log prefixes) that fail with EPERM.
    pub fail: Vec<String>,
    /// How many times the whole IPVS table was read (a dump per service on a real kernel).
    pub ipvs_reads: usize,
}

impl Fake {
    /// A bare host: lo and eth0 down, kernel-default sysctls, no modules.
    pub fn new() -> Fake {
        let mut s = FakeState::default();
        for dev in ["all", "default", "lo", "eth0"] {
            s.sysctls.insert(format!("net.ipv4.conf.{dev}.arp_ignore"), "0".into());
            s.sysctls.insert(format!("net.ipv4.conf.{dev}.arp_announce"), "0".into());
            s.sysctls.insert(format!("net.ipv4.conf.{dev}.rp_filter"), "0".into());
        }
        s.sysctls.insert("net.ipv4.ip_forward".into(), "0".into());
        s.links.insert("lo".into(), true);
        s.links.insert("eth0".into(), false);
        s.dirs.extend(["/etc", "/etc/systemd", "/etc/systemd/system", "/etc/sysctl.d"].map(String::from));
        Fake { state: s, log: vec![], fail: vec![], ipvs_reads: 0 }
    }

    pub(super) fn op(&mut self, what: String) -> Result<()> {
        if self.fail.iter().any(|f| what.starts_with(f.as_str())) {
            self.log.push(format!("FAILED {what}"));
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.log.push(what);
        Ok(())
    }

    pub(super) fn svc(&mut self, k: &ServiceKey) -> Result<&mut IpvsService> {
        let t = self.state.ipvs.as_mut().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        t.iter_mut().find(|s| s.entry.key == *k).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
    }
}
