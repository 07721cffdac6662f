//! A tiny Kubernetes API server for tests: plain HTTP on 127.0.0.1, one thread per connection,
//! answering with the shapes a k3s v1.33 API server returns (NodeList, Namespace, Deployment, Pod,
//! Status errors) and recording every request so tests can assert what was created and deleted.
//!
//! Smoke objects are kept in memory: POST stores (409 when the name exists), GET returns the stored
//! object with a status the test chose (Deployment available or not, Pod phase), DELETE of the
//! namespace removes it and everything inside it.
//!
//! For `em-infra status` tests the same server can also answer the one Proxmox VE call status
//! makes, `GET /api2/json/cluster/resources?type=vm` (the `{"data": [...]}` envelope), see
//! [`KubeServer::set_pve_vms`] and [`pve_vm`].

use crate::test_ca;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use test_ca::TestCa;

use serde_json::{Value, json};

pub(crate) const K3S_VERSION: &str = "v1.33.5+k3s1";

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub authorization: Option<String>,
}

impl Recorded {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

struct State {
    nodes: Vec<Value>,
    objects: BTreeMap<String, Value>,
    requests: Vec<Recorded>,
    deployment_available: bool,
    pod_phase: String,
    pod_log: String,
    resource_version: u64,
    pve_vms: Option<Value>,
    events: Vec<Value>,
    reject_pods: Option<String>,
    /// Pod path → how many more evictions a PodDisruptionBudget refuses (`u32::MAX`: always).
    eviction_refusals: BTreeMap<String, u32>,
}

pub(crate) struct KubeServer {
    port: u16,
    state: Arc<Mutex<State>>,
    pki: Option<Arc<Pki>>,
}

impl KubeServer {
    /// Serve `nodes` (Node objects, see [`NodeFixture`]) over plain HTTP until the test process ends.
    pub(crate) fn start(nodes: Vec<Value>) -> KubeServer {
        Self::start_with(nodes, None)
    }

    /// Serve over HTTPS like k3s: a private CA signs the server certificate (IP SAN 127.0.0.1) and
    /// a client certificate; the server **requires** that client certificate. The kubeconfig then
    /// carries `certificate-authority-data`, `client-certificate-data` and `client-key-data`, as
    /// the one k3s writes.
    pub(crate) fn start_tls(nodes: Vec<Value>) -> KubeServer {
        Self::start_with(nodes, Some(Arc::new(Pki::generate())))
    }

    fn start_with(nodes: Vec<Value>, pki: Option<Arc<Pki>>) -> KubeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            nodes,
            objects: BTreeMap::new(),
            requests: Vec::new(),
            deployment_available: true,
            pod_phase: "Succeeded".into(),
            pod_log: NVIDIA_SMI_OUTPUT.into(),
            resource_version: 41000,
            pve_vms: None,
            events: Vec::new(),
            reject_pods: None,
            eviction_refusals: BTreeMap::new(),
        }));
        let shared = Arc::clone(&state);
        let tls = pki.as_ref().map(|pki| pki.server_config());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve(conn, &shared),
                    Some(config) => {
                        let Ok(session) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(session, conn), &shared);
                    }
                });
            }
        });
        KubeServer { port, state, pki }
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Write a kubeconfig shaped like the one configure fetches (context named after the cluster,
    /// server rewritten to the API address) into `dir`, mode 0600.
    pub(crate) fn kubeconfig(&self, dir: &Path) -> PathBuf {
        match &self.pki {
            None => write_kubeconfig(dir, &self.url()),
            Some(pki) => {
                let cluster = format!(
                    "    certificate-authority-data: {}\n",
                    base64(pki.ca_pem.as_bytes())
                );
                let user = format!(
                    "    client-certificate-data: {}\n    client-key-data: {}\n",
                    base64(pki.client_cert_pem.as_bytes()),
                    base64(pki.client_key_pem.as_bytes())
                );
                write_kubeconfig_with(dir, &self.url(), &cluster, &user)
            }
        }
    }

    /// A running pod `ns/name` on `node`, owned by a `owner_kind` (e.g. `ReplicaSet`, `DaemonSet`).
    pub(crate) fn add_pod(&self, ns: &str, name: &str, node: &str, owner_kind: &str) {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"),
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": owner_kind,
                                      "name": format!("{name}-owner"), "uid": "owner-uid",
                                      "controller": true }],
            },
            "spec": { "nodeName": node, "containers": [{ "name": "c", "image": "registry.k8s.io/pause:3.10" }] },
            "status": { "phase": "Running" },
        });
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(format!("/api/v1/namespaces/{ns}/pods/{name}"), pod);
    }

    /// A PodDisruptionBudget refuses the next `times` evictions of `ns/name` (`u32::MAX`: always).
    pub(crate) fn refuse_evictions(&self, ns: &str, name: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .eviction_refusals
            .insert(format!("/api/v1/namespaces/{ns}/pods/{name}"), times);
    }

    /// The Node objects' names and `spec.unschedulable`.
    pub(crate) fn node_states(&self) -> Vec<(String, bool)> {
        self.state
            .lock()
            .unwrap()
            .nodes
            .iter()
            .map(|n| {
                (
                    n["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    n["spec"]["unschedulable"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    pub(crate) fn set_nodes(&self, nodes: Vec<Value>) {
        self.state.lock().unwrap().nodes = nodes;
    }

    /// Whether the smoke Deployment reports all replicas available (default true).
    pub(crate) fn set_deployment_available(&self, available: bool) {
        self.state.lock().unwrap().deployment_available = available;
    }

    /// The phase GPU smoke pods report (default `Succeeded`).
    pub(crate) fn set_pod_phase(&self, phase: &str) {
        self.state.lock().unwrap().pod_phase = phase.into();
    }

    pub(crate) fn set_pod_log(&self, log: &str) {
        self.state.lock().unwrap().pod_log = log.into();
    }

    /// Answer `GET /api2/json/cluster/resources` with these entries (see [`pve_vm`]).
    pub(crate) fn set_pve_vms(&self, vms: Vec<Value>) {
        self.state.lock().unwrap().pve_vms = Some(Value::Array(vms));
    }

    /// Refuse every pod creation with 403 Forbidden and this admission message.
    pub(crate) fn reject_pods(&self, message: &str) {
        self.state.lock().unwrap().reject_pods = Some(message.into());
    }

    /// Record an event about `pod` in the smoke namespace (`type` Warning or Normal).
    pub(crate) fn add_pod_event(&self, pod: &str, type_: &str, reason: &str, message: &str) {
        let mut st = self.state.lock().unwrap();
        let rv = next_rv(&mut st);
        let n = st.events.len();
        st.events.push(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "name": format!("{pod}.187b2c{n:04x}"), "namespace": "em-infra-smoke", "resourceVersion": rv },
            "involvedObject": { "apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": "em-infra-smoke" },
            "reason": reason, "message": message, "type": type_, "count": 1,
            "source": { "component": "kubelet", "host": "k3s-dev-gpu-1" },
            "firstTimestamp": "2026-11-26T05:12:02Z", "lastTimestamp": "2026-11-26T05:12:02Z",
            "reportingComponent": "kubelet", "reportingInstance": "k3s-dev-gpu-1",
        }));
    }

    /// Pretend an interrupted run left the smoke namespace behind.
    pub(crate) fn leave_namespace(&self, name: &str) {
        let mut st = self.state.lock().unwrap();
        let ns = namespace_object(&mut st, name);
        st.objects.insert(format!("/api/v1/namespaces/{name}"), ns);
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests with this method whose path equals `path`.
    pub(crate) fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// The first request with this method and path.
    pub(crate) fn find(&self, method: &str, path: &str) -> Option<Recorded> {
        self.requests()
            .into_iter()
            .find(|r| r.method == method && r.path == path)
    }

    /// Index of the first request with this method and path (to assert order).
    pub(crate) fn position(&self, method: &str, path: &str) -> Option<usize> {
        self.requests()
            .iter()
            .position(|r| r.method == method && r.path == path)
    }

    /// Paths of objects that still exist (smoke leftovers).
    pub(crate) fn objects(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().cloned().collect()
    }
}

/// A token-authenticated kubeconfig for `server`.
pub(crate) fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    write_kubeconfig_with(dir, server, "", "    token: K10-test-only-token\n")
}

/// A kubeconfig with extra `cluster:` lines and the `user:` lines (each indented four spaces).
pub(crate) fn write_kubeconfig_with(
    dir: &Path,
    server: &str,
    cluster: &str,
    user: &str,
) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1
clusters:
- cluster:
{cluster}    server: {server}
  name: k3s-dev
contexts:
- context:
    cluster: k3s-dev
    user: k3s-dev
  name: k3s-dev
current-context: k3s-dev
kind: Config
preferences: {{}}
users:
- name: k3s-dev
  user:
{user}"
    );
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Standard base64 with padding (kubeconfig `*-data` fields).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A private CA (like k3s's server and client CAs, folded into one), the API server's certificate
/// and an admin client certificate it signed.
pub(crate) struct Pki {
    pub ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key_der: Vec<u8>,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    pub(crate) fn generate() -> Pki {
        let ca = TestCa::new("k3s-server-ca@1764133082");
        let server = ca.server("k3s", &["kubernetes", "localhost", "127.0.0.1"]);
        let client = ca.client("system:admin", Some("system:masters"));
        Pki {
            ca_pem: ca.pem.clone(),
            ca_der: ca.der.clone(),
            server_cert: server.cert_der,
            server_key_der: server.key_der,
            client_cert_pem: client.cert_pem,
            client_key_pem: client.key_pem,
        }
    }

    /// rustls (ring) server config that requires a client certificate signed by the CA.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .unwrap();
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(
                    vec![self.server_cert.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone())),
                )
                .unwrap(),
        )
    }
}

/// What `nvidia-smi` prints on a GPU node (trimmed).
pub(crate) const NVIDIA_SMI_OUTPUT: &str = "Wed Nov 26 05:20:11 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.95.05              Driver Version: 580.95.05      CUDA Version: 13.0     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|   0  NVIDIA RTX A4000               Off |   00000000:01:00.0 Off |                  Off |
+-----------------------------------------+------------------------+----------------------+
";

// ---------------------------------------------------------------------------------------------
// Node fixtures

/// A k3s node as `GET /api/v1/nodes` lists it; change it with the builder methods.
pub(crate) struct NodeFixture {
    name: String,
    em_role: String,
    ip: String,
    ready: Option<(String, String, String)>,
    kubelet: String,
    gpus: Option<String>,
    control_plane_label: bool,
}

/// A Ready node of role `em_role` (`control-plane`, `worker`, `gpu-worker`) with the pinned kubelet.
pub(crate) fn node(name: &str, em_role: &str, ip: &str) -> NodeFixture {
    NodeFixture {
        name: name.into(),
        em_role: em_role.into(),
        ip: ip.into(),
        ready: None,
        kubelet: K3S_VERSION.into(),
        gpus: None,
        control_plane_label: em_role == "control-plane",
    }
}

impl NodeFixture {
    /// Ready=False with the kubelet's reason and message.
    pub(crate) fn not_ready(mut self, reason: &str, message: &str) -> Self {
        self.ready = Some(("False".into(), reason.into(), message.into()));
        self
    }

    /// Ready=Unknown, as the node controller marks a node whose kubelet stopped reporting.
    pub(crate) fn unreachable(mut self) -> Self {
        self.ready = Some((
            "Unknown".into(),
            "NodeStatusUnknown".into(),
            "Kubelet stopped posting node status.".into(),
        ));
        self
    }

    pub(crate) fn kubelet(mut self, version: &str) -> Self {
        self.kubelet = version.into();
        self
    }

    /// Allocatable `nvidia.com/gpu` (and capacity) as the device plugin advertises it.
    pub(crate) fn gpus(mut self, count: &str) -> Self {
        self.gpus = Some(count.into());
        self
    }

    pub(crate) fn without_control_plane_label(mut self) -> Self {
        self.control_plane_label = false;
        self
    }

    pub(crate) fn json(self) -> Value {
        let name = &self.name;
        let mut labels = json!({
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/instance-type": "k3s",
            "beta.kubernetes.io/os": "linux",
            "em-infra/role": self.em_role,
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "k3s",
        });
        if self.control_plane_label {
            labels["node-role.kubernetes.io/control-plane"] = json!("true");
            labels["node-role.kubernetes.io/master"] = json!("true");
        }
        let mut allocatable = json!({
            "cpu": "4",
            "ephemeral-storage": "63234021376",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": "16335052Ki",
            "pods": "110",
        });
        let mut capacity = json!({
            "cpu": "4",
            "ephemeral-storage": "65002960Ki",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": "16335052Ki",
            "pods": "110",
        });
        if let Some(gpus) = &self.gpus {
            allocatable["nvidia.com/gpu"] = json!(gpus);
            capacity["nvidia.com/gpu"] = json!(gpus);
        }
        let hb = "2026-11-26T05:10:42Z";
        let pressure = |ty: &str, reason: &str, message: &str| {
            json!({
                "lastHeartbeatTime": hb, "lastTransitionTime": "2026-11-26T04:58:03Z",
                "message": message, "reason": reason, "status": "False", "type": ty,
            })
        };
        let ready = match &self.ready {
            None => json!({
                "lastHeartbeatTime": hb, "lastTransitionTime": "2026-11-26T04:58:13Z",
                "message": "kubelet is posting ready status", "reason": "KubeletReady",
                "status": "True", "type": "Ready",
            }),
            Some((status, reason, message)) => json!({
                "lastHeartbeatTime": hb, "lastTransitionTime": "2026-11-26T05:01:13Z",
                "message": message, "reason": reason, "status": status, "type": "Ready",
            }),
        };
        json!({
            "metadata": {
                "name": name,
                "uid": format!("5c0d7f3e-0000-4000-8000-{:012x}", fxhash(name)),
                "resourceVersion": "40817",
                "creationTimestamp": "2026-11-26T04:58:02Z",
                "labels": labels,
                "annotations": {
                    "alpha.kubernetes.io/provided-node-ip": self.ip,
                    "flannel.alpha.coreos.com/backend-data": "{\"VNI\":1,\"VtepMAC\":\"9a:3c:51:0e:6d:12\"}",
                    "flannel.alpha.coreos.com/backend-type": "vxlan",
                    "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                    "flannel.alpha.coreos.com/public-ip": self.ip,
                    "k3s.io/hostname": name,
                    "k3s.io/internal-ip": self.ip,
                    "k3s.io/node-args": "[\"agent\"]",
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
                "managedFields": [],
            },
            "spec": {
                "podCIDR": "10.42.0.0/24",
                "podCIDRs": ["10.42.0.0/24"],
                "providerID": format!("k3s://{name}"),
            },
            "status": {
                "addresses": [
                    { "address": self.ip, "type": "InternalIP" },
                    { "address": name, "type": "Hostname" },
                ],
                "allocatable": allocatable,
                "capacity": capacity,
                "conditions": [
                    pressure("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    pressure("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    pressure("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ready,
                ],
                "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "0f6d7c2a-51f4-4f0e-9a59-0c6b3c0e8a11",
                    "containerRuntimeVersion": "containerd://2.1.4-k3s1",
                    "kernelVersion": "5.15.0-161-generic",
                    "kubeProxyVersion": "",
                    "kubeletVersion": self.kubelet,
                    "machineID": "8d3c1b5f0e2a4a7c9b6d1e0f2a3b4c5d",
                    "operatingSystem": "linux",
                    "osImage": "Ubuntu 22.04.5 LTS",
                    "systemUUID": "2b1e0d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e",
                },
            },
        })
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) & 0xffff_ffff_ffff
}

/// One entry of PVE's `GET /cluster/resources?type=vm`, as PVE 8 returns it (0/1 booleans,
/// `;`-separated tags, sizes in bytes).
pub(crate) fn pve_vm(vmid: u64, name: &str, node: &str, status: &str) -> Value {
    let running = status == "running";
    json!({
        "id": format!("qemu/{vmid}"),
        "type": "qemu",
        "vmid": vmid,
        "name": name,
        "node": node,
        "status": status,
        "template": 0,
        "tags": "em-infra;k3s-dev",
        "maxcpu": 2,
        "maxmem": 4_294_967_296_u64,
        "maxdisk": 34_359_738_368_u64,
        "cpu": if running { json!(0.0213) } else { json!(0) },
        "mem": if running { 1_181_057_024_u64 } else { 0 },
        "disk": 0,
        "diskread": 0,
        "diskwrite": 0,
        "netin": if running { 48_213_442_u64 } else { 0 },
        "netout": if running { 2_113_870_u64 } else { 0 },
        "uptime": if running { 3_861 } else { 0 },
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn serve<S: Read + Write>(mut conn: S, state: &Mutex<State>) {
    let mut reader = BufReader::new(&mut conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut length = 0usize;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            match key.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    if length > 0 && reader.read_exact(&mut body).is_err() {
        return;
    }
    drop(reader);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let recorded = Recorded {
        method,
        path,
        query,
        body: String::from_utf8_lossy(&body).into_owned(),
        authorization,
    };
    let (code, content_type, text) = {
        let mut st = state.lock().unwrap();
        st.requests.push(recorded.clone());
        route(&mut st, &recorded)
    };
    let reason = match code {
        200 => "OK",
        201 => "Created",
        404 => "Not Found",
        403 => "Forbidden",
        409 => "Conflict",
        501 => "Not Implemented",
        _ => "Error",
    };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.flush();
}

type Response = (u16, &'static str, String);

fn ok(code: u16, value: &Value) -> Response {
    (code, "application/json", value.to_string())
}

fn status_error(code: u16, reason: &str, message: &str, name: &str, kind: &str) -> Response {
    ok(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason,
            "details": { "name": name, "kind": kind }, "code": code,
        }),
    )
}

fn not_found(kind: &str, name: &str) -> Response {
    status_error(
        404,
        "NotFound",
        &format!("{kind} \"{name}\" not found"),
        name,
        kind,
    )
}

fn next_rv(st: &mut State) -> String {
    st.resource_version += 1;
    st.resource_version.to_string()
}

fn namespace_object(st: &mut State, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": name, "uid": "0e5a1c2b-7d3f-4e8a-9b1c-2d3e4f5a6b7c",
            "resourceVersion": next_rv(st), "creationTimestamp": "2026-11-26T05:12:00Z",
            "labels": { "kubernetes.io/metadata.name": name, "app.kubernetes.io/managed-by": "em-infra" },
        },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}

fn route(st: &mut State, req: &Recorded) -> Response {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["api", "v1", "nodes"]) => {
            let rv = next_rv(st);
            ok(
                200,
                &json!({
                    "kind": "NodeList", "apiVersion": "v1",
                    "metadata": { "resourceVersion": rv },
                    "items": st.nodes,
                }),
            )
        }
        ("POST", ["api", "v1", "namespaces"]) => {
            let body = req.json();
            let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
            let key = format!("/api/v1/namespaces/{name}");
            if st.objects.contains_key(&key) {
                return status_error(
                    409,
                    "AlreadyExists",
                    &format!("namespaces \"{name}\" already exists"),
                    &name,
                    "namespaces",
                );
            }
            let ns = namespace_object(st, &name);
            st.objects.insert(key, ns.clone());
            ok(201, &ns)
        }
        ("GET", ["api", "v1", "namespaces", name]) => match st.objects.get(&req.path) {
            Some(ns) => ok(200, ns),
            None => not_found("namespaces", name),
        },
        ("DELETE", ["api", "v1", "namespaces", name]) => match st.objects.remove(&req.path) {
            Some(mut ns) => {
                let inside = [
                    format!("/api/v1/namespaces/{name}/"),
                    format!("/apis/apps/v1/namespaces/{name}/"),
                ];
                st.objects
                    .retain(|k, _| !inside.iter().any(|prefix| k.starts_with(prefix)));
                ns["metadata"]["deletionTimestamp"] = json!("2026-11-26T05:14:00Z");
                ns["status"]["phase"] = json!("Terminating");
                ok(200, &ns)
            }
            None => not_found("namespaces", name),
        },
        ("POST", ["apis", "apps", "v1", "namespaces", ns, "deployments"])
        | ("POST", ["api", "v1", "namespaces", ns, "pods"]) => {
            if !st.objects.contains_key(&format!("/api/v1/namespaces/{ns}")) {
                return not_found("namespaces", ns);
            }
            let mut obj = req.json();
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            let key = format!("{}/{name}", req.path);
            let kind = segs[segs.len() - 1];
            if let (Some(why), "pods") = (&st.reject_pods, kind) {
                return status_error(
                    403,
                    "Forbidden",
                    &format!("pods \"{name}\" is forbidden: {why}"),
                    &name,
                    "pods",
                );
            }
            if st.objects.contains_key(&key) {
                return status_error(
                    409,
                    "AlreadyExists",
                    &format!("{kind} \"{name}\" already exists"),
                    &name,
                    kind,
                );
            }
            let rv = next_rv(st);
            obj["metadata"]["namespace"] = json!(ns);
            obj["metadata"]["uid"] =
                json!(format!("7f1e2d3c-0000-4000-8000-{:012x}", fxhash(&key)));
            obj["metadata"]["resourceVersion"] = json!(rv);
            obj["metadata"]["creationTimestamp"] = json!("2026-11-26T05:12:01Z");
            if kind == "deployments" {
                obj["metadata"]["generation"] = json!(1);
                obj["status"] = json!({});
            } else {
                obj["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
            }
            st.objects.insert(key, obj.clone());
            ok(201, &obj)
        }
        ("GET", ["apis", "apps", "v1", "namespaces", ns, "deployments", name]) => {
            let available = st.deployment_available;
            match st.objects.get(&req.path).cloned() {
                None => not_found("deployments.apps", name),
                Some(obj) => {
                    spawn_replicas(st, ns, &obj, available);
                    let mut obj = obj;
                    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
                    obj["status"] = if available {
                        json!({
                            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                            "readyReplicas": replicas, "availableReplicas": replicas,
                            "conditions": [
                                { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                  "message": "Deployment has minimum availability." },
                                { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                                  "message": "ReplicaSet \"em-infra-smoke-6d9c7b8f4\" has successfully progressed." },
                            ],
                        })
                    } else {
                        json!({
                            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                            "unavailableReplicas": replicas,
                            "conditions": [
                                { "type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                                  "message": "Deployment does not have minimum availability." },
                            ],
                        })
                    };
                    ok(200, &obj)
                }
            }
        }
        // Cordon: a merge patch of the Node (kubectl drain sends the same).
        ("PATCH", ["api", "v1", "nodes", name]) => {
            let patch: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            let rv = next_rv(st);
            match st
                .nodes
                .iter_mut()
                .find(|n| n["metadata"]["name"] == json!(name))
            {
                None => not_found("nodes", name),
                Some(node) => {
                    if let Some(u) = patch["spec"]["unschedulable"].as_bool() {
                        node["spec"]["unschedulable"] = json!(u);
                    }
                    node["metadata"]["resourceVersion"] = json!(rv);
                    ok(200, node)
                }
            }
        }
        ("DELETE", ["api", "v1", "nodes", name]) => {
            match st
                .nodes
                .iter()
                .position(|n| n["metadata"]["name"] == json!(name))
            {
                None => not_found("nodes", name),
                Some(i) => {
                    let node = st.nodes.remove(i);
                    ok(200, &node)
                }
            }
        }
        // Pods of every namespace, filtered by `fieldSelector=spec.nodeName=X` as the API does.
        ("GET", ["api", "v1", "pods"]) => {
            let node = req
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("fieldSelector="))
                .map(|s| s.replace("%3D", "=").replace("%3d", "="))
                .and_then(|s| s.strip_prefix("spec.nodeName=").map(str::to_string));
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| k.contains("/pods/"))
                .map(|(_, v)| v.clone())
                .filter(|pod| {
                    node.as_ref()
                        .is_none_or(|n| pod["spec"]["nodeName"] == json!(n))
                })
                .collect();
            let rv = next_rv(st);
            ok(
                200,
                &json!({ "kind": "PodList", "apiVersion": "v1", "metadata": { "resourceVersion": rv }, "items": items }),
            )
        }
        // The Eviction API: 429 while a PodDisruptionBudget refuses (the shape the API server's
        // eviction REST storage answers, pkg/registry/core/pod/storage/eviction.go), else the pod
        // is deleted and the answer is a 201 Status.
        ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            let key = format!("/api/v1/namespaces/{ns}/pods/{name}");
            if !st.objects.contains_key(&key) {
                return not_found("pods", name);
            }
            match st.eviction_refusals.get_mut(&key) {
                Some(left) if *left > 0 => {
                    if *left != u32::MAX {
                        *left -= 1;
                    }
                    (
                        429,
                        "application/json",
                        json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                            "reason": "TooManyRequests",
                            "details": { "causes": [{ "reason": "DisruptionBudget",
                                "message": format!("The disruption budget {name}-pdb needs 1 healthy pods and has 1 currently") }] },
                            "code": 429,
                        })
                        .to_string(),
                    )
                }
                _ => {
                    st.objects.remove(&key);
                    ok(
                        201,
                        &json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }),
                    )
                }
            }
        }
        ("DELETE", ["api", "v1", "namespaces", _, "pods", name]) => {
            match st.objects.remove(&req.path) {
                None => not_found("pods", name),
                Some(pod) => ok(200, &pod),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => {
            let prefix = format!("/api/v1/namespaces/{ns}/pods/");
            let selector = req
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(|s| s.replace("%3D", "=").replace("%3d", "="));
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .filter(|pod| match &selector {
                    Some(sel) => sel.split(',').all(|term| match term.split_once('=') {
                        Some((k, v)) => pod["metadata"]["labels"][k] == json!(v),
                        None => true,
                    }),
                    None => true,
                })
                .collect();
            let rv = next_rv(st);
            ok(
                200,
                &json!({ "kind": "PodList", "apiVersion": "v1", "metadata": { "resourceVersion": rv }, "items": items }),
            )
        }
        ("GET", ["api", "v1", "namespaces", _, "pods", name]) => {
            let phase = st.pod_phase.clone();
            match st.objects.get(&req.path) {
                None => not_found("pods", name),
                Some(obj) => ok(200, &pod_with_phase(obj.clone(), &phase)),
            }
        }
        ("GET", ["api", "v1", "namespaces", _, "pods", name, "log"]) => {
            let key = req.path.trim_end_matches("/log").to_string();
            if st.objects.contains_key(&key) {
                (200, "text/plain", st.pod_log.clone())
            } else {
                not_found("pods", name)
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "events"]) => {
            let name = req
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("fieldSelector="))
                .map(|s| s.replace("%3D", "=").replace("%3d", "="))
                .and_then(|s| s.strip_prefix("involvedObject.name=").map(String::from));
            let items: Vec<Value> = st
                .events
                .iter()
                .filter(|e| e["metadata"]["namespace"] == *ns)
                .filter(|e| {
                    name.as_ref()
                        .is_none_or(|n| e["involvedObject"]["name"] == n.as_str())
                })
                .cloned()
                .collect();
            let rv = next_rv(st);
            ok(
                200,
                &json!({ "kind": "EventList", "apiVersion": "v1", "metadata": { "resourceVersion": rv }, "items": items }),
            )
        }
        ("GET", ["api2", "json", "cluster", "resources"]) => match &st.pve_vms {
            Some(vms) => ok(200, &json!({ "data": vms })),
            None => (501, "application/json", "{\"data\":null}".into()),
        },
        _ => not_found(
            "the server could not find the requested resource",
            &req.path,
        ),
    }
}

/// What the ReplicaSet controller and scheduler would do: one pod per replica on the nodes that
/// match the template's nodeSelector (round robin), Running when `available`, else stuck pulling.
fn spawn_replicas(st: &mut State, ns: &str, deployment: &Value, available: bool) {
    let name = deployment["metadata"]["name"].as_str().unwrap_or("");
    let template = &deployment["spec"]["template"];
    let selector = template["spec"]["nodeSelector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let nodes: Vec<String> = st
        .nodes
        .iter()
        .filter(|n| {
            selector
                .iter()
                .all(|(k, v)| &n["metadata"]["labels"][k] == v)
        })
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
    for i in 0..replicas {
        let pod_name = format!(
            "{name}-6d9c7b8f4-{}",
            ["x2kqp", "m7rtz", "b9wcd"][i as usize % 3]
        );
        let key = format!("/api/v1/namespaces/{ns}/pods/{pod_name}");
        let node = (!nodes.is_empty()).then(|| nodes[i as usize % nodes.len()].clone());
        let container = template["spec"]["containers"][0].clone();
        let status = if available && node.is_some() {
            json!({
                "phase": "Running",
                "conditions": [{ "type": "Ready", "status": "True" }],
                "containerStatuses": [{
                    "name": container["name"], "image": container["image"], "ready": true, "restartCount": 0,
                    "state": { "running": { "startedAt": "2026-11-26T05:12:03Z" } },
                }],
            })
        } else if node.is_some() {
            json!({
                "phase": "Pending",
                "conditions": [{ "type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                 "message": "containers with unready status: [pause]" }],
                "containerStatuses": [{
                    "name": container["name"], "image": container["image"], "ready": false, "restartCount": 0,
                    "state": { "waiting": { "reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{}\"", container["image"].as_str().unwrap_or("")) } },
                }],
            })
        } else {
            json!({
                "phase": "Pending",
                "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector." }],
            })
        };
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod_name, "namespace": ns, "labels": template["metadata"]["labels"],
                "resourceVersion": "41500", "uid": format!("9a8b7c6d-0000-4000-8000-{:012x}", fxhash(&key)),
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": format!("{name}-6d9c7b8f4"), "uid": "3c2b1a09-0000-4000-8000-000000000001",
                    "controller": true, "blockOwnerDeletion": true }],
            },
            "spec": {
                "nodeName": node,
                "nodeSelector": template["spec"]["nodeSelector"],
                "containers": template["spec"]["containers"],
            },
            "status": status,
        });
        st.objects.insert(key, pod);
    }
}

fn pod_with_phase(mut pod: Value, phase: &str) -> Value {
    let node = pod["spec"]["nodeSelector"]["kubernetes.io/hostname"].clone();
    pod["spec"]["nodeName"] = node;
    let container = pod["spec"]["containers"][0]["name"].clone();
    let image = pod["spec"]["containers"][0]["image"].clone();
    pod["status"] = match phase {
        "Succeeded" | "Failed" => {
            let (code, reason) = if phase == "Succeeded" {
                (0, "Completed")
            } else {
                (127, "Error")
            };
            json!({
                "phase": phase,
                "conditions": [
                    { "type": "PodScheduled", "status": "True" },
                    { "type": "Ready", "status": "False", "reason": "PodCompleted" },
                ],
                "containerStatuses": [{
                    "name": container, "image": image, "imageID": "", "ready": false, "restartCount": 0,
                    "state": { "terminated": {
                        "exitCode": code, "reason": reason,
                        "startedAt": "2026-11-26T05:12:05Z", "finishedAt": "2026-11-26T05:12:06Z",
                    } },
                }],
                "qosClass": "BestEffort",
            })
        }
        _ => json!({
            "phase": "Pending",
            "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node affinity/selector.",
            }],
            "qosClass": "BestEffort",
        }),
    };
    pod
}
