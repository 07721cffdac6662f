//! What the wiring tests share: a tree of `.tf` files in a temporary directory, the fields of
//! findings, and outputs that satisfy the contract.

use crate::config::finding::Finding;

pub(super) fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

pub(super) fn fields(findings: &[Finding]) -> Vec<String> {
    let mut v: Vec<_> = findings.iter().map(|f| f.field.clone()).collect();
    v.sort();
    v
}

pub(super) const OUTPUTS: &str = r#"
output "cluster_name" { value = "x" }
output "ssh_user" { value = "x" }
output "control_plane_ips" { value = [] }
output "worker_ips" { value = [] }
output "gpu_worker_ips" { value = [] }
output "nodes" { value = {} }
"#;
