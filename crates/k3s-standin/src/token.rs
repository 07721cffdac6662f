//! k3s join tokens, parsed and checked as k3s' `pkg/clientaccess/token.go` does.
//!
//! The secure ("full") format is `K10<sha256 of the cluster CA bundle>::<username>:<password>`; a
//! short token is the password alone. An agent downloads the server's CA bundle from `/cacerts`
//! and, when the token carries a CA hash, refuses a server whose bundle hashes differently — the
//! hash pins the server it trusts. A short token joins without that check (k3s only warns).

use sha2::{Digest, Sha256};

const PREFIX: &str = "K10";
const CA_HASH_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// Lower-case hex SHA-256 of the CA bundle; empty for a short token.
    pub ca_hash: String,
    pub username: String,
    pub password: String,
}

/// `parseToken`: a bare password becomes `K10:::<password>` (empty hash, empty user); the hash,
/// when present, must be 64 characters; the credentials must be `user:password`.
pub(crate) fn parse(token: &str) -> Result<Token, String> {
    if token.is_empty() {
        return Err("token must not be empty".into());
    }
    if is_bootstrap_token(token.strip_prefix(PREFIX).unwrap_or(token)) {
        return Err(
            "kubeadm-style bootstrap tokens (`k3s token create`) are not supported by the k3s stand-in"
                .into(),
        );
    }
    let full = if token.starts_with(PREFIX) {
        token.to_string()
    } else {
        format!("{PREFIX}:::{token}")
    };
    let rest = &full[PREFIX.len()..];
    let (ca_hash, creds) = match rest.split_once("::") {
        Some((hash, creds)) => {
            if !hash.is_empty() && hash.len() != CA_HASH_LEN {
                return Err("invalid token CA hash length".into());
            }
            (hash.to_string(), creds)
        }
        None => (String::new(), rest),
    };
    match creds.split_once(':') {
        Some((user, password)) if !password.is_empty() => Ok(Token {
            ca_hash,
            username: user.to_string(),
            password: password.to_string(),
        }),
        _ => Err("invalid token format".into()),
    }
}

/// `<id>.<secret>` with a 6- and a 16-character `[a-z0-9]` part (kubeadm's bootstrap tokens).
fn is_bootstrap_token(s: &str) -> bool {
    let ok = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    s.split_once('.')
        .is_some_and(|(id, secret)| ok(id, 6) && ok(secret, 16))
}

/// `hashCA` for a single-certificate bundle: SHA-256 of the file's bytes, in hex.
pub(crate) fn hash_ca(ca_pem: &[u8]) -> String {
    Sha256::digest(ca_pem)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `FormatTokenBytes`: the full token for `creds` (`user:password`) and a CA bundle.
pub(crate) fn format(creds: &str, ca_pem: &[u8]) -> String {
    format!("{PREFIX}{}::{creds}", hash_ca(ca_pem))
}

/// What `validateCAHash` concluded about a server's CA bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CaCheck {
    /// The token's hash matches the bundle: the server is the one the token names.
    Pinned,
    /// Short token: joined without checking (k3s logs this warning).
    Unpinned(&'static str),
}

pub(crate) const UNPINNED_WARNING: &str = "Cluster CA certificate is not trusted by the host CA bundle, but the token does not include a CA hash. Use the full token from the server's node-token file to enable Cluster CA validation.";

/// Checks the server's bundle against the token's hash (the stand-in's CA is self-signed, so
/// it is never trusted by the host bundle and the hash decides).
pub(crate) fn check_ca(token: &Token, ca_pem: &[u8]) -> Result<CaCheck, String> {
    if token.ca_hash.is_empty() {
        return Ok(CaCheck::Unpinned(UNPINNED_WARNING));
    }
    let server_hash = hash_ca(ca_pem);
    if token.ca_hash != server_hash {
        return Err(format!(
            "token CA hash does not match the Cluster CA certificate hash: {} != {server_hash}",
            token.ca_hash
        ));
    }
    Ok(CaCheck::Pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_full_tokens_like_k3s() {
        let short = parse("s3cret").unwrap();
        assert_eq!((short.ca_hash.as_str(), short.username.as_str()), ("", ""));
        assert_eq!(short.password, "s3cret");
        let hash = "a".repeat(64);
        let full = parse(&format!("K10{hash}::server:s3cret")).unwrap();
        assert_eq!(full.ca_hash, hash);
        assert_eq!(full.username, "server");
        assert_eq!(full.password, "s3cret");
        // A password that itself contains ':' keeps it (SplitN(…, 2)).
        assert_eq!(parse("K10::node:a:b").unwrap().password, "a:b");
    }

    #[test]
    fn rejects_what_k3s_rejects() {
        assert_eq!(parse("").unwrap_err(), "token must not be empty");
        assert_eq!(
            parse("K10abc::server:pw").unwrap_err(),
            "invalid token CA hash length"
        );
        assert_eq!(
            parse(&format!("K10{}::nopassword", "b".repeat(64))).unwrap_err(),
            "invalid token format"
        );
        assert!(parse("abcdef.0123456789abcdef").is_err());
    }

    #[test]
    fn ca_hash_pins_the_server() {
        let ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        // sha256 of those bytes, as `sha256sum` prints it.
        assert_eq!(
            hash_ca(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let full = format("server:pw", ca);
        assert!(full.starts_with("K10") && full.ends_with("::server:pw"));
        let t = parse(&full).unwrap();
        assert_eq!(check_ca(&t, ca), Ok(CaCheck::Pinned));
        let other = b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
        let err = check_ca(&t, other).unwrap_err();
        assert!(
            err.starts_with("token CA hash does not match the Cluster CA certificate hash: "),
            "{err}"
        );
        assert_eq!(
            check_ca(&parse("pw").unwrap(), other),
            Ok(CaCheck::Unpinned(UNPINNED_WARNING))
        );
    }
}
