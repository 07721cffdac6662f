//! The template on the Proxmox host: `em-infra prepare` and the `prepare` stage.
//!
//! Both run the same command, built by [`playbook_cmd`]:
//!
//! ```text
//! ansible-playbook -i <work>/inventory.yml ansible/playbooks/prepare-template.yml --extra-vars @<work>/vars.json
//! ```
//!
//! - `inventory.yml`: group `proxmox_hosts` with one host named after `proxmox_node` (tfvars),
//!   `ansible_host` = the host of `PROXMOX_VE_ENDPOINT`, `ansible_user` =
//!   `PROXMOX_VE_SSH_USERNAME` or `root`. Before provision there is no Terraform state, so this
//!   small inventory is written instead of the state-derived one.
//! - `vars.json`: the environment's tfvars values under the role's names (`template_vm_id` →
//!   `proxmox_template_vm_id`, `datastore_id` → `proxmox_template_datastore`, `network_bridge` →
//!   `proxmox_template_bridge`, `proxmox_node` → `proxmox_template_node`), the refresh flag and
//!   VM ID, and where the play writes its result (`template-result.json`, read by [`read_result`]).
//!   terraform.tfvars stays the one source of truth; nothing secret is in either file.
//!
//! The idempotence decision (skip / newer / create / rebuild, never touching a foreign VM) lives in
//! the role (`ansible/roles/proxmox_template/tasks/decide.yml`).
//!
//! The `prepare` stage calls it like this (a sketch; the engine owns the stage):
//!
//! ```ignore
//! let inputs = topology::load(env, None)?.inputs;   // after its findings were reported
//! let cmd = prepare::playbook_cmd(project, env, &inputs, refresh, &run.dir)?;
//! run.exec_checked(Stage::Prepare, &cmd, Capture::LogOnly)?;
//! match prepare::read_result(&run.dir)? {
//!     Some(r) if r.newer_available() => /* succeeded, with r.message as a warning */,
//!     Some(r) if r.needs_tfvars_update() => /* succeeded: tell the user to set template_vm_id = r.vm_id */,
//!     Some(r) => /* succeeded: r.message (r.changed() says whether anything was built) */,
//!     None => /* the play ended early */,
//! }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::topology::{self, Inputs};
use crate::config::{Environment, Project};
use crate::failure::{Failure, bad_input};
use crate::runner::{self, Capture, Cmd, Interrupt, Redactor};

/// The playbook, relative to the repository root.
pub const PLAYBOOK: &str = "ansible/playbooks/prepare-template.yml";
/// File names inside the work directory.
pub const INVENTORY_FILE: &str = "inventory.yml";
pub const VARS_FILE: &str = "vars.json";
pub const RESULT_FILE: &str = "template-result.json";
pub const LOG_FILE: &str = "prepare.log";

/// What the template play needs from the environment's tfvars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInputs {
    pub template_vm_id: u64,
    pub datastore_id: String,
    pub network_bridge: String,
    pub proxmox_node: String,
    /// Where `--refresh` builds a new template: the first ID above `template_vm_id` that no planned
    /// node uses (the play still refuses it when another VM holds it).
    pub refresh_vm_id: u64,
}

impl TemplateInputs {
    pub fn from_inputs(inputs: &Inputs) -> Self {
        let taken: Vec<u64> = topology::derive(inputs).iter().map(|n| n.vm_id).collect();
        let mut refresh_vm_id = inputs.template_vm_id + 1;
        while taken.contains(&refresh_vm_id) {
            refresh_vm_id += 1;
        }
        TemplateInputs {
            template_vm_id: inputs.template_vm_id,
            datastore_id: inputs.datastore_id.clone(),
            network_bridge: inputs.network_bridge.clone(),
            proxmox_node: inputs.proxmox_node.clone(),
            refresh_vm_id,
        }
    }
}

/// The host of a Proxmox endpoint URL (`scheme://[user@]host[:port][/path]`): the SSH target of
/// the template play. IPv6 literals lose their brackets.
pub fn endpoint_host(endpoint: &str) -> anyhow::Result<String> {
    let bad = |why: &str| {
        bad_input(format!(
            "PROXMOX_VE_ENDPOINT={endpoint:?} {why}: set it to the Proxmox API URL, e.g. \
             export PROXMOX_VE_ENDPOINT=https://192.168.1.2:8006/"
        ))
    };
    let trimmed = endpoint.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| bad("has no scheme"))?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("is not an http(s) URL"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']')
            .map(|(h, _)| h)
            .ok_or_else(|| bad("has an unclosed '[' in its host"))?
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
    {
        return Err(bad("has no usable host"));
    }
    Ok(host.to_string())
}

fn endpoint_missing() -> anyhow::Error {
    bad_input(
        "PROXMOX_VE_ENDPOINT is not set: the template is built over SSH on the Proxmox host it \
         names. export PROXMOX_VE_ENDPOINT=https://<host>:8006/ (and PROXMOX_VE_SSH_USERNAME if \
         you do not log in as root)",
    )
}

/// The SSH user on the Proxmox host: `PROXMOX_VE_SSH_USERNAME` (the bpg provider's variable), else `root`.
pub fn ssh_user() -> String {
    std::env::var("PROXMOX_VE_SSH_USERNAME")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map_or_else(|| "root".to_string(), |u| u.trim().to_string())
}

/// The inventory: group `proxmox_hosts` with the one Proxmox node. Scalars are JSON-quoted
/// (valid YAML), so no node name or address can turn into a number or a boolean.
pub fn inventory_yaml(node: &str, host: &str, user: &str) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "# Written by `em-infra prepare`: proxmox_node from terraform.tfvars, the host of\n\
         # PROXMOX_VE_ENDPOINT, PROXMOX_VE_SSH_USERNAME (default root). Regenerated on every run.\n\
         proxmox_hosts:\n  hosts:\n    {}:\n      ansible_host: {}\n      ansible_user: {}\n",
        q(node),
        q(host),
        q(user)
    )
}

/// The extra variables of the play (the role's input names, see its `meta/argument_specs.yml`).
pub fn vars_json(t: &TemplateInputs, refresh: bool, result_file: &Path) -> serde_json::Value {
    serde_json::json!({
        "proxmox_template_vm_id": t.template_vm_id,
        "proxmox_template_datastore": t.datastore_id,
        "proxmox_template_bridge": t.network_bridge,
        "proxmox_template_node": t.proxmox_node,
        "proxmox_template_refresh": refresh,
        "proxmox_template_refresh_vm_id": t.refresh_vm_id,
        "proxmox_template_result_file": result_file,
    })
}

/// Write `inventory.yml` and `vars.json` into `work_dir` (created if missing). Needs
/// `PROXMOX_VE_ENDPOINT`; a missing or malformed one is bad input naming the variable.
pub fn write_inputs(
    t: &TemplateInputs,
    refresh: bool,
    work_dir: &Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let endpoint = std::env::var("PROXMOX_VE_ENDPOINT").unwrap_or_default();
    if endpoint.trim().is_empty() {
        return Err(endpoint_missing());
    }
    let host = endpoint_host(&endpoint)?;
    crate::fsutil::ensure_private_dir(work_dir)?;
    let inventory = work_dir.join(INVENTORY_FILE);
    let vars = work_dir.join(VARS_FILE);
    crate::fsutil::write_atomic(
        &inventory,
        inventory_yaml(&t.proxmox_node, &host, &ssh_user()).as_bytes(),
        0o644,
    )?;
    let json = vars_json(t, refresh, &work_dir.join(RESULT_FILE));
    crate::fsutil::write_atomic(
        &vars,
        format!("{}\n", serde_json::to_string_pretty(&json)?).as_bytes(),
        0o644,
    )?;
    Ok((inventory, vars))
}

/// The command the `prepare` stage and `em-infra prepare` run: writes the inventory and vars
/// into `work_dir` (a run directory, or `<state_dir>/prepare/`), removes a stale result file, and
/// returns `ansible-playbook` for the template play, from the repository root. Site-specific
/// overrides (`EM_INFRA_ANSIBLE_VARS_FILE`, e.g. `proxmox_template_image_base_url` for a mirror)
/// come last so they win. For a dry run add `--extra-vars proxmox_template_decide_only=true`:
/// the play then stops after the decision, nothing downloaded or created.
pub fn playbook_cmd(
    project: &Project,
    env: &Environment,
    inputs: &Inputs,
    refresh: bool,
    work_dir: &Path,
) -> anyhow::Result<Cmd> {
    let t = TemplateInputs::from_inputs(inputs);
    let (inventory, vars) = write_inputs(&t, refresh, work_dir)?;
    match std::fs::remove_file(work_dir.join(RESULT_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("removing the previous template result"),
    }
    let mut vars_arg = std::ffi::OsString::from("@");
    vars_arg.push(&vars);
    let mut cmd = Cmd::new(
        crate::ansible::program(project, "ansible-playbook"),
        "ansible-playbook prepare-template.yml",
    )
    .cwd(&project.root)
    .arg("-i")
    .arg(&inventory)
    .arg(PLAYBOOK)
    .arg("--extra-vars")
    .arg(vars_arg)
    .env("EM_INFRA_ENV_DIR", &env.state_dir)
    .env("ANSIBLE_CONFIG", project.root.join("ansible.cfg"))
    .env("ANSIBLE_NOCOLOR", "1")
    .env("ANSIBLE_FORCE_COLOR", "0");
    if let Some(file) = std::env::var_os("EM_INFRA_ANSIBLE_VARS_FILE") {
        let mut arg = std::ffi::OsString::from("@");
        arg.push(file);
        cmd = cmd.arg("--extra-vars").arg(arg);
    }
    Ok(cmd)
}

/// What the play decided and did (`template-result.json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TemplateResult {
    /// `skip`, `newer`, `create`/`rebuild` (decide-only runs) or `built`.
    pub decision: String,
    /// The VM ID the decision is about (the refresh ID for a refresh).
    pub vm_id: u64,
    /// The environment's `template_vm_id`.
    pub template_vm_id: u64,
    pub image: String,
    pub image_sha256: String,
    pub message: String,
}

impl TemplateResult {
    /// A newer image is pinned than the template was built from, and nothing was built.
    pub fn newer_available(&self) -> bool {
        self.decision == "newer"
    }

    /// The template now lives under another VM ID than `template_vm_id`: tfvars must follow.
    pub fn needs_tfvars_update(&self) -> bool {
        self.vm_id != self.template_vm_id && matches!(self.decision.as_str(), "built" | "skip")
    }

    pub fn changed(&self) -> bool {
        self.decision == "built"
    }
}

/// The result the play wrote into `work_dir`, if it got that far.
pub fn read_result(work_dir: &Path) -> anyhow::Result<Option<TemplateResult>> {
    let path = work_dir.join(RESULT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `em-infra prepare`: the template play outside a run, logged to
/// `<state_dir>/prepare/prepare.log` under the environment's lock. `progress` hears where the log
/// is once it exists, then each task's name as the play reaches it. Returns what the play
/// decided (`None` when it ended without writing a result).
pub fn run(
    project: &Project,
    env: &Environment,
    inputs: &Inputs,
    refresh: bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<Option<TemplateResult>> {
    env.own_tfvars()?;
    let work_dir = env.state_dir.join("prepare");
    if std::env::var("PROXMOX_VE_ENDPOINT").map_or(true, |e| e.trim().is_empty()) {
        // Checked before anything is written (write_inputs checks again for the stage).
        return Err(endpoint_missing());
    }
    // One writer per environment: `up` runs this same play in its prepare stage.
    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    let _lock = crate::engine::lock::EnvLock::acquire(&env.state_dir, "prepare", false)?;
    let cmd = playbook_cmd(project, env, inputs, refresh, &work_dir)?;
    let log_path = work_dir.join(LOG_FILE);
    let mut log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    writeln!(
        log,
        "# em-infra prepare --env {}{} at {}",
        env.name,
        if refresh { " --refresh" } else { "" },
        jiff::Timestamp::now()
    )?;
    progress(Progress::Started { log: &log_path });
    let outcome = runner::run(
        &cmd,
        &mut log,
        &Redactor::from_env(),
        &Interrupt::install()?,
        Capture::LogOnly,
        &mut |line: &str| {
            if let Some(task) = progress_line(line) {
                progress(Progress::Task(task));
            }
        },
    )?;
    if outcome.interrupted {
        return Err(Failure::Interrupted("prepare".into()).into());
    }
    if !outcome.success() {
        return Err(Failure::Stage {
            stage: "prepare".into(),
            message: format!(
                "{}\n--- last lines ---\n{}\n--- full log: {} ---",
                outcome.failure_text("ansible-playbook prepare-template.yml"),
                outcome.tail.join("\n"),
                log_path.display()
            ),
        }
        .into());
    }
    read_result(&work_dir)
}

/// What the standalone template play reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The play starts; its output goes to `log`.
    Started { log: &'a Path },
    /// The play reached this task.
    Task(&'a str),
}

/// The line worth echoing while the play runs: each task's name.
fn progress_line(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("TASK [")?;
    let name = rest.split(']').next()?;
    Some(name.strip_prefix("proxmox_template : ").unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_hosts() {
        let ok = [
            ("https://192.168.1.2:8006/", "192.168.1.2"),
            ("https://pve.example.com:8006", "pve.example.com"),
            ("https://pve.example.com", "pve.example.com"),
            ("HTTPS://pve:8006/api2/json", "pve"),
            ("https://[fd00::2]:8006/", "fd00::2"),
            ("https://root@pve:8006/", "pve"),
            ("  https://10.0.0.2:8006/  ", "10.0.0.2"),
        ];
        for (endpoint, host) in ok {
            assert_eq!(endpoint_host(endpoint).unwrap(), host, "{endpoint}");
        }
        for bad in [
            "",
            "pve:8006",
            "ftp://pve/",
            "https://",
            "https://:8006/",
            "https://[fd00::2:8006/",
            "https://pve host/",
        ] {
            let err = endpoint_host(bad).unwrap_err();
            assert_eq!(
                crate::failure::kind_of(&err),
                Some(crate::failure::FailureKind::BadInput)
            );
            assert!(err.to_string().contains("PROXMOX_VE_ENDPOINT"), "{err}");
        }
    }

    #[test]
    fn inventory_names_the_node_and_quotes_scalars() {
        let yaml = inventory_yaml("pve", "192.168.1.2", "root");
        assert!(
            yaml.contains("proxmox_hosts:\n  hosts:\n    \"pve\":\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("      ansible_host: \"192.168.1.2\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("      ansible_user: \"root\"\n"), "{yaml}");
        // A node name that YAML would read as a number stays a string.
        assert!(inventory_yaml("1234", "h", "u").contains("    \"1234\":\n"));
    }

    fn inputs() -> TemplateInputs {
        TemplateInputs {
            template_vm_id: 9000,
            datastore_id: "local-zfs".into(),
            network_bridge: "vmbr1".into(),
            proxmox_node: "pve2".into(),
            refresh_vm_id: 9001,
        }
    }

    #[test]
    fn vars_use_the_role_names() {
        let v = vars_json(&inputs(), true, Path::new("/w/template-result.json"));
        assert_eq!(v["proxmox_template_vm_id"], 9000);
        assert_eq!(v["proxmox_template_datastore"], "local-zfs");
        assert_eq!(v["proxmox_template_bridge"], "vmbr1");
        assert_eq!(v["proxmox_template_node"], "pve2");
        assert_eq!(v["proxmox_template_refresh"], true);
        assert_eq!(v["proxmox_template_refresh_vm_id"], 9001);
        assert_eq!(v["proxmox_template_result_file"], "/w/template-result.json");
        // Every key is an input the role declares.
        let spec = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../ansible/roles/proxmox_template/meta/argument_specs.yml"),
        )
        .unwrap();
        for key in v.as_object().unwrap().keys() {
            assert!(
                spec.contains(&format!("      {key}:\n")),
                "{key} not in argument_specs.yml"
            );
        }
    }

    #[test]
    fn results() {
        let r: TemplateResult = serde_json::from_str(
            r#"{"decision": "built", "vm_id": 9001, "template_vm_id": 9000, "image": "x.img",
                "image_sha256": "ab", "message": "m"}"#,
        )
        .unwrap();
        assert!(r.changed() && r.needs_tfvars_update() && !r.newer_available());
        let r = TemplateResult {
            decision: "newer".into(),
            vm_id: 9000,
            ..r
        };
        assert!(r.newer_available() && !r.needs_tfvars_update() && !r.changed());
    }

    #[test]
    fn progress_shows_task_names() {
        assert_eq!(
            progress_line("TASK [proxmox_template : Create VM 9000] ******"),
            Some("Create VM 9000")
        );
        assert_eq!(progress_line("ok: [pve]"), None);
    }
}
