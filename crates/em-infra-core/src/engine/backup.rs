//! Terraform state backups: before every apply and destroy (through [`backup_tfstate`]), and on
//! demand with `em-infra state backup|list|restore`.
//!
//! A backup is a byte-for-byte copy of `<env dir>/terraform.tfstate` in
//! `<state_dir>/backups/<ID>.tfstate` (file 0600, directory 0700), where the ID is
//! `<UTC time %Y%m%dT%H%M%SZ>-<reason>-serial<N>` (`-unreadable` instead of `-serial<N>` for a
//! state that does not parse, which is still kept: it is evidence). A copy identical to the newest
//! backup is not taken again; the newest [`KEEP_BACKUPS`] are kept, older ones are removed.
//!
//! Restore rules (failure kinds from [`crate::failure`]):
//! - unknown ID, or a backup that is not a readable state → bad input (2);
//! - the current state is newer (higher serial) or of another lineage → refused (5) unless
//!   `--force`;
//! - a missing, empty or corrupt current state never blocks a restore (that is when you need one);
//! - before overwriting, the current state is backed up with reason `pre-restore`, and the new
//!   state is written atomically with mode 0600.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::Environment;
use crate::failure::{Failure, bad_input};
use crate::fsutil;

/// How many backups are kept per environment; taking one more removes the oldest.
pub const KEEP_BACKUPS: usize = 20;
/// The backup directory's name inside the environment's state directory.
pub const BACKUPS_DIR: &str = "backups";
/// Backup files end with this.
const EXTENSION: &str = ".tfstate";
/// The time format that starts every backup ID (UTC).
const ID_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// How many IDs an "unknown backup" error suggests.
const SUGGESTED_IDS: usize = 5;

/// What a Terraform state file says about itself (format v4; `resources` only for v4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TfStateMeta {
    pub version: u64,
    pub serial: u64,
    pub lineage: String,
    pub terraform_version: Option<String>,
    /// Resource instances, data sources included: the line count of `terraform state list`.
    pub resources: Option<usize>,
}

impl TfStateMeta {
    /// Parse a state file's content. An empty or truncated file is an error describing why.
    pub fn parse(bytes: &[u8]) -> Result<TfStateMeta, String> {
        #[derive(Deserialize)]
        struct Raw {
            version: u64,
            serial: u64,
            lineage: String,
            #[serde(default)]
            terraform_version: Option<String>,
            #[serde(default)]
            resources: Option<Vec<RawResource>>,
        }
        #[derive(Deserialize)]
        struct RawResource {
            #[serde(default)]
            instances: Vec<serde::de::IgnoredAny>,
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err("the file is empty".into());
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let resources = match (raw.version, raw.resources) {
            (4, Some(res)) => Some(res.iter().map(|r| r.instances.len()).sum()),
            (4, None) => Some(0),
            _ => None,
        };
        Ok(TfStateMeta {
            version: raw.version,
            serial: raw.serial,
            lineage: raw.lineage,
            terraform_version: raw.terraform_version,
            resources,
        })
    }
}

/// One backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    /// `20261126T050102Z-pre-apply-serial7`: what `state restore` takes.
    pub id: String,
    pub path: PathBuf,
    pub taken_at: jiff::Timestamp,
    /// `pre-apply`, `pre-destroy`, `pre-restore`, `manual`.
    pub reason: String,
    pub size: u64,
    /// BLAKE3 of the content, hex.
    pub blake3: String,
    /// `None` when the copy is not a readable Terraform state.
    pub serial: Option<u64>,
    pub lineage: Option<String>,
    pub resources: Option<usize>,
    pub terraform_version: Option<String>,
    /// Why the copy is not a readable state (`None` when it is).
    pub unreadable: Option<String>,
}

/// What [`take_backup`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupOutcome {
    /// A new backup file.
    Created(BackupInfo),
    /// The state is byte-identical to the newest backup, which already holds it.
    Unchanged(BackupInfo),
    /// No `terraform.tfstate`, or an empty one: nothing to back up.
    NoState,
}

/// The current `terraform.tfstate`, as restore sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum CurrentState {
    Missing,
    /// Empty, truncated or otherwise not a state.
    Corrupt {
        reason: String,
    },
    Valid(TfStateMeta),
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub id: String,
    pub target: PathBuf,
    pub before: CurrentState,
    pub after: TfStateMeta,
    /// The backup holding the state that was replaced (new, or the newest when identical).
    pub pre_restore_backup: Option<String>,
    /// Why `--force` was needed (empty when it was not).
    pub overridden: Vec<String>,
    /// The current state already was this backup: nothing was written.
    pub unchanged: bool,
}

/// `<state_dir>/backups`.
pub fn backups_dir(env: &Environment) -> PathBuf {
    env.state_dir.join(BACKUPS_DIR)
}

/// Back up `terraform.tfstate` before changing it (the orchestrator calls this before every apply
/// and destroy). Returns the backup that holds the current state — a new one, or the newest
/// backup when the state has not changed since — or `None` when there is no (non-empty) state.
pub fn backup_tfstate(env: &Environment, reason: &str) -> anyhow::Result<Option<BackupInfo>> {
    Ok(match take_backup(env, reason)? {
        BackupOutcome::Created(info) | BackupOutcome::Unchanged(info) => Some(info),
        BackupOutcome::NoState => None,
    })
}

/// Copy `terraform.tfstate` into the backup directory unless it is missing, empty or identical
/// to the newest backup; then keep only the newest [`KEEP_BACKUPS`].
pub fn take_backup(env: &Environment, reason: &str) -> anyhow::Result<BackupOutcome> {
    let source = env.tfstate();
    let bytes = match fs_err::read(&source) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BackupOutcome::NoState),
        Err(e) => return Err(e.into()),
    };
    if bytes.is_empty() {
        return Ok(BackupOutcome::NoState);
    }
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let existing = list_backups(env)?;
    if let Some(newest) = existing.first()
        && newest.blake3 == hash
    {
        return Ok(BackupOutcome::Unchanged(newest.clone()));
    }

    let dir = backups_dir(env);
    fsutil::ensure_private_dir(&dir)?;
    let reason = sanitize_reason(reason);
    let now = jiff::Timestamp::now();
    let tail = match TfStateMeta::parse(&bytes) {
        Ok(meta) => format!("serial{}", meta.serial),
        Err(_) => "unreadable".to_string(),
    };
    let (id, path) = (1..)
        .map(|n| {
            let reason = if n == 1 {
                reason.clone()
            } else {
                format!("{reason}-{n}")
            };
            let id = format!("{}-{reason}-{tail}", now.strftime(ID_TIME_FORMAT));
            let path = dir.join(format!("{id}{EXTENSION}"));
            (id, path)
        })
        .find(|(_, path)| !path.exists())
        .expect("an unused backup name");
    fsutil::write_secret(&path, &bytes)
        .with_context(|| format!("backing up {}", source.display()))?;
    rotate(env)?;
    let info = read_backup(&path, &id)
        .with_context(|| format!("reading back {}", path.display()))?
        .with_context(|| format!("{} vanished after it was written", path.display()))?;
    Ok(BackupOutcome::Created(info))
}

/// Every backup, newest first.
pub fn list_backups(env: &Environment) -> anyhow::Result<Vec<BackupInfo>> {
    let dir = backups_dir(env);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs_err::read_dir(&dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(id) = name.strip_suffix(EXTENSION) else {
            continue;
        };
        if parse_id(id).is_none() || !entry.file_type()?.is_file() {
            continue;
        }
        let mtime = entry.metadata()?.modified().ok();
        if let Some(info) = read_backup(&entry.path(), id)? {
            found.push((info, mtime));
        }
    }
    // Newest first: by the time in the ID, then by file time, then by name.
    found.sort_by(|(a, am), (b, bm)| (b.taken_at, bm, &b.id).cmp(&(a.taken_at, am, &a.id)));
    Ok(found.into_iter().map(|(info, _)| info).collect())
}

/// Remove all but the newest [`KEEP_BACKUPS`].
fn rotate(env: &Environment) -> anyhow::Result<()> {
    let all = list_backups(env)?;
    for old in all.iter().skip(KEEP_BACKUPS) {
        fs_err::remove_file(&old.path)?;
    }
    if all.len() > KEEP_BACKUPS {
        fsutil::sync_dir(&backups_dir(env))?;
    }
    Ok(())
}

/// `(taken_at, reason)` from an ID, or `None` when it is not one of ours.
fn parse_id(id: &str) -> Option<(jiff::Timestamp, String)> {
    let (time, rest) = id.split_once('-')?;
    let taken_at = jiff::civil::DateTime::strptime(ID_TIME_FORMAT, time)
        .ok()
        .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt).ok())?;
    let (reason, tail) = rest.rsplit_once('-')?;
    let tail_ok = tail == "unreadable"
        || tail
            .strip_prefix("serial")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (tail_ok && !reason.is_empty()).then(|| (taken_at, reason.to_string()))
}

/// Read one backup file (`None` if it disappeared meanwhile, e.g. rotated by another process).
fn read_backup(path: &Path, id: &str) -> anyhow::Result<Option<BackupInfo>> {
    let Some((taken_at, reason)) = parse_id(id) else {
        return Ok(None);
    };
    let bytes = match fs_err::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let meta = TfStateMeta::parse(&bytes);
    let (serial, lineage, resources, terraform_version, unreadable) = match meta {
        Ok(m) => (
            Some(m.serial),
            Some(m.lineage),
            m.resources,
            m.terraform_version,
            None,
        ),
        Err(why) => (None, None, None, None, Some(why)),
    };
    Ok(Some(BackupInfo {
        id: id.to_string(),
        path: path.to_path_buf(),
        taken_at,
        reason,
        size: bytes.len() as u64,
        blake3: blake3::hash(&bytes).to_hex().to_string(),
        serial,
        lineage,
        resources,
        terraform_version,
        unreadable,
    }))
}

/// `pre-apply` stays; anything outside `[a-z0-9-]` becomes `-`.
fn sanitize_reason(reason: &str) -> String {
    let cleaned: String = reason
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        "manual".to_string()
    } else {
        cleaned.to_string()
    }
}

/// Restore backup `id` over the environment's `terraform.tfstate` (see the module docs for the
/// rules). The caller holds the environment's lock.
pub fn restore(env: &Environment, id: &str, force: bool) -> anyhow::Result<RestoreReport> {
    let backups = list_backups(env)?;
    let id = id.strip_suffix(EXTENSION).unwrap_or(id);
    let Some(chosen) = backups.iter().find(|b| b.id == id) else {
        let newest: Vec<&str> = backups
            .iter()
            .take(SUGGESTED_IDS)
            .map(|b| b.id.as_str())
            .collect();
        let known = if newest.is_empty() {
            format!("there are no backups in {}", backups_dir(env).display())
        } else {
            format!("newest: {}", newest.join(", "))
        };
        return Err(bad_input(format!(
            "no state backup {id:?} for environment {}; {known} — see `em-infra state list`",
            env.name
        )));
    };
    // Read the backup before anything else: the pre-restore backup may rotate it away.
    let bytes = fs_err::read(&chosen.path)?;
    let after = TfStateMeta::parse(&bytes).map_err(|why| {
        bad_input(format!(
            "backup {id} is not a readable Terraform state ({why}); choose another one"
        ))
    })?;

    let target = env.tfstate();
    let current_bytes = match fs_err::read(&target) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let before = match &current_bytes {
        None => CurrentState::Missing,
        Some(b) => match TfStateMeta::parse(b) {
            Ok(meta) => CurrentState::Valid(meta),
            Err(reason) => CurrentState::Corrupt { reason },
        },
    };

    let mut overridden = Vec::new();
    if let CurrentState::Valid(cur) = &before {
        if cur.lineage != after.lineage {
            overridden.push(format!(
                "the current state is of a different lineage ({} ≠ {}): it describes other infrastructure",
                cur.lineage, after.lineage
            ));
        }
        if cur.serial > after.serial {
            overridden.push(format!(
                "the current state is newer (serial {} > {}): restoring loses its later changes",
                cur.serial, after.serial
            ));
        }
    }
    if !overridden.is_empty() && !force {
        return Err(Failure::Refused(format!(
            "not restoring {id} over {}: {}. Rerun with --force if that is what you want \
             (the current state is backed up first)",
            target.display(),
            overridden.join("; ")
        ))
        .into());
    }

    if current_bytes.as_deref() == Some(bytes.as_slice()) {
        return Ok(RestoreReport {
            id: id.to_string(),
            target,
            before,
            after,
            pre_restore_backup: None,
            overridden,
            unchanged: true,
        });
    }
    let pre_restore_backup = backup_tfstate(env, "pre-restore")?.map(|b| b.id);
    fsutil::write_secret(&target, &bytes)
        .with_context(|| format!("restoring {id} over {}", target.display()))?;
    Ok(RestoreReport {
        id: id.to_string(),
        target,
        before,
        after,
        pre_restore_backup,
        overridden,
        unchanged: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back() {
        let (at, reason) = parse_id("20261126T050102Z-pre-apply-serial7").unwrap();
        assert_eq!(at.to_string(), "2026-11-26T05:01:02Z");
        assert_eq!(reason, "pre-apply");
        assert_eq!(
            parse_id("20261126T050102Z-manual-2-unreadable").unwrap().1,
            "manual-2"
        );
        assert!(parse_id("20261126T050102Z-serial7").is_none());
        assert!(parse_id("notatime-manual-serial7").is_none());
        assert!(parse_id("20261126T050102Z-manual-serialx").is_none());
    }

    #[test]
    fn reasons_are_file_name_safe() {
        assert_eq!(sanitize_reason("pre-apply"), "pre-apply");
        assert_eq!(sanitize_reason("Pre Restore/../x"), "pre-restore----x");
        assert_eq!(sanitize_reason("//"), "manual");
    }

    #[test]
    fn state_meta_counts_instances_and_rejects_truncation() {
        let state = br#"{"version": 4, "terraform_version": "1.9.0", "serial": 3, "lineage": "abc",
            "resources": [{"mode": "managed", "instances": [{}, {}]}, {"mode": "data", "instances": [{}]}]}"#;
        let meta = TfStateMeta::parse(state).unwrap();
        assert_eq!((meta.serial, meta.resources), (3, Some(3)));
        assert!(TfStateMeta::parse(&state[..40]).is_err());
        assert_eq!(
            TfStateMeta::parse(b"  \n").unwrap_err(),
            "the file is empty"
        );
    }
}
