//! The static lvsctl binary that is installed on hosts and run as the agent.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct AgentBinary {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// As `uname -m` prints it.
    pub arch: &'static str,
    /// The bytes that were hashed: what is sent is what was checked.
    bytes: Arc<Vec<u8>>,
    /// The gzip stream sent to hosts that can undo it, made on the first upload of the command.
    gzip: Arc<OnceLock<Vec<u8>>>,
}

impl AgentBinary {
    fn new(path: PathBuf, bytes: Vec<u8>, arch: &'static str) -> AgentBinary {
        let sha256 = crate::hex(&Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        AgentBinary { path, sha256, size, arch, bytes: Arc::new(bytes), gzip: Arc::default() }
    }

    /// Where this binary lives on a host.
    pub fn install_path(&self) -> String {
        install_path(&self.sha256)
    }

    /// What goes on the wire to a host that lacks the agent: how it is encoded (`gzip` or `raw`,
    /// the words SERVE_SCRIPT reads) and the bytes.
    pub fn upload(&self, host_has_gzip: bool) -> (&'static str, &[u8]) {
        if host_has_gzip { ("gzip", self.gzip()) } else { ("raw", &self.bytes) }
    }

    /// The agent gzipped (the default level: within a few percent of the best, several times
    /// faster, which matters when the controller itself runs under emulation).
    pub fn gzip(&self) -> &[u8] {
        self.gzip.get_or_init(|| {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&self.bytes).expect("writing to memory");
            z.finish().expect("writing to memory")
        })
    }
}

pub fn install_path(sha256: &str) -> String {
    crate::paths::agent_path(sha256)
}

/// What an ELF file says about itself: (machine as `uname -m` names it, statically linked).
pub fn elf_info(bytes: &[u8]) -> Option<(&'static str, bool)> {
    if bytes.len() < 64 || &bytes[0..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None; // not a 64-bit little-endian ELF
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let machine = match u16_at(0x12) {
        62 => "x86_64",
        183 => "aarch64",
        _ => "unknown",
    };
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().ok()?) as usize;
    let phentsize = u16_at(0x36) as usize;
    let phnum = u16_at(0x38) as usize;
    let mut has_interp = false;
    for i in 0..phnum {
        let o = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let t = bytes.get(o..o + 4)?;
        // PT_INTERP: the file needs a dynamic loader, which the host may not have (or not in this version).
        if u32::from_le_bytes(t.try_into().ok()?) == 3 {
            has_interp = true;
        }
    }
    Some((machine, !has_interp))
}

/// The name of the agent-only binary built beside lvsctl.
pub const AGENT_BINARY: &str = "lvsctl-agent";

/// `lvsctl-agent` beside the controller `exe`, else `exe` itself.
fn default_agent(exe: &Path) -> PathBuf {
    let beside = exe.with_file_name(AGENT_BINARY);
    if beside.is_file() { beside } else { exe.to_path_buf() }
}

/// The binary to install on hosts: `explicit`; else `lvsctl-agent` beside this binary (the agent's
/// code path only: a fraction of lvsctl's size); else this very binary, which can serve as agent
/// too. Remote hosts need a static build (their C library may differ); this machine can run any.
pub fn resolve(explicit: Option<&Path>, require_static: bool) -> anyhow::Result<AgentBinary> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => default_agent(&std::env::current_exe().context("cannot find the running lvsctl binary")?),
    };
    let mut f = std::fs::File::open(&path).with_context(|| format!("cannot open agent binary {}", path.display()))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).with_context(|| format!("cannot read agent binary {}", path.display()))?;
    let Some((arch, is_static)) = elf_info(&bytes) else {
        bail!("{} is not a 64-bit Linux executable", path.display());
    };
    if !is_static && require_static {
        bail!(
            "{} is dynamically linked, and hosts may lack its C library: lvsctl installs a static build on hosts.\n\
             Install a static build with `rustup target add x86_64-unknown-linux-musl && cargo install --path . \
             --target x86_64-unknown-linux-musl` (or the Debian package: scripts/package.sh), or point \
             --agent-binary (LVSCTL_AGENT_BINARY) at a static lvsctl-agent",
            path.display()
        );
    }
    Ok(AgentBinary::new(path, bytes, arch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_only_binary_beside_lvsctl_is_preferred() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("lvsctl");
        std::fs::write(&exe, b"x").unwrap();
        assert_eq!(default_agent(&exe), exe, "without lvsctl-agent, lvsctl serves as its own agent");
        std::fs::write(dir.path().join(AGENT_BINARY), b"x").unwrap();
        assert_eq!(default_agent(&exe), dir.path().join("lvsctl-agent"));
    }

    #[test]
    fn recognises_this_test_binary() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let (arch, _) = elf_info(&bytes).unwrap();
        assert_eq!(arch, std::env::consts::ARCH);
    }

    #[test]
    fn the_gzip_upload_is_the_agent_and_smaller() {
        // A start of this test binary: code compresses as the agent's does.
        let mut bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        bytes.truncate(1 << 20);
        let agent = AgentBinary::new("agent".into(), bytes, "x86_64");
        let (how, raw) = agent.upload(false);
        assert_eq!((how, raw.len() as u64), ("raw", agent.size));
        let (how, z) = agent.upload(true);
        assert_eq!(how, "gzip");
        assert!(z.len() < raw.len() / 2, "{} of {}", z.len(), raw.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(z).read_to_end(&mut back).unwrap();
        assert_eq!(crate::hex(&Sha256::digest(&back)), agent.sha256);
    }

    #[test]
    fn rejects_non_elf() {
        assert!(elf_info(b"#!/bin/sh\necho hi\n").is_none());
    }
}
