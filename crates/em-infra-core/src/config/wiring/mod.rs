//! Static checks of the Terraform code an environment runs: the module tree (following local
//! `module` sources), what flows between modules, the output contract and the provider pin.
//!
//! `terraform validate` finds some of this too, but it needs `terraform init`, which needs the
//! provider, which needs the internet and a registry; these checks need only the files, so they
//! run first, offline, and name the file and line to edit.
//!
//! [`check`] walks the module tree; the checks live by what they look at: `args` (module
//! arguments), `refs` (`var.`, `local.` and `module.` references), `contract` (outputs and
//! variables) and `provider` (the version pin). [`Module`] and [`ModuleCall`] are what they share.

mod args;
mod contract;
mod provider;
mod refs;

#[cfg(test)]
mod test_support;

pub use contract::effective_default;

use args::module_args;
use contract::{contract_outputs, contract_variables};
use provider::provider_versions;
use refs::undeclared_refs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hcl::edit::expr::{Expression, TraversalOperator};
use hcl::edit::structure::{Attribute, Block};

use crate::config::finding::Finding;
use crate::config::hclsrc::{SourceFile, label};
use crate::config::tfvars::Declarations;

/// Arguments of a `module` block that are Terraform's, not the module's variables.
const MODULE_META_ARGS: &[&str] = &[
    "source",
    "version",
    "count",
    "for_each",
    "providers",
    "depends_on",
];

/// One Terraform module directory, parsed.
#[derive(Debug, Clone)]
pub struct Module {
    pub dir: PathBuf,
    pub files: Vec<Arc<SourceFile>>,
    pub decls: Declarations,
}

impl Module {
    /// Parse every `.tf` file of `dir`; syntax errors and unreadable declarations are findings.
    pub fn load(dir: &Path) -> anyhow::Result<(Module, Vec<Finding>)> {
        let mut findings = Vec::new();
        let mut paths: Vec<PathBuf> = fs_err::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "tf") && p.is_file())
            .collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            match SourceFile::load(&path)? {
                Ok(f) => files.push(Arc::new(f)),
                Err(f) => findings.push(*f),
            }
        }
        let (decls, decl_findings) = Declarations::from_files(&files);
        findings.extend(decl_findings);
        Ok((
            Module {
                dir: dir.to_path_buf(),
                files,
                decls,
            },
            findings,
        ))
    }

    /// `module` blocks with their resolved local source directory (`None` for registry or git
    /// sources, which cannot be read offline and are not checked).
    pub fn calls(&self) -> Vec<ModuleCall> {
        let mut out = Vec::new();
        for file in &self.files {
            for block in file.blocks("module") {
                let source = block
                    .body
                    .get_attribute("source")
                    .and_then(|a| match &a.value {
                        Expression::String(s) => Some(s.as_str().to_string()),
                        _ => None,
                    });
                let local = source
                    .as_deref()
                    .filter(|s| s.starts_with("./") || s.starts_with("../"))
                    .map(|s| normalize(&self.dir.join(s)));
                out.push(ModuleCall {
                    name: label(block).to_string(),
                    file: file.clone(),
                    block: block.clone(),
                    source,
                    local,
                });
            }
        }
        out
    }
}

/// One `module "name" { source = ... }` block.
#[derive(Debug, Clone)]
pub struct ModuleCall {
    pub name: String,
    pub file: Arc<SourceFile>,
    pub block: Block,
    pub source: Option<String>,
    /// The directory a local source (`./…`, `../…`) points at.
    pub local: Option<PathBuf>,
}

impl ModuleCall {
    /// The arguments that set the module's variables (not meta-arguments).
    pub fn args(&self) -> impl Iterator<Item = &Attribute> {
        self.block
            .body
            .attributes()
            .filter(|a| !MODULE_META_ARGS.contains(&a.key.as_str()))
    }

    /// The argument `var_name`, when it is passed straight through as `var.<name>`.
    pub fn pass_through(&self, arg: &str) -> Option<String> {
        let attr = self.block.body.get_attribute(arg)?;
        match &attr.value {
            Expression::Traversal(t) => match (&t.expr, t.operators.as_slice()) {
                (Expression::Variable(v), [op]) if v.as_str() == "var" => match op.value() {
                    TraversalOperator::GetAttr(name) => Some(name.as_str().to_string()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }
}

/// Run every wiring check on the environment at `env_dir` and the local modules it calls.
pub fn check(env_dir: &Path) -> anyhow::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let (root, f) = Module::load(env_dir)?;
    findings.extend(f);

    // Breadth-first over local module calls; each directory is read and checked once.
    let mut modules: Vec<Module> = Vec::new();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    seen.insert(canonical(env_dir));
    let mut queue = vec![root.clone()];
    while let Some(module) = queue.pop() {
        findings.extend(undeclared_refs(&module)?);
        for call in module.calls() {
            let Some(dir) = &call.local else { continue };
            if !dir.is_dir() {
                findings.push(Finding::new(
                    &call.file.path,
                    call.file.line_of(&call.block),
                    format!("module.{}.source", call.name),
                    call.source.as_ref().map(|s| format!("{s:?}")),
                    format!(
                        "the module source directory {} does not exist",
                        dir.display()
                    ),
                    "fix the relative path (it is resolved from the calling module's directory)",
                ));
                continue;
            }
            let (child, f) = Module::load(dir)?;
            findings.extend(module_args(&call, &child));
            if seen.insert(canonical(dir)) {
                findings.extend(f);
                queue.push(child);
            }
        }
        modules.push(module);
    }

    findings.extend(contract_outputs(&root));
    findings.extend(contract_variables(&root));
    findings.extend(provider_versions(&root, &modules));
    if findings.iter().any(|f| f.field == "syntax") {
        // What a file that does not parse declares is unknown, so every other finding may be
        // a consequence of it; Terraform, too, stops at syntax errors. Fix those first.
        findings.retain(|f| f.field == "syntax");
    }
    // Reading order: file by file, top to bottom.
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(findings)
}

/// `a/b/../c` → `a/c` without touching the file system, so findings show module paths the way
/// a reader finds them in the tree (`terraform/modules/vm/main.tf`), not via the caller.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

fn rel(dir: &Path) -> String {
    dir.display().to_string()
}

/// Directory of every local module the environment uses (itself first), for fingerprints.
pub fn module_dirs(env_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![canonical(env_dir)];
    let mut i = 0;
    while i < out.len() {
        let (m, _) = Module::load(&out[i])?;
        for call in m.calls() {
            if let Some(dir) = call.local.filter(|d| d.is_dir()) {
                let dir = canonical(&dir);
                if !out.contains(&dir) {
                    out.push(dir);
                }
            }
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::test_support::{OUTPUTS, fields, tree};
    use super::*;

    #[test]
    fn normalize_resolves_dot_dot() {
        assert_eq!(
            normalize(Path::new("/r/env/dev/../../modules/vm")),
            Path::new("/r/modules/vm")
        );
        assert_eq!(normalize(Path::new("/r/env/./m")), Path::new("/r/env/m"));
        assert_eq!(normalize(Path::new("../x")), Path::new("../x"));
    }

    #[test]
    fn clean_tree_passes() {
        let t = tree(&[
            (
                "env/main.tf",
                "module \"m\" {\n  source = \"../mod\"\n  a = var.a\n}\nvariable \"a\" { type = string }\n",
            ),
            ("env/outputs.tf", OUTPUTS),
            (
                "mod/variables.tf",
                "variable \"a\" {}\nvariable \"b\" { default = 1 }\n",
            ),
            ("mod/main.tf", "locals { x = \"${var.a}-${var.b}\" }\n"),
        ]);
        let f = check(&t.path().join("env")).unwrap();
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn missing_outputs_and_sources() {
        let t = tree(&[(
            "env/main.tf",
            "module \"m\" {\n  source = \"../nope\"\n}\noutput \"nodes\" { value = 1 }\n",
        )]);
        let f = check(&t.path().join("env")).unwrap();
        let fl = fields(&f);
        assert!(fl.contains(&"module.m.source".to_string()), "{fl:?}");
        for out in [
            "cluster_name",
            "ssh_user",
            "control_plane_ips",
            "worker_ips",
            "gpu_worker_ips",
        ] {
            assert!(fl.contains(&format!("output.{out}")), "{fl:?}");
        }
        assert!(!fl.contains(&"output.nodes".to_string()));
    }
}
