//! Labs on this machine: hosts as network namespaces with a real sshd each, and a qemu guest for
//! kernels without IPVS.

pub mod initramfs;
pub mod vm;
