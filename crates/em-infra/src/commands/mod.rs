//! One module per command: each turns its arguments into the library's options, calls the
//! library, and renders what comes back (human text on stderr, tables and `--json` on stdout).

mod check;
mod completions;
mod doctor;
mod gpu;
mod init;
mod inventory;
mod kubeconfig;
mod man;
mod node;
mod prepare;
mod rotate;
mod runs;
mod scale;
mod ssh;
mod state;
mod status;
mod up;

use em_infra_core::config::Project;

use crate::cli::{Cli, Command};
use crate::output::Printer;

/// Dispatch one parsed command line.
pub(crate) fn run(cli: Cli, printer: &Printer) -> anyhow::Result<()> {
    // About em-infra itself, not a repository: dispatched before discovery, so they work anywhere.
    match &cli.command {
        Command::Completions(args) => return completions::run(args, printer),
        Command::Man => return man::run(printer),
        Command::Doctor(args) if args.print_role.is_some() => {
            return doctor::print_role(args, printer);
        }
        _ => {}
    }
    let project = Project::discover(cli.global.root.as_deref(), cli.global.state_dir.as_deref())?;
    if talks_to_proxmox(&cli.command) && em_infra_core::proxmox::insecure_from_env() {
        printer.line(format!(
            "warning: {}",
            em_infra_core::proxmox::INSECURE_WARNING
        ));
    }
    match cli.command {
        Command::Init(args) => init::run(&project, &args, printer),
        Command::Check(args) => check::run(&project, &args, printer),
        Command::Inventory(args) => inventory::run(&project, &args, printer),
        Command::Up(args) => up::up(&project, &args.run, printer),
        Command::Down(args) => up::down(&project, &args, printer),
        Command::Reset(args) => up::reset(&project, &args, printer),
        Command::Doctor(args) => doctor::run(&project, &args, printer),
        Command::Prepare(args) => prepare::run(&project, &args, printer),
        Command::Status(args) => status::run(&project, &args, printer),
        Command::Scale(args) => scale::run(&project, &args, printer),
        Command::Node(cmd) => node::run(&project, &cmd, printer),
        Command::Gpu(cmd) => gpu::run(&project, &cmd, printer),
        Command::Kubeconfig(args) => kubeconfig::run(&project, &args, printer),
        Command::Ssh(args) => ssh::run(&project, &args),
        Command::RotateSshKey(args) => rotate::run(&project, &args, printer),
        Command::State(cmd) => state::run(&project, &cmd, printer),
        Command::Runs(cmd) => runs::run(&project, &cmd, printer),
        Command::Completions(_) | Command::Man => unreachable!("dispatched before discovery"),
    }
}

/// The commands that may call the Proxmox API (they warn once when TLS verification is off).
fn talks_to_proxmox(command: &Command) -> bool {
    matches!(
        command,
        Command::Init(_)
            | Command::Scale(_)
            | Command::Node(_)
            | Command::Gpu(_)
            | Command::Doctor(_)
            | Command::Up(_)
            | Command::Reset(_)
            | Command::Status(_)
    )
}
