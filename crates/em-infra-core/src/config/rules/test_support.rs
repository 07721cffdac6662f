//! What the rule tests share: the contract's declarations, and tfvars run through [`validate`].

use std::path::Path;
use std::sync::Arc;

use crate::config::finding::Finding;
use crate::config::hclsrc::SourceFile;
use crate::config::tfvars::{Declarations, merge};
use crate::config::topology::Inputs;

use super::{CONTRACT, validate};

/// The contract's declarations, as an environment's variables.tf would write them.
fn decls() -> Declarations {
    let mut text = String::new();
    for v in CONTRACT {
        text.push_str(&format!("variable \"{}\" {{\n  type = {}\n", v.name, v.ty));
        if let Some(d) = v.default {
            text.push_str(&format!("  default = {d}\n"));
        }
        if v.name != "vlan_id" {
            text.push_str("  nullable = false\n");
        }
        text.push_str("}\n");
    }
    let f = Arc::new(SourceFile::parse(Path::new("variables.tf"), text).unwrap());
    let (d, findings) = Declarations::from_files(&[f]);
    assert!(findings.is_empty(), "{findings:?}");
    d
}

const BASE: &str = "network_cidr = \"192.168.10.0/24\"\ngateway = \"192.168.10.1\"\n";

pub(super) fn run(extra: &str) -> Result<Inputs, Vec<Finding>> {
    let p = Path::new("t.tfvars");
    // `extra` may redefine a BASE variable; HCL forbids assigning one twice.
    let base: String = BASE
        .lines()
        .filter(|l| !extra.contains(l.split('=').next().unwrap_or_default()))
        .map(|l| format!("{l}\n"))
        .collect();
    let (values, findings) = merge(&decls(), p, SourceFile::parse(p, format!("{base}{extra}")));
    assert!(findings.is_empty(), "merge: {findings:?}");
    validate(&values)
}

/// The fields of the findings for `extra` (sorted), or empty when it passes.
pub(super) fn fields(extra: &str) -> Vec<String> {
    match run(extra) {
        Ok(_) => vec![],
        Err(f) => {
            let mut v: Vec<_> = f.into_iter().map(|f| f.field).collect();
            v.sort();
            v
        }
    }
}
