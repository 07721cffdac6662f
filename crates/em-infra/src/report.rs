//! Human rendering of run events (progress on stderr) and of run summaries (the final table).

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::Stage;
use crate::engine::events::{Event, EventKind, Reporter};
use crate::engine::runs::{RunSummary, fmt_duration};
use crate::output::{Mark, Printer};

/// How often a long-running tool gets a progress line (with its latest output).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Renders a run for people: stage starts and ends with elapsed time, the commands, stage
/// messages, and a heartbeat with the tool's latest line during long waits.
pub struct HumanReporter<'a> {
    printer: &'a Printer,
    stage_started: RefCell<Option<(Stage, Instant)>>,
    last_beat: RefCell<Instant>,
}

impl<'a> HumanReporter<'a> {
    pub fn new(printer: &'a Printer) -> Self {
        HumanReporter {
            printer,
            stage_started: RefCell::new(None),
            last_beat: RefCell::new(Instant::now()),
        }
    }
}

impl Reporter for HumanReporter<'_> {
    fn event(&self, e: &Event) {
        match e.event {
            EventKind::RunStarted => self
                .printer
                .heading(format!("em-infra {} (run {})", e.message, e.run)),
            EventKind::StageStarted => {
                if let Some(stage) = e.stage {
                    *self.stage_started.borrow_mut() = Some((stage, Instant::now()));
                    *self.last_beat.borrow_mut() = Instant::now();
                }
                self.printer.heading(format!("▶ {}", e.message));
            }
            EventKind::CommandStarted => self.printer.hint(format!("$ {}", e.message)),
            EventKind::CommandFinished => {}
            EventKind::Message => {
                for line in e.message.lines() {
                    self.printer.line(format!("  {line}"));
                }
            }
            EventKind::StageFinished => {
                let name = e.stage.map_or("", Stage::name);
                let took = e.duration_ms.map(fmt_duration).unwrap_or_default();
                let (mark, text) = match e.message.split_once(": ") {
                    Some((result, msg)) => (
                        mark_for(result),
                        format!("{name} {result} in {took}: {}", first_line(msg)),
                    ),
                    None => (Mark::Ok, format!("{name} in {took}")),
                };
                self.printer.mark(mark, text);
            }
            EventKind::RunFinished => {}
        }
    }

    fn tool_line(&self, stage: Stage, line: &str) {
        let mut last = self.last_beat.borrow_mut();
        if last.elapsed() < HEARTBEAT || line.trim().is_empty() {
            return;
        }
        *last = Instant::now();
        let elapsed = self
            .stage_started
            .borrow()
            .map(|(_, t)| t.elapsed().as_secs())
            .unwrap_or_default();
        let mut shown: String = line.trim().chars().take(100).collect();
        if shown.len() < line.trim().len() {
            shown.push('…');
        }
        self.printer.hint(format!("… {stage} {elapsed}s: {shown}"));
    }
}

fn mark_for(result: &str) -> Mark {
    match result.to_ascii_lowercase().as_str() {
        "succeeded" => Mark::Ok,
        "skipped" | "planned" => Mark::Skip,
        "interrupted" | "refused" => Mark::Warn,
        _ => Mark::Fail,
    }
}

/// The first line of a (possibly multi-line) message, for one-line displays.
pub(crate) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The table printed at the end of a run: one row per stage, then where the records are.
pub fn print_run_summary(
    printer: &Printer,
    summary: &RunSummary,
    run_dir: &Path,
) -> anyhow::Result<()> {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(["stage", "result", "duration", "note"]);
    for s in &summary.stages {
        table.add_row([
            s.stage.clone(),
            s.result.clone(),
            s.duration_ms
                .map(fmt_duration)
                .unwrap_or_else(|| "-".into()),
            first_line(&s.message).chars().take(90).collect(),
        ]);
    }
    printer.line("");
    printer.line(table.to_string());
    printer.hint(format!(
        "run {}: {} — records in {}",
        summary.run_id,
        summary.result,
        run_dir.display()
    ));
    Ok(())
}
