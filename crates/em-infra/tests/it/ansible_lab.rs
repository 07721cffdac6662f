//! Lab integration test of the configure layer: real Terraform state → `em-infra inventory` →
//! real `ansible-playbook` over real SSH against systemd hosts (systemd-nspawn containers in
//! network namespaces, see `crates/testlab`).
//!
//! `site.yml` runs twice (the second run must report `changed=0 failed=0` on every host), the
//! fetched kubeconfig is used against the cluster, `reset.yml` removes everything, the lab goes
//! down without leftovers, and no captured output contains the k3s token or the lab's private key.
//!
//! The k3s binary is `crates/k3s-standin` (a documented STAND-IN, not k3s: the release binary
//! cannot be downloaded in CI), installed through the `k3s_binary` role's air-gapped local-file
//! path. To run the same test with a REAL k3s binary:
//!
//! ```sh
//! EM_INFRA_TEST_K3S_BINARY=/path/to/k3s EM_INFRA_TEST_K3S_SHA256=$(sha256sum /path/to/k3s | cut -d' ' -f1) \
//!   EM_INFRA_TEST_LAB_NSPAWN_ARGS="--capability=all" cargo test -p em-infra --test ansible_lab -- --nocapture
//! ```
//!
//! (whether real k3s runs inside these containers depends on the machine: it needs cgroups,
//! /dev/kmsg and overlayfs inside the container; untested here).
//!
//! Needs root (netns, overlayfs, systemd-nspawn), `terraform` on PATH and Ansible in
//! `EM_INFRA_ANSIBLE_BIN_DIR` (default `<repo>/.venv/bin`). Without them it skips with a message,
//! except under `CI=true`, where it fails.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use testlab::{Lab, LabSpec};

use crate::{k3s_leftovers, support};
use support::{k3s_binary, on_path, repo_root, sha256_of, skip_or_fail as skip};

const HOSTS: [(&str, Ipv4Addr); 3] = [
    ("lab-cp-1", Ipv4Addr::new(10, 231, 0, 11)),
    ("lab-worker-1", Ipv4Addr::new(10, 231, 0, 21)),
    ("lab-worker-2", Ipv4Addr::new(10, 231, 0, 22)),
];

fn ansible_bin_dir() -> PathBuf {
    std::env::var_os("EM_INFRA_ANSIBLE_BIN_DIR")
        .map_or_else(|| repo_root().join(".venv/bin"), PathBuf::from)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".terraform" || name.to_string_lossy().starts_with("terraform.tfstate") {
            continue;
        }
        let target = to.join(&name);
        // fs::metadata follows symlinks (variables.tf is one), so the copy holds real files.
        if fs::metadata(entry.path()).unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `terraform apply` of the offline fixture in a copy that keeps the repository layout
/// (relative module paths); returns the state file.
fn apply_offline_fixture(tmp: &Path) -> PathBuf {
    let repo = repo_root();
    let env_dir = tmp.join("repo/tests/fixtures/offline-env");
    copy_tree(&repo.join("tests/fixtures/offline-env"), &env_dir);
    copy_tree(
        &repo.join("terraform/modules"),
        &tmp.join("repo/terraform/modules"),
    );
    for args in [
        &["init", "-input=false", "-no-color"][..],
        &["apply", "-auto-approve", "-input=false", "-no-color"][..],
    ] {
        run_ok(
            Command::new("terraform")
                .arg(format!("-chdir={}", env_dir.display()))
                .args(args)
                .env("TF_IN_AUTOMATION", "1"),
        );
    }
    env_dir.join("terraform.tfstate")
}

const MIRROR_PORT: u16 = 18080;

/// The k3s release architecture of this machine (and of the lab hosts).
fn arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    }
}

/// An images archive stand-in (random bytes under the release's name; the stand-in imports
/// nothing, it records which archives k3s would import).
fn images_archive(tmp: &Path) -> (PathBuf, String) {
    use std::io::Read;
    let dir = tmp.join("airgap");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("k3s-airgap-images-{}.tar.zst", arch()));
    let mut bytes = vec![0u8; 256 * 1024];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    fs::write(&path, &bytes).unwrap();
    let sha = sha256_of(&path);
    (path, sha)
}

/// Serves `<version>/<asset>` and `<version>/sha256sum-<arch>.txt` the way GitHub's release
/// downloads are laid out, from the controller namespace (a process this test owns and kills).
fn start_release_mirror(
    lab: &Lab,
    tmp: &Path,
    bin: &Path,
    sha: &str,
    images: (&Path, &str),
    version: &str,
) -> std::process::Child {
    let arch = arch();
    let asset = if arch == "amd64" {
        "k3s".to_string()
    } else {
        format!("k3s-{arch}")
    };
    let dir = tmp.join("releases").join(version);
    fs::create_dir_all(&dir).unwrap();
    fs::copy(bin, dir.join(&asset)).unwrap();
    fs::copy(
        images.0,
        dir.join(format!("k3s-airgap-images-{arch}.tar.zst")),
    )
    .unwrap();
    fs::write(
        dir.join(format!("sha256sum-{arch}.txt")),
        format!(
            "{}  k3s-airgap-images-{arch}.tar.zst\n{sha}  {asset}\n",
            images.1
        ),
    )
    .unwrap();
    let child = lab
        .command("python3")
        .args(["-m", "http.server", &MIRROR_PORT.to_string(), "--bind"])
        .arg(lab.controller_addr().to_string())
        .arg("--directory")
        .arg(tmp.join("releases"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the release mirror");
    let probe = format!(
        "import socket; socket.create_connection(('{}', {MIRROR_PORT}), 1)",
        lab.controller_addr()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !run(lab.command("python3").args(["-c", &probe]))
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the release mirror did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

/// The stand-in built as if it were another k3s release (for the upgrade-by-rerun check).
fn standin_as_version(tmp: &Path, version: &str) -> (PathBuf, String) {
    let repo = repo_root();
    let target = repo.join("target/ansible-lab-standin-upgrade");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_ok(
        Command::new(cargo)
            .current_dir(&repo)
            .args(["build", "--quiet", "-p", "k3s-standin", "--target-dir"])
            .arg(&target)
            .env("K3S_STANDIN_VERSION", version),
    );
    let bin = tmp.join("k3s-upgrade");
    fs::copy(target.join("debug/k3s-standin"), &bin).unwrap();
    let sha = sha256_of(&bin);
    (bin, sha)
}

/// `k3s version v1.33.5+k3s1 (...)` → `v1.33.5+k3s1`: post_checks compares every node's
/// kubeletVersion with k3s_version, so the run pins the version the binary reports.
fn k3s_version_of(bin: &Path) -> String {
    let out = run_ok(Command::new(bin).arg("--version"));
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    first
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("unexpected `k3s --version` output: {first:?}"))
        .to_string()
}

fn random_token() -> String {
    use std::io::Read;
    let mut buf = [0u8; 32];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Per host: `ok`, `changed`, `unreachable`, `failed`, ... from the PLAY RECAP.
fn recap(output: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut hosts = BTreeMap::new();
    let Some(start) = output.rfind("PLAY RECAP") else {
        return hosts;
    };
    for line in output[start..].lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let counts: BTreeMap<String, u64> = counts
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        hosts.insert(host.trim().to_string(), counts);
    }
    hosts
}

fn recap_lines(output: &str) -> String {
    output.rfind("PLAY RECAP").map_or_else(
        || "(no PLAY RECAP)".to_string(),
        |i| output[i..].trim_end().to_string(),
    )
}

/// ansible-core 2.19's `ansible-inventory --list` may wrap strings as `{"__ansible_unsafe": ...}`.
fn plain(v: &Value) -> &Value {
    v.get("__ansible_unsafe").unwrap_or(v)
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| plain(x).as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    n.sort();
    n
}

struct Harness {
    lab: Lab,
    env: Vec<(String, String)>,
    extra_vars: Vec<String>,
    /// Everything Ansible printed, for the secret scan.
    transcript: String,
}

impl Harness {
    fn ansible(&mut self, program: &str, args: &[&str]) -> (Output, String, Duration) {
        let repo = repo_root();
        let mut cmd = self.lab.command(ansible_bin_dir().join(program));
        cmd.current_dir(&repo)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let started = Instant::now();
        let out = run(&mut cmd);
        let elapsed = started.elapsed();
        let t = text(&out);
        self.transcript.push_str(&t);
        (out, t, elapsed)
    }

    fn playbook(&mut self, playbook: &str) -> (Output, String, Duration) {
        self.playbook_with(playbook, &[])
    }

    /// Like [`Harness::playbook`], with more `-e` values that win over the usual ones.
    fn playbook_with(&mut self, playbook: &str, more: &[&str]) -> (Output, String, Duration) {
        let mut args = vec!["-i", "ansible/inventory/terraform_inventory.yml"];
        let extra: Vec<String> = self.extra_vars.clone();
        for e in extra.iter().map(String::as_str).chain(more.iter().copied()) {
            args.push("-e");
            args.push(e);
        }
        args.push(playbook);
        self.ansible("ansible-playbook", &args)
    }

    fn ssh(&self, host: &str, script: &str) -> Output {
        run(self.lab.ssh(host).arg(script))
    }

    fn ssh_ok(&self, host: &str, script: &str) -> String {
        let out = self.ssh(host, script);
        assert!(out.status.success(), "{host}: {script}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The stand-in's record of what a running k3s saw (`server` or `agent`).
    fn standin_record(&self, host: &str, which: &str) -> Value {
        let raw = self.ssh_ok(
            host,
            &format!("cat /var/lib/rancher/k3s/{which}/standin-runtime.json"),
        );
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{host}: {raw}: {e}"))
    }
}

/// The stand-in (not a real k3s binary) runs on the lab hosts: its records can be read.
fn standin() -> bool {
    std::env::var_os("EM_INFRA_TEST_K3S_BINARY").is_none()
}

/// The k3s unit and the stand-in record of an inventory host.
fn unit_of(host: &str) -> (&'static str, &'static str) {
    if host == "lab-cp-1" {
        ("k3s", "server")
    } else {
        ("k3s-agent", "agent")
    }
}

/// Proxy settings and a registries.yaml reach k3s (its units' EnvironmentFile, k3s' registries
/// path), a rerun changes nothing, and unsetting them removes both files again; each time every
/// node's k3s restarts once.
fn proxy_and_registries(h: &mut Harness) {
    let set = [
        "k3s_http_proxy=http://10.231.0.1:3128",
        "k3s_https_proxy=http://10.231.0.1:3128",
        r#"{"k3s_no_proxy_extra": ["10.231.0.0/24"]}"#,
        r#"{"k3s_binary_registries": {"mirrors": {"docker.io": {"endpoint": ["https://registry.lab:5000"]}}, "configs": {"registry.lab:5000": {"auth": {"username": "lab", "password": "registry-secret-1"}}}}}"#,
    ];
    let (out, with, _) = h.playbook_with("ansible/playbooks/site.yml", &set);
    assert!(
        out.status.success(),
        "proxy + registries run failed:\n{with}"
    );
    for (host, c) in recap(&with) {
        assert_eq!(
            (c["changed"], c["failed"]),
            (3, 0),
            "{host}: env file + registries.yaml + one restart:\n{}",
            recap_lines(&with)
        );
    }
    assert!(
        !with.contains("registry-secret-1"),
        "registry credentials in the output"
    );
    let no_proxy = "NO_PROXY=127.0.0.0/8,localhost,10.231.0.11,10.42.0.0/16,10.43.0.0/16,.svc,.cluster.local,10.231.0.0/24";
    for (name, _) in HOSTS {
        let (unit, which) = unit_of(name);
        let env = h.ssh_ok(
            name,
            &format!(
                "stat -c %a /etc/systemd/system/{unit}.service.env; grep -v '^#' /etc/systemd/system/{unit}.service.env"
            ),
        );
        assert_eq!(
            env,
            format!(
                "600\nHTTP_PROXY=http://10.231.0.1:3128\nHTTPS_PROXY=http://10.231.0.1:3128\n{no_proxy}\n"
            ),
            "{name}"
        );
        let reg = h.ssh_ok(
            name,
            "stat -c %a /etc/rancher/k3s/registries.yaml; cat /etc/rancher/k3s/registries.yaml",
        );
        assert!(
            reg.starts_with("600\n# Written by em-infra")
                && reg.contains("https://registry.lab:5000")
                && reg.contains("password: registry-secret-1"),
            "{name}: {reg}"
        );
        if standin() {
            let record = h.standin_record(name, which);
            assert_eq!(
                record["proxyEnv"]["HTTP_PROXY"], "http://10.231.0.1:3128",
                "{name}: {record:#}"
            );
            assert_eq!(
                record["proxyEnv"]["NO_PROXY"],
                no_proxy.trim_start_matches("NO_PROXY="),
                "{name}"
            );
            assert_eq!(record["registries"], true, "{name}: {record:#}");
        }
    }
    let (out, again, _) = h.playbook_with("ansible/playbooks/site.yml", &set);
    assert!(out.status.success(), "{again}");
    for (host, c) in recap(&again) {
        assert_eq!(c["changed"], 0, "{host}:\n{}", recap_lines(&again));
    }
    let (out, unset, _) = h.playbook("ansible/playbooks/site.yml");
    assert!(out.status.success(), "{unset}");
    for (host, c) in recap(&unset) {
        assert_eq!(
            c["changed"],
            3,
            "{host}: both files removed, one restart:\n{}",
            recap_lines(&unset)
        );
    }
    for (name, _) in HOSTS {
        let (unit, which) = unit_of(name);
        h.ssh_ok(
            name,
            &format!(
                "test ! -e /etc/systemd/system/{unit}.service.env && test ! -e /etc/rancher/k3s/registries.yaml"
            ),
        );
        if standin() {
            let record = h.standin_record(name, which);
            assert_eq!(record["proxyEnv"], serde_json::json!({}), "{name}");
        }
    }
}

#[test]
fn site_converges_reruns_with_no_changes_and_resets_cleanly() {
    if !testlab::require_root_or_skip() {
        return;
    }
    if !on_path("terraform") {
        return skip("terraform is not on PATH");
    }
    if !ansible_bin_dir().join("ansible-playbook").is_file() {
        return skip(&format!(
            "no ansible-playbook in {} (set EM_INFRA_ANSIBLE_BIN_DIR)",
            ansible_bin_dir().display()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("em-ansible-lab-")
        .tempdir()
        .unwrap();
    let tmp_path = tmp.path().to_path_buf();
    let state = apply_offline_fixture(&tmp_path);
    let (k3s_bin, k3s_sha) = k3s_binary(&tmp_path);
    let k3s_version = k3s_version_of(&k3s_bin);
    let (images, images_sha) = images_archive(&tmp_path);

    // em-infra's environment directory: 0700 with a 0600 token, as `em-infra up` creates it.
    let env_dir = tmp_path.join("env");
    fs::create_dir(&env_dir).unwrap();
    fs::set_permissions(&env_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let token = random_token();
    let token_file = env_dir.join("k3s-token");
    fs::write(&token_file, format!("{token}\n")).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();

    let mut spec = LabSpec::new(tmp_path.join("lab"));
    for (name, addr) in HOSTS {
        spec = spec.host(name, addr);
    }
    if let Ok(args) = std::env::var("EM_INFRA_TEST_LAB_NSPAWN_ARGS") {
        spec.nspawn_args = args.split_whitespace().map(str::to_string).collect();
    }
    spec.extra_packages = k3s_leftovers::EXTRA_PACKAGES.map(str::to_string).to_vec();
    let t_lab = Instant::now();
    let lab = Lab::up(spec).expect("lab up");
    eprintln!("lab up in {:.1?}", t_lab.elapsed());
    let private_key = fs::read_to_string(lab.private_key()).unwrap();

    let mut env = lab.ansible_env();
    env.extend([
        (
            "EM_INFRA_ENV_DIR".to_string(),
            env_dir.display().to_string(),
        ),
        (
            "EM_INFRA_BIN".to_string(),
            assert_cmd::cargo::cargo_bin("em-infra")
                .display()
                .to_string(),
        ),
        ("EM_INFRA_TFSTATE".to_string(), state.display().to_string()),
        ("ANSIBLE_NOCOLOR".to_string(), "1".to_string()),
        (
            "ANSIBLE_LOCAL_TEMP".to_string(),
            tmp_path.join("ansible-tmp").display().to_string(),
        ),
    ]);
    let mut h = Harness {
        lab,
        env,
        // The first runs use the role's download path against a release mirror in the lab
        // (get_url + the release's sha256sum file, for the binary and the images archive);
        // later steps use the air-gapped path.
        extra_vars: vec![
            format!(
                "k3s_binary_release_url=http://{}:{MIRROR_PORT}",
                Ipv4Addr::new(10, 231, 0, 1)
            ),
            format!("k3s_version={k3s_version}"),
            "k3s_binary_images_download=true".to_string(),
        ],
        transcript: String::new(),
    };
    assert_eq!(h.lab.controller_addr(), Ipv4Addr::new(10, 231, 0, 1));
    let mut mirror = start_release_mirror(
        &h.lab,
        &tmp_path,
        &k3s_bin,
        &k3s_sha,
        (&images, &images_sha),
        &k3s_version,
    );
    let local_path = [
        format!("k3s_binary_local_path={}", k3s_bin.display()),
        format!("k3s_binary_sha256={k3s_sha}"),
    ];
    let local_images = [
        format!("k3s_binary_images_local_path={}", images.display()),
        format!("k3s_binary_images_sha256={images_sha}"),
    ];

    // 1. The canonical inventory config, through the em_infra_state plugin and em-infra.
    let (out, inv_text, _) = h.ansible(
        "ansible-inventory",
        &["-i", "ansible/inventory/terraform_inventory.yml", "--list"],
    );
    assert!(
        out.status.success(),
        "ansible-inventory failed:\n{inv_text}"
    );
    let inv: Value = serde_json::from_slice(&out.stdout).expect("ansible-inventory prints JSON");
    assert_eq!(
        names(&inv["k3s_cluster"]["children"]),
        ["control_plane", "k3s_agents"],
        "{inv:#}"
    );
    assert!(
        names(&inv["k3s_agents"]["children"]).contains(&"workers".to_string()),
        "{inv:#}"
    );
    assert_eq!(names(&inv["control_plane"]["hosts"]), ["lab-cp-1"]);
    assert_eq!(
        names(&inv["workers"]["hosts"]),
        ["lab-worker-1", "lab-worker-2"]
    );
    for (name, addr) in HOSTS {
        let vars = &inv["_meta"]["hostvars"][name];
        assert_eq!(
            plain(&vars["ansible_host"]),
            &Value::from(addr.to_string()),
            "{name}: {vars:#}"
        );
        assert_eq!(plain(&vars["ansible_user"]), &Value::from("root"), "{name}");
        assert_eq!(
            plain(&vars["em_cluster_name"]),
            &Value::from("lab"),
            "{name}"
        );
    }
    assert_eq!(
        plain(&inv["_meta"]["hostvars"]["lab-cp-1"]["em_role"]),
        &Value::from("control_plane")
    );
    assert_eq!(
        plain(&inv["_meta"]["hostvars"]["lab-worker-1"]["em_role"]),
        &Value::from("worker")
    );

    // 2a. A binary whose checksum does not match is refused before anything is installed.
    let wrong = format!("k3s_binary_sha256={}", "0".repeat(64));
    let (out, refused, _) = h.playbook_with(
        "ansible/playbooks/control-plane.yml",
        &[&local_path[0], &wrong],
    );
    assert!(
        !out.status.success(),
        "a wrong k3s_binary_sha256 must fail:\n{refused}"
    );
    assert!(
        refused.contains("Refusing to install an unverified binary"),
        "{refused}"
    );
    let out = h.ssh(
        "lab-cp-1",
        "test ! -e /usr/local/bin/k3s && test ! -e /etc/rancher/k3s/config.yaml",
    );
    assert!(
        out.status.success(),
        "nothing may be installed after a refused binary"
    );
    // 2b. So is an images archive whose checksum does not match, before the binary goes in.
    let wrong_images = format!("k3s_binary_images_sha256={}", "1".repeat(64));
    let (out, refused, _) = h.playbook_with(
        "ansible/playbooks/control-plane.yml",
        &[
            &local_path[0],
            &local_path[1],
            &local_images[0],
            &wrong_images,
            "k3s_binary_images_download=false",
        ],
    );
    assert!(
        !out.status.success(),
        "a wrong k3s_binary_images_sha256 must fail:\n{refused}"
    );
    assert!(
        refused.contains(&format!(
            "has SHA-256 {images_sha}, expected k3s_binary_images_sha256 = {}",
            "1".repeat(64)
        )) && refused.contains("Refusing to install unverified air-gap images"),
        "{refused}"
    );
    let out = h.ssh(
        "lab-cp-1",
        "test ! -e /usr/local/bin/k3s && test ! -e /var/lib/rancher/k3s/agent/images",
    );
    assert!(
        out.status.success(),
        "nothing may be installed after refused images"
    );

    // 2. First run converges.
    let (out, first, t1) = h.playbook("ansible/playbooks/site.yml");
    assert!(
        out.status.success(),
        "site.yml (first run) failed:\n{first}"
    );
    let r1 = recap(&first);
    assert_eq!(r1.len(), HOSTS.len(), "{}", recap_lines(&first));
    for (host, c) in &r1 {
        assert_eq!(
            (c["failed"], c["unreachable"]),
            (0, 0),
            "first run, {host}:\n{}",
            recap_lines(&first)
        );
        assert!(
            c["changed"] > 0,
            "first run changed nothing on {host}?\n{}",
            recap_lines(&first)
        );
    }

    // 3. Second run: nothing to do on any host (no restart, no rewrite, no kubeconfig churn).
    let (out, second, t2) = h.playbook("ansible/playbooks/site.yml");
    assert!(
        out.status.success(),
        "site.yml (second run) failed:\n{second}"
    );
    let r2 = recap(&second);
    assert_eq!(r2.len(), HOSTS.len(), "{}", recap_lines(&second));
    for (host, c) in &r2 {
        assert_eq!(
            (c["changed"], c["failed"], c["unreachable"]),
            (0, 0, 0),
            "second run must change nothing on {host}:\n{}",
            recap_lines(&second)
        );
    }
    eprintln!(
        "site.yml first run {:.1?}, rerun {:.1?}\n{}\n{}",
        t1,
        t2,
        recap_lines(&first),
        recap_lines(&second)
    );

    assert!(
        first.contains("Download the pinned k3s release")
            && !first.contains("Copy the k3s binary when its content differs\nchanged"),
        "the first runs must use the download path:\n{first}"
    );

    // 2c. Every node runs a Type=notify unit (active = k3s said it is up); agents joined with
    //     the server's full token, whose CA hash pins the server; the images archive came from
    //     the mirror, checked against the release's sha256sum file, onto every node.
    let full_token = h
        .ssh_ok("lab-cp-1", "cat /var/lib/rancher/k3s/server/token")
        .trim()
        .to_string();
    let ca = h.ssh_ok(
        "lab-cp-1",
        "sha256sum /var/lib/rancher/k3s/server/tls/server-ca.crt | cut -d' ' -f1",
    );
    if standin() {
        assert_eq!(
            full_token,
            format!("K10{}::server:{token}", ca.trim()),
            "the server's full token"
        );
    }
    let images_name = format!("k3s-airgap-images-{}.tar.zst", arch());
    for (name, _) in HOSTS {
        let (unit, which) = unit_of(name);
        assert_eq!(
            h.ssh_ok(name, &format!("systemctl show -P Type {unit}")),
            "notify\n",
            "{name}"
        );
        assert_eq!(
            h.ssh_ok(
                name,
                &format!(
                    "sha256sum /var/lib/rancher/k3s/agent/images/{images_name} | cut -d' ' -f1"
                )
            )
            .trim(),
            images_sha,
            "{name}: the air-gap images archive"
        );
        if which == "agent" {
            let out = h.ssh(
                name,
                &format!("grep -qxF 'token: \"{full_token}\"' /etc/rancher/k3s/config.yaml"),
            );
            assert!(out.status.success(), "{name} joins with the full token");
        }
        if standin() {
            let record = h.standin_record(name, which);
            assert_eq!(
                record["images"],
                serde_json::json!([images_name]),
                "{name}: {record:#}"
            );
            if which == "agent" {
                assert_eq!(record["caHashVerified"], true, "{name}: {record:#}");
                assert_eq!(record["tokenSource"], "config", "{name}: {record:#}");
            }
        }
    }
    let _ = mirror.kill();
    let _ = mirror.wait();

    // 3a. Switching to the air-gapped path with the same binary and images changes nothing.
    h.extra_vars = vec![
        local_path[0].clone(),
        local_path[1].clone(),
        local_images[0].clone(),
        local_images[1].clone(),
        format!("k3s_version={k3s_version}"),
    ];
    let (out, airgap, _) = h.playbook("ansible/playbooks/site.yml");
    assert!(out.status.success(), "air-gapped rerun failed:\n{airgap}");
    for (host, c) in recap(&airgap) {
        assert_eq!(
            c["changed"],
            0,
            "same binary, other source, on {host}:\n{}",
            recap_lines(&airgap)
        );
    }

    // 3a'. Agents never take a short token: one in k3s_agent_extra_config is refused before
    //      anything changes.
    let (out, short, _) = h.playbook_with(
        "ansible/playbooks/workers.yml",
        &[r#"{"k3s_agent_extra_config": {"token": "shorttoken0123456789"}}"#],
    );
    assert!(
        !out.status.success(),
        "a short agent token must fail:\n{short}"
    );
    assert!(
        short.contains("k3s_agent_extra_config sets token")
            && short.contains("a short token would skip that check"),
        "{short}"
    );
    for (host, c) in recap(&short) {
        assert_eq!(c["changed"], 0, "{host}:\n{}", recap_lines(&short));
    }

    proxy_and_registries(&mut h);

    // 3b. Upgrade by rerun (stand-in only): a new binary and k3s_version replace the file and
    //     restart each node's k3s exactly once (changed = binary + handler), and post-checks see
    //     the new kubeletVersion everywhere.
    if std::env::var_os("EM_INFRA_TEST_K3S_BINARY").is_none() {
        let (new_bin, new_sha) = standin_as_version(&tmp_path, "v1.99.0+k3s1");
        let upgrade = [
            format!("k3s_binary_local_path={}", new_bin.display()),
            format!("k3s_binary_sha256={new_sha}"),
            "k3s_version=v1.99.0+k3s1".to_string(),
            local_images[0].clone(),
            local_images[1].clone(),
        ];
        h.extra_vars = upgrade.to_vec();
        let (out, upgraded, t_up) = h.playbook("ansible/playbooks/site.yml");
        assert!(out.status.success(), "upgrade run failed:\n{upgraded}");
        for (host, c) in recap(&upgraded) {
            assert_eq!(
                (c["changed"], c["failed"]),
                (2, 0),
                "upgrade on {host}: binary + one restart:\n{}",
                recap_lines(&upgraded)
            );
        }
        eprintln!("upgrade run {t_up:.1?}\n{}", recap_lines(&upgraded));
    }

    // 3c. One agent reset and rejoined (as a recreated VM would): its old node object is deleted
    //     first (k3s would refuse the new node password), nothing else changes. Before, the
    //     agent gets what a real k3s node leaves behind (interfaces, netns, mounts, iptables and
    //     nftables rules, a shim with a child) next to the user's own kubectl, link, rule and
    //     table: the reset removes k3s' and keeps the user's, and the host rejoins to Ready.
    k3s_leftovers::leave(&h.lab, "lab-worker-2");
    let (out, one, _) = h.ansible(
        "ansible-playbook",
        &[
            "-i",
            "ansible/inventory/terraform_inventory.yml",
            "--limit",
            "lab-worker-2",
            "ansible/playbooks/reset.yml",
        ],
    );
    assert!(
        out.status.success(),
        "reset.yml --limit lab-worker-2 failed:\n{one}"
    );
    let out = h.ssh("lab-worker-2", "test ! -e /etc/rancher/node/password");
    assert!(out.status.success(), "reset removes the node password");
    k3s_leftovers::assert_cleaned(&h.lab, "lab-worker-2");
    let (out, rejoin, _) = h.playbook("ansible/playbooks/site.yml");
    assert!(out.status.success(), "rejoin run failed:\n{rejoin}");
    let r = recap(&rejoin);
    assert!(r["lab-worker-2"]["changed"] > 0, "{}", recap_lines(&rejoin));
    for host in ["lab-cp-1", "lab-worker-1"] {
        assert_eq!(
            r[host]["changed"],
            0,
            "rejoining lab-worker-2 must not touch {host}:\n{}",
            recap_lines(&rejoin)
        );
    }
    assert!(rejoin.contains("Delete a stale node object"), "{rejoin}");
    assert!(
        env_dir.join("kubeconfig").exists(),
        "resetting one agent keeps the kubeconfig"
    );

    // 4. The kubeconfig on the controller: 0600, points at the control plane, named after the
    //    cluster, and works (the k3s binary's kubectl from the controller namespace).
    let kubeconfig = env_dir.join("kubeconfig");
    let meta = fs::metadata(&kubeconfig).expect("site.yml writes <env>/kubeconfig");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let kc = fs::read_to_string(&kubeconfig).unwrap();
    assert!(kc.contains("server: https://10.231.0.11:6443"), "{kc}");
    assert!(kc.contains("current-context: lab"), "{kc}");
    assert!(
        !kc.contains("127.0.0.1") && !kc.contains("name: default"),
        "{kc}"
    );
    let out = run(h
        .lab
        .command(&k3s_bin)
        .args(["kubectl", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["get", "nodes", "-o", "json"]));
    assert!(
        out.status.success(),
        "kubectl with the fetched kubeconfig failed:\n{}",
        text(&out)
    );
    let nodes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut node_names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    node_names.sort_unstable();
    assert_eq!(node_names, ["lab-cp-1", "lab-worker-1", "lab-worker-2"]);
    for n in nodes["items"].as_array().unwrap() {
        let labels = &n["metadata"]["labels"];
        let want = if n["metadata"]["name"] == "lab-cp-1" {
            "control-plane"
        } else {
            "worker"
        };
        assert_eq!(labels["em-infra/role"], want, "{n:#}");
    }
    // Config and token on the nodes are private.
    let out = h.ssh("lab-worker-1", "stat -c %a /etc/rancher/k3s/config.yaml");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "600",
        "{}",
        text(&out)
    );

    // 4b. An agent that cannot reach the API fails fast with the server's journal, not a hang.
    let out = h.ssh("lab-cp-1", "systemctl stop k3s");
    assert!(out.status.success(), "{}", text(&out));
    let started = Instant::now();
    let (out, unreachable, _) = h.playbook_with(
        "ansible/playbooks/workers.yml",
        &["preflight_api_timeout=3"],
    );
    assert!(
        !out.status.success(),
        "workers.yml must fail while the server is down:\n{unreachable}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the API check must fail fast, took {:.1?}",
        started.elapsed()
    );
    assert!(
        unreachable.contains("cannot reach the Kubernetes API at 10.231.0.11:6443")
            && unreachable.contains("firewall")
            && unreachable.contains("journalctl -u k3s"),
        "{unreachable}"
    );
    let out = h.ssh("lab-cp-1", "systemctl start k3s");
    assert!(out.status.success(), "{}", text(&out));

    // 5. reset.yml removes k3s everywhere (and the stale kubeconfig); a second reset is a no-op.
    let (out, reset, t_reset) = h.playbook("ansible/playbooks/reset.yml");
    assert!(out.status.success(), "reset.yml failed:\n{reset}");
    let (out, reset2, _) = h.playbook("ansible/playbooks/reset.yml");
    assert!(
        out.status.success(),
        "reset.yml (second run) failed:\n{reset2}"
    );
    for (host, c) in recap(&reset2) {
        assert_eq!(
            (c["changed"], c["failed"]),
            (0, 0),
            "second reset on {host}:\n{}",
            recap_lines(&reset2)
        );
    }
    eprintln!("reset.yml {t_reset:.1?}\n{}", recap_lines(&reset));
    for (name, _) in HOSTS {
        let out = h.ssh(
            name,
            "for p in /usr/local/bin/k3s /etc/rancher/k3s /etc/rancher/node /var/lib/rancher/k3s \
             /etc/systemd/system/k3s.service /etc/systemd/system/k3s-agent.service; do \
             [ -e $p ] && echo LEFT $p; done; pgrep -x k3s && echo LEFT process; true",
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            !text(&out).contains("LEFT"),
            "{name} after reset:\n{}",
            text(&out)
        );
    }
    assert!(
        !kubeconfig.exists(),
        "reset.yml removes the controller's kubeconfig"
    );
    assert!(token_file.exists(), "reset.yml keeps the token");

    // 6. Lab down, nothing left behind.
    h.lab.down().expect("lab down");
    let left = h.lab.leftovers();
    assert!(left.is_empty(), "lab leftovers: {left:?}");

    // 7. No secret in anything Ansible printed.
    assert!(
        !h.transcript.contains(&token),
        "the k3s token leaked into Ansible's output"
    );
    for line in private_key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(
            !h.transcript.contains(line),
            "the lab's private key leaked into Ansible's output"
        );
    }
}

/// The controller-side preflight needs no lab (nothing connects to a host before it), so it runs
/// without root: a missing, open or unusable token file stops the run with the fix in the message.
#[test]
fn preflight_explains_token_and_reachability_failures_and_stops_the_run() {
    let ansible = ansible_bin_dir().join("ansible-playbook");
    if !ansible.is_file() {
        return skip(&format!(
            "no ansible-playbook in {} (set EM_INFRA_ANSIBLE_BIN_DIR)",
            ansible_bin_dir().display()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("em-preflight-")
        .tempdir()
        .unwrap();
    // TEST-NET-1 addresses: nothing may try to reach them before the token check fails.
    let inventory = tmp.path().join("hosts.yml");
    fs::write(
        &inventory,
        "all:\n  children:\n    k3s_cluster:\n      vars:\n        em_cluster_name: t\n      children:\n\
         \x20       control_plane:\n          hosts:\n            t-cp-1: {ansible_host: 192.0.2.11, em_role: control_plane}\n\
         \x20       k3s_agents:\n          children:\n            workers:\n              hosts:\n\
         \x20               t-worker-1: {ansible_host: 192.0.2.21, em_role: worker}\n",
    )
    .unwrap();
    let env_dir = tmp.path().join("env");
    fs::create_dir(&env_dir).unwrap();
    let token_file = env_dir.join("k3s-token");
    let preflight = |case: &str| {
        let out = run(Command::new(&ansible)
            .current_dir(repo_root())
            .arg("-i")
            .arg(&inventory)
            .arg("ansible/playbooks/preflight.yml")
            .env("EM_INFRA_ENV_DIR", &env_dir)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", tmp.path().join("ansible-tmp")));
        assert!(
            !out.status.success(),
            "{case}: preflight must fail:\n{}",
            text(&out)
        );
        let t = text(&out);
        assert!(
            !t.contains("192.0.2."),
            "{case}: nothing may connect before the token check:\n{t}"
        );
        t
    };

    let t = preflight("missing token file");
    assert!(t.contains(&token_file.display().to_string()), "{t}");
    assert!(t.contains("em-infra up --only configure"), "{t}");
    assert!(t.contains("umask 077; openssl rand -hex 32 >"), "{t}");

    let secret = random_token();
    fs::write(&token_file, format!("{secret}\n")).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o644)).unwrap();
    let t = preflight("token readable by others");
    assert!(
        t.contains(&format!("chmod 600 {}", token_file.display())),
        "{t}"
    );

    fs::write(&token_file, "short\n").unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    let t = preflight("unusable token");
    assert!(t.contains("at least 16 characters"), "{t}");
    assert!(!t.contains("short\n") && !t.contains(&secret), "{t}");

    // A good token, but nodes nobody can reach: each gets an explanation, then the run stops.
    fs::write(&token_file, format!("{secret}\n")).unwrap();
    let out = run(Command::new(&ansible)
        .current_dir(repo_root())
        .arg("-i")
        .arg(&inventory)
        .arg("ansible/playbooks/site.yml")
        // Bounded like the SSH timeouts below: these nodes never answer.
        .args(["-e", "wait_for_ssh_timeout=5"])
        .env("EM_INFRA_ENV_DIR", &env_dir)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_TIMEOUT", "3")
        .env(
            "ANSIBLE_SSH_ARGS",
            "-o ControlMaster=no -o BatchMode=yes -o ConnectTimeout=3",
        )
        .env("ANSIBLE_LOCAL_TEMP", tmp.path().join("ansible-tmp")));
    let t = text(&out);
    assert!(
        !out.status.success(),
        "unreachable nodes must fail preflight:\n{t}"
    );
    for host in ["t-cp-1 (192.0.2.11)", "t-worker-1 (192.0.2.21)"] {
        assert!(
            t.contains(&format!("{host} is not reachable over SSH")),
            "{host}:\n{t}"
        );
    }
    assert!(t.contains("Causes: the VM is not running"), "{t}");
    assert!(
        !t.contains("PLAY [Control plane"),
        "site.yml must stop after preflight:\n{t}"
    );
    assert!(!t.contains(&secret), "{t}");
}

/// Every apt task of every role waits for the dpkg lock instead of failing at once: a fresh clone's
/// cloud-init, unattended-upgrades or the Proxmox host's own apt jobs may hold it (the apt module's
/// default `lock_timeout` is 60 s). The lab tests in `gpu_lab` prove the wait itself; this keeps a new
/// apt task from leaving it out.
#[test]
fn every_apt_task_waits_for_the_dpkg_lock() {
    let mut apt_tasks = 0;
    let mut missing = Vec::new();
    let roles = repo_root().join("ansible/roles");
    for role in fs::read_dir(&roles).unwrap() {
        let tasks = role.unwrap().path().join("tasks");
        let Ok(files) = fs::read_dir(&tasks) else {
            continue;
        };
        for file in files {
            let path = file.unwrap().path();
            let text = fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.trim() != "ansible.builtin.apt:" {
                    continue;
                }
                apt_tasks += 1;
                let indent = line.len() - line.trim_start().len();
                // The module's arguments: the lines indented deeper than the module key.
                let args = lines[i + 1..]
                    .iter()
                    .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent);
                if !args
                    .clone()
                    .any(|l| l.trim_start().starts_with("lock_timeout:"))
                {
                    missing.push(format!("{}:{}", path.display(), i + 1));
                }
            }
        }
    }
    assert!(
        apt_tasks >= 3,
        "found only {apt_tasks} apt tasks under {}",
        roles.display()
    );
    assert!(
        missing.is_empty(),
        "apt tasks without lock_timeout: {missing:#?}"
    );
}
