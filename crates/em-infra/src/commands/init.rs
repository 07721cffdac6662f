//! `em-infra init`: the environment's terraform.tfvars from its example and the Proxmox host;
//! prints what it set and where each value came from.

use em_infra_core::config::Project;

use crate::cli::InitArgs;
use crate::output::{Mark, Printer};

pub(crate) fn run(project: &Project, args: &InitArgs, printer: &Printer) -> anyhow::Result<()> {
    let frontend = crate::report::frontend(printer);
    let report = em_infra_core::init::init(project, &args.init_options(), frontend.as_ref())?;
    let shown = report
        .tfvars
        .strip_prefix(&project.root)
        .unwrap_or(&report.tfvars)
        .display()
        .to_string();
    if printer.json_mode() {
        let values: Vec<serde_json::Value> = report
            .values
            .iter()
            .map(
                |(k, v, o)| serde_json::json!({ "variable": k, "value": v, "from": o.to_string() }),
            )
            .collect();
        printer.stdout_json(&serde_json::json!({
            "tfvars": report.tfvars,
            "backup": report.backup,
            "values": values,
            "notes": report.notes,
        }))?;
        return Ok(());
    }
    let mut table = crate::table::new(&["VARIABLE", "VALUE", "FROM"]);
    for (variable, value, origin) in &report.values {
        table.add_row([variable.clone(), value.clone(), origin.to_string()]);
    }
    printer.stdout(crate::table::render(&table))?;
    for note in &report.notes {
        printer.mark(Mark::Warn, note);
    }
    if let Some(backup) = &report.backup {
        printer.hint(format!("the previous file is kept as {}", backup.display()));
    }
    printer.mark(
        Mark::Ok,
        format!(
            "wrote {shown} (the example's comments kept; every other value is the example's); it \
             passes `em-infra check`. Next: `em-infra doctor`, then `em-infra up`"
        ),
    );
    Ok(())
}
