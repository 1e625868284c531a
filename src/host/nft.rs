//! nftables as the host reads it: `nft -j list table` output, parsed where it is read.

use serde_json::{Value, json};

/// The family of lvsctl's table: one table for IPv4 and IPv6.
pub const FAMILY: &str = "inet";
/// A table's objects (chains, rules, sets, …), each as `nft -j` lists it, without its handle.
pub type Objects = Vec<Value>;

/// The objects of `table` in `nft -j list table inet NAME` output, handles removed; the table
/// object itself and the metainfo are left out.
pub fn parse_listing(listing: &Value) -> Result<Objects, String> {
    let items = listing.get("nftables").and_then(Value::as_array).ok_or("no \"nftables\" array in nft's output")?;
    let mut out = Vec::new();
    for item in items {
        let Some((kind, body)) = item.as_object().and_then(|o| o.iter().next()) else { continue };
        if kind == "metainfo" || kind == "table" {
            continue;
        }
        let mut body = body.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("handle");
        }
        out.push(json!({ kind.clone(): body }));
    }
    Ok(out)
}
