//! The contract's regexes, spelled out (RE2 semantics: `^…$` anchor the whole string): DNS
//! labels, Proxmox node names, PCI mapping names and IDs, bridge names and user names.

/// `^[a-z][a-z0-9-]{0,30}[a-z0-9]$`
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=32).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..b.len() - 1]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
}

/// `^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`
pub fn is_node_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `^[a-zA-Z][a-zA-Z0-9_-]{0,127}$`
pub fn is_mapping_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=128).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// `^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`
pub fn is_pci_id(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b[r].iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

/// `^[a-zA-Z][a-zA-Z0-9_.-]{0,15}$`
pub fn is_bridge_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=16).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `^[a-z_][a-z0-9_-]{0,31}$`
pub fn is_user_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes() {
        assert!(is_pci_id("0000:01:00.0") && is_pci_id("abcd:ef:1f.7"));
        assert!(!is_pci_id("0000:01:00.8") && !is_pci_id("0000:01:00.0 "));
        assert!(
            is_node_name("p")
                && is_node_name("pve-2")
                && !is_node_name("pve-")
                && !is_node_name("")
        );
        assert!(
            is_mapping_name("g")
                && is_mapping_name(&"g".repeat(128))
                && !is_mapping_name(&"g".repeat(129))
        );
        assert!(is_user_name("_svc") && !is_user_name("1user") && !is_user_name(""));
        assert!(is_bridge_name("vmbr0.100") && !is_bridge_name(""));
    }
}
