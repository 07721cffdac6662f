//! `em-infra status [--env NAME|DIR] [--json]`: the joined view as a table (or JSON); drift is a
//! stage failure (exit 4).

use em_infra_core::config::Project;
use em_infra_core::status::{self, Source, StatusView};

use crate::cli::StatusArgs;
use crate::output::{Mark, Printer};

/// `em-infra status [--env NAME|DIR] [--json]`.
pub(crate) fn run(project: &Project, args: &StatusArgs, printer: &Printer) -> anyhow::Result<()> {
    let (outputs, view) = status::gather(project, &args.env.env)?;
    if printer.json_mode() {
        printer.stdout_json(&view.to_json())?;
    } else {
        printer.heading(format!(
            "{}: {} nodes in the Terraform state",
            outputs.cluster_name,
            outputs.nodes.len()
        ));
        source_line(printer, "Proxmox", &view.proxmox);
        source_line(printer, "Kubernetes", &view.kubernetes);
        printer.stdout(table(&view))?;
    }
    if let Some(drift) = view.drift_failure() {
        return Err(drift);
    }
    if let Some(blind) = view.blind_failure() {
        return Err(blind);
    }
    if !printer.json_mode() {
        printer.mark(Mark::Ok, "no drift");
    }
    Ok(())
}

fn source_line(printer: &Printer, name: &str, source: &Source<()>) {
    match source {
        Source::Ok(()) => printer.mark(Mark::Ok, format!("{name}: answered")),
        Source::Unknown(why) => printer.mark(Mark::Warn, format!("{name}: unknown — {why}")),
        Source::NotUsed(why) => printer.mark(Mark::Skip, format!("{name}: not used — {why}")),
    }
}

/// The joined view as a table for people: `?` where a source is unknown, `-` where it answered
/// that there is nothing.
fn table(view: &StatusView) -> String {
    let pve_known = matches!(view.proxmox, Source::Ok(()));
    let kube_known = matches!(view.kubernetes, Source::Ok(()));
    let unknown = || "?".to_string();
    let none = || "-".to_string();
    let mut table = crate::table::new(&[
        "NODE",
        "ROLE",
        "VM ID",
        "PVE NODE",
        "VM",
        "K8S",
        "K8S ROLES",
        "KUBELET",
        "GPUS",
        "DRIFT",
    ]);
    for row in &view.nodes {
        let (pve_node, vm_status) = match (&row.proxmox, pve_known) {
            (Some(vm), _) => (vm.node.clone(), vm.status.clone()),
            (None, true) if row.vm_id.is_some() => (none(), "missing".into()),
            (None, true) => (none(), none()),
            (None, false) => (unknown(), unknown()),
        };
        let (ready, roles, kubelet, gpus) = match (&row.kubernetes, kube_known) {
            (Some(n), _) => (
                if n.ready {
                    "Ready".to_string()
                } else {
                    n.ready_text()
                },
                if n.roles.is_empty() {
                    none()
                } else {
                    n.roles.join(",")
                },
                n.kubelet_version.clone().unwrap_or_else(none),
                n.gpus_allocatable.map_or_else(none, |g| g.to_string()),
            ),
            (None, true) => ("missing".into(), none(), none(), none()),
            (None, false) => (unknown(), unknown(), unknown(), unknown()),
        };
        table.add_row(vec![
            row.name.clone(),
            row.role.map_or_else(none, |r| r.to_string()),
            row.vm_id.map_or_else(none, |id| id.to_string()),
            pve_node,
            vm_status,
            ready,
            roles,
            kubelet,
            gpus,
            if row.drift.is_empty() {
                none()
            } else {
                row.drift.join(", ")
            },
        ]);
    }
    crate::table::render(&table)
}
