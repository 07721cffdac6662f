//! `em-infra kubeconfig` and `em-infra ssh` through the real binary (ssh to lab hosts is in
//! `lab_e2e.rs`).

use std::fs;

use crate::support::{Repo, code, stderr};

const K3S_KUBECONFIG: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.231.0.11:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
";

const MINE: &str = "apiVersion: v1
kind: Config
current-context: work
clusters:
- name: work
  cluster:
    server: https://work.example:6443
contexts:
- name: work
  context:
    cluster: work
    user: alice
users:
- name: alice
  user:
    token: t0ken-of-alice
";

#[test]
fn kubeconfig_prints_the_path_then_merges_without_touching_other_contexts() {
    let repo = Repo::new();
    // Before configure there is nothing to print or merge.
    let none = crate::support::run_logged(repo.cmd().arg("kubeconfig"), "kubeconfig");
    assert_eq!(code(&none), 2);
    assert!(stderr(&none).contains("em-infra up --only configure"));

    fs::create_dir_all(repo.state_dir()).unwrap();
    let ours = repo.state_dir().join("kubeconfig");
    fs::write(&ours, K3S_KUBECONFIG).unwrap();
    let path = repo.cmd().arg("kubeconfig").output().unwrap();
    assert_eq!(code(&path), 0);
    assert_eq!(
        String::from_utf8_lossy(&path.stdout).trim(),
        ours.display().to_string()
    );

    let target = repo.root().join("home/kube/config");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(&target, MINE).unwrap();
    let merge = |extra: &[&str]| {
        let mut cmd = repo.cmd();
        cmd.args(["kubeconfig", "--merge"]).args(extra).env(
            "KUBECONFIG",
            format!("{}:/elsewhere/config", target.display()),
        );
        crate::support::run_logged(&mut cmd, "kubeconfig --merge")
    };
    let first = merge(&["--context", "lab"]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let merged = fs::read_to_string(&target).unwrap();
    assert!(merged.contains("current-context: work"), "{merged}");
    assert!(merged.contains("t0ken-of-alice") && merged.contains("https://work.example:6443"));
    assert!(merged.contains("https://10.231.0.11:6443"));
    assert!(
        !merged.contains("name: default"),
        "k3s's names are replaced: {merged}"
    );
    let backups: Vec<_> = fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bak"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(fs::read_to_string(&backups[0]).unwrap(), MINE);

    // A rerun is a no-op: same bytes, no new backup.
    let second = merge(&["--context", "lab"]);
    assert_eq!(code(&second), 0);
    assert!(
        stderr(&second).contains("nothing changed"),
        "{}",
        stderr(&second)
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), merged);
}

#[test]
fn ssh_to_an_unknown_node_names_the_known_ones() {
    let repo = Repo::new();
    let env = repo.env_dir();
    let state = serde_json::json!({
        "version": 4, "serial": 1, "lineage": "l", "terraform_version": "1.9.8",
        "outputs": {
            "cluster_name": {"value": "lab", "type": "string"},
            "ssh_user": {"value": "root", "type": "string"},
            "control_plane_ips": {"value": ["10.231.0.11"], "type": "dynamic"},
            "worker_ips": {"value": [], "type": "dynamic"},
            "gpu_worker_ips": {"value": [], "type": "dynamic"},
            "nodes": {"value": {"lab-cp-1": {"name": "lab-cp-1", "role": "control_plane",
                "ip": "10.231.0.11", "vm_id": 9100, "proxmox_node": "pve", "gpu": null}},
                "type": "dynamic"},
        },
        "resources": [],
    });
    fs::write(env.join("terraform.tfstate"), state.to_string()).unwrap();
    let out = repo.cmd().args(["ssh", "lab-cp-9"]).output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("node lab-cp-9: no such host in the Terraform state"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("known hosts: lab-cp-1"));
}
