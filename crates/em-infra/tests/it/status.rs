//! `em-infra status` through the binary: Terraform state + (fake) Proxmox + (fake) Kubernetes API.

use crate::kube_server;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kube_server::{KubeServer, node, pve_vm};
use serde_json::{Value, json};

const ENV: &str = "test-env";
const TOKEN: &str = "root@pam!em-infra=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const SECRET: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// A repository with one environment whose Terraform state holds four nodes.
struct Repo {
    dir: tempfile::TempDir,
}

fn tf_output(value: Value) -> Value {
    // The type is not read by em-infra; a real state has one, so keep the key.
    json!({ "value": value, "type": "dynamic" })
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("terraform/environments").join(ENV);
        fs::create_dir_all(&env).unwrap();
        let node = |name: &str, role: &str, ip: &str, vm_id: u64, gpu: Value| json!({ "name": name, "role": role, "ip": ip, "vm_id": vm_id, "proxmox_node": "pve", "gpu": gpu });
        let state = json!({
            "version": 4,
            "terraform_version": "1.11.4",
            "serial": 3,
            "lineage": "1b6a1d0e-8c3f-4d8e-9a3b-6c2f1e0d9a8b",
            "outputs": {
                "cluster_name": tf_output(json!("k3s-dev")),
                "ssh_user": tf_output(json!("ubuntu")),
                "control_plane_ips": tf_output(json!(["192.168.50.10"])),
                "worker_ips": tf_output(json!(["192.168.50.20", "192.168.50.21"])),
                "gpu_worker_ips": tf_output(json!(["192.168.50.50"])),
                "nodes": tf_output(json!({
                    "k3s-dev-cp-1": node("k3s-dev-cp-1", "control_plane", "192.168.50.10", 9100, Value::Null),
                    "k3s-dev-worker-1": node("k3s-dev-worker-1", "worker", "192.168.50.20", 9110, Value::Null),
                    "k3s-dev-worker-2": node("k3s-dev-worker-2", "worker", "192.168.50.21", 9111, Value::Null),
                    "k3s-dev-gpu-1": node("k3s-dev-gpu-1", "gpu_worker", "192.168.50.50", 9140,
                        json!({ "mapping": "rtx-a4000", "pci_id": null })),
                })),
            },
            "resources": [],
            "check_results": null,
        });
        fs::write(env.join("terraform.tfstate"), state.to_string()).unwrap();
        // A Proxmox environment, like k3s-dev: status asks Proxmox about its VMs.
        fs::write(
            env.join("versions.tf"),
            "terraform {\n  required_providers {\n    proxmox = { source = \"bpg/proxmox\" }\n  }\n}\n",
        )
        .unwrap();
        Repo { dir }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".em-infra").join(ENV)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_em-infra"));
        cmd.current_dir(self.dir.path())
            .env("EM_INFRA_ROOT", self.dir.path())
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("EM_INFRA_STATE_DIR")
            .env_remove("EM_INFRA_ENV")
            .env_remove("PROXMOX_VE_ENDPOINT")
            .env_remove("PROXMOX_VE_API_TOKEN")
            .env_remove("PROXMOX_VE_INSECURE")
            .env_remove("EM_INFRA_PVE_CA_FILE")
            .args(["status", "--env", ENV])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn with_proxmox(cmd: &mut Command, server: &KubeServer) {
        cmd.env("PROXMOX_VE_ENDPOINT", format!("{}/", server.url()))
            .env("PROXMOX_VE_API_TOKEN", TOKEN);
    }

    fn kubeconfig(&self, server: &KubeServer) -> PathBuf {
        server.kubeconfig(&self.state_dir())
    }
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "--- exit {:?}\n{stdout}\n--- stderr\n{stderr}",
        out.status.code()
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn row<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {doc:#}"))
}

fn drift(doc: &Value, name: &str) -> Vec<String> {
    row(doc, name)["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

fn healthy_nodes() -> Vec<Value> {
    vec![
        node("k3s-dev-cp-1", "control-plane", "192.168.50.10").json(),
        node("k3s-dev-worker-1", "worker", "192.168.50.20").json(),
        node("k3s-dev-worker-2", "worker", "192.168.50.21").json(),
        node("k3s-dev-gpu-1", "gpu-worker", "192.168.50.50")
            .gpus("1")
            .json(),
    ]
}

fn healthy_vms() -> Vec<Value> {
    vec![
        pve_vm(9100, "k3s-dev-cp-1", "pve", "running"),
        pve_vm(9110, "k3s-dev-worker-1", "pve", "running"),
        pve_vm(9111, "k3s-dev-worker-2", "pve", "running"),
        pve_vm(9140, "k3s-dev-gpu-1", "pve", "running"),
        // Someone else's VM: never part of the view.
        pve_vm(123, "nas", "pve", "running"),
    ]
}

#[test]
fn without_proxmox_or_kubeconfig_both_columns_are_unknown_and_it_fails_blind() {
    let repo = Repo::new();
    let (code, stdout, _) = run(&mut repo.cmd(&["--json"]));
    // Nobody saw the cluster: "no drift" would be a claim without evidence.
    assert_eq!(code, 3);
    let doc = json_of(&stdout);
    assert_eq!(
        doc["sources"]["proxmox"],
        "not configured: PROXMOX_VE_ENDPOINT is not set"
    );
    let kube = doc["sources"]["kubernetes"].as_str().unwrap();
    assert!(kube.starts_with("no kubeconfig at "), "{kube}");
    assert!(kube.contains("em-infra up --only configure"), "{kube}");
    assert_eq!(doc["nodes"].as_array().unwrap().len(), 4);
    let cp = row(&doc, "k3s-dev-cp-1");
    assert_eq!(cp["vm_id"], 9100);
    assert_eq!(cp["role"], "control_plane");
    assert!(cp["proxmox"].is_null() && cp["kubernetes"].is_null());
    assert_eq!(cp["drift"], json!([]));

    // Human output: one reason line per unknown source, `?` cells, exit 3 naming both.
    let (code, stdout, stderr) = run(&mut repo.cmd(&[]));
    assert_eq!(code, 3);
    assert!(
        stderr.contains("! Proxmox: unknown — not configured: PROXMOX_VE_ENDPOINT is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("! Kubernetes: unknown — no kubeconfig at"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "error: preflight failed: status could not see the cluster: Proxmox: not configured: PROXMOX_VE_ENDPOINT is not set; Kubernetes: no kubeconfig at"
        ),
        "{stderr}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("k3s-dev-worker-1"))
        .unwrap();
    assert!(line.contains("9110") && line.contains('?'), "{line}");
}

#[test]
fn kubernetes_drift_not_ready_and_missing_nodes_exit_4() {
    let repo = Repo::new();
    let mut nodes = healthy_nodes();
    nodes.pop(); // k3s-dev-gpu-1 never registered
    nodes[2] = node("k3s-dev-worker-2", "worker", "192.168.50.21")
        .not_ready("KubeletNotReady", "PLEG is not healthy")
        .json();
    let server = KubeServer::start(nodes);
    repo.kubeconfig(&server);

    let (code, stdout, stderr) = run(&mut repo.cmd(&["--json"]));
    assert_eq!(code, 4, "drift is exit 4");
    let doc = json_of(&stdout);
    assert_eq!(doc["sources"]["kubernetes"], "ok");
    assert_eq!(drift(&doc, "k3s-dev-cp-1"), Vec::<String>::new());
    assert_eq!(drift(&doc, "k3s-dev-worker-2"), ["node NotReady"]);
    assert_eq!(drift(&doc, "k3s-dev-gpu-1"), ["node missing"]);
    let w2 = &row(&doc, "k3s-dev-worker-2")["kubernetes"];
    assert_eq!(w2["ready"], false);
    assert_eq!(w2["kubelet_version"], "v1.33.5+k3s1");
    assert!(row(&doc, "k3s-dev-gpu-1")["kubernetes"].is_null());
    assert!(
        stderr.contains("stage status failed: drift on 2 of 4 nodes: k3s-dev-worker-2 (node NotReady); k3s-dev-gpu-1 (node missing)"),
        "{stderr}"
    );

    let (code, stdout, _) = run(&mut repo.cmd(&[]));
    assert_eq!(code, 4);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("k3s-dev-worker-2"))
        .unwrap();
    assert!(
        line.contains("NotReady (KubeletNotReady)") && line.contains("node NotReady"),
        "{line}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("k3s-dev-gpu-1"))
        .unwrap();
    assert!(
        line.contains("missing") && line.contains("node missing"),
        "{line}"
    );
}

#[test]
fn proxmox_drift_missing_stopped_and_renamed_vms() {
    let repo = Repo::new();
    let server = KubeServer::start(healthy_nodes());
    repo.kubeconfig(&server);
    server.set_pve_vms(vec![
        pve_vm(9100, "k3s-dev-cp-1", "pve", "running"),
        pve_vm(9110, "k3s-dev-worker-1", "pve", "stopped"),
        // 9111 is gone
        pve_vm(9140, "gpu-box", "pve2", "running"),
        pve_vm(123, "nas", "pve", "running"),
    ]);
    let mut cmd = repo.cmd(&["--json"]);
    Repo::with_proxmox(&mut cmd, &server);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 4);
    let doc = json_of(&stdout);
    assert_eq!(doc["sources"]["proxmox"], "ok");
    assert_eq!(drift(&doc, "k3s-dev-cp-1"), Vec::<String>::new());
    assert_eq!(drift(&doc, "k3s-dev-worker-1"), ["VM stopped"]);
    assert_eq!(drift(&doc, "k3s-dev-worker-2"), ["VM missing"]);
    assert_eq!(drift(&doc, "k3s-dev-gpu-1"), ["name mismatch"]);
    let gpu = &row(&doc, "k3s-dev-gpu-1")["proxmox"];
    assert_eq!(gpu["vmid"], 9140);
    assert_eq!(gpu["name"], "gpu-box");
    assert_eq!(gpu["node"], "pve2");
    assert_eq!(gpu["status"], "running");
    assert!(row(&doc, "k3s-dev-worker-2")["proxmox"].is_null());
    assert!(
        !stdout.contains("\"nas\""),
        "foreign VMs stay out: {stdout}"
    );
    // Status authenticated with the token but never printed its secret.
    let req = server.find("GET", "/api2/json/cluster/resources").unwrap();
    assert_eq!(req.query, "type=vm");
    assert_eq!(
        req.authorization.as_deref(),
        Some(format!("PVEAPIToken={TOKEN}").as_str())
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
}

#[test]
fn a_healthy_cluster_has_no_drift_and_exits_0() {
    let repo = Repo::new();
    let server = KubeServer::start(healthy_nodes());
    repo.kubeconfig(&server);
    server.set_pve_vms(healthy_vms());
    let mut cmd = repo.cmd(&[]);
    Repo::with_proxmox(&mut cmd, &server);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 0);
    assert!(stderr.contains("✓ Proxmox: answered"), "{stderr}");
    assert!(stderr.contains("✓ Kubernetes: answered"), "{stderr}");
    assert!(stderr.contains("✓ no drift"), "{stderr}");
    let header = stdout.lines().next().unwrap();
    for col in [
        "NODE", "ROLE", "VM ID", "PVE NODE", "VM", "K8S", "KUBELET", "GPUS", "DRIFT",
    ] {
        assert!(header.contains(col), "{col} in {header}");
    }
    let gpu = stdout
        .lines()
        .find(|l| l.starts_with("k3s-dev-gpu-1"))
        .unwrap();
    for cell in [
        "gpu_worker",
        "9140",
        "pve",
        "running",
        "Ready",
        "v1.33.5+k3s1",
        " 1 ",
    ] {
        assert!(gpu.contains(cell), "{cell} in {gpu}");
    }
    let cp = stdout
        .lines()
        .find(|l| l.starts_with("k3s-dev-cp-1"))
        .unwrap();
    assert!(cp.contains("control-plane,master"), "{cp}");
}

#[test]
fn an_unreachable_source_is_unknown_with_its_reason() {
    let repo = Repo::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    kube_server::write_kubeconfig(&repo.state_dir(), &format!("http://127.0.0.1:{port}"));
    let mut cmd = repo.cmd(&["--json"]);
    cmd.env("PROXMOX_VE_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("PROXMOX_VE_API_TOKEN", TOKEN);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 3, "unknown is not drift, and not \"no drift\" either");
    let doc = json_of(&stdout);
    let kube = doc["sources"]["kubernetes"].as_str().unwrap();
    assert!(
        kube.contains(&format!(
            "cannot reach the Kubernetes API at http://127.0.0.1:{port}"
        )),
        "{kube}"
    );
    let pve = doc["sources"]["proxmox"].as_str().unwrap();
    assert!(pve.contains(&port.to_string()), "{pve}");
    assert!(!pve.contains('\n'));
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
}

#[test]
fn a_kubernetes_node_missing_from_the_state_is_drift() {
    let repo = Repo::new();
    let mut nodes = healthy_nodes();
    nodes.push(
        node("k3s-dev-worker-3", "worker", "192.168.50.22")
            .unreachable()
            .json(),
    );
    let server = KubeServer::start(nodes);
    repo.kubeconfig(&server);
    let (code, stdout, _) = run(&mut repo.cmd(&["--json"]));
    assert_eq!(code, 4);
    let doc = json_of(&stdout);
    let extra = row(&doc, "k3s-dev-worker-3");
    assert!(extra["vm_id"].is_null() && extra["role"].is_null());
    assert_eq!(drift(&doc, "k3s-dev-worker-3"), ["not in Terraform state"]);
}

#[test]
fn without_terraform_state_it_is_bad_input() {
    let repo = Repo::new();
    fs::remove_file(
        repo.dir
            .path()
            .join("terraform/environments")
            .join(ENV)
            .join("terraform.tfstate"),
    )
    .unwrap();
    let (code, _, stderr) = run(&mut repo.cmd(&[]));
    assert_eq!(code, 2);
    assert!(stderr.contains("no Terraform state at"), "{stderr}");
}

#[test]
fn an_environment_without_proxmox_is_not_asked_about_vms() {
    let repo = Repo::new();
    fs::remove_file(
        repo.dir
            .path()
            .join("terraform/environments")
            .join(ENV)
            .join("versions.tf"),
    )
    .unwrap();
    let server = KubeServer::start(healthy_nodes());
    repo.kubeconfig(&server);
    let mut cmd = repo.cmd(&["--json"]);
    // Even with Proxmox settings present, an environment that does not use it is not asked.
    Repo::with_proxmox(&mut cmd, &server);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let doc = json_of(&stdout);
    let pve = doc["sources"]["proxmox"].as_str().unwrap();
    assert!(pve.starts_with("not used: "), "{pve}");
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.path.contains("/cluster/resources")),
        "Proxmox was asked"
    );
    assert_eq!(doc["sources"]["kubernetes"], "ok");
}
