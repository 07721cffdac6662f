//! Tearing a lab down: stopping its containers, killing whatever is left in its cgroups and
//! namespaces, removing mounts, cgroups, namespaces, nspawn's runtime files, the work dir and the
//! registry entry; listing leftovers; reaping labs whose owner died.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

use super::{Lab, LabHost, NETNS_DIR, NSPAWN_RUN_DIR, REGISTRY_DIR, registered_labs};
use crate::sys;

impl Lab {
    /// PIDs of this lab: in its cgroups, in its network namespaces, or a recorded nspawn.
    fn lab_pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .st
            .cgroups
            .iter()
            .flat_map(|c| sys::cgroup_tree_pids(c))
            .collect();
        v.extend(sys::pids_in_netns(&self.our_netns_inodes()));
        for h in &self.st.hosts {
            if let Some(pid) = h.pid
                && sys::alive(pid)
                && self.is_our_nspawn(pid, h)
            {
                v.push(pid);
            }
        }
        let me = std::process::id() as i32;
        v.retain(|p| *p != me && sys::alive(*p));
        v.sort_unstable();
        v.dedup();
        v
    }

    fn is_our_nspawn(&self, pid: i32, h: &LabHost) -> bool {
        let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        cg.contains(&format!("/testlab-{}/", self.st.id))
            || String::from_utf8_lossy(&cmdline).contains(&h.machine)
    }

    /// Tears the lab down completely: stops containers (SIGTERM, SIGTERM, bounded wait, SIGKILL),
    /// kills anything left in its namespaces, unmounts overlays, removes cgroups, namespaces,
    /// nspawn's runtime leftovers, the registry entry and the work dir. Idempotent; continues
    /// past errors and reports them all.
    pub fn down(&mut self) -> Result<()> {
        self.torn_down = true;
        let mut errs: Vec<String> = Vec::new();

        // 1. Containers: the first SIGTERM asks for a clean poweroff, the second ends nspawn now.
        let nspawns: Vec<i32> = self
            .st
            .hosts
            .iter()
            .filter_map(|h| {
                h.pid
                    .filter(|p| sys::alive(*p) && self.is_our_nspawn(*p, h))
            })
            .collect();
        for p in &nspawns {
            sys::signal(*p, libc::SIGTERM);
        }
        if !nspawns.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            for p in &nspawns {
                sys::signal(*p, libc::SIGTERM);
            }
        }
        let cg_empty = |lab: &Lab| {
            lab.st
                .cgroups
                .iter()
                .all(|c| sys::cgroup_tree_pids(c).is_empty())
        };
        let reap = |lab: &mut Lab| {
            for (_, c) in &mut lab.children {
                let _ = c.try_wait();
            }
        };
        let stopped = sys::wait_until(Duration::from_secs(10), || {
            reap(self);
            nspawns.iter().all(|p| !sys::alive(*p)) && cg_empty(self)
        });
        if !stopped {
            errs.push("containers did not stop within 10 s of SIGTERM; sent SIGKILL".into());
        }
        // 2. Anything left in the lab's cgroups or namespaces (e.g. ssh ControlPersist masters).
        for round in 0..3 {
            let pids = self.lab_pids();
            if pids.is_empty() {
                break;
            }
            let sig = if round == 0 && stopped {
                libc::SIGTERM
            } else {
                libc::SIGKILL
            };
            for p in &pids {
                sys::signal(*p, sig);
            }
            sys::wait_until(Duration::from_secs(3), || {
                reap(self);
                self.lab_pids().is_empty()
            });
        }
        for (_, c) in &mut self.children {
            let _ = c.try_wait();
        }
        let pids = self.lab_pids();
        if !pids.is_empty() {
            errs.push(format!(
                "processes survived SIGKILL: {}",
                pids.iter()
                    .map(|p| format!("{p} ({})", sys::comm(*p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.children.clear();

        // 3. Mounts (overlays) under the work dir.
        if let Err(e) = sys::unmount_all_under(&self.st.work_dir) {
            errs.push(format!("{e:#}"));
        }
        // 4. Cgroups, depth-first (including nspawn's payload/ and supervisor/).
        for cg in &self.st.cgroups {
            if let Err(e) = sys::remove_cgroup_tree(cg) {
                errs.push(format!("{e:#}"));
            }
        }
        // 5. Namespaces.
        for ns in self.netns_names() {
            if Path::new(NETNS_DIR).join(&ns).exists()
                && let Err(e) = sys::ip(&["netns", "del", &ns])
            {
                errs.push(format!("{e:#}"));
            }
        }
        // 6. systemd-nspawn runtime leftovers of this lab's machines.
        for p in self.nspawn_leftover_paths() {
            let r = if p.is_dir() {
                sys::unmount_all_under(&p).and_then(|()| sys::remove_tree(&p))
            } else {
                fs::remove_file(&p).map_err(Into::into)
            };
            if let Err(e) = r {
                errs.push(format!("{}: {e:#}", p.display()));
            }
        }
        for sub in ["propagate", "locks", "unix-export", "incoming"] {
            let _ = fs::remove_dir(Path::new(NSPAWN_RUN_DIR).join(sub));
        }
        let _ = fs::remove_dir(NSPAWN_RUN_DIR);
        // 7. Work dir and registry entry.
        if let Err(e) = sys::remove_tree(&self.st.work_dir) {
            errs.push(format!("{e:#}"));
        }
        let reg = Path::new(REGISTRY_DIR).join(format!("{}.json", self.st.id));
        if reg.exists()
            && let Err(e) = fs::remove_file(&reg)
        {
            errs.push(format!("{}: {e}", reg.display()));
        }
        let _ = fs::remove_dir(REGISTRY_DIR);

        let left = self.leftovers();
        if errs.is_empty() && left.is_empty() {
            Ok(())
        } else {
            bail!(
                "teardown of lab {} incomplete: {}{}",
                self.st.id,
                errs.join("; "),
                if left.is_empty() {
                    String::new()
                } else {
                    format!("; leftovers: {}", left.join(", "))
                }
            )
        }
    }

    fn nspawn_leftover_paths(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Ok(rd) = fs::read_dir(NSPAWN_RUN_DIR) {
            for sub in rd.flatten() {
                for h in &self.st.hosts {
                    let p = sub.path().join(&h.machine);
                    if fs::symlink_metadata(&p).is_ok() {
                        v.push(p);
                    }
                }
            }
        }
        for h in &self.st.hosts {
            if let Some(l) = &h.nspawn_lock
                && fs::symlink_metadata(l).is_ok()
            {
                v.push(l.clone());
            }
        }
        v
    }

    /// Everything of this lab still present: namespaces, mounts, processes, cgroups, nspawn
    /// runtime files, the work dir and the registry entry. Empty after a successful
    /// [`Lab::down`].
    pub fn leftovers(&self) -> Vec<String> {
        let mut v = Vec::new();
        for ns in self.netns_names() {
            if fs::symlink_metadata(Path::new(NETNS_DIR).join(&ns)).is_ok() {
                v.push(format!("netns {ns}"));
            }
        }
        let netns_paths: Vec<PathBuf> = self
            .netns_names()
            .iter()
            .map(|n| Path::new(NETNS_DIR).join(n))
            .collect();
        for m in sys::mounts() {
            if m.mount_point.starts_with(&self.st.work_dir) || netns_paths.contains(&m.mount_point)
            {
                v.push(format!("mount {} ({})", m.mount_point.display(), m.fs_type));
            }
        }
        for p in self.lab_pids() {
            v.push(format!("process {p} ({})", sys::comm(p)));
        }
        for cg in &self.st.cgroups {
            for d in sys::dirs_depth_first(cg) {
                v.push(format!("cgroup {}", d.display()));
            }
        }
        for p in self.nspawn_leftover_paths() {
            v.push(format!("nspawn runtime file {}", p.display()));
        }
        if fs::symlink_metadata(&self.st.work_dir).is_ok() {
            v.push(format!("work dir {}", self.st.work_dir.display()));
        }
        let reg = Path::new(REGISTRY_DIR).join(format!("{}.json", self.st.id));
        if reg.exists() {
            v.push(format!("registry entry {}", reg.display()));
        }
        v
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned
            && !self.torn_down
            && let Err(e) = self.down()
        {
            eprintln!("testlab: {e:#}");
        }
    }
}

/// Tears down registered labs whose owning process died without tearing them down (a test
/// killed mid-run). Detached labs (`em-testlab up`) and labs of live processes are left alone.
/// Returns the ids it tore down.
pub fn reap_orphans() -> Vec<String> {
    let mut reaped = Vec::new();
    for id in registered_labs() {
        let Ok(mut lab) = Lab::attach_id(&id) else {
            continue;
        };
        if lab.st.owner.as_ref().is_some_and(|o| !o.is_alive()) {
            eprintln!("testlab: tearing down lab {id}: its owner process is gone");
            if let Err(e) = lab.down() {
                eprintln!("testlab: {e:#}");
            }
            reaped.push(id);
        }
    }
    reaped
}
