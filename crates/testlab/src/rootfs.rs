//! The shared Debian root file system: built once with mmdebstrap, cached, never modified.

use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::sys;

/// Debian suite of the rootfs.
pub const SUITE: &str = "bookworm";

/// Packages in every lab rootfs (on top of mmdebstrap's `minbase` variant). Hosts are offline,
/// so whatever a playbook needs from apt must be here (or passed as extra packages).
pub const DEFAULT_PACKAGES: &[&str] = &[
    "ca-certificates",
    "curl",
    "dbus",
    "iproute2",
    "iptables",
    "openssh-server",
    "procps",
    "python3",
    "python3-apt",
    "sudo",
    "systemd",
    "systemd-sysv",
];

const MIRRORS: &[&str] = &[
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
];

/// Bump when [`customize`] changes, so cached rootfs directories are rebuilt.
const CUSTOMIZE_VERSION: u32 = 1;

/// Marker written last into a finished rootfs.
const MARKER: &str = "etc/testlab-rootfs";

/// Environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "EM_TESTLAB_CACHE";

/// The cache directory: `$EM_TESTLAB_CACHE`, else `<workspace>/target/testlab-cache`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os(CACHE_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            let ws = manifest.parent().and_then(Path::parent).unwrap_or(manifest);
            ws.join("target").join("testlab-cache")
        }
    }
}

/// Sorted, deduplicated package list: the defaults plus `extra`.
pub fn package_list(extra: &[String]) -> Result<Vec<String>> {
    for p in extra {
        let ok = !p.is_empty()
            && p.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '+' | '-')
            });
        if !ok {
            bail!(
                "extra package {p:?} is not a Debian package name (lowercase letters, digits, '.', '+', '-')"
            );
        }
    }
    let mut v: Vec<String> = DEFAULT_PACKAGES
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

fn key(packages: &[String]) -> String {
    let text = format!(
        "suite={SUITE}\nvariant=minbase\nmirrors={}\npackages={}\ncustomize={CUSTOMIZE_VERSION}\n",
        MIRRORS.join("|"),
        packages.join(",")
    );
    format!("{:016x}", sys::fnv1a(text.as_bytes()))
}

/// Where the rootfs for these extra packages lives (whether built or not).
pub fn rootfs_path(extra: &[String]) -> Result<PathBuf> {
    Ok(cache_dir().join(format!("rootfs-{}", key(&package_list(extra)?))))
}

/// Whether `dir` is a finished rootfs.
pub fn is_complete(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Returns the cached rootfs, building it first if needed (about 20–60 s, needs deb.debian.org).
///
/// Concurrent callers serialise on a lock file; the build goes to a temporary directory that is
/// renamed into place only when complete, and stale temporary directories of interrupted builds
/// are unmounted and removed.
pub fn ensure_rootfs(extra: &[String]) -> Result<PathBuf> {
    let packages = package_list(extra)?;
    let cache = cache_dir();
    let name = format!("rootfs-{}", key(&packages));
    let dest = cache.join(&name);
    if is_complete(&dest) {
        return Ok(dest);
    }
    fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create cache dir {}", cache.display()))?;
    let lock_path = cache.join(format!("{name}.lock"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!(
            "cannot lock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    if is_complete(&dest) {
        return Ok(dest);
    }
    // A directory without the marker is an incomplete leftover (cannot normally happen, since
    // only complete builds are renamed into place); so are temporary build directories.
    for entry in fs::read_dir(&cache)?.flatten() {
        let fname = entry.file_name().to_string_lossy().into_owned();
        if fname == name || fname.starts_with(&format!("{name}.tmp")) {
            let p = entry.path();
            if p.is_dir() {
                sys::unmount_all_under(&p)?;
                sys::remove_tree(&p)?;
            }
        }
    }
    let tmp = cache.join(format!("{name}.tmp"));
    let log = cache.join(format!("{name}.build.log"));
    eprintln!(
        "testlab: building Debian {SUITE} rootfs once (mmdebstrap, ~30-60 s) into {}",
        dest.display()
    );
    let started = Instant::now();
    let logf = fs::File::create(&log)?;
    let mut c = sys::cmd("mmdebstrap");
    c.arg("--mode=root")
        .arg("--variant=minbase")
        .arg(format!("--include={}", packages.join(",")))
        .arg(SUITE)
        .arg(&tmp)
        .args(MIRRORS)
        .stdin(std::process::Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf);
    let status = c.status().context("cannot run mmdebstrap")?;
    if !status.success() {
        let _ = sys::unmount_all_under(&tmp);
        let _ = sys::remove_tree(&tmp);
        bail!(
            "mmdebstrap failed ({status}); log {}:\n{}",
            log.display(),
            sys::tail(&log, 30)
        );
    }
    customize(&tmp, &packages)?;
    fs::rename(&tmp, &dest)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
    eprintln!(
        "testlab: rootfs ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(lock);
    Ok(dest)
}

/// Makes the fresh rootfs suitable as a shared, offline lower layer.
fn customize(root: &Path, packages: &[String]) -> Result<()> {
    // mmdebstrap copies the build host's resolver; a resolver that answers nothing makes every
    // lookup inside a host hang. 127.0.0.1 (nothing listens) fails at once.
    let resolv = root.join("etc/resolv.conf");
    let _ = fs::remove_file(&resolv);
    fs::write(&resolv, "nameserver 127.0.0.1\n")?;
    // Host keys made at build time would be shared by every host: each host gets its own.
    for e in fs::read_dir(root.join("etc/ssh"))?.flatten() {
        if e.file_name().to_string_lossy().starts_with("ssh_host_") {
            fs::remove_file(e.path())?;
        }
    }
    fs::write(root.join("etc/hostname"), "localhost\n")?;
    // Each host writes its own machine id.
    fs::write(root.join("etc/machine-id"), "")?;
    // Hosts are offline: background apt runs would only fail, and hold the dpkg lock meanwhile.
    let sysdir = root.join("etc/systemd/system");
    fs::create_dir_all(&sysdir)?;
    for unit in ["apt-daily.timer", "apt-daily-upgrade.timer"] {
        let p = sysdir.join(unit);
        let _ = fs::remove_file(&p);
        std::os::unix::fs::symlink("/dev/null", &p)?;
    }
    fs::write(
        root.join(MARKER),
        format!(
            "suite={SUITE}\ncustomize={CUSTOMIZE_VERSION}\npackages={}\n",
            packages.join(",")
        ),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_list_is_sorted_and_validated() {
        let l = package_list(&["cron".into(), "curl".into()]).unwrap();
        assert!(l.windows(2).all(|w| w[0] < w[1]));
        assert!(l.contains(&"cron".to_string()));
        assert!(package_list(&["bad name".into()]).is_err());
        assert_ne!(
            key(&package_list(&[]).unwrap()),
            key(&package_list(&["cron".into()]).unwrap())
        );
    }
}
