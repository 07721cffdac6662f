//! `em-infra state backup|list|restore`: the library's Terraform state backups, rendered.

use em_infra_core::config::{Environment, Project};
use em_infra_core::engine::backup::{
    BackupInfo, BackupOutcome, CurrentState, KEEP_BACKUPS, backups_dir, list_backups, restore,
    take_backup,
};
use em_infra_core::engine::lock::EnvLock;

use crate::cli::StateCommand;
use crate::output::{Mark, Printer};

/// `em-infra state backup|list|restore`.
pub(crate) fn run(project: &Project, cmd: &StateCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        StateCommand::Backup { env } => {
            let env = project.environment(&env.env)?;
            let _lock = lock_for(&env, "state backup", printer)?;
            cli_backup(&env, printer)
        }
        StateCommand::List { env } => {
            let env = project.environment(&env.env)?;
            cli_list(&env, printer)
        }
        StateCommand::Restore { env, id, force } => {
            let env = project.environment(&env.env)?;
            let _lock = lock_for(&env, "state restore", printer)?;
            cli_restore(&env, id, *force, printer)
        }
    }
}

/// `state backup` and `state restore` must not race a run that applies or destroys, so they take
/// the environment's lock. A stale lock (a crashed run) does not block them — recovering from a
/// crash is what they are for — but it is named, then cleared.
fn lock_for(env: &Environment, command: &str, printer: &Printer) -> anyhow::Result<EnvLock> {
    let lock = EnvLock::acquire(&env.state_dir, command, true)?;
    if let Some(stale) = lock.cleared_stale() {
        printer.mark(Mark::Warn, format!("{}; cleared it", stale.description));
    }
    Ok(lock)
}

fn cli_backup(env: &Environment, printer: &Printer) -> anyhow::Result<()> {
    let outcome = take_backup(env, "manual")?;
    if printer.json_mode() {
        let (created, backup) = match &outcome {
            BackupOutcome::Created(b) => (true, Some(b)),
            BackupOutcome::Unchanged(b) => (false, Some(b)),
            BackupOutcome::NoState => (false, None),
        };
        return printer.stdout_json(&serde_json::json!({ "created": created, "backup": backup }));
    }
    match outcome {
        BackupOutcome::Created(b) => {
            if let Some(why) = &b.unreadable {
                printer.mark(
                    Mark::Warn,
                    format!(
                        "{} is not a readable Terraform state ({why}); kept as is",
                        env.tfstate().display()
                    ),
                );
            }
            printer.mark(
                Mark::Ok,
                format!(
                    "backed up {} as {} ({})",
                    env.tfstate().display(),
                    b.id,
                    describe(&b)
                ),
            );
            printer.hint(b.path.display().to_string());
        }
        BackupOutcome::Unchanged(b) => printer.mark(
            Mark::Skip,
            format!(
                "{} is unchanged since backup {}: nothing to do",
                env.tfstate().display(),
                b.id
            ),
        ),
        BackupOutcome::NoState => printer.mark(
            Mark::Skip,
            format!(
                "no state to back up: {} is missing or empty",
                env.tfstate().display()
            ),
        ),
    }
    Ok(())
}

fn cli_list(env: &Environment, printer: &Printer) -> anyhow::Result<()> {
    let backups = list_backups(env)?;
    if printer.json_mode() {
        return printer.stdout_json(&serde_json::to_value(&backups)?);
    }
    if backups.is_empty() {
        printer.line(format!(
            "no state backups for environment {} yet (they go to {})",
            env.name,
            backups_dir(env).display()
        ));
        return Ok(());
    }
    let mut table = crate::table::new(&[
        "id",
        "taken at (UTC)",
        "reason",
        "serial",
        "lineage",
        "size",
        "resources",
    ]);
    for b in &backups {
        table.add_row([
            b.id.clone(),
            b.taken_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            b.reason.clone(),
            b.serial
                .map_or_else(|| "unreadable".to_string(), |s| s.to_string()),
            b.lineage
                .as_deref()
                .map_or_else(|| "-".to_string(), short_lineage),
            human_size(b.size),
            b.resources
                .map_or_else(|| "-".to_string(), |r| r.to_string()),
        ]);
    }
    for col in [3, 5, 6] {
        if let Some(c) = table.column_mut(col) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    printer.stdout(crate::table::render(&table))?;
    printer.hint(format!(
        "{} (the newest {KEEP_BACKUPS} are kept)",
        backups_dir(env).display()
    ));
    Ok(())
}

fn cli_restore(env: &Environment, id: &str, force: bool, printer: &Printer) -> anyhow::Result<()> {
    let report = restore(env, id, force)?;
    if printer.json_mode() {
        return printer.stdout_json(&serde_json::to_value(&report)?);
    }
    if let CurrentState::Corrupt { reason } = &report.before {
        printer.mark(
            Mark::Warn,
            format!(
                "the current {} is corrupt ({reason}); restoring over it",
                report.target.display()
            ),
        );
    }
    for why in &report.overridden {
        printer.mark(Mark::Warn, format!("--force: {why}"));
    }
    if report.unchanged {
        printer.mark(
            Mark::Skip,
            format!(
                "{} already is backup {}: nothing to do",
                report.target.display(),
                report.id
            ),
        );
        return Ok(());
    }
    printer.mark(
        Mark::Ok,
        format!("restored {} over {}", report.id, report.target.display()),
    );
    let (serial_before, lineage_before) = match &report.before {
        CurrentState::Valid(m) => (m.serial.to_string(), short_lineage(&m.lineage)),
        CurrentState::Missing => ("none".to_string(), "none".to_string()),
        CurrentState::Corrupt { .. } => ("corrupt".to_string(), "corrupt".to_string()),
    };
    let lineage_after = short_lineage(&report.after.lineage);
    let same = if lineage_before == lineage_after {
        " (same)"
    } else {
        ""
    };
    printer.hint(format!(
        "serial {serial_before} → {}, lineage {lineage_before} → {lineage_after}{same}",
        report.after.serial
    ));
    if let Some(saved) = &report.pre_restore_backup {
        printer.hint(format!("the replaced state is saved as backup {saved}"));
    }
    Ok(())
}

/// `serial 7, lineage 1a2b3c4d, 12 resources`.
fn describe(b: &BackupInfo) -> String {
    match (b.serial, &b.lineage) {
        (Some(serial), Some(lineage)) => format!(
            "serial {serial}, lineage {}, {} resources",
            short_lineage(lineage),
            b.resources
                .map_or_else(|| "?".to_string(), |r| r.to_string())
        ),
        _ => "unreadable".to_string(),
    }
}

fn short_lineage(lineage: &str) -> String {
    lineage.chars().take(8).collect()
}

fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}
