//! Shared test support: a throwaway repository around the offline fixture environment, and
//! helpers to run the real `em-infra` binary against it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub(crate) const ENV: &str = "offline-env";

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (with a message) on a workstation; fail in CI, where every tool must be present.
pub(crate) fn skip_or_fail(why: &str) {
    assert!(!in_ci(), "CI=true but {why}");
    eprintln!("SKIPPED: {why}");
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// True when `terraform` runs here; skips (prints why) otherwise, and fails under CI.
pub(crate) fn terraform_available() -> bool {
    let ok = Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!in_ci(), "terraform is required in CI");
        eprintln!("skipping: terraform is not on PATH");
    }
    ok
}

/// A throwaway repository: the real `terraform/`, `ansible/`, `ansible.cfg` and `.venv`
/// (symlinked), a copy of the offline fixture environment, and em-infra's state inside it.
pub(crate) struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub(crate) fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        let r = dir.path();
        for link in ["terraform", "ansible", "ansible.cfg", ".venv"] {
            if root.join(link).exists() {
                std::os::unix::fs::symlink(root.join(link), r.join(link)).unwrap();
            }
        }
        let fixture = r.join("tests/fixtures").join(ENV);
        fs::create_dir_all(&fixture).unwrap();
        for entry in fs::read_dir(root.join("tests/fixtures").join(ENV)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let target = fixture.join(&name);
            if entry.file_type().unwrap().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), target).unwrap();
            } else if name != ".terraform"
                && !name.to_string_lossy().starts_with("terraform.tfstate")
            {
                fs::copy(entry.path(), target).unwrap();
            }
        }
        fs::create_dir_all(r.join("home")).unwrap();
        Repo { dir }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn env_dir(&self) -> PathBuf {
        self.root().join("tests/fixtures").join(ENV)
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.root().join(".em-infra").join(ENV)
    }

    /// Write an executable file under the repository (a test double, a vars file's helper…).
    pub(crate) fn write_executable(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Environment for an em-infra run against this repository.
    pub(crate) fn configure(&self, cmd: &mut Command) {
        cmd.current_dir(self.root())
            .env("EM_INFRA_ROOT", self.root())
            .env("EM_INFRA_ENV", format!("tests/fixtures/{ENV}"))
            .env("HOME", self.root().join("home"))
            .env("NO_COLOR", "1")
            .env_remove("EM_INFRA_STATE_DIR")
            .stdin(Stdio::null());
    }

    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_em-infra"));
        self.configure(&mut cmd);
        cmd
    }

    pub(crate) fn state(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.state_dir().join("state.json")).unwrap())
            .unwrap()
    }

    pub(crate) fn stage_result(&self, stage: &str) -> String {
        self.state()["stages"][stage]["result"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn runs(&self) -> Vec<PathBuf> {
        let mut runs: Vec<PathBuf> = fs::read_dir(self.state_dir().join("runs"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .collect();
        runs.sort();
        runs
    }

    pub(crate) fn last_summary(&self) -> Value {
        let last = self.runs().pop().expect("no runs");
        serde_json::from_str(&fs::read_to_string(last.join("summary.json")).unwrap()).unwrap()
    }

    /// The node names in the Terraform state's `nodes` output, sorted.
    pub(crate) fn tfstate_nodes(&self) -> Vec<String> {
        let text = fs::read_to_string(self.env_dir().join("terraform.tfstate")).unwrap();
        let state: Value = serde_json::from_str(&text).unwrap();
        let mut names: Vec<String> = state["outputs"]["nodes"]["value"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    pub(crate) fn tfstate_serial(&self) -> u64 {
        let text = fs::read_to_string(self.env_dir().join("terraform.tfstate")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["serial"]
            .as_u64()
            .unwrap()
    }
}

/// A bare repository (an empty `terraform/environments/k3s-dev/`) and an em-infra state directory
/// beside it, for commands that need an environment but no Terraform code.
pub(crate) struct BareRepo {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub state: PathBuf,
}

impl BareRepo {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        fs::create_dir_all(root.join("terraform/environments/k3s-dev")).unwrap();
        let state = tmp.path().join("state");
        BareRepo {
            _tmp: tmp,
            root,
            state,
        }
    }

    /// The real binary on this repository and state directory, no colour, no inherited
    /// `EM_INFRA_*` settings.
    pub(crate) fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("em-infra").unwrap();
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--no-color")
            .args(args)
            .env_remove("EM_INFRA_ENV")
            .env_remove("EM_INFRA_ROOT")
            .env_remove("EM_INFRA_STATE_DIR");
        cmd
    }
}

/// A directory that is no em-infra repository (a fresh temporary directory, with no
/// `terraform/environments` at or above it), for the commands that must work anywhere.
pub(crate) struct NotARepo {
    dir: tempfile::TempDir,
}

impl NotARepo {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            !dir.path()
                .ancestors()
                .any(|d| d.join("terraform/environments").is_dir()),
            "{} is inside a repository",
            dir.path().display()
        );
        NotARepo { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The real binary run here, with none of the `EM_INFRA_*` settings that name a repository.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_em-infra"))
            .current_dir(self.path())
            .args(args)
            .env_remove("EM_INFRA_ROOT")
            .env_remove("EM_INFRA_STATE_DIR")
            .env_remove("EM_INFRA_ENV")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Run a prepared command, echoing its stderr (the test's own output shows what happened).
pub(crate) fn run_logged(cmd: &mut Command, label: &str) -> Output {
    let out = cmd.output().unwrap();
    eprintln!(
        "--- {label} → {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Every file under `dir` with its content, skipping anything under `skip`.
pub(crate) fn snapshot(dir: &Path, skip: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.starts_with(skip) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            out.extend(snapshot(&path, skip));
        } else {
            out.push((path.clone(), fs::read(&path).unwrap_or_default()));
        }
    }
    out.sort();
    out
}

// ---- Lab hosts for the fixture environment (tests that need root) ----

/// The fixture's nodes (tests/fixtures/offline-env/terraform.tfvars).
pub(crate) const LAB_NODES: [(&str, &str); 3] = [
    ("lab-cp-1", "10.231.0.11"),
    ("lab-worker-1", "10.231.0.21"),
    ("lab-worker-2", "10.231.0.22"),
];

/// The SHA-256 of a file, as `sha256sum` prints it.
pub(crate) fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Lower-case hex SHA-256 of `data` (k3s' CA hash in join tokens).
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The k3s binary the lab installs and its SHA-256: a real one from `EM_INFRA_TEST_K3S_BINARY`
/// (with `EM_INFRA_TEST_K3S_SHA256`, else computed), else the stand-in — built into a target dir
/// of its own (the outer cargo may hold the main one) and copied into `tmp`, so a test never
/// races a rebuild of the file it installs.
pub(crate) fn k3s_binary(tmp: &Path) -> (PathBuf, String) {
    if let Some(bin) = std::env::var_os("EM_INFRA_TEST_K3S_BINARY").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        let sha = std::env::var("EM_INFRA_TEST_K3S_SHA256").unwrap_or_else(|_| sha256_of(&bin));
        return (bin, sha);
    }
    let repo = repo_root();
    let target = repo.join("target/lab-standin");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(&repo)
        .args(["build", "--quiet", "-p", "k3s-standin", "--target-dir"])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building the k3s stand-in failed");
    let bin = tmp.join("k3s");
    fs::copy(target.join("debug/k3s-standin"), &bin).unwrap();
    let sha = sha256_of(&bin);
    (bin, sha)
}

/// Boot lab hosts with the fixture's names and addresses, and write the Ansible variables that
/// install `k3s_binary()` through the air-gapped path (`<repo>/site-vars.json`).
pub(crate) fn lab_for_fixture(repo: &Repo) -> testlab::Lab {
    lab_with_hosts(repo, &LAB_NODES)
}

/// Boot lab hosts with these names and addresses (e.g. the fixture's nodes plus a worker that a
/// later `scale` creates), and write `<repo>/site-vars.json` as [`lab_for_fixture`] does.
pub(crate) fn lab_with_hosts(repo: &Repo, hosts: &[(&str, &str)]) -> testlab::Lab {
    let mut spec = testlab::LabSpec::new(repo.root().join("lab"));
    for (name, ip) in hosts {
        spec = spec.host(*name, ip.parse().unwrap());
    }
    let (k3s, sha) = k3s_binary(repo.root());
    fs::write(
        repo.root().join("site-vars.json"),
        serde_json::json!({ "k3s_binary_local_path": k3s, "k3s_binary_sha256": sha }).to_string(),
    )
    .unwrap();
    testlab::Lab::up(spec).expect("lab up")
}

/// em-infra inside the lab's controller namespace, with the lab's SSH settings (`ip netns exec`
/// execs it, so the child's pid is em-infra's).
pub(crate) fn em_in_lab_cmd(lab: &testlab::Lab, repo: &Repo, args: &[&str]) -> Command {
    let mut cmd = lab.command(env!("CARGO_BIN_EXE_em-infra"));
    repo.configure(&mut cmd);
    cmd.envs(lab.ansible_env())
        .env(
            "EM_INFRA_ANSIBLE_VARS_FILE",
            repo.root().join("site-vars.json"),
        )
        .args(args);
    if std::env::var_os("EM_INFRA_TEST_K3S_BINARY").is_none() {
        // The stand-in honours k3s's files but serves no Kubernetes API; the API checks are
        // tested against recorded responses in tests/verify.rs.
        cmd.env("EM_INFRA_VERIFY_API", "false");
    }
    cmd
}

/// Run em-infra inside the lab's controller namespace, with the lab's SSH settings.
pub(crate) fn em_in_lab(lab: &testlab::Lab, repo: &Repo, args: &[&str]) -> Output {
    run_logged(
        &mut em_in_lab_cmd(lab, repo, args),
        &format!("em-infra {}", args.join(" ")),
    )
}
