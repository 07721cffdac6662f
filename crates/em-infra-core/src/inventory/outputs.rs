//! Reading the contract outputs (docs/architecture-freeze.md §2) from a local Terraform state file.
//!
//! Only the state's `outputs.<name>.value` entries are read: no `terraform` binary, no provider,
//! no resource walking. Every check that can fail here names the file, the output and the fix, and
//! maps to exit code 2 (`crate::failure::bad_input`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::failure::bad_input;

/// The outputs every environment declares (architecture freeze §2), in the order errors name them.
pub const REQUIRED_OUTPUTS: [&str; 6] = [
    "cluster_name",
    "ssh_user",
    "control_plane_ips",
    "worker_ips",
    "gpu_worker_ips",
    "nodes",
];

/// The only Terraform state format em-infra reads (Terraform ≥ 0.12 writes it).
pub const STATE_FORMAT_VERSION: u64 = 4;

/// The hint every "this state file is damaged" error ends with.
const RESTORE_HINT: &str =
    "restore a backup: `em-infra state list`, then `em-infra state restore ID`";

/// A node's role, as the `nodes` output spells it (`control_plane`, `worker`, `gpu_worker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ControlPlane,
    Worker,
    GpuWorker,
}

impl Role {
    /// Every role, in slot order (control plane, workers, GPU workers).
    pub const ALL: [Role; 3] = [Role::ControlPlane, Role::Worker, Role::GpuWorker];

    /// The spelling in the `nodes` output and in the `em_role` host variable.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control_plane",
            Role::Worker => "worker",
            Role::GpuWorker => "gpu_worker",
        }
    }

    /// The Ansible group holding this role's hosts (architecture freeze §3).
    pub fn group(self) -> &'static str {
        match self {
            Role::ControlPlane => "control_plane",
            Role::Worker => "workers",
            Role::GpuWorker => "gpu_workers",
        }
    }

    /// The Terraform output listing this role's IPs.
    pub fn ips_output(self) -> &'static str {
        match self {
            Role::ControlPlane => "control_plane_ips",
            Role::Worker => "worker_ips",
            Role::GpuWorker => "gpu_worker_ips",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A GPU worker's passthrough device: exactly one of a PCI resource mapping name or a raw PCI ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub mapping: Option<String>,
    pub pci_id: Option<String>,
}

/// One cluster node, from the `nodes` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// VM name and Ansible inventory hostname, e.g. `k3s-dev-worker-1`.
    pub name: String,
    pub role: Role,
    /// The static IPv4 address (no prefix length).
    pub ip: Ipv4Addr,
    /// Proxmox VM ID.
    pub vm_id: u64,
    /// The Proxmox node the VM runs on.
    pub proxmox_node: String,
    /// Set for GPU workers, `None` for every other role.
    pub gpu: Option<Gpu>,
}

/// The contract outputs of one environment's Terraform state, checked against each other.
///
/// Invariants after [`load_outputs`] / [`parse_state`]: at least one node; names, IPs and VM IDs
/// unique; each `<role>_ips` output holds exactly the IPs of that role's nodes; a GPU worker has a
/// GPU and no other node has one; `nodes` sorted by [`natural_cmp`] on the name (slot order within
/// a role: `…-worker-2` before `…-worker-10`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOutputs {
    pub cluster_name: String,
    pub ssh_user: String,
    pub nodes: Vec<Node>,
}

impl ClusterOutputs {
    /// The node named `name`, if any.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The nodes of one role, in slot order.
    pub fn nodes_with_role(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    /// Every node's IP, in node order (for example, to clear `known_hosts` entries on `down`).
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.nodes.iter().map(|n| n.ip).collect()
    }

    /// Every node name, in node order.
    pub fn host_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }
}

/// Read `path` (a local Terraform state file, format version 4) and return its checked outputs.
///
/// Errors (all exit code 2): the file is missing or unreadable, is not valid JSON (truncated or
/// corrupt), is not a version-4 state, lacks any of [`REQUIRED_OUTPUTS`], has an output of the wrong
/// shape, describes a cluster with no nodes, or its IP lists disagree with `nodes`.
pub fn load_outputs(path: &Path) -> anyhow::Result<ClusterOutputs> {
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(bad_input(format!(
                "no Terraform state at {}: the provision stage creates it (`em-infra up --to provision`), \
                 or pass --state FILE",
                path.display()
            )));
        }
        Err(err) => {
            return Err(bad_input(format!(
                "cannot read the Terraform state {}: {err}",
                path.display()
            )));
        }
    };
    parse_state(&text, path)
}

/// [`load_outputs`] on text already read; `path` only names the file in error messages.
pub fn parse_state(text: &str, path: &Path) -> anyhow::Result<ClusterOutputs> {
    let file = path.display();
    let state: RawState = serde_json::from_str(text).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Syntax | Category::Eof => bad_input(format!(
                "the Terraform state {file} is not valid JSON (truncated or corrupt?): {err}; {RESTORE_HINT}"
            )),
            Category::Data | Category::Io => bad_input(format!(
                "{file} is not a Terraform state file (format version {STATE_FORMAT_VERSION}): {err}; {RESTORE_HINT}"
            )),
        }
    })?;
    if state.version != STATE_FORMAT_VERSION {
        return Err(bad_input(format!(
            "{file} is a Terraform state of format version {}; em-infra reads version {STATE_FORMAT_VERSION} \
             (written by Terraform 0.12 and later)",
            state.version
        )));
    }

    let outputs = state.outputs.unwrap_or_default();
    let missing: Vec<&str> = REQUIRED_OUTPUTS
        .iter()
        .copied()
        .filter(|name| !outputs.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        let names = missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let why = if outputs.is_empty() {
            "the state has no outputs at all: the cluster was never provisioned or has been destroyed; \
             provision it with `em-infra up --to provision`"
        } else {
            "the environment's Terraform code must declare every contract output \
             (docs/architecture-freeze.md §2); apply it again with `em-infra up --to provision`"
        };
        return Err(bad_input(format!(
            "the Terraform state {file} lacks output(s) {names}: {why}"
        )));
    }

    let cluster_name: String = output(&outputs, "cluster_name", "a string", path)?;
    let ssh_user: String = output(&outputs, "ssh_user", "a string", path)?;
    let raw_nodes: BTreeMap<String, Value> = output(
        &outputs,
        "nodes",
        "a map of node objects keyed by node name",
        path,
    )?;
    if raw_nodes.is_empty() {
        return Err(bad_input(format!(
            "the Terraform state {file} describes an empty cluster (output `nodes` has no nodes): \
             provision it with `em-infra up --to provision`"
        )));
    }

    let mut nodes = Vec::with_capacity(raw_nodes.len());
    for (key, value) in raw_nodes {
        let node: Node = serde_json::from_value(value).map_err(|err| {
            bad_input(format!(
                "the Terraform state {file}: output `nodes`, node `{key}`: {err} (expected \
                 {{ name, role, ip, vm_id, proxmox_node, gpu }}, role one of control_plane, worker, gpu_worker)"
            ))
        })?;
        if node.name != key {
            return Err(bad_input(format!(
                "the Terraform state {file}: output `nodes` has key `{key}` for a node named `{}`; \
                 the key must be the node's name",
                node.name
            )));
        }
        check_gpu(&node, path)?;
        nodes.push(node);
    }
    nodes.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    check_unique(&nodes, path)?;

    for role in Role::ALL {
        let name = role.ips_output();
        let listed: Vec<Ipv4Addr> = output(&outputs, name, "a list of IPv4 addresses", path)?;
        check_ip_list(role, &listed, &nodes, path)?;
    }

    Ok(ClusterOutputs {
        cluster_name,
        ssh_user,
        nodes,
    })
}

/// Order names as people count: digit runs compare as numbers (`worker-2` < `worker-10`), the rest
/// byte-wise; ties fall back to plain string order so the result is a total order.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = &str> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some(chunk)
        })
    }
    let mut left = chunks(a);
    let mut right = chunks(b);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let both_digits =
                    x.as_bytes()[0].is_ascii_digit() && y.as_bytes()[0].is_ascii_digit();
                let ord = if both_digits {
                    let (xt, yt) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    xt.len().cmp(&yt.len()).then_with(|| xt.cmp(yt))
                } else {
                    x.cmp(y)
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// What em-infra reads of a state file; everything else (resources, lineage, ...) is skipped.
#[derive(Deserialize)]
struct RawState {
    version: u64,
    #[serde(default)]
    outputs: Option<BTreeMap<String, RawOutput>>,
}

/// `outputs.<name>`: Terraform also writes `type` (and `sensitive`), which the value's shape makes
/// redundant here.
#[derive(Deserialize)]
struct RawOutput {
    value: Value,
}

fn output<T: DeserializeOwned>(
    outputs: &BTreeMap<String, RawOutput>,
    name: &str,
    expected: &str,
    path: &Path,
) -> anyhow::Result<T> {
    let raw = &outputs[name].value;
    T::deserialize(raw).map_err(|err| {
        bad_input(format!(
            "the Terraform state {}: output `{name}` should be {expected}: {err} (docs/architecture-freeze.md §2)",
            path.display()
        ))
    })
}

fn check_gpu(node: &Node, path: &Path) -> anyhow::Result<()> {
    let file = path.display();
    let name = &node.name;
    match (node.role, &node.gpu) {
        (Role::GpuWorker, None) => Err(bad_input(format!(
            "the Terraform state {file}: GPU worker `{name}` has no `gpu` (expected {{ mapping, pci_id }})"
        ))),
        (Role::GpuWorker, Some(gpu)) if gpu.mapping.is_some() == gpu.pci_id.is_some() => {
            Err(bad_input(format!(
                "the Terraform state {file}: GPU worker `{name}` must have exactly one of `gpu.mapping` and \
                 `gpu.pci_id` set (found mapping {:?}, pci_id {:?})",
                gpu.mapping, gpu.pci_id
            )))
        }
        (Role::ControlPlane | Role::Worker, Some(_)) => Err(bad_input(format!(
            "the Terraform state {file}: node `{name}` has role {} but a `gpu`; only gpu_worker nodes have one",
            node.role
        ))),
        _ => Ok(()),
    }
}

fn check_unique(nodes: &[Node], path: &Path) -> anyhow::Result<()> {
    let mut by_ip: HashMap<Ipv4Addr, &str> = HashMap::new();
    let mut by_vm_id: HashMap<u64, &str> = HashMap::new();
    for node in nodes {
        if let Some(other) = by_ip.insert(node.ip, &node.name) {
            return Err(bad_input(format!(
                "the Terraform state {}: nodes `{other}` and `{}` share the IP {}",
                path.display(),
                node.name,
                node.ip
            )));
        }
        if let Some(other) = by_vm_id.insert(node.vm_id, &node.name) {
            return Err(bad_input(format!(
                "the Terraform state {}: nodes `{other}` and `{}` share the VM ID {}",
                path.display(),
                node.name,
                node.vm_id
            )));
        }
    }
    Ok(())
}

/// `<role>_ips` must list exactly the IPs of that role's nodes, each once.
fn check_ip_list(
    role: Role,
    listed: &[Ipv4Addr],
    nodes: &[Node],
    path: &Path,
) -> anyhow::Result<()> {
    let output = role.ips_output();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for ip in listed {
        if !seen.insert(*ip) {
            problems.push(format!("`{output}` lists {ip} twice"));
        }
    }
    let of_role: BTreeMap<Ipv4Addr, &Node> = nodes
        .iter()
        .filter(|n| n.role == role)
        .map(|n| (n.ip, n))
        .collect();
    for ip in &seen {
        if !of_role.contains_key(ip) {
            let holder = nodes.iter().find(|n| n.ip == *ip).map_or_else(
                || "no node in `nodes` has it".to_string(),
                |n| format!("in `nodes` it belongs to `{}`, role {}", n.name, n.role),
            );
            problems.push(format!("`{output}` lists {ip} but {holder}"));
        }
    }
    for (ip, node) in &of_role {
        if !seen.contains(ip) {
            problems.push(format!(
                "`nodes` has {role} `{}` ({ip}), missing from `{output}`",
                node.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(bad_input(format!(
            "the Terraform state {}: output `{output}` does not match output `nodes`: {}; both come from the \
             same Terraform code, so the state was edited or the environment's outputs are inconsistent",
            path.display(),
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_counts_digit_runs_as_numbers() {
        let mut names = vec!["w-10", "w-2", "w-1", "cp-1", "w-02", "gpu-1", "w"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["cp-1", "gpu-1", "w", "w-1", "w-02", "w-2", "w-10"]);
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
        assert_eq!(natural_cmp("", "a"), Ordering::Less);
    }

    fn state(nodes: Value, workers: Value) -> String {
        serde_json::json!({
            "version": 4,
            "outputs": {
                "cluster_name": { "value": "c", "type": "string" },
                "ssh_user": { "value": "u", "type": "string" },
                "control_plane_ips": { "value": ["10.0.0.10"] },
                "worker_ips": { "value": workers },
                "gpu_worker_ips": { "value": [] },
                "nodes": { "value": nodes },
            }
        })
        .to_string()
    }

    fn node(name: &str, role: &str, ip: &str, vm_id: u64) -> Value {
        serde_json::json!({ "name": name, "role": role, "ip": ip, "vm_id": vm_id, "proxmox_node": "pve", "gpu": null })
    }

    #[test]
    fn parse_state_returns_nodes_in_slot_order() {
        let nodes = serde_json::json!({
            "c-worker-10": node("c-worker-10", "worker", "10.0.0.29", 9119),
            "c-worker-2": node("c-worker-2", "worker", "10.0.0.21", 9111),
            "c-cp-1": node("c-cp-1", "control_plane", "10.0.0.10", 9100),
        });
        let text = state(nodes, serde_json::json!(["10.0.0.21", "10.0.0.29"]));
        let outputs = parse_state(&text, Path::new("x.tfstate")).unwrap();
        assert_eq!(
            outputs.host_names(),
            ["c-cp-1", "c-worker-2", "c-worker-10"]
        );
        assert_eq!(
            outputs.ips(),
            [
                Ipv4Addr::new(10, 0, 0, 10),
                Ipv4Addr::new(10, 0, 0, 21),
                Ipv4Addr::new(10, 0, 0, 29)
            ]
        );
        assert_eq!(outputs.nodes_with_role(Role::Worker).count(), 2);
        assert_eq!(outputs.node("c-cp-1").map(|n| n.vm_id), Some(9100));
        assert_eq!(
            (outputs.cluster_name.as_str(), outputs.ssh_user.as_str()),
            ("c", "u")
        );
    }

    #[test]
    fn every_failure_is_bad_input() {
        let mismatch = state(
            serde_json::json!({ "c-cp-1": node("c-cp-1", "control_plane", "10.0.0.10", 9100) }),
            serde_json::json!(["10.0.0.21"]),
        );
        for text in ["", "{", "[]", "{\"version\": 4}", mismatch.as_str()] {
            let err = parse_state(text, Path::new("x.tfstate")).unwrap_err();
            assert_eq!(
                crate::failure::kind_of(&err),
                Some(crate::failure::FailureKind::BadInput),
                "{text:?}: {err}"
            );
            assert!(err.to_string().contains("x.tfstate"), "{err}");
        }
    }

    #[test]
    fn role_names_follow_the_contract() {
        let groups: Vec<_> = Role::ALL.iter().map(|r| r.group()).collect();
        assert_eq!(groups, ["control_plane", "workers", "gpu_workers"]);
        let outputs: Vec<_> = Role::ALL.iter().map(|r| r.ips_output()).collect();
        assert_eq!(
            outputs,
            ["control_plane_ips", "worker_ips", "gpu_worker_ips"]
        );
        assert_eq!(serde_json::to_value(Role::GpuWorker).unwrap(), "gpu_worker");
    }
}
