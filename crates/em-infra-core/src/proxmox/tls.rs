//! Which certificates the client trusts ([`super::TlsMode`]).
//!
//! Without a pinned CA file the client trusts the system trust store, read with
//! rustls-native-certs: on Linux the distribution's bundle (`/etc/ssl/certs/…`, found by
//! openssl-probe), or only `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set. That is the store
//! the bpg provider's Go TLS stack (crypto/x509 `SystemCertPool`, which honours the same two
//! variables) trusts too, so a cluster CA added there (`update-ca-certificates`) serves Terraform
//! and em-infra alike. A machine without any system certificates falls back to the Mozilla roots
//! bundled with ureq (webpki-roots), which is what a host with a public (ACME) certificate needs.

use std::sync::Arc;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::{ProxmoxError, TlsMode};

/// The TLS configuration for `mode`. Fails when a CA file cannot be read or holds no
/// certificate, or when `SSL_CERT_FILE` / `SSL_CERT_DIR` name nothing usable.
pub(super) fn config(mode: &TlsMode) -> Result<TlsConfig, ProxmoxError> {
    let roots = match mode {
        TlsMode::Insecure => {
            return Ok(TlsConfig::builder().disable_verification(true).build());
        }
        TlsMode::SystemStore => system_roots()?,
        TlsMode::PinnedCa(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                ProxmoxError::Config(format!(
                    "EM_INFRA_PVE_CA_FILE={}: cannot read it ({e}); copy /etc/pve/pve-root-ca.pem from the Proxmox host",
                    path.display()
                ))
            })?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(ProxmoxError::Config(format!(
                    "EM_INFRA_PVE_CA_FILE={}: no PEM certificate in it; copy /etc/pve/pve-root-ca.pem from the Proxmox host",
                    path.display()
                )));
            }
            RootCerts::Specific(Arc::new(certs))
        }
    };
    Ok(TlsConfig::builder().root_certs(roots).build())
}

/// The system trust store's certificates; the bundled roots when the system has none and no
/// variable pointed elsewhere.
fn system_roots() -> Result<RootCerts, ProxmoxError> {
    let loaded = rustls_native_certs::load_native_certs();
    if !loaded.certs.is_empty() {
        let certs: Vec<Certificate<'static>> = loaded
            .certs
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        return Ok(RootCerts::Specific(Arc::new(certs)));
    }
    let named: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .filter_map(|name| {
            std::env::var_os(name).map(|v| format!("{name}={}", v.to_string_lossy()))
        })
        .collect();
    if named.is_empty() {
        return Ok(RootCerts::WebPki);
    }
    let why = loaded
        .errors
        .first()
        .map_or("no PEM certificate found".to_string(), ToString::to_string);
    Err(ProxmoxError::Config(format!(
        "{}: no certificate could be read ({why}); point it at a PEM bundle that holds the Proxmox \
         cluster CA, unset it, or set EM_INFRA_PVE_CA_FILE",
        named.join(", ")
    )))
}
