//! `[ipvs]`: the directors' IPVS settings — the connection timeouts (`ipvsadm --set`) and the
//! `net.ipv4.vs.*` sysctls, each checked against its range (`keys::IPVS_SETTINGS`).

use super::keys;
use super::model::IpvsSettings;
use super::reader::{Reader, Table};

pub(super) fn parse_ipvs(r: &mut Reader, t: Table) -> IpvsSettings {
    let mut s = IpvsSettings::default();
    if let Some(tt) = t.get(r, "timeouts").and_then(|i| i.table(r)) {
        let one = |r: &mut Reader, k: &str| {
            let i = tt.get(r, k)?;
            let v = i.int(r)?;
            if v == 0 {
                r.error(
                    i.span(),
                    &i.path,
                    format!("a {k} timeout of 0: the kernel reads 0 as \"leave it unchanged\""),
                    Some(format!(
                        "leave {k} out to keep the kernel's value, or give seconds from 1 to {}",
                        keys::MAX_TIMEOUT
                    )),
                );
                return None;
            }
            i.int_in(r, 1, keys::MAX_TIMEOUT.into(), &format!("{k} timeout")).map(|v| v as u32)
        };
        s.timeouts.tcp = one(r, "tcp");
        s.timeouts.tcp_fin = one(r, "tcp_fin");
        s.timeouts.udp = one(r, "udp");
        tt.finish(r, &keys::IPVS_TIMEOUTS.names());
    }
    if let Some(st) = t.get(r, "sysctl").and_then(|i| i.table(r)) {
        for setting in keys::IPVS_SETTINGS {
            let Some(i) = st.get(r, setting.name) else { continue };
            // An on/off setting may be written as a boolean.
            let v = if i.is_bool() && (setting.lo, setting.hi) == (0, 1) {
                i.bool(r).map(i128::from)
            } else {
                i.int_in(r, setting.lo, setting.hi, setting.name)
            };
            if let Some(v) = v {
                s.sysctl.push((setting.name.to_string(), v as i64));
            }
        }
        st.finish(r, &keys::IPVS_SYSCTL.names());
    }
    t.finish(r, &keys::IPVS.names());
    s
}
