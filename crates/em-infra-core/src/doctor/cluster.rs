//! Checks of the provisioned cluster: SSH reaches every node of the Terraform state.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::Environment;

use super::{DoctorReport, Group};

/// The name of the check that reads the Terraform state (preflight treats its failure as bad
/// input: the file is the user's to restore).
pub(crate) const STATE_CHECK: &str = "Terraform state";

pub(super) fn check_cluster_ssh(report: &mut DoctorReport, env: &Environment) {
    let state = env.tfstate();
    let bytes = match std::fs::read(&state) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.skip(
                Group::Cluster,
                "SSH on nodes",
                "not provisioned yet (no terraform.tfstate)",
            );
            return;
        }
        Err(e) => {
            report.fail(
                Group::Cluster,
                STATE_CHECK,
                format!("cannot read {}: {e}", state.display()),
                "make the file readable by this user",
            );
            return;
        }
    };
    // A file that is not a Terraform state at all cannot be planned against: Terraform would
    // fail with a misleading lock error. Provisioning again cannot repair it; a backup can.
    if let Err(why) = crate::engine::backup::TfStateMeta::parse(&bytes) {
        report.fail(
            Group::Cluster,
            STATE_CHECK,
            format!("{} is not a Terraform state ({why})", state.display()),
            format!(
                "restore the newest good backup: `em-infra state list --env {0}`, then `em-infra state \
                 restore ID --env {0}` (the damaged file is kept as a backup first)",
                env.name
            ),
        );
        return;
    }
    let outputs = match crate::inventory::load_outputs(&state) {
        Ok(o) => o,
        Err(e) => {
            // A valid state without the cluster's outputs: provisioning has not completed yet.
            report.skip(
                Group::Cluster,
                "SSH on nodes",
                format!("not provisioned completely yet ({e})"),
            );
            return;
        }
    };
    let handles: Vec<_> = outputs
        .nodes
        .iter()
        .map(|n| {
            let addr = SocketAddr::from((n.ip, 22));
            (
                n.clone(),
                std::thread::spawn(move || {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                }),
            )
        })
        .collect();
    for (node, handle) in handles {
        let name = format!("SSH {}", node.name);
        match handle.join() {
            Ok(Ok(_)) => report.ok(Group::Cluster, name, format!("{}:22 answers", node.ip)),
            Ok(Err(e)) => report.fail(
                Group::Cluster,
                name,
                format!("cannot reach {}:22 ({e})", node.ip),
                format!(
                    "check that VM {} runs (qm status {} on {}), its network (bridge, VLAN, gateway) and \
                     firewalls; if the VM is gone, `em-infra up --from provision` recreates it",
                    node.vm_id, node.vm_id, node.proxmox_node
                ),
            ),
            Err(_) => report.fail(Group::Cluster, name, "the connection check panicked", "report this as a bug"),
        }
    }
}
