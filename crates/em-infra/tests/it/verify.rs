//! `em_infra_core::kube::verify` against a local API server answering k3s-shaped responses.

use crate::kube_server;

use std::net::Ipv4Addr;
use std::time::Duration;

use em_infra_core::failure::{FailureKind, kind_of};
use em_infra_core::inventory::Role;
use em_infra_core::kube::{
    self, ExpectedCluster, ExpectedNode, SMOKE_NAMESPACE, VerifyOptions, VerifyReport,
};
use kube_server::{K3S_VERSION, KubeServer, node};
use serde_json::Value;

const NS_PATH: &str = "/api/v1/namespaces/em-infra-smoke";
const DEPLOY_POST: &str = "/apis/apps/v1/namespaces/em-infra-smoke/deployments";
const POD_POST: &str = "/api/v1/namespaces/em-infra-smoke/pods";

fn expected() -> ExpectedCluster {
    let n = |name: &str, role, last: u8| ExpectedNode {
        name: name.into(),
        role,
        ip: Ipv4Addr::new(192, 168, 50, last),
    };
    ExpectedCluster {
        k3s_version: K3S_VERSION.into(),
        nodes: vec![
            n("k3s-dev-cp-1", Role::ControlPlane, 10),
            n("k3s-dev-worker-1", Role::Worker, 20),
            n("k3s-dev-worker-2", Role::Worker, 21),
            n("k3s-dev-gpu-1", Role::GpuWorker, 50),
        ],
    }
}

/// The healthy cluster `expected()` describes, as k3s lists it.
fn healthy() -> Vec<Value> {
    vec![
        node("k3s-dev-cp-1", "control-plane", "192.168.50.10").json(),
        node("k3s-dev-worker-1", "worker", "192.168.50.20").json(),
        node("k3s-dev-worker-2", "worker", "192.168.50.21").json(),
        node("k3s-dev-gpu-1", "gpu-worker", "192.168.50.50")
            .gpus("1")
            .json(),
    ]
}

fn replace(mut nodes: Vec<Value>, name: &str, with: Value) -> Vec<Value> {
    let pos = nodes
        .iter()
        .position(|n| n["metadata"]["name"] == name)
        .unwrap();
    nodes[pos] = with;
    nodes
}

fn fast() -> VerifyOptions {
    VerifyOptions {
        ready_timeout: Duration::from_millis(400),
        poll_interval: Duration::from_millis(40),
        smoke_timeout: Duration::from_millis(400),
        cleanup_timeout: Duration::from_millis(400),
        request_timeout: Duration::from_secs(5),
        ..VerifyOptions::default()
    }
}

struct Outcome {
    report: VerifyReport,
    progress: Vec<String>,
}

fn run(server: &KubeServer, opts: &VerifyOptions) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path());
    let mut progress = Vec::new();
    let report = kube::verify(&kubeconfig, &expected(), opts, &mut |line| {
        progress.push(line.to_string())
    })
    .unwrap();
    Outcome { report, progress }
}

fn check<'a>(report: &'a VerifyReport, name: &str) -> &'a kube::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {:#?}", report.checks))
}

fn failed(report: &VerifyReport) -> Vec<&str> {
    report.failures().map(|c| c.name.as_str()).collect()
}

#[test]
fn all_ready_passes_and_smoke_objects_are_created_then_deleted() {
    let server = KubeServer::start(healthy());
    let out = run(&server, &fast());
    let report = &out.report;
    assert!(report.ok, "{:#?}", report.checks);
    assert!(report.ensure_ok().is_ok());
    assert_eq!(report.smoke, "passed");
    assert!(report.missing.is_empty());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "nodes-ready",
            "control-plane-label",
            "role-labels",
            "kubelet-version",
            "internal-ip",
            "gpu-allocatable",
            "smoke-deployment",
            "gpu-smoke:k3s-dev-gpu-1",
            "smoke-cleanup",
        ]
    );
    assert_eq!(
        check(report, "smoke-deployment").detail,
        "Deployment em-infra-smoke: 2/2 replicas available on k3s-dev-worker-1, k3s-dev-worker-2"
    );
    assert!(
        check(report, "gpu-smoke:k3s-dev-gpu-1")
            .detail
            .contains("Driver Version: 580.95.05"),
        "{:?}",
        check(report, "gpu-smoke:k3s-dev-gpu-1")
    );

    // Node reports carry what nodes.json promises.
    let gpu = report
        .nodes
        .iter()
        .find(|n| n.name == "k3s-dev-gpu-1")
        .unwrap();
    assert!(gpu.ready);
    assert_eq!(gpu.gpus_allocatable, Some(1));
    assert_eq!(gpu.kubelet_version.as_deref(), Some(K3S_VERSION));
    assert_eq!(gpu.internal_ip.as_deref(), Some("192.168.50.50"));
    assert_eq!(gpu.inventory_role, Some(Role::GpuWorker));
    let cp = &report.nodes[0];
    assert_eq!(cp.name, "k3s-dev-cp-1");
    assert_eq!(cp.roles, ["control-plane", "master"]);
    assert_eq!(cp.conditions.len(), 4);

    // The namespace, the Deployment on the workers and the GPU pod were created, then deleted.
    let ns = server
        .find("POST", "/api/v1/namespaces")
        .expect("namespace created");
    assert_eq!(ns.json()["metadata"]["name"], SMOKE_NAMESPACE);
    assert_eq!(
        ns.json()["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    assert!(ns.authorization.as_deref() == Some("Bearer K10-test-only-token"));
    let deploy = server
        .find("POST", DEPLOY_POST)
        .expect("deployment created");
    let d = deploy.json();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["nodeSelector"]["em-infra/role"],
        "worker"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.k8s.io/pause:3.10"
    );
    let pod = server
        .find("POST", POD_POST)
        .expect("gpu pod created")
        .json();
    assert_eq!(pod["metadata"]["name"], "gpu-smoke-k3s-dev-gpu-1");
    assert_eq!(pod["spec"]["runtimeClassName"], "nvidia");
    assert_eq!(
        pod["spec"]["nodeSelector"]["kubernetes.io/hostname"],
        "k3s-dev-gpu-1"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    assert_eq!(pod["spec"]["containers"][0]["command"][0], "nvidia-smi");
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"
    );
    assert_eq!(server.count("DELETE", NS_PATH), 1);
    assert!(server.position("POST", POD_POST) < server.position("DELETE", NS_PATH));
    assert!(server.objects().is_empty(), "{:?}", server.objects());

    // The report serialises as nodes.json and renders as a table.
    let json = report.to_json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["nodes"][3]["gpus_allocatable"], 1);
    assert_eq!(json["nodes"][0]["conditions"][3]["type"], "Ready");
    assert_eq!(json["checks"][0]["name"], "nodes-ready");
    let table = kube::nodes_table(report);
    for needle in [
        "NODE",
        "k3s-dev-worker-2",
        "Ready",
        K3S_VERSION,
        "192.168.50.50",
    ] {
        assert!(table.contains(needle), "{needle} in\n{table}");
    }
}

#[test]
fn a_not_ready_node_fails_naming_it_and_its_conditions() {
    let nodes = replace(
        healthy(),
        "k3s-dev-worker-2",
        node("k3s-dev-worker-2", "worker", "192.168.50.21")
            .not_ready(
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
            )
            .json(),
    );
    let server = KubeServer::start(nodes);
    let out = run(&server, &fast());
    let report = &out.report;
    assert!(!report.ok);
    assert_eq!(failed(report), ["nodes-ready"]);
    let detail = &check(report, "nodes-ready").detail;
    eprintln!("{}", kube::nodes_table(report));
    eprintln!("{detail}");
    for needle in [
        "k3s-dev-worker-2 is NotReady (KubeletNotReady)",
        "Ready=False reason=KubeletNotReady",
        "cni plugin not initialized",
        "MemoryPressure=False",
    ] {
        assert!(detail.contains(needle), "{needle} in\n{detail}");
    }
    assert!(!detail.contains("k3s-dev-worker-1"), "{detail}");
    // It waited (polled more than once) and said what it was waiting for.
    assert!(server.count("GET", "/api/v1/nodes") > 2);
    assert!(
        out.progress.iter().any(|l| l
            .contains("waiting for 1 of 4 nodes: k3s-dev-worker-2 (NotReady (KubeletNotReady))")),
        "{:?}",
        out.progress
    );
    // No smoke workloads on a broken cluster.
    assert_eq!(report.smoke, "skipped: node checks failed");
    assert_eq!(server.count("POST", "/api/v1/namespaces"), 0);
    // ensure_ok maps to the verify stage's failure (exit 4) naming the node.
    let err = report.ensure_ok().unwrap_err();
    assert_eq!(kind_of(&err), Some(FailureKind::Stage));
    let text = format!("{err:#}");
    assert!(text.contains("stage verify failed"), "{text}");
    assert!(text.contains("k3s-dev-worker-2"), "{text}");
    let table = kube::nodes_table(report);
    assert!(table.contains("NotReady (KubeletNotReady)"), "{table}");
}

#[test]
fn an_unreachable_node_reports_unknown_status() {
    let nodes = replace(
        healthy(),
        "k3s-dev-worker-1",
        node("k3s-dev-worker-1", "worker", "192.168.50.20")
            .unreachable()
            .json(),
    );
    let server = KubeServer::start(nodes);
    let report = run(&server, &fast()).report;
    let detail = &check(&report, "nodes-ready").detail;
    assert!(
        detail.contains("Ready=Unknown reason=NodeStatusUnknown message=\"Kubelet stopped posting node status.\""),
        "{detail}"
    );
}

#[test]
fn a_missing_node_fails_naming_it() {
    let mut nodes = healthy();
    nodes.remove(2); // k3s-dev-worker-2 never registered
    let server = KubeServer::start(nodes);
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["nodes-ready"]);
    assert_eq!(report.missing, ["k3s-dev-worker-2"]);
    let detail = &check(&report, "nodes-ready").detail;
    assert!(
        detail.contains("k3s-dev-worker-2 is not registered (no Node object)"),
        "{detail}"
    );
    assert!(detail.contains("192.168.50.21"), "{detail}");
    assert!(kube::nodes_table(&report).contains("not registered"));
}

#[test]
fn a_node_that_becomes_ready_while_waiting_passes() {
    let nodes = replace(
        healthy(),
        "k3s-dev-worker-1",
        node("k3s-dev-worker-1", "worker", "192.168.50.20")
            .not_ready("KubeletNotReady", "PLEG is not healthy")
            .json(),
    );
    let server = std::sync::Arc::new(KubeServer::start(nodes));
    let later = std::sync::Arc::clone(&server);
    let flip = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        later.set_nodes(healthy());
    });
    let opts = VerifyOptions {
        ready_timeout: Duration::from_secs(10),
        ..fast()
    };
    let out = run(&server, &opts);
    flip.join().unwrap();
    assert!(out.report.ok, "{:#?}", out.report.checks);
    assert!(
        out.progress.iter().any(|l| l == "all 4 nodes are Ready"),
        "{:?}",
        out.progress
    );
}

#[test]
fn a_wrong_kubelet_version_fails() {
    let nodes = replace(
        healthy(),
        "k3s-dev-worker-1",
        node("k3s-dev-worker-1", "worker", "192.168.50.20")
            .kubelet("v1.32.9+k3s1")
            .json(),
    );
    let server = KubeServer::start(nodes);
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["kubelet-version"]);
    let detail = &check(&report, "kubelet-version").detail;
    assert!(
        detail.contains("k3s-dev-worker-1 runs v1.32.9+k3s1 (want v1.33.5+k3s1"),
        "{detail}"
    );
    assert_eq!(report.smoke, "skipped: node checks failed");
}

#[test]
fn a_gpu_node_without_allocatable_gpus_fails() {
    let nodes = replace(
        healthy(),
        "k3s-dev-gpu-1",
        node("k3s-dev-gpu-1", "gpu-worker", "192.168.50.50").json(),
    );
    let server = KubeServer::start(nodes);
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["gpu-allocatable"]);
    let detail = &check(&report, "gpu-allocatable").detail;
    assert!(
        detail.contains("k3s-dev-gpu-1 (nvidia.com/gpu allocatable: absent)"),
        "{detail}"
    );
    assert!(detail.contains("device plugin"), "{detail}");

    // "0" (device plugin running, GPU unhealthy) fails too.
    server.set_nodes(replace(
        healthy(),
        "k3s-dev-gpu-1",
        node("k3s-dev-gpu-1", "gpu-worker", "192.168.50.50")
            .gpus("0")
            .json(),
    ));
    let report = run(&server, &fast()).report;
    assert!(
        check(&report, "gpu-allocatable")
            .detail
            .contains("allocatable: 0)")
    );
}

#[test]
fn a_control_plane_without_its_label_fails() {
    let nodes = replace(
        healthy(),
        "k3s-dev-cp-1",
        node("k3s-dev-cp-1", "control-plane", "192.168.50.10")
            .without_control_plane_label()
            .json(),
    );
    let server = KubeServer::start(nodes);
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["control-plane-label"]);
    assert!(
        check(&report, "control-plane-label")
            .detail
            .contains("k3s-dev-cp-1 lacks node-role.kubernetes.io/control-plane=true")
    );
}

#[test]
fn a_wrong_role_label_and_internal_ip_fail() {
    let nodes = replace(
        healthy(),
        "k3s-dev-worker-1",
        node("k3s-dev-worker-1", "gpu-worker", "10.0.0.9").json(),
    );
    let server = KubeServer::start(nodes);
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["role-labels", "internal-ip"]);
    assert!(
        check(&report, "role-labels")
            .detail
            .contains("k3s-dev-worker-1 has em-infra/role=gpu-worker (want worker)")
    );
    assert!(
        check(&report, "internal-ip")
            .detail
            .contains("k3s-dev-worker-1 reports InternalIP 10.0.0.9 (inventory: 192.168.50.20)")
    );
}

#[test]
fn extra_nodes_are_reported_but_do_not_fail() {
    let mut nodes = healthy();
    nodes.push(
        node("old-node", "worker", "192.168.50.99")
            .unreachable()
            .json(),
    );
    let server = KubeServer::start(nodes);
    let report = run(&server, &fast()).report;
    assert!(report.ok, "{:#?}", report.checks);
    let last = report.nodes.last().unwrap();
    assert_eq!(last.name, "old-node");
    assert_eq!(last.inventory_role, None);
    assert!(kube::nodes_table(&report).contains("(not in inventory)"));
}

#[test]
fn a_deployment_that_never_rolls_out_fails_and_is_still_cleaned_up() {
    let server = KubeServer::start(healthy());
    server.set_deployment_available(false);
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["smoke-deployment"]);
    assert_eq!(report.smoke, "failed");
    let detail = &check(&report, "smoke-deployment").detail;
    assert!(
        detail.contains("not rolled out after 400ms (0/2 replicas available"),
        "{detail}"
    );
    assert!(detail.contains("MinimumReplicasUnavailable"), "{detail}");
    assert!(
        detail.contains("on k3s-dev-worker-1; Ready=False ContainersNotReady")
            && detail.contains(
                "container pause waiting: ImagePullBackOff Back-off pulling image \"registry.k8s.io/pause:3.10\""
            ),
        "{detail}"
    );
    assert!(check(&report, "smoke-cleanup").ok);
    assert_eq!(server.count("DELETE", NS_PATH), 1);
    assert!(server.objects().is_empty(), "{:?}", server.objects());
}

#[test]
fn a_failing_gpu_pod_fails_with_its_log_and_is_cleaned_up() {
    let server = KubeServer::start(healthy());
    server.set_pod_phase("Failed");
    server.set_pod_log(
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
    );
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["gpu-smoke:k3s-dev-gpu-1"]);
    let detail = &check(&report, "gpu-smoke:k3s-dev-gpu-1").detail;
    assert!(
        detail.contains("nvidia-smi failed on k3s-dev-gpu-1"),
        "{detail}"
    );
    assert!(
        detail.contains("container nvidia-smi exited 127"),
        "{detail}"
    );
    assert!(
        detail.contains("couldn't communicate with the NVIDIA driver"),
        "{detail}"
    );
    assert_eq!(server.count("DELETE", NS_PATH), 1);
}

#[test]
fn a_gpu_pod_stuck_pending_times_out_with_the_scheduler_message() {
    let server = KubeServer::start(healthy());
    server.set_pod_phase("Pending");
    server.add_pod_event(
        "gpu-smoke-k3s-dev-gpu-1",
        "Normal",
        "Scheduled",
        "Successfully assigned",
    );
    server.add_pod_event(
        "gpu-smoke-k3s-dev-gpu-1",
        "Warning",
        "FailedCreatePodSandBox",
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for \"nvidia\" is configured",
    );
    server.add_pod_event("other-pod", "Warning", "BackOff", "not ours");
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["gpu-smoke:k3s-dev-gpu-1"]);
    let detail = &check(&report, "gpu-smoke:k3s-dev-gpu-1").detail;
    assert!(detail.contains("did not finish"), "{detail}");
    assert!(detail.contains("Insufficient nvidia.com/gpu"), "{detail}");
    assert!(
        detail.contains("event FailedCreatePodSandBox: Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for \"nvidia\" is configured"),
        "{detail}"
    );
    assert!(
        !detail.contains("Successfully assigned") && !detail.contains("not ours"),
        "{detail}"
    );
    assert_eq!(server.count("DELETE", NS_PATH), 1);
}

#[test]
fn a_leftover_smoke_namespace_is_deleted_before_the_run() {
    let server = KubeServer::start(healthy());
    server.leave_namespace(SMOKE_NAMESPACE);
    let out = run(&server, &fast());
    assert!(out.report.ok, "{:#?}", out.report.checks);
    assert_eq!(
        server.count("POST", "/api/v1/namespaces"),
        2,
        "409, then created"
    );
    assert_eq!(server.count("DELETE", NS_PATH), 2, "leftover, then cleanup");
    assert!(
        out.progress
            .iter()
            .any(|l| l.contains("left from an earlier run"))
    );
}

#[test]
fn smoke_can_be_disabled() {
    let server = KubeServer::start(healthy());
    let opts = VerifyOptions {
        smoke: false,
        ..fast()
    };
    let report = run(&server, &opts).report;
    assert!(report.ok);
    assert_eq!(report.smoke, "disabled");
    assert_eq!(server.count("POST", "/api/v1/namespaces"), 0);
}

#[test]
fn a_missing_kubeconfig_is_bad_input_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = kube::verify(
        &dir.path().join("kubeconfig"),
        &expected(),
        &fast(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(kind_of(&err), Some(FailureKind::BadInput));
    let text = err.to_string();
    assert!(text.contains("no kubeconfig at"), "{text}");
    assert!(text.contains("em-infra up --only configure"), "{text}");
}

#[test]
fn an_unreachable_api_is_a_verify_failure_naming_the_server() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube_server::write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    let err = kube::verify(&kubeconfig, &expected(), &fast(), &mut |_| {}).unwrap_err();
    eprintln!("{err:#}");
    assert_eq!(kind_of(&err), Some(FailureKind::Stage));
    let text = err.to_string();
    assert!(text.contains("stage verify failed"), "{text}");
    assert!(
        text.contains(&format!(
            "cannot reach the Kubernetes API at http://127.0.0.1:{port}"
        )),
        "{text}"
    );
    assert!(text.contains("systemctl status k3s"), "{text}");
}

#[test]
fn node_states_lists_every_node() {
    let server = KubeServer::start(healthy());
    let dir = tempfile::tempdir().unwrap();
    let states = kube::node_states(&server.kubeconfig(dir.path())).unwrap();
    assert_eq!(states.len(), 4);
    assert!(states.iter().all(|n| n.ready));
    assert_eq!(states[3].gpus_allocatable, Some(1));
    assert_eq!(states[0].em_role.as_deref(), Some("control-plane"));
}

#[test]
fn verify_over_https_with_a_k3s_style_client_certificate_kubeconfig() {
    let server = KubeServer::start_tls(healthy());
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let out = run(&server, &fast());
    assert!(out.report.ok, "{:#?}", out.report.checks);
    assert_eq!(out.report.smoke, "passed");
    // Client-certificate auth: no bearer token was sent.
    let list = server.find("GET", "/api/v1/nodes").unwrap();
    assert_eq!(list.authorization, None);
    assert_eq!(server.count("DELETE", NS_PATH), 1);
}

#[test]
fn a_server_certificate_from_another_ca_is_a_tls_failure_with_the_fix() {
    let ours = KubeServer::start_tls(healthy());
    let other = KubeServer::start_tls(healthy());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = ours.kubeconfig(dir.path());
    // The cluster was recreated: same address, new CA.
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace(&ours.url(), &other.url());
    std::fs::write(&kubeconfig, text).unwrap();
    let err = kube::verify(&kubeconfig, &expected(), &fast(), &mut |_| {}).unwrap_err();
    eprintln!("{err:#}");
    assert_eq!(kind_of(&err), Some(FailureKind::Stage));
    let text = err.to_string();
    assert!(text.contains(&other.url()), "{text}");
    assert!(
        text.contains("the kubeconfig's CA does not match the server"),
        "{text}"
    );
    assert!(text.contains("em-infra up --only configure"), "{text}");
    assert_eq!(
        other.count("GET", "/api/v1/nodes"),
        0,
        "no request got through"
    );
}

#[test]
fn a_refused_gpu_pod_quotes_the_admission_message_and_is_cleaned_up() {
    let server = KubeServer::start(healthy());
    server.reject_pods("pod rejected: RuntimeClass \"nvidia\" not found");
    let report = run(&server, &fast()).report;
    assert_eq!(failed(&report), ["gpu-smoke:k3s-dev-gpu-1"]);
    let detail = &check(&report, "gpu-smoke:k3s-dev-gpu-1").detail;
    assert!(
        detail.contains("creating pod gpu-smoke-k3s-dev-gpu-1: the Kubernetes API at")
            && detail.contains("answered 403: pods \"gpu-smoke-k3s-dev-gpu-1\" is forbidden: pod rejected: RuntimeClass \"nvidia\" not found"),
        "{detail}"
    );
    assert!(
        !detail.contains("lacks this permission"),
        "not an RBAC problem: {detail}"
    );
    assert_eq!(server.count("DELETE", NS_PATH), 1);
}
