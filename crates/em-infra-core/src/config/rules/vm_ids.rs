//! The VM ID rules: `vm_id_base` keeps every node's VM ID in Proxmox's range, and
//! `template_vm_id` is in that range too and no node's VM ID.

use crate::config::topology::{highest_slot, node_slots};

use super::validate::{Rules, is_whole};

impl Rules<'_> {
    /// `vm_id_base`: a whole number putting every node's VM ID inside 100–999999999.
    pub(super) fn vm_id_base(&mut self, wc: u32, gc: u32) -> Option<u64> {
        const NAME: &str = "vm_id_base";
        let v = self.number(NAME)?;
        if !self.check(
            NAME,
            is_whole(v),
            "is not a whole number",
            "use a whole number such as 9100",
        ) {
            return None;
        }
        let slot = u64::from(highest_slot(wc, gc));
        // Negative bases saturate to 0 here, which the range check rejects all the same.
        let base = v.max(0.0) as u64;
        let top = base + slot;
        self.check(
            NAME,
            v >= 100.0 && top <= 999_999_999,
            &format!(
                "puts node VM IDs at {v}-{}, outside Proxmox's range 100-999999999",
                v + slot as f64
            ),
            &format!(
                "choose a vm_id_base from 100 to {} (e.g. 9100)",
                999_999_999 - slot
            ),
        )
        .then_some(base)
    }

    /// `template_vm_id`: a whole number 100–999999999 that is no node's VM ID.
    pub(super) fn template_vm_id(
        &mut self,
        base: u64,
        cluster: &str,
        wc: u32,
        gc: u32,
    ) -> Option<u64> {
        const NAME: &str = "template_vm_id";
        let v = self.number(NAME)?;
        if !self.check(
            NAME,
            is_whole(v) && (100.0..=999_999_999.0).contains(&v),
            "must be a whole number from 100 to 999999999",
            "use the template's VM ID, e.g. 9000",
        ) {
            return None;
        }
        let template = v as u64;
        let clash = node_slots(cluster, wc, gc)
            .into_iter()
            .find(|(_, _, slot)| base + u64::from(*slot) == template);
        match clash {
            Some((node, _, _)) => {
                self.check(
                    NAME,
                    false,
                    &format!("is also the VM ID of node {node} (vm_id_base {base} + its slot)"),
                    "move the template or vm_id_base so the ranges do not overlap",
                );
                None
            }
            None => Some(template),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::rules::test_support::fields;

    #[test]
    fn id_rules() {
        assert_eq!(fields("vm_id_base = 99"), ["vm_id_base"]);
        assert_eq!(fields("vm_id_base = 9100.5"), ["vm_id_base"]);
        assert_eq!(
            fields("vm_id_base = 999999989"),
            ["vm_id_base"],
            "worker-2 at +11 = 1000000000"
        );
        assert!(fields("vm_id_base = 999999988").is_empty());
        assert_eq!(fields("template_vm_id = 99"), ["template_vm_id"]);
        assert_eq!(
            fields("template_vm_id = 9110"),
            ["template_vm_id"],
            "worker-1's VM ID"
        );
        assert!(
            fields("template_vm_id = 9101").is_empty(),
            "slot 1 is not used"
        );
    }
}
