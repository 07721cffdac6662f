//! `em-infra scale --workers N`: the plan, then the run (drain, tfvars, provision, configure,
//! verify) rendered like `up`.

use em_infra_core::config::Project;
use em_infra_core::engine::scale::{ScaleOutcome, ScalePlan, scale};

use crate::cli::ScaleArgs;
use crate::output::{Mark, Printer};

pub(crate) fn run(project: &Project, args: &ScaleArgs, printer: &Printer) -> anyhow::Result<()> {
    let frontend = crate::report::frontend(printer);
    match scale(project, &args.scale_options(), frontend.as_ref())? {
        ScaleOutcome::Unchanged(plan) => {
            printer.mark(
                Mark::Ok,
                format!(
                    "the cluster has {} workers already: nothing to change",
                    plan.to
                ),
            );
            Ok(())
        }
        ScaleOutcome::Planned(plan) => {
            describe(printer, &plan);
            printer.hint("dry run: nothing was changed");
            Ok(())
        }
        ScaleOutcome::Ran(plan, report) => {
            describe(printer, &plan);
            crate::report::run_summary(printer, &report.summary, &report.dir)?;
            if report.failure.is_some() {
                printer.hint(
                    "the cluster keeps serving; fix the cause, then continue with `em-infra up --resume`",
                );
            }
            report.into_result()
        }
    }
}

fn describe(printer: &Printer, plan: &ScalePlan) {
    printer.line(format!("workers: {} → {}", plan.from, plan.to));
    if !plan.added.is_empty() {
        printer.line(format!("  create and join: {}", plan.added.join(", ")));
    }
    if !plan.removed.is_empty() {
        printer.line(format!(
            "  drain, delete from Kubernetes and destroy: {}",
            plan.removed.join(", ")
        ));
    }
}
