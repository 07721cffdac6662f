//! `em-testlab` end to end: up, exec, status, list, down (needs root; skipped otherwise).

use std::process::Command;

fn em_testlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_em-testlab"))
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_lists_every_subcommand() {
    let out = run_ok(em_testlab().arg("--help"));
    for sub in ["up", "down", "exec", "status", "list", "rootfs"] {
        assert!(out.contains(sub), "--help lacks {sub}: {out}");
    }
    let out = run_ok(em_testlab().args(["up", "--help"]));
    assert!(out.contains("--host <NAME=IPV4>") && out.contains("--dir <DIR>"));
}

#[test]
fn bad_host_spec_is_named() {
    let out = em_testlab()
        .args([
            "up",
            "--host",
            "lab-cp-1:10.231.0.11",
            "--dir",
            "/nonexistent/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=IPV4"));
}

#[test]
fn up_exec_status_down() {
    if !testlab::require_root_or_skip() {
        return;
    }
    testlab::ensure_rootfs(&[]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cli-lab");
    let d = dir.to_str().unwrap();
    let json = run_ok(em_testlab().args(["up", "--host", "cli-1=10.231.0.51", "--dir", d]));
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    let id = info["id"].as_str().unwrap().to_string();
    assert_eq!(info["hosts"][0]["name"], "cli-1");
    assert_eq!(info["controller_addr"], "10.231.0.1");
    assert!(
        info["ansible_env"]["ANSIBLE_PRIVATE_KEY_FILE"]
            .as_str()
            .unwrap()
            .ends_with("id_ed25519")
    );

    // The lab outlives `up`; exec runs in the controller namespace with the ssh config at hand.
    let out = run_ok(em_testlab().args([
        "exec",
        "--dir",
        d,
        "--",
        "sh",
        "-c",
        "ssh -F \"$EM_TESTLAB_SSH_CONFIG\" cli-1 hostname",
    ]));
    assert_eq!(out.trim(), "cli-1");
    let st = em_testlab()
        .args(["exec", "--dir", d, "--", "sh", "-c", "exit 3"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(3));

    let list = run_ok(em_testlab().arg("list"));
    assert!(list.contains(&id));
    let status: serde_json::Value =
        serde_json::from_str(&run_ok(em_testlab().args(["status", "--dir", d]))).unwrap();
    assert!(!status["present"].as_array().unwrap().is_empty());

    run_ok(em_testlab().args(["down", "--dir", d]));
    assert!(!dir.exists());
    assert!(!testlab::registered_labs().contains(&id));
    assert!(!std::path::Path::new(&format!("/run/netns/tl-{id}-ctl")).exists());
}
