//! [`validate`]: every contract rule, in order, with Terraform's gating between variables; and
//! [`Rules`], the reader of merged values the rule groups share.

use hcl::Value;

use crate::config::finding::Finding;
use crate::config::hclsrc::ValuePath;
use crate::config::tfvars::Values;
use crate::config::topology::{Inputs, derive};

use super::ContractVar;
use super::patterns::{is_bridge_name, is_dns_label, is_node_name, is_user_name};

/// Apply every contract rule to merged values. `Ok` only when nothing is wrong; `Err` holds the
/// rule findings, and is empty when a value is missing for a reason the merge already reported
/// (an unset required variable, a type error).
pub fn validate(values: &Values) -> Result<Inputs, Vec<Finding>> {
    let mut r = Rules {
        values,
        findings: Vec::new(),
        undeclared: Vec::new(),
    };

    let cluster_name = r.string("cluster_name").and_then(|v| {
        r.check(
            "cluster_name",
            is_dns_label(&v),
            "is not a valid DNS label (2-32 characters: lower-case letters, digits and '-', starting with a letter, not ending with '-')",
            "use a name like \"k3s-dev\", so every node name stays a valid hostname and Proxmox VM name",
        )
        .then_some(v)
    });
    let proxmox_node = r.string("proxmox_node").and_then(|v| {
        r.check(
            "proxmox_node",
            is_node_name(&v),
            "is not a valid Proxmox node name (letters, digits and '-', not starting or ending with '-')",
            "use the node name shown by `pvecm nodes` or in the web UI, e.g. \"pve\"",
        )
        .then_some(v)
    });
    let control_plane_count = r.number("control_plane_count").and_then(|v| {
        r.check(
            "control_plane_count",
            v == 1.0,
            "is not supported: the cluster has exactly one k3s server (HA control planes are out of scope)",
            "set control_plane_count = 1",
        )
        .then_some(1u32)
    });
    let worker_count = r.number("worker_count").and_then(|v| {
        r.check(
            "worker_count",
            is_whole(v) && (0.0..=30.0).contains(&v),
            "must be a whole number from 0 to 30",
            "use a whole number from 0 to 30 (workers use slots 10-39)",
        )
        .then_some(v as u32)
    });
    let allow_raw_pci_ids = r.bool("allow_raw_pci_ids");
    let first_host_offset = r.number("first_host_offset").and_then(|v| {
        r.check(
            "first_host_offset",
            is_whole(v) && v >= 1.0,
            "must be a whole number >= 1 (host number 0 is the network address)",
            "use a whole number >= 1, e.g. 10",
        )
        .then_some(v as u64)
    });
    let dns_servers = r.dns_servers();
    let network_bridge = r.string("network_bridge").and_then(|v| {
        r.check(
            "network_bridge",
            is_bridge_name(&v),
            "is not a valid bridge name (up to 16 characters: a letter, then letters, digits, '_', '.', '-')",
            "use the Linux bridge the VMs attach to, e.g. \"vmbr0\"",
        )
        .then_some(v)
    });
    let vlan_id = r.vlan_id();
    let datastore_id = r.string("datastore_id").and_then(|v| {
        r.check(
            "datastore_id",
            !v.trim().is_empty(),
            "is empty",
            "set it to a Proxmox storage that holds VM images, e.g. \"local-lvm\"",
        )
        .then_some(v)
    });
    let control_plane_size = r.size("control_plane_size", 2, 2048, "the k3s server");
    let worker_size = r.size("worker_size", 1, 1024, "a k3s agent");
    // Passthrough pins all of a GPU worker's memory, hence the higher floor.
    let gpu_worker_size = r.size("gpu_worker_size", 1, 4096, "a GPU worker");
    let ssh_user = r.string("ssh_user").and_then(|v| {
        r.check(
            "ssh_user",
            is_user_name(&v),
            "is not a valid Linux user name (up to 32 lower-case letters, digits, '_' or '-', starting with a letter or '_')",
            "use a user name like \"ubuntu\"",
        )
        .then_some(v)
    });
    let ssh_public_key_path = r.string("ssh_public_key_path").and_then(|v| {
        r.check(
            "ssh_public_key_path",
            !v.trim().is_empty(),
            "is empty",
            "set it to your SSH public key file, e.g. \"~/.ssh/id_ed25519.pub\"",
        )
        .then_some(v)
    });

    // Variables whose validation blocks read other variables. Terraform evaluates all of a
    // variable's validation blocks as one graph node that depends on every variable any of them
    // reads (conditions and error messages alike); when one of those is invalid, the node is
    // skipped, so none of that variable's rules is reported. Observed with Terraform 1.11 and
    // pinned by tests/check.rs; the same gating here keeps both tools naming the same variables.
    let gpu_workers = allow_raw_pci_ids.and_then(|allow| r.gpu_workers(allow));
    let counts = worker_count.zip(gpu_workers.as_ref().map(|g| g.len() as u32));
    let node_placement = match (&cluster_name, counts) {
        (Some(name), Some((wc, gc))) => r.node_placement(name, wc, gc),
        _ => None,
    };
    let network = match (first_host_offset, counts) {
        (Some(fho), Some((wc, gc))) => r.network_cidr(fho, wc, gc),
        _ => None,
    };
    let vm_id_base = counts.and_then(|(wc, gc)| r.vm_id_base(wc, gc));
    let gateway = match (network, first_host_offset, counts, &cluster_name) {
        (Some(net), Some(fho), Some((wc, gc)), Some(name)) => r.gateway(net, fho, name, wc, gc),
        _ => None,
    };
    let template_vm_id = match (vm_id_base, counts, &cluster_name) {
        (Some(base), Some((wc, gc)), Some(name)) => r.template_vm_id(base, name, wc, gc),
        _ => None,
    };

    let inputs = (|| {
        Some(Inputs {
            cluster_name: cluster_name?,
            proxmox_node: proxmox_node?,
            node_placement: node_placement?,
            control_plane_count: control_plane_count?,
            worker_count: worker_count?,
            gpu_workers: gpu_workers?,
            allow_raw_pci_ids: allow_raw_pci_ids?,
            network: network?,
            gateway: gateway?,
            first_host_offset: first_host_offset?,
            dns_servers: dns_servers?,
            network_bridge: network_bridge?,
            vlan_id: vlan_id?,
            vm_id_base: vm_id_base?,
            template_vm_id: template_vm_id?,
            datastore_id: datastore_id?,
            control_plane_size: control_plane_size?,
            worker_size: worker_size?,
            gpu_worker_size: gpu_worker_size?,
            ssh_user: ssh_user?,
            ssh_public_key_path: ssh_public_key_path?,
        })
    })();
    match inputs {
        Some(inputs) if r.findings.is_empty() => {
            // Belt and braces: the rules above guarantee this; a failure here is a bug in them.
            debug_assert_eq!(
                derive(&inputs).len() as u32,
                1 + inputs.worker_count + inputs.gpu_workers.len() as u32
            );
            Ok(inputs)
        }
        _ => {
            if !r.undeclared.is_empty() {
                // Required contract variables the environment does not declare at all: the tfvars
                // cannot set them, so say which (the wiring check names the declaration to add).
                let names = std::mem::take(&mut r.undeclared);
                r.findings.push(Finding::new(
                    &values.tfvars,
                    None,
                    names[0],
                    None,
                    format!(
                        "the environment does not declare the required contract variable(s) {}",
                        names.join(", ")
                    ),
                    "declare them in the environment's variables.tf (docs/architecture-freeze.md §1)",
                ));
            }
            // Empty only when the merge already reported why a value is missing.
            Err(r.findings)
        }
    }
}

pub(super) struct Rules<'a> {
    values: &'a Values,
    pub(super) findings: Vec<Finding>,
    /// Required contract variables the environment does not declare.
    undeclared: Vec<&'static str>,
}

impl Rules<'_> {
    pub(super) fn report(
        &mut self,
        name: &str,
        path: &ValuePath,
        value: Option<&Value>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let f = self.values.finding(name, path, value, message, fix);
        self.findings.push(f);
    }

    /// Report `message` on the whole variable when `ok` is false; returns `ok`.
    pub(super) fn check(&mut self, name: &str, ok: bool, message: &str, fix: &str) -> bool {
        if !ok {
            let value = self.values.get(name).cloned();
            self.report(name, &ValuePath::root(), value.as_ref(), message, fix);
        }
        ok
    }

    /// The value of `name`: merged from tfvars/defaults, or the contract default when the
    /// environment does not declare the variable at all. `None` when the merge already
    /// reported a problem with it.
    pub(super) fn value(&mut self, name: &str) -> Option<Value> {
        match self.values.get(name) {
            Some(v) => Some(v.clone()),
            None if self.values.decls.vars.contains_key(name) => None,
            None => {
                let cv = ContractVar::get(name)?;
                let v = cv.default_value();
                if v.is_none() {
                    self.undeclared.push(cv.name);
                }
                v
            }
        }
    }

    pub(super) fn typed<T>(
        &mut self,
        name: &str,
        path: &ValuePath,
        v: &Value,
        want: &str,
        get: impl Fn(&Value) -> Option<T>,
    ) -> Option<T> {
        let got = get(v);
        if got.is_none() {
            let example = ContractVar::get(name).map_or("", |c| c.example);
            self.report(
                name,
                path,
                Some(v),
                format!("must be {want}"),
                format!("write {want}, e.g. {example}"),
            );
        }
        got
    }

    pub(super) fn string(&mut self, name: &str) -> Option<String> {
        let v = self.value(name)?;
        self.typed(name, &ValuePath::root(), &v, "a string", |v| {
            v.as_str().map(str::to_string)
        })
    }

    pub(super) fn number(&mut self, name: &str) -> Option<f64> {
        let v = self.value(name)?;
        self.typed(name, &ValuePath::root(), &v, "a number", |v| {
            v.as_number().and_then(hcl::Number::as_f64)
        })
    }

    fn bool(&mut self, name: &str) -> Option<bool> {
        let v = self.value(name)?;
        self.typed(
            name,
            &ValuePath::root(),
            &v,
            "true or false",
            Value::as_bool,
        )
    }
}

pub(super) fn is_whole(n: f64) -> bool {
    n.is_finite() && n.fract() == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::test_support::{fields, run};
    use std::net::Ipv4Addr;

    use crate::config::topology::Role;

    #[test]
    fn defaults_plus_required_pass() {
        let inputs = run("").expect("valid");
        let nodes = derive(&inputs);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].ip, Ipv4Addr::new(192, 168, 10, 10));
        assert_eq!(nodes[2].role, Role::Worker);
    }

    #[test]
    fn identity_rules() {
        assert_eq!(fields("cluster_name = \"K3s\""), ["cluster_name"]);
        assert_eq!(fields("cluster_name = \"a\""), ["cluster_name"]);
        assert_eq!(fields("cluster_name = \"k3s-\""), ["cluster_name"]);
        assert!(
            fields(&format!("cluster_name = \"a{}\"", "b".repeat(31))).is_empty(),
            "32 chars is fine"
        );
        assert_eq!(
            fields(&format!("cluster_name = \"a{}\"", "b".repeat(32))),
            ["cluster_name"]
        );
        assert_eq!(fields("proxmox_node = \"-pve\""), ["proxmox_node"]);
        assert_eq!(fields("ssh_user = \"Ubuntu\""), ["ssh_user"]);
        assert_eq!(
            fields("ssh_public_key_path = \"\""),
            ["ssh_public_key_path"]
        );
        assert_eq!(fields("datastore_id = \"  \""), ["datastore_id"]);
        assert_eq!(fields("network_bridge = \"0vmbr\""), ["network_bridge"]);
        assert_eq!(
            fields("network_bridge = \"vmbr0123456789abc\""),
            ["network_bridge"],
            "17 chars"
        );
    }

    #[test]
    fn count_rules() {
        assert_eq!(fields("control_plane_count = 3"), ["control_plane_count"]);
        assert_eq!(fields("worker_count = 31"), ["worker_count"]);
        assert_eq!(fields("worker_count = 1.5"), ["worker_count"]);
        assert_eq!(fields("worker_count = -1"), ["worker_count"]);
        assert!(fields("worker_count = 0").is_empty());
        assert!(fields("worker_count = 30").is_empty());
    }

    /// Terraform skips *all* rules of a variable when any of its validation blocks reads an
    /// invalid variable (observed with Terraform 1.11; tests/check.rs compares with the real thing).
    #[test]
    fn a_variable_reading_an_invalid_one_is_not_judged() {
        // gateway's node-IP rule reads gpu_workers: even a malformed gateway goes unreported.
        assert_eq!(
            fields("gateway = \"bad\"\ngpu_workers = [{ mapping = \"0bad\" }]"),
            ["gpu_workers[0].mapping"]
        );
        assert_eq!(
            fields("worker_count = 31\nvm_id_base = 9100.5"),
            ["worker_count"]
        );
        // template_vm_id's message names the clashing node, so it reads cluster_name.
        assert_eq!(
            fields("cluster_name = \"B\"\ntemplate_vm_id = 9110"),
            ["cluster_name"]
        );
        assert_eq!(
            fields("cluster_name = \"B\"\nnode_placement = { x = \"pve_1\" }"),
            ["cluster_name"]
        );
        // Independent variables are all reported.
        assert_eq!(
            fields("dns_servers = [\"1.1.1\"]\nvlan_id = 0"),
            ["dns_servers[0]", "vlan_id"]
        );
        // Both rules of one variable are reported together.
        assert_eq!(
            fields("node_placement = { x = \"pve_1\" }"),
            ["node_placement.x", "node_placement.x"]
        );
    }

    #[test]
    fn findings_point_at_the_tfvars_line() {
        let err =
            run("\n\ngpu_workers = [\n  { mapping = \"ok\" },\n  { mapping = \"bad name\" },\n]\n")
                .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].field, "gpu_workers[1].mapping");
        assert_eq!(err[0].line, Some(7));
        assert_eq!(err[0].value.as_deref(), Some("\"bad name\""));
    }
}
