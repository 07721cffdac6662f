//! A typed, blocking client for the Proxmox VE API: token auth, verified TLS (the system trust
//! store, or a pinned cluster CA, or an explicit opt-out), timeouts, lenient decoding, task polling, and errors that say what
//! to do. The API token's secret never appears in an error, a `Debug` rendering or a log.
//!
//! Settings come from the environment, with the bpg provider's names so one `export` serves
//! Terraform and em-infra (see docs/doctor.md):
//!
//! | variable | meaning |
//! |---|---|
//! | `PROXMOX_VE_ENDPOINT` | `https://<host>:8006/` (a trailing `/` or `/api2/json` is accepted) |
//! | `PROXMOX_VE_API_TOKEN` | `<user>@<realm>!<tokenid>=<secret>` |
//! | `PROXMOX_VE_INSECURE` | `true`/`1`: skip certificate verification (warned once) |
//! | `EM_INFRA_PVE_CA_FILE` | PEM file of the CA to trust instead of the system trust store (copy `/etc/pve/pve-root-ca.pem`) |
//! | `SSL_CERT_FILE`, `SSL_CERT_DIR` | without a CA file: where the system trust store is read from, as for OpenSSL and Go (Terraform) |
//! | `EM_INFRA_PVE_CONNECT_TIMEOUT`, `EM_INFRA_PVE_TIMEOUT` | seconds (default 10 and 30) |

mod error;
pub mod privileges;
mod reason;
pub mod snapshot;
mod tls;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

pub use error::ProxmoxError;
pub use types::{
    NetworkInterface, NodeStatus, NodeStorage, NodeSummary, PciDevice, PciMapEntry, PciMapping,
    PciMappingCheck, StorageConfig, StorageStatus, TaskStatus, Upid, Version, VmConfig,
};

/// One VM or template as `GET /cluster/resources?type=vm` lists it (containers too, `kind`
/// `lxc`: they share the VM ID space).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VmResource {
    pub vmid: u64,
    /// `qemu` for a VM or VM template, `lxc` for a container (left out of `status --json`).
    #[serde(skip)]
    pub kind: String,
    pub name: Option<String>,
    pub node: String,
    /// `running`, `stopped`, … (`unknown` right after creation).
    pub status: String,
    pub template: bool,
    pub tags: Vec<String>,
}

impl VmResource {
    /// A container (LXC), not a VM: it cannot be cloned as a VM template.
    pub fn is_container(&self) -> bool {
        self.kind == "lxc"
    }

    /// `VM 9000` or `CT 101`, as the Proxmox UI names guests.
    pub fn label(&self) -> String {
        let kind = if self.is_container() { "CT" } else { "VM" };
        format!("{kind} {}", self.vmid)
    }
}

/// An API token, `<user>@<realm>!<tokenid>=<secret>`. `Debug` and `Display` show only the ID.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    id: String,
    secret: String,
}

impl ApiToken {
    /// Check the shape; the error names the expected form and never repeats the value.
    pub fn parse(text: &str) -> Result<ApiToken, ProxmoxError> {
        let bad = |why: &str| {
            ProxmoxError::Config(format!(
                "PROXMOX_VE_API_TOKEN is malformed ({why}): expected <user>@<realm>!<tokenid>=<secret>, \
                 e.g. terraform@pve!provider=xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
            ))
        };
        let text = text.trim();
        let text = text.strip_prefix("PVEAPIToken=").unwrap_or(text);
        let (id, secret) = text
            .split_once('=')
            .ok_or_else(|| bad("no '=' before the secret"))?;
        let (user, token_name) = id
            .split_once('!')
            .ok_or_else(|| bad("no '!' before the token ID"))?;
        let (name, realm) = user
            .split_once('@')
            .ok_or_else(|| bad("no '@realm' in the user"))?;
        if name.is_empty() || realm.is_empty() {
            return Err(bad("the user or realm is empty"));
        }
        if token_name.is_empty() {
            return Err(bad("the token ID is empty"));
        }
        if secret.is_empty() {
            return Err(bad("the secret is empty"));
        }
        if id.chars().any(char::is_whitespace) || secret.chars().any(char::is_whitespace) {
            return Err(bad("it contains whitespace"));
        }
        Ok(ApiToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// `user@realm!tokenid` (no secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn header(&self) -> String {
        format!("PVEAPIToken={}={}", self.id, self.secret)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("secret", &crate::runner::REDACTED)
            .finish()
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=[REDACTED]", self.id)
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The system trust store (see [`tls`]): a host with a public (ACME) certificate, or whose
    /// cluster CA was added to this machine's store, as Terraform's provider trusts it.
    SystemStore,
    /// Only this CA (PEM) is trusted: the cluster CA `/etc/pve/pve-root-ca.pem`.
    PinnedCa(PathBuf),
    /// No verification at all (`PROXMOX_VE_INSECURE=true`).
    Insecure,
}

/// Everything a [`Client`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host:8006`, without a trailing slash or `/api2/json`.
    pub endpoint: String,
    pub token: ApiToken,
    pub tls: TlsMode,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Settings {
    /// Read the settings from the environment (see the module documentation).
    pub fn from_env() -> Result<Settings, ProxmoxError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = var("PROXMOX_VE_ENDPOINT").ok_or_else(|| {
            ProxmoxError::Config(
                "PROXMOX_VE_ENDPOINT is not set: export PROXMOX_VE_ENDPOINT=https://<host>:8006/"
                    .into(),
            )
        })?;
        let token = var("PROXMOX_VE_API_TOKEN").ok_or_else(|| {
            ProxmoxError::Config(
                "PROXMOX_VE_API_TOKEN is not set: export PROXMOX_VE_API_TOKEN='<user>@<realm>!<tokenid>=<secret>' \
                 (pveum user token add <user>@<realm> <tokenid>)"
                    .into(),
            )
        })?;
        let tls = match (var("EM_INFRA_PVE_CA_FILE"), insecure_from_env()) {
            (_, true) => TlsMode::Insecure,
            (Some(ca), false) => TlsMode::PinnedCa(PathBuf::from(ca)),
            (None, false) => TlsMode::SystemStore,
        };
        let secs = |name: &str, default: u64| -> Result<Duration, ProxmoxError> {
            match var(name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        ProxmoxError::Config(format!(
                            "{name}={v}: expected a whole number of seconds > 0"
                        ))
                    }),
            }
        };
        Ok(Settings {
            endpoint: normalize_endpoint(&endpoint)?,
            token: ApiToken::parse(&token)?,
            tls,
            connect_timeout: secs("EM_INFRA_PVE_CONNECT_TIMEOUT", 10)?,
            timeout: secs("EM_INFRA_PVE_TIMEOUT", 30)?,
        })
    }
}

/// `https://h:8006/`, `https://h:8006/api2/json/` → `https://h:8006`.
pub fn normalize_endpoint(text: &str) -> Result<String, ProxmoxError> {
    let mut e = text.trim().trim_end_matches('/').to_string();
    if let Some(stripped) = e.strip_suffix("/api2/json") {
        e = stripped.trim_end_matches('/').to_string();
    }
    let rest = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
        .ok_or_else(|| {
            ProxmoxError::Config(format!(
                "PROXMOX_VE_ENDPOINT={text:?} is not a URL: expected https://<host>:8006/"
            ))
        })?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(ProxmoxError::Config(format!(
            "PROXMOX_VE_ENDPOINT={text:?} has no host: expected https://<host>:8006/"
        )));
    }
    Ok(e)
}

/// Whether `PROXMOX_VE_INSECURE` turns certificate verification off (`true`, `1` or `yes`).
/// The front end warns about it once per command that talks to Proxmox.
pub fn insecure_from_env() -> bool {
    std::env::var("PROXMOX_VE_INSECURE")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// What the front end says when [`insecure_from_env`] is true.
pub const INSECURE_WARNING: &str = "PROXMOX_VE_INSECURE is set: the Proxmox server's certificate is NOT verified; \
     pin the cluster CA with EM_INFRA_PVE_CA_FILE instead (copy /etc/pve/pve-root-ca.pem), or add it to the system trust store";

/// The Proxmox VE API client.
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    token: ApiToken,
    /// How long [`Client::wait_task`] sleeps between polls at most.
    poll_max: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Build from `PROXMOX_VE_ENDPOINT`, `PROXMOX_VE_API_TOKEN`, `PROXMOX_VE_INSECURE` and the CA file.
    /// Malformed settings are bad input (exit 2).
    pub fn from_env() -> anyhow::Result<Client> {
        let settings =
            Settings::from_env().map_err(|e| crate::failure::bad_input(e.to_string()))?;
        Client::new(settings).map_err(|e| crate::failure::bad_input(e.to_string()))
    }

    /// Build from explicit settings. Fails when the CA file cannot be read or holds no certificate.
    pub fn new(settings: Settings) -> Result<Client, ProxmoxError> {
        let tls = tls::config(&settings.tls)?;
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global(Some(settings.timeout))
            .user_agent(concat!("em-infra/", env!("CARGO_PKG_VERSION")))
            .max_redirects(0)
            .build();
        // ureq's own chain (TCP, TLS), then the reader of the status line's reason phrase.
        use ureq::unversioned::transport::{Connector, DefaultConnector};
        let agent = ureq::Agent::with_parts(
            config,
            DefaultConnector::new().chain(reason::StatusLineConnector),
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        Ok(Client {
            agent,
            endpoint: settings.endpoint,
            token: settings.token,
            poll_max: Duration::from_secs(2),
        })
    }

    /// `https://host:8006`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `user@realm!tokenid`.
    pub fn token_id(&self) -> &str {
        self.token.id()
    }

    /// Remove the secret from text that came from elsewhere (a server message).
    fn scrub(&self, text: &str) -> String {
        text.replace(&self.token.secret, crate::runner::REDACTED)
    }

    /// `GET /api2/json<path>` → the envelope's `data`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProxmoxError> {
        self.request("GET", path, |url| {
            self.agent
                .get(url)
                .header("Authorization", self.token.header())
                .header("Accept", "application/json")
                .call()
        })
    }

    /// `POST /api2/json<path>` with `params` form-encoded (what PVE's API server reads) → the
    /// envelope's `data`: the task's UPID for the calls that start a task.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T, ProxmoxError> {
        self.request("POST", path, |url| {
            self.agent
                .post(url)
                .header("Authorization", self.token.header())
                .header("Accept", "application/json")
                .send_form(params.iter().copied())
        })
    }

    /// `DELETE /api2/json<path>` (parameters in the query, as PVE takes them) → the envelope's
    /// `data`.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ProxmoxError> {
        self.request("DELETE", path, |url| {
            self.agent
                .delete(url)
                .header("Authorization", self.token.header())
                .header("Accept", "application/json")
                .call()
        })
    }

    /// Send one request (`send` gets the full URL) and read PVE's answer: the envelope's `data`,
    /// or the error with PVE's message.
    fn request<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        send: impl FnOnce(&str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ProxmoxError> {
        let url = format!("{}/api2/json{path}", self.endpoint);
        reason::clear();
        let mut response = send(&url).map_err(|e| self.transport_error(&e))?;
        let status_line_reason = reason::take();
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(32 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| self.transport_error(&e))?;
        let body = self.scrub(&body);
        if !(200..300).contains(&status) {
            // Older PVE 8 hosts give the reason only in the status line (see `reason`).
            let generic = response.status().canonical_reason();
            let status_line_reason = status_line_reason
                .filter(|r| Some(r.as_str()) != generic)
                .map(|r| self.scrub(&r));
            let (message, errors) = error_message(&body, status_line_reason.as_deref());
            return Err(error::from_status(
                method,
                path,
                status,
                &message,
                errors,
                &self.endpoint,
                self.token.id(),
            ));
        }
        serde_json::from_str::<types::Envelope<T>>(&body)
            .map(|e| e.data)
            .map_err(|e| ProxmoxError::Decode {
                path: path.to_string(),
                detail: e.to_string(),
            })
    }

    fn transport_error(&self, e: &ureq::Error) -> ProxmoxError {
        let mapped = error::from_transport(e, &self.endpoint);
        // Transport messages never hold the secret, but be certain.
        match mapped {
            ProxmoxError::Unreachable { endpoint, detail } => ProxmoxError::Unreachable {
                endpoint,
                detail: self.scrub(&detail),
            },
            other => other,
        }
    }

    /// `GET /version`: reachability and token check in one.
    pub fn version(&self) -> Result<Version, ProxmoxError> {
        self.get("/version")
    }

    /// `GET /nodes`.
    pub fn nodes(&self) -> Result<Vec<NodeSummary>, ProxmoxError> {
        self.get("/nodes")
    }

    /// `GET /nodes/{node}/status` (needs `Sys.Audit` on `/nodes/{node}`).
    pub fn node_status(&self, node: &str) -> Result<NodeStatus, ProxmoxError> {
        self.get(&format!("/nodes/{}/status", enc(node)))
    }

    /// Every VM and template the token may see (`VM.Audit`; others are silently left out).
    pub fn cluster_vms(&self) -> anyhow::Result<Vec<VmResource>> {
        Ok(self.vm_resources()?)
    }

    /// [`Client::cluster_vms`] with the typed error.
    pub fn vm_resources(&self) -> Result<Vec<VmResource>, ProxmoxError> {
        let raw: Vec<types::RawVmResource> = self.get("/cluster/resources?type=vm")?;
        Ok(raw.into_iter().map(Into::into).collect())
    }

    /// `GET /nodes/{node}/qemu/{vmid}/config`.
    pub fn vm_config(&self, node: &str, vmid: u64) -> Result<VmConfig, ProxmoxError> {
        self.get(&format!("/nodes/{}/qemu/{vmid}/config", enc(node)))
    }

    /// `GET /nodes/{node}/storage/{storage}/status`.
    pub fn storage_status(&self, node: &str, storage: &str) -> Result<StorageStatus, ProxmoxError> {
        self.get(&format!(
            "/nodes/{}/storage/{}/status",
            enc(node),
            enc(storage)
        ))
    }

    /// `GET /storage`: every storage definition the token may see (`disable`, `nodes`).
    pub fn storage_config(&self) -> Result<Vec<StorageConfig>, ProxmoxError> {
        self.get("/storage")
    }

    /// `GET /nodes/{node}/storage?content=images`: the storages on `node` that take VM disks.
    pub fn image_storages(&self, node: &str) -> Result<Vec<NodeStorage>, ProxmoxError> {
        self.get(&format!("/nodes/{}/storage?content=images", enc(node)))
    }

    /// Whether VM ID `vmid` is free cluster-wide, asked with `GET /cluster/nextid?vmid=N`. Unlike
    /// `/cluster/resources`, this sees every guest, also those the token may not audit (it reads
    /// pmxcfs' VM list unfiltered; `user => 'all'`): PVE answers the ID when it is free and a 400
    /// parameter error `{"vmid": "VM N already exists"}` when a VM or container has it
    /// (pve-manager `PVE/API2/Cluster.pm` `nextid`).
    pub fn vmid_free(&self, vmid: u64) -> Result<bool, ProxmoxError> {
        match self.get::<serde_json::Value>(&format!("/cluster/nextid?vmid={vmid}")) {
            Ok(_) => Ok(true),
            Err(e)
                if e.param_error("vmid")
                    .is_some_and(|m| m.contains("already exists")) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /nodes/{node}/network` (bridges the token may not use are hidden).
    pub fn network(&self, node: &str) -> Result<Vec<NetworkInterface>, ProxmoxError> {
        self.get(&format!("/nodes/{}/network", enc(node)))
    }

    /// `GET /cluster/mapping/pci`.
    pub fn pci_mappings(&self) -> Result<Vec<PciMapping>, ProxmoxError> {
        self.get("/cluster/mapping/pci")
    }

    /// `GET /cluster/mapping/pci?check-node={node}`: the mappings, each with the host's check of
    /// `node`'s entries against that node's hardware (`checks`). PVE proxies the request to
    /// `node`; listing needs no more than the plain call.
    pub fn pci_mappings_checked(&self, node: &str) -> Result<Vec<PciMapping>, ProxmoxError> {
        self.get(&format!("/cluster/mapping/pci?check-node={}", enc(node)))
    }

    /// `GET /nodes/{node}/hardware/pci` (needs `Sys.Audit` on `/`).
    pub fn node_pci_devices(&self, node: &str) -> Result<Vec<PciDevice>, ProxmoxError> {
        self.get(&format!("/nodes/{}/hardware/pci", enc(node)))
    }

    /// `GET /access/permissions?path=P`: the privileges the token holds on `path`, with
    /// propagation and, for a privilege-separated token, the intersection with its user already
    /// applied by PVE (pve-access-control `API2/AccessControl.pm` `permissions`, identical on 8
    /// and 9). Every token may read its own; the answer is `{"P": {"<priv>": 0|1, …}}`.
    pub fn permissions(&self, path: &str) -> Result<BTreeSet<String>, ProxmoxError> {
        let answer: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
            self.get(&format!("/access/permissions?path={}", enc(path)))?;
        Ok(answer
            .get(path)
            .map(|privs| privs.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`.
    pub fn task_status(&self, node: &str, upid: &str) -> Result<TaskStatus, ProxmoxError> {
        if Upid::parse(upid).is_none() {
            return Err(ProxmoxError::InvalidUpid(upid.to_string()));
        }
        self.get(&format!("/nodes/{}/tasks/{}/status", enc(node), enc(upid)))
    }

    /// Poll a task until it stops; `Ok` when its exit status is `OK` (or `WARNINGS: n`), else the
    /// exit status as an error (a lock timeout becomes [`ProxmoxError::Locked`]). A 400 right after
    /// the task started ("no such task") is retried.
    pub fn wait_task(
        &self,
        node: &str,
        upid: &str,
        timeout: Duration,
    ) -> Result<TaskStatus, ProxmoxError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            match self.task_status(node, upid) {
                Ok(status) if status.stopped() => {
                    if status.succeeded() {
                        return Ok(status);
                    }
                    let exit = status
                        .exitstatus
                        .unwrap_or_else(|| "(no exit status)".into());
                    if let Some(what) = error::lock_holder(&exit) {
                        return Err(ProxmoxError::Locked {
                            what,
                            message: exit,
                        });
                    }
                    return Err(ProxmoxError::TaskFailed {
                        upid: upid.to_string(),
                        exitstatus: exit,
                    });
                }
                Ok(_) => {}
                Err(ProxmoxError::Status { status: 400, .. })
                    if started.elapsed() < Duration::from_secs(10) => {}
                Err(e) => return Err(e),
            }
            if started.elapsed() >= timeout {
                return Err(ProxmoxError::TaskTimeout {
                    upid: upid.to_string(),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            std::thread::sleep(delay.min(timeout.saturating_sub(started.elapsed())));
            delay = (delay * 2).min(self.poll_max);
        }
    }
}

/// The reason PVE gives for an error and its per-parameter reasons: the body's `message` (PVE ≥
/// 8.4), else the status line's reason phrase, else a body that is no JSON; `errors` from the
/// body (`{"errors": {"vmid": "VM 9110 already exists"}}`, on every PVE 8 and 9 host).
fn error_message(body: &str, status_line: Option<&str>) -> (String, BTreeMap<String, String>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        let text =
            status_line.map_or_else(|| body.trim().chars().take(300).collect(), str::to_string);
        return (text, BTreeMap::new());
    };
    let message = value
        .get("message")
        .and_then(|m| m.as_str())
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .or_else(|| status_line.map(str::to_string))
        .unwrap_or_default();
    let errors = value
        .get("errors")
        .and_then(|e| e.as_object())
        .map(|errors| {
            errors
                .iter()
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), text.trim().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    (message, errors)
}

/// Percent-encode one path segment (node names, storage IDs and UPIDs are mostly safe already).
fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize() {
        for text in [
            "https://pve:8006",
            "https://pve:8006/",
            "https://pve:8006/api2/json",
            "https://pve:8006/api2/json/",
            " https://pve:8006// ",
        ] {
            assert_eq!(
                normalize_endpoint(text).unwrap(),
                "https://pve:8006",
                "{text}"
            );
        }
        for bad in ["pve:8006", "https://", "ftp://pve", ""] {
            assert!(normalize_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_parse_without_leaking() {
        let t = ApiToken::parse("terraform@pve!provider=0f3c9a4e-secret-value").unwrap();
        assert_eq!(t.id(), "terraform@pve!provider");
        assert!(!format!("{t:?}").contains("secret-value"));
        assert!(!t.to_string().contains("secret-value"));
        assert_eq!(
            t.header(),
            "PVEAPIToken=terraform@pve!provider=0f3c9a4e-secret-value"
        );
        for bad in [
            "terraform@pve!provider",
            "terraform@pve=s3cretvalue",
            "terraform!provider=s3cretvalue",
            "@pve!x=s3cretvalue",
            "terraform@pve!=s3cretvalue",
            "terraform@pve!provider=",
        ] {
            let err = ApiToken::parse(bad).unwrap_err().to_string();
            assert!(err.contains("<user>@<realm>!<tokenid>=<secret>"), "{err}");
            assert!(!err.contains("s3cretvalue"), "{err}");
        }
    }

    #[test]
    fn client_debug_hides_the_secret() {
        let client = Client::new(Settings {
            endpoint: "https://127.0.0.1:8006".into(),
            token: ApiToken::parse("a@pam!b=topsecretvalue").unwrap(),
            tls: TlsMode::SystemStore,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        let debug = format!("{client:?}");
        assert!(
            debug.contains("a@pam!b") && !debug.contains("topsecretvalue"),
            "{debug}"
        );
        assert_eq!(client.scrub("x topsecretvalue y"), "x [REDACTED] y");
    }

    #[test]
    fn error_messages_from_bodies() {
        let text = |body: &str, line: Option<&str>| {
            let (m, e) = error_message(body, line);
            (m, e.into_iter().collect::<Vec<_>>())
        };
        assert_eq!(
            text(
                r#"{"data":null,"message":"can't lock file '/var/lock/qemu-server/lock-9100.conf' - got timeout\n"}"#,
                Some("can't lock file '/var/lock/qemu-server/lock-9100.conf' - got timeout")
            )
            .0,
            "can't lock file '/var/lock/qemu-server/lock-9100.conf' - got timeout"
        );
        // PVE 8 before libpve-http-server-perl 5.2.0: the reason only in the status line.
        assert_eq!(
            text(
                r#"{"data":null,"errors":{"vmid":"VM 9110 already exists"}}"#,
                Some("Parameter verification failed.")
            ),
            (
                "Parameter verification failed.".to_string(),
                vec![("vmid".to_string(), "VM 9110 already exists".to_string())]
            )
        );
        assert_eq!(
            text(r#"{"data":null}"#, Some("VM 9000 is locked (clone)")).0,
            "VM 9000 is locked (clone)"
        );
        assert_eq!(text(r#"{"data":null}"#, None).0, "");
        assert_eq!(text("plain text", None).0, "plain text");
    }

    #[test]
    fn path_segments_encode() {
        assert_eq!(
            enc("UPID:pve:00061CB3:010BA69C:64EFECB0:qmcreate:101:em@pve!ci:"),
            "UPID:pve:00061CB3:010BA69C:64EFECB0:qmcreate:101:em@pve!ci:"
        );
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
    }
}
