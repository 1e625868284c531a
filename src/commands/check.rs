//! `lvsctl check`: validate the inventory, touch nothing.

use crate::cli::InventoryArg;

pub fn run(a: &InventoryArg) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&a.inventory)?;
    crate::outln!(
        "{}: lab {} ({} mode) is valid: {}, {}",
        a.inventory.display(),
        lab.name,
        lab.mode,
        crate::plural(lab.hosts.len(), "host"),
        crate::plural(lab.services.len(), "service")
    );
    Ok(crate::exit::OK)
}
