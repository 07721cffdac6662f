//! Checks of this machine: the tools (terraform or tofu, ansible, ssh), the SSH keys, and the
//! environment's tfvars (the same rules as `check`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::topology::Inputs;
use crate::config::{Environment, Project};
use crate::runner::{self, Capture, Cmd, Interrupt, Outcome, Redactor};

use super::{DoctorReport, Group};

/// How doctor runs a tool: through the run's runner in the preflight stage (logged and timed in
/// the stage log), or through the runner with nowhere to log for `em-infra doctor` itself.
pub type Exec<'a> = dyn FnMut(&Cmd) -> anyhow::Result<Outcome> + 'a;

/// `em-infra doctor`'s executor: the one runner, output kept only for the checks.
pub fn standalone_exec(cmd: &Cmd) -> anyhow::Result<Outcome> {
    runner::run(
        cmd,
        &mut std::io::sink(),
        &Redactor::from_env(),
        &Interrupt::detached(),
        Capture::Stdout,
        &mut (),
    )
}

/// Run a version command with a time limit: `(stdout, all output)` on success (tools differ in
/// where they print: terraform warns on stderr beside its JSON, ssh prints its version there).
fn output_of(
    exec: &mut Exec<'_>,
    program: &Path,
    args: &[&str],
) -> Result<(String, String), String> {
    let cmd = Cmd::new(program, format!("{} {}", program.display(), args.join(" ")))
        .args(args.iter().copied())
        .env("CHECKPOINT_DISABLE", "1")
        .timeout(Duration::from_secs(30));
    let out = match exec(&cmd) {
        Ok(out) => out,
        Err(e) if crate::failure::kind_of(&e) == Some(crate::failure::FailureKind::Preflight) => {
            return Err("not found".into());
        }
        Err(e) => return Err(format!("{e:#}")),
    };
    if out.timed_out {
        return Err("did not answer within 30 s".into());
    }
    let all = out.tail.join("\n");
    if out.success() {
        Ok((out.stdout, all))
    } else {
        Err(format!(
            "{}: {}",
            out.exited_with(),
            all.lines().next().unwrap_or("").trim()
        ))
    }
}

fn version_at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= min
}

pub(super) fn check_terraform(report: &mut DoctorReport, exec: &mut Exec<'_>) {
    let name = "terraform";
    let fix = "install Terraform ≥ 1.9 or OpenTofu ≥ 1.9 (or point EM_INFRA_TERRAFORM at it)";
    let Some(bin) = crate::terraform::binary() else {
        report.fail(
            Group::Local,
            name,
            "neither terraform nor tofu is on PATH",
            fix,
        );
        return;
    };
    match output_of(exec, Path::new(&bin), &["version", "-json"]) {
        Ok((out, _)) => {
            let version = serde_json::from_str::<serde_json::Value>(&out)
                .ok()
                .and_then(|v| v["terraform_version"].as_str().map(str::to_string));
            match version {
                Some(v) if version_at_least(&v, (1, 9)) => {
                    report.ok(Group::Local, name, format!("{bin} {v}"))
                }
                Some(v) => report.fail(
                    Group::Local,
                    name,
                    format!("{bin} {v} is older than 1.9"),
                    fix,
                ),
                None => report.fail(
                    Group::Local,
                    name,
                    format!("`{bin} version -json` printed no terraform_version"),
                    fix,
                ),
            }
        }
        Err(e) => report.fail(Group::Local, name, format!("{bin} version: {e}"), fix),
    }
}

pub(super) fn check_ansible(report: &mut DoctorReport, exec: &mut Exec<'_>, project: &Project) {
    let name = "ansible-core";
    let fix = "`em-infra up` installs the pinned ansible-core into .venv on its first run (or: \
               `python3 -m venv .venv && .venv/bin/pip install -r requirements-runtime.txt`; or set \
               EM_INFRA_ANSIBLE_BIN_DIR to an install of ansible-core ≥ 2.15)";
    let program = crate::ansible::program(project, "ansible-playbook");
    match output_of(exec, &program, &["--version"]) {
        Ok((out, _)) => match crate::ansible::parse_core_version(&out) {
            Some(v) if version_at_least(&v, (2, 15)) => {
                report.ok(Group::Local, name, format!("{v} ({})", program.display()))
            }
            Some(v) => report.fail(
                Group::Local,
                name,
                format!("ansible-core {v} is older than 2.15"),
                fix,
            ),
            None => report.fail(
                Group::Local,
                name,
                format!("{} --version printed no core version", program.display()),
                fix,
            ),
        },
        Err(e) => report.fail(
            Group::Local,
            name,
            format!("{}: {e}", program.display()),
            fix,
        ),
    }
}

pub(super) fn check_ssh(report: &mut DoctorReport, exec: &mut Exec<'_>) {
    let fix = "install an OpenSSH client (apt install openssh-client)";
    if !crate::terraform::on_path("ssh") {
        report.fail(Group::Local, "ssh", "ssh is not on PATH", fix);
        return;
    }
    match output_of(exec, Path::new("ssh"), &["-V"]) {
        // OpenSSH prints its version on stderr.
        Ok((_, all)) => report.ok(
            Group::Local,
            "ssh",
            all.lines().next().unwrap_or("ssh").trim().to_string(),
        ),
        Err(e) => report.fail(Group::Local, "ssh", format!("ssh -V: {e}"), fix),
    }
}

pub(super) fn check_private_key(report: &mut DoctorReport) {
    use std::os::unix::fs::PermissionsExt;
    let name = "SSH key";
    let Some(key) = crate::ansible::private_key() else {
        report.fail(
            Group::Local,
            name,
            "neither ANSIBLE_PRIVATE_KEY_FILE nor HOME is set",
            "set ANSIBLE_PRIVATE_KEY_FILE to your private key",
        );
        return;
    };
    let shown = key.display();
    match std::fs::metadata(&key) {
        Ok(meta) if meta.is_file() => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                report.fail(
                    Group::Local,
                    name,
                    format!("{shown} has mode {mode:o}: ssh refuses a key others can read"),
                    format!("chmod 600 {shown}"),
                );
            } else {
                report.ok(Group::Local, name, format!("{shown} (mode {mode:o})"));
            }
        }
        _ => report.fail(
            Group::Local,
            name,
            format!("{shown} not found"),
            format!(
                "create one: ssh-keygen -t ed25519 -f {shown} (or set ANSIBLE_PRIVATE_KEY_FILE)"
            ),
        ),
    }
}

pub(super) fn check_tfvars(
    report: &mut DoctorReport,
    project: &Project,
    env: &Environment,
    check: &crate::config::check::Report,
) {
    let name = "tfvars";
    let file = check
        .tfvars
        .strip_prefix(&project.root)
        .unwrap_or(&check.tfvars)
        .display();
    if check.ok() {
        report.ok(
            Group::Local,
            name,
            format!(
                "{file}: every rule holds, {} nodes planned",
                check.nodes.len()
            ),
        );
        return;
    }
    let n = check.findings.len();
    let first: Vec<String> = check
        .findings
        .iter()
        .take(3)
        .map(ToString::to_string)
        .collect();
    let more = if n > 3 {
        format!("; and {} more", n - 3)
    } else {
        String::new()
    };
    let fix = format!(
        "{} (`em-infra check --env {}` lists every problem with its fix)",
        check.findings[0].fix, env.name
    );
    report.fail(
        Group::Local,
        name,
        format!(
            "{n} problem{} in {file}: {}{more}",
            if n == 1 { "" } else { "s" },
            first.join("; ")
        ),
        fix,
    );
}

/// `~/x` → `$HOME/x`.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

pub(super) fn check_public_key(report: &mut DoctorReport, inputs: &Inputs) {
    let path = expand_home(&inputs.ssh_public_key_path);
    let has_key = std::fs::read_to_string(&path).is_ok_and(|t| {
        t.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    if has_key {
        report.ok(Group::Local, "SSH public key", path.display().to_string());
    } else {
        report.fail(
            Group::Local,
            "SSH public key",
            format!(
                "ssh_public_key_path {} is missing or holds no key: Terraform's plan would fail",
                inputs.ssh_public_key_path
            ),
            "point ssh_public_key_path at your public key (.pub), or create one: ssh-keygen -t ed25519",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare() {
        assert!(version_at_least("1.9.0", (1, 9)));
        assert!(version_at_least("v1.10.2", (1, 9)));
        assert!(!version_at_least("1.8.5", (1, 9)));
        assert!(version_at_least("2.19.14", (2, 15)));
    }
}
