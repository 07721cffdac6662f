//! A local HTTPS server that answers like the Proxmox VE API, for tests.
//!
//! At start it makes a private CA and a server certificate for `127.0.0.1`/`localhost` (rcgen),
//! then serves TLS (rustls) on an ephemeral port: one thread per connection, a tiny HTTP/1.1
//! parser, one request per connection (`Connection: close`). Routes map `"METHOD /path?query"`
//! (the part after `/api2/json`) to a status and a JSON body; the body is sent as PVE does, with
//! the reason also in `message` for errors. Requests without the expected
//! `Authorization: PVEAPIToken=…` header get PVE's 401. The server stops when dropped, and on its
//! own after [`MAX_LIFETIME`].
//!
//! A test module with state of its own (e.g. [`crate::pve_snapshots`]) answers through a
//! [`Handler`] (see [`PveServer::handle`]), asked before the fixed routes.
//!
//! [`happy_routes`] holds response shapes recorded from real PVE 8 hosts (pve-manager API schema,
//! luthermonson/go-proxmox `tests/mocks/pve8x`, `pve9x/hardware.go`), trimmed to what em-infra reads
//! plus typical neighbours.
//!
//! `GET /access/permissions` is answered from an [`Access`] model (pve_access.rs) on the release
//! the `GET /version` route names, and the same model applies the permission checks and filters
//! of the endpoints em-infra reads (403s, hidden VMs, bridges, storages and mappings); by default
//! the token's user has `Administrator` on `/`, so every route answers as written.

use crate::pve_access::Access;
use crate::test_ca;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use test_ca::TestCa;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

/// The server gives up on its own after this long, even if a test forgets to drop it.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// A private CA and a server certificate it signed.
pub(crate) struct Pki {
    pub ca_pem: String,
    pub server_cert: CertificateDer<'static>,
    pub server_key_der: Vec<u8>,
}

impl Pki {
    pub(crate) fn generate() -> Pki {
        let ca = TestCa::new("Proxmox Virtual Environment (test)");
        let server = ca.server("pve", &["localhost", "127.0.0.1"]);
        Pki {
            ca_pem: ca.pem,
            server_cert: server.cert_der,
            server_key_der: server.key_der,
        }
    }
}

/// One response: HTTP status, the whole JSON body, and the status line's reason phrase when it
/// is not the first line of the body's `message` (see [`legacy`]).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
    pub reason: Option<String>,
}

/// `{"data": data}` with status 200.
pub(crate) fn ok(data: Value) -> Reply {
    Reply {
        status: 200,
        body: json!({ "data": data }),
        reason: None,
    }
}

/// `reply` as a PVE 8 host before libpve-http-server-perl 5.2.0 sends it: the message only in
/// the status line, the body without `message` (`{"data":null}`, plus `errors` for parameter
/// errors, which older servers sent too). pve-http-server commit 9a2112e "fix #6503: return api
/// handler errors in the json body" (January 2025) added the body's `message`.
pub(crate) fn legacy(mut reply: Reply) -> Reply {
    if let Some(message) = reply.body.as_object_mut().and_then(|b| b.remove("message")) {
        reply.reason = message.as_str().map(str::to_string);
    }
    reply
}

/// `GET /cluster/nextid?vmid=N` for a taken ID, as PVE answers it: `nextid` raises a parameter
/// exception (`raise_param_exc({ vmid => "VM $vmid already exists" })` in PVE::API2::Cluster),
/// which the API server turns into HTTP 400 "Parameter verification failed." with the reason
/// under `errors` — also for guests the token may not audit.
pub(crate) fn vmid_taken(vmid: u64) -> Reply {
    param_error("vmid", &format!("VM {vmid} already exists"))
}

/// A parameter error as PVE sends it (`raise_param_exc` in pve-common `PVE::Exception`): 400
/// "Parameter verification failed." with the reason under `errors`.
pub(crate) fn param_error(param: &str, text: &str) -> Reply {
    Reply {
        status: 400,
        body: json!({
            "data": null,
            "message": "Parameter verification failed.\n",
            "errors": { param: text },
        }),
        reason: None,
    }
}

/// An error as PVE sends it: `{"data": null, "message": reason}`, the reason also in the status line.
pub(crate) fn error(status: u16, reason: &str) -> Reply {
    Reply {
        status,
        body: json!({ "data": null, "message": format!("{reason}\n") }),
        reason: None,
    }
}

type Routes = Arc<Mutex<HashMap<String, Reply>>>;
/// Computes the answer to an authorized request from its method, path after `/api2/json` (query
/// included) and body, or passes (`None`) to the next handler and the fixed routes.
pub(crate) type Handler = Arc<dyn Fn(&str, &str, &[u8]) -> Option<Reply> + Send + Sync>;
type Handlers = Arc<Mutex<Vec<Handler>>>;
/// Each request seen: `"GET /version"` and its Authorization header.
type Requests = Arc<Mutex<Vec<(String, Option<String>)>>>;
type SharedAccess = Arc<Mutex<Access>>;

/// The running server. Dropping it stops it.
pub(crate) struct PveServer {
    addr: SocketAddr,
    pki: Arc<Pki>,
    routes: Routes,
    requests: Requests,
    handlers: Handlers,
    access: SharedAccess,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PveServer {
    /// Start with `routes`, accepting only `Authorization: PVEAPIToken=<token>`.
    pub(crate) fn start(token: &str, routes: HashMap<String, Reply>) -> PveServer {
        let pki = Arc::new(Pki::generate());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.server_cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone())),
            )
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Routes = Arc::new(Mutex::new(routes));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handlers: Handlers = Arc::default();
        let token_id = token
            .split_once('=')
            .map_or(token, |(id, _)| id)
            .to_string();
        let access: SharedAccess = Arc::new(Mutex::new(Access::admin(&token_id)));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!("PVEAPIToken={token}");
        let thread = {
            let (routes, requests, handlers, access, stop) = (
                routes.clone(),
                requests.clone(),
                handlers.clone(),
                access.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < MAX_LIFETIME {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (config, routes, requests, handlers, access, expected) = (
                                config.clone(),
                                routes.clone(),
                                requests.clone(),
                                handlers.clone(),
                                access.clone(),
                                expected.clone(),
                            );
                            std::thread::spawn(move || {
                                let _ = serve(
                                    stream, config, &routes, &requests, &handlers, &access,
                                    &expected,
                                );
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        PveServer {
            addr,
            pki,
            routes,
            requests,
            handlers,
            access,
            stop,
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:<port>/` (the form PROXMOX_VE_ENDPOINT takes).
    pub(crate) fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.addr.port())
    }

    /// Write the CA certificate (the test's `/etc/pve/pve-root-ca.pem`) into `dir`.
    pub(crate) fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("pve-root-ca.pem");
        std::fs::write(&path, &self.pki.ca_pem).unwrap();
        path
    }

    /// Add or replace a route.
    pub(crate) fn route(&self, key: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(key.to_string(), reply);
    }

    /// Let `handler` answer requests before the fixed routes (after the ones added earlier).
    pub(crate) fn handle(&self, handler: Handler) {
        self.handlers.lock().unwrap().push(handler);
    }

    /// Pin the answer `key` now follows from the other routes, so that later changes to those
    /// (a 403 on `hardware/pci`, say) leave it as it is: what the host knows beyond the token.
    pub(crate) fn freeze(&self, key: &str) {
        let mut routes = self.routes.lock().unwrap();
        let reply = derived(key, &routes).unwrap_or_else(|| panic!("{key} follows from no route"));
        routes.insert(key.to_string(), reply);
    }

    /// Remove a route: the server then answers what follows from the others, else 501.
    pub(crate) fn unroute(&self, key: &str) {
        self.routes.lock().unwrap().remove(key);
    }

    /// The body's `data` of a route (to change a copy of it).
    pub(crate) fn data(&self, key: &str) -> Value {
        self.routes.lock().unwrap()[key].body["data"].clone()
    }

    /// Replace the ACL model that answers `GET /access/permissions`.
    pub(crate) fn set_access(&self, access: Access) {
        *self.access.lock().unwrap() = access;
    }

    /// Every request seen: `"GET /version"` and its Authorization header.
    pub(crate) fn requests(&self) -> Vec<(String, Option<String>)> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for PveServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        595 => "Connection refused",
        _ => "Status",
    }
}

fn serve(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    routes: &Routes,
    requests: &Requests,
    handlers: &Handlers,
    access: &SharedAccess,
    expected_auth: &str,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let mut reader = BufReader::new(&mut tls);

    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut auth = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => auth = Some(value.trim().to_string()),
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; content_length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    drop(reader);

    let path = target.strip_prefix("/api2/json").unwrap_or(&target);
    let key = format!("{method} {path}");
    requests.lock().unwrap().push((key.clone(), auth.clone()));
    let handlers = handlers.lock().unwrap().clone();
    let handled = || handlers.iter().find_map(|h| h(&method, path, &body));
    let reply = if auth.as_deref() != Some(expected_auth) {
        error(401, "invalid token value!")
    } else if let Some(reply) = handled() {
        reply
    } else {
        let token_id = expected_auth.trim_start_matches("PVEAPIToken=");
        let token_id = token_id.split_once('=').map_or(token_id, |(id, _)| id);
        let major = version_major(routes);
        let reply = {
            let routes = routes.lock().unwrap();
            let reply = routes.get(&key).cloned().or_else(|| derived(&key, &routes));
            reply.map(|r| consistent_with_storage_config(&key, r, &routes))
        };
        let reply = reply.unwrap_or_else(|| match key.strip_prefix("GET /access/permissions") {
            Some(query) => access.lock().unwrap().reply(major, token_id, query),
            None => error(501, &format!("Method '{key}' not implemented")),
        });
        // What the endpoint checks or filters, from the token's privileges (pve_access.rs).
        access.lock().unwrap().guard(major, token_id, &key, reply)
    };
    let body = reply.body.to_string();
    // The first line of the message, as pve-http-server's `response` writes it; the generic
    // phrase when there is none.
    let status_reason = reply
        .reason
        .as_deref()
        .or_else(|| reply.body.get("message").and_then(Value::as_str))
        .and_then(|m| m.lines().next())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| reason(reply.status).to_string());
    let head = format!(
        "HTTP/1.1 {} {}\r\nServer: pve-api-daemon/3.0\r\nContent-Type: application/json;charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nCache-Control: max-age=0\r\n\r\n",
        reply.status,
        status_reason,
        body.len()
    );
    tls.write_all(head.as_bytes())?;
    tls.write_all(body.as_bytes())?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}

/// Answers that follow from other routes, as a real host's would from its configuration, for
/// requests no test routed explicitly.
fn derived(key: &str, routes: &HashMap<String, Reply>) -> Option<Reply> {
    // nextid sees every guest in the cluster, listed for the token or not: an ID in
    // `/cluster/resources` is taken, any other is answered with itself (a test marks an ID taken
    // by a guest the token cannot see with `vmid_taken`).
    if let Some(id) = key.strip_prefix("GET /cluster/nextid?vmid=") {
        let listed = routes
            .get("GET /cluster/resources?type=vm")
            .and_then(|r| r.body["data"].as_array())
            .is_some_and(|guests| {
                guests
                    .iter()
                    .any(|g| g["vmid"].as_u64().is_some() && g["vmid"].as_u64() == id.parse().ok())
            });
        return Some(if listed {
            vmid_taken(id.parse().unwrap_or(0))
        } else {
            ok(json!(id))
        });
    }
    if let Some(node) = key.strip_prefix("GET /cluster/mapping/pci?check-node=") {
        return mappings_checked_on(node, routes);
    }
    let rest = key.strip_prefix("GET /nodes/")?;
    if let Some((node, rest)) = rest.split_once("/storage/")
        && let Some(id) = rest.strip_suffix("/status")
    {
        return storage_status_from_config(node, id, routes);
    }
    None
}

/// Whether storage.cfg's `entry` makes the storage unusable on `node` (`disable`, or a `nodes`
/// list without it: pve-storage `storage_check_enabled`).
fn not_enabled_on(entry: &Value, node: &str) -> bool {
    entry["disable"].as_i64().unwrap_or(0) != 0
        || entry["nodes"]
            .as_str()
            .is_some_and(|nodes| !nodes.split(',').any(|n| n == node))
}

/// `GET /nodes/<node>/storage?content=…` leaves out the storages that are not enabled on the
/// node (`storage_info` with a content filter: `next if !$want_ctype || !$storage_enabled`), so a
/// test that disables one in `GET /storage` sees it gone there too.
fn consistent_with_storage_config(
    key: &str,
    mut reply: Reply,
    routes: &HashMap<String, Reply>,
) -> Reply {
    let Some((node, _)) = key
        .strip_prefix("GET /nodes/")
        .and_then(|rest| rest.split_once("/storage?content="))
    else {
        return reply;
    };
    let Some(config) = routes
        .get("GET /storage")
        .and_then(|r| r.body["data"].as_array())
    else {
        return reply;
    };
    if let Some(list) = reply.body["data"].as_array_mut() {
        list.retain(|s| {
            !config
                .iter()
                .any(|c| c["storage"] == s["storage"] && not_enabled_on(c, node))
        });
    }
    reply
}

/// `GET /nodes/<node>/storage/<id>/status` from `GET /storage` (storage.cfg), as pve-storage
/// answers it (`PVE/API2/Storage/Status.pm` `read_status`, `PVE/Storage.pm` `storage_info`): an
/// ID storage.cfg lacks is the 400 parameter error "No such storage."; a storage that is
/// disabled or restricted to other nodes (`storage_check_enabled`) is listed with `enabled: 0,
/// active: 0` and no sizes. An enabled storage's status needs a route of its own (its sizes).
fn storage_status_from_config(
    node: &str,
    id: &str,
    routes: &HashMap<String, Reply>,
) -> Option<Reply> {
    let config = routes.get("GET /storage")?.body["data"].as_array()?.clone();
    let Some(entry) = config.iter().find(|s| s["storage"] == id) else {
        return Some(param_error("storage", "No such storage."));
    };
    not_enabled_on(entry, node).then(|| {
        ok(json!({
            "type": entry["type"], "content": entry["content"],
            "shared": entry["shared"].as_i64().unwrap_or(0),
            "enabled": 0, "active": 0, "total": 0, "used": 0, "avail": 0
        }))
    })
}

/// `GET /cluster/mapping/pci?check-node=<node>` from the plain list and the node's hardware, as
/// pve-manager `PVE/API2/Cluster/Mapping/PCI.pm` `index` answers it: every mapping gains
/// `checks`, a warning "No mapping for node N." when no entry names the node, and for each entry
/// of the node whose `assert_valid` fails, an error "Invalid configuration: <why>\n". The node's
/// `hardware/pci` route stands in for its sysfs (which the real check reads directly, without
/// needing Sys.Audit).
fn mappings_checked_on(node: &str, routes: &HashMap<String, Reply>) -> Option<Reply> {
    let listed = routes.get("GET /cluster/mapping/pci")?;
    let Some(mappings) = listed.body["data"].as_array() else {
        return Some(listed.clone()); // an error stays that error
    };
    let hardware = routes
        .get(&format!("GET /nodes/{node}/hardware/pci"))
        .and_then(|r| r.body["data"].as_array().cloned())
        .unwrap_or_default();
    let mut checked = Vec::new();
    for mapping in mappings {
        let mut mapping = mapping.clone();
        let id = mapping["id"].as_str().unwrap_or_default().to_string();
        let mdev = mapping["mdev"].as_i64().unwrap_or(0) != 0;
        let entries: Vec<HashMap<String, String>> = mapping["map"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .map(property_string)
                    .collect()
            })
            .unwrap_or_default();
        let mine: Vec<&HashMap<String, String>> = entries
            .iter()
            .filter(|e| e.get("node").map(String::as_str) == Some(node))
            .collect();
        let mut checks = Vec::new();
        if mine.is_empty() {
            checks.push(
                json!({"severity": "warning", "message": format!("No mapping for node {node}.")}),
            );
        }
        for entry in mine {
            if let Err(why) = assert_valid(&id, entry, mdev, &hardware) {
                checks.push(json!({"severity": "error", "message": format!("Invalid configuration: {why}")}));
            }
        }
        mapping["checks"] = json!(checks);
        checked.push(mapping);
    }
    Some(ok(json!(checked)))
}

/// `key=value,key=value` (a map entry of a PCI mapping).
fn property_string(text: &str) -> HashMap<String, String> {
    text.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// pve-guest-common `PVE/Mapping/PCI.pm` `assert_valid`: every `;`-separated path must be a
/// device (`.0` added to a whole-device path), and `id`, `iommugroup` (first path only), `mdev`
/// (against the mapping's flag) and `subsystem-id` must match the hardware, checked in that
/// (sorted) order; `0x` is ignored. The error texts are PVE's, newline included.
fn assert_valid(
    name: &str,
    entry: &HashMap<String, String>,
    mdev: bool,
    hardware: &[Value],
) -> Result<(), String> {
    let strip = |v: &str| v.replace("0x", "");
    let paths = entry.get("path").map(String::as_str).unwrap_or_default();
    for (idx, path) in paths.split(';').enumerate() {
        let has_function = path
            .rsplit_once('.')
            .is_some_and(|(_, f)| f.len() == 1 && f.chars().all(|c| c.is_ascii_hexdigit()));
        let path = if has_function {
            path.to_string()
        } else {
            format!("{path}.0")
        };
        let info = hardware
            .iter()
            .find(|d| d["id"] == path.as_str())
            .ok_or_else(|| format!("pci device '{path}' not found\n"))?;
        let text = |k: &str| info[k].as_str().map(strip);
        let (vendor, device) = text("vendor")
            .zip(text("device"))
            .ok_or_else(|| format!("pci device '{path}' not found\n"))?;
        let expected: [(&str, Option<String>); 4] = [
            ("id", Some(format!("{vendor}:{device}"))),
            (
                "iommugroup",
                info["iommugroup"]
                    .as_i64()
                    .filter(|g| *g >= 0)
                    .map(|g| g.to_string()),
            ),
            (
                "mdev",
                Some(
                    if info["mdev"].as_bool() == Some(true) || info["mdev"] == 1 {
                        "1"
                    } else {
                        "0"
                    }
                    .into(),
                ),
            ),
            (
                "subsystem-id",
                text("subsystem_vendor")
                    .zip(text("subsystem_device"))
                    .map(|(v, d)| format!("{v}:{d}")),
            ),
        ];
        for (prop, expected) in expected {
            if prop == "iommugroup" && idx > 0 {
                continue;
            }
            let configured = if prop == "mdev" {
                Some(if mdev { "1" } else { "0" }.to_string())
            } else {
                entry.get(prop).cloned()
            };
            match (expected, configured) {
                (None, None) => {}
                (Some(_), None) => {
                    return Err(format!(
                        "missing expected property '{prop}' for device '{path}'\n"
                    ));
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "unexpected property '{prop}' configured for device '{path}'\n"
                    ));
                }
                (Some(e), Some(c)) if strip(&e) != strip(&c) => {
                    return Err(format!(
                        "'{prop}' does not match for '{name}' ({} != {})\n",
                        strip(&e),
                        strip(&c)
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The major release the `GET /version` route names (8 when it names none).
fn version_major(routes: &Routes) -> u32 {
    let routes = routes.lock().unwrap();
    let data = routes.get("GET /version").map(|r| r.body["data"].clone());
    data.and_then(|d| {
        d["release"]
            .as_str()
            .or(d["version"].as_str())
            .and_then(|v| v.split('.').next()?.parse().ok())
    })
    .unwrap_or(8)
}

/// A healthy single-node PVE 8.2 host `pve` with template 9000, storage `local-lvm`, bridge
/// `vmbr0`, an unrelated VM 100 and container 101, and a GPU mapped as `gpu0` (an RTX 3090 at
/// 0000:01:00.0 with its audio function in IOMMU group 15). `hardware/pci` leaves out classes
/// 05, 06 and 0b as PVE's default `pci-class-blacklist` does.
pub(crate) fn happy_routes() -> HashMap<String, Reply> {
    let mut r = HashMap::new();
    let mut add = |k: &str, reply: Reply| {
        r.insert(k.to_string(), reply);
    };
    add(
        "GET /version",
        ok(json!({"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"})),
    );
    add(
        "GET /nodes",
        ok(json!([{
            "node": "pve", "status": "online", "type": "node", "id": "node/pve",
            "cpu": 0.0123, "maxcpu": 16, "mem": 8123456789u64, "maxmem": 67324813312u64,
            "disk": 9876543210u64, "maxdisk": 100861726720u64, "uptime": 1234567, "level": "",
            "ssl_fingerprint": "8A:3C:0F:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD"
        }])),
    );
    add(
        "GET /nodes/pve/status",
        ok(json!({
            "uptime": 1234567, "idle": 0, "wait": 0.0012, "cpu": 0.0123,
            "loadavg": ["0.12", "0.10", "0.09"], "kversion": "Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4",
            "pveversion": "pve-manager/8.2.4/faa83925c9641325",
            "memory": {"free": 59201356523u64, "total": 67324813312u64, "used": 8123456789u64},
            "rootfs": {"avail": 80000000000u64, "free": 85000000000u64, "total": 100861726720u64, "used": 15861726720u64},
            "cpuinfo": {"cores": 8, "cpus": 16, "model": "AMD Ryzen 7 5800X 8-Core Processor", "sockets": 1, "hvm": "1"}
        })),
    );
    add(
        "GET /cluster/resources?type=vm",
        ok(json!([
            {"id": "qemu/9000", "vmid": 9000, "name": "ubuntu-2204-cloudinit", "node": "pve", "type": "qemu",
             "status": "stopped", "template": 1, "maxcpu": 2, "maxmem": 2147483648u64, "maxdisk": 3758096384u64,
             "cpu": 0, "mem": 0, "disk": 0, "diskread": 0, "diskwrite": 0, "netin": 0, "netout": 0, "uptime": 0,
             "tags": "em-infra;template"},
            {"id": "qemu/100", "vmid": 100, "name": "home-assistant", "node": "pve", "type": "qemu",
             "status": "running", "template": 0, "maxcpu": 2, "maxmem": 4294967296u64, "cpu": 0.02,
             "mem": 2147483648u64, "uptime": 99999},
            {"id": "lxc/101", "vmid": 101, "name": "pihole", "node": "pve", "type": "lxc",
             "status": "running", "template": 0, "maxcpu": 1, "maxmem": 536870912}
        ])),
    );
    add(
        "GET /nodes/pve/qemu/9000/config",
        ok(json!({
            "agent": "1", "boot": "order=scsi0", "cores": 2, "memory": "2048",
            // As `em-infra prepare` (the proxmox_template role) leaves it.
            "description": "em-infra template; image sha256=0b1a4e6cf5a1d7a4c0b7ec2e5d8f9a3b6c7d8e9f0a1b2c3d4e5f60718293a4b5; \
                            image=jammy-server-cloudimg-amd64.img; \
                            url=https://cloud-images.ubuntu.com/releases/22.04/release-20240821/jammy-server-cloudimg-amd64.img",
            "digest": "5b1e4a9a1b8f3c1d0e2f4a6b8c0d2e4f6a8b0c2d", "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
            "meta": "creation-qemu=8.1.5,ctime=1718000000", "name": "ubuntu-2204-cloudinit",
            "net0": "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0", "ostype": "l26",
            "scsi0": "local-lvm:base-9000-disk-0,size=3584M", "scsihw": "virtio-scsi-pci",
            "serial0": "socket", "smbios1": "uuid=0b5c5e3a-1111-2222-3333-444455556666",
            "tags": "em-infra;template", "template": 1, "vga": "serial0", "vmgenid": "7f0b1a2c-aaaa-bbbb-cccc-ddddeeeeffff"
        })),
    );
    add(
        "GET /nodes/pve/storage/local-lvm/status",
        ok(json!({
            "active": 1, "enabled": 1, "shared": 0, "type": "lvmthin", "content": "rootdir,images",
            "avail": 400_000_000_000u64, "total": 500_000_000_000u64, "used": 100_000_000_000u64
        })),
    );
    // storage.cfg as `GET /storage` lists it: `content` and `nodes` comma-joined, `disable` and
    // `nodes` only when set (pve-storage `PVE/API2/Storage/Config.pm`, `$api_storage_config`).
    add(
        "GET /storage",
        ok(json!([
            {"storage": "local", "type": "dir", "path": "/var/lib/vz", "content": "backup,iso,vztmpl",
             "digest": "3f0c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c"},
            {"storage": "local-lvm", "type": "lvmthin", "thinpool": "data", "vgname": "pve",
             "content": "images,rootdir", "digest": "3f0c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c"},
            {"storage": "tank", "type": "zfspool", "pool": "tank", "sparse": 1, "content": "images,rootdir",
             "digest": "3f0c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c"},
            {"storage": "offline-nfs", "type": "nfs", "server": "192.168.10.5", "export": "/srv/pve",
             "path": "/mnt/pve/offline-nfs", "content": "images", "options": "vers=4.2",
             "digest": "3f0c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c"}
        ])),
    );
    add(
        "GET /nodes/pve/storage?content=images",
        ok(json!([
            {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images", "active": 1,
             "enabled": 1, "shared": 0, "avail": 400_000_000_000u64, "total": 500_000_000_000u64,
             "used": 100_000_000_000u64},
            {"storage": "tank", "type": "zfspool", "content": "images,rootdir", "active": 1,
             "enabled": 1, "shared": 0, "avail": 900_000_000_000u64, "total": 1_000_000_000_000u64,
             "used": 100_000_000_000u64},
            {"storage": "offline-nfs", "type": "nfs", "content": "images", "active": 0,
             "enabled": 1, "shared": 1, "avail": 0, "total": 0, "used": 0}
        ])),
    );
    add(
        "GET /nodes/pve/network",
        ok(json!([
            {"iface": "enp3s0", "type": "eth", "active": 1, "exists": 1, "autostart": 1,
             "families": ["inet"], "method": "manual", "method6": "manual", "priority": 3},
            {"iface": "vmbr0", "type": "bridge", "active": 1, "autostart": 1, "bridge_ports": "enp3s0",
             "bridge_stp": "off", "bridge_fd": "0", "cidr": "192.168.10.2/24", "address": "192.168.10.2",
             "netmask": "24", "gateway": "192.168.10.1", "families": ["inet"], "method": "static",
             "method6": "manual", "priority": 5}
        ])),
    );
    add(
        "GET /cluster/mapping/pci",
        ok(json!([{
            "id": "gpu0", "description": "RTX 3090",
            "map": ["id=10de:2204,iommugroup=15,node=pve,path=0000:01:00.0,subsystem-id=1458:403b"],
            "digest": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
        }])),
    );
    add(
        "GET /nodes/pve/hardware/pci",
        ok(json!([
            {"id": "0000:00:14.3", "class": "0x028000", "vendor": "0x8086", "device": "0x7af0",
             "vendor_name": "Intel Corporation", "device_name": "Alder Lake-S PCH CNVi WiFi",
             "iommugroup": 9},
            {"id": "0000:01:00.0", "class": "0x030000", "vendor": "0x10de", "device": "0x2204",
             "vendor_name": "NVIDIA Corporation", "device_name": "GA102 [GeForce RTX 3090]",
             "subsystem_vendor": "0x1458", "subsystem_device": "0x403b", "iommugroup": 15, "mdev": false},
            {"id": "0000:01:00.1", "class": "0x040300", "vendor": "0x10de", "device": "0x1aef",
             "vendor_name": "NVIDIA Corporation", "device_name": "GA102 High Definition Audio Controller",
             "iommugroup": 15},
            {"id": "0000:02:00.0", "class": "0x010802", "vendor": "0x144d", "device": "0xa808",
             "vendor_name": "Samsung Electronics Co Ltd", "device_name": "NVMe SSD Controller SM981/PM981/PM983",
             "iommugroup": 16}
        ])),
    );
    r
}
