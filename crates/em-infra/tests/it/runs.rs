//! `em-infra runs list|show` on hand-written `summary.json` fixtures.

use std::path::PathBuf;

use predicates::prelude::*;
use serde_json::{Value, json};

use crate::support;

/// A bare repository with an empty `k3s-dev` environment and a state directory beside it.
type Fixture = support::BareRepo;

impl Fixture {
    fn runs_dir(&self) -> PathBuf {
        self.state.join("k3s-dev/runs")
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        let dir = self.runs_dir().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn summary(&self, id: &str, summary: &Value) -> PathBuf {
        let dir = self.run_dir(id);
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_vec_pretty(summary).unwrap(),
        )
        .unwrap();
        dir
    }

    fn stdout(&self, args: &[&str]) -> String {
        let out = self
            .cmd(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    }
}

const OK_ID: &str = "20261126T040000Z-aaaa";
const FAILED_ID: &str = "20261126T050102Z-1a2b";
const CRASHED_ID: &str = "20261126T060000Z-cccc";
const CORRUPT_ID: &str = "20261126T055000Z-dddd";

fn succeeded_run() -> Value {
    json!({
        "schema": 1, "run_id": OK_ID, "env": "k3s-dev", "command": "up",
        "started_at": "2026-11-26T04:00:00Z", "finished_at": "2026-11-26T04:10:00Z",
        "result": "succeeded", "exit_code": 0,
        "stages": [
            {"stage": "preflight", "result": "succeeded", "started_at": "2026-11-26T04:00:00Z",
             "duration_ms": 2000, "exit_code": null, "message": "all checks passed", "log": "preflight.log"},
            {"stage": "provision", "result": "succeeded", "started_at": "2026-11-26T04:00:02Z",
             "duration_ms": 598000, "exit_code": null, "message": "applied", "log": "provision.log"}
        ]
    })
}

fn failed_run() -> Value {
    json!({
        "schema": 1, "run_id": FAILED_ID, "env": "k3s-dev", "command": "up",
        "started_at": "2026-11-26T05:01:02Z", "finished_at": "2026-11-26T05:05:02Z",
        "result": "failed", "exit_code": 4,
        "stages": [
            {"stage": "preflight", "result": "succeeded", "started_at": "2026-11-26T05:01:02Z",
             "duration_ms": 1000, "exit_code": null, "message": "ok", "log": "preflight.log"},
            {"stage": "prepare", "result": "skipped", "started_at": null,
             "duration_ms": null, "exit_code": null, "message": "template exists", "log": null},
            {"stage": "configure", "result": "failed", "started_at": "2026-11-26T05:01:03Z",
             "duration_ms": 8000, "exit_code": 4,
             "message": "ansible-playbook exited with code 2\nfatal: [k3s-dev-cp-1]: UNREACHABLE!",
             "log": "configure.log"},
            {"stage": "verify", "result": "skipped", "started_at": null, "duration_ms": null,
             "exit_code": null, "message": "not reached", "log": null}
        ]
    })
}

#[test]
fn list_without_runs_says_so() {
    let f = Fixture::new();
    f.cmd(&["runs", "list"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "no runs yet for environment k3s-dev",
        ));
    let out = f.stdout(&["runs", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
}

#[test]
fn list_is_newest_first_and_names_incomplete_runs_with_their_path() {
    let f = Fixture::new();
    f.summary(OK_ID, &succeeded_run());
    f.summary(FAILED_ID, &failed_run());
    let crashed = f.run_dir(CRASHED_ID); // crashed before summary.json
    std::fs::write(crashed.join("events.jsonl"), "{}\n").unwrap();
    let corrupt = f.run_dir(CORRUPT_ID);
    std::fs::write(
        corrupt.join("summary.json"),
        "{\"schema\": 1, \"run_id\": \"2026",
    )
    .unwrap();

    let out = f.stdout(&["runs", "list"]);
    let order: Vec<usize> = [CRASHED_ID, CORRUPT_ID, FAILED_ID, OK_ID]
        .iter()
        .map(|id| {
            out.find(id)
                .unwrap_or_else(|| panic!("{id} missing from\n{out}"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "newest first:\n{out}"
    );
    let line = |id: &str| out.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(
        line(OK_ID).contains("succeeded") && line(OK_ID).contains("10m00s"),
        "{out}"
    );
    assert!(line(OK_ID).contains("2026-11-26 04:00:00"), "{out}");
    assert!(
        line(FAILED_ID).contains("failed") && line(FAILED_ID).contains("4m00s"),
        "{out}"
    );
    assert!(
        line(FAILED_ID).contains("configure: ansible-playbook exited with code 2"),
        "{out}"
    );
    assert!(line(CRASHED_ID).contains("incomplete"), "{out}");
    assert!(
        line(CRASHED_ID).contains(&crashed.display().to_string()),
        "{out}"
    );
    assert!(line(CORRUPT_ID).contains("incomplete"), "{out}");
    assert!(
        line(CORRUPT_ID).contains(&corrupt.display().to_string()),
        "{out}"
    );

    let json: Value = serde_json::from_str(&f.stdout(&["runs", "list", "--json"])).unwrap();
    let items = json.as_array().unwrap();
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [CRASHED_ID, CORRUPT_ID, FAILED_ID, OK_ID]);
    assert_eq!(items[0]["result"], "incomplete");
    assert!(
        items[0]["error"]
            .as_str()
            .unwrap()
            .contains("no summary.json"),
        "{json}"
    );
    assert_eq!(items[1]["result"], "incomplete");
    assert!(
        items[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a valid run summary"),
        "{json}"
    );
    assert_eq!(items[2]["result"], "failed");
    assert_eq!(items[2]["exit_code"], 4);
    assert_eq!(items[2]["duration_ms"], 240_000);
    assert_eq!(items[3]["result"], "succeeded");
    assert_eq!(items[3]["command"], "up");
}

#[test]
fn show_has_stages_durations_bars_logs_and_the_failure() {
    let f = Fixture::new();
    f.summary(OK_ID, &succeeded_run());
    let dir = f.summary(FAILED_ID, &failed_run());
    std::fs::write(dir.join("configure.log"), "$ ansible-playbook site.yml\n").unwrap();

    let out = f.stdout(&["runs", "show", FAILED_ID]);
    assert!(
        out.contains(&format!(
            "run       {FAILED_ID}  (em-infra up, env k3s-dev)"
        )),
        "{out}"
    );
    assert!(out.contains("result    failed (exit 4)"), "{out}");
    assert!(out.contains("after 4m00s"), "{out}");
    let line = |stage: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" {stage} ")))
            .unwrap_or_else(|| panic!("{stage}:\n{out}"))
            .to_string()
    };
    // The longest stage (configure, 8s) fills the bar; preflight (1s) gets 1/8 of it.
    let configure = line("configure");
    assert!(
        configure.contains("✗") && configure.contains("failed") && configure.contains("8.0s"),
        "{out}"
    );
    assert!(configure.contains(&"█".repeat(24)), "{out}");
    assert!(
        configure.contains(&dir.join("configure.log").display().to_string()),
        "{out}"
    );
    assert!(!configure.contains("(missing)"), "{out}");
    let preflight = line("preflight");
    assert!(
        preflight.contains("✓") && preflight.contains("1000ms") || preflight.contains("1.0s"),
        "{out}"
    );
    assert!(
        preflight.contains("███") && !preflight.contains("████"),
        "{out}"
    );
    assert!(preflight.contains("preflight.log (missing)"), "{out}");
    assert!(line("prepare").contains("skipped"), "{out}");
    // The failing stage's whole message.
    assert!(
        out.contains(
            "configure failed:\n  ansible-playbook exited with code 2\n  fatal: [k3s-dev-cp-1]"
        ),
        "{out}"
    );
}

#[test]
fn show_defaults_to_the_newest_run_and_accepts_a_unique_prefix() {
    let f = Fixture::new();
    f.summary(OK_ID, &succeeded_run());
    f.summary(FAILED_ID, &failed_run());
    assert!(f.stdout(&["runs", "show"]).contains(FAILED_ID));
    let out = f.stdout(&["runs", "show", "20261126T04"]);
    assert!(
        out.contains(OK_ID) && out.contains("result    succeeded (exit 0)"),
        "{out}"
    );
    assert!(!out.contains("failed:"), "{out}");
    // Ambiguous prefix: bad input naming both.
    f.cmd(&["runs", "show", "20261126T0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ambiguous").and(predicate::str::contains(OK_ID)));
}

#[test]
fn show_json_prints_the_summary() {
    let f = Fixture::new();
    f.summary(FAILED_ID, &failed_run());
    let shown: Value =
        serde_json::from_str(&f.stdout(&["runs", "show", FAILED_ID, "--json"])).unwrap();
    assert_eq!(shown, failed_run());
}

#[test]
fn unknown_run_is_bad_input_listing_the_newest_ids() {
    let f = Fixture::new();
    f.summary(OK_ID, &succeeded_run());
    f.summary(FAILED_ID, &failed_run());
    f.cmd(&["runs", "show", "nope"]).assert().code(2).stderr(
        predicate::str::contains("no run \"nope\"")
            .and(predicate::str::contains(format!(
                "newest: {FAILED_ID}, {OK_ID}"
            )))
            .and(predicate::str::contains("em-infra runs list")),
    );
    // No runs at all: `show` has nothing to show.
    let empty = Fixture::new();
    empty
        .cmd(&["runs", "show"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no runs yet"));
}

#[test]
fn crashed_run_is_incomplete_everywhere() {
    let f = Fixture::new();
    // A run that died mid-stage: result still "running", and no em-infra holds the lock.
    let mut running = failed_run();
    running["run_id"] = json!(CRASHED_ID);
    running["result"] = json!("running");
    running["finished_at"] = Value::Null;
    running["exit_code"] = Value::Null;
    running["stages"][2]["result"] = json!("running");
    running["stages"].as_array_mut().unwrap().truncate(3);
    f.summary(CRASHED_ID, &running);
    let out = f.stdout(&["runs", "list"]);
    let line = out.lines().find(|l| l.contains(CRASHED_ID)).unwrap();
    assert!(
        line.contains("incomplete") && line.contains("ended without a result"),
        "{out}"
    );
    assert!(
        line.contains("9.0s"),
        "known stage durations are summed: {out}"
    );
    f.cmd(&["runs", "show"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("result    incomplete")
                .and(predicate::str::contains("finished  -")),
        )
        .stderr(predicate::str::contains(
            "ended without recording its result",
        ));

    // No summary at all: show says why and which files are there.
    let dir = f.run_dir("20261126T070000Z-eeee");
    std::fs::write(dir.join("preflight.log"), "x").unwrap();
    let out = f.stdout(&["runs", "show", "20261126T070000Z-eeee"]);
    assert!(
        out.contains("result    incomplete") && out.contains("preflight.log"),
        "{out}"
    );
    assert!(out.contains(&dir.display().to_string()), "{out}");
    let json: Value = serde_json::from_str(&f.stdout(&["runs", "show", "--json"])).unwrap();
    assert_eq!(json["result"], "incomplete");
    assert_eq!(json["files"], json!(["preflight.log"]));
}

#[test]
fn unknown_environment_is_bad_input() {
    let f = Fixture::new();
    f.cmd(&["runs", "list", "--env", "nope"]).assert().code(2);
}

#[test]
fn running_run_under_a_live_lock_is_running_and_older_ones_are_incomplete() {
    let f = Fixture::new();
    let mut live = failed_run();
    live["run_id"] = json!("20990101T000000Z-live");
    live["started_at"] = json!("2099-01-01T00:00:00Z");
    live["result"] = json!("running");
    live["finished_at"] = Value::Null;
    live["exit_code"] = Value::Null;
    f.summary("20990101T000000Z-live", &live);
    let mut dead = live.clone();
    dead["run_id"] = json!("20200101T000000Z-dead");
    dead["started_at"] = json!("2020-01-01T00:00:00Z");
    f.summary("20200101T000000Z-dead", &dead);

    // This test process holds the environment's lock, as a running `up` would.
    let _lock =
        em_infra_core::engine::lock::EnvLock::acquire(&f.state.join("k3s-dev"), "up", false)
            .unwrap();
    let out = f.stdout(&["runs", "list"]);
    let line = |id: &str| out.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(line("20990101T000000Z-live").contains("running"), "{out}");
    assert!(
        line("20200101T000000Z-dead").contains("incomplete"),
        "{out}"
    );
}
