//! Typed run events and the boundary to whoever runs the engine.
//!
//! One [`Event`] fans out to every consumer: the caller's [`Frontend`] (the binary renders it for
//! people or as JSON) and `events.jsonl` ([`EventLog`]), so they can never disagree. Questions
//! ("destroy these VMs?") cross the same boundary: the engine asks [`Frontend::confirm`] and
//! never reads a terminal itself.
//!
//! `events.jsonl` schema (one JSON object per line, documented in docs/runs-and-logs.md):
//! `time` (RFC 3339), `run` (run id), `stage` (name or null), `event` (see [`EventKind`]),
//! `duration_ms` (null unless the event ends something), `exit_code` (null unless a tool or the run
//! ended), `message` (redacted text), and `result` (a [`Verdict`], only on `stage_finished` and
//! `run_finished`).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::Stage;
use crate::failure::FailureKind;

/// The one result vocabulary of stages, runs and their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Succeeded,
    Failed,
    Skipped,
    Interrupted,
    Refused,
    /// `--dry-run`: a stage that would run.
    Planned,
    /// A whole `--dry-run` that found nothing wrong.
    DryRun,
    /// Started and not finished yet (or the process died during it).
    Running,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Succeeded => "succeeded",
            Verdict::Failed => "failed",
            Verdict::Skipped => "skipped",
            Verdict::Interrupted => "interrupted",
            Verdict::Refused => "refused",
            Verdict::Planned => "planned",
            Verdict::DryRun => "dry-run",
            Verdict::Running => "running",
        }
    }

    /// The verdict of something that failed with a failure of `kind` (`None`: internal).
    pub fn of_failure(kind: Option<FailureKind>) -> Verdict {
        match kind {
            Some(FailureKind::Interrupted) => Verdict::Interrupted,
            Some(FailureKind::Refused) => Verdict::Refused,
            _ => Verdict::Failed,
        }
    }

    /// `succeeded` without a failure, else the failure's verdict.
    pub fn of_outcome(failure: Option<&anyhow::Error>) -> Verdict {
        failure.map_or(Verdict::Succeeded, |e| {
            Verdict::of_failure(crate::failure::kind_of(e))
        })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    StageStarted,
    CommandStarted,
    CommandFinished,
    StageFinished,
    /// One check of the preflight stage (a `doctor` line).
    Check,
    Message,
    /// Something the user should know that did not stop the run (e.g. a cleared stale lock).
    Warning,
    /// A file written into the run directory; `message` is its name.
    Artifact,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Verdict>,
}

/// A question the engine needs answered before it goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// `down`/`reset`: destroy every VM of `env` (in `dir`)? The answer must repeat `env`.
    DestroyEnvironment { env: String, dir: String },
    /// `rotate-ssh-key`: replace the SSH key on `nodes` nodes of `env`? `--yes` answers it.
    RotateSshKey { env: String, nodes: usize },
    /// `scale`: change `env` from `from` to `to` workers, draining and destroying `removed`?
    Scale {
        env: String,
        from: u32,
        to: u32,
        removed: Vec<String>,
    },
    /// `gpu add` / `gpu remove`: create (or drain and destroy) GPU worker `node` of `env`?
    GpuChange {
        env: String,
        node: String,
        adding: bool,
    },
    /// `node replace`: drain `node` of `env`, destroy its VM and create it again?
    ReplaceNode { env: String, node: String },
    /// `init`: a tfvars value the Proxmox host cannot know. `flag` gives it without asking.
    Value {
        variable: String,
        prompt: String,
        flag: String,
    },
}

/// The caller's side of the boundary: it receives every event, answers questions, and says which
/// exit code an outcome gets (recorded in `summary.json` and `events.jsonl`).
pub trait Frontend {
    fn event(&self, event: &Event);
    /// One line of a tool's output (already redacted), for live progress.
    fn tool_line(&self, _stage: Stage, _line: &str) {}
    /// Ask `question`; `Ok(false)` means "no". A front end that cannot ask (no terminal) returns a
    /// bad-input failure that says which flag answers it.
    fn confirm(&self, question: &Question) -> anyhow::Result<bool>;
    /// Ask for a value ([`Question::Value`]); a front end that cannot ask returns a bad-input
    /// failure naming the flag.
    fn ask(&self, question: &Question) -> anyhow::Result<String>;
    /// The process exit code of an outcome (`None`: success), recorded with the run.
    fn exit_code(&self, failure: Option<&anyhow::Error>) -> u8;
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
