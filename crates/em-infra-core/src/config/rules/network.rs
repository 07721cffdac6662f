//! The network rules: `network_cidr` with room for every node, a `gateway` inside it that no
//! node uses, `dns_servers` and `vlan_id`.

use std::net::Ipv4Addr;

use crate::config::hclsrc::ValuePath;
use crate::config::topology::{Ipv4Cidr, highest_slot, node_slots, parse_ipv4};

use super::validate::{Rules, is_whole};

impl Rules<'_> {
    /// `network_cidr`: an IPv4 CIDR with prefix /8–/30 and room for the highest host number.
    pub(super) fn network_cidr(&mut self, fho: u64, wc: u32, gc: u32) -> Option<Ipv4Cidr> {
        const NAME: &str = "network_cidr";
        let text = self.string(NAME)?;
        let Some(net) = Ipv4Cidr::parse(&text) else {
            self.check(
                NAME,
                false,
                "is not an IPv4 CIDR",
                "write address/prefix, e.g. \"192.168.10.0/24\"",
            );
            return None;
        };
        if !self.check(
            NAME,
            (8..=30).contains(&net.prefix()),
            &format!("has prefix length /{}, outside /8 to /30", net.prefix()),
            "use a prefix from /8 to /30 (e.g. /24), so the network has room for a gateway and the nodes",
        ) {
            return None;
        }
        // Enough addresses: the highest host number in use stays below the broadcast address.
        let slot = u64::from(highest_slot(wc, gc));
        let last = fho + slot;
        self.check(
            NAME,
            last < net.broadcast_host(),
            &format!(
                "is too small: it has host numbers 1-{}, but the last node needs host number {last} \
                 (first_host_offset {fho} + slot {slot}; workers use slots 10-39, GPU workers 40-49)",
                net.broadcast_host().saturating_sub(1)
            ),
            "use a larger network (smaller prefix), a smaller first_host_offset, or fewer nodes",
        )
        .then_some(net)
    }

    /// `gateway`: an IPv4 host address inside the network that no node uses.
    pub(super) fn gateway(
        &mut self,
        net: Ipv4Cidr,
        fho: u64,
        cluster: &str,
        wc: u32,
        gc: u32,
    ) -> Option<Ipv4Addr> {
        const NAME: &str = "gateway";
        let text = self.string(NAME)?;
        let Some(gw) = parse_ipv4(&text) else {
            self.check(
                NAME,
                false,
                "is not an IPv4 address",
                "write it like \"192.168.10.1\" (no prefix, no leading zeros)",
            );
            return None;
        };
        let first = net.host(1).map(|ip| ip.to_string()).unwrap_or_default();
        if !net.contains(gw) {
            self.check(
                NAME,
                false,
                &format!("is outside network_cidr {net}"),
                &format!(
                    "pick an address inside the network (usually your router, e.g. \"{first}\")"
                ),
            );
            return None;
        }
        if gw == net.network() || gw == net.broadcast() {
            self.check(
                NAME,
                false,
                &format!("is the network or broadcast address of {net}"),
                &format!("pick a host address (usually your router, e.g. \"{first}\")"),
            );
            return None;
        }
        let clash = node_slots(cluster, wc, gc)
            .into_iter()
            .find(|(_, _, slot)| net.host(fho + u64::from(*slot)) == Some(gw));
        if let Some((node, _, _)) = clash {
            self.check(
                NAME,
                false,
                &format!("is also the IP of node {node} (first_host_offset {fho} + its slot)"),
                "change gateway, or move the nodes with first_host_offset",
            );
            return None;
        }
        Some(gw)
    }

    pub(super) fn dns_servers(&mut self) -> Option<Vec<Ipv4Addr>> {
        const NAME: &str = "dns_servers";
        let v = self.value(NAME)?;
        let items = self.typed(
            NAME,
            &ValuePath::root(),
            &v,
            "a list of IPv4 addresses",
            |v| v.as_array().cloned(),
        )?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.as_str().and_then(parse_ipv4) {
                Some(ip) => out.push(ip),
                None => {
                    ok = false;
                    self.report(
                        NAME,
                        &ValuePath::root().index(i),
                        Some(item),
                        "is not an IPv4 address",
                        "write an address like \"1.1.1.1\" (no port, no hostname); leave the list empty to use the gateway",
                    );
                }
            }
        }
        ok.then_some(out)
    }

    pub(super) fn vlan_id(&mut self) -> Option<Option<u16>> {
        const NAME: &str = "vlan_id";
        let v = self.value(NAME)?;
        if v.is_null() {
            return Some(None);
        }
        let n = self.typed(NAME, &ValuePath::root(), &v, "a number or null", |v| {
            v.as_number().and_then(hcl::Number::as_f64)
        })?;
        self.check(
            NAME,
            is_whole(n) && (1.0..=4094.0).contains(&n),
            "must be a whole number from 1 to 4094, or null",
            "use the VLAN tag (1-4094), or null for an untagged NIC",
        )
        .then_some(Some(n as u16))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::rules::test_support::fields;

    #[test]
    fn network_rules() {
        assert_eq!(fields("network_cidr = \"192.168.10.0\""), ["network_cidr"]);
        assert_eq!(
            fields("network_cidr = \"192.168.010.0/24\""),
            ["network_cidr"]
        );
        assert_eq!(fields("network_cidr = \"10.0.0.0/7\""), ["network_cidr"]);
        assert_eq!(
            fields("network_cidr = \"192.168.10.0/31\""),
            ["network_cidr"]
        );
        // /27: host numbers 1-30. Worker 11 (slot 20) gets host 10 + 20 = 30, the last one;
        // worker 12 would get 31, the broadcast address.
        assert!(fields("network_cidr = \"192.168.10.0/27\"").is_empty());
        assert!(fields("network_cidr = \"192.168.10.0/27\"\nworker_count = 11").is_empty());
        assert_eq!(
            fields("network_cidr = \"192.168.10.0/27\"\nworker_count = 12"),
            ["network_cidr"]
        );
        assert_eq!(fields("gateway = \"192.168.11.1\""), ["gateway"]);
        assert_eq!(fields("gateway = \"192.168.10.0\""), ["gateway"]);
        assert_eq!(fields("gateway = \"192.168.10.255\""), ["gateway"]);
        assert_eq!(
            fields("gateway = \"192.168.10.20\""),
            ["gateway"],
            "worker-1's IP"
        );
        assert_eq!(fields("gateway = \"192.168.10.1/24\""), ["gateway"]);
        // A bad network is reported once, not again through the gateway rules.
        assert_eq!(fields("network_cidr = \"nope\""), ["network_cidr"]);
        assert_eq!(fields("first_host_offset = 0"), ["first_host_offset"]);
        assert_eq!(fields("first_host_offset = 250"), ["network_cidr"]);
        assert_eq!(
            fields("dns_servers = [\"1.1.1.1\", \"dns.google\"]"),
            ["dns_servers[1]"]
        );
        assert_eq!(fields("vlan_id = 0"), ["vlan_id"]);
        assert_eq!(fields("vlan_id = 4095"), ["vlan_id"]);
        assert!(fields("vlan_id = 4094").is_empty());
        assert!(fields("vlan_id = null").is_empty());
    }
}
