//! `em-infra node replace NAME`: the repair for a broken worker. Its Node is cordoned, drained
//! and deleted (so the new VM, same name, registers cleanly), its resources are planned for
//! replacement (`terraform plan -replace=ADDR` for every resource of that node in the state: same
//! name, IP and VM ID, since the topology derives them), its old SSH host key is forgotten, then
//! configure joins the new VM and verify waits until every node is Ready. A replacement registers
//! as a new, schedulable Node. The only control plane is refused: replacing it would lose the
//! cluster's datastore.

use std::path::Path;

use crate::config::Project;
use crate::engine::events::{Frontend, Question, Verdict};
use crate::engine::run::Run;
use crate::engine::stages::Ctx;
use crate::engine::state::EnvState;
use crate::engine::{
    ChangeOptions, RunReport, Stage, drain_step, finish, forget_host_keys, lock, run_stages,
};
use crate::failure::bad_input;
use crate::inventory::Role;
use crate::runner::{Interrupt, Redactor};

#[derive(Debug, Clone)]
pub struct ReplaceOptions {
    pub env: String,
    pub node: String,
    pub change: ChangeOptions,
}

#[derive(Debug)]
pub enum ReplaceOutcome {
    /// A dry run: the resources that would be replaced.
    Planned {
        node: String,
        addresses: Vec<String>,
    },
    Ran(Box<RunReport>),
}

pub fn replace(
    project: &Project,
    opts: &ReplaceOptions,
    frontend: &dyn Frontend,
) -> anyhow::Result<ReplaceOutcome> {
    let env = project.environment(&opts.env)?;
    let tfvars = env.own_tfvars()?;
    let outputs = crate::inventory::load_outputs(&env.tfstate())?;
    let Some(node) = outputs.node(&opts.node) else {
        return Err(bad_input(format!(
            "node {}: no such node in the Terraform state; nodes: {}",
            opts.node,
            outputs.host_names().join(", ")
        )));
    };
    if node.role == Role::ControlPlane {
        return Err(bad_input(format!(
            "node {}: the control plane holds the cluster's datastore, and a new one would be an \
             empty cluster; recreate everything with `em-infra reset` instead",
            node.name
        )));
    }
    let addresses = node_addresses(&env.tfstate(), &node.name)?;
    if addresses.is_empty() {
        return Err(bad_input(format!(
            "node {}: the Terraform state holds no resource for it; `em-infra up --from provision` \
             creates what is missing",
            node.name
        )));
    }
    if opts.change.dry_run {
        return Ok(ReplaceOutcome::Planned {
            node: node.name.clone(),
            addresses,
        });
    }
    if !opts.change.yes
        && !frontend.confirm(&Question::ReplaceNode {
            env: env.name.clone(),
            node: node.name.clone(),
        })?
    {
        return Err(bad_input("not confirmed: nothing was changed"));
    }

    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    let lock = lock(&env, "node replace", opts.change.clear_stale_lock)?;
    let mut state = EnvState::load(&env.state_dir, &env.name)?;
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        &format!("node replace {}", node.name),
        Redactor::from_env(),
        Interrupt::install()?,
        frontend,
        Some(&lock),
    )?;
    let failure = (|| -> anyhow::Result<Option<anyhow::Error>> {
        let drained = drain_step(
            &mut run,
            &env.kubeconfig(),
            std::slice::from_ref(&node.name),
            &opts.change.drain(),
        );
        if let Err(e) = drained {
            return Ok(Some(e));
        }
        // The new VM has a new host key; Ansible must not take it for an attack.
        forget_host_keys(
            &mut run,
            Stage::Provision,
            "provision",
            &[node.ip.to_string()],
        )?;
        let ctx = Ctx {
            project,
            env: &env,
            tfvars: tfvars.clone(),
            parallelism: opts.change.parallelism,
            allow_replace: false,
            expected_losses: vec![node.name.clone()],
            replace: addresses.clone(),
            limit: Vec::new(),
            dry_run: false,
        };
        run_stages(
            &ctx,
            &mut run,
            &mut state,
            &[Stage::Provision, Stage::Configure, Stage::Verify],
        )
    })();
    let failure = failure.unwrap_or_else(Some);
    let verdict = Verdict::of_outcome(failure.as_ref());
    Ok(ReplaceOutcome::Ran(Box::new(finish(
        run, verdict, failure,
    )?)))
}

/// The managed resource instances of node `name` in the state at `tfstate`, as `-replace`
/// addresses: those keyed by the name (`terraform_data.vm["lab-worker-1"]`) and those inside a
/// module instance keyed by it (`module.vm_ubuntu22["k3s-dev-worker-1"].proxmox_virtual_environment_vm.this`).
pub fn node_addresses(tfstate: &Path, name: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(tfstate)?;
    let state: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad_input(format!("{}: {e}", tfstate.display())))?;
    let keyed = format!("[{}]", serde_json::Value::String(name.to_string()));
    let mut out = Vec::new();
    for resource in state["resources"].as_array().into_iter().flatten() {
        if resource["mode"] != "managed" {
            continue;
        }
        let module = resource["module"].as_str();
        let base = format!(
            "{}{}.{}",
            module.map(|m| format!("{m}.")).unwrap_or_default(),
            resource["type"].as_str().unwrap_or_default(),
            resource["name"].as_str().unwrap_or_default()
        );
        let in_node_module = module.is_some_and(|m| m.contains(&keyed));
        for instance in resource["instances"].as_array().into_iter().flatten() {
            let address = match &instance["index_key"] {
                serde_json::Value::String(k) if k == name => format!("{base}{keyed}"),
                serde_json::Value::String(k) if in_node_module => {
                    format!("{base}[{}]", serde_json::Value::String(k.clone()))
                }
                serde_json::Value::Number(n) if in_node_module => format!("{base}[{n}]"),
                serde_json::Value::Null if in_node_module => base.clone(),
                _ => continue,
            };
            out.push(address);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keyed_by_the_node_or_inside_its_module_instance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terraform.tfstate");
        let state = serde_json::json!({
            "version": 4, "serial": 1, "lineage": "l",
            "resources": [
                { "mode": "managed", "type": "terraform_data", "name": "vm",
                  "instances": [{ "index_key": "lab-worker-1" }, { "index_key": "lab-worker-2" }] },
                { "module": "module.vm_ubuntu22[\"k3s-dev-worker-1\"]", "mode": "managed",
                  "type": "proxmox_virtual_environment_vm", "name": "this", "instances": [{}] },
                { "module": "module.vm_ubuntu22[\"k3s-dev-worker-10\"]", "mode": "managed",
                  "type": "proxmox_virtual_environment_vm", "name": "this", "instances": [{}] },
                { "mode": "data", "type": "x", "name": "y", "instances": [{ "index_key": "lab-worker-1" }] },
            ],
        });
        std::fs::write(&path, state.to_string()).unwrap();
        assert_eq!(
            node_addresses(&path, "lab-worker-1").unwrap(),
            ["terraform_data.vm[\"lab-worker-1\"]"]
        );
        assert_eq!(
            node_addresses(&path, "k3s-dev-worker-1").unwrap(),
            ["module.vm_ubuntu22[\"k3s-dev-worker-1\"].proxmox_virtual_environment_vm.this"]
        );
        assert!(node_addresses(&path, "nope").unwrap().is_empty());
    }
}
