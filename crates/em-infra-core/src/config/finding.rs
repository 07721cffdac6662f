//! One problem `em-infra check` found: where it is, what is wrong and how to fix it.
//!
//! Every check (Terraform wiring, tfvars syntax, the contract's input rules) reports the same
//! shape, so the human and JSON renderings and the tests treat them alike.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A problem in a file, pointing at the field a user has to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file to edit (absolute until [`Finding::relative_to`] shortens it for display).
    pub file: PathBuf,
    /// 1-based line, when the source position is known.
    pub line: Option<usize>,
    /// The variable name, a path into it (`gpu_workers[1].pci_id`), or a Terraform address
    /// (`module.topology.worker_cnt`) for wiring problems.
    pub field: String,
    /// The offending value as written (HCL-like rendering); `None` when the value is missing.
    pub value: Option<String>,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Finding {
    pub fn new(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        field: impl Into<String>,
        value: Option<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            file: file.into(),
            line,
            field: field.into(),
            value,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The same finding with `file` shown relative to `base` when it lies below it (shorter
    /// output, and stable across checkouts so tests and users can compare messages).
    /// Paths inside the message and the fix are shortened the same way.
    pub fn relative_to(mut self, base: &Path) -> Self {
        if let Ok(rel) = self.file.strip_prefix(base) {
            self.file = rel.to_path_buf();
        }
        let prefix = format!("{}/", base.display());
        if prefix.len() > 1 {
            self.message = self.message.replace(&prefix, "");
            self.fix = self.fix.replace(&prefix, "");
        }
        self
    }

    /// The variable the finding is about: the leading identifier of `field`
    /// (`gpu_workers[1].pci_id` → `gpu_workers`).
    pub fn variable(&self) -> &str {
        let end = self.field.find(['[', '.']).unwrap_or(self.field.len());
        &self.field[..end]
    }

    /// `file:line` (or just `file` when the line is unknown).
    pub fn location(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }
}

impl fmt::Display for Finding {
    /// `<file>:<line>: <field> = <value>: <problem>` — the line the human output prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "{}: {} = {}: {}",
                self.location(),
                self.field,
                value,
                self.message
            ),
            None => write!(f, "{}: {}: {}", self.location(), self.field, self.message),
        }
    }
}

/// Render a value for a finding: HCL-like (`"text"`, `3`, `[1, 2]`, `{ a = 1 }`, `null`), short.
pub fn render_value(value: &hcl::Value) -> String {
    let mut out = String::new();
    render_into(value, &mut out);
    // A whole list of objects on one line is unreadable; the field path already says which part.
    const MAX: usize = 120;
    if out.chars().count() > MAX {
        let cut: String = out.chars().take(MAX - 1).collect();
        return format!("{cut}…");
    }
    out
}

fn render_into(value: &hcl::Value, out: &mut String) {
    match value {
        hcl::Value::Null => out.push_str("null"),
        hcl::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        hcl::Value::Number(n) => out.push_str(&n.to_string()),
        hcl::Value::String(s) => {
            out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| s.clone()))
        }
        hcl::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(item, out);
            }
            out.push(']');
        }
        hcl::Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{ ");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(" = ");
                render_into(v, out);
            }
            out.push_str(" }");
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions on misspelt names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `name`, if it is close enough to be a plausible typo
/// (at most a third of the name's length, and at least 2 edits tolerated for short names).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("worker_count", "worker_count"), 0);
        assert_eq!(edit_distance("worker_cnt", "worker_count"), 2);
        assert_eq!(edit_distance("gatway", "gateway"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn did_you_mean_picks_closest_plausible() {
        let names = ["worker_count", "control_plane_count", "gateway"];
        assert_eq!(did_you_mean("worker_cout", names), Some("worker_count"));
        assert_eq!(did_you_mean("gatway", names), Some("gateway"));
        assert_eq!(did_you_mean("completely_else", names), None);
    }

    #[test]
    fn variable_is_the_leading_identifier() {
        let f = Finding::new("x", None, "gpu_workers[1].pci_id", None, "m", "f");
        assert_eq!(f.variable(), "gpu_workers");
        let f = Finding::new("x", None, "gateway", None, "m", "f");
        assert_eq!(f.variable(), "gateway");
    }

    #[test]
    fn display_matches_the_documented_shape() {
        let f = Finding::new(
            "a.tfvars",
            Some(3),
            "gateway",
            Some("\"1.2.3.4\"".into()),
            "outside",
            "fix",
        );
        assert_eq!(f.to_string(), "a.tfvars:3: gateway = \"1.2.3.4\": outside");
    }

    #[test]
    fn render_value_is_hcl_like() {
        let v: hcl::Value = hcl::from_str("x = [1, \"a\", null, { b = true }]").unwrap();
        let v = v.as_object().unwrap()["x"].clone();
        assert_eq!(render_value(&v), "[1, \"a\", null, { b = true }]");
    }
}
