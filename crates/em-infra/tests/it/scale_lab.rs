//! `em-infra scale` for real: real `terraform` on the offline fixture environment and real
//! `ansible-playbook` over SSH against lab hosts (see `lab_e2e.rs`). The lab has a fourth host,
//! `lab-worker-3`, which no node uses until `scale --workers 3` creates it; scaling down then
//! drains the removed workers through a Kubernetes API test server (the k3s stand-in serves no
//! API) and destroys only their VMs.
//!
//! Also prints how long adding one worker takes next to a full `up` from nothing.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use crate::kube_server::{KubeServer, node};
use crate::support::{self, Repo, code, stderr, terraform_available};

/// The fixture's three nodes and the worker `scale --workers 3` adds (worker N is .20+N).
const HOSTS: [(&str, &str); 4] = [
    support::LAB_NODES[0],
    support::LAB_NODES[1],
    support::LAB_NODES[2],
    ("lab-worker-3", "10.231.0.23"),
];

/// A Kubernetes API test server listening inside the lab's controller namespace, where em-infra
/// runs (its `127.0.0.1` is that namespace's loopback). The listener is bound by a thread that
/// joined the namespace; the socket stays there whatever thread accepts on it.
fn kube_server_in_lab(lab: &testlab::Lab, nodes: Vec<Value>) -> KubeServer {
    let netns = Path::new("/run/netns").join(lab.controller_netns());
    std::thread::spawn(move || {
        let ns = fs::File::open(&netns).unwrap();
        // SAFETY: a valid namespace descriptor; setns moves only this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {}", netns.display());
        KubeServer::start(nodes)
    })
    .join()
    .unwrap()
}

/// The newest run's stages as (stage, result) and their messages.
fn last_stages(repo: &Repo) -> (Vec<(String, String)>, Vec<String>) {
    let summary = repo.last_summary();
    let stages = summary["stages"].as_array().unwrap();
    (
        stages
            .iter()
            .map(|s| {
                (
                    s["stage"].as_str().unwrap().to_string(),
                    s["result"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        stages
            .iter()
            .map(|s| s["message"].as_str().unwrap_or_default().to_string())
            .collect(),
    )
}

fn pairs(expect: &[(&str, &str)]) -> Vec<(String, String)> {
    expect
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The newest run's Ansible recap (host, changed, failed), sorted by host.
fn configure_recap(repo: &Repo) -> Vec<(String, u32, u32)> {
    let run_dir = repo.runs().pop().unwrap();
    let log = fs::read_to_string(run_dir.join("configure.log")).unwrap();
    let mut recap = em_infra_core::ansible::parse_recap(&log);
    recap.sort();
    recap
}

fn is_active(lab: &testlab::Lab, host: &str, unit: &str) -> String {
    let out = lab
        .ssh(host)
        .arg("systemctl is-active ")
        .arg(unit)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn scale_up_then_down_against_lab_hosts() {
    if !testlab::require_root_or_skip() || !terraform_available() {
        return;
    }
    let repo = Repo::new();
    let mut lab = support::lab_with_hosts(&repo, &HOSTS);
    let em = |args: &[&str]| support::em_in_lab(&lab, &repo, args);

    // A full `up` from nothing: three nodes; lab-worker-3 is booted but no node yet.
    let clock = Instant::now();
    let first = em(&["up"]);
    let full_up = clock.elapsed();
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    assert_eq!(repo.last_summary()["result"], "succeeded");
    assert_eq!(
        repo.tfstate_nodes(),
        ["lab-cp-1", "lab-worker-1", "lab-worker-2"]
    );
    assert_ne!(is_active(&lab, "lab-worker-3", "k3s-agent"), "active");

    // 2 → 3: only lab-worker-3 is created, and configure joins it.
    let clock = Instant::now();
    let up = em(&["scale", "--workers", "3", "--yes"]);
    let scale_up = clock.elapsed();
    assert_eq!(code(&up), 0, "{}", stderr(&up));
    assert!(
        stderr(&up).contains("create and join: lab-worker-3"),
        "{}",
        stderr(&up)
    );
    let (stages, messages) = last_stages(&repo);
    assert_eq!(
        stages,
        pairs(&[
            ("provision", "succeeded"),
            ("configure", "succeeded"),
            ("verify", "succeeded"),
        ])
    );
    assert!(
        messages[0].contains("1 to create, 0 to update, 0 to replace, 0 to destroy"),
        "{}",
        messages[0]
    );
    assert_eq!(repo.tfstate_nodes(), HOSTS.map(|(n, _)| n.to_string()));
    let recap = configure_recap(&repo);
    // Ansible runs on the control plane (which the new worker joins) and the new worker only;
    // the control plane changes nothing.
    assert_eq!(
        recap.iter().map(|(h, _, _)| h.as_str()).collect::<Vec<_>>(),
        ["lab-cp-1", "lab-worker-3"],
        "{recap:?}"
    );
    assert!(
        recap.iter().all(
            |(host, changed, failed)| (*changed > 0) == (host == "lab-worker-3") && *failed == 0
        ),
        "{recap:?}"
    );
    assert_eq!(is_active(&lab, "lab-worker-3", "k3s-agent"), "active");
    eprintln!(
        "scale-up of one worker: {:.1} s; full up: {:.1} s",
        scale_up.as_secs_f64(),
        full_up.as_secs_f64()
    );

    // Ansible again on the four nodes: nothing to change anywhere.
    let again = em(&["up", "--only", "configure"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    let recap = configure_recap(&repo);
    assert_eq!(
        recap.iter().map(|(h, _, _)| h.as_str()).collect::<Vec<_>>(),
        HOSTS.map(|(n, _)| n)
    );
    assert!(
        recap
            .iter()
            .all(|(_, changed, failed)| *changed == 0 && *failed == 0),
        "{recap:?}"
    );
    // And Terraform has nothing to do.
    let plan = em(&["up", "--only", "provision"]);
    assert_eq!(code(&plan), 0, "{}", stderr(&plan));
    assert!(stderr(&plan).contains("no changes"), "{}", stderr(&plan));

    // 3 → 1: lab-worker-3 and lab-worker-2 are drained (their pods evicted) and their Node objects
    // deleted; lab-worker-1 is left alone. The kubeconfig is written now: configure rewrote it.
    let server = kube_server_in_lab(
        &lab,
        vec![
            node("lab-cp-1", "control-plane", "10.231.0.11").json(),
            node("lab-worker-1", "worker", "10.231.0.21").json(),
            node("lab-worker-2", "worker", "10.231.0.22").json(),
            node("lab-worker-3", "worker", "10.231.0.23").json(),
        ],
    );
    server.add_pod("default", "web-1", "lab-worker-1", "ReplicaSet");
    server.add_pod("default", "web-2", "lab-worker-2", "ReplicaSet");
    server.add_pod("default", "web-3", "lab-worker-3", "ReplicaSet");
    server.kubeconfig(&repo.state_dir());
    let down = em(&["scale", "--workers", "1", "--yes"]);
    assert_eq!(code(&down), 0, "{}", stderr(&down));
    let (stages, messages) = last_stages(&repo);
    assert_eq!(
        stages,
        pairs(&[
            ("drain", "succeeded"),
            ("provision", "succeeded"),
            ("configure", "succeeded"),
            ("verify", "succeeded"),
        ])
    );
    assert!(
        messages[1].contains("0 to create, 0 to update, 0 to replace, 2 to destroy"),
        "{}",
        messages[1]
    );
    for (pod, evictions) in [("web-1", 0), ("web-2", 1), ("web-3", 1)] {
        assert_eq!(
            server.count(
                "POST",
                &format!("/api/v1/namespaces/default/pods/{pod}/eviction")
            ),
            evictions,
            "{pod}"
        );
    }
    for (name, deleted) in [
        ("lab-worker-1", 0),
        ("lab-worker-2", 1),
        ("lab-worker-3", 1),
    ] {
        assert_eq!(
            server.count("DELETE", &format!("/api/v1/nodes/{name}")),
            deleted,
            "{name}"
        );
    }
    assert_eq!(server.count("PATCH", "/api/v1/nodes/lab-worker-1"), 0);
    assert_eq!(
        server.node_states(),
        [
            ("lab-cp-1".to_string(), false),
            ("lab-worker-1".to_string(), false)
        ]
    );
    assert_eq!(repo.tfstate_nodes(), ["lab-cp-1", "lab-worker-1"]);
    // Ansible on the two nodes left: lab-worker-1 unchanged; lab-cp-1's one change is the
    // kubeconfig written back over the test server's (configure fetches it every run).
    assert_eq!(
        configure_recap(&repo),
        [
            ("lab-cp-1".to_string(), 1, 0),
            ("lab-worker-1".to_string(), 0, 0)
        ]
    );
    assert!(
        fs::read_to_string(repo.state_dir().join("kubeconfig"))
            .unwrap()
            .contains("server: https://10.231.0.11:6443")
    );
    assert_eq!(is_active(&lab, "lab-worker-1", "k3s-agent"), "active");
    // The plan is empty afterwards.
    let plan = em(&["up", "--only", "provision"]);
    assert_eq!(code(&plan), 0, "{}", stderr(&plan));
    assert!(stderr(&plan).contains("no changes"), "{}", stderr(&plan));

    // node replace of lab-worker-1: drained and its Node deleted, its VM (here: its stand-in)
    // replaced, configured again by real Ansible, verified.
    let server = kube_server_in_lab(
        &lab,
        vec![
            node("lab-cp-1", "control-plane", "10.231.0.11").json(),
            node("lab-worker-1", "worker", "10.231.0.21").json(),
        ],
    );
    server.add_pod("default", "web-1", "lab-worker-1", "ReplicaSet");
    server.kubeconfig(&repo.state_dir());
    let replaced = em(&["node", "replace", "lab-worker-1", "--yes"]);
    assert_eq!(code(&replaced), 0, "{}", stderr(&replaced));
    let (stages, messages) = last_stages(&repo);
    assert_eq!(
        stages,
        pairs(&[
            ("drain", "succeeded"),
            ("provision", "succeeded"),
            ("configure", "succeeded"),
            ("verify", "succeeded"),
        ])
    );
    assert!(
        messages[1].contains("0 to create, 0 to update, 1 to replace, 0 to destroy"),
        "{}",
        messages[1]
    );
    assert_eq!(
        server.count("POST", "/api/v1/namespaces/default/pods/web-1/eviction"),
        1
    );
    assert_eq!(server.count("DELETE", "/api/v1/nodes/lab-worker-1"), 1);
    assert_eq!(repo.tfstate_nodes(), ["lab-cp-1", "lab-worker-1"]);
    assert_eq!(is_active(&lab, "lab-worker-1", "k3s-agent"), "active");
    let plan = em(&["up", "--only", "provision"]);
    assert!(stderr(&plan).contains("no changes"), "{}", stderr(&plan));

    lab.down().expect("lab down");
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}
