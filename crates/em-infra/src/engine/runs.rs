//! Past runs: the `summary.json` record every run writes, and `em-infra runs list|show`.
//!
//! A run lives in `<state_dir>/runs/<run-id>/`. Its `summary.json` ([`RunSummary`], schema 1) is
//! rewritten atomically as the run goes, so after a crash it still says how far the run got. A run
//! directory without a readable `summary.json` (killed before the first write, disk full, edited
//! by hand) is listed as `incomplete` with its path, never an error.
//!
//! `result` values are plain strings so that a newer em-infra's records stay readable:
//! see [`run_result`] and [`stage_result`] for the names this version writes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::RunsCommand;
use crate::config::{Environment, Project};
use crate::engine::Stage;
use crate::engine::lock;
use crate::exit::bad_input;
use crate::output::{Mark, Printer};

/// The `schema` this version writes.
pub const SUMMARY_SCHEMA: u32 = 1;
/// The summary's file name inside a run directory.
pub const SUMMARY_FILE: &str = "summary.json";
/// How many run ids an "unknown run" error suggests.
const SUGGESTED_IDS: usize = 5;
/// Width of the duration bar in `runs show`, in terminal cells.
const BAR_WIDTH: usize = 24;

/// Values of [`RunSummary::result`].
pub mod run_result {
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const INTERRUPTED: &str = "interrupted";
    pub const REFUSED: &str = "refused";
    pub const DRY_RUN: &str = "dry-run";
    /// Still running — or the process died before writing its result (see `runs list`).
    pub const RUNNING: &str = "running";
}

/// Values of [`StageRecord::result`].
pub mod stage_result {
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const INTERRUPTED: &str = "interrupted";
    pub const SKIPPED: &str = "skipped";
    /// `--dry-run`: what would run.
    pub const PLANNED: &str = "planned";
    pub const REFUSED: &str = "refused";
    /// Started and not finished yet (or the run died during it).
    pub const RUNNING: &str = "running";
}

/// `runs/<run-id>/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// [`SUMMARY_SCHEMA`].
    pub schema: u32,
    /// `20261126T050102.123Z-1a2b`: UTC start to the millisecond, sortable, plus a short random suffix.
    pub run_id: String,
    /// Environment name (`k3s-dev`).
    pub env: String,
    /// The command after `em-infra`: `up`, `up --dry-run`, `down`, `reset`.
    pub command: String,
    pub started_at: jiff::Timestamp,
    /// `null` while running.
    #[serde(default)]
    pub finished_at: Option<jiff::Timestamp>,
    /// One of [`run_result`].
    pub result: String,
    /// em-infra's exit code; `null` while running.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// In execution order; one record per stage (or pseudo-stage such as `destroy`).
    #[serde(default)]
    pub stages: Vec<StageRecord>,
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// A [`Stage`] name, or a pseudo-stage such as `destroy` (`em-infra down`).
    pub stage: String,
    /// One of [`stage_result`].
    pub result: String,
    /// `null` for a stage that never started (skipped, planned, not reached).
    #[serde(default)]
    pub started_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// em-infra's exit code for a failed stage (4 = a tool failed, 5 = refused, 130 = interrupted).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// What happened, in a sentence or a few lines (for a failure: the reason and the log's tail).
    #[serde(default)]
    pub message: String,
    /// The stage's log file name, relative to the run directory (`preflight.log`).
    #[serde(default)]
    pub log: Option<String>,
}

/// Whole-millisecond precision keeps the records readable.
fn now_ms() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

impl RunSummary {
    /// A run that starts now, result `running`, no stages yet.
    pub fn new(run_id: &str, env: &str, command: &str) -> Self {
        RunSummary {
            schema: SUMMARY_SCHEMA,
            run_id: run_id.to_string(),
            env: env.to_string(),
            command: command.to_string(),
            started_at: now_ms(),
            finished_at: None,
            result: run_result::RUNNING.to_string(),
            exit_code: None,
            stages: Vec::new(),
        }
    }

    /// Mark the run finished now with `result` (one of [`run_result`]) and em-infra's exit code.
    pub fn finish(&mut self, result: &str, exit_code: u8) {
        self.finished_at = Some(now_ms());
        self.result = result.to_string();
        self.exit_code = Some(i32::from(exit_code));
    }

    /// Wall-clock duration: `finished_at - started_at` once finished, else the sum of the
    /// recorded stage durations (what is known of a run that is still going or died).
    pub fn total_ms(&self) -> u64 {
        match self.finished_at {
            Some(end) => {
                u64::try_from(end.as_millisecond() - self.started_at.as_millisecond()).unwrap_or(0)
            }
            None => self.stages.iter().filter_map(|s| s.duration_ms).sum(),
        }
    }

    /// Replace the record of the same stage, or append.
    pub fn record_stage(&mut self, record: StageRecord) {
        match self.stages.iter_mut().find(|s| s.stage == record.stage) {
            Some(existing) => *existing = record,
            None => self.stages.push(record),
        }
    }

    /// The first stage that failed, was refused or interrupted.
    pub fn failing_stage(&self) -> Option<&StageRecord> {
        self.stages.iter().find(|s| {
            matches!(
                s.result.as_str(),
                stage_result::FAILED | stage_result::REFUSED | stage_result::INTERRUPTED
            )
        })
    }

    /// Read `<run_dir>/summary.json`.
    pub fn load(run_dir: &Path) -> anyhow::Result<Self> {
        let path = run_dir.join(SUMMARY_FILE);
        let text = fs_err::read_to_string(&path)?;
        let summary: RunSummary = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a valid run summary: {e}", path.display()))?;
        Ok(summary)
    }

    /// Write `<run_dir>/summary.json` atomically (0600).
    pub fn save(&self, run_dir: &Path) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        crate::fsutil::write_secret(&run_dir.join(SUMMARY_FILE), &bytes)
    }
}

impl StageRecord {
    /// A stage that ran: `result` is one of [`stage_result`]; the log is `<stage>.log`.
    pub fn finished(
        stage: Stage,
        result: &str,
        started_at: jiff::Timestamp,
        duration_ms: u64,
        exit_code: Option<i32>,
        message: &str,
    ) -> Self {
        StageRecord {
            stage: stage.name().to_string(),
            result: result.to_string(),
            started_at: Some(started_at),
            duration_ms: Some(duration_ms),
            exit_code,
            message: message.to_string(),
            log: Some(format!("{}.log", stage.name())),
        }
    }

    /// A selected stage the run never reached because an earlier one did not succeed.
    pub fn not_reached(stage: Stage) -> Self {
        StageRecord {
            stage: stage.name().to_string(),
            result: stage_result::SKIPPED.to_string(),
            started_at: None,
            duration_ms: None,
            exit_code: None,
            message: "not reached: an earlier stage did not succeed".to_string(),
            log: None,
        }
    }

    /// A stage a `--dry-run` would run.
    pub fn planned(stage: Stage, message: &str) -> Self {
        StageRecord {
            stage: stage.name().to_string(),
            result: stage_result::PLANNED.to_string(),
            started_at: None,
            duration_ms: None,
            exit_code: None,
            message: message.to_string(),
            log: None,
        }
    }
}

/// A run directory and what could be read from it.
#[derive(Debug, Clone)]
pub struct RunEntry {
    pub run_id: String,
    pub dir: PathBuf,
    /// The summary, or why it could not be read.
    pub summary: Result<RunSummary, String>,
}

impl RunEntry {
    /// The result to show: the summary's; `incomplete` without one; and `incomplete` for a
    /// `running` summary unless a live process holds the environment's lock and took it before
    /// this run started (otherwise the run's process died before writing its result).
    pub fn display_result(&self, holder: Option<&lock::LockHolder>) -> &str {
        match &self.summary {
            Err(_) => "incomplete",
            Ok(s)
                if s.result == run_result::RUNNING
                    && holder.is_none_or(|h| h.started_at > s.started_at) =>
            {
                "incomplete"
            }
            Ok(s) => &s.result,
        }
    }
}

/// `<state_dir>/runs`.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

/// Every run directory under `<state_dir>/runs`, newest first (run ids start with their UTC
/// start time, so name order is time order). A missing `runs/` is an empty list.
pub fn list_runs(state_dir: &Path) -> anyhow::Result<Vec<RunEntry>> {
    let dir = runs_dir(state_dir);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut entries = Vec::new();
    for entry in fs_err::read_dir(&dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Ok(run_id) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let summary = match RunSummary::load(&path) {
            Ok(s) => Ok(s),
            Err(_) if !path.join(SUMMARY_FILE).exists() => Err(format!(
                "no {SUMMARY_FILE}: the run ended before writing it"
            )),
            Err(e) => Err(format!("{e:#}")),
        };
        entries.push(RunEntry {
            run_id,
            dir: path,
            summary,
        });
    }
    entries.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    Ok(entries)
}

/// Find a run by exact id or unique prefix; unknown or ambiguous ids are bad input naming the
/// newest ids.
pub fn find_run<'a>(
    runs: &'a [RunEntry],
    id: &str,
    env: &Environment,
) -> anyhow::Result<&'a RunEntry> {
    if let Some(exact) = runs.iter().find(|r| r.run_id == id) {
        return Ok(exact);
    }
    let matches: Vec<&RunEntry> = if id.is_empty() {
        Vec::new()
    } else {
        runs.iter().filter(|r| r.run_id.starts_with(id)).collect()
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let newest: Vec<&str> = runs
                .iter()
                .take(SUGGESTED_IDS)
                .map(|r| r.run_id.as_str())
                .collect();
            let known = if newest.is_empty() {
                "there are no runs yet".to_string()
            } else {
                format!("newest: {}", newest.join(", "))
            };
            Err(bad_input(format!(
                "no run {id:?} for environment {} (in {}); {known} — see `em-infra runs list`",
                env.name,
                runs_dir(&env.state_dir).display()
            )))
        }
        many => Err(bad_input(format!(
            "run id {id:?} is ambiguous: it starts {} runs ({}); give more of it",
            many.len(),
            many.iter()
                .map(|r| r.run_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `em-infra runs list|show`.
pub fn run(project: &Project, cmd: &RunsCommand, printer: &Printer) -> anyhow::Result<()> {
    match cmd {
        RunsCommand::List { env } => {
            let env = project.environment(&env.env)?;
            list(&env, printer)
        }
        RunsCommand::Show { env, id } => {
            let env = project.environment(&env.env)?;
            show(&env, id.as_deref(), printer)
        }
    }
}

/// The environment's lock holder when it is a live process (then a `running` summary may be real).
fn live_holder(env: &Environment) -> Option<lock::LockHolder> {
    lock::read_holder(&env.state_dir).filter(lock::holder_is_alive)
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
        let items: Vec<ListItem> = runs
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
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING).set_header([
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
                        format!("{}: {}", f.stage, crate::report::first_line(&f.message))
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
    printer.stdout(render_table(&table))?;
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
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(["", "stage", "result", "duration", "", "log"]);
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
            mark_for(&s.result).symbol().to_string(),
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
        printer.stdout(render_table(&table))?;
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

fn mark_for(result: &str) -> Mark {
    match result {
        stage_result::SUCCEEDED => Mark::Ok,
        stage_result::SKIPPED | stage_result::PLANNED | stage_result::RUNNING => Mark::Skip,
        stage_result::INTERRUPTED | stage_result::REFUSED => Mark::Warn,
        _ => Mark::Fail,
    }
}

/// `2026-11-26 05:01:02` (UTC).
fn fmt_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// `850ms`, `12.3s`, `4m05s`, `1h02m`.
pub fn fmt_duration(ms: u64) -> String {
    let secs = ms / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if secs < 60 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// A horizontal bar of `value` scaled so that `max` fills `width` cells, in eighths of a cell.
/// A non-zero value always shows at least a sliver.
pub fn bar(value: u64, max: u64, width: usize) -> String {
    const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    if max == 0 || value == 0 || width == 0 {
        return String::new();
    }
    let eighths =
        (u128::from(value.min(max)) * (width as u128) * 8 + u128::from(max) / 2) / u128::from(max);
    let eighths = usize::try_from(eighths).unwrap_or(width * 8).max(1);
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTIAL[eighths % 8]);
    s
}

/// A borderless table without the padding's leading column and trailing blanks.
pub fn render_table(table: &comfy_table::Table) -> String {
    let text = table.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let strip = lines.iter().all(|l| l.is_empty() || l.starts_with(' '));
    lines
        .iter()
        .map(|l| {
            if strip {
                l.strip_prefix(' ').unwrap_or(l)
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_scales_to_the_longest_in_eighths() {
        assert_eq!(bar(100, 100, 4), "████");
        assert_eq!(bar(50, 100, 4), "██");
        assert_eq!(bar(1, 100, 4), "▏", "a non-zero value is always visible");
        assert_eq!(bar(0, 100, 4), "");
        assert_eq!(bar(5, 0, 4), "");
        // 3/8 of one cell
        assert_eq!(bar(3, 32, 4), "▍");
        assert_eq!(bar(9, 32, 4), "█▏");
        // Never longer than the width.
        assert_eq!(bar(200, 100, 3).chars().count(), 3);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_duration(850), "850ms");
        assert_eq!(fmt_duration(12_345), "12.3s");
        assert_eq!(fmt_duration(245_000), "4m05s");
        assert_eq!(fmt_duration(3_720_000), "1h02m");
    }

    #[test]
    fn summary_round_trips_the_documented_schema() {
        let text = r#"{"schema": 1, "run_id": "20261126T050102Z-1a2b", "env": "k3s-dev", "command": "up",
            "started_at": "2026-11-26T05:01:02Z", "finished_at": null, "result": "running", "exit_code": null,
            "stages": [{"stage": "preflight", "result": "succeeded", "started_at": "2026-11-26T05:01:02Z",
                        "duration_ms": 123, "exit_code": null, "message": "ok", "log": "preflight.log"},
                       {"stage": "prepare", "result": "planned", "started_at": null, "duration_ms": null,
                        "exit_code": null, "message": "", "log": null}]}"#;
        let mut s: RunSummary = serde_json::from_str(text).unwrap();
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.total_ms(), 123);
        s.record_stage(StageRecord::not_reached(Stage::Prepare));
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.stages[1].result, "skipped");
        s.finish(run_result::FAILED, 4);
        assert_eq!(s.exit_code, Some(4));
        let back: RunSummary = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["stages"][0]["log"], "preflight.log");
        assert!(v["finished_at"].is_string());
    }
}
