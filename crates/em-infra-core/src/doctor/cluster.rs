//! Checks of the provisioned cluster: SSH reaches every node of the Terraform state.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::Environment;

use super::{DoctorReport, Group};

pub(super) fn check_cluster_ssh(report: &mut DoctorReport, env: &Environment) {
    let state = env.tfstate();
    if !state.is_file() {
        report.skip(
            Group::Cluster,
            "SSH on nodes",
            "not provisioned yet (no terraform.tfstate)",
        );
        return;
    }
    let outputs = match crate::inventory::load_outputs(&state) {
        Ok(o) => o,
        Err(e) => {
            report.fail(
                Group::Cluster,
                "Terraform state",
                e.to_string(),
                "run the provision stage again (`em-infra up --from provision`) or restore a backup (`em-infra state`)",
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
                    "check that VM {} runs (qm status {} on {}), its network (bridge, VLAN, gateway) and firewalls",
                    node.vm_id, node.vm_id, node.proxmox_node
                ),
            ),
            Err(_) => report.fail(Group::Cluster, name, "the connection check panicked", "report this as a bug"),
        }
    }
}
