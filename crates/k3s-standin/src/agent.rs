//! `k3s agent`: checks the server against the token's CA hash, registers, then heartbeats.
//!
//! The phases and messages follow k3s' agent (`pkg/agent/run.go` createProxyAndValidateToken,
//! `pkg/agent/config` Get): the token is validated against the server's `/cacerts` first, retried
//! every 2 s with "Failed to validate connection to cluster at …" (a CA hash mismatch never
//! passes); then the agent asks for its configuration, retried every 5 s with "Waiting to retrieve
//! agent configuration; server is not ready: …" (a wrong password is a 401 there); once
//! registered it logs "k3s agent is up and running" and tells systemd READY=1 (`Type=notify`).

use crate::cli;
use crate::flags::Command;
use crate::json::Json;
use crate::sys::{self, log};
use crate::{record, token};
use std::time::Duration;

const AGENT_DIR: &str = "/var/lib/rancher/k3s/agent";

/// `https://host:port` → `host:port` (IPv6 literals keep their brackets).
pub(crate) fn server_addr(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("only https:// URLs are supported, invalid scheme: {url}"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    if hostport.is_empty() {
        return Err(format!("Invalid server url, failed to parse: {url}"));
    }
    let has_port = if hostport.starts_with('[') {
        hostport.contains("]:")
    } else {
        hostport.contains(':')
    };
    Ok(if has_port {
        hostport.to_string()
    } else {
        format!("{hostport}:6443")
    })
}

/// `ParseAndValidateToken`: parse the token, fetch the server's CA bundle, check the hash.
fn validate(url: &str, raw_token: &str) -> Result<token::CaCheck, String> {
    let parsed = token::parse(raw_token)?;
    let addr = server_addr(url)?;
    let reply = crate::server::request(
        &addr,
        &Json::obj([("op", Json::str("cacerts"))]),
        Duration::from_secs(5),
    )
    .map_err(|e| format!("failed to get CA certs: Get \"{url}/cacerts\": {e}"))?;
    let ca = reply
        .get("cacerts")
        .and_then(Json::as_str)
        .ok_or_else(|| format!("failed to get CA certs: {url}/cacerts: no CA bundle in reply"))?;
    token::check_ca(&parsed, ca.as_bytes())
}

fn fatal(msg: &str) -> i32 {
    log("fatal", &format!("Error: {msg}"));
    1
}

pub(crate) fn run(args: &[String]) -> i32 {
    sys::install_signal_handlers();
    let opts = match cli::parse(Command::Agent, args) {
        Ok(o) => o,
        Err(e) => return fatal(&e),
    };
    if let Some(d) = opts
        .get("data-dir")
        .filter(|d| d.trim_end_matches('/') != crate::server::DATA_DIR)
    {
        return fatal(&format!(
            "data-dir {d}: the k3s stand-in supports only the default {}",
            crate::server::DATA_DIR
        ));
    }
    let (raw_token, token_source) = match cli::token(&opts) {
        Ok(Some(t)) => t,
        Ok(None) => return fatal("--token is required"),
        Err(e) => return fatal(&e),
    };
    let Some(url) = opts
        .get("server")
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_string())
    else {
        return fatal("--server is required");
    };
    log(
        "info",
        &format!(
            "Starting k3s agent {} (em-infra k3s STAND-IN, NOT k3s)",
            crate::VERSION
        ),
    );
    crate::server::ensure_node_password();
    let _ = std::fs::create_dir_all(AGENT_DIR);

    let ca_check = loop {
        if sys::stopping() {
            return 0;
        }
        match validate(&url, &raw_token) {
            Ok(check) => break check,
            Err(e) => {
                log(
                    "error",
                    &format!("Failed to validate connection to cluster at {url}: {e}"),
                );
                if !sys::sleep_unless_stopping(Duration::from_secs(2)) {
                    return 0;
                }
            }
        }
    };
    if let token::CaCheck::Unpinned(warning) = &ca_check {
        log("warning", warning);
    }
    let Ok(addr) = server_addr(&url) else {
        return fatal(&format!("Invalid server url, failed to parse: {url}"));
    };

    let name = opts
        .get("node-name")
        .map(str::to_string)
        .unwrap_or_else(sys::hostname);
    let labels = Json::Obj(
        opts.labels()
            .into_iter()
            .map(|(k, v)| (k, Json::str(v)))
            .collect(),
    );
    let node_password = std::fs::read_to_string(crate::server::NODE_PASSWORD).unwrap_or_default();
    let mut registered = false;
    while !sys::stopping() {
        let ip = opts
            .list("node-ip")
            .first()
            .cloned()
            .unwrap_or_else(|| local_ip_towards(&addr));
        let req = Json::obj([
            ("op", Json::str("register")),
            ("token", Json::str(&raw_token)),
            ("name", Json::str(&name)),
            ("ip", Json::str(ip)),
            ("labels", labels.clone()),
            ("arch", Json::str(sys::arch())),
            ("cpu", Json::Num(sys::cpu_count() as f64)),
            ("memoryKiB", Json::Num(sys::mem_total_kib() as f64)),
            ("kernel", Json::str(sys::kernel_version())),
            ("osImage", Json::str(sys::os_image())),
            ("nodePassword", Json::str(node_password.trim())),
        ]);
        let wait = match crate::server::request(&addr, &req, Duration::from_secs(5)) {
            Ok(reply) if matches!(reply.get("ok"), Some(Json::Bool(true))) => {
                if !registered {
                    log(
                        "info",
                        &format!("Successfully registered node {name} with {url}"),
                    );
                    log("info", "k3s agent is up and running");
                    let _ = record::write(
                        &format!("{AGENT_DIR}/standin-runtime.json"),
                        vec![
                            ("command", Json::str("agent")),
                            ("server", Json::str(&url)),
                            ("tokenSource", Json::str(token_source)),
                            (
                                "caHashVerified",
                                Json::Bool(ca_check == token::CaCheck::Pinned),
                            ),
                            ("proxyEnv", record::proxy_env()),
                            (
                                "images",
                                Json::Arr(record::images().into_iter().map(Json::str).collect()),
                            ),
                            (
                                "registries",
                                Json::Bool(
                                    std::path::Path::new(
                                        opts.get("private-registry")
                                            .unwrap_or(crate::server::REGISTRIES),
                                    )
                                    .exists(),
                                ),
                            ),
                        ],
                    );
                    sys::sd_notify("READY=1");
                    registered = true;
                }
                5
            }
            Ok(reply) => {
                // Like k3s: log and keep trying (an admin may fix the token or delete a stale
                // node meanwhile).
                let why = reply
                    .get("error")
                    .and_then(Json::as_str)
                    .unwrap_or("rejected");
                let why = if why == "401 Unauthorized" {
                    format!("{url}/v1-k3s/config: {why}")
                } else {
                    why.to_string()
                };
                log(
                    "info",
                    &format!("Waiting to retrieve agent configuration; server is not ready: {why}"),
                );
                registered = false;
                5
            }
            Err(e) => {
                let state = if registered {
                    "Lost connection to server"
                } else {
                    "Waiting to retrieve agent configuration; server is not ready"
                };
                log("info", &format!("{state}: {url}: {e}"));
                registered = false;
                2
            }
        };
        if !sys::sleep_unless_stopping(Duration::from_secs(wait)) {
            break;
        }
    }
    log(
        "info",
        "Received SIGTERM, shutting down the k3s stand-in agent",
    );
    0
}

/// The source address the kernel would use to reach the server (UDP connect sends nothing).
fn local_ip_towards(addr: &str) -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect(addr)?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addr_parses_k3s_urls() {
        assert_eq!(
            server_addr("https://10.231.0.11:6443").unwrap(),
            "10.231.0.11:6443"
        );
        assert_eq!(
            server_addr("https://cp.example/").unwrap(),
            "cp.example:6443"
        );
        assert_eq!(
            server_addr("https://[fd00::1]:6443").unwrap(),
            "[fd00::1]:6443"
        );
        assert!(server_addr("http://x:6443").is_err());
    }
}
