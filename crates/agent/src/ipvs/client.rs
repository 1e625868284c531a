//! A synchronous IPVS generic netlink client.

use std::fmt::Debug;
use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::{DestConfig, DestEntry, DestKey, IpvsMessage, ServiceConfig, ServiceEntry, ServiceKey};

pub struct IpvsClient {
    socket: Socket,
    family: u16,
    seq: u32,
    /// Where replies are received, reused: one recv per datagram, no peek and no allocation
    /// (a table of 1,000 services is 1,001 dumps of two datagrams each).
    rx: Vec<u8>,
}

/// Larger than any datagram the kernel sends: a dump's are at most 32 KiB, an error carries
/// the (small) request that failed.
const RX_SIZE: usize = 64 * 1024;

fn decode_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot decode a netlink reply: {e}"))
}

impl IpvsClient {
    /// Opens a generic netlink socket and resolves the IPVS family.
    ///
    /// Resolving the family makes the kernel load `ip_vs` when it is not loaded (its module
    /// alias is the genl family name): callers that must not change the host check
    /// `/proc/net/ip_vs` first.
    pub fn connect() -> io::Result<IpvsClient> {
        let mut socket = Socket::new(NETLINK_GENERIC)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let mut c = IpvsClient { socket, family: 0, seq: 0, rx: Vec::with_capacity(RX_SIZE) };
        let ctrl =
            GenlCtrl { cmd: GenlCtrlCmd::GetFamily, nlas: vec![GenlCtrlAttrs::FamilyName(super::FAMILY_NAME.into())] };
        let replies = c.transact(GenlMessage::from_payload(ctrl), NLM_F_REQUEST | NLM_F_ACK)?;
        let family = replies
            .iter()
            .flat_map(|m| m.payload.nlas.iter())
            .find_map(|a| if let GenlCtrlAttrs::FamilyId(id) = a { Some(*id) } else { None });
        match family {
            Some(f) => {
                c.family = f;
                Ok(c)
            }
            None => Err(io::Error::new(io::ErrorKind::NotFound, "the kernel has no IPVS generic netlink family")),
        }
    }

    /// Receives one datagram into `rx`; its length.
    fn recv(&mut self) -> io::Result<usize> {
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

    /// Requests that each want only an acknowledgement, sent many to a datagram (the kernel
    /// handles them in order, as if sent one by one) and each acknowledgement matched to its
    /// request by sequence number: one round trip per `BATCH` requests instead of one each.
    pub fn batch(&mut self, msgs: &[IpvsMessage]) -> Vec<io::Result<()>> {
        const BATCH: usize = 256;
        let mut results = Vec::with_capacity(msgs.len());
        for chunk in msgs.chunks(BATCH) {
            let first = self.seq.wrapping_add(1);
            let mut buf = Vec::new();
            for m in chunk {
                self.seq = self.seq.wrapping_add(1);
                let mut g = GenlMessage::from_payload(m.clone());
                g.set_resolved_family_id(self.family);
                let mut header = NetlinkHeader::default();
                header.flags = NLM_F_REQUEST | NLM_F_ACK;
                header.sequence_number = self.seq;
                let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(g));
                msg.finalize();
                let at = buf.len();
                buf.resize(at + msg.buffer_len(), 0);
                msg.serialize(&mut buf[at..]);
            }
            let mut acks: Vec<Option<io::Result<()>>> = (0..chunk.len()).map(|_| None).collect();
            match self.collect_acks(&buf, first, &mut acks) {
                Ok(()) => results.extend(acks.into_iter().map(|a| a.expect("every request acknowledged"))),
                Err(e) => {
                    // The socket failed: requests acknowledged before it keep their answer, the
                    // others are reported failed with its error.
                    let failed =
                        |a: Option<io::Result<()>>| a.unwrap_or_else(|| Err(io::Error::new(e.kind(), e.to_string())));
                    results.extend(acks.into_iter().map(failed));
                }
            }
        }
        results
    }

    /// Sends `buf` (requests numbered from `first`) and reads until each has its answer.
    fn collect_acks(&mut self, buf: &[u8], first: u32, acks: &mut [Option<io::Result<()>>]) -> io::Result<()> {
        self.socket.send(buf, 0)?;
        let mut pending = acks.len();
        while pending > 0 {
            let n = self.recv()?;
            let data = &self.rx[..n];
            let mut off = 0;
            while off < data.len() {
                let reply =
                    NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&data[off..]).map_err(decode_err)?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                off += len;
                let i = reply.header.sequence_number.wrapping_sub(first) as usize;
                let Some(slot) = acks.get_mut(i).filter(|a| a.is_none()) else {
                    continue; // a late answer to an earlier request
                };
                if let NetlinkPayload::Error(e) = reply.payload {
                    *slot = Some(match e.code {
                        None => Ok(()),
                        Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    });
                    pending -= 1;
                }
            }
        }
        Ok(())
    }

    fn call(&mut self, m: IpvsMessage, flags: u16) -> io::Result<Vec<IpvsMessage>> {
        let mut g = GenlMessage::from_payload(m);
        g.set_resolved_family_id(self.family);
        Ok(self.transact(g, flags)?.into_iter().map(|g| g.payload).collect())
    }

    fn act(&mut self, m: IpvsMessage) -> io::Result<()> {
        self.call(m, NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
    }

    /// The services of this network namespace, read until two dumps in a row list the same ones.
    ///
    /// The kernel resumes a dump that spans datagrams (from about 200 services on) at a position
    /// counted over the services of *every* namespace: a service added or deleted in another one
    /// meanwhile makes this dump skip or repeat one of ours (seen on the lab kernel: ipvsadm listed
    /// 9,998 of 10,000 destinations while other labs changed their tables). Reading until two agree
    /// costs one more dump of the list, never of the destinations.
    pub fn services(&mut self) -> io::Result<Vec<ServiceEntry>> {
        const TRIES: usize = 8;
        let keys = |l: &[ServiceEntry]| {
            let mut k: Vec<ServiceKey> = l.iter().map(|e| e.key).collect();
            k.sort_unstable();
            k
        };
        let mut last = self.service_dump()?;
        for _ in 1..TRIES {
            let now = self.service_dump()?;
            if keys(&now) == keys(&last) {
                return Ok(now);
            }
            last = now;
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            format!(
                "the IPVS service list changed during each of {TRIES} reads (another namespace's table was changing): try again"
            ),
        ))
    }

    fn service_dump(&mut self) -> io::Result<Vec<ServiceEntry>> {
        Ok(self
            .call(IpvsMessage::get_services(), NLM_F_REQUEST | NLM_F_DUMP)?
            .iter()
            .filter_map(|m| m.service_entry())
            .collect())
    }

    /// The connection sync daemons that run (none: an empty list).
    pub fn daemons(&mut self) -> io::Result<Vec<super::SyncDaemon>> {
        Ok(self
            .call(IpvsMessage::get_daemons(), NLM_F_REQUEST | NLM_F_DUMP)?
            .iter()
            .filter_map(|m| m.sync_daemon())
            .collect())
    }

    /// The connection timeouts of this namespace.
    pub fn timeouts(&mut self) -> io::Result<crate::plan::IpvsTimeouts> {
        self.call(IpvsMessage::get_config(), NLM_F_REQUEST | NLM_F_ACK)?
            .iter()
            .find_map(|m| m.timeouts())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the kernel's GET_CONFIG reply has no timeouts"))
    }

    /// Sets the connection timeouts; a 0 leaves that one as it is.
    pub fn set_timeouts(&mut self, t: &crate::plan::IpvsTimeouts) -> io::Result<()> {
        self.act(IpvsMessage::set_timeouts(t))
    }

    pub fn dests(&mut self, svc: &ServiceKey) -> io::Result<Vec<DestEntry>> {
        Ok(self
            .call(IpvsMessage::get_dests(svc), NLM_F_REQUEST | NLM_F_DUMP)?
            .iter()
            .filter_map(|m| m.dest_entry(svc))
            .collect())
    }

    pub fn new_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> io::Result<()> {
        self.act(IpvsMessage::new_service(k, c))
    }
    pub fn set_service(&mut self, k: &ServiceKey, c: &ServiceConfig) -> io::Result<()> {
        self.act(IpvsMessage::set_service(k, c))
    }
    pub fn del_service(&mut self, k: &ServiceKey) -> io::Result<()> {
        self.act(IpvsMessage::del_service(k))
    }
    pub fn new_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> io::Result<()> {
        self.act(IpvsMessage::new_dest(s, k, c))
    }
    pub fn set_dest(&mut self, s: &ServiceKey, k: &DestKey, c: &DestConfig) -> io::Result<()> {
        self.act(IpvsMessage::set_dest(s, k, c))
    }
    pub fn del_dest(&mut self, s: &ServiceKey, k: &DestKey) -> io::Result<()> {
        self.act(IpvsMessage::del_dest(s, k))
    }
}
