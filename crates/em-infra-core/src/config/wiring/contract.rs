//! The environment's side of the contract (docs/architecture-freeze.md): every output the
//! inventory reads (§2), every contract variable with the contract's type and default (§1).

use std::collections::BTreeSet;

use crate::config::finding::Finding;
use crate::config::hclsrc::label;
use crate::config::rules::CONTRACT;
use crate::config::tfvars::VarDecl;
use crate::config::types::Type;

/// The outputs every environment must have (contract §2): the inventory reads them.
use crate::inventory::REQUIRED_OUTPUTS as CONTRACT_OUTPUTS;

use super::{Module, ModuleCall};

/// The environment must have every output the inventory reads.
pub(super) fn contract_outputs(root: &Module) -> Vec<Finding> {
    let outputs: BTreeSet<String> = root
        .files
        .iter()
        .flat_map(|f| {
            f.blocks("output")
                .map(|b| label(b).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let file = root.dir.join("outputs.tf");
    CONTRACT_OUTPUTS
        .iter()
        .filter(|name| !outputs.contains(**name))
        .map(|name| {
            Finding::new(
                &file,
                None,
                format!("output.{name}"),
                None,
                format!("the environment has no output \"{name}\" (docs/architecture-freeze.md §2; the inventory reads it)"),
                format!("add `output \"{name}\" {{ value = module.topology.{name} }}` (or the equivalent) to outputs.tf"),
            )
        })
        .collect()
}

/// The environment declares every contract variable with the contract's type, and its effective
/// default (its own, or the topology module's when it passes `null` through) is the contract's.
pub(super) fn contract_variables(root: &Module) -> Vec<Finding> {
    let calls = root.calls();
    let children: Vec<(ModuleCall, Module)> = calls
        .into_iter()
        .filter_map(|c| {
            let dir = c.local.clone()?;
            Module::load(&dir).ok().map(|(m, _)| (c, m))
        })
        .collect();
    // Only environments built on the topology contract are held to it (a call that passes
    // `network_cidr` is the sign); other roots are free to declare what they like.
    if !children
        .iter()
        .any(|(_, m)| m.decls.vars.contains_key("network_cidr"))
        && !root.decls.vars.contains_key("network_cidr")
    {
        return Vec::new();
    }
    let file = root.dir.join("variables.tf");
    let mut findings = Vec::new();
    for cv in CONTRACT {
        let Some(decl) = root.decls.vars.get(cv.name) else {
            findings.push(Finding::new(
                &file,
                None,
                format!("variable.{}", cv.name),
                None,
                format!("the environment does not declare the contract variable \"{}\" (docs/architecture-freeze.md §1)", cv.name),
                format!("add `variable \"{}\" {{ type = {} }}`", cv.name, cv.ty),
            ));
            continue;
        };
        let want = Type::parse_str(cv.ty).expect("contract types parse");
        if let Some(ty) = &decl.ty
            && *ty != want
        {
            let attr = decl_block_attr(decl, "type");
            findings.push(Finding::new(
                &decl.file.path,
                attr.or(decl.line),
                format!("variable.{}.type", cv.name),
                None,
                format!("the type differs from the contract's `{}`", cv.ty),
                format!("declare `type = {}`", cv.ty),
            ));
        }
        let effective = effective_default(decl, cv.name, &children);
        let expected = cv.default_value();
        // A null default that no module replaces usually means the variable never reaches the
        // module that holds the real default (a misspelt or missing module argument).
        let dropped = decl.default == Some(hcl::Value::Null) && effective == Some(hcl::Value::Null);
        if effective != expected && dropped && expected != Some(hcl::Value::Null) {
            findings.push(Finding::new(
                &decl.file.path,
                decl_block_attr(decl, "default").or(decl.line),
                format!("variable.{}.default", cv.name),
                Some("null".into()),
                format!(
                    "defaults to null but is not passed as `{0} = var.{0}` to a module that supplies the contract's default {1}, so leaving it out of the tfvars gives null",
                    cv.name,
                    expected.as_ref().map_or("(required)".to_string(), crate::config::finding::render_value)
                ),
                format!("pass it to the topology module (`{0} = var.{0}`), or declare the contract's default here", cv.name),
            ));
        } else if effective != expected {
            let show = |v: &Option<hcl::Value>| {
                v.as_ref().map_or(
                    "(required)".to_string(),
                    crate::config::finding::render_value,
                )
            };
            findings.push(Finding::new(
                &decl.file.path,
                decl_block_attr(decl, "default").or(decl.line),
                format!("variable.{}.default", cv.name),
                Some(show(&effective)),
                format!("the effective default differs from the contract's {}", show(&expected)),
                "use the contract's default (docs/architecture-freeze.md §1), or change the contract everywhere in one commit",
            ));
        }
    }
    findings
}

fn decl_block_attr(decl: &VarDecl, attr: &str) -> Option<usize> {
    decl.file
        .blocks("variable")
        .find(|b| label(b) == decl.name)
        .and_then(|b| b.body.get_attribute(attr))
        .and_then(|a| decl.file.line_of(a))
}

/// What a variable defaults to when the tfvars leave it out: its own non-null default, or — when
/// that is null and it is passed straight to a module whose variable is `nullable = false` — that
/// module's default (Terraform substitutes the default for a null argument there).
pub fn effective_default(
    decl: &VarDecl,
    name: &str,
    children: &[(ModuleCall, Module)],
) -> Option<hcl::Value> {
    match &decl.default {
        None => None,
        Some(hcl::Value::Null) => {
            for (call, child) in children {
                for arg in call.args() {
                    if call.pass_through(arg.key.as_str()).as_deref() == Some(name)
                        && let Some(inner) = child.decls.vars.get(arg.key.as_str())
                        && !inner.nullable
                    {
                        return inner.default.clone();
                    }
                }
            }
            Some(hcl::Value::Null)
        }
        Some(v) => Some(v.clone()),
    }
}
