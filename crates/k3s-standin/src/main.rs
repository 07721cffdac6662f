//! `k3s-standin`: a **stand-in for the k3s binary, used only in tests. It is NOT k3s** and runs no
//! Kubernetes at all.
//!
//! em-infra's lab test installs this program as `/usr/local/bin/k3s` on systemd-nspawn hosts
//! (through the `k3s_binary` role's air-gapped local-file path) because the real k3s release
//! cannot be downloaded in CI and needs a real kernel/cgroup setup. It honours the parts of k3s's
//! file and process contract the Ansible roles rely on:
//!
//! * `k3s server` reads `/etc/rancher/k3s/config.yaml` (`token`, `node-ip`, `node-name`,
//!   `node-label`, `tls-san`, `write-kubeconfig-mode`, `https-listen-port`), writes
//!   `/var/lib/rancher/k3s/server/token` (`K10<hash>::server:<token>`) and `/etc/rancher/k3s/k3s.yaml`
//!   (server `https://127.0.0.1:6443`, cluster/context/user `default`, fake cert data), registers
//!   itself as a node with the control-plane role labels, listens on `0.0.0.0:6443` (a line protocol,
//!   not HTTPS), accepts agents only with the right token, persists nodes in
//!   `/var/lib/rancher/k3s/server/standin-nodes.json`, and tells systemd `READY=1` (`Type=notify`).
//! * `k3s agent` reads `server`, `token`, `node-ip`, `node-name`, `node-label`, retries until the
//!   server answers (as k3s does), exits non-zero with a k3s-like fatal line on a wrong token,
//!   refuses (retrying) when another host's node password holds its name, then re-registers
//!   every few seconds as its heartbeat.
//! * `k3s kubectl delete node NAME... [--ignore-not-found]` removes agent nodes.
//! * `k3s kubectl get nodes [-o json]` prints a `v1` NodeList (names, labels, Ready condition,
//!   `nodeInfo.kubeletVersion`, allocatable cpu/memory/pods) from the running server.
//! * SIGTERM/SIGINT stop the process cleanly (exit 0).
//!
//! To run the same lab test against a REAL k3s binary, set `EM_INFRA_TEST_K3S_BINARY=/path/to/k3s`
//! and `EM_INFRA_TEST_K3S_SHA256=<sha256 of that file>` (see `crates/em-infra/tests/ansible_lab.rs`).

mod agent;
mod config;
mod json;
mod kubectl;
mod nodes;
mod server;
mod sys;

/// The k3s version the stand-in claims (kubeletVersion, `--version`); override at build time with
/// `K3S_STANDIN_VERSION`. Keep it equal to `k3s_version` in `ansible/group_vars/all.yml`.
pub const VERSION: &str = match option_env!("K3S_STANDIN_VERSION") {
    Some(v) => v,
    None => "v1.33.5+k3s1",
};

pub const CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";

fn usage() -> String {
    format!(
        "k3s-standin {VERSION}: a test STAND-IN for k3s (NOT k3s)\n\n\
         usage:\n  k3s server [--config FILE]\n  k3s agent [--config FILE]\n  \
         k3s kubectl [--kubeconfig FILE] get nodes [-o json]\n  k3s --version\n"
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("--version" | "-v" | "version") => {
            println!("k3s version {VERSION} (em-infra-k3s-standin)");
            println!("go version none: this is em-infra's k3s STAND-IN for tests, NOT k3s");
            0
        }
        Some("server") => server::run(&args[1..]),
        Some("agent") => agent::run(&args[1..]),
        Some("kubectl") => kubectl::run(&args[1..]),
        Some("--help" | "-h" | "help") | None => {
            print!("{}", usage());
            0
        }
        Some(other) => {
            eprint!("k3s-standin: unsupported command {other:?}\n\n{}", usage());
            2
        }
    };
    std::process::exit(code);
}

/// Reads `--config FILE` / `-c FILE` (default [`CONFIG_PATH`]) and parses it; a missing file is an
/// empty config, as with k3s.
pub fn load_config(args: &[String]) -> Result<config::Config, String> {
    let mut path = CONFIG_PATH.to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" || a == "-c" {
            path = it.next().ok_or("--config needs a value")?.clone();
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = p.to_string();
        } else {
            return Err(format!(
                "unsupported flag {a:?} (the stand-in reads {CONFIG_PATH} only)"
            ));
        }
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => config::Config::parse(&text).map_err(|e| format!("{path}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(config::Config::default()),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

/// Extracts the password part of a k3s token: `K10<hash>::<user>:<password>` → `<password>`;
/// a short token is the password itself.
pub fn token_password(token: &str) -> &str {
    match token
        .strip_prefix("K10")
        .and_then(|rest| rest.split_once("::"))
    {
        Some((_, creds)) => creds.split_once(':').map(|(_, p)| p).unwrap_or(creds),
        None => token,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_password_accepts_short_and_secure_forms() {
        assert_eq!(super::token_password("abc"), "abc");
        assert_eq!(super::token_password("K10deadbeef::server:abc"), "abc");
        assert_eq!(super::token_password("K10deadbeef::abc"), "abc");
    }
}
