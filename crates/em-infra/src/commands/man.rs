//! `em-infra man`: the manual page in roff, generated from the same clap definitions as `--help`,
//! on stdout. Needs no repository.
//!
//! One document holds the whole manual: em-infra(1) first (its SUBCOMMANDS section lists every
//! command), then one page per subcommand in `--help` order, each nested command after its
//! parent (em-infra-state(1), em-infra-state-backup(1), …). Each page starts with its own `.TH`,
//! as in any multi-page roff document, so `man` shows them one after another and a single
//! installed file (`em-infra.1`) covers every command.

use std::io;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::output::Printer;

pub(crate) fn run(printer: &Printer) -> anyhow::Result<()> {
    // Without clap's `help` subcommand: `--help` is on every page's options already.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut roff = Vec::new();
    render(&cmd, &mut roff)?;
    printer.stdout_raw(&roff)
}

/// This command's page, then its subcommands' pages, depth first.
fn render(cmd: &clap::Command, out: &mut Vec<u8>) -> io::Result<()> {
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        render(sub, out)?;
    }
    Ok(())
}
