//! `lvsctl graph`: the lab's topology as Mermaid, DOT or SVG (see [`crate::graph`]).

use clap::ValueEnum;

use crate::cli::{GraphArgs, GraphFormat};
use crate::exit::{self, Exit};

pub fn run(a: &GraphArgs) -> anyhow::Result<u8> {
    let format = match (a.format, a.out.as_ref().and_then(|p| p.extension()).and_then(|e| e.to_str())) {
        (Some(f), _) => f,
        (None, Some("svg")) => GraphFormat::Svg,
        (None, Some("dot" | "gv")) => GraphFormat::Dot,
        (None, Some("mmd" | "mermaid") | None) => GraphFormat::Mermaid,
        (None, Some(other)) => {
            return Err(Exit::new(
                exit::USAGE,
                format!("--out: cannot tell the format from \".{other}\": use .mmd, .dot or .svg, or give --format"),
            )
            .into());
        }
    };
    let lab = super::load_inventory(&a.inv.inventory)?;
    let mut t = crate::graph::topology(&lab);
    // A lab on this machine: what `lab impair`, `lab cut` and `lab stop` did to it, as it is now.
    if let Some(state) = crate::lab::impair::graph_state(&lab) {
        if state != crate::graph::LabState::default() {
            eprintln!("graph: lab {} runs on this machine: its impairments and faults are shown", lab.name);
        }
        t.overlay(&state);
    }
    let text = match format {
        GraphFormat::Mermaid => crate::graph::mermaid(&t),
        GraphFormat::Dot => crate::graph::dot(&t),
        GraphFormat::Svg => crate::graph::svg(&t),
    };
    match &a.out {
        Some(path) => {
            let path = if path.parent().is_some_and(|p| p.as_os_str().is_empty()) {
                std::path::Path::new(".").join(path)
            } else {
                path.clone()
            };
            crate::host::write_atomic(&path, text.as_bytes(), 0o644)
                .map_err(|e| Exit::new(exit::ERROR, format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "wrote {}: lab {} as {}",
                path.display(),
                lab.name,
                format.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
            );
        }
        None => crate::out!("{text}"),
    }
    Ok(exit::OK)
}
