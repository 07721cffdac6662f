//! The lab's network: the controller namespace with its bridge and `.1`, and per host a namespace
//! joined to the bridge by a veth pair, with its address and a default route to the controller.

use std::fs;
use std::path::Path;

use anyhow::Result;

use super::{Lab, NETNS_DIR};
use crate::sys;

impl Lab {
    /// Creates every namespace, the bridge and the veth pairs, and records the namespaces'
    /// inodes (in memory; the caller saves the state).
    pub(super) fn create_network(&mut self) -> Result<()> {
        let id = &self.st.id;
        let ctl = self.st.controller_netns.clone();
        let br = self.st.bridge.clone();
        sys::ip(&["netns", "add", &ctl])?;
        sys::ip(&["-n", &ctl, "link", "set", "lo", "up"])?;
        sys::ip(&["-n", &ctl, "link", "add", &br, "type", "bridge"])?;
        let cidr1 = format!("{}/24", self.st.controller_addr);
        sys::ip(&["-n", &ctl, "addr", "add", &cidr1, "dev", &br])?;
        sys::ip(&["-n", &ctl, "link", "set", &br, "up"])?;
        sys::run(
            self.command("sysctl")
                .args(["-q", "-w", "net.ipv4.ip_forward=0"])
                .args(["-w", "net.ipv6.conf.all.forwarding=0"]),
        )?;
        let gw = self.st.controller_addr.to_string();
        for (i, h) in self.st.hosts.iter().enumerate() {
            let ns = h.netns.as_str();
            let veth = format!("tl{id}v{}", i + 1);
            let cidr = format!("{}/24", h.addr);
            sys::ip(&["netns", "add", ns])?;
            sys::ip(&["-n", ns, "link", "set", "lo", "up"])?;
            // Both ends are created directly inside their namespaces.
            sys::ip(&[
                "link", "add", &veth, "netns", &ctl, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ])?;
            sys::ip(&["-n", &ctl, "link", "set", &veth, "master", &br])?;
            sys::ip(&["-n", &ctl, "link", "set", &veth, "up"])?;
            sys::ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
            sys::ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            // Ends in the controller (no forwarding, no uplink); gives ansible_default_ipv4.
            sys::ip(&["-n", ns, "route", "add", "default", "via", &gw])?;
        }
        self.st.netns_inodes = self
            .netns_names()
            .iter()
            .filter_map(|n| sys::ns_inode(Path::new(NETNS_DIR).join(n)))
            .collect();
        Ok(())
    }

    pub(super) fn netns_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.st.hosts.iter().map(|h| h.netns.clone()).collect();
        v.push(self.st.controller_netns.clone());
        v
    }

    /// Inodes of this lab's network namespaces: recorded ones and those still bound under
    /// /run/netns, minus inodes now bound to some other name (a recycled inode number).
    pub(super) fn our_netns_inodes(&self) -> Vec<u64> {
        let ours = self.netns_names();
        let mut foreign = Vec::new();
        let mut current = Vec::new();
        if let Ok(rd) = fs::read_dir(NETNS_DIR) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(ino) = sys::ns_inode(e.path()) {
                    if ours.contains(&name) {
                        current.push(ino);
                    } else {
                        foreign.push(ino);
                    }
                }
            }
        }
        let mut v: Vec<u64> = self
            .st
            .netns_inodes
            .iter()
            .chain(current.iter())
            .copied()
            .filter(|i| !foreign.contains(i))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}
