//! `em-infra rotate-ssh-key`: bad input changes nothing (exit 2, the field named); against lab
//! hosts after `up`, the new key logs in, the old one is refused, the tfvars names the new `.pub`
//! with its comments kept, and a rerun changes nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;
use support::{Repo, code, stderr, stdout, terraform_available};

/// A fresh ed25519 key pair `<dir>/<name>` and `<name>.pub`, without a passphrase.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

fn pub_of(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

#[test]
fn bad_keys_are_bad_input_and_change_nothing() {
    let repo = Repo::new();
    let keys = repo.root().join("keys");
    let current = keygen(&keys, "current");
    let tfvars = repo.env_dir().join("terraform.tfvars");
    let before = fs::read_to_string(&tfvars).unwrap();
    let rotate = |key: &Path| {
        repo.cmd()
            .env("ANSIBLE_PRIVATE_KEY_FILE", &current)
            .arg("rotate-ssh-key")
            .arg("--key")
            .arg(key)
            .arg("--yes")
            .output()
            .unwrap()
    };

    // A missing key file.
    let out = rotate(&keys.join("nope"));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--key:"), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // A `.pub` that holds the private key instead.
    let broken = keygen(&keys, "broken");
    fs::copy(&broken, pub_of(&broken)).unwrap();
    let out = rotate(&broken);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--key:"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no public key"),
        "{}",
        stderr(&out)
    );

    // The key Ansible already uses.
    let out = rotate(&pub_of(&current));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already the key Ansible uses"),
        "{}",
        stderr(&out)
    );

    // A good key, but no Terraform state: no nodes to rotate on.
    let new = keygen(&keys, "new");
    let out = rotate(&new);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no Terraform state"),
        "{}",
        stderr(&out)
    );

    assert_eq!(fs::read_to_string(&tfvars).unwrap(), before);
    assert!(
        repo.runs().is_empty(),
        "a run was recorded: {:?}",
        repo.runs()
    );
}

#[test]
fn rotates_the_key_on_lab_hosts() {
    if !testlab::require_root_or_skip() || !terraform_available() {
        return;
    }
    let repo = Repo::new();
    let mut lab = support::lab_for_fixture(&repo);
    let up = support::em_in_lab(&lab, &repo, &["up"]);
    assert_eq!(code(&up), 0, "{}", stderr(&up));

    // The lab's ssh_config names the lab key as an IdentityFile, which ssh would also offer in
    // the proof; without it the proof can only pass with the new key.
    let config: String = fs::read_to_string(lab.ssh_config())
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("IdentityFile"))
        .map(|l| format!("{l}\n"))
        .collect();
    let config_path = repo.root().join("lab-ssh-config");
    fs::write(&config_path, config).unwrap();
    let ssh_args = format!(
        "-F {} -o ControlMaster=auto -o ControlPersist=60s",
        config_path.display()
    );
    let new = keygen(&repo.root().join("keys"), "id_rotated");
    let em = |args: &[&str]| {
        let mut cmd = support::em_in_lab_cmd(&lab, &repo, args);
        cmd.env("ANSIBLE_SSH_ARGS", &ssh_args);
        support::run_logged(&mut cmd, &format!("em-infra {}", args.join(" ")))
    };
    let new_arg = new.display().to_string();
    let tfvars = repo.env_dir().join("terraform.tfvars");
    let before = fs::read_to_string(&tfvars).unwrap();

    // --dry-run: the nodes and the tfvars line, nothing changed.
    let dry = em(&["rotate-ssh-key", "--key", &new_arg, "--dry-run"]);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    for (name, _) in support::LAB_NODES {
        assert!(stderr(&dry).contains(name), "{}", stderr(&dry));
    }
    assert!(
        stderr(&dry).contains(&format!("+ ssh_public_key_path = \"{new_arg}.pub\"")),
        "{}",
        stderr(&dry)
    );
    assert_eq!(fs::read_to_string(&tfvars).unwrap(), before);

    // Without --yes and without a terminal: exit 2, asking for --yes.
    let unconfirmed = em(&["rotate-ssh-key", "--key", &new_arg]);
    assert_eq!(code(&unconfirmed), 2, "{}", stderr(&unconfirmed));
    assert!(
        stderr(&unconfirmed).contains("--yes"),
        "{}",
        stderr(&unconfirmed)
    );

    let rotated = em(&["rotate-ssh-key", "--key", &new_arg, "--yes"]);
    assert_eq!(code(&rotated), 0, "{}", stderr(&rotated));
    assert!(
        stderr(&rotated).contains(&format!("export ANSIBLE_PRIVATE_KEY_FILE={new_arg}")),
        "{}",
        stderr(&rotated)
    );

    // The new key logs in, the old one is refused, on every node.
    let login = |key: &Path, ip: &str| {
        lab.command("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
            ])
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                lab.known_hosts().display()
            ))
            .arg("-i")
            .arg(key)
            .arg(format!("root@{ip}"))
            .arg("true")
            .output()
            .unwrap()
    };
    for (name, ip) in support::LAB_NODES {
        let ok = login(&new, ip);
        assert!(ok.status.success(), "{name}: {}", stderr(&ok));
        let refused = login(&lab.private_key(), ip);
        assert!(
            !refused.status.success(),
            "{name} still accepts the old key"
        );
    }

    // The tfvars names the new .pub and kept its comments.
    let after = fs::read_to_string(&tfvars).unwrap();
    assert!(
        after.contains(&format!("ssh_public_key_path = \"{new_arg}.pub\"")),
        "{after}"
    );
    for comment in before.lines().filter(|l| l.starts_with('#')) {
        assert!(after.contains(comment), "lost {comment:?}:\n{after}");
    }

    // `runs show` shows the run.
    let show = em(&["runs", "show"]);
    assert_eq!(code(&show), 0, "{}", stderr(&show));
    let shown = format!("{}{}", stdout(&show), stderr(&show));
    assert!(shown.contains("rotate-ssh-key"), "{shown}");

    // A rerun (Ansible still pointed at the old key) changes nothing.
    let again = em(&["rotate-ssh-key", "--key", &new_arg, "--yes"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    let run_dir = repo.runs().pop().unwrap();
    let log = fs::read_to_string(run_dir.join("rotate-ssh-key.log")).unwrap();
    let recap = em_infra_core::ansible::parse_recap(&log);
    assert_eq!(recap.len(), support::LAB_NODES.len(), "{log}");
    assert!(
        recap
            .iter()
            .all(|(_, changed, failed)| *changed == 0 && *failed == 0),
        "{recap:?}"
    );
    assert_eq!(fs::read_to_string(&tfvars).unwrap(), after);

    lab.down().expect("lab down");
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}
