//! Smoke workloads: a Deployment rolled out on the workers, an `nvidia-smi` pod on each GPU node,
//! all in one namespace that is deleted afterwards whatever happened.

use std::time::{Duration, Instant};

use ::kube::Api;
use ::kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use serde_json::json;

use super::connect::{KubeClient, is_status};
use super::{
    Check, ExpectedCluster, GPU_RESOURCE, ROLE_LABEL, SMOKE_DEPLOYMENT, SMOKE_NAMESPACE,
    VerifyOptions,
};
use crate::inventory::Role;

/// Replicas of the smoke Deployment.
const REPLICAS: i32 = 2;
/// Label every smoke object carries.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "em-infra");

/// Run the smoke workloads; always ends with the namespace's deletion (the `smoke-cleanup` check).
pub(super) async fn run(
    client: &KubeClient,
    expected: &ExpectedCluster,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> Vec<Check> {
    let mut checks = Vec::new();
    match ensure_namespace(client, opts, progress).await {
        Err(err) => checks.push(Check::new("smoke-namespace", false, format!("{err:#}"))),
        Ok(()) => {
            checks.push(deployment(client, expected, opts, progress).await);
            checks.extend(gpu_pods(client, expected, opts, progress).await);
        }
    }
    checks.push(cleanup(client, opts, progress).await);
    checks
}

fn namespaces(client: &KubeClient) -> Api<Namespace> {
    Api::all(client.client.clone())
}

fn pods(client: &KubeClient) -> Api<Pod> {
    Api::namespaced(client.client.clone(), SMOKE_NAMESPACE)
}

/// Create the namespace; a leftover from an interrupted run is deleted first.
async fn ensure_namespace(
    client: &KubeClient,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": SMOKE_NAMESPACE,
            // The GPU pod runs as root (nvidia-smi reads the device nodes): allowed by the
            // baseline Pod Security level even where a cluster defaults to restricted.
            "labels": { MANAGED_BY.0: MANAGED_BY.1, "pod-security.kubernetes.io/enforce": "baseline" },
        },
    }))?;
    let api = namespaces(client);
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => return Ok(()),
        Err(err) if is_status(&err, 409) => {}
        Err(err) => {
            return Err(client.explain(err, &format!("creating namespace {SMOKE_NAMESPACE}")));
        }
    }
    progress(&format!(
        "namespace {SMOKE_NAMESPACE} is left from an earlier run; deleting it first"
    ));
    delete_namespace(client).await?;
    if !wait_gone(client, opts, opts.cleanup_timeout).await? {
        anyhow::bail!(
            "namespace {SMOKE_NAMESPACE} from an earlier run is still terminating after {}; \
             see `kubectl get namespace {SMOKE_NAMESPACE} -o yaml` (status.conditions)",
            super::human(opts.cleanup_timeout)
        );
    }
    api.create(&PostParams::default(), &ns)
        .await
        .map_err(|err| client.explain(err, &format!("creating namespace {SMOKE_NAMESPACE}")))?;
    Ok(())
}

async fn delete_namespace(client: &KubeClient) -> anyhow::Result<()> {
    match namespaces(client)
        .delete(SMOKE_NAMESPACE, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if is_status(&err, 404) => Ok(()),
        Err(err) => Err(client.explain(err, &format!("deleting namespace {SMOKE_NAMESPACE}"))),
    }
}

/// Poll until the namespace no longer exists: `true` when gone, `false` at the deadline.
async fn wait_gone(
    client: &KubeClient,
    opts: &VerifyOptions,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = namespaces(client)
            .get_opt(SMOKE_NAMESPACE)
            .await
            .map_err(|err| client.explain(err, &format!("reading namespace {SMOKE_NAMESPACE}")))?;
        if found.is_none() {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(opts.poll_interval.min(deadline - now)).await;
    }
}

/// The Deployment on the workers: `REPLICAS` pause pods spread over the workers, rolled out in time.
async fn deployment(
    client: &KubeClient,
    expected: &ExpectedCluster,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> Check {
    const NAME: &str = "smoke-deployment";
    if expected.with_role(Role::Worker).next().is_none() {
        return Check::new(
            NAME,
            true,
            "skipped: the inventory has no workers (worker_count = 0)",
        );
    }
    let api: Api<Deployment> = Api::namespaced(client.client.clone(), SMOKE_NAMESPACE);
    let deployment: Deployment = match serde_json::from_value(deployment_manifest(opts)) {
        Ok(d) => d,
        Err(err) => return Check::new(NAME, false, format!("building the Deployment: {err}")),
    };
    if let Err(err) = api.create(&PostParams::default(), &deployment).await {
        let err = client.explain(err, &format!("creating Deployment {SMOKE_DEPLOYMENT}"));
        return Check::new(NAME, false, format!("{err:#}"));
    }
    progress(&format!(
        "smoke: Deployment {SMOKE_NAMESPACE}/{SMOKE_DEPLOYMENT} ({REPLICAS} × {}) created on the workers",
        opts.smoke_image
    ));
    let deadline = Instant::now() + opts.smoke_timeout;
    let mut said = String::new();
    loop {
        let current = match api.get(SMOKE_DEPLOYMENT).await {
            Ok(d) => d,
            Err(err) => {
                let err = client.explain(err, &format!("reading Deployment {SMOKE_DEPLOYMENT}"));
                return Check::new(NAME, false, format!("{err:#}"));
            }
        };
        let (available, rolled_out) = rollout_state(&current);
        if rolled_out {
            let placed = pod_nodes(client, &format!("app={SMOKE_DEPLOYMENT}")).await;
            let on = if placed.is_empty() {
                String::new()
            } else {
                format!(" on {}", placed.join(", "))
            };
            return Check::new(
                NAME,
                true,
                format!(
                    "Deployment {SMOKE_DEPLOYMENT}: {available}/{REPLICAS} replicas available{on}"
                ),
            );
        }
        let line = format!("smoke: Deployment {available}/{REPLICAS} replicas available");
        if line != said {
            progress(&line);
            said = line;
        }
        let now = Instant::now();
        if now >= deadline {
            let why = describe_pods(client, &format!("app={SMOKE_DEPLOYMENT}")).await;
            let conditions = deployment_conditions(&current);
            return Check::new(
                NAME,
                false,
                format!(
                    "Deployment {SMOKE_DEPLOYMENT} not rolled out after {} ({available}/{REPLICAS} replicas \
                     available, nodeSelector {ROLE_LABEL}=worker, image {}){conditions}{why}",
                    super::human(opts.smoke_timeout),
                    opts.smoke_image
                ),
            );
        }
        tokio::time::sleep(opts.poll_interval.min(deadline - now)).await;
    }
}

fn deployment_manifest(opts: &VerifyOptions) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": SMOKE_DEPLOYMENT,
            "namespace": SMOKE_NAMESPACE,
            "labels": { "app": SMOKE_DEPLOYMENT, MANAGED_BY.0: MANAGED_BY.1 },
        },
        "spec": {
            "replicas": REPLICAS,
            "selector": { "matchLabels": { "app": SMOKE_DEPLOYMENT } },
            "template": {
                "metadata": { "labels": { "app": SMOKE_DEPLOYMENT, MANAGED_BY.0: MANAGED_BY.1 } },
                "spec": {
                    "nodeSelector": { ROLE_LABEL: "worker" },
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": { "matchLabels": { "app": SMOKE_DEPLOYMENT } },
                    }],
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "pause",
                        "image": opts.smoke_image,
                        "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } },
                        // Meets the restricted Pod Security level (pause runs as 65535).
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": 65535,
                            "allowPrivilegeEscalation": false,
                            "capabilities": { "drop": ["ALL"] },
                            "seccompProfile": { "type": "RuntimeDefault" },
                        },
                    }],
                },
            },
        },
    })
}

/// (available replicas, fully rolled out?) — the `kubectl rollout status` rule.
fn rollout_state(d: &Deployment) -> (i32, bool) {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status.as_ref() else {
        return (0, false);
    };
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    (
        available,
        observed >= generation && updated >= want && available >= want,
    )
}

fn deployment_conditions(d: &Deployment) -> String {
    let lines: Vec<String> = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "\n    Deployment {}={} {}: {}",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    lines.concat()
}

/// The nodes the pods matching `selector` run on (best effort: empty on error).
async fn pod_nodes(client: &KubeClient, selector: &str) -> Vec<String> {
    let Ok(list) = pods(client)
        .list(&ListParams::default().labels(selector))
        .await
    else {
        return Vec::new();
    };
    let mut nodes: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// One line per pod matching `selector`: phase, node, and why it is not running.
async fn describe_pods(client: &KubeClient, selector: &str) -> String {
    match pods(client)
        .list(&ListParams::default().labels(selector))
        .await
    {
        Ok(list) if list.items.is_empty() => "\n    no pods were created".into(),
        Ok(list) => {
            let mut text = String::new();
            for pod in &list.items {
                text.push_str(&format!("\n    {}", describe_pod(pod)));
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                text.push_str(&pod_events(client, name).await);
            }
            text
        }
        Err(_) => String::new(),
    }
}

/// How many of a pod's Warning events a failure quotes (the newest).
const EVENTS_SHOWN: usize = 3;

/// The pod's newest Warning events, one indented line each (best effort: empty on error). They
/// carry what the pod status does not: `FailedCreatePodSandBox: … no runtime for "nvidia" …`.
async fn pod_events(client: &KubeClient, pod: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.client.clone(), SMOKE_NAMESPACE);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let Ok(list) = api.list(&params).await else {
        return String::new();
    };
    let warnings: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    warnings
        .iter()
        .skip(warnings.len().saturating_sub(EVENTS_SHOWN))
        .map(|e| {
            format!(
                "\n      event {}: {}",
                e.reason.as_deref().unwrap_or("?"),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect()
}

/// `pod-x: Pending on node-1; PodScheduled=False Unschedulable: 0/3 nodes are available…`.
fn describe_pod(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("no node");
    let Some(status) = pod.status.as_ref() else {
        return format!("pod {name}: no status yet");
    };
    let mut parts = vec![format!(
        "pod {name}: {} on {node}",
        status.phase.as_deref().unwrap_or("Unknown")
    )];
    for c in status.conditions.iter().flatten() {
        if c.status != "True" && (c.reason.is_some() || c.message.is_some()) {
            parts.push(format!(
                "{}={} {}: {}",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or("")
            ));
        }
    }
    for cs in status.container_statuses.iter().flatten() {
        let Some(state) = cs.state.as_ref() else {
            continue;
        };
        if let Some(w) = &state.waiting {
            parts.push(format!(
                "container {} waiting: {} {}",
                cs.name,
                w.reason.as_deref().unwrap_or(""),
                w.message.as_deref().unwrap_or("")
            ));
        }
        if let Some(t) = &state.terminated {
            parts.push(format!(
                "container {} exited {} {}",
                cs.name,
                t.exit_code,
                t.reason.as_deref().unwrap_or("")
            ));
        }
    }
    parts.join("; ")
}

/// The GPU pod's name on `node`.
fn gpu_pod_name(node: &str) -> String {
    format!("gpu-smoke-{node}")
}

fn gpu_pod_manifest(node: &str, opts: &VerifyOptions) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": gpu_pod_name(node),
            "namespace": SMOKE_NAMESPACE,
            "labels": { "app": "em-infra-gpu-smoke", MANAGED_BY.0: MANAGED_BY.1 },
        },
        "spec": {
            "restartPolicy": "Never",
            "runtimeClassName": "nvidia",
            "nodeSelector": { "kubernetes.io/hostname": node },
            "tolerations": [{ "key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule" }],
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "nvidia-smi",
                "image": opts.gpu_image,
                "command": ["nvidia-smi"],
                "env": [{ "name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility" }],
                "resources": { "limits": { GPU_RESOURCE: "1" } },
            }],
        },
    })
}

/// Create a pod, retrying while the namespace's default ServiceAccount does not exist yet (the
/// admission plugin rejects pods until the controller has made it).
async fn create_pod(
    client: &KubeClient,
    pod: &Pod,
    opts: &VerifyOptions,
    deadline: Instant,
) -> anyhow::Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    loop {
        match pods(client).create(&PostParams::default(), pod).await {
            Ok(_) => return Ok(()),
            Err(::kube::Error::Api(status))
                if status.message.contains("serviceaccount") && Instant::now() < deadline =>
            {
                tokio::time::sleep(opts.poll_interval).await;
            }
            Err(err) => return Err(client.explain(err, &format!("creating pod {name}"))),
        }
    }
}

/// One `nvidia-smi` pod per GPU node (runtime class `nvidia`, one GPU); each must reach Succeeded.
async fn gpu_pods(
    client: &KubeClient,
    expected: &ExpectedCluster,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> Vec<Check> {
    let gpu_nodes: Vec<&str> = expected
        .with_role(Role::GpuWorker)
        .map(|n| n.name.as_str())
        .collect();
    if gpu_nodes.is_empty() {
        return Vec::new();
    }
    let deadline = Instant::now() + opts.smoke_timeout;
    let check_name = |node: &str| format!("gpu-smoke:{node}");
    let mut checks = Vec::new();
    let mut waiting: Vec<&str> = Vec::new();
    for node in &gpu_nodes {
        let pod: Pod = match serde_json::from_value(gpu_pod_manifest(node, opts)) {
            Ok(p) => p,
            Err(err) => {
                checks.push(Check::new(
                    check_name(node),
                    false,
                    format!("building the pod: {err}"),
                ));
                continue;
            }
        };
        match create_pod(client, &pod, opts, deadline).await {
            Ok(()) => {
                progress(&format!(
                    "smoke: pod {SMOKE_NAMESPACE}/{} (nvidia-smi, runtimeClassName nvidia, 1 GPU) created on {node}",
                    gpu_pod_name(node)
                ));
                waiting.push(node);
            }
            Err(err) => checks.push(Check::new(check_name(node), false, format!("{err:#}"))),
        }
    }
    let api = pods(client);
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for node in waiting {
            let name = gpu_pod_name(node);
            let pod = match api.get(&name).await {
                Ok(p) => p,
                Err(err) => {
                    let err = client.explain(err, &format!("reading pod {name}"));
                    checks.push(Check::new(check_name(node), false, format!("{err:#}")));
                    continue;
                }
            };
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            match phase.as_str() {
                "Succeeded" => {
                    let gpu = logs(client, &name)
                        .await
                        .and_then(|text| gpu_line(&text))
                        .map(|line| format!(": {line}"))
                        .unwrap_or_default();
                    checks.push(Check::new(
                        check_name(node),
                        true,
                        format!("nvidia-smi succeeded on {node}{gpu}"),
                    ));
                }
                "Failed" => {
                    let tail = logs(client, &name)
                        .await
                        .map(|text| {
                            format!("\n    log: {}", text.trim().replace('\n', "\n    log: "))
                        })
                        .unwrap_or_default();
                    checks.push(Check::new(
                        check_name(node),
                        false,
                        format!(
                            "nvidia-smi failed on {node}: {}{tail}\n    is the NVIDIA driver loaded \
                             (`nvidia-smi` on the node) and was k3s restarted after the container toolkit \
                             was installed (`grep nvidia /var/lib/rancher/k3s/agent/etc/containerd/config.toml`)?",
                            describe_pod(&pod)
                        ),
                    ));
                }
                _ if Instant::now() >= deadline => {
                    let events = pod_events(client, &name).await;
                    checks.push(Check::new(
                        check_name(node),
                        false,
                        format!(
                            "pod {name} did not finish in {}: {}{events}",
                            super::human(opts.smoke_timeout),
                            describe_pod(&pod)
                        ),
                    ));
                }
                _ => still.push(node),
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            let now = Instant::now();
            tokio::time::sleep(
                opts.poll_interval
                    .min(deadline.saturating_duration_since(now))
                    .max(Duration::from_millis(10)),
            )
            .await;
        }
    }
    // Report in node order whatever order they finished in.
    checks.sort_by_key(|c| {
        gpu_nodes
            .iter()
            .position(|n| c.name == check_name(n))
            .unwrap_or(usize::MAX)
    });
    checks
}

/// The last lines of a pod's log (best effort).
async fn logs(client: &KubeClient, pod: &str) -> Option<String> {
    let params = LogParams {
        tail_lines: Some(20),
        ..LogParams::default()
    };
    pods(client).logs(pod, &params).await.ok()
}

/// The `nvidia-smi` table line naming the driver (`NVIDIA-SMI 580.95.05  Driver Version: …`).
fn gpu_line(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.contains("Driver Version"))
        .map(|l| {
            l.trim_matches(|c: char| c == '|' || c.is_whitespace())
                .to_string()
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Delete the namespace and wait (bounded) for it to go.
async fn cleanup(
    client: &KubeClient,
    opts: &VerifyOptions,
    progress: &mut dyn FnMut(&str),
) -> Check {
    const NAME: &str = "smoke-cleanup";
    if let Err(err) = delete_namespace(client).await {
        return Check::new(
            NAME,
            false,
            format!("{err:#}; delete it by hand: `kubectl delete namespace {SMOKE_NAMESPACE}`"),
        );
    }
    progress(&format!("smoke: deleting namespace {SMOKE_NAMESPACE}"));
    match wait_gone(client, opts, opts.cleanup_timeout).await {
        Ok(true) => Check::new(NAME, true, format!("namespace {SMOKE_NAMESPACE} deleted")),
        Ok(false) => Check::new(
            NAME,
            true,
            format!(
                "namespace {SMOKE_NAMESPACE} deletion requested; still terminating after {} (the next run waits for it)",
                super::human(opts.cleanup_timeout)
            ),
        ),
        Err(err) => Check::new(
            NAME,
            true,
            format!("namespace {SMOKE_NAMESPACE} deletion requested; could not confirm: {err:#}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_line_is_the_driver_line() {
        let text = "Tue Nov 25 10:00:00 2026\n+---+\n| NVIDIA-SMI 580.95.05    Driver Version: 580.95.05    CUDA Version: 13.0 |\n";
        assert_eq!(
            gpu_line(text).as_deref(),
            Some("NVIDIA-SMI 580.95.05 Driver Version: 580.95.05 CUDA Version: 13.0")
        );
    }

    #[test]
    fn rollout_needs_observed_generation_updated_and_available() {
        let mut d: Deployment =
            serde_json::from_value(deployment_manifest(&VerifyOptions::default())).unwrap();
        d.metadata.generation = Some(2);
        assert_eq!(rollout_state(&d), (0, false));
        d.status = serde_json::from_value(json!({
            "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2
        }))
        .unwrap();
        assert!(!rollout_state(&d).1, "an old generation is not rolled out");
        d.status.as_mut().unwrap().observed_generation = Some(2);
        assert_eq!(rollout_state(&d), (2, true));
    }

    #[test]
    fn gpu_pod_requests_one_gpu_with_the_nvidia_runtime() {
        let pod: Pod =
            serde_json::from_value(gpu_pod_manifest("k3s-dev-gpu-1", &VerifyOptions::default()))
                .unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.runtime_class_name.as_deref(), Some("nvidia"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let limits = spec.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        assert_eq!(limits[GPU_RESOURCE].0, "1");
        assert_eq!(
            spec.containers[0].command.as_deref(),
            Some(&["nvidia-smi".to_string()][..])
        );
    }
}
