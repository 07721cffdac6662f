//! `em-infra inventory` end to end: the real binary on Terraform state files shaped exactly as
//! `terraform apply` writes them (format version 4, outputs with `value` and `type`), every error
//! case, determinism, the offline fixture through real Terraform, and real `ansible-inventory`
//! through `ansible/inventory/terraform_inventory.yml`.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support;
use support::{on_path, repo_root, skip_or_fail};

// ---------------------------------------------------------------------------------------------
// Building states
// ---------------------------------------------------------------------------------------------

/// One node as the `nodes` output holds it.
struct N {
    name: String,
    role: &'static str,
    ip: String,
    vm_id: u64,
    pve: &'static str,
    gpu: Value,
}

fn n(name: &str, role: &'static str, ip: &str, vm_id: u64, gpu: Value) -> N {
    N {
        name: name.to_string(),
        role,
        ip: ip.to_string(),
        vm_id,
        pve: "pve",
        gpu,
    }
}

/// 1 control plane, 2 workers, 2 GPU workers (one by mapping, one by raw PCI ID, on another node).
fn dev_cluster() -> Vec<N> {
    let mut gpu2 = n(
        "k3s-dev-gpu-2",
        "gpu_worker",
        "10.20.0.51",
        9141,
        json!({"mapping": null, "pci_id": "0000:41:00.0"}),
    );
    gpu2.pve = "pve2";
    vec![
        n(
            "k3s-dev-cp-1",
            "control_plane",
            "10.20.0.10",
            9100,
            Value::Null,
        ),
        n(
            "k3s-dev-worker-1",
            "worker",
            "10.20.0.20",
            9110,
            Value::Null,
        ),
        n(
            "k3s-dev-worker-2",
            "worker",
            "10.20.0.21",
            9111,
            Value::Null,
        ),
        n(
            "k3s-dev-gpu-1",
            "gpu_worker",
            "10.20.0.50",
            9140,
            json!({"mapping": "rtx4090", "pci_id": null}),
        ),
        gpu2,
    ]
}

/// Terraform's type expression for a JSON value, as `terraform apply` records it in `outputs.*.type`
/// (object/tuple types of the literal, `dynamic` for null).
fn tf_type(value: &Value) -> Value {
    match value {
        Value::Null => json!("dynamic"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => json!(["tuple", items.iter().map(tf_type).collect::<Vec<_>>()]),
        Value::Object(map) => {
            let fields: serde_json::Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), tf_type(v))).collect();
            json!(["object", fields])
        }
    }
}

fn tf_output(value: Value) -> Value {
    let ty = tf_type(&value);
    json!({ "value": value, "type": ty })
}

fn ips_of(nodes: &[N], role: &str) -> Value {
    json!(
        nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.ip.as_str())
            .collect::<Vec<_>>()
    )
}

/// The contract outputs (architecture freeze §2) for `nodes`, keyed by output name.
fn outputs_for(nodes: &[N]) -> serde_json::Map<String, Value> {
    let node_map: serde_json::Map<String, Value> = nodes
        .iter()
        .map(|n| {
            let body = json!({
                "gpu": n.gpu, "ip": n.ip, "name": n.name, "proxmox_node": n.pve, "role": n.role, "vm_id": n.vm_id,
            });
            (n.name.to_string(), body)
        })
        .collect();
    let mut outputs = serde_json::Map::new();
    outputs.insert("cluster_name".into(), tf_output(json!("k3s-dev")));
    outputs.insert(
        "control_plane_ips".into(),
        tf_output(ips_of(nodes, "control_plane")),
    );
    outputs.insert(
        "gpu_worker_ips".into(),
        tf_output(ips_of(nodes, "gpu_worker")),
    );
    outputs.insert("nodes".into(), tf_output(Value::Object(node_map)));
    outputs.insert("ssh_user".into(), tf_output(json!("ubuntu")));
    outputs.insert("worker_ips".into(), tf_output(ips_of(nodes, "worker")));
    outputs
}

/// A whole state file around `outputs`, with the fields and a resource like a real apply writes.
fn state_with(outputs: serde_json::Map<String, Value>) -> Value {
    json!({
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": 7,
        "lineage": "c77240bf-1455-3bcf-e23a-83afcbbc16a2",
        "outputs": outputs,
        "resources": [{
            "mode": "managed",
            "type": "terraform_data",
            "name": "node",
            "provider": "provider[\"terraform.io/builtin/terraform\"]",
            "instances": [{
                "index_key": "k3s-dev-cp-1",
                "schema_version": 0,
                "attributes": { "id": "4b0b2a8e-1a4f-2b0c-9d55-3a2b0c0d1e2f", "input": null, "output": null, "triggers_replace": null },
                "sensitive_attributes": []
            }]
        }],
        "check_results": null
    })
}

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `text` to `name` in the temp dir and return its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).unwrap();
        }
        fs_err::write(&path, text).unwrap();
        path
    }

    fn write_state(&self, name: &str, state: &Value) -> PathBuf {
        self.write(name, &serde_json::to_string_pretty(state).unwrap())
    }

    /// `em-infra --root <tmp> inventory ARGS`, isolated from the caller's EM_INFRA_* variables.
    fn em_infra(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("em-infra").unwrap();
        for var in [
            "EM_INFRA_ENV",
            "EM_INFRA_ROOT",
            "EM_INFRA_STATE_DIR",
            "NO_COLOR",
        ] {
            cmd.env_remove(var);
        }
        cmd.current_dir(self.dir.path())
            .arg("--root")
            .arg(self.dir.path())
            .arg("inventory")
            .args(args);
        cmd
    }

    /// Run `inventory --list --state FILE` and return the parsed stdout (asserting success).
    fn list(&self, state: &Path) -> Value {
        let out = self
            .em_infra(&["--list", "--state"])
            .arg(state)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).expect("inventory --list prints JSON")
    }

    /// Run with `--state FILE` and assert exit 2 with a clean, panic-free message holding `needles`.
    fn fails(&self, state: &Path, extra: &[&str], needles: &[&str]) {
        let mut cmd = self.em_infra(extra);
        cmd.arg("--state").arg(state);
        let assert = cmd.assert().code(2).stdout(predicate::str::is_empty());
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(!stderr.contains("panicked"), "panic in stderr: {stderr}");
        assert!(
            stderr.starts_with("error: "),
            "stderr should start with `error: `: {stderr}"
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "stderr lacks {needle:?}:\n{stderr}"
            );
        }
    }
}

fn expected_dev_inventory() -> Value {
    let host = |ip: &str, role: &str, vm_id: u64, pve: &str, gpu: Value| {
        json!({
            "ansible_host": ip, "ansible_user": "ubuntu", "em_role": role, "em_vm_id": vm_id,
            "em_proxmox_node": pve, "em_gpu": gpu,
        })
    };
    json!({
        "_meta": { "hostvars": {
            "k3s-dev-cp-1": host("10.20.0.10", "control_plane", 9100, "pve", Value::Null),
            "k3s-dev-worker-1": host("10.20.0.20", "worker", 9110, "pve", Value::Null),
            "k3s-dev-worker-2": host("10.20.0.21", "worker", 9111, "pve", Value::Null),
            "k3s-dev-gpu-1": host("10.20.0.50", "gpu_worker", 9140, "pve", json!({"mapping": "rtx4090", "pci_id": null})),
            "k3s-dev-gpu-2": host("10.20.0.51", "gpu_worker", 9141, "pve2", json!({"mapping": null, "pci_id": "0000:41:00.0"})),
        }},
        "all": { "children": ["k3s_cluster", "ungrouped"] },
        "k3s_cluster": { "children": ["control_plane", "k3s_agents"], "vars": { "em_cluster_name": "k3s-dev" } },
        "k3s_agents": { "children": ["workers", "gpu_workers"] },
        "control_plane": { "hosts": ["k3s-dev-cp-1"] },
        "workers": { "hosts": ["k3s-dev-worker-1", "k3s-dev-worker-2"] },
        "gpu_workers": { "hosts": ["k3s-dev-gpu-1", "k3s-dev-gpu-2"] },
    })
}

// ---------------------------------------------------------------------------------------------
// --list and --host
// ---------------------------------------------------------------------------------------------

#[test]
fn list_prints_the_contract_inventory_exactly() {
    let fx = Fixture::new();
    let state = fx.write_state(
        "terraform.tfstate",
        &state_with(outputs_for(&dev_cluster())),
    );
    assert_eq!(fx.list(&state), expected_dev_inventory());
}

#[test]
fn list_keeps_empty_groups_so_the_structure_is_stable() {
    let fx = Fixture::new();
    let nodes = vec![n(
        "k3s-dev-cp-1",
        "control_plane",
        "10.20.0.10",
        9100,
        Value::Null,
    )];
    let state = fx.write_state("terraform.tfstate", &state_with(outputs_for(&nodes)));
    let inv = fx.list(&state);
    assert_eq!(inv["workers"], json!({ "hosts": [] }));
    assert_eq!(inv["gpu_workers"], json!({ "hosts": [] }));
    assert_eq!(inv["control_plane"], json!({ "hosts": ["k3s-dev-cp-1"] }));
    assert_eq!(
        inv["k3s_agents"],
        json!({ "children": ["workers", "gpu_workers"] })
    );
}

#[test]
fn list_reads_the_environments_state_by_default() {
    let fx = Fixture::new();
    fx.write_state(
        "terraform/environments/k3s-dev/terraform.tfstate",
        &state_with(outputs_for(&dev_cluster())),
    );
    let out = fx
        .em_infra(&["--list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap(),
        expected_dev_inventory()
    );
    // --env as a path works the same.
    let env_dir = fx.path("terraform/environments/k3s-dev");
    let out = fx
        .em_infra(&["--list", "--env"])
        .arg(&env_dir)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap(),
        expected_dev_inventory()
    );
}

#[test]
fn host_prints_that_hosts_vars() {
    let fx = Fixture::new();
    let state = fx.write_state(
        "terraform.tfstate",
        &state_with(outputs_for(&dev_cluster())),
    );
    let out = fx
        .em_infra(&["--host", "k3s-dev-gpu-2", "--state"])
        .arg(&state)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let vars: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        vars,
        expected_dev_inventory()["_meta"]["hostvars"]["k3s-dev-gpu-2"]
    );
}

#[test]
fn unknown_host_is_bad_input_naming_it_and_the_known_hosts() {
    let fx = Fixture::new();
    let state = fx.write_state(
        "terraform.tfstate",
        &state_with(outputs_for(&dev_cluster())),
    );
    fx.fails(
        &state,
        &["--host", "k3s-dev-worker-9"],
        &["--host k3s-dev-worker-9", "no such host", "known hosts: k3s-dev-cp-1, k3s-dev-gpu-1, k3s-dev-gpu-2, k3s-dev-worker-1, k3s-dev-worker-2"],
    );
}

#[test]
fn list_or_host_is_required_and_they_exclude_each_other() {
    let fx = Fixture::new();
    let state = fx.write_state(
        "terraform.tfstate",
        &state_with(outputs_for(&dev_cluster())),
    );
    fx.em_infra(&["--state"]).arg(&state).assert().code(2);
    fx.em_infra(&["--list", "--host", "k3s-dev-cp-1", "--state"])
        .arg(&state)
        .assert()
        .code(2);
}

#[test]
fn output_is_deterministic_and_hosts_are_in_slot_order() {
    let fx = Fixture::new();
    // 11 workers: natural order puts worker-10 and worker-11 after worker-9.
    let names: Vec<String> = (1..=11).map(|i| format!("k3s-dev-worker-{i}")).collect();
    let ips: Vec<String> = (0..11).map(|i| format!("10.20.0.{}", 20 + i)).collect();
    let mut nodes = vec![n(
        "k3s-dev-cp-1",
        "control_plane",
        "10.20.0.10",
        9100,
        Value::Null,
    )];
    for (i, (name, ip)) in names.iter().zip(&ips).enumerate() {
        nodes.push(n(name, "worker", ip, 9110 + i as u64, Value::Null));
    }
    let state = fx.write_state("a.tfstate", &state_with(outputs_for(&nodes)));
    let first = fx
        .em_infra(&["--list", "--state"])
        .arg(&state)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let again = fx
        .em_infra(&["--list", "--state"])
        .arg(&state)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(first, again, "two runs differ");

    // The same outputs written in another key and list order render to the same bytes.
    nodes.reverse();
    let mut reordered = state_with(outputs_for(&nodes));
    let worker_ips = reordered["outputs"]["worker_ips"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .cloned()
        .collect();
    reordered["outputs"]["worker_ips"]["value"] = Value::Array(worker_ips);
    let other = fx.write("b.tfstate", &serde_json::to_string(&reordered).unwrap());
    let second = fx
        .em_infra(&["--list", "--state"])
        .arg(&other)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(first, second, "key order of the state changed the output");

    let inv: Value = serde_json::from_slice(&first).unwrap();
    let hosts: Vec<&str> = inv["workers"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(hosts, names);
}

// ---------------------------------------------------------------------------------------------
// Errors: exit 2, a message naming the file and the fix, never a panic
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_state_names_the_path_and_how_to_create_it() {
    let fx = Fixture::new();
    let state = fx.path("nowhere/terraform.tfstate");
    let shown = state.display().to_string();
    fx.fails(
        &state,
        &["--list"],
        &[
            &format!("no Terraform state at {shown}"),
            "`em-infra up --to provision`",
            "or pass --state FILE",
        ],
    );
    // The default path, through --env.
    fs_err::create_dir_all(fx.path("terraform/environments/k3s-dev")).unwrap();
    let assert = fx.em_infra(&["--list"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(
        stderr.contains("no Terraform state at")
            && stderr.contains("terraform/environments/k3s-dev/terraform.tfstate"),
        "{stderr}"
    );
}

#[test]
fn truncated_state_names_the_position_and_the_restore_commands() {
    let fx = Fixture::new();
    let full = serde_json::to_string_pretty(&state_with(outputs_for(&dev_cluster()))).unwrap();
    let state = fx.write("terraform.tfstate", &full[..full.len() / 2]);
    let shown = state.display().to_string();
    fx.fails(
        &state,
        &["--list"],
        &[
            &shown,
            "not valid JSON",
            "line ",
            "column ",
            "`em-infra state list`",
            "`em-infra state restore ID`",
        ],
    );
    let empty = fx.write("empty.tfstate", "");
    fx.fails(
        &empty,
        &["--list"],
        &["not valid JSON", "EOF", "`em-infra state list`"],
    );
    let garbage = fx.write("garbage.tfstate", "{\"version\": 4, \"outputs\": {,}}");
    fx.fails(
        &garbage,
        &["--list"],
        &[
            "not valid JSON",
            "line 1 column",
            "`em-infra state restore ID`",
        ],
    );
}

#[test]
fn json_that_is_not_a_state_is_named_as_such() {
    let fx = Fixture::new();
    let list = fx.write("list.tfstate", "[1, 2]");
    fx.fails(
        &list,
        &["--list"],
        &["is not a Terraform state file", "`em-infra state list`"],
    );
    let old = fx.write_state("old.tfstate", &json!({"version": 3, "modules": []}));
    fx.fails(&old, &["--list"], &["format version 3", "reads version 4"]);
}

#[test]
fn unreadable_state_is_bad_input() {
    let fx = Fixture::new();
    let dir = fx.path("a-directory.tfstate");
    fs_err::create_dir_all(&dir).unwrap();
    fx.fails(
        &dir,
        &["--list"],
        &["cannot read the Terraform state", "a-directory.tfstate"],
    );
}

#[test]
fn state_without_outputs_names_every_missing_output() {
    let fx = Fixture::new();
    let mut bare = state_with(serde_json::Map::new());
    let empty = fx.write_state("empty-outputs.tfstate", &bare);
    let all =
        "`cluster_name`, `ssh_user`, `control_plane_ips`, `worker_ips`, `gpu_worker_ips`, `nodes`";
    fx.fails(
        &empty,
        &["--list"],
        &[all, "no outputs at all", "`em-infra up --to provision`"],
    );
    bare.as_object_mut().unwrap().remove("outputs");
    let none = fx.write_state("no-outputs.tfstate", &bare);
    fx.fails(&none, &["--list"], &[all, "no outputs at all"]);
}

#[test]
fn missing_outputs_are_each_named() {
    let fx = Fixture::new();
    let mut outputs = outputs_for(&dev_cluster());
    outputs.remove("ssh_user");
    outputs.remove("gpu_worker_ips");
    let state = fx.write_state("terraform.tfstate", &state_with(outputs));
    fx.fails(
        &state,
        &["--list"],
        &[
            "lacks output(s) `ssh_user`, `gpu_worker_ips`:",
            "docs/architecture-freeze.md",
        ],
    );
}

#[test]
fn empty_cluster_is_bad_input() {
    let fx = Fixture::new();
    let state = fx.write_state("terraform.tfstate", &state_with(outputs_for(&[])));
    fx.fails(
        &state,
        &["--list"],
        &[
            "empty cluster",
            "output `nodes` has no nodes",
            "`em-infra up --to provision`",
        ],
    );
}

#[test]
fn ip_lists_must_match_nodes() {
    let fx = Fixture::new();
    // worker_ips lists an IP no node has, and misses worker-2's.
    let mut outputs = outputs_for(&dev_cluster());
    outputs["worker_ips"] = tf_output(json!(["10.20.0.20", "10.20.0.99"]));
    let state = fx.write_state("extra.tfstate", &state_with(outputs));
    fx.fails(
        &state,
        &["--list"],
        &[
            "output `worker_ips` does not match output `nodes`",
            "`worker_ips` lists 10.20.0.99 but no node in `nodes` has it",
            "`nodes` has worker `k3s-dev-worker-2` (10.20.0.21), missing from `worker_ips`",
        ],
    );
    // A control plane IP listed as a GPU worker's.
    let mut outputs = outputs_for(&dev_cluster());
    outputs["gpu_worker_ips"] = tf_output(json!(["10.20.0.50", "10.20.0.51", "10.20.0.10"]));
    let state = fx.write_state("wrong-role.tfstate", &state_with(outputs));
    fx.fails(&state, &["--list"], &["`gpu_worker_ips` lists 10.20.0.10 but in `nodes` it belongs to `k3s-dev-cp-1`, role control_plane"]);
    // The same IP twice.
    let mut outputs = outputs_for(&dev_cluster());
    outputs["control_plane_ips"] = tf_output(json!(["10.20.0.10", "10.20.0.10"]));
    let state = fx.write_state("twice.tfstate", &state_with(outputs));
    fx.fails(
        &state,
        &["--list"],
        &["`control_plane_ips` lists 10.20.0.10 twice"],
    );
}

#[test]
fn malformed_outputs_name_the_output_and_the_node() {
    let fx = Fixture::new();
    let mut outputs = outputs_for(&dev_cluster());
    outputs["nodes"] = tf_output(json!(["k3s-dev-cp-1"]));
    let state = fx.write_state("nodes-list.tfstate", &state_with(outputs));
    fx.fails(
        &state,
        &["--list"],
        &[
            "output `nodes` should be a map of node objects",
            "invalid type",
        ],
    );

    let mut outputs = outputs_for(&dev_cluster());
    outputs["worker_ips"] = tf_output(json!(["10.20.0.20/24", "10.20.0.21"]));
    let state = fx.write_state("cidr.tfstate", &state_with(outputs));
    fx.fails(
        &state,
        &["--list"],
        &[
            "output `worker_ips` should be a list of IPv4 addresses",
            "invalid IPv4 address syntax",
        ],
    );

    let mut nodes = dev_cluster();
    nodes[1].ip = "10.20.0.300".into();
    let state = fx.write_state("bad-ip.tfstate", &state_with(outputs_for(&nodes)));
    fx.fails(
        &state,
        &["--list"],
        &[
            "output `nodes`, node `k3s-dev-worker-1`",
            "invalid IPv4 address syntax",
        ],
    );

    let mut nodes = dev_cluster();
    nodes[1].role = "agent";
    let state = fx.write_state("bad-role.tfstate", &state_with(outputs_for(&nodes)));
    fx.fails(
        &state,
        &["--list"],
        &["node `k3s-dev-worker-1`", "unknown variant `agent`"],
    );

    let mut outputs = outputs_for(&dev_cluster());
    outputs["ssh_user"] = tf_output(json!(null));
    let state = fx.write_state("null-user.tfstate", &state_with(outputs));
    fx.fails(
        &state,
        &["--list"],
        &["output `ssh_user` should be a string"],
    );

    let mut outputs = outputs_for(&dev_cluster());
    outputs["nodes"]["value"]["k3s-dev-cp-1"]["name"] = json!("k3s-dev-cp-9");
    let state = fx.write_state("key.tfstate", &state_with(outputs));
    fx.fails(
        &state,
        &["--list"],
        &["key `k3s-dev-cp-1` for a node named `k3s-dev-cp-9`"],
    );
}

#[test]
fn inconsistent_nodes_are_bad_input() {
    let fx = Fixture::new();
    let mut nodes = dev_cluster();
    nodes[2].ip = "10.20.0.20".into(); // worker-2 takes worker-1's IP
    let state = fx.write_state("dup-ip.tfstate", &state_with(outputs_for(&nodes)));
    fx.fails(
        &state,
        &["--list"],
        &["nodes `k3s-dev-worker-1` and `k3s-dev-worker-2` share the IP 10.20.0.20"],
    );

    let mut nodes = dev_cluster();
    nodes[3].gpu = Value::Null;
    let state = fx.write_state("no-gpu.tfstate", &state_with(outputs_for(&nodes)));
    fx.fails(
        &state,
        &["--list"],
        &["GPU worker `k3s-dev-gpu-1` has no `gpu`"],
    );

    let mut nodes = dev_cluster();
    nodes[3].gpu = json!({"mapping": "a", "pci_id": "0000:01:00.0"});
    let state = fx.write_state("two-gpus.tfstate", &state_with(outputs_for(&nodes)));
    fx.fails(
        &state,
        &["--list"],
        &["exactly one of `gpu.mapping` and `gpu.pci_id`"],
    );

    let mut nodes = dev_cluster();
    nodes[1].gpu = json!({"mapping": "a", "pci_id": null});
    let state = fx.write_state("worker-gpu.tfstate", &state_with(outputs_for(&nodes)));
    fx.fails(
        &state,
        &["--list"],
        &["node `k3s-dev-worker-1` has role worker but a `gpu`"],
    );
}

// ---------------------------------------------------------------------------------------------
// Real tools: Terraform on the offline fixture, ansible-inventory through our plugin
// ---------------------------------------------------------------------------------------------

/// Copy a directory tree, leaving out Terraform's working files and any state.
fn copy_tree(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if name == ".terraform" || name.contains(".tfstate") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

fn run_ok(cmd: &mut StdCommand) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Applies the offline fixture environment with real Terraform (relative module paths keep
/// working because the copy keeps the repository layout) and returns the state file.
fn apply_offline_fixture(tmp: &Path) -> Option<PathBuf> {
    let repo = repo_root();
    let fixture = repo.join("tests/fixtures/offline-env");
    if !fixture.is_dir() {
        skip_or_fail(&format!("{} does not exist", fixture.display()));
        return None;
    }
    if !on_path("terraform") {
        skip_or_fail("terraform is not on PATH");
        return None;
    }
    let env_dir = tmp.join("tests/fixtures/offline-env");
    copy_tree(&fixture, &env_dir);
    if repo.join("terraform/modules").is_dir() {
        copy_tree(
            &repo.join("terraform/modules"),
            &tmp.join("terraform/modules"),
        );
    }
    let terraform = |args: &[&str]| {
        let mut cmd = StdCommand::new("terraform");
        cmd.arg(format!("-chdir={}", env_dir.display()))
            .args(args)
            .env("TF_IN_AUTOMATION", "1");
        run_ok(&mut cmd);
    };
    terraform(&["init", "-input=false", "-no-color"]);
    terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    Some(env_dir.join("terraform.tfstate"))
}

#[test]
fn real_terraform_state_of_the_offline_fixture() {
    let fx = Fixture::new();
    let Some(state) = apply_offline_fixture(fx.dir.path()) else {
        return;
    };
    let raw: Value = serde_json::from_str(&fs_err::read_to_string(&state).unwrap()).unwrap();
    let outputs = &raw["outputs"];
    let inv = fx.list(&state);

    assert_eq!(
        inv["k3s_cluster"]["vars"]["em_cluster_name"],
        outputs["cluster_name"]["value"]
    );
    let nodes = outputs["nodes"]["value"]
        .as_object()
        .expect("nodes is a map");
    assert!(!nodes.is_empty());
    let hostvars = inv["_meta"]["hostvars"].as_object().unwrap();
    assert_eq!(hostvars.len(), nodes.len());
    for (name, node) in nodes {
        let vars = &hostvars[name];
        assert_eq!(vars["ansible_host"], node["ip"], "{name}");
        assert_eq!(vars["ansible_user"], outputs["ssh_user"]["value"], "{name}");
        assert_eq!(vars["em_role"], node["role"], "{name}");
        assert_eq!(vars["em_vm_id"], node["vm_id"], "{name}");
        assert_eq!(vars["em_proxmox_node"], node["proxmox_node"], "{name}");
        assert_eq!(vars["em_gpu"], node["gpu"], "{name}");
    }
    for (group, output) in [
        ("control_plane", "control_plane_ips"),
        ("workers", "worker_ips"),
        ("gpu_workers", "gpu_worker_ips"),
    ] {
        let hosts = inv[group]["hosts"].as_array().unwrap();
        let mut host_ips: Vec<&Value> = hosts
            .iter()
            .map(|h| &hostvars[h.as_str().unwrap()]["ansible_host"])
            .collect();
        let mut listed: Vec<&Value> = outputs[output]["value"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        host_ips.sort_by_key(|v| v.to_string());
        listed.sort_by_key(|v| v.to_string());
        assert_eq!(host_ips, listed, "group {group} vs output {output}");
    }
    assert_eq!(inv["control_plane"]["hosts"].as_array().unwrap().len(), 1);
}

/// Where `ansible-inventory` lives: `EM_INFRA_ANSIBLE_BIN_DIR`, else `<repo>/.venv/bin`.
fn ansible_inventory() -> Option<PathBuf> {
    let dir = std::env::var_os("EM_INFRA_ANSIBLE_BIN_DIR")
        .map_or_else(|| repo_root().join(".venv/bin"), PathBuf::from);
    let program = dir.join("ansible-inventory");
    if program.is_file() {
        Some(program)
    } else {
        skip_or_fail(&format!(
            "no ansible-inventory in {} (set EM_INFRA_ANSIBLE_BIN_DIR)",
            dir.display()
        ));
        None
    }
}

/// `ansible-inventory -i <config> ARGS` from the repository root, with our binary and `state`.
fn ansible_inventory_cmd(program: &Path, config: &str, state: Option<&Path>) -> StdCommand {
    let repo = repo_root();
    let mut cmd = StdCommand::new(program);
    cmd.current_dir(&repo)
        .arg("-i")
        .arg(config)
        .env("EM_INFRA_BIN", assert_cmd::cargo::cargo_bin("em-infra"));
    // The plugin is found and enabled by the repository's ansible.cfg (read from the current
    // directory, the repository root), exactly as for the README's commands: no overrides.
    for var in [
        "ANSIBLE_CONFIG",
        "ANSIBLE_INVENTORY",
        "ANSIBLE_INVENTORY_PLUGINS",
        "ANSIBLE_INVENTORY_ENABLED",
        "EM_INFRA_ROOT",
        "EM_INFRA_ENV",
        "EM_INFRA_TFSTATE",
    ] {
        cmd.env_remove(var);
    }
    if let Some(state) = state {
        cmd.env("EM_INFRA_TFSTATE", state);
    }
    cmd
}

fn group_hosts(inv: &Value, group: &str) -> Vec<String> {
    let mut hosts: Vec<String> = inv[group]["hosts"]
        .as_array()
        .map(|a| a.iter().map(|h| h.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    hosts.sort();
    hosts
}

/// A string Ansible ≥ 2.19 may print as `{"__ansible_unsafe": "..."}`.
fn plain(value: &Value) -> &Value {
    value.get("__ansible_unsafe").unwrap_or(value)
}

#[test]
fn ansible_inventory_lists_the_cluster_through_the_canonical_config() {
    let Some(program) = ansible_inventory() else {
        return;
    };
    let fx = Fixture::new();
    let state = fx.write_state(
        "terraform.tfstate",
        &state_with(outputs_for(&dev_cluster())),
    );
    let out = run_ok(
        ansible_inventory_cmd(
            &program,
            "ansible/inventory/terraform_inventory.yml",
            Some(&state),
        )
        .arg("--list"),
    );
    let inv: Value =
        serde_json::from_slice(&out.stdout).expect("ansible-inventory --list prints JSON");

    assert_eq!(group_hosts(&inv, "control_plane"), ["k3s-dev-cp-1"]);
    assert_eq!(
        group_hosts(&inv, "workers"),
        ["k3s-dev-worker-1", "k3s-dev-worker-2"]
    );
    assert_eq!(
        group_hosts(&inv, "gpu_workers"),
        ["k3s-dev-gpu-1", "k3s-dev-gpu-2"]
    );
    let children = |g: &str| {
        let mut c: Vec<String> = inv[g]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        c.sort();
        c
    };
    assert!(children("all").contains(&"k3s_cluster".to_string()));
    assert_eq!(children("k3s_cluster"), ["control_plane", "k3s_agents"]);
    assert_eq!(children("k3s_agents"), ["gpu_workers", "workers"]);

    let expected = expected_dev_inventory();
    for (host, want) in expected["_meta"]["hostvars"].as_object().unwrap() {
        let got = &inv["_meta"]["hostvars"][host];
        for key in [
            "ansible_host",
            "ansible_user",
            "em_role",
            "em_vm_id",
            "em_proxmox_node",
        ] {
            assert_eq!(plain(&got[key]), &want[key], "{host}.{key}");
        }
        let gpu = &got["em_gpu"];
        let gpu_plain = if gpu.is_null() {
            Value::Null
        } else {
            json!({ "mapping": plain(&gpu["mapping"]), "pci_id": plain(&gpu["pci_id"]) })
        };
        assert_eq!(gpu_plain, want["em_gpu"], "{host}.em_gpu");
        assert_eq!(
            plain(&got["em_cluster_name"]),
            "k3s-dev",
            "{host} inherits em_cluster_name"
        );
    }
}

#[test]
fn ansible_inventory_surfaces_em_infra_errors() {
    let Some(program) = ansible_inventory() else {
        return;
    };
    let fx = Fixture::new();
    let missing = fx.path("missing/terraform.tfstate");
    let out = ansible_inventory_cmd(
        &program,
        "ansible/inventory/terraform_inventory.yml",
        Some(&missing),
    )
    .arg("--list")
    .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(
        stderr.contains("no Terraform state at") && stderr.contains(&missing.display().to_string()),
        "{stderr}"
    );
}

#[test]
fn ansible_inventory_reads_the_local_state_example_config() {
    let Some(program) = ansible_inventory() else {
        return;
    };
    let fx = Fixture::new();
    let Some(state) = apply_offline_fixture(fx.dir.path()) else {
        return;
    };
    let raw: Value = serde_json::from_str(&fs_err::read_to_string(&state).unwrap()).unwrap();
    // The example's own state_file points into the repository's fixture; EM_INFRA_TFSTATE points
    // it at the applied copy so the test never writes state into the repository.
    let out = run_ok(
        ansible_inventory_cmd(
            &program,
            "ansible/inventory/terraform_state_local_example.yml",
            Some(&state),
        )
        .arg("--list"),
    );
    let inv: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<String> = raw["outputs"]["nodes"]["value"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    names.sort();
    let mut listed: Vec<String> = inv["_meta"]["hostvars"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    listed.sort();
    assert_eq!(listed, names);
}

#[test]
fn ansible_inventory_names_a_missing_em_infra_binary_and_how_to_build_it() {
    let Some(program) = ansible_inventory() else {
        return;
    };
    let fx = Fixture::new();
    let state = fx.write_state(
        "terraform.tfstate",
        &state_with(outputs_for(&dev_cluster())),
    );
    let absent = fx.path("no-such-em-infra");
    let out = ansible_inventory_cmd(
        &program,
        "ansible/inventory/terraform_inventory.yml",
        Some(&state),
    )
    .arg("--list")
    .env("EM_INFRA_BIN", &absent)
    .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(
        stderr.contains("no-such-em-infra") && stderr.contains("cargo build --release"),
        "{stderr}"
    );
}

#[test]
fn plugin_claims_only_its_config_file_names() {
    let Some(program) = ansible_inventory() else {
        return;
    };
    let python = program.with_file_name("python3");
    let fx = Fixture::new();
    let names = [
        ("terraform_inventory.yml", true),
        ("terraform_state_local_example.yml", true),
        ("terraform_prod.yaml", true),
        ("lab.em_infra.yml", true),
        ("lab.em_infra.yaml", true),
        ("hosts.yml", false),
        ("em_infra.yml", false),
        ("my_terraform_inventory.yml", false),
        ("terraform_inventory.yml.bak", false),
        ("terraform_state.json", false),
    ];
    for (name, _) in names {
        fx.write(name, "plugin: em_infra_state\n");
    }
    let script = "import json, os, sys\n\
                  sys.path.insert(0, sys.argv[1])\n\
                  from em_infra_state import InventoryModule\n\
                  m = InventoryModule()\n\
                  print(json.dumps({f: m.verify_file(os.path.join(sys.argv[2], f)) for f in os.listdir(sys.argv[2])}))\n";
    let out = run_ok(
        StdCommand::new(&python)
            .arg("-c")
            .arg(script)
            .arg(repo_root().join("ansible/inventory_plugins"))
            .arg(fx.dir.path()),
    );
    let claimed: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (name, want) in names {
        assert_eq!(claimed[name], json!(want), "verify_file({name})");
    }
}
