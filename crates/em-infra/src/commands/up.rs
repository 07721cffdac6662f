//! `em-infra up`, `down` and `reset`: the engine's runs, rendered as they go and summarised at
//! the end.

use em_infra_core::config::Project;
use em_infra_core::engine::{self, RunReport};

use crate::cli::{DownArgs, ResetArgs, RunArgs};
use crate::output::Printer;

pub(crate) fn up(project: &Project, args: &RunArgs, printer: &Printer) -> anyhow::Result<()> {
    let frontend = crate::report::frontend(printer);
    match engine::up(project, &args.up_options(), frontend.as_ref())? {
        Some(report) => finish(printer, report),
        None => {
            printer.line("nothing to resume: the last run finished every stage it started");
            Ok(())
        }
    }
}

pub(crate) fn down(project: &Project, args: &DownArgs, printer: &Printer) -> anyhow::Result<()> {
    let frontend = crate::report::frontend(printer);
    finish(
        printer,
        engine::down(project, &args.down_options(), frontend.as_ref())?,
    )
}

/// `down`, then (when it succeeded) `up`.
pub(crate) fn reset(project: &Project, args: &ResetArgs, printer: &Printer) -> anyhow::Result<()> {
    let frontend = crate::report::frontend(printer);
    finish(
        printer,
        engine::down(project, &args.down_options(), frontend.as_ref())?,
    )?;
    up(project, &args.run, printer)
}

/// The run's table (and `--json` summary), then its failure as this command's result.
fn finish(printer: &Printer, report: RunReport) -> anyhow::Result<()> {
    crate::report::run_summary(printer, &report.summary, &report.dir)?;
    report.into_result()
}
