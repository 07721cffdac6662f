//! What a running stand-in saw, written for tests to read (a stand-in-only file, 0600):
//! `<data dir>/{server,agent}/standin-runtime.json`.
//!
//! It holds no secrets: where the token came from (not the token), whether the agent pinned the
//! server's CA, the proxy environment systemd handed the process (from the unit's
//! `EnvironmentFile`), the air-gap images k3s would import and whether a `registries.yaml` exists.

use crate::json::Json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub(crate) const IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";

/// The proxy variables k3s and its containerd honour (install.sh copies these into the unit's
/// `.env` file; k3s docs "Configuring an HTTP proxy").
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "CONTAINERD_HTTP_PROXY",
    "CONTAINERD_HTTPS_PROXY",
    "CONTAINERD_NO_PROXY",
];

/// Archive suffixes k3s imports from the images directory (its containerd preload: tar, tar.lz4,
/// tar.bz2/tbz, tar.gz/tgz, tar.zst/tzst).
const IMAGE_SUFFIXES: &[&str] = &[
    ".tar", ".tar.lz4", ".tar.bz2", ".tbz", ".tar.gz", ".tgz", ".tar.zst", ".tzst",
];

pub(crate) fn proxy_env() -> Json {
    Json::Obj(
        PROXY_VARS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), Json::str(v))))
            .collect(),
    )
}

/// The image archives in the air-gap images directory, by name.
pub(crate) fn images() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(IMAGES_DIR)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    let l = n.to_lowercase();
                    IMAGE_SUFFIXES.iter().any(|s| l.ends_with(s))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Writes the record (0600), replacing an older one.
pub(crate) fn write(path: &str, fields: Vec<(&str, Json)>) -> std::io::Result<()> {
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, Json::obj(fields).pretty() + "\n")?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
}
