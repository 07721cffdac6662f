//! Module arguments: a `module` block passes only variables the module declares, and every
//! variable it requires.

use std::collections::BTreeSet;

use crate::config::finding::{Finding, did_you_mean};

use super::{Module, ModuleCall, rel};

/// A module call may pass only variables the module declares, and must pass every required one.
pub(super) fn module_args(call: &ModuleCall, child: &Module) -> Vec<Finding> {
    let mut findings = Vec::new();
    let declared: Vec<&str> = child.decls.vars.keys().map(String::as_str).collect();
    let mut passed = BTreeSet::new();
    for attr in call.args() {
        let arg = attr.key.as_str();
        passed.insert(arg.to_string());
        if !child.decls.vars.contains_key(arg) {
            let fix = match did_you_mean(arg, declared.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? Rename the argument, or declare variable \"{arg}\" in the module"
                ),
                None => format!(
                    "remove the argument, or declare variable \"{arg}\" in {}",
                    rel(&child.dir)
                ),
            };
            findings.push(Finding::new(
                &call.file.path,
                call.file.line_of(attr),
                format!("module.{}.{arg}", call.name),
                call.file.snippet(&attr.value),
                format!(
                    "module \"{}\" ({}) declares no variable \"{arg}\"",
                    call.name,
                    rel(&child.dir)
                ),
                fix,
            ));
        }
    }
    for (name, decl) in &child.decls.vars {
        if decl.required() && !passed.contains(name) {
            findings.push(Finding::new(
                &call.file.path,
                call.file.line_of(&call.block),
                format!("module.{}.{name}", call.name),
                None,
                format!(
                    "required variable \"{name}\" of module \"{}\" is not passed",
                    call.name
                ),
                format!(
                    "add `{name} = ...` to the module block (declared without a default at {}:{})",
                    decl.file.path.display(),
                    decl.line.unwrap_or(0)
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use crate::config::wiring::check;
    use crate::config::wiring::test_support::{OUTPUTS, fields, tree};

    #[test]
    fn module_args_undeclared_and_missing() {
        let t = tree(&[
            (
                "env/main.tf",
                "module \"m\" {\n  source = \"../mod\"\n  count  = 1\n  aa = 1\n}\n",
            ),
            ("env/outputs.tf", OUTPUTS),
            ("mod/variables.tf", "variable \"a\" {}\n"),
        ]);
        let f = check(&t.path().join("env")).unwrap();
        assert_eq!(fields(&f), ["module.m.a", "module.m.aa"]);
        let undeclared = f.iter().find(|f| f.field == "module.m.aa").unwrap();
        assert_eq!(undeclared.line, Some(4));
        assert!(
            undeclared.fix.contains("did you mean `a`"),
            "{undeclared:?}"
        );
        let missing = f.iter().find(|f| f.field == "module.m.a").unwrap();
        assert_eq!(missing.line, Some(1));
    }
}
