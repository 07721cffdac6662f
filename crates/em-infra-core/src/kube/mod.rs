//! Verification through the Kubernetes API (kube-rs), using the kubeconfig configure fetched.
//!
//! An async island: kube-rs is async, the rest of em-infra is blocking. Each public function builds
//! a current-thread tokio runtime, runs its work to completion on it, and returns plain values.
//!
//! - [`verify`]: the verify stage's checks (nodes registered and Ready, roles, kubelet version, GPUs,
//!   smoke workloads) → a [`VerifyReport`] (the `nodes.json` artifact) and, through
//!   [`VerifyReport::ensure_ok`], a `Failure::Stage { stage: "verify" }` when a check failed.
//! - [`node_states`]: every Node as a [`NodeReport`] (for `em-infra status`).
//! - [`nodes_table`]: the report's nodes as a table for people.
//! - [`pinned_k3s_version`]: the k3s version `ansible/group_vars/all.yml` pins;
//!   [`expected_for`]: that version and the environment's Terraform-state nodes;
//!   [`VerifyOptions::from_env`]: the defaults with the `EM_INFRA_VERIFY_*` overrides. The
//!   kubeconfig is `Environment::kubeconfig()` (`.em-infra/<env>/kubeconfig`).
//!
//! The checks and the report schema are documented in `docs/verify-and-status.md`.

mod connect;
pub mod drain;
pub mod kubeconfig;
mod nodes;
mod smoke;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Environment, Project};
use crate::failure::{Failure, bad_input};
use crate::inventory::{ClusterOutputs, Role};

pub use nodes::{Condition, NodeReport};

/// The stage name verification failures carry (exit code 4).
pub const STAGE: &str = "verify";
/// Namespace the smoke workloads run in; deleted after every smoke run.
pub const SMOKE_NAMESPACE: &str = "em-infra-smoke";
/// Name of the smoke Deployment (and its `app` label).
pub const SMOKE_DEPLOYMENT: &str = "em-infra-smoke";
/// The node label Ansible sets at registration: `em-infra/role=control-plane|worker|gpu-worker`.
pub const ROLE_LABEL: &str = "em-infra/role";
/// The label k3s puts on servers (value `"true"`).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The extended resource the NVIDIA device plugin advertises.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Default image of the smoke Deployment.
pub const DEFAULT_SMOKE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Default image of the GPU smoke pod (the NVIDIA runtime injects `nvidia-smi` from the host driver).
pub const DEFAULT_GPU_IMAGE: &str = "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04";

/// One node the inventory (Terraform state) says should exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedNode {
    pub name: String,
    pub role: Role,
    pub ip: Ipv4Addr,
}

/// What the cluster should look like: the inventory's nodes and the pinned k3s version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedCluster {
    /// e.g. `v1.33.5+k3s1`; every kubelet must report exactly this version.
    pub k3s_version: String,
    pub nodes: Vec<ExpectedNode>,
}

impl ExpectedCluster {
    /// The nodes of `outputs` and the pinned version (see [`pinned_k3s_version`]).
    /// Nodes in role order (control plane, workers, GPU workers), slot order within a role.
    pub fn from_outputs(outputs: &ClusterOutputs, k3s_version: impl Into<String>) -> Self {
        let mut planned: Vec<&crate::inventory::Node> = outputs.nodes.iter().collect();
        planned.sort_by(|a, b| {
            a.role
                .cmp(&b.role)
                .then_with(|| crate::inventory::natural_cmp(&a.name, &b.name))
        });
        ExpectedCluster {
            k3s_version: k3s_version.into(),
            nodes: planned
                .into_iter()
                .map(|n| ExpectedNode {
                    name: n.name.clone(),
                    role: n.role,
                    ip: n.ip,
                })
                .collect(),
        }
    }

    fn with_role(&self, role: Role) -> impl Iterator<Item = &ExpectedNode> {
        self.nodes.iter().filter(move |n| n.role == role)
    }
}

/// How verification runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long every inventory node may take to register and become Ready.
    pub ready_timeout: Duration,
    /// How often the node list and the smoke objects are polled.
    pub poll_interval: Duration,
    /// Run the smoke workloads (Deployment on the workers, `nvidia-smi` pod per GPU node).
    pub smoke: bool,
    /// Image of the smoke Deployment's pods.
    pub smoke_image: String,
    /// Image of the GPU smoke pods.
    pub gpu_image: String,
    /// How long the Deployment may take to roll out, and each GPU pod to succeed.
    pub smoke_timeout: Duration,
    /// How long to wait for the smoke namespace to disappear after its deletion.
    pub cleanup_timeout: Duration,
    /// Per-request timeout towards the API server (connect and read).
    pub request_timeout: Duration,
    /// Check through the Kubernetes API at all. Off only where no API server exists, e.g. lab
    /// hosts running the k3s stand-in, which honours k3s's files but serves no API.
    pub api: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            ready_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(5),
            smoke: true,
            smoke_image: DEFAULT_SMOKE_IMAGE.into(),
            gpu_image: DEFAULT_GPU_IMAGE.into(),
            smoke_timeout: Duration::from_secs(300),
            cleanup_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            api: true,
        }
    }
}

impl VerifyOptions {
    /// The defaults, overridden by the environment (for operators, without new flags):
    ///
    /// | variable | field | value |
    /// |---|---|---|
    /// | `EM_INFRA_VERIFY_READY_TIMEOUT` | `ready_timeout` | whole seconds > 0 |
    /// | `EM_INFRA_VERIFY_API` | `api` | `0`/`false`/`no` skips the Kubernetes API checks |
    /// | `EM_INFRA_VERIFY_SMOKE` | `smoke` | `0`/`false`/`no` disables, `1`/`true`/`yes` enables |
    /// | `EM_INFRA_VERIFY_SMOKE_TIMEOUT` | `smoke_timeout` | whole seconds > 0 |
    /// | `EM_INFRA_VERIFY_SMOKE_IMAGE` | `smoke_image` | an image reference (e.g. a local registry mirror) |
    /// | `EM_INFRA_VERIFY_GPU_IMAGE` | `gpu_image` | an image reference |
    ///
    /// A malformed value is `BadInput` naming the variable.
    pub fn from_env() -> anyhow::Result<VerifyOptions> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<VerifyOptions> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let secs = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        bad_input(format!(
                            "{name}={v}: expected a whole number of seconds > 0"
                        ))
                    }),
            }
        };
        let flag = |name: &str, default: bool| -> anyhow::Result<bool> {
            match var(name) {
                None => Ok(default),
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" => Ok(true),
                    "0" | "false" | "no" => Ok(false),
                    _ => Err(bad_input(format!("{name}={v}: expected true or false"))),
                },
            }
        };
        let d = VerifyOptions::default();
        let smoke = flag("EM_INFRA_VERIFY_SMOKE", d.smoke)?;
        let api = flag("EM_INFRA_VERIFY_API", d.api)?;
        Ok(VerifyOptions {
            ready_timeout: secs("EM_INFRA_VERIFY_READY_TIMEOUT", d.ready_timeout)?,
            smoke,
            api,
            smoke_timeout: secs("EM_INFRA_VERIFY_SMOKE_TIMEOUT", d.smoke_timeout)?,
            smoke_image: var("EM_INFRA_VERIFY_SMOKE_IMAGE").unwrap_or(d.smoke_image),
            gpu_image: var("EM_INFRA_VERIFY_GPU_IMAGE").unwrap_or(d.gpu_image),
            ..d
        })
    }
}

/// One verdict: a stable name, pass/fail and a human detail (multi-line when it lists nodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub(crate) fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// The verify stage's result; serialised as the run's `nodes.json` artifact.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The kubelet version every node must run.
    pub k3s_version: String,
    /// When the report was made (RFC 3339, UTC).
    pub checked_at: String,
    /// Every Node the API listed (inventory nodes first, in inventory order, then any others).
    pub nodes: Vec<NodeReport>,
    /// Inventory nodes with no Node object.
    pub missing: Vec<String>,
    /// Every check, in the order it ran.
    pub checks: Vec<Check>,
    /// `passed`, `failed`, `disabled` or `skipped: <why>`.
    pub smoke: String,
    /// True when every check passed.
    pub ok: bool,
}

impl VerifyReport {
    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// `Ok` when every check passed, else `Failure::Stage { stage: "verify" }` (exit 4) naming
    /// each failed check and its detail.
    pub fn ensure_ok(&self) -> anyhow::Result<()> {
        if self.ok {
            return Ok(());
        }
        let message = self
            .failures()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("\n");
        Err(Failure::Stage {
            stage: STAGE.into(),
            message,
        }
        .into())
    }

    /// The report as JSON (what the verify stage writes as `nodes.json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a VerifyReport always serialises")
    }
}

/// Verify the cluster behind `kubeconfig` against `expected`.
///
/// Returns the report whether or not the checks passed (write it, then call
/// [`VerifyReport::ensure_ok`]). Errors: a missing or unreadable kubeconfig is `BadInput` (exit 2);
/// an API server that cannot be reached or refuses the credentials is `Failure::Stage` "verify"
/// (exit 4). `progress` receives one line per change while waiting (node readiness, rollout,
/// cleanup).
pub fn verify(
    kubeconfig: &Path,
    expected: &ExpectedCluster,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<VerifyReport> {
    let kc = connect::Kubeconfig::load(kubeconfig)?;
    let result = block_on(async {
        let client = kc.client(opts.request_timeout).await?;
        verify_async(&client, expected, opts, progress).await
    });
    result.map_err(|err| {
        if err.chain().any(|c| c.downcast_ref::<Failure>().is_some()) {
            err
        } else {
            Failure::Stage {
                stage: STAGE.into(),
                message: format!("{err:#}"),
            }
            .into()
        }
    })
}

/// Every Node the API server behind `kubeconfig` lists, as reports (API order). A short request
/// timeout: `status` must not hang on an unreachable cluster.
pub fn node_states(kubeconfig: &Path) -> anyhow::Result<Vec<NodeReport>> {
    let kc = connect::Kubeconfig::load(kubeconfig)?;
    block_on(async {
        let client = kc.client(Duration::from_secs(10)).await?;
        let nodes = client.list_nodes().await?;
        Ok(nodes.iter().map(NodeReport::from_node).collect())
    })
}

/// The report's nodes as a table: name, roles, Ready, kubelet, GPUs, internal IP; inventory nodes
/// that never registered appear as "not registered".
pub fn nodes_table(report: &VerifyReport) -> String {
    nodes::table(report)
}

/// What the verify stage expects of `env`: the nodes of its Terraform state and the pinned k3s
/// version. Errors (no state, no pin) are `BadInput`.
pub fn expected_for(project: &Project, env: &Environment) -> anyhow::Result<ExpectedCluster> {
    let outputs = crate::inventory::load_outputs(&env.tfstate())?;
    Ok(ExpectedCluster::from_outputs(
        &outputs,
        pinned_k3s_version(&project.root)?,
    ))
}

/// The k3s version pinned in `<repo>/ansible/group_vars/all.yml` (`k3s_version: "v1.33.5+k3s1"`),
/// the one source of truth Ansible installs from.
pub fn pinned_k3s_version(repo_root: &Path) -> anyhow::Result<String> {
    let path = repo_root.join("ansible/group_vars/all.yml");
    let text = fs_err::read_to_string(&path).map_err(|err| {
        bad_input(format!(
            "cannot read the pinned k3s version: {err} (ansible/group_vars/all.yml must set k3s_version)"
        ))
    })?;
    parse_k3s_version(&text).ok_or_else(|| {
        bad_input(format!(
            "{} sets no `k3s_version:` (e.g. `k3s_version: \"v1.33.5+k3s1\"`)",
            path.display()
        ))
    })
}

/// The value of a top-level `k3s_version:` line (quotes and a trailing comment removed).
fn parse_k3s_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("k3s_version:")?;
        let value = rest.split(" #").next().unwrap_or("").trim();
        let value = value.trim_matches(|c| c == '"' || c == '\'').trim();
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// A timeout for messages: whole seconds (`300s`), or milliseconds below one second.
pub(crate) fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn block_on<T>(fut: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| anyhow::anyhow!("starting the Kubernetes client runtime: {err}"))?;
    runtime.block_on(fut)
}

async fn verify_async(
    client: &connect::KubeClient,
    expected: &ExpectedCluster,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<VerifyReport> {
    let listed = nodes::wait_ready(client, expected, opts, progress).await?;
    let reports = nodes::ordered_reports(expected, &listed);
    let (mut checks, missing) = nodes::checks(expected, &reports, opts.ready_timeout);
    let node_checks_ok = checks.iter().all(|c| c.ok);

    let smoke = if !opts.smoke {
        "disabled".to_string()
    } else if !node_checks_ok {
        "skipped: node checks failed".to_string()
    } else {
        let smoke_checks = smoke::run(client, expected, opts, progress).await;
        let passed = smoke_checks.iter().all(|c| c.ok);
        checks.extend(smoke_checks);
        if passed { "passed" } else { "failed" }.to_string()
    };

    let ok = checks.iter().all(|c| c.ok);
    Ok(VerifyReport {
        k3s_version: expected.k3s_version.clone(),
        checked_at: jiff::Timestamp::now().to_string(),
        nodes: reports,
        missing,
        checks,
        smoke,
        ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pinned_version_line() {
        let text = "---\n# k3s_version: old\nk3s_version: \"v1.33.5+k3s1\"  # pinned\nother: 1\n";
        assert_eq!(parse_k3s_version(text).as_deref(), Some("v1.33.5+k3s1"));
        assert_eq!(
            parse_k3s_version("k3s_version: v1.34.1+k3s1\n").as_deref(),
            Some("v1.34.1+k3s1")
        );
        assert_eq!(parse_k3s_version("k3s_version: \"\"\n"), None);
        assert_eq!(parse_k3s_version("nothing: here\n"), None);
    }

    #[test]
    fn options_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let o = VerifyOptions::from_lookup(env(&[])).unwrap();
        assert_eq!(o.ready_timeout, Duration::from_secs(300));
        assert!(o.smoke);
        assert_eq!(o.smoke_image, DEFAULT_SMOKE_IMAGE);
        let o = VerifyOptions::from_lookup(env(&[
            ("EM_INFRA_VERIFY_READY_TIMEOUT", "600"),
            ("EM_INFRA_VERIFY_SMOKE", "false"),
            ("EM_INFRA_VERIFY_SMOKE_IMAGE", "registry.lan/pause:3.10"),
            ("EM_INFRA_VERIFY_GPU_IMAGE", " "),
        ]))
        .unwrap();
        assert_eq!(o.ready_timeout, Duration::from_secs(600));
        assert!(!o.smoke);
        assert_eq!(o.smoke_image, "registry.lan/pause:3.10");
        assert_eq!(o.gpu_image, DEFAULT_GPU_IMAGE, "blank means default");
        let err = VerifyOptions::from_lookup(env(&[("EM_INFRA_VERIFY_SMOKE_TIMEOUT", "5m")]))
            .unwrap_err();
        assert_eq!(
            crate::failure::kind_of(&err),
            Some(crate::failure::FailureKind::BadInput)
        );
        assert!(err.to_string().contains("EM_INFRA_VERIFY_SMOKE_TIMEOUT=5m"));
        let err =
            VerifyOptions::from_lookup(env(&[("EM_INFRA_VERIFY_SMOKE", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("EM_INFRA_VERIFY_SMOKE=maybe"));
    }

    #[test]
    fn the_repositorys_pin_is_readable() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let version = pinned_k3s_version(&root).unwrap();
        assert!(
            version.starts_with('v') && version.contains("+k3s"),
            "{version}"
        );
    }
}
