//! `em-infra check`: the library's static checks, rendered; any finding is bad input.

use em_infra_core::config::Project;
use em_infra_core::config::check::{check_environment, nodes_table};
use em_infra_core::failure::bad_input;

use crate::cli::CheckArgs;
use crate::output::{Mark, Printer};

/// `em-infra check [--env NAME|DIR] [--tfvars FILE]`.
pub(crate) fn run(project: &Project, args: &CheckArgs, printer: &Printer) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    let report = check_environment(project, &env, args.tfvars.as_deref())?;
    let tfvars_shown = report
        .tfvars
        .strip_prefix(&project.root)
        .unwrap_or(&report.tfvars)
        .display()
        .to_string();

    if printer.json_mode() {
        printer.stdout_json(&report.to_json())?;
    } else {
        for f in &report.findings {
            printer.mark(Mark::Fail, f.to_string());
            printer.hint(format!("fix: {}", f.fix));
        }
        if report.ok() {
            printer.mark(
                Mark::Ok,
                format!("Terraform wiring of {} and the modules it calls", env.name),
            );
            printer.mark(
                Mark::Ok,
                format!("{tfvars_shown}: every contract rule holds"),
            );
            printer.line("");
            printer.stdout(nodes_table(&report.nodes))?;
            printer.line("");
            printer.mark(
                Mark::Ok,
                format!(
                    "{} nodes would be created; nothing was changed",
                    report.nodes.len()
                ),
            );
        }
    }
    if report.ok() {
        Ok(())
    } else {
        let n = report.findings.len();
        Err(bad_input(format!(
            "check found {n} problem{} in {} or the Terraform code of {}; nothing was changed",
            if n == 1 { "" } else { "s" },
            tfvars_shown,
            env.name
        )))
    }
}
