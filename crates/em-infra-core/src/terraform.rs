//! The Terraform commands the stages run, and the plan summary that guards against surprises.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runner::Cmd;

/// Terraform's parallelism unless the user says otherwise: low, because clones of one template
/// contend for the template's lock in Proxmox.
pub const DEFAULT_PARALLELISM: u32 = 2;

/// `terraform` or `tofu`: `EM_INFRA_TERRAFORM` if set, else whichever is on PATH (terraform first).
pub fn binary() -> Option<String> {
    if let Ok(bin) = std::env::var("EM_INFRA_TERRAFORM")
        && !bin.is_empty()
    {
        return Some(bin);
    }
    ["terraform", "tofu"]
        .into_iter()
        .find(|b| on_path(b))
        .map(str::to_string)
}

/// True when `program` is an executable file somewhere on PATH.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Commands against one environment directory.
#[derive(Debug, Clone)]
pub struct Terraform {
    pub bin: String,
    pub dir: PathBuf,
}

impl Terraform {
    pub fn new(bin: impl Into<String>, dir: &Path) -> Self {
        Terraform {
            bin: bin.into(),
            dir: dir.to_path_buf(),
        }
    }

    fn cmd(&self, what: &str, sub: &str) -> Cmd {
        Cmd::new(&self.bin, what)
            .arg(format!("-chdir={}", self.dir.display()))
            .arg(sub)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
    }

    pub fn init(&self) -> Cmd {
        self.cmd("terraform init", "init")
            .args(["-input=false", "-no-color"])
    }

    /// `terraform plan` into `out`; each of `replace` (a resource instance address) is planned
    /// for replacement (`-replace=ADDR`).
    pub fn plan(&self, tfvars: &Path, out: &Path, parallelism: u32, replace: &[String]) -> Cmd {
        self.cmd("terraform plan", "plan")
            .args([
                "-input=false".to_string(),
                "-no-color".to_string(),
                "-detailed-exitcode".to_string(),
                format!("-parallelism={parallelism}"),
                format!("-var-file={}", tfvars.display()),
                format!("-out={}", out.display()),
            ])
            .args(replace.iter().map(|a| format!("-replace={a}")))
    }

    pub fn show_json(&self, plan: &Path) -> Cmd {
        self.cmd("terraform show", "show").args([
            "-json".to_string(),
            "-no-color".to_string(),
            plan.display().to_string(),
        ])
    }

    pub fn apply(&self, plan: &Path, parallelism: u32) -> Cmd {
        self.cmd("terraform apply", "apply").args([
            "-input=false".to_string(),
            "-no-color".to_string(),
            format!("-parallelism={parallelism}"),
            plan.display().to_string(),
        ])
    }

    pub fn destroy(&self, tfvars: &Path, parallelism: u32) -> Cmd {
        self.cmd("terraform destroy", "destroy").args([
            "-auto-approve".to_string(),
            "-input=false".to_string(),
            "-no-color".to_string(),
            format!("-parallelism={parallelism}"),
            format!("-var-file={}", tfvars.display()),
        ])
    }

    /// `terraform init` is needed when the providers/modules cache is missing.
    pub fn initialized(&self) -> bool {
        self.dir.join(".terraform").is_dir()
    }
}

/// What a plan does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Destroy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    /// The cluster node this resource belongs to (the `for_each` key), when there is one.
    pub node: Option<String>,
    pub action: Action,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanSummary {
    pub creates: usize,
    pub updates: usize,
    pub replaces: usize,
    pub destroys: usize,
    pub changes: Vec<ResourceChange>,
    /// Outputs whose value changes (no resource change needed to apply them).
    pub output_changes: usize,
}

impl PlanSummary {
    /// Changes that lose an existing resource: the ones refused without `--allow-replace`.
    pub fn destructive(&self) -> impl Iterator<Item = &ResourceChange> {
        self.changes
            .iter()
            .filter(|c| matches!(c.action, Action::Replace | Action::Destroy))
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.output_changes == 0
    }

    /// One line: `2 to create, 0 to update, 1 to replace, 0 to destroy`.
    pub fn headline(&self) -> String {
        format!(
            "{} to create, {} to update, {} to replace, {} to destroy",
            self.creates, self.updates, self.replaces, self.destroys
        )
    }

    /// Human text: the headline, then one line per changed resource.
    pub fn render(&self) -> String {
        let mut out = self.headline();
        out.push('\n');
        for c in &self.changes {
            let node = c
                .node
                .as_deref()
                .map(|n| format!(" (node {n})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<8} {}{node}\n",
                format!("{:?}", c.action).to_lowercase(),
                c.address
            ));
        }
        out
    }
}

#[derive(Deserialize)]
struct PlanJson {
    #[serde(default)]
    resource_changes: Vec<PlanResource>,
    #[serde(default)]
    output_changes: std::collections::BTreeMap<String, PlanChange>,
}

#[derive(Deserialize)]
struct PlanResource {
    address: String,
    #[serde(default)]
    index: Option<serde_json::Value>,
    change: PlanChange,
}

#[derive(Deserialize)]
struct PlanChange {
    actions: Vec<String>,
}

/// Summarize `terraform show -json <plan>`.
pub fn summarize(plan_json: &str) -> anyhow::Result<PlanSummary> {
    let plan: PlanJson = serde_json::from_str(plan_json)
        .map_err(|e| anyhow::anyhow!("reading the plan JSON: {e}"))?;
    let mut summary = PlanSummary::default();
    for rc in plan.resource_changes {
        let actions: Vec<&str> = rc.change.actions.iter().map(String::as_str).collect();
        let action = match actions.as_slice() {
            ["create"] => Action::Create,
            ["update"] => Action::Update,
            ["delete"] => Action::Destroy,
            ["delete", "create"] | ["create", "delete"] => Action::Replace,
            _ => continue, // no-op, read
        };
        match action {
            Action::Create => summary.creates += 1,
            Action::Update => summary.updates += 1,
            Action::Replace => summary.replaces += 1,
            Action::Destroy => summary.destroys += 1,
        }
        let node = match rc.index {
            Some(serde_json::Value::String(key)) => Some(key),
            _ => node_from_address(&rc.address),
        };
        summary.changes.push(ResourceChange {
            address: rc.address,
            node,
            action,
        });
    }
    summary.output_changes = plan
        .output_changes
        .values()
        .filter(|c| c.actions.iter().any(|a| a != "no-op"))
        .count();
    Ok(summary)
}

/// The last `["key"]` in an address like `module.vm["k3s-dev-worker-1"].proxmox_virtual_environment_vm.this`.
fn node_from_address(address: &str) -> Option<String> {
    let start = address.rfind("[\"")? + 2;
    let end = address[start..].find("\"]")? + start;
    Some(address[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_actions_per_node() {
        let json = r#"{"format_version":"1.2","resource_changes":[
          {"address":"module.vm[\"c-cp-1\"].proxmox_virtual_environment_vm.this","type":"proxmox_virtual_environment_vm","change":{"actions":["no-op"]}},
          {"address":"module.vm[\"c-worker-1\"].proxmox_virtual_environment_vm.this","change":{"actions":["delete","create"]}},
          {"address":"terraform_data.vm[\"c-worker-2\"]","index":"c-worker-2","change":{"actions":["create"]}},
          {"address":"terraform_data.vm[\"c-worker-3\"]","index":"c-worker-3","change":{"actions":["delete"]}},
          {"address":"terraform_data.other","change":{"actions":["update"]}}
        ],"output_changes":{"nodes":{"actions":["update"]},"x":{"actions":["no-op"]}}}"#;
        let s = summarize(json).unwrap();
        assert_eq!((s.creates, s.updates, s.replaces, s.destroys), (1, 1, 1, 1));
        assert_eq!(s.output_changes, 1);
        let destructive: Vec<_> = s.destructive().map(|c| c.node.clone().unwrap()).collect();
        assert_eq!(destructive, ["c-worker-1", "c-worker-3"]);
        assert!(s.render().contains("replace  module.vm[\"c-worker-1\"]"));
    }

    #[test]
    fn empty_plan_is_empty() {
        let s = summarize(r#"{"format_version":"1.2"}"#).unwrap();
        assert!(s.is_empty());
        assert_eq!(
            s.headline(),
            "0 to create, 0 to update, 0 to replace, 0 to destroy"
        );
    }
}
