//! The stand-in's node registry: what it persists in `standin-nodes.json` and how it renders the
//! `kubectl get nodes -o json` NodeList (the fields em-infra's post-checks and verifier read).

use crate::json::Json;
use std::collections::BTreeMap;

/// A node object is NotReady ("Unknown") when its agent has not reported for this long
/// (Kubernetes' default node-monitor-grace-period).
pub(crate) const GRACE_SECS: u64 = 40;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub name: String,
    pub internal_ip: String,
    pub labels: BTreeMap<String, String>,
    pub server: bool,
    pub cpu: u64,
    pub memory_kib: u64,
    pub kernel: String,
    pub os_image: String,
    pub created: u64,
    pub last_seen: u64,
    /// Fingerprint of the agent's `/etc/rancher/node/password` (k3s keeps it as a node-password
    /// Secret): a different host under the same name is refused until the node is deleted.
    pub password_hash: String,
}

impl Node {
    /// Labels k3s puts on every node, plus the role labels of a server, plus `node-label` entries.
    pub(crate) fn default_labels(
        name: &str,
        server: bool,
        arch: &str,
        extra: &[(String, String)],
    ) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        for (k, v) in [
            ("beta.kubernetes.io/arch", arch),
            ("beta.kubernetes.io/instance-type", "k3s"),
            ("beta.kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", arch),
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("node.kubernetes.io/instance-type", "k3s"),
        ] {
            l.insert(k.to_string(), v.to_string());
        }
        if server {
            l.insert(
                "node-role.kubernetes.io/control-plane".into(),
                "true".into(),
            );
            l.insert("node-role.kubernetes.io/master".into(), "true".into());
        }
        for (k, v) in extra {
            l.insert(k.clone(), v.clone());
        }
        l
    }

    pub(crate) fn to_json(&self) -> Json {
        Json::obj([
            ("name", Json::str(&self.name)),
            ("internalIP", Json::str(&self.internal_ip)),
            (
                "labels",
                Json::Obj(
                    self.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Json::str(v)))
                        .collect(),
                ),
            ),
            ("server", Json::Bool(self.server)),
            ("cpu", Json::Num(self.cpu as f64)),
            ("memoryKiB", Json::Num(self.memory_kib as f64)),
            ("kernel", Json::str(&self.kernel)),
            ("osImage", Json::str(&self.os_image)),
            ("created", Json::Num(self.created as f64)),
            ("lastSeen", Json::Num(self.last_seen as f64)),
            ("passwordHash", Json::str(&self.password_hash)),
        ])
    }

    pub(crate) fn from_json(v: &Json) -> Option<Node> {
        let s = |k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(Json::as_f64).map(|f| f as u64);
        Some(Node {
            name: s("name")?,
            internal_ip: s("internalIP").unwrap_or_default(),
            labels: v
                .get("labels")
                .and_then(Json::as_object)
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            server: matches!(v.get("server"), Some(Json::Bool(true))),
            cpu: n("cpu").unwrap_or(1),
            memory_kib: n("memoryKiB").unwrap_or(0),
            kernel: s("kernel").unwrap_or_default(),
            os_image: s("osImage").unwrap_or_default(),
            created: n("created").unwrap_or(0),
            last_seen: n("lastSeen").unwrap_or(0),
            password_hash: s("passwordHash").unwrap_or_default(),
        })
    }

    pub(crate) fn ready(&self, now: u64) -> bool {
        now.saturating_sub(self.last_seen) <= GRACE_SECS
    }

    /// One `v1.Node` object as the API server would return it.
    pub(crate) fn to_k8s(&self, now: u64, version: &str) -> Json {
        let ts = crate::sys::rfc3339(self.created);
        let seen = crate::sys::rfc3339(self.last_seen);
        let ready = self.ready(now);
        let cond = |ty: &str, status: &str, reason: &str, message: &str| {
            Json::obj([
                ("lastHeartbeatTime", Json::str(&seen)),
                ("lastTransitionTime", Json::str(&ts)),
                ("message", Json::str(message)),
                ("reason", Json::str(reason)),
                ("status", Json::str(status)),
                ("type", Json::str(ty)),
            ])
        };
        let resources = Json::obj([
            ("cpu", Json::str(self.cpu.to_string())),
            ("ephemeral-storage", Json::str("10Gi")),
            ("memory", Json::str(format!("{}Ki", self.memory_kib))),
            ("pods", Json::str("110")),
        ]);
        let ready_cond = if ready {
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            cond(
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )
        };
        Json::obj([
            ("apiVersion", Json::str("v1")),
            ("kind", Json::str("Node")),
            (
                "metadata",
                Json::obj([
                    (
                        "annotations",
                        Json::obj([
                            ("k3s.io/internal-ip", Json::str(&self.internal_ip)),
                            ("k3s.io/standin", Json::str("true")),
                        ]),
                    ),
                    ("creationTimestamp", Json::str(&ts)),
                    (
                        "labels",
                        Json::Obj(
                            self.labels
                                .iter()
                                .map(|(k, v)| (k.clone(), Json::str(v)))
                                .collect(),
                        ),
                    ),
                    ("name", Json::str(&self.name)),
                    ("resourceVersion", Json::str(self.last_seen.to_string())),
                    (
                        "uid",
                        Json::str(
                            crate::sys::fake_hash_hex(self.name.as_bytes())[..32].to_string(),
                        ),
                    ),
                ]),
            ),
            (
                "spec",
                Json::obj([("providerID", Json::str(format!("k3s://{}", self.name)))]),
            ),
            (
                "status",
                Json::obj([
                    (
                        "addresses",
                        Json::Arr(vec![
                            Json::obj([
                                ("address", Json::str(&self.internal_ip)),
                                ("type", Json::str("InternalIP")),
                            ]),
                            Json::obj([
                                ("address", Json::str(&self.name)),
                                ("type", Json::str("Hostname")),
                            ]),
                        ]),
                    ),
                    ("allocatable", resources.clone()),
                    ("capacity", resources),
                    (
                        "conditions",
                        Json::Arr(vec![
                            cond(
                                "MemoryPressure",
                                "False",
                                "KubeletHasSufficientMemory",
                                "kubelet has sufficient memory available",
                            ),
                            cond(
                                "DiskPressure",
                                "False",
                                "KubeletHasNoDiskPressure",
                                "kubelet has no disk pressure",
                            ),
                            cond(
                                "PIDPressure",
                                "False",
                                "KubeletHasSufficientPID",
                                "kubelet has sufficient PID available",
                            ),
                            ready_cond,
                        ]),
                    ),
                    (
                        "nodeInfo",
                        Json::obj([
                            (
                                "architecture",
                                Json::str(
                                    self.labels
                                        .get("kubernetes.io/arch")
                                        .cloned()
                                        .unwrap_or_default(),
                                ),
                            ),
                            (
                                "containerRuntimeVersion",
                                Json::str("standin://0.0.0 (NOT containerd)"),
                            ),
                            ("kernelVersion", Json::str(&self.kernel)),
                            ("kubeProxyVersion", Json::str(version)),
                            ("kubeletVersion", Json::str(version)),
                            ("operatingSystem", Json::str("linux")),
                            ("osImage", Json::str(&self.os_image)),
                        ]),
                    ),
                ]),
            ),
        ])
    }
}

/// The `kubectl get nodes -o json` document (kind `List`, items sorted by name like kubectl).
pub(crate) fn node_list(nodes: &[Node], now: u64, version: &str) -> Json {
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    Json::obj([
        ("apiVersion", Json::str("v1")),
        (
            "items",
            Json::Arr(sorted.iter().map(|n| n.to_k8s(now, version)).collect()),
        ),
        ("kind", Json::str("List")),
        ("metadata", Json::obj([("resourceVersion", Json::str(""))])),
    ])
}

/// The table `kubectl get nodes` prints.
pub(crate) fn node_table(nodes: &[Node], now: u64, version: &str) -> String {
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = format!(
        "{:<24} {:<10} {:<22} {:<6} {}\n",
        "NAME", "STATUS", "ROLES", "AGE", "VERSION"
    );
    for n in sorted {
        let roles = if n.server {
            "control-plane,master"
        } else {
            "<none>"
        };
        let status = if n.ready(now) { "Ready" } else { "NotReady" };
        let age = format!("{}s", now.saturating_sub(n.created));
        out.push_str(&format!(
            "{:<24} {:<10} {:<22} {:<6} {}\n",
            n.name, status, roles, age, version
        ));
    }
    out
}

pub(crate) fn load(path: &std::path::Path) -> Vec<Node> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    match crate::json::parse(&text) {
        Ok(v) => v
            .get("nodes")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Node::from_json).collect())
            .unwrap_or_default(),
        Err(e) => {
            crate::sys::log(
                "warning",
                &format!("ignoring unreadable {}: {e}", path.display()),
            );
            Vec::new()
        }
    }
}

/// Writes the registry atomically (temp file + rename).
pub(crate) fn save(path: &std::path::Path, nodes: &[Node]) -> std::io::Result<()> {
    let doc = Json::obj([
        (
            "standin",
            Json::str("em-infra k3s-standin node registry (NOT k3s)"),
        ),
        (
            "nodes",
            Json::Arr(nodes.iter().map(Node::to_json).collect()),
        ),
    ]);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, doc.pretty() + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, server: bool, last_seen: u64) -> Node {
        let extra = vec![(
            "em-infra/role".to_string(),
            if server { "control-plane" } else { "worker" }.to_string(),
        )];
        Node {
            name: name.into(),
            internal_ip: "10.231.0.11".into(),
            labels: Node::default_labels(name, server, "amd64", &extra),
            server,
            cpu: 2,
            memory_kib: 4_000_000,
            kernel: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            created: 1_000,
            last_seen,
            password_hash: String::new(),
        }
    }

    #[test]
    fn node_list_has_the_fields_post_checks_read() {
        let nodes = vec![
            node("lab-worker-1", false, 990),
            node("lab-cp-1", true, 1_000),
        ];
        let doc = node_list(&nodes, 1_000, "v1.33.5+k3s1");
        let text = doc.pretty();
        let parsed = crate::json::parse(&text).unwrap();
        assert_eq!(parsed.get("kind").and_then(Json::as_str), Some("List"));
        let items = parsed.get("items").and_then(Json::as_array).unwrap();
        assert_eq!(items.len(), 2);
        let cp = &items[0];
        let meta = cp.get("metadata").unwrap();
        assert_eq!(meta.get("name").and_then(Json::as_str), Some("lab-cp-1"));
        let labels = meta.get("labels").unwrap();
        assert_eq!(
            labels
                .get("node-role.kubernetes.io/control-plane")
                .and_then(Json::as_str),
            Some("true")
        );
        assert_eq!(
            labels
                .get("node-role.kubernetes.io/master")
                .and_then(Json::as_str),
            Some("true")
        );
        assert_eq!(
            labels.get("em-infra/role").and_then(Json::as_str),
            Some("control-plane")
        );
        let status = cp.get("status").unwrap();
        let ready = status
            .get("conditions")
            .and_then(Json::as_array)
            .unwrap()
            .iter()
            .find(|c| c.get("type").and_then(Json::as_str) == Some("Ready"))
            .unwrap();
        assert_eq!(ready.get("status").and_then(Json::as_str), Some("True"));
        assert_eq!(
            status
                .get("nodeInfo")
                .and_then(|i| i.get("kubeletVersion"))
                .and_then(Json::as_str),
            Some("v1.33.5+k3s1")
        );
        let alloc = status.get("allocatable").unwrap();
        assert_eq!(alloc.get("cpu").and_then(Json::as_str), Some("2"));
        assert_eq!(
            alloc.get("memory").and_then(Json::as_str),
            Some("4000000Ki")
        );
        assert_eq!(alloc.get("pods").and_then(Json::as_str), Some("110"));
        assert!(alloc.get("nvidia.com/gpu").is_none());
        // Agents carry no role label.
        let worker_labels = items[1]
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .unwrap();
        assert!(
            worker_labels
                .get("node-role.kubernetes.io/control-plane")
                .is_none()
        );
    }

    #[test]
    fn a_silent_agent_turns_unknown_after_the_grace_period() {
        let n = node("w", false, 100);
        assert!(n.ready(100 + GRACE_SECS));
        assert!(!n.ready(101 + GRACE_SECS));
        let k = n.to_k8s(200, "v");
        let text = k.pretty();
        assert!(text.contains("\"Unknown\""));
        assert!(node_table(&[n], 200, "v").contains("NotReady"));
    }

    #[test]
    fn registry_round_trips_through_disk() {
        let dir = std::env::temp_dir().join(format!("standin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("standin-nodes.json");
        let nodes = vec![node("a", true, 5), node("b", false, 6)];
        save(&path, &nodes).unwrap();
        assert_eq!(load(&path), nodes);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
