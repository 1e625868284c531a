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
    /// The file's bytes, read (and checked against `sha256`) on the first upload of the command:
    /// a command that finds the agent installed everywhere never reads them.
    bytes: Arc<OnceLock<Result<Vec<u8>, String>>>,
    /// The gzip stream sent to hosts that can undo it, made on the first upload of the command.
    gzip: Arc<OnceLock<Vec<u8>>>,
}

impl AgentBinary {
    #[cfg(test)]
    fn new(path: PathBuf, bytes: Vec<u8>, arch: &'static str) -> AgentBinary {
        let sha256 = crate::hex(&Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        AgentBinary { path, sha256, size, arch, bytes: Arc::new(OnceLock::from(Ok(bytes))), gzip: Arc::default() }
    }

    /// Where this binary lives on a host.
    pub fn install_path(&self) -> String {
        install_path(&self.sha256)
    }

    /// The agent's bytes, exactly the ones of `sha256`.
    pub fn bytes(&self) -> Result<&[u8], String> {
        self.bytes
            .get_or_init(|| {
                let bytes = std::fs::read(&self.path)
                    .map_err(|e| format!("cannot read agent binary {}: {e}", self.path.display()))?;
                if crate::hex(&Sha256::digest(&bytes)) != self.sha256 {
                    forget_hash(&self.path);
                    return Err(format!(
                        "the agent binary {} changed while lvsctl was running: run the command again",
                        self.path.display()
                    ));
                }
                Ok(bytes)
            })
            .as_deref()
            .map_err(Clone::clone)
    }

    /// What goes on the wire to a host that lacks the agent: how it is encoded (`gzip` or `raw`,
    /// the words SERVE_SCRIPT reads) and the bytes.
    pub fn upload(&self, host_has_gzip: bool) -> Result<(&'static str, &[u8]), String> {
        if host_has_gzip { Ok(("gzip", self.gzip()?)) } else { Ok(("raw", self.bytes()?)) }
    }

    /// The agent gzipped (the default level: within a few percent of the best, several times
    /// faster, which matters when the controller itself runs under emulation).
    fn gzip(&self) -> Result<&[u8], String> {
        let bytes = self.bytes()?;
        Ok(self.gzip.get_or_init(|| {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(bytes).expect("writing to memory");
            z.finish().expect("writing to memory")
        }))
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
    let f = std::fs::File::open(&path).with_context(|| format!("cannot open agent binary {}", path.display()))?;
    let meta = f.metadata().with_context(|| format!("cannot read agent binary {}", path.display()))?;
    // The headers: the ELF header and the program headers that follow it.
    let mut bytes = Vec::new();
    f.take(64 * 1024)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read agent binary {}", path.display()))?;
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
    let sha256 = hash_of(&path, &meta)?;
    Ok(AgentBinary { path, sha256, size: meta.len(), arch, bytes: Arc::default(), gzip: Arc::default() })
}

/// What identifies one version of a file: its inode, size and times. ctime changes with every
/// write and cannot be set back by anyone, so a file rewritten in place gets a new identity.
fn identity(path: &Path, m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!(
        "{}\0{}:{}:{}:{}.{}:{}.{}",
        path.display(),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// Where the sha256 of agent binaries is kept between commands (hashing 4 MB costs seconds on an
/// emulated controller, on every command): a private directory of this user.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LVSCTL_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/var/cache/lvsctl"));
    }
    match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(d), _) if !d.is_empty() => Some(PathBuf::from(d).join("lvsctl")),
        (_, Some(h)) => Some(PathBuf::from(h).join(".cache/lvsctl")),
        _ => None,
    }
}

/// The cache entry of one version of a file, in a directory that is ours alone (0700): another
/// user's entry is never read.
fn cache_entry(path: &Path, m: &std::fs::Metadata) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = cache_dir()?;
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir);
    let d = std::fs::symlink_metadata(&dir).ok()?;
    // SAFETY: geteuid has no preconditions.
    if !d.is_dir() || d.uid() != unsafe { libc::geteuid() } || d.mode() & 0o077 != 0 {
        return None;
    }
    let key = crate::hex(&Sha256::digest(identity(path, m).as_bytes()));
    Some(dir.join(format!("agent-{}.sha256", &key[..32])))
}

/// The file's sha256: from the cache when this very version was hashed before, else computed
/// (and kept).
fn hash_of(path: &Path, m: &std::fs::Metadata) -> anyhow::Result<String> {
    let entry = cache_entry(path, m);
    if let Some(e) = &entry
        && let Ok(text) = std::fs::read_to_string(e)
    {
        let text = text.trim();
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Ok(text.to_string());
        }
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read agent binary {}", path.display()))?;
    let sha = crate::hex(&Sha256::digest(&bytes));
    if let Some(e) = &entry {
        // Kept only when the file is still the version whose identity names the entry.
        let now = std::fs::metadata(path).ok();
        if now.is_some_and(|n| identity(path, &n) == identity(path, m)) {
            let _ = crate::host::write_atomic(e, format!("{sha}\n").as_bytes(), 0o600);
        }
    }
    Ok(sha)
}

/// Drops the cached hash of a file found to have changed.
fn forget_hash(path: &Path) {
    if let Ok(m) = std::fs::metadata(path)
        && let Some(e) = cache_entry(path, &m)
    {
        let _ = std::fs::remove_file(e);
    }
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
        let (how, raw) = agent.upload(false).unwrap();
        assert_eq!((how, raw.len() as u64), ("raw", agent.size));
        let (how, z) = agent.upload(true).unwrap();
        assert_eq!(how, "gzip");
        assert!(z.len() < raw.len() / 2, "{} of {}", z.len(), raw.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(z).read_to_end(&mut back).unwrap();
        assert_eq!(crate::hex(&Sha256::digest(&back)), agent.sha256);
    }

    #[test]
    fn a_hash_is_kept_for_one_version_of_the_file_and_checked_before_an_upload() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        // SAFETY: this test alone reads LVSCTL_CACHE_DIR.
        unsafe { std::env::set_var("LVSCTL_CACHE_DIR", &cache) };
        let file = dir.path().join("agent");
        std::fs::write(&file, b"one").unwrap();
        let m = std::fs::metadata(&file).unwrap();
        let sha = hash_of(&file, &m).unwrap();
        assert_eq!(sha, crate::hex(&Sha256::digest(b"one")));
        let entry = cache_entry(&file, &m).unwrap();
        assert_eq!(std::fs::read_to_string(&entry).unwrap().trim(), sha);
        // The cached value is what the next command uses for this version of the file.
        std::fs::write(&entry, format!("{}\n", "a".repeat(64))).unwrap();
        assert_eq!(hash_of(&file, &m).unwrap(), "a".repeat(64));
        // A new version is another entry.
        std::fs::write(&file, b"two").unwrap();
        let m2 = std::fs::metadata(&file).unwrap();
        assert_eq!(hash_of(&file, &m2).unwrap(), crate::hex(&Sha256::digest(b"two")));
        // Bytes that are not those of the hash are never sent.
        let stale = AgentBinary {
            path: file.clone(),
            sha256: "a".repeat(64),
            size: 3,
            arch: "x86_64",
            bytes: Arc::default(),
            gzip: Arc::default(),
        };
        assert!(stale.upload(true).unwrap_err().contains("changed while lvsctl was running"));
        unsafe { std::env::remove_var("LVSCTL_CACHE_DIR") };
    }

    #[test]
    fn rejects_non_elf() {
        assert!(elf_info(b"#!/bin/sh\necho hi\n").is_none());
    }
}
