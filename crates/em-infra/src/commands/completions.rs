//! `em-infra completions SHELL`: the shell's completion script, generated from the same clap
//! definitions as `--help`, on stdout. Needs no repository.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs, ShellArg};
use crate::output::Printer;

/// The name the scripts complete: the installed binary's, whatever this one was invoked as.
const BIN_NAME: &str = "em-infra";

pub(crate) fn run(args: &CompletionsArgs, printer: &Printer) -> anyhow::Result<()> {
    let shell = match args.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    // Rendered into memory first: the generator panics on a failed write (a closed pipe), a
    // write to stdout here fails with an error instead.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut script);
    let mut script = String::from_utf8(script)?;
    if args.shell == ShellArg::Bash {
        script = fix_bash_states(&script);
    }
    printer.stdout_raw(script.as_bytes())
}

/// clap_complete's bash script names each subcommand's state twice, and for a binary with a `-`
/// in its name the two disagree (clap-rs/clap#6421): the loop that walks the words sets
/// `em__infra__subcmd__state`, the `case` arm that completes it is `em__subcmd__infra__subcmd__state`,
/// so nothing after the first word would complete. Spell the arms as the loop does; once clap_complete
/// agrees with itself there is nothing left to replace.
fn fix_bash_states(script: &str) -> String {
    const SEP: &str = "__subcmd__";
    let arm_prefix = format!("{}{SEP}", BIN_NAME.replace('-', SEP));
    let loop_prefix = format!("{}{SEP}", BIN_NAME.replace('-', "__"));
    script.replace(&arm_prefix, &loop_prefix)
}
