//! What a lab is made of: [`LabSpec`] (hosts on one /24, work dir, extras) and its [`HostSpec`]s,
//! with their validation.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

/// One host of a [`LabSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub addr: Ipv4Addr,
}

impl FromStr for HostSpec {
    type Err = anyhow::Error;

    /// Parses `NAME=IPV4`.
    fn from_str(s: &str) -> Result<Self> {
        let (name, addr) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("host {s:?}: expected NAME=IPV4, e.g. lab-cp-1=10.231.0.11"))?;
        let addr = addr
            .parse()
            .map_err(|_| anyhow!("host {s:?}: {addr:?} is not an IPv4 address"))?;
        Ok(HostSpec {
            name: name.to_string(),
            addr,
        })
    }
}

/// What to build: hosts on one /24 (the controller gets `.1`) and a work directory.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Created by [`Lab::up`](super::Lab::up) (may exist if empty) and deleted by
    /// [`Lab::down`](super::Lab::down).
    pub work_dir: PathBuf,
    pub hosts: Vec<HostSpec>,
    /// Debian packages added to the default rootfs package list (a separate cached rootfs).
    pub extra_packages: Vec<String>,
    /// How long to wait for every host to accept SSH.
    pub ready_timeout: Duration,
    /// Extra `systemd-nspawn` arguments for every host (e.g. `--capability=all`).
    pub nspawn_args: Vec<String>,
}

impl LabSpec {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        LabSpec {
            work_dir: work_dir.into(),
            hosts: Vec::new(),
            extra_packages: Vec::new(),
            ready_timeout: Duration::from_secs(90),
            nspawn_args: Vec::new(),
        }
    }

    /// Adds a host.
    pub fn host(mut self, name: impl Into<String>, addr: Ipv4Addr) -> Self {
        self.hosts.push(HostSpec {
            name: name.into(),
            addr,
        });
        self
    }

    /// Checks names and addresses; returns the controller address (`.1` of the hosts' /24).
    pub fn validate(&self) -> Result<Ipv4Addr> {
        if self.hosts.is_empty() {
            bail!("lab spec has no hosts: add at least one NAME=IPV4");
        }
        let first = self.hosts[0].addr.octets();
        for (i, h) in self.hosts.iter().enumerate() {
            let n = &h.name;
            let valid = !n.is_empty()
                && n.len() <= 48
                && !n.starts_with('-')
                && !n.ends_with('-')
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                bail!(
                    "host name {n:?}: use 1-48 lowercase letters, digits and '-', not starting or ending with '-'"
                );
            }
            let o = h.addr.octets();
            if o[..3] != first[..3] {
                bail!(
                    "host {n} address {}: every host must be in the same /24 as {} ({}.{}.{}.0/24)",
                    h.addr,
                    self.hosts[0].addr,
                    first[0],
                    first[1],
                    first[2]
                );
            }
            if !(2..=254).contains(&o[3]) {
                bail!(
                    "host {n} address {}: last octet must be 2-254 (.1 is the controller)",
                    h.addr
                );
            }
            if self.hosts[..i].iter().any(|o| o.name == *n) {
                bail!("host name {n:?} is used twice");
            }
            if self.hosts[..i].iter().any(|o| o.addr == h.addr) {
                bail!("host {n} address {} is used twice", h.addr);
            }
        }
        Ok(Ipv4Addr::new(first[0], first[1], first[2], 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn validates_spec() {
        let ok = LabSpec::new("/tmp/x")
            .host("lab-cp-1", ip("10.231.0.11"))
            .host("lab-worker-1", ip("10.231.0.21"));
        assert_eq!(ok.validate().unwrap(), ip("10.231.0.1"));
        let other_net = ok.host("w2", ip("10.232.0.22"));
        assert!(format!("{:#}", other_net.validate().unwrap_err()).contains("same /24"));
        let ctl = LabSpec::new("/x").host("a", ip("10.231.0.1"));
        assert!(format!("{:#}", ctl.validate().unwrap_err()).contains("controller"));
        let dup = LabSpec::new("/x")
            .host("a", ip("10.231.0.2"))
            .host("a", ip("10.231.0.3"));
        assert!(dup.validate().is_err());
        let bad = LabSpec::new("/x").host("Bad_Name", ip("10.231.0.2"));
        assert!(format!("{:#}", bad.validate().unwrap_err()).contains("Bad_Name"));
        assert!(LabSpec::new("/x").validate().is_err());
    }

    #[test]
    fn parses_host_spec() {
        let h: HostSpec = "lab-cp-1=10.231.0.11".parse().unwrap();
        assert_eq!(h.name, "lab-cp-1");
        assert_eq!(h.addr, ip("10.231.0.11"));
        assert!("nope".parse::<HostSpec>().is_err());
        assert!("a=10.231.0".parse::<HostSpec>().is_err());
    }
}
