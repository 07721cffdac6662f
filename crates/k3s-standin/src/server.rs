//! `k3s server`: files, node registry and the agent/kubectl listener.

use crate::json::Json;
use crate::nodes::{self, Node};
use crate::sys::{self, log};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

pub(crate) const SERVER_DIR: &str = "/var/lib/rancher/k3s/server";
pub(crate) const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
pub(crate) const NODE_PASSWORD: &str = "/etc/rancher/node/password";
/// k3s's message when a host registers under a name another host's password already holds.
pub(crate) const NODE_PASSWORD_REJECTED: &str = "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-passwd entry, try enabling a unique node name with the --with-node-id flag";

/// The fake client key written into k3s.yaml; kubectl presents it and the server checks it.
pub(crate) fn admin_key(password: &str) -> String {
    sys::fake_hash_hex(format!("standin-admin-key:{password}").as_bytes())
}

pub(crate) fn kubeconfig_text(password: &str, port: u16) -> String {
    let pem = |kind: &str, body: &str| {
        sys::base64(
            format!("-----BEGIN {kind}-----\nSTANDIN{body}\n-----END {kind}-----\n").as_bytes(),
        )
    };
    let ca = sys::fake_hash_hex(format!("standin-ca:{password}").as_bytes());
    let cert = sys::fake_hash_hex(format!("standin-admin-cert:{password}").as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:{port}\n  name: default\n\
         contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\n\
         preferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        pem("CERTIFICATE", &ca),
        pem("CERTIFICATE", &cert),
        sys::base64(admin_key(password).as_bytes()),
    )
}

fn fatal(msg: &str) -> i32 {
    log("fatal", msg);
    1
}

fn write_file(path: &str, content: &str, mode: u32) -> std::io::Result<()> {
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

pub(crate) fn run(args: &[String]) -> i32 {
    sys::install_signal_handlers();
    let cfg = match crate::load_config(args) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    log(
        "info",
        &format!(
            "Starting k3s {} (em-infra k3s STAND-IN, NOT k3s)",
            crate::VERSION
        ),
    );
    for d in [
        SERVER_DIR,
        "/var/lib/rancher/k3s/server/manifests",
        "/var/lib/rancher/k3s/server/tls",
        "/etc/rancher/k3s",
    ] {
        if let Err(e) = std::fs::create_dir_all(d) {
            return fatal(&format!("creating {d}: {e}"));
        }
    }
    let token_path = format!("{SERVER_DIR}/token");
    let existing = std::fs::read_to_string(&token_path).ok();
    let password = match (cfg.get("token"), &existing) {
        (Some(t), _) if !t.is_empty() => crate::token_password(t).to_string(),
        (_, Some(t)) => crate::token_password(t.trim()).to_string(),
        _ => sys::random_hex(16),
    };
    // Like k3s: the datastore is bound to the token it was created with.
    let bound = format!("{SERVER_DIR}/standin-token-hash");
    let fingerprint = sys::fake_hash_hex(password.as_bytes());
    match std::fs::read_to_string(&bound) {
        Ok(old) if old.trim() != fingerprint => {
            return fatal(
                "starting kubernetes: preparing server: bootstrap data already found and encrypted with different token",
            );
        }
        Ok(_) => {}
        Err(_) => {
            if let Err(e) = write_file(&bound, &format!("{fingerprint}\n"), 0o600) {
                return fatal(&format!("writing {bound}: {e}"));
            }
        }
    }
    let ca_hash = sys::fake_hash_hex(format!("standin-ca:{password}").as_bytes());
    let full_token = format!("K10{ca_hash}::server:{password}\n");
    if existing.as_deref() != Some(full_token.as_str())
        && let Err(e) = write_file(&token_path, &full_token, 0o600)
    {
        return fatal(&format!("writing {token_path}: {e}"));
    }
    let legacy = format!("{SERVER_DIR}/node-token");
    if std::fs::symlink_metadata(&legacy).is_err() {
        let _ = std::os::unix::fs::symlink(&token_path, &legacy);
    }
    let port: u16 = match cfg.get("https-listen-port").map(str::parse).transpose() {
        Ok(p) => p.unwrap_or(6443),
        Err(e) => return fatal(&format!("invalid https-listen-port: {e}")),
    };
    let mode = match u32::from_str_radix(cfg.get("write-kubeconfig-mode").unwrap_or("0600"), 8) {
        Ok(m) if m <= 0o777 => m,
        _ => return fatal("invalid write-kubeconfig-mode (want octal like 0600)"),
    };
    if let Err(e) = write_file(KUBECONFIG, &kubeconfig_text(&password, port), mode) {
        return fatal(&format!("writing {KUBECONFIG}: {e}"));
    }
    ensure_node_password();

    let registry = Path::new(SERVER_DIR).join("standin-nodes.json");
    let mut nodes = nodes::load(&registry);
    let name = cfg
        .get("node-name")
        .map(str::to_string)
        .unwrap_or_else(sys::hostname);
    let ip = cfg.get("node-ip").unwrap_or("127.0.0.1").to_string();
    upsert(&mut nodes, self_node(&name, &ip, &cfg.labels(), true), true);
    if let Err(e) = nodes::save(&registry, &nodes) {
        return fatal(&format!("writing {}: {e}", registry.display()));
    }

    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            return fatal(&format!(
                "starting kubernetes: listen tcp 0.0.0.0:{port}: bind: {e}"
            ));
        }
    };
    if let Err(e) = listener.set_nonblocking(true) {
        return fatal(&format!("listener: {e}"));
    }
    log(
        "info",
        &format!("Running kube-apiserver stand-in on 0.0.0.0:{port} (line protocol, NOT HTTPS)"),
    );
    log("info", "k3s is up and running");
    sys::sd_notify("READY=1");

    let mut last_save = sys::now_secs();
    while !sys::stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                if handle(stream, &password, &mut nodes) {
                    let _ = nodes::save(&registry, &nodes);
                    last_save = sys::now_secs();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => log("error", &format!("accept: {e}")),
        }
        let now = sys::now_secs();
        if let Some(me) = nodes.iter_mut().find(|n| n.name == name) {
            me.last_seen = now;
        }
        if now.saturating_sub(last_save) >= 10 {
            let _ = nodes::save(&registry, &nodes);
            last_save = now;
        }
    }
    let _ = nodes::save(&registry, &nodes);
    log("info", "Received SIGTERM, shutting down the k3s stand-in");
    sys::sd_notify("STOPPING=1");
    0
}

pub(crate) fn ensure_node_password() {
    let path = NODE_PASSWORD;
    if std::fs::metadata(path).is_err() {
        let _ = write_file(path, &format!("{}\n", sys::random_hex(16)), 0o600);
    }
}

fn self_node(name: &str, ip: &str, extra: &[(String, String)], server: bool) -> Node {
    let now = sys::now_secs();
    Node {
        name: name.to_string(),
        internal_ip: ip.to_string(),
        labels: Node::default_labels(name, server, sys::arch(), extra),
        server,
        cpu: sys::cpu_count() as u64,
        memory_kib: sys::mem_total_kib(),
        kernel: sys::kernel_version(),
        os_image: sys::os_image(),
        created: now,
        last_seen: now,
        password_hash: String::new(),
    }
}

/// Inserts or refreshes a node. Like k3s, `node-label` applies only at registration: an existing
/// node keeps its labels and creation time.
fn upsert(nodes: &mut Vec<Node>, fresh: Node, log_new: bool) {
    if let Some(n) = nodes.iter_mut().find(|n| n.name == fresh.name) {
        n.internal_ip = fresh.internal_ip;
        n.cpu = fresh.cpu;
        n.memory_kib = fresh.memory_kib;
        n.kernel = fresh.kernel;
        n.os_image = fresh.os_image;
        n.last_seen = fresh.last_seen;
    } else {
        if log_new {
            log(
                "info",
                &format!("Registered node {} ({})", fresh.name, fresh.internal_ip),
            );
        }
        nodes.push(fresh);
    }
}

/// Serves one request line; returns true when the registry changed.
fn handle(stream: TcpStream, password: &str, nodes: &mut Vec<Node>) -> bool {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return false;
    }
    let mut out = &stream;
    let reply = |out: &mut &TcpStream, v: Json| {
        let _ = out.write_all(v.pretty().as_bytes());
        let _ = out.write_all(b"\n");
    };
    let req = match crate::json::parse(line.trim()) {
        Ok(r) => r,
        Err(e) => {
            reply(
                &mut out,
                Json::obj([
                    ("ok", Json::Bool(false)),
                    ("error", Json::str(format!("bad request: {e}"))),
                ]),
            );
            return false;
        }
    };
    let (answer, changed) = respond(&req, password, nodes);
    reply(&mut out, answer);
    changed
}

/// Answers one request: `register` (agents), `nodes` and `delete` (kubectl). Returns the reply
/// and whether the node registry changed.
pub(crate) fn respond(req: &Json, password: &str, nodes: &mut Vec<Node>) -> (Json, bool) {
    let mut answer = None;
    let mut set = |v: Json| answer = Some(v);
    let changed = 'op: {
        let field = |k: &str| req.get(k).and_then(Json::as_str).unwrap_or("").to_string();
        match field("op").as_str() {
            "register" => {
                if crate::token_password(&field("token")) != password {
                    log(
                        "warning",
                        &format!("Rejected node {}: token does not match", field("name")),
                    );
                    set(Json::obj([
                        ("ok", Json::Bool(false)),
                        ("error", Json::str("401 Unauthorized")),
                    ]));
                    break 'op false;
                }
                let name = field("name");
                if name.is_empty() {
                    set(Json::obj([
                        ("ok", Json::Bool(false)),
                        ("error", Json::str("missing node name")),
                    ]));
                    break 'op false;
                }
                let labels: Vec<(String, String)> = req
                    .get("labels")
                    .and_then(Json::as_object)
                    .map(|o| {
                        o.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                let password_hash = sys::fake_hash_hex(field("nodePassword").as_bytes());
                if let Some(existing) = nodes.iter().find(|n| n.name == name)
                    && !existing.password_hash.is_empty()
                    && existing.password_hash != password_hash
                {
                    log("error", &format!("Node password rejected for {name}"));
                    set(Json::obj([
                        ("ok", Json::Bool(false)),
                        ("retry", Json::Bool(true)),
                        ("error", Json::str(NODE_PASSWORD_REJECTED)),
                    ]));
                    break 'op false;
                }
                let num = |k: &str, d: u64| {
                    req.get(k)
                        .and_then(Json::as_f64)
                        .map(|f| f as u64)
                        .unwrap_or(d)
                };
                let now = sys::now_secs();
                let node = Node {
                    labels: Node::default_labels(&name, false, &field("arch"), &labels),
                    name,
                    internal_ip: field("ip"),
                    server: false,
                    cpu: num("cpu", 1),
                    memory_kib: num("memoryKiB", 0),
                    kernel: field("kernel"),
                    os_image: field("osImage"),
                    created: now,
                    last_seen: now,
                    password_hash,
                };
                upsert(nodes, node, true);
                set(Json::obj([("ok", Json::Bool(true))]));
                true
            }
            "nodes" => {
                if field("key") != admin_key(password) {
                    set(Json::obj([
                        ("ok", Json::Bool(false)),
                        (
                            "error",
                            Json::str("You must be logged in to the server (Unauthorized)"),
                        ),
                    ]));
                    break 'op false;
                }
                let list = nodes::node_list(nodes, sys::now_secs(), crate::VERSION);
                let table = nodes::node_table(nodes, sys::now_secs(), crate::VERSION);
                set(Json::obj([
                    ("ok", Json::Bool(true)),
                    ("list", list),
                    ("table", Json::str(table)),
                ]));
                false
            }
            "delete" => {
                if field("key") != admin_key(password) {
                    set(Json::obj([
                        ("ok", Json::Bool(false)),
                        (
                            "error",
                            Json::str("You must be logged in to the server (Unauthorized)"),
                        ),
                    ]));
                    break 'op false;
                }
                let wanted: Vec<String> = req
                    .get("names")
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let (deleted, missing): (Vec<String>, Vec<String>) = wanted
                    .into_iter()
                    .partition(|w| nodes.iter().any(|n| n.name == *w && !n.server));
                nodes.retain(|n| !deleted.contains(&n.name));
                for d in &deleted {
                    log("info", &format!("Deleted node {d} (and its node password)"));
                }
                let list = |v: &[String]| Json::Arr(v.iter().map(Json::str).collect());
                set(Json::obj([
                    ("ok", Json::Bool(true)),
                    ("deleted", list(&deleted)),
                    ("missing", list(&missing)),
                ]));
                !deleted.is_empty()
            }
            other => {
                set(Json::obj([
                    ("ok", Json::Bool(false)),
                    ("error", Json::str(format!("unknown op {other:?}"))),
                ]));
                false
            }
        }
    };
    (
        answer.unwrap_or_else(|| Json::obj([("ok", Json::Bool(false))])),
        changed,
    )
}

/// Sends one request and reads the whole JSON reply.
pub(crate) fn request(addr: &str, req: &Json, timeout: Duration) -> std::io::Result<Json> {
    use std::io::Read;
    use std::net::ToSocketAddrs;
    let sock = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot resolve {addr}"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let line: String = req
        .pretty()
        .lines()
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("");
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    crate::json::parse(text.trim())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(token: &str, name: &str, node_password: &str) -> Json {
        Json::obj([
            ("op", Json::str("register")),
            ("token", Json::str(token)),
            ("name", Json::str(name)),
            ("ip", Json::str("10.231.0.21")),
            (
                "labels",
                Json::obj([("em-infra/role", Json::str("worker"))]),
            ),
            ("arch", Json::str("amd64")),
            ("nodePassword", Json::str(node_password)),
        ])
    }

    fn ok(reply: &Json) -> bool {
        matches!(reply.get("ok"), Some(Json::Bool(true)))
    }

    #[test]
    fn agents_join_only_with_the_token_and_their_own_node_password() {
        let mut nodes = Vec::new();
        let (r, changed) = respond(&register("wrong", "w1", "p1"), "pw", &mut nodes);
        assert!(!ok(&r) && !changed && nodes.is_empty());
        assert_eq!(
            r.get("error").and_then(Json::as_str),
            Some("401 Unauthorized")
        );

        // The full K10 token works as well as the short one.
        let (r, changed) = respond(&register("K10abc::server:pw", "w1", "p1"), "pw", &mut nodes);
        assert!(ok(&r) && changed);
        assert_eq!(
            nodes[0].labels.get("em-infra/role").map(String::as_str),
            Some("worker")
        );
        assert!(
            !nodes[0]
                .labels
                .contains_key("node-role.kubernetes.io/control-plane")
        );

        // Same host again: fine. Another host (new password) under the same name: refused, retryable.
        assert!(ok(&respond(&register("pw", "w1", "p1"), "pw", &mut nodes).0));
        let (r, _) = respond(&register("pw", "w1", "p2"), "pw", &mut nodes);
        assert!(!ok(&r));
        assert_eq!(r.get("retry"), Some(&Json::Bool(true)));
        assert!(
            r.get("error")
                .and_then(Json::as_str)
                .unwrap()
                .starts_with("Node password rejected")
        );

        // Deleting the node (admin key required) lets the new host register.
        let del = |key: &str| {
            Json::obj([
                ("op", Json::str("delete")),
                ("names", Json::Arr(vec![Json::str("w1"), Json::str("nope")])),
                ("key", Json::str(key)),
            ])
        };
        assert!(!ok(&respond(&del("bad"), "pw", &mut nodes).0));
        let (r, changed) = respond(&del(&admin_key("pw")), "pw", &mut nodes);
        assert!(ok(&r) && changed && nodes.is_empty());
        assert_eq!(
            r.get("missing").and_then(Json::as_array).map(<[Json]>::len),
            Some(1)
        );
        assert!(ok(&respond(&register("pw", "w1", "p2"), "pw", &mut nodes).0));
    }

    #[test]
    fn node_list_needs_the_admin_key() {
        let mut nodes = Vec::new();
        let list = |key: &str| Json::obj([("op", Json::str("nodes")), ("key", Json::str(key))]);
        assert!(!ok(&respond(&list("x"), "pw", &mut nodes).0));
        let (r, changed) = respond(&list(&admin_key("pw")), "pw", &mut nodes);
        assert!(ok(&r) && !changed);
        assert_eq!(
            r.get("list")
                .and_then(|l| l.get("kind"))
                .and_then(Json::as_str),
            Some("List")
        );
    }

    #[test]
    fn kubeconfig_matches_k3s_shape() {
        let k = kubeconfig_text("pw", 6443);
        assert!(k.contains("    server: https://127.0.0.1:6443\n"));
        assert!(k.contains("  name: default\n"));
        assert!(k.contains("current-context: default\n"));
        assert!(k.contains("    client-key-data: "));
        assert!(!k.contains("pw\n"));
        assert_eq!(
            k,
            kubeconfig_text("pw", 6443),
            "deterministic across restarts"
        );
    }
}
