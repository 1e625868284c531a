//! Rules in `ipvsadm-save -n` form (what `ipvsadm -S -n` prints and `ipvsadm -R` reads): one
//! `-A` line per virtual service, then an `-a` line per real server. Pure: text in, the services
//! and their real servers out, or every problem with its line.

use std::net::{IpAddr, SocketAddr};

use super::model::{Dest, Loc, Note, Service};
use crate::ipvs::{Forward, Netmask, Protocol, ServiceKey};

/// A line the rules cannot be read from, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Whether an `ADDR:PORT` of the rules names a host or a port by name (`ipvsadm-save` without
/// `-n` prints `www.example.com:http`).
fn named(spec: &str) -> bool {
    if spec.starts_with('[') || spec.parse::<SocketAddr>().is_ok() || spec.parse::<IpAddr>().is_ok() {
        return false;
    }
    let (host, port) = spec.rsplit_once(':').unwrap_or((spec, "0"));
    let word =
        |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    word(host) && word(port) && (host.parse::<IpAddr>().is_err() || port.parse::<u16>().is_err())
}

/// The services of `text` (read from `file`, which locations name) and what was left out of them
/// (rules naming hosts instead of addresses), or every line that could not be read.
pub fn parse(text: &str, file: &str) -> Result<(Vec<Service>, Vec<Note>), Vec<ParseError>> {
    let at = |line| Loc { file: file.to_string(), line };
    let mut services: Vec<Service> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words: Vec<&str> = raw.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        // Names instead of addresses: left out, said once per service.
        let adds = matches!(words[0], "-A" | "--add-service");
        if (adds || matches!(words[0], "-a" | "--add-server"))
            && matches!(words.get(1).copied(), Some("-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service"))
        {
            let spec = words.get(2).copied().unwrap_or_default();
            let real = words.iter().position(|w| *w == "-r" || *w == "--real-server").and_then(|k| words.get(k + 1));
            if named(spec) || skipped.iter().any(|x| x == spec) {
                if adds {
                    notes.push(Note {
                        at: at(line),
                        text: format!(
                            "{spec}: a name, not an address and port (ipvsadm-save without -n); names are not \
                             resolved, so this service and its real servers are left out: save the rules with \
                             `ipvsadm-save -n`"
                        ),
                    });
                    skipped.push(spec.to_string());
                }
                continue;
            }
            if let Some(r) = real.filter(|r| named(r)) {
                notes.push(Note {
                    at: at(line),
                    text: format!(
                        "real server {r}: a name, not an address (ipvsadm-save without -n); left out: save the \
                         rules with `ipvsadm-save -n`"
                    ),
                });
                continue;
            }
        }
        let result = match words[0] {
            "-A" | "--add-service" => service(at(line), &words[1..]).map(|s| {
                if services.iter().any(|x| x.key == s.key) {
                    Err(format!("{} is added twice (first on line {})", s.key, first_line(&services, &s.key)))
                } else {
                    services.push(s);
                    Ok(())
                }
            }),
            "-a" | "--add-server" => {
                dest(at(line), &words[1..]).map(|(key, d)| match services.iter_mut().find(|s| s.key == key) {
                    Some(s) if s.dests.iter().any(|x| x.address == d.address && x.port == d.port) => {
                        Err(format!("real server {} of {key} is added twice", SocketAddr::new(d.address, d.port)))
                    }
                    Some(s) => {
                        s.dests.push(d);
                        Ok(())
                    }
                    None => Err(format!("a real server of {key}, which no -A line before adds")),
                })
            }
            "-C" | "--clear" => Ok(Err(
                "-C clears the whole table (ipvsadm-restore's first line): leave it out, an inventory adds to a table"
                    .into(),
            )),
            other => Ok(Err(format!("{other}: not a saved rule (ipvsadm-save -n writes -A and -a lines only)"))),
        };
        if let Err(message) = result.and_then(|r| r) {
            errors.push(ParseError { line, message });
        }
    }
    if errors.is_empty() { Ok((services, notes)) } else { Err(errors) }
}

fn first_line(services: &[Service], key: &ServiceKey) -> usize {
    services.iter().find(|s| s.key == *key).map_or(0, |s| s.at.line)
}

/// The words of one line, taken option by option.
struct Words<'a> {
    words: &'a [&'a str],
    at: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let w = self.words.get(self.at).copied();
        self.at += 1;
        w
    }
    /// The value of option `opt`.
    fn value(&mut self, opt: &str) -> Result<&'a str, String> {
        self.next().ok_or_else(|| format!("{opt} needs a value"))
    }
    fn number(&mut self, opt: &str) -> Result<u32, String> {
        let v = self.value(opt)?;
        v.parse().map_err(|_| format!("{opt} {v}: not a number"))
    }
    /// A value that may follow an option or not (`-p` alone means ipvsadm's 300 s).
    fn optional_number(&mut self) -> Option<u32> {
        let n = self.words.get(self.at)?.parse().ok()?;
        self.at += 1;
        Some(n)
    }
}

/// `ADDR:PORT` or `[ADDR6]:PORT`; the port may be left out where `default` says what it is.
fn endpoint(s: &str, default: Option<u16>) -> Result<(IpAddr, u16), String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((sa.ip(), sa.port()));
    }
    let bare = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    match (bare.parse::<IpAddr>(), default) {
        (Ok(ip), Some(port)) => Ok((ip, port)),
        (Ok(_), None) => Err(format!("{s}: the port is missing (ADDR:PORT, [ADDR6]:PORT)")),
        (Err(_), _) => Err(format!("{s}: not an address and port (ADDR:PORT, [ADDR6]:PORT; names are not resolved)")),
    }
}

/// The service an `-A`/`-a` line names, and the words left.
fn service_key(w: &mut Words) -> Result<ServiceKey, String> {
    let opt = w.next().ok_or("the service is missing (-t, -u, --sctp-service ADDR:PORT or -f MARK)")?;
    let protocol = match opt {
        "-t" | "--tcp-service" => Protocol::Tcp,
        "-u" | "--udp-service" => Protocol::Udp,
        "--sctp-service" => Protocol::Sctp,
        "-f" | "--fwmark-service" => {
            let mark = w.number(opt)?;
            if mark == 0 {
                return Err("-f 0: a firewall mark is 1 or more".into());
            }
            let ipv6 = w.words.get(w.at).is_some_and(|x| *x == "-6" || *x == "--ipv6");
            if ipv6 {
                w.at += 1;
            }
            return Ok(ServiceKey::Mark { fwmark: mark, ipv6 });
        }
        other => return Err(format!("{other}: expected the service first (-t, -u, --sctp-service or -f)")),
    };
    let (addr, port) = endpoint(w.value(opt)?, None)?;
    if port == 0 {
        return Err(format!("{opt}: port 0 is not a service port"));
    }
    Ok(ServiceKey::addr(protocol, addr, port))
}

fn service(at: Loc, words: &[&str]) -> Result<Service, String> {
    let mut w = Words { words, at: 0 };
    let key = service_key(&mut w)?;
    let mut s = Service::new(at, key);
    while let Some(opt) = w.next() {
        match opt {
            "-s" | "--scheduler" => s.scheduler = w.value(opt)?.to_string(),
            "-p" | "--persistent" => s.persistence = w.optional_number().unwrap_or(300),
            "-M" | "--netmask" => {
                let v = w.value(opt)?;
                let m = match (v.parse::<std::net::Ipv4Addr>(), v.parse::<u8>()) {
                    (Ok(a), _) => Netmask::V4(a),
                    (_, Ok(n)) if n <= 128 => Netmask::V6(n),
                    _ => return Err(format!("-M {v}: neither an IPv4 netmask nor an IPv6 prefix length")),
                };
                s.netmask = Some(m);
            }
            "-b" | "--sched-flags" => s.flags = w.value(opt)?.split(',').map(str::to_string).collect(),
            "-o" | "--ops" => s.one_packet = true,
            "--pe" => return Err("--pe: persistence engines (sip) are not something lvsctl provisions".into()),
            other => return Err(format!("{other}: not an option of a saved service")),
        }
    }
    Ok(s)
}

fn dest(at: Loc, words: &[&str]) -> Result<(ServiceKey, Dest), String> {
    let mut w = Words { words, at: 0 };
    let key = service_key(&mut w)?;
    let service_port = match key {
        ServiceKey::Addr { port, .. } => port,
        ServiceKey::Mark { .. } => 0,
    };
    let mut d = Dest {
        at,
        address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        port: service_port,
        forward: Forward::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        encap: Default::default(),
    };
    let mut real = false;
    while let Some(opt) = w.next() {
        match opt {
            "-r" | "--real-server" => {
                (d.address, d.port) = endpoint(w.value(opt)?, Some(service_port))?;
                real = true;
            }
            "-g" | "--gatewaying" => d.forward = Forward::Route,
            "-m" | "--masquerading" => d.forward = Forward::Masq,
            "-i" | "--ipip" => d.forward = Forward::Tunnel,
            "-w" | "--weight" => d.weight = w.number(opt)?,
            "-x" | "--u-threshold" => d.u_threshold = w.number(opt)?,
            "-y" | "--l-threshold" => d.l_threshold = w.number(opt)?,
            "--tun-type" => {
                let v = w.value(opt)?;
                d.encap.tun_type =
                    crate::ipvs::TunType::parse(v).ok_or_else(|| format!("--tun-type {v}: not ipip, gue or gre"))?;
            }
            "--tun-port" => {
                let n = w.number(opt)?;
                d.encap.port = u16::try_from(n).ok().filter(|p| *p > 0).ok_or(format!("--tun-port {n}: not a port"))?;
            }
            "--tun-nocsum" => d.encap.checksum = crate::ipvs::TunChecksum::None,
            "--tun-csum" => d.encap.checksum = crate::ipvs::TunChecksum::Csum,
            "--tun-remcsum" => d.encap.checksum = crate::ipvs::TunChecksum::Remcsum,
            other => return Err(format!("{other}: not an option of a saved real server")),
        }
    }
    if !real {
        return Err("the real server is missing (-r ADDR:PORT)".into());
    }
    Ok((key, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What lvsctl's own render writes for dr-fwmark (`ipvsadm.rules`), as ipvsadm-save -n
    /// writes it, reads back whole.
    #[test]
    fn saved_rules_of_every_kind_are_read() {
        let text = "-A -u 192.168.188.100:53 -s rr -o\n\
                    -a -u 192.168.188.100:53 -r 192.168.188.81:53 -g -w 1\n\
                    -A --sctp-service [2001:db8:188::100]:3868 -s sh -b sh-fallback,sh-port\n\
                    -a --sctp-service [2001:db8:188::100]:3868 -r [2001:db8:188::81]:3868 -g -w 1\n\
                    -A -f 10 -6 -s rr -p 300 -M 64\n\
                    -a -f 10 -6 -r [2001:db8:188::82]:0 -i -w 2 -x 100 -y 50\n\
                    \n\
                    # a comment someone added\n\
                    -A -t 10.0.0.1:80 -s wlc -p -M 255.255.255.0\n\
                    -a -t 10.0.0.1:80 -r 10.10.0.81 -m\n";
        let s = parse(text, "rules").unwrap().0;
        assert_eq!(s.len(), 4);
        assert!(
            s[0].one_packet
                && s[0].key == ServiceKey::addr(Protocol::Udp, "192.168.188.100".parse::<IpAddr>().unwrap(), 53)
        );
        assert_eq!(s[1].flags, ["sh-fallback", "sh-port"]);
        assert_eq!(s[2].key, ServiceKey::Mark { fwmark: 10, ipv6: true });
        assert_eq!((s[2].persistence, s[2].netmask), (300, Some(Netmask::V6(64))));
        let d = &s[2].dests[0];
        assert_eq!((d.port, d.forward, d.weight, d.u_threshold, d.l_threshold), (0, Forward::Tunnel, 2, 100, 50));
        assert_eq!((s[3].at.line, s[3].persistence), (9, 300), "-p alone is ipvsadm's 300 s");
        let d = &s[3].dests[0];
        assert_eq!((d.port, d.forward, d.weight), (80, Forward::Masq, 1), "the service's port, weight 1");
    }

    /// Every `ipvsadm.rules` lvsctl's render writes (the golden trees) reads back: the same
    /// services, each with the real servers the rules add to it.
    #[test]
    fn the_rules_lvsctl_renders_read_back() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut read = 0;
        for lab in std::fs::read_dir(&root).unwrap().flatten() {
            for host in std::fs::read_dir(lab.path()).into_iter().flatten().flatten() {
                let lab_name = lab.file_name().to_string_lossy().into_owned();
                let file = host.path().join("etc/lvsctl").join(&lab_name).join("ipvsadm.rules");
                let Ok(text) = std::fs::read_to_string(&file) else { continue };
                let (services, _) = parse(&text, "rules").unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
                let adds = text.lines().filter(|l| l.starts_with("-A ")).count();
                let dests = text.lines().filter(|l| l.starts_with("-a ")).count();
                assert_eq!(services.len(), adds, "{}", file.display());
                assert_eq!(services.iter().map(|s| s.dests.len()).sum::<usize>(), dests, "{}", file.display());
                read += 1;
            }
        }
        assert!(read >= 5, "the golden trees hold ipvsadm.rules files: {read} read");
    }

    /// Every line that cannot be read is reported with its number and what to do.
    #[test]
    fn bad_lines_are_each_located() {
        let text = "-C\n\
                    -A -t 10.0.0.1:80 -s rr\n\
                    -a -t 10.0.0.2:80 -r 10.10.0.81:80 -g\n\
                    -A -t 10.0.0.1:80 -s wrr\n\
                    -a -t 10.0.0.1:80 -g\n\
                    -A -t host.example:80\n\
                    -E -t 10.0.0.1:80 -s wlc\n\
                    -a -t 10.0.0.1:80 -r 10.10.0.9:80 -i --tun-type vxlan\n\
                    -A -f 0\n\
                    -a -t 10.0.0.1:80 -r 10.10.0.9:80 -w many\n";
        let e = parse(text, "rules").unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 3, 4, 5, 7, 8, 9, 10], "{e:#?}");
        assert!(e[0].message.contains("clears the whole table"));
        assert!(e[1].message.contains("which no -A line before adds"));
        assert!(e[2].message.contains("added twice (first on line 2)"));
        assert!(e[3].message.contains("-r ADDR:PORT"));
        assert!(e[4].message.contains("-E: not a saved rule"));
        assert!(e[5].message.contains("--tun-type"));
        assert!(e[6].message.contains("1 or more"));
        assert!(e[7].message.contains("-w many: not a number"));
    }

    /// `ipvsadm-save` without `-n` names hosts and ports: each such service or real server is
    /// left out with its line (not an error: the rest imports).
    #[test]
    fn rules_saved_without_n_are_left_out_where_they_name_hosts() {
        let text = "-A -t www.example.com:http -s rr\n\
                    -a -t www.example.com:http -r web1.example.com:http -g -w 1\n\
                    -A -t 10.0.0.1:80 -s rr\n\
                    -a -t 10.0.0.1:80 -r web2.example.com:80 -g -w 1\n\
                    -a -t 10.0.0.1:80 -r 10.0.0.12:80 -g -w 1\n";
        let (s, notes) = parse(text, "rules").unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].dests.len(), 1);
        let lines: Vec<usize> = notes.iter().map(|n| n.at.line).collect();
        assert_eq!(lines, [1, 4], "{notes:#?}");
        assert!(notes[0].text.contains("ipvsadm-save -n") && notes[1].text.contains("web2.example.com"));
    }
}
