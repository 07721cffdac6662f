//! Stages, checkpoints, the lock and run records.

pub mod backup;
pub mod events;
pub mod lock;
pub mod run;
pub mod runs;
pub mod stages;
pub mod state;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::{DownArgs, ResetArgs, RunArgs};
use crate::config::{Environment, Project};
use crate::engine::events::EventKind;
use crate::engine::lock::EnvLock;
use crate::engine::run::Run;
use crate::engine::runs::{StageRecord, run_result, stage_result};
use crate::engine::stages::{Ctx, Done};
use crate::engine::state::{EnvState, StageResult, StageState};
use crate::exit::{Failure, bad_input, code};
use crate::output::{Mark, Printer};
use crate::report::HumanReporter;
use crate::runner::{Capture, Interrupt, Redactor};
use crate::terraform::Terraform;

/// The stages of a bring-up, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Preflight,
    Prepare,
    Provision,
    Configure,
    Verify,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Preflight,
        Stage::Prepare,
        Stage::Provision,
        Stage::Configure,
        Stage::Verify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Preflight => "preflight",
            Stage::Prepare => "prepare",
            Stage::Provision => "provision",
            Stage::Configure => "configure",
            Stage::Verify => "verify",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The recorded result of something that failed with `err`: `interrupted`, `refused` or `failed`
/// (the same words for runs and stages, see `runs::run_result` / `runs::stage_result`).
fn failure_label(err: &anyhow::Error) -> &'static str {
    match crate::exit::exit_code_of(err) {
        code::INTERRUPTED => stage_result::INTERRUPTED,
        code::REFUSED => stage_result::REFUSED,
        _ => stage_result::FAILED,
    }
}

/// How a pipeline run ended: its recorded result and em-infra's exit code.
fn result_name(err: Option<&anyhow::Error>) -> (&'static str, u8) {
    match err {
        None => (run_result::SUCCEEDED, code::OK),
        Some(e) => (failure_label(e), crate::exit::exit_code_of(e)),
    }
}

/// The stages a run executes, from the flags and (for `--resume`) the recorded state.
pub fn select_stages(args: &RunArgs, state: &EnvState) -> anyhow::Result<Vec<Stage>> {
    let only = if args.prepare_only {
        Some(Stage::Prepare)
    } else if args.terraform_only {
        Some(Stage::Provision)
    } else if args.ansible_only {
        Some(Stage::Configure)
    } else if args.verify_only {
        Some(Stage::Verify)
    } else {
        args.only.map(Stage::from)
    };
    if let Some(stage) = only {
        return Ok(vec![stage]);
    }
    let from = if args.resume {
        match state.resume_point() {
            Some(stage) => stage,
            None => return Ok(Vec::new()),
        }
    } else {
        args.from.map_or(Stage::Preflight, Stage::from)
    };
    let to = args.to.map_or(Stage::Verify, Stage::from);
    if to < from {
        return Err(bad_input(format!(
            "--to {to} comes before the first stage to run ({from}): nothing to do"
        )));
    }
    Ok(Stage::ALL
        .into_iter()
        .filter(|s| (from..=to).contains(s))
        .collect())
}

/// Take the environment's lock, saying so when a stale one was cleared (never silently).
fn lock(
    env: &Environment,
    command: &str,
    clear_stale: bool,
    printer: &Printer,
) -> anyhow::Result<EnvLock> {
    let lock = EnvLock::acquire(&env.state_dir, command, clear_stale)?;
    if let Some(stale) = lock.cleared_stale() {
        printer.mark(
            Mark::Warn,
            format!("cleared a stale lock: {}", stale.description),
        );
    }
    Ok(lock)
}

/// `em-infra up`: run the selected stages, recording each one.
pub fn up(project: &Project, args: &RunArgs, printer: &Printer) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    // A dry run changes nothing, so it neither takes the lock nor touches state.json.
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock(&env, "up", args.clear_stale_lock, printer)?)
    };
    let mut state = EnvState::load(&env.state_dir, &env.name)?;
    let stages = select_stages(args, &state)?;
    if stages.is_empty() {
        printer.line("nothing to resume: the last run finished every stage it started");
        return Ok(());
    }
    let tfvars = env.default_tfvars();
    let ctx = Ctx {
        project,
        env: &env,
        tfvars,
        parallelism: args.parallelism,
        allow_replace: args.allow_replace,
        dry_run: args.dry_run,
    };
    let interrupt = Interrupt::install()?;
    let reporter = HumanReporter::new(printer);
    let command = if args.dry_run { "up --dry-run" } else { "up" };
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        command,
        Redactor::from_env(),
        interrupt,
        &reporter,
    )?;
    if args.dry_run {
        show_planned_nodes(&ctx, &mut run)?;
    }

    let mut failure = None;
    for (i, &stage) in stages.iter().enumerate() {
        let started_at = jiff::Timestamp::now();
        let clock = Instant::now();
        run.emit(
            Some(stage),
            EventKind::StageStarted,
            None,
            None,
            stage.name(),
        )?;
        let outcome = if run.interrupt.is_set() {
            Err(Failure::Interrupted(stage.name().into()).into())
        } else {
            stages::run_stage(stage, &ctx, &mut run, &mut state)
        };
        let duration_ms = Run::elapsed_ms(clock);
        let (result, label, message, exit_code) = match &outcome {
            Ok(Done::Succeeded(m)) => (
                StageResult::Succeeded,
                stage_result::SUCCEEDED,
                m.clone(),
                None,
            ),
            Ok(Done::Skipped(m)) => (StageResult::Skipped, stage_result::SKIPPED, m.clone(), None),
            Err(e) => {
                let code = crate::exit::exit_code_of(e);
                let result = if code == code::INTERRUPTED {
                    StageResult::Interrupted
                } else {
                    StageResult::Failed
                };
                (
                    result,
                    failure_label(e),
                    format!("{e:#}"),
                    Some(i32::from(code)),
                )
            }
        };
        run.emit(
            Some(stage),
            EventKind::StageFinished,
            Some(duration_ms),
            exit_code,
            format!("{label}: {message}"),
        )?;
        run.record_stage(StageRecord::finished(
            stage,
            label,
            started_at,
            duration_ms,
            exit_code,
            &message,
        ))?;
        if !args.dry_run {
            state.stages.insert(
                stage,
                StageState {
                    result,
                    fingerprint: ctx.fingerprint(stage),
                    started_at,
                    finished_at: jiff::Timestamp::now(),
                    run_id: run.id.clone(),
                    message: crate::report::first_line(&message).to_string(),
                },
            );
            state.save(&env.state_dir)?;
        }
        if let Err(e) = outcome {
            // A dry run shows every stage even when preflight would stop a real run (a newcomer
            // without Proxmox credentials still sees the plan of action); it still exits 3.
            if args.dry_run && crate::exit::exit_code_of(&e) == code::PREFLIGHT_FAILED {
                failure = Some(e);
                continue;
            }
            for &later in &stages[i + 1..] {
                run.record_stage(StageRecord::not_reached(later))?;
            }
            failure = Some(e);
            break;
        }
    }
    finish(run, failure, printer, args.dry_run)
}

/// Close the run: summary.json, the final table, `--json` on stdout, and the error (if any).
fn finish(
    mut run: Run,
    failure: Option<anyhow::Error>,
    printer: &Printer,
    dry_run: bool,
) -> anyhow::Result<()> {
    let (result, exit_code) = result_name(failure.as_ref());
    run.summary.finish(
        if dry_run && failure.is_none() {
            run_result::DRY_RUN
        } else {
            result
        },
        exit_code,
    );
    run.save_summary()?;
    run.emit(
        None,
        EventKind::RunFinished,
        Some(run.summary.total_ms()),
        Some(i32::from(exit_code)),
        result,
    )?;
    crate::report::print_run_summary(printer, &run.summary, &run.dir)?;
    if printer.json_mode() {
        printer.stdout_json(&serde_json::to_value(&run.summary)?)?;
    }
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// `--dry-run` for a newcomer: the nodes the tfvars describe, before any tool runs.
fn show_planned_nodes(ctx: &Ctx, run: &mut Run) -> anyhow::Result<()> {
    let report = crate::config::check::check_environment(ctx.project, ctx.env, Some(&ctx.tfvars))?;
    if !report.ok() {
        return Ok(()); // preflight reports the findings
    }
    let table = crate::config::check::nodes_table(&report.nodes);
    run.artifact("planned-nodes.txt", &table)?;
    run.message(
        Stage::Preflight,
        format!("nodes from {}:\n{table}", ctx.tfvars.display()),
    )
}

/// `em-infra down`: back up, destroy within a time bound, then clear everything derived.
pub fn down(project: &Project, args: &DownArgs, printer: &Printer) -> anyhow::Result<()> {
    let env = project.environment(&args.env.env)?;
    confirm_destroy(&env, args.yes, printer)?;
    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    let _lock = lock(&env, "down", args.clear_stale_lock, printer)?;
    let reporter = HumanReporter::new(printer);
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        "down",
        Redactor::from_env(),
        Interrupt::install()?,
        &reporter,
    )?;
    let outcome = destroy(project, &env, args, &mut run);
    let failure = outcome.err();
    finish(run, failure, printer, false)
}

fn destroy(
    project: &Project,
    env: &Environment,
    args: &DownArgs,
    run: &mut Run,
) -> anyhow::Result<()> {
    // The pseudo-stage name in logs and the summary; events use the provision stage's slot.
    const NAME: &str = "destroy";
    let started_at = jiff::Timestamp::now();
    let clock = Instant::now();
    let stage = Stage::Provision;
    run.emit(Some(stage), EventKind::StageStarted, None, None, NAME)?;
    let result = (|| -> anyhow::Result<String> {
        // Read the node IPs before the state is gone (for known_hosts cleanup); a missing or
        // corrupt state must not block a destroy.
        let ips: Vec<String> = crate::inventory::load_outputs(&env.tfstate())
            .map(|o| o.nodes.iter().map(|n| n.ip.to_string()).collect())
            .unwrap_or_default();
        let tf = Terraform::new(
            crate::terraform::binary()
                .ok_or_else(|| Failure::Preflight("terraform (or tofu) is not on PATH".into()))?,
            &env.dir,
        );
        if env.tfstate().is_file() {
            if let Some(b) = backup::backup_tfstate(env, "pre-destroy")? {
                run.message(stage, format!("state backed up: {}", b.id))?;
            }
            if !tf.initialized() {
                let init = tf.init();
                let out = run.exec_logged(stage, NAME, &init, Capture::LogOnly)?;
                run.check(stage, NAME, &init, out)?;
            }
            let destroy = tf
                .destroy(&env.default_tfvars(), crate::terraform::DEFAULT_PARALLELISM)
                .timeout(Duration::from_secs(args.timeout));
            let out = run.exec_logged(stage, NAME, &destroy, Capture::LogOnly)?;
            run.check(stage, NAME, &destroy, out)?;
        }
        let mut removed = Vec::new();
        for path in [
            env.tfstate(),
            env.dir.join("terraform.tfstate.backup"),
            env.token_file(),
            env.kubeconfig(),
            EnvState::path(&env.state_dir),
        ] {
            if path.exists() {
                fs_err::remove_file(&path)?;
                removed.push(path.display().to_string());
            }
        }
        let forgotten = forget_host_keys(&ips);
        let _ = project;
        Ok(format!(
            "destroyed; removed {} derived file(s); forgot {forgotten} SSH host key(s); backups kept in {}",
            removed.len(),
            env.state_dir.join("backups").display()
        ))
    })();
    let duration_ms = Run::elapsed_ms(clock);
    let (label, message, code) = match &result {
        Ok(m) => (stage_result::SUCCEEDED, m.clone(), None),
        Err(e) => (
            failure_label(e),
            format!("{e:#}"),
            Some(i32::from(crate::exit::exit_code_of(e))),
        ),
    };
    run.emit(
        Some(stage),
        EventKind::StageFinished,
        Some(duration_ms),
        code,
        format!("{label}: {message}"),
    )?;
    let mut record = StageRecord::finished(stage, label, started_at, duration_ms, code, &message);
    record.stage = NAME.to_string();
    record.log = Some(format!("{NAME}.log"));
    run.record_stage(record)?;
    result.map(|_| ())
}

/// Remove the cluster's IPs from `~/.ssh/known_hosts`, so recreated VMs (new host keys) are
/// accepted without a scary warning. Returns how many entries were removed.
fn forget_host_keys(ips: &[String]) -> usize {
    let Some(home) = std::env::var_os("HOME") else {
        return 0;
    };
    let known = std::path::Path::new(&home).join(".ssh/known_hosts");
    if !known.is_file() {
        return 0;
    }
    ips.iter()
        .filter(|ip| {
            std::process::Command::new("ssh-keygen")
                .arg("-R")
                .arg(ip.as_str())
                .arg("-f")
                .arg(&known)
                .output()
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("updated")
                })
        })
        .count()
}

fn confirm_destroy(env: &Environment, yes: bool, printer: &Printer) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(bad_input(
            "down destroys every VM of the environment: pass --yes when not running interactively",
        ));
    }
    printer.line(format!(
        "This destroys every VM of environment {} ({}). Type the environment name to go on:",
        env.name,
        env.dir.display()
    ));
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() == env.name {
        Ok(())
    } else {
        Err(bad_input("not confirmed: nothing was destroyed"))
    }
}

/// `em-infra reset`: `down`, then `up`.
pub fn reset(project: &Project, args: &ResetArgs, printer: &Printer) -> anyhow::Result<()> {
    let down_args = DownArgs {
        env: args.run.env.clone(),
        yes: args.yes,
        timeout: args.timeout,
        clear_stale_lock: args.run.clear_stale_lock,
    };
    down(project, &down_args, printer)?;
    up(project, &args.run, printer)
}
