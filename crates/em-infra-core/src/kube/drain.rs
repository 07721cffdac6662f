//! Taking nodes out of the cluster through the Kubernetes API, the way `kubectl drain` does it:
//! cordon (`spec.unschedulable`), evict every pod through the Eviction API so PodDisruptionBudgets
//! are respected (PDB refusals are `429 Too Many Requests` and are retried until the deadline),
//! wait until the evicted pods are gone, then delete the Node object — so a future VM with the same
//! name registers cleanly (k3s refuses a node name whose Node object still exists with another
//! password). DaemonSet pods and mirror (static) pods are left alone, as `kubectl drain
//! --ignore-daemonsets` does. With `force`, pods that cannot be evicted in time are deleted.
//!
//! Used by day-2 commands that remove or replace nodes (`scale` down, `node replace`).

use std::path::Path;
use std::time::{Duration, Instant};

use ::kube::Api;
use ::kube::api::{DeleteParams, EvictParams, ListParams, Patch, PatchParams};
use k8s_openapi::api::core::v1::{Node, Pod};

use super::connect::{self, KubeClient};
use crate::failure::Failure;

/// How a drain behaves.
#[derive(Debug, Clone, Copy)]
pub struct DrainOptions {
    /// The longest the evictions (and the pods' exits) may take, per node.
    pub timeout: Duration,
    /// Delete the pods that could not be evicted in time (PDB, or an Eviction API refusal).
    pub force: bool,
    /// Pause between retries of a refused eviction and between checks for gone pods.
    pub poll: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            timeout: Duration::from_secs(300),
            force: false,
            poll: Duration::from_secs(2),
        }
    }
}

/// What draining one node did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDrained {
    pub node: String,
    /// `namespace/name` of each pod evicted.
    pub evicted: Vec<String>,
    /// Pods deleted because they could not be evicted in time (only with `force`).
    pub deleted: Vec<String>,
    /// DaemonSet and mirror pods, left in place.
    pub ignored: Vec<String>,
    /// False when the Node object did not exist (nothing to cordon or delete).
    pub existed: bool,
}

/// Cordon, drain and delete each of `nodes`, in order, through the kubeconfig at `kubeconfig`.
/// `progress` hears one line per step. Stops at the first node that cannot be drained (a stage
/// failure naming the pods and `--force`), leaving the nodes after it untouched.
pub fn drain_and_delete(
    kubeconfig: &Path,
    nodes: &[String],
    opts: &DrainOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<NodeDrained>> {
    let kc = connect::Kubeconfig::load(kubeconfig)?;
    super::block_on(async {
        // The drain retries a budget's 429s itself, within its deadline.
        let client = kc.client_with(Duration::from_secs(10), false).await?;
        let mut done = Vec::new();
        for node in nodes {
            done.push(drain_one(&client, node, opts, progress).await?);
        }
        Ok(done)
    })
}

async fn drain_one(
    kc: &KubeClient,
    node: &str,
    opts: &DrainOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<NodeDrained> {
    let nodes: Api<Node> = Api::all(kc.client.clone());
    let mut report = NodeDrained {
        node: node.to_string(),
        ..NodeDrained::default()
    };
    // Cordon: no new pods land here while the others leave.
    match nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "unschedulable": true } })),
        )
        .await
    {
        Ok(_) => report.existed = true,
        Err(e) if connect::is_status(&e, 404) => {
            progress(&format!(
                "{node}: no Node object (never joined, or deleted already)"
            ));
            return Ok(report);
        }
        Err(e) => return Err(kc.explain(e, &format!("cordoning {node}"))),
    }
    progress(&format!("{node}: cordoned"));

    let pods: Api<Pod> = Api::all(kc.client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let listed = pods
        .list(&on_node)
        .await
        .map_err(|e| kc.explain(e, &format!("listing the pods on {node}")))?;
    let mut pending: Vec<(String, String)> = Vec::new();
    for pod in &listed.items {
        let (ns, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if is_daemonset_or_mirror(pod) {
            report.ignored.push(format!("{ns}/{name}"));
        } else if !is_finished(pod) {
            pending.push((ns, name));
        }
    }

    // Evict, retrying what a PodDisruptionBudget refuses (429) until the deadline.
    let deadline = Instant::now() + opts.timeout;
    loop {
        let mut refused = Vec::new();
        for (ns, name) in pending.drain(..) {
            let api: Api<Pod> = Api::namespaced(kc.client.clone(), &ns);
            match api.evict(&name, &EvictParams::default()).await {
                Ok(_) => report.evicted.push(format!("{ns}/{name}")),
                Err(e) if connect::is_status(&e, 404) => {} // gone already
                Err(e) if connect::is_status(&e, 429) => refused.push((ns, name)),
                Err(e) => return Err(kc.explain(e, &format!("evicting {ns}/{name}"))),
            }
        }
        if refused.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            if !opts.force {
                let names: Vec<String> = refused.iter().map(|(n, p)| format!("{n}/{p}")).collect();
                return Err(Failure::Stage {
                    stage: "drain".into(),
                    message: format!(
                        "{node}: {} could not be evicted within {}s (a PodDisruptionBudget refuses \
                         it); {node} stays cordoned. Scale the workload up or relax its budget, or \
                         rerun with --force to delete these pods",
                        names.join(", "),
                        opts.timeout.as_secs()
                    ),
                }
                .into());
            }
            for (ns, name) in refused {
                let api: Api<Pod> = Api::namespaced(kc.client.clone(), &ns);
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => report.deleted.push(format!("{ns}/{name}")),
                    Err(e) if connect::is_status(&e, 404) => {}
                    Err(e) => return Err(kc.explain(e, &format!("deleting {ns}/{name}"))),
                }
            }
            break;
        }
        progress(&format!(
            "{node}: {} pod(s) wait for their disruption budget",
            refused.len()
        ));
        pending = refused;
        tokio::time::sleep(opts.poll).await;
    }

    // Wait until the pods that were asked to leave are gone.
    let leaving: Vec<&String> = report.evicted.iter().chain(&report.deleted).collect();
    loop {
        let still = pods
            .list(&on_node)
            .await
            .map_err(|e| kc.explain(e, &format!("listing the pods on {node}")))?;
        let remaining: Vec<String> = still
            .items
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .filter(|p| leaving.contains(&p))
            .collect();
        if remaining.is_empty() {
            break;
        }
        if Instant::now() >= deadline + opts.timeout {
            return Err(Failure::Stage {
                stage: "drain".into(),
                message: format!(
                    "{node}: {} did not stop within {}s of their eviction; {node} stays cordoned",
                    remaining.join(", "),
                    opts.timeout.as_secs()
                ),
            }
            .into());
        }
        tokio::time::sleep(opts.poll).await;
    }
    progress(&format!(
        "{node}: drained ({} evicted, {} deleted, {} DaemonSet/static pods left)",
        report.evicted.len(),
        report.deleted.len(),
        report.ignored.len()
    ));

    match nodes.delete(node, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if connect::is_status(&e, 404) => {}
        Err(e) => return Err(kc.explain(e, &format!("deleting the Node {node}"))),
    }
    progress(&format!("{node}: Node object deleted"));
    Ok(report)
}

/// A pod owned by a DaemonSet (it would come straight back) or a static pod's mirror.
fn is_daemonset_or_mirror(pod: &Pod) -> bool {
    let daemonset = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    daemonset || mirror
}

/// A pod that has already finished does not need evicting.
fn is_finished(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}
