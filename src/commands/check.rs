//! `lvsctl check`: validate the inventory, touch nothing.

use serde::Serialize;

use crate::cli::{CheckArgs, Output};
use crate::inventory::{self, LoadError, diag::Diagnostic};

/// `check --output json`: the envelope every command's JSON shares, with the inventory's problems
/// (each located by file, line and column) or, when it is valid, what it holds.
#[derive(Serialize, schemars::JsonSchema)]
pub struct CheckBody<'a> {
    inventory: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    hosts: Vec<HostLine<'a>>,
    services: usize,
    diagnostics: Vec<Problem<'a>>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct HostLine<'a> {
    host: &'a str,
    role: String,
}

/// One diagnostic for programs: where (1-based line and column, and the column after the
/// marked text) and what, with the key path and the help line.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Problem<'a> {
    severity: &'static str,
    file: String,
    line: usize,
    column: usize,
    end_column: usize,
    key: &'a str,
    message: &'a str,
    help: Option<&'a str>,
}

impl<'a> From<&'a Diagnostic> for Problem<'a> {
    fn from(d: &'a Diagnostic) -> Self {
        let width = d.excerpt.as_ref().map_or(0, |e| e.text.get(e.span.clone()).map_or(0, |t| t.chars().count()));
        Problem {
            severity: "error",
            file: d.file.display().to_string(),
            line: d.line,
            column: d.column,
            end_column: d.column + width,
            key: &d.key,
            message: &d.message,
            help: d.help.as_deref(),
        }
    }
}

pub fn run(a: &CheckArgs) -> anyhow::Result<u8> {
    let path = &a.inv.inventory;
    if a.out.output == Output::Text {
        let lab = super::load_inventory(path)?;
        crate::outln!(
            "{}: lab {} ({} mode) is valid: {}, {}",
            path.display(),
            lab.name,
            lab.mode,
            crate::plural(lab.hosts.len(), "host"),
            crate::plural(lab.services.len(), "service")
        );
        return Ok(crate::exit::OK);
    }
    let loaded = match inventory::load(path) {
        Err(e @ LoadError::Io { .. }) => return Err(crate::exit::Exit::new(crate::exit::ERROR, e.to_string()).into()),
        Err(LoadError::Invalid(d)) => Err(d),
        Ok(lab) => Ok(lab),
    };
    let report = match &loaded {
        Ok(lab) => crate::contract::Output::new(
            "check",
            Some(&lab.name),
            true,
            CheckBody {
                inventory: path.display().to_string(),
                mode: Some(lab.mode.to_string()),
                hosts: lab.hosts.iter().map(|h| HostLine { host: &h.name, role: h.role.to_string() }).collect(),
                services: lab.services.len(),
                diagnostics: Vec::new(),
            },
        ),
        Err(d) => crate::contract::Output::new(
            "check",
            None,
            false,
            CheckBody {
                inventory: path.display().to_string(),
                mode: None,
                hosts: Vec::new(),
                services: 0,
                diagnostics: d.0.iter().map(Problem::from).collect(),
            },
        ),
    };
    crate::outln!("{}", report.pretty());
    Ok(if loaded.is_ok() { crate::exit::OK } else { crate::exit::INVALID })
}
