//! Checked outputs → Ansible executable-inventory JSON (architecture freeze §3).

use serde_json::{Map, Value, json};

use super::outputs::{ClusterOutputs, Node, Role};

/// The group every cluster host is under; carries `em_cluster_name`.
pub const GROUP_CLUSTER: &str = "k3s_cluster";
/// Parent of `workers` and `gpu_workers`: every host that joins as a k3s agent.
pub const GROUP_AGENTS: &str = "k3s_agents";

/// The whole inventory, as `em-infra inventory --list` prints it:
///
/// ```json
/// {
///   "_meta": { "hostvars": { "<name>": { "ansible_host": "10.0.0.10", ... } } },
///   "all": { "children": ["k3s_cluster", "ungrouped"] },
///   "k3s_cluster": { "children": ["control_plane", "k3s_agents"], "vars": { "em_cluster_name": "k3s-dev" } },
///   "k3s_agents": { "children": ["workers", "gpu_workers"] },
///   "control_plane": { "hosts": ["k3s-dev-cp-1"] },
///   "workers": { "hosts": ["k3s-dev-worker-1", "k3s-dev-worker-2"] },
///   "gpu_workers": { "hosts": [] }
/// }
/// ```
///
/// Every group is present even when empty, hosts are in [`ClusterOutputs::nodes`] order (slot order)
/// and object keys are sorted, so equal outputs always render to identical bytes.
pub fn inventory_json(outputs: &ClusterOutputs) -> Value {
    let hostvars: Map<String, Value> = outputs
        .nodes
        .iter()
        .map(|node| (node.name.clone(), host_vars(outputs, node)))
        .collect();
    let mut inventory = Map::new();
    inventory.insert("_meta".into(), json!({ "hostvars": hostvars }));
    inventory.insert(
        "all".into(),
        json!({ "children": [GROUP_CLUSTER, "ungrouped"] }),
    );
    inventory.insert(
        GROUP_CLUSTER.into(),
        json!({
            "children": [Role::ControlPlane.group(), GROUP_AGENTS],
            "vars": { "em_cluster_name": outputs.cluster_name },
        }),
    );
    inventory.insert(
        GROUP_AGENTS.into(),
        json!({ "children": [Role::Worker.group(), Role::GpuWorker.group()] }),
    );
    for role in Role::ALL {
        let hosts: Vec<&str> = outputs
            .nodes_with_role(role)
            .map(|n| n.name.as_str())
            .collect();
        inventory.insert(role.group().into(), json!({ "hosts": hosts }));
    }
    Value::Object(inventory)
}

/// One host's variables, as `em-infra inventory --host NAME` prints them and `_meta.hostvars` holds:
/// `ansible_host` (IP), `ansible_user` (output `ssh_user`), `em_role`, `em_vm_id`, `em_proxmox_node`
/// and `em_gpu` (`{ "mapping": ..., "pci_id": ... }` or null).
pub fn host_vars(outputs: &ClusterOutputs, node: &Node) -> Value {
    json!({
        "ansible_host": node.ip.to_string(),
        "ansible_user": outputs.ssh_user,
        "em_role": node.role.as_str(),
        "em_vm_id": node.vm_id,
        "em_proxmox_node": node.proxmox_node,
        "em_gpu": node.gpu,
    })
}
