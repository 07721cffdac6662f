//! The cluster's shape, derived from the topology inputs exactly as `terraform/modules/topology`
//! derives it (docs/architecture-freeze.md §1, "Derived nodes"). `em-infra check` and
//! `em-infra up --dry-run` show these nodes before anything runs; a test compares them with the
//! offline fixture's real `terraform apply` outputs, so the two derivations cannot drift apart.
//!
//! Slots are stable: the control plane is slot 0, workers 10–39, GPU workers 40–49, so scaling
//! one group never renumbers another. IP = `cidrhost(network_cidr, first_host_offset + slot)`,
//! VM ID = `vm_id_base + slot`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use crate::config::Environment;
use crate::config::finding::Finding;

/// First slot of each role.
pub const CONTROL_PLANE_SLOT: u32 = 0;
pub const WORKER_FIRST_SLOT: u32 = 10;
pub const GPU_FIRST_SLOT: u32 = 40;

/// An IPv4 network as `network_cidr` writes it: an address and a prefix length.
///
/// Like Terraform's `cidrhost` (Go's `net.ParseCIDR`), host bits in the written address are
/// ignored: `10.0.0.5/24` is the network `10.0.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// `None` when `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// Parse `a.b.c.d/p` with the contract's strictness: decimal octets without leading zeros
    /// and a prefix 0–32 without leading zeros (the topology module's regex).
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = text.split_once('/')?;
        let addr = parse_ipv4(addr)?;
        let prefix = parse_decimal(prefix, 2)?;
        Ipv4Cidr::new(addr, u8::try_from(prefix).ok()?)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses, including network and broadcast.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Host number of the broadcast address (the last address).
    pub fn broadcast_host(&self) -> u64 {
        self.size() - 1
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// Terraform's `cidrhost(cidr, n)` for non-negative `n`: `None` when the prefix cannot hold
    /// host number `n` (Terraform errors there too).
    pub fn host(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.network) + n as u32))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Strict dotted-quad IPv4: four decimal octets 0–255, no leading zeros, nothing else — the
/// topology module's regex. (std's parser agrees today, but the rule is the contract's, so it
/// is spelled out here rather than inherited.)
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        *octet = u8::try_from(parse_decimal(parts.next()?, 3)?).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// A decimal number of at most `max_digits` digits without a leading zero ("0" itself is fine).
fn parse_decimal(text: &str, max_digits: usize) -> Option<u32> {
    let ok = !text.is_empty()
        && text.len() <= max_digits
        && text.bytes().all(|b| b.is_ascii_digit())
        && !(text.len() > 1 && text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

/// The GPU a GPU worker gets: a PCI resource mapping (preferred) or a raw PCI address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gpu {
    Mapping(String),
    PciId(String),
}

impl Gpu {
    /// `{ mapping, pci_id }` with one of them null: the `nodes` output's `gpu` shape.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Gpu::Mapping(m) => serde_json::json!({ "mapping": m, "pci_id": null }),
            Gpu::PciId(p) => serde_json::json!({ "mapping": null, "pci_id": p }),
        }
    }
}

impl fmt::Display for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gpu::Mapping(m) => write!(f, "mapping {m}"),
            Gpu::PciId(p) => write!(f, "pci {p}"),
        }
    }
}

impl Serialize for Gpu {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// One `gpu_workers` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuWorker {
    pub gpu: Gpu,
    /// The Proxmox node that holds the GPU, when not the default node.
    pub proxmox_node: Option<String>,
}

/// `cores`, `memory_mb`, `disk_gb` of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VmSize {
    pub cores: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
}

/// The validated topology inputs (contract §1), typed.
///
/// Only [`load`] (through the contract's rules) builds one, so every `Inputs` satisfies every
/// rule and [`derive`] cannot fail. `non_exhaustive` keeps code outside this crate from building
/// one by hand.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Inputs {
    pub cluster_name: String,
    pub proxmox_node: String,
    pub node_placement: BTreeMap<String, String>,
    pub control_plane_count: u32,
    pub worker_count: u32,
    pub gpu_workers: Vec<GpuWorker>,
    pub allow_raw_pci_ids: bool,
    pub network: Ipv4Cidr,
    pub gateway: Ipv4Addr,
    pub first_host_offset: u64,
    pub dns_servers: Vec<Ipv4Addr>,
    pub network_bridge: String,
    pub vlan_id: Option<u16>,
    pub vm_id_base: u64,
    pub template_vm_id: u64,
    pub datastore_id: String,
    pub control_plane_size: VmSize,
    pub worker_size: VmSize,
    pub gpu_worker_size: VmSize,
    pub ssh_user: String,
    pub ssh_public_key_path: String,
}

/// A node's role: one type for the tfvars side and the Terraform-state side.
pub use crate::inventory::Role;

/// One VM the environment would create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedNode {
    pub name: String,
    pub role: Role,
    /// Stable slot (0, 10–39, 40–49); IP and VM ID are offsets of it.
    pub slot: u32,
    pub ip: Ipv4Addr,
    pub vm_id: u64,
    pub proxmox_node: String,
    pub gpu: Option<Gpu>,
    pub size: VmSize,
}

impl PlannedNode {
    /// The node as the environments' `nodes` output shows it (contract §2):
    /// `{ name, role, ip, vm_id, proxmox_node, gpu }`.
    pub fn to_output_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "role": self.role.as_str(),
            "ip": self.ip.to_string(),
            "vm_id": self.vm_id,
            "proxmox_node": self.proxmox_node,
            "gpu": self.gpu.as_ref().map(Gpu::to_json),
        })
    }
}

/// Node name and slot of every node the inputs ask for, in slot order (the order of the
/// `*_ips` outputs). Needs only the counts, so the rules can use it before the network is known.
pub fn node_slots(
    cluster_name: &str,
    worker_count: u32,
    gpu_count: u32,
) -> Vec<(String, Role, u32)> {
    let mut out = vec![(
        format!("{cluster_name}-cp-1"),
        Role::ControlPlane,
        CONTROL_PLANE_SLOT,
    )];
    out.extend((0..worker_count).map(|i| {
        (
            format!("{cluster_name}-worker-{}", i + 1),
            Role::Worker,
            WORKER_FIRST_SLOT + i,
        )
    }));
    out.extend((0..gpu_count).map(|j| {
        (
            format!("{cluster_name}-gpu-{}", j + 1),
            Role::GpuWorker,
            GPU_FIRST_SLOT + j,
        )
    }));
    out
}

/// The highest slot in use (the node with the highest host number and VM ID).
pub fn highest_slot(worker_count: u32, gpu_count: u32) -> u32 {
    if gpu_count > 0 {
        GPU_FIRST_SLOT + gpu_count - 1
    } else if worker_count > 0 {
        WORKER_FIRST_SLOT + worker_count - 1
    } else {
        CONTROL_PLANE_SLOT
    }
}

/// Every node the inputs describe, in slot order: control plane, workers, GPU workers.
///
/// Same derivation as `terraform/modules/topology/main.tf`: Proxmox node = `node_placement[name]`,
/// else the GPU entry's `proxmox_node`, else `proxmox_node`.
pub fn derive(inputs: &Inputs) -> Vec<PlannedNode> {
    let gpu_count = inputs.gpu_workers.len() as u32;
    node_slots(&inputs.cluster_name, inputs.worker_count, gpu_count)
        .into_iter()
        .map(|(name, role, slot)| {
            let gpu_entry = (role == Role::GpuWorker)
                .then(|| &inputs.gpu_workers[(slot - GPU_FIRST_SLOT) as usize]);
            let proxmox_node = inputs
                .node_placement
                .get(&name)
                .or_else(|| gpu_entry.and_then(|g| g.proxmox_node.as_ref()))
                .unwrap_or(&inputs.proxmox_node)
                .clone();
            let size = match role {
                Role::ControlPlane => inputs.control_plane_size,
                Role::Worker => inputs.worker_size,
                Role::GpuWorker => inputs.gpu_worker_size,
            };
            PlannedNode {
                ip: inputs
                    .network
                    .host(inputs.first_host_offset + u64::from(slot))
                    .expect("the network_cidr rule guarantees room for every node"),
                vm_id: inputs.vm_id_base + u64::from(slot),
                gpu: gpu_entry.map(|g| g.gpu.clone()),
                name,
                role,
                slot,
                proxmox_node,
                size,
            }
        })
        .collect()
}

/// The result of reading an environment's topology inputs.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The tfvars file that was read.
    pub tfvars: std::path::PathBuf,
    /// The validated inputs; `None` when any finding concerns them.
    pub inputs: Option<Inputs>,
    /// Everything wrong with the tfvars (empty when `inputs` is `Some`), with absolute paths.
    pub findings: Vec<Finding>,
}

impl Loaded {
    /// The derived nodes, when the inputs are valid.
    pub fn nodes(&self) -> Vec<PlannedNode> {
        self.inputs.as_ref().map(derive).unwrap_or_default()
    }
}

/// Read the environment's variable declarations and `tfvars` (default:
/// [`Environment::default_tfvars`]), merge them as Terraform does, and apply every contract rule.
///
/// Errors only when a file cannot be read at all (a missing tfvars file is bad input, exit 2);
/// every problem with the *contents* is a finding.
pub fn load(env: &Environment, tfvars: Option<&Path>) -> anyhow::Result<Loaded> {
    crate::config::rules::load(env, tfvars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        Ipv4Cidr::parse(s).unwrap()
    }

    #[test]
    fn cidrhost_matches_terraform() {
        // Values checked against `terraform console`: cidrhost("192.168.10.0/24", 10) etc.
        assert_eq!(
            cidr("192.168.10.0/24").host(10),
            Some(Ipv4Addr::new(192, 168, 10, 10))
        );
        assert_eq!(
            cidr("10.0.0.0/8").host(65_536 + 5),
            Some(Ipv4Addr::new(10, 1, 0, 5))
        );
        assert_eq!(
            cidr("172.16.4.0/22").host(300),
            Some(Ipv4Addr::new(172, 16, 5, 44))
        );
        // Host bits in the written address are ignored, as in Go's ParseCIDR.
        assert_eq!(
            cidr("192.168.10.77/24").host(1),
            Some(Ipv4Addr::new(192, 168, 10, 1))
        );
        // cidrhost allows the broadcast host number but not beyond.
        assert_eq!(
            cidr("10.0.0.0/30").host(3),
            Some(Ipv4Addr::new(10, 0, 0, 3))
        );
        assert_eq!(cidr("10.0.0.0/30").host(4), None);
        assert_eq!(
            cidr("0.0.0.0/0").host(u64::from(u32::MAX)),
            Some(Ipv4Addr::new(255, 255, 255, 255))
        );
    }

    #[test]
    fn network_broadcast_and_contains() {
        let c = cidr("192.168.10.0/24");
        assert_eq!(c.network(), Ipv4Addr::new(192, 168, 10, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(192, 168, 10, 255));
        assert_eq!(c.broadcast_host(), 255);
        assert!(c.contains(Ipv4Addr::new(192, 168, 10, 1)));
        assert!(!c.contains(Ipv4Addr::new(192, 168, 11, 1)));
        let c = cidr("10.1.2.3/30");
        assert_eq!(
            (c.network(), c.broadcast()),
            (Ipv4Addr::new(10, 1, 2, 0), Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(cidr("10.0.0.0/32").size(), 1);
    }

    #[test]
    fn strict_parsing_follows_the_contract_regex() {
        assert_eq!(
            parse_ipv4("192.168.1.1"),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        for bad in [
            "192.168.01.1",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4 ",
            "",
            "a.b.c.d",
            "1..2.3",
            "+1.2.3.4",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad:?}");
        }
        assert!(Ipv4Cidr::parse("10.0.0.0/0").is_some());
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/08",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/24/1",
            "10.0.0.0/-1",
        ] {
            assert_eq!(Ipv4Cidr::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn slots_are_stable_per_role() {
        let s = node_slots("c", 2, 1);
        let names: Vec<_> = s.iter().map(|(n, _, slot)| (n.as_str(), *slot)).collect();
        assert_eq!(
            names,
            [
                ("c-cp-1", 0),
                ("c-worker-1", 10),
                ("c-worker-2", 11),
                ("c-gpu-1", 40)
            ]
        );
        assert_eq!(highest_slot(0, 0), 0);
        assert_eq!(highest_slot(30, 0), 39);
        assert_eq!(highest_slot(3, 10), 49);
    }

    fn inputs() -> Inputs {
        let size = VmSize {
            cores: 2,
            memory_mb: 4096,
            disk_gb: 32,
        };
        Inputs {
            cluster_name: "k3s-dev".into(),
            proxmox_node: "pve".into(),
            node_placement: [("k3s-dev-worker-2".to_string(), "pve2".to_string())].into(),
            control_plane_count: 1,
            worker_count: 2,
            gpu_workers: vec![
                GpuWorker {
                    gpu: Gpu::Mapping("gpu0".into()),
                    proxmox_node: Some("pve3".into()),
                },
                GpuWorker {
                    gpu: Gpu::PciId("0000:01:00.0".into()),
                    proxmox_node: None,
                },
            ],
            allow_raw_pci_ids: true,
            network: cidr("192.168.10.0/24"),
            gateway: Ipv4Addr::new(192, 168, 10, 1),
            first_host_offset: 10,
            dns_servers: vec![],
            network_bridge: "vmbr0".into(),
            vlan_id: None,
            vm_id_base: 9100,
            template_vm_id: 9000,
            datastore_id: "local-lvm".into(),
            control_plane_size: size,
            worker_size: size,
            gpu_worker_size: size,
            ssh_user: "ubuntu".into(),
            ssh_public_key_path: "~/.ssh/id_ed25519.pub".into(),
        }
    }

    #[test]
    fn derive_names_ips_ids_and_placement() {
        let nodes = derive(&inputs());
        let rows: Vec<_> = nodes
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.role,
                    n.ip.to_string(),
                    n.vm_id,
                    n.proxmox_node.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "k3s-dev-cp-1",
                    Role::ControlPlane,
                    "192.168.10.10".to_string(),
                    9100,
                    "pve"
                ),
                (
                    "k3s-dev-worker-1",
                    Role::Worker,
                    "192.168.10.20".to_string(),
                    9110,
                    "pve"
                ),
                (
                    "k3s-dev-worker-2",
                    Role::Worker,
                    "192.168.10.21".to_string(),
                    9111,
                    "pve2"
                ),
                (
                    "k3s-dev-gpu-1",
                    Role::GpuWorker,
                    "192.168.10.50".to_string(),
                    9140,
                    "pve3"
                ),
                (
                    "k3s-dev-gpu-2",
                    Role::GpuWorker,
                    "192.168.10.51".to_string(),
                    9141,
                    "pve"
                ),
            ]
        );
        assert_eq!(nodes[3].gpu, Some(Gpu::Mapping("gpu0".into())));
        assert_eq!(
            nodes[4].to_output_json(),
            serde_json::json!({"name": "k3s-dev-gpu-2", "role": "gpu_worker", "ip": "192.168.10.51", "vm_id": 9141,
                "proxmox_node": "pve", "gpu": {"mapping": null, "pci_id": "0000:01:00.0"}})
        );
        assert_eq!(nodes[0].to_output_json()["gpu"], serde_json::Value::Null);
    }

    #[test]
    fn placement_wins_over_the_gpu_entry_node() {
        let mut i = inputs();
        i.node_placement
            .insert("k3s-dev-gpu-1".into(), "pve9".into());
        assert_eq!(derive(&i)[3].proxmox_node, "pve9");
    }
}
