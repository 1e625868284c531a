//! Links over rtnetlink: whether each is up, and setting it up or down.

use futures::TryStreamExt;
use rtnetlink::LinkUnspec;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};

use super::{Linux, nl};
use crate::host::{Links, Result};

impl Links for Linux {
    fn link_up(&mut self, dev: &str) -> Result<Option<bool>> {
        let h = self.handle.clone();
        let dev = dev.to_string();
        self.rt.block_on(async move {
            match h.link().get().match_name(dev).execute().try_next().await {
                Ok(Some(m)) => Ok(Some(m.header.flags.contains(LinkFlags::Up))),
                Ok(None) => Ok(None),
                Err(e) => {
                    let e = nl(e);
                    if e.raw_os_error() == Some(libc::ENODEV) { Ok(None) } else { Err(e) }
                }
            }
        })
    }

    fn links(&mut self) -> Result<Vec<(String, bool)>> {
        let h = self.handle.clone();
        self.rt.block_on(async move {
            let mut out = Vec::new();
            let mut s = h.link().get().execute();
            while let Some(m) = s.try_next().await.map_err(nl)? {
                let up = m.header.flags.contains(LinkFlags::Up);
                for a in &m.attributes {
                    if let LinkAttribute::IfName(n) = a {
                        out.push((n.clone(), up));
                    }
                }
            }
            Ok(out)
        })
    }

    fn set_link(&mut self, dev: &str, up: bool) -> Result<()> {
        let b = LinkUnspec::new_with_name(dev);
        let msg = if up { b.up().build() } else { b.down().build() };
        let h = self.handle.clone();
        self.rt.block_on(async move { h.link().set(msg).execute().await.map_err(nl) })
    }
}
