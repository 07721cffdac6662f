//! The subset of k3s's `/etc/rancher/k3s/config.yaml` the stand-in understands.
//!
//! k3s reads a YAML map whose keys are CLI flag names; repeatable flags are lists. The stand-in
//! accepts the shapes em-infra's templates write: `key: value`, `key: "quoted"`, `key: [a, "b"]`
//! and block lists (`key:` followed by `  - item` lines). Comments and blank lines are skipped.

use std::collections::BTreeMap;

/// A parsed config file: every key maps to one or more values (scalars become a one-item list).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, Vec<String>>,
}

impl Config {
    /// Parses config text. Errors name the line that could not be read.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current_list: Option<String> = None;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let line = strip_comment(raw);
            if line.trim().is_empty() || line.trim() == "---" {
                continue;
            }
            let trimmed = line.trim_start();
            if let Some(item) =
                trimmed
                    .strip_prefix("- ")
                    .or(if trimmed == "-" { Some("") } else { None })
            {
                let Some(key) = current_list.as_ref() else {
                    return Err(format!("line {line_no}: list item without a key: {raw:?}"));
                };
                values
                    .entry(key.clone())
                    .or_default()
                    .push(unquote(item.trim())?);
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                return Err(format!(
                    "line {line_no}: nested maps are not supported: {raw:?}"
                ));
            }
            let Some((key, value)) = split_key(trimmed) else {
                return Err(format!("line {line_no}: expected `key: value`: {raw:?}"));
            };
            let key = unquote(key.trim())?;
            let value = value.trim();
            if value.is_empty() {
                values.entry(key.clone()).or_default();
                current_list = Some(key);
            } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                let list = values.entry(key).or_default();
                for item in split_flow(inner) {
                    let item = item.trim();
                    if !item.is_empty() {
                        list.push(unquote(item)?);
                    }
                }
                current_list = None;
            } else {
                values.entry(key).or_default().push(unquote(value)?);
                current_list = None;
            }
        }
        Ok(Config { values })
    }

    /// The last value of a scalar key (k3s: the last one wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// All values of a repeatable key; empty when absent.
    pub fn list(&self, key: &str) -> &[String] {
        self.values.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `node-label` entries as `key=value` pairs (a label without `=` gets an empty value).
    pub fn labels(&self) -> Vec<(String, String)> {
        self.list("node-label")
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect()
    }
}

fn strip_comment(line: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single && prev != '\\' => in_double = !in_double,
            '#' if !in_single && !in_double && (i == 0 || prev.is_whitespace()) => {
                return &line[..i];
            }
            _ => {}
        }
        prev = c;
    }
    line
}

/// Splits `key: value` at the first `:` that is followed by a space or the end (outside quotes).
fn split_key(line: &str) -> Option<(&str, &str)> {
    let mut in_single = false;
    let mut in_double = false;
    let bytes = line.as_bytes();
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            ':' if !in_single && !in_double && (i + 1 == bytes.len() || bytes[i + 1] == b' ') => {
                return Some((&line[..i], &line[i + 1..]));
            }
            _ => {}
        }
    }
    None
}

fn split_flow(inner: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_single = false;
    let mut in_double = false;
    for (i, c) in inner.char_indices() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            ',' if !in_single && !in_double => {
                out.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&inner[start..]);
    out
}

fn unquote(v: &str) -> Result<String, String> {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        crate::json::parse(v).and_then(|j| match j {
            crate::json::Json::Str(s) => Ok(s),
            _ => Err(format!("not a string: {v}")),
        })
    } else if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        Ok(v[1..v.len() - 1].replace("''", "'"))
    } else {
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_server_config_em_infra_writes() {
        let text = "# Managed by em-infra\n---\ntoken: \"s3cr3t\"\nnode-ip: \"10.231.0.11\"\ntls-san:\n  - \"10.231.0.11\"\nwrite-kubeconfig-mode: \"0600\"\nnode-label:\n  - \"em-infra/role=control-plane\"\n  - 'other=x'\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.get("token"), Some("s3cr3t"));
        assert_eq!(c.get("node-ip"), Some("10.231.0.11"));
        assert_eq!(c.list("tls-san"), ["10.231.0.11"]);
        assert_eq!(c.get("write-kubeconfig-mode"), Some("0600"));
        assert_eq!(
            c.labels(),
            vec![
                ("em-infra/role".to_string(), "control-plane".to_string()),
                ("other".to_string(), "x".to_string())
            ]
        );
        assert_eq!(c.get("server"), None);
        assert!(c.list("disable").is_empty());
    }

    #[test]
    fn parses_agent_config_flow_lists_and_comments() {
        let text = "server: https://10.231.0.11:6443 # the API\ntoken: abc#def\nnode-label: [\"em-infra/role=worker\", nvidia.com/gpu.present=true]\n";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.get("server"), Some("https://10.231.0.11:6443"));
        assert_eq!(c.get("token"), Some("abc#def"));
        assert_eq!(c.list("node-label").len(), 2);
        assert_eq!(
            c.labels()[1],
            ("nvidia.com/gpu.present".into(), "true".into())
        );
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(Config::parse("- orphan\n").is_err());
        assert!(Config::parse("just words\n").is_err());
        assert!(Config::parse("a:\n  b: c\n").is_err());
    }

    #[test]
    fn last_scalar_wins_and_escapes_decode() {
        let c = Config::parse("token: a\ntoken: \"b\\\"c\"\n").unwrap();
        assert_eq!(c.get("token"), Some("b\"c"));
    }
}
