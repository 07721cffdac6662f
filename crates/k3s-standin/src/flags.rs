//! The flags `k3s server` and `k3s agent` accept, by name, kind and environment variable.
//!
//! Names, aliases, kinds and `EnvVar`s follow k3s' `pkg/cli/cmds/server.go` and `agent.go`
//! (urfave/cli flag definitions, v1.33 line). The stand-in honours only a few of them (see the
//! README); the rest are accepted and ignored, so a command line or config file written for real
//! k3s parses here as it does there, and a flag k3s does not know fails here as it does there.

/// How a flag takes its value (Go's `flag` package rules, which urfave/cli uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--flag` or `--flag=true|false`; never takes the next argument.
    Bool,
    /// `--flag value` or `--flag=value`; the last one wins.
    Value,
    /// Repeatable (`cli.StringSlice`): every occurrence adds to the list.
    List,
}

/// Which commands define a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Both,
    Server,
    Agent,
}

#[derive(Debug)]
pub(crate) struct Flag {
    /// The canonical name first, then aliases (`token,t` in k3s).
    pub names: &'static [&'static str],
    pub kind: Kind,
    /// The environment variable urfave/cli reads when the flag is not given.
    pub env: Option<&'static str>,
    pub scope: Scope,
}

const fn f(
    names: &'static [&'static str],
    kind: Kind,
    env: Option<&'static str>,
    scope: Scope,
) -> Flag {
    Flag {
        names,
        kind,
        env,
        scope,
    }
}

use Kind::{Bool, List, Value};
use Scope::{Agent, Both, Server};

pub(crate) const FLAGS: &[Flag] = &[
    // Shared by server and agent (agent.go's flag vars are reused by the server command).
    f(&["config", "c"], Value, Some("K3S_CONFIG_FILE"), Both),
    f(&["debug"], Bool, Some("K3S_DEBUG"), Both),
    f(&["v"], Value, None, Both),
    f(&["vmodule"], Value, None, Both),
    f(&["log", "l"], Value, None, Both),
    f(&["alsologtostderr"], Bool, None, Both),
    f(&["token", "t"], Value, Some("K3S_TOKEN"), Both),
    f(&["token-file"], Value, Some("K3S_TOKEN_FILE"), Both),
    f(&["server", "s"], Value, Some("K3S_URL"), Both),
    f(&["data-dir", "d"], Value, Some("K3S_DATA_DIR"), Both),
    f(&["node-name"], Value, Some("K3S_NODE_NAME"), Both),
    f(&["with-node-id"], Bool, None, Both),
    f(&["node-label"], List, None, Both),
    f(&["node-taint"], List, None, Both),
    f(&["image-credential-provider-bin-dir"], Value, None, Both),
    f(&["image-credential-provider-config"], Value, None, Both),
    f(&["selinux"], Bool, Some("K3S_SELINUX"), Both),
    f(&["lb-server-port"], Value, Some("K3S_LB_SERVER_PORT"), Both),
    f(&["protect-kernel-defaults"], Bool, None, Both),
    f(&["container-runtime-endpoint"], Value, None, Both),
    f(&["default-runtime"], Value, None, Both),
    f(&["image-service-endpoint"], Value, None, Both),
    f(&["disable-default-registry-endpoint"], Bool, None, Both),
    f(&["nonroot-devices"], Bool, None, Both),
    f(&["pause-image"], Value, None, Both),
    f(&["snapshotter"], Value, None, Both),
    f(&["private-registry"], Value, None, Both),
    f(&["airgap-extra-registry"], List, None, Both),
    f(&["node-ip", "i"], List, None, Both),
    f(&["node-external-ip"], List, None, Both),
    f(&["node-internal-dns"], List, None, Both),
    f(&["node-external-dns"], List, None, Both),
    f(&["resolv-conf"], Value, Some("K3S_RESOLV_CONF"), Both),
    f(&["flannel-iface"], Value, None, Both),
    f(&["flannel-conf"], Value, None, Both),
    f(&["flannel-cni-conf"], Value, None, Both),
    f(&["vpn-auth"], Value, Some("K3S_VPN_AUTH"), Both),
    f(&["vpn-auth-file"], Value, Some("K3S_VPN_AUTH_FILE"), Both),
    f(&["kubelet-arg"], List, None, Both),
    f(&["kube-proxy-arg"], List, None, Both),
    f(&["enable-pprof"], Bool, None, Both),
    f(&["rootless"], Bool, None, Both),
    f(&["prefer-bundled-bin"], Bool, None, Both),
    f(&["docker"], Bool, None, Both),
    f(&["disable-selinux"], Bool, None, Both),
    f(&["no-flannel"], Bool, None, Both),
    f(&["cluster-secret"], Value, Some("K3S_CLUSTER_SECRET"), Both),
    // Agent only.
    f(&["disable-apiserver-lb"], Bool, None, Agent),
    // Server only.
    f(&["bind-address"], Value, None, Server),
    f(&["https-listen-port"], Value, None, Server),
    f(&["supervisor-port"], Value, None, Server),
    f(&["apiserver-port"], Value, None, Server),
    f(&["apiserver-bind-address"], Value, None, Server),
    f(&["advertise-address"], Value, None, Server),
    f(&["advertise-port"], Value, None, Server),
    f(&["tls-san"], List, None, Server),
    f(&["tls-san-security"], Bool, None, Server),
    f(&["cluster-cidr"], List, None, Server),
    f(&["service-cidr"], List, None, Server),
    f(&["service-node-port-range"], Value, None, Server),
    f(&["cluster-dns"], List, None, Server),
    f(&["cluster-domain"], Value, None, Server),
    f(&["flannel-backend"], Value, None, Server),
    f(&["flannel-ipv6-masq"], Bool, None, Server),
    f(&["flannel-external-ip"], Bool, None, Server),
    f(&["egress-selector-mode"], Value, None, Server),
    f(&["servicelb-namespace"], Value, None, Server),
    f(
        &["write-kubeconfig", "o"],
        Value,
        Some("K3S_KUBECONFIG_OUTPUT"),
        Server,
    ),
    f(
        &["write-kubeconfig-mode"],
        Value,
        Some("K3S_KUBECONFIG_MODE"),
        Server,
    ),
    f(
        &["write-kubeconfig-group"],
        Value,
        Some("K3S_KUBECONFIG_GROUP"),
        Server,
    ),
    f(&["helm-job-image"], Value, None, Server),
    f(&["agent-token"], Value, Some("K3S_AGENT_TOKEN"), Server),
    f(
        &["agent-token-file"],
        Value,
        Some("K3S_AGENT_TOKEN_FILE"),
        Server,
    ),
    f(&["cluster-init"], Bool, Some("K3S_CLUSTER_INIT"), Server),
    f(&["cluster-reset"], Bool, Some("K3S_CLUSTER_RESET"), Server),
    f(&["cluster-reset-restore-path"], Value, None, Server),
    f(&["kube-apiserver-arg"], List, None, Server),
    f(&["etcd-arg"], List, None, Server),
    f(&["kube-controller-manager-arg"], List, None, Server),
    f(&["kube-scheduler-arg"], List, None, Server),
    f(&["kube-cloud-controller-manager-arg"], List, None, Server),
    f(&["kine-tls"], Bool, None, Server),
    f(
        &["datastore-endpoint"],
        Value,
        Some("K3S_DATASTORE_ENDPOINT"),
        Server,
    ),
    f(
        &["datastore-cafile"],
        Value,
        Some("K3S_DATASTORE_CAFILE"),
        Server,
    ),
    f(
        &["datastore-certfile"],
        Value,
        Some("K3S_DATASTORE_CERTFILE"),
        Server,
    ),
    f(
        &["datastore-keyfile"],
        Value,
        Some("K3S_DATASTORE_KEYFILE"),
        Server,
    ),
    f(&["etcd-expose-metrics"], Bool, None, Server),
    f(&["etcd-disable-snapshots"], Bool, None, Server),
    f(&["etcd-snapshot-name"], Value, None, Server),
    f(&["etcd-snapshot-schedule-cron"], Value, None, Server),
    f(&["etcd-snapshot-retention"], Value, None, Server),
    f(&["etcd-snapshot-dir"], Value, None, Server),
    f(&["etcd-snapshot-compress"], Bool, None, Server),
    f(&["etcd-s3"], Bool, None, Server),
    f(&["etcd-s3-endpoint"], Value, None, Server),
    f(&["etcd-s3-endpoint-ca"], Value, None, Server),
    f(&["etcd-s3-skip-ssl-verify"], Bool, None, Server),
    f(
        &["etcd-s3-access-key"],
        Value,
        Some("AWS_ACCESS_KEY_ID"),
        Server,
    ),
    f(
        &["etcd-s3-secret-key"],
        Value,
        Some("AWS_SECRET_ACCESS_KEY"),
        Server,
    ),
    f(&["etcd-s3-bucket"], Value, None, Server),
    f(&["etcd-s3-region"], Value, None, Server),
    f(&["etcd-s3-folder"], Value, None, Server),
    f(&["etcd-s3-proxy"], Value, None, Server),
    f(&["etcd-s3-config-secret"], Value, None, Server),
    f(&["etcd-s3-insecure"], Bool, None, Server),
    f(&["etcd-s3-timeout"], Value, None, Server),
    f(&["default-local-storage-path"], Value, None, Server),
    f(&["disable"], List, None, Server),
    f(&["disable-scheduler"], Bool, None, Server),
    f(&["disable-cloud-controller"], Bool, None, Server),
    f(&["disable-kube-proxy"], Bool, None, Server),
    f(&["disable-network-policy"], Bool, None, Server),
    f(&["disable-helm-controller"], Bool, None, Server),
    f(&["embedded-registry"], Bool, None, Server),
    f(&["supervisor-metrics"], Bool, None, Server),
    f(
        &["system-default-registry"],
        Value,
        Some("K3S_SYSTEM_DEFAULT_REGISTRY"),
        Server,
    ),
    f(&["secrets-encryption"], Bool, None, Server),
    f(&["secrets-encryption-provider"], Value, None, Server),
    f(&["disable-agent"], Bool, None, Server),
    f(&["disable-apiserver"], Bool, None, Server),
    f(&["disable-controller-manager"], Bool, None, Server),
    f(&["disable-etcd"], Bool, None, Server),
    f(&["no-deploy"], List, None, Server),
];

/// The command a flag set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Server,
    Agent,
}

impl Command {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Command::Server => "server",
            Command::Agent => "agent",
        }
    }
}

/// The flag `name` (canonical or alias) of `command`, if it has one.
pub(crate) fn lookup(command: Command, name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|fl| {
        let in_scope = match fl.scope {
            Scope::Both => true,
            Scope::Server => command == Command::Server,
            Scope::Agent => command == Command::Agent,
        };
        in_scope && fl.names.contains(&name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_command() {
        for command in [Command::Server, Command::Agent] {
            let mut seen = std::collections::BTreeSet::new();
            for fl in FLAGS {
                if lookup(command, fl.names[0]).is_some_and(|found| std::ptr::eq(found, fl)) {
                    for n in fl.names {
                        assert!(seen.insert(*n), "{n} twice for {}", command.name());
                    }
                }
            }
        }
    }

    #[test]
    fn aliases_and_scopes_match_k3s() {
        assert_eq!(lookup(Command::Agent, "s").unwrap().names[0], "server");
        assert_eq!(lookup(Command::Agent, "t").unwrap().env, Some("K3S_TOKEN"));
        assert_eq!(
            lookup(Command::Agent, "server").unwrap().env,
            Some("K3S_URL")
        );
        assert!(lookup(Command::Agent, "tls-san").is_none());
        assert!(lookup(Command::Agent, "disable").is_none());
        assert_eq!(lookup(Command::Server, "tls-san").unwrap().kind, Kind::List);
        assert_eq!(
            lookup(Command::Server, "cluster-init").unwrap().kind,
            Kind::Bool
        );
    }
}
