//! References inside a module: every `var.x` is a declared variable, every `local.x` a defined
//! local, every `module.x` a called module and every `module.x.y` one of its outputs.

use std::collections::{BTreeMap, BTreeSet};

use hcl::edit::Span;
use hcl::edit::expr::{Expression, TraversalOperator};
use hcl::edit::visit::{Visit, visit_expr};

use crate::config::finding::{Finding, did_you_mean};
use crate::config::hclsrc::{SourceFile, label};

use super::{Module, rel};

/// One `var.x`, `local.x` or `module.x[.y]` reference and where it is.
struct Ref {
    root: String,
    name: String,
    /// For `module.x.y` (or `module.x["k"].y`): the output `y`.
    attr: Option<String>,
    span: Option<std::ops::Range<usize>>,
}

fn refs_in(file: &SourceFile) -> Vec<Ref> {
    struct Refs(Vec<Ref>);
    impl Visit for Refs {
        fn visit_expr(&mut self, expr: &Expression) {
            if let Expression::Traversal(t) = expr
                && let Expression::Variable(v) = &t.expr
                && matches!(v.as_str(), "var" | "local" | "module")
                && let Some(TraversalOperator::GetAttr(name)) =
                    t.operators.first().map(|o| o.value())
            {
                let ops: Vec<&TraversalOperator> = t.operators.iter().map(|o| o.value()).collect();
                // module.x.y, or module.x["key"].y for a module with count/for_each.
                let attr = match ops.as_slice() {
                    [_, TraversalOperator::GetAttr(a), ..] => Some(a.as_str().to_string()),
                    [
                        _,
                        TraversalOperator::Index(_),
                        TraversalOperator::GetAttr(a),
                        ..,
                    ] => Some(a.as_str().to_string()),
                    _ => None,
                };
                self.0.push(Ref {
                    root: v.as_str().to_string(),
                    name: name.as_str().to_string(),
                    attr,
                    span: expr.span(),
                });
            }
            visit_expr(self, expr);
        }
    }
    let mut refs = Refs(Vec::new());
    refs.visit_body(&file.body);
    refs.0
}

/// Every `var.x` a module reads is a variable it declares, every `local.x` a local it defines,
/// every `module.x` a module it calls, and `module.x.y` an output that module declares.
pub(super) fn undeclared_refs(module: &Module) -> anyhow::Result<Vec<Finding>> {
    let declared: Vec<&str> = module.decls.vars.keys().map(String::as_str).collect();
    let locals: BTreeSet<String> = module
        .files
        .iter()
        .flat_map(|f| {
            f.blocks("locals")
                .flat_map(|b| b.body.attributes().map(|a| a.key.as_str().to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    // Outputs of each called module; `None` when the source cannot be read offline.
    let mut calls: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    for call in module.calls() {
        let outputs = match call.local.as_ref().filter(|d| d.is_dir()) {
            Some(dir) => {
                let (child, _) = Module::load(dir)?;
                Some(
                    child
                        .files
                        .iter()
                        .flat_map(|f| {
                            f.blocks("output")
                                .map(|b| label(b).to_string())
                                .collect::<Vec<_>>()
                        })
                        .collect(),
                )
            }
            None => None,
        };
        calls.insert(call.name, outputs);
    }

    let mut findings = Vec::new();
    for file in &module.files {
        for r in refs_in(file) {
            let line = r.span.as_ref().map(|s| file.line_at(s.start));
            let (field, message, fix) = match r.root.as_str() {
                "var" if !module.decls.vars.contains_key(&r.name) => (
                    format!("var.{}", r.name),
                    format!(
                        "refers to variable \"{}\", which this module does not declare",
                        r.name
                    ),
                    match did_you_mean(&r.name, declared.iter().copied()) {
                        Some(s) => format!("did you mean `var.{s}`?"),
                        None => format!(
                            "declare variable \"{}\" in {}/variables.tf, or remove the reference",
                            r.name,
                            rel(&module.dir)
                        ),
                    },
                ),
                "local" if !locals.contains(&r.name) => (
                    format!("local.{}", r.name),
                    format!(
                        "refers to local value \"{}\", which no locals block of this module defines",
                        r.name
                    ),
                    match did_you_mean(&r.name, locals.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `local.{s}`?"),
                        None => format!(
                            "define `{}` in a locals block, or remove the reference",
                            r.name
                        ),
                    },
                ),
                "module" => match calls.get(&r.name) {
                    None => (
                        format!("module.{}", r.name),
                        format!(
                            "refers to module \"{}\", which this module does not call",
                            r.name
                        ),
                        match did_you_mean(&r.name, calls.keys().map(String::as_str)) {
                            Some(s) => format!("did you mean `module.{s}`?"),
                            None => format!(
                                "add a module \"{}\" block, or remove the reference",
                                r.name
                            ),
                        },
                    ),
                    Some(Some(outputs))
                        if r.attr.as_ref().is_some_and(|a| !outputs.contains(a)) =>
                    {
                        let attr = r.attr.clone().unwrap_or_default();
                        (
                            format!("module.{}.{attr}", r.name),
                            format!("module \"{}\" has no output \"{attr}\"", r.name),
                            match did_you_mean(&attr, outputs.iter().map(String::as_str)) {
                                Some(s) => format!("did you mean `module.{}.{s}`?", r.name),
                                None => format!(
                                    "declare output \"{attr}\" in the module, or use one of: {}",
                                    outputs.iter().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            },
                        )
                    }
                    _ => continue,
                },
                _ => continue,
            };
            findings.push(Finding::new(&file.path, line, field, None, message, fix));
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use crate::config::wiring::check;
    use crate::config::wiring::test_support::{OUTPUTS, fields, tree};

    #[test]
    fn undeclared_var_refs_inside_templates_and_nested_blocks() {
        let t = tree(&[
            (
                "env/main.tf",
                "variable \"name\" {}\nlocals {\n  a = \"${var.nmae}\"\n}\nresource \"x\" \"y\" {\n  dynamic \"d\" {\n    for_each = var.list\n  }\n}\n",
            ),
            ("env/outputs.tf", OUTPUTS),
        ]);
        let f = check(&t.path().join("env")).unwrap();
        assert_eq!(fields(&f), ["var.list", "var.nmae"]);
        let typo = f.iter().find(|f| f.field == "var.nmae").unwrap();
        assert_eq!(typo.line, Some(3));
        assert!(typo.fix.contains("var.name"));
        assert_eq!(
            f.iter().find(|f| f.field == "var.list").unwrap().line,
            Some(7)
        );
    }

    #[test]
    fn undeclared_locals_modules_and_module_outputs() {
        let t = tree(&[
            (
                "env/main.tf",
                "locals {\n  nodes = module.m.nodez\n}\nmodule \"m\" {\n  source = \"../mod\"\n}\nlocals {\n  a = local.nodes\n  b = local.nods\n  c = module.n.x\n  d = module.m[\"k\"].nodes\n  e = module.m\n}\n",
            ),
            ("env/outputs.tf", OUTPUTS),
            ("mod/outputs.tf", "output \"nodes\" { value = 1 }\n"),
        ]);
        let f = check(&t.path().join("env")).unwrap();
        assert_eq!(fields(&f), ["local.nods", "module.m.nodez", "module.n"]);
        let nodez = f.iter().find(|f| f.field == "module.m.nodez").unwrap();
        assert_eq!(nodez.line, Some(2));
        assert!(nodez.fix.contains("module.m.nodes"), "{nodez:?}");
        assert!(
            f.iter()
                .find(|f| f.field == "local.nods")
                .unwrap()
                .fix
                .contains("local.nodes")
        );
    }
}
