//! The `node_placement` rules: every key a node of this cluster, every value a Proxmox node
//! name.

use std::collections::BTreeMap;

use crate::config::hclsrc::ValuePath;
use crate::config::topology::node_slots;

use super::patterns::is_node_name;
use super::validate::Rules;

impl Rules<'_> {
    /// `node_placement`: each value a Proxmox node name, each key a node of this cluster.
    pub(super) fn node_placement(
        &mut self,
        cluster: &str,
        wc: u32,
        gc: u32,
    ) -> Option<BTreeMap<String, String>> {
        const NAME: &str = "node_placement";
        let v = self.value(NAME)?;
        let map = self.typed(
            NAME,
            &ValuePath::root(),
            &v,
            "a map of node name to Proxmox node",
            |v| v.as_object().cloned(),
        )?;
        let names: Vec<String> = node_slots(cluster, wc, gc)
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        let before = self.findings.len();
        let mut out = BTreeMap::new();
        for (key, value) in &map {
            let path = ValuePath::root().key(key);
            match value.as_str() {
                Some(s) if is_node_name(s) => {
                    out.insert(key.clone(), s.to_string());
                }
                _ => self.report(
                    NAME,
                    &path,
                    Some(value),
                    "is not a valid Proxmox node name (letters, digits and '-', not starting or ending with '-')",
                    "use the Proxmox node name, e.g. \"pve\"",
                ),
            }
            if !names.contains(key) {
                let fix = match crate::config::finding::did_you_mean(
                    key,
                    names.iter().map(String::as_str),
                ) {
                    Some(s) => {
                        format!("did you mean \"{s}\"? Node names are: {}", names.join(", "))
                    }
                    None => format!("use one of {}, or remove the entry", names.join(", ")),
                };
                self.report(
                    NAME,
                    &path,
                    Some(value),
                    format!("\"{key}\" is not a node name of this cluster"),
                    fix,
                );
            }
        }
        (self.findings.len() == before).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::rules::test_support::fields;

    #[test]
    fn placement_rules() {
        assert!(fields("node_placement = { \"k3s-dev-worker-2\" = \"pve2\" }").is_empty());
        assert_eq!(
            fields("node_placement = { \"k3s-dev-worker-3\" = \"pve2\" }"),
            ["node_placement[\"k3s-dev-worker-3\"]"]
        );
        assert_eq!(
            fields("node_placement = { \"k3s-dev-cp-1\" = \"pve 2\" }"),
            ["node_placement[\"k3s-dev-cp-1\"]"]
        );
        // The key rule needs a valid cluster_name: only the root cause is reported.
        assert_eq!(
            fields("cluster_name = \"Bad\"\nnode_placement = { \"x\" = \"pve\" }"),
            ["cluster_name"]
        );
    }
}
