//! The arguments of the commands that set an environment up and change it after `up`: `init`,
//! `scale`, `gpu`, `node`, `rotate-ssh-key`, `kubeconfig`, `ssh`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{EXIT_CODES_HELP, EnvArg};

/// `init`: what the Proxmox host cannot know comes from these flags (or, on a terminal, a
/// question); the rest is read from the host when PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN are
/// set, else kept from the example. Each flag sets the tfvars variable of its name.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// Replace an existing terraform.tfvars (the current one is kept as a backup beside it).
    #[arg(long)]
    pub(crate) force: bool,

    /// The LAN the VMs join, e.g. 192.168.10.0/24 (asked when missing).
    #[arg(long, value_name = "CIDR")]
    pub(crate) network_cidr: Option<String>,

    /// The LAN's gateway, e.g. 192.168.10.1 (asked when missing).
    #[arg(long, value_name = "IP")]
    pub(crate) gateway: Option<String>,

    /// Name prefix of every node (default: the example's).
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster_name: Option<String>,

    /// Number of workers (default: the example's).
    #[arg(long, value_name = "N")]
    pub(crate) worker_count: Option<u32>,

    /// One GPU worker per PCI resource mapping of this name (repeat for more).
    #[arg(long = "gpu-mapping", value_name = "MAPPING")]
    pub(crate) gpu_mappings: Vec<String>,

    /// The Proxmox node for the VMs (default: the host's only online node).
    #[arg(long, value_name = "NODE")]
    pub(crate) proxmox_node: Option<String>,

    /// Storage for the VM disks (default: the active one with the most free space).
    #[arg(long, value_name = "STORAGE")]
    pub(crate) datastore_id: Option<String>,

    /// Bridge for the VMs (default: vmbr0, else the node's first bridge).
    #[arg(long, value_name = "BRIDGE")]
    pub(crate) network_bridge: Option<String>,

    /// First VM ID of the nodes (default: the first free range from the example's).
    #[arg(long, value_name = "ID")]
    pub(crate) vm_id_base: Option<u64>,

    /// VM ID of the template (default: the example's, if free or already a template).
    #[arg(long, value_name = "ID")]
    pub(crate) template_vm_id: Option<u64>,

    /// Public key the nodes accept (default: the example's).
    #[arg(long, value_name = "FILE")]
    pub(crate) ssh_public_key_path: Option<String>,
}

impl InitArgs {
    pub(crate) fn init_options(&self) -> em_infra_core::init::InitOptions {
        em_infra_core::init::InitOptions {
            env: self.env.env.clone(),
            force: self.force,
            cluster_name: self.cluster_name.clone(),
            proxmox_node: self.proxmox_node.clone(),
            network_cidr: self.network_cidr.clone(),
            gateway: self.gateway.clone(),
            network_bridge: self.network_bridge.clone(),
            datastore_id: self.datastore_id.clone(),
            worker_count: self.worker_count,
            vm_id_base: self.vm_id_base,
            template_vm_id: self.template_vm_id,
            gpu_mappings: self.gpu_mappings.clone(),
            ssh_public_key_path: self.ssh_public_key_path.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ScaleArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// The number of workers wanted (checked against the network and VM ID ranges first).
    #[arg(long, value_name = "N")]
    pub(crate) workers: u32,

    #[command(flatten)]
    pub(crate) change: ChangeArgs,
}

impl ScaleArgs {
    pub(crate) fn scale_options(&self) -> em_infra_core::engine::scale::ScaleOptions {
        em_infra_core::engine::scale::ScaleOptions {
            env: self.env.env.clone(),
            workers: self.workers,
            change: self.change.change_options(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum GpuCommand {
    /// Add a GPU worker for a PCI resource mapping: doctor checks the device first, then the VM
    /// is created, configured (driver, container toolkit, device plugin) and verified.
    #[command(after_help = EXIT_CODES_HELP)]
    Add {
        #[command(flatten)]
        env: EnvArg,
        /// The PCI resource mapping (Datacenter > Resource Mappings > PCI).
        #[arg(long, value_name = "MAPPING")]
        mapping: String,
        /// The Proxmox node that holds the GPU, when not the environment's default node.
        #[arg(long, value_name = "NODE")]
        proxmox_node: Option<String>,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Remove the last GPU worker: drained, its Node deleted, its VM destroyed (the device is free).
    #[command(after_help = EXIT_CODES_HELP)]
    Remove {
        #[command(flatten)]
        env: EnvArg,
        /// The GPU worker's name (only the last one: removing another would renumber the rest).
        name: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// Flags every change of the cluster's VMs takes (`scale`, `node replace`, `gpu`).
#[derive(Debug, Args)]
pub(crate) struct ChangeArgs {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Check and show the change; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// How long a removed node's pods may take to be evicted.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub(crate) drain_timeout: u64,

    /// Delete the pods that cannot be evicted in time (a PodDisruptionBudget refuses them).
    #[arg(long)]
    pub(crate) force: bool,

    /// Terraform parallelism.
    #[arg(long, default_value_t = em_infra_core::terraform::DEFAULT_PARALLELISM, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub(crate) parallelism: u32,

    /// Remove a stale lock left by a dead em-infra process (never a live one).
    #[arg(long)]
    pub(crate) clear_stale_lock: bool,
}

impl ChangeArgs {
    pub(crate) fn change_options(&self) -> em_infra_core::engine::ChangeOptions {
        em_infra_core::engine::ChangeOptions {
            yes: self.yes,
            dry_run: self.dry_run,
            drain_timeout: Duration::from_secs(self.drain_timeout),
            force: self.force,
            parallelism: self.parallelism,
            clear_stale_lock: self.clear_stale_lock,
        }
    }
}

impl GpuCommand {
    pub(crate) fn gpu_options(&self) -> em_infra_core::engine::gpu::GpuOptions {
        use em_infra_core::engine::gpu::{GpuChange, GpuOptions};
        let (env, change, args) = match self {
            GpuCommand::Add {
                env,
                mapping,
                proxmox_node,
                change,
            } => (
                env,
                GpuChange::Add {
                    mapping: mapping.clone(),
                    proxmox_node: proxmox_node.clone(),
                },
                change,
            ),
            GpuCommand::Remove { env, name, change } => {
                (env, GpuChange::Remove { name: name.clone() }, change)
            }
        };
        GpuOptions {
            env: env.env.clone(),
            what: change,
            change: args.change_options(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Recreate a worker: drain it and delete its Node, replace its VM (same name, IP and VM ID),
    /// configure it and wait until every node is Ready.
    #[command(after_help = EXIT_CODES_HELP)]
    Replace(NodeReplaceArgs),
}

#[derive(Debug, Args)]
pub(crate) struct NodeReplaceArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// The node's name, as in `em-infra status` (a worker or GPU worker).
    pub(crate) name: String,

    #[command(flatten)]
    pub(crate) change: ChangeArgs,
}

impl NodeReplaceArgs {
    pub(crate) fn replace_options(&self) -> em_infra_core::engine::replace::ReplaceOptions {
        em_infra_core::engine::replace::ReplaceOptions {
            env: self.env.env.clone(),
            node: self.name.clone(),
            change: self.change.change_options(),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct KubeconfigArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// Merge the cluster's context into $KUBECONFIG's first file (else ~/.kube/config): a backup
    /// first, mode 0600, other entries and current-context untouched; a rerun changes nothing.
    #[arg(long)]
    pub(crate) merge: bool,

    /// Name of the merged context, cluster and user (default: the environment's name).
    #[arg(long, value_name = "NAME", requires = "merge")]
    pub(crate) context: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SshArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// Node name, as in `em-infra status` (e.g. k3s-dev-worker-1).
    pub(crate) node: String,

    /// A command to run instead of a shell (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RotateSshKeyArgs {
    #[command(flatten)]
    pub(crate) env: EnvArg,

    /// The new private key (its public half beside it as PATH.pub), or the .pub itself.
    #[arg(long, value_name = "PATH")]
    pub(crate) key: PathBuf,

    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Show the nodes and the tfvars change; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Remove a stale lock left by a dead em-infra process (never a live one).
    #[arg(long)]
    pub(crate) clear_stale_lock: bool,
}
