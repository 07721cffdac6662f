//! `em-infra gpu add --mapping M` and `em-infra gpu remove NAME`.
//!
//! Add: the new entry is appended to `gpu_workers` (comments kept, checked, backed up), and — for
//! an environment on Proxmox — `doctor`'s checks run on that candidate first, so a mapping that
//! does not exist, has no entry for the node, maps a device that is not a GPU or shares its IOMMU
//! group is refused before anything changes. Then provision creates the GPU worker (its slot comes
//! after the others'), configure installs its stack, verify checks it.
//!
//! Remove: only the last GPU worker can go without renumbering the others (slots follow the list's
//! order, and a renumbered node is a replaced VM). It is drained and its Node deleted, its entry
//! removed, and provision destroys only its VM, which frees the device.

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

/// What changes, and how a run that changes it behaves.
#[derive(Debug, Clone)]
pub enum GpuChange {
    Add {
        mapping: String,
        /// The Proxmox node that holds the GPU, when not the environment's default.
        proxmox_node: Option<String>,
    },
    Remove {
        name: String,
    },
}

#[derive(Debug, Clone)]
pub struct GpuOptions {
    pub env: String,
    pub what: GpuChange,
    pub change: ChangeOptions,
}

#[derive(Debug)]
pub enum GpuOutcome {
    /// A dry run: the node that would be added or removed.
    Planned { node: String },
    Ran {
        node: String,
        report: Box<RunReport>,
    },
}

pub fn gpu(
    project: &Project,
    opts: &GpuOptions,
    frontend: &dyn Frontend,
) -> anyhow::Result<GpuOutcome> {
    let env = project.environment(&opts.env)?;
    let tfvars = env.own_tfvars()?;
    let outputs = crate::inventory::load_outputs(&env.tfstate()).map_err(|e| {
        bad_input(format!(
            "{e:#}; GPU workers are added to a provisioned cluster: bring it up first (`em-infra up --env {}`)",
            env.name
        ))
    })?;
    let mut gpus: Vec<&str> = outputs
        .nodes
        .iter()
        .filter(|n| n.role == Role::GpuWorker)
        .map(|n| n.name.as_str())
        .collect();
    gpus.sort_by(|a, b| natural_cmp(a, b));
    let text = std::fs::read_to_string(&tfvars)?;
    let mut edit = TfvarsEdit::parse(&text, &tfvars)?;
    let (node, losses) = match &opts.what {
        GpuChange::Add {
            mapping,
            proxmox_node,
        } => {
            let mut item = format!("{{ mapping = {} }}", Expression::from(mapping.as_str()));
            if let Some(p) = proxmox_node {
                item = format!(
                    "{{ mapping = {}, proxmox_node = {} }}",
                    Expression::from(mapping.as_str()),
                    Expression::from(p.as_str())
                );
            }
            let item = hcl_edit::parser::parse_expr(&item)
                .map_err(|e| bad_input(format!("--mapping {mapping}: {e}")))?;
            edit.push_to_list("gpu_workers", item)?;
            (
                format!("{}-gpu-{}", outputs.cluster_name, gpus.len() + 1),
                Vec::new(),
            )
        }
        GpuChange::Remove { name } => {
            match gpus.last() {
                Some(last) if last == name => {}
                Some(last) if gpus.contains(&name.as_str()) => {
                    return Err(bad_input(format!(
                        "{name}: only the last GPU worker ({last}) can be removed; removing another \
                         would renumber the ones after it (new names and IPs, replaced VMs)"
                    )));
                }
                _ => {
                    return Err(bad_input(format!(
                        "{name}: not a GPU worker of this cluster; GPU workers: {}",
                        if gpus.is_empty() {
                            "none".to_string()
                        } else {
                            gpus.join(", ")
                        }
                    )));
                }
            }
            edit.pop_from_list("gpu_workers")?;
            (name.clone(), vec![name.clone()])
        }
    };
    // The candidate must pass check — and, on Proxmox, doctor's checks of the host and its GPUs.
    let problems = with_candidate(&env, &edit.render(), |c| {
        candidate_problems(project, &env, c)
    })?;
    if let Some(problems) = problems {
        return Err(bad_input(format!(
            "{node}: {problems}; nothing was changed"
        )));
    }
    if opts.change.dry_run {
        return Ok(GpuOutcome::Planned { node });
    }
    if !opts.change.yes
        && !frontend.confirm(&Question::GpuChange {
            env: env.name.clone(),
            node: node.clone(),
            adding: losses.is_empty(),
        })?
    {
        return Err(bad_input("not confirmed: nothing was changed"));
    }

    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    let lock = lock(&env, "gpu", opts.change.clear_stale_lock)?;
    let mut state = EnvState::load(&env.state_dir, &env.name)?;
    let command = match &opts.what {
        GpuChange::Add { mapping, .. } => format!("gpu add --mapping {mapping}"),
        GpuChange::Remove { name } => format!("gpu remove {name}"),
    };
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        &command,
        Redactor::from_env(),
        Interrupt::install()?,
        frontend,
        Some(&lock),
    )?;
    let failure = (|| -> anyhow::Result<Option<anyhow::Error>> {
        if !losses.is_empty()
            && let Err(e) = drain_step(&mut run, &env.kubeconfig(), &losses, &opts.change.drain())
        {
            return Ok(Some(e));
        }
        write_checked(project, &env, &tfvars, &edit.render())?;
        let ctx = Ctx {
            project,
            env: &env,
            tfvars: tfvars.clone(),
            parallelism: opts.change.parallelism,
            allow_replace: false,
            expected_losses: losses.clone(),
            replace: Vec::new(),
            limit: Vec::new(),
            dry_run: false,
        };
        run_stages(
            &ctx,
            &mut run,
            &mut state,
            &[Stage::Provision, Stage::Configure, Stage::Verify],
        )
    })();
    let failure = failure.unwrap_or_else(Some);
    let verdict = Verdict::of_outcome(failure.as_ref());
    Ok(GpuOutcome::Ran {
        node,
        report: Box::new(finish(run, verdict, failure)?),
    })
}

/// What is wrong with the candidate tfvars: `check`'s findings, or (on Proxmox) every failed
/// doctor check of the Proxmox group. `None`: nothing.
fn candidate_problems(
    project: &Project,
    env: &crate::config::Environment,
    candidate: &std::path::Path,
) -> anyhow::Result<Option<String>> {
    if let Some(findings) = check_findings(project, env, candidate)? {
        return Ok(Some(findings));
    }
    if !crate::doctor::uses_proxmox(env) {
        return Ok(None);
    }
    let doctor = crate::doctor::checks(
        project,
        env,
        Some(candidate),
        None,
        &mut crate::doctor::standalone_exec,
    )?;
    let failed: Vec<String> = doctor
        .failures()
        .filter(|c| c.group == crate::doctor::Group::Proxmox)
        .map(|c| {
            format!(
                "{}: {}{}",
                c.name,
                c.detail,
                c.fix
                    .as_ref()
                    .map(|f| format!(" (fix: {f})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    Ok((!failed.is_empty()).then(|| failed.join("; ")))
}
