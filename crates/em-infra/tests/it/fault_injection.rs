//! Fault injection against lab hosts: em-infra is killed (SIGKILL: no handler runs) or interrupted
//! (SIGINT) at a random point inside each stage that runs a tool — provision (real `terraform`),
//! configure and verify (real `ansible-playbook` over SSH) — and then resumed as the docs say.
//! Every time: no tool outlives em-infra by more than a second, and the resumed run ends with every
//! stage succeeded and k3s running on every node.

use std::fs;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Repo, code, stderr, terraform_available};
use em_infra_core::engine::lock::{LockHolder, RunningTool};
use serde_json::Value;

/// A delay in `0..max_ms`, different on every call (the kill lands at a random point).
fn random_delay(max_ms: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mixed = u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    Duration::from_millis(mixed % max_ms)
}

/// The events of the newest run (empty while it has none).
fn newest_events(repo: &Repo) -> Vec<Value> {
    repo.runs()
        .pop()
        .and_then(|run| fs::read_to_string(run.join("events.jsonl")).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Start `args` and wait until the newest run has started a command of `stage` whose line
/// contains `tool`.
fn start_until_tool(
    lab: &testlab::Lab,
    repo: &Repo,
    args: &[&str],
    stage: &str,
    tool: &str,
) -> Child {
    let runs_before = repo.runs().len();
    let mut child = support::em_in_lab_cmd(lab, repo, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let started = repo.runs().len() > runs_before
            && newest_events(repo).iter().any(|e| {
                e["event"] == "command_started"
                    && e["stage"] == stage
                    && e["message"].as_str().is_some_and(|m| m.contains(tool))
            });
        if started {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("em-infra {args:?} ended ({status}) before {stage} ran {tool}");
        }
        assert!(Instant::now() < deadline, "{stage} never ran {tool}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stages whose recorded result in `state.json` is `result`.
fn stages_with(repo: &Repo, result: &str) -> Vec<String> {
    repo.state()["stages"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["result"] == result)
        .map(|(name, _)| name.clone())
        .collect()
}

/// The tool the lock's record says is running, if any.
fn running_tool(repo: &Repo) -> Option<RunningTool> {
    let text = fs::read_to_string(repo.state_dir().join("lock")).ok()?;
    serde_json::from_str::<LockHolder>(&text).ok()?.tool
}

/// Send `signal` to em-infra at a random point inside the tool; returns its exit status code
/// and the tool it was running (if it was running one).
fn signal_inside(
    lab: &testlab::Lab,
    repo: &Repo,
    args: &[&str],
    stage: &str,
    tool: &str,
    signal: i32,
    max_delay_ms: u64,
) -> (Option<i32>, Option<RunningTool>) {
    let mut child = start_until_tool(lab, repo, args, stage, tool);
    std::thread::sleep(random_delay(max_delay_ms));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the signal; lower the delay for {stage}"
    );
    let tool = running_tool(repo);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    let ended = Instant::now();
    if let Some(tool) = &tool {
        while tool.is_running() && ended.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let outlived = ended.elapsed();
        assert!(
            !tool.is_running() && outlived < Duration::from_millis(1500),
            "{} outlived em-infra by {outlived:?}",
            tool.what
        );
    }
    (status.code(), tool)
}

/// Resume as documented; the run must finish every stage it runs and k3s must run everywhere.
fn resume_to_green(lab: &testlab::Lab, repo: &Repo) {
    let resumed = support::em_in_lab(lab, repo, &["up", "--resume", "--clear-stale-lock"]);
    assert_eq!(code(&resumed), 0, "{}", stderr(&resumed));
    let summary = repo.last_summary();
    assert_eq!(summary["result"], "succeeded", "{summary:#}");
    for stage in ["preflight", "provision", "configure", "verify"] {
        assert_eq!(repo.stage_result(stage), "succeeded", "{stage}");
    }
    for (host, _) in support::LAB_NODES {
        let unit = if host.contains("-cp-") {
            "k3s"
        } else {
            "k3s-agent"
        };
        let out = lab
            .ssh(host)
            .arg("systemctl is-active ")
            .arg(unit)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "active",
            "{unit} on {host}"
        );
    }
}

#[test]
fn killed_or_interrupted_inside_any_stage_resumes_to_a_correct_cluster() {
    if !testlab::require_root_or_skip() || !terraform_available() {
        return;
    }
    let repo = Repo::new();
    let mut lab = support::lab_for_fixture(&repo);

    // SIGKILL inside each stage that runs a tool. The first run provisions from nothing.
    // The longest delay stays well inside what follows the tool's start (configure alone takes
    // many seconds; verify's post-checks at least one).
    for (args, stage, tool, max_delay_ms) in [
        (&["up"][..], "provision", " apply ", 1500),
        (
            &["up", "--from", "configure"][..],
            "configure",
            "site.yml",
            3000,
        ),
        (
            &["up", "--from", "verify"][..],
            "verify",
            "post-checks.yml",
            400,
        ),
    ] {
        let (code, _) = signal_inside(&lab, &repo, args, stage, tool, libc::SIGKILL, max_delay_ms);
        assert_eq!(code, None, "killed by the signal");
        // The start was written ahead: the killed stage (or, when the kill landed after its
        // tool, a later one) is where --resume continues.
        assert!(
            stages_with(&repo, "running").len() == 1,
            "one stage recorded as running after SIGKILL inside {stage}: {:?}",
            repo.state()
        );
        resume_to_green(&lab, &repo);
    }

    // SIGINT inside each of them: exit 130, the stage recorded interrupted (the tool got the
    // signal and stopped before em-infra exited), and the lock released.
    for (args, stage, tool, max_delay_ms) in [
        (
            &["up", "--from", "provision"][..],
            "provision",
            " plan ",
            300,
        ),
        (
            &["up", "--from", "configure"][..],
            "configure",
            "site.yml",
            3000,
        ),
        (
            &["up", "--from", "verify"][..],
            "verify",
            "post-checks.yml",
            400,
        ),
    ] {
        let (code, _) = signal_inside(&lab, &repo, args, stage, tool, libc::SIGINT, max_delay_ms);
        assert_eq!(code, Some(130), "SIGINT inside {stage}");
        assert!(
            !repo.state_dir().join("lock").exists(),
            "the lock is released after an interruption inside {stage}"
        );
        // The stage where the signal took effect: this one, or the next when it landed between
        // two of this stage's commands after its last tool had finished.
        assert!(
            stages_with(&repo, "interrupted").len() == 1,
            "one stage interrupted after SIGINT inside {stage}: {:?}",
            repo.state()
        );
        resume_to_green(&lab, &repo);
    }

    lab.down().expect("lab down");
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}
