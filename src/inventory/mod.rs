//! Inventory files: parse, validate, and report every problem with its file, line and key.

pub mod diag;
pub mod ha;
pub mod hosts;
pub mod ipvs;
pub mod keys;
pub mod lab;
pub mod metrics;
pub mod model;
pub mod parse;
pub mod reader;
pub mod services;
pub mod snat;
pub mod ssh;
pub mod tunnel;
pub mod validate;
pub mod value;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics};
pub use model::*;

use diag::SourceMap;
use reader::{Reader, Table};

/// Why an inventory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read inventory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// The largest inventory lvsctl reads: far beyond any lab, far below what could exhaust memory.
pub const MAX_SIZE: u64 = 4 << 20;

/// Reads and validates an inventory file.
pub fn load(path: &Path) -> Result<Lab, LoadError> {
    let src = read(path).map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
    parse_str(path, &src).map_err(LoadError::Invalid)
}

/// An inventory's text: a regular file (a FIFO would block, a device like /dev/zero never end) of
/// at most MAX_SIZE bytes, checked on the opened file so that nothing can swap it in between.
fn read(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    // O_NONBLOCK: opening a FIFO must not wait for a writer before its type can be checked.
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        let t = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(invalid(format!("it is {what}: give the inventory's TOML file")));
    }
    if meta.len() > MAX_SIZE {
        return Err(invalid(format!("it is {} bytes, more than an inventory's {MAX_SIZE}", meta.len())));
    }
    let mut bytes = Vec::new();
    f.take(MAX_SIZE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(invalid(format!("it grew beyond an inventory's {MAX_SIZE} bytes while being read")));
    }
    String::from_utf8(bytes)
        .map_err(|e| invalid(format!("it is not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))
}

/// Parses and validates inventory text; `path` is used in messages only.
pub fn parse_str(path: &Path, src: &str) -> Result<Lab, Diagnostics> {
    let map = SourceMap::new(path, src);
    let (doc, errors) = toml::de::DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        let diags = errors
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                let msg = e.message().trim().trim_end_matches('.').to_string();
                if msg == "duplicate key" {
                    let key = src.get(span.clone()).unwrap_or("").trim();
                    return map.diagnostic(
                        span,
                        "",
                        format!("TOML syntax: duplicate key \"{key}\""),
                        Some("each key and table may appear once in a file (host names are unique)".into()),
                    );
                }
                map.diagnostic(
                    span,
                    "",
                    format!("TOML syntax: {msg}"),
                    Some("fix the TOML syntax first; see https://toml.io".into()),
                )
            })
            .collect();
        return Err(Diagnostics(diags));
    }
    let mut r = Reader::new(map);
    let root = Table::new(String::new(), doc.span(), doc.get_ref());
    let draft = parse::parse_document(&mut r, root);
    let lab = validate::validate(&mut r, draft, path);
    match lab {
        Some(lab) if r.diags.is_empty() => Ok(lab),
        _ => {
            let mut diags = r.diags;
            diags.sort_by_key(|d| (d.line, d.column));
            diags.dedup();
            Err(Diagnostics(diags))
        }
    }
}
