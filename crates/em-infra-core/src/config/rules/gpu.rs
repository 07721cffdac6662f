//! The `gpu_workers` rules: each entry names one device (a PCI resource mapping, or a raw PCI ID
//! when `allow_raw_pci_ids` allows it), no device twice, at most ten GPU workers.

use std::collections::BTreeMap;

use hcl::Value;

use crate::config::hclsrc::ValuePath;
use crate::config::topology::{Gpu, GpuWorker};

use super::patterns::{is_mapping_name, is_node_name, is_pci_id};
use super::validate::Rules;

impl Rules<'_> {
    pub(super) fn gpu_workers(&mut self, allow_raw: bool) -> Option<Vec<GpuWorker>> {
        const NAME: &str = "gpu_workers";
        let v = self.value(NAME)?;
        let items = self.typed(NAME, &ValuePath::root(), &v, "a list", |v| {
            v.as_array().cloned()
        })?;
        let before = self.findings.len();
        if items.len() > 10 {
            self.report(
                NAME,
                &ValuePath::root(),
                None,
                format!(
                    "has {} entries: at most 10 GPU workers are supported (slots 40-49)",
                    items.len()
                ),
                "remove entries",
            );
        }
        let mut out = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let path = ValuePath::root().index(i);
            let field = |item: &Value, key: &str| {
                item.as_object()
                    .and_then(|o| o.get(key))
                    .filter(|v| !v.is_null())
                    .cloned()
            };
            if !item.is_object() {
                self.report(
                    NAME,
                    &path,
                    Some(item),
                    "must be an object",
                    "write { mapping = \"gpu0\" }",
                );
                continue;
            }
            let mapping = field(item, "mapping");
            let pci_id = field(item, "pci_id");
            let node = field(item, "proxmox_node");
            let gpu = match (&mapping, &pci_id) {
                (Some(_), Some(_)) | (None, None) => {
                    self.report(
                        NAME,
                        &path,
                        Some(item),
                        "must set exactly one of mapping or pci_id",
                        "set mapping = \"<PCI resource mapping name>\" (Datacenter > Resource Mappings), or pci_id = \"0000:01:00.0\" with allow_raw_pci_ids = true; not both, not neither",
                    );
                    None
                }
                (Some(m), None) => Some(Gpu::Mapping(m.as_str().unwrap_or_default().to_string())),
                (None, Some(p)) => Some(Gpu::PciId(p.as_str().unwrap_or_default().to_string())),
            };
            if let Some(m) = &mapping {
                let ok = m.as_str().is_some_and(is_mapping_name);
                if !ok {
                    self.report(
                        NAME,
                        &path.key("mapping"),
                        Some(m),
                        "is not a valid PCI resource mapping name (a letter, then up to 127 letters, digits, '_' or '-')",
                        "use the mapping's name from Datacenter > Resource Mappings, e.g. \"gpu0\"",
                    );
                }
            }
            if let Some(p) = &pci_id {
                if !p.as_str().is_some_and(is_pci_id) {
                    self.report(
                        NAME,
                        &path.key("pci_id"),
                        Some(p),
                        "is not a PCI address (domain:bus:device.function, lower case)",
                        "write the full address as `lspci -D` prints it, e.g. \"0000:01:00.0\"",
                    );
                }
                if !allow_raw {
                    self.report(
                        NAME,
                        &path.key("pci_id"),
                        Some(p),
                        "is a raw PCI ID but allow_raw_pci_ids is false (raw IDs need root@pam password auth; API tokens are refused)",
                        "create a PCI resource mapping and set mapping = \"<name>\" instead, or set allow_raw_pci_ids = true",
                    );
                }
            }
            for (key, v) in [("mapping", &mapping), ("pci_id", &pci_id)] {
                if let Some(s) = v.as_ref().and_then(Value::as_str) {
                    // Mappings and PCI IDs are compared separately, as the module does.
                    if let Some(first) = seen.insert(format!("{key}\0{s}"), i) {
                        self.report(
                            NAME,
                            &path.key(key),
                            v.as_ref(),
                            format!("lists the same device as gpu_workers[{first}]: a GPU can be passed through to one VM only"),
                            "give each entry its own mapping or pci_id",
                        );
                    }
                }
            }
            if let Some(n) = &node
                && !n.as_str().is_some_and(is_node_name)
            {
                self.report(
                    NAME,
                    &path.key("proxmox_node"),
                    Some(n),
                    "is not a valid Proxmox node name (letters, digits and '-', not starting or ending with '-')",
                    "use the name of the node holding the GPU, e.g. \"pve\", or leave proxmox_node out",
                );
            }
            if let Some(gpu) = gpu {
                out.push(GpuWorker {
                    gpu,
                    proxmox_node: node.and_then(|n| n.as_str().map(str::to_string)),
                });
            }
        }
        (self.findings.len() == before).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::rules::test_support::fields;

    #[test]
    fn gpu_rules() {
        assert!(fields("gpu_workers = [{ mapping = \"gpu0\" }, { mapping = \"gpu1\", proxmox_node = \"pve2\" }]").is_empty());
        assert_eq!(
            fields(
                "gpu_workers = [{ mapping = \"a\", pci_id = \"0000:01:00.0\" }]\nallow_raw_pci_ids = true"
            ),
            ["gpu_workers[0]"]
        );
        assert_eq!(
            fields("gpu_workers = [{ proxmox_node = \"pve\" }]"),
            ["gpu_workers[0]"]
        );
        assert_eq!(
            fields("gpu_workers = [{ mapping = \"0gpu\" }]"),
            ["gpu_workers[0].mapping"]
        );
        assert_eq!(
            fields("gpu_workers = [{ pci_id = \"0000:01:00.0\" }]"),
            ["gpu_workers[0].pci_id"]
        );
        assert!(
            fields("gpu_workers = [{ pci_id = \"0000:01:00.0\" }]\nallow_raw_pci_ids = true")
                .is_empty()
        );
        assert_eq!(
            fields("gpu_workers = [{ pci_id = \"0000:01:00.A\" }]\nallow_raw_pci_ids = true"),
            ["gpu_workers[0].pci_id"]
        );
        assert_eq!(
            fields("gpu_workers = [{ pci_id = \"01:00.0\" }]\nallow_raw_pci_ids = true"),
            ["gpu_workers[0].pci_id"]
        );
        assert_eq!(
            fields("gpu_workers = [{ mapping = \"g\" }, { mapping = \"g\" }]"),
            ["gpu_workers[1].mapping"]
        );
        assert_eq!(
            fields("gpu_workers = [{ mapping = \"g\", proxmox_node = \"pve_2\" }]"),
            ["gpu_workers[0].proxmox_node"]
        );
        let eleven: Vec<String> = (0..11)
            .map(|i| format!("{{ mapping = \"g{i}\" }}"))
            .collect();
        let f = fields(&format!("gpu_workers = [{}]", eleven.join(", ")));
        assert_eq!(f, ["gpu_workers"]);
    }
}
