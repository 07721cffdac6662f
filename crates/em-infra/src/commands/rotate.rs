//! `em-infra rotate-ssh-key --key PATH [--yes] [--dry-run]`: the plan (`--dry-run`), or the run
//! rendered as it goes, then what the user must change to use the new key.

use em_infra_core::config::Project;
use em_infra_core::rotate::{self, RotateOptions};

use crate::cli::RotateSshKeyArgs;
use crate::output::{Mark, Printer};

pub(crate) fn run(
    project: &Project,
    args: &RotateSshKeyArgs,
    printer: &Printer,
) -> anyhow::Result<()> {
    let opts = RotateOptions {
        env: args.env.env.clone(),
        key: args.key.clone(),
        yes: args.yes,
        clear_stale_lock: args.clear_stale_lock,
    };
    let plan = rotate::plan(project, &opts)?;
    if args.dry_run {
        printer.heading(format!(
            "rotate-ssh-key {} (dry run: nothing changed)",
            plan.env.name
        ));
        printer.line(format!(
            "  key of {}: {} → {} ({})",
            plan.ssh_user,
            plan.old_key.short(),
            plan.new_key.short(),
            plan.new_private.display()
        ));
        for (name, ip) in &plan.nodes {
            printer.line(format!(
                "  would install, prove and remove the old key on {name} ({ip})"
            ));
        }
        let diff = plan.tfvars_diff();
        if diff.is_empty() {
            printer.line(format!(
                "  {} already names {}",
                plan.tfvars.display(),
                plan.tfvars_after
            ));
        } else {
            printer.line(format!("  {}:", plan.tfvars.display()));
            for line in diff.lines() {
                printer.line(format!("    {line}"));
            }
        }
        if printer.json_mode() {
            printer.stdout_json(&serde_json::json!({
                "env": plan.env.name,
                "dry_run": true,
                "nodes": plan.nodes.iter().map(|(n, ip)| serde_json::json!({"name": n, "ip": ip})).collect::<Vec<_>>(),
                "old_key": plan.old_key.line(),
                "new_key": plan.new_key.line(),
                "tfvars": plan.tfvars,
                "tfvars_diff": diff,
            }))?;
        }
        return Ok(());
    }
    let frontend = crate::report::frontend(printer);
    let report = rotate::rotate(project, &plan, &opts, frontend.as_ref())?;
    crate::report::run_summary(printer, &report.summary, &report.dir)?;
    if report.failure.is_none() {
        printer.mark(
            Mark::Ok,
            format!(
                "every node accepts {} and no longer the old key",
                plan.new_private.display()
            ),
        );
        if let Some(step) = plan.next_step() {
            printer.line(format!("next: {step}"));
        }
    }
    report.into_result()
}
