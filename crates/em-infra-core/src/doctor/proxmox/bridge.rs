//! The network bridge on every node that gets VMs.

use std::collections::BTreeSet;

use crate::config::topology::Inputs;

use super::super::{DoctorReport, Group};
use super::ProxmoxChecks;

impl ProxmoxChecks<'_> {
    pub(super) fn check_bridge(
        &self,
        report: &mut DoctorReport,
        inputs: &Inputs,
        online: &BTreeSet<String>,
    ) {
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
}
