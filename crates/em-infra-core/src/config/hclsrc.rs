//! HCL files as `check` reads them: the text, the parsed body *with source spans*, and the helpers
//! that turn spans into line numbers and expressions into values.
//!
//! hcl-rs's own `Body` carries no positions, so findings could not name a line. Its re-exported
//! `hcl::edit` parser (hcl-edit) keeps byte spans on every attribute, block and expression, so we
//! parse with that and convert an expression to an `hcl::Value` only where a value is needed.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hcl::edit::Span;
use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Attribute, Block, Body};
use hcl::eval::Evaluate;

use crate::config::finding::Finding;

/// One parsed HCL file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    pub body: Body,
}

impl SourceFile {
    /// Read and parse `path`. An unreadable file is an error; a syntax error is a finding (so one
    /// broken file does not hide the problems in the others).
    pub fn load(path: &Path) -> anyhow::Result<Result<SourceFile, Box<Finding>>> {
        let text =
            fs_err::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::parse(path, text))
    }

    /// Parse `text` as the contents of `path`.
    pub fn parse(path: &Path, text: String) -> Result<SourceFile, Box<Finding>> {
        match hcl::edit::parser::parse_body(&text) {
            Ok(body) => Ok(SourceFile {
                path: path.to_path_buf(),
                text,
                body,
            }),
            Err(err) => {
                let loc = err.location();
                Err(Box::new(Finding::new(
                    path,
                    Some(loc.line()),
                    "syntax",
                    Some(err.line().trim().to_string()),
                    format!(
                        "HCL syntax error at column {}: {}",
                        loc.column(),
                        err.message()
                    ),
                    "fix the syntax (`terraform fmt` shows the same error with context)",
                )))
            }
        }
    }

    /// Read a tfvars file: HCL, or JSON when the name ends in `.json` (Terraform's
    /// `*.tfvars.json`), as Terraform decides by the name too.
    pub fn load_tfvars(path: &Path) -> anyhow::Result<Result<SourceFile, Box<Finding>>> {
        if path.extension().is_none_or(|x| x != "json") {
            return Self::load(path);
        }
        let text =
            fs_err::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::parse_json_tfvars(path, &text))
    }

    /// A JSON tfvars document as HCL: each top-level `"name": value` becomes `name = value` on
    /// the line where the name stands in the JSON, so findings point at the right line. JSON
    /// values are valid HCL expressions (HCL objects accept `"key": value`), so the same merge
    /// and rules apply to both syntaxes.
    pub fn parse_json_tfvars(path: &Path, text: &str) -> Result<SourceFile, Box<Finding>> {
        let bad = |line: Option<usize>, msg: String| {
            Box::new(Finding::new(
                path,
                line,
                "syntax",
                None,
                msg,
                "write a JSON object of variable names to values, e.g. {\"worker_count\": 2}",
            ))
        };
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| bad(Some(e.line()), format!("JSON syntax error: {e}")))?;
        let serde_json::Value::Object(map) = doc else {
            return Err(bad(Some(1), "a tfvars JSON file must be one object".into()));
        };
        let positions = top_level_keys(text);
        let mut lines: Vec<String> = Vec::new();
        for (name, value) in &map {
            let line = positions
                .get(name)
                .map_or(lines.len() + 1, |i| line_at(text, *i));
            while lines.len() < line {
                lines.push(String::new());
            }
            // JSON strings are literal values; keep `${`/`%{` from turning into templates.
            let rendered = serde_json::to_string(value)
                .unwrap_or_default()
                .replace("${", "$${")
                .replace("%{", "%%{");
            let slot = &mut lines[line - 1];
            if !slot.is_empty() {
                slot.push('\n');
            }
            slot.push_str(&format!("{name} = {rendered}"));
        }
        // The HCL's lines were laid out to match the JSON's, so its spans give the JSON's lines.
        Self::parse(path, lines.join("\n") + "\n")
    }

    /// 1-based line of a byte offset.
    pub fn line_at(&self, offset: usize) -> usize {
        line_at(&self.text, offset)
    }

    /// 1-based line where a spanned item starts.
    pub fn line_of(&self, item: &impl Span) -> Option<usize> {
        item.span().map(|r| self.line_at(r.start))
    }

    /// The source text of a spanned item (for showing a bad expression as written).
    pub fn snippet(&self, item: &impl Span) -> Option<String> {
        let Range { start, end } = item.span()?;
        let raw = self.text.get(start..end)?.trim();
        // Multi-line expressions (objects, lists) are shown by their first line only.
        let first = raw.lines().next().unwrap_or_default();
        Some(if first.len() < raw.len() {
            format!("{first} …")
        } else {
            first.to_string()
        })
    }

    /// Top-level attributes of the body.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.body.attributes()
    }

    /// Top-level blocks with identifier `ident` (`variable`, `module`, `output`, …).
    pub fn blocks<'a>(&'a self, ident: &'a str) -> impl Iterator<Item = &'a Block> {
        self.body.get_blocks(ident)
    }
}

/// Byte offsets of the top-level keys of a JSON object (`{"a": {"a": 1}}` → only the outer `a`).
fn top_level_keys(text: &str) -> BTreeMap<String, usize> {
    let bytes = text.as_bytes();
    let mut keys = BTreeMap::new();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let end = (i + 1).min(bytes.len());
                if depth == 1
                    && text[end..].trim_start().starts_with(':')
                    && let Ok(key) = serde_json::from_str::<String>(&text[start..end])
                {
                    keys.entry(key).or_insert(start);
                }
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

/// 1-based line of byte `offset` in `text`.
pub fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The first label of a block (`variable "x"` → `x`), or "".
pub fn label(block: &Block) -> &str {
    block.labels.first().map_or("", |l| l.as_str())
}

/// Why an expression has no constant value (it refers to variables, calls functions, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotConstant(pub String);

impl fmt::Display for NotConstant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Evaluate a constant expression (what tfvars and variable defaults may contain) to a value.
/// Anything needing a variable or a function is refused, as Terraform refuses it in tfvars.
pub fn constant_value(expr: &Expression) -> Result<hcl::Value, NotConstant> {
    let expr: hcl::Expression = expr.clone().into();
    expr.evaluate(&hcl::eval::Context::new()).map_err(|err| {
        NotConstant(format!("not a constant value ({err}); tfvars may only hold literal values, no variables or functions"))
    })
}

/// One step of a path into a value: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a variable's value, rendered `gpu_workers[1].pci_id` or `node_placement["x"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValuePath(pub Vec<Seg>);

impl ValuePath {
    pub fn root() -> Self {
        ValuePath(Vec::new())
    }
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// `name` followed by this path: `gpu_workers[1].pci_id`. Keys that are not identifiers (map
    /// keys such as node names with dashes) are shown quoted in brackets.
    pub fn render(&self, name: &str) -> String {
        let mut out = name.to_string();
        for seg in &self.0 {
            match seg {
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) if is_identifier(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Seg::Key(k) => out.push_str(&format!(
                    "[{}]",
                    serde_json::to_string(k).unwrap_or_default()
                )),
            }
        }
        out
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The sub-expression of `expr` at `path` (deepest reachable), for pointing at the exact line of a
/// nested value. Stops at the last step the source spells out literally.
pub fn locate<'a>(expr: &'a Expression, path: &ValuePath) -> &'a Expression {
    let mut cur = expr;
    for seg in &path.0 {
        let next = match (unparen(cur), seg) {
            (Expression::Array(items), Seg::Index(i)) => items.get(*i),
            (Expression::Object(obj), Seg::Key(k)) => obj
                .iter()
                .find(|(key, _)| object_key_str(key).as_deref() == Some(k.as_str()))
                .map(|(_, v)| v.expr()),
            _ => None,
        };
        match next {
            Some(e) => cur = e,
            None => break,
        }
    }
    cur
}

fn unparen(expr: &Expression) -> &Expression {
    match expr {
        Expression::Parenthesis(p) => unparen(p.inner()),
        other => other,
    }
}

/// An object key as a string: identifiers and string literals (`"k3s-dev-cp-1" = ...`).
pub fn object_key_str(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Ident(id) => Some(id.as_str().to_string()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.as_str().to_string()),
        ObjectKey::Expression(Expression::Variable(v)) => Some(v.as_str().to_string()),
        ObjectKey::Expression(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SourceFile {
        SourceFile::parse(Path::new("t.tf"), text.to_string()).expect("parses")
    }

    #[test]
    fn spans_give_lines() {
        let f = parse("# c\na = 1\n\nvariable \"x\" {\n  default = 2\n}\n");
        let attr = f.attributes().next().unwrap();
        assert_eq!(f.line_of(attr), Some(2));
        let block = f.blocks("variable").next().unwrap();
        assert_eq!(f.line_of(block), Some(4));
        let default = block.body.get_attribute("default").unwrap();
        assert_eq!(f.line_of(default), Some(5));
    }

    #[test]
    fn nested_paths_locate_the_right_line() {
        let f =
            parse("gpu_workers = [\n  { mapping = \"a\" },\n  {\n    pci_id = \"x\"\n  },\n]\n");
        let attr = f.attributes().next().unwrap();
        let path = ValuePath::root().index(1).key("pci_id");
        assert_eq!(path.render("gpu_workers"), "gpu_workers[1].pci_id");
        let e = locate(&attr.value, &path);
        assert_eq!(f.line_of(e), Some(4));
        // A path that leaves the literal stops at the deepest known part.
        let e = locate(&attr.value, &ValuePath::root().index(7));
        assert_eq!(f.line_of(e), Some(1));
    }

    #[test]
    fn syntax_errors_are_findings_with_a_line() {
        let err =
            SourceFile::parse(Path::new("bad.tfvars"), "a = 1\nb = = 2\n".into()).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("syntax"), "{err:?}");
    }

    #[test]
    fn constants_evaluate_and_references_do_not() {
        let f = parse("a = -3\nb = { x = [1, \"s\"] }\nc = var.x\nd = upper(\"a\")\n");
        let attrs: Vec<_> = f.attributes().collect();
        assert_eq!(
            constant_value(&attrs[0].value).unwrap(),
            hcl::Value::from(-3)
        );
        assert!(constant_value(&attrs[1].value).unwrap().is_object());
        assert!(constant_value(&attrs[2].value).is_err());
        assert!(constant_value(&attrs[3].value).is_err());
    }

    #[test]
    fn json_tfvars_keep_their_lines() {
        let text = "{\n  \"network_cidr\": \"10.0.0.0/24\",\n  \"gpu_workers\": [\n    {\"mapping\": \"gpu0\"}\n  ],\n  \"worker_count\": 2\n}\n";
        let f = SourceFile::parse_json_tfvars(Path::new("x.tfvars.json"), text).unwrap();
        let attrs: Vec<_> = f
            .attributes()
            .map(|a| (a.key.as_str().to_string(), f.line_of(a)))
            .collect();
        assert_eq!(
            attrs,
            [
                ("network_cidr".into(), Some(2)),
                ("gpu_workers".into(), Some(3)),
                ("worker_count".into(), Some(6))
            ]
        );
        let gpu = f.attributes().nth(1).unwrap();
        let v = constant_value(&gpu.value).unwrap();
        assert_eq!(
            v.as_array().unwrap()[0].as_object().unwrap()["mapping"],
            hcl::Value::from("gpu0")
        );
        // A template in a JSON string stays a literal string.
        let f = SourceFile::parse_json_tfvars(Path::new("x.json"), "{\"a\": \"${x}\"}").unwrap();
        let a = f.attributes().next().unwrap();
        assert_eq!(constant_value(&a.value).unwrap(), hcl::Value::from("${x}"));
        let err =
            SourceFile::parse_json_tfvars(Path::new("x.json"), "{\n  \"a\": ,\n}").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn map_keys_render_quoted() {
        let p = ValuePath::root().key("k3s-dev-cp-1");
        assert_eq!(
            p.render("node_placement"),
            "node_placement[\"k3s-dev-cp-1\"]"
        );
    }
}
