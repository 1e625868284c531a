//! lvsctl's IPVS messages must be byte-for-byte what ipvsadm sends for the same operation
//! (tests/fixtures/ipvsadm-netlink.txt was captured from ipvsadm on a real IPVS kernel).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use lvsctl::inventory::Protocol;
use lvsctl::ipvs::*;

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
    ServiceKey { protocol: p, addr: Ipv4Addr::new(192, 168, 188, 100), port }
}

fn dest(a: [u8; 4], port: u16) -> DestKey {
    DestKey { addr: Ipv4Addr::from(a), port }
}

fn cfg(fwd: u32, weight: u32, u: u32, l: u32) -> DestConfig {
    DestConfig { fwd, weight, u_threshold: u, l_threshold: l }
}

#[test]
fn messages_match_ipvsadm_byte_for_byte() {
    let f = fixtures();
    let tcp = svc(Protocol::Tcp, 80);
    let udp = svc(Protocol::Udp, 5353);
    let cases: Vec<(&str, IpvsMessage)> = vec![
        (
            "-A -t 192.168.188.100:80 -s wrr -p 300 -M 255.255.255.0",
            IpvsMessage::new_service(
                &tcp,
                &ServiceConfig::persistent("wrr", 300, Some(Ipv4Addr::new(255, 255, 255, 0))),
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
    ];
    assert_eq!(cases.len(), f.len(), "every captured message has a case");
    for (cmd, msg) in cases {
        let want = f.get(cmd).unwrap_or_else(|| panic!("no fixture for {cmd}"));
        assert_eq!(&hex(&payload_bytes(&msg)), want, "ipvsadm {cmd}");
    }
}
