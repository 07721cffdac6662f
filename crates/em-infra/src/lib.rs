//! em-infra: the orchestrator library. `main.rs` only parses and maps the outcome to an exit code;
//! each concern lives in its own module:
//!
//! - [`config`]: repository and environment discovery, tfvars reading, the input rules (`check`)
//! - [`inventory`]: Terraform state outputs → Ansible inventory JSON
//! - [`engine`]: stages, `state.json`, the lock, run records and events
//! - [`runner`]: the one way an external program runs (capture, redact, signals)
//! - [`terraform`], [`ansible`]: the commands each stage runs
//! - [`proxmox`]: the typed Proxmox VE API client; [`doctor`]: checks before a run
//! - [`prepare`]: the template on the Proxmox host; [`kube`]: verification through the Kubernetes API
//! - [`status`]: Proxmox and Kubernetes views of the nodes, joined
//! - [`report`]: human and JSON rendering

pub mod ansible;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod engine;
pub mod exit;
pub mod fsutil;
pub mod inventory;
pub mod kube;
pub mod output;
pub mod prepare;
pub mod proxmox;
pub mod report;
pub mod runner;
pub mod status;
pub mod terraform;

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::code;
use crate::output::Printer;

/// Parse `args`, run the command, print any error once, and return the exit code.
pub fn main_with_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version (exit 0) and usage errors (exit 2) itself.
            let _ = err.print();
            return if err.use_stderr() {
                code::BAD_INPUT
            } else {
                code::OK
            };
        }
    };
    let printer = Printer::new(cli.global.json, cli.global.no_color);
    match run(cli, &printer) {
        Ok(()) => code::OK,
        Err(err) => {
            printer.error(&err);
            exit::exit_code_of(&err)
        }
    }
}

/// Dispatch one parsed command line.
pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<()> {
    let project =
        config::Project::discover(cli.global.root.as_deref(), cli.global.state_dir.as_deref())?;
    match cli.command {
        Command::Check(args) => config::check::run(&project, &args, printer),
        Command::Inventory(args) => inventory::run(&project, &args, printer),
        Command::Up(args) => engine::up(&project, &args.run, printer),
        Command::Down(args) => engine::down(&project, &args, printer),
        Command::Reset(args) => engine::reset(&project, &args, printer),
        Command::Doctor(args) => doctor::run(&project, &args, printer),
        Command::Prepare(args) => prepare::run(&project, &args, printer),
        Command::Status(args) => status::run(&project, &args, printer),
        Command::State(cmd) => engine::backup::run(&project, &cmd, printer),
        Command::Runs(cmd) => engine::runs::run(&project, &cmd, printer),
    }
}
