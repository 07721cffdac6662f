//! `em-infra kubeconfig [--merge] [--context NAME]`: the path of the cluster's kubeconfig on
//! stdout, or its context merged into the user's kubeconfig.

use em_infra_core::config::Project;
use em_infra_core::failure::bad_input;
use em_infra_core::kube::kubeconfig::{self, MergeOutcome};

use crate::cli::KubeconfigArgs;
use crate::output::{Mark, Printer};

pub(crate) fn run(
    project: &Project,
    args: &KubeconfigArgs,
    printer: &Printer,
) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    let source = env.kubeconfig();
    if !source.is_file() {
        return Err(bad_input(format!(
            "no kubeconfig at {} yet: configure writes it (`em-infra up --only configure`)",
            source.display()
        )));
    }
    if !args.merge {
        return printer.stdout(source.display().to_string());
    }
    let target = kubeconfig::default_target()?;
    let context = args.context.clone().unwrap_or_else(|| env.name.clone());
    match kubeconfig::merge(&source, &target, &context)? {
        MergeOutcome::Unchanged => printer.mark(
            Mark::Ok,
            format!(
                "{} already holds context {context}: nothing changed",
                target.display()
            ),
        ),
        MergeOutcome::Merged { backup } => {
            printer.mark(
                Mark::Ok,
                format!("context {context} merged into {}", target.display()),
            );
            if let Some(backup) = backup {
                printer.hint(format!("the previous file is kept as {}", backup.display()));
            }
            printer.hint(format!("use it: kubectl --context {context} get nodes"));
        }
    }
    Ok(())
}
