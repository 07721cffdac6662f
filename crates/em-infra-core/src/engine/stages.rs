//! What each stage does. A stage returns `Ok(message)` when done (or skipped with a reason) and a
//! classified [`Failure`] otherwise; the pipeline in `engine/mod.rs` records and reports it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ansible;
use crate::config::{Environment, Project};
use crate::engine::Stage;
use crate::engine::events::Verdict;
use crate::engine::run::Run;
use crate::engine::state::{EnvState, Fingerprint};
use crate::failure::Failure;
use crate::runner::{Capture, Cmd};
use crate::terraform::{self, Terraform};

/// How a stage ended when it did not fail.
pub enum Done {
    Succeeded(String),
    Skipped(String),
}

impl Done {
    pub fn verdict(&self) -> (Verdict, &str) {
        match self {
            Done::Succeeded(m) => (Verdict::Succeeded, m),
            Done::Skipped(m) => (Verdict::Skipped, m),
        }
    }
}

/// Everything a stage reads.
pub struct Ctx<'a> {
    pub project: &'a Project,
    pub env: &'a Environment,
    pub tfvars: PathBuf,
    pub parallelism: u32,
    pub allow_replace: bool,
    /// Nodes whose VMs this run means to lose (`scale` down destroys them, `node replace`
    /// recreates them): their destroys and replacements are not refused.
    pub expected_losses: Vec<String>,
    /// Resource instance addresses to plan for replacement (`node replace`).
    pub replace: Vec<String>,
    /// Hosts configure runs on (`ansible-playbook --limit`); empty: every host. `scale` up
    /// configures the control plane and the new workers only.
    pub limit: Vec<String>,
    pub dry_run: bool,
}

impl Ctx<'_> {
    /// Whether the environment uses the Proxmox provider (the offline fixture does not).
    pub fn uses_proxmox(&self) -> bool {
        crate::doctor::uses_proxmox(self.env)
    }

    fn terraform(&self) -> anyhow::Result<Terraform> {
        let bin = terraform::binary().ok_or_else(|| {
            Failure::Preflight(
                "neither terraform nor tofu is on PATH: install Terraform ≥ 1.9 or OpenTofu".into(),
            )
        })?;
        Ok(Terraform::new(bin, &self.env.dir))
    }

    /// The stage's input fingerprint, recorded with its result.
    pub fn fingerprint(&self, stage: Stage) -> String {
        let base = Fingerprint::default()
            .file(&self.tfvars)
            .tf_files(&self.env.dir);
        match stage {
            Stage::Preflight | Stage::Prepare | Stage::Provision => base,
            Stage::Configure | Stage::Verify => base.file(&self.env.tfstate()),
        }
        .finish()
    }
}

pub fn run_stage(
    stage: Stage,
    ctx: &Ctx<'_>,
    run: &mut Run<'_>,
    state: &mut EnvState,
) -> anyhow::Result<Done> {
    match stage {
        Stage::Preflight => preflight(ctx, run),
        Stage::Prepare => prepare(ctx, run),
        Stage::Provision => provision(ctx, run, state),
        Stage::Configure => configure(ctx, run),
        Stage::Verify => verify(ctx, run),
    }
}

fn preflight(ctx: &Ctx<'_>, run: &mut Run<'_>) -> anyhow::Result<Done> {
    use crate::doctor::{Group, Status};
    let stage = Stage::Preflight;
    setup_runtime(ctx, run)?;
    // The preflight stage is `em-infra doctor`: local tools and inputs, then the Proxmox host.
    let report =
        crate::doctor::checks(ctx.project, ctx.env, Some(&ctx.tfvars), None, &mut |cmd| {
            run.exec(stage, cmd, Capture::Stdout)
        })?;
    // A provisioned node that SSH cannot reach stops the run: configure and verify need every
    // node, and nothing before them repairs one. Except where the nodes are not Proxmox VMs (the
    // provider-free fixture's nodes are stand-ins that exist only with the test lab).
    let nodes_are_vms = ctx.uses_proxmox();
    let blocks = |c: &crate::doctor::Check| {
        c.group != Group::Cluster || nodes_are_vms || c.name == crate::doctor::STATE_CHECK
    };
    for check in &report.checks {
        run.check_line(stage, check.line())?;
        if check.status == Status::Fail {
            if let Some(fix) = &check.fix {
                run.message(stage, format!("  fix: {fix}"))?;
            }
            if !blocks(check) {
                run.message(
                    stage,
                    format!(
                        "  not blocking: {} does not use Proxmox, its nodes are stand-ins",
                        ctx.env.name
                    ),
                )?;
            }
        }
    }
    let blocking: Vec<&crate::doctor::Check> = report.failures().filter(|c| blocks(c)).collect();
    if blocking.is_empty() {
        return Ok(Done::Succeeded(report.summary()));
    }
    // Each failure with its fix: for an unreachable node that is the host, the probe and what to do.
    let summary = blocking
        .iter()
        .map(|c| match (&c.fix, c.group) {
            (Some(fix), Group::Cluster) => format!("{}: {} (fix: {fix})", c.name, c.detail),
            _ => format!("{}: {}", c.name, c.detail),
        })
        .collect::<Vec<_>>()
        .join("; ");
    // Wrong inputs and a damaged state file are the user's to fix (exit 2); anything else is the
    // machine's (3): a missing tool, the Proxmox host, an unreachable node of the cluster.
    if blocking.iter().all(|c| c.name == "tfvars") {
        Err(crate::failure::bad_input(format!(
            "{summary} (run `em-infra check --env {}` for every finding)",
            ctx.env.name
        )))
    } else if blocking
        .iter()
        .all(|c| c.name == "tfvars" || c.name == crate::doctor::STATE_CHECK)
    {
        Err(crate::failure::bad_input(summary))
    } else {
        Err(Failure::Preflight(summary).into())
    }
}

/// On first use, the pinned Ansible runtime goes into `.venv` (said, logged, and run through the
/// runner like every tool); a later run finds it there. Also in a dry run: it changes nothing
/// outside the repository, and without it the dry run could not check the tools.
fn setup_runtime(ctx: &Ctx<'_>, run: &mut Run<'_>) -> anyhow::Result<()> {
    let stage = Stage::Preflight;
    let cmds = ansible::runtime_setup(ctx.project);
    if cmds.is_empty() {
        return Ok(());
    }
    run.message(
        stage,
        format!(
            "setting up the pinned Ansible runtime in .venv ({}; first run only)",
            ansible::RUNTIME_REQUIREMENTS
        ),
    )?;
    for cmd in &cmds {
        let out = run.exec(stage, cmd, Capture::LogOnly)?;
        let venv_module_missing = out
            .tail
            .iter()
            .any(|l| l.contains("ensurepip is not available"));
        let detail = venv_module_missing.then(|| {
            "python3's venv module is missing: `sudo apt install python3-venv`".to_string()
        });
        run.check_explained(stage, stage.name(), cmd, out, detail)?;
    }
    ansible::mark_runtime_installed(ctx.project)
}

fn prepare(ctx: &Ctx<'_>, run: &mut Run<'_>) -> anyhow::Result<Done> {
    let stage = Stage::Prepare;
    if !ctx.uses_proxmox() {
        return Ok(Done::Skipped(
            "the environment does not use Proxmox: no template to prepare".into(),
        ));
    }
    let loaded = crate::config::topology::load(ctx.env, Some(&ctx.tfvars))?;
    let Some(inputs) = loaded.inputs else {
        return Err(crate::failure::bad_input(format!(
            "{} has findings: run `em-infra check --env {}`",
            ctx.tfvars.display(),
            ctx.env.name
        )));
    };
    if ctx.dry_run && std::env::var_os("PROXMOX_VE_ENDPOINT").is_none() {
        run.message(
            stage,
            "would run: ansible-playbook -i <proxmox_hosts inventory> \
             ansible/playbooks/prepare-template.yml on the host PROXMOX_VE_ENDPOINT names",
        )?;
        return Ok(Done::Skipped(
            "dry run: PROXMOX_VE_ENDPOINT is not set, so the template was not inspected".into(),
        ));
    }
    let mut cmd = crate::prepare::playbook_cmd(ctx.project, ctx.env, &inputs, false, &run.dir)?;
    if ctx.dry_run {
        // The play stops after deciding: create, skip, newer or refuse — nothing is built.
        cmd = cmd
            .arg("--extra-vars")
            .arg("proxmox_template_decide_only=true");
    }
    run.exec_checked(stage, &cmd, Capture::LogOnly)?;
    let message = match crate::prepare::read_result(&run.dir)? {
        Some(result) => format!(
            "template {}: {} ({})",
            result.vm_id, result.decision, result.message
        ),
        None => "the template play finished without a result".to_string(),
    };
    if ctx.dry_run {
        Ok(Done::Skipped(format!("dry run: {message}")))
    } else {
        Ok(Done::Succeeded(message))
    }
}

fn provision(ctx: &Ctx<'_>, run: &mut Run<'_>, state: &mut EnvState) -> anyhow::Result<Done> {
    let stage = Stage::Provision;
    let tf = ctx.terraform()?;
    let plan_file = run.dir.join("plan.tfplan");
    let plan = tf.plan(&ctx.tfvars, &plan_file, ctx.parallelism, &ctx.replace);

    if ctx.dry_run {
        run.message(stage, format!("would run: {}", tf.init().display()))?;
        run.message(stage, format!("would run: {}", plan.display()))?;
        run.message(
            stage,
            "would run: terraform apply <saved plan> (only when the plan has changes)",
        )?;
        let reachable = !ctx.uses_proxmox() || std::env::var_os("PROXMOX_VE_ENDPOINT").is_some();
        if !tf.initialized() || !reachable {
            return Ok(Done::Skipped(
                "no Terraform plan in a dry run: the environment is not initialized or Proxmox is not configured".into(),
            ));
        }
        let summary = plan_and_summarize(ctx, run, &tf, &plan, &plan_file)?;
        return Ok(Done::Skipped(format!(
            "dry run, plan: {}",
            summary.headline()
        )));
    }

    let init_fp = Fingerprint::default().tf_files(&ctx.env.dir).finish();
    if !tf.initialized() || state.terraform_init.as_deref() != Some(init_fp.as_str()) {
        run.exec_checked(stage, &tf.init(), Capture::LogOnly)?;
        state.terraform_init = Some(init_fp);
        state.save(&ctx.env.state_dir)?;
    }

    let summary = plan_and_summarize(ctx, run, &tf, &plan, &plan_file)?;
    let destructive: Vec<String> = summary
        .destructive()
        .filter(|c| {
            !(matches!(
                c.action,
                terraform::Action::Destroy | terraform::Action::Replace
            ) && c
                .node
                .as_ref()
                .is_some_and(|n| ctx.expected_losses.contains(n)))
        })
        .map(|c| {
            format!(
                "{:?} {}{}",
                c.action,
                c.address,
                c.node
                    .as_ref()
                    .map(|n| format!(" (node {n})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !destructive.is_empty() && !ctx.allow_replace {
        return Err(Failure::Refused(format!(
            "the plan would lose existing resources: {}. Nothing was applied. Read {} and rerun with \
             --allow-replace if that is what you want",
            destructive.join(", "),
            run.dir.join("plan-summary.txt").display()
        ))
        .into());
    }
    if summary.is_empty() {
        keep_restore_point(ctx, run)?;
        return Ok(Done::Succeeded(
            "no changes: infrastructure matches the configuration".into(),
        ));
    }
    if let Some(backup) = crate::engine::backup::backup_tfstate(ctx.env, "pre-apply")? {
        run.message(stage, format!("state backed up: {}", backup.id))?;
    }
    run.exec_checked(
        stage,
        &tf.apply(&plan_file, ctx.parallelism),
        Capture::LogOnly,
    )?;
    keep_restore_point(ctx, run)?;
    Ok(Done::Succeeded(format!("applied: {}", summary.headline())))
}

/// After a successful provision: the state files private (they hold the cluster's addresses and
/// IDs, and Terraform writes them with the umask's mode), and a backup of this good state, so
/// `em-infra state restore` always has one (a copy identical to the newest backup is not taken
/// again, so a no-op run adds none).
fn keep_restore_point(ctx: &Ctx<'_>, run: &mut Run<'_>) -> anyhow::Result<()> {
    for file in [
        ctx.env.tfstate(),
        ctx.env.dir.join("terraform.tfstate.backup"),
    ] {
        if file.is_file() {
            crate::fsutil::make_private(&file)?;
        }
    }
    if let crate::engine::backup::BackupOutcome::Created(backup) =
        crate::engine::backup::take_backup(ctx.env, "post-apply")?
    {
        run.message(Stage::Provision, format!("restore point: {}", backup.id))?;
    }
    Ok(())
}

/// `terraform plan` to a saved file, then its summary as artifacts and messages.
fn plan_and_summarize(
    ctx: &Ctx<'_>,
    run: &mut Run<'_>,
    tf: &Terraform,
    plan: &Cmd,
    plan_file: &Path,
) -> anyhow::Result<terraform::PlanSummary> {
    let stage = Stage::Provision;
    let outcome = run.exec(stage, plan, Capture::LogOnly)?;
    // -detailed-exitcode: 0 = no changes, 2 = changes, anything else = error.
    if outcome.interrupted || !matches!(outcome.code, Some(0) | Some(2)) {
        run.check(stage, stage.name(), plan, outcome)?;
        unreachable!("check returns an error for a failed plan");
    }
    let show = run.exec_checked(stage, &tf.show_json(plan_file), Capture::Stdout)?;
    let summary = terraform::summarize(&show.stdout)?;
    run.artifact(
        stage,
        "plan-summary.json",
        &serde_json::to_string_pretty(&summary)?,
    )?;
    run.artifact(stage, "plan-summary.txt", &summary.render())?;
    for line in summary.render().lines() {
        run.message(stage, format!("plan: {line}"))?;
    }
    let _ = ctx;
    Ok(summary)
}

fn configure(ctx: &Ctx<'_>, run: &mut Run<'_>) -> anyhow::Result<Done> {
    let stage = Stage::Configure;
    let mut site = ansible::playbook(
        ctx.project,
        ctx.env,
        "site.yml",
        "ansible-playbook site.yml",
    );
    if !ctx.limit.is_empty() {
        site = site.arg("--limit").arg(ctx.limit.join(","));
    }
    if ctx.dry_run && !ctx.env.tfstate().is_file() {
        run.message(stage, format!("would run: {}", site.display()))?;
        return Ok(Done::Skipped(
            "dry run: no Terraform state yet (provision creates it)".into(),
        ));
    }
    let outputs = crate::inventory::load_outputs(&ctx.env.tfstate())?;
    run.artifact(
        stage,
        "inventory.json",
        &serde_json::to_string_pretty(&crate::inventory::inventory_json(&outputs))?,
    )?;
    if ctx.dry_run {
        run.message(stage, format!("would run: {}", site.display()))?;
        return Ok(Done::Skipped(format!(
            "dry run: {} hosts in the inventory",
            outputs.nodes.len()
        )));
    }
    let token = ensure_token(&ctx.env.token_file())?;
    run.redactor.add(token);
    let out = run.exec(stage, &site, Capture::Stdout)?;
    // A failure's summary names the hosts and tasks that failed; the log has the rest.
    let failed = ansible::failures(&out.stdout);
    let detail = (!failed.is_empty()).then(|| ansible::describe_failures(&failed));
    let out = run.check_explained(stage, stage.name(), &site, out, detail)?;
    let recap = ansible::parse_recap(&out.stdout);
    let changed: u32 = recap.iter().map(|(_, c, _)| c).sum();
    Ok(Done::Succeeded(format!(
        "{} hosts configured, changed={changed}",
        recap.len()
    )))
}

/// The k3s join token: created once per environment (0600), then reused.
pub fn ensure_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let token = existing.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::fsutil::write_secret(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

fn verify(ctx: &Ctx<'_>, run: &mut Run<'_>) -> anyhow::Result<Done> {
    let stage = Stage::Verify;
    let checks = ansible::playbook(
        ctx.project,
        ctx.env,
        "post-checks.yml",
        "ansible-playbook post-checks.yml",
    );
    if ctx.dry_run {
        run.message(
            stage,
            "would check SSH (port 22) on every node in the Terraform state",
        )?;
        run.message(stage, format!("would run: {}", checks.display()))?;
        run.message(
            stage,
            format!(
                "would check through the Kubernetes API ({}): nodes Ready, labels, kubelet \
                 versions, GPUs, smoke workloads",
                ctx.env.kubeconfig().display()
            ),
        )?;
        return Ok(Done::Skipped("dry run".into()));
    }
    let outputs = crate::inventory::load_outputs(&ctx.env.tfstate())?;
    let mut unreachable = Vec::new();
    for node in &outputs.nodes {
        let addr: SocketAddr = format!("{}:22", node.ip).parse()?;
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(_) => run.message(
                stage,
                format!("✓ {} ({}) answers on port 22", node.name, node.ip),
            )?,
            Err(e) => {
                run.message(stage, format!("✗ {} ({}) port 22: {e}", node.name, node.ip))?;
                unreachable.push(format!("{} ({})", node.name, node.ip));
            }
        }
    }
    if !unreachable.is_empty() {
        return Err(Failure::Stage {
            stage: stage.name().into(),
            message: format!(
                "not reachable over SSH: {}. Check the VMs are running (Proxmox UI or `qm list`) and the network",
                unreachable.join(", ")
            ),
        }
        .into());
    }
    // The in-cluster view from the control plane (the same checks site.yml ends with).
    run.exec_checked(stage, &checks, Capture::LogOnly)?;

    // The user's view: the Kubernetes API through the fetched kubeconfig.
    let opts = crate::kube::VerifyOptions::from_env()?;
    if !opts.api {
        run.message(
            stage,
            "- Kubernetes API checks skipped (EM_INFRA_VERIFY_API=false)",
        )?;
        return Ok(Done::Succeeded(format!(
            "{} nodes reachable and Ready (post-checks); API checks skipped",
            outputs.nodes.len()
        )));
    }
    let expected = crate::kube::ExpectedCluster::from_outputs(
        &outputs,
        crate::kube::pinned_k3s_version(&ctx.project.root)?,
    );
    let mut progress = Vec::new();
    let report = crate::kube::verify(&ctx.env.kubeconfig(), &expected, &opts, &mut |line| {
        progress.push(line.to_string())
    });
    for line in progress {
        run.message(stage, line)?;
    }
    let report = report?;
    run.artifact(
        stage,
        "nodes.json",
        &serde_json::to_string_pretty(&report.to_json())?,
    )?;
    run.message(stage, crate::kube::nodes_table(&report))?;
    report.ensure_ok()?;
    Ok(Done::Succeeded(format!(
        "{} nodes Ready through the Kubernetes API, smoke workloads passed",
        outputs.nodes.len()
    )))
}
