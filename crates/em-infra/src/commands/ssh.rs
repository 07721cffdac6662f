//! `em-infra ssh NODE [-- CMD…]`: replaces this process with `ssh` to the node, so the terminal,
//! signals and the exit status are ssh's own.

use std::os::unix::process::CommandExt;

use em_infra_core::config::Project;
use em_infra_core::failure::Failure;
use em_infra_core::runner::install_hint;

use crate::cli::SshArgs;

pub(crate) fn run(project: &Project, args: &SshArgs) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    let cmd = em_infra_core::inventory::ssh_command(&env.tfstate(), &args.node, &args.command)?;
    let err = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .exec();
    if err.kind() == std::io::ErrorKind::NotFound {
        return Err(
            Failure::Preflight(format!("ssh not found on PATH: {}", install_hint("ssh"))).into(),
        );
    }
    Err(anyhow::Error::new(err).context("starting ssh"))
}
