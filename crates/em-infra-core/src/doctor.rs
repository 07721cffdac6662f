//! `em-infra doctor`: checks of this machine, the Proxmox host and the cluster, each with a fix.
//!
//! [`checks`] runs them (the `preflight` stage and `em-infra doctor` both call it) and returns a
//! [`DoctorReport`]; the binary renders it (✓/✗/!/- lines by group, a `fix:` line under every ✗,
//! a summary) or prints it as JSON (`{"ok", "checks": [{group, name, status, detail, fix}]}`,
//! docs/doctor.md), and fails with the preflight kind when any check failed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::config::topology::{Gpu, Inputs, PlannedNode};
use crate::config::{Environment, Project};
use crate::proxmox::{Client, PciDevice, PciMapping, ProxmoxError, VmResource};
use crate::runner::{self, Capture, Cmd, Interrupt, Outcome, Redactor};

/// Which part of the system a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Local,
    Proxmox,
    Cluster,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Local => "local",
            Group::Proxmox => "proxmox",
            Group::Cluster => "cluster",
        }
    }
}

/// A check's verdict: ok, fail, warn or skip.
pub use crate::text::Mark as Status;

/// One check: `fix` is set for every failure (and for warnings that have advice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub group: Group,
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    /// `✓ name: detail` (plain text, for logs and stage messages; the fix is separate).
    pub fn line(&self) -> String {
        format!("{} {}: {}", self.status.symbol(), self.name, self.detail)
    }
}

/// Every check, in the order they ran (local, proxmox, cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// True when any check failed.
    pub fn failed(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// `{"ok": bool, "checks": [{group, name, status, detail, fix}]}` (docs/doctor.md).
    pub fn to_json(&self) -> serde_json::Value {
        json!({ "ok": !self.failed(), "checks": self.checks })
    }

    /// `12 ok, 1 failed, 1 warning, 2 skipped`.
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{} ok, {} failed, {}, {} skipped",
            self.count(Status::Ok),
            self.count(Status::Fail),
            plural(self.count(Status::Warn), "warning", "warnings"),
            self.count(Status::Skip)
        )
    }

    fn push(
        &mut self,
        group: Group,
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        self.checks.push(Check {
            group,
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
        });
    }

    fn ok(&mut self, group: Group, name: impl Into<String>, detail: impl Into<String>) {
        self.push(group, name, Status::Ok, detail, None);
    }

    fn fail(
        &mut self,
        group: Group,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(group, name, Status::Fail, detail, Some(fix.into()));
    }

    fn warn(
        &mut self,
        group: Group,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(group, name, Status::Warn, detail, Some(fix.into()));
    }

    fn skip(&mut self, group: Group, name: impl Into<String>, detail: impl Into<String>) {
        self.push(group, name, Status::Skip, detail, None);
    }

    fn api_error(&mut self, name: impl Into<String>, err: &ProxmoxError) {
        self.fail(Group::Proxmox, name, err.to_string(), err.fix());
    }
}

/// Whether the environment uses the bpg/proxmox provider (the offline fixture does not).
pub fn uses_proxmox(env: &Environment) -> bool {
    std::fs::read_to_string(env.dir.join("versions.tf")).is_ok_and(|t| t.contains("bpg/proxmox"))
}

/// Run every check for `env` with `tfvars` (default: the environment's).
///
/// `client`: the Proxmox client to use; `None` builds one from the environment
/// ([`Client::from_env`]) when the environment uses the Proxmox provider — a missing or malformed
/// setting is then a failed check, not an error. `Err` only for what no check can report
/// (an unreadable tfvars file). `exec` runs the local tools' version commands.
pub fn checks(
    project: &Project,
    env: &Environment,
    tfvars: Option<&Path>,
    client: Option<&Client>,
    exec: &mut Exec<'_>,
) -> anyhow::Result<DoctorReport> {
    let mut report = DoctorReport::default();
    let proxmox = uses_proxmox(env);

    // local
    check_terraform(&mut report, exec);
    check_ansible(&mut report, exec, project);
    check_ssh(&mut report, exec);
    check_private_key(&mut report);
    let check = crate::config::check::check_environment(project, env, tfvars)?;
    check_tfvars(&mut report, project, env, &check);
    if proxmox && let Some(inputs) = &check.inputs {
        check_public_key(&mut report, inputs);
    }

    // proxmox
    if !proxmox {
        report.skip(
            Group::Proxmox,
            "Proxmox API",
            format!(
                "{} does not use the bpg/proxmox provider (versions.tf)",
                env.name
            ),
        );
    } else {
        let owned;
        let client = match client {
            Some(c) => Some(c),
            None => match crate::proxmox::Settings::from_env().and_then(Client::new) {
                Ok(c) => {
                    owned = c;
                    Some(&owned)
                }
                Err(e) => {
                    report.fail(
                        Group::Proxmox,
                        "Proxmox API settings",
                        e.to_string(),
                        e.fix(),
                    );
                    None
                }
            },
        };
        if let Some(client) = client {
            ProxmoxChecks::new(client, check.inputs.as_ref(), &check.nodes).run(&mut report);
        }
    }

    // cluster
    check_cluster_ssh(&mut report, env);
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// local

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
        &mut |_| {},
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
            "exited with {}: {}",
            out.code
                .map_or("a signal".to_string(), |c| format!("code {c}")),
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

fn check_terraform(report: &mut DoctorReport, exec: &mut Exec<'_>) {
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

fn check_ansible(report: &mut DoctorReport, exec: &mut Exec<'_>, project: &Project) {
    let name = "ansible-core";
    let fix = "install ansible-core ≥ 2.15 (`./scripts/test.sh` puts a pinned one in .venv; or set EM_INFRA_ANSIBLE_BIN_DIR)";
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

fn check_ssh(report: &mut DoctorReport, exec: &mut Exec<'_>) {
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

fn check_private_key(report: &mut DoctorReport) {
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

fn check_tfvars(
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

fn check_public_key(report: &mut DoctorReport, inputs: &Inputs) {
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

// ---------------------------------------------------------------------------------------------
// proxmox

/// The tag the VM modules put on every VM they create.
const OUR_TAG: &str = "em-infra";
/// Room for one cloud-init drive and, on GPU workers, the 4 MiB EFI disk (generous).
const SMALL_DISKS_BYTES: u64 = 8 << 20;
const GIB: u64 = 1 << 30;

struct ProxmoxChecks<'a> {
    client: &'a Client,
    inputs: Option<&'a Inputs>,
    nodes: &'a [PlannedNode],
}

impl<'a> ProxmoxChecks<'a> {
    fn new(client: &'a Client, inputs: Option<&'a Inputs>, nodes: &'a [PlannedNode]) -> Self {
        ProxmoxChecks {
            client,
            inputs,
            nodes,
        }
    }

    fn run(&self, report: &mut DoctorReport) {
        let client = self.client;
        let version = match client.version() {
            Ok(v) => {
                report.ok(
                    Group::Proxmox,
                    "API",
                    format!(
                        "{} answers to token {}",
                        client.endpoint(),
                        client.token_id()
                    ),
                );
                v
            }
            Err(e) => {
                report.api_error("API", &e);
                report.skip(
                    Group::Proxmox,
                    "Proxmox host",
                    "skipped: the API did not answer",
                );
                return;
            }
        };
        match version.major() {
            Some(8 | 9) => report.ok(
                Group::Proxmox,
                "PVE release",
                format!("{} (pve-manager {})", version.release, version.version),
            ),
            _ => report.warn(
                Group::Proxmox,
                "PVE release",
                format!(
                    "{} (pve-manager {}) is not a tested release (8.x, 9.x)",
                    version.release, version.version
                ),
                "upgrade to Proxmox VE 8 or 9; other releases may differ in API and privileges",
            ),
        }
        let Some(inputs) = self.inputs else {
            report.skip(
                Group::Proxmox,
                "Proxmox host",
                "skipped: the tfvars are invalid (see the tfvars check)",
            );
            return;
        };

        let online = self.check_nodes(report, inputs);
        let vms = client.vm_resources();
        self.check_template(report, inputs, &vms, &online);
        self.check_storage(report, inputs, &vms, &online);
        self.check_bridge(report, inputs, &online);
        self.check_vm_ids(report, inputs, &vms);
        self.check_gpus(report, &online);
    }

    /// The Proxmox nodes the plan uses: the template's node first, then every VM's.
    fn target_nodes(&self, inputs: &Inputs) -> BTreeSet<String> {
        let mut set = BTreeSet::from([inputs.proxmox_node.clone()]);
        set.extend(self.nodes.iter().map(|n| n.proxmox_node.clone()));
        set
    }

    fn check_nodes(&self, report: &mut DoctorReport, inputs: &Inputs) -> BTreeSet<String> {
        let mut online = BTreeSet::new();
        let listed = match self.client.nodes() {
            Ok(n) => n,
            Err(e) => {
                report.api_error("nodes", &e);
                return online;
            }
        };
        let known: Vec<&str> = listed.iter().map(|n| n.node.as_str()).collect();
        for node in self.target_nodes(inputs) {
            let name = format!("node {node}");
            match listed.iter().find(|n| n.node == node) {
                Some(n) if n.status == "online" => {
                    report.ok(Group::Proxmox, name, "online");
                    online.insert(node);
                }
                Some(n) => report.fail(
                    Group::Proxmox,
                    name,
                    format!("{node} is {}", n.status),
                    format!("start {node} (or repair the cluster), or place the VMs on an online node (proxmox_node, node_placement)"),
                ),
                None => report.fail(
                    Group::Proxmox,
                    name,
                    format!("{node} is not a node of this cluster (nodes: {})", known.join(", ")),
                    format!(
                        "set proxmox_node (and node_placement, gpu_workers[].proxmox_node) to one of: {}",
                        known.join(", ")
                    ),
                ),
            }
        }
        online
    }

    fn check_template(
        &self,
        report: &mut DoctorReport,
        inputs: &Inputs,
        vms: &Result<Vec<VmResource>, ProxmoxError>,
        online: &BTreeSet<String>,
    ) {
        let id = inputs.template_vm_id;
        let name = format!("template {id}");
        let vms = match vms {
            Ok(v) => v,
            Err(e) => return report.api_error(name, e),
        };
        let Some(vm) = vms.iter().find(|v| v.vmid == id) else {
            report.fail(
                Group::Proxmox,
                name,
                format!(
                    "VM {id} does not exist, or the token lacks VM.Audit on /vms/{id} (the API hides VMs it may not see)"
                ),
                format!("build it with `em-infra prepare`, or set template_vm_id to your template's ID; grant VM.Audit on /vms/{id} if it exists"),
            );
            return;
        };
        let label = vm
            .name
            .as_deref()
            .map_or(String::new(), |n| format!(" ({n})"));
        if vm.node != inputs.proxmox_node {
            report.fail(
                Group::Proxmox,
                name,
                format!(
                    "VM {id}{label} is on node {}, but proxmox_node is {} (the clones are made on the template's node)",
                    vm.node, inputs.proxmox_node
                ),
                format!("set proxmox_node = \"{}\", or build the template on {}", vm.node, inputs.proxmox_node),
            );
            return;
        }
        if !online.contains(&vm.node) {
            report.skip(
                Group::Proxmox,
                name,
                format!("node {} is not online", vm.node),
            );
            return;
        }
        let cfg = match self.client.vm_config(&vm.node, id) {
            Ok(c) => c,
            Err(e) => return report.api_error(name, &e),
        };
        if cfg.is_template() || vm.template {
            report.ok(
                Group::Proxmox,
                name,
                format!("VM {id}{label} on {} is a template", vm.node),
            );
        } else {
            report.fail(
                Group::Proxmox,
                name,
                format!("VM {id}{label} on {} is not a template", vm.node),
                format!("convert it on the host (qm template {id}) or rebuild it with `em-infra prepare`"),
            );
        }
        let agent = cfg.get("agent");
        if cfg.agent_enabled() {
            report.ok(
                Group::Proxmox,
                "template guest agent",
                format!("enabled (agent: {})", agent.unwrap_or_default()),
            );
        } else {
            report.fail(
                Group::Proxmox,
                "template guest agent",
                format!(
                    "the QEMU guest agent is not enabled in template {id} (agent: {}): Terraform would wait 15 minutes for every VM",
                    agent.as_deref().unwrap_or("unset")
                ),
                format!("qm set {id} --agent enabled=1 and install qemu-guest-agent in the image (`em-infra prepare --refresh` does both)"),
            );
        }
        match cfg.cloudinit_drive() {
            Some(drive) => report.ok(
                Group::Proxmox,
                "template cloud-init drive",
                format!("{drive}: {}", cfg.get(&drive).unwrap_or_default()),
            ),
            None => report.fail(
                Group::Proxmox,
                "template cloud-init drive",
                format!("template {id} has no cloud-init drive: the VMs would get no IP, user or SSH key"),
                format!("qm set {id} --ide2 {}:cloudinit", inputs.datastore_id),
            ),
        }
        match cfg.serial0() {
            Some(s) => report.ok(
                Group::Proxmox,
                "template serial console",
                format!("serial0: {s}"),
            ),
            None => report.fail(
                Group::Proxmox,
                "template serial console",
                format!(
                    "template {id} has no serial console (serial0): Ubuntu cloud images expect one"
                ),
                format!("qm set {id} --serial0 socket --vga serial0"),
            ),
        }
    }

    /// Whether an existing VM with the planned node's ID is one em-infra made for this cluster.
    fn is_ours(vm: &VmResource, node: &PlannedNode, cluster: &str) -> bool {
        vm.name.as_deref() == Some(node.name.as_str())
            || (vm.tags.iter().any(|t| t == OUR_TAG) && vm.tags.iter().any(|t| t == cluster))
    }

    fn check_storage(
        &self,
        report: &mut DoctorReport,
        inputs: &Inputs,
        vms: &Result<Vec<VmResource>, ProxmoxError>,
        online: &BTreeSet<String>,
    ) {
        let ds = &inputs.datastore_id;
        // Bytes the new VMs need on each Proxmox node (VMs that exist already have their disks).
        let mut need: BTreeMap<&str, u64> = BTreeMap::new();
        for node in self.nodes {
            let exists = vms
                .as_ref()
                .is_ok_and(|v| v.iter().any(|vm| vm.vmid == node.vm_id));
            if exists {
                continue;
            }
            *need.entry(node.proxmox_node.as_str()).or_default() +=
                node.size.disk_gb * GIB + SMALL_DISKS_BYTES;
        }
        let total_need: u64 = need.values().sum();
        let mut storage_nodes: BTreeSet<&str> =
            self.nodes.iter().map(|n| n.proxmox_node.as_str()).collect();
        storage_nodes.insert(inputs.proxmox_node.as_str());
        for node in storage_nodes {
            let name = format!("storage {ds} on {node}");
            if !online.contains(node) {
                report.skip(Group::Proxmox, name, format!("node {node} is not online"));
                continue;
            }
            let st = match self.client.storage_status(node, ds) {
                Ok(s) => s,
                Err(e) if e.status_mentions("does not exist") => {
                    report.fail(
                        Group::Proxmox,
                        name,
                        format!("storage {ds} does not exist on {node}"),
                        "set datastore_id to a storage that holds disk images (`pvesm status` on the host lists them)",
                    );
                    continue;
                }
                Err(e) => {
                    report.api_error(name, &e);
                    continue;
                }
            };
            if !st.enabled {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("storage {ds} is disabled on {node}"),
                    format!("enable it: pvesm set {ds} --disable 0"),
                );
                continue;
            }
            if !st.active {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("storage {ds} is not active on {node}"),
                    "check it on the host (`pvesm status`; the mount, LVM volume group or ZFS pool behind it)",
                );
                continue;
            }
            if !st.allows("images") {
                let content = if st.content.is_empty() {
                    "none".to_string()
                } else {
                    st.content.clone()
                };
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("storage {ds} does not allow disk images (content: {content})"),
                    format!(
                        "allow them: pvesm set {ds} --content images{} (or choose another datastore_id)",
                        if st.content.is_empty() { String::new() } else { format!(",{}", st.content) }
                    ),
                );
                continue;
            }
            let wanted = if st.shared {
                total_need
            } else {
                need.get(node).copied().unwrap_or(0)
            };
            let gib = |b: u64| format!("{:.1} GiB", b as f64 / GIB as f64);
            if st.avail < wanted {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!(
                        "storage {ds} on {node} has {} free, the planned disks need {}",
                        gib(st.avail),
                        gib(wanted)
                    ),
                    "free space on it, choose another datastore_id, or lower disk_gb / the node counts",
                );
            } else {
                report.ok(
                    Group::Proxmox,
                    name,
                    format!(
                        "active, allows images, {} free for {} of new disks",
                        gib(st.avail),
                        gib(wanted)
                    ),
                );
            }
        }
    }

    fn check_bridge(&self, report: &mut DoctorReport, inputs: &Inputs, online: &BTreeSet<String>) {
        let bridge = &inputs.network_bridge;
        let nodes: BTreeSet<&str> = self.nodes.iter().map(|n| n.proxmox_node.as_str()).collect();
        for node in nodes {
            let name = format!("bridge {bridge} on {node}");
            if !online.contains(node) {
                report.skip(Group::Proxmox, name, format!("node {node} is not online"));
                continue;
            }
            let ifaces = match self.client.network(node) {
                Ok(i) => i,
                Err(e) => {
                    report.api_error(name, &e);
                    continue;
                }
            };
            match ifaces.iter().find(|i| &i.iface == bridge) {
                Some(i) if i.is_bridge() => report.ok(
                    Group::Proxmox,
                    name,
                    format!(
                        "{} ({}{})",
                        i.kind,
                        if i.active { "active" } else { "inactive" },
                        i.cidr
                            .as_deref()
                            .map_or(String::new(), |c| format!(", {c}"))
                    ),
                ),
                Some(i) => report.fail(
                    Group::Proxmox,
                    name,
                    format!("{bridge} on {node} is a {}, not a bridge", i.kind),
                    "set network_bridge to a Linux bridge (vmbr0, …)",
                ),
                None => {
                    let visible: Vec<&str> = ifaces
                        .iter()
                        .filter(|i| i.is_bridge())
                        .map(|i| i.iface.as_str())
                        .collect();
                    let visible = if visible.is_empty() {
                        "none".to_string()
                    } else {
                        visible.join(", ")
                    };
                    report.fail(
                        Group::Proxmox,
                        name,
                        format!(
                            "{bridge} is not among the bridges the API shows on {node} (visible: {visible}); if it exists, \
                             the token may lack SDN.Audit (or Sys.Audit): the API hides what the token may not see"
                        ),
                        format!(
                            "if {bridge} exists: pveum acl modify /sdn/zones/localnetwork/{bridge} --tokens '{}' --roles PVESDNUser; \
                             else create it or set network_bridge",
                            self.client.token_id()
                        ),
                    );
                }
            }
        }
    }

    fn check_vm_ids(
        &self,
        report: &mut DoctorReport,
        inputs: &Inputs,
        vms: &Result<Vec<VmResource>, ProxmoxError>,
    ) {
        let vms = match vms {
            Ok(v) => v,
            Err(e) => return report.api_error("VM IDs", e),
        };
        let (mut free, mut ours, mut taken) = (0, Vec::new(), 0);
        for node in self.nodes {
            match vms.iter().find(|v| v.vmid == node.vm_id) {
                None => free += 1,
                Some(vm) if Self::is_ours(vm, node, &inputs.cluster_name) => {
                    ours.push(node.name.as_str())
                }
                Some(vm) => {
                    taken += 1;
                    let tags = if vm.tags.is_empty() {
                        String::new()
                    } else {
                        format!(", tags {}", vm.tags.join(";"))
                    };
                    report.fail(
                        Group::Proxmox,
                        format!("VM ID {}", node.vm_id),
                        format!(
                            "VM {} is '{}' on {}{tags}: not em-infra's {} — it will not be touched",
                            vm.vmid,
                            vm.name.as_deref().unwrap_or("(no name)"),
                            vm.node,
                            node.name
                        ),
                        format!(
                            "choose a vm_id_base whose range is free (the nodes use vm_id_base + 0…{}), or move that VM",
                            crate::config::topology::highest_slot(inputs.worker_count, inputs.gpu_workers.len() as u32)
                        ),
                    );
                }
            }
        }
        if taken == 0 {
            let ours_text = if ours.is_empty() {
                String::new()
            } else {
                format!(", {} already ours ({})", ours.len(), ours.join(", "))
            };
            report.ok(Group::Proxmox, "VM IDs", format!("{free} free{ours_text}"));
        }
    }

    fn check_gpus(&self, report: &mut DoctorReport, online: &BTreeSet<String>) {
        let gpus: Vec<&PlannedNode> = self.nodes.iter().filter(|n| n.gpu.is_some()).collect();
        if gpus.is_empty() {
            return;
        }
        let mut mappings: Option<Result<Vec<PciMapping>, ProxmoxError>> = None;
        let mut devices: BTreeMap<String, Result<Vec<PciDevice>, ProxmoxError>> = BTreeMap::new();
        for node in gpus {
            let name = format!("GPU {}", node.name);
            let pnode = node.proxmox_node.as_str();
            let mapping = match node.gpu.as_ref().expect("filtered") {
                Gpu::PciId(pci) => {
                    report.fail(
                        Group::Proxmox,
                        name,
                        format!(
                            "raw pci_id {pci} cannot be used with an API token: Proxmox lets only root@pam (password auth) \
                             pass a raw PCI device; tokens must use a PCI resource mapping"
                        ),
                        format!(
                            "create a PCI resource mapping (Datacenter → Resource Mappings → PCI → Add: node {pnode}, device {pci}) \
                             and use {{ mapping = \"<name>\" }} instead; raw IDs need allow_raw_pci_ids = true and root@pam password auth"
                        ),
                    );
                    continue;
                }
                Gpu::Mapping(m) => m,
            };
            let all = mappings.get_or_insert_with(|| self.client.pci_mappings());
            let all = match all {
                Ok(a) => a,
                Err(e) => {
                    report.api_error(name, e);
                    continue;
                }
            };
            let Some(found) = all.iter().find(|m| &m.id == mapping) else {
                let ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
                report.fail(
                    Group::Proxmox,
                    name,
                    format!(
                        "PCI resource mapping '{mapping}' does not exist (visible: {}), or the token lacks Mapping.Audit on /mapping/pci/{mapping}",
                        if ids.is_empty() { "none".into() } else { ids.join(", ") }
                    ),
                    format!(
                        "create it: Datacenter → Resource Mappings → PCI → Add (name {mapping}, node {pnode}, the GPU), \
                         or pvesh create /cluster/mapping/pci --id {mapping} --map node={pnode},path=<0000:01:00.0>,id=<vendor:device>"
                    ),
                );
                continue;
            };
            let Some(entry) = found.entry_for(pnode) else {
                let nodes: Vec<String> = found.entries().into_iter().map(|e| e.node).collect();
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("mapping '{mapping}' has no device on node {pnode} (it maps: {})", nodes.join(", ")),
                    format!("add {pnode}'s GPU to mapping {mapping} (Datacenter → Resource Mappings), or set this entry's proxmox_node"),
                );
                continue;
            };
            if !online.contains(pnode) {
                report.skip(Group::Proxmox, name, format!("node {pnode} is not online"));
                continue;
            }
            let devs = devices
                .entry(pnode.to_string())
                .or_insert_with(|| self.client.node_pci_devices(pnode));
            let devs = match devs {
                Ok(d) => d,
                Err(e) => {
                    report.api_error(name, e);
                    continue;
                }
            };
            let path = entry.path.as_str();
            let Some(dev) = devs
                .iter()
                .find(|d| d.id == path)
                .or_else(|| devs.iter().find(|d| d.bus_device() == path))
            else {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("mapping '{mapping}' points at {path}, which is not a PCI device of {pnode}"),
                    format!("update mapping {mapping} to the GPU's current address (lspci -nn on {pnode})"),
                );
                continue;
            };
            if dev.iommugroup < 0 {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!("IOMMU is off on {pnode}: {} has no IOMMU group (-1), so it cannot be passed through", dev.id),
                    "enable intel_iommu=on (Intel) or amd_iommu=on (AMD) plus iommu=pt on the kernel command line \
                     (/etc/default/grub or /etc/kernel/cmdline), VT-d/AMD-Vi in the firmware, then reboot",
                );
                continue;
            }
            if !dev.is_display_controller() {
                report.fail(
                    Group::Proxmox,
                    name,
                    format!(
                        "mapping '{mapping}' points at {} ({}), class {}: not a display controller (0x03…)",
                        dev.id,
                        dev.describe(),
                        dev.class
                    ),
                    format!("point mapping {mapping} at the GPU (lspci -nn on {pnode} shows class [03xx])"),
                );
                continue;
            }
            report.ok(
                Group::Proxmox,
                name,
                format!(
                    "mapping {mapping} → {} {} on {pnode}, IOMMU group {}",
                    dev.id,
                    dev.describe(),
                    dev.iommugroup
                ),
            );
            let others: Vec<String> = devs
                .iter()
                .filter(|d| d.iommugroup == dev.iommugroup && d.bus_device() != dev.bus_device())
                .map(|d| format!("{} ({})", d.id, d.describe()))
                .collect();
            if !others.is_empty() {
                report.warn(
                    Group::Proxmox,
                    format!("IOMMU group {} on {pnode}", dev.iommugroup),
                    format!(
                        "{} shares its IOMMU group with {}: they go to the VM together and the host loses them",
                        dev.id,
                        others.join(", ")
                    ),
                    "make sure the host does not need them, or move the GPU to a slot with its own group",
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// cluster

fn check_cluster_ssh(report: &mut DoctorReport, env: &Environment) {
    let state = env.tfstate();
    if !state.is_file() {
        report.skip(
            Group::Cluster,
            "SSH on nodes",
            "not provisioned yet (no terraform.tfstate)",
        );
        return;
    }
    let outputs = match crate::inventory::load_outputs(&state) {
        Ok(o) => o,
        Err(e) => {
            report.fail(
                Group::Cluster,
                "Terraform state",
                e.to_string(),
                "run the provision stage again (`em-infra up --from provision`) or restore a backup (`em-infra state`)",
            );
            return;
        }
    };
    let handles: Vec<_> = outputs
        .nodes
        .iter()
        .map(|n| {
            let addr = SocketAddr::from((n.ip, 22));
            (
                n.clone(),
                std::thread::spawn(move || {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                }),
            )
        })
        .collect();
    for (node, handle) in handles {
        let name = format!("SSH {}", node.name);
        match handle.join() {
            Ok(Ok(_)) => report.ok(Group::Cluster, name, format!("{}:22 answers", node.ip)),
            Ok(Err(e)) => report.fail(
                Group::Cluster,
                name,
                format!("cannot reach {}:22 ({e})", node.ip),
                format!(
                    "check that VM {} runs (qm status {} on {}), its network (bridge, VLAN, gateway) and firewalls",
                    node.vm_id, node.vm_id, node.proxmox_node
                ),
            ),
            Err(_) => report.fail(Group::Cluster, name, "the connection check panicked", "report this as a bug"),
        }
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

    #[test]
    fn report_json_and_summary() {
        let mut r = DoctorReport::default();
        r.ok(Group::Local, "ssh", "OpenSSH_9.6");
        r.fail(Group::Proxmox, "API", "cannot reach", "check the port");
        r.warn(Group::Proxmox, "IOMMU group 1 on pve", "shared", "move it");
        r.skip(Group::Cluster, "SSH on nodes", "not provisioned yet");
        assert!(r.failed());
        assert_eq!(r.summary(), "1 ok, 1 failed, 1 warning, 1 skipped");
        let j = r.to_json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["checks"][1]["group"], "proxmox");
        assert_eq!(j["checks"][1]["status"], "fail");
        assert_eq!(j["checks"][1]["fix"], "check the port");
        assert_eq!(j["checks"][0]["fix"], serde_json::Value::Null);
        assert_eq!(j["checks"][3]["status"], "skip");
        assert_eq!(r.checks[1].line(), "✗ API: cannot reach");
        assert_eq!(r.failures().count(), 1);
    }
}
