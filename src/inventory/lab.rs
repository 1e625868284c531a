//! `[lab]`: the lab's segments (which host interfaces share a link) and management network, for
//! `lvsctl lab create`.

use ipnet::IpNet;

use super::keys;
use super::reader::{Reader, Table};

/// A `host:iface` member of a lab segment, with the key path of its item.
pub struct DraftMember {
    pub host: String,
    pub iface: String,
    pub path: String,
}

pub struct DraftSegment {
    pub name: String,
    pub members: Vec<DraftMember>,
}

pub struct DraftLab {
    pub path: String,
    pub segments: Vec<DraftSegment>,
    pub management: Option<IpNet>,
}

pub(super) fn parse_lab(r: &mut Reader, t: Table) -> DraftLab {
    let path = t.path.clone();
    let mut segments = Vec::new();
    if let Some(i) = t.require(
        r,
        "segments",
        "add `segments = { lan = [\"client:eth0\", \"router:eth1\"] }`: which host interfaces share a link",
    ) && let Some(st) = i.table(r)
    {
        for (name, key_span, si) in st.entries(r) {
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || name.len() > 32
            {
                r.error(
                    key_span,
                    &si.path,
                    format!("invalid segment name \"{}\"", name.escape_debug()),
                    Some("use up to 32 letters, digits, '-' or '_'".into()),
                );
                continue;
            }
            let mut members = Vec::new();
            if let Some(items) = si.array(r) {
                for m in items {
                    let Some(s) = m.str(r) else { continue };
                    match s.split_once(':') {
                        Some((h, ifn)) if !h.is_empty() && !ifn.is_empty() => members.push(DraftMember {
                            host: h.to_string(),
                            iface: ifn.to_string(),
                            path: m.path.clone(),
                        }),
                        _ => r.error(
                            m.span(),
                            &m.path,
                            format!("\"{}\" is not HOST:INTERFACE", s.escape_debug()),
                            Some("write the host name and one of its interfaces, like \"web1:eth0\"".into()),
                        ),
                    }
                }
            }
            segments.push(DraftSegment { name, members });
        }
        st.finish(r, &[]);
    }
    let management = t.get(r, "management").and_then(|i| {
        let s = i.str(r)?;
        match s.parse::<IpNet>() {
            Ok(IpNet::V4(n)) if n.prefix_len() <= 30 => Some(IpNet::V4(n.trunc())),
            Ok(IpNet::V6(n)) if n.prefix_len() <= 126 => Some(IpNet::V6(n.trunc())),
            _ => {
                r.error(
                    i.span(),
                    &i.path,
                    format!(
                        "\"{}\" is not an IPv4 subnet of at most /30 or an IPv6 one of at most /126",
                        s.escape_debug()
                    ),
                    Some("write NETWORK/PREFIX, like 10.250.0.0/24 or fd00:250::/64".into()),
                );
                None
            }
        }
    });
    t.finish(r, &keys::LAB.names());
    DraftLab { path, segments, management }
}
