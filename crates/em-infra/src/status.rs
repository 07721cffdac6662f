//! `em-infra status`: the environment's nodes as Proxmox and Kubernetes see them, with drift.

use crate::cli::StatusArgs;
use crate::config::Project;
use crate::output::Printer;

pub fn run(_project: &Project, _args: &StatusArgs, _printer: &Printer) -> anyhow::Result<()> {
    Err(crate::exit::bad_input("status: being built (issue 5)"))
}
