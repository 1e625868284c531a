//! lvsctl: provision Linux Virtual Server labs (NAT, DR, TUN) over SSH, and undo it exactly.

pub use lvsctl_wire as wire;
pub use lvsctl_wire::paths;

pub mod agent;
pub mod cli;
pub mod commands;
pub mod contract;
pub mod doctor;
pub mod exit;
pub mod graph;
pub mod host;
pub mod inventory;
pub mod ipvs;
pub mod judge;
pub mod lab;
pub mod modes;
pub mod output;
pub mod plan;
pub mod remote;
pub mod render;
pub mod resource;
pub mod safe_dir;
pub mod sctp;
pub mod templates;

/// `1 host`, `2 hosts`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
