//! Inventory files: parse, validate, and report every problem with its file, line and key.

pub mod diag;
pub mod model;
pub mod parse;
pub mod reader;
pub mod validate;

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

/// Reads and validates an inventory file.
pub fn load(path: &Path) -> Result<Lab, LoadError> {
    let src =
        std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
    parse_str(path, &src).map_err(LoadError::Invalid)
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
