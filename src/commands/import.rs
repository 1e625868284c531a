//! `lvsctl import`: an inventory from what exists (so far: saved ipvsadm rules), written as
//! `lvsctl init` writes one, with what could not be imported said, each with its line.

use std::io::Read as _;

use anyhow::{Context as _, bail};

use crate::cli::{ImportArgs, ImportFormat};
use crate::exit::{self, Exit};

/// The largest file read (the rules of 10,000 real servers are about 600 KB).
const MAX_BYTES: u64 = 16 << 20;

pub fn run(a: &ImportArgs) -> anyhow::Result<u8> {
    if let Err((what, help)) = crate::inventory::value::check_lab_name(&a.name) {
        bail!("--name: {what}: {help}");
    }
    let shown = a.file.display().to_string();
    let mut text = String::new();
    let read = if shown == "-" {
        std::io::stdin().take(MAX_BYTES + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(&a.file).and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text))
    };
    read.with_context(|| format!("cannot read {shown}"))?;
    if text.len() as u64 > MAX_BYTES {
        bail!("{shown} is larger than {} MiB: not a file lvsctl imports", MAX_BYTES >> 20);
    }
    let format = match a.format {
        Some(f) => f,
        None => guess(&text).ok_or_else(|| {
            Exit::new(
                exit::INVALID,
                format!(
                    "{shown}: cannot tell what it is: lvsctl import reads saved ipvsadm rules (`ipvsadm-save -n`: \
                     -A and -a lines) so far; keepalived.conf and ldirectord.cf are not read yet"
                ),
            )
        })?,
    };
    let services = match format {
        ImportFormat::Ipvsadm => crate::import::ipvsadm::parse(&text).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| format!("{shown}:{}: {}", e.line, e.message)).collect();
            Exit::new(
                exit::INVALID,
                format!("{}\n{}; nothing was written", lines.join("\n"), crate::plural(errors.len(), "line")),
            )
        })?,
    };
    let imported = crate::import::inventory::inventory(&services, &a.name, &shown, a.lab).map_err(|left_out| {
        let lines: Vec<String> = left_out.iter().map(|l| format!("{shown}: {l}")).collect();
        Exit::new(exit::INVALID, format!("{}\nno service could be imported; nothing was written", lines.join("\n")))
    })?;
    super::write_new(&imported.text, a.out.as_deref(), "import")?;
    if let Some(path) = &a.out {
        eprintln!(
            "wrote {}: {} imported; {}, then `lvsctl check {}`",
            path.display(),
            crate::plural(services.len() - imported.left_out.len(), "service"),
            if a.lab { "try it with `lvsctl lab create`" } else { "change every value marked CHANGE" },
            path.display()
        );
    }
    for l in &imported.left_out {
        eprintln!("left out: {shown}: {l}");
    }
    Ok(if imported.left_out.is_empty() { exit::OK } else { exit::IMPORT_PARTIAL })
}

/// What `text` is, from its first line that says anything.
fn guess(text: &str) -> Option<ImportFormat> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?;
    (first.starts_with("-A ") || first.starts_with("-a ") || first.starts_with("--add-service"))
        .then_some(ImportFormat::Ipvsadm)
}
