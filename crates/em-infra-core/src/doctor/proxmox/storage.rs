//! The datastore on every node that gets disks: defined, enabled, active, takes images, room.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::topology::Inputs;
use crate::proxmox::{ProxmoxError, VmResource};

use super::super::{DoctorReport, Group};
use super::{GIB, ProxmoxChecks, SMALL_DISKS_BYTES};

impl ProxmoxChecks<'_> {
    pub(super) fn check_storage(
        &self,
        report: &mut DoctorReport,
        inputs: &Inputs,
        vms: &Result<Vec<VmResource>, ProxmoxError>,
        online: &BTreeSet<String>,
    ) {
        let ds = &inputs.datastore_id;
        // Bytes the new VMs need on each Proxmox node (VMs that exist already have their disks).
        let mut need: BTreeMap<&str, u64> = BTreeMap::new();
        for node in self.nodes {
            let exists = vms
                .as_ref()
                .is_ok_and(|v| v.iter().any(|vm| vm.vmid == node.vm_id));
            if exists {
                continue;
            }
            *need.entry(node.proxmox_node.as_str()).or_default() +=
                node.size.disk_gb * GIB + SMALL_DISKS_BYTES;
        }
        let total_need: u64 = need.values().sum();
        let mut storage_nodes: BTreeSet<&str> =
            self.nodes.iter().map(|n| n.proxmox_node.as_str()).collect();
        storage_nodes.insert(inputs.proxmox_node.as_str());
        for node in storage_nodes {
            let name = format!("storage {ds} on {node}");
            if !online.contains(node) {
                report.skip(Group::Proxmox, name, format!("node {node} is not online"));
                continue;
            }
            let st = match self.client.storage_status(node, ds) {
                Ok(s) => s,
                Err(e) if e.status_mentions("does not exist") => {
                    report.fail(
                        Group::Proxmox,
                        name,
                        format!("storage {ds} does not exist on {node}"),
                        "set datastore_id to a storage that holds disk images (`pvesm status` on the host lists them)",
                    );
                    continue;
                }
                Err(e) => {
                    report.api_error(name, &e);
                    continue;
                }
            };
            if !st.enabled {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("storage {ds} is disabled on {node}"),
                    format!("enable it: pvesm set {ds} --disable 0"),
                );
                continue;
            }
            if !st.active {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("storage {ds} is not active on {node}"),
                    "check it on the host (`pvesm status`; the mount, LVM volume group or ZFS pool behind it)",
                );
                continue;
            }
            if !st.allows("images") {
                let content = if st.content.is_empty() {
                    "none".to_string()
                } else {
                    st.content.clone()
                };
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("storage {ds} does not allow disk images (content: {content})"),
                    format!(
                        "allow them: pvesm set {ds} --content images{} (or choose another datastore_id)",
                        if st.content.is_empty() { String::new() } else { format!(",{}", st.content) }
                    ),
                );
                continue;
            }
            let wanted = if st.shared {
                total_need
            } else {
                need.get(node).copied().unwrap_or(0)
            };
            let gib = |b: u64| format!("{:.1} GiB", b as f64 / GIB as f64);
            if st.avail < wanted {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!(
                        "storage {ds} on {node} has {} free, the planned disks need {}",
                        gib(st.avail),
                        gib(wanted)
                    ),
                    "free space on it, choose another datastore_id, or lower disk_gb / the node counts",
                );
            } else {
                report.ok(
                    Group::Proxmox,
                    name,
                    format!(
                        "active, allows images, {} free for {} of new disks",
                        gib(st.avail),
                        gib(wanted)
                    ),
                );
            }
        }
    }
}
