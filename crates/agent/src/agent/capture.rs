//! Capturing packets on this host (`lvsctl capture`, `lvsctl trace`): one AF_PACKET socket that
//! sees every interface (or one), both directions, with the kernel's timestamps; packets are
//! filtered here (the probe's flow, or all but the capture's own SSH session) and streamed in
//! batches. Bounded by count and time; the controller ends it early by closing stdin.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::wire::capture::{CaptureEvent, CaptureInterface, CaptureRequest, CaptureSummary, CapturedPacket};
use crate::wire::packet::{Conversation, decode};
use crate::wire::protocol::Event;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OTHERHOST: u8 = 3;
const PACKET_OUTGOING: u8 = 4;
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;
const PACKET_STATISTICS: libc::c_int = 6;
/// Packets sent together in one event (or after BATCH_AFTER, whichever comes first).
const BATCH: usize = 64;
const BATCH_AFTER: Duration = Duration::from_millis(100);
/// The most a request may ask for: a capture is a look, not a recorder.
pub const MAX_COUNT: u32 = 100_000;
pub const MAX_SECONDS: u64 = 600;
pub const MAX_SNAPLEN: u32 = 262_144;

/// The host's interfaces: index, name, and whether frames on it start with an Ethernet header.
fn interfaces() -> Vec<CaptureInterface> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return out };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok()?.trim().parse::<u32>().ok();
        let (Some(index), Some(kind)) = (read("ifindex"), read("type")) else { continue };
        // ARPHRD_ETHER and ARPHRD_LOOPBACK have a link-layer header; tunnels (ipip, ip6tnl,
        // sit, gre without broadcast) hand over the IP packet itself.
        // ARPHRD_IPGRE and ARPHRD_IP6GRE: the outer header comes as the link-layer header.
        out.push(CaptureInterface {
            index,
            name,
            ethernet: kind == 1 || kind == 772,
            gre_device: kind == 778 || kind == 823,
        });
    }
    out.sort_by_key(|i| i.index);
    out
}

fn packet_socket(ifindex: Option<u32>) -> std::io::Result<OwnedFd> {
    let proto = ETH_P_ALL.to_be() as libc::c_int;
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(index) = ifindex {
        // SAFETY: an all-zero sockaddr_ll is valid; the fields set are its documented ones.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = index as i32;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: sll is a valid sockaddr_ll of `len` bytes.
        if unsafe { libc::bind(fd.as_raw_fd(), (&raw const sll).cast(), len) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// One packet waiting on the socket, if any: its bytes (at most `buf`'s length), its length on
/// the wire, its interface, direction and timestamp.
fn receive(fd: &OwnedFd, buf: &mut [u8]) -> Option<(usize, usize, u32, u8, u64)> {
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buf and from are valid for the sizes given.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            (&raw mut from).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return None;
    }
    let wire = n as usize;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: SIOCGSTAMPNS writes one timespec: the last packet's receive time.
    let at_ns = if unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSTAMPNS as _, &mut ts) } == 0 {
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    } else {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    };
    Some((wire.min(buf.len()), wire, from.sll_ifindex as u32, from.sll_pkttype, at_ns))
}

fn dropped(fd: &OwnedFd) -> u32 {
    let mut stats = [0u32; 2];
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: PACKET_STATISTICS fills a struct tpacket_stats (two u32) of `len` bytes.
    let r = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_STATISTICS, stats.as_mut_ptr().cast(), &mut len)
    };
    if r == 0 { stats[1] } else { 0 }
}

fn wait_readable(fd: &OwnedFd, ms: i32) {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// Captures as `req` says; `stdin_ends_it`: the controller closes stdin to stop a capture that
/// has no probe of its own to end it.
pub fn run(
    req: &CaptureRequest,
    lab_up: bool,
    stdin_ends_it: bool,
    emit: &mut dyn FnMut(Event),
) -> Result<CaptureSummary, String> {
    let all = interfaces();
    let ifindex = match &req.interface {
        None => None,
        Some(name) => match all.iter().find(|i| &i.name == name) {
            Some(i) => Some(i.index),
            None => {
                let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
                return Err(format!("no interface {name:?} on this host (it has {})", names.join(", ")));
            }
        },
    };
    let fd = packet_socket(ifindex).map_err(|e| format!("cannot open a packet socket (AF_PACKET): {e}"))?;
    let own = ["LVSCTL_SSH_CONNECTION", "SSH_CONNECTION"]
        .iter()
        .find_map(|v| Conversation::from_ssh_connection(&std::env::var(v).ok()?));
    let ethernet: std::collections::HashMap<u32, bool> = all.iter().map(|i| (i.index, i.ethernet)).collect();
    let shown = all.iter().filter(|i| ifindex.is_none_or(|x| x == i.index)).cloned().collect();
    emit(Event::Capture(CaptureEvent::Ready { interfaces: shown, lab_up }));

    let stop = Arc::new(AtomicBool::new(false));
    if stdin_ends_it {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            stop.store(true, Ordering::SeqCst);
        });
    }
    let probe = req.probe.clone().map(|p| std::thread::spawn(move || super::probe::run(&p)));
    let count = req.count.clamp(1, MAX_COUNT);
    let deadline = Instant::now() + Duration::from_secs(req.seconds.clamp(1, MAX_SECONDS));
    let mut buf = vec![0u8; req.snaplen.clamp(64, MAX_SNAPLEN) as usize];
    let mut batch = Vec::new();
    let mut last_sent = Instant::now();
    let mut kept = 0u32;
    let mut probe_done: Option<Instant> = None;
    let mut probe_result = None;
    let ended_by;
    loop {
        // Whatever is queued is read before the capture ends: those packets happened before.
        let mut ending = None;
        if stop.load(Ordering::SeqCst) {
            ending = Some("stopped");
        } else if Instant::now() >= deadline {
            ending = Some("seconds");
        } else if probe_done.is_some_and(|t| t.elapsed() >= Duration::from_millis(req.linger_ms)) {
            ending = Some("probe");
        }
        if ending.is_none() {
            wait_readable(&fd, 50);
        }
        while kept < count {
            let Some((n, wire, index, kind, at_ns)) = receive(&fd, &mut buf) else { break };
            let outgoing = kind == PACKET_OUTGOING;
            // A frame for another host that reached this one (a bridge flooding): not a hop.
            if req.flow.is_some() && kind == PACKET_OTHERHOST {
                continue;
            }
            let data = &buf[..n];
            let eth = ethernet.get(&index).copied().unwrap_or_else(|| {
                // An interface made since the capture began: Ethernet unless it starts like IP.
                !matches!(data.first().map(|b| b >> 4), Some(4 | 6))
            });
            let d = decode(eth, data);
            let keep = match &req.flow {
                Some(f) => f.matches(&d),
                None => !own.is_some_and(|c| c.matches(&d)),
            };
            if keep {
                kept += 1;
                batch.push(CapturedPacket {
                    at_ns,
                    interface: index,
                    outgoing,
                    length: wire as u32,
                    data: crate::wire::hex(data),
                });
            }
        }
        if !batch.is_empty() && (batch.len() >= BATCH || last_sent.elapsed() >= BATCH_AFTER || ending.is_some()) {
            emit(Event::Capture(CaptureEvent::Packets { packets: std::mem::take(&mut batch) }));
            last_sent = Instant::now();
        }
        if kept >= count {
            ended_by = "count";
            break;
        }
        if let Some(e) = ending {
            ended_by = e;
            break;
        }
        if probe_done.is_none()
            && let Some(p) = &probe
            && p.is_finished()
        {
            probe_done = Some(Instant::now());
        }
    }
    if !batch.is_empty() {
        emit(Event::Capture(CaptureEvent::Packets { packets: batch }));
    }
    if let Some(p) = probe {
        probe_result = p.join().ok();
    }
    Ok(CaptureSummary { packets: kept, dropped: dropped(&fd), ended_by: ended_by.into(), probe: probe_result })
}
