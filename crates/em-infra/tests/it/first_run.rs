//! A newcomer's first run, for real: a fresh copy of the repository (what `git clone` gives), a
//! machine with Rust, Terraform, python3 and ssh but no Ansible anywhere on PATH and no `.venv`.
//! `./scripts/provision_dev_env.sh --dry-run` must set up the pinned Ansible runtime itself, then
//! show the nodes and every command, without ever calling Ansible missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::support::{self, code, repo_root, stderr};

/// The tracked files of the repository, copied into `to` (symlinks stay symlinks).
fn fresh_clone(to: &Path) {
    let root = repo_root();
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(listed.status.success());
    for rel in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let (src, dst) = (root.join(rel), to.join(rel));
        let Ok(meta) = fs::symlink_metadata(&src) else {
            continue; // deleted in the working tree
        };
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A PATH with the workstation's prerequisites and nothing of Ansible.
fn path_without_ansible(bin: &Path) -> Option<String> {
    fs::create_dir_all(bin).unwrap();
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let python = PathBuf::from(String::from_utf8(python.stdout).ok()?.trim());
    let terraform = which("terraform")?;
    for (name, target) in [("python3", python), ("terraform", terraform)] {
        std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let ansible_visible = std::env::split_paths(&path).any(|d| d.join("ansible-playbook").exists());
    (!ansible_visible).then_some(path)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[test]
fn a_fresh_clone_without_ansible_sets_it_up_and_shows_the_dry_run() {
    if !support::terraform_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("em-infra");
    fresh_clone(&clone);
    let Some(path) = path_without_ansible(&tmp.path().join("bin")) else {
        support::skip_or_fail("python3 or an Ansible-free PATH is not available");
        return;
    };
    // The release binary the wrapper would build, already built (newer than every source).
    fs::create_dir_all(clone.join("target/release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_em-infra"),
        clone.join("target/release/em-infra"),
    )
    .unwrap();
    fs::create_dir_all(tmp.path().join("home")).unwrap();

    let started = Instant::now();
    let out = Command::new(clone.join("scripts/provision_dev_env.sh"))
        .arg("--dry-run")
        .current_dir(&clone)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", tmp.path().join("home"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    eprintln!(
        "fresh clone → dry-run output in {:.1}s (with the .venv set-up)",
        started.elapsed().as_secs_f64()
    );
    let err = stderr(&out);
    // No Proxmox credentials here: preflight fails (3), and the dry run still shows every stage.
    assert_eq!(code(&out), 3, "{err}");
    assert!(
        clone.join(".venv/bin/ansible-playbook").is_file(),
        "the runtime was set up: {err}"
    );
    for part in [
        "setting up the pinned Ansible runtime in .venv",
        "✓ ansible-core: 2.19.14",
        "nodes from",
        "k3s-dev-cp-1",
        "would run:",
        "ansible/playbooks/site.yml",
    ] {
        assert!(err.contains(part), "{part:?} missing:\n{err}");
    }
    assert!(!err.contains("✗ ansible-core"), "{err}");

    // The second run finds the runtime in place.
    let again = Command::new(clone.join("scripts/provision_dev_env.sh"))
        .arg("--dry-run")
        .current_dir(&clone)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", tmp.path().join("home"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        !stderr(&again).contains("setting up the pinned Ansible runtime"),
        "{}",
        stderr(&again)
    );
}
