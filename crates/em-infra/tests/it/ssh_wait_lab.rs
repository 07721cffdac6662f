//! The configure stage's first play (`ansible/playbooks/preflight.yml`, which `site.yml` starts
//! with) waits for a real SSH login on every node, right after its controller-side checks: real `ansible-playbook` over real SSH against
//! lab hosts (see `crates/testlab`), one of which stops its sshd. With sshd back after a while the
//! run waits and succeeds; with sshd never back it fails within `wait_for_ssh_timeout`, naming the
//! node and the causes.
//!
//! Needs root (lab) and `<repo>/.venv/bin/ansible-playbook`; skipped with a message without them,
//! except under CI=true, where that is a failure.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use testlab::{Lab, LabSpec};

use crate::support::{self, repo_root};

const CP: (&str, Ipv4Addr) = ("lab-cp-1", Ipv4Addr::new(10, 231, 0, 11));
const WORKER: (&str, Ipv4Addr) = ("lab-worker-1", Ipv4Addr::new(10, 231, 0, 21));

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `preflight.yml` against both hosts with `-e` values; returns the output and how long it took.
fn preflight(lab: &Lab, env_dir: &Path, extra: &[&str]) -> (Output, Duration) {
    let inventory = env_dir.join("inventory.yml");
    let mut cmd = lab.command(repo_root().join(".venv/bin/ansible-playbook"));
    cmd.current_dir(repo_root())
        .arg("-i")
        .arg(&inventory)
        .envs(lab.ansible_env())
        .env("EM_INFRA_ENV_DIR", env_dir)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", env_dir.join("ansible-tmp"));
    for e in extra {
        cmd.arg("-e").arg(e);
    }
    cmd.arg("ansible/playbooks/preflight.yml");
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let took = started.elapsed();
    eprintln!(
        "--- preflight.yml {extra:?} → {:?} in {took:.1?}\n{}",
        out.status.code(),
        text(&out)
    );
    (out, took)
}

/// Whether something on the worker accepts TCP on port 22, seen from the controller.
fn port_22_open(lab: &Lab) -> bool {
    lab.command("bash")
        .arg("-c")
        .arg(format!("exec 3<>/dev/tcp/{}/22", WORKER.1))
        .output()
        .unwrap()
        .status
        .success()
}

fn on_worker(lab: &Lab, script: &str) -> Output {
    let out = lab.ssh(WORKER.0).arg(script).output().unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out));
    out
}

#[test]
fn configure_waits_for_a_late_sshd_and_fails_within_the_bound_when_it_never_comes() {
    if !testlab::require_root_or_skip() {
        return;
    }
    if !repo_root().join(".venv/bin/ansible-playbook").is_file() {
        return support::skip_or_fail(
            "no .venv/bin/ansible-playbook (./scripts/test.sh installs it)",
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("em-ssh-wait-")
        .tempdir()
        .unwrap();
    // em-infra's environment directory as `up` leaves it: a 0600 token, and an inventory with
    // the groups the configure layer expects.
    let env_dir = tmp.path().join("env");
    fs::create_dir(&env_dir).unwrap();
    let token = env_dir.join("k3s-token");
    fs::write(&token, format!("{}\n", "ab".repeat(32))).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        env_dir.join("inventory.yml"),
        [
            "k3s_cluster:",
            "  children:",
            "    control_plane:",
            &format!(
                "      hosts: {{ {}: {{ ansible_host: \"{}\" }} }}",
                CP.0, CP.1
            ),
            "    workers:",
            &format!(
                "      hosts: {{ {}: {{ ansible_host: \"{}\" }} }}",
                WORKER.0, WORKER.1
            ),
            "  vars:",
            "    ansible_user: root",
            "",
        ]
        .join("\n"),
    )
    .unwrap();
    let mut lab = Lab::up(
        LabSpec::new(tmp.path().join("lab"))
            .host(CP.0, CP.1)
            .host(WORKER.0, WORKER.1),
    )
    .expect("lab up");
    // Debian's ssh.service has KillMode=process: stopping it closes the listener, while the
    // session that stops it survives. Every login after that is refused until it starts again.
    let kill_mode = on_worker(&lab, "systemctl show ssh.service -p KillMode");
    assert_eq!(
        String::from_utf8_lossy(&kill_mode.stdout).trim(),
        "KillMode=process"
    );

    // 1. sshd comes back 20 s after it stopped: the run waits, then every check passes.
    let late = Duration::from_secs(20);
    on_worker(
        &lab,
        &format!(
            "systemd-run --quiet --unit=em-test-late-ssh --on-active={} systemctl start ssh.service \
             && systemctl stop ssh.service",
            late.as_secs()
        ),
    );
    let stopped = Instant::now();
    assert!(!port_22_open(&lab), "sshd on the worker is stopped");
    let (out, _) = preflight(&lab, &env_dir, &["wait_for_ssh_timeout=120"]);
    let waited = stopped.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        waited >= late - Duration::from_secs(2),
        "the run succeeded only after sshd came back ({waited:.1?})"
    );
    let recap = em_infra_core::ansible::parse_recap(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(recap.len(), 2, "{recap:?}");
    assert!(recap.iter().all(|(_, _, failed)| *failed == 0), "{recap:?}");
    assert!(port_22_open(&lab));

    // 2. sshd never comes back: the worker fails within the bound, named with its causes; the
    // control plane's checks still run, and preflight stops the run.
    on_worker(&lab, "systemctl stop ssh.service");
    assert!(!port_22_open(&lab));
    let bound = Duration::from_secs(10);
    let (out, took) = preflight(
        &lab,
        &env_dir,
        &[&format!("wait_for_ssh_timeout={}", bound.as_secs())],
    );
    assert_ne!(out.status.code(), Some(0));
    let all = text(&out);
    for part in [
        format!(
            "{} ({}) is not reachable over SSH as root: no login succeeded within {} s",
            WORKER.0,
            WORKER.1,
            bound.as_secs()
        ),
        "Connection refused".to_string(),
        "still in its first boot (slow storage: raise wait_for_ssh_timeout)".to_string(),
        format!("Preflight failed on {}", WORKER.0),
    ] {
        assert!(all.contains(&part), "{part:?} missing from:\n{all}");
    }
    assert!(
        took >= bound && took < bound + Duration::from_secs(50),
        "failed within the bound: {took:.1?}"
    );
    let recap = em_infra_core::ansible::parse_recap(&String::from_utf8_lossy(&out.stdout));
    let failed: Vec<&str> = recap
        .iter()
        .filter(|(_, _, f)| *f > 0)
        .map(|(h, _, _)| h.as_str())
        .collect();
    assert_eq!(failed.len(), 2, "{recap:?}");

    lab.down().unwrap();
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
}
