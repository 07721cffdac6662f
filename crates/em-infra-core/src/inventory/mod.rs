//! Terraform state outputs → Ansible executable-inventory JSON.
//!
//! The inventory is derived, never edited: the environment's local Terraform state (format
//! version 4) holds the contract outputs of docs/architecture-freeze.md §2, and this module turns
//! them into the groups and host variables of §3. It reads the file directly: no `terraform`
//! binary, no provider, no network.
//!
//! Library API, for the stages that need the cluster's hosts:
//!
//! - [`load_outputs`]`(path) -> Result<ClusterOutputs>`: read and cross-check a state file. Every
//!   failure is a `Failure::BadInput` (exit 2) whose message names the file and the fix.
//! - [`inventory_json`]`(&ClusterOutputs) -> serde_json::Value`: the `--list` document (the
//!   configure stage writes it as the run's inventory artifact).
//! - [`host_vars`]`(&ClusterOutputs, &Node) -> serde_json::Value`: one host's variables.
//! - [`ClusterOutputs::ips`]: every node's IP (`down` clears their `known_hosts` entries).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let outputs = em_infra_core::inventory::load_outputs("terraform/environments/k3s-dev/terraform.tfstate".as_ref())?;
//! let inventory = em_infra_core::inventory::inventory_json(&outputs);
//! assert!(inventory["control_plane"]["hosts"].is_array());
//! # Ok(()) }
//! ```
//!
//! Ansible reads the same JSON through `ansible/inventory_plugins/em_infra_state.py`, which runs
//! `em-infra inventory --list --state FILE`: this module is the one implementation of the mapping.

mod outputs;
mod render;

pub use outputs::{
    ClusterOutputs, Gpu, Node, REQUIRED_OUTPUTS, Role, STATE_FORMAT_VERSION, load_outputs,
    natural_cmp, parse_state,
};
pub use render::{GROUP_AGENTS, GROUP_CLUSTER, host_vars, inventory_json};

use crate::failure::bad_input;
use std::path::Path;

/// How many known hosts an "unknown host" error lists before summarising the rest.
const KNOWN_HOSTS_SHOWN: usize = 20;

/// The document `em-infra inventory` prints: the whole inventory (groups, hosts and
/// `_meta.hostvars`) from the Terraform state at `state`, or with `host` that host's variables
/// (Ansible never asks for `--host` because `--list` carries `_meta.hostvars`). An unknown host is
/// bad input naming the known ones.
pub fn document(state: &Path, host: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let outputs = load_outputs(state)?;
    Ok(match host {
        Some(name) => {
            let node = outputs
                .node(name)
                .ok_or_else(|| unknown_host("--host", name, &outputs, state))?;
            host_vars(&outputs, node)
        }
        None => inventory_json(&outputs),
    })
}

/// `label` says where the name came from (`--host`, `node`).
fn unknown_host(label: &str, name: &str, outputs: &ClusterOutputs, state: &Path) -> anyhow::Error {
    let names = outputs.host_names();
    let mut known = names
        .iter()
        .take(KNOWN_HOSTS_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > KNOWN_HOSTS_SHOWN {
        known.push_str(&format!(" and {} more", names.len() - KNOWN_HOSTS_SHOWN));
    }
    bad_input(format!(
        "{label} {name}: no such host in the Terraform state {}; known hosts: {known}",
        state.display()
    ))
}

/// `ssh` to node `name` of the Terraform state at `state`, as Ansible reaches it: the state's
/// user and the node's IP, Ansible's private key (`ANSIBLE_PRIVATE_KEY_FILE`, else
/// `~/.ssh/id_ed25519`), and Ansible's ssh options — `ANSIBLE_SSH_ARGS` when set (it replaces
/// ansible.cfg's `ssh_args`, known_hosts settings included), else ansible.cfg's host key rule:
/// new hosts accepted once, changed keys refused. `command` empty: an interactive shell.
pub fn ssh_command(
    state: &Path,
    name: &str,
    command: &[String],
) -> anyhow::Result<crate::runner::Cmd> {
    let outputs = load_outputs(state)?;
    let node = outputs
        .node(name)
        .ok_or_else(|| unknown_host("node", name, &outputs, state))?;
    let mut cmd = crate::runner::Cmd::new("ssh", format!("ssh {name}"));
    cmd = match std::env::var("ANSIBLE_SSH_ARGS") {
        Ok(args) if !args.trim().is_empty() => {
            cmd.args(args.split_whitespace().map(str::to_string))
        }
        _ => cmd.args(["-o", "StrictHostKeyChecking=accept-new"]),
    };
    if let Some(key) = crate::ansible::private_key().filter(|k| k.is_file()) {
        cmd = cmd.arg("-i").arg(key);
    }
    cmd = cmd.arg(format!("{}@{}", outputs.ssh_user, node.ip));
    if !command.is_empty() {
        cmd = cmd.arg("--").args(command.iter().cloned());
    }
    Ok(cmd)
}
