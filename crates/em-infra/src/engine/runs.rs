//! Past runs: `em-infra runs list|show`.

use crate::cli::RunsCommand;
use crate::config::Project;
use crate::output::Printer;

pub fn run(_project: &Project, _cmd: &RunsCommand, _printer: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("runs: not implemented yet")
}
