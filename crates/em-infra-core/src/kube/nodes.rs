//! Node objects → reports, the wait for readiness, and the node-level checks.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

use super::connect::KubeClient;
use super::{
    CONTROL_PLANE_LABEL, Check, ExpectedCluster, GPU_RESOURCE, ROLE_LABEL, VerifyOptions,
    VerifyReport,
};
use crate::inventory::Role;

/// One node condition as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.type_, self.status)?;
        if let Some(reason) = &self.reason {
            write!(f, " reason={reason}")?;
        }
        if let Some(message) = &self.message {
            write!(f, " message=\"{message}\"")?;
        }
        Ok(())
    }
}

/// One Node, as verify and status report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub name: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    pub conditions: Vec<Condition>,
    /// Roles from labels `node-role.kubernetes.io/<role>` set to `"true"` (k3s) or `""`, sorted.
    pub roles: Vec<String>,
    /// The `em-infra/role` label Ansible sets at registration.
    pub em_role: Option<String>,
    /// The role the inventory gives this node; `None` when the node is not in the inventory.
    pub inventory_role: Option<Role>,
    pub kubelet_version: Option<String>,
    /// `status.allocatable["nvidia.com/gpu"]`; `None` when absent (or not a whole number).
    pub gpus_allocatable: Option<u64>,
    pub internal_ip: Option<String>,
}

impl NodeReport {
    pub fn from_node(node: &Node) -> NodeReport {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let mut roles: Vec<String> = labels
            .iter()
            .filter_map(|(key, value)| {
                let role = key.strip_prefix("node-role.kubernetes.io/")?;
                // k3s writes "true"; kubeadm writes "". Anything else does not grant the role.
                ((value == "true" || value.is_empty()) && !role.is_empty())
                    .then(|| role.to_string())
            })
            .collect();
        roles.sort();
        let status = node.status.as_ref();
        let conditions: Vec<Condition> = status
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| Condition {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone().filter(|r| !r.is_empty()),
                        message: c.message.clone().filter(|m| !m.is_empty()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ready = conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let gpus_allocatable = status
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get(GPU_RESOURCE))
            .and_then(|q| q.0.trim().parse::<u64>().ok());
        let internal_ip = status
            .and_then(|s| s.addresses.as_ref())
            .and_then(|addrs| addrs.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone());
        NodeReport {
            name,
            ready,
            conditions,
            roles,
            em_role: labels.get(ROLE_LABEL).cloned(),
            inventory_role: None,
            kubelet_version: status
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.kubelet_version.clone()),
            gpus_allocatable,
            internal_ip,
        }
    }

    /// The conditions, one per line, for a failure message.
    pub fn conditions_text(&self) -> String {
        if self.conditions.is_empty() {
            return "    (no conditions reported)".into();
        }
        self.conditions
            .iter()
            .map(|c| format!("    {c}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `Ready`, or the Ready condition's status and reason (`NotReady (KubeletNotReady)`).
    pub fn ready_text(&self) -> String {
        if self.ready {
            return "Ready".into();
        }
        match self.conditions.iter().find(|c| c.type_ == "Ready") {
            Some(c) => match &c.reason {
                Some(reason) => format!("NotReady ({reason})"),
                None => format!("NotReady (Ready={})", c.status),
            },
            None => "NotReady (no Ready condition)".into(),
        }
    }
}

/// The inventory's `em-infra/role` label value for a role (`gpu_worker` → `gpu-worker`).
pub(super) fn role_label_value(role: Role) -> String {
    role.as_str().replace('_', "-")
}

/// Poll the node list until every inventory node is registered and Ready, or `ready_timeout`
/// passes. Returns the last list either way. The first list failing is an error at once (wrong
/// address or credentials); later failures are retried until the deadline (k3s restarting).
pub(super) async fn wait_ready(
    client: &KubeClient,
    expected: &ExpectedCluster,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Node>> {
    let deadline = Instant::now() + opts.ready_timeout;
    let mut last: Option<Vec<Node>> = None;
    let mut said = String::new();
    loop {
        match client.list_nodes().await {
            Ok(listed) => {
                let pending = pending(expected, &listed);
                if pending.is_empty() {
                    if !said.is_empty() {
                        progress(&format!("all {} nodes are Ready", expected.nodes.len()));
                    }
                    return Ok(listed);
                }
                let line = format!(
                    "waiting for {} of {} nodes: {}",
                    pending.len(),
                    expected.nodes.len(),
                    pending.join(", ")
                );
                if line != said {
                    progress(&line);
                    said = line;
                }
                last = Some(listed);
            }
            Err(err) => match &last {
                None => return Err(err),
                Some(_) => {
                    let line = format!("listing nodes failed, retrying: {err:#}");
                    if line != said {
                        progress(&line);
                        said = line;
                    }
                }
            },
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(last.unwrap_or_default());
        }
        tokio::time::sleep(opts.poll_interval.min(deadline - now)).await;
    }
}

/// Inventory nodes that are missing or not Ready, each with why (`name (not registered)`).
fn pending(expected: &ExpectedCluster, listed: &[Node]) -> Vec<String> {
    expected
        .nodes
        .iter()
        .filter_map(|want| {
            match listed
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(&want.name))
            {
                None => Some(format!("{} (not registered)", want.name)),
                Some(node) => {
                    let report = NodeReport::from_node(node);
                    (!report.ready).then(|| format!("{} ({})", want.name, report.ready_text()))
                }
            }
        })
        .collect()
}

/// Reports for every listed node: inventory nodes first, in inventory order, then any others.
pub(super) fn ordered_reports(expected: &ExpectedCluster, listed: &[Node]) -> Vec<NodeReport> {
    let mut all: Vec<NodeReport> = listed.iter().map(NodeReport::from_node).collect();
    let mut ordered = Vec::with_capacity(all.len());
    for want in &expected.nodes {
        if let Some(pos) = all.iter().position(|r| r.name == want.name) {
            let mut report = all.remove(pos);
            report.inventory_role = Some(want.role);
            ordered.push(report);
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    ordered.extend(all);
    ordered
}

/// The node-level checks, and the inventory nodes with no Node object.
pub(super) fn checks(
    expected: &ExpectedCluster,
    reports: &[NodeReport],
    ready_timeout: Duration,
) -> (Vec<Check>, Vec<String>) {
    let find = |name: &str| reports.iter().find(|r| r.name == name);
    let mut checks = Vec::new();

    // Registered and Ready.
    let mut missing = Vec::new();
    let mut problems = Vec::new();
    for want in &expected.nodes {
        match find(&want.name) {
            None => {
                missing.push(want.name.clone());
                problems.push(format!(
                    "{} is not registered (no Node object); check `systemctl status k3s-agent` on {} \
                     (a recreated VM with a reused name needs `kubectl delete node {}` first)",
                    want.name, want.ip, want.name
                ));
            }
            Some(r) if !r.ready => problems.push(format!(
                "{} is {}; conditions:\n{}",
                r.name,
                r.ready_text(),
                r.conditions_text()
            )),
            Some(_) => {}
        }
    }
    let n = expected.nodes.len();
    checks.push(if problems.is_empty() {
        Check::new(
            "nodes-ready",
            true,
            format!("all {n} inventory nodes registered and Ready"),
        )
    } else {
        Check::new(
            "nodes-ready",
            false,
            format!(
                "{} of {n} nodes not Ready after {}:\n{}",
                problems.len(),
                super::human(ready_timeout),
                problems.join("\n")
            ),
        )
    });

    let registered = |role: Option<Role>| {
        expected
            .nodes
            .iter()
            .filter(move |w| role.is_none_or(|r| w.role == r))
            .filter_map(move |w| find(&w.name).map(|r| (w, r)))
    };

    // Control-plane label (k3s: node-role.kubernetes.io/control-plane=true).
    let unlabelled: Vec<String> = registered(Some(Role::ControlPlane))
        .filter(|(_, r)| !r.roles.iter().any(|role| role == "control-plane"))
        .map(|(w, _)| w.name.clone())
        .collect();
    checks.push(if unlabelled.is_empty() {
        Check::new(
            "control-plane-label",
            true,
            format!("control plane carries {CONTROL_PLANE_LABEL}=true"),
        )
    } else {
        Check::new(
            "control-plane-label",
            false,
            format!(
                "{} lacks {CONTROL_PLANE_LABEL}=true: is it a k3s server? (an agent joined in its place?)",
                unlabelled.join(", ")
            ),
        )
    });

    // em-infra/role label matches the inventory (set by Ansible at registration).
    let wrong_roles: Vec<String> = registered(None)
        .filter_map(|(w, r)| {
            let want = role_label_value(w.role);
            (r.em_role.as_deref() != Some(want.as_str())).then(|| {
                format!(
                    "{} has {ROLE_LABEL}={} (want {want})",
                    w.name,
                    r.em_role.as_deref().unwrap_or("<unset>")
                )
            })
        })
        .collect();
    checks.push(if wrong_roles.is_empty() {
        Check::new(
            "role-labels",
            true,
            format!("every node's {ROLE_LABEL} label matches the inventory"),
        )
    } else {
        Check::new(
            "role-labels",
            false,
            format!(
                "{}; node-label applies only at registration: delete the node object and restart its k3s to relabel",
                wrong_roles.join("; ")
            ),
        )
    });

    // Kubelet version equals the pin.
    let want_version = &expected.k3s_version;
    let wrong_versions: Vec<String> = registered(None)
        .filter(|(_, r)| r.kubelet_version.as_deref() != Some(want_version.as_str()))
        .map(|(w, r)| {
            format!(
                "{} runs {}",
                w.name,
                r.kubelet_version.as_deref().unwrap_or("<unknown>")
            )
        })
        .collect();
    checks.push(if wrong_versions.is_empty() {
        Check::new(
            "kubelet-version",
            true,
            format!("every kubelet runs {want_version}"),
        )
    } else {
        Check::new(
            "kubelet-version",
            false,
            format!(
                "{} (want {want_version}, pinned in ansible/group_vars/all.yml); rerun `em-infra up --only configure`",
                wrong_versions.join(", ")
            ),
        )
    });

    // Internal IP equals the inventory IP (node-ip in the k3s config).
    let wrong_ips: Vec<String> = registered(None)
        .filter(|(w, r)| r.internal_ip.as_deref() != Some(w.ip.to_string().as_str()))
        .map(|(w, r)| {
            format!(
                "{} reports InternalIP {} (inventory: {})",
                w.name,
                r.internal_ip.as_deref().unwrap_or("<none>"),
                w.ip
            )
        })
        .collect();
    checks.push(if wrong_ips.is_empty() {
        Check::new(
            "internal-ip",
            true,
            "every node's InternalIP is its inventory IP",
        )
    } else {
        Check::new("internal-ip", false, wrong_ips.join(", "))
    });

    // GPU workers advertise nvidia.com/gpu.
    if expected.with_role(Role::GpuWorker).next().is_some() {
        let mut seen = Vec::new();
        let mut without = Vec::new();
        for (w, r) in registered(Some(Role::GpuWorker)) {
            match r.gpus_allocatable {
                Some(n) if n >= 1 => seen.push(format!("{} ({n})", w.name)),
                other => without.push(format!(
                    "{} ({GPU_RESOURCE} allocatable: {})",
                    w.name,
                    other.map_or("absent".to_string(), |n| n.to_string())
                )),
            }
        }
        checks.push(if without.is_empty() {
            Check::new(
                "gpu-allocatable",
                true,
                format!("{GPU_RESOURCE} allocatable on {}", seen.join(", ")),
            )
        } else {
            Check::new(
                "gpu-allocatable",
                false,
                format!(
                    "no {GPU_RESOURCE} on {}: check the NVIDIA device plugin pod on that node \
                     (`kubectl -n kube-system get pods -o wide`), `nvidia-smi` on the node, and that k3s \
                     restarted after the toolkit was installed",
                    without.join(", ")
                ),
            )
        });
    }

    (checks, missing)
}

/// Nodes as a table for people (the verify stage's message).
pub(super) fn table(report: &VerifyReport) -> String {
    let present = report.nodes.iter().map(|r| {
        vec![
            r.name.clone(),
            r.inventory_role
                .map_or("(not in inventory)".into(), |role| role.to_string()),
            r.ready_text(),
            if r.roles.is_empty() {
                "-".into()
            } else {
                r.roles.join(",")
            },
            r.kubelet_version.clone().unwrap_or_else(|| "-".into()),
            r.gpus_allocatable
                .map_or("-".into(), |n: u64| n.to_string()),
            r.internal_ip.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    // Missing nodes have no Node object, so they are never among `report.nodes`.
    let missing = report.missing.iter().map(|name| {
        let mut row = vec![name.clone(), "-".into(), "not registered".into()];
        row.extend(std::iter::repeat_n("-".to_string(), 4));
        row
    });
    crate::text::columns(
        &[
            "NODE",
            "ROLE",
            "READY",
            "K8S ROLES",
            "KUBELET",
            "GPUS",
            "INTERNAL IP",
        ],
        present.chain(missing),
    )
}
