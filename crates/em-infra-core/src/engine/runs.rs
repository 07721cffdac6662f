//! Past runs: the `summary.json` record every run writes, and `em-infra runs list|show`.
//!
//! A run lives in `<state_dir>/runs/<run-id>/`. Its `summary.json` ([`RunSummary`], schema 1) is
//! rewritten atomically as the run goes, so after a crash it still says how far the run got. A run
//! directory without a readable `summary.json` (killed before the first write, disk full, edited
//! by hand) is listed as `incomplete` with its path, never an error.
//!
//! `result` values are plain strings so that a newer em-infra's records stay readable; this
//! version writes the names of [`Verdict`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Environment;
use crate::engine::Stage;
use crate::engine::events::Verdict;
use crate::engine::lock;
use crate::failure::bad_input;

/// The `schema` this version writes.
pub const SUMMARY_SCHEMA: u32 = 1;
/// The summary's file name inside a run directory.
pub const SUMMARY_FILE: &str = "summary.json";
/// How many run ids an "unknown run" error suggests.
const SUGGESTED_IDS: usize = 5;

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
    /// A [`Verdict`] name (`succeeded`, `failed`, `interrupted`, `refused`, `dry-run`, `running`).
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
    /// A [`Verdict`] name (`succeeded`, `failed`, `skipped`, `planned`, …).
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
            result: Verdict::Running.to_string(),
            exit_code: None,
            stages: Vec::new(),
        }
    }

    /// Mark the run finished now with its verdict and em-infra's exit code.
    pub fn finish(&mut self, result: Verdict, exit_code: u8) {
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
            [Verdict::Failed, Verdict::Refused, Verdict::Interrupted]
                .iter()
                .any(|v| s.result == v.as_str())
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
    /// A stage that ran; the log is `<stage>.log`.
    pub fn finished(
        stage: Stage,
        result: Verdict,
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

    /// A stage that has started (written before it runs, so a run that dies inside it shows
    /// where).
    pub fn running(stage: Stage, started_at: jiff::Timestamp) -> Self {
        StageRecord {
            stage: stage.name().to_string(),
            result: Verdict::Running.to_string(),
            started_at: Some(started_at),
            duration_ms: None,
            exit_code: None,
            message: "started; not finished".to_string(),
            log: Some(format!("{}.log", stage.name())),
        }
    }

    /// A selected stage the run never reached because an earlier one did not succeed.
    pub fn not_reached(stage: Stage) -> Self {
        StageRecord {
            stage: stage.name().to_string(),
            result: Verdict::Skipped.to_string(),
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
            result: Verdict::Planned.to_string(),
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
                if s.result == Verdict::Running.as_str()
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

/// The environment's lock holder when it is a live process (then a `running` summary may be real).
pub fn live_holder(env: &Environment) -> Option<lock::LockHolder> {
    lock::read_holder(&env.state_dir).filter(lock::holder_is_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        s.finish(Verdict::Failed, 4);
        assert_eq!(s.exit_code, Some(4));
        let back: RunSummary = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["stages"][0]["log"], "preflight.log");
        assert!(v["finished_at"].is_string());
    }
}
