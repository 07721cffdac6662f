//! `engine::lock`: one holder per environment, held-by messages, stale records from dead runs.
//!
//! A real second process holds the lock by re-running this test binary on the ignored test
//! `helper_hold_lock` (no `up` command is needed for that).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use em_infra_core::engine::lock::{EnvLock, LOCK_FILE, LockHolder};
use em_infra_core::failure::{FailureKind, kind_of};

const HELPER_ENV: &str = "EM_INFRA_TEST_LOCK_HELPER_DIR";
const READY: &str = "HELPER-LOCK-READY";

/// Not a test: the child-process side of the tests below. Takes the lock, says so, and holds it
/// until its stdin closes.
#[test]
#[ignore = "helper run in a child process by the other tests"]
fn helper_hold_lock() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let lock = EnvLock::acquire(Path::new(&dir), "up --from configure", false).unwrap();
    println!("{READY}");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(lock);
}

/// A child process holding the lock on `dir`; returns once the lock is taken.
fn spawn_holder(dir: &Path) -> (Child, ChildStdin) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "lock::helper_hold_lock",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "helper exited before taking the lock");
        if line.contains(READY) {
            break;
        }
    }
    // Keep reading so the helper's final test report never hits a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, stdin)
}

fn locked_message(err: &anyhow::Error) -> String {
    assert_eq!(kind_of(err), Some(FailureKind::Locked), "{err:#}");
    format!("{err:#}")
}

/// The pid of a process that existed and is gone (reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn write_record(state_dir: &Path, pid: u32, host: &str) {
    std::fs::create_dir_all(state_dir).unwrap();
    let record = serde_json::json!({
        "pid": pid,
        "host": host,
        "started_at": "2026-11-26T04:00:00Z",
        "command": "up",
    });
    std::fs::write(
        state_dir.join(LOCK_FILE),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
}

#[test]
fn acquire_writes_the_holder_record_and_drop_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join(".em-infra/k3s-dev");
    let lock = EnvLock::acquire(&state_dir, "up", false).unwrap();
    let path = state_dir.join(LOCK_FILE);
    assert_eq!(lock.path(), path);
    assert_eq!(
        std::fs::metadata(&state_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let record: LockHolder = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(record.pid, std::process::id());
    assert_eq!(record.command, "up");
    assert!(!record.host.is_empty());
    assert_eq!(&record, lock.holder());
    assert!(lock.cleared_stale().is_none());

    drop(lock);
    assert!(!path.exists(), "the lock file is removed on release");
    // And it can be taken again.
    drop(EnvLock::acquire(&state_dir, "down", false).unwrap());
}

#[test]
fn second_handle_in_the_same_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let first = EnvLock::acquire(tmp.path(), "up", false).unwrap();
    let err = EnvLock::acquire(tmp.path(), "down", false).unwrap_err();
    let msg = locked_message(&err);
    assert!(
        msg.contains(&format!("locked by pid {}", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains("(em-infra up)"), "{msg}");
    assert!(msg.contains("this process already holds it"), "{msg}");
    // The refused attempt did not disturb the holder's record.
    let record: LockHolder =
        serde_json::from_slice(&std::fs::read(tmp.path().join(LOCK_FILE)).unwrap()).unwrap();
    assert_eq!(record.command, "up");
    drop(first);
    drop(EnvLock::acquire(tmp.path(), "down", false).unwrap());
}

#[test]
fn lock_held_by_another_process_is_refused_then_free_after_it_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, stdin) = spawn_holder(tmp.path());

    let err = EnvLock::acquire(tmp.path(), "up", false).unwrap_err();
    let msg = locked_message(&err);
    assert!(
        msg.contains(&format!("locked by pid {} on ", child.id())),
        "{msg}"
    );
    assert!(msg.contains("(em-infra up --from configure)"), "{msg}");
    assert!(msg.contains("wait for it or stop it"), "{msg}");
    // --clear-stale-lock never steals a live lock.
    let err = EnvLock::acquire(tmp.path(), "up", true).unwrap_err();
    locked_message(&err);

    drop(stdin); // the helper releases and exits
    assert!(child.wait().unwrap().success());
    assert!(!tmp.path().join(LOCK_FILE).exists());
    let lock = EnvLock::acquire(tmp.path(), "up", false).unwrap();
    assert!(lock.cleared_stale().is_none());
}

#[test]
fn killed_holder_leaves_a_stale_lock_that_needs_clear_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, _stdin) = spawn_holder(tmp.path());
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL: no Drop, the record stays behind
    child.wait().unwrap();
    assert!(tmp.path().join(LOCK_FILE).exists());

    let err = EnvLock::acquire(tmp.path(), "up", false).unwrap_err();
    let msg = locked_message(&err);
    assert!(
        msg.contains(&format!("a previous run (pid {pid} on ")),
        "{msg}"
    );
    assert!(msg.contains("ended without releasing the lock"), "{msg}");
    assert!(msg.contains("--clear-stale-lock"), "{msg}");
    assert!(!msg.contains("reused"), "{msg}");

    let lock = EnvLock::acquire(tmp.path(), "up", true).unwrap();
    let stale = lock.cleared_stale().expect("the stale record is reported");
    assert_eq!(stale.holder.as_ref().unwrap().pid, pid);
    assert_eq!(
        stale.holder.as_ref().unwrap().command,
        "up --from configure"
    );
    let record: LockHolder = serde_json::from_slice(&std::fs::read(lock.path()).unwrap()).unwrap();
    assert_eq!(record.pid, std::process::id());
}

#[test]
fn stale_record_with_a_dead_pid_is_refused_without_flag_and_cleared_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let host = em_infra_core::engine::lock::hostname();
    for pid in [dead_pid(), 999_999] {
        write_record(tmp.path(), pid, &host);
        let err = EnvLock::acquire(tmp.path(), "up", false).unwrap_err();
        let msg = locked_message(&err);
        assert!(
            msg.contains(&format!(
                "a previous run (pid {pid} on {host}, started 2026-11-26T04:00:00Z, em-infra up)"
            )),
            "{msg}"
        );
        assert!(msg.contains("rerun with --clear-stale-lock"), "{msg}");
        // Refusing leaves the evidence in place.
        assert!(
            std::fs::read_to_string(tmp.path().join(LOCK_FILE))
                .unwrap()
                .contains(&pid.to_string())
        );

        let lock = EnvLock::acquire(tmp.path(), "up", true).unwrap();
        assert_eq!(
            lock.cleared_stale().unwrap().holder.as_ref().unwrap().pid,
            pid
        );
        drop(lock);
        assert!(!tmp.path().join(LOCK_FILE).exists());
    }
}

#[test]
fn a_tool_of_a_dead_run_that_still_runs_blocks_even_clear_stale_lock() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    // The dead run's tool, in a process group of its own as em-infra starts them.
    let mut tool = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = tool.id();
    let record = serde_json::json!({
        "pid": dead_pid(),
        "host": em_infra_core::engine::lock::hostname(),
        "started_at": "2026-11-26T04:00:00Z",
        "command": "up",
        "tool": { "pgid": pgid, "what": "ansible-playbook site.yml" },
    });
    std::fs::write(
        tmp.path().join(LOCK_FILE),
        serde_json::to_vec(&record).unwrap(),
    )
    .unwrap();
    for clear_stale in [false, true] {
        let msg = locked_message(&EnvLock::acquire(tmp.path(), "up", clear_stale).unwrap_err());
        assert!(
            msg.contains(&format!(
                "still runs: ansible-playbook site.yml (process group {pgid})"
            )),
            "{msg}"
        );
        assert!(msg.contains(&format!("kill -TERM -- -{pgid}")), "{msg}");
    }
    tool.kill().unwrap();
    tool.wait().unwrap();
    // Once the tool is gone, the record is an ordinary stale lock.
    let lock = EnvLock::acquire(tmp.path(), "up", true).unwrap();
    assert!(lock.cleared_stale().is_some());
}

#[test]
fn a_running_tool_is_recorded_in_the_lock_and_cleared_after() {
    use em_infra_core::engine::lock::RunningTool;
    let tmp = tempfile::tempdir().unwrap();
    let lock = EnvLock::acquire(tmp.path(), "up", false).unwrap();
    let tool = RunningTool {
        pgid: 4242,
        what: "terraform apply".into(),
    };
    lock.record_tool(Some(tool.clone()));
    let read = em_infra_core::engine::lock::read_holder(tmp.path()).unwrap();
    assert_eq!(read.tool, Some(tool));
    assert_eq!(read.pid, std::process::id());
    lock.record_tool(None);
    let read = em_infra_core::engine::lock::read_holder(tmp.path()).unwrap();
    assert_eq!(read.tool, None);
}

#[test]
fn stale_record_with_a_reused_pid_or_garbage_is_still_stale() {
    let tmp = tempfile::tempdir().unwrap();
    // pid 1 is alive but cannot hold our lock: the record is stale, and the message says why.
    write_record(tmp.path(), 1, &em_infra_core::engine::lock::hostname());
    let msg = locked_message(&EnvLock::acquire(tmp.path(), "up", false).unwrap_err());
    assert!(
        msg.contains("pid 1 is running now but does not hold the lock"),
        "{msg}"
    );
    drop(EnvLock::acquire(tmp.path(), "up", true).unwrap());

    // Another host's record cannot be checked; it is named as such.
    write_record(tmp.path(), 4242, "other-host.example");
    let msg = locked_message(&EnvLock::acquire(tmp.path(), "up", false).unwrap_err());
    assert!(msg.contains("another host (other-host.example)"), "{msg}");
    drop(EnvLock::acquire(tmp.path(), "up", true).unwrap());

    // An unreadable record.
    std::fs::write(tmp.path().join(LOCK_FILE), "{\"pid\": 12").unwrap();
    let msg = locked_message(&EnvLock::acquire(tmp.path(), "up", false).unwrap_err());
    assert!(msg.contains("record is unreadable"), "{msg}");
    let lock = EnvLock::acquire(tmp.path(), "up", true).unwrap();
    assert!(lock.cleared_stale().unwrap().holder.is_none());
}

#[test]
fn empty_lock_file_is_not_stale() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(LOCK_FILE), "").unwrap();
    let lock = EnvLock::acquire(tmp.path(), "up", false).unwrap();
    assert!(lock.cleared_stale().is_none());
}

/// Many contenders taking and releasing the lock: never two holders at once, even across the
/// release's unlink (a waiter that locked the removed file must notice and retry).
#[test]
fn contenders_never_hold_the_lock_together() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().to_path_buf());
    let inside = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (dir, inside, taken) = (dir.clone(), inside.clone(), taken.clone());
            std::thread::spawn(move || {
                let mut mine = 0;
                while mine < 25 {
                    match EnvLock::acquire(&dir, "up", false) {
                        Ok(lock) => {
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                            std::thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            drop(lock);
                            mine += 1;
                            taken.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(err) => {
                            // Only ever "held", never stale: every holder released properly.
                            let msg = locked_message(&err);
                            assert!(msg.contains("is locked by"), "{msg}");
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(taken.load(Ordering::SeqCst), 100);
    assert!(!tmp.path().join(LOCK_FILE).exists());
}
