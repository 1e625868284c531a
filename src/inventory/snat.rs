//! One-armed NAT (`snat = true` on a NAT service): the director rewrites each request's source to
//! its own address as well as its destination to the real server, so the replies come back to it
//! through the real servers' own routes. Read from `[[services]]` and held to what was checked on
//! the lab kernel: IPVS keeps conntrack entries (`net.ipv4.vs.conntrack = 1`) for the source NAT
//! rule to act on, so `[ipvs] sysctl` must not turn it off.

use super::hosts::DraftHost;
use super::model::{Family, IpvsSettings, Mode, Service};
use super::reader::{Reader, Table, join};

/// `snat = true` as written: the key's path (None: absent or false). A value that is no boolean
/// is reported here and read as true, so that the service is not held to two-armed NAT's rules
/// on top of its error.
pub(super) fn parse_snat(r: &mut Reader, t: &Table) -> Option<String> {
    let i = t.get(r, "snat")?;
    i.bool(r).unwrap_or(true).then(|| i.path.clone())
}

/// Whether the service (of `family`) is one-armed: `snat` written, on a plain NAT service of a lab
/// with one director that has an address of the family to put as the source; anything else is an
/// error at the key.
pub(super) fn check_snat(
    r: &mut Reader,
    at: Option<&String>,
    (mode, family): (Mode, Family),
    fwmark: Option<u32>,
    directors: &[&DraftHost],
) -> bool {
    let Some(at) = at else { return false };
    if mode != Mode::Nat {
        r.error_at(
            at,
            format!(
                "snat is one-armed NAT, and this service is {}: the director rewrites no address in it",
                mode.as_str().to_uppercase()
            ),
            Some("remove snat, or set mode = \"nat\" on the service".into()),
        );
        return false;
    }
    if fwmark.is_some() {
        r.error_at(
            at,
            "one-armed NAT is not supported on firewall-mark services yet",
            Some("remove snat, or use one plain service (vip, port) per port".into()),
        );
        return false;
    }
    if directors.len() > 1 {
        r.error_at(
            at,
            "one-armed NAT is not supported with an HA pair yet: each director would put its own address on the requests, and a failover would cut every connection",
            Some("remove snat (the pair's real servers route through its floating gateway), or use one director".into()),
        );
        return false;
    }
    if let Some(d) = directors.first()
        && !d.incomplete
        && !d.addresses().any(|(_, _, a)| Family::of_addr(a.addr()) == family)
    {
        r.error_at(
            at,
            format!("one-armed NAT puts the director's own {family} address on the requests, and {} has none in its interfaces", d.name),
            Some(format!("list {}'s interfaces with an {family} address (the one its real servers reach), or remove snat", d.name)),
        );
        return false;
    }
    true
}

/// `[ipvs] sysctl conntrack = 0` takes away the conntrack entries a one-armed service's source
/// NAT rule acts on.
pub(super) fn check_conntrack(r: &mut Reader, services: &[Service], ipvs: &IpvsSettings) {
    let Some(s) = services.iter().find(|s| s.snat) else { return };
    if ipvs.sysctl.iter().any(|(k, v)| k == "conntrack" && *v == 0) {
        r.error_at(
            &join("ipvs.sysctl", "conntrack"),
            format!(
                "conntrack = 0, and {} is one-armed NAT (snat = true): its source NAT acts on the conntrack entries IPVS keeps only with conntrack = 1",
                s.label()
            ),
            Some("remove conntrack from [ipvs] sysctl (lvsctl sets 1 on the director for one-armed services), or remove snat".into()),
        );
    }
}
