//! The subset of k3s's config file syntax (`/etc/rancher/k3s/config.yaml` and its drop-ins) the
//! stand-in understands, and how files merge (k3s `pkg/configfilearg/parser.go`).
//!
//! A config file is a YAML map whose keys are CLI flag names; repeatable flags are lists. The
//! stand-in accepts the shapes em-infra's templates and k3s' docs write: `key: value`,
//! `key: "quoted"`, `key: [a, "b"]` and block lists (`key:` followed by `  - item` lines).
//! Comments and blank lines are skipped. A key ending in `+` appends to the value an earlier file
//! set instead of replacing it.

use std::path::{Path, PathBuf};

/// Merged config: each key (first-seen order) with its values.
pub(crate) type Merged = Vec<(String, Vec<String>)>;

/// One `key: value(s)` line (or block) of a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    /// `key+:` — append to what an earlier file set.
    pub(crate) append: bool,
    pub(crate) values: Vec<String>,
}

/// Parses config text into its entries, in order. Errors name the line that could not be read.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut in_list = false;
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
            let (true, Some(entry)) = (in_list, entries.last_mut()) else {
                return Err(format!("line {line_no}: list item without a key: {raw:?}"));
            };
            entry.values.push(unquote(item.trim())?);
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
        let (key, append) = match key.strip_suffix('+') {
            Some(k) => (k.to_string(), true),
            None => (key, false),
        };
        let value = value.trim();
        let mut values = Vec::new();
        in_list = false;
        if value.is_empty() {
            in_list = true;
        } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            for item in split_flow(inner) {
                let item = item.trim();
                if !item.is_empty() {
                    values.push(unquote(item)?);
                }
            }
        } else {
            values.push(unquote(value)?);
        }
        entries.push(Entry {
            key,
            append,
            values,
        });
    }
    Ok(entries)
}

/// `<file>.d/*.yaml` and `*.yml` (case-insensitive suffix), sorted by name as Go's `os.ReadDir`
/// returns them. A missing directory is no drop-ins.
pub(crate) fn drop_ins(file: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = PathBuf::from(format!("{}.d", file.display()));
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().to_lowercase();
        let is_file = entry.file_type().map(|t| !t.is_dir()).unwrap_or(false);
        if is_file && (name.ends_with(".yaml") || name.ends_with(".yml")) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Reads `file` and its drop-ins and merges them: a later file's key replaces the earlier value,
/// `key+` appends; keys keep the order they were first seen in. Returns `None` when neither the
/// file nor any drop-in exists (k3s then runs without a config file, even one named explicitly).
pub(crate) fn load(file: &Path) -> Result<Option<Merged>, String> {
    let mut files = drop_ins(file)?;
    match std::fs::metadata(file) {
        Ok(_) => files.insert(0, file.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if files.is_empty() {
                return Ok(None);
            }
        }
        Err(e) => return Err(format!("{}: {e}", file.display())),
    }
    let mut merged: Merged = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let entries = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        merge(&mut merged, entries);
    }
    Ok(Some(merged))
}

/// Folds one file's entries into the merged list (replace, or append for `key+`).
pub(crate) fn merge(merged: &mut Merged, entries: Vec<Entry>) {
    for e in entries {
        match merged.iter_mut().find(|(k, _)| *k == e.key) {
            Some((_, values)) if e.append => values.extend(e.values),
            Some((_, values)) => *values = e.values,
            None => merged.push((e.key, e.values)),
        }
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

    fn merged(files: &[&str]) -> Vec<(String, Vec<String>)> {
        let mut m = Vec::new();
        for f in files {
            merge(&mut m, parse(f).unwrap());
        }
        m
    }

    fn get<'a>(m: &'a [(String, Vec<String>)], key: &str) -> Option<&'a [String]> {
        m.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    #[test]
    fn parses_the_server_config_em_infra_writes() {
        let text = "# Managed by em-infra\n---\ntoken: \"s3cr3t\"\nnode-ip: \"10.231.0.11\"\ntls-san:\n  - \"10.231.0.11\"\nwrite-kubeconfig-mode: \"0600\"\nnode-label:\n  - \"em-infra/role=control-plane\"\n  - 'other=x'\n";
        let m = merged(&[text]);
        assert_eq!(get(&m, "token"), Some(&["s3cr3t".to_string()][..]));
        assert_eq!(get(&m, "tls-san"), Some(&["10.231.0.11".to_string()][..]));
        assert_eq!(
            get(&m, "node-label").unwrap(),
            ["em-infra/role=control-plane", "other=x"]
        );
        assert_eq!(get(&m, "server"), None);
    }

    #[test]
    fn parses_agent_config_flow_lists_and_comments() {
        let text = "server: https://10.231.0.11:6443 # the API\ntoken: abc#def\nnode-label: [\"em-infra/role=worker\", nvidia.com/gpu.present=true]\n";
        let m = merged(&[text]);
        assert_eq!(get(&m, "server").unwrap(), ["https://10.231.0.11:6443"]);
        assert_eq!(get(&m, "token").unwrap(), ["abc#def"]);
        assert_eq!(get(&m, "node-label").unwrap().len(), 2);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse("- orphan\n").is_err());
        assert!(parse("just words\n").is_err());
        assert!(parse("a:\n  b: c\n").is_err());
        assert!(parse("a: b\n- c\n").is_err());
    }

    #[test]
    fn later_files_replace_and_plus_keys_append() {
        // k3s pkg/configfilearg/testdata: a drop-in replaces a key, `key+` appends to it.
        let m = merged(&[
            "token: a\nnode-label: [x=1]\nkubelet-arg: [a=1]\n",
            "token: \"b\\\"c\"\nnode-label+: [y=2]\n",
            "kubelet-arg: [b=2]\n",
        ]);
        assert_eq!(get(&m, "token").unwrap(), ["b\"c"]);
        assert_eq!(get(&m, "node-label").unwrap(), ["x=1", "y=2"]);
        assert_eq!(get(&m, "kubelet-arg").unwrap(), ["b=2"]);
        assert_eq!(m[0].0, "token", "first-seen order");
    }

    #[test]
    fn drop_ins_are_yaml_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("standin-cfg-{}", std::process::id()));
        let d = dir.join("config.yaml.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("20-b.yml"), "token: two\n").unwrap();
        std::fs::write(d.join("10-a.yaml"), "token: one\nnode-name: n\n").unwrap();
        std::fs::write(d.join("30-c.txt"), "token: ignored\n").unwrap();
        // No config.yaml itself: drop-ins alone are enough.
        let m = load(&dir.join("config.yaml")).unwrap().unwrap();
        assert_eq!(get(&m, "token").unwrap(), ["two"]);
        assert_eq!(get(&m, "node-name").unwrap(), ["n"]);
        assert_eq!(load(&dir.join("other.yaml")).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
