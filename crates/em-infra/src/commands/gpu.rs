//! `em-infra gpu add --mapping M` / `gpu remove NAME`: the checked change, then the run rendered
//! like `up`.

use em_infra_core::config::Project;
use em_infra_core::engine::gpu::{GpuOutcome, gpu};

use crate::cli::GpuCommand;
use crate::output::Printer;

pub(crate) fn run(project: &Project, cmd: &GpuCommand, printer: &Printer) -> anyhow::Result<()> {
    let frontend = crate::report::frontend(printer);
    match gpu(project, &cmd.gpu_options(), frontend.as_ref())? {
        GpuOutcome::Planned { node } => {
            let what = match cmd {
                GpuCommand::Add { .. } => "would be created",
                GpuCommand::Remove { .. } => {
                    "would be drained, deleted from Kubernetes and destroyed"
                }
            };
            printer.line(format!("{node} {what}; the checks passed"));
            printer.hint("dry run: nothing was changed");
            Ok(())
        }
        GpuOutcome::Ran { node, report } => {
            printer.line(format!("GPU worker {node}"));
            crate::report::run_summary(printer, &report.summary, &report.dir)?;
            if report.failure.is_some() {
                printer.hint(
                    "the rest of the cluster keeps serving; fix the cause, then continue with `em-infra up --resume`",
                );
            }
            report.into_result()
        }
    }
}
