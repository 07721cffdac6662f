//! The planned VM IDs: free, or already em-infra's for this cluster; free means free for
//! `GET /cluster/nextid` too, which sees the guests `/cluster/resources` hides from the token.

use crate::config::topology::{Inputs, PlannedNode};
use crate::proxmox::{ProxmoxError, VmResource};

use super::super::{DoctorReport, Group};
use super::{OUR_TAG, ProxmoxChecks};

impl ProxmoxChecks<'_> {
    /// Whether an existing VM with the planned node's ID is one em-infra made for this cluster.
    fn is_ours(vm: &VmResource, node: &PlannedNode, cluster: &str) -> bool {
        !vm.is_container()
            && (vm.name.as_deref() == Some(node.name.as_str())
                || (vm.tags.iter().any(|t| t == OUR_TAG) && vm.tags.iter().any(|t| t == cluster)))
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
        let free_range = || {
            format!(
                "choose a vm_id_base whose range is free (the nodes use vm_id_base + 0…{})",
                crate::config::topology::highest_slot(
                    inputs.worker_count,
                    inputs.gpu_workers.len() as u32
                )
            )
        };
        let (mut free, mut ours, mut taken) = (0, Vec::new(), 0);
        for node in self.nodes {
            let id = node.vm_id;
            match vms.iter().find(|v| v.vmid == id) {
                // Not listed: free, or a guest the token may not audit (`/cluster/resources` drops
                // those, pve-manager `PVE/API2/Cluster.pm` `resources`). nextid sees every guest.
                None => match self.client.vmid_free(id) {
                    Ok(true) => free += 1,
                    Ok(false) => {
                        taken += 1;
                        report.fail(
                            Group::Proxmox,
                            format!("VM ID {id}"),
                            format!(
                                "VM ID {id} (for {}) is taken by a guest this token cannot see: GET /cluster/nextid \
                                 says VM {id} already exists, /cluster/resources does not list it (no VM.Audit on /vms/{id})",
                                node.name
                            ),
                            format!(
                                "{}; or, to see what it is, grant VM.Audit: pveum acl modify /vms/{id} --tokens '{}' --roles PVEAuditor",
                                free_range(),
                                self.client.token_id()
                            ),
                        );
                    }
                    Err(e) => {
                        taken += 1;
                        report.api_error(format!("VM ID {id}"), &e);
                    }
                },
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
                        format!("VM ID {id}"),
                        format!(
                            "{} is '{}' on {}{tags}: not em-infra's {} — it will not be touched",
                            vm.label(),
                            vm.name.as_deref().unwrap_or("(no name)"),
                            vm.node,
                            node.name
                        ),
                        format!("{}, or move that guest", free_range()),
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
