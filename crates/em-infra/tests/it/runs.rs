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

// ---- runs bundle ----

/// The Proxmox API token, its secret part, a password and the k3s join token the bundle tests plant.
const API_TOKEN: &str = "root@pam!em-infra=5f1d2c3b-7a6e-4b1f-9c2d-0e8f7a6b5c4d";
const API_SECRET: &str = "5f1d2c3b-7a6e-4b1f-9c2d-0e8f7a6b5c4d";
const PASSWORD: &str = "pve-Pa55word-Zq9x";
const K3S_TOKEN: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
/// Key material inside a private key block.
const KEY_MATERIAL: &str = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQsecretKeyMaterial";
/// `client-key-data` in the kubeconfig, and another one that only a log holds.
const KUBE_CLIENT_KEY: &str = "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCmt1YmVjb25maWdLZXk=";
const LOGGED_CLIENT_KEY: &str = "TG9nZ2VkQ2xpZW50S2V5RGF0YUluQUxvZ0xpbmU=";
const KUBE_USER_TOKEN: &str = "kubeUserBearerToken0123456789";

/// Every secret a bundle must not contain.
const SECRETS: [&str; 8] = [
    API_TOKEN,
    API_SECRET,
    PASSWORD,
    K3S_TOKEN,
    KEY_MATERIAL,
    KUBE_CLIENT_KEY,
    LOGGED_CLIENT_KEY,
    KUBE_USER_TOKEN,
];

/// One entry of an unpacked bundle.
#[derive(Debug)]
struct Unpacked {
    path: String,
    mode: u32,
    text: String,
}

/// Every entry of a `.tar.gz`, in archive order.
fn unpack(archive: &std::path::Path) -> Vec<Unpacked> {
    use std::io::Read;
    let file = std::fs::File::open(archive).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mode = entry.header().mode().unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push(Unpacked {
            path,
            mode,
            text: String::from_utf8(bytes).expect("every bundled file is text"),
        });
    }
    out
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A Terraform state (format 4) with the contract outputs for one control-plane node.
fn one_node_state() -> Value {
    let out = |value: Value, ty: Value| json!({ "value": value, "type": ty });
    json!({
        "version": 4, "terraform_version": "1.11.4", "serial": 3,
        "lineage": "c77240bf-1455-3bcf-e23a-83afcbbc16a2",
        "outputs": {
            "cluster_name": out(json!("k3s-dev"), json!("string")),
            "ssh_user": out(json!("ubuntu"), json!("string")),
            "control_plane_ips": out(json!(["10.20.0.10"]), json!(["tuple", ["string"]])),
            "worker_ips": out(json!([]), json!(["tuple", []])),
            "gpu_worker_ips": out(json!([]), json!(["tuple", []])),
            "nodes": out(
                json!({"k3s-dev-cp-1": {"name": "k3s-dev-cp-1", "role": "control_plane",
                       "ip": "10.20.0.10", "vm_id": 9100, "proxmox_node": "pve", "gpu": null}}),
                json!("dynamic")
            )
        },
        "resources": []
    })
}

/// A fake `terraform` (which echoes the API token, as a careless tool might) and
/// `ansible-playbook` in a directory of their own, to be the whole PATH.
fn fake_tools(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    for (name, script) in [
        (
            "terraform",
            "#!/bin/sh\nprintf '{\"terraform_version\":\"1.9.8\",\"platform\":\"linux_amd64\",\"note\":\"%s\"}\\n' \"$PROXMOX_VE_API_TOKEN\"\n",
        ),
        (
            "ansible-playbook",
            "#!/bin/sh\necho 'ansible-playbook [core 2.19.14]'\necho '  config file = None'\n",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn bundle_holds_the_run_and_the_environment_with_every_secret_redacted() {
    let f = Fixture::new();
    let env_dir = f.root.join("terraform/environments/k3s-dev");
    std::fs::write(
        env_dir.join("versions.tf"),
        "terraform {\n  required_providers {\n    proxmox = {\n      source  = \"bpg/proxmox\"\n      version = \"0.111.1\"\n    }\n  }\n}\n",
    )
    .unwrap();
    std::fs::write(
        env_dir.join("terraform.tfvars"),
        format!("cluster_name = \"k3s-dev\"\n# proxmox password = \"{PASSWORD}\"\n"),
    )
    .unwrap();
    std::fs::write(
        env_dir.join("terraform.tfstate"),
        serde_json::to_vec_pretty(&one_node_state()).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(f.root.join("ansible/group_vars")).unwrap();
    std::fs::write(
        f.root.join("ansible/group_vars/all.yml"),
        "---\nk3s_version: \"v1.33.5+k3s1\"\n",
    )
    .unwrap();

    // The environment's secrets: the k3s token file and a kubeconfig.
    let state_dir = f.state.join("k3s-dev");
    let dir = f.summary(FAILED_ID, &failed_run());
    std::fs::write(state_dir.join("k3s-token"), format!("{K3S_TOKEN}\n")).unwrap();
    std::fs::write(
        state_dir.join("kubeconfig"),
        format!(
            "apiVersion: v1\nusers:\n- name: default\n  user:\n    client-key-data: {KUBE_CLIENT_KEY}\n    token: {KUBE_USER_TOKEN}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        state_dir.join("state.json"),
        format!("{{\"schema\": 1, \"env\": \"k3s-dev\", \"note\": \"joined with {K3S_TOKEN}\"}}\n"),
    )
    .unwrap();

    // The run's records, with secrets where a tool could have printed them.
    std::fs::write(
        dir.join("configure.log"),
        format!(
            "$ ansible-playbook site.yml\nTASK [k3s_server : token]\nok: token is {K3S_TOKEN}\n\
             -----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_MATERIAL}\nQyNTUxOQAAACDmore\n-----END OPENSSH PRIVATE KEY-----\n\
             fetched kubeconfig:\n    client-key-data: {LOGGED_CLIENT_KEY}\n    user: {KUBE_USER_TOKEN}\n\
             PLAY RECAP\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("provision.log"),
        format!("$ terraform apply\nAuthorization: PVEAPIToken={API_TOKEN}\nsecret part {API_SECRET}\nthe kubeconfig key {KUBE_CLIENT_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("events.jsonl"),
        format!(
            "{}\n{}\n",
            json!({"event": "message", "stage": "configure",
                   "message": format!("the key -----BEGIN RSA PRIVATE KEY-----\n{KEY_MATERIAL}\n-----END RSA PRIVATE KEY----- was used")}),
            json!({"event": "message", "stage": "configure", "message": format!("password: {PASSWORD}")})
        ),
    )
    .unwrap();
    std::fs::write(dir.join("plan.tfplan"), b"PK\x03\x04binary plan").unwrap();
    std::fs::write(dir.join("plan-summary.txt"), "1 to add\n").unwrap();

    // A live run holds the lock (this test process, as in `up`).
    let _lock = em_infra_core::engine::lock::EnvLock::acquire(&state_dir, "up", false).unwrap();

    let tools = f.state.join("tools");
    fake_tools(&tools);
    let out = f
        .cmd(&["runs", "bundle", "20261126T05"])
        .env("PATH", &tools)
        .env("PROXMOX_VE_API_TOKEN", API_TOKEN)
        .env("PROXMOX_VE_PASSWORD", PASSWORD)
        .env_remove("EM_INFRA_TERRAFORM")
        .env_remove("EM_INFRA_ANSIBLE_BIN_DIR")
        .assert()
        .success()
        .stderr(predicate::str::contains(format!("bundled run {FAILED_ID}")))
        .get_output()
        .stdout
        .clone();
    let archive = PathBuf::from(String::from_utf8(out).unwrap().trim());
    assert_eq!(
        archive,
        state_dir.join(format!("bundles/{FAILED_ID}.tar.gz"))
    );
    assert_eq!(mode_of(&archive), 0o600, "the archive is private");
    assert_eq!(mode_of(archive.parent().unwrap()), 0o700);

    let entries = unpack(&archive);
    let top = format!("em-infra-bundle-{FAILED_ID}");
    let files: Vec<&str> = entries
        .iter()
        .filter(|e| !e.path.ends_with('/'))
        .map(|e| e.path.strip_prefix(&format!("{top}/")).unwrap())
        .collect();
    assert_eq!(files[0], "README.txt", "{files:?}");
    for expected in [
        "run/configure.log",
        "run/events.jsonl",
        "run/plan-summary.txt",
        "run/provision.log",
        "run/summary.json",
        "versions.txt",
        "env/state.json",
        "env/lock.json",
        "env/terraform.tfvars",
        "env/inventory.json",
    ] {
        assert!(files.contains(&expected), "{expected} missing: {files:?}");
    }
    for absent in ["plan.tfplan", "kubeconfig", "k3s-token"] {
        assert!(
            !files.iter().any(|f| f.ends_with(absent)),
            "{absent} must not be bundled: {files:?}"
        );
    }
    for entry in &entries {
        for secret in SECRETS {
            assert!(
                !entry.text.contains(secret),
                "{} holds the secret {secret}:\n{}",
                entry.path,
                entry.text
            );
        }
        let want = if entry.path.ends_with('/') {
            0o700
        } else {
            0o600
        };
        assert_eq!(entry.mode, want, "{}", entry.path);
    }

    let text = |name: &str| {
        let path = format!("{top}/{name}");
        &entries.iter().find(|e| e.path == path).unwrap().text
    };
    // Redacted, not dropped: the surrounding lines are still there.
    let log = text("run/configure.log");
    assert!(log.contains("ok: token is [REDACTED]"), "{log}");
    assert!(
        log.contains("[REDACTED PRIVATE KEY]\nfetched kubeconfig:"),
        "{log}"
    );
    assert!(log.contains("client-key-data: [REDACTED]"), "{log}");
    assert!(log.contains("PLAY RECAP"), "{log}");
    let events: Vec<Value> = text("run/events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events[0]["message"],
        "the key [REDACTED PRIVATE KEY] was used"
    );
    assert_eq!(events[1]["message"], "password: [REDACTED]");
    assert_eq!(
        serde_json::from_str::<Value>(text("run/summary.json")).unwrap(),
        failed_run()
    );

    let versions = text("versions.txt");
    assert!(
        versions.contains(&format!("em-infra: {}", env!("CARGO_PKG_VERSION"))),
        "{versions}"
    );
    assert!(
        versions.contains("\"terraform_version\":\"1.9.8\""),
        "{versions}"
    );
    assert!(
        versions.contains("bpg/proxmox pin (versions.tf): 0.111.1"),
        "{versions}"
    );
    assert!(
        versions.contains("ansible-playbook --version: ansible-playbook [core 2.19.14]"),
        "{versions}"
    );
    assert!(
        versions.contains("k3s pin (ansible/group_vars/all.yml): v1.33.5+k3s1"),
        "{versions}"
    );

    let lock: Value = serde_json::from_str(text("env/lock.json")).unwrap();
    assert_eq!(lock["held"], true, "{lock}");
    assert_eq!(lock["holder"]["pid"], std::process::id(), "{lock}");
    assert_eq!(lock["holder"]["command"], "up", "{lock}");

    let inventory: Value = serde_json::from_str(text("env/inventory.json")).unwrap();
    assert_eq!(
        inventory["_meta"]["hostvars"]["k3s-dev-cp-1"]["ansible_host"], "10.20.0.10",
        "{inventory}"
    );
    assert!(text("env/terraform.tfvars").contains("cluster_name = \"k3s-dev\""));

    let readme = text("README.txt");
    assert!(readme.contains("redacted"), "{readme}");
    assert!(
        readme.contains(&format!(
            "run          {FAILED_ID} (em-infra up: failed, exit 4)"
        )),
        "{readme}"
    );
    for name in [
        "run/configure.log",
        "versions.txt",
        "env/lock.json",
        "env/inventory.json",
    ] {
        assert!(readme.contains(name), "{name} not named in\n{readme}");
    }
    assert!(
        readme.contains("run/plan.tfplan: a binary Terraform plan"),
        "{readme}"
    );
}

#[test]
fn bundle_json_defaults_to_the_newest_run_and_an_output_path() {
    let f = Fixture::new();
    f.summary(OK_ID, &succeeded_run());
    f.summary(FAILED_ID, &failed_run());
    let empty_path = f.state.join("no-tools");
    std::fs::create_dir_all(&empty_path).unwrap();
    let target = f.state.join("report.tar.gz");
    let out = f
        .cmd(&["runs", "bundle", "--json", "--output"])
        .arg(&target)
        .env("PATH", &empty_path)
        .env_remove("EM_INFRA_TERRAFORM")
        .env_remove("EM_INFRA_ANSIBLE_BIN_DIR")
        .env_remove("PROXMOX_VE_API_TOKEN")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["bundle"], target.display().to_string());
    assert_eq!(mode_of(&target), 0o600);
    let files: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let top = format!("em-infra-bundle-{FAILED_ID}");
    assert_eq!(files[0], format!("{top}/README.txt"));
    assert!(
        files.contains(&format!("{top}/run/summary.json").as_str()),
        "{files:?}"
    );
    let unpacked: Vec<String> = unpack(&target)
        .into_iter()
        .filter(|e| !e.path.ends_with('/'))
        .map(|e| e.path)
        .collect();
    assert_eq!(unpacked, files, "--json names what the archive holds");

    let entries = unpack(&target);
    let text = |name: &str| {
        let path = format!("{top}/{name}");
        entries
            .iter()
            .find(|e| e.path == path)
            .unwrap()
            .text
            .clone()
    };
    // Missing tools and pins are recorded, never an error.
    let versions = text("versions.txt");
    assert!(
        versions.contains("terraform version -json: not found"),
        "{versions}"
    );
    assert!(
        versions.contains("ansible-playbook --version: not found"),
        "{versions}"
    );
    assert!(
        versions.contains("bpg/proxmox pin (versions.tf): not found"),
        "{versions}"
    );
    assert!(
        versions.contains("k3s pin (ansible/group_vars/all.yml): not found"),
        "{versions}"
    );
    let lock: Value = serde_json::from_str(&text("env/lock.json")).unwrap();
    assert_eq!(lock["held"], false, "{lock}");
    assert!(
        lock["note"].as_str().unwrap().contains("no lock file"),
        "{lock}"
    );
    let readme = text("README.txt");
    assert!(readme.contains("Not included:"), "{readme}");
    assert!(readme.contains("no Terraform state"), "{readme}");
}

#[test]
fn bundle_of_an_unknown_run_or_without_runs_is_bad_input() {
    let f = Fixture::new();
    f.summary(OK_ID, &succeeded_run());
    f.cmd(&["runs", "bundle", "nope"]).assert().code(2).stderr(
        predicate::str::contains("no run \"nope\"")
            .and(predicate::str::contains(OK_ID))
            .and(predicate::str::contains("em-infra runs list")),
    );
    assert!(!f.state.join("k3s-dev/bundles").exists(), "nothing written");

    let empty = Fixture::new();
    empty.cmd(&["runs", "bundle"]).assert().code(2).stderr(
        predicate::str::contains("no runs yet").and(predicate::str::contains("em-infra up")),
    );
}
