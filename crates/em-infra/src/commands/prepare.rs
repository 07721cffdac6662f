//! `em-infra prepare [--env NAME|DIR] [--refresh]`: the template play outside a run. With
//! `--json`, stdout is the template result (or null).

use em_infra_core::config::topology::{self, Inputs};
use em_infra_core::config::{Environment, Project};
use em_infra_core::failure::bad_input;
use em_infra_core::prepare::{self, Progress};

use crate::cli::PrepareArgs;
use crate::output::{Mark, Printer};

pub(crate) fn run(project: &Project, args: &PrepareArgs, printer: &Printer) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    let inputs = load_inputs(project, &env, printer)?;
    let result = prepare::run(
        project,
        &env,
        &inputs,
        args.refresh,
        &mut |progress| match progress {
            Progress::Started { log } => printer.heading(format!(
                "Preparing template {} on {} (log: {})",
                inputs.template_vm_id,
                inputs.proxmox_node,
                log.display()
            )),
            Progress::Task(task) => printer.line(format!("  {task}")),
        },
    )?;
    if printer.json_mode() {
        printer.stdout_json(&serde_json::to_value(&result)?)?;
    }
    match result {
        Some(result) => {
            let mark = if result.newer_available() {
                Mark::Warn
            } else {
                Mark::Ok
            };
            printer.mark(
                mark,
                format!("template {}: {}", result.vm_id, result.message),
            );
            if result.needs_tfvars_update() {
                printer.hint(format!(
                    "next: set template_vm_id = {} in {}, then em-infra up",
                    result.vm_id,
                    env.default_tfvars().display()
                ));
            }
        }
        None => printer.mark(Mark::Warn, "the play finished without reporting a result"),
    }
    Ok(())
}

/// The validated tfvars inputs of `env`; findings are shown, then bad input (the same rules as
/// `check`).
fn load_inputs(project: &Project, env: &Environment, printer: &Printer) -> anyhow::Result<Inputs> {
    let loaded = topology::load(env, None)?;
    if let Some(inputs) = loaded.inputs.filter(|_| loaded.findings.is_empty()) {
        return Ok(inputs);
    }
    for f in &loaded.findings {
        let f = f.clone().relative_to(&project.root);
        printer.mark(Mark::Fail, f.to_string());
        printer.hint(format!("fix: {}", f.fix));
    }
    Err(bad_input(format!(
        "{} problem(s) in {}: fix them (em-infra check --env {}) before preparing the template",
        loaded.findings.len().max(1),
        loaded
            .tfvars
            .strip_prefix(&project.root)
            .unwrap_or(&loaded.tfvars)
            .display(),
        env.name
    )))
}
