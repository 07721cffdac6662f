//! Reaching the hosts: the lab's SSH key, known_hosts and ssh_config, commands run in the
//! controller namespace, and what Ansible needs (environment and inventory).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use super::Lab;
use crate::sys;

impl Lab {
    /// The lab's SSH private key (ed25519, mode 0600), authorized for root on every host.
    pub fn private_key(&self) -> PathBuf {
        self.st.work_dir.join("id_ed25519")
    }

    /// known_hosts with every host's key under its address and name.
    pub fn known_hosts(&self) -> PathBuf {
        self.st.work_dir.join("known_hosts")
    }

    /// An ssh_config (written by `up`): user root, the lab key, strict host key checking
    /// against [`Lab::known_hosts`], and a `Host NAME` entry per host.
    pub fn ssh_config(&self) -> PathBuf {
        self.st.work_dir.join("ssh_config")
    }

    pub(super) fn ssh_config_text(&self) -> String {
        let q = |p: PathBuf| format!("\"{}\"", p.display());
        let mut s = String::from("# written by testlab\n");
        for h in &self.st.hosts {
            s.push_str(&format!("Host {}\n  HostName {}\n", h.name, h.addr));
        }
        s.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n  ControlMaster no\n  ControlPath none\n  LogLevel ERROR\n",
            q(self.private_key()),
            q(self.known_hosts()),
        ));
        s
    }

    /// `ip netns exec <controller> PROGRAM`: a command that runs inside the controller
    /// namespace, from where every host is reachable. Add arguments, env, etc. as usual.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = sys::cmd("ip");
        c.args(["netns", "exec", &self.st.controller_netns])
            .arg(program);
        c
    }

    /// `ssh -F <ssh_config> root@<addr>` from the controller namespace; append the remote
    /// command with `.arg(..)`. Panics if `host` is not in the lab.
    pub fn ssh(&self, host: &str) -> Command {
        let h = self
            .host(host)
            .unwrap_or_else(|| panic!("no host {host:?} in lab {}", self.st.id));
        let mut c = self.command(sys::which("ssh").unwrap_or_else(|| "ssh".into()));
        c.arg("-F")
            .arg(self.ssh_config())
            .arg(format!("root@{}", h.addr));
        c
    }

    /// Environment for `ansible`/`ansible-playbook` run through [`Lab::command`]: the lab key,
    /// user root, strict host keys from the lab's known_hosts, and a per-lab ControlPath dir
    /// (two labs may use the same addresses, so ssh masters must not be shared).
    pub fn ansible_env(&self) -> Vec<(String, String)> {
        let wd = &self.st.work_dir;
        vec![
            (
                "ANSIBLE_PRIVATE_KEY_FILE".into(),
                self.private_key().display().to_string(),
            ),
            ("ANSIBLE_REMOTE_USER".into(), "root".into()),
            ("ANSIBLE_HOST_KEY_CHECKING".into(), "True".into()),
            (
                "ANSIBLE_SSH_ARGS".into(),
                format!(
                    "-F {} -o ControlMaster=auto -o ControlPersist=60s",
                    self.ssh_config().display()
                ),
            ),
            (
                "ANSIBLE_SSH_CONTROL_PATH_DIR".into(),
                wd.join("ansible-cp").display().to_string(),
            ),
            (
                "ANSIBLE_PYTHON_INTERPRETER".into(),
                "/usr/bin/python3".into(),
            ),
        ]
    }

    /// A static INI inventory: group `lab` with every host (`ansible_host=<addr>`).
    pub fn inventory_ini(&self) -> String {
        let mut s = String::from("[lab]\n");
        for h in &self.st.hosts {
            s.push_str(&format!("{} ansible_host={}\n", h.name, h.addr));
        }
        s.push_str("\n[lab:vars]\nansible_user=root\n");
        s
    }
}
