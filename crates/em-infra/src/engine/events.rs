//! Typed run events: one event fans out to the human reporter and to `events.jsonl`.
//!
//! `events.jsonl` schema (one JSON object per line, documented in docs/runs-and-logs.md):
//! `time` (RFC 3339), `run` (run id), `stage` (name or null), `event` (see [`EventKind`]),
//! `duration_ms` (null unless the event ends something), `exit_code` (null unless a tool or the run
//! ended), `message` (redacted text).

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::engine::Stage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    StageStarted,
    CommandStarted,
    CommandFinished,
    StageFinished,
    Message,
    RunFinished,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: jiff::Timestamp,
    pub run: String,
    pub stage: Option<Stage>,
    pub event: EventKind,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub message: String,
}

/// Receives every event of a run (the CLI renders them; tests may collect them).
pub trait Reporter {
    fn event(&self, event: &Event);
    /// One line of a tool's output (already redacted), for live progress.
    fn tool_line(&self, _stage: Stage, _line: &str) {}
}

/// Appends events to `events.jsonl`, flushing each line so a crash keeps what happened.
pub struct EventLog {
    file: std::fs::File,
}

impl EventLog {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(EventLog { file })
    }

    pub fn write(&mut self, event: &Event) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        Ok(())
    }
}
