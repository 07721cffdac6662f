//! Terraform state outputs → Ansible executable-inventory JSON.

use crate::cli::InventoryArgs;
use crate::config::Project;
use crate::output::Printer;

pub fn run(_project: &Project, _args: &InventoryArgs, _printer: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("inventory: not implemented yet")
}
