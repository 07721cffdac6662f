//! `k3s agent`: waits for the server, registers with the token, then heartbeats.

use crate::json::Json;
use crate::sys::{self, log};
use std::time::Duration;

/// `https://host:port` → `host:port` (IPv6 literals keep their brackets).
pub(crate) fn server_addr(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("server URL must start with https://, got {url:?}"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    if hostport.is_empty() {
        return Err(format!("server URL has no host: {url:?}"));
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

pub(crate) fn run(args: &[String]) -> i32 {
    sys::install_signal_handlers();
    let cfg = match crate::load_config(args) {
        Ok(c) => c,
        Err(e) => {
            log("fatal", &e);
            return 1;
        }
    };
    let Some(url) = cfg.get("server").map(str::to_string) else {
        log(
            "fatal",
            "Error: --server is required (config.yaml `server:` or K3S_URL)",
        );
        return 1;
    };
    let Some(token) = cfg
        .get("token")
        .filter(|t| !t.is_empty())
        .map(str::to_string)
    else {
        log(
            "fatal",
            "Error: --token is required (config.yaml `token:` or K3S_TOKEN)",
        );
        return 1;
    };
    let addr = match server_addr(&url) {
        Ok(a) => a,
        Err(e) => {
            log("fatal", &e);
            return 1;
        }
    };
    log(
        "info",
        &format!(
            "Starting k3s agent {} (em-infra k3s STAND-IN, NOT k3s)",
            crate::VERSION
        ),
    );
    crate::server::ensure_node_password();
    let _ = std::fs::create_dir_all("/var/lib/rancher/k3s/agent");
    let name = cfg
        .get("node-name")
        .map(str::to_string)
        .unwrap_or_else(sys::hostname);
    let labels = Json::Obj(
        cfg.labels()
            .into_iter()
            .map(|(k, v)| (k, Json::str(v)))
            .collect(),
    );
    let node_password = std::fs::read_to_string(crate::server::NODE_PASSWORD).unwrap_or_default();
    let mut registered = false;
    while !sys::stopping() {
        let ip = cfg
            .get("node-ip")
            .map(str::to_string)
            .unwrap_or_else(|| local_ip_towards(&addr));
        let req = Json::obj([
            ("op", Json::str("register")),
            ("token", Json::str(&token)),
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
        match crate::server::request(&addr, &req, Duration::from_secs(5)) {
            Ok(reply) if matches!(reply.get("ok"), Some(Json::Bool(true))) => {
                if !registered {
                    log(
                        "info",
                        &format!("Successfully registered node {name} with https://{addr}"),
                    );
                    sys::sd_notify("READY=1");
                    registered = true;
                }
                if !sys::sleep_unless_stopping(Duration::from_secs(5)) {
                    break;
                }
            }
            Ok(reply) if matches!(reply.get("retry"), Some(Json::Bool(true))) => {
                // Like k3s: log and keep trying (an admin may delete the stale node meanwhile).
                let why = reply
                    .get("error")
                    .and_then(Json::as_str)
                    .unwrap_or("rejected");
                log(
                    "error",
                    &format!("Failed to register node {name} with https://{addr}: {why}"),
                );
                registered = false;
                if !sys::sleep_unless_stopping(Duration::from_secs(5)) {
                    break;
                }
            }
            Ok(reply) => {
                let why = reply
                    .get("error")
                    .and_then(Json::as_str)
                    .unwrap_or("rejected");
                log(
                    "fatal",
                    &format!(
                        "Error: failed to validate connection to cluster at https://{addr}: token rejected by server: {why}"
                    ),
                );
                return 1;
            }
            Err(e) => {
                let state = if registered {
                    "Lost connection to server"
                } else {
                    "Waiting to retrieve agent configuration; server is not ready"
                };
                log("info", &format!("{state}: https://{addr}: {e}"));
                registered = false;
                if !sys::sleep_unless_stopping(Duration::from_secs(2)) {
                    break;
                }
            }
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
