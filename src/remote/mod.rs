//! Reaching hosts: SSH (openssh crate) or this machine, and installing the agent there.

pub mod binary;
