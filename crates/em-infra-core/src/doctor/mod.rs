//! `em-infra doctor`: checks of this machine, the Proxmox host and the cluster, each with a fix.
//!
//! [`checks`] runs them (the `preflight` stage and `em-infra doctor` both call it) and returns a
//! [`DoctorReport`]; the binary renders it (✓/✗/!/- lines by group, a `fix:` line under every ✗,
//! a summary) or prints it as JSON (`{"ok", "checks": [{group, name, status, detail, fix}]}`,
//! docs/doctor.md), and fails with the preflight kind when any check failed. The checks live by
//! what they look at: [`local`], [`proxmox`] (the API; [`privileges`]: the token's privileges)
//! and [`cluster`].

mod cluster;
mod local;
mod privileges;
mod proxmox;

pub use local::{Exec, standalone_exec};

pub(crate) use cluster::STATE_CHECK;
use cluster::check_cluster_ssh;
use local::{
    check_ansible, check_private_key, check_public_key, check_ssh, check_terraform, check_tfvars,
};
use proxmox::ProxmoxChecks;

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::config::{Environment, Project};
use crate::proxmox::{Client, ProxmoxError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
