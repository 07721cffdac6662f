//! One run's records: `runs/<run-id>/` with `events.jsonl`, one log per stage, artifacts and
//! `summary.json`; every external command of the run goes through [`Run::exec`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::Stage;
use crate::engine::events::{Event, EventKind, EventLog, Frontend, Verdict};
use crate::engine::lock::{EnvLock, RunningTool};
use crate::engine::runs::{RunSummary, StageRecord};
use crate::failure::Failure;
use crate::runner::{self, Capture, Cmd, Interrupt, Outcome, Redactor};

pub struct Run<'a> {
    pub id: String,
    pub dir: PathBuf,
    pub redactor: Redactor,
    pub interrupt: Interrupt,
    pub summary: RunSummary,
    events: EventLog,
    frontend: &'a dyn Frontend,
    /// The environment's lock, when the run holds one: it records the running tool.
    lock: Option<&'a EnvLock>,
}

/// Passes a tool's output to the front end, and keeps the lock's record of which tool runs (so a
/// later run can tell when a tool of a dead run still works on the hosts).
struct ToolObserver<'r> {
    frontend: &'r dyn Frontend,
    lock: Option<&'r EnvLock>,
    stage: Stage,
    what: &'r str,
}

impl runner::Observer for ToolObserver<'_> {
    fn spawned(&mut self, pid: u32) {
        if let Some(lock) = self.lock {
            lock.record_tool(Some(RunningTool {
                pgid: pid,
                what: self.what.to_string(),
            }));
        }
    }

    fn line(&mut self, line: &str) {
        self.frontend.tool_line(self.stage, line);
    }

    fn ended(&mut self) {
        if let Some(lock) = self.lock {
            lock.record_tool(None);
        }
    }
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
        frontend: &'a dyn Frontend,
        lock: Option<&'a EnvLock>,
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
            frontend,
            lock,
        };
        run.emit(
            None,
            EventKind::RunStarted,
            None,
            None,
            format!("{command} {env}"),
        )?;
        run.save_summary()?;
        // Never silently: a stale lock cleared to start this run is said in the run itself.
        if let Some(stale) = lock.and_then(EnvLock::cleared_stale) {
            run.warning(None, format!("cleared a stale lock: {}", stale.description))?;
        }
        Ok(run)
    }

    /// Record an event in `events.jsonl` and hand it to the front end.
    pub fn emit(
        &mut self,
        stage: Option<Stage>,
        event: EventKind,
        duration_ms: Option<u64>,
        exit_code: Option<i32>,
        message: impl AsRef<str>,
    ) -> anyhow::Result<()> {
        self.emit_event(Event {
            time: jiff::Timestamp::now(),
            run: self.id.clone(),
            stage,
            event,
            duration_ms,
            exit_code,
            message: message.as_ref().to_string(),
            result: None,
        })
    }

    /// The one place events leave the engine: redacted, appended to `events.jsonl`, then shown.
    fn emit_event(&mut self, mut event: Event) -> anyhow::Result<()> {
        event.message = self.redactor.redact(&event.message);
        self.events.write(&event)?;
        self.frontend.event(&event);
        Ok(())
    }

    pub fn message(&mut self, stage: Stage, text: impl AsRef<str>) -> anyhow::Result<()> {
        self.emit(Some(stage), EventKind::Message, None, None, text)
    }

    /// Something the user should know that did not stop the run (e.g. a cleared stale lock).
    pub fn warning(&mut self, stage: Option<Stage>, text: impl AsRef<str>) -> anyhow::Result<()> {
        self.emit(stage, EventKind::Warning, None, None, text)
    }

    /// One check's line (the preflight stage's `doctor` checks).
    pub fn check_line(&mut self, stage: Stage, text: impl AsRef<str>) -> anyhow::Result<()> {
        self.emit(Some(stage), EventKind::Check, None, None, text)
    }

    /// The exit code the front end gives `failure` (`None`: success), for the records.
    pub fn exit_code(&self, failure: Option<&anyhow::Error>) -> u8 {
        self.frontend.exit_code(failure)
    }

    /// End a stage (or a pseudo-stage such as `destroy`, logged as `log_name`): the
    /// `stage_finished` event and the summary's record, from the stage's outcome. Returns the
    /// verdict and the message it recorded.
    pub fn finish_stage(
        &mut self,
        stage: Stage,
        log_name: &str,
        started_at: jiff::Timestamp,
        duration_ms: u64,
        outcome: Result<(Verdict, &str), &anyhow::Error>,
    ) -> anyhow::Result<(Verdict, String)> {
        let (verdict, message, exit_code) = match outcome {
            Ok((verdict, message)) => (verdict, message.to_string(), None),
            Err(e) => (
                Verdict::of_failure(crate::failure::kind_of(e)),
                format!("{e:#}"),
                Some(i32::from(self.exit_code(Some(e)))),
            ),
        };
        self.emit_event(Event {
            time: jiff::Timestamp::now(),
            run: self.id.clone(),
            stage: Some(stage),
            event: EventKind::StageFinished,
            duration_ms: Some(duration_ms),
            exit_code,
            message: format!("{verdict}: {message}"),
            result: Some(verdict),
        })?;
        let mut record =
            StageRecord::finished(stage, verdict, started_at, duration_ms, exit_code, &message);
        record.stage = log_name.to_string();
        record.log = Some(format!("{log_name}.log"));
        self.record_stage(record)?;
        Ok((verdict, message))
    }

    /// End the run: `summary.json` gets its result and exit code, then `run_finished`.
    pub fn finish(
        &mut self,
        verdict: Verdict,
        failure: Option<&anyhow::Error>,
    ) -> anyhow::Result<()> {
        let exit_code = self.exit_code(failure);
        self.summary.finish(verdict, exit_code);
        self.save_summary()?;
        let total_ms = self.summary.total_ms();
        self.emit_event(Event {
            time: jiff::Timestamp::now(),
            run: self.id.clone(),
            stage: None,
            event: EventKind::RunFinished,
            duration_ms: Some(total_ms),
            exit_code: Some(i32::from(exit_code)),
            message: Verdict::of_outcome(failure).to_string(),
            result: Some(verdict),
        })
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
        let mut observer = ToolObserver {
            frontend: self.frontend,
            lock: self.lock,
            stage,
            what: &cmd.what,
        };
        let outcome = runner::run(
            cmd,
            &mut log,
            &self.redactor,
            &self.interrupt,
            capture,
            &mut observer,
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
        self.check_explained(stage, log_name, cmd, outcome, None)
    }

    /// [`Run::check`] with what the tool's output says went wrong (e.g. the hosts and tasks that
    /// failed), on the failure's first line.
    pub fn check_explained(
        &self,
        stage: Stage,
        log_name: &str,
        cmd: &Cmd,
        outcome: Outcome,
        detail: Option<String>,
    ) -> anyhow::Result<Outcome> {
        if outcome.interrupted {
            return Err(Failure::Interrupted(stage.name().to_string()).into());
        }
        if outcome.success() {
            return Ok(outcome);
        }
        let mut why = outcome.failure_text(&cmd.what);
        if let Some(detail) = detail {
            why = format!("{why}: {detail}");
        }
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

    /// Write an artifact (redacted) into the run directory, and say so (`artifact` event).
    pub fn artifact(&mut self, stage: Stage, name: &str, content: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        crate::fsutil::write_atomic(&path, self.redactor.redact(content).as_bytes(), 0o600)?;
        self.emit(Some(stage), EventKind::Artifact, None, None, name)?;
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
