//! The topology input rules of docs/architecture-freeze.md §1, applied to merged tfvars values.
//!
//! These are the same rules as the `validation` blocks in `terraform/modules/topology`, with the
//! same attribution: each problem is reported on the variable whose validation block holds the
//! rule (e.g. "not enough addresses" is a `network_cidr` finding, "gateway is a node's IP" a
//! `gateway` finding). As in Terraform, all rules of a variable are skipped while any variable
//! one of its validation blocks reads is itself invalid, so one mistake is reported once, where
//! it was made. `tests/tfvars-corpus` and the combined cases in `tests/check.rs` pin the verdicts
//! (and the variables named) of both implementations against each other.
//!
//! [`load`] reads and merges the values; [`validate()`] applies the rules in order. Rules with a
//! method of their own live by what they judge (`network`, `gpu`, `vm_ids`, `sizes`,
//! `placement`); one-line checks (names, counts, the SSH user and key) stay inline in
//! `validate`. [`CONTRACT`] lists the variables, `patterns` spells out the contract's regexes.

mod contract;
mod gpu;
mod network;
mod patterns;
mod placement;
mod sizes;
mod validate;
mod vm_ids;

#[cfg(test)]
mod test_support;

pub use contract::{CONTRACT, ContractVar};
pub use patterns::{
    is_bridge_name, is_dns_label, is_mapping_name, is_node_name, is_pci_id, is_user_name,
};
pub use validate::validate;

use std::path::Path;

use hcl::Value;

use crate::config::Environment;
use crate::config::finding::Finding;
use crate::config::hclsrc::{SourceFile, ValuePath};
use crate::config::tfvars::{Origin, Setting, Values, merge};
use crate::config::topology::Loaded;
use crate::config::wiring::Module;
use crate::failure::bad_input;

/// Read the environment's declarations and `tfvars`, merge, and apply every rule.
pub fn load(env: &Environment, tfvars: Option<&Path>) -> anyhow::Result<Loaded> {
    let tfvars_path = tfvars.map_or_else(|| env.default_tfvars(), Path::to_path_buf);
    if !tfvars_path.is_file() {
        return Err(bad_input(format!(
            "tfvars file {} not found: copy {}/terraform.tfvars.example to terraform.tfvars and edit it, or pass --tfvars FILE",
            tfvars_path.display(),
            env.dir.display()
        )));
    }
    let (root, mut findings) = Module::load(&env.dir)?;
    if findings.iter().any(|f| f.field == "syntax") {
        // Declarations in a file that does not parse are unknown: judging the tfvars against
        // the rest would only add "unknown variable" noise to the one real problem.
        return Ok(Loaded {
            tfvars: tfvars_path,
            inputs: None,
            findings,
        });
    }
    let tfvars_file = match SourceFile::load_tfvars(&tfvars_path)? {
        Ok(file) => file,
        Err(syntax) => {
            // Which variables the file sets is unknown; "required variable not set" would be noise.
            findings.push(*syntax);
            return Ok(Loaded {
                tfvars: tfvars_path,
                inputs: None,
                findings,
            });
        }
    };
    let (mut values, merge_findings) = merge(&root.decls, &tfvars_path, Ok(tfvars_file));
    findings.extend(merge_findings);
    findings.extend(apply_module_defaults(&root, &mut values)?);
    let inputs = match validate(&values) {
        Ok(inputs) => Some(inputs),
        Err(rule_findings) => {
            findings.extend(rule_findings);
            None
        }
    };
    // A merge problem (unknown variable, unset required one) fails the check even when the
    // remaining values pass every rule.
    let inputs = if findings.is_empty() { inputs } else { None };
    Ok(Loaded {
        tfvars: tfvars_path,
        inputs,
        findings,
    })
}

/// Terraform substitutes a module variable's default when the caller passes `null` to a
/// `nullable = false` variable. The environments declare their inputs with `default = null` and
/// pass them straight (`x = var.x`) to the topology module, which holds the real defaults, so a
/// value left out of the tfvars takes the module's default here too. A null reaching a
/// non-nullable module variable without a default is an error in Terraform, and a finding here.
fn apply_module_defaults(root: &Module, values: &mut Values) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for call in root.calls() {
        let Some(dir) = call.local.as_ref().filter(|d| d.is_dir()) else {
            continue;
        };
        let (child, _) = Module::load(dir)?;
        for arg in call.args() {
            let Some(name) = call.pass_through(arg.key.as_str()) else {
                continue;
            };
            let Some(inner) = child.decls.vars.get(arg.key.as_str()) else {
                continue;
            };
            let is_null = values
                .settings
                .get(&name)
                .is_some_and(|s| s.value.is_null());
            if !is_null || inner.nullable {
                continue;
            }
            match &inner.default {
                Some(default) if !default.is_null() => {
                    let setting = Setting {
                        value: default.clone(),
                        origin: Origin::Default {
                            decl: Box::new(inner.clone()),
                        },
                    };
                    values.settings.insert(name, setting);
                }
                _ => {
                    let f = values.finding(
                        &name,
                        &ValuePath::root(),
                        Some(&Value::Null),
                        format!("may not be null: module \"{}\" requires a value (nullable = false, no default)", call.name),
                        format!("set `{name}` to a value"),
                    );
                    findings.push(f);
                    values.settings.remove(&name);
                }
            }
        }
    }
    Ok(findings)
}
