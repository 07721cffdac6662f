//! Thin entry point: parse, run, map the outcome to a documented exit code.

mod cli;
mod commands;
mod exit;
mod output;
mod report;
mod table;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::output::Printer;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version (exit 0) and usage errors (exit 2) itself.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                exit::code::BAD_INPUT
            } else {
                exit::code::OK
            });
        }
    };
    let printer = Printer::new(cli.global.json, cli.global.no_color);
    ExitCode::from(match commands::run(cli, &printer) {
        Ok(()) => exit::code::OK,
        Err(err) => {
            printer.error(&err);
            exit::exit_code_of(&err)
        }
    })
}
