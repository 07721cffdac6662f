//! `em-infra status`: the environment's nodes as Proxmox and Kubernetes see them, with drift.
//!
//! The node list comes from the environment's Terraform state (the contract outputs), never from
//! the APIs: a VM or Node the state does not know is not ours — except a Kubernetes Node with no
//! inventory entry, which is reported (a stale node object keeps a name from re-registering).
//! A source that is not configured or not reachable is shown as unknown with its reason; it never
//! fails the command. Drift exits 4 (`Failure::Stage { stage: "status" }`); no drift exits 0.
//! Schema and meanings: `docs/verify-and-status.md`.

use std::path::Path;

use comfy_table::Table;
use serde::Serialize;
use serde_json::json;

use crate::cli::StatusArgs;
use crate::config::Project;
use crate::exit::Failure;
use crate::inventory::{ClusterOutputs, Role, load_outputs, natural_cmp};
use crate::kube::NodeReport;
use crate::output::{Mark, Printer};
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

/// What one source answered: its data, or why it is unknown.
#[derive(Debug, Clone)]
pub enum Source<T> {
    Ok(T),
    Unknown(String),
}

impl<T> Source<T> {
    fn get(&self) -> Option<&T> {
        match self {
            Source::Ok(v) => Some(v),
            Source::Unknown(_) => None,
        }
    }

    fn without_data(&self) -> Source<()> {
        match self {
            Source::Ok(_) => Source::Ok(()),
            Source::Unknown(why) => Source::Unknown(why.clone()),
        }
    }

    /// `"ok"` or the reason.
    fn label(&self) -> String {
        match self {
            Source::Ok(_) => "ok".into(),
            Source::Unknown(why) => why.clone(),
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

/// `em-infra status [--env NAME|DIR] [--json]`.
pub fn run(project: &Project, args: &StatusArgs, printer: &Printer) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    let outputs = load_outputs(&env.tfstate())?;
    let proxmox = proxmox_source();
    let kubernetes = kubernetes_source(&env.kubeconfig());
    let view = join(&outputs, &proxmox, &kubernetes);

    if printer.json_mode() {
        printer.stdout_json(&view.to_json())?;
    } else {
        printer.heading(format!(
            "{}: {} nodes in the Terraform state",
            outputs.cluster_name,
            outputs.nodes.len()
        ));
        source_line(printer, "Proxmox", &view.proxmox);
        source_line(printer, "Kubernetes", &view.kubernetes);
        printer.stdout(table(&view))?;
    }

    let drifted: Vec<String> = view
        .drifted()
        .map(|n| format!("{} ({})", n.name, n.drift.join(", ")))
        .collect();
    if drifted.is_empty() {
        if !printer.json_mode() {
            let unknown = matches!(view.proxmox, Source::Unknown(_))
                || matches!(view.kubernetes, Source::Unknown(_));
            printer.mark(
                if unknown { Mark::Warn } else { Mark::Ok },
                if unknown {
                    "no drift in the sources that answered"
                } else {
                    "no drift"
                },
            );
        }
        return Ok(());
    }
    Err(Failure::Stage {
        stage: STAGE.into(),
        message: format!(
            "drift on {} of {} nodes: {}",
            drifted.len(),
            view.nodes.len(),
            drifted.join("; ")
        ),
    }
    .into())
}

fn source_line(printer: &Printer, name: &str, source: &Source<()>) {
    match source {
        Source::Ok(()) => printer.mark(Mark::Ok, format!("{name}: answered")),
        Source::Unknown(why) => printer.mark(Mark::Warn, format!("{name}: unknown — {why}")),
    }
}

/// The joined view as a table for people: `?` where a source is unknown, `-` where it answered
/// that there is nothing.
pub fn table(view: &StatusView) -> String {
    let pve_known = matches!(view.proxmox, Source::Ok(()));
    let kube_known = matches!(view.kubernetes, Source::Ok(()));
    let unknown = || "?".to_string();
    let none = || "-".to_string();
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(vec![
            "NODE",
            "ROLE",
            "VM ID",
            "PVE NODE",
            "VM",
            "K8S",
            "K8S ROLES",
            "KUBELET",
            "GPUS",
            "DRIFT",
        ]);
    for row in &view.nodes {
        let (pve_node, vm_status) = match (&row.proxmox, pve_known) {
            (Some(vm), _) => (vm.node.clone(), vm.status.clone()),
            (None, true) if row.vm_id.is_some() => (none(), "missing".into()),
            (None, true) => (none(), none()),
            (None, false) => (unknown(), unknown()),
        };
        let (ready, roles, kubelet, gpus) = match (&row.kubernetes, kube_known) {
            (Some(n), _) => (
                if n.ready {
                    "Ready".to_string()
                } else {
                    n.ready_text()
                },
                if n.roles.is_empty() {
                    none()
                } else {
                    n.roles.join(",")
                },
                n.kubelet_version.clone().unwrap_or_else(none),
                n.gpus_allocatable.map_or_else(none, |g| g.to_string()),
            ),
            (None, true) => ("missing".into(), none(), none(), none()),
            (None, false) => (unknown(), unknown(), unknown(), unknown()),
        };
        table.add_row(vec![
            row.name.clone(),
            row.role.map_or_else(none, |r| r.to_string()),
            row.vm_id.map_or_else(none, |id| id.to_string()),
            pve_node,
            vm_status,
            ready,
            roles,
            kubelet,
            gpus,
            if row.drift.is_empty() {
                none()
            } else {
                row.drift.join(", ")
            },
        ]);
    }
    crate::engine::runs::render_table(&table)
}
