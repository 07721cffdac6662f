//! Checks of the Proxmox host through its API: the token, the node, storage, the bridge, the
//! template, free VM IDs, and the GPU mappings and IOMMU groups the topology needs.
//!
//! One file per subject: [`template`], [`storage`], [`bridge`], [`vm_ids`] and [`gpu`]; this one
//! holds the entry point and the node check the others depend on.

mod bridge;
mod gpu;
mod storage;
mod template;
mod vm_ids;

use std::collections::BTreeSet;

use crate::config::topology::{Inputs, PlannedNode};
use crate::proxmox::Client;

use super::{DoctorReport, Group};

/// The tag the VM modules put on every VM they create.
const OUR_TAG: &str = "em-infra";
/// Room for one cloud-init drive and, on GPU workers, the 4 MiB EFI disk (generous).
const SMALL_DISKS_BYTES: u64 = 8 << 20;
const GIB: u64 = 1 << 30;

pub(super) struct ProxmoxChecks<'a> {
    client: &'a Client,
    inputs: Option<&'a Inputs>,
    nodes: &'a [PlannedNode],
}

impl<'a> ProxmoxChecks<'a> {
    pub(super) fn new(
        client: &'a Client,
        inputs: Option<&'a Inputs>,
        nodes: &'a [PlannedNode],
    ) -> Self {
        ProxmoxChecks {
            client,
            inputs,
            nodes,
        }
    }

    pub(super) fn run(&self, report: &mut DoctorReport) {
        let client = self.client;
        let version = match client.version() {
            Ok(v) => {
                report.ok(
                    Group::Proxmox,
                    "API",
                    format!(
                        "{} answers to token {}",
                        client.endpoint(),
                        client.token_id()
                    ),
                );
                v
            }
            Err(e) => {
                report.api_error("API", &e);
                report.skip(
                    Group::Proxmox,
                    "Proxmox host",
                    "skipped: the API did not answer",
                );
                return;
            }
        };
        match version.major() {
            Some(8 | 9) => report.ok(
                Group::Proxmox,
                "PVE release",
                format!("{} (pve-manager {})", version.release, version.version),
            ),
            _ => report.warn(
                Group::Proxmox,
                "PVE release",
                format!(
                    "{} (pve-manager {}) is not a tested release (8.x, 9.x)",
                    version.release, version.version
                ),
                "upgrade to Proxmox VE 8 or 9; other releases may differ in API and privileges",
            ),
        }
        let Some(inputs) = self.inputs else {
            report.skip(
                Group::Proxmox,
                "Proxmox host",
                "skipped: the tfvars are invalid (see the tfvars check)",
            );
            return;
        };

        super::privileges::check(report, client, &version, inputs, self.nodes);
        let online = self.check_nodes(report, inputs);
        let vms = client.vm_resources();
        self.check_template(report, inputs, &vms, &online);
        self.check_storage(report, inputs, &vms, &online);
        self.check_bridge(report, inputs, &online);
        self.check_vm_ids(report, inputs, &vms);
        self.check_gpus(report, &online);
    }

    /// The Proxmox nodes the plan uses: the template's node first, then every VM's.
    fn target_nodes(&self, inputs: &Inputs) -> BTreeSet<String> {
        let mut set = BTreeSet::from([inputs.proxmox_node.clone()]);
        set.extend(self.nodes.iter().map(|n| n.proxmox_node.clone()));
        set
    }

    fn check_nodes(&self, report: &mut DoctorReport, inputs: &Inputs) -> BTreeSet<String> {
        let mut online = BTreeSet::new();
        let listed = match self.client.nodes() {
            Ok(n) => n,
            Err(e) => {
                report.api_error("nodes", &e);
                return online;
            }
        };
        let known: Vec<&str> = listed.iter().map(|n| n.node.as_str()).collect();
        for node in self.target_nodes(inputs) {
            let name = format!("node {node}");
            match listed.iter().find(|n| n.node == node) {
                Some(n) if n.status == "online" => {
                    report.ok(Group::Proxmox, name, "online");
                    online.insert(node);
                }
                Some(n) => report.fail(
                    Group::Proxmox,
                    name,
                    format!("{node} is {}", n.status),
                    format!("start {node} (or repair the cluster), or place the VMs on an online node (proxmox_node, node_placement)"),
                ),
                None => report.fail(
                    Group::Proxmox,
                    name,
                    format!("{node} is not a node of this cluster (nodes: {})", known.join(", ")),
                    format!(
                        "set proxmox_node (and node_placement, gpu_workers[].proxmox_node) to one of: {}",
                        known.join(", ")
                    ),
                ),
            }
        }
        online
    }
}
