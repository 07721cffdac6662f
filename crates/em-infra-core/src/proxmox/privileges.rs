//! The privileges em-infra's API token needs, per Proxmox VE major release and per topology: one
//! table ([`REQUIRED`]) that `doctor` evaluates against `GET /access/permissions` and that
//! `em-infra doctor --print-role 8|9` prints as the `pveum` commands of docs/runbooks.md (a test
//! keeps the runbook equal to the printed text, so the two cannot drift).
//!
//! Derived from what the Terraform modules ask bpg/proxmox v0.111.1 to do (a full clone of the
//! template with an explicit VM ID, config updates, start, wait for the guest agent's IP, destroy)
//! and from em-infra's own API calls (doctor, status, init), read from the sources: qemu-server
//! `API2/Qemu.pm` (clone_vm, update_vm `$check_vm_modify_config_perm`, the cloud-init drive
//! check `['VM.Config.Cloudinit', 'VM.Config.CDROM']`, migrate_vm, `check_hostpci_perm`),
//! `API2/Qemu/Agent.pm` (VM.Monitor on 8, VM.GuestAgent.Audit|Unrestricted on 9),
//! pve-guest-common `check_vnet_access` (SDN.Use on `/sdn/zones/localnetwork/<bridge>[/<tag>]`),
//! pve-storage `check_volume_access` (a disk's `content/<volume>` needs Datastore.Audit),
//! pve-manager `Hardware/PCI.pm` (Sys.Audit|Sys.Modify on `/`), and bpg's
//! `proxmoxtf/resource/vm/vm.go` (clone-then-migrate across nodes on non-shared storage,
//! `disk/disk.go` reading each disk's format from the storage on every refresh).

use std::collections::BTreeSet;

use serde::Serialize;

/// The role name docs/runbooks.md creates; doctor's fixes name it (say so: users may use another).
pub const ROLE: &str = "EmInfra";
/// The user and token name the runbook creates.
pub const RUNBOOK_USER: &str = "terraform@pve";
pub const RUNBOOK_TOKEN_NAME: &str = "em-infra";

/// A Proxmox VE major release whose privilege names em-infra knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Release {
    /// PVE 8 (and older): the guest agent is authorised by `VM.Monitor`.
    Pve8,
    /// PVE 9: `VM.Monitor` is gone (an invalid name), `VM.GuestAgent.*` replace it.
    Pve9,
}

impl Release {
    /// The privilege set for `major` (from `GET /version`): 9 and later use PVE 9's names, older
    /// releases PVE 8's (`VM.Monitor` exists since PVE 1.x).
    pub fn from_major(major: Option<u32>) -> Release {
        match major {
            Some(m) if m >= 9 => Release::Pve9,
            _ => Release::Pve8,
        }
    }

    /// `8` or `9`.
    pub fn major(self) -> u32 {
        match self {
            Release::Pve8 => 8,
            Release::Pve9 => 9,
        }
    }
}

const BOTH: &[Release] = &[Release::Pve8, Release::Pve9];
const PVE8: &[Release] = &[Release::Pve8];
const PVE9: &[Release] = &[Release::Pve9];

/// The ACL path a requirement is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `/vms/<vm_id>` of every planned VM.
    EveryVm,
    /// `/vms/<vm_id>` of each VM placed on another Proxmox node than the template's.
    MovedVm,
    /// `/vms/<template_vm_id>`.
    Template,
    /// `/storage/<datastore_id>`.
    Datastore,
    /// `/sdn/zones/localnetwork/<network_bridge>`.
    Bridge,
    /// `/sdn/zones/localnetwork/<network_bridge>/<vlan_id>`.
    BridgeVlan,
    /// `/mapping/pci/<mapping>` of every GPU worker's mapping.
    GpuMapping,
    /// `/`.
    Root,
}

impl Target {
    /// The path with placeholders, as the docs show it.
    pub fn template(self) -> &'static str {
        match self {
            Target::EveryVm | Target::MovedVm => "/vms/<vm_id>",
            Target::Template => "/vms/<template_vm_id>",
            Target::Datastore => "/storage/<datastore_id>",
            Target::Bridge => "/sdn/zones/localnetwork/<network_bridge>",
            Target::BridgeVlan => "/sdn/zones/localnetwork/<network_bridge>/<vlan_id>",
            Target::GpuMapping => "/mapping/pci/<mapping>",
            Target::Root => "/",
        }
    }
}

/// When the topology needs a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    Always,
    /// `vlan_id` is set.
    Vlan,
    /// A GPU worker uses a PCI resource mapping.
    GpuWorkers,
    /// A VM goes to another node than the template's, and `datastore_id` is not shared: bpg
    /// clones on the template's node, then migrates.
    MovedVms,
}

impl When {
    /// How the runbook and `--print-role` describe the condition.
    pub fn describe(self) -> &'static str {
        match self {
            When::Always => "always",
            When::Vlan => "with vlan_id",
            When::GpuWorkers => "with GPU workers (gpu_workers with a mapping)",
            When::MovedVms => {
                "with VMs on another Proxmox node than the template's, on storage that is not shared"
            }
        }
    }
}

/// One privilege the token needs on one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// The privilege to grant.
    pub privilege: &'static str,
    /// Privileges PVE accepts instead (its `any` checks); never suggested.
    pub or: &'static [&'static str],
    pub target: Target,
    pub releases: &'static [Release],
    pub when: When,
    /// What needs it, in a few words.
    pub why: &'static str,
}

const fn req(
    privilege: &'static str,
    target: Target,
    releases: &'static [Release],
    when: When,
    why: &'static str,
) -> Requirement {
    Requirement {
        privilege,
        or: &[],
        target,
        releases,
        when,
        why,
    }
}

/// Every privilege em-infra's token needs, on which path, for which release and topology.
pub const REQUIRED: &[Requirement] = &[
    req(
        "VM.Allocate",
        Target::EveryVm,
        BOTH,
        When::Always,
        "clone into the planned VM ID, and destroy the VM (down, scale, node replace)",
    ),
    req(
        "VM.Audit",
        Target::EveryVm,
        BOTH,
        When::Always,
        "read the VM's config and status (every plan and refresh, status, verify)",
    ),
    req(
        "VM.Config.CPU",
        Target::EveryVm,
        BOTH,
        When::Always,
        "cores, sockets and CPU type after the clone",
    ),
    req(
        "VM.Config.Memory",
        Target::EveryVm,
        BOTH,
        When::Always,
        "memory and balloon after the clone",
    ),
    req(
        "VM.Config.Disk",
        Target::EveryVm,
        BOTH,
        When::Always,
        "grow scsi0 and set its options, the EFI disk of GPU workers, and reading each disk's format \
         from the storage (bpg, every refresh)",
    ),
    req(
        "VM.Config.CDROM",
        Target::EveryVm,
        BOTH,
        When::Always,
        "the cloud-init drive (ide2) is a CD-ROM: writing it needs VM.Config.CDROM and VM.Config.Cloudinit",
    ),
    req(
        "VM.Config.Cloudinit",
        Target::EveryVm,
        BOTH,
        When::Always,
        "the cloud-init drive, IP, DNS, user and SSH keys, and regenerating the drive",
    ),
    req(
        "VM.Config.Network",
        Target::EveryVm,
        BOTH,
        When::Always,
        "net0 on network_bridge",
    ),
    req(
        "VM.Config.HWType",
        Target::EveryVm,
        BOTH,
        When::Always,
        "SCSI controller, serial console, machine type and the GPU's hostpci device",
    ),
    req(
        "VM.Config.Options",
        Target::EveryVm,
        BOTH,
        When::Always,
        "name, description, tags, agent, on-boot, OS type and BIOS",
    ),
    req(
        "VM.PowerMgmt",
        Target::EveryVm,
        BOTH,
        When::Always,
        "start after the clone, reboot on a change, stop before destroy",
    ),
    req(
        "VM.Monitor",
        Target::EveryVm,
        PVE8,
        When::Always,
        "the guest agent: wait_for_ip (network-get-interfaces) and the ping before a reboot; without it \
         bpg only warns and apply returns before the VM has its IP",
    ),
    Requirement {
        privilege: "VM.GuestAgent.Audit",
        or: &["VM.GuestAgent.Unrestricted"],
        target: Target::EveryVm,
        releases: PVE9,
        when: When::Always,
        why: "the guest agent: wait_for_ip (network-get-interfaces) and the ping before a reboot; without it \
              bpg only warns and apply returns before the VM has its IP (PVE 9 dropped VM.Monitor: a role \
              from PVE 8 lost it)",
    },
    req(
        "VM.Migrate",
        Target::MovedVm,
        BOTH,
        When::MovedVms,
        "bpg clones on the template's node and migrates the VM to its own node (non-shared storage)",
    ),
    req(
        "VM.Audit",
        Target::Template,
        BOTH,
        When::Always,
        "read the template (doctor; bpg before cloning to another node)",
    ),
    req(
        "VM.Clone",
        Target::Template,
        BOTH,
        When::Always,
        "full clone of the template",
    ),
    req(
        "Datastore.AllocateSpace",
        Target::Datastore,
        BOTH,
        When::Always,
        "the clone's disks, the cloud-init drive, the EFI disk, growing the disk",
    ),
    Requirement {
        privilege: "Datastore.Audit",
        or: &["Datastore.Allocate"],
        target: Target::Datastore,
        releases: BOTH,
        when: When::Always,
        why: "bpg reads each disk's format on every refresh (`GET /nodes/<node>/storage/<id>/content/<volume>`)",
    },
    req(
        "SDN.Use",
        Target::Bridge,
        BOTH,
        When::Always,
        "net0 on network_bridge (checked on clone and on config)",
    ),
    req(
        "SDN.Use",
        Target::BridgeVlan,
        BOTH,
        When::Vlan,
        "net0 with tag vlan_id",
    ),
    req(
        "Mapping.Use",
        Target::GpuMapping,
        BOTH,
        When::GpuWorkers,
        "hostpci0 by PCI resource mapping (and doctor sees the mapping)",
    ),
    Requirement {
        privilege: "Sys.Audit",
        or: &["Sys.Modify"],
        target: Target::Root,
        releases: BOTH,
        when: When::GpuWorkers,
        why: "doctor lists the node's PCI devices to check the GPU (`GET /nodes/<node>/hardware/pci`)",
    },
];

/// The requirements of `release`, in table order.
pub fn for_release(release: Release) -> impl Iterator<Item = &'static Requirement> {
    REQUIRED
        .iter()
        .filter(move |r| r.releases.contains(&release))
}

/// The distinct privilege names `release` needs under `when`, sorted.
pub fn privileges(release: Release, when: When) -> Vec<&'static str> {
    let always: BTreeSet<&str> = for_release(release)
        .filter(|r| r.when == When::Always)
        .map(|r| r.privilege)
        .collect();
    let set: BTreeSet<&str> = for_release(release)
        .filter(|r| r.when == when)
        .map(|r| r.privilege)
        .filter(|p| when == When::Always || !always.contains(p))
        .collect();
    set.into_iter().collect()
}

/// The `pveum` commands that create the role, user and token on `release`: what
/// `em-infra doctor --print-role` prints and docs/runbooks.md shows (byte for byte).
pub fn pveum_commands(release: Release) -> String {
    let mut out = format!(
        "# Proxmox VE {}: the role em-infra's token needs (em-infra doctor --print-role {})\n",
        release.major(),
        release.major()
    );
    out.push_str(&format!(
        "pveum role add {ROLE} --privs \"{}\"\n",
        privileges(release, When::Always).join(" ")
    ));
    for when in [When::GpuWorkers, When::MovedVms] {
        let extra = privileges(release, when);
        if !extra.is_empty() {
            out.push_str(&format!(
                "# {}:\n{}\n",
                capitalized(when.describe()),
                role_append(&extra)
            ));
        }
    }
    out.push_str(&format!(
        "# A user with the role on / (propagated), and its token without privilege separation:\n\
         pveum user add {RUNBOOK_USER}\n\
         pveum acl modify / --users {RUNBOOK_USER} --roles {ROLE}\n\
         pveum user token add {RUNBOOK_USER} {RUNBOOK_TOKEN_NAME} --privsep 0\n"
    ));
    out
}

/// `pveum role modify EmInfra --append 1 --privs "A B"`.
pub fn role_append(privileges: &[&str]) -> String {
    format!(
        "pveum role modify {ROLE} --append 1 --privs \"{}\"",
        privileges.join(" ")
    )
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |c| {
        c.to_uppercase().collect::<String>() + chars.as_str()
    })
}

/// The table as Markdown (privilege, path, releases, when, why), as the runbook shows it.
pub fn markdown_table() -> String {
    let mut out = String::from("| privilege | on | PVE | when | why |\n|---|---|---|---|---|\n");
    for r in REQUIRED {
        let privilege = if r.or.is_empty() {
            format!("`{}`", r.privilege)
        } else {
            let or: Vec<String> = r.or.iter().map(|p| format!("`{p}`")).collect();
            format!("`{}` (or {})", r.privilege, or.join(", "))
        };
        let releases: Vec<String> = r.releases.iter().map(|v| v.major().to_string()).collect();
        out.push_str(&format!(
            "| {privilege} | `{}` | {} | {} | {} |\n",
            r.target.template(),
            releases.join(", "),
            r.when.describe(),
            r.why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_differ_only_in_the_guest_agent_privilege() {
        let p8 = privileges(Release::Pve8, When::Always);
        let p9 = privileges(Release::Pve9, When::Always);
        assert!(p8.contains(&"VM.Monitor") && !p8.contains(&"VM.GuestAgent.Audit"));
        assert!(p9.contains(&"VM.GuestAgent.Audit") && !p9.contains(&"VM.Monitor"));
        let strip = |v: &[&str]| -> Vec<String> {
            v.iter()
                .filter(|p| !p.starts_with("VM.Monitor") && !p.starts_with("VM.GuestAgent"))
                .map(|p| (*p).to_string())
                .collect()
        };
        assert_eq!(strip(&p8), strip(&p9));
        assert_eq!(
            privileges(Release::Pve9, When::GpuWorkers),
            ["Mapping.Use", "Sys.Audit"]
        );
        assert_eq!(privileges(Release::Pve8, When::MovedVms), ["VM.Migrate"]);
        // SDN.Use with a VLAN is a second path, not a new privilege.
        assert!(privileges(Release::Pve8, When::Vlan).is_empty());
    }

    #[test]
    fn release_from_major() {
        assert_eq!(Release::from_major(Some(9)), Release::Pve9);
        assert_eq!(Release::from_major(Some(10)), Release::Pve9);
        assert_eq!(Release::from_major(Some(8)), Release::Pve8);
        assert_eq!(Release::from_major(Some(7)), Release::Pve8);
        assert_eq!(Release::from_major(None), Release::Pve8);
    }

    #[test]
    fn pveum_commands_name_the_role_and_every_privilege() {
        let text = pveum_commands(Release::Pve9);
        assert!(text.starts_with("# Proxmox VE 9: "), "{text}");
        assert!(text.contains("pveum role add EmInfra --privs \"Datastore.AllocateSpace Datastore.Audit SDN.Use VM.Allocate"));
        assert!(
            text.contains("VM.GuestAgent.Audit VM.PowerMgmt\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "pveum role modify EmInfra --append 1 --privs \"Mapping.Use Sys.Audit\"\n"
            )
        );
        assert!(text.contains("pveum role modify EmInfra --append 1 --privs \"VM.Migrate\"\n"));
        assert!(text.contains("pveum user token add terraform@pve em-infra --privsep 0\n"));
        assert!(!text.contains("VM.Monitor"));
        assert!(pveum_commands(Release::Pve8).contains(" VM.Monitor "));
    }

    #[test]
    fn markdown_table_has_a_row_per_requirement() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), REQUIRED.len() + 2);
        assert!(table.contains(
            "| `VM.GuestAgent.Audit` (or `VM.GuestAgent.Unrestricted`) | `/vms/<vm_id>` | 9 | always |"
        ));
    }
}
