//! The GPU workers' PCI resource mappings, the devices they point at and their IOMMU groups.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::topology::{Gpu, PlannedNode};
use crate::proxmox::{PciDevice, PciMapping, ProxmoxError};

use super::super::{DoctorReport, Group};
use super::ProxmoxChecks;

impl ProxmoxChecks<'_> {
    pub(super) fn check_gpus(&self, report: &mut DoctorReport, online: &BTreeSet<String>) {
        let gpus: Vec<&PlannedNode> = self.nodes.iter().filter(|n| n.gpu.is_some()).collect();
        if gpus.is_empty() {
            return;
        }
        let mut mappings: Option<Result<Vec<PciMapping>, ProxmoxError>> = None;
        let mut devices: BTreeMap<String, Result<Vec<PciDevice>, ProxmoxError>> = BTreeMap::new();
        for node in gpus {
            let name = format!("GPU {}", node.name);
            let pnode = node.proxmox_node.as_str();
            let mapping = match node.gpu.as_ref().expect("filtered") {
                Gpu::PciId(pci) => {
                    report.fail(
                        Group::Proxmox,
                        name,
                        format!(
                            "raw pci_id {pci} cannot be used with an API token: Proxmox lets only root@pam (password auth) \
                             pass a raw PCI device; tokens must use a PCI resource mapping"
                        ),
                        format!(
                            "create a PCI resource mapping (Datacenter → Resource Mappings → PCI → Add: node {pnode}, device {pci}) \
                             and use {{ mapping = \"<name>\" }} instead; raw IDs need allow_raw_pci_ids = true and root@pam password auth"
                        ),
                    );
                    continue;
                }
                Gpu::Mapping(m) => m,
            };
            let all = mappings.get_or_insert_with(|| self.client.pci_mappings());
            let all = match all {
                Ok(a) => a,
                Err(e) => {
                    report.api_error(name, e);
                    continue;
                }
            };
            let Some(found) = all.iter().find(|m| &m.id == mapping) else {
                let ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
                report.fail(
                    Group::Proxmox,
                    name,
                    format!(
                        "PCI resource mapping '{mapping}' does not exist (visible: {}), or the token lacks Mapping.Audit on /mapping/pci/{mapping}",
                        if ids.is_empty() { "none".into() } else { ids.join(", ") }
                    ),
                    format!(
                        "create it: Datacenter → Resource Mappings → PCI → Add (name {mapping}, node {pnode}, the GPU), \
                         or pvesh create /cluster/mapping/pci --id {mapping} --map node={pnode},path=<0000:01:00.0>,id=<vendor:device>"
                    ),
                );
                continue;
            };
            let Some(entry) = found.entry_for(pnode) else {
                let nodes: Vec<String> = found.entries().into_iter().map(|e| e.node).collect();
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("mapping '{mapping}' has no device on node {pnode} (it maps: {})", nodes.join(", ")),
                    format!("add {pnode}'s GPU to mapping {mapping} (Datacenter → Resource Mappings), or set this entry's proxmox_node"),
                );
                continue;
            };
            if !online.contains(pnode) {
                report.skip(Group::Proxmox, name, format!("node {pnode} is not online"));
                continue;
            }
            let devs = devices
                .entry(pnode.to_string())
                .or_insert_with(|| self.client.node_pci_devices(pnode));
            let devs = match devs {
                Ok(d) => d,
                Err(e) => {
                    report.api_error(name, e);
                    continue;
                }
            };
            let path = entry.path.as_str();
            let Some(dev) = devs
                .iter()
                .find(|d| d.id == path)
                .or_else(|| devs.iter().find(|d| d.bus_device() == path))
            else {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("mapping '{mapping}' points at {path}, which is not a PCI device of {pnode}"),
                    format!("update mapping {mapping} to the GPU's current address (lspci -nn on {pnode})"),
                );
                continue;
            };
            if dev.iommugroup < 0 {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("IOMMU is off on {pnode}: {} has no IOMMU group (-1), so it cannot be passed through", dev.id),
                    "enable intel_iommu=on (Intel) or amd_iommu=on (AMD) plus iommu=pt on the kernel command line \
                     (/etc/default/grub or /etc/kernel/cmdline), VT-d/AMD-Vi in the firmware, then reboot",
                );
                continue;
            }
            if !dev.is_display_controller() {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!(
                        "mapping '{mapping}' points at {} ({}), class {}: not a display controller (0x03…)",
                        dev.id,
                        dev.describe(),
                        dev.class
                    ),
                    format!("point mapping {mapping} at the GPU (lspci -nn on {pnode} shows class [03xx])"),
                );
                continue;
            }
            report.ok(
                Group::Proxmox,
                name,
                format!(
                    "mapping {mapping} → {} {} on {pnode}, IOMMU group {}",
                    dev.id,
                    dev.describe(),
                    dev.iommugroup
                ),
            );
            let others: Vec<String> = devs
                .iter()
                .filter(|d| d.iommugroup == dev.iommugroup && d.bus_device() != dev.bus_device())
                .map(|d| format!("{} ({})", d.id, d.describe()))
                .collect();
            if !others.is_empty() {
                report.warn(
                    Group::Proxmox,
                    format!("IOMMU group {} on {pnode}", dev.iommugroup),
                    format!(
                        "{} shares its IOMMU group with {}: they go to the VM together and the host loses them",
                        dev.id,
                        others.join(", ")
                    ),
                    "make sure the host does not need them, or move the GPU to a slot with its own group",
                );
            }
        }
    }
}
