//! `em-infra status`: the environment's nodes as Proxmox and Kubernetes see them, with drift.
//!
//! The node list comes from the environment's Terraform state (the contract outputs), never from
//! the APIs: a VM or Node the state does not know is not ours — except a Kubernetes Node with no
//! inventory entry, which is reported (a stale node object keeps a name from re-registering).
//! A source that is not configured or not reachable is shown as unknown with its reason; it never
//! fails the command. Drift is a stage failure (`Failure::Stage { stage: "status" }`, exit 4).
//! Schema and meanings: `docs/verify-and-status.md`.

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::config::Project;
use crate::failure::Failure;
use crate::inventory::{ClusterOutputs, Role, load_outputs, natural_cmp};
use crate::kube::NodeReport;
use crate::proxmox::VmResource;

/// The stage name a drift failure carries (exit code 4).
pub const STAGE: &str = "status";

/// Drift labels, as the `drift` arrays spell them.
pub mod drift {
    pub const VM_MISSING: &str = "VM missing";
    pub const VM_STOPPED: &str = "VM stopped";
    pub const NAME_MISMATCH: &str = "name mismatch";
    pub const NODE_MISSING: &str = "node missing";
    pub const NODE_NOT_READY: &str = "node NotReady";
    pub const NOT_IN_STATE: &str = "not in Terraform state";
}

/// What one source answered: its data, why it is unknown, or why it was not asked.
#[derive(Debug, Clone)]
pub enum Source<T> {
    Ok(T),
    Unknown(String),
    /// The environment does not use this source (the provider-free fixture has no Proxmox).
    NotUsed(String),
}

impl<T> Source<T> {
    fn get(&self) -> Option<&T> {
        match self {
            Source::Ok(v) => Some(v),
            Source::Unknown(_) | Source::NotUsed(_) => None,
        }
    }

    fn without_data(&self) -> Source<()> {
        match self {
            Source::Ok(_) => Source::Ok(()),
            Source::Unknown(why) => Source::Unknown(why.clone()),
            Source::NotUsed(why) => Source::NotUsed(why.clone()),
        }
    }

    /// `"ok"`, the reason it is unknown, or `"not used: …"`.
    fn label(&self) -> String {
        match self {
            Source::Ok(_) => "ok".into(),
            Source::Unknown(why) => why.clone(),
            Source::NotUsed(why) => format!("not used: {why}"),
        }
    }
}

/// One row: an inventory node (or a Kubernetes node the state does not know).
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    /// The inventory role; `None` for a Kubernetes node not in the Terraform state.
    pub role: Option<Role>,
    pub vm_id: Option<u64>,
    /// The VM with this VM ID; `None` when it does not exist or Proxmox is unknown.
    pub proxmox: Option<VmResource>,
    /// The Node with this name; `None` when it does not exist or Kubernetes is unknown.
    pub kubernetes: Option<NodeReport>,
    pub drift: Vec<String>,
}

/// Every row and each source's state.
#[derive(Debug, Clone)]
pub struct StatusView {
    pub nodes: Vec<NodeStatus>,
    pub proxmox: Source<()>,
    pub kubernetes: Source<()>,
}

impl StatusView {
    /// The rows that drifted.
    pub fn drifted(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.iter().filter(|n| !n.drift.is_empty())
    }

    /// `{"nodes": [...], "sources": {"proxmox": "ok"|reason, "kubernetes": "ok"|reason}}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "nodes": self.nodes,
            "sources": { "proxmox": self.proxmox.label(), "kubernetes": self.kubernetes.label() },
        })
    }
}

/// Join the inventory with what each source answered. Pure: the tests and `run` share it.
pub fn join(
    outputs: &ClusterOutputs,
    proxmox: &Source<Vec<VmResource>>,
    kubernetes: &Source<Vec<NodeReport>>,
) -> StatusView {
    let vms = proxmox.get();
    let nodes = kubernetes.get();
    // Control plane, workers, GPU workers; slot order within each.
    let mut planned: Vec<&crate::inventory::Node> = outputs.nodes.iter().collect();
    planned.sort_by(|a, b| {
        a.role
            .cmp(&b.role)
            .then_with(|| natural_cmp(&a.name, &b.name))
    });
    let mut rows: Vec<NodeStatus> = planned
        .into_iter()
        .map(|planned| {
            let mut drift = Vec::new();
            let vm = vms.and_then(|vms| vms.iter().find(|vm| vm.vmid == planned.vm_id));
            if vms.is_some() {
                match vm {
                    None => drift.push(drift::VM_MISSING.to_string()),
                    Some(vm) => {
                        match vm.status.as_str() {
                            "running" => {}
                            "stopped" => drift.push(drift::VM_STOPPED.to_string()),
                            other => drift.push(format!("VM {other}")),
                        }
                        if vm.name.as_deref() != Some(planned.name.as_str()) {
                            drift.push(drift::NAME_MISMATCH.to_string());
                        }
                    }
                }
            }
            let node = nodes.and_then(|ns| ns.iter().find(|n| n.name == planned.name));
            if nodes.is_some() {
                match node {
                    None => drift.push(drift::NODE_MISSING.to_string()),
                    Some(n) if !n.ready => drift.push(drift::NODE_NOT_READY.to_string()),
                    Some(_) => {}
                }
            }
            NodeStatus {
                name: planned.name.clone(),
                role: Some(planned.role),
                vm_id: Some(planned.vm_id),
                proxmox: vm.cloned(),
                kubernetes: node.cloned().map(|mut n| {
                    n.inventory_role = Some(planned.role);
                    n
                }),
                drift,
            }
        })
        .collect();
    if let Some(nodes) = nodes {
        let mut extra: Vec<&NodeReport> = nodes
            .iter()
            .filter(|n| outputs.node(&n.name).is_none())
            .collect();
        extra.sort_by(|a, b| a.name.cmp(&b.name));
        rows.extend(extra.into_iter().map(|n| NodeStatus {
            name: n.name.clone(),
            role: None,
            vm_id: None,
            proxmox: None,
            kubernetes: Some(n.clone()),
            drift: vec![drift::NOT_IN_STATE.to_string()],
        }));
    }
    StatusView {
        nodes: rows,
        proxmox: proxmox.without_data(),
        kubernetes: kubernetes.without_data(),
    }
}

/// The first line of an error chain, for a one-line "unknown" reason.
fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// Proxmox's VMs, or why they are unknown (not configured, unreachable, token rejected…).
pub fn proxmox_source() -> Source<Vec<VmResource>> {
    let endpoint = std::env::var("PROXMOX_VE_ENDPOINT").unwrap_or_default();
    if endpoint.trim().is_empty() {
        return Source::Unknown("not configured: PROXMOX_VE_ENDPOINT is not set".into());
    }
    match crate::proxmox::Client::from_env().and_then(|c| c.cluster_vms()) {
        Ok(vms) => Source::Ok(vms),
        Err(err) => Source::Unknown(one_line(&err)),
    }
}

/// Kubernetes' nodes through `kubeconfig`, or why they are unknown.
pub fn kubernetes_source(kubeconfig: &Path) -> Source<Vec<NodeReport>> {
    if !kubeconfig.is_file() {
        return Source::Unknown(format!(
            "no kubeconfig at {} (configure writes it: run `em-infra up --only configure`)",
            kubeconfig.display()
        ));
    }
    match crate::kube::node_states(kubeconfig) {
        Ok(nodes) => Source::Ok(nodes),
        Err(err) => Source::Unknown(one_line(&err)),
    }
}

/// The environment's nodes as the Terraform state, Proxmox and Kubernetes see them, joined.
/// Returns the cluster's name and node count (from the state) with the view. Proxmox is asked
/// only when the environment uses it.
pub fn gather(project: &Project, env: &str) -> anyhow::Result<(ClusterOutputs, StatusView)> {
    let env = project.environment(env)?;
    let outputs = load_outputs(&env.tfstate())?;
    let proxmox = if crate::doctor::uses_proxmox(&env) {
        proxmox_source()
    } else {
        Source::NotUsed(format!(
            "{} does not use the bpg/proxmox provider (versions.tf)",
            env.name
        ))
    };
    let kubernetes = kubernetes_source(&env.kubeconfig());
    let view = join(&outputs, &proxmox, &kubernetes);
    Ok((outputs, view))
}

impl StatusView {
    /// A source the environment uses did not answer: "no drift" would claim what nobody saw.
    /// The failure names each silent source with its reason (exit 3 at the edge).
    pub fn blind_failure(&self) -> Option<anyhow::Error> {
        let silent: Vec<String> = [("Proxmox", &self.proxmox), ("Kubernetes", &self.kubernetes)]
            .into_iter()
            .filter_map(|(name, source)| match source {
                Source::Unknown(why) => Some(format!("{name}: {why}")),
                Source::Ok(()) | Source::NotUsed(_) => None,
            })
            .collect();
        if silent.is_empty() {
            return None;
        }
        Some(
            Failure::Preflight(format!(
                "status could not see the cluster: {}",
                silent.join("; ")
            ))
            .into(),
        )
    }

    /// Drift as a stage failure (exit 4 at the edge), or `None` when there is none.
    pub fn drift_failure(&self) -> Option<anyhow::Error> {
        let drifted: Vec<String> = self
            .drifted()
            .map(|n| format!("{} ({})", n.name, n.drift.join(", ")))
            .collect();
        if drifted.is_empty() {
            return None;
        }
        Some(
            Failure::Stage {
                stage: STAGE.into(),
                message: format!(
                    "drift on {} of {} nodes: {}",
                    drifted.len(),
                    self.nodes.len(),
                    drifted.join("; ")
                ),
            }
            .into(),
        )
    }
}
