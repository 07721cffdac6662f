//! One run at a time per environment: `<state_dir>/lock`.
//!
//! The lock is an OS file lock (`flock` through std's [`File::try_lock`]) on `<state_dir>/lock`,
//! plus a JSON record in that file naming the holder (pid, host, start time, command) so a refused
//! run can say who holds the environment. The OS lock is the truth: it is released by the kernel
//! when its process dies, however it dies. The record is the evidence: [`EnvLock`]'s `Drop` removes
//! the file, so a lock file that exists while its OS lock is free means the previous run ended
//! without releasing it (crash, SIGKILL, power loss). Such a *stale* lock is named and, unless the
//! user passes `--clear-stale-lock`, refused — never silently stolen.
//!
//! Failures are [`Failure::Locked`] (exit 75), both for a live holder and for a stale record.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::fsutil;

/// The lock file's name inside the environment's state directory.
pub const LOCK_FILE: &str = "lock";

/// Who holds (or held) an environment's lock: the JSON written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// RFC 3339, whole seconds.
    pub started_at: jiff::Timestamp,
    /// The em-infra command line after `em-infra`, e.g. `up --from configure`.
    pub command: String,
    /// The tool the run is running now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<RunningTool>,
}

/// A tool a run started: its process group (= its pid) and what it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningTool {
    pub pgid: u32,
    /// `ansible-playbook site.yml`.
    pub what: String,
}

impl RunningTool {
    /// Whether any live process (not a zombie waiting for its reaper) is in its group.
    pub fn is_running(&self) -> bool {
        let Ok(entries) = fs::read_dir("/proc") else {
            return false;
        };
        entries.flatten().any(|entry| {
            let is_pid = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            is_pid
                && fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
                    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
                    let fields: Vec<&str> = stat
                        .rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().collect())
                        .unwrap_or_default();
                    matches!(fields.as_slice(), [state, _ppid, pgrp, ..]
                        if *state != "Z" && *state != "X" && pgrp.parse() == Ok(self.pgid))
                })
        })
    }
}

impl LockHolder {
    /// This process, now.
    pub fn current(command: &str) -> Self {
        LockHolder {
            pid: std::process::id(),
            host: hostname(),
            started_at: jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
                .unwrap_or_else(|_| jiff::Timestamp::now()),
            command: command.to_string(),
            tool: None,
        }
    }
}

/// A lock record left behind by a run that ended without releasing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLock {
    /// The record, when it was readable.
    pub holder: Option<LockHolder>,
    /// One sentence naming it: "a previous run (pid P on HOST, started T, em-infra up) ended
    /// without releasing the lock".
    pub description: String,
}

/// The environment's lock, held until dropped. Dropping removes the lock file and releases the
/// OS lock.
#[derive(Debug)]
pub struct EnvLock {
    file: File,
    path: PathBuf,
    holder: LockHolder,
    cleared_stale: Option<StaleLock>,
}

impl EnvLock {
    /// Take `<state_dir>/lock` for `command` (e.g. `"up"`), creating `state_dir` (0700) if needed.
    ///
    /// - held by a live process → `Failure::Locked` naming its pid, host, start time and command;
    /// - a stale record (previous run died holding it) → `Failure::Locked` naming it, unless
    ///   `clear_stale`, in which case the record is replaced and reported by [`EnvLock::cleared_stale`].
    pub fn acquire(state_dir: &Path, command: &str, clear_stale: bool) -> anyhow::Result<EnvLock> {
        fsutil::ensure_private_dir(state_dir)?;
        let path = state_dir.join(LOCK_FILE);
        // Retry only for the race where the previous holder removed the file between our open and
        // our lock (we then hold a lock on an unlinked file); a handful of attempts is plenty.
        for _ in 0..16 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(fsutil::SECRET_FILE_MODE)
                .open(&path)
                .with_context(|| format!("opening lock file {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    let record = read_record(&file);
                    return Err(Failure::Locked(held_message(state_dir, &record)).into());
                }
                Err(fs::TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("locking {}", path.display()));
                }
            }
            if !is_same_file(&file, &path) {
                continue;
            }

            let record = read_record(&file);
            if let Record::Holder(LockHolder {
                tool: Some(tool),
                host,
                pid,
                ..
            }) = &record
                && *host == hostname()
                && tool.is_running()
            {
                // Never cleared, even with --clear-stale-lock: two tools would work on the
                // same hosts at once.
                return Err(Failure::Locked(format!(
                    "environment {}: the run that held the lock (pid {pid}) is gone, but a tool it \
                     started still runs: {} (process group {}). It stops within seconds of its run; \
                     if it does not, stop it (`kill -TERM -- -{}`), then rerun",
                    state_dir.display(),
                    tool.what,
                    tool.pgid,
                    tool.pgid
                ))
                .into());
            }
            let cleared_stale = match record {
                Record::Empty => None,
                record => {
                    let stale = describe_stale(&record);
                    if !clear_stale {
                        return Err(Failure::Locked(format!(
                            "environment {}: {}; make sure no em-infra is still running for it, then rerun \
                             with --clear-stale-lock",
                            state_dir.display(),
                            stale.description
                        ))
                        .into());
                    }
                    Some(stale)
                }
            };

            let holder = LockHolder::current(command);
            write_record(&file, &holder)
                .with_context(|| format!("writing lock holder to {}", path.display()))?;
            return Ok(EnvLock {
                file,
                path,
                holder,
                cleared_stale,
            });
        }
        anyhow::bail!(
            "could not lock {}: the lock file kept being replaced by other em-infra processes",
            path.display()
        )
    }

    /// The record this lock wrote (this process).
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// Note in the lock's record which tool runs now (`None`: none). Best effort: the record is
    /// evidence for a later run, the OS lock is the truth, so a failed write changes nothing.
    pub fn record_tool(&self, tool: Option<RunningTool>) {
        let holder = LockHolder {
            tool,
            ..self.holder.clone()
        };
        let _ = write_record(&self.file, &holder);
    }

    /// `<state_dir>/lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stale record this acquisition replaced (only with `clear_stale`), for the caller to
    /// report.
    pub fn cleared_stale(&self) -> Option<&StaleLock> {
        self.cleared_stale.as_ref()
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        // Remove the file while still holding the OS lock; the lock goes with the descriptor
        // right after. A waiter that opened the old file notices the swap (`is_same_file`).
        if is_same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The holder record in `<state_dir>/lock`, read without locking (for display only: the OS lock,
/// not this record, decides who holds the environment). `None` when there is no readable record.
pub fn read_holder(state_dir: &Path) -> Option<LockHolder> {
    let file = File::open(state_dir.join(LOCK_FILE)).ok()?;
    match read_record(&file) {
        Record::Holder(holder) => Some(holder),
        Record::Empty | Record::Unreadable(_) => None,
    }
}

/// True when `holder` is a live process on this host (it may still be running a command).
pub fn holder_is_alive(holder: &LockHolder) -> bool {
    holder.host == hostname() && pid_alive(holder.pid)
}

/// What a lock file says.
#[derive(Debug)]
enum Record {
    /// Empty (a holder that has not written its record yet, or a fresh file).
    Empty,
    Holder(LockHolder),
    /// Not a holder record (partly written, or edited by hand); the text, shortened.
    Unreadable(String),
}

/// Replace the lock file's content with `holder`'s record.
fn write_record(file: &File, holder: &LockHolder) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(holder)?;
    json.push(b'\n');
    file.set_len(0)?;
    file.write_all_at(&json, 0)?;
    file.sync_data()
}

fn read_record(mut file: &File) -> Record {
    let mut text = String::new();
    if file.read_to_string(&mut text).is_err() {
        return Record::Unreadable("(not UTF-8)".into());
    }
    if text.trim().is_empty() {
        return Record::Empty;
    }
    match serde_json::from_str::<LockHolder>(&text) {
        Ok(holder) => Record::Holder(holder),
        Err(_) => Record::Unreadable(text.trim().chars().take(80).collect()),
    }
}

fn held_message(state_dir: &Path, record: &Record) -> String {
    match record {
        Record::Holder(h) => {
            let this = if h.pid == std::process::id() && h.host == hostname() {
                " — this process already holds it"
            } else {
                ""
            };
            format!(
                "environment {} is locked by pid {} on {} since {} (em-infra {}){this}; wait for it or stop it",
                state_dir.display(),
                h.pid,
                h.host,
                h.started_at,
                h.command
            )
        }
        Record::Empty | Record::Unreadable(_) => format!(
            "environment {} is locked by another em-infra process (its holder record is not written \
             yet); wait for it or stop it",
            state_dir.display()
        ),
    }
}

fn describe_stale(record: &Record) -> StaleLock {
    match record {
        Record::Holder(h) => {
            let note = if h.host != hostname() {
                format!(
                    "; it ran on another host ({}), whose processes cannot be checked from here",
                    h.host
                )
            } else if pid_alive(h.pid) {
                format!(
                    "; pid {} is running now but does not hold the lock (the pid was reused)",
                    h.pid
                )
            } else {
                String::new()
            };
            StaleLock {
                holder: Some(h.clone()),
                description: format!(
                    "a previous run (pid {} on {}, started {}, em-infra {}) ended without releasing the lock{note}",
                    h.pid, h.host, h.started_at, h.command
                ),
            }
        }
        Record::Unreadable(text) => StaleLock {
            holder: None,
            description: format!(
                "a previous run ended without releasing the lock, and its record is unreadable ({text:?})"
            ),
        },
        Record::Empty => StaleLock {
            holder: None,
            description: "a previous run ended without releasing the lock".into(),
        },
    }
}

/// True when `file` (open) is the file currently at `path` (not unlinked or replaced).
fn is_same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether a process with this pid exists on this host (a zombie counts as dead).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid_t <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid_t, 0) };
    let exists = rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // /proc/<pid>/stat: "pid (comm) S ..."; state Z = zombie (dead, not yet reaped).
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `gethostname`).
pub fn hostname() -> String {
    if let Ok(name) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            return name.to_string();
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname NUL-terminates on success
    // when the name fits, and we also stop at the buffer's end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(name) = std::str::from_utf8(&buf[..end])
            && !name.is_empty()
        {
            return name.to_string();
        }
    }
    "unknown-host".to_string()
}
