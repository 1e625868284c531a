//! One module per subcommand.

pub mod plan;
pub mod render;

use std::path::Path;

use crate::exit::{self, Exit};
use crate::inventory::{self, Lab, LoadError};

/// Loads and validates an inventory; an invalid one becomes exit code 3 with every diagnostic.
pub fn load_inventory(path: &Path) -> anyhow::Result<Lab> {
    match inventory::load(path) {
        Ok(lab) => Ok(lab),
        Err(LoadError::Invalid(d)) => {
            let n = d.len();
            let plural = if n == 1 { "" } else { "s" };
            Err(Exit::new(
                exit::INVALID,
                format!("{d}\n{n} problem{plural} in {}; nothing was changed", path.display()),
            )
            .into())
        }
        Err(e @ LoadError::Io { .. }) => Err(Exit::new(exit::INVALID, e.to_string()).into()),
    }
}

/// Checks that every `--host` names a host of the lab.
pub fn check_host_filter(lab: &Lab, hosts: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = lab.hosts.iter().map(|h| h.name.as_str()).collect();
    for h in hosts {
        if !names.contains(&h.as_str()) {
            let hint = match inventory::diag::did_you_mean(h, &names) {
                Some(s) => format!(" (did you mean {s}?)"),
                None => String::new(),
            };
            return Err(Exit::new(
                exit::INVALID,
                format!("--host {h}: no such host in {}{hint}; hosts are: {}", lab.file.display(), names.join(", ")),
            )
            .into());
        }
    }
    Ok(())
}

/// The agent path shown in plans and rendered into units: the real one when the agent binary is
/// resolvable, else a placeholder that says what it stands for.
pub fn agent_path_for_display(explicit: Option<&Path>) -> String {
    match crate::remote::binary::resolve(explicit) {
        Ok(b) => b.install_path(),
        Err(_) => format!("{}/SHA256-OF-STATIC-LVSCTL/lvsctl", crate::remote::binary::INSTALL_ROOT),
    }
}

pub fn load_templates(dir: Option<&Path>) -> anyhow::Result<crate::render::Templates> {
    crate::render::Templates::load(dir).map_err(|e| Exit::new(exit::INVALID, e.to_string()).into())
}
