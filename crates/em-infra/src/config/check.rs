//! `em-infra check`: static checks of the Terraform code and the tfvars.

use crate::cli::CheckArgs;
use crate::config::Project;
use crate::output::Printer;

pub fn run(_project: &Project, _args: &CheckArgs, _printer: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("check: not implemented yet")
}
