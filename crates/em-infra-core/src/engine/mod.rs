//! Stages, checkpoints, the lock and run records: `up`, `down` and `reset` as the library runs
//! them. Each takes plain options and a [`Frontend`], reports through events, and returns the
//! finished run's record together with its failure (if any) — the caller renders both.

pub mod backup;
pub mod bundle;
pub mod events;
pub mod gpu;
pub mod lock;
pub mod replace;
pub mod run;
pub mod runs;
pub mod scale;
pub mod stages;
pub mod state;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Environment, Project};
use crate::engine::events::{EventKind, Frontend, Question, Verdict};
use crate::engine::lock::EnvLock;
use crate::engine::run::Run;
use crate::engine::runs::{RunSummary, StageRecord};
use crate::engine::stages::Ctx;
use crate::engine::state::{EnvState, StageState};
use crate::failure::{Failure, FailureKind, bad_input};
use crate::runner::{Capture, Cmd, Interrupt, Redactor};
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

/// Which stages a bring-up runs: `only` one, or `from`..=`to` (defaults: the first and the
/// last), or with `resume` from the stage the last run did not finish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageSelection {
    pub only: Option<Stage>,
    pub from: Option<Stage>,
    pub to: Option<Stage>,
    pub resume: bool,
}

/// Everything that shapes a bring-up run (`up`, and `reset`'s second half).
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Environment name or directory.
    pub env: String,
    pub stages: StageSelection,
    /// Show each stage's commands (and the plan when Proxmox is reachable); change nothing.
    pub dry_run: bool,
    /// Let a plan replace or destroy existing cluster VMs.
    pub allow_replace: bool,
    /// Terraform parallelism.
    pub parallelism: u32,
    /// Remove a stale lock left by a dead em-infra process (never a live one).
    pub clear_stale_lock: bool,
}

/// `down` (and `reset`'s first half).
#[derive(Debug, Clone)]
pub struct DownOptions {
    pub env: String,
    /// The user already confirmed (`--yes`): do not ask.
    pub yes: bool,
    /// Give up on `terraform destroy` after this long.
    pub timeout: Duration,
    pub clear_stale_lock: bool,
}

/// How a day-2 change (`scale`, `node replace`, `gpu`) runs: the same knobs for each.
#[derive(Debug, Clone)]
pub struct ChangeOptions {
    /// Confirmed already (`--yes`).
    pub yes: bool,
    /// Check and show the change; change nothing.
    pub dry_run: bool,
    /// How long a removed node's pods may take to be evicted.
    pub drain_timeout: Duration,
    /// Delete the pods that cannot be evicted in time.
    pub force: bool,
    /// Terraform parallelism.
    pub parallelism: u32,
    pub clear_stale_lock: bool,
}

impl ChangeOptions {
    /// The drain this change does for the nodes it removes.
    pub(crate) fn drain(&self) -> crate::kube::drain::DrainOptions {
        crate::kube::drain::DrainOptions {
            timeout: self.drain_timeout,
            force: self.force,
            ..crate::kube::drain::DrainOptions::default()
        }
    }
}

/// A finished run: its record (also in `summary.json`), where the records are, and the failure
/// that ended it. The caller reports the failure after showing the record.
#[derive(Debug)]
pub struct RunReport {
    pub summary: RunSummary,
    pub dir: PathBuf,
    pub failure: Option<anyhow::Error>,
}

impl RunReport {
    /// The run's failure as this call's result.
    pub fn into_result(self) -> anyhow::Result<()> {
        self.failure.map_or(Ok(()), Err)
    }
}

/// The stages a run executes, from the selection and (for `resume`) the recorded state.
pub fn select_stages(sel: &StageSelection, state: &EnvState) -> anyhow::Result<Vec<Stage>> {
    if let Some(stage) = sel.only {
        return Ok(vec![stage]);
    }
    let from = if sel.resume {
        match state.resume_point() {
            Some(stage) => stage,
            None => return Ok(Vec::new()),
        }
    } else {
        sel.from.unwrap_or(Stage::Preflight)
    };
    let to = sel.to.unwrap_or(Stage::Verify);
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

/// Take the environment's lock for a run; a cleared stale lock is reported once the run starts.
pub(crate) fn lock(env: &Environment, command: &str, clear_stale: bool) -> anyhow::Result<EnvLock> {
    EnvLock::acquire(&env.state_dir, command, clear_stale)
}

/// `em-infra up`: run the selected stages, recording each one. `None`: `resume` found nothing to
/// continue (the last run finished every stage it started).
pub fn up(
    project: &Project,
    opts: &UpOptions,
    frontend: &dyn Frontend,
) -> anyhow::Result<Option<RunReport>> {
    let env = project.environment(&opts.env)?;
    if !opts.dry_run {
        env.own_tfvars()?;
    }
    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    // A dry run changes nothing, so it neither takes the lock nor touches state.json.
    let lock = if opts.dry_run {
        None
    } else {
        Some(lock(&env, "up", opts.clear_stale_lock)?)
    };
    let mut state = EnvState::load(&env.state_dir, &env.name)?;
    let stages = select_stages(&opts.stages, &state)?;
    if stages.is_empty() {
        return Ok(None);
    }
    let tfvars = env.default_tfvars();
    let ctx = Ctx {
        project,
        env: &env,
        tfvars,
        parallelism: opts.parallelism,
        allow_replace: opts.allow_replace,
        expected_losses: Vec::new(),
        replace: Vec::new(),
        limit: Vec::new(),
        dry_run: opts.dry_run,
    };
    let command = if opts.dry_run { "up --dry-run" } else { "up" };
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        command,
        Redactor::from_env(),
        Interrupt::install()?,
        frontend,
        lock.as_ref(),
    )?;
    if opts.stages.resume
        && let Some(last) = state.stages.get(&stages[0])
    {
        run.message(
            stages[0],
            format!(
                "resuming at {}: run {} left it {}",
                stages[0],
                last.run_id,
                if last.result == Verdict::Running {
                    "started and never finished"
                } else {
                    last.result.as_str()
                }
            ),
        )?;
    }
    if opts.dry_run {
        show_planned_nodes(&ctx, &mut run)?;
    }

    let failure = run_stages(&ctx, &mut run, &mut state, &stages)?;
    let verdict = if opts.dry_run && failure.is_none() {
        Verdict::DryRun
    } else {
        Verdict::of_outcome(failure.as_ref())
    };
    finish(run, verdict, failure).map(Some)
}

/// Run `stages` in order within `run`, each start written ahead and each result recorded in
/// `state.json` (not in a dry run); stop at the first failure (a dry run goes on past a preflight
/// failure, to show every stage). `Err` only when the records cannot be written; the stages'
/// failure, if any, is the `Ok` value.
pub(crate) fn run_stages(
    ctx: &Ctx<'_>,
    run: &mut Run<'_>,
    state: &mut EnvState,
    stages: &[Stage],
) -> anyhow::Result<Option<anyhow::Error>> {
    let env = ctx.env;
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
        if !ctx.dry_run {
            // Write-ahead: the start is on disk before the stage runs, so a run that dies inside
            // it (SIGKILL, OOM, power loss) leaves this stage as the resume point.
            state.stages.insert(
                stage,
                StageState {
                    result: Verdict::Running,
                    fingerprint: ctx.fingerprint(stage),
                    started_at,
                    finished_at: None,
                    run_id: run.id.clone(),
                    message: "started; the run ended before it finished".to_string(),
                },
            );
            state.save(&env.state_dir)?;
            run.record_stage(StageRecord::running(stage, started_at))?;
        }
        let outcome = if run.interrupt.is_set() {
            Err(Failure::Interrupted(stage.name().into()).into())
        } else {
            stages::run_stage(stage, ctx, run, state)
        };
        let (verdict, message) = run.finish_stage(
            stage,
            stage.name(),
            started_at,
            Run::elapsed_ms(clock),
            outcome.as_ref().map(stages::Done::verdict),
        )?;
        if !ctx.dry_run {
            state.stages.insert(
                stage,
                StageState {
                    result: verdict,
                    fingerprint: ctx.fingerprint(stage),
                    started_at,
                    finished_at: Some(jiff::Timestamp::now()),
                    run_id: run.id.clone(),
                    message: message.lines().next().unwrap_or_default().to_string(),
                },
            );
            state.save(&env.state_dir)?;
        }
        if let Err(e) = outcome {
            // A dry run shows every stage even when preflight would stop a real run (a newcomer
            // without Proxmox credentials still sees the plan of action); it still fails.
            if ctx.dry_run && crate::failure::kind_of(&e) == Some(FailureKind::Preflight) {
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
    Ok(failure)
}

/// Close the run: `summary.json` and `run_finished`, then hand the record back.
pub(crate) fn finish(
    mut run: Run<'_>,
    verdict: Verdict,
    failure: Option<anyhow::Error>,
) -> anyhow::Result<RunReport> {
    run.finish(verdict, failure.as_ref())?;
    Ok(RunReport {
        summary: run.summary.clone(),
        dir: run.dir.clone(),
        failure,
    })
}

/// `--dry-run` for a newcomer: the nodes the tfvars describe, before any tool runs.
fn show_planned_nodes(ctx: &Ctx<'_>, run: &mut Run<'_>) -> anyhow::Result<()> {
    let report = crate::config::check::check_environment(ctx.project, ctx.env, Some(&ctx.tfvars))?;
    if !report.ok() {
        return Ok(()); // preflight reports the findings
    }
    let table = crate::config::check::nodes_table(&report.nodes);
    run.artifact(Stage::Preflight, "planned-nodes.txt", &table)?;
    run.message(
        Stage::Preflight,
        format!("nodes from {}:\n{table}", ctx.tfvars.display()),
    )
}

/// `em-infra down`: confirm, back up, destroy within a time bound, then clear everything derived.
pub fn down(
    project: &Project,
    opts: &DownOptions,
    frontend: &dyn Frontend,
) -> anyhow::Result<RunReport> {
    let env = project.environment(&opts.env)?;
    if !opts.yes {
        let question = Question::DestroyEnvironment {
            env: env.name.clone(),
            dir: env.dir.display().to_string(),
        };
        if !frontend.confirm(&question)? {
            return Err(bad_input("not confirmed: nothing was destroyed"));
        }
    }
    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    let lock = lock(&env, "down", opts.clear_stale_lock)?;
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        "down",
        Redactor::from_env(),
        Interrupt::install()?,
        frontend,
        Some(&lock),
    )?;
    let failure = destroy(&env, opts, &mut run).err();
    let verdict = Verdict::of_outcome(failure.as_ref());
    finish(run, verdict, failure)
}

fn destroy(env: &Environment, opts: &DownOptions, run: &mut Run<'_>) -> anyhow::Result<()> {
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
                .timeout(opts.timeout);
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
        let forgotten = forget_host_keys(run, stage, NAME, &ips)?;
        Ok(format!(
            "destroyed; removed {} derived file(s); forgot {forgotten} SSH host key(s); backups kept in {}",
            removed.len(),
            env.state_dir.join("backups").display()
        ))
    })();
    let outcome = match &result {
        Ok(message) => Ok((Verdict::Succeeded, message.as_str())),
        Err(e) => Err(e),
    };
    run.finish_stage(stage, NAME, started_at, Run::elapsed_ms(clock), outcome)?;
    result.map(|_| ())
}

/// Remove the cluster's IPs from `~/.ssh/known_hosts` (through the runner, logged like every
/// tool), so recreated VMs (new host keys) are accepted without a scary warning. Returns how many
/// entries were removed; a missing `ssh-keygen` or known_hosts removes none.
pub(crate) fn forget_host_keys(
    run: &mut Run<'_>,
    stage: Stage,
    log_name: &str,
    ips: &[String],
) -> anyhow::Result<usize> {
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(0);
    };
    let known = std::path::Path::new(&home).join(".ssh/known_hosts");
    if !known.is_file() {
        return Ok(0);
    }
    let mut forgotten = 0;
    for ip in ips {
        let cmd = Cmd::new("ssh-keygen", format!("ssh-keygen -R {ip}"))
            .arg("-R")
            .arg(ip)
            .arg("-f")
            .arg(&known)
            .timeout(Duration::from_secs(30));
        match run.exec_logged(stage, log_name, &cmd, Capture::Stdout) {
            Ok(out) if out.success() && out.stdout.contains("updated") => forgotten += 1,
            Ok(_) => {}
            // Not installed: nothing to forget with, and nothing that should fail a destroy.
            Err(e) if crate::failure::kind_of(&e) == Some(FailureKind::Preflight) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(forgotten)
}

/// Nodes out of Kubernetes (cordon, drain, delete the Node objects) as a run's `drain` step: the
/// configure stage's slot in events, its own record and log. For `scale` down and `node replace`.
pub(crate) fn drain_step(
    run: &mut Run<'_>,
    kubeconfig: &std::path::Path,
    nodes: &[String],
    opts: &crate::kube::drain::DrainOptions,
) -> anyhow::Result<()> {
    const NAME: &str = "drain";
    let stage = Stage::Configure;
    let started_at = jiff::Timestamp::now();
    let clock = Instant::now();
    run.emit(Some(stage), EventKind::StageStarted, None, None, NAME)?;
    let mut lines = Vec::new();
    let result = crate::kube::drain::drain_and_delete(kubeconfig, nodes, opts, &mut |line| {
        lines.push(line.to_string())
    });
    for line in lines {
        run.message(stage, line)?;
    }
    let message = match &result {
        Ok(done) => format!(
            "{} node(s) drained and deleted from Kubernetes: {}",
            done.len(),
            nodes.join(", ")
        ),
        Err(_) => String::new(),
    };
    let outcome = match &result {
        Ok(_) => Ok((Verdict::Succeeded, message.as_str())),
        Err(e) => Err(e),
    };
    run.finish_stage(stage, NAME, started_at, Run::elapsed_ms(clock), outcome)?;
    result.map(|_| ())
}
