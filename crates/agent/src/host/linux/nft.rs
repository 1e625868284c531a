//! nftables through `nft -j`: lvsctl's table is listed as JSON and parsed here, where it is
//! read, and replaced in one JSON transaction.

use std::io;
use std::process::Command;

use serde_json::{Value, json};

use super::{Linux, one_line};
use crate::host::{NFT_FAMILY, NftObjects, Nftables, Processes, Result};

/// The objects of `table` in `nft -j list table inet NAME` output, handles removed; the table
/// object itself and the metainfo are left out.
pub fn parse_listing(listing: &Value) -> std::result::Result<NftObjects, String> {
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

impl Linux {
    /// nft, or an error that says how to install it (an Other error: "not found" would read as
    /// "the table is gone").
    fn nft_program(&self) -> Result<String> {
        self.find_program("nft").ok_or_else(|| {
            io::Error::other(
                "nft is not installed: install the package nftables (apt-get install nftables, or dnf install nftables); firewall-mark services need it on directors",
            )
        })
    }
}

impl Nftables for Linux {
    fn nft_table(&mut self, name: &str) -> Result<Option<NftObjects>> {
        let nft = self.nft_program()?;
        let out = Command::new(&nft)
            .args(["-j", "list", "table", NFT_FAMILY, name])
            .stdin(std::process::Stdio::null())
            .output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(io::Error::other(format!("nft list table inet {name}: {}", one_line(&err))));
        }
        let listing: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| io::Error::other(format!("nft -j list table inet {name}: unreadable JSON: {e}")))?;
        parse_listing(&listing).map(Some).map_err(io::Error::other)
    }

    fn nft_apply(&mut self, commands: &serde_json::Value) -> Result<()> {
        use std::io::Write;
        let nft = self.nft_program()?;
        let mut child = Command::new(&nft)
            .args(["-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let body = serde_json::to_vec(commands).map_err(io::Error::other)?;
        child.stdin.take().expect("piped").write_all(&body)?;
        let out = child.wait_with_output()?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("nft: {}", one_line(&err))));
        }
        Err(io::Error::other(format!("nft refused the transaction: {}", one_line(&err))))
    }
}
