//! The Ansible commands the configure and verify stages run.
//!
//! Ansible always runs from the repository root with the canonical dynamic inventory
//! (`ansible/inventory/terraform_inventory.yml`), exactly like the phased commands in the README;
//! `EM_INFRA_TFSTATE` points the inventory plugin at this environment's state and `EM_INFRA_BIN`
//! at this very binary, so the inventory Ansible sees is the one `em-infra inventory` prints.
//! Secrets travel in files under `.em-infra/<env>/` (found through `EM_INFRA_ENV_DIR`), never on a
//! command line.

use std::path::{Path, PathBuf};

use crate::config::{Environment, Project};
use crate::runner::Cmd;

pub const INVENTORY_CONFIG: &str = "ansible/inventory/terraform_inventory.yml";

/// Directory holding `ansible-playbook`: `EM_INFRA_ANSIBLE_BIN_DIR`, else `<root>/.venv/bin` when it
/// exists (the test command installs the pinned ansible-core there), else PATH.
pub fn program(project: &Project, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("EM_INFRA_ANSIBLE_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let venv = project.root.join(".venv/bin").join(name);
    if venv.is_file() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// The pinned runtime requirements (ansible-core), relative to the repository root.
pub const RUNTIME_REQUIREMENTS: &str = "requirements-runtime.txt";
/// Written into `.venv` after em-infra installed [`RUNTIME_REQUIREMENTS`] there: their hash.
const RUNTIME_STAMP: &str = ".venv/.em-infra-runtime.sha256";

/// What it takes to have the pinned Ansible runtime in `<root>/.venv`: nothing (it is there, or
/// `EM_INFRA_ANSIBLE_BIN_DIR` points elsewhere), or these commands, in order. The test command's
/// `.venv` (dev requirements include the runtime ones) counts as there.
pub fn runtime_setup(project: &Project) -> Vec<Cmd> {
    if std::env::var_os("EM_INFRA_ANSIBLE_BIN_DIR").is_some() {
        return Vec::new();
    }
    let venv = project.root.join(".venv");
    let installed = venv.join("bin/ansible-playbook").is_file();
    let stamp = std::fs::read_to_string(project.root.join(RUNTIME_STAMP)).ok();
    if installed && stamp.is_none_or(|s| Some(s.trim().to_string()) == runtime_hash(project)) {
        return Vec::new();
    }
    let mut cmds = Vec::new();
    if !venv.join("bin/python3").is_file() {
        cmds.push(
            Cmd::new("python3", "python3 -m venv .venv")
                .cwd(&project.root)
                .args(["-m", "venv", ".venv"]),
        );
    }
    cmds.push(
        Cmd::new(
            venv.join("bin/pip"),
            format!("pip install -r {RUNTIME_REQUIREMENTS}"),
        )
        .cwd(&project.root)
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            RUNTIME_REQUIREMENTS,
        ]),
    );
    cmds
}

/// Record that `.venv` holds the current runtime requirements (after [`runtime_setup`]'s
/// commands succeeded), so a changed pin installs again.
pub fn mark_runtime_installed(project: &Project) -> anyhow::Result<()> {
    let hash = runtime_hash(project).unwrap_or_default();
    crate::fsutil::write_atomic(
        &project.root.join(RUNTIME_STAMP),
        format!("{hash}\n").as_bytes(),
        0o644,
    )
}

fn runtime_hash(project: &Project) -> Option<String> {
    std::fs::read(project.root.join(RUNTIME_REQUIREMENTS))
        .ok()
        .map(|bytes| blake3::hash(&bytes).to_hex().to_string())
}

/// `ansible-playbook <playbook>` against the environment's inventory.
pub fn playbook(project: &Project, env: &Environment, playbook: &str, what: &str) -> Cmd {
    let mut cmd = Cmd::new(program(project, "ansible-playbook"), what)
        .cwd(&project.root)
        .arg("-i")
        .arg(INVENTORY_CONFIG)
        .arg(format!("ansible/playbooks/{playbook}"))
        .env("EM_INFRA_TFSTATE", env.tfstate())
        .env("EM_INFRA_ENV_DIR", &env.state_dir)
        .env("ANSIBLE_CONFIG", project.root.join("ansible.cfg"))
        // An inventory that fails to load stops the run, instead of leaving Ansible with no hosts
        // and exit code 0 (not in ansible.cfg: ansible-lint's syntax checks run without one).
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0");
    if let Ok(exe) = std::env::current_exe() {
        cmd = cmd.env("EM_INFRA_BIN", exe);
    }
    // Extra variables for site-specific settings (e.g. an air-gapped k3s binary): a YAML/JSON file.
    if let Some(file) = std::env::var_os("EM_INFRA_ANSIBLE_VARS_FILE") {
        let mut arg = std::ffi::OsString::from("@");
        arg.push(file);
        cmd = cmd.arg("--extra-vars").arg(arg);
    }
    cmd
}

/// The version line of `ansible-playbook --version` (`ansible-playbook [core 2.19.14]`) → `2.19.14`.
pub fn parse_core_version(output: &str) -> Option<String> {
    let start = output.find("[core ")? + 6;
    let end = output[start..].find(']')? + start;
    Some(output[start..end].to_string())
}

/// Counts from a PLAY RECAP: (host, changed, failed + unreachable).
pub fn parse_recap(output: &str) -> Vec<(String, u32, u32)> {
    let mut hosts = Vec::new();
    let mut in_recap = false;
    for line in output.lines() {
        if line.starts_with("PLAY RECAP") {
            in_recap = true;
            hosts.clear();
            continue;
        }
        if !in_recap {
            continue;
        }
        let Some((host, counts)) = line.split_once(':') else {
            continue;
        };
        let field = |name: &str| -> u32 {
            counts
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if counts.contains("ok=") {
            hosts.push((
                host.trim().to_string(),
                field("changed"),
                field("failed") + field("unreachable"),
            ));
        }
    }
    hosts
}

/// One host's failure in a play's output: where it failed and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    pub host: String,
    /// The task's name as Ansible prints it (`k3s_agent : Join the cluster`).
    pub task: String,
    pub unreachable: bool,
}

/// The hosts that failed and at which task, from the default callback's output
/// (`TASK [role : name] ***` then `fatal: [host]: FAILED! => …` or `… UNREACHABLE! => …`).
/// Failures Ansible ignored (`...ignoring` on the next line) are not failures.
pub fn failures(output: &str) -> Vec<HostFailure> {
    let mut task = String::new();
    let mut found: Vec<HostFailure> = Vec::new();
    for line in output.lines() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or_default().to_string();
        } else if line.starts_with("...ignoring") {
            found.pop();
        } else if let Some(rest) = line.strip_prefix("fatal: [") {
            let Some((host, verdict)) = rest.split_once(']') else {
                continue;
            };
            // `[host -> delegate]`: the failure belongs to the host the task ran for.
            let host = host.split(" -> ").next().unwrap_or(host).to_string();
            found.push(HostFailure {
                host,
                task: task.clone(),
                unreachable: verdict.contains("UNREACHABLE!"),
            });
        }
    }
    found
}

/// `lab-worker-1 at "k3s_agent : Join the cluster"; lab-worker-2 unreachable at "…"`.
pub fn describe_failures(failures: &[HostFailure]) -> String {
    failures
        .iter()
        .map(|f| {
            format!(
                "{}{} at \"{}\"",
                f.host,
                if f.unreachable { " unreachable" } else { "" },
                f.task
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The private key Ansible uses: `ANSIBLE_PRIVATE_KEY_FILE`, else `~/.ssh/id_ed25519`.
pub fn private_key() -> Option<PathBuf> {
    std::env::var_os("ANSIBLE_PRIVATE_KEY_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".ssh/id_ed25519")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_core_version() {
        let out = "ansible-playbook [core 2.19.14]\n  config file = /x/ansible.cfg\n";
        assert_eq!(parse_core_version(out).as_deref(), Some("2.19.14"));
        assert_eq!(parse_core_version("nope"), None);
    }

    #[test]
    fn names_the_failed_hosts_and_tasks() {
        let out = "PLAY [k3s agents] ***\n\
                   TASK [k3s_agent : Install the unit] ****\n\
                   ok: [lab-worker-1]\n\
                   fatal: [lab-worker-3]: FAILED! => {\"changed\": false, \"msg\": \"ignored\"}\n\
                   ...ignoring\n\
                   TASK [k3s_agent : Join the cluster] ****\n\
                   fatal: [lab-worker-1]: FAILED! => {\"changed\": false, \"msg\": \"join failed\"}\n\
                   fatal: [lab-worker-2 -> lab-cp-1]: UNREACHABLE! => {\"msg\": \"ssh: timed out\"}\n\
                   PLAY RECAP ****\n";
        let found = failures(out);
        assert_eq!(
            found,
            vec![
                HostFailure {
                    host: "lab-worker-1".into(),
                    task: "k3s_agent : Join the cluster".into(),
                    unreachable: false,
                },
                HostFailure {
                    host: "lab-worker-2".into(),
                    task: "k3s_agent : Join the cluster".into(),
                    unreachable: true,
                },
            ]
        );
        assert_eq!(
            describe_failures(&found),
            "lab-worker-1 at \"k3s_agent : Join the cluster\"; \
             lab-worker-2 unreachable at \"k3s_agent : Join the cluster\""
        );
    }

    #[test]
    fn parses_the_last_recap() {
        let out = "PLAY RECAP ***\nold : ok=1 changed=5 unreachable=0 failed=0\n\
                   PLAY RECAP *********\n\
                   lab-cp-1                   : ok=20   changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0\n\
                   lab-worker-1               : ok=15   changed=2    unreachable=1    failed=1    skipped=3\n";
        assert_eq!(
            parse_recap(out),
            vec![
                ("lab-cp-1".to_string(), 0, 0),
                ("lab-worker-1".to_string(), 2, 2)
            ]
        );
    }
}
