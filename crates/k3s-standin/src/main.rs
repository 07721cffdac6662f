//! `k3s-standin`: a **stand-in for the k3s binary, used only in tests. It is NOT k3s** and runs no
//! Kubernetes at all.
//!
//! em-infra's lab tests install this program as `/usr/local/bin/k3s` on systemd-nspawn hosts
//! (through the `k3s_binary` role's air-gapped local-file path) because the real k3s release
//! cannot be downloaded in CI and needs a real kernel/cgroup setup. It honours the parts of k3s's
//! command line, file and process contract that the Ansible roles (and other tools written against
//! real k3s, such as the official k3s-ansible playbooks) rely on:
//!
//! * Options come from the command line, `/etc/rancher/k3s/config.yaml` (or `--config`,
//!   `$K3S_CONFIG_FILE`) plus `config.yaml.d/*.yaml` drop-ins, and `K3S_*` environment variables,
//!   merged as k3s merges them ([`cli`]); unknown flags fail with Go's flag error.
//! * `k3s server` keeps a cluster CA (`server/tls/server-ca.crt`), writes the full token
//!   `K10<sha256 of that CA>::server:<password>` to `/var/lib/rancher/k3s/server/token` (with
//!   `node-token` and `agent-token` links) and `/etc/rancher/k3s/k3s.yaml`, registers itself as a
//!   node with the control-plane role labels, listens on `0.0.0.0:6443` (a line protocol, not
//!   HTTPS) where it serves the CA bundle to anyone (`/cacerts`) and registers agents that present
//!   the password, persists nodes in `server/standin-nodes.json`, and tells systemd `READY=1`.
//! * `k3s agent --server URL --token T` (or `K3S_URL`/`K3S_TOKEN`/`K3S_TOKEN_FILE`, or config)
//!   checks the server's CA bundle against the token's CA hash and keeps refusing a server that
//!   does not match, joins unpinned with k3s's warning on a short token, registers, then tells
//!   systemd `READY=1` and heartbeats; a host whose node password differs from the one the server
//!   holds for its name is refused ("Node password rejected") until the node is deleted.
//! * Both write `standin-runtime.json` (what they saw: token source, CA pinning, proxy
//!   environment, air-gap images, registries.yaml) for tests.
//! * `k3s kubectl get nodes [-o json]` and `k3s kubectl delete node NAME...` (also as `kubectl`).
//! * `k3s completion bash|zsh [-i]` prints (or installs) the shell completion script.
//! * SIGTERM/SIGINT stop the process cleanly (exit 0).
//!
//! To run the same lab test against a REAL k3s binary, set `EM_INFRA_TEST_K3S_BINARY=/path/to/k3s`
//! and `EM_INFRA_TEST_K3S_SHA256=<sha256 of that file>` (see `crates/em-infra/tests/it/ansible_lab.rs`).

mod agent;
mod cli;
mod completion;
mod config;
mod flags;
mod json;
mod kubectl;
mod nodes;
mod record;
mod server;
mod sys;
mod token;

/// The k3s version the stand-in claims (kubeletVersion, `--version`); override at build time with
/// `K3S_STANDIN_VERSION`. Keep it equal to `k3s_version` in `ansible/group_vars/all.yml`.
pub const VERSION: &str = match option_env!("K3S_STANDIN_VERSION") {
    Some(v) => v,
    None => "v1.33.5+k3s1",
};

fn usage() -> String {
    format!(
        "k3s-standin {VERSION}: a test STAND-IN for k3s (NOT k3s)\n\n\
         usage:\n  k3s server [flags]\n  k3s agent [flags]\n  \
         k3s kubectl [--kubeconfig FILE] get nodes [-o json]\n  \
         k3s kubectl [--kubeconfig FILE] delete node NAME... [--ignore-not-found]\n  \
         k3s completion bash|zsh [-i]\n  k3s --version\n\n\
         flags: k3s's own (see `k3s server --help` of the real k3s); config from \
         /etc/rancher/k3s/config.yaml and config.yaml.d/, K3S_* environment variables\n"
    )
}

fn main() {
    let argv0 = std::env::args().next().unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // k3s is a multi-call binary: install.sh links kubectl (and crictl, ctr) to it.
    if std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        == Some("kubectl")
    {
        std::process::exit(kubectl::run(&args));
    }
    let code = match args.first().map(String::as_str) {
        Some("--version" | "-v" | "version") => {
            println!("k3s version {VERSION} (em-infra-k3s-standin)");
            println!("go version none: this is em-infra's k3s STAND-IN for tests, NOT k3s");
            0
        }
        Some("server") => server::run(&args[1..]),
        Some("agent") => agent::run(&args[1..]),
        Some("kubectl") => kubectl::run(&args[1..]),
        Some("completion") => completion::run(&args[1..]),
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
