//! `em-infra check`: static checks of the Terraform code and the tfvars, before anything touches
//! Proxmox. No terraform binary, no network.
//!
//! Two groups of checks, both reported as [`Finding`]s:
//! - the Terraform wiring ([`crate::config::wiring`]): module arguments, `var.x` references,
//!   the output contract, the provider pin;
//! - the tfvars ([`crate::config::topology::load`]): unknown variables, types, and every rule of
//!   docs/architecture-freeze.md §1.
//!
//! On success it shows the nodes the environment would create; on any finding it exits 2.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::finding::Finding;
use crate::config::topology::{self, Inputs, PlannedNode};
use crate::config::{Environment, Project, wiring};

/// Everything `check` found out about one environment.
#[derive(Debug, Clone)]
pub struct Report {
    /// The environment's name (its directory name).
    pub env: String,
    /// The tfvars file that was checked (absolute).
    pub tfvars: PathBuf,
    /// Every problem, wiring first, then tfvars; paths relative to the repository root.
    pub findings: Vec<Finding>,
    /// The validated inputs (`None` when a tfvars finding concerns them).
    pub inputs: Option<Inputs>,
    /// The nodes the environment would create (empty when the inputs are invalid).
    pub nodes: Vec<PlannedNode>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// `{"ok", "findings": [{file, line, field, value, message, fix}], "nodes": [...]}`, the
    /// `--json` document. Nodes have the `nodes` output's fields plus `slot`.
    pub fn to_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                let mut v = n.to_output_json();
                v["slot"] = json!(n.slot);
                v
            })
            .collect();
        json!({
            "ok": self.ok(),
            "env": self.env,
            "tfvars": self.tfvars,
            "findings": self.findings,
            "nodes": nodes,
        })
    }
}

/// Run every static check on `env` with `tfvars` (default: [`Environment::default_tfvars`]).
///
/// `Err` only when a file cannot be read at all (a missing tfvars file is bad input); every
/// problem in the files' contents is a finding in the report.
pub fn check_environment(
    project: &Project,
    env: &Environment,
    tfvars: Option<&Path>,
) -> anyhow::Result<Report> {
    let mut findings = wiring::check(&env.dir)?;
    let loaded = topology::load(env, tfvars)?;
    for f in loaded.findings {
        // The declarations are read by both checks; report a broken one once.
        if !findings.contains(&f) {
            findings.push(f);
        }
    }
    let base = project
        .root
        .canonicalize()
        .unwrap_or_else(|_| project.root.clone());
    let findings = findings
        .into_iter()
        .map(|f| f.relative_to(&base).relative_to(&project.root))
        .collect();
    let nodes = loaded
        .inputs
        .as_ref()
        .map(topology::derive)
        .unwrap_or_default();
    Ok(Report {
        env: env.name.clone(),
        tfvars: loaded.tfvars,
        findings,
        inputs: loaded.inputs,
        nodes,
    })
}

/// The nodes as a small table: name, role, IP, VM ID, Proxmox node, GPU.
pub fn nodes_table(nodes: &[PlannedNode]) -> String {
    crate::text::columns(
        &["NAME", "ROLE", "IP", "VM ID", "PROXMOX NODE", "GPU"],
        nodes.iter().map(|n| {
            [
                n.name.clone(),
                n.role.to_string(),
                n.ip.to_string(),
                n.vm_id.to_string(),
                n.proxmox_node.clone(),
                n.gpu
                    .as_ref()
                    .map_or_else(|| "-".to_string(), ToString::to_string),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topology::{Gpu, Role, VmSize};

    #[test]
    fn table_aligns_columns() {
        let size = VmSize {
            cores: 2,
            memory_mb: 4096,
            disk_gb: 32,
        };
        let nodes = vec![
            PlannedNode {
                name: "lab-cp-1".into(),
                role: Role::ControlPlane,
                slot: 0,
                ip: "10.0.0.11".parse().unwrap(),
                vm_id: 9100,
                proxmox_node: "pve".into(),
                gpu: None,
                size,
            },
            PlannedNode {
                name: "lab-gpu-1".into(),
                role: Role::GpuWorker,
                slot: 40,
                ip: "10.0.0.51".parse().unwrap(),
                vm_id: 9140,
                proxmox_node: "pve2".into(),
                gpu: Some(Gpu::Mapping("gpu0".into())),
                size,
            },
        ];
        let t = nodes_table(&nodes);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME       ROLE           IP         VM ID  PROXMOX NODE  GPU"
        );
        assert_eq!(
            lines[1],
            "lab-cp-1   control_plane  10.0.0.11  9100   pve           -"
        );
        assert_eq!(
            lines[2],
            "lab-gpu-1  gpu_worker     10.0.0.51  9140   pve2          mapping gpu0"
        );
    }
}
