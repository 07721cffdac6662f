//! The contract's variables (docs/architecture-freeze.md §1): name, type, default and an
//! example, the table both `check` and the wiring check read.

use hcl::Value;

/// One variable of the contract (§1): name, Terraform type, default (HCL; `None` = required) and
/// an example value for fix hints.
#[derive(Debug, Clone, Copy)]
pub struct ContractVar {
    pub name: &'static str,
    pub ty: &'static str,
    pub default: Option<&'static str>,
    pub example: &'static str,
}

const SIZE_TYPE: &str = "object({ cores = number, memory_mb = number, disk_gb = number })";

/// The contract's variables, in the order of docs/architecture-freeze.md §1.
pub const CONTRACT: &[ContractVar] = &[
    ContractVar {
        name: "cluster_name",
        ty: "string",
        default: Some("\"k3s-dev\""),
        example: "\"k3s-dev\"",
    },
    ContractVar {
        name: "proxmox_node",
        ty: "string",
        default: Some("\"pve\""),
        example: "\"pve\"",
    },
    ContractVar {
        name: "node_placement",
        ty: "map(string)",
        default: Some("{}"),
        example: "{ \"k3s-dev-worker-2\" = \"pve2\" }",
    },
    ContractVar {
        name: "control_plane_count",
        ty: "number",
        default: Some("1"),
        example: "1",
    },
    ContractVar {
        name: "worker_count",
        ty: "number",
        default: Some("2"),
        example: "2",
    },
    ContractVar {
        name: "gpu_workers",
        ty: "list(object({ mapping = optional(string), pci_id = optional(string), proxmox_node = optional(string) }))",
        default: Some("[]"),
        example: "[{ mapping = \"gpu0\" }]",
    },
    ContractVar {
        name: "allow_raw_pci_ids",
        ty: "bool",
        default: Some("false"),
        example: "false",
    },
    ContractVar {
        name: "network_cidr",
        ty: "string",
        default: None,
        example: "\"192.168.10.0/24\"",
    },
    ContractVar {
        name: "gateway",
        ty: "string",
        default: None,
        example: "\"192.168.10.1\"",
    },
    ContractVar {
        name: "first_host_offset",
        ty: "number",
        default: Some("10"),
        example: "10",
    },
    ContractVar {
        name: "dns_servers",
        ty: "list(string)",
        default: Some("[]"),
        example: "[\"1.1.1.1\"]",
    },
    ContractVar {
        name: "network_bridge",
        ty: "string",
        default: Some("\"vmbr0\""),
        example: "\"vmbr0\"",
    },
    ContractVar {
        name: "vlan_id",
        ty: "number",
        default: Some("null"),
        example: "null",
    },
    ContractVar {
        name: "vm_id_base",
        ty: "number",
        default: Some("9100"),
        example: "9100",
    },
    ContractVar {
        name: "template_vm_id",
        ty: "number",
        default: Some("9000"),
        example: "9000",
    },
    ContractVar {
        name: "datastore_id",
        ty: "string",
        default: Some("\"local-lvm\""),
        example: "\"local-lvm\"",
    },
    ContractVar {
        name: "control_plane_size",
        ty: SIZE_TYPE,
        default: Some("{ cores = 2, memory_mb = 4096, disk_gb = 32 }"),
        example: "{ cores = 2, memory_mb = 4096, disk_gb = 32 }",
    },
    ContractVar {
        name: "worker_size",
        ty: SIZE_TYPE,
        default: Some("{ cores = 2, memory_mb = 4096, disk_gb = 32 }"),
        example: "{ cores = 2, memory_mb = 4096, disk_gb = 32 }",
    },
    ContractVar {
        name: "gpu_worker_size",
        ty: SIZE_TYPE,
        default: Some("{ cores = 4, memory_mb = 16384, disk_gb = 64 }"),
        example: "{ cores = 4, memory_mb = 16384, disk_gb = 64 }",
    },
    ContractVar {
        name: "ssh_user",
        ty: "string",
        default: Some("\"ubuntu\""),
        example: "\"ubuntu\"",
    },
    ContractVar {
        name: "ssh_public_key_path",
        ty: "string",
        default: Some("\"~/.ssh/id_ed25519.pub\""),
        example: "\"~/.ssh/id_ed25519.pub\"",
    },
];

impl ContractVar {
    pub fn get(name: &str) -> Option<&'static ContractVar> {
        CONTRACT.iter().find(|v| v.name == name)
    }

    /// The contract default as a value (`None` for required variables).
    pub fn default_value(&self) -> Option<Value> {
        let text = self.default?;
        let expr = hcl::edit::parser::parse_expr(text).expect("contract defaults are valid HCL");
        Some(crate::config::hclsrc::constant_value(&expr).expect("contract defaults are literals"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_defaults_parse() {
        for v in CONTRACT {
            let _ = v.default_value();
            crate::config::types::Type::parse_str(v.ty).unwrap();
        }
    }
}
