//! lvsctl's own nftables tables: listed as objects, replaced in one transaction.
//!
//! The interface, and the recording fake's side of it; the real kernel's is `linux/nft.rs`.

use super::*;

/// lvsctl's own nftables tables.
pub trait Nftables {
    /// The objects of nftables table `inet NAME` as `nft -j list table` prints them, without
    /// handles; None when there is no such table.
    fn nft_table(&mut self, name: &str) -> Result<Option<NftObjects>>;
    /// Feeds one JSON transaction to `nft -j -f -` (all of it, or nothing, is applied).
    fn nft_apply(&mut self, commands: &serde_json::Value) -> Result<()>;
}

#[cfg(any(test, feature = "fake-host"))]
mod fake {
    use super::*;
    use crate::host::fake::Fake;

    impl Nftables for Fake {
        fn nft_table(&mut self, name: &str) -> Result<Option<super::NftObjects>> {
            Ok(self.state.nft.get(name).cloned())
        }

        /// Runs the transaction on a copy, as nft does: all of it, or nothing.
        fn nft_apply(&mut self, commands: &serde_json::Value) -> Result<()> {
            let mut tables = self.state.nft.clone();
            let mut said = Vec::new();
            for c in commands["nftables"].as_array().into_iter().flatten() {
                let (verb, obj) =
                    c.as_object().and_then(|o| o.iter().next()).ok_or_else(|| io::Error::other("bad command"))?;
                let (kind, body) =
                    obj.as_object().and_then(|o| o.iter().next()).ok_or_else(|| io::Error::other("bad object"))?;
                let table = if kind == "table" { &body["name"] } else { &body["table"] };
                let table = table.as_str().ok_or_else(|| io::Error::other("no table"))?.to_string();
                match (verb.as_str(), kind.as_str()) {
                    ("add", "table") => {
                        tables.entry(table).or_default();
                    }
                    ("delete", "table") => {
                        if tables.remove(&table).is_none() {
                            return Err(io::Error::new(io::ErrorKind::NotFound, "nft: No such file or directory"));
                        }
                    }
                    ("add", _) => tables
                        .get_mut(&table)
                        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nft: No such file or directory"))?
                        .push(obj.clone()),
                    _ => return Err(io::Error::other(format!("the fake nft has no {verb} {kind}"))),
                }
            }
            for name in self.state.nft.keys().filter(|n| !tables.contains_key(*n)) {
                said.push(format!("nft delete table inet {name}"));
            }
            for (name, objects) in &tables {
                if self.state.nft.get(name) != Some(objects) {
                    said.push(format!("nft table inet {name} holds {} object(s)", objects.len()));
                }
            }
            for line in said {
                self.op(line)?;
            }
            self.state.nft = tables;
            Ok(())
        }
    }
}
