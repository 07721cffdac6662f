//! Repository and environment discovery, and the input rules that `check` applies.

pub mod check;
pub mod constraint;
pub mod edit;
pub mod finding;
pub mod hclsrc;
pub mod rules;
pub mod tfvars;
pub mod topology;
pub mod types;
pub mod wiring;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::failure::bad_input;

/// The repository em-infra works in, and where it keeps its own state.
#[derive(Debug, Clone)]
pub struct Project {
    /// Repository root: the directory holding `terraform/environments`.
    pub root: PathBuf,
    /// `<root>/.em-infra` unless overridden: per-environment state, locks, runs, secrets.
    pub state_root: PathBuf,
}

impl Project {
    pub fn discover(root: Option<&Path>, state_root: Option<&Path>) -> anyhow::Result<Self> {
        let root = match root {
            Some(r) => r.to_path_buf(),
            None => {
                let cwd = std::env::current_dir().context("reading the current directory")?;
                cwd.ancestors()
                    .find(|dir| dir.join("terraform/environments").is_dir())
                    .map(Path::to_path_buf)
                    .ok_or_else(|| {
                        bad_input(format!(
                            "no em-infra repository found at or above {}: run em-infra from the repository \
                             (the directory holding terraform/environments) or pass --root DIR",
                            cwd.display()
                        ))
                    })?
            }
        };
        let state_root = state_root.map_or_else(|| root.join(".em-infra"), Path::to_path_buf);
        Ok(Project { root, state_root })
    }

    /// Resolve `--env`: a name under `terraform/environments/`, or a path to a directory.
    pub fn environment(&self, env: &str) -> anyhow::Result<Environment> {
        let as_path = Path::new(env);
        let dir = if env.contains('/') || as_path.is_dir() {
            if as_path.is_absolute() {
                as_path.to_path_buf()
            } else {
                std::env::current_dir()?.join(as_path)
            }
        } else {
            self.root.join("terraform/environments").join(env)
        };
        if !dir.is_dir() {
            return Err(bad_input(format!(
                "--env {env}: no environment directory at {}; use a name under {}/terraform/environments or a path",
                dir.display(),
                self.root.display()
            )));
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad_input(format!("--env {env}: directory name is not valid UTF-8")))?
            .to_string();
        let state_dir = self.state_root.join(&name);
        Ok(Environment {
            name,
            dir,
            state_dir,
        })
    }
}

/// One Terraform environment and em-infra's state directory for it.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Directory name, e.g. `k3s-dev`; names the state directory under `.em-infra/`.
    pub name: String,
    /// The Terraform root module directory.
    pub dir: PathBuf,
    /// `.em-infra/<name>/`: state.json, lock, runs, backups, token, kubeconfig.
    pub state_dir: PathBuf,
}

impl Environment {
    /// The local Terraform state file.
    pub fn tfstate(&self) -> PathBuf {
        self.dir.join("terraform.tfstate")
    }

    /// The k3s join token, created once by the configure stage (0600).
    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join("k3s-token")
    }

    /// The cluster's kubeconfig, written by the configure stage (0600).
    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    /// The environment's own tfvars, which a run that changes anything needs: the example may
    /// serve `check` and `--dry-run`, never a run that creates VMs on the example's network.
    pub fn own_tfvars(&self) -> anyhow::Result<PathBuf> {
        let real = self.dir.join("terraform.tfvars");
        if real.is_file() {
            return Ok(real);
        }
        Err(crate::failure::bad_input(format!(
            "{} has no terraform.tfvars (only the example, whose network and IDs are not yours): \
             write it with `em-infra init --env {}` (it asks the Proxmox host), or copy and edit the \
             example; `em-infra up --dry-run` shows the example's plan meanwhile",
            self.dir.display(),
            self.name
        )))
    }

    /// The tfvars the environment is run with: `terraform.tfvars`, else the example.
    pub fn default_tfvars(&self) -> PathBuf {
        let real = self.dir.join("terraform.tfvars");
        if real.is_file() {
            real
        } else {
            self.dir.join("terraform.tfvars.example")
        }
    }
}
