//! The template the VMs are cloned from: it exists, is a VM on the right node, is a template,
//! has a cloud-init drive and a serial console, and (a hint) an image with the guest agent.

use std::collections::BTreeSet;

use crate::config::topology::Inputs;
use crate::proxmox::{ProxmoxError, VmConfig, VmResource};

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
        self.check_guest_agent(report, id, &cfg);
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

    /// Whether the clones' guests will run the QEMU guest agent, which bpg's `wait_for_ip` polls
    /// for the IP (`agent/network-get-interfaces`): a guest without the qemu-guest-agent package
    /// makes every create wait `agent.timeout` (15 m) and fail. The template's own `agent` flag
    /// does not matter: bpg writes the VM module's `agent { enabled = true }` into each clone's
    /// config (v0.111.1 `proxmoxtf/resource/vm/vm.go` `vmCreateClone`, the `updateBody.Agent`
    /// part). The package sits inside the disk image, where the API cannot look; a template that
    /// `em-infra prepare` built has it (virt-customize `--install qemu-guest-agent`) and says so
    /// in its description. For any other template this is a warning, never a failure.
    fn check_guest_agent(&self, report: &mut DoctorReport, id: u64, cfg: &VmConfig) {
        let name = "template guest agent";
        let description = cfg.get("description").unwrap_or_default();
        if is_prepared_template(&description) {
            report.ok(
                Group::Proxmox,
                name,
                "built by `em-infra prepare`: its image has the qemu-guest-agent package",
            );
            return;
        }
        let flag = if cfg.agent_enabled() {
            "on"
        } else {
            "off, which alone is harmless: the VM module enables the agent on every clone"
        };
        report.warn(
            Group::Proxmox,
            name,
            format!(
                "template {id} was not built by `em-infra prepare`, so doctor cannot tell whether its image has the \
                 qemu-guest-agent package; without it every VM's create waits 15 minutes for an IP and fails \
                 (the template's agent flag is {flag})"
            ),
            "make sure the image has qemu-guest-agent (virt-customize -a <image> --install qemu-guest-agent before \
             importing it), or build a template with `em-infra prepare` and set template_vm_id to it",
        );
    }
}

/// A template `em-infra prepare` finished: its description starts `em-infra template;` (the
/// proxmox_template role writes `em-infra template (building); …` while it works).
fn is_prepared_template(description: &str) -> bool {
    description.trim_start().starts_with("em-infra template;")
}

#[cfg(test)]
mod tests {
    use super::is_prepared_template;

    #[test]
    fn prepared_templates_by_description() {
        assert!(is_prepared_template(
            "em-infra template; image sha256=ab12; image=jammy-server-cloudimg-amd64.img; url=https://x/y.img"
        ));
        assert!(!is_prepared_template(
            "em-infra template (building); image sha256=ab12"
        ));
        assert!(!is_prepared_template("ubuntu 22.04 by hand"));
        assert!(!is_prepared_template(""));
    }
}
