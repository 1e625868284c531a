//! The real host, one file per area: rtnetlink for links, addresses and routes; the sysctl
//! crate (or /proc/sys directly where it cannot name the key); the IPVS generic netlink module;
//! nft for lvsctl's nftables table; modprobe and delete_module(2) for modules; plain files;
//! processes and systemctl.

mod address;
mod files;
mod gue;
mod ipvs;
mod link;
mod module;
pub mod nft;
pub mod process;
mod route;
pub mod sysctl;

use std::collections::HashMap;
use std::io;

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::LinkAttribute;

use super::Result;
use crate::ipvs::client::IpvsClient;

pub struct Linux {
    rt: tokio::runtime::Runtime,
    handle: Handle,
    ipvs: Option<IpvsClient>,
}

fn nl(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

impl Linux {
    pub fn new() -> io::Result<Linux> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = {
            let _guard = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection()?;
            rt.spawn(conn);
            handle
        };
        Ok(Linux { rt, handle, ipvs: None })
    }

    fn link_names(&mut self) -> Result<HashMap<u32, String>> {
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let mut names = HashMap::new();
            let mut links = h.link().get().execute();
            while let Some(m) = links.try_next().await.map_err(nl)? {
                for a in &m.attributes {
                    if let LinkAttribute::IfName(n) = a {
                        names.insert(m.header.index, n.clone());
                    }
                }
            }
            Ok(names)
        })
    }

    fn index_of(&mut self, dev: &str) -> Result<Option<u32>> {
        let h = self.handle.clone();
        let dev = dev.to_string();
        self.rt.block_on(async move {
            match h.link().get().match_name(dev).execute().try_next().await {
                Ok(Some(m)) => Ok(Some(m.header.index)),
                Ok(None) => Ok(None),
                Err(e) => {
                    let e = nl(e);
                    if e.raw_os_error() == Some(libc::ENODEV) { Ok(None) } else { Err(e) }
                }
            }
        })
    }

    fn need_index(&mut self, dev: &str) -> Result<u32> {
        self.index_of(dev)?.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {dev}")))
    }
}

/// A program's error output on one line.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}
