//! Errors of the Proxmox client, translated for people: each says what happened and what to do.
//! None of them ever holds the API token's secret (messages from the server are scrubbed too).

use std::collections::BTreeMap;

/// Everything that can go wrong talking to the Proxmox VE API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxmoxError {
    /// The settings in the environment are missing or malformed.
    #[error("{0}")]
    Config(String),

    /// HTTP 401.
    #[error(
        "the API token was rejected (wrong or expired): check PROXMOX_VE_API_TOKEN (token {token_id})"
    )]
    Unauthorized { token_id: String },

    /// HTTP 403: `acl_path` and `privilege` come from PVE's "Permission check failed (<path>, <priv>)".
    /// PVE's own message is repeated only when it did not name the privilege.
    #[error("permission denied on {path}: the token lacks {} on {acl_path}{}",
        privilege.as_deref().unwrap_or("a privilege"),
        if message.is_empty() || privilege.is_some() { String::new() } else { format!(" ({message})") })]
    Forbidden {
        path: String,
        acl_path: String,
        privilege: Option<String>,
        message: String,
        token_id: String,
    },

    /// HTTP 500 "can't lock file …" / "got timeout" / "VM n is locked".
    #[error(
        "another task holds the lock on {what}; retry when it has finished or wait ({message})"
    )]
    Locked { what: String, message: String },

    /// Connection refused, DNS, timeout, or PVE's 595 (a node unreachable from the one asked).
    #[error("cannot reach {endpoint}: check host and port 8006 ({detail})")]
    Unreachable { endpoint: String, detail: String },

    /// The server's certificate does not chain to a trusted root.
    #[error(
        "the server's certificate at {endpoint} is not trusted ({detail}): pin the cluster CA with \
         EM_INFRA_PVE_CA_FILE=<file> (copy /etc/pve/pve-root-ca.pem from the host), add it to this \
         machine's trust store, or set PROXMOX_VE_INSECURE=true"
    )]
    UntrustedCertificate { endpoint: String, detail: String },

    /// Any other TLS failure.
    #[error("TLS with {endpoint} failed: {detail}")]
    Tls { endpoint: String, detail: String },

    /// Any other HTTP error status. `message` is PVE's reason followed by its per-parameter
    /// `errors` (`Parameter verification failed.; storage: No such storage.`); `errors` keeps
    /// those by parameter for callers that tell them apart.
    #[error("{method} {path} failed with HTTP {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
        errors: BTreeMap<String, String>,
    },

    /// The answer was not the JSON shape expected.
    #[error("unexpected answer from {path}: {detail}")]
    Decode { path: String, detail: String },

    /// A task ended with an error exit status.
    #[error("task {upid} failed: {exitstatus}")]
    TaskFailed { upid: String, exitstatus: String },

    /// A task did not stop in time.
    #[error("task {upid} still running after {waited_secs} s")]
    TaskTimeout { upid: String, waited_secs: u64 },

    /// Not a `UPID:…` string.
    #[error("not a Proxmox task ID (UPID): {0:?}")]
    InvalidUpid(String),
}

impl ProxmoxError {
    /// One line that tells the user what to do.
    pub fn fix(&self) -> String {
        match self {
            ProxmoxError::Config(_) => {
                "export PROXMOX_VE_ENDPOINT=https://<host>:8006/ and \
                 PROXMOX_VE_API_TOKEN='<user>@<realm>!<tokenid>=<secret>' (see docs/doctor.md)"
                    .into()
            }
            ProxmoxError::Unauthorized { .. } => {
                "check PROXMOX_VE_API_TOKEN (<user>@<realm>!<tokenid>=<secret>), or create a new token: \
                 pveum user token add <user>@<realm> <tokenid> --privsep 0"
                    .into()
            }
            ProxmoxError::Forbidden {
                acl_path,
                privilege,
                token_id,
                ..
            } => format!(
                "grant it: pveum acl modify {acl_path} --tokens '{token_id}' --roles <a role with {}> \
                 (with a privilege-separated token the user needs it too)",
                privilege.as_deref().unwrap_or("the privilege")
            ),
            ProxmoxError::Locked { .. } => {
                "wait for the running task (Proxmox UI → Tasks) and retry; keep Terraform parallelism low".into()
            }
            ProxmoxError::Unreachable { endpoint, .. } => format!(
                "check PROXMOX_VE_ENDPOINT ({endpoint}): host name, port 8006, firewall, and that pveproxy runs"
            ),
            ProxmoxError::UntrustedCertificate { .. } => {
                "scp root@<host>:/etc/pve/pve-root-ca.pem ~/.config/pve-root-ca.pem and export \
                 EM_INFRA_PVE_CA_FILE=~/.config/pve-root-ca.pem; or, for Terraform too, install it: \
                 sudo cp pve-root-ca.pem /usr/local/share/ca-certificates/pve-root-ca.crt && sudo update-ca-certificates"
                    .into()
            }
            ProxmoxError::Tls { .. } => {
                "check that PROXMOX_VE_ENDPOINT is https://<host>:8006/ and the CA file".into()
            }
            ProxmoxError::Status { .. } | ProxmoxError::Decode { .. } => {
                "see the message; the Proxmox host's journal (journalctl -u pveproxy) has details".into()
            }
            ProxmoxError::TaskFailed { .. } | ProxmoxError::TaskTimeout { .. } => {
                "read the task log in the Proxmox UI (Tasks) and retry".into()
            }
            ProxmoxError::InvalidUpid(_) => "report this as a bug".into(),
        }
    }

    /// True for a 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ProxmoxError::Forbidden { .. })
    }

    /// True for an HTTP status error whose message mentions `needle`.
    pub fn status_mentions(&self, needle: &str) -> bool {
        matches!(self, ProxmoxError::Status { message, .. } if message.contains(needle))
    }

    /// What PVE said about parameter `name` in a 400 parameter error: `raise_param_exc` in
    /// pve-common `PVE::Exception` answers "Parameter verification failed." with the reasons in
    /// `errors` (`{"storage": "No such storage."}`), in the body on every PVE 8 and 9 host.
    pub fn param_error(&self, name: &str) -> Option<&str> {
        match self {
            ProxmoxError::Status {
                status: 400,
                errors,
                ..
            } => errors.get(name).map(String::as_str),
            _ => None,
        }
    }
}

/// Map an HTTP error answer to an error. `message` is PVE's reason (the body's `message`, else the
/// status line's reason phrase, else the body) and `errors` its per-parameter reasons, already
/// scrubbed of secrets.
pub(crate) fn from_status(
    method: &str,
    path: &str,
    status: u16,
    message: &str,
    errors: BTreeMap<String, String>,
    endpoint: &str,
    token_id: &str,
) -> ProxmoxError {
    let mut message = message.trim().to_string();
    match status {
        401 => ProxmoxError::Unauthorized {
            token_id: token_id.to_string(),
        },
        403 => {
            let (acl_path, privilege) = permission_details(&message)
                .map(|(p, v)| (p, Some(v)))
                .unwrap_or_else(|| (path.to_string(), None));
            ProxmoxError::Forbidden {
                path: path.to_string(),
                acl_path,
                privilege,
                message,
                token_id: token_id.to_string(),
            }
        }
        595 => ProxmoxError::Unreachable {
            endpoint: endpoint.to_string(),
            detail: if message.is_empty() {
                "HTTP 595".into()
            } else {
                format!("HTTP 595: {message}")
            },
        },
        _ => {
            if let Some(what) = lock_holder(&message) {
                return ProxmoxError::Locked { what, message };
            }
            for (k, v) in &errors {
                if !message.is_empty() {
                    message.push_str("; ");
                }
                message.push_str(&format!("{k}: {}", v.trim()));
            }
            ProxmoxError::Status {
                method: method.to_string(),
                path: path.to_string(),
                status,
                message: if message.is_empty() {
                    "(no reason given)".into()
                } else {
                    message
                },
                errors,
            }
        }
    }
}

/// `Permission check failed (/vms/100, VM.Audit)` → (`/vms/100`, `VM.Audit`).
/// Also `Permission check failed (/, Sys.Audit|Sys.Modify)`.
pub(crate) fn permission_details(message: &str) -> Option<(String, String)> {
    let start = message.find("Permission check failed (")? + "Permission check failed (".len();
    let inner = &message[start..];
    let inner = &inner[..inner.find(')')?];
    let (path, privs) = inner.split_once(',')?;
    let (path, privs) = (path.trim(), privs.trim());
    // Alternatives are written `A|B` ("any of").
    (path.starts_with('/') && !privs.is_empty())
        .then(|| (path.to_string(), privs.replace('|', " or ")))
}

/// What a lock error is about: `VM 9100`, `storage local-lvm`, or `a resource`; `None` when the
/// message is no lock error.
pub(crate) fn lock_holder(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let is_lock = lower.contains("can't lock file")
        || lower.contains("lock timeout")
        || (lower.contains("lock") && lower.contains("got timeout"))
        || (lower.contains(" is locked") && lower.starts_with("vm "));
    if !is_lock {
        return None;
    }
    if let Some(i) = message.find("lock-") {
        let digits: String = message[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !digits.is_empty() {
            return Some(format!("VM {digits}"));
        }
    }
    if let Some(i) = message.find("pve-storage-") {
        let name: String = message[i + 12..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if !name.is_empty() {
            return Some(format!("storage {name}"));
        }
    }
    if let Some(rest) = message.strip_prefix("VM ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            return Some(format!("VM {digits}"));
        }
    }
    Some("a Proxmox resource".into())
}

/// Map a transport error (no HTTP answer) to an error.
pub(crate) fn from_transport(err: &ureq::Error, endpoint: &str) -> ProxmoxError {
    let detail = err.to_string();
    let lower = detail.to_ascii_lowercase();
    let endpoint = endpoint.to_string();
    if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        return ProxmoxError::Tls {
            endpoint,
            detail: format!(
                "the certificate does not name this host ({detail}): use a host name or address \
                 the node certificate lists in PROXMOX_VE_ENDPOINT"
            ),
        };
    }
    let tls_untrusted = [
        "unknownissuer",
        "unknown issuer",
        "invalid peer certificate",
        "certificate",
        "badsignature",
    ]
    .iter()
    .any(|needle| lower.contains(needle));
    if tls_untrusted {
        return ProxmoxError::UntrustedCertificate { endpoint, detail };
    }
    match err {
        ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Io(_) => ProxmoxError::Unreachable { endpoint, detail },
        ureq::Error::Tls(_) => ProxmoxError::Tls { endpoint, detail },
        ureq::Error::BadUri(_) => ProxmoxError::Config(format!(
            "PROXMOX_VE_ENDPOINT {endpoint} is not a valid URL: {detail}"
        )),
        _ if lower.contains("tls") || lower.contains("rustls") => {
            ProxmoxError::Tls { endpoint, detail }
        }
        _ => ProxmoxError::Unreachable { endpoint, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, message: &str) -> ProxmoxError {
        from_status(
            "GET",
            "/nodes/pve/qemu/9000/config",
            status,
            message,
            BTreeMap::new(),
            "https://pve:8006",
            "em@pve!ci",
        )
    }

    #[test]
    fn maps_401() {
        let e = map(401, "authentication failure");
        assert!(
            e.to_string()
                .contains("the API token was rejected (wrong or expired)")
        );
        assert!(e.to_string().contains("PROXMOX_VE_API_TOKEN"));
    }

    #[test]
    fn maps_403_with_the_privilege() {
        let e = map(403, "Permission check failed (/vms/9000, VM.Audit)");
        assert_eq!(
            e.to_string(),
            "permission denied on /nodes/pve/qemu/9000/config: the token lacks VM.Audit on /vms/9000"
        );
        let any = map(
            403,
            "Permission check failed (/storage/local-lvm, Datastore.Audit|Datastore.AllocateSpace)",
        );
        assert!(
            any.to_string().ends_with(
                "lacks Datastore.Audit or Datastore.AllocateSpace on /storage/local-lvm"
            ),
            "{any}"
        );
        let odd = map(403, "Permission check failed");
        assert!(
            odd.to_string().ends_with("(Permission check failed)"),
            "{odd}"
        );
        assert!(
            e.fix()
                .contains("pveum acl modify /vms/9000 --tokens 'em@pve!ci'")
        );
        let bare = map(403, "");
        assert_eq!(
            bare.to_string(),
            "permission denied on /nodes/pve/qemu/9000/config: the token lacks a privilege on \
             /nodes/pve/qemu/9000/config"
        );
    }

    #[test]
    fn maps_lock_timeouts() {
        let e = map(
            500,
            "can't lock file '/var/lock/qemu-server/lock-9100.conf' - got timeout",
        );
        assert!(matches!(&e, ProxmoxError::Locked { what, .. } if what == "VM 9100"));
        assert!(
            e.to_string()
                .starts_with("another task holds the lock on VM 9100; retry")
        );
        let s = map(
            500,
            "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout",
        );
        assert!(matches!(&s, ProxmoxError::Locked { what, .. } if what == "storage local-lvm"));
        let v = map(500, "VM 9000 is locked (clone)");
        assert!(matches!(&v, ProxmoxError::Locked { what, .. } if what == "VM 9000"));
        let other = map(500, "storage 'x' does not exist");
        assert!(other.status_mentions("does not exist"));
    }

    #[test]
    fn maps_595_to_unreachable() {
        let e = map(595, "Connection refused");
        assert!(
            e.to_string()
                .starts_with("cannot reach https://pve:8006: check host and port 8006")
        );
    }

    #[test]
    fn transport_errors() {
        let e = from_transport(&ureq::Error::HostNotFound, "https://nohost:8006");
        assert!(
            e.to_string()
                .starts_with("cannot reach https://nohost:8006")
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = from_transport(&ureq::Error::Io(io), "https://h:8006");
        assert!(matches!(e, ProxmoxError::Unreachable { .. }));
        let io = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let e = from_transport(&ureq::Error::Io(io), "https://h:8006");
        assert!(e.to_string().contains("EM_INFRA_PVE_CA_FILE"));
        assert!(e.to_string().contains("/etc/pve/pve-root-ca.pem"));
        let io = std::io::Error::other("invalid peer certificate: NotValidForName");
        let e = from_transport(&ureq::Error::Io(io), "https://10.0.0.2:8006");
        assert!(e.to_string().contains("does not name this host"), "{e}");
    }
}
