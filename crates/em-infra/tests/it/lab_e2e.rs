//! The whole thing for real: `em-infra up` with real `terraform` on the offline fixture
//! environment and real `ansible-playbook` over SSH against lab hosts (systemd-nspawn containers
//! in network namespaces), then a no-op rerun, then `em-infra down --yes`.
//!
//! k3s itself cannot be downloaded here, so the configure stage installs the documented stand-in
//! (`crates/k3s-standin`) through the role's air-gapped path; `EM_INFRA_TEST_K3S_BINARY` runs the
//! same test with a real k3s binary (see `support::k3s_binary`).

use std::fs;

use crate::support;
use support::{Repo, code, stderr, terraform_available};

#[test]
fn up_twice_then_down_against_lab_hosts() {
    if !testlab::require_root_or_skip() || !terraform_available() {
        return;
    }
    let repo = Repo::new();
    let mut lab = support::lab_for_fixture(&repo);
    let em = |args: &[&str]| support::em_in_lab(&lab, &repo, args);

    // First run: every stage succeeds (prepare is skipped: it needs a Proxmox host).
    let first = em(&["up", "--json"]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let results: Vec<(String, String)> = summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().into(),
                s["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("preflight", "succeeded"),
        ("prepare", "skipped"),
        ("provision", "succeeded"),
        ("configure", "succeeded"),
        ("verify", "succeeded"),
    ];
    assert_eq!(results, expect.map(|(a, b)| (a.to_string(), b.to_string())));
    let kubeconfig = repo.state_dir().join("kubeconfig");
    assert!(
        fs::read_to_string(&kubeconfig)
            .unwrap()
            .contains("server: https://10.231.0.11:6443")
    );

    // `em-infra ssh` reaches a node by name with Ansible's key, user and known_hosts.
    let ssh = em(&["ssh", "lab-worker-2", "--", "hostname"]);
    assert_eq!(code(&ssh), 0, "{}", stderr(&ssh));
    assert_eq!(String::from_utf8_lossy(&ssh.stdout).trim(), "lab-worker-2");

    // Second run: the plan is empty and Ansible changes nothing.
    let second = em(&["up", "--json"]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let message = |stage: &str| -> String {
        summary["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == stage)
            .map(|s| s["message"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        message("provision").contains("no changes"),
        "{}",
        message("provision")
    );
    assert!(
        message("configure").ends_with("changed=0"),
        "{}",
        message("configure")
    );
    let run_dir = repo.runs().pop().unwrap();
    let configure_log = fs::read_to_string(run_dir.join("configure.log")).unwrap();
    let recap = em_infra_core::ansible::parse_recap(&configure_log);
    assert_eq!(recap.len(), support::LAB_NODES.len(), "{configure_log}");
    assert!(
        recap
            .iter()
            .all(|(_, changed, failed)| *changed == 0 && *failed == 0),
        "{recap:?}"
    );

    // No secret in em-infra's records: the k3s token and the lab's private key.
    let token = fs::read_to_string(repo.state_dir().join("k3s-token"))
        .unwrap()
        .trim()
        .to_string();
    let key = fs::read_to_string(lab.private_key()).unwrap();
    let key_body = key.lines().nth(1).unwrap().to_string();
    for (path, content) in support::snapshot(
        &repo.root().join(".em-infra"),
        &repo.state_dir().join("k3s-token"),
    ) {
        if path == kubeconfig {
            continue;
        }
        let text = String::from_utf8_lossy(&content);
        assert!(!text.contains(&token), "k3s token in {}", path.display());
        assert!(
            !text.contains(&key_body),
            "private key in {}",
            path.display()
        );
    }

    // Down: Terraform state, token, kubeconfig and stage state are gone.
    let down = em(&["down", "--yes"]);
    assert_eq!(code(&down), 0, "{}", stderr(&down));
    for gone in [
        repo.env_dir().join("terraform.tfstate"),
        repo.state_dir().join("k3s-token"),
        kubeconfig,
        repo.state_dir().join("state.json"),
    ] {
        assert!(!gone.exists(), "{} is left behind", gone.display());
    }

    lab.down().expect("lab down");
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}
