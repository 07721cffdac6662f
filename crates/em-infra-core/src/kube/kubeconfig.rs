//! `em-infra kubeconfig --merge`: the cluster's context into the user's kubeconfig.
//!
//! The kubeconfig configure fetches names its cluster, user and context `default` (k3s's
//! names), which would collide with anything else called `default`; the merge renames all three
//! to the context name (default: the environment's name). In the target file, only the entries of
//! that name are added or replaced: every other cluster, user and context — and every other key —
//! stays as it was, and `current-context` is set only when the file has none. A backup of the
//! target is taken before it changes; the file is written atomically with mode 0600; a merge that
//! changes nothing writes nothing.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::failure::bad_input;

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The target already held exactly this context.
    Unchanged,
    /// Written; the previous file (if there was one) is kept as `backup`.
    Merged { backup: Option<PathBuf> },
}

/// The file `kubectl` reads: `$KUBECONFIG`'s first entry, else `~/.kube/config`.
pub fn default_target() -> anyhow::Result<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| bad_input("HOME is not set: pass the kubeconfig to merge into"))?;
    Ok(Path::new(&home).join(".kube/config"))
}

/// Merge `source` (the cluster's kubeconfig) into `target` under `context`.
pub fn merge(source: &Path, target: &Path, context: &str) -> anyhow::Result<MergeOutcome> {
    if context.trim().is_empty() || context.contains(char::is_whitespace) {
        return Err(bad_input(format!(
            "--context {context:?}: a context name is one word (e.g. k3s-dev)"
        )));
    }
    let ours = read_yaml(source).map_err(|e| {
        bad_input(format!(
            "{}: {e} (configure writes it: `em-infra up --only configure`)",
            source.display()
        ))
    })?;
    let (cluster, user) = single_entries(&ours, source)?;
    let existing = if target.is_file() {
        Some(read_yaml(target).map_err(|e| {
            bad_input(format!(
                "{}: {e}; it was left as it is: fix it or merge into another file (KUBECONFIG)",
                target.display()
            ))
        })?)
    } else {
        None
    };
    let mut merged = existing.clone().unwrap_or_else(|| {
        json!({ "apiVersion": "v1", "kind": "Config", "preferences": {},
                "clusters": [], "users": [], "contexts": [] })
    });
    let root = merged
        .as_object_mut()
        .ok_or_else(|| bad_input(format!("{} is not a kubeconfig mapping", target.display())))?;
    upsert(root, "clusters", context, "cluster", cluster);
    upsert(root, "users", context, "user", user);
    upsert(
        root,
        "contexts",
        context,
        "context",
        json!({ "cluster": context, "user": context }),
    );
    let has_current = root
        .get("current-context")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty());
    if !has_current {
        root.insert("current-context".into(), Value::String(context.into()));
    }
    if existing.as_ref() == Some(&merged) {
        return Ok(MergeOutcome::Unchanged);
    }
    let backup = match existing {
        Some(_) => {
            let stamp = jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string();
            let name = target.file_name().map_or_else(
                || "config".to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let backup = target.with_file_name(format!("{name}.{stamp}.bak"));
            std::fs::copy(target, &backup)?;
            crate::fsutil::make_private(&backup)?;
            Some(backup)
        }
        None => None,
    };
    if let Some(dir) = target.parent() {
        crate::fsutil::ensure_private_dir(dir)?;
    }
    let text = serde_saphyr::to_string(&merged)?;
    crate::fsutil::write_secret(target, text.as_bytes())?;
    Ok(MergeOutcome::Merged { backup })
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    Ok(serde_saphyr::from_str(&text)?)
}

/// The one cluster and the one user of the cluster's own kubeconfig.
fn single_entries(config: &Value, path: &Path) -> anyhow::Result<(Value, Value)> {
    let one = |list: &str, key: &str| -> anyhow::Result<Value> {
        match config[list].as_array().map(Vec::as_slice) {
            Some([entry]) => Ok(entry[key].clone()),
            _ => Err(bad_input(format!(
                "{}: expected exactly one entry under {list} (the cluster's own kubeconfig)",
                path.display()
            ))),
        }
    };
    Ok((one("clusters", "cluster")?, one("users", "user")?))
}

/// Replace the entry named `name` in `root[list]` (or append it), leaving every other entry as
/// it was.
fn upsert(root: &mut Map<String, Value>, list: &str, name: &str, key: &str, body: Value) {
    let entries = root
        .entry(list.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entries.is_array() {
        *entries = Value::Array(Vec::new());
    }
    let entries = entries.as_array_mut().expect("made an array above");
    let entry = json!({ "name": name, key: body });
    match entries.iter_mut().find(|e| e["name"] == name) {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.0.0.11:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
";

    const MINE: &str = "apiVersion: v1
kind: Config
current-context: work
clusters:
- name: work
  cluster:
    server: https://work.example:6443
contexts:
- name: work
  context:
    cluster: work
    user: alice
    namespace: team
users:
- name: alice
  user:
    token: secret-of-alice
";

    #[test]
    fn merges_next_to_other_entries_keeps_current_context_and_reruns_as_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("k3s.yaml"), dir.path().join(".kube/config"));
        std::fs::write(&source, K3S).unwrap();
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, MINE).unwrap();

        let outcome = merge(&source, &target, "k3s-dev").unwrap();
        let MergeOutcome::Merged {
            backup: Some(backup),
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), MINE);
        let merged = read_yaml(&target).unwrap();
        let mine = read_yaml(&backup).unwrap();
        assert_eq!(merged["current-context"], "work", "the user's choice stays");
        for (list, name) in [
            ("clusters", "work"),
            ("contexts", "work"),
            ("users", "alice"),
        ] {
            let find = |v: &Value| {
                v[list]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == name)
                    .cloned()
            };
            assert_eq!(find(&merged), find(&mine), "{list}/{name} untouched");
        }
        let ctx = merged["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "k3s-dev")
            .unwrap()
            .clone();
        assert_eq!(
            ctx["context"],
            json!({"cluster": "k3s-dev", "user": "k3s-dev"})
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let before = std::fs::read_to_string(&target).unwrap();
        assert_eq!(
            merge(&source, &target, "k3s-dev").unwrap(),
            MergeOutcome::Unchanged
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), before);
    }

    #[test]
    fn a_new_file_gets_our_context_as_current() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("k3s.yaml"), dir.path().join("new/config"));
        std::fs::write(&source, K3S).unwrap();
        assert_eq!(
            merge(&source, &target, "lab").unwrap(),
            MergeOutcome::Merged { backup: None }
        );
        let merged = read_yaml(&target).unwrap();
        assert_eq!(merged["current-context"], "lab");
        assert_eq!(merged["clusters"][0]["name"], "lab");
        assert_eq!(
            merged["clusters"][0]["cluster"]["server"],
            "https://10.0.0.11:6443"
        );
    }

    #[test]
    fn bad_names_and_files_are_bad_input_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("k3s.yaml"), dir.path().join("config"));
        std::fs::write(&source, K3S).unwrap();
        std::fs::write(&target, "clusters: [unclosed").unwrap();
        for (context, why) in [
            ("k3s-dev", "merge into another file"),
            ("two words", "one word"),
        ] {
            let err = merge(&source, &target, context).unwrap_err();
            assert_eq!(
                crate::failure::kind_of(&err),
                Some(crate::failure::FailureKind::BadInput)
            );
            assert!(err.to_string().contains(why), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "clusters: [unclosed"
        );
    }
}
