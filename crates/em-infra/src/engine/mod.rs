//! Stages, checkpoints, the lock and run records.

pub mod backup;
pub mod runs;

use serde::{Deserialize, Serialize};

use crate::cli::{DownArgs, ResetArgs, RunArgs};
use crate::config::Project;
use crate::output::Printer;

/// The stages of a bring-up, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Preflight,
    Prepare,
    Provision,
    Configure,
    Verify,
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::Preflight, Stage::Prepare, Stage::Provision, Stage::Configure, Stage::Verify];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Preflight => "preflight",
            Stage::Prepare => "prepare",
            Stage::Provision => "provision",
            Stage::Configure => "configure",
            Stage::Verify => "verify",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub fn up(_project: &Project, _args: &RunArgs, _printer: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("up: not implemented yet")
}

pub fn down(_project: &Project, _args: &DownArgs, _printer: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("down: not implemented yet")
}

pub fn reset(_project: &Project, _args: &ResetArgs, _printer: &Printer) -> anyhow::Result<()> {
    anyhow::bail!("reset: not implemented yet")
}
