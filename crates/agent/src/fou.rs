//! GUE receive ports over generic netlink (family "fou", version 1; include/uapi/linux/fou.h):
//! what `ip fou add port N gue [-6]`, `ip fou del` and `ip fou show` do, for TUN-over-GUE real
//! servers. Attributes are few and flat: plain netlink attributes on `DefaultNla`.

use std::io;

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, Nla, NlasIterator, Parseable,
    ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::genl::Genl;

pub const FAMILY_NAME: &str = "fou";
const FAMILY_VERSION: u8 = 1;

const CMD_ADD: u8 = 1;
const CMD_DEL: u8 = 2;
const CMD_GET: u8 = 3;

const ATTR_PORT: u16 = 1;
const ATTR_AF: u16 = 2;
const ATTR_TYPE: u16 = 4;

const ENCAP_GUE: u8 = 2;

/// One open fou port, as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct FouPort {
    pub port: u16,
    pub ipv6: bool,
    /// GUE (else direct: a fixed protocol inside UDP, which is not what IPVS sends).
    pub gue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FouMessage {
    pub cmd: u8,
    pub attrs: Vec<DefaultNla>,
}

impl GenlFamily for FouMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for FouMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for FouMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs =
            NlasIterator::new(buf).map(|n| n.and_then(|n| DefaultNla::parse(&n))).collect::<Result<Vec<_>, _>>()?;
        Ok(FouMessage { cmd: header.cmd, attrs })
    }
}

fn af(ipv6: bool) -> u8 {
    (if ipv6 { libc::AF_INET6 } else { libc::AF_INET }) as u8
}

/// The port and family that name a fou port (what ADD adds with GUE, what DEL deletes).
fn port_attrs(port: u16, ipv6: bool) -> Vec<DefaultNla> {
    vec![DefaultNla::new(ATTR_PORT, port.to_be_bytes().to_vec()), DefaultNla::new(ATTR_AF, vec![af(ipv6)])]
}

impl FouMessage {
    pub fn add_gue(port: u16, ipv6: bool) -> FouMessage {
        let mut attrs = port_attrs(port, ipv6);
        attrs.push(DefaultNla::new(ATTR_TYPE, vec![ENCAP_GUE]));
        FouMessage { cmd: CMD_ADD, attrs }
    }

    pub fn del(port: u16, ipv6: bool) -> FouMessage {
        FouMessage { cmd: CMD_DEL, attrs: port_attrs(port, ipv6) }
    }

    /// The port a GET reply lists.
    pub fn port(&self) -> Option<FouPort> {
        let value = |kind: u16| {
            self.attrs.iter().find(|a| a.kind() == kind).map(|a| {
                let mut v = vec![0; a.value_len()];
                a.emit_value(&mut v);
                v
            })
        };
        let port = value(ATTR_PORT)?;
        let port = u16::from_be_bytes(port.get(..2)?.try_into().ok()?);
        let ipv6 = value(ATTR_AF).and_then(|v| v.first().copied()) == Some(af(true));
        let gue = value(ATTR_TYPE).and_then(|v| v.first().copied()) == Some(ENCAP_GUE);
        Some(FouPort { port, ipv6, gue })
    }
}

/// The fou ports of this network namespace. Listing needs the family: when `fou` is not loaded
/// there are none, and the module is not loaded to say so.
pub fn ports() -> io::Result<Vec<FouPort>> {
    if !std::path::Path::new("/sys/module/fou").exists() {
        return Ok(vec![]);
    }
    let Some(mut g) = Genl::connect(FAMILY_NAME)? else { return Ok(vec![]) };
    // The kernel's dump answers per family: both are asked.
    let mut out = Vec::new();
    for ipv6 in [false, true] {
        let ask = FouMessage { cmd: CMD_GET, attrs: vec![DefaultNla::new(ATTR_AF, vec![af(ipv6)])] };
        match g.call(ask, NLM_F_REQUEST | NLM_F_DUMP) {
            Ok(replies) => out.extend(replies.iter().filter_map(FouMessage::port)),
            // An IPv6 dump on a kernel without IPv6 fou support.
            Err(e) if ipv6 && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn act(m: FouMessage) -> io::Result<()> {
    let mut g = Genl::connect(FAMILY_NAME)?.ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the kernel has no fou generic netlink family (module fou)")
    })?;
    g.call(m, NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
}

/// `ip fou add port PORT gue [-6]`.
pub fn add_gue(port: u16, ipv6: bool) -> io::Result<()> {
    act(FouMessage::add_gue(port, ipv6))
}

/// `ip fou del port PORT [-6]`.
pub fn del(port: u16, ipv6: bool) -> io::Result<()> {
    act(FouMessage::del(port, ipv6))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `ip fou add port 6080 gue -6` sends: port big-endian, family, type GUE.
    #[test]
    fn an_add_is_encoded_as_iproute2_encodes_it() {
        let m = FouMessage::add_gue(6080, true);
        let mut b = vec![0; m.buffer_len()];
        m.emit(&mut b);
        assert_eq!(
            b,
            [6, 0, 1, 0, 0x17, 0xc0, 0, 0, 5, 0, 2, 0, libc::AF_INET6 as u8, 0, 0, 0, 5, 0, 4, 0, 2, 0, 0, 0]
        );
        let back = FouMessage::parse_with_param(&b, GenlHeader { cmd: CMD_GET, version: 1 }).unwrap();
        assert_eq!(back.port(), Some(FouPort { port: 6080, ipv6: true, gue: true }));
        assert_eq!(FouMessage::del(6080, false).port(), Some(FouPort { port: 6080, ipv6: false, gue: false }));
    }
}
