//! `em-infra doctor`: checks of this machine, the Proxmox host and the cluster, each with a fix.

use crate::cli::DoctorArgs;
use crate::config::Project;
use crate::output::Printer;

pub fn run(_project: &Project, _args: &DoctorArgs, _printer: &Printer) -> anyhow::Result<()> {
    Err(crate::exit::bad_input("doctor: being built (issue 5)"))
}
