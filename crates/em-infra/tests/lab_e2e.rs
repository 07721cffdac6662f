//! The whole thing for real: `em-infra up` with real `terraform` on the offline fixture
//! environment and real `ansible-playbook` over SSH against lab hosts (systemd-nspawn containers
//! in network namespaces), then a no-op rerun, then `em-infra down --yes`.
//!
//! k3s itself cannot be downloaded here, so the configure stage installs the documented stand-in
//! (`crates/k3s-standin`) through the role's air-gapped path; set `EM_INFRA_TEST_K3S_BINARY` (and
//! `EM_INFRA_TEST_K3S_SHA256`) to run the same test with a real k3s binary.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

mod support;
use support::{Repo, code, run_logged, stderr, terraform_available};

/// The fixture's nodes (tests/fixtures/offline-env/terraform.tfvars).
const NODES: [(&str, &str); 3] = [
    ("lab-cp-1", "10.231.0.11"),
    ("lab-worker-1", "10.231.0.21"),
    ("lab-worker-2", "10.231.0.22"),
];

/// The k3s binary to install: the real one when given, else the stand-in built with the workspace.
fn k3s_binary() -> (PathBuf, String) {
    let path = std::env::var_os("EM_INFRA_TEST_K3S_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let standin = support::repo_root().join("target/debug/k3s-standin");
            if !standin.is_file() {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "-p", "k3s-standin"])
                    .current_dir(support::repo_root())
                    .status()
                    .unwrap();
                assert!(status.success(), "building the k3s stand-in failed");
            }
            standin
        });
    let sha = std::env::var("EM_INFRA_TEST_K3S_SHA256").unwrap_or_else(|_| {
        let out = Command::new("sha256sum").arg(&path).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    });
    (path, sha)
}

#[test]
fn up_twice_then_down_against_lab_hosts() {
    if !testlab::require_root_or_skip() || !terraform_available() {
        return;
    }
    let repo = Repo::new();
    let mut spec = testlab::LabSpec::new(repo.root().join("lab"));
    for (name, ip) in NODES {
        spec = spec.host(name, ip.parse().unwrap());
    }
    let mut lab = testlab::Lab::up(spec).expect("lab up");

    let (k3s, sha) = k3s_binary();
    let vars = repo.root().join("site-vars.json");
    fs::write(
        &vars,
        serde_json::json!({ "k3s_binary_local_path": k3s, "k3s_binary_sha256": sha }).to_string(),
    )
    .unwrap();
    let em = |args: &[&str]| {
        let mut cmd = lab.command(env!("CARGO_BIN_EXE_em-infra"));
        repo.configure(&mut cmd);
        cmd.envs(lab.ansible_env())
            .env("EM_INFRA_ANSIBLE_VARS_FILE", &vars)
            .args(args);
        run_logged(&mut cmd, &format!("em-infra {}", args.join(" ")))
    };

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
    let recap = em_infra::ansible::parse_recap(&configure_log);
    assert_eq!(recap.len(), NODES.len(), "{configure_log}");
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
