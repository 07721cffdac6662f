//! Booting the hosts: one systemd-nspawn per host, in the lab's cgroups and the host's network
//! namespace, then waiting until every host accepts SSH (or naming the one that does not, with
//! its nspawn log and journal). A host that reboots comes back, as a VM would.

use std::fs;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Lab, LabHost, LabSpec, NETNS_DIR};
use crate::sys;

/// Runs systemd-nspawn (its command line is `"$@"`) and starts it again when the container asked
/// for a reboot: nspawn exits with 133 then (systemd's own `systemd-nspawn@.service` restarts on
/// it: `RestartForceExitStatus=133`). The container's /run is a fresh tmpfs and nspawn gives
/// every boot a new `/proc/sys/kernel/random/boot_id`, so `ansible.builtin.reboot` sees a real
/// reboot. SIGTERM is passed on to nspawn (the teardown's clean poweroff); any other exit ends
/// the supervisor with nspawn's status.
const SUPERVISOR: &str = r#"child=
trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi' TERM
while :; do
  "$@" &
  child=$!
  while :; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  [ "$rc" -eq 133 ] || exit "$rc"
  echo "testlab: the container rebooted; starting it again" >&2
done"#;

impl Lab {
    /// Starts every host's systemd-nspawn (with `spec.nspawn_args`) under the reboot supervisor
    /// and records the supervisor's PID.
    pub(super) fn boot_hosts(&mut self, spec: &LabSpec) -> Result<()> {
        let wd = self.st.work_dir.clone();
        for i in 0..self.st.hosts.len() {
            let h = self.st.hosts[i].clone();
            let mut files = Vec::new();
            for cg in &self.st.cgroups {
                let dir = cg.join(&h.name);
                fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create cgroup {}", dir.display()))?;
                files.push(
                    fs::OpenOptions::new()
                        .write(true)
                        .open(dir.join("cgroup.procs"))
                        .with_context(|| format!("cannot open {}/cgroup.procs", dir.display()))?,
                );
            }
            let log = fs::File::create(self.host_log(&h.name))?;
            let mut c = sys::cmd("sh");
            let nspawn = sys::which("systemd-nspawn")
                .unwrap_or_else(|| std::path::PathBuf::from("systemd-nspawn"));
            c.args(["-c", SUPERVISOR, "testlab-supervisor"])
                .arg(nspawn)
                .arg("-D")
                .arg(wd.join("hosts").join(&h.name).join("merged"))
                .arg("-M")
                .arg(&h.machine)
                .arg(format!("--hostname={}", h.name))
                .args(["-b", "--register=no", "--keep-unit"])
                .arg(format!("--network-namespace-path={NETNS_DIR}/{}", h.netns))
                .args([
                    "--console=passive",
                    "--resolv-conf=off",
                    "--link-journal=no",
                    "--timezone=off",
                    // Network administration of the host's own namespace (iptables, ip, k3s).
                    "--capability=CAP_NET_ADMIN",
                ])
                .args(&spec.nspawn_args)
                // nspawn's own messages go to its stderr (the log), not to kmsg.
                .env("SYSTEMD_LOG_TARGET", "console")
                // /proc/sys/net writable (own netns), the rest of /proc/sys read-only.
                .env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "network")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0);
            let fds: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
            // SAFETY: the closure only calls async-signal-safe functions (getpid, write) on
            // pre-opened descriptors and a stack buffer; it allocates nothing.
            unsafe {
                c.pre_exec(move || {
                    let mut buf = [0u8; 20];
                    let mut n = libc::getpid() as u32;
                    let mut len = 0;
                    loop {
                        buf[buf.len() - 1 - len] = b'0' + (n % 10) as u8;
                        len += 1;
                        n /= 10;
                        if n == 0 {
                            break;
                        }
                    }
                    let start = buf.len() - len;
                    for fd in &fds {
                        if libc::write(*fd, buf[start..].as_ptr().cast(), len) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    // nspawn outlives `em-testlab up`: it must not keep descriptors inherited
                    // from our caller (e.g. the pipe of a `$(em-testlab up ...)`) open.
                    // Marking them close-on-exec keeps std's exec-error pipe working.
                    libc::syscall(
                        libc::SYS_close_range,
                        3u32,
                        u32::MAX,
                        libc::CLOSE_RANGE_CLOEXEC,
                    );
                    Ok(())
                });
            }
            let child = c
                .spawn()
                .with_context(|| format!("host {}: cannot start systemd-nspawn", h.name))?;
            drop(files);
            self.st.hosts[i].pid = Some(child.id() as i32);
            self.children.push((h.name.clone(), child));
        }
        Ok(())
    }

    pub(super) fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut pending: Vec<LabHost> = self.st.hosts.clone();
        let mut last_err: Vec<String> = vec![String::new(); pending.len()];
        while !pending.is_empty() {
            // A container that exited will never answer.
            let mut exited = None;
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some((name.clone(), status));
                    break;
                }
            }
            if let Some((name, status)) = exited {
                bail!(
                    "host {name}: systemd-nspawn exited ({status}) before SSH was ready; {}",
                    self.diagnostics(&name)
                );
            }
            let mut still = Vec::new();
            let mut errs = Vec::new();
            for (h, prev) in pending.into_iter().zip(last_err) {
                let out = self
                    .ssh(&h.name)
                    .args(["-o", "ConnectTimeout=2", "true"])
                    .stdin(Stdio::null())
                    .output();
                match out {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => {
                        let e = String::from_utf8_lossy(&o.stderr).trim().to_string();
                        still.push(h);
                        errs.push(if e.is_empty() { prev } else { e });
                    }
                    Err(e) => bail!("cannot run ssh: {e}"),
                }
            }
            pending = still;
            last_err = errs;
            if pending.is_empty() {
                break;
            }
            if start.elapsed() > timeout {
                let h = &pending[0];
                bail!(
                    "host {} ({}) not SSH-ready after {} s (last ssh error: {}); {}",
                    h.name,
                    h.addr,
                    timeout.as_secs(),
                    last_err[0],
                    self.diagnostics(&h.name)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The tail of a host's nspawn log and of its journal (read from the host side).
    fn diagnostics(&self, name: &str) -> String {
        let log = self.host_log(name);
        let mut s = format!("nspawn log {}:\n{}", log.display(), sys::tail(&log, 20));
        let journal = self
            .st
            .work_dir
            .join("hosts")
            .join(name)
            .join("merged/var/log/journal");
        if journal.is_dir()
            && let Ok(out) = sys::cmd("journalctl")
                .arg("-D")
                .arg(&journal)
                .args(["-n", "25", "--no-pager", "-q"])
                .stdin(Stdio::null())
                .output()
        {
            s.push_str(&format!(
                "\njournal of {name} (last 25 lines):\n{}",
                String::from_utf8_lossy(&out.stdout).trim_end()
            ));
        }
        s
    }
}
