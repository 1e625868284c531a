//! `lvsctl init`: a commented starter inventory, valid as written, for a mode and a number of real
//! servers: for the user's own machines (every value to adapt marked CHANGE), or with `--lab` for
//! `lvsctl lab create`.
//!
//! The layout is the smallest that works in each mode without touching any host's default route,
//! so that no planned gateway can cut the SSH session it arrives on: DR and TUN put every host on
//! one subnet (the client reaches the VIP on its own link, real servers answer it directly); NAT
//! gives the director two interfaces, and only the real servers route through it.

use std::fmt::Write as _;

use anyhow::bail;

use crate::cli::{InitArgs, InitMode};

/// The subnet of the user variant (VirtualBox's host-only default: many labs already use it).
const PUBLIC: &str = "192.168.56";
/// NAT's private subnet behind the director.
const PRIVATE: &str = "10.10.0";
/// The lab variant's management subnet (the ssh addresses).
const MGMT: &str = "10.250.0";

pub fn run(a: &InitArgs) -> anyhow::Result<u8> {
    if let Err((what, help)) = crate::inventory::value::check_lab_name(&a.name) {
        bail!("--name: {what}: {help}");
    }
    let text = inventory(a.mode, a.real_servers, &a.name, a.lab);
    super::write_new(&text, a.out.as_deref(), "init")?;
    if let Some(path) = &a.out {
        eprintln!(
            "wrote {}: {}, then `lvsctl check {}`",
            path.display(),
            if a.lab { "try it with `lvsctl lab create`" } else { "change every value marked CHANGE" },
            path.display()
        );
    }
    Ok(crate::exit::OK)
}

fn mode_name(m: InitMode) -> &'static str {
    match m {
        InitMode::Nat => "nat",
        InitMode::Dr => "dr",
        InitMode::Tun => "tun",
    }
}

/// The starter inventory's text.
pub fn inventory(mode: InitMode, real_servers: u8, name: &str, lab: bool) -> String {
    let n = real_servers as usize;
    let webs: Vec<String> = (1..=n).map(|i| format!("web{i}")).collect();
    // Host numbers: client .10, director .11, real servers .21…
    let rs_ip =
        |i: usize| if mode == InitMode::Nat { format!("{PRIVATE}.{}", 20 + i) } else { format!("{PUBLIC}.{}", 20 + i) };
    let ssh = |host_no: usize, addr: &str| if lab { format!("{MGMT}.{host_no}") } else { addr.to_string() };
    let change = |what: &str| if lab { String::new() } else { format!("   # CHANGE: {what}") };
    let dev = "eth0";
    let mut s = String::new();
    let w = &mut s;

    let _ = writeln!(
        w,
        "# lvsctl inventory: an LVS lab in {} mode, written by `lvsctl init`.",
        mode_name(mode).to_uppercase()
    );
    match mode {
        InitMode::Dr => {
            let _ = writeln!(w, "#");
            let _ = writeln!(w, "#   client ─┬─ lvs (director, holds the VIP {PUBLIC}.100)   all on {PUBLIC}.0/24");
            for (i, h) in webs.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "#           {} {h} (real server: VIP on lo, answers the client directly)",
                    if i + 1 == n { "└─" } else { "├─" }
                );
            }
            let _ = writeln!(w, "#");
            let _ = writeln!(w, "# Direct routing: the director rewrites only the destination MAC, so it and the real");
            let _ =
                writeln!(w, "# servers share one L2 segment; the real servers hold the VIP on lo and never answer ARP");
            let _ = writeln!(w, "# for it (arp_ignore=1, arp_announce=2).");
        }
        InitMode::Tun => {
            let _ = writeln!(w, "#");
            let _ = writeln!(w, "#   client ─┬─ lvs (director, holds the VIP {PUBLIC}.100)   all on {PUBLIC}.0/24");
            for (i, h) in webs.iter().enumerate() {
                let _ = writeln!(
                    w,
                    "#           {} {h} (real server: VIP on tunl0, decapsulates IP-in-IP)",
                    if i + 1 == n { "└─" } else { "├─" }
                );
            }
            let _ = writeln!(w, "#");
            let _ =
                writeln!(w, "# IP-in-IP tunnelling: the director encapsulates each packet to a real server's address,");
            let _ =
                writeln!(w, "# which may be anywhere routable (not only on the director's segment); the real servers");
            let _ = writeln!(w, "# need the ipip module (lvsctl loads it) and answer the client directly.");
        }
        InitMode::Nat => {
            let _ = writeln!(w, "#");
            let _ = writeln!(w, "#   client ── {PUBLIC}.0/24 ── lvs eth0 (director, VIP {PUBLIC}.100)");
            let arm = format!("#                            lvs eth1 {PRIVATE}.1 ── {PRIVATE}.0/24 ─");
            let _ = writeln!(w, "{arm}┬─ web1");
            let _ = writeln!(w, "#{}└─ …", " ".repeat(arm.chars().count() - 1));
            let _ = writeln!(w, "#");
            let _ =
                writeln!(w, "# Network address translation: the director rewrites the destination to a real server's");
            let _ = writeln!(
                w,
                "# private address, and the real servers' replies must come back through it: their default"
            );
            let _ =
                writeln!(w, "# route goes via the director ({PRIVATE}.1, derived by lvsctl). The client must not sit");
            let _ = writeln!(w, "# on the real servers' subnet.");
        }
    }
    if lab {
        let _ = writeln!(w, "#");
        let _ =
            writeln!(w, "# Ready for this machine: `lvsctl lab create FILE` builds the hosts as network namespaces");
        let _ =
            writeln!(w, "# (in a qemu guest via `lvsctl lab vm` when this kernel has no IPVS), then `lvsctl up FILE`.");
    } else {
        let _ = writeln!(w, "#");
        let _ =
            writeln!(w, "# Before `lvsctl up`: change every value marked CHANGE to your machines' (`ip -br addr` on");
        let _ = writeln!(w, "# each shows its interfaces), then `lvsctl check FILE` and `lvsctl plan FILE`.");
        if mode == InitMode::Nat {
            let _ =
                writeln!(w, "# The real servers' default route is replaced by one via the director: reach them over");
            let _ = writeln!(w, "# ssh on an address that does not depend on it (a host on {PRIVATE}.0/24, a second");
            let _ = writeln!(w, "# interface, or ProxyJump through the director in an ssh_config).");
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "name = {name:?}");
    let _ = writeln!(w, "mode = {:?}", mode_name(mode));
    let _ = writeln!(w);
    let _ = writeln!(w, "[ssh]");
    if lab {
        let _ = writeln!(w, "host_key = \"strict\"   # the lab trusts its hosts' keys through its own ssh_config");
    } else {
        let _ = writeln!(
            w,
            "user = \"root\"          # CHANGE: your login user; with a non-root user, keep become = \"sudo\""
        );
        let _ =
            writeln!(w, "# become = \"sudo\"      # run lvsctl's agent through `sudo -n` (passwordless sudo needed)");
        let _ = writeln!(w, "# identity = \"~/.ssh/id_ed25519\"   # otherwise ssh_config and the ssh agent decide");
        let _ =
            writeln!(w, "host_key = \"accept-new\" # learn each host's key on first contact; a changed key is refused");
    }

    let host = |w: &mut String, name: &str, role: &str, no: usize, ifs: &[(&str, String)], what: &str| {
        let _ = writeln!(w);
        let _ = writeln!(w, "[hosts.{name}]");
        let _ = writeln!(w, "role = {role:?}");
        let _ = writeln!(w, "ssh = {:?}{}", ssh(no, &ifs[0].1), change(&format!("how the controller reaches {what}")));
        let list: Vec<String> = ifs.iter().map(|(d, a)| format!("{d} = [\"{a}/24\"]")).collect();
        let _ = writeln!(
            w,
            "interfaces = {{ {} }}{}",
            list.join(", "),
            change("its interface name(s) and address(es)/prefix (lvsctl keeps addresses it finds)")
        );
    };
    host(w, "client", "client", 10, &[(dev, format!("{PUBLIC}.10"))], "the client");
    match mode {
        InitMode::Nat => host(
            w,
            "lvs",
            "director",
            11,
            &[(dev, format!("{PUBLIC}.11")), ("eth1", format!("{PRIVATE}.1"))],
            "the director",
        ),
        _ => host(w, "lvs", "director", 11, &[(dev, format!("{PUBLIC}.11"))], "the director"),
    }
    for (i, h) in webs.iter().enumerate() {
        host(w, h, "real-server", 20 + i + 1, &[(dev, rs_ip(i + 1))], h);
        if mode == InitMode::Nat {
            let _ = writeln!(
                w,
                "# gateway: left out, lvsctl derives it (the director's {PRIVATE}.1); `down` restores the prior one"
            );
        }
    }

    let _ = writeln!(w);
    let _ = writeln!(w, "[[services]]");
    let _ = writeln!(w, "name = \"web\"");
    let _ = writeln!(w, "vip = \"{PUBLIC}.100\"{}", change("an unused address on the director's subnet"));
    let _ = writeln!(w, "port = 80");
    let _ = writeln!(w, "protocol = \"tcp\"");
    let _ = writeln!(w, "scheduler = \"rr\"        # rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh");
    let rs: Vec<String> = webs.iter().map(|h| format!("{{ host = \"{h}\", weight = 1 }}")).collect();
    let _ = writeln!(w, "real_servers = [{}]", rs.join(", "));
    if !lab {
        let _ = writeln!(w, "# Each real server must serve the port (a web server; `hostname > index.html` lets");
        let _ = writeln!(w, "# `lvsctl verify` attribute each answer by its body).");
    }

    if lab {
        let _ = writeln!(w);
        let _ = writeln!(w, "[lab]");
        let _ =
            writeln!(w, "# Which host interfaces share an L2 segment; ssh runs on a management network of its own.");
        match mode {
            InitMode::Nat => {
                let private: Vec<String> =
                    std::iter::once("lvs:eth1".to_string()).chain(webs.iter().map(|h| format!("{h}:eth0"))).collect();
                let _ = writeln!(
                    w,
                    "segments = {{ public = [\"client:eth0\", \"lvs:eth0\"], private = [{}] }}",
                    private.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
                );
            }
            _ => {
                let all: Vec<String> = ["client", "lvs"]
                    .iter()
                    .map(|h| h.to_string())
                    .chain(webs.iter().cloned())
                    .map(|h| format!("\"{h}:eth0\""))
                    .collect();
                let _ = writeln!(w, "segments = {{ net = [{}] }}", all.join(", "));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_starter_inventory_is_valid_as_written() {
        for mode in [InitMode::Nat, InitMode::Dr, InitMode::Tun] {
            for n in [1u8, 2, 5] {
                for lab in [false, true] {
                    let text = inventory(mode, n, "starter", lab);
                    let l = crate::inventory::parse_str(std::path::Path::new("lab.toml"), &text)
                        .unwrap_or_else(|d| panic!("{mode:?} {n} lab={lab}:\n{d}\n{text}"));
                    assert_eq!(
                        l.hosts.iter().filter(|h| h.role == crate::inventory::Role::RealServer).count(),
                        n as usize
                    );
                    assert_eq!(l.lab.is_some(), lab, "{text}");
                    assert_eq!(l.mode.as_str(), mode_name(mode));
                    // A user's own machines: nothing is left to guess.
                    if !lab {
                        assert!(text.contains("CHANGE"), "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn no_starter_touches_a_default_route_except_nat_real_servers() {
        for mode in [InitMode::Dr, InitMode::Tun, InitMode::Nat] {
            let text = inventory(mode, 2, "starter", false);
            let l = crate::inventory::parse_str(std::path::Path::new("lab.toml"), &text).unwrap();
            for h in &l.hosts {
                let routes_via_director = mode == InitMode::Nat && h.role == crate::inventory::Role::RealServer;
                assert_eq!(!h.gateways.is_empty(), routes_via_director, "{mode:?} {}", h.name);
            }
        }
    }
}
