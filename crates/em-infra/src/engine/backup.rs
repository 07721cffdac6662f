//! Terraform state backups: before every apply and destroy, and on demand.

use crate::cli::StateCommand;
use crate::config::Project;
use crate::output::Printer;

pub fn run(_project: &Project, _cmd: &StateCommand, _printer: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("state: not implemented yet")
}
