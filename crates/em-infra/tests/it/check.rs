//! `em-infra check` end to end, on the real binary: the repository as committed, the offline
//! fixture, every file of tests/tfvars-corpus, wiring mistakes in small module trees, and two
//! cross-checks against real Terraform (same verdicts on the corpus; same derived nodes as an
//! actual `terraform apply`). Tests that need `terraform` skip with a message when it is not on
//! PATH, except under CI=true, where they fail instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use serde_json::Value;

use crate::support;
use support::{on_path, repo_root, skip_or_fail};

/// `em-infra --root <root> --no-color check ARGS`.
fn check(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("em-infra").unwrap();
    // Relative `--env DIR` and `--tfvars` paths resolve from the working directory.
    cmd.current_dir(root)
        .arg("--root")
        .arg(root)
        .arg("--no-color")
        .arg("check")
        .args(args);
    cmd.env_remove("EM_INFRA_ENV")
        .env_remove("EM_INFRA_ROOT")
        .env("NO_COLOR", "1");
    cmd
}

/// Exit code, parsed `--json` stdout and stderr of `check --json ARGS`.
fn check_json(root: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = check(root, args).arg("--json").output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The variables the findings are about (`gpu_workers[1].pci_id` → `gpu_workers`).
fn finding_vars(json: &Value) -> BTreeSet<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let field = f["field"].as_str().unwrap();
            field[..field.find(['[', '.']).unwrap_or(field.len())].to_string()
        })
        .collect()
}

fn corpus() -> Vec<(PathBuf, String)> {
    let dir = repo_root().join("tests/tfvars-corpus");
    let mut files: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tfvars"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "tests/tfvars-corpus holds only {} files",
        files.len()
    );
    files
        .into_iter()
        .map(|p| {
            let text = fs_err::read_to_string(&p).unwrap();
            let first = text.lines().next().unwrap_or_default();
            let expect = first
                .strip_prefix("# expect: ")
                .unwrap_or_else(|| {
                    panic!("{}: first line must be `# expect: <variable>`", p.display())
                })
                .trim()
                .to_string();
            (p, expect)
        })
        .collect()
}

#[test]
fn repository_k3s_dev_passes_with_the_example_tfvars() {
    let root = repo_root();
    let example = root.join("terraform/environments/k3s-dev/terraform.tfvars.example");
    let out = check(
        &root,
        &["--env", "k3s-dev", "--tfvars", example.to_str().unwrap()],
    )
    .assert()
    .code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    // The table of what would be created, and no finding.
    assert!(
        stdout.contains("NAME") && stdout.contains("VM ID") && stdout.contains("PROXMOX NODE"),
        "{stdout}"
    );
    assert!(
        stdout.contains("k3s-dev-cp-1") && stdout.contains("192.168.10.10"),
        "{stdout}"
    );
    assert!(!stderr.contains('✗'), "{stderr}");
    assert!(stderr.contains("nodes would be created"), "{stderr}");

    let (code, json, _) = check_json(
        &root,
        &["--env", "k3s-dev", "--tfvars", example.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    assert_eq!(json["ok"], true);
    assert_eq!(json["findings"], serde_json::json!([]));
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["name"], "k3s-dev-cp-1");
    assert_eq!(nodes[0]["role"], "control_plane");
    assert_eq!(nodes[0]["vm_id"], 9100);
}

#[test]
fn offline_fixture_passes_with_its_tfvars() {
    let root = repo_root();
    let (code, json, stderr) = check_json(&root, &["--env", "tests/fixtures/offline-env"]);
    assert_eq!(code, 0, "{stderr}\n{json:#}");
    let rows: Vec<(String, String, u64)> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().into(),
                n["ip"].as_str().unwrap().into(),
                n["vm_id"].as_u64().unwrap(),
            )
        })
        .collect();
    // What the fixture's terraform.tfvars header says.
    assert_eq!(
        rows,
        [
            ("lab-cp-1".into(), "10.231.0.11".into(), 9100),
            ("lab-worker-1".into(), "10.231.0.21".into(), 9110),
            ("lab-worker-2".into(), "10.231.0.22".into(), 9111),
        ]
    );
}

#[test]
fn every_corpus_file_is_rejected_on_its_expected_variable() {
    let root = repo_root();
    for (file, expect) in corpus() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let args = [
            "--env",
            "tests/fixtures/offline-env",
            "--tfvars",
            file.to_str().unwrap(),
        ];
        let (code, json, _) = check_json(&root, &args);
        assert_eq!(code, 2, "{name}: expected exit 2\n{json:#}");
        assert_eq!(json["ok"], false, "{name}");
        let vars = finding_vars(&json);
        assert_eq!(
            vars,
            BTreeSet::from([expect.clone()]),
            "{name}: findings name other variables\n{json:#}"
        );
        for f in json["findings"].as_array().unwrap() {
            for key in ["file", "line", "field", "value", "message", "fix"] {
                assert!(f.get(key).is_some(), "{name}: finding without {key}: {f}");
            }
            assert!(
                f["line"].is_u64(),
                "{name}: every corpus finding has a line: {f}"
            );
            assert!(!f["fix"].as_str().unwrap().is_empty(), "{name}: {f}");
        }

        // The human rendering: `✗ file:line: field = value: problem` and a fix line.
        let out = check(&root, &args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mark = stderr
            .lines()
            .find(|l| l.starts_with("✗ "))
            .unwrap_or_else(|| panic!("{name}: no ✗ line:\n{stderr}"));
        assert!(
            mark.contains(&format!("tests/tfvars-corpus/{name}:")),
            "{name}: {mark}"
        );
        assert!(mark.contains(&expect), "{name}: {mark}");
        assert!(
            stderr.lines().any(|l| l.trim_start().starts_with("fix: ")),
            "{name}:\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "{name}: no table on failure");
    }
}

#[test]
fn unknown_variable_is_named_with_a_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let tfvars = tmp.path().join("typo.tfvars");
    fs_err::write(
        &tfvars,
        "network_cidr = \"10.231.0.0/24\"\ngateway      = \"10.231.0.1\"\nworker_cont  = 3\n",
    )
    .unwrap();
    let root = repo_root();
    let args = [
        "--env",
        "tests/fixtures/offline-env",
        "--tfvars",
        tfvars.to_str().unwrap(),
    ];
    let (code, json, _) = check_json(&root, &args);
    assert_eq!(code, 2);
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json:#}");
    let f = &findings[0];
    assert_eq!(f["field"], "worker_cont");
    assert_eq!(f["line"], 3);
    assert_eq!(f["value"], "3");
    assert!(
        f["message"].as_str().unwrap().contains("unknown variable"),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("did you mean `worker_count`"),
        "{f}"
    );

    let out = check(&root, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "✗ {}:3: worker_cont = 3: unknown variable",
            tfvars.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("fix: did you mean `worker_count`?"),
        "{stderr}"
    );
}

/// `*.tfvars.json` (Terraform's JSON syntax) goes through the same rules, with lines.
#[test]
fn json_tfvars_are_checked_like_hcl() {
    let tmp = tempfile::tempdir().unwrap();
    let tfvars = tmp.path().join("t.tfvars.json");
    let text = "{\n  \"network_cidr\": \"10.231.0.0/24\",\n  \"gateway\": \"10.231.0.1\",\n  \"gpu_workers\": [\n    {\"mapping\": \"gpu0\", \"proxmox_node\": \"pve_2\"}\n  ]\n}\n";
    fs_err::write(&tfvars, text).unwrap();
    let (code, json, _) = check_json(
        &repo_root(),
        &[
            "--env",
            "tests/fixtures/offline-env",
            "--tfvars",
            tfvars.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    let f = &json["findings"][0];
    assert_eq!(f["field"], "gpu_workers[0].proxmox_node");
    assert_eq!(f["line"], 4, "the line of \"gpu_workers\"");
    assert_eq!(json["findings"].as_array().unwrap().len(), 1, "{json:#}");

    if on_path("terraform") {
        let fx = TfFixture::new().unwrap();
        let plan = fx.terraform(&[
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            &format!("-var-file={}", tfvars.display()),
        ]);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&plan.stdout),
            String::from_utf8_lossy(&plan.stderr)
        );
        assert!(!plan.status.success(), "{out}");
        assert_eq!(
            terraform_error_vars(&out),
            BTreeSet::from(["gpu_workers".to_string()]),
            "{out}"
        );
    }
}

#[test]
fn missing_tfvars_file_is_bad_input() {
    let root = repo_root();
    let out = check(
        &root,
        &[
            "--env",
            "tests/fixtures/offline-env",
            "--tfvars",
            "/nonexistent/x.tfvars",
        ],
    )
    .assert()
    .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("/nonexistent/x.tfvars") && stderr.contains("not found"),
        "{stderr}"
    );
}

#[test]
fn required_variable_unset_and_type_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let tfvars = tmp.path().join("t.tfvars");
    fs_err::write(&tfvars, "network_cidr = \"10.231.0.0/24\"\ngpu_workers = [\n  { mapping = \"gpu0\" },\n  { mapping = \"gpu1\", proxmox_nod = \"pve2\" },\n]\n")
        .unwrap();
    let (code, json, _) = check_json(
        &repo_root(),
        &[
            "--env",
            "tests/fixtures/offline-env",
            "--tfvars",
            tfvars.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    let by_field: BTreeMap<String, Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    let gw = &by_field["gateway"];
    assert!(gw["message"].as_str().unwrap().contains("required"), "{gw}");
    assert_eq!(gw["value"], Value::Null);
    // An attribute Terraform would silently drop, pointed at on its own line.
    let typo = &by_field["gpu_workers[1].proxmox_nod"];
    assert_eq!(typo["line"], 4);
    assert!(
        typo["fix"].as_str().unwrap().contains("proxmox_node"),
        "{typo}"
    );
}

// ---------------------------------------------------------------------------------------------
// Wiring: small module trees written by the tests
// ---------------------------------------------------------------------------------------------

/// A minimal environment that passes every check: the real topology module and the real
/// k3s-dev variables (the contract), a small VM module using the provider, and the outputs.
/// Each wiring test changes one file of it.
struct Tree {
    tmp: tempfile::TempDir,
}

const ENV_MAIN: &str = r#"module "topology" {
  source = "../../modules/topology"

  cluster_name        = var.cluster_name
  proxmox_node        = var.proxmox_node
  node_placement      = var.node_placement
  control_plane_count = var.control_plane_count
  worker_count        = var.worker_count
  gpu_workers         = var.gpu_workers
  allow_raw_pci_ids   = var.allow_raw_pci_ids
  network_cidr        = var.network_cidr
  gateway             = var.gateway
  first_host_offset   = var.first_host_offset
  dns_servers         = var.dns_servers
  network_bridge      = var.network_bridge
  vlan_id             = var.vlan_id
  vm_id_base          = var.vm_id_base
  template_vm_id      = var.template_vm_id
  datastore_id        = var.datastore_id
  control_plane_size  = var.control_plane_size
  worker_size         = var.worker_size
  gpu_worker_size     = var.gpu_worker_size
  ssh_user            = var.ssh_user
}

module "vm" {
  source   = "../../modules/vm"
  for_each = module.topology.inventory_nodes

  name  = each.value.name
  vm_id = each.value.vm_id
}
"#;

const ENV_OUTPUTS: &str = r#"output "cluster_name" {
  value = module.topology.cluster_name
}

output "ssh_user" {
  value = module.topology.ssh_user
}

output "control_plane_ips" {
  value = module.topology.control_plane_ips
}

output "worker_ips" {
  value = module.topology.worker_ips
}

output "gpu_worker_ips" {
  value = module.topology.gpu_worker_ips
}

output "nodes" {
  value = module.topology.inventory_nodes
}
"#;

fn versions_tf(constraint: &str) -> String {
    format!(
        "terraform {{\n  required_providers {{\n    proxmox = {{\n      source  = \"bpg/proxmox\"\n      version = \"{constraint}\"\n    }}\n  }}\n}}\n"
    )
}

const VM_MAIN: &str = r#"variable "name" {
  type = string
}

variable "vm_id" {
  type = number
}

variable "cores" {
  type    = number
  default = 2
}

resource "proxmox_virtual_environment_vm" "this" {
  name  = var.name
  vm_id = var.vm_id
  cpu {
    cores = var.cores
  }
}
"#;

impl Tree {
    fn new() -> Tree {
        let repo = repo_root();
        let tmp = tempfile::tempdir().unwrap();
        let t = Tree { tmp };
        copy_tree(
            &repo.join("terraform/modules/topology"),
            &t.path("terraform/modules/topology"),
        );
        t.write(
            "terraform/environments/dev/variables.tf",
            &fs_err::read_to_string(repo.join("terraform/environments/k3s-dev/variables.tf"))
                .unwrap(),
        );
        t.write("terraform/environments/dev/main.tf", ENV_MAIN);
        t.write("terraform/environments/dev/outputs.tf", ENV_OUTPUTS);
        t.write(
            "terraform/environments/dev/versions.tf",
            &versions_tf("0.111.1"),
        );
        t.write(
            "terraform/environments/dev/terraform.tfvars",
            "network_cidr = \"10.0.0.0/24\"\ngateway      = \"10.0.0.1\"\n",
        );
        t.write("terraform/modules/vm/main.tf", VM_MAIN);
        t.write(
            "terraform/modules/vm/versions.tf",
            &versions_tf(">= 0.100.0"),
        );
        t
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(p, text).unwrap();
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = fs_err::read_to_string(self.path(rel)).unwrap();
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// `check --json` on the tree's environment: exit code and findings.
    fn check(&self) -> (i32, Vec<Value>) {
        let (code, json, stderr) = check_json(self.tmp.path(), &["--env", "dev"]);
        let findings = json["findings"].as_array().cloned().unwrap_or_default();
        assert_eq!(code == 0, findings.is_empty(), "{stderr}");
        (code, findings)
    }

    /// The one finding of the tree, asserting there is exactly one.
    fn only_finding(&self) -> Value {
        let (code, findings) = self.check();
        assert_eq!(code, 2);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        findings[0].clone()
    }
}

/// Copy a directory tree, keeping symlinks as symlinks and leaving out Terraform's working
/// files and any state.
fn copy_tree(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".terraform" || name.contains(".tfstate") || name == ".terraform.lock.hcl" {
            continue;
        }
        let target = to.join(&name);
        let ty = entry.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(fs_err::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if ty.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn wiring_baseline_tree_passes() {
    let (code, findings) = Tree::new().check();
    assert_eq!((code, findings), (0, vec![]));
}

#[test]
fn wiring_module_call_with_an_undeclared_argument() {
    let t = Tree::new();
    t.edit(
        "terraform/environments/dev/main.tf",
        "  vm_id = each.value.vm_id\n",
        "  vm_id = each.value.vm_id\n  core  = 4\n",
    );
    let f = t.only_finding();
    assert_eq!(f["field"], "module.vm.core");
    assert_eq!(f["file"], "terraform/environments/dev/main.tf");
    assert_eq!(f["line"], 32);
    assert_eq!(f["value"], "4");
    assert!(
        f["fix"].as_str().unwrap().contains("did you mean `cores`"),
        "{f}"
    );
}

#[test]
fn wiring_module_call_missing_a_required_argument() {
    let t = Tree::new();
    t.edit(
        "terraform/environments/dev/main.tf",
        "  vm_id = each.value.vm_id\n",
        "",
    );
    let f = t.only_finding();
    assert_eq!(f["field"], "module.vm.vm_id");
    assert_eq!(f["line"], 26, "the module block's line");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("required variable \"vm_id\""),
        "{f}"
    );
}

#[test]
fn wiring_undeclared_var_reference() {
    let t = Tree::new();
    t.edit(
        "terraform/modules/vm/main.tf",
        "cores = var.cores",
        "cores = var.core_count",
    );
    let f = t.only_finding();
    assert_eq!(f["field"], "var.core_count");
    assert_eq!(f["file"], "terraform/modules/vm/main.tf");
    assert_eq!(f["line"], 18);
}

#[test]
fn wiring_reference_to_a_missing_module_output() {
    let t = Tree::new();
    t.edit(
        "terraform/environments/dev/outputs.tf",
        "module.topology.worker_ips",
        "module.topology.worker_ip",
    );
    let f = t.only_finding();
    assert_eq!(f["field"], "module.topology.worker_ip");
    assert_eq!(f["file"], "terraform/environments/dev/outputs.tf");
    assert_eq!(f["line"], 14);
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("module.topology.worker_ips"),
        "{f}"
    );
}

#[test]
fn wiring_provider_pinned_twice() {
    let t = Tree::new();
    t.write("terraform/modules/vm/versions.tf", &versions_tf("0.111.1"));
    let f = t.only_finding();
    assert_eq!(f["field"], "required_providers.proxmox.version");
    assert_eq!(f["file"], "terraform/modules/vm/versions.tf");
    assert_eq!(f["line"], 5);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("pinned a second time"),
        "{f}"
    );
    assert!(f["fix"].as_str().unwrap().contains(">= 0.111.1"), "{f}");
}

#[test]
fn wiring_provider_constraint_incompatible_with_the_pin() {
    let t = Tree::new();
    t.write(
        "terraform/modules/vm/versions.tf",
        &versions_tf(">= 0.120.0"),
    );
    let f = t.only_finding();
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("excludes the pinned version 0.111.1"),
        "{f}"
    );

    let t = Tree::new();
    t.write(
        "terraform/modules/vm/versions.tf",
        &versions_tf("~> 0.111.0"),
    );
    let f = t.only_finding();
    assert!(
        f["message"].as_str().unwrap().contains("only a minimum"),
        "{f}"
    );
}

#[test]
fn wiring_provider_not_pinned_by_the_environment() {
    let t = Tree::new();
    t.write(
        "terraform/environments/dev/versions.tf",
        &versions_tf(">= 0.100.0"),
    );
    let f = t.only_finding();
    assert_eq!(f["file"], "terraform/environments/dev/versions.tf");
    assert!(
        f["message"].as_str().unwrap().contains("does not pin"),
        "{f}"
    );
}

#[test]
fn wiring_missing_contract_output() {
    let t = Tree::new();
    t.edit(
        "terraform/environments/dev/outputs.tf",
        "output \"gpu_worker_ips\" {\n  value = module.topology.gpu_worker_ips\n}\n",
        "",
    );
    let f = t.only_finding();
    assert_eq!(f["field"], "output.gpu_worker_ips");
    assert_eq!(f["file"], "terraform/environments/dev/outputs.tf");
}

#[test]
fn wiring_contract_variable_drift() {
    let t = Tree::new();
    t.edit(
        "terraform/environments/dev/variables.tf",
        "variable \"worker_count\" {\n  description = \"Number of plain k3s agents, 0-30. Default 2.\"\n  type        = number\n  default     = null",
        "variable \"worker_count\" {\n  description = \"Number of plain k3s agents, 0-30. Default 2.\"\n  type        = number\n  default     = 3",
    );
    let f = t.only_finding();
    assert_eq!(f["field"], "variable.worker_count.default");
    assert_eq!(f["value"], "3");
}

#[test]
fn wiring_syntax_error_names_file_and_line() {
    let t = Tree::new();
    t.write("terraform/modules/vm/extra.tf", "locals {\n  a = = 1\n}\n");
    // Only the syntax error: everything else could be a consequence of it.
    let f = t.only_finding();
    assert_eq!(f["field"], "syntax");
    assert_eq!(f["file"], "terraform/modules/vm/extra.tf");
    assert_eq!(f["line"], 2);
}

#[test]
fn tfvars_syntax_error_is_the_only_finding() {
    let tmp = tempfile::tempdir().unwrap();
    let tfvars = tmp.path().join("broken.tfvars");
    fs_err::write(
        &tfvars,
        "network_cidr = \"10.231.0.0/24\"\ngateway = \"10.231.0.1\n",
    )
    .unwrap();
    let (code, json, _) = check_json(
        &repo_root(),
        &[
            "--env",
            "tests/fixtures/offline-env",
            "--tfvars",
            tfvars.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{json:#}");
    assert_eq!(findings[0]["field"], "syntax");
    assert_eq!(findings[0]["line"], 2);
}

// ---------------------------------------------------------------------------------------------
// Cross-checks against real Terraform
// ---------------------------------------------------------------------------------------------

/// A copy of the offline fixture (with the repository layout its relative paths need) where
/// `terraform init` has run. The fixture's own terraform.tfvars is left out so Terraform reads
/// exactly the `-var-file` it is given, as `em-infra check --tfvars` does.
struct TfFixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl TfFixture {
    fn new() -> Option<TfFixture> {
        if !on_path("terraform") {
            skip_or_fail("terraform is not on PATH");
            return None;
        }
        let repo = repo_root();
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(
            &repo.join("terraform/modules"),
            &tmp.path().join("terraform/modules"),
        );
        fs_err::create_dir_all(tmp.path().join("terraform/environments/k3s-dev")).unwrap();
        fs_err::copy(
            repo.join("terraform/environments/k3s-dev/variables.tf"),
            tmp.path()
                .join("terraform/environments/k3s-dev/variables.tf"),
        )
        .unwrap();
        let dir = tmp.path().join("tests/fixtures/offline-env");
        copy_tree(&repo.join("tests/fixtures/offline-env"), &dir);
        fs_err::remove_file(dir.join("terraform.tfvars")).unwrap();
        let fx = TfFixture { _tmp: tmp, dir };
        let out = fx.terraform(&["init", "-input=false", "-no-color"]);
        assert!(
            out.status.success(),
            "terraform init failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(fx)
    }

    fn terraform(&self, args: &[&str]) -> std::process::Output {
        StdCommand::new("terraform")
            .arg(format!("-chdir={}", self.dir.display()))
            .args(args)
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap()
    }
}

/// The variables Terraform's errors are about. Each "Invalid value for (input) variable" error
/// quotes the line it is about: the module argument (`  8:   cluster_name = var.cluster_name`),
/// or the tfvars line (`12: ssh_public_key_path = ""`); type errors also say `var.<name>`.
fn terraform_error_vars(output: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for block in output.split("Error: ").skip(1) {
        let quoted = block.lines().find_map(|l| {
            let l = l.trim_start_matches(['│', ' ']);
            let (num, rest) = l.split_once(':')?;
            num.trim().parse::<u32>().ok()?;
            let name = rest.trim_start().split(['=', ' ']).next()?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .then(|| name.to_string())
        });
        if let Some(name) = quoted {
            vars.insert(name);
        } else if let Some(i) = block.find("var.") {
            let name: String = block[i + 4..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            vars.insert(name);
        }
    }
    vars
}

#[test]
fn terraform_and_check_agree_on_every_corpus_file() {
    let Some(fx) = TfFixture::new() else { return };
    let root = repo_root();
    let mut disagreements = Vec::new();
    for (file, expect) in corpus() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let plan = fx.terraform(&[
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            &format!("-var-file={}", file.display()),
        ]);
        let tf_out = format!(
            "{}{}",
            String::from_utf8_lossy(&plan.stdout),
            String::from_utf8_lossy(&plan.stderr)
        );
        let tf_vars = terraform_error_vars(&tf_out);
        let (code, json, _) = check_json(
            &root,
            &[
                "--env",
                "tests/fixtures/offline-env",
                "--tfvars",
                file.to_str().unwrap(),
            ],
        );
        let rust_vars = finding_vars(&json);
        let expected = BTreeSet::from([expect.clone()]);
        if plan.status.success() || code != 2 || tf_vars != expected || rust_vars != expected {
            disagreements.push(format!(
                "{name} (expect {expect}): terraform exit {:?} naming {tf_vars:?}; em-infra exit {code} naming {rust_vars:?}\n{tf_out}",
                plan.status.code()
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Tfvars beyond the corpus: several mistakes at once (which of them each tool reports depends
/// on how validation rules that read other variables are skipped), and values Terraform converts
/// or accepts that a stricter reading might refuse. `None` = both must accept.
const COMBINED: &[(&str, &str, &[&str])] = &[
    (
        "placement-with-bad-cluster-name",
        "cluster_name = \"Bad\"\nnode_placement = { \"x\" = \"pve\" }",
        &["cluster_name"],
    ),
    (
        "too-many-workers-in-small-net",
        "network_cidr = \"10.231.0.0/27\"\nworker_count = 31",
        &["worker_count"],
    ),
    (
        "gateway-outside-and-bad-gpu",
        "gateway = \"10.231.1.1\"\ngpu_workers = [{ mapping = \"0bad\" }]",
        &["gpu_workers"],
    ),
    (
        "malformed-gateway-and-bad-gpu",
        "gateway = \"bad\"\ngpu_workers = [{ mapping = \"0bad\" }]",
        &["gpu_workers"],
    ),
    (
        "bad-cidr-and-gateway",
        "network_cidr = \"10.231.0/24\"\ngateway = \"10.231.1.1\"",
        &["network_cidr"],
    ),
    (
        "fractional-base-and-clash",
        "vm_id_base = 9100.5\ntemplate_vm_id = 9110",
        &["vm_id_base"],
    ),
    (
        "bad-name-and-template-clash",
        "cluster_name = \"Bad\"\ntemplate_vm_id = 9110",
        &["cluster_name"],
    ),
    (
        "placement-bad-value-and-key",
        "node_placement = { \"x\" = \"pve_2\" }",
        &["node_placement"],
    ),
    (
        "dns-and-vlan",
        "dns_servers = [\"1.1.1\"]\nvlan_id = 0",
        &["dns_servers", "vlan_id"],
    ),
    (
        "offset-fraction-small-net",
        "network_cidr = \"10.231.0.0/28\"\nfirst_host_offset = 1.5",
        &["first_host_offset"],
    ),
    (
        "offset-zero-and-low-base",
        "first_host_offset = 0\nvm_id_base = 1",
        &["first_host_offset", "vm_id_base"],
    ),
    (
        "gateway-leading-zero",
        "gateway = \"10.231.0.01\"",
        &["gateway"],
    ),
    (
        "cidr-prefix-leading-zero",
        "network_cidr = \"10.231.0.0/024\"",
        &["network_cidr"],
    ),
    (
        "gpu-empty-mapping",
        "gpu_workers = [{ mapping = \"\" }]",
        &["gpu_workers"],
    ),
    (
        "gpu-empty-node",
        "gpu_workers = [{ mapping = \"gpu0\", proxmox_node = \"\" }]",
        &["gpu_workers"],
    ),
    (
        "gpu-same-pci-twice",
        "gpu_workers = [{ pci_id = \"0000:01:00.0\" }, { pci_id = \"0000:01:00.0\" }]\nallow_raw_pci_ids = true",
        &["gpu_workers"],
    ),
    (
        "network-cidr-null",
        "network_cidr = null",
        &["network_cidr"],
    ),
    (
        "gateway-broadcast-of-slash-8",
        "network_cidr = \"10.0.0.0/8\"\ngateway = \"10.255.255.255\"",
        &["gateway"],
    ),
    (
        "host-bits-in-cidr",
        "network_cidr = \"10.231.0.77/24\"",
        &[],
    ),
    (
        "strings-and-nulls-converted",
        "worker_count = \"3\"\nvlan_id = \"20\"\nallow_raw_pci_ids = \"true\"\nworker_size = { cores = 2, memory_mb = \"4096\", disk_gb = 32 }\ncluster_name = null\ndns_servers = null",
        &[],
    ),
    (
        "smallest-network",
        "network_cidr = \"10.231.0.0/30\"\ngateway = \"10.231.0.2\"\nworker_count = 0\nfirst_host_offset = 1",
        &[],
    ),
];

/// Every COMBINED case on top of a valid base (a case's own assignments replace the base's).
fn combined_tfvars(dir: &Path) -> Vec<(String, PathBuf, BTreeSet<String>)> {
    const BASE: &[(&str, &str)] = &[
        ("network_cidr", "\"10.231.0.0/24\""),
        ("gateway", "\"10.231.0.1\""),
    ];
    COMBINED
        .iter()
        .map(|(name, body, expect)| {
            let mut text: String = BASE
                .iter()
                .filter(|(k, _)| !body.lines().any(|l| l.starts_with(&format!("{k} "))))
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect();
            text.push_str(body);
            text.push('\n');
            let path = dir.join(format!("{name}.tfvars"));
            fs_err::write(&path, text).unwrap();
            (
                name.to_string(),
                path,
                expect.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn terraform_and_check_agree_on_combined_mistakes() {
    let Some(fx) = TfFixture::new() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut disagreements = Vec::new();
    for (name, file, expected) in combined_tfvars(tmp.path()) {
        let plan = fx.terraform(&[
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            &format!("-var-file={}", file.display()),
        ]);
        let tf_out = format!(
            "{}{}",
            String::from_utf8_lossy(&plan.stdout),
            String::from_utf8_lossy(&plan.stderr)
        );
        let tf_vars = terraform_error_vars(&tf_out);
        let (code, json, _) = check_json(
            &repo_root(),
            &[
                "--env",
                "tests/fixtures/offline-env",
                "--tfvars",
                file.to_str().unwrap(),
            ],
        );
        let rust_vars = finding_vars(&json);
        let accept = expected.is_empty();
        let agree = plan.status.success() == accept
            && (code == 0) == accept
            && tf_vars == expected
            && rust_vars == expected;
        if !agree {
            disagreements.push(format!(
                "{name}: expected {expected:?}; terraform exit {:?} naming {tf_vars:?}; em-infra exit {code} naming {rust_vars:?}\n{tf_out}",
                plan.status.code()
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Where `check` is deliberately stricter than Terraform, pinned so a change on either side
/// shows up: Terraform only warns about (and ignores) a tfvars value for an undeclared variable,
/// and silently drops an object attribute the type does not declare. Both are typos that would
/// otherwise change nothing, or the wrong thing, without a word.
#[test]
fn check_is_stricter_than_terraform_on_typos() {
    let Some(fx) = TfFixture::new() else { return };
    let cases = [
        (
            "typo-variable",
            "worker_cont  = 3\n",
            "worker_cont",
            Some("Value for undeclared variable"),
        ),
        (
            "typo-attribute",
            "gpu_workers  = [{ mapping = \"gpu0\", proxmox_nod = \"pve2\" }]\n",
            "gpu_workers[0].proxmox_nod",
            None,
        ),
    ];
    for (name, extra, field, tf_warning) in cases {
        let tfvars = fx.dir.join(format!("{name}.tfvars"));
        fs_err::write(
            &tfvars,
            format!("network_cidr = \"10.231.0.0/24\"\ngateway      = \"10.231.0.1\"\n{extra}"),
        )
        .unwrap();
        let plan = fx.terraform(&[
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            &format!("-var-file={}", tfvars.display()),
        ]);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&plan.stdout),
            String::from_utf8_lossy(&plan.stderr)
        );
        assert!(plan.status.success(), "{name}: terraform accepts it\n{out}");
        if let Some(warning) = tf_warning {
            assert!(out.contains(warning), "{name}: {out}");
        }
        let (code, json, _) = check_json(
            &repo_root(),
            &[
                "--env",
                "tests/fixtures/offline-env",
                "--tfvars",
                tfvars.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 2, "{name}");
        let fields: Vec<&str> = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{name}");
    }
}

/// A topology that exercises every derivation path: a /22 (IPs cross an octet), workers, a GPU
/// by mapping on its own node, a raw PCI ID, explicit placement that wins over the GPU's node.
const RICH_TFVARS: &str = r#"cluster_name      = "edge"
proxmox_node      = "pve1"
network_cidr      = "172.16.4.0/22"
gateway           = "172.16.4.1"
first_host_offset = 250
worker_count      = 3
gpu_workers = [
  { mapping = "gpu-a", proxmox_node = "pve2" },
  { pci_id = "0000:81:00.0" },
  { mapping = "gpu_b", proxmox_node = "pve3" },
]
allow_raw_pci_ids = true
node_placement    = { "edge-worker-2" = "pve4", "edge-gpu-3" = "pve5" }
vm_id_base        = 20000
template_vm_id    = 9000
"#;

/// The other extreme: no plain workers, all ten GPU slots, the smallest offset, a /26 that
/// holds exactly the highest host number plus the broadcast address.
const GPU_ONLY_TFVARS: &str = r#"cluster_name      = "gp"
network_cidr      = "192.168.7.192/26"
gateway           = "192.168.7.254"
first_host_offset = 1
worker_count      = 0
gpu_workers = [
  { mapping = "m0" }, { mapping = "m1" }, { mapping = "m2" }, { mapping = "m3" }, { mapping = "m4" },
  { mapping = "m5" }, { mapping = "m6" }, { mapping = "m7" }, { mapping = "m8" }, { mapping = "m9" },
]
vm_id_base = 100
"#;

#[test]
fn derived_nodes_equal_terraform_apply_outputs() {
    let Some(fx) = TfFixture::new() else { return };
    let repo = repo_root();
    let rich = fx.dir.join("rich.tfvars");
    fs_err::write(&rich, RICH_TFVARS).unwrap();
    let gpu_only = fx.dir.join("gpu-only.tfvars");
    fs_err::write(&gpu_only, GPU_ONLY_TFVARS).unwrap();
    let cases = [
        repo.join("tests/fixtures/offline-env/terraform.tfvars"),
        rich,
        gpu_only,
    ];
    for tfvars in cases {
        let state = fx.dir.join(format!(
            "{}.tfstate",
            tfvars.file_stem().unwrap().to_string_lossy()
        ));
        let apply = fx.terraform(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-lock=false",
            &format!("-state={}", state.display()),
            &format!("-var-file={}", tfvars.display()),
        ]);
        assert!(
            apply.status.success(),
            "apply {}:\n{}",
            tfvars.display(),
            String::from_utf8_lossy(&apply.stderr)
        );
        let out = fx.terraform(&["output", "-json", &format!("-state={}", state.display())]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let outputs: Value = serde_json::from_slice(&out.stdout).unwrap();

        let (code, json, stderr) = check_json(
            &repo,
            &[
                "--env",
                "tests/fixtures/offline-env",
                "--tfvars",
                tfvars.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{stderr}\n{json:#}");
        let rust: serde_json::Map<String, Value> = json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let mut n = n.clone();
                n.as_object_mut().unwrap().remove("slot");
                (n["name"].as_str().unwrap().to_string(), n)
            })
            .collect();
        assert_eq!(
            Value::Object(rust),
            outputs["nodes"]["value"],
            "{}: Rust and Terraform derive different nodes",
            tfvars.display()
        );

        // The *_ips outputs: same IPs, in slot order.
        for (output, role) in [
            ("control_plane_ips", "control_plane"),
            ("worker_ips", "worker"),
            ("gpu_worker_ips", "gpu_worker"),
        ] {
            let ips: Vec<Value> = json["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["role"] == role)
                .map(|n| n["ip"].clone())
                .collect();
            assert_eq!(Value::Array(ips), outputs[output]["value"], "{output}");
        }
        assert_eq!(
            outputs["cluster_name"]["value"],
            json["nodes"][0]["name"]
                .as_str()
                .unwrap()
                .trim_end_matches("-cp-1")
        );
    }
}
