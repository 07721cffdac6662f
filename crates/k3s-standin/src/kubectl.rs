//! `k3s kubectl get nodes [-o json]`, answered by the running stand-in server.

use crate::json::Json;
use std::time::Duration;

/// Pulls `server:` and `client-key-data:` out of a kubeconfig (first occurrence of each).
pub(crate) fn read_kubeconfig(text: &str) -> Option<(String, String)> {
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

pub(crate) fn run(args: &[String]) -> i32 {
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
    let ignore_not_found = args
        .iter()
        .any(|a| a == "--ignore-not-found" || a == "--ignore-not-found=true");
    let words: Vec<&str> = words
        .into_iter()
        .filter(|w| !w.starts_with("--ignore-not-found"))
        .collect();
    if let ["delete", "nodes" | "node" | "no", names @ ..] = words.as_slice() {
        if names.is_empty() {
            eprintln!("error: resource(s) were provided, but no name was specified");
            return 1;
        }
        let names = Json::Arr(names.iter().map(|n| Json::str(*n)).collect());
        return match call(
            kubeconfig,
            Json::obj([("op", Json::str("delete")), ("names", names)]),
        ) {
            Ok(reply) => {
                let list = |k: &str| -> Vec<String> {
                    reply
                        .get(k)
                        .and_then(Json::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|n| n.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                for d in list("deleted") {
                    println!("node \"{d}\" deleted");
                }
                let missing = list("missing");
                if !missing.is_empty() && !ignore_not_found {
                    for m in missing {
                        eprintln!("Error from server (NotFound): nodes \"{m}\" not found");
                    }
                    return 1;
                }
                0
            }
            Err(code) => code,
        };
    }
    if !matches!(words.as_slice(), ["get", "nodes" | "node" | "no"])
        || !matches!(output.as_deref(), None | Some("json") | Some("wide"))
    {
        eprintln!(
            "error: the k3s STAND-IN's kubectl supports only `get nodes [-o json]` (got {args:?})"
        );
        return 1;
    }
    match call(kubeconfig, Json::obj([("op", Json::str("nodes"))])) {
        Ok(reply) => {
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
        Err(code) => code,
    }
}

/// Sends `req` (plus the kubeconfig's client key) to the server the kubeconfig names. Errors are
/// printed the way kubectl prints them; `Err` carries the exit code.
fn call(kubeconfig: Option<String>, req: Json) -> Result<Json, i32> {
    let path = kubeconfig.unwrap_or_else(|| crate::server::KUBECONFIG.to_string());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        eprintln!("error: error loading config file \"{path}\": {e}");
        1
    })?;
    let Some((server, key_b64)) = read_kubeconfig(&text) else {
        eprintln!("error: invalid configuration: no server/client-key-data in {path}");
        return Err(1);
    };
    let addr = crate::agent::server_addr(&server).map_err(|e| {
        eprintln!("error: {e}");
        1
    })?;
    let mut req = req;
    if let Json::Obj(pairs) = &mut req {
        pairs.push((
            "key".to_string(),
            Json::str(decode_b64(&key_b64).unwrap_or_default()),
        ));
    }
    match crate::server::request(&addr, &req, Duration::from_secs(10)) {
        Ok(reply) if matches!(reply.get("ok"), Some(Json::Bool(true))) => Ok(reply),
        Ok(reply) => {
            eprintln!(
                "error: {}",
                reply
                    .get("error")
                    .and_then(Json::as_str)
                    .unwrap_or("request failed")
            );
            Err(1)
        }
        Err(_) => {
            eprintln!(
                "The connection to the server {addr} was refused - did you specify the right host or port?"
            );
            Err(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_and_key_from_a_k3s_kubeconfig() {
        let k = crate::server::kubeconfig_text("pw", 6443, "CA");
        let (server, key) = read_kubeconfig(&k).unwrap();
        assert_eq!(server, "https://127.0.0.1:6443");
        assert_eq!(decode_b64(&key).unwrap(), crate::server::admin_key("pw"));
    }
}
