//! The environment's variable declarations and a tfvars file, merged the way Terraform merges
//! them: a tfvars value wins over the declared default, converted to the declared type.
//!
//! Every value keeps where it came from (file, line, and the expression as written), so a rule
//! that fails deep inside `gpu_workers` can still point at the exact line to edit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hcl::Value;
use hcl::edit::expr::Expression;

use crate::config::finding::{Finding, did_you_mean, render_value};
use crate::config::hclsrc::{SourceFile, ValuePath, constant_value, label, locate};
use crate::config::types::{Type, TypeError, convert};

/// One `variable "name" { ... }` block.
#[derive(Debug, Clone)]
pub struct VarDecl {
    pub name: String,
    pub file: Arc<SourceFile>,
    pub line: Option<usize>,
    /// `None` when the block has no `type` (any value is accepted, unconverted).
    pub ty: Option<Type>,
    /// The declared default, already converted to `ty`; `None` means the variable is required.
    pub default: Option<Value>,
    /// The default's expression as written, for pointing at it.
    pub default_expr: Option<Expression>,
    /// `nullable = false`: a null value means "use the default" (Terraform ≥ 1.1 semantics).
    pub nullable: bool,
}

impl VarDecl {
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

/// Every variable an environment (a Terraform root module) declares, by name.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    pub vars: BTreeMap<String, VarDecl>,
}

impl Declarations {
    /// Collect the `variable` blocks of already-parsed files. Problems in the declarations
    /// themselves (unknown type syntax, a default that does not fit the type) are findings.
    pub fn from_files(files: &[Arc<SourceFile>]) -> (Declarations, Vec<Finding>) {
        let mut decls = Declarations::default();
        let mut findings = Vec::new();
        for file in files {
            for block in file.blocks("variable") {
                let name = label(block).to_string();
                let line = file.line_of(block);
                let ty = match block.body.get_attribute("type") {
                    None => None,
                    Some(attr) => match Type::parse(&attr.value) {
                        Ok(ty) => Some(ty),
                        Err(msg) => {
                            findings.push(Finding::new(
                                &file.path,
                                file.line_of(attr),
                                format!("variable.{name}.type"),
                                file.snippet(&attr.value),
                                format!("cannot read this type constraint: {msg}"),
                                "use Terraform's type syntax: string, number, bool, list(T), map(T), object({...})",
                            ));
                            None
                        }
                    },
                };
                let nullable = match block.body.get_attribute("nullable").map(|a| &a.value) {
                    Some(Expression::Bool(b)) => *b.value(),
                    _ => true,
                };
                let default_expr = block.body.get_attribute("default").map(|a| a.value.clone());
                let default = match &default_expr {
                    None => None,
                    Some(expr) => {
                        match constant_value(expr) {
                            Err(err) => {
                                findings.push(Finding::new(
                                    &file.path,
                                    file.line_of(expr),
                                    format!("variable.{name}.default"),
                                    file.snippet(expr),
                                    err.to_string(),
                                    "a variable default must be a literal value",
                                ));
                                None
                            }
                            Ok(v) => match &ty {
                                None => Some(v),
                                Some(ty) => match convert(&v, ty) {
                                    Ok(v) => Some(v),
                                    Err(errs) => {
                                        for e in errs {
                                            findings.push(Finding::new(
                                            &file.path,
                                            file.line_of(locate(expr, &e.path)),
                                            e.path.render(&format!("variable.{name}.default")),
                                            e.value.as_ref().map(render_value),
                                            format!("the default does not fit the declared type: {}", e.message),
                                            e.fix,
                                        ));
                                        }
                                        None
                                    }
                                },
                            },
                        }
                    }
                };
                // `default = null` arrives here as `Some(Null)`: a real default, not "required".
                decls.vars.insert(
                    name.clone(),
                    VarDecl {
                        name,
                        file: file.clone(),
                        line,
                        ty,
                        default,
                        default_expr,
                        nullable,
                    },
                );
            }
        }
        (decls, findings)
    }
}

/// Where a variable's value came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Assigned in the tfvars file.
    Tfvars {
        file: Arc<SourceFile>,
        expr: Expression,
    },
    /// The declared default.
    Default { decl: Box<VarDecl> },
}

/// A variable's final value (converted to its type) and its origin.
#[derive(Debug, Clone)]
pub struct Setting {
    pub value: Value,
    pub origin: Origin,
}

impl Setting {
    /// File and line of the part of this value at `path`.
    pub fn locate(&self, path: &ValuePath) -> (PathBuf, Option<usize>) {
        match &self.origin {
            Origin::Tfvars { file, expr } => (file.path.clone(), file.line_of(locate(expr, path))),
            Origin::Default { decl } => match &decl.default_expr {
                Some(expr) => (
                    decl.file.path.clone(),
                    decl.file.line_of(locate(expr, path)),
                ),
                None => (decl.file.path.clone(), decl.line),
            },
        }
    }
}

/// The merged inputs of one environment: every declared variable that has a value.
#[derive(Debug, Clone)]
pub struct Values {
    /// The tfvars file the values were read from.
    pub tfvars: PathBuf,
    pub settings: BTreeMap<String, Setting>,
    pub decls: Declarations,
}

impl Values {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.settings.get(name).map(|s| &s.value)
    }

    /// A finding about `name` at `path` inside its value, located where the value was written
    /// (the tfvars line, or the default in variables.tf).
    pub fn finding(
        &self,
        name: &str,
        path: &ValuePath,
        value: Option<&Value>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        let (file, line) = match self.settings.get(name) {
            Some(s) => s.locate(path),
            None => match self.decls.vars.get(name) {
                Some(d) => (d.file.path.clone(), d.line),
                None => (self.tfvars.clone(), None),
            },
        };
        Finding::new(
            file,
            line,
            path.render(name),
            value.map(render_value),
            message,
            fix,
        )
    }
}

/// Read `tfvars` and merge it over the declarations' defaults. Findings cover: syntax errors,
/// non-literal values, variables the environment does not declare (with a suggestion), values
/// that do not fit the declared type, and required variables left unset.
pub fn merge(
    decls: &Declarations,
    tfvars_path: &Path,
    tfvars: Result<SourceFile, Box<Finding>>,
) -> (Values, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut settings = BTreeMap::new();
    let mut assigned: BTreeMap<String, (Value, Arc<SourceFile>, Expression)> = BTreeMap::new();

    match tfvars {
        Err(f) => findings.push(*f),
        Ok(file) => {
            let file = Arc::new(file);
            for block in file.body.blocks() {
                findings.push(Finding::new(
                    &file.path,
                    file.line_of(block),
                    block.ident.as_str(),
                    None,
                    "a tfvars file holds only `name = value` assignments, not blocks",
                    format!(
                        "write `{} = {{ ... }}` if you meant an object value",
                        block.ident.as_str()
                    ),
                ));
            }
            for attr in file.attributes() {
                let name = attr.key.as_str().to_string();
                if !decls.vars.contains_key(&name) {
                    let fix = match did_you_mean(&name, decls.vars.keys().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`? Rename `{name}` to `{s}`"),
                        None => format!(
                            "remove it; the variables this environment declares are: {}",
                            decls.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    };
                    findings.push(Finding::new(
                        &file.path,
                        file.line_of(attr),
                        &name,
                        file.snippet(&attr.value),
                        "unknown variable: the environment declares no variable of this name (Terraform would only warn and ignore the value)",
                        fix,
                    ));
                    continue;
                }
                match constant_value(&attr.value) {
                    Ok(v) => {
                        assigned.insert(name, (v, file.clone(), attr.value.clone()));
                    }
                    Err(err) => findings.push(Finding::new(
                        &file.path,
                        file.line_of(attr),
                        &name,
                        file.snippet(&attr.value),
                        err.to_string(),
                        "write the value itself (a string, number, bool, list or object)",
                    )),
                }
            }
        }
    }

    for (name, decl) in &decls.vars {
        let from_tfvars = assigned.remove(name);
        let (raw, origin) = match from_tfvars {
            // nullable = false: null asks for the default, exactly as Terraform does.
            Some((Value::Null, _, _)) if !decl.nullable && decl.default.is_some() => (
                decl.default.clone().unwrap_or(Value::Null),
                Origin::Default {
                    decl: Box::new(decl.clone()),
                },
            ),
            Some((v, file, expr)) => (v, Origin::Tfvars { file, expr }),
            None => match &decl.default {
                Some(d) => (
                    d.clone(),
                    Origin::Default {
                        decl: Box::new(decl.clone()),
                    },
                ),
                None => {
                    findings.push(Finding::new(
                        tfvars_path,
                        None,
                        name,
                        None,
                        format!(
                            "required variable is not set (declared without a default at {}:{})",
                            decl.file.path.display(),
                            decl.line.unwrap_or(0)
                        ),
                        format!("add `{name} = <value>` to {}", tfvars_path.display()),
                    ));
                    continue;
                }
            },
        };
        let setting = Setting {
            value: raw.clone(),
            origin,
        };
        if raw.is_null() && !decl.nullable {
            let (file, line) = setting.locate(&ValuePath::root());
            findings.push(Finding::new(
                file,
                line,
                name,
                Some("null".into()),
                "this variable may not be null (it is declared nullable = false and has no default)",
                format!("set `{name}` to a value"),
            ));
            continue;
        }
        let value = match &decl.ty {
            None => raw,
            Some(ty) => match convert(&raw, ty) {
                Ok(v) => v,
                Err(errs) => {
                    findings.extend(errs.into_iter().map(|e| type_finding(name, &setting, e)));
                    continue;
                }
            },
        };
        settings.insert(
            name.clone(),
            Setting {
                value,
                origin: setting.origin,
            },
        );
    }

    (
        Values {
            tfvars: tfvars_path.to_path_buf(),
            settings,
            decls: decls.clone(),
        },
        findings,
    )
}

fn type_finding(name: &str, setting: &Setting, e: TypeError) -> Finding {
    let (file, line) = setting.locate(&e.path);
    Finding::new(
        file,
        line,
        e.path.render(name),
        e.value.as_ref().map(render_value),
        e.message,
        e.fix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLS: &str = r#"
variable "worker_count" {
  type     = number
  default  = 2
  nullable = false
}
variable "network_cidr" {
  type     = string
  nullable = false
}
variable "vlan_id" {
  type    = number
  default = null
}
variable "gpu_workers" {
  type = list(object({ mapping = optional(string), pci_id = optional(string) }))
  default = []
}
"#;

    fn decls() -> Declarations {
        let f = Arc::new(SourceFile::parse(Path::new("variables.tf"), DECLS.into()).unwrap());
        let (d, findings) = Declarations::from_files(&[f]);
        assert!(findings.is_empty(), "{findings:?}");
        d
    }

    fn merge_text(text: &str) -> (Values, Vec<Finding>) {
        let p = Path::new("t.tfvars");
        merge(&decls(), p, SourceFile::parse(p, text.into()))
    }

    #[test]
    fn declarations_know_required_and_nullable() {
        let d = decls();
        assert!(d.vars["network_cidr"].required());
        assert!(!d.vars["network_cidr"].nullable);
        assert!(!d.vars["vlan_id"].required(), "default = null is a default");
        assert_eq!(d.vars["worker_count"].line, Some(2));
    }

    #[test]
    fn tfvars_override_defaults_and_convert() {
        let (v, f) = merge_text("network_cidr = \"10.0.0.0/24\"\nworker_count = \"3\"\n");
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(v.get("worker_count"), Some(&Value::from(3)));
        assert_eq!(v.get("vlan_id"), Some(&Value::Null));
        let (file, line) = v.settings["worker_count"].locate(&ValuePath::root());
        assert_eq!((file.as_path(), line), (Path::new("t.tfvars"), Some(2)));
        let (file, line) = v.settings["vlan_id"].locate(&ValuePath::root());
        assert_eq!(
            (file.as_path(), line),
            (Path::new("variables.tf"), Some(13))
        );
    }

    #[test]
    fn unknown_variables_get_a_suggestion() {
        let (_, f) = merge_text("network_cidr = \"10.0.0.0/24\"\nworker_cont = 3\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].field, "worker_cont");
        assert_eq!(f[0].line, Some(2));
        assert!(f[0].fix.contains("`worker_count`"), "{:?}", f[0]);
    }

    #[test]
    fn required_missing_and_null_handling() {
        let (_, f) = merge_text("worker_count = null\n");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].field, "network_cidr");
        assert!(f[0].message.contains("required"));
        // nullable = false + null → the default (2), not an error.
        let (v, f) = merge_text("network_cidr = \"10.0.0.0/24\"\nworker_count = null\n");
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(v.get("worker_count"), Some(&Value::from(2)));
        let (_, f) = merge_text("network_cidr = null\n");
        assert_eq!(f[0].field, "network_cidr");
        assert!(f[0].message.contains("null"));
    }

    #[test]
    fn nested_type_errors_point_at_the_nested_line() {
        let (_, f) = merge_text(
            "network_cidr = \"10.0.0.0/24\"\ngpu_workers = [\n  { mapping = \"a\" },\n  { pci_idd = \"x\" },\n]\n",
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].field, "gpu_workers[1].pci_idd");
        assert_eq!(f[0].line, Some(4));
    }
}
