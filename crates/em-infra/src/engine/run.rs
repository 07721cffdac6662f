//! One run's records: `runs/<run-id>/` with `events.jsonl`, one log per stage, artifacts and
//! `summary.json`; every external command of the run goes through [`Run::exec`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::Stage;
use crate::engine::events::{Event, EventKind, EventLog, Reporter};
use crate::engine::runs::{RunSummary, StageRecord};
use crate::exit::Failure;
use crate::runner::{self, Capture, Cmd, Interrupt, Outcome, Redactor};

pub struct Run<'a> {
    pub id: String,
    pub dir: PathBuf,
    pub redactor: Redactor,
    pub interrupt: Interrupt,
    pub summary: RunSummary,
    events: EventLog,
    reporter: &'a dyn Reporter,
}

/// A sortable, unique run id: UTC start time to the millisecond plus a short random suffix,
/// e.g. `20261126T050102.123Z-1a2b`.
fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let suffix =
        blake3::hash(format!("{}{}", std::process::id(), now.as_nanosecond()).as_bytes()).to_hex();
    // Milliseconds keep two runs started within one second in start order.
    format!(
        "{}.{:03}Z-{}",
        now.strftime("%Y%m%dT%H%M%S"),
        now.subsec_millisecond(),
        &suffix[..4]
    )
}

impl<'a> Run<'a> {
    pub fn start(
        state_dir: &Path,
        env: &str,
        command: &str,
        redactor: Redactor,
        interrupt: Interrupt,
        reporter: &'a dyn Reporter,
    ) -> anyhow::Result<Self> {
        let id = new_run_id();
        let dir = state_dir.join("runs").join(&id);
        crate::fsutil::ensure_private_dir(&dir)?;
        let events = EventLog::create(&dir.join("events.jsonl"))?;
        let summary = RunSummary::new(&id, env, command);
        let mut run = Run {
            id,
            dir,
            redactor,
            interrupt,
            summary,
            events,
            reporter,
        };
        run.emit(
            None,
            EventKind::RunStarted,
            None,
            None,
            format!("{command} {env}"),
        )?;
        run.save_summary()?;
        Ok(run)
    }

    /// Record an event in `events.jsonl` and show it to the user.
    pub fn emit(
        &mut self,
        stage: Option<Stage>,
        event: EventKind,
        duration_ms: Option<u64>,
        exit_code: Option<i32>,
        message: impl AsRef<str>,
    ) -> anyhow::Result<()> {
        let event = Event {
            time: jiff::Timestamp::now(),
            run: self.id.clone(),
            stage,
            event,
            duration_ms,
            exit_code,
            message: self.redactor.redact(message.as_ref()),
        };
        self.events.write(&event)?;
        self.reporter.event(&event);
        Ok(())
    }

    pub fn message(&mut self, stage: Stage, text: impl AsRef<str>) -> anyhow::Result<()> {
        self.emit(Some(stage), EventKind::Message, None, None, text)
    }

    pub fn stage_log_path(&self, stage: &str) -> PathBuf {
        self.dir.join(format!("{stage}.log"))
    }

    /// Run one tool for `stage`, appending its output to the stage log.
    pub fn exec(&mut self, stage: Stage, cmd: &Cmd, capture: Capture) -> anyhow::Result<Outcome> {
        self.exec_logged(stage, stage.name(), cmd, capture)
    }

    /// Like [`Run::exec`] with a log name of its own (e.g. `destroy` for `down`).
    pub fn exec_logged(
        &mut self,
        stage: Stage,
        log_name: &str,
        cmd: &Cmd,
        capture: Capture,
    ) -> anyhow::Result<Outcome> {
        self.emit(
            Some(stage),
            EventKind::CommandStarted,
            None,
            None,
            cmd.display(),
        )?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stage_log_path(log_name))?;
        let reporter = self.reporter;
        let outcome = runner::run(
            cmd,
            &mut log,
            &self.redactor,
            &self.interrupt,
            capture,
            &mut |line| reporter.tool_line(stage, line),
        )?;
        self.emit(
            Some(stage),
            EventKind::CommandFinished,
            Some(outcome.duration.as_millis() as u64),
            outcome.code,
            &cmd.what,
        )?;
        Ok(outcome)
    }

    /// Run a tool that must succeed: a non-zero exit becomes a stage failure carrying the log's
    /// tail and path, an interruption becomes `Interrupted`.
    pub fn exec_checked(
        &mut self,
        stage: Stage,
        cmd: &Cmd,
        capture: Capture,
    ) -> anyhow::Result<Outcome> {
        let outcome = self.exec(stage, cmd, capture)?;
        self.check(stage, stage.name(), cmd, outcome)
    }

    pub fn check(
        &self,
        stage: Stage,
        log_name: &str,
        cmd: &Cmd,
        outcome: Outcome,
    ) -> anyhow::Result<Outcome> {
        if outcome.interrupted {
            return Err(Failure::Interrupted(stage.name().to_string()).into());
        }
        if outcome.success() {
            return Ok(outcome);
        }
        let why = if outcome.timed_out {
            format!(
                "{} timed out after {:.0}s",
                cmd.what,
                outcome.duration.as_secs_f64()
            )
        } else {
            format!(
                "{} exited with {}",
                cmd.what,
                outcome
                    .code
                    .map_or("a signal".into(), |c| format!("code {c}"))
            )
        };
        Err(Failure::Stage {
            stage: stage.name().to_string(),
            message: format!(
                "{why}\n--- last lines of {} ---\n{}\n--- full log: {} ---",
                log_name,
                outcome.tail.join("\n"),
                self.stage_log_path(log_name).display()
            ),
        }
        .into())
    }

    /// Write an artifact (redacted) into the run directory.
    pub fn artifact(&self, name: &str, content: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        crate::fsutil::write_atomic(&path, self.redactor.redact(content).as_bytes(), 0o600)?;
        Ok(path)
    }

    pub fn record_stage(&mut self, mut record: StageRecord) -> anyhow::Result<()> {
        record.message = self.redactor.redact(&record.message);
        self.summary.record_stage(record);
        self.save_summary()
    }

    pub fn save_summary(&self) -> anyhow::Result<()> {
        self.summary.save(&self.dir)
    }

    pub fn elapsed_ms(since: Instant) -> u64 {
        since.elapsed().as_millis() as u64
    }
}
