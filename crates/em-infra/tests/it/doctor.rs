//! `em-infra doctor` end to end: the real binary against a local HTTPS server that answers like
//! Proxmox VE (tests/pve_server), with a private CA the test makes. Each scenario asserts the ✗
//! (or !) line and its fix, and that the API token's secret never shows up in any output.
//!
//! Local tools are stand-ins on PATH (terraform, ansible-playbook, ssh) so the local group is ✓
//! wherever the tests run; the environment is a copy of terraform/environments/k3s-dev (the
//! real bpg/proxmox wiring and variables) with a tfvars written per scenario.

use crate::pve_server;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use pve_server::{PveServer, Reply, error, happy_routes, ok};
use serde_json::{Value, json};

pub(crate) const TOKEN_ID: &str = "em-infra@pve!doctor";
pub(crate) const SECRET: &str = "8d1f0c3e-4b2a-4c69-9a57-0d3e9b1f2c7a";

pub(crate) fn token() -> String {
    format!("{TOKEN_ID}={SECRET}")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A throwaway repository with a Proxmox environment, stand-in tools, a HOME with an SSH key, and
/// a PVE API server.
pub(crate) struct Lab {
    dir: tempfile::TempDir,
    pub(crate) server: PveServer,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        Lab::with_routes(happy_routes())
    }

    pub(crate) fn with_routes(routes: std::collections::HashMap<String, Reply>) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        crate::privilege_lab::doctor_repository(root);
        let lab = Lab {
            dir,
            server: PveServer::start(&token(), routes),
        };
        lab.tfvars(&[]);
        lab
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn env_dir(&self) -> PathBuf {
        self.root().join("envs/lab")
    }

    /// Write terraform.tfvars: the base topology with `overrides` replacing or adding variables.
    pub(crate) fn tfvars(&self, overrides: &[(&str, &str)]) {
        let base = [
            ("cluster_name", "\"lab\""),
            ("proxmox_node", "\"pve\""),
            ("network_cidr", "\"192.168.10.0/24\""),
            ("gateway", "\"192.168.10.1\""),
            ("worker_count", "1"),
            ("gpu_workers", "[{ mapping = \"gpu0\" }]"),
            ("template_vm_id", "9000"),
            ("vm_id_base", "9100"),
            ("datastore_id", "\"local-lvm\""),
        ];
        crate::privilege_lab::write_tfvars(self.root(), &base, overrides);
    }

    pub(crate) fn ca_file(&self) -> PathBuf {
        self.server.write_ca(self.root())
    }

    /// The em-infra command with the lab's environment; the CA is pinned unless removed.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        crate::privilege_lab::em_infra_command(self.root(), &self.server, &token(), args)
    }

    pub(crate) fn run(&self, cmd: &mut Command) -> Run {
        let out = cmd.output().unwrap();
        Run::new(out)
    }

    /// `em-infra doctor --json` with the default settings.
    pub(crate) fn doctor(&self) -> Run {
        self.run(&mut self.cmd(&["doctor", "--json"]))
    }
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn new(out: Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
            "the token secret leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        run
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The check named `name` from the JSON report.
    pub(crate) fn check(&self, name: &str) -> Value {
        let json = self.json();
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name:?} in {json:#}"))
    }

    /// Assert that check `name` has `status`, its detail contains `detail` and its fix `fix`.
    pub(crate) fn assert_check(&self, name: &str, status: &str, detail: &str, fix: &str) {
        let c = self.check(name);
        assert_eq!(c["status"], status, "{c:#}\n{}", self.stderr);
        let d = c["detail"].as_str().unwrap();
        assert!(
            d.contains(detail),
            "detail of {name}: {d}\nwanted: {detail}"
        );
        let f = c["fix"].as_str().unwrap_or("");
        assert!(f.contains(fix), "fix of {name}: {f}\nwanted: {fix}");
    }

    pub(crate) fn failed_names(&self) -> Vec<String> {
        self.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }
}

#[test]
fn happy_path_is_all_green_and_human_output_is_grouped() {
    let lab = Lab::new();
    let run = lab.doctor();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["ok"], true);
    for c in json["checks"].as_array().unwrap() {
        let expected = if c["group"] == "cluster" {
            "skip"
        } else {
            "ok"
        };
        assert_eq!(c["status"], expected, "{c:#}");
        assert_eq!(
            c.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["detail", "fix", "group", "name", "status"]
        );
    }
    for name in [
        "terraform",
        "ansible-core",
        "ssh",
        "SSH key",
        "tfvars",
        "SSH public key",
        "API",
        "PVE release",
        "node pve",
        "template 9000",
        "template guest agent",
        "template cloud-init drive",
        "template serial console",
        "storage local-lvm on pve",
        "bridge vmbr0 on pve",
        "VM IDs",
        "GPU lab-gpu-1",
    ] {
        assert_ne!(run.check(name)["status"], "fail", "{name}");
    }
    run.assert_check("PVE release", "ok", "8.2 (pve-manager 8.2.4)", "");
    run.assert_check(
        "GPU lab-gpu-1",
        "ok",
        "mapping gpu0 → 0000:01:00.0 NVIDIA Corporation GA102 [GeForce RTX 3090] on pve, IOMMU group 15",
        "",
    );
    run.assert_check("VM IDs", "ok", "3 free", "");
    run.assert_check("SSH on nodes", "skip", "not provisioned yet", "");

    // Every request carried the token header; the API paths are the real ones.
    let requests = lab.server.requests();
    assert!(
        requests
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some(format!("PVEAPIToken={}", token()).as_str()))
    );
    let paths: Vec<&str> = requests.iter().map(|(k, _)| k.as_str()).collect();
    for p in [
        "GET /version",
        "GET /nodes",
        "GET /cluster/resources?type=vm",
        "GET /nodes/pve/qemu/9000/config",
        "GET /nodes/pve/storage/local-lvm/status",
        "GET /nodes/pve/network",
        "GET /cluster/nextid?vmid=9100",
        "GET /cluster/mapping/pci?check-node=pve",
        "GET /nodes/pve/hardware/pci",
    ] {
        assert!(paths.contains(&p), "{p} not requested: {paths:?}");
    }

    // Human output: groups, marks, summary on stderr; nothing on stdout.
    let human = lab.run(&mut lab.cmd(&["doctor"]));
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(human.stdout.is_empty());
    for line in [
        "local\n",
        "proxmox\n",
        "cluster\n",
        "✓ API: https://127.0.0.1:",
        "answers to token em-infra@pve!doctor",
        "✓ template guest agent: built by `em-infra prepare`: its image has the qemu-guest-agent package",
        "✓ bridge vmbr0 on pve: bridge (active, 192.168.10.2/24)",
        "- SSH on nodes: not provisioned yet (no terraform.tfstate)",
        "doctor: ",
        " 0 failed, 0 warnings, 1 skipped",
    ] {
        assert!(
            human.stderr.contains(line),
            "{line:?} missing in:\n{}",
            human.stderr
        );
    }
}

#[test]
fn rejected_token_is_named_without_its_secret() {
    let lab = Lab::new();
    let wrong = "em-infra@pve!doctor=00000000-wrong-secret-0000";
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env("PROXMOX_VE_API_TOKEN", wrong),
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.json()["ok"], false);
    run.assert_check(
        "API",
        "fail",
        "the API token was rejected (wrong or expired): check PROXMOX_VE_API_TOKEN (token em-infra@pve!doctor)",
        "pveum user token add",
    );
    assert!(!run.stdout.contains("wrong-secret") && !run.stderr.contains("wrong-secret"));
    // The human rendering shows the ✗ line and its fix.
    let human = lab.run(lab.cmd(&["doctor"]).env("PROXMOX_VE_API_TOKEN", wrong));
    assert_eq!(human.code, 3);
    assert!(
        human
            .stderr
            .contains("✗ API: the API token was rejected (wrong or expired)"),
        "{}",
        human.stderr
    );
    assert!(
        human.stderr.contains("  fix: check PROXMOX_VE_API_TOKEN"),
        "{}",
        human.stderr
    );
    assert!(
        human
            .stderr
            .contains("error: preflight failed: doctor found 1 problem"),
        "{}",
        human.stderr
    );
    assert!(!human.stderr.contains("wrong-secret"));
}

#[test]
fn malformed_token_is_a_failed_check_that_never_echoes_it() {
    let lab = Lab::new();
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env("PROXMOX_VE_API_TOKEN", "justasecretvalue123"),
    );
    assert_eq!(run.code, 3);
    run.assert_check(
        "Proxmox API settings",
        "fail",
        "PROXMOX_VE_API_TOKEN is malformed",
        "PROXMOX_VE_API_TOKEN='<user>@<realm>!<tokenid>=<secret>'",
    );
    assert!(!run.stdout.contains("justasecretvalue123"));
}

#[test]
fn missing_privilege_and_hidden_bridge() {
    let lab = Lab::new();
    lab.server.route(
        "GET /nodes/pve/qemu/9000/config",
        error(403, "Permission check failed (/vms/9000, VM.Audit)"),
    );
    // Without SDN.Audit on the bridge, PVE leaves it out of the list.
    lab.server.route(
        "GET /nodes/pve/network",
        ok(json!([{"iface": "enp3s0", "type": "eth", "active": 1, "exists": 1, "families": ["inet"], "method": "manual", "method6": "manual", "priority": 3}])),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "template 9000",
        "fail",
        "permission denied on /nodes/pve/qemu/9000/config: the token lacks VM.Audit on /vms/9000",
        "pveum acl modify /vms/9000 --tokens 'em-infra@pve!doctor' --roles <a role with VM.Audit>",
    );
    run.assert_check(
        "bridge vmbr0 on pve",
        "fail",
        "vmbr0 is not among the bridges the API shows on pve (visible: none); if it exists, the token may lack SDN.Audit",
        "pveum acl modify /sdn/zones/localnetwork/vmbr0 --tokens 'em-infra@pve!doctor' --roles PVESDNUser",
    );
}

#[test]
fn template_not_built_by_prepare_is_a_guest_agent_hint_whatever_its_agent_flag() {
    let lab = Lab::new();
    let mut config = happy_routes()["GET /nodes/pve/qemu/9000/config"].body["data"].clone();
    let obj = config.as_object_mut().unwrap();
    obj.remove("agent");
    obj.insert("description".into(), json!("Ubuntu 22.04, made by hand"));
    lab.server
        .route("GET /nodes/pve/qemu/9000/config", ok(config));
    let run = lab.doctor();
    // The flag is not what hangs the IP wait (bpg enables the agent on each clone); a guest
    // without the package is, and the API cannot look into the image: a warning, exit 0.
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_check(
        "template guest agent",
        "warn",
        "template 9000 was not built by `em-infra prepare`, so doctor cannot tell whether its image has the \
         qemu-guest-agent package; without it every VM's create waits 15 minutes for an IP and fails \
         (the template's agent flag is off, which alone is harmless: the VM module enables the agent on every clone)",
        "virt-customize -a <image> --install qemu-guest-agent",
    );
}

#[test]
fn template_without_cloudinit_or_serial_and_not_a_template() {
    let lab = Lab::new();
    let mut config = happy_routes()["GET /nodes/pve/qemu/9000/config"].body["data"].clone();
    let obj = config.as_object_mut().unwrap();
    obj.remove("ide2");
    obj.remove("serial0");
    obj.remove("template");
    obj.insert("agent".into(), json!("enabled=1,fstrim_cloned_disks=1"));
    lab.server
        .route("GET /nodes/pve/qemu/9000/config", ok(config));
    let mut resources = happy_routes()["GET /cluster/resources?type=vm"].body["data"].clone();
    resources[0]["template"] = json!(0);
    lab.server
        .route("GET /cluster/resources?type=vm", ok(resources));
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "template 9000",
        "fail",
        "VM 9000 (ubuntu-2204-cloudinit) on pve is not a template",
        "qm template 9000",
    );
    run.assert_check(
        "template guest agent",
        "ok",
        "built by `em-infra prepare`",
        "",
    );
    run.assert_check(
        "template cloud-init drive",
        "fail",
        "has no cloud-init drive",
        "qm set 9000 --ide2 local-lvm:cloudinit",
    );
    run.assert_check(
        "template serial console",
        "fail",
        "no serial console (serial0)",
        "qm set 9000 --serial0 socket --vga serial0",
    );
}

#[test]
fn storage_without_images_content() {
    let lab = Lab::new();
    lab.server.route(
        "GET /nodes/pve/storage/local-lvm/status",
        ok(json!({"active": 1, "enabled": 1, "shared": 0, "type": "dir", "content": "iso,vztmpl,backup",
                  "avail": 400_000_000_000u64, "total": 500_000_000_000u64, "used": 100_000_000_000u64})),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "storage local-lvm on pve",
        "fail",
        "storage local-lvm does not allow disk images (content: iso,vztmpl,backup)",
        "pvesm set local-lvm --content images,iso,vztmpl,backup",
    );
}

#[test]
fn storage_full() {
    let lab = Lab::new();
    lab.server.route(
        "GET /nodes/pve/storage/local-lvm/status",
        ok(json!({"active": "1", "enabled": "1", "shared": 0, "type": "lvmthin", "content": "rootdir,images",
                  "avail": 50u64 << 30, "total": 500_000_000_000u64, "used": 446_312_509_440u64})),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    // 32 + 32 + 64 GiB of disks (plus cloud-init and EFI disks) for cp, worker, GPU worker.
    run.assert_check(
        "storage local-lvm on pve",
        "fail",
        "storage local-lvm on pve has 50.0 GiB free, the planned disks need 128.0 GiB",
        "choose another datastore_id",
    );
}

#[test]
fn storage_missing_or_inactive() {
    let lab = Lab::new();
    // What PVE answers for an ID storage.cfg does not define (pve-storage `read_status`).
    lab.server.route(
        "GET /nodes/pve/storage/local-lvm/status",
        pve_server::param_error("storage", "No such storage."),
    );
    let run = lab.doctor();
    run.assert_check(
        "storage local-lvm on pve",
        "fail",
        "storage local-lvm is not defined in this cluster (PVE: No such storage.)",
        "set datastore_id to a storage for disk images on pve",
    );
    lab.server.route(
        "GET /nodes/pve/storage/local-lvm/status",
        ok(json!({"active": 0, "enabled": 1, "content": "images", "avail": 0, "total": 0, "used": 0, "type": "nfs", "shared": 1})),
    );
    let run = lab.doctor();
    run.assert_check(
        "storage local-lvm on pve",
        "fail",
        "storage local-lvm is not active on pve",
        "pvesm status",
    );
}

#[test]
fn vm_id_taken_by_a_foreign_vm_but_ours_is_fine() {
    let lab = Lab::new();
    let mut resources = happy_routes()["GET /cluster/resources?type=vm"].body["data"].clone();
    let list = resources.as_array_mut().unwrap();
    list.push(
        json!({"id": "qemu/9100", "vmid": 9100, "name": "lab-cp-1", "node": "pve", "type": "qemu",
                     "status": "running", "template": 0, "tags": "control_plane;em-infra;k3s;lab"}),
    );
    list.push(
        json!({"id": "qemu/9110", "vmid": 9110, "name": "db-server", "node": "pve", "type": "qemu",
                     "status": "running", "template": 0, "tags": "prod"}),
    );
    lab.server
        .route("GET /cluster/resources?type=vm", ok(resources));
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    assert_eq!(run.failed_names(), ["VM ID 9110"]);
    run.assert_check(
        "VM ID 9110",
        "fail",
        "VM 9110 is 'db-server' on pve, tags prod: not em-infra's lab-worker-1",
        "choose a vm_id_base whose range is free (the nodes use vm_id_base + 0…40)",
    );
}

#[test]
fn gpu_mapping_missing() {
    let lab = Lab::new();
    lab.server.route("GET /cluster/mapping/pci", ok(json!([])));
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "PCI resource mapping 'gpu0' does not exist (visible: none), or the token lacks Mapping.Audit on /mapping/pci/gpu0",
        "Datacenter → Resource Mappings → PCI → Add (name gpu0, node pve, the GPU)",
    );
}

#[test]
fn gpu_mapping_for_another_node() {
    let lab = Lab::new();
    lab.server.route(
        "GET /cluster/mapping/pci",
        ok(json!([{"id": "gpu0", "map": ["id=10de:2204,iommugroup=15,node=pve2,path=0000:01:00.0"]}])),
    );
    let run = lab.doctor();
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "mapping 'gpu0' has no device on node pve (it maps: pve2)",
        "add pve's GPU to mapping gpu0",
    );
}

#[test]
fn iommu_off() {
    let lab = Lab::new();
    let mut devices = happy_routes()["GET /nodes/pve/hardware/pci"].body["data"].clone();
    for d in devices.as_array_mut().unwrap() {
        d["iommugroup"] = json!(-1);
    }
    lab.server.route("GET /nodes/pve/hardware/pci", ok(devices));
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "IOMMU is off on pve: 0000:01:00.0 has no IOMMU group (-1)",
        "enable intel_iommu=on (Intel) or amd_iommu=on (AMD)",
    );
}

#[test]
fn mapping_to_a_non_gpu_and_shared_iommu_group() {
    let lab = Lab::new();
    lab.server.route(
        "GET /cluster/mapping/pci",
        ok(json!([{"id": "gpu0", "map": ["id=144d:a808,iommugroup=16,node=pve,path=0000:02:00.0"]}])),
    );
    let run = lab.doctor();
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "mapping 'gpu0' points at 0000:02:00.0 (Samsung Electronics Co Ltd NVMe SSD Controller SM981/PM981/PM983), class 0x010802: not a display controller",
        "point mapping gpu0 at the GPU",
    );

    // The GPU shares group 15 with the Wi-Fi card: a warning, not a failure (exit 0).
    let lab = Lab::new();
    let mut devices = happy_routes()["GET /nodes/pve/hardware/pci"].body["data"].clone();
    devices[0]["iommugroup"] = json!(15);
    lab.server.route("GET /nodes/pve/hardware/pci", ok(devices));
    let run = lab.doctor();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_check(
        "IOMMU group 15 on pve",
        "warn",
        "0000:01:00.0 shares its IOMMU group with 0000:00:14.3 (Intel Corporation Alder Lake-S PCH CNVi WiFi)",
        "move the GPU to a slot with its own group",
    );
    // Its own audio function (same bus:device) is not reported.
    assert!(
        !run.check("IOMMU group 15 on pve")["detail"]
            .as_str()
            .unwrap()
            .contains("0000:01:00.1")
    );
}

#[test]
fn raw_pci_id_with_a_token() {
    let lab = Lab::new();
    lab.tfvars(&[
        ("gpu_workers", "[{ pci_id = \"0000:01:00.0\" }]"),
        ("allow_raw_pci_ids", "true"),
    ]);
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    assert_eq!(run.failed_names(), ["GPU lab-gpu-1"]);
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "raw pci_id 0000:01:00.0 cannot be used with an API token: Proxmox lets only root@pam (password auth) pass a raw PCI device",
        "create a PCI resource mapping (Datacenter → Resource Mappings → PCI → Add: node pve, device 0000:01:00.0) and use { mapping = \"<name>\" } instead",
    );
}

#[test]
fn lock_timeout_is_translated() {
    let lab = Lab::new();
    lab.server.route(
        "GET /nodes/pve/qemu/9000/config",
        error(
            500,
            "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout",
        ),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "template 9000",
        "fail",
        "another task holds the lock on VM 9000; retry when it has finished or wait",
        "wait for the running task",
    );
}

#[test]
fn tls_without_the_pinned_ca_is_rejected_and_says_how_to_pin() {
    let lab = Lab::new();
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env_remove("EM_INFRA_PVE_CA_FILE"),
    );
    assert_eq!(run.code, 3);
    run.assert_check("API", "fail", "is not trusted", "EM_INFRA_PVE_CA_FILE");
    let detail = run.check("API")["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains(
            "pin the cluster CA with EM_INFRA_PVE_CA_FILE=<file> (copy /etc/pve/pve-root-ca.pem"
        ),
        "{detail}"
    );
    assert!(detail.contains("PROXMOX_VE_INSECURE=true"), "{detail}");
    // No request got through the handshake.
    assert!(lab.server.requests().is_empty());

    // With the CA pinned (Lab's default) the same server is trusted.
    let pinned = lab.doctor();
    assert_eq!(pinned.code, 0, "{}", pinned.stderr);
    pinned.assert_check("API", "ok", "answers to token em-infra@pve!doctor", "");
}

#[test]
fn insecure_opt_out_works_and_warns_once() {
    let lab = Lab::new();
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env_remove("EM_INFRA_PVE_CA_FILE")
            .env("PROXMOX_VE_INSECURE", "true"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .matches("warning: PROXMOX_VE_INSECURE is set")
            .count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn unreachable_endpoint_names_host_and_port() {
    let lab = Lab::new();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let endpoint = format!("https://127.0.0.1:{port}/api2/json");
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env("PROXMOX_VE_ENDPOINT", &endpoint),
    );
    assert_eq!(run.code, 3);
    run.assert_check(
        "API",
        "fail",
        &format!("cannot reach https://127.0.0.1:{port}: check host and port 8006"),
        "check PROXMOX_VE_ENDPOINT",
    );
}

#[test]
fn environment_without_proxmox_skips_the_proxmox_group() {
    let lab = Lab::new();
    let run = lab.run(
        Command::new(env!("CARGO_BIN_EXE_em-infra"))
            .args(["doctor", "--json", "--env"])
            .arg(repo_root().join("tests/fixtures/offline-env"))
            .env("EM_INFRA_ROOT", lab.root())
            .env("HOME", lab.root().join("home"))
            .env("EM_INFRA_TERRAFORM", lab.root().join("bin/terraform"))
            .env("EM_INFRA_ANSIBLE_BIN_DIR", lab.root().join("bin"))
            .env("PROXMOX_VE_API_TOKEN", token())
            .env_remove("EM_INFRA_STATE_DIR")
            .env_remove("ANSIBLE_PRIVATE_KEY_FILE"),
    );
    run.assert_check(
        "Proxmox API",
        "skip",
        "offline-env does not use the bpg/proxmox provider",
        "",
    );
    assert!(lab.server.requests().is_empty());
}

// --- the client as a library ----------------------------------------------------------------

pub(crate) fn client(lab: &Lab) -> em_infra_core::proxmox::Client {
    use em_infra_core::proxmox::{ApiToken, Client, Settings, TlsMode};
    Client::new(Settings {
        endpoint: em_infra_core::proxmox::normalize_endpoint(&lab.server.url()).unwrap(),
        token: ApiToken::parse(&token()).unwrap(),
        tls: TlsMode::PinnedCa(lab.ca_file()),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

const UPID: &str = "UPID:pve:0003A2F1:01B2C3D4:6560F1E2:qmclone:9000:em-infra@pve!doctor:";

#[test]
fn client_reads_the_real_shapes() {
    let lab = Lab::new();
    let c = client(&lab);
    assert_eq!(c.version().unwrap().major(), Some(8));
    assert_eq!(c.nodes().unwrap()[0].status, "online");
    let status = c.node_status("pve").unwrap();
    assert_eq!(
        status.pveversion.as_deref(),
        Some("pve-manager/8.2.4/faa83925c9641325")
    );
    let vms = c.cluster_vms().unwrap();
    assert_eq!(vms.len(), 3);
    assert!(vms[0].template && !vms[1].template);
    assert_eq!(vms[0].tags, ["em-infra", "template"]);
    assert!(c.vm_config("pve", 9000).unwrap().agent_enabled());
    assert!(
        c.storage_status("pve", "local-lvm")
            .unwrap()
            .allows("images")
    );
    assert!(
        c.network("pve")
            .unwrap()
            .iter()
            .any(|i| i.iface == "vmbr0" && i.is_bridge())
    );
    assert_eq!(
        c.pci_mappings().unwrap()[0]
            .entry_for("pve")
            .unwrap()
            .iommugroup,
        Some(15)
    );
    assert_eq!(c.node_pci_devices("pve").unwrap().len(), 4);
    assert!(!format!("{c:?}").contains(SECRET));
}

#[test]
fn wait_task_polls_until_stopped_and_translates_failures() {
    let lab = Lab::new();
    let c = client(&lab);
    let key = format!("GET /nodes/pve/tasks/{UPID}/status");
    let base = json!({"upid": UPID, "node": "pve", "pid": 238321, "pstart": 28492756, "starttime": 1700852194,
                      "type": "qmclone", "id": "9000", "user": "em-infra@pve!doctor"});
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        ok(v)
    };

    lab.server
        .route(&key, with(json!({"status": "stopped", "exitstatus": "OK"})));
    let done = c.wait_task("pve", UPID, Duration::from_secs(5)).unwrap();
    assert_eq!(done.exitstatus.as_deref(), Some("OK"));

    lab.server.route(
        &key,
        with(json!({"status": "stopped", "exitstatus": "clone failed: can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"})),
    );
    let err = c
        .wait_task("pve", UPID, Duration::from_secs(5))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("another task holds the lock on VM 9000; retry"),
        "{err}"
    );

    lab.server.route(&key, with(json!({"status": "stopped", "exitstatus": "unable to find configuration file for VM 9000"})));
    let err = c
        .wait_task("pve", UPID, Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("task {UPID} failed: unable to find configuration file for VM 9000")
    );

    lab.server.route(&key, with(json!({"status": "running"})));
    let err = c
        .wait_task("pve", UPID, Duration::from_millis(600))
        .unwrap_err();
    assert!(err.to_string().contains("still running"), "{err}");

    assert!(c.task_status("pve", "not-a-upid").is_err());
}

#[test]
fn http_500_lock_reason_from_any_endpoint() {
    let lab = Lab::new();
    lab.server.route(
        "GET /nodes/pve/storage/local-lvm/status",
        error(
            500,
            "can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout",
        ),
    );
    let err = client(&lab).storage_status("pve", "local-lvm").unwrap_err();
    assert_eq!(
        err.to_string(),
        "another task holds the lock on storage local-lvm; retry when it has finished or wait \
         (can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout)"
    );
    lab.server
        .route("GET /nodes/pve/network", error(595, "Connection refused"));
    let err = client(&lab).network("pve").unwrap_err();
    assert!(
        err.to_string()
            .contains("check host and port 8006 (HTTP 595: Connection refused)"),
        "{err}"
    );
}

#[test]
fn old_release_warns_and_offline_node_fails() {
    let lab = Lab::new();
    lab.server.route(
        "GET /version",
        ok(json!({"version": "7.4-17", "release": "7.4", "repoid": "513c62be"})),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_check(
        "PVE release",
        "warn",
        "7.4 (pve-manager 7.4-17) is not a tested release (8.x, 9.x)",
        "upgrade to Proxmox VE 8 or 9",
    );

    lab.server.route(
        "GET /nodes",
        ok(json!([{"node": "pve", "status": "offline", "type": "node", "id": "node/pve", "level": ""}])),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    assert_eq!(run.failed_names(), ["node pve"]);
    run.assert_check("node pve", "fail", "pve is offline", "start pve");
    run.assert_check(
        "storage local-lvm on pve",
        "skip",
        "node pve is not online",
        "",
    );
}

/// A Terraform state whose one node, `lab-cp-1` (VM 9100 on pve), has address `ip`.
fn write_one_node_state(lab: &Lab, ip: &str) {
    let out = |value: Value| json!({ "value": value, "type": "dynamic" });
    let state = json!({
        "version": 4,
        "terraform_version": "1.9.8",
        "serial": 3,
        "lineage": "1b6a1d0e-8c3f-4d8e-9a3b-6c2f1e0d9a8b",
        "outputs": {
            "cluster_name": out(json!("lab")),
            "ssh_user": out(json!("ubuntu")),
            "control_plane_ips": out(json!([ip])),
            "worker_ips": out(json!([])),
            "gpu_worker_ips": out(json!([])),
            "nodes": out(json!({
                "lab-cp-1": {"name": "lab-cp-1", "role": "control_plane", "ip": ip, "vm_id": 9100,
                             "proxmox_node": "pve", "gpu": null}
            })),
        },
        "resources": [],
        "check_results": null,
    });
    fs::write(lab.env_dir().join("terraform.tfstate"), state.to_string()).unwrap();
}

#[test]
fn cluster_group_probes_ssh_on_every_provisioned_node() {
    let lab = Lab::new();
    write_one_node_state(&lab, "127.0.0.1");
    let run = lab.doctor();
    // Whether this machine runs an SSH server decides the verdict; the check must agree with it.
    let open = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:22".parse().unwrap(),
        Duration::from_secs(5),
    )
    .is_ok();
    if open {
        run.assert_check("SSH lab-cp-1", "ok", "127.0.0.1:22 answers", "");
    } else {
        assert_eq!(run.code, 3);
        run.assert_check(
            "SSH lab-cp-1",
            "fail",
            "cannot reach 127.0.0.1:22",
            "check that VM 9100 runs (qm status 9100 on pve)",
        );
    }

    fs::write(
        lab.env_dir().join("terraform.tfstate"),
        "{\"version\": 4, \"ser",
    )
    .unwrap();
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    // Provisioning again cannot repair a state that does not parse; a backup can.
    run.assert_check(
        "Terraform state",
        "fail",
        "terraform.tfstate is not a Terraform state",
        "em-infra state restore ID",
    );
}

#[test]
fn preflight_stops_on_an_unreachable_node_and_on_a_state_that_does_not_parse() {
    let lab = Lab::new();
    // Nothing listens on 127.0.0.3:22: the node of a provisioned cluster is unreachable.
    write_one_node_state(&lab, "127.0.0.3");
    let run = lab.run(&mut lab.cmd(&["up", "--to", "preflight"]));
    assert_eq!(run.code, 3, "{}", run.stderr);
    for part in [
        "error: preflight failed: SSH lab-cp-1: cannot reach 127.0.0.3:22",
        "(fix: check that VM 9100 runs (qm status 9100 on pve)",
        "`em-infra up --from provision` recreates it",
    ] {
        assert!(run.stderr.contains(part), "{part}\n{}", run.stderr);
    }

    // A state file that is not a Terraform state: bad input, and the fix is a backup, not a
    // provision (Terraform could not plan against it).
    let garbage = "{\"version\": 4, \"ser";
    fs::write(lab.env_dir().join("terraform.tfstate"), garbage).unwrap();
    let run = lab.run(&mut lab.cmd(&["up", "--to", "preflight"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("Terraform state: ") && run.stderr.contains("is not a Terraform state"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("em-infra state restore ID"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_to_string(lab.env_dir().join("terraform.tfstate")).unwrap(),
        garbage,
        "the damaged state is left as it was"
    );
}

#[test]
fn invalid_tfvars_fail_locally_and_skip_the_host_checks() {
    let lab = Lab::new();
    lab.tfvars(&[("worker_count", "99")]);
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    assert_eq!(run.failed_names(), ["tfvars"]);
    let tfvars = run.check("tfvars");
    assert!(
        tfvars["detail"]
            .as_str()
            .unwrap()
            .starts_with("1 problem in envs/lab/terraform.tfvars: "),
        "{tfvars:#}"
    );
    assert!(tfvars["detail"].as_str().unwrap().contains("worker_count"));
    assert!(
        tfvars["fix"]
            .as_str()
            .unwrap()
            .contains("`em-infra check --env lab` lists every problem")
    );
    run.assert_check("API", "ok", "answers", "");
    run.assert_check("Proxmox host", "skip", "the tfvars are invalid", "");
}

// ---------------------------------------------------------------------------------------------
// init: the same lab, with the environment's example and no tfvars yet

impl Lab {
    /// The environment as a fresh clone has it: the example, no terraform.tfvars.
    fn without_tfvars(self) -> Lab {
        fs::remove_file(self.env_dir().join("terraform.tfvars")).unwrap();
        fs::copy(
            repo_root().join("terraform/environments/k3s-dev/terraform.tfvars.example"),
            self.env_dir().join("terraform.tfvars.example"),
        )
        .unwrap();
        self
    }

    fn written_tfvars(&self) -> String {
        fs::read_to_string(self.env_dir().join("terraform.tfvars")).unwrap()
    }
}

const NETWORK: [&str; 4] = [
    "--network-cidr",
    "192.168.50.0/24",
    "--gateway",
    "192.168.50.1",
];

#[test]
fn init_writes_the_tfvars_from_the_host_and_the_example_and_check_passes() {
    let lab = Lab::new().without_tfvars();
    let mut args = vec!["init"];
    args.extend(NETWORK);
    let run = lab.run(&mut lab.cmd(&args));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = lab.written_tfvars();
    for line in [
        "proxmox_node = \"pve\" # node name as in the Proxmox UI; the template lives here",
        "network_cidr      = \"192.168.50.0/24\" # the bridge's LAN; node IPs must be free in it",
        "gateway           = \"192.168.50.1\"",
        // The storage that takes VM disks with the most room (the inactive one is skipped).
        "datastore_id   = \"tank\"",
        "template_vm_id = 9000 # made by `em-infra up --only prepare`",
        "vm_id_base     = 9100 # nodes use vm_id_base + slot (9100, 9110.., 9140..)",
        "network_bridge = \"vmbr0\"",
        // The example's comments and untouched values stay.
        "# --- network (required) ----",
        "worker_count = 2",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    // The host's GPU mapping is named (in the file too), not silently used.
    assert!(
        run.stderr.contains("GPU mappings on pve: gpu0"),
        "{}",
        run.stderr
    );
    assert!(
        text.contains(
            "# GPU mappings on pve (read by em-infra init): gpu_workers = [{ mapping = \"gpu0\" }]\ngpu_workers = []"
        ),
        "{text}"
    );
    // Every planned ID was asked with nextid (it sees guests the token may not audit).
    let asked: Vec<String> = lab
        .server
        .requests()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("GET /cluster/nextid"))
        .collect();
    for id in [9000, 9100, 9110, 9111] {
        assert!(
            asked.contains(&format!("GET /cluster/nextid?vmid={id}")),
            "{id}: {asked:?}"
        );
    }
    let check = lab.run(&mut lab.cmd(&["check"]));
    assert_eq!(check.code, 0, "{}", check.stderr);
    // And doctor against the same host.
    lab.server.route(
        "GET /nodes/pve/storage/tank/status",
        pve_server::ok(json!({
            "active": 1, "enabled": 1, "shared": 0, "type": "zfspool", "content": "images,rootdir",
            "avail": 900_000_000_000u64, "total": 1_000_000_000_000u64, "used": 100_000_000_000u64
        })),
    );
    let doctor = lab.doctor();
    assert_eq!(doctor.code, 0, "{}\n{}", doctor.stdout, doctor.stderr);

    // A second init changes nothing without --force.
    let again = lab.run(&mut lab.cmd(&args));
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("pass --force"), "{}", again.stderr);
    assert_eq!(lab.written_tfvars(), text);

    // With --force the old file is kept as a backup (0600).
    args.push("--force");
    args.extend(["--worker-count", "3"]);
    let forced = lab.run(&mut lab.cmd(&args));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(lab.written_tfvars().contains("worker_count = 3"));
    let backups: Vec<PathBuf> = fs::read_dir(lab.env_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".bak"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(fs::read_to_string(&backups[0]).unwrap(), text);
    assert_eq!(
        fs::metadata(&backups[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn init_moves_past_vm_ids_taken_by_guests_the_token_cannot_see() {
    let lab = Lab::new().without_tfvars();
    // VM 9110 exists but is not in /cluster/resources for this token: only nextid knows.
    lab.server.route(
        "GET /cluster/nextid?vmid=9110",
        pve_server::vmid_taken(9110),
    );
    let mut args = vec!["init"];
    args.extend(NETWORK);
    let run = lab.run(&mut lab.cmd(&args));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        lab.written_tfvars().contains("vm_id_base     = 9200"),
        "{}",
        lab.written_tfvars()
    );
    // A base the user gave is not moved: it is refused with the fix.
    fs::remove_file(lab.env_dir().join("terraform.tfvars")).unwrap();
    args.extend(["--vm-id-base", "9100"]);
    let given = lab.run(&mut lab.cmd(&args));
    assert_eq!(given.code, 2, "{}", given.stderr);
    assert!(given.stderr.contains("vm_id_base 9100"), "{}", given.stderr);
    assert!(!lab.env_dir().join("terraform.tfvars").exists());
}

#[test]
fn init_refuses_bad_or_missing_values_naming_them_and_writes_nothing() {
    let lab = Lab::new().without_tfvars();
    let cases: [(&[&str], &str); 5] = [
        // No terminal to ask: the flag is named.
        (
            &["init", "--network-cidr", "192.168.50.0/24"],
            "pass --gateway",
        ),
        (
            &[
                "init",
                "--network-cidr",
                "192.168.50.0/33",
                "--gateway",
                "192.168.50.1",
            ],
            "network_cidr",
        ),
        (
            &[
                "init",
                "--datastore-id",
                "nope",
                "--network-cidr",
                "192.168.50.0/24",
                "--gateway",
                "192.168.50.1",
            ],
            "--datastore-id nope",
        ),
        (
            &[
                "init",
                "--gpu-mapping",
                "gpu9",
                "--network-cidr",
                "192.168.50.0/24",
                "--gateway",
                "192.168.50.1",
            ],
            "--gpu-mapping gpu9",
        ),
        (
            &[
                "init",
                "--proxmox-node",
                "pve9",
                "--network-cidr",
                "192.168.50.0/24",
                "--gateway",
                "192.168.50.1",
            ],
            "--proxmox-node pve9",
        ),
    ];
    for (args, named) in cases {
        let run = lab.run(&mut lab.cmd(args));
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{args:?}: {}", run.stderr);
        assert!(
            !lab.env_dir().join("terraform.tfvars").exists(),
            "{args:?} wrote a file"
        );
    }
    // A flag whose value is no number is clap's usage error, also exit 2.
    let run = lab.run(&mut lab.cmd(&["init", "--worker-count", "many"]));
    assert_eq!(run.code, 2);
}

#[test]
fn up_without_the_environments_own_tfvars_refuses_and_points_at_init() {
    let lab = Lab::new().without_tfvars();
    let run = lab.run(&mut lab.cmd(&["up"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("em-infra init --env"), "{}", run.stderr);
    assert!(
        !lab.root().join(".em-infra").exists(),
        "nothing was written"
    );
}

#[test]
fn gpu_add_runs_doctors_device_checks_on_the_new_device_before_anything_changes() {
    let lab = Lab::new();
    lab.tfvars(&[("gpu_workers", "[]")]);
    write_one_node_state(&lab, "127.0.0.1");
    let tfvars = lab.env_dir().join("terraform.tfvars");
    let before = fs::read_to_string(&tfvars).unwrap();

    let missing = lab.run(&mut lab.cmd(&["gpu", "add", "--mapping", "gpu9", "--yes"]));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("GPU lab-gpu-1"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("gpu9"), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("nothing was changed"),
        "{}",
        missing.stderr
    );
    assert_eq!(fs::read_to_string(&tfvars).unwrap(), before);
    assert!(!lab.root().join(".em-infra").exists(), "no run was started");

    let fine = lab.run(&mut lab.cmd(&["gpu", "add", "--mapping", "gpu0", "--dry-run"]));
    assert_eq!(fine.code, 0, "{}", fine.stderr);
    assert!(
        fine.stderr
            .contains("lab-gpu-1 would be created; the checks passed"),
        "{}",
        fine.stderr
    );
    assert_eq!(fs::read_to_string(&tfvars).unwrap(), before);
}
