//! A lab of real SSH hosts for tests: systemd-nspawn containers (systemd as PID 1) in network
//! namespaces, reachable from a controller namespace. See `tests/lab/README.md`.
//!
//! ```no_run
//! use testlab::{Lab, LabSpec};
//! if !testlab::require_root_or_skip() {
//!     return;
//! }
//! let spec = LabSpec::new("/tmp/my-lab").host("lab-cp-1", "10.231.0.11".parse().unwrap());
//! let mut lab = Lab::up(spec).unwrap();
//! let out = lab.ssh("lab-cp-1").arg("hostname").output().unwrap();
//! assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lab-cp-1");
//! lab.down().unwrap();
//! assert!(lab.leftovers().is_empty());
//! ```

mod lab;
pub mod rootfs;
mod sys;

pub use lab::{
    HostSpec, Lab, LabHost, LabSpec, REGISTRY_DIR, REQUIRED_TOOLS, missing_requirements,
    reap_orphans, registered_labs,
};
pub use rootfs::{DEFAULT_PACKAGES, ensure_rootfs};

/// The message printed when a lab test is skipped.
pub const SKIP_MESSAGE: &str = "skipping lab test: needs root, netns, overlayfs and systemd-nspawn";

/// Whether lab tests can run here. Returns `false` after printing why they are skipped — except
/// when `CI` is `true` (or `1`), where a lab test must run: then it panics with the reason.
pub fn require_root_or_skip() -> bool {
    match missing_requirements() {
        None => true,
        Some(missing) => {
            let ci = std::env::var("CI")
                .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
                .unwrap_or(false);
            if ci {
                panic!("CI=true but lab tests cannot run here (missing: {missing})");
            }
            // Written to the real stderr (not `eprintln!`), so the test harness's output capture
            // does not hide the skip.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{SKIP_MESSAGE} (missing: {missing})");
            false
        }
    }
}
