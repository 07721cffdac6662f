//! Small system helpers: running programs, mounts, cgroups, processes, namespaces.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Directories searched after `$PATH` (root's tools live in sbin, which a test's `$PATH` may lack).
const EXTRA_BIN_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Full path of `tool`, searched in `$PATH` and then the usual sbin/bin directories.
pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A `Command` for `tool`, resolved with [`which`] (falls back to the bare name).
pub(crate) fn cmd(tool: &str) -> Command {
    Command::new(which(tool).unwrap_or_else(|| PathBuf::from(tool)))
}

fn describe(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `c` to completion; fails with the command line and its stderr unless it exits 0.
pub(crate) fn run(c: &mut Command) -> Result<String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", describe(c)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(c),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip` with arguments, checked.
pub(crate) fn ip(args: &[&str]) -> Result<()> {
    run(cmd("ip").args(args)).map(drop)
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_opts: String,
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// All mounts visible to this process.
pub(crate) fn mounts() -> Vec<MountEntry> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fs_type = r.next()?.to_string();
            let _source = r.next();
            let super_opts = r.next().unwrap_or("").to_string();
            Some(MountEntry {
                mount_point: PathBuf::from(unescape_mount(mount_point)),
                fs_type,
                super_opts,
            })
        })
        .collect()
}

/// Mount points at or below `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

/// Unmounts everything at or below `dir` (deepest first; lazily if a plain unmount fails).
pub(crate) fn unmount_all_under(dir: &Path) -> Result<()> {
    for _round in 0..4 {
        let list = mounts_under(dir);
        if list.is_empty() {
            return Ok(());
        }
        for m in list {
            if run(cmd("umount").arg(&m)).is_err() {
                let _ = run(cmd("umount").arg("-l").arg(&m));
            }
        }
    }
    let left = mounts_under(dir);
    if left.is_empty() {
        Ok(())
    } else {
        bail!("mounts still present under {}: {left:?}", dir.display())
    }
}

/// Removes `dir` recursively without ever crossing into another file system; refuses when
/// anything is still mounted below it.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        bail!(
            "refusing to delete {}: still mounted below it: {left:?}",
            dir.display()
        );
    }
    run(cmd("rm")
        .arg("-rf")
        .arg("--one-file-system")
        .arg("--")
        .arg(dir))
    .map(drop)
}

/// Cgroup hierarchies that take per-container directories: the cgroup2 mount (pure v2 or the
/// hybrid layout's `unified`) and the v1 `name=systemd` hierarchy, when present.
pub(crate) fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mounts()
        .into_iter()
        .filter(|m| {
            m.fs_type == "cgroup2"
                || (m.fs_type == "cgroup" && m.super_opts.split(',').any(|o| o == "name=systemd"))
        })
        .map(|m| m.mount_point)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Every directory in the tree rooted at `dir` (including it), deepest first.
pub(crate) fn dirs_depth_first(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(d.to_path_buf());
    }
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut out);
    }
    out
}

/// PIDs in any cgroup of the tree rooted at `dir`.
pub(crate) fn cgroup_tree_pids(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs_depth_first(dir)
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Removes a cgroup tree depth-first (cgroups must be empty of processes).
pub(crate) fn remove_cgroup_tree(dir: &Path) -> Result<()> {
    let mut errs = Vec::new();
    for d in dirs_depth_first(dir) {
        if let Err(e) = fs::remove_dir(&d) {
            errs.push(format!("{}: {e}", d.display()));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        bail!("cannot remove cgroups: {}", errs.join("; "))
    }
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat).
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    // `rest` starts at field 3 (state); field 22 is the 20th from here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub(crate) fn signal(pid: i32, sig: i32) {
    if pid > 1 && pid != std::process::id() as i32 {
        // SAFETY: plain kill(2) on a pid we identified; no memory is touched.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Polls `done` every 50 ms until it is true or `timeout` passes; returns the final value.
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// All PIDs in /proc.
pub(crate) fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Inode of a namespace file (`/run/netns/NAME` or `/proc/PID/ns/net`).
pub(crate) fn ns_inode(path: impl AsRef<Path>) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

/// PIDs whose network namespace has one of `inodes`.
pub(crate) fn pids_in_netns(inodes: &[u64]) -> Vec<i32> {
    if inodes.is_empty() {
        return Vec::new();
    }
    all_pids()
        .into_iter()
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/net"))
                .ok()
                .and_then(|l| {
                    let s = l.to_string_lossy().into_owned();
                    s.strip_prefix("net:[")?
                        .strip_suffix(']')?
                        .parse::<u64>()
                        .ok()
                })
                .is_some_and(|ino| inodes.contains(&ino))
        })
        .filter(|pid| alive(*pid))
        .collect()
}

/// Command name of a PID, for messages.
pub(crate) fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Last `n` lines of a (log) file, lossily decoded.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// FNV-1a 64-bit: a stable hash (unlike `DefaultHasher`) for cache keys.
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Writes `data` to `path` via a temporary file and rename.
pub(crate) fn write_atomic(path: &Path, data: impl AsRef<[u8]>) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_octal() {
        assert_eq!(unescape_mount(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
        assert_eq!(unescape_mount(r"/x\\"), r"/x\\");
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
