//! lvsctl's IPVS messages must be byte-for-byte what ipvsadm sends for the same operation
//! (tests/fixtures/ipvsadm-netlink.txt was captured from ipvsadm on a real IPVS kernel).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use lvsctl_agent::ipvs::Protocol;
use lvsctl_agent::ipvs::*;

fn fixtures() -> HashMap<String, String> {
    std::fs::read_to_string("tests/fixtures/ipvsadm-netlink.txt")
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (cmd, hex) = l.split_once('\t').unwrap();
            (cmd.to_string(), hex.to_string())
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn svc(p: Protocol, port: u16) -> ServiceKey {
    ServiceKey::addr(p, Ipv4Addr::new(192, 168, 188, 100), port)
}

fn dest(a: [u8; 4], port: u16) -> DestKey {
    DestKey { addr: Ipv4Addr::from(a).into(), port }
}

fn dest6(last: u16, port: u16) -> DestKey {
    DestKey { addr: Ipv6Addr::new(0x2001, 0xdb8, 0x188, 0, 0, 0, 0, last).into(), port }
}

fn flagged(scheduler: &str, flags: u32, timeout: u32, netmask: Netmask) -> ServiceConfig {
    ServiceConfig { scheduler: scheduler.into(), flags, timeout, netmask }
}

fn cfg(fwd: u32, weight: u32, u: u32, l: u32) -> DestConfig {
    DestConfig { fwd, weight, u_threshold: u, l_threshold: l, tun: (0, 0, 0) }
}

#[test]
fn messages_match_ipvsadm_byte_for_byte() {
    let f = fixtures();
    let tcp = svc(Protocol::Tcp, 80);
    let udp = svc(Protocol::Udp, 5353);
    let tcp6 = ServiceKey::addr(Protocol::Tcp, "2001:db8:188::100".parse::<Ipv6Addr>().unwrap(), 80);
    let mark4 = ServiceKey::Mark { fwmark: 10, ipv6: false };
    let mark6 = ServiceKey::Mark { fwmark: 10, ipv6: true };
    let cases: Vec<(&str, IpvsMessage)> = vec![
        (
            "-A -t 192.168.188.100:80 -s wrr -p 300 -M 255.255.255.0",
            IpvsMessage::new_service(
                &tcp,
                &ServiceConfig::persistent(
                    "wrr",
                    300,
                    Some(lvsctl_agent::ipvs::Netmask::V4(Ipv4Addr::new(255, 255, 255, 0))),
                ),
            ),
        ),
        ("-A -u 192.168.188.100:5353 -s rr", IpvsMessage::new_service(&udp, &ServiceConfig::persistent("rr", 0, None))),
        (
            "-a -t 192.168.188.100:80 -r 192.168.188.81:80 -g -w 3",
            IpvsMessage::new_dest(&tcp, &dest([192, 168, 188, 81], 80), &cfg(FWD_ROUTE, 3, 0, 0)),
        ),
        (
            "-a -u 192.168.188.100:5353 -r 10.10.0.82:8080 -m -w 1 -x 100 -y 10",
            IpvsMessage::new_dest(&udp, &dest([10, 10, 0, 82], 8080), &cfg(FWD_MASQ, 1, 100, 10)),
        ),
        (
            "-e -t 192.168.188.100:80 -r 192.168.188.81:80 -i -w 5",
            IpvsMessage::set_dest(&tcp, &dest([192, 168, 188, 81], 80), &cfg(FWD_TUNNEL, 5, 0, 0)),
        ),
        ("-E -t 192.168.188.100:80 -s rr", IpvsMessage::set_service(&tcp, &ServiceConfig::persistent("rr", 0, None))),
        ("-d -t 192.168.188.100:80 -r 192.168.188.81:80", IpvsMessage::del_dest(&tcp, &dest([192, 168, 188, 81], 80))),
        ("-D -t 192.168.188.100:80", IpvsMessage::del_service(&tcp)),
        (
            "-A -t [2001:db8:188::100]:80 -s wrr -p 300 -M 64",
            IpvsMessage::new_service(&tcp6, &flagged("wrr", SVC_F_PERSISTENT, 300, Netmask::V6(64))),
        ),
        (
            "-a -t [2001:db8:188::100]:80 -r [2001:db8:188::81]:8080 -m -w 3",
            IpvsMessage::new_dest(&tcp6, &dest6(0x81, 8080), &cfg(FWD_MASQ, 3, 0, 0)),
        ),
        ("-A -f 10 -s rr -p 60", IpvsMessage::new_service(&mark4, &ServiceConfig::persistent("rr", 60, None))),
        (
            "-a -f 10 -r 192.168.188.81:0 -g -w 1",
            IpvsMessage::new_dest(&mark4, &dest([192, 168, 188, 81], 0), &cfg(FWD_ROUTE, 1, 0, 0)),
        ),
        (
            "-A -f 10 -6 -s rr -p 60",
            IpvsMessage::new_service(&mark6, &ServiceConfig::persistent("rr", 60, None).for_family(&mark6)),
        ),
        (
            "-a -f 10 -6 -r [2001:db8:188::81]:0 -g -w 1",
            IpvsMessage::new_dest(&mark6, &dest6(0x81, 0), &cfg(FWD_ROUTE, 1, 0, 0)),
        ),
        (
            "-e -f 10 -6 -r [2001:db8:188::81]:0 -i -w 2",
            IpvsMessage::set_dest(&mark6, &dest6(0x81, 0), &cfg(FWD_TUNNEL, 2, 0, 0)),
        ),
        ("-d -f 10 -6 -r [2001:db8:188::81]:0", IpvsMessage::del_dest(&mark6, &dest6(0x81, 0))),
        ("-D -f 10 -6", IpvsMessage::del_service(&mark6)),
        (
            "-A -u 192.168.188.100:53 -s sh -b sh-fallback,sh-port -o",
            IpvsMessage::new_service(
                &svc(Protocol::Udp, 53),
                &flagged("sh", SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2, 0, Netmask::host(false)),
            ),
        ),
        (
            "-A -t 192.168.188.100:443 -s mh -b mh-fallback,mh-port",
            IpvsMessage::new_service(
                &svc(Protocol::Tcp, 443),
                &flagged("mh", SVC_F_SCHED1 | SVC_F_SCHED2, 0, Netmask::host(false)),
            ),
        ),
        (
            "-A --sctp-service 192.168.188.100:3868 -s rr",
            IpvsMessage::new_service(&svc(Protocol::Sctp, 3868), &ServiceConfig::persistent("rr", 0, None)),
        ),
    ];
    assert_eq!(cases.len(), f.len(), "every captured message has a case");
    for (cmd, msg) in cases {
        let want = f.get(cmd).unwrap_or_else(|| panic!("no fixture for {cmd}"));
        assert_eq!(&hex(&payload_bytes(&msg)), want, "ipvsadm {cmd}");
    }
}
