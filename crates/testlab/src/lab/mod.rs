//! A lab: one controller network namespace with a bridge, and one systemd-nspawn container per
//! host, each in its own network namespace, cgroup and overlay of the shared rootfs.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::{rootfs, sys};

mod access;
mod boot;
mod network;
mod overlay;
mod spec;
mod teardown;

pub use spec::{HostSpec, LabSpec};
pub use teardown::reap_orphans;

/// Where running labs register themselves (one `<id>.json` each), so `em-testlab down --all`
/// can find labs whose owner died.
pub const REGISTRY_DIR: &str = "/run/testlab";
const STATE_FILE: &str = "lab.json";
const NETNS_DIR: &str = "/run/netns";
const NSPAWN_RUN_DIR: &str = "/run/systemd/nspawn";

/// A running host of a [`Lab`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabHost {
    /// Host name (also the container's hostname).
    pub name: String,
    pub addr: Ipv4Addr,
    /// Network namespace the host lives in.
    pub netns: String,
    /// systemd-nspawn machine name (unique per lab).
    pub machine: String,
    #[serde(default)]
    pid: Option<i32>,
    #[serde(default)]
    nspawn_lock: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    id: String,
    work_dir: PathBuf,
    rootfs: PathBuf,
    controller_netns: String,
    controller_addr: Ipv4Addr,
    bridge: String,
    hosts: Vec<LabHost>,
    cgroups: Vec<PathBuf>,
    #[serde(default)]
    netns_inodes: Vec<u64>,
    /// The process whose `Lab` owns this lab (`None` once detached). A lab whose owner died
    /// without tearing it down is reaped by the next [`Lab::up`].
    #[serde(default)]
    owner: Option<Owner>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    pid: i32,
    /// Start time of the process (clock ticks since boot), so a reused PID does not count.
    start: u64,
}

impl Owner {
    fn me() -> Option<Owner> {
        let pid = std::process::id() as i32;
        sys::start_ticks(pid).map(|start| Owner { pid, start })
    }

    fn is_alive(&self) -> bool {
        sys::alive(self.pid) && sys::start_ticks(self.pid) == Some(self.start)
    }
}

/// A lab of SSH-reachable systemd hosts. Dropping an owned lab tears it down (best effort);
/// call [`Lab::down`] to see errors.
pub struct Lab {
    st: State,
    owned: bool,
    torn_down: bool,
    children: Vec<(String, Child)>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("id", &self.st.id)
            .field("work_dir", &self.st.work_dir)
            .field("hosts", &self.st.hosts)
            .finish()
    }
}

fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let id = format!("{:06x}", sys::fnv1a(seed.as_bytes()) & 0xff_ffff);
        let taken = Path::new(NETNS_DIR).join(format!("tl-{id}-ctl")).exists()
            || Path::new(REGISTRY_DIR).join(format!("{id}.json")).exists();
        if !taken {
            return id;
        }
    }
}

/// Tools a lab needs on the machine running it.
pub const REQUIRED_TOOLS: &[&str] = &[
    "ip",
    "systemd-nspawn",
    "mmdebstrap",
    "ssh",
    "ssh-keygen",
    "mount",
    "umount",
    "rm",
];

/// Why a lab cannot run here, or `None` when it can.
pub fn missing_requirements() -> Option<String> {
    let mut missing = Vec::new();
    if !sys::is_root() {
        missing.push("root (euid 0)".to_string());
    }
    for t in REQUIRED_TOOLS {
        if sys::which(t).is_none() {
            missing.push(format!("program `{t}`"));
        }
    }
    let has_overlay = || {
        fs::read_to_string("/proc/filesystems")
            .map(|s| s.lines().any(|l| l.trim_end().ends_with("\toverlay")))
            .unwrap_or(false)
    };
    if !has_overlay()
        && sys::is_root()
        && let Some(modprobe) = sys::which("modprobe")
    {
        let _ = Command::new(modprobe)
            .arg("overlay")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if !has_overlay() {
        missing.push("overlayfs (kernel)".into());
    }
    if !Path::new("/proc/self/ns/net").exists() {
        missing.push("network namespaces (kernel)".into());
    }
    if sys::cgroup_hierarchies().is_empty() {
        missing.push("a cgroup2 or name=systemd cgroup mount under /sys/fs/cgroup".into());
    }
    if missing.is_empty() {
        None
    } else {
        Some(missing.join(", "))
    }
}

impl Lab {
    /// Builds (or reuses) the rootfs, creates namespaces, boots every host and waits until each
    /// accepts SSH from the controller namespace. On error, everything created is torn down.
    pub fn up(spec: LabSpec) -> Result<Lab> {
        let controller_addr = spec.validate()?;
        if let Some(m) = missing_requirements() {
            bail!("cannot start a lab here; missing: {m}");
        }
        reap_orphans();
        let rootfs = rootfs::ensure_rootfs(&spec.extra_packages)?;

        let wd = &spec.work_dir;
        if wd.exists() {
            let empty = fs::read_dir(wd)
                .with_context(|| format!("work dir {} is not readable", wd.display()))?
                .next()
                .is_none();
            if !empty {
                bail!(
                    "work dir {} is not empty (a lab there? run `em-testlab down --dir {}`)",
                    wd.display(),
                    wd.display()
                );
            }
        }
        let existed = wd.exists();
        fs::create_dir_all(wd).with_context(|| format!("cannot create {}", wd.display()))?;
        let work_dir = fs::canonicalize(wd)?;
        for (what, p) in [("work dir", &work_dir), ("rootfs cache", &rootfs)] {
            let text = p.to_string_lossy();
            if text.contains([',', ':', '\\']) || text.chars().any(char::is_whitespace) {
                if !existed {
                    let _ = fs::remove_dir(&work_dir);
                }
                bail!(
                    "{what} {text:?} contains ',', ':', '\\' or whitespace, which overlayfs mount options cannot carry; use a plainer path"
                );
            }
        }

        let id = new_id();
        let hierarchies = sys::cgroup_hierarchies();
        let st = State {
            controller_netns: format!("tl-{id}-ctl"),
            controller_addr,
            bridge: format!("tl{id}br"),
            hosts: spec
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| LabHost {
                    name: h.name.clone(),
                    addr: h.addr,
                    netns: format!("tl-{id}-h{}", i + 1),
                    machine: format!("tl{id}-{}", h.name),
                    pid: None,
                    nspawn_lock: None,
                })
                .collect(),
            cgroups: hierarchies
                .iter()
                .map(|h| h.join(format!("testlab-{id}")))
                .collect(),
            netns_inodes: Vec::new(),
            owner: Owner::me(),
            rootfs,
            work_dir,
            id,
        };
        let mut lab = Lab {
            st,
            owned: true,
            torn_down: false,
            children: Vec::new(),
        };
        match lab.bring_up(&spec) {
            Ok(()) => Ok(lab),
            Err(e) => {
                let cleanup = lab.down().err();
                Err(match cleanup {
                    None => e,
                    Some(c) => e.context(format!("(and the cleanup failed too: {c:#})")),
                })
            }
        }
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.st)?;
        fs::create_dir_all(REGISTRY_DIR)?;
        sys::write_atomic(
            &Path::new(REGISTRY_DIR).join(format!("{}.json", self.st.id)),
            &json,
        )?;
        sys::write_atomic(&self.st.work_dir.join(STATE_FILE), &json)
    }

    fn bring_up(&mut self, spec: &LabSpec) -> Result<()> {
        let t0 = Instant::now();
        self.save()?;
        let wd = self.st.work_dir.clone();
        let id = self.st.id.clone();

        // Lab key (0600, made by ssh-keygen).
        sys::run(
            sys::cmd("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("testlab-{id}"))
                .arg("-f")
                .arg(self.private_key()),
        )?;
        let pubkey = fs::read_to_string(wd.join("id_ed25519.pub"))?;

        // Network: everything lives in namespaces this lab creates.
        self.create_network()?;
        self.save()?;

        // Per-host file systems.
        let known_hosts = self.prepare_host_fs(&pubkey)?;
        sys::write_atomic(&self.known_hosts(), known_hosts)?;
        sys::write_atomic(&self.ssh_config(), self.ssh_config_text())?;
        self.save()?;

        // Boot.
        self.boot_hosts(spec)?;
        self.save()?;
        self.wait_ready(spec.ready_timeout)?;
        eprintln!(
            "testlab: lab {} up: {} host(s) SSH-ready in {:.1} s",
            self.st.id,
            self.st.hosts.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Opens an existing lab from its work directory (for `em-testlab down/exec`). The handle
    /// does not own the lab: dropping it leaves the lab running; [`Lab::down`] still works.
    pub fn attach(work_dir: &Path) -> Result<Lab> {
        let p = work_dir.join(STATE_FILE);
        let text = fs::read_to_string(&p).with_context(|| {
            format!(
                "no lab in {} (cannot read {})",
                work_dir.display(),
                p.display()
            )
        })?;
        Self::from_state_json(&text)
    }

    /// Opens a registered lab by id (see [`registered_labs`]); not owned, like [`Lab::attach`].
    pub fn attach_id(id: &str) -> Result<Lab> {
        let p = Path::new(REGISTRY_DIR).join(format!("{id}.json"));
        let text = fs::read_to_string(&p)
            .with_context(|| format!("no registered lab {id} ({})", p.display()))?;
        Self::from_state_json(&text)
    }

    fn from_state_json(text: &str) -> Result<Lab> {
        let st: State = serde_json::from_str(text).context("lab state file is not valid")?;
        Ok(Lab {
            st,
            owned: false,
            torn_down: false,
            children: Vec::new(),
        })
    }

    /// Leaves the lab running when this handle is dropped (e.g. `em-testlab up`); returns the
    /// work dir, from which [`Lab::attach`] reopens it.
    pub fn detach(mut self) -> PathBuf {
        self.owned = false;
        if self.st.owner.take().is_some()
            && let Err(e) = self.save()
        {
            eprintln!(
                "testlab: cannot record that lab {} is detached: {e:#}",
                self.st.id
            );
        }
        self.st.work_dir.clone()
    }

    /// PID of the process that owns the lab, or `None` for a detached lab.
    pub fn owner_pid(&self) -> Option<i32> {
        self.st.owner.as_ref().map(|o| o.pid)
    }

    pub fn id(&self) -> &str {
        &self.st.id
    }

    pub fn work_dir(&self) -> &Path {
        &self.st.work_dir
    }

    /// Path of the shared, read-only rootfs (lower layer).
    pub fn rootfs(&self) -> &Path {
        &self.st.rootfs
    }

    /// Name of the controller network namespace (holds the bridge and `.1`).
    pub fn controller_netns(&self) -> &str {
        &self.st.controller_netns
    }

    pub fn controller_addr(&self) -> Ipv4Addr {
        self.st.controller_addr
    }

    pub fn hosts(&self) -> &[LabHost] {
        &self.st.hosts
    }

    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.st.hosts.iter().find(|h| h.name == name)
    }

    /// Log of a host's systemd-nspawn (console output).
    pub fn host_log(&self, name: &str) -> PathBuf {
        self.st.work_dir.join("hosts").join(format!("{name}.log"))
    }

    /// Machine-readable description (what `em-testlab up` prints).
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.st.id,
            "work_dir": self.st.work_dir,
            "rootfs": self.st.rootfs,
            "controller_netns": self.st.controller_netns,
            "controller_addr": self.st.controller_addr,
            "private_key": self.private_key(),
            "ssh_config": self.ssh_config(),
            "known_hosts": self.known_hosts(),
            "hosts": self.st.hosts.iter().map(|h| serde_json::json!({
                "name": h.name, "addr": h.addr, "netns": h.netns, "machine": h.machine,
            })).collect::<Vec<_>>(),
            "ansible_env": self.ansible_env().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        })
    }
}

/// Ids of labs registered on this machine (running, or left behind by a killed owner).
pub fn registered_labs() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(REGISTRY_DIR)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
        // Longest interface name: tl<id>v<253>.
        assert!(format!("tl{a}v253").len() <= 15);
    }
}
