//! File-system helpers for em-infra's own files: atomic writes and private directories.
//!
//! Everything em-infra writes under `.em-infra/<env>/` (state.json, the lock's neighbours, backups,
//! secrets) goes through [`write_atomic`] so a crash or a full disk never leaves a half-written file:
//! readers see the old content or the new content, nothing in between.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Mode for files that hold secrets or Terraform state (`0600`).
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode for directories em-infra creates for itself (`0700`).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Write `bytes` to `path` atomically with permission bits `mode`.
///
/// A temporary file is created in the same directory (so the final rename never crosses a file
/// system), written, flushed to disk, given `mode` (exactly, regardless of the umask), renamed over
/// `path`, and the directory is synced so the rename itself survives a crash. On any error the
/// temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let parent = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("writing {}: the path has no file name", path.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    let tmp_path = tmp.path().to_path_buf();
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", tmp_path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", tmp_path.display()))?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:o} on {}", tmp_path.display()))?;
    tmp.persist(path)
        .map_err(|err| err.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    sync_dir(parent)
}

/// [`write_atomic`] with mode `0600`: tokens, kubeconfigs, Terraform state copies.
pub fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, bytes, SECRET_FILE_MODE)
}

/// Give an existing file mode `0600` (a file another program wrote with the umask's mode).
pub fn make_private(path: &Path) -> anyhow::Result<()> {
    fs::set_permissions(path, Permissions::from_mode(SECRET_FILE_MODE))
        .with_context(|| format!("setting mode 600 on {}", path.display()))
}

/// Create `path` and any missing parents; every directory created here gets mode `0700`
/// (exactly, regardless of the umask). Directories that already exist keep their mode.
pub fn ensure_private_dir(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    // The directories that do not exist yet, deepest first.
    let missing: Vec<PathBuf> = path
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| !p.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)
        .with_context(|| format!("creating directory {}", path.display()))?;
    for dir in missing.iter().rev() {
        fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR_MODE))
            .with_context(|| format!("setting mode 700 on {}", dir.display()))?;
    }
    Ok(())
}

/// Flush a directory's entries (a rename or unlink in it) to disk.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_sets_exact_mode_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"{}", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert_eq!(mode_of(&path), 0o644);

        // Overwriting replaces content and mode, and leaves no temporary file behind.
        write_atomic(&path, b"{\"a\":1}", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}");
        assert_eq!(mode_of(&path), 0o640);
        assert_eq!(entries(dir.path()), vec!["state.json".to_string()]);
    }

    #[test]
    fn write_secret_is_0600_even_over_a_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k3s-token");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o666)).unwrap();
        write_secret(&path, b"new-token").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new-token");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn failed_write_leaves_no_partial_file_and_keeps_the_target() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the final rename must fail.
        let target = dir.path().join("busy");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), "x").unwrap();
        let err = write_atomic(&target, b"data", 0o600).unwrap_err();
        assert!(format!("{err:#}").contains("busy"), "{err:#}");
        assert_eq!(entries(dir.path()), vec!["busy".to_string()]);
        assert!(target.join("inside").is_file());

        // A missing parent directory is an error naming it, and creates nothing.
        let missing = dir.path().join("nope/file");
        let err = write_atomic(&missing, b"data", 0o600).unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        assert!(!dir.path().join("nope").exists());
    }

    #[test]
    fn ensure_private_dir_creates_0700_dirs_and_keeps_existing_modes() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        let deep = dir.path().join(".em-infra/k3s-dev/backups");
        ensure_private_dir(&deep).unwrap();
        assert!(deep.is_dir());
        assert_eq!(mode_of(&dir.path().join(".em-infra")), 0o700);
        assert_eq!(mode_of(&dir.path().join(".em-infra/k3s-dev")), 0o700);
        assert_eq!(mode_of(&deep), 0o700);
        assert_eq!(
            mode_of(dir.path()),
            0o755,
            "an existing parent keeps its mode"
        );

        // Idempotent, and an existing directory keeps the mode its owner chose.
        fs::set_permissions(&deep, Permissions::from_mode(0o750)).unwrap();
        ensure_private_dir(&deep).unwrap();
        assert_eq!(mode_of(&deep), 0o750);
    }

    #[test]
    fn ensure_private_dir_fails_on_a_file_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "").unwrap();
        let err = ensure_private_dir(&dir.path().join("file/sub")).unwrap_err();
        assert!(format!("{err:#}").contains("file/sub"), "{err:#}");
    }
}
