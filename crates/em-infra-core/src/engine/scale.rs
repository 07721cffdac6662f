//! `em-infra scale --workers N`: change the number of workers with one command.
//!
//! Up: the tfvars' `worker_count` is raised (comments kept, checked, backed up), then provision
//! creates only the new VMs (the topology's stable slots never renumber the others), configure
//! joins them, verify checks them. Down: the highest-numbered workers are cordoned, drained through
//! the Eviction API (PodDisruptionBudgets respected, bounded; `force` deletes what cannot be
//! evicted) and their Node objects deleted, so a future VM with the same name joins cleanly; then
//! `worker_count` is lowered and provision destroys only those VMs — any other destructive change
//! in the plan is still refused. One run records it all, like `up`; a failure stops there with the
//! cluster serving, and `em-infra up --resume` continues.

use hcl_edit::expr::Expression;

use crate::config::Project;
use crate::config::edit::{TfvarsEdit, check_findings, with_candidate, write_checked};
use crate::engine::events::{Frontend, Question, Verdict};
use crate::engine::run::Run;
use crate::engine::stages::Ctx;
use crate::engine::state::EnvState;
use crate::engine::{ChangeOptions, RunReport, Stage, drain_step, finish, lock, run_stages};
use crate::failure::bad_input;
use crate::inventory::{Role, natural_cmp};
use crate::runner::{Interrupt, Redactor};

/// What `scale` is asked to do.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    pub env: String,
    pub workers: u32,
    pub change: ChangeOptions,
}

/// The change `scale` makes (also what a dry run shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePlan {
    pub from: u32,
    pub to: u32,
    /// Worker names that will be created.
    pub added: Vec<String>,
    /// Worker names that will be drained, deleted from Kubernetes and destroyed.
    pub removed: Vec<String>,
}

/// What `scale` did.
#[derive(Debug)]
pub enum ScaleOutcome {
    /// The cluster already has that many workers.
    Unchanged(ScalePlan),
    /// A dry run: the plan, nothing changed.
    Planned(ScalePlan),
    Ran(ScalePlan, Box<RunReport>),
}

pub fn scale(
    project: &Project,
    opts: &ScaleOptions,
    frontend: &dyn Frontend,
) -> anyhow::Result<ScaleOutcome> {
    let env = project.environment(&opts.env)?;
    let tfvars = env.own_tfvars()?;
    let outputs = crate::inventory::load_outputs(&env.tfstate()).map_err(|e| {
        bad_input(format!(
            "{e:#}; scale changes a provisioned cluster: bring it up first (`em-infra up --env {}`)",
            env.name
        ))
    })?;
    let text = std::fs::read_to_string(&tfvars)?;
    let mut edit = TfvarsEdit::parse(&text, &tfvars)?;
    let cluster = &outputs.cluster_name;
    let mut workers: Vec<&str> = outputs
        .nodes
        .iter()
        .filter(|n| n.role == Role::Worker)
        .map(|n| n.name.as_str())
        .collect();
    workers.sort_by(|a, b| natural_cmp(a, b));
    let control_planes: Vec<String> = outputs
        .nodes
        .iter()
        .filter(|n| n.role == Role::ControlPlane)
        .map(|n| n.name.clone())
        .collect();
    let from = u32::try_from(workers.len()).unwrap_or(u32::MAX);
    let plan = ScalePlan {
        from,
        to: opts.workers,
        added: (from..opts.workers)
            .map(|i| format!("{cluster}-worker-{}", i + 1))
            .collect(),
        removed: workers
            .iter()
            .skip(opts.workers as usize)
            .map(|n| n.to_string())
            .collect(),
    };
    // The new count must pass the same rules as any tfvars (range, addresses, VM IDs) before
    // anything changes: checked on a candidate file that is only put in place later.
    edit.set("worker_count", Expression::from(u64::from(opts.workers)));
    if plan.from == plan.to {
        return Ok(ScaleOutcome::Unchanged(plan));
    }
    if opts.change.dry_run {
        validate_only(project, &env, &edit)?;
        return Ok(ScaleOutcome::Planned(plan));
    }
    if !opts.change.yes
        && !frontend.confirm(&Question::Scale {
            env: env.name.clone(),
            from: plan.from,
            to: plan.to,
            removed: plan.removed.clone(),
        })?
    {
        return Err(bad_input("not confirmed: nothing was changed"));
    }
    validate_only(project, &env, &edit)?;

    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    let lock = lock(&env, "scale", opts.change.clear_stale_lock)?;
    let mut state = EnvState::load(&env.state_dir, &env.name)?;
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        &format!("scale --workers {}", opts.workers),
        Redactor::from_env(),
        Interrupt::install()?,
        frontend,
        Some(&lock),
    )?;
    let failure = (|| -> anyhow::Result<Option<anyhow::Error>> {
        if !plan.removed.is_empty()
            && let Err(e) = drain_step(
                &mut run,
                &env.kubeconfig(),
                &plan.removed,
                &opts.change.drain(),
            )
        {
            return Ok(Some(e));
        }
        let backup = write_checked(project, &env, &tfvars, &edit.render())?;
        run.message(
            Stage::Provision,
            format!(
                "worker_count = {} in {}{}",
                opts.workers,
                tfvars.display(),
                backup
                    .map(|b| format!(" (previous file: {})", b.display()))
                    .unwrap_or_default()
            ),
        )?;
        let ctx = Ctx {
            project,
            env: &env,
            tfvars: tfvars.clone(),
            parallelism: opts.change.parallelism,
            allow_replace: false,
            expected_losses: plan.removed.clone(),
            replace: Vec::new(),
            // Up: only the new workers (and the control plane they join) need Ansible; the
            // others are untouched. Down: nothing is new, every remaining host is checked.
            limit: if plan.added.is_empty() {
                Vec::new()
            } else {
                control_planes
                    .iter()
                    .cloned()
                    .chain(plan.added.iter().cloned())
                    .collect()
            },
            dry_run: false,
        };
        run_stages(
            &ctx,
            &mut run,
            &mut state,
            &[Stage::Provision, Stage::Configure, Stage::Verify],
        )
    })();
    let failure = match failure {
        Ok(f) => f,
        Err(e) => Some(e),
    };
    let verdict = Verdict::of_outcome(failure.as_ref());
    Ok(ScaleOutcome::Ran(
        plan,
        Box::new(finish(run, verdict, failure)?),
    ))
}

/// Check the edited tfvars by the contract's rules without writing it.
fn validate_only(
    project: &Project,
    env: &crate::config::Environment,
    edit: &TfvarsEdit,
) -> anyhow::Result<()> {
    match with_candidate(env, &edit.render(), |c| check_findings(project, env, c))? {
        None => Ok(()),
        Some(findings) => Err(bad_input(format!(
            "--workers: {findings}; nothing was changed"
        ))),
    }
}
