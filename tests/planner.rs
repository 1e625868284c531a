//! What each mode must produce, stated directly (the golden files show everything else).

use std::path::Path;

use lvsctl::plan::{self, Context, Forward, HostPlan};
use lvsctl::templates::Templates;

fn plans(inv: &str) -> Vec<HostPlan> {
    let lab = lvsctl::inventory::load(Path::new(inv)).unwrap();
    let t = Templates::embedded();
    plan::plan(&lab, &Context { agent_path: "/a".into(), templates: &t }).unwrap()
}

fn plans_of(src: &str) -> Vec<HostPlan> {
    let lab = lvsctl::inventory::parse_str(Path::new("inline.toml"), src).unwrap_or_else(|e| panic!("{e}"));
    let t = Templates::embedded();
    plan::plan(&lab, &Context { agent_path: "/a".into(), templates: &t }).unwrap()
}

fn host<'a>(p: &'a [HostPlan], name: &str) -> &'a HostPlan {
    p.iter().find(|h| h.host == name).unwrap()
}

fn sysctl(p: &HostPlan, key: &str) -> Option<String> {
    p.sysctls.iter().find(|s| s.key == key).map(|s| s.value.clone())
}

fn has_address(p: &HostPlan, dev: &str, cidr: &str) -> bool {
    p.addresses.iter().any(|a| a.dev == dev && a.address.to_string() == cidr)
}

#[test]
fn dr_real_servers_hold_the_vip_on_lo_and_ignore_arp_on_all_and_lo() {
    let p = plans("inventories/dr.toml");
    for rs in ["web1", "web2"] {
        let h = host(&p, rs);
        assert!(has_address(h, "lo", "192.168.188.100/32"));
        for dev in ["all", "lo"] {
            assert_eq!(sysctl(h, &format!("net.ipv4.conf.{dev}.arp_ignore")).as_deref(), Some("1"));
            assert_eq!(sysctl(h, &format!("net.ipv4.conf.{dev}.arp_announce")).as_deref(), Some("2"));
        }
        // Replies go through the router, not the director.
        assert_eq!(h.routes[0].gateway.unwrap().to_string(), "192.168.188.200");
        assert!(h.modules.is_empty());
    }
    let d = host(&p, "lvs");
    assert!(has_address(d, "eth0", "192.168.188.100/32"), "the director holds the VIP on its segment");
    assert_eq!(sysctl(d, "net.ipv4.ip_forward"), None, "a DR director does not route replies");
    let svc = &d.ipvs[0];
    assert_eq!(svc.ipvs.scheduler, "wrr");
    assert!(svc.destinations.iter().all(|x| x.forward == Forward::Route && x.port == 80));
    assert_eq!(svc.destinations.iter().map(|x| x.weight).collect::<Vec<_>>(), vec![3, 1]);
}

#[test]
fn nat_director_forwards_and_real_servers_route_through_it() {
    let p = plans("inventories/nat.toml");
    let d = host(&p, "lvs");
    assert_eq!(sysctl(d, "net.ipv4.ip_forward").as_deref(), Some("1"));
    assert!(d.ipvs[0].destinations.iter().all(|x| x.forward == Forward::Masq));
    // Port mapping on web2.
    let ports: Vec<u16> = d.ipvs[0].destinations.iter().map(|x| x.port).collect();
    assert_eq!(ports, vec![80, 8080]);
    // web1's gateway was left out: derived as the director's address on its subnet.
    let w1 = host(&p, "web1");
    assert_eq!(w1.routes[0].gateway.unwrap().to_string(), "10.10.0.1");
    assert!(w1.routes[0].reason.contains("derived"));
    assert!(w1.sysctls.is_empty(), "NAT real servers need no ARP tricks");
}

#[test]
fn tun_real_servers_use_tunl0_and_disable_rp_filter() {
    let p = plans("inventories/tun.toml");
    let h = host(&p, "web1");
    assert_eq!(h.modules[0].name, "ipip");
    assert!(h.links_up.iter().any(|l| l.dev == "tunl0"));
    assert!(has_address(h, "tunl0", "192.168.188.100/32"));
    assert_eq!(sysctl(h, "net.ipv4.conf.tunl0.rp_filter").as_deref(), Some("0"));
    assert_eq!(sysctl(h, "net.ipv4.conf.all.rp_filter").as_deref(), Some("0"));
    assert_eq!(sysctl(h, "net.ipv4.conf.all.arp_ignore").as_deref(), Some("1"));
    assert_eq!(sysctl(h, "net.ipv4.conf.all.arp_announce").as_deref(), Some("2"));
    assert!(!has_address(h, "lo", "192.168.188.100/32"));
    assert!(host(&p, "lvs").ipvs[0].destinations.iter().all(|x| x.forward == Forward::Tunnel));
}

#[test]
fn router_gets_a_host_route_to_a_vip_on_no_segment() {
    let p = plans("inventories/dr-multisubnet.toml");
    let r = host(&p, "router");
    let route = r.routes.iter().find(|x| x.destination.to_string() == "192.168.200.100/32").expect("route to VIP");
    assert_eq!(route.gateway.unwrap().to_string(), "192.168.188.8");
    assert_eq!(sysctl(r, "net.ipv4.ip_forward").as_deref(), Some("1"));
    assert!(has_address(host(&p, "lvs"), "lo", "192.168.200.100/32"), "the VIP is on no director segment: lo");
    // Two services on one VIP: one address, two IPVS services.
    assert_eq!(
        host(&p, "lvs").addresses.iter().filter(|a| a.address.addr().to_string() == "192.168.200.100").count(),
        1
    );
    assert_eq!(host(&p, "lvs").ipvs.len(), 2);
}

#[test]
fn router_needs_no_route_for_a_vip_on_its_own_segment() {
    let p = plans("inventories/dr.toml");
    assert!(host(&p, "router").routes.is_empty());
}

const NAT_OWN_ADDRESS: &str = r#"
name = "natown"
mode = "nat"
[hosts.lvs]
role = "director"
ssh = "10.0.0.8"
interfaces = { eth0 = ["192.168.188.100/24"], eth1 = ["10.10.0.1/24"] }
[hosts.web1]
role = "real-server"
ssh = "10.0.0.81"
interfaces = { eth0 = ["10.10.0.81/24"] }
[[services]]
vip = "192.168.188.100"
port = 80
persistence = 300
netmask = "255.255.255.0"
"#;

#[test]
fn a_vip_that_is_the_directors_own_address_is_not_added_twice() {
    let p = plans_of(NAT_OWN_ADDRESS);
    let d = host(&p, "lvs");
    let vip: Vec<_> = d.addresses.iter().filter(|a| a.address.addr().to_string() == "192.168.188.100").collect();
    assert_eq!(vip.len(), 1);
    assert_eq!(vip[0].address.prefix_len(), 24, "kept as the interface address, not a /32 VIP");
    assert_eq!(d.ipvs[0].ipvs.persistence, 300);
    assert_eq!(d.ipvs[0].ipvs.netmask.unwrap().to_string(), "255.255.255.0");
}

#[test]
fn vip_device_overrides_where_the_director_holds_vips() {
    let src = NAT_OWN_ADDRESS
        .replace("\"192.168.188.100/24\"", "\"192.168.188.8/24\"")
        .replace("role = \"director\"", "role = \"director\"\nvip_device = \"lo\"");
    let p = plans_of(&src);
    assert!(has_address(host(&p, "lvs"), "lo", "192.168.188.100/32"));
}

#[test]
fn every_host_gets_a_boot_unit_and_its_runtime_plan() {
    for p in plans("inventories/dr.toml") {
        assert_eq!(p.boot_unit.as_deref(), Some("lvsctl-dr.service"));
        let json = p.files.iter().find(|f| f.path == "/etc/lvsctl/dr/host.json").unwrap();
        let runtime: HostPlan = serde_json::from_str(&json.content).unwrap();
        assert_eq!(runtime, p.runtime());
        let unit = p.files.iter().find(|f| f.path == "/etc/systemd/system/lvsctl-dr.service").unwrap();
        assert!(unit.content.contains("ExecStart=/a agent boot start --lab dr"));
        assert!(unit.content.contains("ExecStop=/a agent boot stop --lab dr"));
    }
}

/// A dual-stack lab with a service of each family per mode: each family gets its own needs.
fn dual_stack(mode: &str) -> String {
    format!(
        r#"
name = "ds"
mode = "{mode}"
[hosts.client]
role = "client"
ssh = "10.0.0.10"
gateway = ["172.16.0.200", "2001:db8:16::200"]
interfaces = {{ eth0 = ["172.16.0.10/24", "2001:db8:16::10/64"] }}
[hosts.router]
role = "router"
ssh = "10.0.0.200"
interfaces = {{ eth0 = ["172.16.0.200/24", "2001:db8:16::200/64"], eth1 = ["192.168.188.200/24", "2001:db8:188::200/64"] }}
[hosts.lvs]
role = "director"
ssh = "10.0.0.8"
{gw}
interfaces = {{ eth0 = ["192.168.188.8/24", "2001:db8:188::8/64"] }}
[hosts.web1]
role = "real-server"
ssh = "10.0.0.81"
{rsgw}
interfaces = {{ eth0 = ["192.168.188.81/24", "2001:db8:188::81/64"] }}
[[services]]
vip = "192.168.188.100"
port = 80
[[services]]
vip = "2001:db8:188::100"
port = 80
scheduler = "sh"
scheduler_flags = ["sh-fallback", "sh-port"]
persistence = 60
netmask = 64
"#,
        gw = if mode == "nat" { "" } else { r#"gateway = ["192.168.188.200", "2001:db8:188::200"]"# },
        rsgw = if mode == "nat" { "" } else { r#"gateway = ["192.168.188.200", "2001:db8:188::200"]"# },
    )
}

#[test]
fn ipv6_services_get_each_modes_ipv6_needs() {
    // DR: the VIP /128 on lo without DAD, no IPv6 sysctl; the IPv4 ARP settings stay IPv4's.
    let p = plans_of(&dual_stack("dr"));
    let rs = host(&p, "web1");
    let v6 = rs.addresses.iter().find(|a| a.address.to_string() == "2001:db8:188::100/128").expect("IPv6 VIP");
    assert!(v6.dev == "lo" && v6.nodad && !v6.deprecated, "{v6:?}");
    assert!(has_address(rs, "lo", "192.168.188.100/32"));
    assert_eq!(sysctl(rs, "net.ipv4.conf.lo.arp_ignore").as_deref(), Some("1"));
    let d = host(&p, "lvs");
    assert!(has_address(d, "eth0", "2001:db8:188::100/128"), "an on-link IPv6 VIP is on the director's segment");
    assert_eq!(sysctl(d, "net.ipv6.conf.all.forwarding"), None);
    let svc = d.ipvs.iter().find(|s| s.ipvs.vip.is_ipv6()).unwrap();
    assert_eq!(svc.destinations[0].address.to_string(), "2001:db8:188::81");
    let routes: Vec<String> = rs.routes.iter().map(|r| format!("{} {}", r.destination, r.gateway.unwrap())).collect();
    assert_eq!(routes, ["0.0.0.0/0 192.168.188.200", "::/0 2001:db8:188::200"]);
    let router = host(&p, "router");
    assert_eq!(sysctl(router, "net.ipv6.conf.all.forwarding").as_deref(), Some("1"));
    assert_eq!(sysctl(router, "net.ipv4.ip_forward").as_deref(), Some("1"));
    let runtime = d.runtime();
    let rules = Templates::embedded()
        .render("ipvsadm.rules.j2", &lvsctl::plan::files::TemplateContext::new(&runtime, "/a"))
        .unwrap();
    assert!(rules.contains("-A -t [2001:db8:188::100]:80 -s sh -b sh-fallback,sh-port -p 60 -M 64\n"), "{rules}");
    assert!(rules.contains("-a -t [2001:db8:188::100]:80 -r [2001:db8:188::81]:80 -g -w 1\n"), "{rules}");

    // TUN: ip6_tunnel, ip6tnl0 up and the VIP on it; the director's VIP deprecated.
    let p = plans_of(&dual_stack("tun"));
    let rs = host(&p, "web1");
    assert!(rs.modules.iter().any(|m| m.name == "ip6_tunnel") && rs.modules.iter().any(|m| m.name == "ipip"));
    assert!(rs.links_up.iter().any(|l| l.dev == "ip6tnl0"));
    assert!(has_address(rs, "ip6tnl0", "2001:db8:188::100/128"));
    assert!(has_address(rs, "tunl0", "192.168.188.100/32"));
    let d = host(&p, "lvs");
    let vip6 = d.addresses.iter().find(|a| a.address.to_string() == "2001:db8:188::100/128").unwrap();
    assert!(vip6.deprecated, "{vip6:?}");
    let vip4 = d.addresses.iter().find(|a| a.address.to_string() == "192.168.188.100/32").unwrap();
    assert!(!vip4.deprecated && !vip4.nodad, "{vip4:?}");

    // NAT: IPv6 forwarding on the director, both default routes derived through it.
    let p = plans_of(&dual_stack("nat"));
    let d = host(&p, "lvs");
    assert_eq!(sysctl(d, "net.ipv6.conf.all.forwarding").as_deref(), Some("1"));
    assert_eq!(sysctl(d, "net.ipv4.ip_forward").as_deref(), Some("1"));
    let rs = host(&p, "web1");
    let routes: Vec<String> = rs.routes.iter().map(|r| format!("{} {}", r.destination, r.gateway.unwrap())).collect();
    assert_eq!(routes, ["0.0.0.0/0 192.168.188.8", "::/0 2001:db8:188::8"]);
}

/// `[ipvs]`: both directors get the timeouts and the settings (real servers neither); a setting
/// lvsctl derives is the inventory's, and its reason says what the derived value was for; the
/// timeouts reach keepalived.conf and the standalone script.
#[test]
fn ipvs_settings_go_to_both_directors_and_the_inventory_wins_over_a_derived_one() {
    let src = std::fs::read_to_string("inventories/dr-ha.toml").unwrap()
        + "\n[ipvs]\ntimeouts = { tcp = 60, udp = 20 }\nsysctl = { expire_nodest_conn = 0, sloppy_tcp = true }\n";
    let p = plans_of(&src);
    for d in ["lvs1", "lvs2"] {
        let h = host(&p, d);
        let t = h.ipvs_timeouts.as_ref().expect("timeouts");
        assert_eq!((t.tcp, t.tcp_fin, t.udp), (Some(60), None, Some(20)));
        assert_eq!(sysctl(h, "net.ipv4.vs.sloppy_tcp").as_deref(), Some("1"));
        let s = h.sysctls.iter().find(|s| s.key == "net.ipv4.vs.expire_nodest_conn").unwrap();
        assert_eq!(s.value, "0");
        assert!(
            s.reason.contains("instead of the 1 lvsctl derives, which was for this: a new connection on a client port"),
            "{}",
            s.reason
        );
        assert_eq!(h.sysctls.iter().filter(|s| s.key == "net.ipv4.vs.expire_nodest_conn").count(), 1);
        let conf = h.files.iter().find(|f| f.path.ends_with("keepalived.conf")).unwrap();
        assert!(conf.content.contains("    lvs_timeouts tcp 60 udp 20\n"), "{}", conf.content);
    }
    for rs in ["web1", "web2"] {
        let h = host(&p, rs);
        assert!(h.ipvs_timeouts.is_none() && sysctl(h, "net.ipv4.vs.sloppy_tcp").is_none());
    }
    let t = Templates::embedded();
    let files =
        lvsctl::render::render_host(host(&p, "lvs1"), &Context { agent_path: "/a".into(), templates: &t }).unwrap();
    let script = files.iter().find(|f| f.name.ends_with(".sh")).expect("the script");
    assert!(script.content.contains("    set_timeouts 60 0 20\n"), "{}", script.content);
    assert!(script.content.contains("    restore_timeouts\n"));
}
