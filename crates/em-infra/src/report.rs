//! The engine's two front ends: [`HumanReporter`] (progress for people on stderr: stage starts and
//! ends with elapsed time, commands, messages, a heartbeat with the tool's latest line during long
//! waits) and [`JsonReporter`] (`--json`: each event as one JSON line on stderr, the same objects
//! as `events.jsonl`, while stdout keeps the final document). Both ask questions the same way and
//! take exit codes from [`crate::exit`]. Also the table at the end of a run.

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use em_infra_core::engine::Stage;
use em_infra_core::engine::events::{Event, EventKind, Frontend, Question, Verdict};
use em_infra_core::engine::runs::RunSummary;
use em_infra_core::failure::bad_input;

use crate::output::{Mark, Printer};
use crate::table::{self, first_line, fmt_duration};

/// How often a long-running tool gets a progress line (with its latest output).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The front end for `printer`'s mode: JSON lines with `--json`, else people.
pub(crate) fn frontend(printer: &Printer) -> Box<dyn Frontend + '_> {
    if printer.json_mode() {
        Box::new(JsonReporter { printer })
    } else {
        Box::new(HumanReporter::new(printer))
    }
}

/// Renders a run for people.
pub(crate) struct HumanReporter<'a> {
    printer: &'a Printer,
    /// The running stage's name as its start event said it (`destroy` and `drain` borrow a
    /// stage's slot), and when it started.
    stage_started: RefCell<Option<(String, Instant)>>,
    last_beat: RefCell<Instant>,
}

impl<'a> HumanReporter<'a> {
    pub(crate) fn new(printer: &'a Printer) -> Self {
        HumanReporter {
            printer,
            stage_started: RefCell::new(None),
            last_beat: RefCell::new(Instant::now()),
        }
    }
}

impl Frontend for HumanReporter<'_> {
    fn event(&self, e: &Event) {
        match e.event {
            EventKind::RunStarted => self
                .printer
                .heading(format!("em-infra {} (run {})", e.message, e.run)),
            EventKind::StageStarted => {
                *self.stage_started.borrow_mut() = Some((e.message.clone(), Instant::now()));
                *self.last_beat.borrow_mut() = Instant::now();
                self.printer.heading(format!("▶ {}", e.message));
            }
            EventKind::CommandStarted => self.printer.hint(format!("$ {}", e.message)),
            EventKind::Check | EventKind::Message => {
                for line in e.message.lines() {
                    self.printer.line(format!("  {line}"));
                }
            }
            EventKind::Warning => self.printer.mark(Mark::Warn, &e.message),
            EventKind::StageFinished => {
                let started = self.stage_started.borrow_mut().take();
                let name = started.map_or_else(
                    || e.stage.map_or("", Stage::name).to_string(),
                    |(name, _)| name,
                );
                let took = e.duration_ms.map(fmt_duration).unwrap_or_default();
                // The message is `<verdict>: <what happened>`; the verdict is typed beside it.
                let text = e.message.split_once(": ").map_or("", |(_, m)| m);
                let text = match e.result {
                    Some(v) => format!("{name} {v} in {took}: {}", first_line(text)),
                    None => format!("{name} in {took}"),
                };
                self.printer.mark(e.result.map_or(Mark::Ok, mark_for), text);
            }
            EventKind::CommandFinished | EventKind::Artifact | EventKind::RunFinished => {}
        }
    }

    fn tool_line(&self, stage: Stage, line: &str) {
        let mut last = self.last_beat.borrow_mut();
        if last.elapsed() < HEARTBEAT || line.trim().is_empty() {
            return;
        }
        *last = Instant::now();
        let (name, elapsed) = self
            .stage_started
            .borrow()
            .as_ref()
            .map_or((stage.name().to_string(), 0), |(name, t)| {
                (name.clone(), t.elapsed().as_secs())
            });
        let mut shown: String = line.trim().chars().take(100).collect();
        if shown.len() < line.trim().len() {
            shown.push('…');
        }
        self.printer.hint(format!("… {name} {elapsed}s: {shown}"));
    }

    fn confirm(&self, question: &Question) -> anyhow::Result<bool> {
        confirm(self.printer, question)
    }

    fn ask(&self, question: &Question) -> anyhow::Result<String> {
        ask(self.printer, question)
    }

    fn exit_code(&self, failure: Option<&anyhow::Error>) -> u8 {
        failure.map_or(crate::exit::code::OK, crate::exit::exit_code_of)
    }
}

/// `--json`: every event as a JSON line on stderr (stdout is kept for the final document).
pub(crate) struct JsonReporter<'a> {
    printer: &'a Printer,
}

impl Frontend for JsonReporter<'_> {
    fn event(&self, e: &Event) {
        if let Ok(line) = serde_json::to_string(e) {
            self.printer.line(line);
        }
    }

    fn confirm(&self, question: &Question) -> anyhow::Result<bool> {
        confirm(self.printer, question)
    }

    fn ask(&self, question: &Question) -> anyhow::Result<String> {
        ask(self.printer, question)
    }

    fn exit_code(&self, failure: Option<&anyhow::Error>) -> u8 {
        failure.map_or(crate::exit::code::OK, crate::exit::exit_code_of)
    }
}

/// The mark of a verdict (also for the `runs` tables).
pub(crate) fn mark_for(verdict: Verdict) -> Mark {
    match verdict {
        Verdict::Succeeded => Mark::Ok,
        Verdict::Skipped | Verdict::Planned | Verdict::Running | Verdict::DryRun => Mark::Skip,
        Verdict::Interrupted | Verdict::Refused => Mark::Warn,
        Verdict::Failed => Mark::Fail,
    }
}

/// The mark of a recorded result name (records may come from a newer em-infra: unknown is ✗).
pub(crate) fn mark_for_name(result: &str) -> Mark {
    serde_json::from_value(serde_json::Value::String(result.to_string()))
        .map_or(Mark::Fail, mark_for)
}

/// Ask on the terminal; without one, say which flag answers the question.
fn confirm(printer: &Printer, question: &Question) -> anyhow::Result<bool> {
    match question {
        Question::DestroyEnvironment { env, dir } => {
            if !std::io::stdin().is_terminal() {
                return Err(bad_input(
                    "down destroys every VM of the environment: pass --yes when not running interactively",
                ));
            }
            printer.line(format!(
                "This destroys every VM of environment {env} ({dir}). Type the environment name to go on:"
            ));
            Ok(read_answer()? == *env)
        }
        Question::RotateSshKey { env, nodes } => yes_no(
            printer,
            "rotate-ssh-key changes authorized_keys on every node",
            &format!("This replaces the SSH key on {nodes} node(s) of environment {env}."),
        ),
        Question::Scale {
            env,
            from,
            to,
            removed,
        } => {
            let removing = if removed.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} will be drained, deleted from Kubernetes and destroyed",
                    removed.join(", ")
                )
            };
            yes_no(
                printer,
                "scale changes the cluster's VMs",
                &format!("This changes environment {env} from {from} to {to} workers{removing}."),
            )
        }
        Question::GpuChange { env, node, adding } => {
            let what = if *adding {
                format!("creates GPU worker {node}")
            } else {
                format!("drains GPU worker {node} and destroys its VM")
            };
            yes_no(
                printer,
                "gpu changes the cluster's VMs",
                &format!("This {what} in environment {env}."),
            )
        }
        Question::ReplaceNode { env, node } => yes_no(
            printer,
            "node replace destroys and recreates a VM",
            &format!(
                "This drains {node} of environment {env}, destroys its VM and creates it again."
            ),
        ),
        Question::Value { .. } => Ok(!ask(printer, question)?.is_empty()),
    }
}

/// A yes/no question on the terminal (`statement` then "Go on? [y/N]"); without a terminal, a
/// bad-input failure saying that `what_it_does` and that --yes answers it.
fn yes_no(printer: &Printer, what_it_does: &str, statement: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(bad_input(format!(
            "{what_it_does}: pass --yes when not running interactively"
        )));
    }
    printer.line(format!("{statement} Go on? [y/N]"));
    Ok(matches!(
        read_answer()?.to_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// A value from the terminal; without one (or for a yes/no question), the flag that gives it.
fn ask(printer: &Printer, question: &Question) -> anyhow::Result<String> {
    match question {
        Question::Value {
            variable,
            prompt,
            flag,
        } => {
            if !std::io::stdin().is_terminal() {
                return Err(bad_input(format!(
                    "{variable} is needed ({prompt}): pass {flag} (there is no terminal to ask)"
                )));
            }
            printer.line(format!("{variable}: {prompt}?"));
            let answer = read_answer()?;
            if answer.is_empty() {
                return Err(bad_input(format!("{variable}: no answer; pass {flag}")));
            }
            Ok(answer)
        }
        Question::DestroyEnvironment { .. }
        | Question::RotateSshKey { .. }
        | Question::Scale { .. }
        | Question::ReplaceNode { .. }
        | Question::GpuChange { .. } => {
            confirm(printer, question).map(|yes| if yes { "yes" } else { "" }.to_string())
        }
    }
}

fn read_answer() -> anyhow::Result<String> {
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}

/// The end of a run: its table on stderr, and with `--json` the summary on stdout.
pub(crate) fn run_summary(
    printer: &Printer,
    summary: &RunSummary,
    run_dir: &Path,
) -> anyhow::Result<()> {
    let mut table = table::new(&["stage", "result", "duration", "note"]);
    for s in &summary.stages {
        table.add_row([
            s.stage.clone(),
            s.result.clone(),
            s.duration_ms.map_or_else(|| "-".into(), fmt_duration),
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
    if printer.json_mode() {
        printer.stdout_json(&serde_json::to_value(summary)?)?;
    }
    let _ = std::io::stderr().flush();
    Ok(())
}
