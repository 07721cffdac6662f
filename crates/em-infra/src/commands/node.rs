//! `em-infra node replace NAME`: the plan, then the run (drain, provision with the node's
//! resources replaced, configure, verify) rendered like `up`.

use em_infra_core::config::Project;
use em_infra_core::engine::replace::{ReplaceOutcome, replace};

use crate::cli::NodeCommand;
use crate::output::Printer;

pub(crate) fn run(project: &Project, cmd: &NodeCommand, printer: &Printer) -> anyhow::Result<()> {
    let NodeCommand::Replace(args) = cmd;
    let frontend = crate::report::frontend(printer);
    match replace(project, &args.replace_options(), frontend.as_ref())? {
        ReplaceOutcome::Planned { node, addresses } => {
            printer.line(format!(
                "{node}: drain, delete its Node, then replace {}",
                addresses.join(", ")
            ));
            printer.hint("dry run: nothing was changed");
            Ok(())
        }
        ReplaceOutcome::Ran(report) => {
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
