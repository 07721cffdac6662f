//! What keeps secrets out of a bundle: the values the process and the environment know (API
//! token, password, k3s token, the kubeconfig's credentials), private key blocks, and credential
//! fields, in every file of the archive.

use std::ops::Range;

use crate::config::Environment;
use crate::runner::{REDACTED, Redactor};

use super::PRIVATE_KEY_REDACTED;

/// Credential fields whose values are redacted wherever they appear (compared in lower case;
/// `pveapitoken` is the Proxmox API's `Authorization: PVEAPIToken=…`).
const CREDENTIAL_KEYS: [&str; 5] = [
    "client-key-data",
    "client-certificate-data",
    "pveapitoken",
    "password",
    "token",
];

/// Redacts every secret a bundle must not carry (see the module's documentation).
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    redactor: Redactor,
}

impl Scrubber {
    /// Redacts what `redactor` knows, private key blocks and credential fields.
    pub fn new(redactor: Redactor) -> Self {
        Scrubber { redactor }
    }

    /// The secrets of the process environment ([`Redactor::from_env`]), the environment's k3s
    /// token and its kubeconfig's credentials, besides key blocks and credential fields.
    pub fn for_environment(env: &Environment) -> Self {
        let mut redactor = Redactor::from_env();
        if let Ok(token) = std::fs::read_to_string(env.token_file()) {
            redactor.add(token.trim());
        }
        if let Ok(kubeconfig) = std::fs::read_to_string(env.kubeconfig()) {
            for span in credential_spans(&kubeconfig) {
                redactor.add(&kubeconfig[span]);
            }
        }
        Scrubber { redactor }
    }

    pub fn scrub(&self, text: &str) -> String {
        let text = redact_private_keys(text);
        let text = self.redactor.redact(&text);
        redact_credential_fields(&text)
    }
}

/// Replace private key blocks whole with [`PRIVATE_KEY_REDACTED`]: `-----BEGIN … PRIVATE
/// KEY-----` through its `-----END … PRIVATE KEY-----` (a block without an end takes the rest of
/// the text with it), and an end line without its beginning (a log's tail) together with the
/// key material before it.
pub fn redact_private_keys(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(BEGIN) {
        let after = &rest[at + BEGIN.len()..];
        let Some(label) = key_label(after) else {
            out.push_str(&rest[..at + BEGIN.len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..at]);
        let body = &after[label.len() + 5..];
        let end = format!("-----END {label}-----");
        match body.find(&end) {
            Some(p) => {
                out.push_str(PRIVATE_KEY_REDACTED);
                rest = &body[p + end.len()..];
            }
            None => {
                out.push_str(PRIVATE_KEY_REDACTED);
                out.push_str(" (no END line: the rest of the file was removed)\n");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    redact_orphan_key_ends(&out)
}

/// An `-----END … PRIVATE KEY-----` whose beginning is not in the text: the key material before
/// it (base64 and line breaks, also JSON-escaped ones) goes with it.
fn redact_orphan_key_ends(text: &str) -> String {
    const END: &str = "-----END ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(END) {
        let after = &rest[at + END.len()..];
        let Some(label) = key_label(after) else {
            out.push_str(&rest[..at + END.len()]);
            rest = after;
            continue;
        };
        let before = &rest[..at];
        out.push_str(&before[..key_material_start(before)]);
        out.push_str(PRIVATE_KEY_REDACTED);
        rest = &after[label.len() + 5..];
    }
    out.push_str(rest);
    out
}

/// The label of a PEM line whose `-----BEGIN `/`-----END ` precedes `after`, when it names a
/// private key (`OPENSSH PRIVATE KEY`, `RSA PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, …).
fn key_label(after: &str) -> Option<&str> {
    let end = after.find("-----")?;
    let label = &after[..end];
    (end <= 64 && !label.contains(['\n', '\r']) && label.contains("PRIVATE KEY")).then_some(label)
}

/// Where the key material that ends at the end of `before` starts.
fn key_material_start(before: &str) -> usize {
    let b = before.as_bytes();
    let mut i = b.len();
    while i > 0 {
        let c = b[i - 1];
        if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'\n' | b'\r') {
            i -= 1;
        } else if c == b'\\' && matches!(b.get(i), Some(b'n' | b'r')) {
            // A JSON-escaped line break.
            i -= 1;
        } else {
            break;
        }
    }
    i
}

/// Replace the values of credential fields (`client-key-data`, `client-certificate-data`,
/// `token`, `password`, `PVEAPIToken`) with [`REDACTED`]: `key: value` (YAML, also inside JSON
/// strings), `"key": "value"` (JSON) and `key=value` (command lines, URLs). Keys match in any case
/// and after any non-alphanumeric character (`id-token:`, `ansible_password=`); a quoted value
/// keeps its quotes.
pub fn redact_credential_fields(text: &str) -> String {
    let spans = credential_spans(text);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for span in spans {
        out.push_str(&text[last..span.start]);
        out.push_str(REDACTED);
        last = span.end;
    }
    out.push_str(&text[last..]);
    out
}

/// The byte ranges of credential values in `text`, in order, not overlapping.
fn credential_spans(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let lower = lower.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let key = CREDENTIAL_KEYS
            .iter()
            .find(|k| lower[i..].starts_with(k.as_bytes()));
        let at_boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        match key {
            Some(key) if at_boundary => match value_span(bytes, i + key.len()) {
                Some(span) => {
                    i = span.end;
                    spans.push(span);
                }
                None => i += key.len(),
            },
            _ => i += 1,
        }
    }
    spans
}

/// The value after a credential key ending at `j`: an optional closing quote of the key, `:` or
/// `=`, spaces, then a quoted value (its inside) or a bare one. `None` when no value follows on
/// the same line, or it is a JSON `null`/`true`/`false`.
fn value_span(b: &[u8], mut j: usize) -> Option<Range<usize>> {
    if b[j..].starts_with(b"\\\"") {
        j += 2;
    } else if matches!(b.get(j), Some(b'"' | b'\'')) {
        j += 1;
    }
    let skip_blanks = |mut j: usize| {
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        j
    };
    j = skip_blanks(j);
    let sep = *b.get(j)?;
    if sep != b':' && sep != b'=' {
        return None;
    }
    j = skip_blanks(j + 1);
    let line_end = |from: usize| {
        b[from..]
            .iter()
            .position(|&c| c == b'\n' || c == b'\r')
            .map_or(b.len(), |p| from + p)
    };
    // A value quoted inside a JSON string: `\"value\"`.
    if b[j..].starts_with(b"\\\"") {
        let start = j + 2;
        let end = b[start..line_end(start)]
            .windows(2)
            .position(|w| w == b"\\\"")
            .map_or(line_end(start), |p| start + p);
        return (end > start).then_some(start..end);
    }
    if let Some(&quote @ (b'"' | b'\'')) = b.get(j) {
        let start = j + 1;
        let mut end = start;
        while end < b.len() && b[end] != quote && b[end] != b'\n' && b[end] != b'\r' {
            // A JSON string's escaped characters (`\"`) do not end it.
            end += if b[end] == b'\\' && quote == b'"' {
                2
            } else {
                1
            };
        }
        let end = end.min(b.len());
        return (end > start).then_some(start..end);
    }
    let start = j;
    let mut end = start;
    while end < b.len() {
        let c = b[end];
        let escape = c == b'\\' && matches!(b.get(end + 1), Some(b'n' | b'r' | b't' | b'"'));
        let blank_ends = sep == b'=' && matches!(c, b' ' | b'\t' | b'\'' | b'&' | b',' | b';');
        if c == b'\n' || c == b'\r' || c == b'"' || escape || blank_ends {
            break;
        }
        end += 1;
    }
    while end > start && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    let word_end = b[start..end]
        .iter()
        .position(|c| matches!(c, b',' | b'}' | b']' | b' '))
        .map_or(end, |p| start + p);
    if matches!(&b[start..word_end], b"null" | b"true" | b"false") {
        return None;
    }
    (end > start).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nQyNTUxOQAAACDsecretkeymaterial0123456789abc==\n-----END OPENSSH PRIVATE KEY-----";

    #[test]
    fn a_private_key_block_is_replaced_whole() {
        let text = format!("before\n{KEY}\nafter\n");
        assert_eq!(
            redact_private_keys(&text),
            format!("before\n{PRIVATE_KEY_REDACTED}\nafter\n")
        );
        // RSA and PKCS#8 labels, two blocks in one text, and a public key left alone.
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecret\n-----END RSA PRIVATE KEY-----";
        let pkcs8 = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANsecret\n-----END PRIVATE KEY-----";
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBcertificate\n-----END CERTIFICATE-----";
        let text = format!("{rsa} mid {pkcs8}\n{cert}\n");
        assert_eq!(
            redact_private_keys(&text),
            format!("{PRIVATE_KEY_REDACTED} mid {PRIVATE_KEY_REDACTED}\n{cert}\n")
        );
    }

    #[test]
    fn a_json_escaped_key_block_is_replaced_whole() {
        let escaped = serde_json::to_string(&format!("key: {KEY}")).unwrap();
        let line = format!("{{\"message\":{escaped},\"stage\":\"configure\"}}");
        let out = redact_private_keys(&line);
        assert_eq!(
            out,
            format!("{{\"message\":\"key: {PRIVATE_KEY_REDACTED}\",\"stage\":\"configure\"}}")
        );
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
    }

    #[test]
    fn a_key_cut_short_takes_the_rest_and_an_orphan_end_takes_its_material() {
        let cut = "log\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIsecretmaterial\n";
        let out = redact_private_keys(cut);
        assert!(
            out.starts_with(&format!("log\n{PRIVATE_KEY_REDACTED}")),
            "{out}"
        );
        assert!(!out.contains("secretmaterial"), "{out}");

        // A tail that starts inside the key: the base64 lines before the END line go too.
        let tail = "fatal: x\nc2VjcmV0bWF0ZXJpYWw=\nQyNTUxOQsecret\n-----END OPENSSH PRIVATE KEY-----\nnext line\n";
        let out = redact_private_keys(tail);
        assert_eq!(out, format!("fatal: {PRIVATE_KEY_REDACTED}\nnext line\n"));
        let escaped = "\"msg\":\"a b\\nc2VjcmV0\\nQyNTUxOQ\\n-----END RSA PRIVATE KEY-----\\n\"";
        assert_eq!(
            redact_private_keys(escaped),
            format!("\"msg\":\"a {PRIVATE_KEY_REDACTED}\\n\"")
        );
    }

    #[test]
    fn kubeconfig_credentials_are_redacted() {
        let kubeconfig = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0FjZXJ0\n    server: https://10.0.0.1:6443\nusers:\n- name: default\n  user:\n    client-certificate-data: Y2xpZW50Y2VydA==\n    client-key-data: Y2xpZW50a2V5\n    token: abcdef.0123456789abcdef\n    password: \"hunter2 with spaces\"\n";
        let out = redact_credential_fields(kubeconfig);
        for secret in [
            "Y2xpZW50Y2VydA==",
            "Y2xpZW50a2V5",
            "abcdef.0123456789abcdef",
            "hunter2",
        ] {
            assert!(!out.contains(secret), "{secret} left in\n{out}");
        }
        assert!(out.contains("    client-key-data: [REDACTED]\n"), "{out}");
        assert!(out.contains("    token: [REDACTED]\n"), "{out}");
        assert!(out.contains("    password: \"[REDACTED]\"\n"), "{out}");
        // What is not a credential stays.
        assert!(
            out.contains("certificate-authority-data: Q0FjZXJ0"),
            "{out}"
        );
        assert!(out.contains("server: https://10.0.0.1:6443"), "{out}");
    }

    #[test]
    fn credential_fields_in_json_and_command_lines_are_redacted() {
        let json = r#"{"token": "s3cr3t-token", "password": null, "user": "root", "k3s_token":"abc123xyz"}"#;
        assert_eq!(
            redact_credential_fields(json),
            r#"{"token": "[REDACTED]", "password": null, "user": "root", "k3s_token":"[REDACTED]"}"#
        );
        // A kubeconfig line inside a JSON string (an event's message).
        let event = r#"{"message":"    client-key-data: Y2xpZW50a2V5","stage":"configure"}"#;
        assert_eq!(
            redact_credential_fields(event),
            r#"{"message":"    client-key-data: [REDACTED]","stage":"configure"}"#
        );
        let escaped = r#"{"message":"{\"token\": \"abc123456\"} and password: p4ss\nnext"}"#;
        assert_eq!(
            redact_credential_fields(escaped),
            r#"{"message":"{\"token\": \"[REDACTED]\"} and password: [REDACTED]\nnext"}"#
        );
        assert_eq!(
            redact_credential_fields(
                "curl -H 'Authorization: PVEAPIToken=root@pam!em=1234-5678' ?token=abc&x=1"
            ),
            "curl -H 'Authorization: PVEAPIToken=[REDACTED]' ?token=[REDACTED]&x=1"
        );
        // Words that only contain a key, and keys without a value, are left alone.
        let prose = "needs root@pam password auth; tokens: 3; mytoken: x; password:\n";
        assert_eq!(redact_credential_fields(prose), prose);
    }

    #[test]
    fn scrub_redacts_known_secrets_keys_and_fields_together() {
        let mut redactor = Redactor::default();
        redactor.add("k3s-join-token-value");
        let scrubber = Scrubber::new(redactor);
        let text = format!("joined with k3s-join-token-value\n{KEY}\nPASSWORD=letmein\n");
        assert_eq!(
            scrubber.scrub(&text),
            format!("joined with [REDACTED]\n{PRIVATE_KEY_REDACTED}\nPASSWORD=[REDACTED]\n")
        );
    }
}
