//! The provider pin: `bpg/proxmox` is pinned exactly once, in the environment's versions.tf;
//! modules that use it declare it, with minimums only, and every constraint admits the pin.

use std::path::PathBuf;
use std::sync::Arc;

use hcl::edit::expr::Expression;

use crate::config::constraint::{Constraint, Version};
use crate::config::finding::Finding;
use crate::config::hclsrc::{SourceFile, label, object_key_str};

use super::{Module, canonical};

/// The provider whose version the environment pins.
const PROVIDER: &str = "proxmox";
const PROVIDER_SOURCE: &str = "bpg/proxmox";

/// One `required_providers` entry for the provider we pin.
struct ProviderReq {
    module_dir: PathBuf,
    file: Arc<SourceFile>,
    line: Option<usize>,
    source: Option<String>,
    version: Option<String>,
    version_line: Option<usize>,
}

fn provider_reqs(module: &Module) -> Vec<ProviderReq> {
    let mut out = Vec::new();
    for file in &module.files {
        for tf in file.blocks("terraform") {
            for rp in tf.body.get_blocks("required_providers") {
                for attr in rp.body.attributes() {
                    let Expression::Object(obj) = &attr.value else {
                        continue;
                    };
                    let get = |key: &str| {
                        obj.iter()
                            .find(|(k, _)| object_key_str(k).as_deref() == Some(key))
                            .map(|(_, v)| v.expr())
                    };
                    let source = get("source").and_then(|e| match e {
                        Expression::String(s) => Some(s.as_str().to_string()),
                        _ => None,
                    });
                    let is_ours = attr.key.as_str() == PROVIDER
                        || source.as_deref().is_some_and(|s| {
                            s.trim_start_matches("registry.terraform.io/") == PROVIDER_SOURCE
                        });
                    if !is_ours {
                        continue;
                    }
                    let version_expr = get("version");
                    out.push(ProviderReq {
                        module_dir: module.dir.clone(),
                        file: file.clone(),
                        line: file.line_of(attr),
                        source,
                        version: version_expr.and_then(|e| match e {
                            Expression::String(s) => Some(s.as_str().to_string()),
                            _ => None,
                        }),
                        version_line: version_expr.and_then(|e| file.line_of(e)),
                    });
                }
            }
        }
    }
    out
}

/// Resources and data sources of the provider (`proxmox_*`), with their file and line.
fn provider_uses(module: &Module) -> Vec<(Arc<SourceFile>, Option<usize>, String)> {
    let mut out = Vec::new();
    for file in &module.files {
        for kind in ["resource", "data"] {
            for block in file.blocks(kind) {
                let ty = label(block);
                if ty.starts_with(&format!("{PROVIDER}_")) {
                    out.push((file.clone(), file.line_of(block), ty.to_string()));
                }
            }
        }
    }
    out
}

/// The provider version is pinned exactly once, in the environment's versions.tf; modules state
/// only minimums, every constraint admits the pin, and every module that uses the provider
/// declares it with the right source (otherwise Terraform silently looks for
/// `hashicorp/proxmox`, which does not exist).
pub(super) fn provider_versions(root: &Module, modules: &[Module]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let field = format!("required_providers.{PROVIDER}.version");
    let mut reqs = Vec::new();
    let mut used = false;
    for m in modules {
        let m_reqs = provider_reqs(m);
        let uses = provider_uses(m);
        used |= !uses.is_empty() || !m_reqs.is_empty();
        if let Some((file, line, ty)) = uses.first()
            && m_reqs.is_empty()
        {
            findings.push(Finding::new(
                &file.path,
                *line,
                format!("required_providers.{PROVIDER}"),
                Some(ty.clone()),
                format!("this module uses {PROVIDER} resources but does not declare the provider, so Terraform would look for hashicorp/{PROVIDER}"),
                format!(
                    "add `terraform {{ required_providers {{ {PROVIDER} = {{ source = \"{PROVIDER_SOURCE}\", version = \">= <pinned version>\" }} }} }}` to the module's versions.tf"
                ),
            ));
        }
        reqs.extend(m_reqs);
    }
    if !used {
        // A provider-free environment (the offline fixture) has nothing to pin.
        return findings;
    }

    let root_dir = canonical(&root.dir);
    let is_root = |r: &ProviderReq| canonical(&r.module_dir) == root_dir;
    let in_versions_tf =
        |r: &ProviderReq| is_root(r) && r.file.path.file_name().is_some_and(|n| n == "versions.tf");

    let mut parsed: Vec<(&ProviderReq, Option<Constraint>)> = Vec::new();
    for r in &reqs {
        if let Some(src) = &r.source
            && src.trim_start_matches("registry.terraform.io/") != PROVIDER_SOURCE
        {
            findings.push(Finding::new(
                &r.file.path,
                r.line,
                format!("required_providers.{PROVIDER}.source"),
                Some(format!("{src:?}")),
                format!("the provider source is not {PROVIDER_SOURCE}"),
                format!("set source = \"{PROVIDER_SOURCE}\""),
            ));
        }
        let c = match &r.version {
            None => None,
            Some(text) => match Constraint::parse(text) {
                Ok(c) => Some(c),
                Err(msg) => {
                    findings.push(Finding::new(
                        &r.file.path,
                        r.version_line,
                        &field,
                        Some(format!("{text:?}")),
                        msg,
                        "write e.g. \">= 0.111.1\"",
                    ));
                    None
                }
            },
        };
        parsed.push((r, c));
    }

    let pin: Option<Version> = parsed
        .iter()
        .find(|(r, c)| in_versions_tf(r) && c.as_ref().is_some_and(|c| c.exact().is_some()))
        .and_then(|(_, c)| c.as_ref().and_then(|c| c.exact().cloned()));
    let versions_tf = root.dir.join("versions.tf");
    match &pin {
        None => {
            let at = parsed.iter().find(|(r, _)| in_versions_tf(r));
            findings.push(Finding::new(
                &versions_tf,
                at.and_then(|(r, _)| r.version_line.or(r.line)),
                &field,
                at.and_then(|(r, _)| r.version.as_ref().map(|v| format!("{v:?}"))),
                format!("the environment does not pin the {PROVIDER} provider to an exact version in versions.tf"),
                format!(
                    "pin it once: `required_providers {{ {PROVIDER} = {{ source = \"{PROVIDER_SOURCE}\", version = \"X.Y.Z\" }} }}` in {}",
                    versions_tf.display()
                ),
            ));
        }
        Some(pin) => {
            for (r, c) in &parsed {
                let Some(c) = c else { continue };
                let value = r.version.as_ref().map(|v| format!("{v:?}"));
                if in_versions_tf(r) && c.exact().is_some() {
                    continue;
                }
                if c.exact().is_some() {
                    findings.push(Finding::new(
                        &r.file.path,
                        r.version_line,
                        &field,
                        value.clone(),
                        format!("the {PROVIDER} provider is pinned a second time (the one pin is in {})", versions_tf.display()),
                        format!("state only a minimum here: version = \">= {pin}\""),
                    ));
                } else if !c.only_minimums() {
                    findings.push(Finding::new(
                        &r.file.path,
                        r.version_line,
                        &field,
                        value.clone(),
                        "a module may state only a minimum version (>=); upper bounds and pins belong to the environment",
                        format!("write version = \">= {pin}\" (or the oldest version the module works with)"),
                    ));
                }
                if !c.admits(pin) {
                    findings.push(Finding::new(
                        &r.file.path,
                        r.version_line,
                        &field,
                        value,
                        format!("this constraint excludes the pinned version {pin}, so `terraform init` would fail"),
                        format!("lower the minimum to at most {pin}, or raise the pin in {}", versions_tf.display()),
                    ));
                }
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::wiring::check;
    use crate::config::wiring::test_support::{OUTPUTS, fields, tree};

    fn versions(v: &str) -> String {
        format!(
            "terraform {{\n  required_providers {{\n    proxmox = {{\n      source  = \"bpg/proxmox\"\n      version = \"{v}\"\n    }}\n  }}\n}}\n"
        )
    }

    fn provider_tree(env_v: &str, mod_v: &str) -> Vec<Finding> {
        let t = tree(&[
            ("env/versions.tf", &versions(env_v)),
            (
                "env/main.tf",
                "module \"vm\" {\n  source = \"./modules/vm\"\n}\n",
            ),
            ("env/outputs.tf", OUTPUTS),
            ("env/modules/vm/versions.tf", &versions(mod_v)),
            (
                "env/modules/vm/main.tf",
                "resource \"proxmox_virtual_environment_vm\" \"v\" {}\n",
            ),
        ]);
        check(&t.path().join("env")).unwrap()
    }

    #[test]
    fn provider_pinned_once_with_minimums() {
        assert!(provider_tree("0.111.1", ">= 0.100.0").is_empty());
        assert!(provider_tree("= 0.111.1", ">= 0.111.1").is_empty());
    }

    #[test]
    fn provider_pinned_twice_or_bounded_in_a_module() {
        let f = provider_tree("0.111.1", "0.111.1");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].message.contains("second time"));
        assert!(f[0].file.ends_with("modules/vm/versions.tf"));
        assert_eq!(f[0].line, Some(5));
        let f = provider_tree("0.111.1", "~> 0.111.0");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].message.contains("only a minimum"));
    }

    #[test]
    fn provider_constraint_incompatible_with_pin() {
        let f = provider_tree("0.111.1", ">= 0.120.0");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].message.contains("excludes the pinned version 0.111.1"));
    }

    #[test]
    fn provider_not_pinned_in_the_environment() {
        let f = provider_tree(">= 0.100", ">= 0.100");
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].message.contains("does not pin"));
        assert!(f[0].file.ends_with("env/versions.tf"));
    }

    #[test]
    fn provider_used_without_declaration() {
        let t = tree(&[
            ("env/versions.tf", &versions("0.111.1")),
            ("env/main.tf", "module \"vm\" {\n  source = \"./vm\"\n}\n"),
            ("env/outputs.tf", OUTPUTS),
            (
                "env/vm/main.tf",
                "\nresource \"proxmox_virtual_environment_vm\" \"v\" {}\n",
            ),
        ]);
        let f = check(&t.path().join("env")).unwrap();
        assert_eq!(fields(&f), ["required_providers.proxmox"]);
        assert_eq!(f[0].line, Some(2));
    }
}
