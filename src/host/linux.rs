//! The real host: rtnetlink for links, addresses and routes; the sysctl crate (or /proc/sys
//! directly where it cannot name the key); the IPVS generic netlink module; modprobe and
//! delete_module(2) for modules; plain files; systemctl.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, CacheInfo};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{AddressMessageBuilder, Handle, LinkUnspec, RouteMessageBuilder};
use sysctl::Sysctl;

use super::{AddrFact, FileFact, IpvsService, ProcFact, Result, RouteFact, System};
use crate::ipvs::client::IpvsClient;
use crate::ipvs::{DestConfig, DestKey, ServiceConfig, ServiceKey};

pub struct Linux {
    rt: tokio::runtime::Runtime,
    handle: Handle,
    ipvs: Option<IpvsClient>,
}

fn nl(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

fn valid_module_name(name: &str) -> io::Result<()> {
    if !name.is_empty() && name.len() <= 56 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid module name {name:?}")))
    }
}

/// /proc/sys path of a sysctl(8) key: dots separate components, '/' stands for a dot inside one.
pub fn sysctl_path(key: &str) -> String {
    let parts: Vec<String> = key.split('.').map(|p| p.replace('/', ".")).collect();
    format!("/proc/sys/{}", parts.join("/"))
}

impl Linux {
    pub fn new() -> io::Result<Linux> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = {
            let _guard = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection()?;
            rt.spawn(conn);
            handle
        };
        Ok(Linux { rt, handle, ipvs: None })
    }

    fn link_names(&mut self) -> Result<HashMap<u32, String>> {
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let mut names = HashMap::new();
            let mut links = h.link().get().execute();
            while let Some(m) = links.try_next().await.map_err(nl)? {
                for a in &m.attributes {
                    if let LinkAttribute::IfName(n) = a {
                        names.insert(m.header.index, n.clone());
                    }
                }
            }
            Ok(names)
        })
    }

    fn index_of(&mut self, dev: &str) -> Result<Option<u32>> {
        let h = self.handle.clone();
        let dev = dev.to_string();
        self.rt.block_on(async move {
            match h.link().get().match_name(dev).execute().try_next().await {
                Ok(Some(m)) => Ok(Some(m.header.index)),
                Ok(None) => Ok(None),
                Err(e) => {
                    let e = nl(e);
                    if e.raw_os_error() == Some(libc::ENODEV) { Ok(None) } else { Err(e) }
                }
            }
        })
    }

    fn need_index(&mut self, dev: &str) -> Result<u32> {
        self.index_of(dev)?.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {dev}")))
    }

    fn client(&mut self) -> Result<&mut IpvsClient> {
        if self.ipvs.is_none() {
            self.ipvs = Some(IpvsClient::connect()?);
        }
        Ok(self.ipvs.as_mut().expect("just set"))
    }

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
        Ok(b.build())
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
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = ip_of(d)?,
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::Oif(i) => dev = names.get(i).cloned(),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::PrefSource(s) => prefsrc = ip_of(s),
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
    })
}

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

impl System for Linux {
    fn loaded_modules(&self) -> Result<Vec<String>> {
        let s = match std::fs::read_to_string("/proc/modules") {
            Ok(s) => s,
            // A kernel without loadable-module support has no /proc/modules: everything is built in.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        Ok(s.lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect())
    }

    fn load_module(&mut self, name: &str) -> Result<()> {
        valid_module_name(name)?;
        let out = Command::new("modprobe")
            .arg("--")
            .arg(name)
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run modprobe (install kmod): {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("modprobe {name}: {}", String::from_utf8_lossy(&out.stderr).trim())))
        }
    }

    fn unload_module(&mut self, name: &str) -> Result<()> {
        valid_module_name(name)?;
        let c = CString::new(name).expect("validated");
        // SAFETY: delete_module(2) with a valid NUL-terminated name; O_NONBLOCK fails with
        // EWOULDBLOCK instead of waiting when the module is in use.
        let r = unsafe { libc::syscall(libc::SYS_delete_module, c.as_ptr(), libc::O_NONBLOCK) };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    fn module_refcount(&self, name: &str) -> Result<Option<u32>> {
        match std::fs::read_to_string(format!("/sys/module/{name}/refcnt")) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_sysctl(&self, key: &str) -> Result<Option<String>> {
        let path = sysctl_path(key);
        if !Path::new(&path).exists() {
            return Ok(None);
        }
        if key.contains('/') {
            // The sysctl crate maps every '.' to '/', so it cannot name `eth0.100`.
            return std::fs::read_to_string(&path).map(|s| Some(s.trim().to_string()));
        }
        // A device's sysctls vanish with it, also between the check above and the read.
        match sysctl::Ctl::new(key).and_then(|ctl| ctl.value_string()) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(sysctl::SysctlError::NotFound(_)) => Ok(None),
            Err(e) => Err(sysctl_error(key, e)),
        }
    }

    fn write_sysctl(&mut self, key: &str, value: &str) -> Result<()> {
        if key.contains('/') {
            return std::fs::write(sysctl_path(key), value);
        }
        sysctl::Ctl::new(key).and_then(|ctl| ctl.set_value_string(value)).map(|_| ()).map_err(|e| sysctl_error(key, e))
    }

    fn link_up(&mut self, dev: &str) -> Result<Option<bool>> {
        let h = self.handle.clone();
        let dev = dev.to_string();
        self.rt.block_on(async move {
            match h.link().get().match_name(dev).execute().try_next().await {
                Ok(Some(m)) => Ok(Some(m.header.flags.contains(LinkFlags::Up))),
                Ok(None) => Ok(None),
                Err(e) => {
                    let e = nl(e);
                    if e.raw_os_error() == Some(libc::ENODEV) { Ok(None) } else { Err(e) }
                }
            }
        })
    }

    fn links(&mut self) -> Result<Vec<(String, bool)>> {
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let mut out = Vec::new();
            let mut s = h.link().get().execute();
            while let Some(m) = s.try_next().await.map_err(nl)? {
                let up = m.header.flags.contains(LinkFlags::Up);
                for a in &m.attributes {
                    if let LinkAttribute::IfName(n) = a {
                        out.push((n.clone(), up));
                    }
                }
            }
            Ok(out)
        })
    }

    fn route_get(&mut self, dst: IpAddr) -> Result<super::Lookup> {
        use super::{Lookup, LookupRoute};
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

    fn set_link(&mut self, dev: &str, up: bool) -> Result<()> {
        let b = LinkUnspec::new_with_name(dev);
        let msg = if up { b.up().build() } else { b.down().build() };
        let h = self.handle.clone();
        self.rt.block_on(async move { h.link().set(msg).execute().await.map_err(nl) })
    }

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

    fn nft_table(&mut self, name: &str) -> Result<Option<super::nft::Objects>> {
        let nft = self.nft_program()?;
        let out = Command::new(&nft)
            .args(["-j", "list", "table", super::nft::FAMILY, name])
            .stdin(std::process::Stdio::null())
            .output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(io::Error::other(format!("nft list table inet {name}: {}", one_line(&err))));
        }
        let listing: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| io::Error::other(format!("nft -j list table inet {name}: unreadable JSON: {e}")))?;
        super::nft::parse_listing(&listing).map(Some).map_err(io::Error::other)
    }

    fn nft_apply(&mut self, commands: &serde_json::Value) -> Result<()> {
        use std::io::Write;
        let nft = self.nft_program()?;
        let mut child = Command::new(&nft)
            .args(["-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let body = serde_json::to_vec(commands).map_err(io::Error::other)?;
        child.stdin.take().expect("piped").write_all(&body)?;
        let out = child.wait_with_output()?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("nft: {}", one_line(&err))));
        }
        Err(io::Error::other(format!("nft refused the transaction: {}", one_line(&err))))
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

    fn read_file(&self, path: &str) -> Result<Option<FileFact>> {
        match std::fs::read(path) {
            Ok(content) => {
                let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
                Ok(Some(FileFact { content, mode }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        super::write_atomic(Path::new(path), content, mode)
    }

    fn remove_file(&mut self, path: &str) -> Result<()> {
        std::fs::remove_file(path)
    }

    fn dir_exists(&self, path: &str) -> bool {
        Path::new(path).is_dir()
    }

    fn make_dir(&mut self, path: &str) -> Result<()> {
        std::fs::create_dir(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
    }

    fn remove_dir_if_empty(&mut self, path: &str) -> Result<bool> {
        match std::fs::remove_dir(path) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn systemd_running(&self) -> bool {
        // sd_booted(3): systemd is PID 1 when this directory exists.
        Path::new("/run/systemd/system").is_dir()
    }

    fn systemctl(&mut self, args: &[&str]) -> Result<String> {
        let out = Command::new("systemctl").args(args).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(io::Error::other(format!(
                "systemctl {}: {}{}",
                args.join(" "),
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    fn process(&self, pid: u32) -> Result<Option<ProcFact>> {
        super::process::read(pid)
    }

    fn now_ticks(&self) -> Result<u64> {
        let up = std::fs::read_to_string("/proc/uptime")?;
        let secs: f64 = up
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io::Error::other("cannot read /proc/uptime"))?;
        Ok((secs * super::process::clock_ticks() as f64) as u64)
    }

    fn find_program(&self, name: &str) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        super::process::PROGRAM_DIRS
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
    }

    fn spawn_daemon(&mut self, argv: &[&str], log: &str) -> Result<ProcFact> {
        super::process::spawn_daemon(argv, log)
    }

    fn signal(&mut self, pid: u32, signal: i32) -> Result<()> {
        let pid = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: kill(2) with a checked positive pid has no memory effects.
        if unsafe { libc::kill(pid, signal) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    fn check_config(&mut self, check: crate::plan::FileCheck, content: &[u8]) -> Result<()> {
        super::process::check_config(self, check, content)
    }

    fn output(&mut self, argv: &[&str]) -> Result<String> {
        let (prog, args) = argv.split_first().ok_or_else(|| io::Error::other("nothing to run"))?;
        let out = Command::new(prog).args(args).stdin(std::process::Stdio::null()).output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(format!("{prog}: {}", String::from_utf8_lossy(&out.stderr).trim())))
        }
    }

    fn modified(&self, path: &str) -> Result<Option<std::time::SystemTime>> {
        match std::fs::metadata(path) {
            Ok(m) => m.modified().map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Keeps "no such sysctl" recognisable as not-found: a device's sysctls disappear with the device
/// (another host of a namespace lab may unload the module that made it), and undo treats that as done.
fn sysctl_error(key: &str, e: sysctl::SysctlError) -> io::Error {
    let kind = match &e {
        sysctl::SysctlError::NotFound(_) => io::ErrorKind::NotFound,
        sysctl::SysctlError::IoError(io) => io.kind(),
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("sysctl {key}: {e}"))
}

impl Linux {
    /// nft, or an error that says how to install it (an Other error: "not found" would read as
    /// "the table is gone").
    fn nft_program(&self) -> Result<String> {
        self.find_program("nft").ok_or_else(|| {
            io::Error::other(
                "nft is not installed: install the package nftables (apt-get install nftables, or dnf install nftables); firewall-mark services need it on directors",
            )
        })
    }
}

/// A program's error output on one line.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_paths_keep_dots_inside_interface_names() {
        assert_eq!(sysctl_path("net.ipv4.conf.eth0/100.rp_filter"), "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(sysctl_path("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
    }

    #[test]
    fn a_sysctl_that_vanished_with_its_device_reads_as_not_found() {
        let gone = sysctl_error("net.ipv4.conf.tunl0.rp_filter", sysctl::SysctlError::NotFound("x".into()));
        assert!(crate::host::is_not_found(&gone), "{gone}");
        let denied = sysctl_error("k", sysctl::SysctlError::IoError(io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(!crate::host::is_not_found(&denied));
    }
}
