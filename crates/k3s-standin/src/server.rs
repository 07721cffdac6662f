//! `k3s server`: files, node registry and the agent/kubectl listener.

use crate::cli;
use crate::flags::Command;
use crate::json::Json;
use crate::nodes::{self, Node};
use crate::sys::{self, log};
use crate::{record, token};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

pub(crate) const DATA_DIR: &str = "/var/lib/rancher/k3s";
pub(crate) const SERVER_DIR: &str = "/var/lib/rancher/k3s/server";
pub(crate) const SERVER_CA: &str = "/var/lib/rancher/k3s/server/tls/server-ca.crt";
/// `--private-registry`'s default.
pub(crate) const REGISTRIES: &str = "/etc/rancher/k3s/registries.yaml";
pub(crate) const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
pub(crate) const NODE_PASSWORD: &str = "/etc/rancher/node/password";
/// k3s's message when a host registers under a name another host's password already holds.
pub(crate) const NODE_PASSWORD_REJECTED: &str = "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-passwd entry, try enabling a unique node name with the --with-node-id flag";

/// The fake client key written into k3s.yaml; kubectl presents it and the server checks it.
pub(crate) fn admin_key(password: &str) -> String {
    sys::fake_hash_hex(format!("standin-admin-key:{password}").as_bytes())
}

/// The kubeconfig k3s writes: the cluster CA as `certificate-authority-data`, and a fake client
/// key (derived from the token's password) that the stand-in's kubectl presents.
pub(crate) fn kubeconfig_text(password: &str, port: u16, ca_pem: &str) -> String {
    let pem = |kind: &str, body: &str| {
        sys::base64(
            format!("-----BEGIN {kind}-----\nSTANDIN{body}\n-----END {kind}-----\n").as_bytes(),
        )
    };
    let cert = sys::fake_hash_hex(format!("standin-admin-cert:{password}").as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:{port}\n  name: default\n\
         contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\n\
         preferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        sys::base64(ca_pem.as_bytes()),
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

/// The cluster CA k3s keeps at `server/tls/server-ca.crt`: created once, then reused (its hash is
/// in every full token). Not a real certificate: PEM armour around random bytes.
fn ensure_server_ca() -> std::io::Result<String> {
    match std::fs::read_to_string(SERVER_CA) {
        Ok(pem) => Ok(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let body = sys::base64(
                format!(
                    "k3s-standin cluster CA (NOT a certificate) {}",
                    sys::random_hex(32)
                )
                .as_bytes(),
            );
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for chunk in body.as_bytes().chunks(64) {
                pem.push_str(&String::from_utf8_lossy(chunk));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            write_file(SERVER_CA, &pem, 0o644)?;
            Ok(pem)
        }
        Err(e) => Err(e),
    }
}

/// The password of the cluster token: the `--token`/`--token-file` given (short or full), else
/// the one the data dir already holds, else a new random one (k3s generates one too).
fn cluster_password(
    given: Option<&str>,
    existing: Option<&str>,
    ca_pem: &str,
) -> Result<String, String> {
    if let Some(t) = given {
        let parsed = token::parse(t)?;
        // A full token given to a server must name this cluster's CA.
        token::check_ca(&parsed, ca_pem.as_bytes())?;
        return Ok(parsed.password);
    }
    if let Some(t) = existing
        && let Ok(parsed) = token::parse(t.trim())
    {
        return Ok(parsed.password);
    }
    Ok(sys::random_hex(16))
}

pub(crate) fn run(args: &[String]) -> i32 {
    sys::install_signal_handlers();
    let opts = match cli::parse(Command::Server, args) {
        Ok(o) => o,
        Err(e) => return fatal(&e),
    };
    for w in &opts.warnings {
        log("warning", w);
    }
    if let Some(d) = opts
        .get("data-dir")
        .filter(|d| d.trim_end_matches('/') != DATA_DIR)
    {
        return fatal(&format!(
            "data-dir {d}: the k3s stand-in supports only the default {DATA_DIR}"
        ));
    }
    let given = match cli::token(&opts) {
        Ok(t) => t,
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
    let ca_pem = match ensure_server_ca() {
        Ok(p) => p,
        Err(e) => return fatal(&format!("writing {SERVER_CA}: {e}")),
    };
    let token_path = format!("{SERVER_DIR}/token");
    let existing = std::fs::read_to_string(&token_path).ok();
    let password = match cluster_password(
        given.as_ref().map(|(t, _)| t.as_str()),
        existing.as_deref(),
        &ca_pem,
    ) {
        Ok(p) => p,
        Err(e) => return fatal(&format!("starting kubernetes: preparing server: {e}")),
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
    // The full token (server/token, with node-token and agent-token as k3s' links to it).
    let full_token = format!(
        "{}\n",
        token::format(&format!("server:{password}"), ca_pem.as_bytes())
    );
    if existing.as_deref() != Some(full_token.as_str())
        && let Err(e) = write_file(&token_path, &full_token, 0o600)
    {
        return fatal(&format!("writing {token_path}: {e}"));
    }
    for link in ["node-token", "agent-token"] {
        let path = format!("{SERVER_DIR}/{link}");
        if std::fs::symlink_metadata(&path).is_err() {
            let _ = std::os::unix::fs::symlink(&token_path, &path);
        }
    }
    let port: u16 = match opts.get("https-listen-port").map(str::parse).transpose() {
        Ok(p) => p.unwrap_or(6443),
        Err(e) => return fatal(&format!("invalid https-listen-port: {e}")),
    };
    let mode = match u32::from_str_radix(opts.get("write-kubeconfig-mode").unwrap_or("0600"), 8) {
        Ok(m) if m <= 0o777 => m,
        _ => return fatal("invalid write-kubeconfig-mode (want octal like 0600)"),
    };
    let kubeconfig = opts.get("write-kubeconfig").unwrap_or(KUBECONFIG);
    if let Err(e) = write_file(kubeconfig, &kubeconfig_text(&password, port, &ca_pem), mode) {
        return fatal(&format!("writing {kubeconfig}: {e}"));
    }
    ensure_node_password();

    let registry = Path::new(SERVER_DIR).join("standin-nodes.json");
    let mut nodes = nodes::load(&registry);
    let name = opts
        .get("node-name")
        .map(str::to_string)
        .unwrap_or_else(sys::hostname);
    let ip = opts
        .list("node-ip")
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".to_string());
    upsert(
        &mut nodes,
        self_node(&name, &ip, &opts.labels(), true),
        true,
    );
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
    for image in record::images() {
        log(
            "info",
            &format!("Importing images from {}/{image}", record::IMAGES_DIR),
        );
    }
    let _ = record::write(
        &format!("{SERVER_DIR}/standin-runtime.json"),
        vec![
            ("command", Json::str("server")),
            (
                "tokenSource",
                Json::str(given.as_ref().map_or("generated", |(_, s)| *s)),
            ),
            ("proxyEnv", record::proxy_env()),
            (
                "images",
                Json::Arr(record::images().into_iter().map(Json::str).collect()),
            ),
            (
                "registries",
                Json::Bool(Path::new(opts.get("private-registry").unwrap_or(REGISTRIES)).exists()),
            ),
        ],
    );
    log("info", "k3s is up and running");
    sys::sd_notify("READY=1");

    let auth = Auth { password, ca_pem };
    let mut last_save = sys::now_secs();
    while !sys::stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                if handle(stream, &auth, &mut nodes) {
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

/// What the server answers with: the token's password and the CA bundle `/cacerts` serves.
pub(crate) struct Auth {
    pub password: String,
    pub ca_pem: String,
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
fn handle(stream: TcpStream, auth: &Auth, nodes: &mut Vec<Node>) -> bool {
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
    let (answer, changed) = respond(&req, auth, nodes);
    reply(&mut out, answer);
    changed
}

/// Answers one request: `cacerts` (anyone, like k3s' `/cacerts`), `register` (agents), `nodes` and
/// `delete` (kubectl). Returns the reply and whether the node registry changed.
pub(crate) fn respond(req: &Json, auth: &Auth, nodes: &mut Vec<Node>) -> (Json, bool) {
    let password = auth.password.as_str();
    let mut answer = None;
    let mut set = |v: Json| answer = Some(v);
    let changed = 'op: {
        let field = |k: &str| req.get(k).and_then(Json::as_str).unwrap_or("").to_string();
        match field("op").as_str() {
            "cacerts" => {
                set(Json::obj([
                    ("ok", Json::Bool(true)),
                    ("cacerts", Json::str(&auth.ca_pem)),
                ]));
                false
            }
            "register" => {
                // Basic auth node:<password> (the agent already checked the CA hash).
                if token::parse(&field("token")).map(|t| t.password).as_deref() != Ok(password) {
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

    const CA: &str = "-----BEGIN CERTIFICATE-----\nU1RBTkRJTg==\n-----END CERTIFICATE-----\n";

    fn auth() -> Auth {
        Auth {
            password: "pw".into(),
            ca_pem: CA.into(),
        }
    }

    fn ok(reply: &Json) -> bool {
        matches!(reply.get("ok"), Some(Json::Bool(true)))
    }

    #[test]
    fn agents_join_only_with_the_token_and_their_own_node_password() {
        let mut nodes = Vec::new();
        let (r, changed) = respond(&register("wrong", "w1", "p1"), &auth(), &mut nodes);
        assert!(!ok(&r) && !changed && nodes.is_empty());
        assert_eq!(
            r.get("error").and_then(Json::as_str),
            Some("401 Unauthorized")
        );

        // A malformed full token is refused; the full K10 token works as well as the short one.
        let (r, _) = respond(
            &register("K10abc::server:pw", "w1", "p1"),
            &auth(),
            &mut nodes,
        );
        assert!(!ok(&r));
        let full = token::format("server:pw", CA.as_bytes());
        let (r, changed) = respond(&register(&full, "w1", "p1"), &auth(), &mut nodes);
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
        assert!(ok(&respond(
            &register("pw", "w1", "p1"),
            &auth(),
            &mut nodes
        )
        .0));
        let (r, _) = respond(&register("pw", "w1", "p2"), &auth(), &mut nodes);
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
        assert!(!ok(&respond(&del("bad"), &auth(), &mut nodes).0));
        let (r, changed) = respond(&del(&admin_key("pw")), &auth(), &mut nodes);
        assert!(ok(&r) && changed && nodes.is_empty());
        assert_eq!(
            r.get("missing").and_then(Json::as_array).map(<[Json]>::len),
            Some(1)
        );
        assert!(ok(&respond(
            &register("pw", "w1", "p2"),
            &auth(),
            &mut nodes
        )
        .0));
    }

    #[test]
    fn node_list_needs_the_admin_key() {
        let mut nodes = Vec::new();
        let list = |key: &str| Json::obj([("op", Json::str("nodes")), ("key", Json::str(key))]);
        assert!(!ok(&respond(&list("x"), &auth(), &mut nodes).0));
        let (r, changed) = respond(&list(&admin_key("pw")), &auth(), &mut nodes);
        assert!(ok(&r) && !changed);
        assert_eq!(
            r.get("list")
                .and_then(|l| l.get("kind"))
                .and_then(Json::as_str),
            Some("List")
        );
    }

    #[test]
    fn cacerts_are_served_without_credentials() {
        let mut nodes = Vec::new();
        let (r, changed) = respond(
            &Json::obj([("op", Json::str("cacerts"))]),
            &auth(),
            &mut nodes,
        );
        assert!(ok(&r) && !changed);
        assert_eq!(r.get("cacerts").and_then(Json::as_str), Some(CA));
    }

    #[test]
    fn a_server_accepts_its_own_full_token_only() {
        let own = token::format("server:pw", CA.as_bytes());
        assert_eq!(cluster_password(Some(&own), None, CA).unwrap(), "pw");
        let other = token::format("server:pw", b"another CA");
        assert!(
            cluster_password(Some(&other), None, CA)
                .unwrap_err()
                .starts_with("token CA hash does not match")
        );
        assert_eq!(
            cluster_password(None, Some(&format!("{own}\n")), CA).unwrap(),
            "pw"
        );
        assert_eq!(cluster_password(None, None, CA).unwrap().len(), 32);
    }

    #[test]
    fn kubeconfig_matches_k3s_shape() {
        let k = kubeconfig_text("pw", 6443, CA);
        assert!(k.contains(&format!(
            "certificate-authority-data: {}\n",
            sys::base64(CA.as_bytes())
        )));
        assert!(k.contains("    server: https://127.0.0.1:6443\n"));
        assert!(k.contains("  name: default\n"));
        assert!(k.contains("current-context: default\n"));
        assert!(k.contains("    client-key-data: "));
        assert!(!k.contains("pw\n"));
        assert_eq!(
            k,
            kubeconfig_text("pw", 6443, CA),
            "deterministic across restarts"
        );
    }
}
