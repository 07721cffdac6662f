//! Each host's root file system: an overlay of the shared, read-only rootfs (see
//! [`crate::rootfs`]) with the host's own hostname, /etc/hosts, machine-id, SSH host key and the
//! lab's authorized key.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::{Lab, NSPAWN_RUN_DIR};
use crate::sys;

impl Lab {
    /// Mounts and fills every host's overlay under `<work dir>/hosts/<name>/merged`, authorizing
    /// `pubkey` for root, and records each host's nspawn image lock. Returns the known_hosts
    /// lines of the hosts' new keys.
    pub(super) fn prepare_host_fs(&mut self, pubkey: &str) -> Result<String> {
        let wd = self.st.work_dir.clone();
        let id = self.st.id.clone();
        let mut known_hosts = String::new();
        for i in 0..self.st.hosts.len() {
            let h = self.st.hosts[i].clone();
            let base = wd.join("hosts").join(&h.name);
            let (upper, work, merged) =
                (base.join("upper"), base.join("work"), base.join("merged"));
            for d in [&upper, &work, &merged] {
                fs::create_dir_all(d)?;
            }
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                self.st.rootfs.display(),
                upper.display(),
                work.display()
            );
            sys::run(
                sys::cmd("mount")
                    .args(["-t", "overlay", "overlay", "-o", &opts])
                    .arg(&merged),
            )
            .with_context(|| format!("host {}: overlay mount failed (the work dir must be on a file system overlayfs accepts as upper, e.g. ext4/xfs/tmpfs, not overlayfs)", h.name))?;
            let m = |p: &str| merged.join(p);
            fs::write(m("etc/hostname"), format!("{}\n", h.name))?;
            fs::write(m("etc/hosts"), self.etc_hosts(&h.name))?;
            let mid = format!(
                "{:016x}{:016x}\n",
                sys::fnv1a(format!("{id}-{}-a-{:?}", h.name, SystemTime::now()).as_bytes()),
                sys::fnv1a(format!("{id}-{}-b-{}", h.name, std::process::id()).as_bytes())
            );
            fs::write(m("etc/machine-id"), mid)?;
            sys::run(
                sys::cmd("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                    .arg(format!("root@{}", h.name))
                    .arg("-f")
                    .arg(m("etc/ssh/ssh_host_ed25519_key")),
            )?;
            let hostpub = fs::read_to_string(m("etc/ssh/ssh_host_ed25519_key.pub"))?;
            let mut parts = hostpub.split_whitespace();
            let (kt, kb) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            known_hosts.push_str(&format!("{},{} {kt} {kb}\n", h.addr, h.name));
            let sshdir = m("root/.ssh");
            fs::create_dir_all(&sshdir)?;
            fs::set_permissions(&sshdir, fs::Permissions::from_mode(0o700))?;
            fs::write(sshdir.join("authorized_keys"), pubkey)?;
            fs::set_permissions(
                sshdir.join("authorized_keys"),
                fs::Permissions::from_mode(0o600),
            )?;
            // nspawn's global image lock is named after the image's device and inode.
            let md = fs::metadata(&merged)?;
            self.st.hosts[i].nspawn_lock = Some(PathBuf::from(format!(
                "{NSPAWN_RUN_DIR}/locks/inode-{}:{}",
                md.dev(),
                md.ino()
            )));
        }
        Ok(known_hosts)
    }

    /// /etc/hosts of a host: localhost, its own name on 127.0.1.1 (Debian's convention) and
    /// every other lab host (there is no DNS in the lab).
    pub(super) fn etc_hosts(&self, me: &str) -> String {
        let mut s = format!("127.0.0.1 localhost\n127.0.1.1 {me}\n");
        for h in &self.st.hosts {
            if h.name != me {
                s.push_str(&format!("{} {}\n", h.addr, h.name));
            }
        }
        s.push_str("::1 localhost ip6-localhost ip6-loopback\n");
        s
    }
}
