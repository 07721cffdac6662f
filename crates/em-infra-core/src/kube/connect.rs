//! Reading the kubeconfig, building the client, and turning kube-rs errors into sentences.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ::kube::api::{ListParams, ObjectList};
use ::kube::config::{KubeConfigOptions, Kubeconfig as RawKubeconfig};
use ::kube::{Api, Client, Config};
use k8s_openapi::api::core::v1::Node;

use crate::failure::bad_input;

/// The fix for a missing kubeconfig.
const CONFIGURE_HINT: &str = "configure writes it: run `em-infra up --only configure`";

/// A kubeconfig read from disk (not yet connected).
pub(super) struct Kubeconfig {
    path: PathBuf,
    raw: RawKubeconfig,
}

impl Kubeconfig {
    /// Read `path`. Missing, unreadable or unparsable → `BadInput` naming the file and the fix.
    pub(super) fn load(path: &Path) -> anyhow::Result<Kubeconfig> {
        if !path.is_file() {
            return Err(bad_input(format!(
                "no kubeconfig at {}: {CONFIGURE_HINT}",
                path.display()
            )));
        }
        let raw = RawKubeconfig::read_from(path).map_err(|err| {
            bad_input(format!(
                "cannot read the kubeconfig {}: {err}; {CONFIGURE_HINT} again",
                path.display()
            ))
        })?;
        Ok(Kubeconfig {
            path: path.to_path_buf(),
            raw,
        })
    }

    /// A client for the kubeconfig's current context, with `timeout` on connect and on each read.
    pub(super) async fn client(&self, timeout: Duration) -> anyhow::Result<KubeClient> {
        self.client_with(timeout, true).await
    }

    /// [`Kubeconfig::client`], choosing whether kube retries 429/503/504 itself. A caller that
    /// owns the retrying (a drain waiting on a PodDisruptionBudget's 429s, within its own
    /// deadline) turns it off.
    pub(super) async fn client_with(
        &self,
        timeout: Duration,
        default_retry: bool,
    ) -> anyhow::Result<KubeClient> {
        let mut config =
            Config::from_custom_kubeconfig(self.raw.clone(), &KubeConfigOptions::default())
                .await
                .map_err(|err| {
                    bad_input(format!(
                        "the kubeconfig {} is not usable: {err}; {CONFIGURE_HINT} again",
                        self.path.display()
                    ))
                })?;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        config.reset_reader_on_write = true;
        config.default_retry = default_retry;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let client = Client::try_from(config).map_err(|err| {
            anyhow::anyhow!(
                "cannot build a Kubernetes client from {}: {err}",
                self.path.display()
            )
        })?;
        Ok(KubeClient { client, server })
    }
}

/// A connected client and the server URL its errors name.
pub(super) struct KubeClient {
    pub(super) client: Client,
    pub(super) server: String,
}

impl KubeClient {
    pub(super) async fn list_nodes(&self) -> anyhow::Result<Vec<Node>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let list: ObjectList<Node> = api
            .list(&ListParams::default())
            .await
            .map_err(|err| self.explain(err, "listing nodes"))?;
        Ok(list.items)
    }

    /// A kube-rs error as a sentence: what was being done, against which server, why, and the fix.
    pub(super) fn explain(&self, err: ::kube::Error, doing: &str) -> anyhow::Error {
        let server = &self.server;
        match &err {
            ::kube::Error::Api(status) => {
                let code = status.code;
                let message = status.message.trim();
                let hint = match code {
                    401 => {
                        "the kubeconfig's credentials were rejected (was the cluster recreated?); \
                         fetch a fresh kubeconfig with `em-infra up --only configure`"
                    }
                    // RBAC says `User "x" cannot list resource …`; admission refusals do not.
                    403 if message.contains(" cannot ") => {
                        "the kubeconfig's user lacks this permission; use the cluster-admin kubeconfig configure fetched"
                    }
                    _ => "",
                };
                let mut text =
                    format!("{doing}: the Kubernetes API at {server} answered {code}: {message}");
                if !hint.is_empty() {
                    text.push_str("; ");
                    text.push_str(hint);
                }
                anyhow::anyhow!(text)
            }
            _ => {
                let chain = error_chain(&err);
                let lower = chain.to_lowercase();
                let hint = if lower.contains("connection refused") {
                    "nothing listens there: is k3s running on the control plane (`systemctl status k3s`) \
                     and does the kubeconfig name the right address?"
                } else if lower.contains("timed out") || lower.contains("timeout") {
                    "no answer in time: check the control plane VM is running and port 6443 is reachable"
                } else if lower.contains("certificate") || lower.contains("tls") {
                    "TLS failed: the kubeconfig's CA does not match the server (cluster recreated?); \
                     fetch a fresh one with `em-infra up --only configure`"
                } else if lower.contains("dns") || lower.contains("resolve") {
                    "the server name does not resolve; the kubeconfig should name the control plane's IP"
                } else {
                    ""
                };
                let mut text =
                    format!("{doing}: cannot reach the Kubernetes API at {server}: {chain}");
                if !hint.is_empty() {
                    text.push_str("; ");
                    text.push_str(hint);
                }
                anyhow::anyhow!(text)
            }
        }
    }
}

/// True for an API answer with HTTP status `code`.
pub(super) fn is_status(err: &::kube::Error, code: u16) -> bool {
    matches!(err, ::kube::Error::Api(status) if status.code == code)
}

/// An error and its causes on one line, without repeating a cause already in the text.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
