//! `em-infra inventory --list | --host NAME [--env NAME|DIR] [--state FILE]`: JSON on stdout
//! whatever `--json` says (Ansible's executable-inventory protocol); errors go to stderr.

use anyhow::Context;
use em_infra_core::config::Project;

use crate::cli::InventoryArgs;
use crate::output::Printer;

/// `--state` wins over `--env`, whose directory is then not needed at all.
pub(crate) fn run(
    project: &Project,
    args: &InventoryArgs,
    printer: &Printer,
) -> anyhow::Result<()> {
    let state = match &args.state {
        Some(path) => path.clone(),
        None => project.environment(&args.env.env)?.tfstate(),
    };
    let document = em_infra_core::inventory::document(&state, args.host.as_deref())?;
    printer
        .stdout_json(&document)
        .context("writing the inventory to stdout")
}
