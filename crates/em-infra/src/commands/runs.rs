//! `em-infra runs list|show|bundle`: the recorded runs, as tables for people or `--json`, and one
//! run's bug-report archive.

use std::path::Path;

use em_infra_core::config::{Environment, Project};
use em_infra_core::engine::bundle::{BundleOptions, bundle};
use em_infra_core::engine::runs::{
    RunEntry, RunSummary, SUMMARY_FILE, find_run, list_runs, live_holder, runs_dir,
};
use em_infra_core::failure::bad_input;
use serde::Serialize;

use crate::cli::RunsCommand;
use crate::output::{Mark, Printer};
use crate::report::mark_for_name;
use crate::table::{bar, first_line, fmt_duration, fmt_time, truncate};

/// Width of the duration bar in `runs show`, in terminal cells.
const BAR_WIDTH: usize = 24;

/// `em-infra runs list|show|bundle`.
pub(crate) fn run(project: &Project, cmd: &RunsCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        RunsCommand::List { env } => {
            let env = project.environment(&env.env)?;
            list(&env, printer)
        }
        RunsCommand::Show { env, id } => {
            let env = project.environment(&env.env)?;
            show(&env, id.as_deref(), printer)
        }
        RunsCommand::Bundle { env, id, output } => {
            let opts = BundleOptions {
                env: env.env.clone(),
                run_id: id.clone(),
                output: output.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            write_bundle(project, &opts, printer)
        }
    }
}

/// `runs bundle`: the archive's path on stdout (`--json`: with its files); what is in it and what
/// was left out on stderr.
fn write_bundle(project: &Project, opts: &BundleOptions, printer: &Printer) -> anyhow::Result<()> {
    let written = bundle(project, opts)?;
    if printer.json_mode() {
        let files: Vec<&str> = written.entries.iter().map(|e| e.name.as_str()).collect();
        return printer.stdout_json(&serde_json::json!({
            "bundle": written.path,
            "files": files,
        }));
    }
    let redacted = written.entries.iter().filter(|e| e.redacted).count();
    printer.mark(
        Mark::Ok,
        format!(
            "bundled run {}: {} files, secrets redacted (redaction changed {redacted} of them)",
            written.run_id,
            written.entries.len()
        ),
    );
    for left in &written.left_out {
        printer.hint(format!("not included: {}: {}", left.name, left.why));
    }
    printer.stdout(written.path.display().to_string())
}

/// One line of `runs list --json`.
#[derive(Debug, Serialize)]
struct ListItem<'a> {
    run_id: &'a str,
    dir: &'a Path,
    result: &'a str,
    command: Option<&'a str>,
    started_at: Option<jiff::Timestamp>,
    finished_at: Option<jiff::Timestamp>,
    duration_ms: Option<u64>,
    exit_code: Option<i32>,
    /// Why the run is incomplete.
    error: Option<&'a str>,
}

fn list(env: &Environment, printer: &Printer) -> anyhow::Result<()> {
    let runs = list_runs(&env.state_dir)?;
    let live = live_holder(env);
    if printer.json_mode() {
        let items: Vec<ListItem<'_>> = runs
            .iter()
            .map(|r| {
                let s = r.summary.as_ref().ok();
                let result = r.display_result(live.as_ref());
                ListItem {
                    run_id: &r.run_id,
                    dir: &r.dir,
                    result,
                    command: s.map(|s| s.command.as_str()),
                    started_at: s.map(|s| s.started_at),
                    finished_at: s.and_then(|s| s.finished_at),
                    duration_ms: s.map(RunSummary::total_ms),
                    exit_code: s.and_then(|s| s.exit_code),
                    error: match (&r.summary, result) {
                        (Err(e), _) => Some(e.as_str()),
                        (Ok(_), "incomplete") => Some("the run ended without recording its result"),
                        _ => None,
                    },
                }
            })
            .collect();
        return printer.stdout_json(&serde_json::to_value(items)?);
    }
    if runs.is_empty() {
        printer.line(format!(
            "no runs yet for environment {} (they are recorded in {})",
            env.name,
            runs_dir(&env.state_dir).display()
        ));
        return Ok(());
    }
    let mut table = crate::table::new(&[
        "run id",
        "command",
        "started (UTC)",
        "result",
        "duration",
        "note",
    ]);
    for r in &runs {
        let result = r.display_result(live.as_ref());
        match &r.summary {
            Ok(s) => {
                let note = match (result, s.failing_stage()) {
                    ("incomplete", _) => format!("ended without a result: {}", r.dir.display()),
                    (_, Some(f)) => {
                        format!("{}: {}", f.stage, first_line(&f.message))
                    }
                    _ => String::new(),
                };
                let duration = if s.finished_at.is_some() || !s.stages.is_empty() {
                    fmt_duration(s.total_ms())
                } else {
                    "-".to_string()
                };
                table.add_row([
                    r.run_id.clone(),
                    s.command.clone(),
                    fmt_time(s.started_at),
                    result.to_string(),
                    duration,
                    truncate(&note, 70),
                ]);
            }
            Err(_) => {
                table.add_row([
                    r.run_id.clone(),
                    "-".into(),
                    "-".into(),
                    result.to_string(),
                    "-".into(),
                    format!("no readable {SUMMARY_FILE}: {}", r.dir.display()),
                ]);
            }
        }
    }
    printer.stdout(crate::table::render(&table))?;
    Ok(())
}

fn show(env: &Environment, id: Option<&str>, printer: &Printer) -> anyhow::Result<()> {
    let runs = list_runs(&env.state_dir)?;
    let entry = match id {
        Some(id) => find_run(&runs, id, env)?,
        None => runs.first().ok_or_else(|| {
            bad_input(format!(
                "no runs yet for environment {} (in {}); start one with `em-infra up`",
                env.name,
                runs_dir(&env.state_dir).display()
            ))
        })?,
    };
    let summary = match &entry.summary {
        Ok(s) => s,
        Err(why) => return show_incomplete(entry, why, printer),
    };
    if printer.json_mode() {
        return printer.stdout_json(&serde_json::to_value(summary)?);
    }
    let result = entry.display_result(live_holder(env).as_ref());

    let mut out = String::new();
    out.push_str(&format!(
        "run       {}  (em-infra {}, env {})\n",
        summary.run_id, summary.command, summary.env
    ));
    out.push_str(&format!("started   {} UTC\n", fmt_time(summary.started_at)));
    match summary.finished_at {
        Some(end) => out.push_str(&format!(
            "finished  {} UTC  after {}\n",
            fmt_time(end),
            fmt_duration(summary.total_ms())
        )),
        None => out.push_str("finished  -\n"),
    }
    let exit = summary
        .exit_code
        .map(|c| format!(" (exit {c})"))
        .unwrap_or_default();
    out.push_str(&format!("result    {result}{exit}\n"));
    out.push_str(&format!("records   {}\n", entry.dir.display()));

    let longest = summary
        .stages
        .iter()
        .filter_map(|s| s.duration_ms)
        .max()
        .unwrap_or(0);
    let mut table = crate::table::new(&["", "stage", "result", "duration", "", "log"]);
    for s in &summary.stages {
        let log = match &s.log {
            Some(name) => {
                let path = entry.dir.join(name);
                if path.exists() {
                    path.display().to_string()
                } else {
                    format!("{} (missing)", path.display())
                }
            }
            None => "-".to_string(),
        };
        table.add_row([
            mark_for_name(&s.result).symbol().to_string(),
            s.stage.clone(),
            s.result.clone(),
            s.duration_ms.map_or_else(|| "-".to_string(), fmt_duration),
            s.duration_ms
                .map(|d| bar(d, longest, BAR_WIDTH))
                .unwrap_or_default(),
            log,
        ]);
    }
    if let Some(col) = table.column_mut(3) {
        col.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    printer.stdout(out.trim_end())?;
    printer.stdout("")?;
    if summary.stages.is_empty() {
        printer.stdout("no stage recorded")?;
    } else {
        printer.stdout(crate::table::render(&table))?;
    }
    if let Some(failed) = summary.failing_stage() {
        printer.stdout("")?;
        printer.stdout(format!("{} {}:", failed.stage, failed.result))?;
        for line in failed.message.lines() {
            printer.stdout(format!("  {line}"))?;
        }
    }
    if result == "incomplete" {
        printer.mark(
            Mark::Warn,
            "this run ended without recording its result (killed or crashed); `em-infra up --resume` continues it",
        );
    }
    Ok(())
}

/// `runs show` of a run without a readable summary: say so, and point at what is there.
fn show_incomplete(entry: &RunEntry, why: &str, printer: &Printer) -> anyhow::Result<()> {
    let mut files: Vec<String> = fs_err::read_dir(&entry.dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    if printer.json_mode() {
        return printer.stdout_json(&serde_json::json!({
            "run_id": entry.run_id,
            "dir": entry.dir,
            "result": "incomplete",
            "error": why,
            "files": files,
        }));
    }
    printer.stdout(format!("run       {}", entry.run_id))?;
    printer.stdout("result    incomplete")?;
    printer.stdout(format!("records   {}", entry.dir.display()))?;
    printer.stdout(format!("why       {why}"))?;
    if !files.is_empty() {
        printer.stdout(format!("files     {}", files.join(", ")))?;
    }
    Ok(())
}
