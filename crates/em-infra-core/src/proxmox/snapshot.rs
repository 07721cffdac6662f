//! VM snapshots through the Proxmox VE API: list, create, roll back, delete, each a task that is
//! waited for; the names em-infra gives its own snapshots; and which storages can snapshot at all.
//!
//! The calls, as qemu-server's `PVE/API2/Qemu.pm` defines them (master 9.2.6 `e6352be6`, the
//! same on stable-bookworm 8.4.10 `5ccd363e` but for the `VM.PowerMgmt` check noted below):
//!
//! | call | permission on `/vms/{vmid}` | answer |
//! |---|---|---|
//! | `GET …/qemu/{vmid}/snapshot` (`snapshot_list`, :6076-6164) | `VM.Audit` | the snapshots, unordered, then `current` |
//! | `POST …/qemu/{vmid}/snapshot` (`snapshot`, :6166-6231) | `VM.Snapshot` | UPID of a `qmsnapshot` task |
//! | `POST …/snapshot/{snapname}/rollback` (`rollback`, :6367-6433) | `VM.Snapshot` or `VM.Snapshot.Rollback` | UPID of a `qmrollback` task |
//! | `DELETE …/snapshot/{snapname}` (`delsnapshot`, :6435-6509) | `VM.Snapshot` | UPID of a `qmdelsnapshot` task |
//!
//! The permission is checked before anything else (403), then the parameters (400), then the
//! handler runs. Nearly every refusal happens inside the task, so it shows as the task's exit
//! status, not as an HTTP error: "snapshot name 'X' already used", "snapshot 'X' does not
//! exist", "snapshot feature is not available", "VM is locked (backup)" (pve-guest-common
//! `src/PVE/AbstractConfig.pm` `4a8f6cb`: `check_lock` :336-340, `__snapshot_prepare` :730-785,
//! `snapshot_delete` :922-1052, `snapshot_rollback` :1124-1214). Rolling back stops a running VM
//! first (`__snapshot_rollback_vm_stop`, qemu-server `src/PVE/QemuConfig.pm` :504-509) and
//! starts it again only with `start=1` (qemu-server ≥ 7.2-7, commit 76b29aaf "fix #4228"; since
//! 9.1.10, commit 7ba9640b, `start=1` also needs `VM.PowerMgmt`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::types::{PropertyString, TaskStatus, Upid, VmConfig, pve_bool};
use super::{Client, ProxmoxError, enc};

/// How long a snapshot task may run before em-infra stops waiting. Taking or removing a
/// snapshot on LVM-thin, ZFS or Ceph takes seconds; qcow2 files and a frozen guest file system
/// take longer, so the bound is generous.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(600);

// --- names -------------------------------------------------------------------------------------

/// The prefix of every snapshot em-infra takes: `em-infra-<run id>`.
pub const NAME_PREFIX: &str = "em-infra-";

/// PVE's limit: `pve-snapshot-name` has `maxLength => 40` (pve-common `src/PVE/JSONSchema.pm`
/// :188-196, `f665029`; unchanged since commit 98d5b8c, 2019).
pub const NAME_MAX_LEN: usize = 40;

/// A snapshot name PVE accepts, checked before any request: `pve-snapshot-name` is a
/// `pve-configid` (`^[a-z][a-z0-9_-]+$`, case-insensitive: `$CONFIGID_RE`, JSONSchema.pm :30 and
/// `pve_verify_configid` :252-262) of at most 40 characters, and the create call refuses
/// `current` and (in any case) `pending` as reserved (qemu-server `PVE/API2/Qemu.pm` :6212-6216).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SnapshotName(String);

impl SnapshotName {
    /// Check `name` the way PVE does; the error names the value, the rule and the fix.
    pub fn parse(name: &str) -> Result<SnapshotName, SnapshotError> {
        let invalid = |why: String| SnapshotError::InvalidName {
            name: name.to_string(),
            why,
        };
        let mut chars = name.chars();
        match chars.next() {
            None => return Err(invalid("it is empty".into())),
            Some(c) if !c.is_ascii_alphabetic() => {
                return Err(invalid(format!("it starts with {c:?}, not a letter")));
            }
            Some(_) => {}
        }
        if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))) {
            return Err(invalid(format!("{c:?} is not a letter, digit, '-' or '_'")));
        }
        if name.len() < 2 {
            return Err(invalid(
                "it has one character; PVE needs two or more".into(),
            ));
        }
        if name.len() > NAME_MAX_LEN {
            return Err(invalid(format!(
                "it has {} characters; PVE allows {NAME_MAX_LEN}",
                name.len()
            )));
        }
        if name == "current" || name.eq_ignore_ascii_case("pending") {
            return Err(invalid(format!(
                "{name:?} is reserved by PVE (`current` is the VM's present state)"
            )));
        }
        Ok(SnapshotName(name.to_string()))
    }

    /// The name of the snapshots run `run_id` takes: `em-infra-<run id>`, its `.` written `_`
    /// (`20261126T050102.123Z-1a2b` → `em-infra-20261126T050102_123Z-1a2b`, 34 characters).
    pub fn for_run(run_id: &str) -> Result<SnapshotName, SnapshotError> {
        SnapshotName::parse(&format!("{NAME_PREFIX}{}", run_id.replace('.', "_"))).map_err(|e| {
            match e {
                SnapshotError::InvalidName { name, why } => SnapshotError::InvalidName {
                    name,
                    why: format!("made from run ID {run_id:?}: {why}"),
                },
                other => other,
            }
        })
    }

    /// The run that took this snapshot, when em-infra named it ([`SnapshotName::for_run`]).
    pub fn run_id(&self) -> Option<String> {
        self.0
            .strip_prefix(NAME_PREFIX)
            .filter(|rest| !rest.is_empty())
            .map(|rest| rest.replace('_', "."))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// --- the list ----------------------------------------------------------------------------------

/// One entry of `GET /nodes/{node}/qemu/{vmid}/snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Snapshot {
    /// The snapshot's name, or `current` for the VM as it is now (always the last entry).
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seconds since the epoch; absent on `current`.
    #[serde(default, deserialize_with = "unix_time")]
    pub snaptime: Option<i64>,
    /// Whether the snapshot holds the VM's RAM.
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub vmstate: bool,
    /// The snapshot this one (or, on `current`, the present state) descends from.
    #[serde(default)]
    pub parent: Option<String>,
    /// `prepare` or `delete` while a task works on the snapshot, and after one failed half-way.
    #[serde(default)]
    pub snapstate: Option<String>,
    /// Only on `current`: whether the VM runs.
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub running: bool,
}

impl Snapshot {
    /// The `current` pseudo-entry ("You are here!"), not a snapshot.
    pub fn is_current(&self) -> bool {
        self.name == "current"
    }

    /// Complete: no task is creating or deleting it (a rollback to an incomplete snapshot fails,
    /// AbstractConfig.pm :1164-1165).
    pub fn is_complete(&self) -> bool {
        self.snapstate.is_none()
    }

    /// The run that took it, when em-infra named it.
    pub fn run_id(&self) -> Option<String> {
        SnapshotName::parse(&self.name).ok()?.run_id()
    }
}

/// `snaptime` as a number, or as a string of digits (config values are strings in Perl).
fn unix_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let value = serde_json::Value::deserialize(d)?;
    match &value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("not a time: {value}"))),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("not a time: {value}"))),
        _ => Err(D::Error::custom(format!("not a time: {value}"))),
    }
}

// --- errors ------------------------------------------------------------------------------------

/// What can go wrong with a snapshot call: the cases a caller acts on are their own variants,
/// everything else is the client's [`ProxmoxError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Refused before any request.
    #[error(
        "snapshot name {name:?} is not valid: {why}; PVE takes 2 to 40 letters, digits, '-' or \
         '_', starting with a letter"
    )]
    InvalidName { name: String, why: String },

    /// The task's "snapshot name 'X' already used".
    #[error("VM {vmid} already has a snapshot named {name}")]
    AlreadyExists { vmid: u64, name: String },

    /// The task's "snapshot 'X' does not exist".
    #[error("VM {vmid} has no snapshot named {name}")]
    NotFound { vmid: u64, name: String },

    /// The task's "snapshot feature is not available": a disk is on a storage (or in a format)
    /// that cannot snapshot.
    #[error(
        "VM {vmid} cannot be snapshotted: a disk of it is on a storage or in a format without \
         snapshots (PVE: snapshot feature is not available)"
    )]
    NotSupported { vmid: u64 },

    /// HTTP 500 "Configuration file 'nodes/N/qemu-server/V.conf' does not exist".
    #[error("VM {vmid} is not on node {node} (PVE has no configuration for it there)")]
    NoSuchVm { node: String, vmid: u64 },

    #[error(transparent)]
    Api(#[from] ProxmoxError),
}

impl SnapshotError {
    /// One line that tells the user what to do.
    pub fn fix(&self) -> String {
        match self {
            SnapshotError::InvalidName { .. } => {
                "use a name like em-infra-20261126T050102_123Z-1a2b (a letter first, then letters, \
                 digits, '-' or '_', at most 40)"
                    .into()
            }
            SnapshotError::AlreadyExists { vmid, name } => {
                format!("remove it (qm delsnapshot {vmid} {name}) or pick another name")
            }
            SnapshotError::NotFound { vmid, .. } => {
                format!("list the VM's snapshots with qm listsnapshot {vmid}")
            }
            SnapshotError::NotSupported { vmid } => format!(
                "move VM {vmid}'s disks to a storage that can snapshot (LVM-thin, ZFS, Ceph RBD, \
                 Btrfs, or qcow2 on a directory/NFS/CIFS storage), or run with --no-snapshot"
            ),
            SnapshotError::NoSuchVm { vmid, .. } => format!(
                "find where VM {vmid} lives (qm list on each node, or the Proxmox UI); it was \
                 removed or migrated"
            ),
            SnapshotError::Api(e) => e.fix(),
        }
    }
}

/// Turn the client's error for a call on `vmid`'s snapshot `name` into the caller's cases.
fn classify(err: ProxmoxError, node: &str, vmid: u64, name: &str) -> SnapshotError {
    match err {
        ProxmoxError::TaskFailed { ref exitstatus, .. } => {
            let exit = exitstatus.trim();
            if exit == format!("snapshot name '{name}' already used") {
                SnapshotError::AlreadyExists {
                    vmid,
                    name: name.to_string(),
                }
            } else if exit == format!("snapshot '{name}' does not exist") {
                SnapshotError::NotFound {
                    vmid,
                    name: name.to_string(),
                }
            } else if exit == "snapshot feature is not available" {
                SnapshotError::NotSupported { vmid }
            } else {
                SnapshotError::Api(err)
            }
        }
        // `check_lock` says "VM is locked (<lock>)" without the ID; this call knows it.
        ProxmoxError::Locked { message, .. } if message.starts_with("VM is locked") => {
            SnapshotError::Api(ProxmoxError::Locked {
                what: format!("VM {vmid}"),
                message,
            })
        }
        ProxmoxError::Status {
            status: 500,
            ref message,
            ..
        } if message.starts_with("Configuration file ") && message.ends_with("does not exist") => {
            SnapshotError::NoSuchVm {
                node: node.to_string(),
                vmid,
            }
        }
        other => SnapshotError::Api(other),
    }
}

// --- the calls ---------------------------------------------------------------------------------

/// A task that ended well: its ID (for the Proxmox task log) and last status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedTask {
    pub upid: String,
    pub status: TaskStatus,
}

impl Client {
    /// `GET /nodes/{node}/qemu/{vmid}/snapshot`: every snapshot, then `current`.
    pub fn snapshots(&self, node: &str, vmid: u64) -> Result<Vec<Snapshot>, SnapshotError> {
        self.get(&snapshot_path(node, vmid))
            .map_err(|e| classify(e, node, vmid, ""))
    }

    /// Take snapshot `name` of VM `vmid` without its RAM (`vmstate=0`: a disk-only snapshot
    /// works with PCI passthrough and needs no state volume) and wait for the task.
    pub fn create_snapshot(
        &self,
        node: &str,
        vmid: u64,
        name: &SnapshotName,
        description: &str,
        timeout: Duration,
    ) -> Result<FinishedTask, SnapshotError> {
        let mut params = vec![("snapname", name.as_str()), ("vmstate", "0")];
        if !description.is_empty() {
            params.push(("description", description));
        }
        self.snapshot_task(node, vmid, name, timeout, |c| {
            c.post(&snapshot_path(node, vmid), &params)
        })
    }

    /// Return VM `vmid` to snapshot `name` and wait for the task. PVE stops a running VM first;
    /// with `start` it starts it again afterwards (PVE 9.1.10 and later then also check
    /// `VM.PowerMgmt`).
    pub fn rollback_snapshot(
        &self,
        node: &str,
        vmid: u64,
        name: &SnapshotName,
        start: bool,
        timeout: Duration,
    ) -> Result<FinishedTask, SnapshotError> {
        let params: &[(&str, &str)] = if start { &[("start", "1")] } else { &[] };
        let path = format!(
            "{}/{}/rollback",
            snapshot_path(node, vmid),
            enc(name.as_str())
        );
        self.snapshot_task(node, vmid, name, timeout, |c| c.post(&path, params))
    }

    /// Delete snapshot `name` of VM `vmid` and wait for the task. `force` removes it from the
    /// configuration even when removing a disk's snapshot fails (and skips the replication
    /// check), as `qm delsnapshot --force` does.
    pub fn delete_snapshot(
        &self,
        node: &str,
        vmid: u64,
        name: &SnapshotName,
        force: bool,
        timeout: Duration,
    ) -> Result<FinishedTask, SnapshotError> {
        let mut path = format!("{}/{}", snapshot_path(node, vmid), enc(name.as_str()));
        if force {
            path.push_str("?force=1");
        }
        self.snapshot_task(node, vmid, name, timeout, |c| c.delete(&path))
    }

    /// Start a task with `start` (its answer is the UPID) and wait for it on `node`.
    fn snapshot_task(
        &self,
        node: &str,
        vmid: u64,
        name: &SnapshotName,
        timeout: Duration,
        start: impl FnOnce(&Client) -> Result<String, ProxmoxError>,
    ) -> Result<FinishedTask, SnapshotError> {
        let run = || {
            let upid = start(self)?;
            if Upid::parse(&upid).is_none() {
                return Err(ProxmoxError::InvalidUpid(upid));
            }
            let status = self.wait_task(node, &upid, timeout)?;
            Ok(FinishedTask { upid, status })
        };
        run().map_err(|e| classify(e, node, vmid, name.as_str()))
    }
}

fn snapshot_path(node: &str, vmid: u64) -> String {
    format!("/nodes/{}/qemu/{vmid}/snapshot", enc(node))
}

// --- which storages can snapshot ---------------------------------------------------------------

/// Whether a VM disk can be snapshotted where it lies, as pve-storage's
/// `volume_has_feature($scfg, 'snapshot', …)` answers for the volume as it is now (pve-storage
/// `0c56bad8` = 9.1.7 and `stable-8` `1af4790d` = 8.3.8):
///
/// | storage type | snapshots | source |
/// |---|---|---|
/// | `lvmthin` | yes | `src/PVE/Storage/LvmThinPlugin.pm` :408-431 (8: :375) |
/// | `zfspool`, `zfs` (ZFS over iSCSI) | yes; rollback only to the newest | `ZFSPoolPlugin.pm` :809-835, `volume_rollback_is_possible` :588; `ZFSPlugin.pm` :435-458 |
/// | `rbd` (Ceph) | yes | `RBDPlugin.pm` :955-978 |
/// | `btrfs` | raw, qcow2, subvol (not vmdk) | `BTRFSPlugin.pm` :600-643 |
/// | `dir`, `nfs`, `cifs`, `glusterfs` (8 only) | qcow2 only (the base `Plugin.pm` table) | `Plugin.pm` :1575-1627 (8: :1297) |
/// | `lvm` (thick) | PVE 8: never; PVE 9: qcow2 volumes only, which exist only with `snapshot-as-volume-chain` (rollback only to the newest) | `LVMPlugin.pm` :1367-1404, :696-700, :1159 (8: no `snapshot` key) |
/// | `iscsi`, `iscsidirect`, `pbs`, `esxi` | never | `ISCSIPlugin.pm` :634, `ISCSIDirectPlugin.pm` :249, `PBSPlugin.pm` :999, `ESXiPlugin.pm` :600 |
/// | `cephfs` | holds no VM disks (no `images` content) | `CephFSPlugin.pm` :117-123 |
///
/// A disk given as a host path (`/dev/…`) never can (`PVE/Storage.pm` :502-516). Another type
/// (a third-party plugin) is [`SnapshotSupport::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "support", rename_all = "kebab-case")]
pub enum SnapshotSupport {
    /// PVE can snapshot it. `newest_only`: PVE rolls back only to the newest snapshot (ZFS
    /// always; LVM, whose qcow2 volumes are always volume chains). A file-based storage with
    /// `snapshot-as-volume-chain` does so too, which the volume name does not show (`Plugin.pm`
    /// `volume_rollback_is_possible` :1418).
    Yes { newest_only: bool },
    /// PVE cannot; `why` says so in a sentence.
    No { why: String },
    /// A storage type em-infra does not know.
    Unknown { storage_type: String },
}

impl SnapshotSupport {
    pub fn can_snapshot(&self) -> bool {
        matches!(self, SnapshotSupport::Yes { .. })
    }
}

/// The format of a volume as pve-storage reads it from the name: `.qcow2`, `.raw`, `.vmdk`,
/// `.subvol` for file-based storages (`Plugin.pm` `parse_name_dir` :784-797), `.qcow2` or raw on
/// LVM (`LVMPlugin.pm` `parse_volname` :520-533), `subvol-…` for container volumes; raw otherwise.
pub fn volume_format(volname: &str) -> &'static str {
    let file = volname.rsplit('/').next().unwrap_or(volname);
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("qcow2") => "qcow2",
        Some("vmdk") => "vmdk",
        Some("subvol") => "subvol",
        Some("raw") => "raw",
        _ if file.starts_with("subvol-") => "subvol",
        _ => "raw",
    }
}

/// Whether volume `volname` (the part after `storage:`) on a storage of type `storage_type` can
/// be snapshotted: [`snapshot_support`] for the format its name gives ([`volume_format`]).
pub fn volume_snapshot_support(storage_type: &str, volname: &str) -> SnapshotSupport {
    snapshot_support(storage_type, volume_format(volname))
}

/// Whether a disk in `format` (`raw`, `qcow2`, `vmdk`, `subvol`) on a storage of type
/// `storage_type` can be snapshotted (see [`SnapshotSupport`] for the table and its sources).
pub fn snapshot_support(storage_type: &str, format: &str) -> SnapshotSupport {
    let only = |formats: &[&str], what: &str| {
        if formats.contains(&format) {
            SnapshotSupport::Yes {
                newest_only: storage_type == "lvm",
            }
        } else {
            SnapshotSupport::No {
                why: format!(
                    "{what} storage ({storage_type}) snapshots only {} disks, and this one is {format}",
                    formats.join(", ")
                ),
            }
        }
    };
    match storage_type {
        "lvmthin" | "rbd" => SnapshotSupport::Yes { newest_only: false },
        "zfspool" | "zfs" => SnapshotSupport::Yes { newest_only: true },
        "btrfs" => only(&["raw", "qcow2", "subvol"], "Btrfs"),
        "dir" | "nfs" | "cifs" | "glusterfs" => only(&["qcow2"], "a file-based"),
        "lvm" if format == "qcow2" => only(&["qcow2"], "LVM"),
        "lvm" => SnapshotSupport::No {
            why: "plain (thick) LVM cannot snapshot raw volumes; PVE 9 can with qcow2 volumes \
                  on an LVM storage set to snapshot-as-volume-chain"
                .into(),
        },
        "iscsi" | "iscsidirect" | "pbs" | "esxi" => SnapshotSupport::No {
            why: format!("{storage_type} storage has no snapshots"),
        },
        "cephfs" => SnapshotSupport::No {
            why: "cephfs storage holds no VM disks".into(),
        },
        other => SnapshotSupport::Unknown {
            storage_type: other.to_string(),
        },
    }
}

/// One disk of a VM configuration that a snapshot covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotDisk {
    /// `scsi0`, `efidisk0`, …
    pub key: String,
    /// The storage ID, or `None` for a host path (`/dev/disk/by-id/…`).
    pub storage: Option<String>,
    /// The volume name after `storage:`, or the path.
    pub volume: String,
}

/// The disks a snapshot of `config` covers: every drive key qemu-server knows (`ide0-3`,
/// `scsi0-30`, `virtio0-15`, `sata0-5`, `efidisk0`, `tpmstate0`; `Drive.pm` `valid_drive_names`
/// :722-732) except CD-ROMs (`media=cdrom`, which includes the cloud-init drive and `none`;
/// `QemuConfig.pm` `has_feature` :74-93 skips them).
pub fn snapshot_disks(config: &VmConfig) -> Vec<SnapshotDisk> {
    let keys = (0..4)
        .map(|i| format!("ide{i}"))
        .chain((0..31).map(|i| format!("scsi{i}")))
        .chain((0..16).map(|i| format!("virtio{i}")))
        .chain((0..6).map(|i| format!("sata{i}")))
        .chain(["efidisk0".to_string(), "tpmstate0".to_string()]);
    keys.filter_map(|key| {
        let value = config.get(&key)?;
        let drive = PropertyString::parse(&value, "file");
        if drive.get("media") == Some("cdrom") {
            return None;
        }
        let file = drive.get("file")?;
        let (storage, volume) = match file.split_once(':') {
            Some((storage, volume)) if !file.starts_with('/') => {
                (Some(storage.to_string()), volume.to_string())
            }
            _ => (None, file.to_string()),
        };
        Some(SnapshotDisk {
            key,
            storage,
            volume,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_pves_rules() {
        for good in [
            "ab",
            "em-infra-20261126T050102_123Z-1a2b",
            "Before_Upgrade",
            "a-",
            "vzdump",
        ] {
            assert_eq!(SnapshotName::parse(good).unwrap().as_str(), good);
        }
        let forty = format!("a{}", "b".repeat(39));
        assert!(SnapshotName::parse(&forty).is_ok());
        for (bad, why) in [
            ("", "it is empty"),
            ("a", "one character"),
            ("1abc", "starts with '1'"),
            ("-abc", "starts with '-'"),
            ("before.upgrade", "'.' is not a letter"),
            ("before upgrade", "' ' is not a letter"),
            ("snäp", "'ä' is not a letter"),
            ("current", "reserved"),
            ("PENDING", "reserved"),
        ] {
            let err = SnapshotName::parse(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(why), "{bad:?}: {text}");
            assert!(text.contains(&format!("{bad:?}")), "{text}");
        }
        let long = SnapshotName::parse(&format!("{forty}c")).unwrap_err();
        assert!(
            long.to_string()
                .contains("it has 41 characters; PVE allows 40"),
            "{long}"
        );
        // `Current` is not reserved: the API compares `current` exactly (Qemu.pm :6212).
        assert!(SnapshotName::parse("Current").is_ok());
    }

    #[test]
    fn run_names_round_trip() {
        let name = SnapshotName::for_run("20261126T050102.123Z-1a2b").unwrap();
        assert_eq!(name.as_str(), "em-infra-20261126T050102_123Z-1a2b");
        assert!(name.as_str().len() <= NAME_MAX_LEN);
        assert_eq!(name.run_id().as_deref(), Some("20261126T050102.123Z-1a2b"));
        assert_eq!(
            SnapshotName::parse("before-upgrade").unwrap().run_id(),
            None
        );
        let err = SnapshotName::for_run("run/1").unwrap_err().to_string();
        assert!(err.contains("made from run ID \"run/1\""), "{err}");
        let err = SnapshotName::for_run(&"9".repeat(40))
            .unwrap_err()
            .to_string();
        assert!(err.contains("PVE allows 40"), "{err}");
    }

    #[test]
    fn the_list_decodes_pves_shapes() {
        let list: Vec<Snapshot> = serde_json::from_value(json!([
            {"name": "em-infra-20261126T050102_123Z-1a2b", "snaptime": 1764133262, "vmstate": 0,
             "description": "before upgrade", "parent": "first"},
            {"name": "first", "snaptime": "1764000000", "vmstate": 1, "description": ""},
            {"name": "half", "snaptime": 1764133300, "vmstate": 0, "description": "", "snapstate": "prepare"},
            {"name": "current", "digest": "5b1e4a9a", "running": 1, "description": "You are here!",
             "parent": "em-infra-20261126T050102_123Z-1a2b"}
        ]))
        .unwrap();
        assert_eq!(
            list[0].run_id().as_deref(),
            Some("20261126T050102.123Z-1a2b")
        );
        assert_eq!(list[1].snaptime, Some(1_764_000_000));
        assert!(list[1].vmstate && list[1].parent.is_none());
        assert!(!list[2].is_complete());
        assert!(list[3].is_current() && list[3].running && list[3].snaptime.is_none());
        assert_eq!(
            list[3].parent.as_deref(),
            Some("em-infra-20261126T050102_123Z-1a2b")
        );
    }

    #[test]
    fn task_failures_become_the_callers_cases() {
        let failed = |exit: &str| ProxmoxError::TaskFailed {
            upid: "UPID:pve:1:2:3:qmsnapshot:101:a@pve!b:".into(),
            exitstatus: exit.into(),
        };
        assert_eq!(
            classify(failed("snapshot name 'x1' already used"), "pve", 101, "x1"),
            SnapshotError::AlreadyExists {
                vmid: 101,
                name: "x1".into()
            }
        );
        assert_eq!(
            classify(failed("snapshot 'x1' does not exist"), "pve", 101, "x1"),
            SnapshotError::NotFound {
                vmid: 101,
                name: "x1".into()
            }
        );
        assert_eq!(
            classify(
                failed("snapshot feature is not available"),
                "pve",
                101,
                "x1"
            ),
            SnapshotError::NotSupported { vmid: 101 }
        );
        // A volume-level message is not the configuration's "does not exist".
        let zfs = failed("can't rollback, snapshot 'x1' does not exist on 'tank:vm-101-disk-0'");
        assert!(matches!(
            classify(zfs, "pve", 101, "x1"),
            SnapshotError::Api(ProxmoxError::TaskFailed { .. })
        ));
        let locked = classify(
            ProxmoxError::Locked {
                what: "a Proxmox resource".into(),
                message: "VM is locked (backup)".into(),
            },
            "pve",
            101,
            "x1",
        );
        assert!(
            locked
                .to_string()
                .starts_with("another task holds the lock on VM 101"),
            "{locked}"
        );
        let gone = classify(
            ProxmoxError::Status {
                method: "POST".into(),
                path: "/nodes/pve/qemu/101/snapshot".into(),
                status: 500,
                message: "Configuration file 'nodes/pve/qemu-server/101.conf' does not exist"
                    .into(),
                errors: Default::default(),
            },
            "pve",
            101,
            "x1",
        );
        assert_eq!(
            gone,
            SnapshotError::NoSuchVm {
                node: "pve".into(),
                vmid: 101
            }
        );
        assert!(gone.fix().contains("removed or migrated"));
    }

    #[test]
    fn storage_support_per_type() {
        let yes = |t: &str, v: &str| volume_snapshot_support(t, v).can_snapshot();
        assert!(yes("lvmthin", "vm-101-disk-0"));
        assert!(yes("lvmthin", "base-9000-disk-0/vm-101-disk-0"));
        assert!(yes("zfspool", "vm-101-disk-0"));
        assert!(yes("zfs", "vm-101-disk-0"));
        assert!(yes("rbd", "vm-101-disk-0"));
        assert!(yes("btrfs", "101/vm-101-disk-0.raw"));
        assert!(!yes("btrfs", "101/vm-101-disk-0.vmdk"));
        assert!(snapshot_support("dir", "qcow2").can_snapshot());
        assert!(!snapshot_support("nfs", "raw").can_snapshot());
        assert!(yes("dir", "101/vm-101-disk-0.qcow2"));
        assert!(yes(
            "nfs",
            "9000/base-9000-disk-0.qcow2/101/vm-101-disk-0.qcow2"
        ));
        assert!(!yes("dir", "101/vm-101-disk-0.raw"));
        assert!(!yes("cifs", "101/vm-101-disk-0.vmdk"));
        assert!(!yes("lvm", "vm-101-disk-0"));
        assert!(yes("lvm", "vm-101-disk-0.qcow2"));
        for never in ["iscsi", "iscsidirect", "pbs", "esxi", "cephfs"] {
            assert!(!yes(never, "lun0"), "{never}");
        }
        assert_eq!(
            volume_snapshot_support("zfspool", "vm-101-disk-0"),
            SnapshotSupport::Yes { newest_only: true }
        );
        assert_eq!(
            volume_snapshot_support("lvmthin", "vm-101-disk-0"),
            SnapshotSupport::Yes { newest_only: false }
        );
        let SnapshotSupport::No { why } = volume_snapshot_support("lvm", "vm-101-disk-0") else {
            panic!("plain LVM snapshots");
        };
        assert!(why.contains("snapshot-as-volume-chain"), "{why}");
        let SnapshotSupport::No { why } = volume_snapshot_support("dir", "101/vm-101-disk-0.raw")
        else {
            panic!("raw on dir snapshots");
        };
        assert!(why.contains("only qcow2") && why.ends_with("raw"), "{why}");
        assert_eq!(
            volume_snapshot_support("linstor", "vm-101-disk-1"),
            SnapshotSupport::Unknown {
                storage_type: "linstor".into()
            }
        );
    }

    #[test]
    fn disks_of_a_config_leave_out_cdroms() {
        let config: VmConfig = serde_json::from_value(json!({
            "scsi0": "local-lvm:vm-101-disk-0,iothread=1,size=32G",
            "scsi1": "tank:vm-101-disk-1,size=100G",
            "ide2": "local-lvm:vm-101-cloudinit,media=cdrom",
            "ide0": "none,media=cdrom",
            "efidisk0": "local:101/vm-101-disk-2.raw,efitype=4m,size=528K",
            "sata0": "/dev/disk/by-id/ata-Samsung_SSD_870,size=500G",
            "net0": "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0",
            "unused0": "local-lvm:vm-101-disk-9"
        }))
        .unwrap();
        let disks = snapshot_disks(&config);
        let keys: Vec<&str> = disks.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["scsi0", "scsi1", "sata0", "efidisk0"]);
        assert_eq!(disks[0].storage.as_deref(), Some("local-lvm"));
        assert_eq!(disks[0].volume, "vm-101-disk-0");
        assert_eq!(disks[2].storage, None);
        assert_eq!(disks[3].volume, "101/vm-101-disk-2.raw");
        assert_eq!(volume_format(&disks[3].volume), "raw");
    }
}
