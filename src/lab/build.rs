//! `lvsctl lab create | destroy | exec | reboot`: an inventory's hosts as network namespaces on
//! this machine, each with private /etc, /var, /root, /usr/local and /opt and a real sshd.
//!
//! Layout: a control namespace `lvsctl-LAB` holds one bridge per `[lab] segments` entry and the
//! management bridge (with the controller's address); each host is a namespace `lvsctl-LAB.HOST`
//! with its inventory interfaces (veths into the segment bridges, left down: `lvsctl up` brings
//! them up) and `mgmt0` carrying its ssh address. This machine's root namespace gets no interface,
//! route or address.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth};
use serde::{Deserialize, Serialize};

use super::{control_netns, netns, run_dir};
use crate::inventory::{Lab, Protocol, SshTarget};

/// Directories each host gets its own copy of (an overlay whose upper layer is the host's).
const PRIVATE_DIRS: [(&str, &str); 5] =
    [("/etc", "etc"), ("/var", "var"), ("/root", "root"), ("/usr/local", "usr-local"), ("/opt", "opt")];
const SSHD: &str = "/usr/sbin/sshd";
/// This very binary, for commands run inside a host: the magic link reaches it from any mount
/// namespace, also when its path is under a directory the host has its own of (/tmp, /root, …).
const SELF_EXE: &str = "/proc/self/exe";
const HOST_KEY: &str = "/root/.lvsctl-lab/ssh_host_ed25519_key";

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub netns: String,
    /// Processes started for this host (sshd, responder): killed by PID on destroy.
    pub pids: Vec<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LabState {
    pub lab: String,
    pub inventory: String,
    pub control: Option<String>,
    pub hosts: BTreeMap<String, HostState>,
    pub complete: bool,
}

impl LabState {
    fn path(lab: &str) -> PathBuf {
        run_dir(lab).join("state.json")
    }
    pub fn load(lab: &str) -> Option<LabState> {
        std::fs::read(Self::path(lab)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }
    fn save(&self) -> io::Result<()> {
        std::fs::create_dir_all(run_dir(&self.lab))?;
        crate::host::write_atomic(&Self::path(&self.lab), &serde_json::to_vec_pretty(self).expect("serializes"), 0o600)
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A host's namespace. '.' is in neither lab nor host names, so no two labs' names can meet
/// (with '-', lab "a" host "b-c" and lab "a-b" host "c" were one namespace, and destroying lab
/// "a" removed lab "a-b"'s hosts).
pub(crate) fn host_netns(lab: &str, host: &str) -> String {
    format!("{}{host}", host_netns_prefix(lab))
}

fn host_netns_prefix(lab: &str) -> String {
    format!("lvsctl-{lab}.")
}

/// Where a lab host's network namespace is bound (`ip netns` convention).
pub fn host_netns_path(lab: &str, host: &str) -> PathBuf {
    Path::new(super::netns::NETNS_DIR).join(host_netns(lab, host))
}

fn host_dir(lab: &str, host: &str) -> PathBuf {
    run_dir(lab).join("hosts").join(host)
}

fn bridge_name(seg: &str, idx: usize) -> String {
    let n = format!("br-{seg}");
    if n.len() <= 15 { n } else { format!("br{idx}") }
}

/// The address the controller uses on the management network: the first one no host has. Not
/// an IPv6 network's own address: that is its subnet-router anycast address, which a host that
/// forwards IPv6 (a router, a NAT director) takes as its own, and would keep the replies.
fn control_address(lab: &Lab, mgmt: IpNet) -> anyhow::Result<IpNet> {
    let taken: Vec<IpAddr> = lab
        .hosts
        .iter()
        .filter_map(|h| if let SshTarget::Remote(a) = &h.ssh.target { a.parse().ok() } else { None })
        .collect();
    mgmt.hosts()
        .find(|a| !taken.contains(a) && *a != mgmt.network())
        .map(|a| IpNet::new(a, mgmt.prefix_len()).expect("valid"))
        .context("the management network has no free address for the controller")
}

fn ssh_addr(lab: &Lab, host: &str) -> anyhow::Result<IpAddr> {
    match &lab.host(host).context("no such host")?.ssh.target {
        SshTarget::Remote(a) => a.parse().context("lab hosts have IP addresses as ssh"),
        SshTarget::Local => bail!("a lab host cannot be local"),
    }
}

/// Whether this kernel can run every kind of lab: IPVS (all modes) and ipip (TUN real servers).
pub fn kernel_runs_labs() -> bool {
    if !kernel_has_ipvs() {
        return false;
    }
    if Path::new("/sys/module/ipip").exists() {
        return true;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = format!("/lib/modules/{}/kernel/net/ipv4", release.trim());
    std::fs::read_dir(dir).is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("ipip.ko")))
}

/// Whether IPVS can work on this kernel (loaded, or available as a module).
pub fn kernel_has_ipvs() -> bool {
    if Path::new("/proc/net/ip_vs").exists() {
        return true;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Path::new(&format!("/lib/modules/{}/kernel/net/netfilter/ipvs", release.trim())).exists()
}

struct Net {
    rt: tokio::runtime::Runtime,
}

impl Net {
    fn new() -> io::Result<Net> {
        Ok(Net { rt: tokio::runtime::Builder::new_current_thread().enable_all().build()? })
    }

    fn handle(&self, ns: &str) -> io::Result<rtnetlink::Handle> {
        netns::handle_in(&netns::path(ns), self.rt.handle())
    }

    fn index(&self, h: &rtnetlink::Handle, name: &str) -> anyhow::Result<u32> {
        let h = h.clone();
        let name = name.to_string();
        self.rt.block_on(async move {
            let m = h
                .link()
                .get()
                .match_name(name.clone())
                .execute()
                .try_next()
                .await
                .with_context(|| format!("no link {name}"))?;
            m.map(|m| m.header.index).with_context(|| format!("no link {name}"))
        })
    }

    fn up(&self, h: &rtnetlink::Handle, name: &str) -> anyhow::Result<()> {
        let h = h.clone();
        let msg = LinkUnspec::new_with_name(name).up().build();
        self.rt
            .block_on(async move { h.link().set(msg).execute().await })
            .with_context(|| format!("cannot bring {name} up"))
    }

    /// An IPv6 address skips duplicate address detection: sshd binds it at once.
    fn address(&self, h: &rtnetlink::Handle, dev: &str, a: IpNet) -> anyhow::Result<()> {
        let idx = self.index(h, dev)?;
        let h = h.clone();
        self.rt
            .block_on(async move {
                let mut req = h.address().add(idx, a.addr(), a.prefix_len());
                if a.addr().is_ipv6() {
                    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
                    req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
                }
                req.execute().await
            })
            .with_context(|| format!("cannot add {a} to {dev}"))
    }

    /// Deletes link `name` (and so its veth peer, at once); a missing link is already gone.
    fn delete_link(&self, h: &rtnetlink::Handle, name: &str) -> anyhow::Result<()> {
        let idx = match self.index(h, name) {
            Ok(i) => i,
            Err(_) => return Ok(()),
        };
        let h = h.clone();
        match self.rt.block_on(async move { h.link().del(idx).execute().await }) {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot delete {name}")),
        }
    }

    fn bridge(&self, h: &rtnetlink::Handle, name: &str) -> anyhow::Result<()> {
        let h = h.clone();
        let msg = LinkBridge::new(name).up().build();
        self.rt
            .block_on(async move { h.link().add(msg).execute().await })
            .with_context(|| format!("cannot create bridge {name}"))
    }

    /// A veth from the control namespace (`ctrl`, plugged into `bridge`) into `host_ns`, where it
    /// is named `ifname`.
    fn plug(
        &self,
        ctl: &rtnetlink::Handle,
        ctrl: &str,
        bridge: &str,
        host_ns: &str,
        ifname: &str,
    ) -> anyhow::Result<()> {
        let tmp = format!("{ctrl}t");
        let h = ctl.clone();
        let msg = LinkVeth::new(ctrl, &tmp).build();
        self.rt
            .block_on(async move { h.link().add(msg).execute().await })
            .with_context(|| format!("cannot create veth {ctrl}"))?;
        let ns = std::fs::File::open(netns::path(host_ns))?;
        // Moving and renaming in one request, like `ip link set TMP netns NS name IFNAME`.
        // Selected by index: a name would be read as the link's new name. The MAC address is
        // derived from where the link is plugged, so a rebooted host keeps it, like a real NIC.
        let idx = self.index(ctl, &tmp)?;
        let msg = LinkUnspec::new_with_index(idx)
            .setns_by_fd(ns.as_raw_fd())
            .name(ifname.to_string())
            .address(stable_mac(&format!("{host_ns}/{ifname}")).to_vec())
            .build();
        let h = ctl.clone();
        self.rt
            .block_on(async move { h.link().set(msg).execute().await })
            .with_context(|| format!("cannot move {tmp} into {host_ns} as {ifname}"))?;
        let br = self.index(ctl, bridge)?;
        let h = ctl.clone();
        let msg = LinkUnspec::new_with_name(ctrl).controller(br).up().build();
        self.rt
            .block_on(async move { h.link().set(msg).execute().await })
            .with_context(|| format!("cannot plug {ctrl} into {bridge}"))
    }
}

/// A locally administered unicast MAC address that depends only on `key`.
fn stable_mac(key: &str) -> [u8; 6] {
    use sha2::Digest;
    let h = sha2::Sha256::digest(key.as_bytes());
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

/// What a child process does between fork and exec to become a lab host process: join the host's
/// network namespace and either join its mount namespace or build it (private mounts, overlays).
struct HostMounts {
    netns: CString,
    /// The host's name, for its own UTS namespace (built hosts only).
    hostname: Option<CString>,
    /// Join this mount namespace (a running host process's), instead of building one.
    join_mnt: Option<CString>,
    overlays: Vec<(CString, CString)>,
}

impl HostMounts {
    fn build(lab: &str, host: &str) -> io::Result<HostMounts> {
        let mut overlays = Vec::new();
        for (dir, name) in PRIVATE_DIRS {
            if !Path::new(dir).is_dir() {
                continue;
            }
            let base = host_dir(lab, host).join(name);
            for d in ["upper", "work"] {
                std::fs::create_dir_all(base.join(d))?;
            }
            // A new host's root home is empty, not this machine's: sshd runs every command through
            // root's shell, and bash sources ~/.bashrc for ssh commands (this machine's may start
            // pyenv, conda, …, seconds per command under emulation, and not the host's business).
            let lower = if dir == "/root" {
                let empty = base.join("lower");
                std::fs::create_dir_all(&empty)?;
                std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o700))?;
                empty
            } else {
                PathBuf::from(dir)
            };
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                base.join("upper").display(),
                base.join("work").display()
            );
            overlays.push((cstr(dir), cstr(&opts)));
        }
        Ok(HostMounts {
            netns: cstr(&netns::path(&host_netns(lab, host)).to_string_lossy()),
            hostname: Some(cstr(host)),
            join_mnt: None,
            overlays,
        })
    }

    fn join(lab: &str, host: &str, pid: u32) -> HostMounts {
        HostMounts {
            netns: cstr(&netns::path(&host_netns(lab, host)).to_string_lossy()),
            hostname: None,
            join_mnt: Some(cstr(&format!("/proc/{pid}/ns/mnt"))),
            overlays: vec![],
        }
    }

    /// Runs in the child after fork: only async-signal-safe calls.
    fn enter(&self) -> io::Result<()> {
        fn ok(r: libc::c_int) -> io::Result<()> {
            if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
        }
        // SAFETY: raw syscalls with pointers to strings prepared before fork.
        unsafe {
            let fd = libc::open(self.netns.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            ok(libc::setns(fd, libc::CLONE_NEWNET))?;
            libc::close(fd);
            if let Some(m) = &self.join_mnt {
                let fd = libc::open(m.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                ok(libc::setns(fd, libc::CLONE_NEWNS))?;
                libc::close(fd);
                let root = c"/";
                ok(libc::chdir(root.as_ptr()))?;
                return Ok(());
            }
            ok(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            if let Some(h) = &self.hostname {
                ok(libc::sethostname(h.as_ptr(), h.as_bytes().len()))?;
            }
            let root = c"/";
            ok(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            let overlay = c"overlay";
            for (target, opts) in &self.overlays {
                ok(libc::mount(
                    overlay.as_ptr(),
                    target.as_ptr(),
                    overlay.as_ptr(),
                    0,
                    opts.as_ptr() as *const libc::c_void,
                ))?;
            }
            let tmpfs = c"tmpfs";
            let run = c"/run";
            let mode = c"mode=0755";
            ok(libc::mount(
                tmpfs.as_ptr(),
                run.as_ptr(),
                tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                mode.as_ptr() as *const libc::c_void,
            ))?;
            let sshd_dir = c"/run/sshd";
            ok(libc::mkdir(sshd_dir.as_ptr(), 0o755))?;
            let tmp = c"/tmp";
            let tmode = c"mode=1777";
            ok(libc::mount(
                tmpfs.as_ptr(),
                tmp.as_ptr(),
                tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                tmode.as_ptr() as *const libc::c_void,
            ))?;
            // A sysfs of this namespace, so /sys/class/net shows the host's own interfaces.
            let sysfs = c"sysfs";
            let sys = c"/sys";
            ok(libc::mount(
                sysfs.as_ptr(),
                sys.as_ptr(),
                sysfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ))?;
            ok(libc::chdir(root.as_ptr()))?;
            Ok(())
        }
    }
}

fn spawn_in_host(mut cmd: Command, mounts: HostMounts, log: &Path) -> anyhow::Result<u32> {
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    cmd.stdin(Stdio::null()).stdout(logf.try_clone()?).stderr(logf);
    // SAFETY: the closure only makes raw syscalls (HostMounts::enter) and setsid.
    unsafe {
        cmd.pre_exec(move || {
            mounts.enter()?;
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    Ok(child.id())
}

fn ssh_keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .context("cannot run ssh-keygen (package openssh-client)")?;
    if !out.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Ports each real server's responder listens on: (protocol, port), and the VIPs it serves.
pub fn responder_args(lab: &Lab, host: &str) -> Vec<String> {
    let mut args = vec!["--name".to_string(), host.to_string()];
    let mut seen = Vec::new();
    for s in lab.services_of(host) {
        // A firewall-mark service's real servers answer on the ports of its matches.
        let port = s.port_of(host).expect("services_of");
        let targets: Vec<(Protocol, std::net::IpAddr, u16)> = match s.ipvs.fwmark {
            Some(_) => s.targets(),
            None => vec![(s.ipvs.protocol, s.ipvs.vip, port)],
        };
        for (protocol, vip, port) in targets {
            let p = match protocol {
                Protocol::Tcp => format!("tcp:{port}"),
                Protocol::Udp => format!("udp:{port}"),
                Protocol::Sctp => format!("sctp:{port}"),
            };
            if !seen.contains(&p) {
                args.extend(["--listen".to_string(), p.clone()]);
                seen.push(p);
            }
            let v = vip.to_string();
            if protocol == Protocol::Udp && !args.contains(&v) {
                args.extend(["--vip".to_string(), v]);
            }
        }
    }
    args
}

/// The log of a lab host's sshd (appended to across reboots).
pub fn sshd_log(lab: &str, host: &str) -> PathBuf {
    host_dir(lab, host).join("sshd.log")
}

/// The control namespace's end of host number `hi`'s link to member `ii` of segment `si` (its
/// egress carries what the segment sends to the host).
pub(crate) fn segment_port(hi: usize, si: usize, ii: usize) -> String {
    format!("h{hi}s{si}i{ii}")
}

/// One of a host's links: the veth end `ctrl` in the control namespace, plugged into `bridge`,
/// whose peer is the host's `ifname`.
struct Port {
    ctrl: String,
    bridge: String,
    ifname: String,
}

/// The links of host number `hi`: one per segment it is on, and its management link.
fn host_ports(lab: &Lab, hi: usize, host: &str) -> Vec<Port> {
    let spec = lab.lab.as_ref().expect("checked");
    let mut ports = Vec::new();
    for (si, seg) in spec.segments.iter().enumerate() {
        for (ii, (mh, ifname)) in seg.members.iter().enumerate() {
            if mh == host {
                ports.push(Port {
                    ctrl: segment_port(hi, si, ii),
                    bridge: bridge_name(&seg.name, si),
                    ifname: ifname.clone(),
                });
            }
        }
    }
    ports.push(Port {
        ctrl: format!("h{hi}m"),
        bridge: "mgmt".into(),
        ifname: crate::inventory::lab::LAB_MGMT_IFNAME.into(),
    });
    ports
}

/// Builds one host: namespace, interfaces, management address, sshd, responder.
fn build_host(net: &Net, lab: &Lab, state: &mut LabState, hi: usize, host: &str) -> anyhow::Result<()> {
    let spec = lab.lab.as_ref().expect("checked");
    let ns = host_netns(&lab.name, host);
    state.hosts.insert(host.to_string(), HostState { netns: ns.clone(), pids: vec![] });
    state.save()?;
    netns::create(&ns).with_context(|| format!("cannot create namespace {ns}"))?;
    let h = net.handle(&ns)?;
    net.up(&h, "lo")?;
    let ctl = net.handle(state.control.as_ref().expect("control first"))?;
    for p in host_ports(lab, hi, host) {
        net.plug(&ctl, &p.ctrl, &p.bridge, &ns, &p.ifname)?;
    }
    let addr = IpNet::new(ssh_addr(lab, host)?, spec.management.prefix_len())?;
    net.address(&h, crate::inventory::lab::LAB_MGMT_IFNAME, addr)?;
    net.up(&h, crate::inventory::lab::LAB_MGMT_IFNAME)?;

    // The host key and the lab's key, in the host's own /root.
    let root_upper = host_dir(&lab.name, host).join("root/upper");
    let keydir = root_upper.join(".lvsctl-lab");
    std::fs::create_dir_all(&keydir)?;
    std::fs::set_permissions(&keydir, std::fs::Permissions::from_mode(0o700))?;
    if !keydir.join("ssh_host_ed25519_key").exists() {
        ssh_keygen(&keydir.join("ssh_host_ed25519_key"), &format!("lvsctl-lab-{host}"))?;
    }
    let ssh = root_upper.join(".ssh");
    std::fs::create_dir_all(&ssh)?;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))?;
    std::fs::copy(run_dir(&lab.name).join("id_ed25519.pub"), ssh.join("authorized_keys"))?;

    let port = lab.host(host).expect("exists").ssh.port;
    let mut sshd = Command::new(SSHD);
    sshd.args(["-D", "-e", "-f", "/dev/null", "-h", HOST_KEY])
        .arg("-o")
        .arg(format!("ListenAddress={}", SocketAddr::new(addr.addr(), port)));
    for o in [
        "UsePAM=no",
        "StrictModes=no",
        "PermitRootLogin=prohibit-password",
        "PasswordAuthentication=no",
        "KbdInteractiveAuthentication=no",
        "PrintMotd=no",
        "PrintLastLog=no",
        "UseDNS=no",
        "MaxSessions=64",
        "MaxStartups=64:30:128",
        // VERBOSE logs one "Starting session: command …" line per command run over ssh: how
        // many sessions each lvsctl command costs a host is read there (tests, scripts/bench.sh).
        "LogLevel=VERBOSE",
    ] {
        sshd.args(["-o", o]);
    }
    let pid = spawn_in_host(sshd, HostMounts::build(&lab.name, host)?, &sshd_log(&lab.name, host))?;
    let log = host_dir(&lab.name, host).join("processes.log");
    state.hosts.get_mut(host).expect("inserted").pids.push(pid);
    state.save()?;

    // Real and sorry servers answer with their name; so does a director that is a service's
    // sorry server (IPVS delivers to it locally).
    if lab.services_of(host).next().is_some() {
        let mut r = Command::new(SELF_EXE);
        r.args(["lab", "responder"]).args(responder_args(lab, host));
        let pid = spawn_in_host(r, HostMounts::join(&lab.name, host, pid), &log)?;
        state.hosts.get_mut(host).expect("inserted").pids.push(pid);
        state.save()?;
    }
    Ok(())
}

fn wait_for_sshd(lab: &Lab, host: &str) -> anyhow::Result<()> {
    let addr = SocketAddr::new(ssh_addr(lab, host)?, lab.host(host).expect("exists").ssh.port);
    let ns = control_netns(&lab.name);
    let ok = netns::in_netns(&ns, move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    })?;
    if !ok {
        let log = std::fs::read_to_string(sshd_log(&lab.name, host)).unwrap_or_default();
        bail!("sshd of {host} does not answer on {addr}; its log:\n{log}");
    }
    Ok(())
}

/// The lab's ssh_config with `--fast-ssh`: cheaper algorithms for throwaway labs (measured in a
/// 1-vCPU guest: 1.24 CPU-seconds per new connection instead of 2.29).
const FAST_SSH: &str = "  KexAlgorithms curve25519-sha256\n  Ciphers aes128-gcm@openssh.com\n";

pub fn create(lab: &Lab, fast_ssh: bool) -> anyhow::Result<u8> {
    let inv = &lab.file;
    let Some(spec) = lab.lab.clone() else {
        bail!(
            "{} has no [lab] table: add `[lab] segments = {{ … }}` to say which interfaces share a link",
            inv.display()
        );
    };
    if !is_root() {
        bail!("lab create needs root (it creates network namespaces and mounts)");
    }
    if LabState::load(&lab.name).is_some() {
        bail!("lab {} already exists on this machine: `lvsctl lab destroy {}` first", lab.name, inv.display());
    }
    if !kernel_has_ipvs() && lab.director().is_some() {
        eprintln!(
            "note: this kernel has no IPVS, so the director cannot be provisioned here; run the lab inside `lvsctl lab vm -- …`"
        );
    }
    let started = Instant::now();
    // The inventory's own path: later commands go through this lab only for this very file.
    let file = std::fs::canonicalize(inv).unwrap_or_else(|_| inv.to_path_buf());
    let mut state = LabState { lab: lab.name.clone(), inventory: file.display().to_string(), ..Default::default() };
    state.save()?;
    let result = (|| -> anyhow::Result<()> {
        let net = Net::new()?;
        let dir = run_dir(&lab.name);
        ssh_keygen(&dir.join("id_ed25519"), &format!("lvsctl-lab-{}", lab.name))?;
        let control = format!("lvsctl-{}", lab.name);
        state.control = Some(control.clone());
        state.save()?;
        netns::create(&control).with_context(|| format!("cannot create namespace {control}"))?;
        let ctl = net.handle(&control)?;
        net.up(&ctl, "lo")?;
        net.bridge(&ctl, "mgmt")?;
        net.address(&ctl, "mgmt", control_address(lab, spec.management)?)?;
        for (si, seg) in spec.segments.iter().enumerate() {
            net.bridge(&ctl, &bridge_name(&seg.name, si))?;
        }
        for (hi, h) in lab.hosts.iter().enumerate() {
            eprintln!("lab {}: building {} ({})", lab.name, h.name, h.role);
            build_host(&net, lab, &mut state, hi, &h.name)?;
        }
        let mut known = String::new();
        for h in &lab.hosts {
            wait_for_sshd(lab, &h.name)?;
            let key = std::fs::read_to_string(
                host_dir(&lab.name, &h.name).join("root/upper/.lvsctl-lab/ssh_host_ed25519_key.pub"),
            )?;
            let addr = ssh_addr(lab, &h.name)?;
            let who = if h.ssh.port == 22 { addr.to_string() } else { format!("[{addr}]:{}", h.ssh.port) };
            known.push_str(&format!("{who} {}", key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")));
            known.push('\n');
        }
        std::fs::write(dir.join("known_hosts"), known)?;
        let config = format!(
            "# Written by lvsctl lab create for lab {lab}: how lvsctl (and you) reach its hosts.\n\
             Host *\n  IdentityFile {dir}/id_ed25519\n  IdentitiesOnly yes\n  UserKnownHostsFile {dir}/known_hosts\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n{fast}",
            lab = lab.name,
            dir = dir.display(),
            fast = if fast_ssh { FAST_SSH } else { "" }
        );
        std::fs::write(dir.join("ssh_config"), config)?;
        state.complete = true;
        state.save()?;
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("lab create failed: {e:#}; removing what was built");
        let _ = destroy_state(&state);
        return Err(e);
    }
    crate::outln!(
        "lab {} is up on this machine ({:.0} s): {}",
        lab.name,
        started.elapsed().as_secs_f64(),
        crate::plural(lab.hosts.len(), "host")
    );
    crate::outln!("  provision it:   lvsctl up {}", inv.display());
    crate::outln!("  run a command:  lvsctl lab exec {} HOST -- ip addr", inv.display());
    crate::outln!(
        "  ssh by hand:    ip netns exec {} ssh -F {} root@ADDRESS",
        control_netns(&lab.name).file_name().unwrap().to_string_lossy(),
        run_dir(&lab.name).join("ssh_config").display()
    );
    crate::outln!("  remove it:      lvsctl lab destroy {}", inv.display());
    Ok(0)
}

/// The inode of a namespace: processes in it show `net:[INODE]` in /proc/PID/ns/net.
fn ns_inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

fn proc_net_inode(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let s = link.to_string_lossy();
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has exited; its parent has not collected it yet.
        Ok(s) => !s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Ends a process this lab started, by its PID, after checking it still is in the lab host's
/// namespace (a recycled PID belongs to someone else).
fn stop_process(pid: u32, ns: &Path) {
    if !alive(pid) {
        return;
    }
    let expected = ns_inode(ns);
    if expected.is_some() && proc_net_inode(pid) != expected {
        return;
    }
    // SAFETY: kill(2) with a PID that was checked to be ours (SIGCONT: a host `lab stop` froze).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
        libc::kill(pid as libc::pid_t, libc::SIGCONT);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        while alive(pid) && Instant::now() < deadline + Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The processes inside the namespace bound at `ns` (never this one).
pub(crate) fn pids_in(ns: &Path) -> Vec<u32> {
    let Some(inode) = ns_inode(ns) else { return vec![] };
    let me = std::process::id();
    let Ok(d) = std::fs::read_dir("/proc") else { return vec![] };
    d.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&pid| pid != me && proc_net_inode(pid) == Some(inode) && alive(pid))
        .collect()
}

/// Ends every process still inside one of the lab's namespaces, after the ones it recorded: the
/// sessions its sshd forked (which outlive their sshd), the agents they ran, the ssh masters that
/// lvsctl keeps in the management network between commands. Only processes whose network
/// namespace is the lab's own are signalled; nothing else on the machine is looked at twice.
fn stop_all_in(ns: &Path) {
    let inside = || pids_in(ns);
    for (signal, wait) in [(libc::SIGTERM, 5), (libc::SIGKILL, 5)] {
        let pids = inside();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2) on a process found inside this lab's namespace just above; a
            // process `lab stop` froze gets its SIGTERM once it runs again.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
                libc::kill(pid as libc::pid_t, libc::SIGCONT);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(wait);
        while !inside().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn destroy_host(hs: &HostState) -> anyhow::Result<()> {
    let ns = netns::path(&hs.netns);
    for pid in hs.pids.iter().rev() {
        stop_process(*pid, &ns);
    }
    stop_all_in(&ns);
    netns::delete(&hs.netns).with_context(|| format!("cannot delete namespace {}", hs.netns))
}

fn destroy_state(state: &LabState) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for (host, hs) in &state.hosts {
        if let Err(e) = destroy_host(hs) {
            errors.push(format!("{host}: {e:#}"));
        }
    }
    // Namespaces of this lab that the state does not know (a crash between creating and recording).
    if let Ok(entries) = std::fs::read_dir(netns::NETNS_DIR) {
        let prefix = host_netns_prefix(&state.lab);
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix)
                && let Err(err) = netns::delete(&name)
            {
                errors.push(format!("{name}: {err}"));
            }
        }
    }
    if let Some(c) = &state.control {
        stop_all_in(&netns::path(c));
    }
    if let Some(c) = &state.control
        && let Err(e) = netns::delete(c)
    {
        errors.push(format!("{c}: {e}"));
    }
    let dir = run_dir(&state.lab);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        errors.push(format!("{}: {e}", dir.display()));
    }
    let _ = std::fs::remove_dir(super::RUN_DIR);
    let _ = std::fs::remove_dir(Path::new(super::RUN_DIR).parent().expect("has a parent"));
    if errors.is_empty() { Ok(()) } else { bail!("{}", errors.join("\n")) }
}

pub fn destroy(inv: &Path) -> anyhow::Result<u8> {
    if !is_root() {
        bail!("lab destroy needs root");
    }
    // The lab's name is what matters; an inventory that no longer validates still names it.
    let lab = lab_name_of(inv)?;
    let state = LabState::load(&lab).unwrap_or(LabState {
        lab: lab.clone(),
        control: Some(format!("lvsctl-{lab}")),
        ..Default::default()
    });
    destroy_state(&state)?;
    crate::outln!("lab {lab} removed: no namespace, bridge, veth or process of it is left");
    Ok(0)
}

/// The inventory's `name`, without reading the rest of it. `name` is a top-level key, and TOML
/// puts those before the first table header: the text before the first line that starts with
/// `[` is parsed alone (a lab of 5,000 services is named in microseconds); when that does not
/// parse (a cut inside a multi-line array or string) or holds no name, the whole file is.
fn lab_name_of(inv: &Path) -> anyhow::Result<String> {
    let src = std::fs::read_to_string(inv).with_context(|| format!("cannot read {}", inv.display()))?;
    lab_name_in(&src).with_context(|| format!("cannot tell the lab's name from {}", inv.display()))
}

fn lab_name_in(src: &str) -> anyhow::Result<String> {
    let name = |t: &toml::Table| t.get("name").and_then(|v| v.as_str()).map(str::to_string);
    let head = std::iter::once(0)
        .chain(src.match_indices('\n').map(|(i, _)| i + 1))
        .find(|&i| src[i..].trim_start_matches([' ', '\t']).starts_with('['))
        .unwrap_or(src.len());
    if let Some(n) = toml::from_str::<toml::Table>(&src[..head]).ok().as_ref().and_then(name) {
        return Ok(n);
    }
    let t: toml::Table = toml::from_str(src).context("not valid TOML")?;
    name(&t).context("no top-level key name")
}

fn host_pid(lab: &str, host: &str) -> anyhow::Result<u32> {
    let state = LabState::load(lab)
        .with_context(|| format!("lab {lab} does not exist on this machine: `lvsctl lab create` first"))?;
    let hs = state.hosts.get(host).with_context(|| format!("lab {lab} has no host {host}"))?;
    let pid = *hs.pids.first().with_context(|| format!("host {host} has no running process"))?;
    if !alive(pid) {
        bail!("the sshd of {host} (PID {pid}) is not running: recreate the lab");
    }
    Ok(pid)
}

/// `lab exec`: runs a command in a host's network and mount namespaces (replaces this process).
/// The lab is found by the inventory's name alone: nothing else of it is read (a lab of 5,000
/// services is entered without validating them, as often as a test needs), and a lab whose
/// inventory no longer validates can still be looked into.
pub fn exec(inv: &Path, host: &str, command: &[String]) -> anyhow::Result<u8> {
    let lab = lab_name_of(inv)?;
    let pid = host_pid(&lab, host)?;
    let (prog, args) = command.split_first().context("no command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    let mounts = HostMounts::join(&lab, host, pid);
    // SAFETY: raw syscalls only (HostMounts::enter).
    unsafe {
        cmd.pre_exec(move || mounts.enter());
    }
    let err = cmd.exec();
    bail!("cannot run {prog} in {host}: {err}")
}

/// `lab reboot`: the host loses its kernel state (namespace and interfaces recreated bare), keeps
/// its files, and its lvsctl boot units are started, as systemd would at boot.
pub fn reboot(lab: &Lab, host: &str) -> anyhow::Result<u8> {
    let inv = &lab.file;
    let mut state =
        LabState::load(&lab.name).with_context(|| format!("lab {} does not exist on this machine", lab.name))?;
    let hi = lab
        .hosts
        .iter()
        .position(|h| h.name == host)
        .with_context(|| format!("no host {host} in {}", inv.display()))?;
    let hs = state.hosts.get(host).cloned().with_context(|| format!("lab {} has no host {host}", lab.name))?;
    destroy_host(&hs)?;
    let net = Net::new()?;
    // The kernel frees a deleted namespace's interfaces later, in a work queue: until then the
    // veths' control ends keep their names and the new ones could not be made. Deleting a veth
    // end removes the pair at once.
    let ctl = net.handle(state.control.as_ref().context("the lab has no control namespace")?)?;
    for p in host_ports(lab, hi, host) {
        net.delete_link(&ctl, &p.ctrl)?;
    }
    eprintln!("lab {}: {host} powered off (kernel state lost), booting", lab.name);
    build_host(&net, lab, &mut state, hi, host)?;
    wait_for_sshd(lab, host)?;
    let pid = host_pid(&lab.name, host)?;
    let mut cmd = Command::new(SELF_EXE);
    cmd.args(["lab", "boot-units", "--lab", &lab.name]);
    let mounts = HostMounts::join(&lab.name, host, pid);
    // SAFETY: raw syscalls only.
    unsafe {
        cmd.pre_exec(move || mounts.enter());
    }
    let status = cmd.status().context("cannot run the boot units")?;
    wait_for_responder(lab, host)?;
    Ok(if status.success() { 0 } else { 1 })
}

/// A booted host is one whose services answer: until its responder listens on every TCP port
/// it serves, a request scheduled to it would be refused (checked from inside the host, on its
/// loopback; the responder listens on the wildcard address).
fn wait_for_responder(lab: &Lab, host: &str) -> anyhow::Result<()> {
    let args = responder_args(lab, host);
    let ports: Vec<u16> = args
        .windows(2)
        .filter(|w| w[0] == "--listen")
        .filter_map(|w| w[1].strip_prefix("tcp:")?.parse().ok())
        .collect();
    if ports.is_empty() {
        return Ok(());
    }
    let waiting = ports.clone();
    let ok = netns::in_netns(&host_netns_path(&lab.name, host), move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut left = waiting;
        while !left.is_empty() && Instant::now() < deadline {
            left.retain(|p| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, *p)),
                    Duration::from_secs(2),
                )
                .is_err()
            });
            if !left.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        left
    })?;
    if !ok.is_empty() {
        bail!("{host} booted, but its responder does not listen on tcp port(s) {ok:?} after 60 s");
    }
    Ok(())
}

/// Inside a host of lab `lab`, as systemd boots it: the lab's modules-load.d file
/// (systemd-modules-load), then its sysctl.d file (systemd-sysctl, ordered after the modules),
/// then the lab's unit: its ExecStartPre lines, and its ExecStart if they passed. Nothing of
/// another lab or of the machine itself is started: a lab host boots its own lab only.
pub fn boot_units(lab: &str) -> anyhow::Result<u8> {
    let mut ok = true;
    for (file, prog) in [
        (crate::paths::modules_load_path(lab), "/lib/systemd/systemd-modules-load"),
        (crate::paths::sysctl_conf_path(lab), "/lib/systemd/systemd-sysctl"),
    ] {
        if !Path::new(&file).exists() {
            continue;
        }
        crate::outln!("{prog} {file}");
        let st = Command::new(prog).arg(&file).status().with_context(|| format!("cannot run {prog}"))?;
        ok &= st.success();
    }
    let unit = PathBuf::from(crate::paths::unit_path(lab));
    let units: Vec<PathBuf> = if unit.exists() { vec![unit] } else { vec![] };
    if units.is_empty() {
        crate::outln!("no unit of lab {lab} on this host: nothing starts at boot");
        return Ok(if ok { 0 } else { 1 });
    }
    for u in units {
        let text = std::fs::read_to_string(&u)?;
        // As systemd: every ExecStartPre, then ExecStart only if they all succeeded.
        let name = u.file_name().unwrap().to_string_lossy().into_owned();
        let pre = text.lines().filter_map(|l| l.strip_prefix("ExecStartPre=")).map(|l| (l, "checking"));
        let start = text.lines().filter_map(|l| l.strip_prefix("ExecStart=")).map(|l| (l, "starting"));
        for (line, what) in pre.chain(start) {
            let argv: Vec<&str> = line.split_whitespace().collect();
            crate::outln!("{what} {name}: {line}");
            let st =
                Command::new(argv[0]).args(&argv[1..]).status().with_context(|| format!("cannot run {}", argv[0]))?;
            if !st.success() {
                ok = false;
                break;
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn namespaces_of_labs_whose_names_share_a_prefix_never_meet() {
        assert_ne!(host_netns("a", "b-c"), host_netns("a-b", "c"));
        assert!(!host_netns("a-b", "c").starts_with(&host_netns_prefix("a")));
        assert_ne!(host_netns("a", "b"), crate::lab::control_netns("a-b").file_name().unwrap().to_string_lossy());
    }

    /// `lab exec` and `lab destroy` find a lab by its inventory's name, read before the first table.
    #[test]
    fn a_lab_is_named_by_the_text_before_its_first_table() {
        let name = |s: &str| lab_name_in(s).map_err(|e| e.to_string());
        assert_eq!(
            name("# a lab\nname = \"dr\"\nmode = \"dr\"\n\n[hosts.lvs]\nname = \"not this\"\n"),
            Ok("dr".into())
        );
        // What follows the first table is not read: it may not even parse.
        assert_eq!(name("name = \"dr\"\n[hosts.lvs]\nrole = \n"), Ok("dr".into()));
        // A multi-line array whose lines start with `[`: the head does not parse, the whole file does.
        assert_eq!(name("x = [\n  [1, 2],\n]\nname = \"nested\"\n[a]\n"), Ok("nested".into()));
        // No name before the first table (where TOML puts top-level keys): none at all.
        assert_eq!(name("[a]\nname = \"of a\"\n"), Err("no top-level key name".into()));
        assert!(name("name = \"x\"\n[a]\nb = [\n").is_ok());
        assert_eq!(name("name = [\n"), Err("not valid TOML".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(inv: &str) -> Lab {
        crate::inventory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(inv)).unwrap()
    }

    /// The controller never takes an IPv6 management network's subnet-router anycast address
    /// (a router forwarding IPv6 answers it itself), nor a host's.
    #[test]
    fn the_controller_address_is_a_plain_free_host_address() {
        let l = lab("inventories/dr6.toml");
        let mgmt = l.lab.as_ref().unwrap().management;
        assert_eq!(mgmt.to_string(), "fd00:250:6::/64");
        assert_eq!(control_address(&l, mgmt).unwrap().to_string(), "fd00:250:6::1/64");
        let l = lab("inventories/dr.toml");
        let mgmt = l.lab.as_ref().unwrap().management;
        assert_eq!(control_address(&l, mgmt).unwrap().to_string(), "10.250.0.1/24");
    }
}
