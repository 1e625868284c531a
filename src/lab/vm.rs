//! `lvsctl lab vm -- CMD`: run CMD inside a qemu guest that boots a distribution kernel (with IPVS
//! and ipip as modules) and uses this machine's root filesystem, read-only, under a tmpfs overlay.
//!
//! Facts this relies on (measured, see the project notes): KVM guests hang on these machines, so
//! the guest runs under software emulation (`-accel tcg`); the guest needs no disk image, only a
//! tiny initramfs that loads the 9p and overlay modules, mounts the host's root over virtio-9p and
//! switches into it; overlayfs cannot use an overlay as upper layer, so the guest's upper layer is
//! a tmpfs. A second, writable 9p share carries the command in and its output and status out.

use std::ffi::CString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::initramfs::Cpio;

/// Where the guest mounts the results share (in the guest's overlay root).
const GUEST_SHARE: &str = "/lvsctl-vm";
const PACKAGES: [&str; 3] = ["qemu-system-x86", "linux-image-amd64", "busybox-static"];
/// Modules the initramfs loads (with their dependencies) before it can mount the root.
const BOOT_MODULES: [&str; 4] = ["virtio_pci", "9pnet_virtio", "9p", "overlay"];

#[derive(Serialize, Deserialize)]
struct GuestCommand {
    argv: Vec<String>,
    cwd: String,
    env: Vec<(String, String)>,
}

const STAGE1: &str = r#"#!/bin/busybox sh
# Stage one of the lvsctl guest: load 9p and overlay, mount this machine's root read-only under a
# tmpfs overlay, and switch into it. Stage two is lvsctl itself (`lvsctl lab vm-init`).
/bin/busybox mkdir -p /proc /sys /dev /lower /upper /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /modules/order); do /bin/busybox insmod "/modules/$m" || echo "lvsctl-vm: insmod $m failed"; done
init=""
for arg in $(/bin/busybox cat /proc/cmdline); do
    case "$arg" in lvsctl.init=*) init="${arg#lvsctl.init=}" ;; esac
done
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower || exec /bin/busybox sh
/bin/busybox mount -t tmpfs -o mode=0755 upper /upper
/bin/busybox mkdir -p /upper/up /upper/work
/bin/busybox mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/up,workdir=/upper/work /newroot || exec /bin/busybox sh
/bin/busybox mkdir -p /newroot/lvsctl-vm
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot/lvsctl-vm || exec /bin/busybox sh
/bin/busybox mount --move /proc /newroot/proc
/bin/busybox mount --move /sys /newroot/sys
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot "$init" lab vm-init
"#;

fn kernel_release_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("vmlinuz-").map(str::to_string)
}

/// The newest kernel in /boot whose modules include IPVS.
fn pick_kernel() -> anyhow::Result<(PathBuf, String)> {
    let mut found: Vec<(PathBuf, String)> = std::fs::read_dir("/boot")
        .context("cannot read /boot")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| kernel_release_of(&p).map(|k| (p, k)))
        .filter(|(_, k)| Path::new(&format!("/lib/modules/{k}/kernel/net/netfilter/ipvs/ip_vs.ko")).exists())
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found.pop().ok_or_else(|| {
        anyhow::anyhow!("no kernel with IPVS modules in /boot: install one with `apt-get install linux-image-amd64` (it does not change the running kernel)")
    })
}

/// Module files to insmod, in order, for the initramfs.
fn boot_modules(kver: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut order: Vec<PathBuf> = Vec::new();
    for m in BOOT_MODULES {
        let out = Command::new("modprobe")
            .args(["--show-depends", "-S", kver, m])
            .output()
            .context("cannot run modprobe (package kmod)")?;
        if !out.status.success() {
            bail!("modprobe --show-depends -S {kver} {m}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "insmod /lib/modules/.../x.ko" ("builtin x" needs nothing)
            if let Some(path) = line.strip_prefix("insmod ") {
                let path = PathBuf::from(path.split_whitespace().next().unwrap_or(""));
                if !order.contains(&path) {
                    order.push(path);
                }
            }
        }
    }
    Ok(order)
}

fn build_initramfs(kver: &str, out: &Path) -> anyhow::Result<()> {
    let busybox = std::fs::read("/bin/busybox").context("cannot read /bin/busybox: install busybox-static")?;
    let mods = boot_modules(kver)?;
    let f = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut c = Cpio::new(std::io::BufWriter::new(f));
    for d in ["bin", "modules", "proc", "sys", "dev", "lower", "upper", "newroot"] {
        c.dir(d)?;
    }
    c.file("bin/busybox", 0o755, &busybox)?;
    c.symlink("bin/sh", "busybox")?;
    c.file("init", 0o755, STAGE1.as_bytes())?;
    let mut order = String::new();
    for m in &mods {
        let name = m.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.ends_with(".ko.xz") || name.ends_with(".ko.zst") || name.ends_with(".ko.gz") {
            bail!("{}: compressed kernel modules are not supported by the guest's initramfs yet", m.display());
        }
        let data = std::fs::read(m).with_context(|| format!("cannot read {}", m.display()))?;
        c.file(&format!("modules/{name}"), 0o644, &data)?;
        order.push_str(&name);
        order.push('\n');
    }
    c.file("modules/order", 0o644, order.as_bytes())?;
    c.finish()?.flush()?;
    Ok(())
}

fn ensure_packages(no_install: bool) -> anyhow::Result<()> {
    let have = |bin: &str| Path::new(bin).exists();
    let has_kernel = pick_kernel().is_ok();
    if have("/usr/bin/qemu-system-x86_64") && has_kernel && have("/bin/busybox") {
        return Ok(());
    }
    if no_install {
        bail!(
            "the VM needs qemu-system-x86_64, a kernel with IPVS in /boot and /bin/busybox: apt-get install {}",
            PACKAGES.join(" ")
        );
    }
    eprintln!(
        "lvsctl lab vm: installing Debian packages {} (this machine's running kernel is not changed)",
        PACKAGES.join(" ")
    );
    let ok = |s: std::process::ExitStatus| s.success();
    let st = Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !ok(st) {
        bail!("apt-get update failed");
    }
    let st = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !ok(st) {
        bail!("apt-get install {} failed", PACKAGES.join(" "));
    }
    Ok(())
}

/// The guest's private working directory: the command's whole environment (credentials
/// included) goes into it, so it is 0700 from the start, and a name someone planted is an error.
fn temp_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("lvsctl-vm-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod private_tests {
    #[test]
    fn the_guests_working_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = super::temp_dir().unwrap();
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir(&d).unwrap();
        assert_eq!(mode, 0o700);
    }
}

/// What `lab vm` runs, and in what guest.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Guest memory, MiB.
    pub memory: u32,
    pub cpus: u32,
    /// qemu's `-cpu` model.
    pub cpu_model: String,
    /// Give up after this many seconds.
    pub timeout: u64,
    /// Fail instead of installing missing Debian packages.
    pub no_install: bool,
    /// Run the command here when this kernel has IPVS and ipip.
    pub if_needed: bool,
    pub command: Vec<String>,
}

/// Runs the command in a guest and returns its exit status.
pub fn run(args: &VmOptions) -> anyhow::Result<u8> {
    if args.if_needed && super::build::kernel_runs_labs() {
        eprintln!("lvsctl lab vm: this kernel has IPVS and ipip: running {} here", args.command[0]);
        let st = Command::new(&args.command[0])
            .args(&args.command[1..])
            .status()
            .with_context(|| format!("cannot run {}", args.command[0]))?;
        return Ok(st.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1));
    }
    ensure_packages(args.no_install)?;
    let (kernel, kver) = pick_kernel()?;
    let exe = std::env::current_exe().context("cannot find the lvsctl binary")?;
    let exe_s = exe
        .to_str()
        .filter(|s| !s.contains(char::is_whitespace))
        .context("the lvsctl binary's path must be UTF-8 without whitespace")?;
    let dir = temp_dir()?;
    let result = run_in(args, &kernel, &kver, exe_s, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(args: &VmOptions, kernel: &Path, kver: &str, exe: &str, dir: &Path) -> anyhow::Result<u8> {
    let initrd = dir.join("initrd.cpio");
    build_initramfs(kver, &initrd)?;
    let share = dir.join("share");
    std::fs::create_dir(&share)?;
    let cwd = std::env::current_dir().context("no current directory")?;
    let cmd = GuestCommand {
        argv: args.command.clone(),
        cwd: cwd.to_string_lossy().into_owned(),
        env: std::env::vars().filter(|(k, _)| !matches!(k.as_str(), "SSH_AUTH_SOCK" | "TMPDIR" | "DISPLAY")).collect(),
    };
    std::fs::write(share.join("cmd.json"), serde_json::to_vec(&cmd)?)?;
    let output = share.join("output.log");
    std::fs::File::create(&output)?;
    let console = dir.join("console.log");

    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-accel",
        "tcg",
        "-cpu",
        &args.cpu_model,
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-nic",
        "none",
    ])
    .args(["-smp", &args.cpus.to_string(), "-m", &args.memory.to_string()])
    .arg("-kernel")
    .arg(kernel)
    .arg("-initrd")
    .arg(&initrd)
    .arg("-append")
    .arg(format!("console=ttyS0 panic=-1 loglevel=4 mitigations=off rdinit=/init lvsctl.init={exe}"))
    .arg("-serial")
    .arg(format!("file:{}", console.display()))
    .arg("-virtfs")
    .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
    .arg("-virtfs")
    .arg(format!("local,path={},mount_tag=results,security_model=none,multidevs=remap", share.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = qemu.spawn().context("cannot start qemu-system-x86_64")?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout);
    let mut log = std::fs::File::open(&output)?;
    let mut stdout = std::io::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    // Copies what the guest wrote to its output since the last call.
    let mut relay = |log: &mut std::fs::File| -> std::io::Result<()> {
        loop {
            let n = log.read(&mut buf)?;
            if n == 0 {
                return stdout.flush();
            }
            stdout.write_all(&buf[..n])?;
        }
    };
    let status = loop {
        relay(&mut log)?;
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Drain what the guest wrote last.
    relay(&mut log)?;
    let tail = || {
        let c = std::fs::read_to_string(&console).unwrap_or_default();
        let lines: Vec<&str> = c.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let Some(status) = status else {
        bail!("the guest did not finish within {} s; last console lines:\n{}", args.timeout, tail());
    };
    match std::fs::read_to_string(share.join("exit-code")) {
        Ok(code) => {
            let code: i32 = code.trim().parse().unwrap_or(1);
            eprintln!(
                "lvsctl lab vm: guest finished in {:.0} s, command exit status {code}",
                start.elapsed().as_secs_f64()
            );
            Ok(u8::try_from(code).unwrap_or(1))
        }
        Err(_) => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!(
                "the guest ended without a result (qemu {status}); {}last console lines:\n{}",
                if err.is_empty() { String::new() } else { format!("qemu said: {}\n", err.trim()) },
                tail()
            )
        }
    }
}

fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) -> std::io::Result<()> {
    let _ = std::fs::create_dir_all(target);
    let c = |s: &str| CString::new(s).expect("no NUL");
    let (s, t, f, d) = (c(src), c(target), c(fstype), c(data));
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr() as *const libc::c_void) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Stage two, PID 1 in the guest: mount the basics, run the command, report, power off.
pub fn guest_init() -> ! {
    let code = guest_main().unwrap_or_else(|e| {
        let _ = std::fs::write(format!("{GUEST_SHARE}/output.log"), format!("lvsctl lab vm-init: {e:#}\n"));
        125
    });
    let _ = std::fs::write(format!("{GUEST_SHARE}/exit-code"), format!("{code}\n"));
    // SAFETY: plain syscalls; this process is the guest's init and ends the guest here.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    std::process::exit(code)
}

fn guest_main() -> anyhow::Result<i32> {
    let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
    mount("tmpfs", "/run", "tmpfs", nosuid_nodev, "mode=0755")?;
    // /tmp stays this machine's (under the memory overlay like everything else): a checkout or a
    // command under /tmp must be found in the guest.
    mount("tmpfs", "/dev/shm", "tmpfs", nosuid_nodev, "mode=1777")?;
    mount("devpts", "/dev/pts", "devpts", libc::MS_NOSUID | libc::MS_NOEXEC, "mode=0620,ptmxmode=0666")?;
    // What systemd-udev adds to a booted system's devtmpfs: shells need /dev/fd for process
    // substitution (`<(…)`).
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| format!("cannot link {link} to {target}"));
            }
            _ => {}
        }
    }
    // Network namespaces created by `ip netns` are bind mounts under /run/netns.
    std::fs::create_dir_all("/run/netns")?;
    let hostname = b"lvsctl-vm";
    // SAFETY: valid buffer and length.
    unsafe { libc::sethostname(hostname.as_ptr() as *const libc::c_char, hostname.len()) };
    let _ = Command::new("ip").args(["link", "set", "lo", "up"]).status();

    let cmd: GuestCommand = serde_json::from_slice(&std::fs::read(format!("{GUEST_SHARE}/cmd.json"))?)?;
    let log = std::fs::OpenOptions::new().append(true).open(format!("{GUEST_SHARE}/output.log"))?;
    let (prog, rest) = cmd.argv.split_first().context("empty command")?;
    let mut child = Command::new(prog)
        .args(rest)
        .current_dir(&cmd.cwd)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .env("LVSCTL_IN_VM", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot run {prog}"))?;
    let main_pid = child.id() as libc::pid_t;
    // As PID 1 we adopt every orphan: reap them all until the command itself exits.
    let code = loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == main_pid {
            break if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
        }
        if pid < 0 {
            break child.wait().ok().and_then(|s| s.code()).unwrap_or(1);
        }
    };
    Ok(code)
}
