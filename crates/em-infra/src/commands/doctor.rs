//! `em-infra doctor`: every check, rendered by group (or `--json`); any ✗ is a preflight failure.
//! `--print-role 8|9` prints the `pveum` commands of the role the privilege check expects.

use em_infra_core::config::Project;
use em_infra_core::doctor::{DoctorReport, Status, checks, standalone_exec};
use em_infra_core::failure::Failure;
use em_infra_core::proxmox::privileges::{self, Release};
use serde_json::json;

use crate::cli::DoctorArgs;
use crate::output::Printer;

/// `em-infra doctor [--env NAME|DIR] [--tfvars FILE] [--json]`.
pub(crate) fn run(project: &Project, args: &DoctorArgs, printer: &Printer) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    let report = checks(
        project,
        &env,
        args.tfvars.as_deref(),
        None,
        &mut standalone_exec,
    )?;
    if printer.json_mode() {
        printer.stdout_json(&report.to_json())?;
    } else {
        render(&report, printer);
    }
    if report.failed() {
        let n = report.count(Status::Fail);
        Err(Failure::Preflight(format!(
            "doctor found {n} problem{}; each ✗ names its fix",
            if n == 1 { "" } else { "s" }
        ))
        .into())
    } else {
        Ok(())
    }
}

/// `em-infra doctor --print-role 8|9`: the role, user and token commands on stdout (as
/// docs/runbooks.md shows them), or with `--json` also every requirement of that release.
pub(crate) fn print_role(args: &DoctorArgs, printer: &Printer) -> anyhow::Result<()> {
    let release = Release::from_major(args.print_role);
    let commands = privileges::pveum_commands(release);
    if !printer.json_mode() {
        return printer.stdout_raw(commands.as_bytes());
    }
    let requirements: Vec<_> = privileges::for_release(release)
        .map(|r| {
            json!({
                "privilege": r.privilege,
                "or": r.or,
                "path": r.target.template(),
                "when": r.when,
                "why": r.why,
            })
        })
        .collect();
    printer.stdout_json(&json!({
        "pve": release.major(),
        "role": privileges::ROLE,
        "commands": commands,
        "requirements": requirements,
    }))
}

/// Human rendering on stderr: a heading per group, one marked line per check, `fix:` hints.
fn render(report: &DoctorReport, printer: &Printer) {
    let mut group = None;
    for check in &report.checks {
        if group != Some(check.group) {
            if group.is_some() {
                printer.line("");
            }
            printer.heading(check.group.as_str());
            group = Some(check.group);
        }
        printer.mark(check.status, format!("{}: {}", check.name, check.detail));
        if let Some(fix) = &check.fix
            && matches!(check.status, Status::Fail | Status::Warn)
        {
            printer.hint(format!("fix: {fix}"));
        }
    }
    printer.line("");
    printer.line(format!("doctor: {}", report.summary()));
}
