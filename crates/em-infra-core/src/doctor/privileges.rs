//! The token's privileges: [`crate::proxmox::privileges::REQUIRED`] evaluated for this plan, each
//! path asked with `GET /access/permissions?path=…` (PVE computes propagation and the
//! privilege-separation intersection). One ✓ when nothing is missing; otherwise one ✗ per missing
//! privilege, naming the paths and the `pveum` lines that fix it.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::topology::{Gpu, Inputs, PlannedNode};
use crate::proxmox::privileges::{self, ROLE, Release, Requirement, Target, When};
use crate::proxmox::{Client, Version};

use super::{DoctorReport, Group};

/// The check's name when nothing is missing (or the API failed).
const NAME: &str = "token privileges";

/// What the plan puts where: the facts the table's conditions and paths depend on.
struct PlanFacts<'a> {
    inputs: &'a Inputs,
    nodes: &'a [PlannedNode],
    /// Whether `datastore_id` is shared (then bpg clones straight to the target node).
    datastore_shared: bool,
}

impl PlanFacts<'_> {
    fn mappings(&self) -> BTreeSet<&str> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.gpu {
                Some(Gpu::Mapping(m)) => Some(m.as_str()),
                _ => None,
            })
            .collect()
    }

    /// VMs placed on another node than the template's.
    fn moved(&self) -> impl Iterator<Item = &PlannedNode> {
        self.nodes
            .iter()
            .filter(|n| n.proxmox_node != self.inputs.proxmox_node)
    }

    fn applies(&self, when: When) -> bool {
        match when {
            When::Always => true,
            When::Vlan => self.inputs.vlan_id.is_some(),
            When::GpuWorkers => !self.mappings().is_empty(),
            When::MovedVms => !self.datastore_shared && self.moved().next().is_some(),
        }
    }

    /// The concrete ACL paths of `target` in this plan.
    fn paths(&self, target: Target) -> Vec<String> {
        let vm = |id: u64| format!("/vms/{id}");
        let bridge = format!("/sdn/zones/localnetwork/{}", self.inputs.network_bridge);
        match target {
            Target::EveryVm => self.nodes.iter().map(|n| vm(n.vm_id)).collect(),
            Target::MovedVm => self.moved().map(|n| vm(n.vm_id)).collect(),
            Target::Template => vec![vm(self.inputs.template_vm_id)],
            Target::Datastore => vec![format!("/storage/{}", self.inputs.datastore_id)],
            Target::Bridge => vec![bridge],
            Target::BridgeVlan => self
                .inputs
                .vlan_id
                .map(|v| format!("{bridge}/{v}"))
                .into_iter()
                .collect(),
            Target::GpuMapping => self
                .mappings()
                .into_iter()
                .map(|m| format!("/mapping/pci/{m}"))
                .collect(),
            Target::Root => vec!["/".into()],
        }
    }

    /// Where to grant the role so that it covers `path`: `/vms` for any VM (the planned IDs
    /// change with scale), the bridge for its VLANs, else the path itself.
    fn grant_path(&self, path: &str) -> String {
        if path.starts_with("/vms/") {
            "/vms".into()
        } else if path.starts_with("/sdn/zones/localnetwork/") {
            format!("/sdn/zones/localnetwork/{}", self.inputs.network_bridge)
        } else {
            path.into()
        }
    }
}

/// One requirement of the plan on its concrete paths.
struct Needed {
    requirement: &'static Requirement,
    paths: Vec<String>,
}

/// A privilege the token lacks: where, and what needs it there.
struct Missing<'a> {
    requirement: &'static Requirement,
    paths: Vec<&'a str>,
    whys: Vec<&'static str>,
}

/// The requirements of `release` this plan needs, with their paths (empty ones left out).
fn needed(release: Release, facts: &PlanFacts<'_>) -> Vec<Needed> {
    privileges::for_release(release)
        .filter(|r| facts.applies(r.when))
        .map(|r| Needed {
            requirement: r,
            paths: facts.paths(r.target),
        })
        .filter(|n| !n.paths.is_empty())
        .collect()
}

/// Check the token's privileges for the plan and add the lines to `report`.
pub(super) fn check(
    report: &mut DoctorReport,
    client: &Client,
    version: &Version,
    inputs: &Inputs,
    nodes: &[PlannedNode],
) {
    let release = Release::from_major(version.major());
    // Only a plan that moves VMs between nodes cares whether the storage is shared; an answer we
    // cannot read counts as "not shared", which asks for the larger set.
    let moves = nodes.iter().any(|n| n.proxmox_node != inputs.proxmox_node);
    let datastore_shared = moves
        && client
            .storage_status(&inputs.proxmox_node, &inputs.datastore_id)
            .is_ok_and(|s| s.shared);
    let facts = PlanFacts {
        inputs,
        nodes,
        datastore_shared,
    };
    let needed = needed(release, &facts);

    let paths: BTreeSet<&str> = needed
        .iter()
        .flat_map(|n| n.paths.iter().map(String::as_str))
        .collect();
    let mut held: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for path in &paths {
        match client.permissions(path) {
            Ok(privs) => {
                held.insert(path, privs);
            }
            Err(e) => return report.api_error(NAME, &e),
        }
    }

    // Missing privileges, grouped by name: paths and reasons in table order.
    let mut missing: Vec<Missing<'_>> = Vec::new();
    for n in &needed {
        let r = n.requirement;
        let lacking: Vec<&str> = n
            .paths
            .iter()
            .map(String::as_str)
            .filter(|p| {
                let have = &held[p];
                !have.contains(r.privilege) && !r.or.iter().any(|o| have.contains(*o))
            })
            .collect();
        if lacking.is_empty() {
            continue;
        }
        match missing
            .iter_mut()
            .find(|m| m.requirement.privilege == r.privilege)
        {
            Some(m) => {
                m.paths.extend(lacking);
                if !m.whys.contains(&r.why) {
                    m.whys.push(r.why);
                }
            }
            None => missing.push(Missing {
                requirement: r,
                paths: lacking,
                whys: vec![r.why],
            }),
        }
    }

    if missing.is_empty() {
        let count: BTreeSet<&str> = needed.iter().map(|n| n.requirement.privilege).collect();
        report.ok(
            Group::Proxmox,
            NAME,
            format!(
                "{} holds the {} privileges this plan needs on PVE {} (on {})",
                client.token_id(),
                count.len(),
                release.major(),
                paths.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        );
        return;
    }
    let token = client.token_id();
    let user = token.split_once('!').map_or(token, |(u, _)| u);
    for Missing {
        requirement: r,
        paths,
        whys,
    } in missing
    {
        let alternatives = if r.or.is_empty() {
            String::new()
        } else {
            format!(" (or {})", r.or.join(", "))
        };
        let grants: BTreeSet<String> = paths.iter().map(|p| facts.grant_path(p)).collect();
        let acl: Vec<String> = grants
            .iter()
            .map(|g| {
                format!("pveum acl modify {g} --users '{user}' --tokens '{token}' --roles {ROLE}")
            })
            .collect();
        report.fail(
            Group::Proxmox,
            format!("privilege {}", r.privilege),
            format!(
                "the token lacks {}{alternatives} on {}: {}",
                r.privilege,
                paths.join(", "),
                whys.join("; ")
            ),
            format!(
                "{} ({ROLE} is the role docs/runbooks.md creates; use your role's name), and the role \
                 must be granted where it is missing: {}",
                privileges::role_append(&[r.privilege]),
                acl.join("; ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topology::{GpuWorker, Ipv4Cidr, VmSize, derive};

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
            gpu_workers: vec![GpuWorker {
                gpu: Gpu::Mapping("gpu0".into()),
                proxmox_node: Some("pve2".into()),
            }],
            allow_raw_pci_ids: false,
            network: Ipv4Cidr::parse("192.168.10.0/24").unwrap(),
            gateway: std::net::Ipv4Addr::new(192, 168, 10, 1),
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

    /// `privilege @ path` for every requirement of the plan.
    fn rows(release: Release, inputs: &Inputs, shared: bool) -> Vec<String> {
        let nodes = derive(inputs);
        let facts = PlanFacts {
            inputs,
            nodes: &nodes,
            datastore_shared: shared,
        };
        needed(release, &facts)
            .iter()
            .flat_map(|n| {
                n.paths
                    .iter()
                    .map(|p| format!("{} @ {p}", n.requirement.privilege))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn multi_node_gpu_plan_needs_migrate_on_the_moved_vms_only() {
        let rows = rows(Release::Pve9, &inputs(), false);
        for want in [
            "VM.Clone @ /vms/9000",
            "VM.Audit @ /vms/9000",
            "VM.Allocate @ /vms/9100",
            "VM.GuestAgent.Audit @ /vms/9140",
            "VM.Migrate @ /vms/9111",
            "VM.Migrate @ /vms/9140",
            "Datastore.AllocateSpace @ /storage/local-lvm",
            "Datastore.Audit @ /storage/local-lvm",
            "SDN.Use @ /sdn/zones/localnetwork/vmbr0",
            "Mapping.Use @ /mapping/pci/gpu0",
            "Sys.Audit @ /",
        ] {
            assert!(rows.contains(&want.to_string()), "{want} not in {rows:#?}");
        }
        for unwanted in [
            "VM.Migrate @ /vms/9100",
            "VM.Migrate @ /vms/9110",
            "VM.Monitor @ /vms/9100",
            "VM.Clone @ /vms/9100",
        ] {
            assert!(!rows.contains(&unwanted.to_string()), "{unwanted}");
        }
        // Shared storage: bpg clones straight to the target node, no migration.
        assert!(!rows_contain_privilege(
            &self::rows(Release::Pve9, &inputs(), true),
            "VM.Migrate"
        ));
    }

    fn rows_contain_privilege(rows: &[String], privilege: &str) -> bool {
        rows.iter()
            .any(|r| r.starts_with(&format!("{privilege} @")))
    }

    #[test]
    fn single_node_plan_without_gpu_or_vlan() {
        let mut i = inputs();
        i.node_placement.clear();
        i.gpu_workers.clear();
        let rows = rows(Release::Pve8, &i, false);
        assert!(rows.contains(&"VM.Monitor @ /vms/9110".to_string()));
        for p in [
            "VM.Migrate",
            "Mapping.Use",
            "Sys.Audit",
            "VM.GuestAgent.Audit",
        ] {
            assert!(!rows_contain_privilege(&rows, p), "{p}: {rows:#?}");
        }
        i.vlan_id = Some(20);
        let rows = self::rows(Release::Pve8, &i, false);
        assert!(rows.contains(&"SDN.Use @ /sdn/zones/localnetwork/vmbr0/20".to_string()));
        assert!(rows.contains(&"SDN.Use @ /sdn/zones/localnetwork/vmbr0".to_string()));
    }
}
