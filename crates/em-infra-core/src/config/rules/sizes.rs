//! The VM size rules: cores, memory and disk of `control_plane_size`, `worker_size` and
//! `gpu_worker_size`, each with the floor its role needs.

use hcl::Value;

use crate::config::hclsrc::ValuePath;
use crate::config::topology::VmSize;

use super::validate::{Rules, is_whole};

impl Rules<'_> {
    pub(super) fn size(
        &mut self,
        name: &str,
        min_cores: u32,
        min_memory: u64,
        who: &str,
    ) -> Option<VmSize> {
        let v = self.value(name)?;
        let obj = self.typed(
            name,
            &ValuePath::root(),
            &v,
            "an object { cores, memory_mb, disk_gb }",
            |v| v.as_object().cloned(),
        )?;
        let mut get = |key: &str, lo: f64, hi: Option<f64>, rule: String, example: &str| {
            let item = obj.get(key).cloned().unwrap_or(Value::Null);
            let n = item.as_number().and_then(hcl::Number::as_f64);
            let ok = n.is_some_and(|n| is_whole(n) && n >= lo && hi.is_none_or(|hi| n <= hi));
            if !ok {
                self.report(
                    name,
                    &ValuePath::root().key(key),
                    Some(&item),
                    format!("{who} needs {rule}"),
                    format!("set {key} to {rule}, e.g. {example}"),
                );
            }
            n.filter(|_| ok)
        };
        let cores = get(
            "cores",
            f64::from(min_cores),
            Some(128.0),
            format!("a whole number of cores from {min_cores} to 128"),
            "2",
        );
        let memory = get(
            "memory_mb",
            min_memory as f64,
            None,
            format!("a whole number of MiB >= {min_memory}"),
            "4096",
        );
        let disk = get(
            "disk_gb",
            10.0,
            Some(4096.0),
            "a whole number of GiB from 10 to 4096".to_string(),
            "32",
        );
        Some(VmSize {
            cores: cores? as u32,
            memory_mb: memory? as u64,
            disk_gb: disk? as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::rules::test_support::fields;

    #[test]
    fn size_rules() {
        assert_eq!(
            fields("control_plane_size = { cores = 1, memory_mb = 4096, disk_gb = 32 }"),
            ["control_plane_size.cores"]
        );
        assert!(fields("worker_size = { cores = 1, memory_mb = 1024, disk_gb = 10 }").is_empty());
        assert_eq!(
            fields("worker_size = { cores = 1, memory_mb = 1023, disk_gb = 10 }"),
            ["worker_size.memory_mb"]
        );
        assert_eq!(
            fields("gpu_worker_size = { cores = 4, memory_mb = 2048, disk_gb = 4097 }"),
            ["gpu_worker_size.disk_gb", "gpu_worker_size.memory_mb"]
        );
        assert_eq!(
            fields("worker_size = { cores = 2.5, memory_mb = 4096, disk_gb = 32 }"),
            ["worker_size.cores"]
        );
        assert_eq!(
            fields("worker_size = { cores = null, memory_mb = 4096, disk_gb = 32 }"),
            ["worker_size.cores"]
        );
    }
}
