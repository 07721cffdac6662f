//! The datastore on every node that gets disks: defined, enabled (not disabled, not restricted to
//! other nodes), active, takes images, room.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::topology::Inputs;
use crate::proxmox::{ProxmoxError, StorageConfig, VmResource};

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
        // `GET /storage`, read once and only when a storage is not enabled somewhere.
        let mut config = None;
        for node in storage_nodes {
            let name = format!("storage {ds} on {node}");
            if !online.contains(node) {
                report.skip(Group::Proxmox, name, format!("node {node} is not online"));
                continue;
            }
            let st = match self.client.storage_status(node, ds) {
                Ok(s) => s,
                // pve-storage `PVE/API2/Storage/Status.pm` `read_status`: an ID storage.cfg does
                // not define is a 400 parameter error, `{"storage": "No such storage."}`.
                Err(e) if e.param_error("storage").is_some() => {
                    report.fail(
                        Group::Proxmox,
                        name,
                        format!(
                            "storage {ds} is not defined in this cluster (PVE: {})",
                            e.param_error("storage").unwrap_or_default()
                        ),
                        format!(
                            "set datastore_id to a storage for disk images on {node}{}, or define {ds} \
                             (Datacenter → Storage → Add)",
                            self.image_storages_hint(node)
                        ),
                    );
                    continue;
                }
                Err(e) => {
                    report.api_error(name, &e);
                    continue;
                }
            };
            if !st.enabled {
                let (detail, fix) = self.why_not_enabled(ds, node, &mut config);
                report.fail(Group::Proxmox, name, detail, fix);
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

    /// Why `ds` is not enabled on `node`. The status answers `enabled: 0` alike for a storage
    /// that is disabled and for one restricted to other nodes (pve-storage `storage_info` uses
    /// `storage_check_enabled`, which checks `disable` and then `nodes`); `GET /storage` shows
    /// which of the two it is, and each has its own fix.
    fn why_not_enabled(
        &self,
        ds: &str,
        node: &str,
        config: &mut Option<Result<Vec<StorageConfig>, ProxmoxError>>,
    ) -> (String, String) {
        let entry = match config.get_or_insert_with(|| self.client.storage_config()) {
            Ok(all) => all.iter().find(|s| s.storage == ds).cloned(),
            Err(_) => None,
        };
        let Some(entry) = entry else {
            return (
                format!(
                    "storage {ds} is disabled or not available on node {node} (the status says enabled: 0)"
                ),
                format!(
                    "enable it (pvesm set {ds} --disable 0) or add {node} to its nodes (Datacenter → Storage → {ds} → Edit → Nodes)"
                ),
            );
        };
        let mut nodes = entry.node_list();
        let elsewhere = !entry.available_on(node);
        let mut detail = Vec::new();
        let mut fix = Vec::new();
        if entry.disable {
            detail.push(format!(
                "storage {ds} is disabled in storage.cfg (disable 1)"
            ));
            fix.push(format!("enable it: pvesm set {ds} --disable 0"));
        }
        if elsewhere {
            detail.push(format!(
                "storage {ds} is not available on node {node}: it is restricted to nodes {}",
                nodes.join(",")
            ));
            nodes.push(node.to_string());
            fix.push(format!(
                "if {node} has it too, add {node} to its nodes: pvesm set {ds} --nodes {}; \
                 else set datastore_id to a storage for disk images on {node}{}",
                nodes.join(","),
                self.image_storages_hint(node)
            ));
        }
        if detail.is_empty() {
            // Enabled by its definition, yet not enabled in the status: say what PVE said.
            detail.push(format!(
                "storage {ds} is not enabled on {node} although storage.cfg neither disables nor restricts it"
            ));
            fix.push("check `pvesm status` on the host".to_string());
        }
        (detail.join("; "), fix.join("; "))
    }

    /// ` (those are: a, b)`: the active storages on `node` that take disk images, for a fix line;
    /// empty when there are none or the list cannot be read.
    fn image_storages_hint(&self, node: &str) -> String {
        let Ok(storages) = self.client.image_storages(node) else {
            return String::new();
        };
        let names: Vec<&str> = storages
            .iter()
            .filter(|s| s.status.active && s.status.allows("images"))
            .map(|s| s.storage.as_str())
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!(" (those are: {})", names.join(", "))
        }
    }
}
