//! `k3s kubectl get nodes [-o json]`, answered by the running stand-in server.

use crate::json::Json;
use std::time::Duration;

/// Pulls `server:` and `client-key-data:` out of a kubeconfig (first occurrence of each).
pub fn read_kubeconfig(text: &str) -> Option<(String, String)> {
    let find = |key: &str| {
        text.lines().find_map(|l| {
            l.trim_start()
                .strip_prefix(key)
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    Some((find("server:")?, find("client-key-data:")?))
}

fn decode_b64(s: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8(out).ok()
}

pub fn run(args: &[String]) -> i32 {
    let mut kubeconfig = std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty());
    let mut words = Vec::new();
    let mut output = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kubeconfig" => kubeconfig = it.next().cloned(),
            "-o" | "--output" => output = it.next().cloned(),
            s if s.starts_with("--kubeconfig=") => {
                kubeconfig = Some(s["--kubeconfig=".len()..].to_string())
            }
            s if s.starts_with("--output=") => output = Some(s["--output=".len()..].to_string()),
            s if s.starts_with("-o") && s.len() > 2 => output = Some(s[2..].to_string()),
            s => words.push(s.to_string()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if !matches!(words.as_slice(), ["get", "nodes" | "node" | "no"])
        || !matches!(output.as_deref(), None | Some("json") | Some("wide"))
    {
        eprintln!(
            "error: the k3s STAND-IN's kubectl supports only `get nodes [-o json]` (got {args:?})"
        );
        return 1;
    }
    let path = kubeconfig.unwrap_or_else(|| crate::server::KUBECONFIG.to_string());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: error loading config file \"{path}\": {e}");
            return 1;
        }
    };
    let Some((server, key_b64)) = read_kubeconfig(&text) else {
        eprintln!("error: invalid configuration: no server/client-key-data in {path}");
        return 1;
    };
    let addr = match crate::agent::server_addr(&server) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let key = decode_b64(&key_b64).unwrap_or_default();
    let req = Json::obj([("op", Json::str("nodes")), ("key", Json::str(key))]);
    match crate::server::request(&addr, &req, Duration::from_secs(10)) {
        Ok(reply) if matches!(reply.get("ok"), Some(Json::Bool(true))) => {
            if output.as_deref() == Some("json") {
                println!(
                    "{}",
                    reply.get("list").map(Json::pretty).unwrap_or_default()
                );
            } else {
                print!(
                    "{}",
                    reply.get("table").and_then(Json::as_str).unwrap_or("")
                );
            }
            0
        }
        Ok(reply) => {
            eprintln!(
                "error: {}",
                reply
                    .get("error")
                    .and_then(Json::as_str)
                    .unwrap_or("request failed")
            );
            1
        }
        Err(_) => {
            eprintln!(
                "The connection to the server {addr} was refused - did you specify the right host or port?"
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_and_key_from_a_k3s_kubeconfig() {
        let k = crate::server::kubeconfig_text("pw", 6443);
        let (server, key) = read_kubeconfig(&k).unwrap();
        assert_eq!(server, "https://127.0.0.1:6443");
        assert_eq!(decode_b64(&key).unwrap(), crate::server::admin_key("pw"));
    }
}
