//! A two-node Proxmox VE cluster behind the API test server — `pve` holds the template, `pve2` a
//! worker and the GPU, `local-lvm` is local to each node — and a throwaway repository whose
//! k3s-dev environment plans 1 server + 2 workers + 1 GPU worker on it (worker-2 and the GPU worker
//! on `pve2`, so bpg clones on `pve` and migrates them). The fixture of the privilege tests
//! (doctor_privileges.rs) and of the doctor benchmark (benches/doctor.rs).
//!
//! The token's privileges come from an [`Access`] set up as docs/runbooks.md says: the role
//! `EmInfra` with the release's privileges, granted on `/` to the user, the token without
//! privilege separation.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use em_infra_core::proxmox::privileges::{self, ROLE, Release, When};
use serde_json::{Value, json};

use crate::pve_access::Access;
use crate::pve_server::{PveServer, Reply, happy_routes, ok};

pub(crate) const TOKEN_ID: &str = "em-infra@pve!doctor";
pub(crate) const USER: &str = "em-infra@pve";
pub(crate) const SECRET: &str = "5b0e2c1d-7f3a-4e69-8d21-a9c3e4f5b6d7";

pub(crate) fn token() -> String {
    format!("{TOKEN_ID}={SECRET}")
}

/// Every privilege the 1+2+1 two-node plan needs on `release` (the runbook's role plus its GPU
/// and migration lines).
pub(crate) fn full_role(release: Release) -> Vec<&'static str> {
    let mut all = privileges::privileges(release, When::Always);
    all.extend(privileges::privileges(release, When::GpuWorkers));
    all.extend(privileges::privileges(release, When::MovedVms));
    all
}

/// The runbook's setup: `EmInfra` with `privileges` on `/` for the user, token without privsep.
pub(crate) fn runbook_access(privileges: &[&str]) -> Access {
    Access::new()
        .role(ROLE, privileges)
        .token(TOKEN_ID, false)
        .grant_user("/", USER, ROLE, true)
}

/// `GET /version` of a PVE `major` host (pve-manager versions of real releases).
pub(crate) fn version(major: u32) -> Reply {
    match major {
        9 => ok(json!({"version": "9.0.10", "release": "9.0", "repoid": "deb1ca707ec72a89"})),
        _ => ok(json!({"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"})),
    }
}

/// The routes of the two-node cluster on a PVE `major` host: happy_routes' `pve` plus `pve2`
/// (online, local-lvm, vmbr0, the GPU that mapping `gpu0` maps on pve2).
pub(crate) fn two_node_routes(major: u32) -> HashMap<String, Reply> {
    let mut r = happy_routes();
    let pve = |key: &str| r[key].body["data"].clone();
    let mut nodes = pve("GET /nodes");
    let mut second = nodes[0].clone();
    second["node"] = json!("pve2");
    second["id"] = json!("node/pve2");
    nodes.as_array_mut().unwrap().push(second);
    let storage = pve("GET /nodes/pve/storage/local-lvm/status");
    let network = pve("GET /nodes/pve/network");
    let pci = pve("GET /nodes/pve/hardware/pci");
    r.insert("GET /version".into(), version(major));
    r.insert("GET /nodes".into(), ok(nodes));
    r.insert(
        "GET /nodes/pve2/storage/local-lvm/status".into(),
        ok(storage),
    );
    r.insert("GET /nodes/pve2/network".into(), ok(network));
    r.insert("GET /nodes/pve2/hardware/pci".into(), ok(pci));
    r.insert(
        "GET /cluster/mapping/pci".into(),
        ok(json!([{
            "id": "gpu0", "description": "RTX 3090 on pve2",
            "map": ["id=10de:2204,iommugroup=15,node=pve2,path=0000:01:00.0,subsystem-id=1458:403b"],
            "digest": "1b2c3d4e5f60718293a4b5c6d7e8f90123456789"
        }])),
    );
    r
}

/// Fill `root` with what `em-infra doctor` reads: the real Terraform modules (linked) under a
/// k3s-dev environment copied to `envs/lab`, a HOME with an SSH key pair, and stand-in
/// `terraform`, `ansible-playbook` and `ssh` in `bin/` that only answer their version.
pub(crate) fn doctor_repository(root: &Path) {
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    // Discovery needs terraform/environments; the env's `../../modules/…` sources resolve
    // through the `modules` link to the real modules.
    std::os::unix::fs::symlink(real.join("terraform"), root.join("terraform")).unwrap();
    std::os::unix::fs::symlink(real.join("terraform/modules"), root.join("modules")).unwrap();
    let env = root.join("envs/lab");
    fs::create_dir_all(&env).unwrap();
    for entry in fs::read_dir(real.join("terraform/environments/k3s-dev")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            fs::copy(&path, env.join(path.file_name().unwrap())).unwrap();
        }
    }
    let ssh = root.join("home/.ssh");
    fs::create_dir_all(&ssh).unwrap();
    fs::write(
        ssh.join("id_ed25519"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::set_permissions(ssh.join("id_ed25519"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        ssh.join("id_ed25519.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests lab@test\n",
    )
    .unwrap();
    let bin = root.join("bin");
    write_executable(
        &bin.join("terraform"),
        "#!/bin/sh\necho '{\"terraform_version\":\"1.9.8\",\"platform\":\"linux_amd64\",\"provider_selections\":{}}'\n",
    );
    write_executable(
        &bin.join("ansible-playbook"),
        "#!/bin/sh\necho 'ansible-playbook [core 2.19.14]'\necho '  python version = 3.12.3'\n",
    );
    write_executable(
        &bin.join("ssh"),
        "#!/bin/sh\necho 'OpenSSH_9.6p1 (test stand-in)' >&2\n",
    );
}

/// Write `<root>/envs/lab/terraform.tfvars`: `base`, the SSH key `doctor_repository` made, and
/// `overrides` replacing or adding variables.
pub(crate) fn write_tfvars(root: &Path, base: &[(&str, &str)], overrides: &[(&str, &str)]) {
    let key = format!("\"{}\"", root.join("home/.ssh/id_ed25519.pub").display());
    let mut vars: std::collections::BTreeMap<&str, &str> = base.iter().copied().collect();
    vars.insert("ssh_public_key_path", &key);
    vars.extend(overrides.iter().copied());
    let text: String = vars.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    fs::write(root.join("envs/lab/terraform.tfvars"), text).unwrap();
}

/// `em-infra <args> --env envs/lab` in a `doctor_repository` at `root`: its stand-in tools first on
/// PATH, its HOME, `server` as the Proxmox endpoint with `token` and its CA pinned, and none of
/// the caller's em-infra, Ansible or Proxmox settings.
pub(crate) fn em_infra_command(
    root: &Path,
    server: &PveServer,
    token: &str,
    args: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_em-infra"));
    let bin = root.join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.args(args)
        .arg("--env")
        .arg(root.join("envs/lab"))
        .current_dir(root)
        .env("PATH", path)
        .env("EM_INFRA_ROOT", root)
        .env("HOME", root.join("home"))
        .env("NO_COLOR", "1")
        .env("EM_INFRA_TERRAFORM", bin.join("terraform"))
        .env("EM_INFRA_ANSIBLE_BIN_DIR", &bin)
        .env("PROXMOX_VE_ENDPOINT", server.url())
        .env("PROXMOX_VE_API_TOKEN", token)
        .env("EM_INFRA_PVE_CA_FILE", server.write_ca(root))
        .env("EM_INFRA_PVE_TIMEOUT", "20")
        .env_remove("PROXMOX_VE_INSECURE")
        .env_remove("ANSIBLE_PRIVATE_KEY_FILE")
        .env_remove("EM_INFRA_STATE_DIR")
        .env_remove("EM_INFRA_ENV")
        .stdin(Stdio::null());
    cmd
}

fn write_executable(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The repository, stand-in local tools, a HOME with an SSH key, and the API server.
pub(crate) struct ClusterLab {
    dir: tempfile::TempDir,
    pub(crate) server: PveServer,
}

impl ClusterLab {
    /// A PVE `major` cluster whose token holds exactly the runbook's role for the plan.
    pub(crate) fn new(major: u32) -> ClusterLab {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        doctor_repository(root);
        let lab = ClusterLab {
            dir,
            server: PveServer::start(&token(), two_node_routes(major)),
        };
        lab.server
            .set_access(runbook_access(&full_role(Release::from_major(Some(major)))));
        lab.tfvars(&[]);
        lab
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// terraform.tfvars: 1 server, 2 workers (worker-2 on pve2), 1 GPU worker (gpu0 on pve2);
    /// `overrides` replace or add variables.
    pub(crate) fn tfvars(&self, overrides: &[(&str, &str)]) {
        let base = [
            ("cluster_name", "\"lab\""),
            ("proxmox_node", "\"pve\""),
            ("node_placement", "{ \"lab-worker-2\" = \"pve2\" }"),
            ("network_cidr", "\"192.168.10.0/24\""),
            ("gateway", "\"192.168.10.1\""),
            ("worker_count", "2"),
            (
                "gpu_workers",
                "[{ mapping = \"gpu0\", proxmox_node = \"pve2\" }]",
            ),
            ("template_vm_id", "9000"),
            ("vm_id_base", "9100"),
            ("datastore_id", "\"local-lvm\""),
        ];
        write_tfvars(self.root(), &base, overrides);
    }

    /// `em-infra <args> --env <lab>` with the lab's settings (CA pinned).
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        em_infra_command(self.root(), &self.server, &token(), args)
    }

    /// `em-infra doctor --json`: the exit code and the report (the secret never in the output).
    pub(crate) fn doctor(&self) -> (i32, Value) {
        let out = self.cmd(&["doctor", "--json"]).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "the token secret leaked"
        );
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}\n{stderr}"));
        (out.status.code().unwrap_or(-1), report)
    }
}
