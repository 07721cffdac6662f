//! `em-infra up` / `down` end to end with real `terraform` on the offline fixture environment.
//! Ansible is replaced here by a test double (`fake-ansible-playbook`, on the one boundary em-infra
//! runs it through: `EM_INFRA_ANSIBLE_BIN_DIR`), so failures, interruptions and leaky output can be
//! staged; the real Ansible runs against lab hosts are in `lab_e2e.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use support::{Repo, code, snapshot, stderr, terraform_available};

const FAKE_TOKEN: &str = "root@pam!ci=0f9e8d7c-6b5a-4321-9abc-def012345678";

/// The offline repository with a fake ansible-playbook and a dummy SSH key.
struct Offline {
    repo: Repo,
}

impl std::ops::Deref for Offline {
    type Target = Repo;
    fn deref(&self) -> &Repo {
        &self.repo
    }
}

impl Offline {
    fn new() -> Offline {
        let repo = Repo::new();
        repo.write_executable("fakebin/ansible-playbook", FAKE_ANSIBLE);
        fs::write(repo.root().join("key"), "not a real key\n").unwrap();
        fs::set_permissions(repo.root().join("key"), fs::Permissions::from_mode(0o600)).unwrap();
        let offline = Offline { repo };
        offline.ansible_mode("ok");
        offline
    }

    /// What the fake ansible-playbook does next: `ok`, `fail` or `hang`.
    fn ansible_mode(&self, mode: &str) {
        fs::write(self.root().join("fakebin/mode"), mode).unwrap();
    }

    fn cmd(&self) -> Command {
        let mut cmd = self.repo.cmd();
        cmd.env("EM_INFRA_ANSIBLE_BIN_DIR", self.root().join("fakebin"))
            .env("ANSIBLE_PRIVATE_KEY_FILE", self.root().join("key"))
            .env("PROXMOX_VE_API_TOKEN", FAKE_TOKEN);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        support::run_logged(
            self.cmd().args(args),
            &format!("em-infra {}", args.join(" ")),
        )
    }
}

/// Test double for ansible-playbook: answers `--version` like ansible-core, then behaves as
/// `fakebin/mode` says. It prints the k3s token and the Proxmox token, like a leaky tool might,
/// so the tests can prove em-infra redacts them before writing anything.
const FAKE_ANSIBLE: &str = r#"#!/bin/sh
here=$(dirname "$0")
if [ "$1" = "--version" ]; then echo "ansible-playbook [core 2.19.14]"; exit 0; fi
echo "fake ansible-playbook $*"
echo "token in output: $(cat "$EM_INFRA_ENV_DIR/k3s-token" 2>/dev/null) api: $PROXMOX_VE_API_TOKEN"
case "$(cat "$here/mode")" in
  fail) echo "TASK [k3s_agent : join] fatal: unreachable"; exit 2 ;;
  fail-hosts) printf '%s\n' "TASK [k3s_agent : Join the cluster] ****" \
        'fatal: [lab-worker-1]: FAILED! => {"changed": false, "msg": "join refused"}' \
        'fatal: [lab-worker-2]: UNREACHABLE! => {"msg": "ssh: connect timed out"}' \
        "PLAY RECAP *********" \
        "lab-cp-1 : ok=10 changed=0 unreachable=0 failed=0" \
        "lab-worker-1 : ok=3 changed=0 unreachable=0 failed=1" \
        "lab-worker-2 : ok=0 changed=0 unreachable=1 failed=0"
        exit 2 ;;
  hang) trap 'echo "got SIGINT"; touch "$here/interrupted"; exit 130' INT
        echo $$ > "$here/pid"
        echo "hanging"; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit 0 ;;
esac
printf 'PLAY RECAP *********\nlab-cp-1 : ok=10 changed=0 unreachable=0 failed=0\n'
umask 077; echo "apiVersion: v1" > "$EM_INFRA_ENV_DIR/kubeconfig"
"#;

#[test]
fn provision_applies_once_then_a_rerun_changes_nothing() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    let first = repo.run(&["up", "--to", "provision"]);
    assert_eq!(code(&first), 0);
    assert!(
        stderr(&first).contains("applied: 3 to create"),
        "{}",
        stderr(&first)
    );
    assert_eq!(repo.stage_result("provision"), "succeeded");
    let serial = repo.tfstate_serial();

    let second = repo.run(&["up", "--to", "provision"]);
    assert_eq!(code(&second), 0);
    assert!(
        stderr(&second).contains("no changes"),
        "{}",
        stderr(&second)
    );
    assert_eq!(
        repo.tfstate_serial(),
        serial,
        "a no-op run must not write Terraform state"
    );

    // Growing the cluster applies, and the state is backed up first (0600).
    let tfvars = repo.env_dir().join("terraform.tfvars");
    let text = fs::read_to_string(&tfvars)
        .unwrap()
        .replace("worker_count      = 2", "worker_count      = 3");
    fs::write(&tfvars, text).unwrap();
    let third = repo.run(&["up", "--only", "provision", "--json"]);
    assert_eq!(code(&third), 0);
    let summary: Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(summary["result"], "succeeded");
    assert!(
        summary["stages"][0]["message"]
            .as_str()
            .unwrap()
            .contains("1 to create")
    );
    // Two restore points: after the first apply (the third run's pre-apply copy is identical, so
    // it is not taken again; the no-op run added none) and after the third apply.
    let mut backups: Vec<_> = fs::read_dir(repo.state_dir().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    backups.sort();
    assert_eq!(backups.len(), 2, "{backups:?}");
    for backup in &backups {
        assert_eq!(
            fs::metadata(backup).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        fs::read(backups.last().unwrap()).unwrap(),
        fs::read(repo.env_dir().join("terraform.tfstate")).unwrap(),
        "the newest restore point is the state after the last apply"
    );
    assert_eq!(
        fs::metadata(repo.env_dir().join("terraform.tfstate"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "the environment's state is private"
    );
}

#[test]
fn the_first_apply_leaves_a_restore_point() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    assert_eq!(code(&repo.run(&["up", "--to", "provision"])), 0);
    let list = repo.run(&["state", "list", "--json"]);
    assert_eq!(code(&list), 0);
    let backups: Value = serde_json::from_slice(&list.stdout).unwrap();
    let backups = backups.as_array().unwrap();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(
        backups[0]["id"]
            .as_str()
            .unwrap()
            .contains("-post-apply-serial"),
        "{backups:?}"
    );
}

#[test]
fn a_plan_that_replaces_a_vm_is_refused_without_allow_replace() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    assert_eq!(code(&repo.run(&["up", "--to", "provision"])), 0);
    let serial = repo.tfstate_serial();
    let tfvars = repo.env_dir().join("terraform.tfvars");
    let text = fs::read_to_string(&tfvars)
        .unwrap()
        .replace("vm_id_base        = 9100", "vm_id_base        = 9200");
    fs::write(&tfvars, text).unwrap();

    let refused = repo.run(&["up", "--only", "provision"]);
    assert_eq!(code(&refused), 5);
    let err = stderr(&refused);
    assert!(err.contains("would lose existing resources"), "{err}");
    assert!(
        err.contains("node lab-worker-1") && err.contains("--allow-replace"),
        "{err}"
    );
    assert_eq!(repo.tfstate_serial(), serial, "nothing may be applied");
    assert_eq!(repo.last_summary()["stages"][0]["result"], "refused");
    let plan_summary = repo
        .state_dir()
        .join("runs")
        .join(repo.last_summary()["run_id"].as_str().unwrap())
        .join("plan-summary.txt");
    assert!(
        fs::read_to_string(plan_summary)
            .unwrap()
            .contains("3 to replace")
    );

    let allowed = repo.run(&["up", "--only", "provision", "--allow-replace"]);
    assert_eq!(code(&allowed), 0);
    assert!(repo.tfstate_serial() > serial);
}

#[test]
fn a_failed_stage_is_resumed_without_rerunning_earlier_stages() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    repo.ansible_mode("fail");
    let failed = repo.run(&["up", "--to", "configure"]);
    assert_eq!(code(&failed), 4);
    let err = stderr(&failed);
    assert!(
        err.contains("ansible-playbook site.yml exited with code 2"),
        "{err}"
    );
    assert!(
        err.contains("fatal: unreachable"),
        "the log's tail is shown: {err}"
    );
    assert!(
        err.contains("configure.log"),
        "the log's path is shown: {err}"
    );
    assert_eq!(repo.stage_result("provision"), "succeeded");
    assert_eq!(repo.stage_result("configure"), "failed");

    repo.ansible_mode("ok");
    let resumed = repo.run(&["up", "--resume", "--to", "configure"]);
    assert_eq!(code(&resumed), 0);
    let stages: Vec<String> = repo.last_summary()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stages, ["configure"], "resume starts at the failed stage");
    assert_eq!(repo.stage_result("configure"), "succeeded");

    let nothing = repo.run(&["up", "--resume"]);
    assert_eq!(code(&nothing), 0);
    assert!(stderr(&nothing).contains("nothing to resume"));
}

/// Start `up` with a hanging configure stage and wait until the fake Ansible runs.
#[allow(clippy::zombie_processes)] // the caller signals and waits for the child it gets back
fn start_hanging_up(repo: &Offline) -> std::process::Child {
    repo.ansible_mode("hang");
    let mut child = repo
        .cmd()
        .args(["up", "--to", "configure"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hanging = fs::read_dir(repo.state_dir().join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|run| {
                fs::read_to_string(run.path().join("configure.log"))
                    .is_ok_and(|log| log.contains("hanging"))
            });
        if hanging {
            return child;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("configure never started");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_configure_failure_names_the_failed_hosts_and_tasks_in_its_summary() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    repo.ansible_mode("fail-hosts");
    let failed = repo.run(&["up", "--to", "configure"]);
    assert_eq!(code(&failed), 4);
    let named = "ansible-playbook site.yml exited with code 2: \
                 lab-worker-1 at \"k3s_agent : Join the cluster\"; \
                 lab-worker-2 unreachable at \"k3s_agent : Join the cluster\"";
    assert!(stderr(&failed).contains(named), "{}", stderr(&failed));
    // The one-line record (runs list, state.json) carries it too.
    let configure = repo.last_summary()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "configure")
        .unwrap()
        .clone();
    let first_line = configure["message"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(first_line.contains(named), "{first_line}");
}

#[test]
fn sigint_during_configure_is_recorded_and_resumable() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    let mut child = start_hanging_up(&repo);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        repo.root().join("fakebin/interrupted").exists(),
        "the signal reached the tool"
    );
    assert_eq!(repo.stage_result("configure"), "interrupted");
    assert_eq!(repo.last_summary()["result"], "interrupted");

    repo.ansible_mode("ok");
    let resumed = repo.run(&["up", "--resume", "--to", "configure"]);
    assert_eq!(code(&resumed), 0);
    assert_eq!(repo.last_summary()["stages"].as_array().unwrap().len(), 1);
    assert_eq!(repo.stage_result("configure"), "succeeded");
}

/// Whether `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn sigkill_during_configure_takes_the_tool_along_and_resume_continues_there() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    let mut child = start_hanging_up(&repo);
    let tool: i32 = fs::read_to_string(repo.root().join("fakebin/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(tool));
    // SIGKILL: no handler runs, nothing is recorded at the end.
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    let group = em_infra_core::engine::lock::RunningTool {
        pgid: tool as u32,
        what: "fake ansible-playbook".into(),
    };
    while (alive(tool) || group.is_running()) && killed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let outlived = killed.elapsed();
    assert!(!alive(tool), "the tool outlived em-infra");
    assert!(
        !group.is_running(),
        "a process of the tool's group outlived em-infra"
    );
    assert!(
        outlived < Duration::from_millis(1500),
        "the tool outlived em-infra by {outlived:?}"
    );
    assert_eq!(
        repo.stage_result("configure"),
        "running",
        "the start was written ahead"
    );

    // As documented: clear the dead run's lock and resume; it continues at configure.
    repo.ansible_mode("ok");
    let resumed = repo.run(&["up", "--resume", "--clear-stale-lock", "--to", "configure"]);
    assert_eq!(code(&resumed), 0, "{}", stderr(&resumed));
    let err = stderr(&resumed);
    assert!(err.contains("cleared a stale lock"), "{err}");
    assert!(err.contains("resuming at configure"), "{err}");
    let stages: Vec<String> = repo.last_summary()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stages, ["configure"]);
    assert_eq!(repo.stage_result("configure"), "succeeded");
}

#[test]
fn a_second_up_on_the_same_environment_is_locked_out() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    let mut first = start_hanging_up(&repo);
    let second = repo.run(&["up", "--only", "verify"]);
    assert_eq!(code(&second), 75);
    let err = stderr(&second);
    assert!(
        err.contains(&format!("pid {}", first.id())),
        "the holder is named: {err}"
    );
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    assert_eq!(first.wait().unwrap().code(), Some(130));
}

#[test]
fn a_truncated_state_json_is_reported_not_overwritten() {
    let repo = Offline::new();
    fs::create_dir_all(repo.state_dir()).unwrap();
    let path = repo.state_dir().join("state.json");
    fs::write(&path, "{\"schema\": 1, \"env\": \"offline-env\", \"stag").unwrap();
    let out = repo.run(&["up", "--only", "preflight"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains(&path.display().to_string()) && err.contains("move it aside"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "{\"schema\": 1, \"env\": \"offline-env\", \"stag"
    );
}

#[test]
fn dry_run_shows_nodes_and_commands_and_changes_nothing() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    assert_eq!(code(&repo.run(&["up", "--to", "provision"])), 0);
    let runs = repo.state_dir().join("runs");
    let before = snapshot(repo.root(), &runs);
    let out = repo.run(&["up", "--dry-run"]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    for expected in [
        "lab-cp-1",
        "10.231.0.21",
        "9111",
        "would run: ",
        "ansible-playbook",
        "plan: 0 to create",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    assert_eq!(
        before,
        snapshot(repo.root(), &runs),
        "a dry run changes nothing outside its run log"
    );
    assert_eq!(repo.last_summary()["result"], "dry-run");
}

#[test]
fn no_secret_lands_in_em_infra_files_and_down_clears_everything() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    assert_eq!(code(&repo.run(&["up", "--to", "configure"])), 0);
    let token = fs::read_to_string(repo.state_dir().join("k3s-token"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(
        fs::metadata(repo.state_dir().join("k3s-token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(repo.state_dir()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let secret_part = FAKE_TOKEN.split_once('=').unwrap().1;
    let secret_files = [
        repo.state_dir().join("k3s-token"),
        repo.state_dir().join("kubeconfig"),
    ];
    for (path, content) in snapshot(&repo.root().join(".em-infra"), Path::new("/nonexistent")) {
        if secret_files.contains(&path) {
            continue;
        }
        let text = String::from_utf8_lossy(&content);
        assert!(!text.contains(&token), "k3s token in {}", path.display());
        assert!(
            !text.contains(secret_part),
            "API token in {}",
            path.display()
        );
    }
    let configure_logs: String = fs::read_dir(repo.state_dir().join("runs"))
        .unwrap()
        .filter_map(|r| fs::read_to_string(r.unwrap().path().join("configure.log")).ok())
        .collect();
    assert!(
        configure_logs.contains("token in output: [REDACTED]"),
        "{configure_logs}"
    );

    let down = repo.run(&["down", "--yes"]);
    assert_eq!(code(&down), 0);
    for gone in [
        repo.env_dir().join("terraform.tfstate"),
        repo.state_dir().join("k3s-token"),
        repo.state_dir().join("kubeconfig"),
        repo.state_dir().join("state.json"),
    ] {
        assert!(!gone.exists(), "{} is left behind", gone.display());
    }
    assert!(
        fs::read_dir(repo.state_dir().join("backups"))
            .unwrap()
            .count()
            >= 1,
        "the pre-destroy backup stays"
    );
    assert_eq!(repo.last_summary()["stages"][0]["stage"], "destroy");
}

#[test]
fn down_without_yes_refuses_when_not_interactive() {
    let repo = Offline::new();
    let out = repo.run(&["down"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--yes"));
}

#[test]
fn dry_run_serves_a_newcomer_without_proxmox_or_state() {
    let state = tempfile::tempdir().unwrap();
    let out = support::run_logged(
        Command::new(env!("CARGO_BIN_EXE_em-infra"))
            .current_dir(support::repo_root())
            .args([
                "--state-dir",
                state.path().to_str().unwrap(),
                "up",
                "--dry-run",
            ])
            .env("HOME", state.path())
            .env("NO_COLOR", "1")
            .env_remove("PROXMOX_VE_ENDPOINT")
            .env_remove("PROXMOX_VE_API_TOKEN")
            .env_remove("EM_INFRA_ENV")
            .env_remove("EM_INFRA_ROOT"),
        "em-infra up --dry-run (k3s-dev, example tfvars)",
    );
    assert_eq!(code(&out), 3, "preflight would fail without credentials");
    let err = stderr(&out);
    for expected in [
        "terraform.tfvars.example",
        "k3s-dev-cp-1",
        "k3s-dev-worker-2",
        "PROXMOX_VE_ENDPOINT is not set",
        "would run: terraform -chdir=",
        "would run: (cd ",
        "post-checks.yml",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    assert!(
        !support::repo_root()
            .join("terraform/environments/k3s-dev/.terraform")
            .exists()
    );
}

#[test]
fn reset_destroys_then_brings_the_cluster_up_again() {
    if !terraform_available() {
        return;
    }
    let repo = Offline::new();
    assert_eq!(code(&repo.run(&["up", "--to", "provision"])), 0);
    let out = repo.run(&["reset", "--yes", "--to", "provision"]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.contains("destroyed;"), "{err}");
    assert!(err.contains("applied: 3 to create"), "{err}");
    assert_eq!(repo.stage_result("provision"), "succeeded");
}

impl Offline {
    /// A day-2 command (`scale`, `node replace`, `gpu`) whose verify stage needs no API server.
    fn day2(&self, command: &[&str], args: &[&str]) -> Output {
        let mut cmd = self.cmd();
        cmd.args(command)
            .args(args)
            .env("EM_INFRA_VERIFY_API", "false");
        support::run_logged(
            &mut cmd,
            &format!("em-infra {} {}", command.join(" "), args.join(" ")),
        )
    }
}

/// The offline cluster provisioned (lab-cp-1, lab-worker-1, lab-worker-2) and a Kubernetes API
/// test server holding their Node objects, which the environment's kubeconfig names (set it with
/// `server.kubeconfig` after adding pods).
fn provisioned_with_api() -> (Offline, crate::kube_server::KubeServer) {
    use crate::kube_server::{KubeServer, node};
    let repo = Offline::new();
    assert_eq!(code(&repo.run(&["up", "--to", "provision"])), 0);
    let server = KubeServer::start(vec![
        node("lab-cp-1", "control-plane", "10.231.0.11").json(),
        node("lab-worker-1", "worker", "10.231.0.21").json(),
        node("lab-worker-2", "worker", "10.231.0.22").json(),
    ]);
    (repo, server)
}

/// The stages (and pseudo-stages) of the newest run with their results.
fn last_stages(repo: &Offline) -> Vec<(String, String)> {
    repo.last_summary()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_string(),
                s["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn scale_down_drains_and_destroys_only_the_highest_worker_and_scale_up_adds_workers() {
    if !terraform_available() {
        return;
    }
    let (repo, server) = provisioned_with_api();
    server.add_pod("default", "web-1", "lab-worker-2", "ReplicaSet");
    server.add_pod("default", "web-2", "lab-worker-1", "ReplicaSet");
    server.kubeconfig(&repo.state_dir());
    let scale = |args: &[&str]| repo.day2(&["scale"], args);
    let tfvars = repo.env_dir().join("terraform.tfvars");
    let before = fs::read_to_string(&tfvars).unwrap();

    // Bad counts change nothing.
    let bad = scale(&["--workers", "99", "--yes"]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("worker_count"), "{}", stderr(&bad));
    assert_eq!(fs::read_to_string(&tfvars).unwrap(), before);
    // A dry run shows the change and makes none.
    let dry = scale(&["--workers", "1", "--dry-run"]);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    assert!(
        stderr(&dry).contains("drain, delete from Kubernetes and destroy: lab-worker-2"),
        "{}",
        stderr(&dry)
    );
    assert_eq!(fs::read_to_string(&tfvars).unwrap(), before);
    // Without a terminal, --yes is required.
    assert_eq!(code(&scale(&["--workers", "1"])), 2);

    // 2 → 1: lab-worker-2 is drained (its pod evicted, lab-worker-1's left), its Node deleted,
    // its VM destroyed; nothing else.
    let down = scale(&["--workers", "1", "--yes"]);
    assert_eq!(code(&down), 0, "{}", stderr(&down));
    let stages = last_stages(&repo);
    assert_eq!(
        stages,
        [
            ("drain", "succeeded"),
            ("provision", "succeeded"),
            ("configure", "succeeded"),
            ("verify", "succeeded")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let provision = &repo.last_summary()["stages"][1]["message"];
    assert!(
        provision
            .as_str()
            .unwrap()
            .contains("0 to create, 0 to update, 0 to replace, 1 to destroy"),
        "{provision}"
    );
    assert_eq!(
        server.count("POST", "/api/v1/namespaces/default/pods/web-1/eviction"),
        1
    );
    assert_eq!(
        server.count("POST", "/api/v1/namespaces/default/pods/web-2/eviction"),
        0
    );
    assert_eq!(
        server.node_states(),
        [
            ("lab-cp-1".to_string(), false),
            ("lab-worker-1".to_string(), false)
        ]
    );
    let after = fs::read_to_string(&tfvars).unwrap();
    assert_eq!(
        after,
        before.replace("worker_count      = 2", "worker_count      = 1"),
        "only the count changed; comments and alignment kept"
    );
    let nodes = repo.tfstate_nodes();
    assert_eq!(nodes, ["lab-cp-1", "lab-worker-1"]);

    // 1 → 3: two workers are created (slot order), none is touched.
    let up = scale(&["--workers", "3", "--yes"]);
    assert_eq!(code(&up), 0, "{}", stderr(&up));
    let provision = &repo.last_summary()["stages"][0]["message"];
    assert!(
        provision
            .as_str()
            .unwrap()
            .contains("2 to create, 0 to update, 0 to replace, 0 to destroy"),
        "{provision}"
    );
    assert_eq!(
        repo.tfstate_nodes(),
        ["lab-cp-1", "lab-worker-1", "lab-worker-2", "lab-worker-3"]
    );
    // Again: nothing to change.
    let same = scale(&["--workers", "3", "--yes"]);
    assert_eq!(code(&same), 0);
    assert!(
        stderr(&same).contains("nothing to change"),
        "{}",
        stderr(&same)
    );
    // And the plan is empty afterwards.
    let again = repo.run(&["up", "--only", "provision"]);
    assert!(stderr(&again).contains("no changes"), "{}", stderr(&again));
}

/// The `id` Terraform gave node `name`'s stand-in VM (changes when it is replaced).
fn vm_id_of(repo: &Offline, name: &str) -> String {
    let text = fs::read_to_string(repo.env_dir().join("terraform.tfstate")).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "terraform_data")
        .flat_map(|r| r["instances"].as_array().unwrap().iter())
        .find(|i| i["index_key"] == name)
        .map(|i| i["attributes"]["id"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn node_replace_drains_and_recreates_only_that_worker() {
    if !terraform_available() {
        return;
    }
    let (repo, server) = provisioned_with_api();
    server.add_pod("default", "web-1", "lab-worker-1", "ReplicaSet");
    server.kubeconfig(&repo.state_dir());
    let replace = |args: &[&str]| repo.day2(&["node", "replace"], args);
    let (cp, w1, w2) = (
        vm_id_of(&repo, "lab-cp-1"),
        vm_id_of(&repo, "lab-worker-1"),
        vm_id_of(&repo, "lab-worker-2"),
    );

    // Refused before anything changes: the control plane, an unknown node.
    let control_plane = replace(&["lab-cp-1", "--yes"]);
    assert_eq!(code(&control_plane), 2);
    assert!(
        stderr(&control_plane).contains("datastore"),
        "{}",
        stderr(&control_plane)
    );
    let unknown = replace(&["lab-worker-9", "--yes"]);
    assert_eq!(code(&unknown), 2);
    assert!(stderr(&unknown).contains("nodes: lab-cp-1, lab-worker-1, lab-worker-2"));
    let dry = replace(&["lab-worker-1", "--dry-run"]);
    assert_eq!(code(&dry), 0);
    assert!(
        stderr(&dry).contains("terraform_data.vm[\"lab-worker-1\"]"),
        "{}",
        stderr(&dry)
    );
    assert_eq!(server.count("PATCH", "/api/v1/nodes/lab-worker-1"), 0);

    let done = replace(&["lab-worker-1", "--yes"]);
    assert_eq!(code(&done), 0, "{}", stderr(&done));
    assert_eq!(
        last_stages(&repo),
        [
            ("drain", "succeeded"),
            ("provision", "succeeded"),
            ("configure", "succeeded"),
            ("verify", "succeeded")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let provision = &repo.last_summary()["stages"][1]["message"];
    assert!(
        provision
            .as_str()
            .unwrap()
            .contains("0 to create, 0 to update, 1 to replace, 0 to destroy"),
        "{provision}"
    );
    assert_eq!(
        server.count("POST", "/api/v1/namespaces/default/pods/web-1/eviction"),
        1
    );
    assert!(
        !server
            .node_states()
            .iter()
            .any(|(n, _)| n == "lab-worker-1")
    );
    // Only that VM is new; the same name (and so IP and VM ID) is in the state.
    assert_ne!(vm_id_of(&repo, "lab-worker-1"), w1);
    assert_eq!(vm_id_of(&repo, "lab-cp-1"), cp);
    assert_eq!(vm_id_of(&repo, "lab-worker-2"), w2);
    assert_eq!(
        repo.tfstate_nodes(),
        ["lab-cp-1", "lab-worker-1", "lab-worker-2"]
    );
    let again = repo.run(&["up", "--only", "provision"]);
    assert!(stderr(&again).contains("no changes"), "{}", stderr(&again));
}

#[test]
fn gpu_add_then_remove_the_last_gpu_worker() {
    if !terraform_available() {
        return;
    }
    use crate::kube_server::{KubeServer, node};
    let repo = Offline::new();
    assert_eq!(code(&repo.run(&["up", "--to", "provision"])), 0);
    let gpu = |args: &[&str]| repo.day2(&["gpu"], args);
    let tfvars = repo.env_dir().join("terraform.tfvars");
    let before = fs::read_to_string(&tfvars).unwrap();

    // A mapping name the contract refuses changes nothing.
    let bad = gpu(&["add", "--mapping", "9-not-a-name", "--yes"]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
    assert!(stderr(&bad).contains("gpu_workers"), "{}", stderr(&bad));
    assert_eq!(fs::read_to_string(&tfvars).unwrap(), before);

    let added = gpu(&["add", "--mapping", "gpu0", "--yes"]);
    assert_eq!(code(&added), 0, "{}", stderr(&added));
    assert!(
        stderr(&added).contains("GPU worker lab-gpu-1"),
        "{}",
        stderr(&added)
    );
    let provision = &repo.last_summary()["stages"][0]["message"];
    assert!(
        provision
            .as_str()
            .unwrap()
            .contains("1 to create, 0 to update, 0 to replace, 0 to destroy"),
        "{provision}"
    );
    assert_eq!(
        repo.tfstate_nodes(),
        ["lab-cp-1", "lab-gpu-1", "lab-worker-1", "lab-worker-2"]
    );
    assert!(
        fs::read_to_string(&tfvars)
            .unwrap()
            .contains("mapping = \"gpu0\"")
    );

    // Only the last GPU worker can go; a worker is not a GPU worker.
    let not_gpu = gpu(&["remove", "lab-worker-1", "--yes"]);
    assert_eq!(code(&not_gpu), 2);
    assert!(
        stderr(&not_gpu).contains("GPU workers: lab-gpu-1"),
        "{}",
        stderr(&not_gpu)
    );

    let server = KubeServer::start(vec![
        node("lab-cp-1", "control-plane", "10.231.0.11").json(),
        node("lab-gpu-1", "gpu-worker", "10.231.0.51").json(),
    ]);
    server.add_pod("default", "cuda-job", "lab-gpu-1", "ReplicaSet");
    server.kubeconfig(&repo.state_dir());
    let removed = gpu(&["remove", "lab-gpu-1", "--yes"]);
    assert_eq!(code(&removed), 0, "{}", stderr(&removed));
    assert_eq!(
        last_stages(&repo)[0],
        ("drain".to_string(), "succeeded".to_string())
    );
    assert!(!server.node_states().iter().any(|(n, _)| n == "lab-gpu-1"));
    assert_eq!(
        repo.tfstate_nodes(),
        ["lab-cp-1", "lab-worker-1", "lab-worker-2"]
    );
    assert_eq!(
        fs::read_to_string(&tfvars).unwrap(),
        before,
        "back to the file it was, comments and all"
    );
}
