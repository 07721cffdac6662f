//! The planned VM IDs: free, or already em-infra's for this cluster.

use crate::config::topology::{Inputs, PlannedNode};
use crate::proxmox::{ProxmoxError, VmResource};

use super::super::{DoctorReport, Group};
use super::{OUR_TAG, ProxmoxChecks};

impl ProxmoxChecks<'_> {
    /// Whether an existing VM with the planned node's ID is one em-infra made for this cluster.
    fn is_ours(vm: &VmResource, node: &PlannedNode, cluster: &str) -> bool {
        vm.name.as_deref() == Some(node.name.as_str())
            || (vm.tags.iter().any(|t| t == OUR_TAG) && vm.tags.iter().any(|t| t == cluster))
    }

    pub(super) fn check_vm_ids(
        &self,
        report: &mut DoctorReport,
        inputs: &Inputs,
        vms: &Result<Vec<VmResource>, ProxmoxError>,
    ) {
        let vms = match vms {
            Ok(v) => v,
            Err(e) => return report.api_error("VM IDs", e),
        };
        let (mut free, mut ours, mut taken) = (0, Vec::new(), 0);
        for node in self.nodes {
            match vms.iter().find(|v| v.vmid == node.vm_id) {
                None => free += 1,
                Some(vm) if Self::is_ours(vm, node, &inputs.cluster_name) => {
                    ours.push(node.name.as_str())
                }
                Some(vm) => {
                    taken += 1;
                    let tags = if vm.tags.is_empty() {
                        String::new()
                    } else {
                        format!(", tags {}", vm.tags.join(";"))
                    };
                    report.fail(
                        Group::Proxmox,
                        format!("VM ID {}", node.vm_id),
                        format!(
                            "VM {} is '{}' on {}{tags}: not em-infra's {} — it will not be touched",
                            vm.vmid,
                            vm.name.as_deref().unwrap_or("(no name)"),
                            vm.node,
                            node.name
                        ),
                        format!(
                            "choose a vm_id_base whose range is free (the nodes use vm_id_base + 0…{}), or move that VM",
                            crate::config::topology::highest_slot(inputs.worker_count, inputs.gpu_workers.len() as u32)
                        ),
                    );
                }
            }
        }
        if taken == 0 {
            let ours_text = if ours.is_empty() {
                String::new()
            } else {
                format!(", {} already ours ({})", ours.len(), ours.join(", "))
            };
            report.ok(Group::Proxmox, "VM IDs", format!("{free} free{ours_text}"));
        }
    }
}
