//! lvsctl: provision Linux Virtual Server labs (NAT, DR, TUN) over SSH, and undo it exactly.

pub use lvsctl_agent::{agent, host, ipvs, resource, sctp};
pub use lvsctl_wire as wire;
pub use lvsctl_wire::{hex, paths, plural};

pub mod cli;
pub mod commands;
pub mod contract;
pub mod doctor;
pub mod exit;
pub mod graph;
pub mod import;
pub mod inventory;
pub mod judge;
pub mod lab;
pub mod modes;
pub mod output;
pub mod packets;
pub mod plan;
pub mod remote;
pub mod render;
pub mod safe_dir;
pub mod templates;
