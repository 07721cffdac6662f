//! The template on the Proxmox host: `em-infra prepare` and the `prepare` stage.

use crate::cli::PrepareArgs;
use crate::config::Project;
use crate::output::Printer;

pub fn run(_project: &Project, _args: &PrepareArgs, _printer: &Printer) -> anyhow::Result<()> {
    Err(crate::exit::bad_input("prepare: being built (issue 5)"))
}
