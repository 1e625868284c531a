//! Exit codes, documented in `lvsctl --help` and the README.

pub const OK: u8 = 0;
/// Any other error (I/O, internal).
pub const ERROR: u8 = 1;
/// Invalid inventory or templates.
pub const INVALID: u8 = 3;
/// `--dry-run --detailed-exitcode`: changes are pending (terraform's 2, taken here by usage errors).
pub const PENDING: u8 = 7;
/// A usage error (clap's own status for bad arguments).
pub const USAGE: u8 = 2;
/// Some hosts failed; the others completed.
pub const PARTIAL: u8 = 4;
/// Some hosts could not be reached (and none of the reached ones failed).
pub const UNREACHABLE: u8 = 5;
/// A check did not pass: status drifted, verify failed, doctor found problems.
pub const CHECK_FAILED: u8 = 6;
/// `import` wrote an inventory without some of what it read (each said, with its line).
pub const IMPORT_PARTIAL: u8 = 8;

/// An error that carries its exit code through `anyhow`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Exit { code, message: message.into() }
    }
}
