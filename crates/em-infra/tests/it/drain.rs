//! `em_infra_core::kube::drain` against the Kubernetes API test server: cordon, evictions through
//! the Eviction API (PodDisruptionBudget refusals are 429s, retried), DaemonSet pods left alone,
//! `--force` deletion after the deadline, then the Node object deleted.

use std::time::Duration;

use em_infra_core::failure::{FailureKind, kind_of};
use em_infra_core::kube::drain::{DrainOptions, drain_and_delete};

use crate::kube_server::{KubeServer, node};

fn cluster() -> (KubeServer, tempfile::TempDir) {
    let server = KubeServer::start(vec![
        node("lab-cp-1", "control-plane", "10.0.0.11").json(),
        node("lab-worker-1", "worker", "10.0.0.21").json(),
        node("lab-worker-2", "worker", "10.0.0.22").json(),
    ]);
    server.add_pod("default", "web-1", "lab-worker-2", "ReplicaSet");
    server.add_pod("kube-system", "svclb-web-x", "lab-worker-2", "DaemonSet");
    server.add_pod("default", "web-2", "lab-worker-1", "ReplicaSet");
    let dir = tempfile::tempdir().unwrap();
    (server, dir)
}

fn quick(force: bool) -> DrainOptions {
    DrainOptions {
        timeout: Duration::from_millis(600),
        force,
        poll: Duration::from_millis(50),
    }
}

#[test]
fn a_drained_node_is_cordoned_emptied_and_deleted_and_nothing_else_is_touched() {
    let (server, dir) = cluster();
    let kubeconfig = server.kubeconfig(dir.path());
    let mut said = Vec::new();
    let done = drain_and_delete(
        &kubeconfig,
        &["lab-worker-2".to_string()],
        &quick(false),
        &mut |l| said.push(l.to_string()),
    )
    .unwrap();
    assert_eq!(done[0].evicted, ["default/web-1"]);
    assert_eq!(
        done[0].ignored,
        ["kube-system/svclb-web-x"],
        "DaemonSet pods stay"
    );
    assert!(done[0].deleted.is_empty() && done[0].existed);
    // Cordon first, then the eviction, then the Node's deletion.
    let cordon = server
        .position("PATCH", "/api/v1/nodes/lab-worker-2")
        .unwrap();
    let evict = server
        .position("POST", "/api/v1/namespaces/default/pods/web-1/eviction")
        .unwrap();
    let delete = server
        .position("DELETE", "/api/v1/nodes/lab-worker-2")
        .unwrap();
    assert!(cordon < evict && evict < delete);
    assert_eq!(
        server.node_states(),
        [
            ("lab-cp-1".to_string(), false),
            ("lab-worker-1".to_string(), false)
        ]
    );
    let left = server.objects();
    assert!(left.contains(&"/api/v1/namespaces/default/pods/web-2".to_string()));
    assert!(!left.contains(&"/api/v1/namespaces/default/pods/web-1".to_string()));
    assert!(
        said.iter()
            .any(|l| l == "lab-worker-2: Node object deleted"),
        "{said:?}"
    );
}

#[test]
fn a_disruption_budget_is_waited_for_then_respected_or_forced() {
    // Two refusals, then the budget allows it: evicted, not deleted.
    let (server, dir) = cluster();
    server.refuse_evictions("default", "web-1", 2);
    let kubeconfig = server.kubeconfig(dir.path());
    let done = drain_and_delete(
        &kubeconfig,
        &["lab-worker-2".into()],
        &quick(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(done[0].evicted, ["default/web-1"]);
    assert_eq!(
        server.count("POST", "/api/v1/namespaces/default/pods/web-1/eviction"),
        3
    );

    // A budget that never allows it: without --force the drain stops, the node stays cordoned
    // and is not deleted, and the error names the pod and the flag.
    let (server, dir) = cluster();
    server.refuse_evictions("default", "web-1", u32::MAX);
    let kubeconfig = server.kubeconfig(dir.path());
    let err = drain_and_delete(
        &kubeconfig,
        &["lab-worker-2".into()],
        &quick(false),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(kind_of(&err), Some(FailureKind::Stage));
    let text = format!("{err:#}");
    assert!(
        text.contains("default/web-1 could not be evicted"),
        "{text}"
    );
    assert!(text.contains("--force"), "{text}");
    assert!(
        server
            .node_states()
            .contains(&("lab-worker-2".to_string(), true)),
        "cordoned, not deleted"
    );
    assert_eq!(server.count("DELETE", "/api/v1/nodes/lab-worker-2"), 0);

    // With --force the pod is deleted after the deadline, then the node.
    let done = drain_and_delete(
        &kubeconfig,
        &["lab-worker-2".into()],
        &quick(true),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(done[0].deleted, ["default/web-1"]);
    assert_eq!(
        server.count("DELETE", "/api/v1/namespaces/default/pods/web-1"),
        1
    );
    assert!(
        !server
            .node_states()
            .iter()
            .any(|(n, _)| n == "lab-worker-2")
    );
}

#[test]
fn a_node_without_a_node_object_is_nothing_to_drain() {
    let (server, dir) = cluster();
    let kubeconfig = server.kubeconfig(dir.path());
    let done = drain_and_delete(
        &kubeconfig,
        &["lab-worker-9".into()],
        &quick(false),
        &mut |_| {},
    )
    .unwrap();
    assert!(!done[0].existed);
    assert_eq!(server.count("DELETE", "/api/v1/nodes/lab-worker-9"), 0);
}
