//! ldirectord.cf read into a [`Setup`]: `virtual=` (and `virtual6=`) blocks — the indented lines
//! after one — with their `real=` lines (ranges `A->B` expanded), `scheduler`, `persistent`,
//! `netmask`, `protocol` (`fwm` for a firewall mark), `fallback` as the sorry server, `quiescent`,
//! and the check: `checktype` (`connect`, `negotiate` for http), `checkport`, `request`/`receive`,
//! `checkinterval`, `checktimeout`, `failurecount`; global lines give the defaults. What the
//! inventory cannot say is a note with its line. Pure: text in, the setup or every bad line out.

use std::net::IpAddr;

use super::model::{Check, Dest, HttpCheck, Loc, Service, Setup, valid_name};
use crate::ipvs::{Forward, Netmask, Protocol, ServiceKey};

/// ldirectord's defaults (ldirectord(8)).
const DEFAULT_CHECK_INTERVAL: u32 = 10;
const DEFAULT_CHECK_TIMEOUT: u32 = 5;
const DEFAULT_FAILURE_COUNT: u32 = 1;

/// A line the file cannot be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdError {
    pub line: usize,
    pub message: String,
}

/// Settings a virtual takes from the global lines unless it says its own.
#[derive(Clone)]
struct Defaults {
    check_interval: u32,
    check_timeout: u32,
    failure_count: u32,
    quiescent: bool,
    fallback: Option<(IpAddr, u16)>,
    fallback6: Option<(IpAddr, u16)>,
    checktype: Option<String>,
}

/// One `virtual=` block as read.
struct Virtual {
    at: Loc,
    key: Option<ServiceKey>,
    /// `virtual=N` before `protocol=fwm` says it is a mark.
    mark: Option<u32>,
    v6: bool,
    name: Option<String>,
    scheduler: String,
    persistence: u32,
    netmask: Option<Netmask>,
    protocol: Protocol,
    reals: Vec<Dest>,
    d: Defaults,
    checkport: Option<u16>,
    request: Option<String>,
    receive: Option<(Loc, String)>,
    service: Option<String>,
    fallback: Option<(IpAddr, u16)>,
}

/// The setup `text` (the file `name`) describes, or every line that could not be read.
pub fn parse(text: &str, name: &str) -> Result<Setup, Vec<LdError>> {
    let mut setup = Setup::default();
    let mut errors: Vec<LdError> = Vec::new();
    let mut d = Defaults {
        check_interval: DEFAULT_CHECK_INTERVAL,
        check_timeout: DEFAULT_CHECK_TIMEOUT,
        failure_count: DEFAULT_FAILURE_COUNT,
        quiescent: true,
        fallback: None,
        fallback6: None,
        checktype: None,
    };
    let mut current: Option<Virtual> = None;
    // The indented lines of a virtual= left out (said once, on its line).
    let mut skipping = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let at = Loc { file: name.to_string(), line };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        // A line at the margin ends the virtual= block before it.
        if !indented {
            skipping = false;
            if let Some(v) = current.take() {
                finish(v, &mut setup);
            }
        } else if skipping {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            errors.push(LdError { line, message: format!("{trimmed}: not a `key=value` line") });
            continue;
        };
        let key = key.trim();
        // A value may carry a comment after it, and quotes around it.
        let value = value.split(" #").next().unwrap_or("").trim();
        match (key, indented) {
            ("virtual" | "virtual6", _) => {
                if let Some(v) = current.take() {
                    finish(v, &mut setup);
                }
                let mut v = Virtual {
                    at: at.clone(),
                    key: None,
                    mark: None,
                    v6: key == "virtual6",
                    name: None,
                    scheduler: "wrr".into(),
                    persistence: 0,
                    netmask: None,
                    protocol: Protocol::Tcp,
                    reals: vec![],
                    d: d.clone(),
                    checkport: None,
                    request: None,
                    receive: None,
                    service: None,
                    fallback: None,
                };
                if let Ok(m) = value.parse::<u32>() {
                    v.mark = Some(m);
                } else {
                    match endpoint(value) {
                        Ok((a, p)) if p > 0 => v.key = Some(ServiceKey::addr(Protocol::Tcp, a, p)),
                        Ok(_) => {
                            errors.push(LdError { line, message: format!("virtual={value}: the port is missing") });
                            continue;
                        }
                        Err(e) => {
                            setup.note(&at, format!("virtual={value}: {e}; this virtual service is left out"));
                            skipping = true;
                            continue;
                        }
                    }
                }
                current = Some(v);
            }
            (_, true) if current.is_none() => {
                errors.push(LdError { line, message: format!("{key}: an indented line outside a virtual= block") });
            }
            (_, true) => {
                let v = current.as_mut().expect("checked");
                if let Err(m) = virtual_line(v, key, unquote(value), &at, &mut setup) {
                    errors.push(LdError { line, message: m });
                }
            }
            (_, false) => {
                if let Err(m) = global_line(&mut d, key, unquote(value), &at, &mut setup) {
                    errors.push(LdError { line, message: m });
                }
            }
        }
    }
    if let Some(v) = current.take() {
        finish(v, &mut setup);
    }
    if errors.is_empty() { Ok(setup) } else { Err(errors) }
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v)
}

fn number(key: &str, v: &str) -> Result<u32, String> {
    v.parse().map_err(|_| format!("{key}={v}: not a whole number"))
}

fn yes(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{key}={v}: yes or no")),
    }
}

/// `ADDR:PORT`, `[ADDR6]:PORT`, or `ADDR` alone (port 0).
fn endpoint(s: &str) -> Result<(IpAddr, u16), String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip(), sa.port()));
    }
    if let Ok(a) = s.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok((a, 0));
    }
    match s.rsplit_once(':') {
        Some((a, p)) if a.parse::<IpAddr>().is_ok() => {
            Err(format!("{p}: not a port number (service names are not read)"))
        }
        _ => Err(format!("{s}: not an address (host names are not resolved)")),
    }
}

fn fallback(v: &str) -> Result<(IpAddr, u16), String> {
    let first = v.split_whitespace().next().unwrap_or("");
    endpoint(first)
}

fn global_line(d: &mut Defaults, key: &str, v: &str, at: &Loc, setup: &mut Setup) -> Result<(), String> {
    match key {
        "checkinterval" => d.check_interval = number(key, v)?.clamp(1, 3600),
        "checktimeout" | "negotiatetimeout" | "connecttimeout" => d.check_timeout = number(key, v)?.clamp(1, 3600),
        "failurecount" => d.failure_count = number(key, v)?.min(100),
        "quiescent" => d.quiescent = yes(key, v)?,
        "fallback" => d.fallback = Some(fallback(v)?),
        "fallback6" => d.fallback6 = Some(fallback(v)?),
        "checktype" => d.checktype = Some(v.to_string()),
        _ => setup.note(at, format!("{key}: ldirectord's own setting (logging, mail, reloading, …), not the lab's")),
    }
    Ok(())
}

fn virtual_line(v: &mut Virtual, key: &str, value: &str, at: &Loc, setup: &mut Setup) -> Result<(), String> {
    match key {
        "real" | "real6" => {
            let mut words = value.split_whitespace();
            let target = words.next().ok_or("real= needs ADDR[:PORT]")?;
            let mut forward = Forward::Route;
            let mut weight = 1;
            for w in words {
                match w {
                    "gate" => forward = Forward::Route,
                    "masq" => forward = Forward::Masq,
                    "ipip" => forward = Forward::Tunnel,
                    n if n.parse::<u32>().is_ok() => weight = n.parse().expect("checked"),
                    other => {
                        setup.note(
                            at,
                            format!("real= {other}: a per-server request or receive; the virtual's check is used"),
                        );
                        break;
                    }
                }
            }
            let (addrs, port) = match target.split_once("->") {
                Some((first, rest)) => {
                    let Ok((last, port)) = endpoint(rest) else {
                        setup.note(
                            at,
                            format!("real={target}: host names are not resolved; this real server is left out"),
                        );
                        return Ok(());
                    };
                    let Ok(first) = first.parse::<IpAddr>() else {
                        setup.note(
                            at,
                            format!("real={target}: host names are not resolved; this real server is left out"),
                        );
                        return Ok(());
                    };
                    match (first, last) {
                        (IpAddr::V4(f), IpAddr::V4(l))
                            if u32::from(l) >= u32::from(f) && u32::from(l) - u32::from(f) < 256 =>
                        {
                            ((u32::from(f)..=u32::from(l)).map(|x| IpAddr::V4(x.into())).collect::<Vec<_>>(), port)
                        }
                        _ => return Err(format!("real={target}: a range of up to 256 IPv4 addresses, first to last")),
                    }
                }
                None => match endpoint(target) {
                    Ok((a, p)) => (vec![a], p),
                    Err(e) => {
                        setup.note(at, format!("real={target}: {e}; this real server is left out"));
                        return Ok(());
                    }
                },
            };
            for address in addrs {
                v.reals.push(Dest {
                    at: at.clone(),
                    address,
                    port,
                    forward,
                    weight,
                    u_threshold: 0,
                    l_threshold: 0,
                    encap: Default::default(),
                });
            }
        }
        "scheduler" => v.scheduler = value.to_string(),
        "persistent" => v.persistence = number(key, value)?,
        "netmask" => {
            v.netmask = Some(match (value.parse::<std::net::Ipv4Addr>(), value.parse::<u8>()) {
                (Ok(m), _) => Netmask::V4(m),
                (_, Ok(p)) if p <= 128 => Netmask::V6(p),
                _ => return Err(format!("netmask={value}: neither a netmask nor a prefix length")),
            })
        }
        "protocol" => match value {
            "tcp" => v.protocol = Protocol::Tcp,
            "udp" => v.protocol = Protocol::Udp,
            "sctp" => v.protocol = Protocol::Sctp,
            "fwm" => {
                if v.mark.is_none() {
                    return Err("protocol=fwm: the virtual= line gives a mark (a number) for it".into());
                }
            }
            _ => return Err(format!("protocol={value}: tcp, udp, sctp or fwm")),
        },
        "servicename" => v.name = valid_name(&value.replace(' ', "-")),
        "comment" => {}
        "service" => v.service = Some(value.to_ascii_lowercase()),
        "checktype" => v.d.checktype = Some(value.to_string()),
        "checkport" => {
            v.checkport =
                Some(u16::try_from(number(key, value)?).map_err(|_| format!("checkport={value}: not a port"))?)
        }
        "request" => v.request = Some(value.to_string()),
        "receive" => v.receive = Some((at.clone(), value.to_string())),
        "checkinterval" => v.d.check_interval = number(key, value)?.clamp(1, 3600),
        "checktimeout" | "negotiatetimeout" | "connecttimeout" => {
            v.d.check_timeout = number(key, value)?.clamp(1, 3600)
        }
        "failurecount" => v.d.failure_count = number(key, value)?.min(100),
        "quiescent" => v.d.quiescent = yes(key, value)?,
        "fallback" | "fallback6" => v.fallback = Some(fallback(value)?),
        other => {
            let what = match other {
                "virtualhost" => "the Host header of HTTP checks: the lab's real servers answer any",
                "login" | "passwd" | "database" | "secret" => "credentials of a protocol check",
                "httpmethod" => "the HTTP method of the check (the inventory's is GET)",
                "checkcommand" => "an external check's command",
                "emailalert" | "emailalertfreq" | "emailalertstatus" => "mail on a check's change",
                _ => "not something an inventory's service says",
            };
            setup.note(at, format!("{other}: {what}"));
        }
    }
    Ok(())
}

/// The service a finished `virtual=` block gives, with its check.
fn finish(v: Virtual, setup: &mut Setup) {
    let key = match (v.key, v.mark) {
        (Some(ServiceKey::Addr { addr, port, .. }), _) => ServiceKey::addr(v.protocol, addr, port),
        (_, Some(m)) if m > 0 => ServiceKey::Mark { fwmark: m, ipv6: v.v6 },
        _ => {
            setup.note(&v.at, "virtual=0: not a firewall mark");
            return;
        }
    };
    let mut s = Service::new(v.at.clone(), key);
    s.name = v.name;
    s.scheduler = v.scheduler;
    s.persistence = v.persistence;
    s.netmask = v.netmask;
    s.dests = v.reals;
    if let ServiceKey::Addr { port, .. } = key {
        for d in &mut s.dests {
            if d.port == 0 {
                d.port = port;
            }
        }
    } else {
        for d in &mut s.dests {
            d.port = 0;
        }
    }
    let fallback = v.fallback.or(if v.v6 { v.d.fallback6 } else { v.d.fallback });
    s.sorry = fallback.map(|(a, p)| (a, if p == 0 { key_port(key) } else { p }));
    let checktype = v.d.checktype.as_deref().unwrap_or("negotiate");
    let service = v.service.as_deref().unwrap_or(match key_port(key) {
        80 => "http",
        443 => "https",
        _ => "none",
    });
    let base = Check {
        http: None,
        interval: v.d.check_interval,
        timeout: v.d.check_timeout,
        retries: v.d.failure_count,
        port: v.checkport,
    };
    s.check = match (checktype, service) {
        ("connect", _) => Some(base),
        ("negotiate" | "negotiate_connect", "http" | "https") => {
            if service == "https" {
                setup.note(
                    &v.at,
                    "service=https: an inventory's http check speaks plain HTTP; checked with HTTP GET instead",
                );
            }
            let path = v.request.as_deref().map(|r| if r.starts_with('/') { r.to_string() } else { format!("/{r}") });
            let expect = match &v.receive {
                Some((at, r)) if r.chars().any(|c| "\\^$.|?*+()[]{}".contains(c)) => {
                    setup.note(at, "receive: a regular expression; an inventory's check looks for plain text (expect)");
                    None
                }
                Some((_, r)) => Some(r.clone()),
                None => None,
            };
            Some(Check {
                http: Some(HttpCheck { path: path.unwrap_or_else(|| "/".into()), status: 200, expect }),
                ..base
            })
        }
        ("negotiate" | "negotiate_connect", "none") => Some(base),
        ("negotiate" | "negotiate_connect", other) => {
            setup.note(&v.at, format!("checktype=negotiate for service={other}: an inventory checks with TCP connects or HTTP GETs; checked with a TCP connect"));
            Some(base)
        }
        ("on", _) => None,
        (other, _) => {
            let what = match other {
                "external" | "external-perl" => "an external check script",
                "ping" => "a ping check",
                "off" => "real servers never taken as up",
                n if n.parse::<u32>().is_ok() => "connects with a negotiate every N checks",
                _ => "a check type ldirectord has, an inventory does not",
            };
            setup.note(&v.at, format!("checktype={other}: {what}; the real servers are not checked"));
            None
        }
    };
    if v.protocol == Protocol::Udp && s.check.is_some() {
        setup.note(&v.at, "a UDP service's check: ldirectord asks over UDP (a DNS query, RADIUS, …), an inventory checks over TCP; not checked");
        s.check = None;
    }
    s.quiesce = s.check.is_some() && v.d.quiescent;
    setup.services.push(s);
}

fn key_port(k: ServiceKey) -> u16 {
    match k {
        ServiceKey::Addr { port, .. } => port,
        ServiceKey::Mark { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtuals_reals_checks_and_what_is_left_out() {
        let text = "\
# global
checktimeout=3
checkinterval=2
quiescent=no
autoreload=yes
fallback=192.168.6.99:80

virtual=192.168.6.240:80
\tservicename=Web Site
\treal=192.168.6.2:80 gate 3
\treal=192.168.6.3->192.168.6.4:80 masq
\tservice=http
\tscheduler=rr
\tpersistent=600
\tnetmask=255.255.255.0
\tchecktype=negotiate
\trequest=\"index.html\"
\treceive=\"Test Page\"
\tvirtualhost=www.x.y.z
virtual=7
\treal=10.0.0.5 ipip
\tprotocol=fwm
\tchecktype=external
virtual6=[2001:db8::5]:53
\treal6=[2001:db8:1::4]:53 gate
\tprotocol=udp
\tquiescent=yes
\tchecktype=connect
\tfailurecount=3
virtual=192.168.6.241:25
\treal=192.168.6.2:25 gate
\tquiescent=yes
\tchecktype=connect
";
        let s = parse(text, "ld.cf").unwrap();
        assert_eq!(s.services.len(), 4);
        let smtp = &s.services[3];
        assert!(smtp.quiesce && smtp.check.as_ref().is_some_and(|c| c.http.is_none() && c.interval == 2), "{smtp:?}");
        let web = &s.services[0];
        assert_eq!(web.name.as_deref(), Some("web-site"));
        assert_eq!((web.scheduler.as_str(), web.persistence, web.quiesce), ("rr", 600, false));
        assert_eq!(
            web.dests.iter().map(|d| (d.address.to_string(), d.weight, d.forward)).collect::<Vec<_>>(),
            [
                ("192.168.6.2".to_string(), 3, Forward::Route),
                ("192.168.6.3".to_string(), 1, Forward::Masq),
                ("192.168.6.4".to_string(), 1, Forward::Masq),
            ]
        );
        let c = web.check.clone().unwrap();
        assert_eq!((c.interval, c.timeout, c.retries), (2, 3, 1));
        assert_eq!(
            c.http,
            Some(HttpCheck { path: "/index.html".into(), status: 200, expect: Some("Test Page".into()) })
        );
        assert_eq!(web.sorry, Some(("192.168.6.99".parse().unwrap(), 80)));
        assert_eq!(s.services[1].key, ServiceKey::Mark { fwmark: 7, ipv6: false });
        assert!(s.services[1].check.is_none());
        let dns = &s.services[2];
        assert_eq!(dns.key, ServiceKey::addr(Protocol::Udp, "2001:db8::5".parse::<IpAddr>().unwrap(), 53));
        assert!(!dns.quiesce && dns.check.is_none(), "ldirectord checks UDP over UDP, an inventory over TCP");
        assert!(dns.sorry.is_none(), "the global fallback is IPv4; fallback6 is the IPv6 one");
        let noted: Vec<usize> = s.notes.iter().map(|n| n.at.line).collect();
        assert_eq!(noted, [5, 19, 20, 24], "{:#?}", s.notes);
    }

    #[test]
    fn bad_lines_are_each_located() {
        let text = "virtual=192.168.6.240:80\n\treal=www.example:80 gate\n\tprotocol=icmp\nnonsense\n\tpersistent=lots\nvirtual=192.168.6.241\n";
        let e = parse(text, "ld.cf").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{e:#?}");
        assert!(e[0].message.contains("tcp, udp, sctp or fwm"));
        assert!(e[2].message.contains("outside a virtual= block"));
        assert!(e[3].message.contains("the port is missing"));
    }
}
