//! Edits of an environment's `terraform.tfvars` that keep every comment and the layout (hcl-edit),
//! and the one way such a file is written: checked by the same rules as `em-infra check` first,
//! the previous file kept as a backup, then replaced atomically. `init` writes the file this way;
//! day-2 commands that change the cluster's shape edit it this way.

use std::path::{Path, PathBuf};

use hcl_edit::Decorate;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Body};

use crate::config::{Environment, Project};
use crate::failure::bad_input;

/// A tfvars file being edited.
#[derive(Debug, Clone)]
pub struct TfvarsEdit {
    body: Body,
}

impl TfvarsEdit {
    /// Parse `text` (`what` names it in errors).
    pub fn parse(text: &str, what: &Path) -> anyhow::Result<Self> {
        let body = hcl_edit::parser::parse_body(text)
            .map_err(|e| bad_input(format!("{} does not parse: {e}", what.display())))?;
        Ok(TfvarsEdit { body })
    }

    /// Replace `key`'s value keeping the spacing around it and its trailing comment; append the
    /// attribute when the file has it only as a comment (or not at all).
    pub fn set(&mut self, key: &str, value: Expression) {
        match self.body.get_attribute_mut(key) {
            Some(mut attr) => {
                let decor = attr.value_mut().decor().clone();
                *attr.value_mut() = value;
                *attr.value_mut().decor_mut() = decor;
            }
            None => self
                .body
                .push(Attribute::new(hcl_edit::Ident::new(key), value)),
        }
    }

    /// Add a comment line (with its `#` and newline) right above `key`, after the comments
    /// already there.
    pub fn comment_above(&mut self, key: &str, line: &str) {
        if let Some(mut attr) = self.body.get_attribute_mut(key) {
            let prefix = attr
                .decor()
                .prefix()
                .map(|p| p.to_string())
                .unwrap_or_default();
            attr.decor_mut().set_prefix(format!("{prefix}{line}"));
        }
    }

    /// Append `item` to the list `key` holds (the attribute is created as `[item]` when absent).
    /// `Err` when `key` holds something else than a list.
    pub fn push_to_list(&mut self, key: &str, item: Expression) -> anyhow::Result<()> {
        match self.body.get_attribute_mut(key) {
            Some(mut attr) => match attr.value_mut().as_array_mut() {
                Some(list) => {
                    list.push(item);
                    Ok(())
                }
                None => Err(bad_input(format!("{key} is not a list: edit it by hand"))),
            },
            None => {
                let mut list = hcl_edit::expr::Array::new();
                list.push(item);
                self.set(key, Expression::from(list));
                Ok(())
            }
        }
    }

    /// Remove the last item of the list `key` holds; `Err` when it is not a non-empty list.
    pub fn pop_from_list(&mut self, key: &str) -> anyhow::Result<()> {
        let popped = self
            .body
            .get_attribute_mut(key)
            .and_then(|mut attr| attr.value_mut().as_array_mut().and_then(|l| l.pop()));
        popped
            .map(|_| ())
            .ok_or_else(|| bad_input(format!("{key} is not a non-empty list: edit it by hand")))
    }

    pub fn number(&self, key: &str) -> Option<u64> {
        self.body.get_attribute(key)?.value.as_number()?.as_u64()
    }

    pub fn string(&self, key: &str) -> Option<String> {
        Some(self.body.get_attribute(key)?.value.as_str()?.to_string())
    }

    /// The file's text.
    pub fn render(&self) -> String {
        self.body.to_string()
    }
}

/// `f` run on `text` written as a candidate tfvars beside the environment's (so relative paths
/// resolve the same); the candidate is removed afterwards whatever `f` returns.
pub fn with_candidate<T>(
    env: &Environment,
    text: &str,
    f: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let candidate = env.dir.join(".terraform.tfvars.candidate");
    crate::fsutil::write_atomic(&candidate, text.as_bytes(), 0o644)?;
    let result = f(&candidate);
    let _ = std::fs::remove_file(&candidate);
    result
}

/// `check`'s findings on the tfvars at `path`, one line (`field: message (fix: …); …`), or
/// `None` when every rule holds.
pub fn check_findings(
    project: &Project,
    env: &Environment,
    path: &Path,
) -> anyhow::Result<Option<String>> {
    let report = crate::config::check::check_environment(project, env, Some(path))?;
    Ok((!report.ok()).then(|| {
        report
            .findings
            .iter()
            .map(|f| format!("{}: {} (fix: {})", f.field, f.message, f.fix))
            .collect::<Vec<_>>()
            .join("; ")
    }))
}

/// Check `text` as the environment's tfvars, then put it in place atomically; the previous file,
/// if any, is kept as a 0600 backup beside it (returned). Findings are bad input, and nothing is
/// written.
pub fn write_checked(
    project: &Project,
    env: &Environment,
    target: &Path,
    text: &str,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(findings) = with_candidate(env, text, |c| check_findings(project, env, c))? {
        return Err(bad_input(format!(
            "the tfvars would not pass check: {findings}; nothing was written"
        )));
    }
    let backup = if target.exists() {
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let backup = target.with_file_name(format!("terraform.tfvars.{stamp}.bak"));
        std::fs::copy(target, &backup)?;
        crate::fsutil::make_private(&backup)?;
        Some(backup)
    } else {
        None
    };
    crate::fsutil::write_atomic(target, text.as_bytes(), 0o644)?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_alignment_and_trailing_comments() {
        let text =
            "# head\nworker_count = 2 # workers\nvm_id_base     = 9100 # base\n# dns = [1]\n";
        let mut edit = TfvarsEdit::parse(text, Path::new("t.tfvars")).unwrap();
        edit.set("worker_count", Expression::from(3u64));
        edit.set("vm_id_base", Expression::from(9200u64));
        edit.set("cluster_name", Expression::from("lab"));
        edit.comment_above("worker_count", "# note\n");
        assert_eq!(edit.number("worker_count"), Some(3));
        assert_eq!(edit.string("cluster_name").as_deref(), Some("lab"));
        assert_eq!(
            edit.render(),
            // A new attribute goes after the last one; the file's closing comments stay last.
            "# head\n# note\nworker_count = 3 # workers\nvm_id_base     = 9200 # base\ncluster_name = \"lab\"\n# dns = [1]\n"
        );
    }

    #[test]
    fn list_items_are_appended_and_removed_at_the_end() {
        let text = "gpu_workers = [] # GPUs\n";
        let mut edit = TfvarsEdit::parse(text, Path::new("t.tfvars")).unwrap();
        let item =
            |m: &str| hcl_edit::parser::parse_expr(&format!("{{ mapping = \"{m}\" }}")).unwrap();
        edit.push_to_list("gpu_workers", item("gpu0")).unwrap();
        edit.push_to_list("gpu_workers", item("gpu1")).unwrap();
        let both = edit.render();
        assert!(both.contains("mapping = \"gpu0\""), "{both}");
        assert!(both.contains("mapping = \"gpu1\""), "{both}");
        assert!(both.trim_end().ends_with("# GPUs"), "{both}");
        edit.pop_from_list("gpu_workers").unwrap();
        let one = edit.render();
        assert!(one.contains("gpu0") && !one.contains("gpu1"), "{one}");
        edit.pop_from_list("gpu_workers").unwrap();
        assert!(edit.pop_from_list("gpu_workers").is_err());
        let mut scalar = TfvarsEdit::parse("gpu_workers = 3\n", Path::new("t.tfvars")).unwrap();
        assert!(scalar.push_to_list("gpu_workers", item("x")).is_err());
    }

    #[test]
    fn text_that_is_not_hcl_is_bad_input() {
        let err = TfvarsEdit::parse("worker_count = = 2", Path::new("t.tfvars")).unwrap_err();
        assert_eq!(
            crate::failure::kind_of(&err),
            Some(crate::failure::FailureKind::BadInput)
        );
    }
}
