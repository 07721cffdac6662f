//! What a running k3s node leaves on a host, made by hand on a lab host (the stand-in runs no
//! containers): what k3s' killall/uninstall scripts clean up, plus things of the user's that a
//! reset must leave alone. `ansible_lab` dirties an agent with [`leave`], resets it, and checks
//! with [`assert_cleaned`].

use std::process::Output;

/// The packages the lab rootfs needs for this (`nft`; `iptables` is in the default rootfs).
pub(crate) const EXTRA_PACKAGES: [&str; 1] = ["nftables"];

fn ssh(lab: &testlab::Lab, host: &str, script: &str) -> Output {
    lab.ssh(host).arg(script).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Leaves k3s-like state on `host`: CNI and flannel interfaces (a veth on cni0), a CNI network
/// namespace, tmpfs mounts under /run/k3s and /var/lib/kubelet (one with a space in its path),
/// iptables chains and rules of kube-proxy, CNI and flannel, kube-proxy's nftables tables, a
/// container shim with a child process, install.sh's `crictl -> k3s` link; and the user's own
/// `kubectl` binary, `ctr` link, iptables rule and nftables table.
pub(crate) fn leave(lab: &testlab::Lab, host: &str) {
    let script = r#"set -eux
ip link add cni0 type bridge
ip link add veth-pod1 type veth peer name veth-pod1-peer
ip link set veth-pod1 master cni0
ip link add flannel.1 type veth peer name flannel-peer
ip netns add cni-0f3c2a11-test
for m in /run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/abc123/rootfs \
         "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~projected/kube api access"; do
  mkdir -p "$m" && mount -t tmpfs tmpfs "$m"
done
iptables -t nat -N KUBE-SERVICES
iptables -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
iptables -t nat -N CNI-HOSTPORT-DNAT
iptables -t nat -A PREROUTING -p tcp --dport 30080 -j CNI-HOSTPORT-DNAT
iptables -N FLANNEL-FWD
iptables -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
iptables -A INPUT -p tcp --dport 2222 -m comment --comment user-keep -j ACCEPT
nft add table ip kube-proxy
nft add table ip6 kube-proxy
nft add table inet user-keep
mkdir -p /var/lib/rancher/k3s/data/abc123/bin
cp /bin/sh /var/lib/rancher/k3s/data/abc123/bin/containerd-shim-runc-v2
systemd-run --unit em-fake-shim --collect \
  /var/lib/rancher/k3s/data/abc123/bin/containerd-shim-runc-v2 -c 'sleep 4242 & sleep 4243 & wait'
printf '#!/bin/sh\necho user kubectl\n' > /usr/local/bin/kubectl
chmod 755 /usr/local/bin/kubectl
ln -sf k3s /usr/local/bin/crictl
mkdir -p /opt/user && ln -sf /opt/user/ctr /usr/local/bin/ctr
sleep 1
pgrep -f 'sleep 4242' >/dev/null
"#;
    let out = ssh(lab, host, script);
    assert!(
        out.status.success(),
        "{host}: leaving k3s state failed:\n{}",
        text(&out)
    );
}

/// Checks that a reset removed everything [`leave`] made for k3s and kept the user's things.
pub(crate) fn assert_cleaned(lab: &testlab::Lab, host: &str) {
    let script = r#"
for i in cni0 flannel.1 veth-pod1 flannel-peer; do [ -e /sys/class/net/$i ] && echo "LEFT interface $i"; done
ip netns list | grep -q cni- && echo "LEFT netns"
awk '$2 ~ "^/run/k3s|^/var/lib/kubelet|^/run/netns/cni-" { print "LEFT mount " $2 }' /proc/self/mounts
for p in /run/k3s /var/lib/kubelet /var/lib/rancher/k3s /var/lib/cni /usr/local/bin/k3s /usr/local/bin/crictl; do
  [ -e $p ] || [ -L $p ] && echo "LEFT path $p"
done
iptables-save -t nat; iptables-save -t filter
nft list tables
pgrep -f 'sleep 424[23]' && echo "LEFT shim child"
[ -x /usr/local/bin/kubectl ] && /usr/local/bin/kubectl
readlink /usr/local/bin/ctr
true
"#;
    let out = ssh(lab, host, script);
    let t = text(&out);
    assert!(out.status.success(), "{host}: {t}");
    assert!(!t.contains("LEFT"), "{host} after reset:\n{t}");
    for gone in ["KUBE-", "CNI-", "FLANNEL", "flannel", "kube-proxy"] {
        assert!(!t.contains(gone), "{host}: {gone} left after reset:\n{t}");
    }
    for kept in [
        "user-keep",
        "table inet user-keep",
        "user kubectl",
        "/opt/user/ctr",
    ] {
        assert!(
            t.contains(kept),
            "{host}: reset removed the user's {kept}:\n{t}"
        );
    }
}
