//! `lvsctl check`: validate the inventory, touch nothing.

use crate::cli::{CheckArgs, Output};
use crate::contract::{CheckBody, HostLine, Problem};
use crate::inventory::{self, LoadError, diag::Diagnostic};

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
