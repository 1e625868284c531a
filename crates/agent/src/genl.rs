//! A synchronous generic netlink socket bound to one family (IPVS, fou): the family resolved by
//! name, requests sent and their replies read, dumps to the end.

use std::fmt::Debug;
use std::io;

use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NetlinkSerializable, ParseableParametrized,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

pub struct Genl {
    pub(crate) socket: Socket,
    pub(crate) family: u16,
    pub(crate) seq: u32,
    /// Where replies are received, reused: one recv per datagram, no peek and no allocation
    /// (a table of 1,000 services is 1,001 dumps of two datagrams each).
    pub(crate) rx: Vec<u8>,
}

/// Larger than any datagram the kernel sends: a dump's are at most 32 KiB, an error carries
/// the (small) request that failed.
const RX_SIZE: usize = 64 * 1024;

pub(crate) fn decode_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot decode a netlink reply: {e}"))
}

impl Genl {
    /// Opens a generic netlink socket and resolves the family `name`; None when the kernel has
    /// no such family. Resolving loads the family's module when its alias names it (ip_vs, fou).
    pub fn connect(name: &str) -> io::Result<Option<Genl>> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let mut c = Genl { socket, family: 0, seq: 0, rx: Vec::with_capacity(RX_SIZE) };
        let ctrl = GenlCtrl { cmd: GenlCtrlCmd::GetFamily, nlas: vec![GenlCtrlAttrs::FamilyName(name.into())] };
        let replies = match c.transact(GenlMessage::from_payload(ctrl), NLM_F_REQUEST | NLM_F_ACK) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        let family = replies
            .iter()
            .flat_map(|m| m.payload.nlas.iter())
            .find_map(|a| if let GenlCtrlAttrs::FamilyId(id) = a { Some(*id) } else { None });
        Ok(family.map(|f| {
            c.family = f;
            c
        }))
    }

    /// Receives one datagram into `rx`; its length.
    pub(crate) fn recv(&mut self) -> io::Result<usize> {
        self.rx.clear();
        let n = self.socket.recv(&mut self.rx, libc::MSG_TRUNC)?;
        if n > self.rx.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a netlink reply of {n} bytes is larger than the {RX_SIZE} bytes expected"),
            ));
        }
        Ok(n)
    }

    /// One request of the resolved family; its replies (all of a dump's).
    pub fn call<M>(&mut self, m: M, flags: u16) -> io::Result<Vec<M>>
    where
        M: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + Debug,
    {
        let mut g = GenlMessage::from_payload(m);
        g.set_resolved_family_id(self.family);
        Ok(self.transact(g, flags)?.into_iter().map(|g| g.payload).collect())
    }

    fn transact<T>(&mut self, payload: T, flags: u16) -> io::Result<Vec<T>>
    where
        T: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let n = self.recv()?;
            let data = &self.rx[..n];
            let mut off = 0;
            while off < data.len() {
                let reply = NetlinkMessage::<T>::deserialize(&data[off..]).map_err(decode_err)?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                off += len;
                if reply.header.sequence_number != seq {
                    continue; // a late answer to an earlier request
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out), // ACK
                        Some(code) => return Err(io::Error::from_raw_os_error(-code.get())),
                    },
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !dump && reply.header.flags & NLM_F_MULTIPART == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
