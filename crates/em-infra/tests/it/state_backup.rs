//! `em-infra state backup|list|restore` on a temporary repository and state directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use serde_json::{Value, json};

use em_infra_core::config::{Environment, Project};
use em_infra_core::engine::backup::{self, BackupOutcome, KEEP_BACKUPS};

const LINEAGE: &str = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const OTHER_LINEAGE: &str = "99999999-0000-4000-8000-000000000000";

use crate::support;

/// A bare repository with an empty `k3s-dev` environment and a state directory beside it.
type Fixture = support::BareRepo;

impl Fixture {
    fn tfstate(&self) -> PathBuf {
        self.root
            .join("terraform/environments/k3s-dev/terraform.tfstate")
    }

    fn backups(&self) -> PathBuf {
        self.state.join("k3s-dev/backups")
    }

    fn env(&self) -> Environment {
        Project::discover(Some(&self.root), Some(&self.state))
            .unwrap()
            .environment("k3s-dev")
            .unwrap()
    }

    fn write_state(&self, serial: u64, lineage: &str, resources: usize) -> Vec<u8> {
        let bytes = state_json(serial, lineage, resources);
        std::fs::write(self.tfstate(), &bytes).unwrap();
        bytes
    }

    fn backup_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.backups())
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Take a backup through the CLI and return its ID.
    fn backup(&self) -> String {
        let out = self
            .cmd(&["state", "backup", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["created"], true, "{v}");
        v["backup"]["id"].as_str().unwrap().to_string()
    }
}

/// A Terraform state v4 with `resources` instances.
fn state_json(serial: u64, lineage: &str, resources: usize) -> Vec<u8> {
    let instances: Vec<Value> = (0..resources)
        .map(|i| json!({"index_key": i, "schema_version": 0, "attributes": {"id": i}}))
        .collect();
    let state = json!({
        "version": 4,
        "terraform_version": "1.9.8",
        "serial": serial,
        "lineage": lineage,
        "outputs": {},
        "resources": [{"mode": "managed", "type": "terraform_data", "name": "node",
                       "provider": "provider[\"terraform.io/builtin/terraform\"]", "instances": instances}],
        "check_results": null
    });
    serde_json::to_vec_pretty(&state).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn backup_copies_the_state_0600_and_list_shows_it() {
    let f = Fixture::new();
    let bytes = f.write_state(7, LINEAGE, 3);
    f.cmd(&["state", "backup"]).assert().success().stderr(
        predicate::str::contains("backed up").and(predicate::str::contains(
            "serial 7, lineage 5f0c1a2b, 3 resources",
        )),
    );
    let files = f.backup_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = &files[0];
    assert!(name.ends_with("-manual-serial7.tfstate"), "{name}");
    let path = f.backups().join(name);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&f.backups()), 0o700);
    assert_eq!(mode(&f.state.join("k3s-dev")), 0o700);
    assert!(
        !f.state.join("k3s-dev/lock").exists(),
        "the lock is released"
    );

    let id = name.trim_end_matches(".tfstate");
    let out = f
        .cmd(&["state", "list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let row = out
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{out}"));
    for cell in ["manual", " 7 ", "5f0c1a2b", "B", " 3"] {
        assert!(row.contains(cell), "{cell:?} in {row:?}");
    }
    assert!(!row.contains(LINEAGE), "lineage is shortened: {row}");
    assert!(out.lines().next().unwrap().contains("taken at"), "{out}");

    let json: Value = serde_json::from_slice(
        &f.cmd(&["state", "list", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    let item = &json.as_array().unwrap()[0];
    assert_eq!(item["id"], id);
    assert_eq!(item["reason"], "manual");
    assert_eq!(item["serial"], 7);
    assert_eq!(item["lineage"], LINEAGE);
    assert_eq!(item["resources"], 3);
    assert_eq!(item["size"], bytes.len());

    // Unchanged state: no second copy.
    f.cmd(&["state", "backup"])
        .assert()
        .success()
        .stderr(predicate::str::contains("unchanged since backup"));
    assert_eq!(f.backup_files().len(), 1);
}

#[test]
fn nothing_to_back_up_without_a_state() {
    let f = Fixture::new();
    f.cmd(&["state", "backup"])
        .assert()
        .success()
        .stderr(predicate::str::contains("no state to back up"));
    std::fs::write(f.tfstate(), "").unwrap();
    f.cmd(&["state", "backup"])
        .assert()
        .success()
        .stderr(predicate::str::contains("missing or empty"));
    f.cmd(&["state", "list"])
        .assert()
        .success()
        .stderr(predicate::str::contains("no state backups"));
    assert!(f.backup_files().is_empty());
    assert_eq!(backup::backup_tfstate(&f.env(), "pre-apply").unwrap(), None);
}

#[test]
fn library_backup_before_apply_skips_identical_copies() {
    let f = Fixture::new();
    let env = f.env();
    f.write_state(1, LINEAGE, 0);
    let first = backup::backup_tfstate(&env, "pre-apply").unwrap().unwrap();
    assert!(first.id.ends_with("-pre-apply-serial1"), "{}", first.id);
    // Same content: the existing backup is returned, nothing is written.
    let again = backup::take_backup(&env, "pre-destroy").unwrap();
    assert_eq!(again, BackupOutcome::Unchanged(first.clone()));
    // Same second, same reason and serial, different content: a distinct name.
    let mut bytes = state_json(1, LINEAGE, 0);
    bytes.extend_from_slice(b"\n");
    std::fs::write(f.tfstate(), &bytes).unwrap();
    let BackupOutcome::Created(second) = backup::take_backup(&env, "pre-apply").unwrap() else {
        panic!()
    };
    assert_ne!(second.id, first.id);
    assert_eq!(
        backup::list_backups(&env).unwrap()[0].id,
        second.id,
        "newest first"
    );
}

#[test]
fn rotation_keeps_the_newest_twenty() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.backups()).unwrap();
    // Twenty older backups, named as em-infra names them, plus a file that is not ours.
    for serial in 1..=KEEP_BACKUPS as u64 {
        let name = format!("20250101T0000{serial:02}Z-pre-apply-serial{serial}.tfstate");
        std::fs::write(f.backups().join(name), state_json(serial, LINEAGE, 1)).unwrap();
    }
    std::fs::write(f.backups().join("notes.txt"), "mine").unwrap();
    f.write_state(100, LINEAGE, 1);
    let id = f.backup();

    let env = f.env();
    let kept = backup::list_backups(&env).unwrap();
    assert_eq!(kept.len(), KEEP_BACKUPS);
    assert_eq!(kept[0].id, id);
    let serials: Vec<u64> = kept.iter().map(|b| b.serial.unwrap()).collect();
    assert!(!serials.contains(&1), "the oldest was removed: {serials:?}");
    assert!(serials.contains(&2) && serials.contains(&20), "{serials:?}");
    assert!(
        f.backups().join("notes.txt").exists(),
        "foreign files are left alone"
    );

    // And again: still twenty.
    f.write_state(101, LINEAGE, 1);
    f.backup();
    let kept = backup::list_backups(&env).unwrap();
    assert_eq!(kept.len(), KEEP_BACKUPS);
    assert!(!kept.iter().any(|b| b.serial == Some(2)));
}

#[test]
fn restore_refuses_a_newer_current_state_without_force() {
    let f = Fixture::new();
    let old = f.write_state(3, LINEAGE, 2);
    let id = f.backup();
    let newer = f.write_state(5, LINEAGE, 4);

    f.cmd(&["state", "restore", &id]).assert().code(5).stderr(
        predicate::str::contains("the current state is newer (serial 5 > 3)")
            .and(predicate::str::contains("--force")),
    );
    assert_eq!(
        std::fs::read(f.tfstate()).unwrap(),
        newer,
        "refusal changes nothing"
    );
    assert_eq!(f.backup_files().len(), 1);

    f.cmd(&["state", "restore", &id, "--force"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains(format!("restored {id}"))
                .and(predicate::str::contains(
                    "serial 5 → 3, lineage 5f0c1a2b → 5f0c1a2b (same)",
                ))
                .and(predicate::str::contains(
                    "the replaced state is saved as backup",
                )),
        );
    assert_eq!(std::fs::read(f.tfstate()).unwrap(), old);
    assert_eq!(mode(&f.tfstate()), 0o600);
    // The overwritten state was backed up first.
    let pre = backup::list_backups(&f.env()).unwrap();
    assert_eq!(pre.len(), 2);
    assert_eq!(pre[0].reason, "pre-restore");
    assert_eq!(std::fs::read(&pre[0].path).unwrap(), newer);
}

#[test]
fn restore_refuses_another_lineage_without_force() {
    let f = Fixture::new();
    let ours = f.write_state(3, LINEAGE, 2);
    let id = f.backup();
    f.write_state(1, OTHER_LINEAGE, 1);
    f.cmd(&["state", "restore", &id])
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "different lineage (99999999-0000-4000-8000-000000000000 ≠ 5f0c1a2b",
        ));
    let out = f
        .cmd(&["state", "restore", &id, "--force", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["id"], id.as_str());
    assert_eq!(report["before"]["status"], "valid");
    assert_eq!(report["before"]["lineage"], OTHER_LINEAGE);
    assert_eq!(report["after"]["serial"], 3);
    assert_eq!(report["overridden"].as_array().unwrap().len(), 1);
    assert!(
        report["pre_restore_backup"]
            .as_str()
            .unwrap()
            .contains("-pre-restore-serial1")
    );
    assert_eq!(std::fs::read(f.tfstate()).unwrap(), ours);
}

#[test]
fn restore_over_an_older_or_missing_state_needs_no_force() {
    let f = Fixture::new();
    let good = f.write_state(4, LINEAGE, 2);
    let id = f.backup();
    f.write_state(2, LINEAGE, 1);
    f.cmd(&["state", "restore", &id])
        .assert()
        .success()
        .stderr(predicate::str::contains("serial 2 → 4"));
    assert_eq!(std::fs::read(f.tfstate()).unwrap(), good);

    // Restoring what is already there changes nothing.
    f.cmd(&["state", "restore", &id])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing to do"));

    std::fs::remove_file(f.tfstate()).unwrap();
    f.cmd(&["state", "restore", &format!("{id}.tfstate")])
        .assert()
        .success()
        .stderr(predicate::str::contains("serial none → 4"));
    assert_eq!(std::fs::read(f.tfstate()).unwrap(), good);
}

/// The fault test: a truncated terraform.tfstate (crash mid-write, full disk) is restored from
/// its backup without --force, and the broken file is kept as evidence.
#[test]
fn truncated_state_is_restored_from_backup() {
    let f = Fixture::new();
    let good = f.write_state(9, LINEAGE, 5);
    let id = f.backup();
    std::fs::write(f.tfstate(), &good[..good.len() / 2]).unwrap();

    f.cmd(&["state", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&id));
    f.cmd(&["state", "restore", &id]).assert().success().stderr(
        predicate::str::contains("is corrupt (")
            .and(predicate::str::contains(format!("restored {id}")))
            .and(predicate::str::contains("serial corrupt → 9")),
    );
    assert_eq!(std::fs::read(f.tfstate()).unwrap(), good);
    assert_eq!(mode(&f.tfstate()), 0o600);
    let backups = backup::list_backups(&f.env()).unwrap();
    assert!(
        backups[0].id.ends_with("-pre-restore-unreadable"),
        "{:?}",
        backups[0].id
    );
    assert!(backups[0].unreadable.is_some());
    assert_eq!(
        std::fs::read(&backups[0].path).unwrap(),
        &good[..good.len() / 2]
    );
}

#[test]
fn unknown_backup_id_is_bad_input() {
    let f = Fixture::new();
    f.cmd(&["state", "restore", "nope"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("no state backup \"nope\"")
                .and(predicate::str::contains("there are no backups")),
        );
    f.write_state(1, LINEAGE, 1);
    let id = f.backup();
    f.cmd(&["state", "restore", "20990101T000000Z-manual-serial1"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("newest: {id}"))
                .and(predicate::str::contains("em-infra state list")),
        );
}

#[test]
fn unreadable_backup_is_never_restored() {
    let f = Fixture::new();
    std::fs::write(f.tfstate(), "{\"version\": 4, \"ser").unwrap();
    let id = f.backup();
    assert!(id.ends_with("-manual-unreadable"), "{id}");
    f.cmd(&["state", "restore", &id, "--force"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not a readable Terraform state",
        ));
}

#[test]
fn state_commands_wait_for_a_running_environment() {
    let f = Fixture::new();
    f.write_state(1, LINEAGE, 1);
    let id = f.backup();
    let env = f.env();
    let lock = em_infra_core::engine::lock::EnvLock::acquire(&env.state_dir, "up", false).unwrap();
    f.cmd(&["state", "restore", &id, "--force"])
        .assert()
        .code(75)
        .stderr(
            predicate::str::contains("is locked by pid")
                .and(predicate::str::contains("(em-infra up)")),
        );
    f.cmd(&["state", "backup"]).assert().code(75);
    f.cmd(&["state", "list"]).assert().success();
    drop(lock);

    // A stale lock from a crashed run does not block recovery; it is named and cleared.
    std::fs::write(
        env.state_dir.join("lock"),
        json!({"pid": 999_999, "host": em_infra_core::engine::lock::hostname(),
               "started_at": "2026-11-26T04:00:00Z", "command": "up"})
        .to_string(),
    )
    .unwrap();
    f.cmd(&["state", "restore", &id]).assert().success().stderr(
        predicate::str::contains("a previous run (pid 999999")
            .and(predicate::str::contains("cleared it")),
    );
    assert!(!env.state_dir.join("lock").exists());
}
