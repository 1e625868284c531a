//! Writing captured packets as pcapng (the format tcpdump, tshark and Wireshark read): a section
//! header, one interface description per interface (its name, its link type, nanosecond
//! timestamps) and one enhanced packet block per packet with its direction.

use crate::wire::capture::{CaptureInterface, CapturedPacket};

const LINKTYPE_ETHERNET: u16 = 1;
const LINKTYPE_RAW: u16 = 101;

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
    out.extend_from_slice(&total.to_le_bytes());
}

fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&(value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    body.resize(body.len().div_ceil(4) * 4, 0);
}

fn end_of_options(body: &mut Vec<u8>) {
    body.extend_from_slice(&[0, 0, 0, 0]);
}

/// A pcapng file of `packets`, seen on `interfaces` of host `host`, each kept to `snaplen` bytes.
/// libpcap (tcpdump) reads a file only when all its interfaces have one link type: when
/// Ethernet interfaces and tunnel devices (bare IP) are mixed, the bare IP packets get an
/// Ethernet header of zero addresses.
pub fn write(host: &str, interfaces: &[CaptureInterface], packets: &[CapturedPacket], snaplen: u32) -> Vec<u8> {
    let mut out = Vec::new();
    // Section header: byte-order magic, version 1.0, length unknown; shb_userappl.
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    option(&mut shb, 4, format!("lvsctl {}", env!("CARGO_PKG_VERSION")).as_bytes());
    end_of_options(&mut shb);
    block(&mut out, 0x0A0D_0D0A, &shb);
    // Interfaces in the order packets refer to them: pcapng numbers them from 0.
    let mut ids: Vec<u32> = Vec::new();
    for p in packets {
        if !ids.contains(&p.interface) {
            ids.push(p.interface);
        }
    }
    let is_ethernet = |index: u32| interfaces.iter().find(|i| i.index == index).is_none_or(|i| i.ethernet);
    let mixed = ids.iter().any(|&i| is_ethernet(i)) && ids.iter().any(|&i| !is_ethernet(i));
    for &index in &ids {
        let known = interfaces.iter().find(|i| i.index == index);
        let ethernet = known.is_none_or(|i| i.ethernet) || mixed;
        let name = known.map(|i| i.name.clone()).unwrap_or_else(|| format!("if{index}"));
        let mut idb = Vec::new();
        idb.extend_from_slice(&(if ethernet { LINKTYPE_ETHERNET } else { LINKTYPE_RAW }).to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        option(&mut idb, 2, name.as_bytes()); // if_name
        option(&mut idb, 3, format!("{name} on {host}").as_bytes()); // if_description
        option(&mut idb, 9, &[9]); // if_tsresol: nanoseconds
        end_of_options(&mut idb);
        block(&mut out, 1, &idb);
    }
    for p in packets {
        let mut data = p.bytes();
        let mut length = p.length;
        if mixed && !is_ethernet(p.interface) {
            let ethertype: u16 = if data.first().is_some_and(|b| b >> 4 == 6) { 0x86dd } else { 0x0800 };
            let mut framed = vec![0u8; 12];
            framed.extend_from_slice(&ethertype.to_be_bytes());
            framed.extend_from_slice(&data);
            data = framed;
            length += 14;
        }
        let id = ids.iter().position(|&i| i == p.interface).expect("every packet's interface") as u32;
        let mut epb = Vec::new();
        epb.extend_from_slice(&id.to_le_bytes());
        epb.extend_from_slice(&((p.at_ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(p.at_ns as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&length.max(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&data);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        // epb_flags: inbound 1, outbound 2.
        option(&mut epb, 2, &(if p.outgoing { 2u32 } else { 1 }).to_le_bytes());
        end_of_options(&mut epb);
        block(&mut out, 6, &epb);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the blocks back: every block's two lengths agree and are multiples of 4, the
    /// interfaces come before the packets that name them.
    #[test]
    fn blocks_are_well_formed() {
        let ifs = vec![
            CaptureInterface { index: 2, name: "eth0".into(), ethernet: true, gre_device: false },
            CaptureInterface { index: 5, name: "tunl0".into(), ethernet: false, gre_device: false },
        ];
        let pkt = |i, d: &[u8]| CapturedPacket {
            at_ns: 1_700_000_000_123_456_789,
            interface: i,
            outgoing: i == 2,
            length: d.len() as u32 + 10,
            data: crate::hex(d),
        };
        let f = write("lvs", &ifs, &[pkt(5, &[0x45, 0, 0, 20, 1]), pkt(5, &[0x45, 0, 0, 20, 2])], 256);
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < f.len() {
            let kind = u32::from_le_bytes(f[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(f[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            assert_eq!(u32::from_le_bytes(f[at + len - 4..at + len].try_into().unwrap()) as usize, len);
            kinds.push(kind);
            if kind == 1 {
                let linktype = u16::from_le_bytes(f[at + 8..at + 10].try_into().unwrap());
                assert_eq!(linktype, 101, "a tunnel alone keeps its bare IP");
            }
            at += len;
        }
        assert_eq!(kinds, [0x0A0D_0D0A, 1, 6, 6]);
        // Mixed with Ethernet: one link type, the bare packets framed.
        let f = write("lvs", &ifs, &[pkt(5, &[0x45, 0, 0, 20, 1]), pkt(2, &[1, 2, 3])], 256);
        let mut at = 0;
        let mut framed = None;
        while at < f.len() {
            let kind = u32::from_le_bytes(f[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(f[at + 4..at + 8].try_into().unwrap()) as usize;
            if kind == 1 {
                assert_eq!(u16::from_le_bytes(f[at + 8..at + 10].try_into().unwrap()), 1);
            }
            if kind == 6 && framed.is_none() {
                framed = Some(f[at + 28..at + 28 + 19].to_vec());
            }
            at += len;
        }
        let framed = framed.unwrap();
        assert_eq!(&framed[12..15], &[0x08, 0x00, 0x45]);
    }
}
