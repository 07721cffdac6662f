//! Command-line definitions (clap). Parsing only: every command's behaviour lives in its module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use em_infra_core::engine::{DownOptions, Stage, StageSelection, UpOptions};

mod day2;
pub(crate) use day2::*;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    internal error (a bug, or an I/O error outside the project's control)
  2    bad input: invalid flags, tfvars findings, missing or corrupt files
  3    preflight failed: a required tool, variable, key or check is missing (`doctor`: any ✗;
       `status`: a source it needs did not answer)
  4    a stage failed: the tool it ran exited non-zero (see the stage log); `status`: drift found
  5    refused: the plan would replace or destroy a cluster VM (rerun with --allow-replace),
       or `state restore` over a newer or other-lineage state (rerun with --force)
  75   locked: another em-infra run holds this environment's lock
  130  interrupted by Ctrl-C or SIGTERM (resume with `em-infra up --resume`)";

/// em-infra: one command from a Proxmox VE host to a verified k3s cluster.
///
/// Terraform provisions the VMs, Ansible configures k3s from an inventory derived from
/// Terraform state, and em-infra runs the stages, keeps checkpoints and logs, and verifies.
#[derive(Debug, Parser)]
#[command(name = "em-infra", version, about, long_about = None, after_help = EXIT_CODES_HELP)]
#[command(propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print machine-readable JSON on stdout instead of human output.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Disable colours (also honoured: the NO_COLOR environment variable).
    #[arg(long, global = true)]
    pub(crate) no_color: bool,

    /// Repository root (default: the nearest parent directory holding `terraform/environments`).
    #[arg(long, global = true, env = "EM_INFRA_ROOT", value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,

    /// Where em-infra keeps per-environment state, locks, runs and secrets (default: `<root>/.em-infra`).
    #[arg(long, global = true, env = "EM_INFRA_STATE_DIR", value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write the environment's terraform.tfvars from its example and the Proxmox host.
    #[command(after_help = EXIT_CODES_HELP)]
    Init(InitArgs),

    /// Static checks of the Terraform code and the tfvars, before anything touches Proxmox.
    #[command(after_help = EXIT_CODES_HELP)]
    Check(CheckArgs),

    /// Ansible inventory (executable-inventory JSON) from the environment's Terraform state.
    #[command(after_help = EXIT_CODES_HELP)]
    Inventory(InventoryArgs),

    /// Bring the cluster up: preflight → prepare → provision → configure → verify.
    #[command(after_help = EXIT_CODES_HELP)]
    Up(UpArgs),

    /// Destroy the cluster's VMs and clear every file derived from them.
    #[command(after_help = EXIT_CODES_HELP)]
    Down(DownArgs),

    /// `down`, then `up`: a fresh cluster in bounded time.
    #[command(after_help = EXIT_CODES_HELP)]
    Reset(ResetArgs),

    /// Check this machine, the Proxmox host and (after provision) the cluster before a run.
    #[command(after_help = EXIT_CODES_HELP)]
    Doctor(DoctorArgs),

    /// Build the cloud-init Ubuntu template on the Proxmox host (idempotent).
    #[command(after_help = EXIT_CODES_HELP)]
    Prepare(PrepareArgs),

    /// One table of the environment's nodes: Proxmox VM state joined with Kubernetes node state.
    #[command(after_help = EXIT_CODES_HELP)]
    Status(StatusArgs),

    /// Change the number of workers: new VMs are created and joined; removed ones are drained,
    /// deleted from Kubernetes and destroyed (the highest-numbered first).
    #[command(after_help = EXIT_CODES_HELP)]
    Scale(ScaleArgs),

    /// GPU workers: `gpu add --mapping M` creates one, `gpu remove NAME` drains and destroys one.
    #[command(subcommand)]
    Gpu(GpuCommand),

    /// One node: `node replace NAME` recreates a broken worker (drain, new VM, join, Ready).
    #[command(subcommand)]
    Node(NodeCommand),

    /// The cluster's kubeconfig: print its path, or merge its context into your kubeconfig.
    #[command(after_help = EXIT_CODES_HELP)]
    Kubeconfig(KubeconfigArgs),

    /// A shell (or one command) on a node, by name, with the key, user and known_hosts Ansible uses.
    #[command(after_help = EXIT_CODES_HELP)]
    Ssh(SshArgs),

    /// Replace the SSH key on every node (proven before the old one goes) and in the tfvars.
    #[command(after_help = ROTATE_HELP)]
    RotateSshKey(RotateSshKeyArgs),

    /// Back up, list and restore the environment's Terraform state.
    #[command(subcommand)]
    State(StateCommand),

    /// Past runs: stages, results and durations.
    #[command(subcommand)]
    Runs(RunsCommand),

    /// Print the shell completion script for bash, zsh or fish on stdout (works anywhere).
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),

    /// Print the manual page (roff) on stdout: em-infra(1), then every subcommand's page.
    #[command(after_help = MAN_HELP)]
    Man,
}

const ROTATE_HELP: &str = "\
--key names the new private key (or its .pub); both halves must exist. The current key is the one
Ansible uses (ANSIBLE_PRIVATE_KEY_FILE, default ~/.ssh/id_ed25519) and its .pub. Order on each
node: the new key is added to the ansible_user's ~/.ssh/authorized_keys, a fresh login with the
new key alone is proven, then the old key's line is removed; a rerun changes nothing. The tfvars'
ssh_public_key_path then names the new .pub (comments kept, a backup beside it); existing VMs are
not replaced (cloud-init user data is ignored after creation).

Exit codes: 0 rotated · 2 bad input (the field is named; nothing changed) · 4 the playbook failed
(see the run's rotate-ssh-key.log; the old key stays wherever the proof did not pass) · 75 locked";

const COMPLETIONS_HELP: &str = "\
Install (then open a new shell):
  bash  em-infra completions bash > ~/.local/share/bash-completion/completions/em-infra
  zsh   em-infra completions zsh > ~/.zfunc/_em-infra
        (and in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath))
  fish  em-infra completions fish > ~/.config/fish/completions/em-infra.fish";

const MAN_HELP: &str = "\
Install:
  mkdir -p ~/.local/share/man/man1
  em-infra man > ~/.local/share/man/man1/em-infra.1
  man em-infra";

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to generate the completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub(crate) shell: ShellArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

/// Which environment: a name under `terraform/environments/`, or a path to a directory.
#[derive(Debug, Clone, Args)]
pub(crate) struct EnvArg {
    /// Environment name (`terraform/environments/<NAME>`) or a path to an environment directory.
    #[arg(
        long = "env",
        env = "EM_INFRA_ENV",
        default_value = "k3s-dev",
        value_name = "NAME|DIR"
    )]
    pub(crate) env: String,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// tfvars file to check (default: the environment's terraform.tfvars, else the example).
    #[arg(long, value_name = "FILE")]
    pub(crate) tfvars: Option<PathBuf>,

    /// Print the `pveum` commands that create the role, user and API token em-infra needs on
    /// Proxmox VE 8 or 9 (the privileges doctor checks), and exit: no check runs, no repository
    /// is needed. With --json: the same commands and every required privilege, its path and why.
    #[arg(long, value_name = "PVE_MAJOR", value_parser = clap::value_parser!(u32).range(8..=9))]
    pub(crate) print_role: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct PrepareArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// When the template was built from another image than the pinned one, build a new template
    /// under a new VM ID (running VMs are untouched; then set template_vm_id to it).
    #[arg(long)]
    pub(crate) refresh: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// tfvars file to check (default: the environment's terraform.tfvars, else terraform.tfvars.example).
    #[arg(long, value_name = "FILE")]
    pub(crate) tfvars: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["list", "host"])))]
pub(crate) struct InventoryArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// Terraform state file to read (default: `<env>/terraform.tfstate`).
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,

    /// Print the whole inventory (groups, hosts and `_meta.hostvars`).
    #[arg(long)]
    pub(crate) list: bool,

    /// Print the variables of one host.
    #[arg(long, value_name = "NAME")]
    pub(crate) host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StageArg {
    Preflight,
    Prepare,
    Provision,
    Configure,
    Verify,
}

impl From<StageArg> for Stage {
    fn from(s: StageArg) -> Self {
        match s {
            StageArg::Preflight => Stage::Preflight,
            StageArg::Prepare => Stage::Prepare,
            StageArg::Provision => Stage::Provision,
            StageArg::Configure => Stage::Configure,
            StageArg::Verify => Stage::Verify,
        }
    }
}

/// Flags shared by `up` and `reset` (everything that shapes a bring-up run).
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// Run only this stage.
    #[arg(long, value_name = "STAGE", conflicts_with_all = ["from", "to", "resume"])]
    pub(crate) only: Option<StageArg>,

    /// Start at this stage; the stages before it are not rerun.
    #[arg(long, value_name = "STAGE", conflicts_with = "resume")]
    pub(crate) from: Option<StageArg>,

    /// Stop after this stage.
    #[arg(long, value_name = "STAGE")]
    pub(crate) to: Option<StageArg>,

    /// Continue at the stage that failed or was interrupted in the last run.
    #[arg(long)]
    pub(crate) resume: bool,

    /// Show each stage's commands (and the Terraform plan when Proxmox is reachable); change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Same as `--only prepare`.
    #[arg(long, conflicts_with_all = ["only", "from", "to", "resume", "terraform_only", "ansible_only", "verify_only"])]
    pub(crate) prepare_only: bool,

    /// Same as `--only provision`.
    #[arg(long, conflicts_with_all = ["only", "from", "to", "resume", "ansible_only", "verify_only"])]
    pub(crate) terraform_only: bool,

    /// Same as `--only configure`.
    #[arg(long, conflicts_with_all = ["only", "from", "to", "resume", "verify_only"])]
    pub(crate) ansible_only: bool,

    /// Same as `--only verify`.
    #[arg(long, conflicts_with_all = ["only", "from", "to", "resume"])]
    pub(crate) verify_only: bool,

    /// Let a plan replace or destroy existing cluster VMs (refused otherwise).
    #[arg(long)]
    pub(crate) allow_replace: bool,

    /// Terraform parallelism (kept low: clones from one template contend for its lock).
    #[arg(long, default_value_t = em_infra_core::terraform::DEFAULT_PARALLELISM, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub(crate) parallelism: u32,

    /// Remove a stale lock left by a dead em-infra process (never a live one).
    #[arg(long)]
    pub(crate) clear_stale_lock: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Give up on `terraform destroy` after this many seconds.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub(crate) timeout: u64,

    /// Remove a stale lock left by a dead em-infra process (never a live one).
    #[arg(long)]
    pub(crate) clear_stale_lock: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,

    /// Do not ask for confirmation before destroying.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Give up on `terraform destroy` after this many seconds.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub(crate) timeout: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StateCommand {
    /// Copy the current Terraform state into the backup directory (0600, timestamped, rotated).
    Backup {
        #[command(flatten)]
        env: EnvArg,
    },
    /// List backups with their serial and lineage.
    List {
        #[command(flatten)]
        env: EnvArg,
    },
    /// Restore a backup over the current state (refuses to overwrite a newer state without --force).
    Restore {
        #[command(flatten)]
        env: EnvArg,
        /// Backup ID as printed by `em-infra state list`.
        id: String,
        /// Overwrite even when the current state is newer or of another lineage.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// One line per past run: id, start, result, duration.
    List {
        #[command(flatten)]
        env: EnvArg,
    },
    /// One run's stages with their results and durations (default: the newest run).
    Show {
        #[command(flatten)]
        env: EnvArg,
        /// Run ID as printed by `em-infra runs list`.
        id: Option<String>,
    },
    /// One .tar.gz for a bug report about a run (default: the newest): its records and logs, the
    /// environment's state.json and lock, tool versions, tfvars and inventory, secrets redacted.
    ///
    /// The Proxmox API token and passwords, the k3s token, kubeconfig credentials and private
    /// keys are redacted in every file; plan.tfplan, the kubeconfig and the k3s-token file are
    /// left out. The archive (mode 0600) goes to <state_dir>/bundles/<run-id>.tar.gz unless
    /// --output says otherwise; its path is printed on stdout.
    Bundle {
        #[command(flatten)]
        env: EnvArg,
        /// Run ID or a unique prefix of one, as printed by `em-infra runs list`.
        id: Option<String>,
        /// Where to write the archive (a directory: <DIR>/<run-id>.tar.gz).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

impl RunArgs {
    /// The stages these flags select (`--prepare-only` and friends are `--only`).
    fn stage_selection(&self) -> StageSelection {
        let alias = [
            (self.prepare_only, Stage::Prepare),
            (self.terraform_only, Stage::Provision),
            (self.ansible_only, Stage::Configure),
            (self.verify_only, Stage::Verify),
        ]
        .into_iter()
        .find_map(|(set, stage)| set.then_some(stage));
        StageSelection {
            only: alias.or(self.only.map(Stage::from)),
            from: self.from.map(Stage::from),
            to: self.to.map(Stage::from),
            resume: self.resume,
        }
    }

    pub(crate) fn up_options(&self) -> UpOptions {
        UpOptions {
            env: self.env.env.clone(),
            stages: self.stage_selection(),
            dry_run: self.dry_run,
            allow_replace: self.allow_replace,
            parallelism: self.parallelism,
            clear_stale_lock: self.clear_stale_lock,
        }
    }
}

impl DownArgs {
    pub(crate) fn down_options(&self) -> DownOptions {
        DownOptions {
            env: self.env.env.clone(),
            yes: self.yes,
            timeout: Duration::from_secs(self.timeout),
            clear_stale_lock: self.clear_stale_lock,
        }
    }
}

impl ResetArgs {
    pub(crate) fn down_options(&self) -> DownOptions {
        DownOptions {
            env: self.run.env.env.clone(),
            yes: self.yes,
            timeout: Duration::from_secs(self.timeout),
            clear_stale_lock: self.run.clear_stale_lock,
        }
    }
}
