//! lvsctl's agent: what runs on every host, as root, over SSH and from the boot unit. It reads
//! the host (`host`: one trait per area of effects, the real kernel in `host/linux/`), decides per
//! kind of object what a plan needs (`resource`: pure), makes and journals the changes
//! (`agent`: the executor, the journal, facts, probes, keepalived's state) and speaks the IPVS
//! generic-netlink protocol (`ipvs`). It knows plans only as `lvsctl-wire` carries them: no
//! inventory, planner, templates, command line or SSH client.

pub mod agent;
pub mod fou;
pub mod genl;
pub mod host;
pub mod ipvs;
pub mod resource;
pub mod sctp;

#[cfg(test)]
mod golden;

pub use lvsctl_wire as wire;
pub use lvsctl_wire::{hex, paths, plan, plural};
