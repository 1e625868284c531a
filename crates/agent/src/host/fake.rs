//! A recording fake host for unit tests: state in memory, every mutating call logged.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use super::{
    AddrFact, Addresses, FileFact, Files, IpvsService, IpvsTable, Links, Modules, Nftables, ProcFact, Processes,
    Result, RouteFact, Routes, Sysctls,
};
use crate::ipvs::{DestConfig, DestEntry, DestKey, ServiceConfig, ServiceEntry, ServiceKey, Stats};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeState {
    pub modules: BTreeSet<String>,
    pub sysctls: BTreeMap<String, String>,
    pub links: BTreeMap<String, bool>,
    pub addresses: Vec<AddrFact>,
    pub routes: Vec<RouteFact>,
    /// None: ip_vs not loaded.
    pub ipvs: Option<Vec<IpvsService>>,
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

/// Which modules a load brings in, and which module each one needs.
fn deps(m: &str) -> Vec<&'static str> {
    match m {
        "ipip" => vec!["tunnel4", "ip_tunnel"],
        "ip_vs" => vec!["nf_conntrack"],
        s if s.starts_with("ip_vs_") => vec!["ip_vs", "nf_conntrack"],
        _ => vec![],
    }
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

    fn op(&mut self, what: String) -> Result<()> {
        if self.fail.iter().any(|f| what.starts_with(f.as_str())) {
            self.log.push(format!("FAILED {what}"));
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        self.log.push(what);
        Ok(())
    }

    fn svc(&mut self, k: &ServiceKey) -> Result<&mut IpvsService> {
        let t = self.state.ipvs.as_mut().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        t.iter_mut().find(|s| s.entry.key == *k).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
    }
}

impl Modules for Fake {
    fn loaded_modules(&self) -> Result<Vec<String>> {
        Ok(self.state.modules.iter().cloned().collect())
    }

    fn load_module(&mut self, name: &str) -> Result<()> {
        self.op(format!("modprobe {name}"))?;
        for d in deps(name) {
            if d == "ip_vs" && !self.state.modules.contains("ip_vs") {
                self.state.ipvs = Some(vec![]);
            }
            self.state.modules.insert(d.to_string());
        }
        self.state.modules.insert(name.to_string());
        if (name == "ip_vs" || deps(name).contains(&"ip_vs")) && self.state.ipvs.is_none() {
            self.state.ipvs = Some(vec![]);
        }
        if self.state.ipvs.is_some() {
            // The IPVS sysctls exist once ip_vs is loaded.
            for k in ["expire_nodest_conn", "expire_quiescent_template", "conn_reuse_mode"] {
                self.state.sysctls.entry(format!("net.ipv4.vs.{k}")).or_insert_with(|| "0".into());
            }
        }
        if name == "ipip" && !self.state.links.contains_key("tunl0") {
            self.state.links.insert("tunl0".into(), false);
            for (k, v) in [("arp_ignore", "0"), ("arp_announce", "0"), ("rp_filter", "2")] {
                self.state.sysctls.insert(format!("net.ipv4.conf.tunl0.{k}"), v.into());
            }
        }
        Ok(())
    }

    fn unload_module(&mut self, name: &str) -> Result<()> {
        if !self.state.modules.contains(name) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let used = self.state.modules.iter().any(|m| deps(m).contains(&name))
            || name
                .strip_prefix("ip_vs_")
                .is_some_and(|sched| self.state.ipvs.iter().flatten().any(|s| s.entry.config.scheduler == sched));
        if used {
            return Err(io::Error::from_raw_os_error(libc::EWOULDBLOCK));
        }
        self.op(format!("rmmod {name}"))?;
        self.state.modules.remove(name);
        if name == "ip_vs" {
            self.state.ipvs = None;
            self.state.sysctls.retain(|k, _| !k.starts_with("net.ipv4.vs."));
        }
        if name == "ipip" {
            self.state.links.remove("tunl0");
            self.state.sysctls.retain(|k, _| !k.contains(".tunl0."));
            self.state.addresses.retain(|a| a.dev != "tunl0");
        }
        Ok(())
    }

    fn module_refcount(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.state.modules.contains(name).then_some(0))
    }
}

impl Sysctls for Fake {
    fn read_sysctl(&self, key: &str) -> Result<Option<String>> {
        Ok(self.state.sysctls.get(key).cloned())
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<()> {
        if !self.state.sysctls.contains_key(key) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        self.op(format!("sysctl {key}={value}"))?;
        self.state.sysctls.insert(key.into(), value.into());
        Ok(())
    }
}

impl Links for Fake {
    fn link_up(&mut self, dev: &str) -> Result<Option<bool>> {
        Ok(self.state.links.get(dev).copied())
    }

    fn links(&mut self) -> Result<Vec<(String, bool)>> {
        Ok(self.state.links.iter().map(|(k, v)| (k.clone(), *v)).collect())
    }

    fn set_link(&mut self, dev: &str, up: bool) -> Result<()> {
        if !self.state.links.contains_key(dev) {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        self.op(format!("link {dev} {}", if up { "up" } else { "down" }))?;
        self.state.links.insert(dev.into(), up);
        if !up {
            // The kernel flushes a link's IPv6 addresses when it goes down (keep_addr_on_down 0).
            self.state.addresses.retain(|a| a.dev != dev || a.address.addr().is_ipv4());
        }
        Ok(())
    }
}

impl Addresses for Fake {
    fn addresses(&mut self) -> Result<Vec<AddrFact>> {
        Ok(self.state.addresses.clone())
    }

    fn add_address(&mut self, a: &AddrFact) -> Result<()> {
        if !self.state.links.contains_key(&a.dev) {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        if self.state.addresses.iter().any(|x| x.dev == a.dev && x.address == a.address) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.op(format!("addr add {} dev {}", a.address, a.dev))?;
        self.state.addresses.push(a.clone());
        Ok(())
    }

    fn del_address(&mut self, a: &AddrFact) -> Result<()> {
        let before = self.state.addresses.len();
        self.op(format!("addr del {} dev {}", a.address, a.dev))?;
        self.state.addresses.retain(|x| !(x.dev == a.dev && x.address == a.address));
        if self.state.addresses.len() == before {
            Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))
        } else {
            Ok(())
        }
    }
}

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
}

impl Nftables for Fake {
    fn nft_table(&mut self, name: &str) -> Result<Option<super::NftObjects>> {
        Ok(self.state.nft.get(name).cloned())
    }

    /// Runs the transaction on a copy, as nft does: all of it, or nothing.
    fn nft_apply(&mut self, commands: &serde_json::Value) -> Result<()> {
        let mut tables = self.state.nft.clone();
        let mut said = Vec::new();
        for c in commands["nftables"].as_array().into_iter().flatten() {
            let (verb, obj) =
                c.as_object().and_then(|o| o.iter().next()).ok_or_else(|| io::Error::other("bad command"))?;
            let (kind, body) =
                obj.as_object().and_then(|o| o.iter().next()).ok_or_else(|| io::Error::other("bad object"))?;
            let table = if kind == "table" { &body["name"] } else { &body["table"] };
            let table = table.as_str().ok_or_else(|| io::Error::other("no table"))?.to_string();
            match (verb.as_str(), kind.as_str()) {
                ("add", "table") => {
                    tables.entry(table).or_default();
                }
                ("delete", "table") => {
                    if tables.remove(&table).is_none() {
                        return Err(io::Error::new(io::ErrorKind::NotFound, "nft: No such file or directory"));
                    }
                }
                ("add", _) => tables
                    .get_mut(&table)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nft: No such file or directory"))?
                    .push(obj.clone()),
                _ => return Err(io::Error::other(format!("the fake nft has no {verb} {kind}"))),
            }
        }
        for name in self.state.nft.keys().filter(|n| !tables.contains_key(*n)) {
            said.push(format!("nft delete table inet {name}"));
        }
        for (name, objects) in &tables {
            if self.state.nft.get(name) != Some(objects) {
                said.push(format!("nft table inet {name} holds {} object(s)", objects.len()));
            }
        }
        for line in said {
            self.op(line)?;
        }
        self.state.nft = tables;
        Ok(())
    }
}

impl Files for Fake {
    fn read_file(&self, path: &str) -> Result<Option<FileFact>> {
        Ok(self.state.files.get(path).cloned())
    }

    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        let parent = std::path::Path::new(path).parent().expect("absolute").to_string_lossy().into_owned();
        if !self.state.dirs.contains(&parent) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        self.op(format!("write {path}"))?;
        self.state.files.insert(path.into(), FileFact { content: content.to_vec(), mode });
        Ok(())
    }

    fn remove_file(&mut self, path: &str) -> Result<()> {
        self.op(format!("rm {path}"))?;
        self.state.files.remove(path).map(|_| ()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    fn dir_exists(&self, path: &str) -> bool {
        self.state.dirs.contains(path)
    }

    fn make_dir(&mut self, path: &str) -> Result<()> {
        self.op(format!("mkdir {path}"))?;
        self.state.dirs.insert(path.into());
        Ok(())
    }

    fn remove_dir_if_empty(&mut self, path: &str) -> Result<bool> {
        let prefix = format!("{path}/");
        if self.state.files.keys().chain(self.state.dirs.iter()).any(|p| p.starts_with(&prefix)) {
            return Ok(false);
        }
        self.op(format!("rmdir {path}"))?;
        self.state.dirs.remove(path);
        Ok(true)
    }

    fn modified(&self, _path: &str) -> Result<Option<std::time::SystemTime>> {
        Ok(None)
    }
}

impl Processes for Fake {
    fn systemd_running(&self) -> bool {
        self.state.systemd
    }

    fn systemctl(&mut self, args: &[&str]) -> Result<String> {
        match args {
            ["is-enabled", u] => Ok(if self.state.enabled.contains(*u) { "enabled\n" } else { "disabled\n" }.into()),
            ["is-active", u] => Ok(if self.state.active.contains(*u) { "active\n" } else { "inactive\n" }.into()),
            _ => {
                self.op(format!("systemctl {}", args.join(" ")))?;
                match args {
                    ["enable", u] => {
                        self.state.enabled.insert(u.to_string());
                    }
                    ["disable", u] => {
                        self.state.enabled.remove(*u);
                    }
                    ["start", "--no-block", u] => {
                        self.state.active.insert(u.to_string());
                    }
                    ["stop", u] => {
                        self.state.active.remove(*u);
                    }
                    ["start", u] => {
                        self.state.active.insert(u.to_string());
                    }
                    _ => {}
                }
                Ok(String::new())
            }
        }
    }

    fn process(&self, pid: u32) -> Result<Option<ProcFact>> {
        Ok(self.state.processes.get(&pid).cloned())
    }

    fn now_ticks(&self) -> Result<u64> {
        Ok(self.state.ticks)
    }

    fn find_program(&self, name: &str) -> Option<String> {
        self.state.programs.get(name).cloned()
    }

    fn spawn_daemon(&mut self, argv: &[&str], log: &str) -> Result<ProcFact> {
        self.op(format!("spawn {} > {log}", argv.join(" ")))?;
        self.state.next_pid = self.state.next_pid.max(100) + 1;
        self.state.ticks += 10;
        let p = ProcFact { pid: self.state.next_pid, start_time: self.state.ticks, exe: argv[0].to_string() };
        self.state.processes.insert(p.pid, p.clone());
        Ok(p)
    }

    fn signal(&mut self, pid: u32, signal: i32) -> Result<()> {
        self.op(format!("kill -{signal} {pid}"))?;
        if !self.state.processes.contains_key(&pid) {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        if signal == libc::SIGTERM {
            self.state.processes.remove(&pid);
        }
        Ok(())
    }

    fn check_config(&mut self, check: crate::plan::FileCheck, content: &[u8]) -> Result<()> {
        self.op(format!("check {check:?} {} bytes", content.len()))
    }

    fn output(&mut self, argv: &[&str]) -> Result<String> {
        Err(io::Error::other(format!("{}: not in the fake", argv.join(" "))))
    }
}
