//! The GPU workers' PCI resource mappings, the devices they point at and their IOMMU groups, and
//! the host's own check of each mapping against the node's hardware (`?check-node=`).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::topology::{Gpu, PlannedNode};
use crate::proxmox::types::bus_device;
use crate::proxmox::{PciDevice, PciMapEntry, PciMapping, ProxmoxError};

use super::super::{DoctorReport, Group};
use super::ProxmoxChecks;

impl ProxmoxChecks<'_> {
    pub(super) fn check_gpus(&self, report: &mut DoctorReport, online: &BTreeSet<String>) {
        let gpus: Vec<&PlannedNode> = self.nodes.iter().filter(|n| n.gpu.is_some()).collect();
        if gpus.is_empty() {
            return;
        }
        // Per Proxmox node: the mappings with the host's own check of that node's entries
        // (`?check-node=`, proxied to the node), or the plain list when the node is not online.
        let mut mappings: BTreeMap<String, Result<Vec<PciMapping>, ProxmoxError>> = BTreeMap::new();
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
            let up = online.contains(pnode);
            let all = mappings.entry(pnode.to_string()).or_insert_with(|| {
                if up {
                    self.client.pci_mappings_checked(pnode)
                } else {
                    self.client.pci_mappings()
                }
            });
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
            let entries = found.entries_for(pnode);
            if entries.is_empty() {
                let nodes: Vec<String> = found.entries().into_iter().map(|e| e.node).collect();
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("mapping '{mapping}' has no device on node {pnode} (it maps: {})", nodes.join(", ")),
                    format!("add {pnode}'s GPU to mapping {mapping} (Datacenter → Resource Mappings), or set this entry's proxmox_node"),
                );
                continue;
            }
            if !up {
                report.skip(Group::Proxmox, name, format!("node {pnode} is not online"));
                continue;
            }
            let host_errors = found.check_errors();
            let devs: &Result<Vec<PciDevice>, ProxmoxError> = devices
                .entry(pnode.to_string())
                .or_insert_with(|| self.client.node_pci_devices(pnode));
            // Doctor's own reading of the hardware first (its fixes are the most specific), then
            // the host's check, which also compares id, subsystem-id, IOMMU group and mdev and
            // needs no Sys.Audit, so it still speaks when the device list is forbidden.
            let devs = match devs {
                Ok(devs) => devs,
                Err(e) if host_errors.is_empty() => {
                    report.api_error(name, e);
                    continue;
                }
                Err(_) => {
                    fail_host_check(report, name, mapping, pnode, &host_errors);
                    continue;
                }
            };
            let alternatives = match resolve(mapping, pnode, &entries, devs) {
                Ok(a) => a,
                Err((detail, fix)) => {
                    report.fail(Group::Proxmox, name, detail, fix);
                    continue;
                }
            };
            if !host_errors.is_empty() {
                fail_host_check(report, name, mapping, pnode, &host_errors);
                continue;
            }
            report.ok(
                Group::Proxmox,
                name,
                ok_detail(mapping, pnode, &alternatives),
            );
            for alternative in &alternatives {
                warn_shared_groups(report, pnode, alternative, devs);
            }
        }
    }
}

/// ✗ with the errors of the host's own check (`?check-node=`) of `mapping` on `pnode`.
fn fail_host_check(
    report: &mut DoctorReport,
    name: String,
    mapping: &str,
    pnode: &str,
    errors: &[String],
) {
    report.fail(
        Group::Proxmox,
        name,
        format!(
            "Proxmox's own check of mapping '{mapping}' on {pnode} failed: {}",
            errors.join("; ")
        ),
        format!(
            "edit mapping {mapping} (Datacenter → Resource Mappings → {mapping}) and select {pnode}'s GPU again: \
             the dialog fills in path, id, subsystem-id and iommugroup from the hardware as it is now \
             (lspci -nn on {pnode}); set or clear the mapping's mdev flag as the error says"
        ),
    );
}

/// The devices one map entry passes through: those of every `;`-separated path (a path without
/// a function, `0000:01:00`, means all functions of that device).
///
/// What PVE makes of the entries: each entry for the node is an alternative and the first free
/// one is used when the VM starts; the `;`-separated paths of one entry are resolved together
/// (qemu-server `PVE/QemuServer/PCI.pm` `parse_hostpci`, `choose_hostpci_devices`), although the
/// mapping format describes them as alternatives too (pve-guest-common `PVE/Mapping/PCI.pm`,
/// `path`). Doctor checks what either reading needs: every path is a device of the node with an
/// IOMMU group, and every entry holds a display controller.
type Alternative<'d> = Vec<&'d PciDevice>;

fn resolve<'d>(
    mapping: &str,
    pnode: &str,
    entries: &[PciMapEntry],
    devs: &'d [PciDevice],
) -> Result<Vec<Alternative<'d>>, (String, String)> {
    let mut alternatives = Vec::new();
    for entry in entries {
        let mut members: Alternative<'d> = Vec::new();
        for path in entry.paths() {
            let whole = bus_device(path) == path;
            let found: Vec<&PciDevice> = devs
                .iter()
                .filter(|d| d.id == path || (whole && d.bus_device() == path))
                .collect();
            if found.is_empty() {
                return Err((
                    format!(
                        "mapping '{mapping}' points at {path}, which is not a PCI device of {pnode}"
                    ),
                    format!(
                        "update mapping {mapping} to the GPU's current address (lspci -nn on {pnode})"
                    ),
                ));
            }
            if let Some(dev) = found.iter().find(|d| d.iommugroup < 0) {
                return Err((
                    format!("IOMMU is off on {pnode}: {} has no IOMMU group (-1), so it cannot be passed through", dev.id),
                    "enable intel_iommu=on (Intel) or amd_iommu=on (AMD) plus iommu=pt on the kernel command line \
                     (/etc/default/grub or /etc/kernel/cmdline), VT-d/AMD-Vi in the firmware, then reboot"
                        .to_string(),
                ));
            }
            members.extend(found);
        }
        if !members.iter().any(|d| d.is_display_controller()) {
            let what: Vec<String> = members
                .iter()
                .map(|d| format!("{} ({}), class {}", d.id, d.describe(), d.class))
                .collect();
            return Err((
                format!(
                    "mapping '{mapping}' points at {}: not a display controller (0x03…)",
                    what.join("; ")
                ),
                format!(
                    "point mapping {mapping} at the GPU (lspci -nn on {pnode} shows class [03xx])"
                ),
            ));
        }
        alternatives.push(members);
    }
    Ok(alternatives)
}

/// `mapping gpu0 → 0000:01:00.0 NVIDIA Corporation GA102 [GeForce RTX 3090] on pve, IOMMU group
/// 15`; with several GPUs or entries, each with its group, and a word on how one is chosen.
fn ok_detail(mapping: &str, pnode: &str, alternatives: &[Alternative<'_>]) -> String {
    let gpus: Vec<Vec<&PciDevice>> = alternatives
        .iter()
        .map(|a| {
            a.iter()
                .copied()
                .filter(|d| d.is_display_controller())
                .collect()
        })
        .collect();
    if let [one] = gpus.as_slice()
        && let [gpu] = one.as_slice()
    {
        return format!(
            "mapping {mapping} → {} {} on {pnode}, IOMMU group {}",
            gpu.id,
            gpu.describe(),
            gpu.iommugroup
        );
    }
    let shown: Vec<String> = gpus
        .iter()
        .map(|a| {
            a.iter()
                .map(|d| format!("{} {} (IOMMU group {})", d.id, d.describe(), d.iommugroup))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    let choice = if shown.len() > 1 {
        format!(
            " ({} entries for {pnode}: the first free one is used when the VM starts)",
            shown.len()
        )
    } else {
        String::new()
    };
    format!(
        "mapping {mapping} → {} on {pnode}{choice}",
        shown.join(" | ")
    )
}

/// `!` when other devices (not the alternative's own, nor functions of its devices) share an
/// IOMMU group with one of its GPUs: they would go to the VM together.
fn warn_shared_groups(
    report: &mut DoctorReport,
    pnode: &str,
    alternative: &Alternative<'_>,
    devs: &[PciDevice],
) {
    for gpu in alternative.iter().filter(|d| d.is_display_controller()) {
        let others: Vec<String> = devs
            .iter()
            .filter(|d| {
                d.iommugroup == gpu.iommugroup
                    && !alternative
                        .iter()
                        .any(|m| m.id == d.id || m.bus_device() == d.bus_device())
            })
            .map(|d| format!("{} ({})", d.id, d.describe()))
            .collect();
        if !others.is_empty() {
            report.warn(
                Group::Proxmox,
                format!("IOMMU group {} on {pnode}", gpu.iommugroup),
                format!(
                    "{} shares its IOMMU group with {}: they go to the VM together and the host loses them",
                    gpu.id,
                    others.join(", ")
                ),
                "make sure the host does not need them, or move the GPU to a slot with its own group",
            );
        }
    }
}
