//! A synchronous IPVS generic netlink client.

use std::io;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

use crate::genl::{Genl, decode_err};

use super::{DestConfig, DestEntry, DestKey, IpvsMessage, ServiceConfig, ServiceEntry, ServiceKey};

pub struct IpvsClient {
    genl: Genl,
}

impl IpvsClient {
    /// Opens a generic netlink socket and resolves the IPVS family.
    ///
    /// Resolving the family makes the kernel load `ip_vs` when it is not loaded (its module
    /// alias is the genl family name): callers that must not change the host check
    /// `/proc/net/ip_vs` first.
    pub fn connect() -> io::Result<IpvsClient> {
        match Genl::connect(super::FAMILY_NAME)? {
            Some(genl) => Ok(IpvsClient { genl }),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "the kernel has no IPVS generic netlink family")),
        }
    }

    /// Requests that each want only an acknowledgement, sent many to a datagram (the kernel
    /// handles them in order, as if sent one by one) and each acknowledgement matched to its
    /// request by sequence number: one round trip per `BATCH` requests instead of one each.
    pub fn batch(&mut self, msgs: &[IpvsMessage]) -> Vec<io::Result<()>> {
        const BATCH: usize = 256;
        let mut results = Vec::with_capacity(msgs.len());
        for chunk in msgs.chunks(BATCH) {
            let first = self.genl.seq.wrapping_add(1);
            let mut buf = Vec::new();
            for m in chunk {
                self.genl.seq = self.genl.seq.wrapping_add(1);
                let mut g = GenlMessage::from_payload(m.clone());
                g.set_resolved_family_id(self.genl.family);
                let mut header = NetlinkHeader::default();
                header.flags = NLM_F_REQUEST | NLM_F_ACK;
                header.sequence_number = self.genl.seq;
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
        self.genl.socket.send(buf, 0)?;
        let mut pending = acks.len();
        while pending > 0 {
            let n = self.genl.recv()?;
            let data = &self.genl.rx[..n];
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
        self.genl.call(m, flags)
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
