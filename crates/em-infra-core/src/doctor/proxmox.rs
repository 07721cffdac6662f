//! Checks of the Proxmox host through its API: the token, the node, storage, the bridge, the
//! template, free VM IDs, and the GPU mappings and IOMMU groups the topology needs.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::topology::{Gpu, Inputs, PlannedNode};
use crate::proxmox::{Client, PciDevice, PciMapping, ProxmoxError, VmResource};

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

    fn check_template(
        &self,
        report: &mut DoctorReport,
        inputs: &Inputs,
        vms: &Result<Vec<VmResource>, ProxmoxError>,
        online: &BTreeSet<String>,
    ) {
        let id = inputs.template_vm_id;
        let name = format!("template {id}");
        let vms = match vms {
            Ok(v) => v,
            Err(e) => return report.api_error(name, e),
        };
        let Some(vm) = vms.iter().find(|v| v.vmid == id) else {
            report.fail(
                Group::Proxmox,
                name,
                format!(
                    "VM {id} does not exist, or the token lacks VM.Audit on /vms/{id} (the API hides VMs it may not see)"
                ),
                format!("build it with `em-infra prepare`, or set template_vm_id to your template's ID; grant VM.Audit on /vms/{id} if it exists"),
            );
            return;
        };
        let label = vm
            .name
            .as_deref()
            .map_or(String::new(), |n| format!(" ({n})"));
        if vm.node != inputs.proxmox_node {
            report.fail(
                Group::Proxmox,
                name,
                format!(
                    "VM {id}{label} is on node {}, but proxmox_node is {} (the clones are made on the template's node)",
                    vm.node, inputs.proxmox_node
                ),
                format!("set proxmox_node = \"{}\", or build the template on {}", vm.node, inputs.proxmox_node),
            );
            return;
        }
        if !online.contains(&vm.node) {
            report.skip(
                Group::Proxmox,
                name,
                format!("node {} is not online", vm.node),
            );
            return;
        }
        let cfg = match self.client.vm_config(&vm.node, id) {
            Ok(c) => c,
            Err(e) => return report.api_error(name, &e),
        };
        if cfg.is_template() || vm.template {
            report.ok(
                Group::Proxmox,
                name,
                format!("VM {id}{label} on {} is a template", vm.node),
            );
        } else {
            report.fail(
                Group::Proxmox,
                name,
                format!("VM {id}{label} on {} is not a template", vm.node),
                format!("convert it on the host (qm template {id}) or rebuild it with `em-infra prepare`"),
            );
        }
        let agent = cfg.get("agent");
        if cfg.agent_enabled() {
            report.ok(
                Group::Proxmox,
                "template guest agent",
                format!("enabled (agent: {})", agent.unwrap_or_default()),
            );
        } else {
            report.fail(
                Group::Proxmox,
                "template guest agent",
                format!(
                    "the QEMU guest agent is not enabled in template {id} (agent: {}): Terraform would wait 15 minutes for every VM",
                    agent.as_deref().unwrap_or("unset")
                ),
                format!("qm set {id} --agent enabled=1 and install qemu-guest-agent in the image (`em-infra prepare --refresh` does both)"),
            );
        }
        match cfg.cloudinit_drive() {
            Some(drive) => report.ok(
                Group::Proxmox,
                "template cloud-init drive",
                format!("{drive}: {}", cfg.get(&drive).unwrap_or_default()),
            ),
            None => report.fail(
                Group::Proxmox,
                "template cloud-init drive",
                format!("template {id} has no cloud-init drive: the VMs would get no IP, user or SSH key"),
                format!("qm set {id} --ide2 {}:cloudinit", inputs.datastore_id),
            ),
        }
        match cfg.serial0() {
            Some(s) => report.ok(
                Group::Proxmox,
                "template serial console",
                format!("serial0: {s}"),
            ),
            None => report.fail(
                Group::Proxmox,
                "template serial console",
                format!(
                    "template {id} has no serial console (serial0): Ubuntu cloud images expect one"
                ),
                format!("qm set {id} --serial0 socket --vga serial0"),
            ),
        }
    }

    /// Whether an existing VM with the planned node's ID is one em-infra made for this cluster.
    fn is_ours(vm: &VmResource, node: &PlannedNode, cluster: &str) -> bool {
        vm.name.as_deref() == Some(node.name.as_str())
            || (vm.tags.iter().any(|t| t == OUR_TAG) && vm.tags.iter().any(|t| t == cluster))
    }

    fn check_storage(
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

    fn check_bridge(&self, report: &mut DoctorReport, inputs: &Inputs, online: &BTreeSet<String>) {
        let bridge = &inputs.network_bridge;
        let nodes: BTreeSet<&str> = self.nodes.iter().map(|n| n.proxmox_node.as_str()).collect();
        for node in nodes {
            let name = format!("bridge {bridge} on {node}");
            if !online.contains(node) {
                report.skip(Group::Proxmox, name, format!("node {node} is not online"));
                continue;
            }
            let ifaces = match self.client.network(node) {
                Ok(i) => i,
                Err(e) => {
                    report.api_error(name, &e);
                    continue;
                }
            };
            match ifaces.iter().find(|i| &i.iface == bridge) {
                Some(i) if i.is_bridge() => report.ok(
                    Group::Proxmox,
                    name,
                    format!(
                        "{} ({}{})",
                        i.kind,
                        if i.active { "active" } else { "inactive" },
                        i.cidr
                            .as_deref()
                            .map_or(String::new(), |c| format!(", {c}"))
                    ),
                ),
                Some(i) => report.fail(
                    Group::Proxmox,
                    name,
                    format!("{bridge} on {node} is a {}, not a bridge", i.kind),
                    "set network_bridge to a Linux bridge (vmbr0, …)",
                ),
                None => {
                    let visible: Vec<&str> = ifaces
                        .iter()
                        .filter(|i| i.is_bridge())
                        .map(|i| i.iface.as_str())
                        .collect();
                    let visible = if visible.is_empty() {
                        "none".to_string()
                    } else {
                        visible.join(", ")
                    };
                    report.fail(
                        Group::Proxmox,
                        name,
                        format!(
                            "{bridge} is not among the bridges the API shows on {node} (visible: {visible}); if it exists, \
                             the token may lack SDN.Audit (or Sys.Audit): the API hides what the token may not see"
                        ),
                        format!(
                            "if {bridge} exists: pveum acl modify /sdn/zones/localnetwork/{bridge} --tokens '{}' --roles PVESDNUser; \
                             else create it or set network_bridge",
                            self.client.token_id()
                        ),
                    );
                }
            }
        }
    }

    fn check_vm_ids(
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

    fn check_gpus(&self, report: &mut DoctorReport, online: &BTreeSet<String>) {
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
