//! The template the VMs are cloned from: it exists, on the right node, is a template, and has
//! the guest agent, a cloud-init drive and a serial console.

use std::collections::BTreeSet;

use crate::config::topology::Inputs;
use crate::proxmox::{ProxmoxError, VmResource};

use super::super::{DoctorReport, Group};
use super::ProxmoxChecks;

impl ProxmoxChecks<'_> {
    pub(super) fn check_template(
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
            // `/cluster/resources` hides guests without VM.Audit; nextid sees them all.
            match self.client.vmid_free(id) {
                Ok(true) => report.fail(
                    Group::Proxmox,
                    name,
                    format!("VM {id} does not exist"),
                    "build it with `em-infra prepare`, or set template_vm_id to your template's ID",
                ),
                Ok(false) => report.fail(
                    Group::Proxmox,
                    name,
                    format!(
                        "ID {id} is taken by a guest this token cannot see (GET /cluster/nextid: VM {id} already exists), \
                         so the token lacks VM.Audit on /vms/{id}"
                    ),
                    format!(
                        "if it is your template, grant VM.Audit: pveum acl modify /vms/{id} --tokens '{}' --roles PVEAuditor \
                         (with a privilege-separated token the user needs it too); else set template_vm_id to your template's ID",
                        self.client.token_id()
                    ),
                ),
                Err(e) => report.api_error(name, &e),
            }
            return;
        };
        if vm.is_container() {
            report.fail(
                Group::Proxmox,
                name,
                format!(
                    "ID {id} is a container ({} '{}' on {}), not a VM: the VMs are cloned from a QEMU VM template",
                    vm.label(),
                    vm.name.as_deref().unwrap_or("(no name)"),
                    vm.node
                ),
                "set template_vm_id to your VM template's ID, or to a free ID and build the template there with `em-infra prepare`",
            );
            return;
        }
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
}
