//! Every key an inventory may have, per table, with its type, default and meaning: the one
//! definition the parser's unknown-key check (`finish`), its did-you-mean, the
//! `lvsctl-inventory(5)` page and the README's key tables are held to.

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// What it takes: `string`, `integer 1-65535`, `table`, …
    pub ty: &'static str,
    /// `required`, a default value, or when it is required.
    pub default: &'static str,
    pub doc: &'static str,
}

/// One table of the inventory.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// How the inventory writes it: `[hosts.NAME]`.
    pub path: &'static str,
    pub doc: &'static str,
    pub keys: &'static [Key],
}

impl Table {
    /// The key names, for the unknown-key check.
    pub fn names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.name).collect()
    }
}

const fn key(name: &'static str, ty: &'static str, default: &'static str, doc: &'static str) -> Key {
    Key { name, ty, default, doc }
}

pub const TOP: Table = Table {
    path: "top level",
    doc: "The lab as a whole.",
    keys: &[
        key(
            "name",
            "string",
            "required",
            "The lab's name: 1-20 of a-z 0-9 -. It becomes part of file, unit and namespace names (lvsctl-NAME.service).",
        ),
        key("description", "string", "none", "Free text."),
        key(
            "mode",
            "nat | dr | tun",
            "required",
            "The forwarding method of every service (a service may override it).",
        ),
        key("ssh", "table", "see [ssh]", "SSH defaults for every host."),
        key("hosts", "table of tables", "required", "One table per host, [hosts.NAME]; NAME is 1-32 of a-z 0-9 - _."),
        key("services", "array of tables", "required", "The virtual services, [[services]]."),
        key("lab", "table", "none", "How `lvsctl lab create` builds the hosts on this machine."),
        key("ha", "table", "required with two directors", "The HA pair's VRRP settings; refused with one director."),
        key("ipvs", "table", "none", "The directors' IPVS settings: connection timeouts and net.ipv4.vs.* sysctls."),
        key("metrics", "table", "none", "Every director serves Prometheus metrics: [metrics] port = 9382."),
    ],
};

/// The keys `[ssh]` and a host's `ssh` table share.
macro_rules! ssh_keys {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            key("user", "string", "root", "The login user. lvsctl's agent needs root: log in as root, or set become."),
            key("port", "integer 1-65535", "22", "The SSH port."),
            key("identity", "path", "none", "A private key file (~ is expanded); otherwise ssh_config and the agent decide."),
            key("host_key", "strict | accept-new", "strict", "strict: the host key must be in known_hosts; accept-new: unknown keys are added on first contact, changed keys are still refused."),
            key("known_hosts", "path", "none", "A known_hosts file to use instead of the user's."),
            key("config", "path", "none", "An ssh_config file (ssh -F); ProxyJump and aliases work through it."),
            key("connect_timeout", "integer seconds", "10", "How long to wait for a connection."),
            key("become", "none | sudo", "none", "sudo: run the agent through sudo -n after logging in as user (passwordless sudo; a password prompt is an error that says how to allow it)."),
        ]
    };
}

pub const SSH: Table = Table { path: "[ssh]", doc: "SSH defaults for every host.", keys: ssh_keys!() };

pub const HOST_SSH: Table = Table {
    path: "[hosts.NAME] ssh = { ... }",
    doc: "A host's ssh as a table: its address and any [ssh] key, overriding [ssh] for that host. \
          A host's ssh may also be a string: an IPv4 or IPv6 address, a host name, an ssh_config alias, or \"local\" for this machine (applied without SSH).",
    keys: ssh_keys!(key(
        "address",
        "string",
        "required",
        "The IPv4 or IPv6 address, host name or ssh_config alias to connect to."
    )),
};

pub const HOST: Table = Table {
    path: "[hosts.NAME]",
    doc: "One host of the lab.",
    keys: &[
        key(
            "role",
            "client | router | director | real-server | sorry-server",
            "required",
            "What the host is. One director, or two with [ha]; a sorry-server answers a service's clients when no real server is healthy and is provisioned like a real server of that service.",
        ),
        key("ssh", "string or table", "required", "How to reach the host (see [ssh] and ssh = { ... })."),
        key(
            "gateway",
            "address, or a list with one per family",
            "none",
            "The default route lvsctl ensures per family (the prior one is restored by down): \"192.168.188.200\", or [\"192.168.188.200\", \"2001:db8:188::200\"] for a dual-stack host; a link-local next hop names its device (\"fe80::1%eth0\"). A NAT real server's gateway must be the director's address on its subnet and is derived when left out.",
        ),
        key(
            "interfaces",
            "table of address arrays",
            "none",
            "{ eth0 = [\"192.168.188.81/24\", \"2001:db8:188::81/64\"], ... }: links lvsctl brings up and the addresses it ensures, as ADDRESS/PREFIX, of either family (IPv6 ones without duplicate address detection, usable at once).",
        ),
        key(
            "vip_device",
            "interface name",
            "the VIP's subnet's interface, else lo",
            "Director only: where it holds the VIPs.",
        ),
        key(
            "address",
            "address, or a list with one per family",
            "its address on the director's subnet",
            "Real server only: the address the director forwards to, per family (needed for TUN real servers behind routers with several addresses).",
        ),
        key(
            "priority",
            "integer 1-254",
            "required with [ha]",
            "Director of an HA pair only: its VRRP priority; the higher one is master, and the two must differ.",
        ),
        key(
            "metrics_listen",
            "ADDRESS:PORT",
            "[metrics] port on its SSH address",
            "Director only: where its exporter of Prometheus metrics listens (one of its own addresses; \"[ADDR]:PORT\" for IPv6). Enables the exporter on this director even without [metrics].",
        ),
    ],
};

pub const SERVICE: Table = Table {
    path: "[[services]]",
    doc: "One virtual service: a VIP and port balanced over real servers.",
    keys: &[
        key("name", "string", "none", "A name for messages."),
        key(
            "vip",
            "IPv4 or IPv6 address",
            "required",
            "The virtual IP clients connect to. Its family is the service's: every real server needs an address of it.",
        ),
        key("port", "integer 1-65535", "required", "The service's port."),
        key("protocol", "tcp | udp | sctp", "tcp", "The service's protocol."),
        key(
            "fwmark",
            "integer 1-4294967295",
            "none",
            "A firewall-mark service (ipvsadm -f) instead of vip, port and protocol: the director's nftables table of the lab marks the packets of `match` with it.",
        ),
        key(
            "match",
            "array of { vip, protocol, ports }",
            "required with fwmark",
            "fwmark only: the packets marked for the service; VIPs of both families make one IPVS service per family with the same mark.",
        ),
        key(
            "scheduler",
            "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh",
            "wlc",
            "How IPVS picks a real server (the kernel module ip_vs_NAME).",
        ),
        key(
            "persistence",
            "integer seconds, 0-2678400",
            "0",
            "How long a client sticks to one real server (ipvsadm -p); 0 is off.",
        ),
        key(
            "scheduler_flags",
            "array of sh-fallback sh-port mh-fallback mh-port",
            "none",
            "The scheduler's flags (ipvsadm -b), each only with its scheduler (sh or mh).",
        ),
        key("one_packet", "boolean", "false", "UDP only: schedule every packet on its own (ipvsadm -o)."),
        key(
            "netmask",
            "IPv4 netmask, or IPv6 prefix length",
            "none",
            "Persistence granularity (ipvsadm -M), only with persistence: \"255.255.255.0\" for an IPv4 service, 64 for an IPv6 one.",
        ),
        key("mode", "nat | dr | tun", "the lab's", "This service's forwarding method."),
        key(
            "tun_type",
            "ipip | gue | gre",
            "ipip",
            "TUN only: how the director wraps packets to real servers (ipvsadm --tun-type; Linux 5.3+). gue is IP in UDP (real servers get a GUE port), gre is GRE (real servers receive on gre0).",
        ),
        key(
            "tun_port",
            "integer 1-65535",
            "required with gue",
            "GUE only: the UDP port the real servers receive the tunnel on (ipvsadm --tun-port; `ip fou add port N gue` on each real server).",
        ),
        key(
            "tun_checksum",
            "none | csum",
            "none",
            "GUE only: a UDP checksum on the outer header (ipvsadm --tun-csum). GRE's and remote checksum offload are refused: see the README's mode table.",
        ),
        key(
            "snat",
            "bool",
            "false",
            "NAT only: one-armed NAT. The director also rewrites each request's source to its own address (net.ipv4.vs.conntrack = 1 and a source NAT rule in lvsctl's nftables table), so real servers answer it through their own routes, on any subnet, with no gateway change; they no longer see the client's address. Not on firewall-mark services nor in an HA pair (yet).",
        ),
        key(
            "real_servers",
            "array of tables",
            "every real-server host, weight 1",
            "[{ host = \"web1\", weight = 3 }, ...] (see real_servers).",
        ),
        key("description", "string", "none", "Free text for messages."),
        key("health_check", "table", "none", "How keepalived checks each real server (see health_check)."),
        key(
            "on_failure",
            "remove | quiesce",
            "remove",
            "What keepalived does with a real server that fails its check: remove it from the table, or quiesce it (weight 0: established connections finish; with persistence, its templates expire).",
        ),
        key(
            "sorry_server",
            "table or \"ADDRESS:PORT\"",
            "none",
            "Where clients go when no real server is healthy: { host = \"sorry\", port = 80 } (a sorry-server host, or the single director itself), or \"ADDRESS:PORT\" for a machine outside the inventory; in DR and TUN its port is the service's.",
        ),
    ],
};

pub const BACKEND: Table = Table {
    path: "[[services]] real_servers = [{ ... }]",
    doc: "One real server of a service.",
    keys: &[
        key("host", "host name", "required", "A host of role real-server."),
        key("weight", "integer 0-65535", "1", "Its share, for weighted schedulers; 0 takes no new connections."),
        key(
            "port",
            "integer 1-65535",
            "the service's",
            "NAT only: the port the real server listens on (port mapping).",
        ),
        key("u_threshold", "integer", "0", "Upper connection limit (ipvsadm -x); 0 is none."),
        key("l_threshold", "integer", "0", "Lower connection limit (ipvsadm -y); 0 is none."),
    ],
};

pub const MATCH: Table = Table {
    path: "[[services]] match = [{ ... }]",
    doc: "Packets a firewall-mark service takes: to one VIP, with one protocol, to any of some ports.",
    keys: &[
        key("vip", "IPv4 or IPv6 address", "required", "The destination address (held like any VIP)."),
        key("protocol", "tcp | udp | sctp", "tcp", "The packets' protocol."),
        key("ports", "array of integers 1-65535", "required", "The destination ports."),
    ],
};

pub const HEALTH_CHECK: Table = Table {
    path: "[[services]] health_check = { ... }",
    doc: "keepalived's check of each real server of the service (ldirectord's checkinterval, checktimeout, request and receive have their keys here).",
    keys: &[
        key("type", "http | tcp | none", "none", "http: GET path must answer status; tcp: a connection must open."),
        key("path", "string starting with /", "/", "http only: the path requested."),
        key("status", "integer 100-599", "200", "http only: the status the answer must have."),
        key("expect", "string", "none", "http only: text the body must contain."),
        key("interval", "integer seconds", "3", "Seconds between two checks (keepalived's delay_loop)."),
        key("timeout", "integer seconds", "2", "Seconds a check may take."),
        key("retries", "integer", "2", "Failed checks in a row before the real server counts as down."),
        key("port", "integer 1-65535", "the real server's", "The port checked."),
    ],
};

pub const SORRY_SERVER: Table = Table {
    path: "[[services]] sorry_server = { ... }",
    doc: "A host of the inventory answering when no real server is healthy.",
    keys: &[
        key("host", "host name", "required", "A host of role sorry-server, or the single director itself."),
        key("port", "integer 1-65535", "the service's", "Its port (in DR and TUN it must be the service's)."),
    ],
};

pub const HA: Table = Table {
    path: "[ha]",
    doc: "The VRRP settings of a pair of directors, run by keepalived.",
    keys: &[
        key("virtual_router_id", "integer 1-255", "51", "The VRRP router id; unique per segment."),
        key("advert_interval", "integer seconds", "1", "Seconds between VRRP adverts."),
        key("sync", "boolean", "true", "IPVS connection sync between the directors (lvs_sync_daemon)."),
        key(
            "preempt",
            "boolean",
            "true",
            "The higher priority takes the VIPs back when it returns; with false, whichever director's keepalived is up first keeps them.",
        ),
        key("unicast", "boolean", "false", "VRRP to the other director's address instead of multicast."),
        key(
            "floating_gateway",
            "ADDRESS/PREFIX, or a list with one per family",
            "required in NAT",
            "NAT only: the real servers' gateway on the directors' real-server side, held by the master; one per family the NAT services use.",
        ),
    ],
};

pub const LAB: Table = Table {
    path: "[lab]",
    doc: "How `lvsctl lab create` builds the hosts on this machine.",
    keys: &[
        key(
            "segments",
            "table of \"HOST:IFACE\" arrays",
            "none",
            "{ back = [\"router:eth0\", \"lvs:eth0\"], ... }: which host interfaces share an L2 segment; every interface of every host is on exactly one.",
        ),
        key(
            "management",
            "IPv4 ADDRESS/PREFIX",
            "the /24 of the first ssh address",
            "The subnet of the hosts' ssh addresses; it must not overlap lab subnets.",
        ),
    ],
};

/// The largest IPVS timeout every kernel takes (seconds; it holds them in jiffies in an int).
pub const MAX_TIMEOUT: u32 = 2_147_483;

pub const IPVS: Table = Table {
    path: "[ipvs]",
    doc: "The directors' IPVS settings (both directors of a pair). Set by up, kept by the boot unit and the rendered files, \
          given back by down; what is left out stays as the kernel has it.",
    keys: &[
        key(
            "timeouts",
            "table",
            "none",
            "{ tcp = 900, tcp_fin = 120, udp = 300 }: how long IPVS keeps idle connections (see [ipvs] timeouts).",
        ),
        key(
            "sysctl",
            "table",
            "none",
            "{ conn_reuse_mode = 2, sloppy_tcp = true, ... }: net.ipv4.vs.* settings, named without the prefix (see [ipvs] sysctl).",
        ),
    ],
};

pub const METRICS: Table = Table {
    path: "[metrics]",
    doc: "lvsctl's exporter on every director: up starts it (lvsctl-agent agent metrics), the boot unit starts it again, \
          down stops it. It serves GET /metrics in Prometheus's text format, the same series as `lvsctl metrics`.",
    keys: &[key(
        "port",
        "integer 1-65535",
        "required",
        "The TCP port it listens on, on each director's SSH address (a host's metrics_listen overrides it). 9382 is not taken by a known exporter.",
    )],
};

pub const IPVS_TIMEOUTS: Table = Table {
    path: "[ipvs] timeouts = { ... }",
    doc: "IPVS's connection timeouts in seconds, as ipvsadm --set sets them (keepalived's lvs_timeouts in a keepalived lab). \
          0 is refused: the kernel reads it as unchanged.",
    keys: &[
        key("tcp", "integer seconds 1-2147483", "unchanged (kernel: 900)", "Established TCP connections."),
        key(
            "tcp_fin",
            "integer seconds 1-2147483",
            "unchanged (kernel: 120)",
            "TCP connections after the client's FIN.",
        ),
        key(
            "udp",
            "integer seconds 1-2147483",
            "unchanged (kernel: 300)",
            "UDP \"connections\" (a client address and port).",
        ),
    ],
};

/// One `net.ipv4.vs.*` setting `[ipvs] sysctl` may set, with the range lvsctl accepts.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub lo: i128,
    pub hi: i128,
    /// The kernel's value when ip_vs loads.
    pub kernel: i128,
    pub doc: &'static str,
}

/// `(name, lo, hi, kernel default, meaning)` for each setting: `IPVS_SETTINGS` for the parser
/// and the planner, and the `[ipvs] sysctl` table of keys for the page.
macro_rules! ipvs_settings {
    ($(($name:literal, $lo:literal, $hi:literal, $kernel:literal, $doc:literal),)*) => {
        pub const IPVS_SETTINGS: &[Setting] =
            &[$(Setting { name: $name, lo: $lo, hi: $hi, kernel: $kernel, doc: $doc },)*];

        pub const IPVS_SYSCTL: Table = Table {
            path: "[ipvs] sysctl = { ... }",
            doc: "net.ipv4.vs.* settings of the directors, named without the prefix (the ip_vs module must be loaded: \
                  lvsctl loads it on directors). Where lvsctl derives one itself (expire_nodest_conn on every director, \
                  expire_quiescent_template with persistent services) the inventory's value wins and the plan \
                  says what that costs.",
            keys: &[$(key($name, concat!("integer ", $lo, "-", $hi), concat!("unchanged (kernel: ", $kernel, ")"), $doc),)*],
        };
    };
}

ipvs_settings! {
    ("am_droprate", 0, 2147483647, 10, "Defense: drop_packet's mode 3 drops one packet in this many."),
    ("amemthresh", 0, 2147483647, 1024, "Defense: available memory (pages) under which the automatic defenses (mode 1 of drop_entry, drop_packet, secure_tcp) turn on."),
    ("backup_only", 0, 1, 0, "1: no director function while this director's sync daemon is a backup (avoids loops between DR/TUN directors)."),
    ("cache_bypass", 0, 1, 0, "1: a packet no real server is available for goes to its original destination instead of being dropped."),
    ("conn_reuse_mode", 0, 3, 1, "A new connection from a client port still in the table: 0 goes to the old connection's real server (and expire_nodest_conn no longer helps); 1 is rescheduled when that is safe (NAT TIME_WAIT, expire_nodest_conn); 2 also from FIN_WAIT, the last state a DR director sees."),
    ("conntrack", 0, 1, 0, "1: IPVS connections keep netfilter conntrack entries (for firewall rules that match their state, and source NAT)."),
    ("drop_entry", 0, 3, 0, "Defense: randomly drop connection entries when memory is short (0 off, 1 automatic, 2 on, 3 always)."),
    ("drop_packet", 0, 3, 0, "Defense: drop a share of new connections' packets (0 off, 1 automatic, 2 on, 3 always, at am_droprate)."),
    ("expire_nodest_conn", 0, 1, 0, "1: a packet of a connection whose real server was removed expires it at once (the client's retry is scheduled anew) instead of being dropped until the entry times out; a new connection on a client port still mapped to a real server at weight 0 is scheduled anew. lvsctl sets 1 on every director."),
    ("expire_quiescent_template", 0, 1, 0, "1: a persistence template of a real server with weight 0 expires, so that its clients go elsewhere (drain with persistence)."),
    ("ignore_tunneled", 0, 1, 0, "1: IPVS leaves packets of protocols it does not handle (tunnels) alone: avoids loops when a director is also a TUN real server."),
    ("nat_icmp_send", 0, 1, 0, "1: a NAT director answers a packet of a connection whose real server is gone with an ICMP error."),
    ("pmtu_disc", 0, 1, 1, "1: a DF packet too big for the tunnel (TUN) gets ICMP fragmentation-needed; 0 fragments it."),
    ("run_estimation", 0, 1, 1, "1: the estimator runs: rates (ipvsadm --rate) and, on kernels before 6.2 like the lab's 6.1, the counters too (ipvsadm --stats, lvsctl status and verify: with 0 they stop)."),
    ("schedule_icmp", 0, 1, 0, "1: ICMP packets without a connection (a ping of the VIP) are scheduled to a real server."),
    ("secure_tcp", 0, 3, 0, "Defense: the stricter TCP state timeouts against SYN floods (0 off, 1 automatic, 2 on, 3 always)."),
    ("sloppy_sctp", 0, 1, 0, "1: an SCTP connection may be taken up from any chunk, not only INIT (a director that missed its start)."),
    ("sloppy_tcp", 0, 1, 0, "1: a TCP connection may be taken up from any packet, not only SYN (a director that missed its start, failover without sync)."),
    ("snat_reroute", 0, 1, 1, "1: a NAT reply is routed again once its source is the VIP (source-based policy routing)."),
    ("sync_persist_mode", 0, 1, 0, "1: the sync daemon sends persistent connections' templates only, fewer messages."),
    ("sync_retries", 0, 3, 0, "How many times a sync message is sent again (sync_version 1)."),
    ("sync_version", 0, 1, 1, "The sync message format: 1, or 0 for a backup with a kernel before 2.6.39."),
}

/// Every table, in the order the page describes them.
pub const TABLES: [&Table; 15] = [
    &TOP,
    &SSH,
    &HOST,
    &HOST_SSH,
    &SERVICE,
    &MATCH,
    &BACKEND,
    &HEALTH_CHECK,
    &SORRY_SERVER,
    &HA,
    &IPVS,
    &IPVS_TIMEOUTS,
    &IPVS_SYSCTL,
    &METRICS,
    &LAB,
];

/// Text for roff: a leading `.` or `'` would be a request, a backslash an escape.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') { format!("\\&{s}") } else { s }
}

/// lvsctl-inventory(5), in roff.
pub fn man_page(version: &str) -> String {
    let mut o = String::new();
    o.push_str(&format!(".TH LVSCTL\\-INVENTORY 5 \"{version}\" \"lvsctl {version}\" \"File Formats\"\n"));
    o.push_str(".SH NAME\nlvsctl\\-inventory \\- the TOML file that describes an LVS lab for lvsctl\n");
    o.push_str(".SH DESCRIPTION\n");
    o.push_str(&roff(
        "An inventory is a TOML file: the lab's hosts with their roles and SSH access, and the virtual services. \
         Unknown keys are errors (with a did-you-mean); every problem of the file is reported at once, with its file, \
         line, column and key path, before any host is touched (lvsctl check). This page lists every key lvsctl \
         accepts; it is generated from the definitions lvsctl's parser checks the file against.",
    ));
    o.push('\n');
    for t in TABLES {
        o.push_str(&format!(".SH \"{}\"\n{}\n", roff(&t.path.to_uppercase()), roff(t.doc)));
        for k in t.keys {
            let when = match k.default {
                d if d.starts_with("required") => d.to_string(),
                "none" => "optional".to_string(),
                d => format!("default: {d}"),
            };
            o.push_str(&format!(".TP\n.B {}\n({}; {})\n{}\n", roff(k.name), roff(k.ty), roff(&when), roff(k.doc)));
        }
    }
    o.push_str(".SH EXAMPLE\n.nf\n");
    for line in include_str!("../../inventories/dr.toml").lines() {
        o.push_str(&roff(line));
        o.push('\n');
    }
    o.push_str(".fi\n.SH \"SEE ALSO\"\nlvsctl(1), ipvsadm(8), keepalived.conf(5)\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_table_lists_a_key_twice() {
        for t in TABLES {
            let mut names = t.names();
            names.sort();
            let n = names.len();
            names.dedup();
            assert_eq!(n, names.len(), "{}", t.path);
        }
    }

    #[test]
    fn the_page_is_roff_with_every_key() {
        let page = man_page("0.1.0");
        assert!(page.starts_with(".TH LVSCTL\\-INVENTORY 5"));
        for t in TABLES {
            for k in t.keys {
                assert!(page.contains(&format!(".B {}\n", roff(k.name))), "{}", k.name);
            }
        }
        assert!(
            !page.lines().any(|l| l.starts_with('.') && l.len() > 1 && l.as_bytes()[1] == b' '),
            "no stray requests"
        );
    }
}
