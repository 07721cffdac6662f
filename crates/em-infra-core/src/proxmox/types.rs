//! Response shapes of the Proxmox VE API and the helpers that decode them leniently.
//!
//! PVE serializes booleans as `0`/`1` (sometimes `"1"`), wraps every answer in `{"data": …}`,
//! and writes many values as property strings (`key=value,key=value`, an optional positional
//! first value). Only the fields em-infra reads are typed; unknown fields are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// `{"data": T}`: the JSON formatter's envelope around every answer.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
}

/// Serde helpers for PVE booleans: `0`/`1`, `"0"`/`"1"`, `true`/`false`, `"true"`/`"false"`;
/// `null` and `""` are false. Use with `#[serde(default, deserialize_with = "pve_bool::de")]`.
pub mod pve_bool {
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let value = Value::deserialize(d)?;
        from_value(&value).ok_or_else(|| D::Error::custom(format!("not a boolean: {value}")))
    }

    /// The lenient reading of one JSON value, `None` when it is no boolean at all.
    pub fn from_value(value: &Value) -> Option<bool> {
        match value {
            Value::Null => Some(false),
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_f64().map(|f| f != 0.0),
            Value::String(s) => match s.trim() {
                "" | "0" | "false" | "no" | "off" => Some(false),
                "1" | "true" | "yes" | "on" => Some(true),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Integers PVE sometimes sends as strings (`"15"`) or omits.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let value = serde_json::Value::deserialize(d)?;
    match &value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("not an integer: {value}"))),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("not an integer: {value}"))),
        _ => Err(D::Error::custom(format!("not an integer: {value}"))),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(lenient_i64(d)?.map_or(0, |v| v.max(0) as u64))
}

/// Strings PVE sometimes sends as numbers (a VM `name` of digits, a numeric tag).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Version {
    /// The pve-manager package version, e.g. `8.2.4`.
    #[serde(default)]
    pub version: String,
    /// `major.minor`, e.g. `8.2`.
    #[serde(default)]
    pub release: String,
    #[serde(default)]
    pub repoid: Option<String>,
}

impl Version {
    /// The major release (8 for `8.2` / `8.2.4`).
    pub fn major(&self) -> Option<u32> {
        let text = if self.release.is_empty() {
            &self.version
        } else {
            &self.release
        };
        text.split(['.', '-']).next()?.parse().ok()
    }
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeSummary {
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default = "unknown")]
    pub status: String,
}

fn unknown() -> String {
    "unknown".into()
}

/// The parts of `GET /nodes/{node}/status` em-infra reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeStatus {
    /// `pve-manager/<version>/<repoid>`.
    #[serde(default)]
    pub pveversion: Option<String>,
    #[serde(default)]
    pub kversion: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub uptime: u64,
}

/// One entry of `GET /cluster/resources?type=vm`, as the API sends it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RawVmResource {
    #[serde(deserialize_with = "lenient_u64")]
    pub vmid: u64,
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(default)]
    pub node: String,
    /// `qemu` or `lxc` (pve-manager `PVE/API2Tools.pm` `extract_vm_stats`).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub template: bool,
    #[serde(default, deserialize_with = "lenient_string")]
    pub tags: Option<String>,
}

impl From<RawVmResource> for super::VmResource {
    fn from(raw: RawVmResource) -> Self {
        super::VmResource {
            vmid: raw.vmid,
            // The ID's prefix says it too (`lxc/101`); PVE always sends `type`.
            kind: raw.kind.unwrap_or_else(|| "qemu".into()),
            name: raw.name.filter(|n| !n.is_empty()),
            node: raw.node,
            status: raw.status.unwrap_or_else(unknown),
            template: raw.template,
            tags: split_tags(raw.tags.as_deref().unwrap_or("")),
        }
    }
}

/// PVE stores tags `;`-separated; the API and older versions also use `,`, spaces or `+`.
pub fn split_tags(tags: &str) -> Vec<String> {
    tags.split([';', ',', ' ', '+'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// `GET /nodes/{node}/qemu/{vmid}/config`: every key as PVE wrote it (values are strings or
/// numbers), with helpers for the few em-infra checks.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(transparent)]
pub struct VmConfig(pub BTreeMap<String, serde_json::Value>);

impl VmConfig {
    /// The value of `key` as text (numbers rendered as PVE would write them).
    pub fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).and_then(|v| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
    }

    pub fn is_template(&self) -> bool {
        self.0
            .get("template")
            .and_then(pve_bool::from_value)
            .unwrap_or(false)
    }

    /// `agent: 1` or `agent: enabled=1,…` (the first positional value is `enabled`).
    pub fn agent_enabled(&self) -> bool {
        let Some(agent) = self.get("agent") else {
            return false;
        };
        let props = PropertyString::parse(&agent, "enabled");
        props
            .get("enabled")
            .and_then(|v| pve_bool::from_value(&serde_json::Value::String(v.to_string())))
            .unwrap_or(false)
    }

    /// The drive key holding a cloud-init volume (`ide2: local-lvm:vm-9000-cloudinit,media=cdrom`).
    pub fn cloudinit_drive(&self) -> Option<String> {
        self.0.keys().find_map(|k| {
            let is_drive = ["ide", "scsi", "sata", "virtio"].iter().any(|p| {
                k.strip_prefix(p)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
            (is_drive && self.get(k).is_some_and(|v| v.contains("cloudinit"))).then(|| k.clone())
        })
    }

    /// The `serial0` value (`socket`), if any.
    pub fn serial0(&self) -> Option<String> {
        self.get("serial0").filter(|s| !s.is_empty())
    }

    /// Tags as a list (config tags are `;`-separated).
    pub fn tags(&self) -> Vec<String> {
        split_tags(&self.get("tags").unwrap_or_default())
    }
}

/// A PVE property string: `[positional,]key=value,key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertyString(pub BTreeMap<String, String>);

impl PropertyString {
    /// Parse `text`; a first value without `=` is stored under `positional`.
    pub fn parse(text: &str, positional: &str) -> Self {
        let mut map = BTreeMap::new();
        for (i, part) in text.split(',').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((k, v)) => {
                    map.insert(k.trim().to_string(), v.trim().to_string());
                }
                None if i == 0 => {
                    map.insert(positional.to_string(), part.to_string());
                }
                None => {}
            }
        }
        PropertyString(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// One entry of `GET /nodes/{node}/storage` (the storages the token may see on that node).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeStorage {
    pub storage: String,
    #[serde(flatten)]
    pub status: StorageStatus,
}

/// `GET /nodes/{node}/storage/{storage}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StorageStatus {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Comma-separated content types: `images,rootdir,iso,…`.
    #[serde(default)]
    pub content: String,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub active: bool,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub shared: bool,
    /// Free bytes.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub avail: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub used: u64,
}

impl StorageStatus {
    pub fn allows(&self, content: &str) -> bool {
        self.content.split(',').any(|c| c.trim() == content)
    }
}

/// One entry of `GET /storage`: a storage's definition in `storage.cfg` (pve-storage
/// `PVE/API2/Storage/Config.pm` `index`, listed where the token has `Datastore.Audit` or
/// `Datastore.AllocateSpace`). Unlike the status, it says *why* a storage is not enabled on a
/// node: `disable` (set only when 1), or `nodes` (set only when restricted; comma-separated).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StorageConfig {
    pub storage: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub content: String,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub disable: bool,
    #[serde(default, deserialize_with = "lenient_string")]
    pub nodes: Option<String>,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub shared: bool,
}

impl StorageConfig {
    /// The nodes it is restricted to; empty when it is available on every node.
    pub fn node_list(&self) -> Vec<String> {
        self.nodes
            .as_deref()
            .unwrap_or("")
            .split([',', ';', ' '])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether `node` may use it (no restriction, or listed).
    pub fn available_on(&self, node: &str) -> bool {
        let nodes = self.node_list();
        nodes.is_empty() || nodes.iter().any(|n| n == node)
    }
}

/// One entry of `GET /nodes/{node}/network`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInterface {
    pub iface: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub active: bool,
    #[serde(default, deserialize_with = "lenient_string")]
    pub cidr: Option<String>,
}

impl NetworkInterface {
    pub fn is_bridge(&self) -> bool {
        matches!(self.kind.as_str(), "bridge" | "OVSBridge")
    }
}

/// One entry of `GET /cluster/mapping/pci` (pve-manager `PVE/API2/Cluster/Mapping/PCI.pm`
/// `index`; the section config of pve-guest-common `PVE/Mapping/PCI.pm`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PciMapping {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Property strings: `node=pve,path=0000:01:00.0,id=10de:2204,iommugroup=14,…`; a node may
    /// have several (one per device the GUI's selector picked).
    #[serde(default)]
    pub map: Vec<String>,
    /// Marks the devices as providing mediated devices.
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub mdev: bool,
    /// Only with `?check-node=<node>`: the host's own check of that node's entries against its
    /// hardware (`assert_valid`): `warning` "No mapping for node N.", `error` "Invalid
    /// configuration: …".
    #[serde(default)]
    pub checks: Vec<PciMappingCheck>,
}

/// One diagnostic of `GET /cluster/mapping/pci?check-node=<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PciMappingCheck {
    /// `warning` or `error`.
    pub severity: String,
    pub message: String,
}

impl PciMapping {
    pub fn entries(&self) -> Vec<PciMapEntry> {
        self.map.iter().map(|m| PciMapEntry::parse(m)).collect()
    }

    /// The first entry for `node`, if the mapping has one.
    pub fn entry_for(&self, node: &str) -> Option<PciMapEntry> {
        self.entries().into_iter().find(|e| e.node == node)
    }

    /// Every entry for `node`: alternatives, the first free one is used when a VM starts
    /// (qemu-server `PVE/QemuServer/PCI.pm` `parse_hostpci` and `choose_hostpci_devices`).
    pub fn entries_for(&self, node: &str) -> Vec<PciMapEntry> {
        self.entries()
            .into_iter()
            .filter(|e| e.node == node)
            .collect()
    }

    /// The host's `error` diagnostics (`checks` of a `?check-node=` answer), trimmed.
    pub fn check_errors(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.severity == "error")
            .map(|c| c.message.trim().to_string())
            .collect()
    }
}

/// One parsed `map` entry of a PCI resource mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciMapEntry {
    pub node: String,
    /// `0000:01:00.0`, `0000:01:00` for all functions of a device, or several of those separated
    /// by `;` (pve-guest-common `PVE/Mapping/PCI.pm`, the `path` format).
    pub path: String,
    /// `vendor:device` without `0x`.
    pub id: String,
    pub iommugroup: Option<i64>,
}

impl PciMapEntry {
    pub fn parse(text: &str) -> Self {
        let props = PropertyString::parse(text, "node");
        let get = |k: &str| props.get(k).unwrap_or_default().to_string();
        PciMapEntry {
            node: get("node"),
            path: get("path"),
            id: get("id"),
            iommugroup: props.get("iommugroup").and_then(|g| g.parse().ok()),
        }
    }

    /// The `;`-separated paths of `path`, each a device (`0000:01:00.0`) or all functions of one
    /// (`0000:01:00`).
    pub fn paths(&self) -> Vec<&str> {
        self.path
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    }
}

/// One entry of `GET /nodes/{node}/hardware/pci`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PciDevice {
    /// `0000:01:00.0`.
    pub id: String,
    /// `0x030000` (display controller: `0x03…`).
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub vendor_name: Option<String>,
    #[serde(default)]
    pub device_name: Option<String>,
    /// `-1` when the kernel has no IOMMU group for it (IOMMU off).
    #[serde(default = "no_group", deserialize_with = "group")]
    pub iommugroup: i64,
    #[serde(default, deserialize_with = "pve_bool::de")]
    pub mdev: bool,
}

fn no_group() -> i64 {
    -1
}

fn group<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(lenient_i64(d)?.unwrap_or(-1))
}

impl PciDevice {
    pub fn is_display_controller(&self) -> bool {
        let class = self.class.trim_start_matches("0x");
        class.starts_with("03")
    }

    /// `0000:01:00` of `0000:01:00.0`: functions of one device share it.
    pub fn bus_device(&self) -> &str {
        bus_device(&self.id)
    }

    /// `NVIDIA Corporation GA102 [GeForce RTX 3090]`, else the raw IDs.
    pub fn describe(&self) -> String {
        match (&self.vendor_name, &self.device_name) {
            (Some(v), Some(d)) => format!("{v} {d}"),
            (None, Some(d)) => d.clone(),
            _ => format!(
                "{}:{}",
                self.vendor.trim_start_matches("0x"),
                self.device.trim_start_matches("0x")
            ),
        }
    }
}

/// The bus:device part of a PCI address (`0000:01:00.1` → `0000:01:00`).
pub fn bus_device(id: &str) -> &str {
    id.rsplit_once('.').map_or(id, |(bd, _)| bd)
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// Only when stopped: `OK`, `WARNINGS: n`, or the error text.
    #[serde(default)]
    pub exitstatus: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
}

impl TaskStatus {
    pub fn stopped(&self) -> bool {
        self.status == "stopped"
    }

    /// Stopped with `OK` or `WARNINGS: n` (success with warnings).
    pub fn succeeded(&self) -> bool {
        self.stopped()
            && self
                .exitstatus
                .as_deref()
                .is_some_and(|s| s == "OK" || s.starts_with("WARNINGS"))
    }
}

/// A task ID: `UPID:$node:$pid:$pstart:$starttime:$type:$id:$user:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    /// `qmclone`, `qmcreate`, …
    pub kind: String,
    /// Often the VM ID; may be empty.
    pub id: String,
    /// `user@realm`, or `user@realm!tokenid` for a token.
    pub user: String,
}

impl Upid {
    pub fn parse(text: &str) -> Option<Upid> {
        let rest = text.trim().strip_prefix("UPID:")?;
        let parts: Vec<&str> = rest.split(':').collect();
        // node, pid, pstart, starttime, type, id, user, "" (trailing colon)
        if parts.len() < 7 {
            return None;
        }
        let hex32 = |s: &str| u32::from_str_radix(s, 16).ok();
        let hex64 = |s: &str| u64::from_str_radix(s, 16).ok();
        let node = parts[0];
        if node.is_empty() {
            return None;
        }
        Some(Upid {
            node: node.to_string(),
            pid: hex32(parts[1])?,
            pstart: hex64(parts[2])?,
            starttime: hex64(parts[3])?,
            kind: parts[4].to_string(),
            id: parts[5].to_string(),
            user: parts[6].to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct B {
        #[serde(default, deserialize_with = "pve_bool::de")]
        v: bool,
    }

    fn b(value: serde_json::Value) -> Result<bool, serde_json::Error> {
        serde_json::from_value::<B>(json!({ "v": value })).map(|b| b.v)
    }

    #[test]
    fn booleans_are_lenient() {
        for (value, want) in [
            (json!(0), false),
            (json!(1), true),
            (json!("0"), false),
            (json!("1"), true),
            (json!(true), true),
            (json!(false), false),
            (json!("true"), true),
            (json!(null), false),
            (json!(""), false),
        ] {
            assert_eq!(b(value.clone()).unwrap(), want, "{value}");
        }
        assert!(b(json!("maybe")).is_err());
        assert!(b(json!([1])).is_err());
        assert!(!serde_json::from_str::<B>("{}").unwrap().v);
    }

    #[test]
    fn envelope_unwraps_data() {
        let env: Envelope<Version> = serde_json::from_str(
            r#"{"data":{"version":"8.2.4","release":"8.2","repoid":"faa83925c9641325"}}"#,
        )
        .unwrap();
        assert_eq!(env.data.version, "8.2.4");
        assert_eq!(env.data.major(), Some(8));
        let nodes: Envelope<Vec<NodeSummary>> = serde_json::from_str(
            r#"{"data":[{"node":"pve","status":"online","cpu":0.01,"level":"","type":"node"}]}"#,
        )
        .unwrap();
        assert_eq!(nodes.data[0].status, "online");
        assert!(serde_json::from_str::<Envelope<Version>>(r#"{"version":"8"}"#).is_err());
    }

    #[test]
    fn vm_resources_decode_real_shapes() {
        let raw: Envelope<Vec<RawVmResource>> = serde_json::from_str(
            r#"{"data":[
              {"id":"qemu/9000","vmid":9000,"node":"pve","type":"qemu","status":"stopped","name":"ubuntu-tmpl","template":1,"tags":"em-infra;template"},
              {"id":"qemu/101","vmid":"101","node":"pve","type":"qemu","status":"unknown"},
              {"id":"lxc/102","vmid":102,"node":"pve","type":"lxc","status":"running","name":"ct","template":"0","tags":"go-proxmox+cloud-init"}
            ]}"#,
        )
        .unwrap();
        let vms: Vec<crate::proxmox::VmResource> = raw.data.into_iter().map(Into::into).collect();
        assert!(vms[0].template);
        assert_eq!(vms[0].tags, ["em-infra", "template"]);
        assert_eq!(vms[1].vmid, 101);
        assert_eq!(vms[1].name, None);
        assert!(!vms[2].template);
        assert_eq!(vms[2].tags, ["go-proxmox", "cloud-init"]);
        assert_eq!(
            (vms[0].kind.as_str(), vms[2].kind.as_str()),
            ("qemu", "lxc")
        );
        assert!(!vms[0].is_container() && vms[2].is_container());
    }

    #[test]
    fn vm_config_helpers() {
        let cfg: VmConfig = serde_json::from_value(json!({
            "agent": "enabled=1,fstrim_cloned_disks=1",
            "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
            "scsi0": "local-lvm:base-9000-disk-0,size=3584M",
            "serial0": "socket",
            "template": 1,
            "tags": "em-infra;k3s",
            "vmid": 9000
        }))
        .unwrap();
        assert!(cfg.agent_enabled());
        assert!(cfg.is_template());
        assert_eq!(cfg.cloudinit_drive().as_deref(), Some("ide2"));
        assert_eq!(cfg.serial0().as_deref(), Some("socket"));
        assert_eq!(cfg.tags(), ["em-infra", "k3s"]);
        for (agent, want) in [
            (json!("1"), true),
            (json!(1), true),
            (json!("0"), false),
            (json!("enabled=0"), false),
            (json!("0,fstrim_cloned_disks=1"), false),
            (json!("1,type=virtio"), true),
        ] {
            let cfg: VmConfig = serde_json::from_value(json!({ "agent": agent })).unwrap();
            assert_eq!(cfg.agent_enabled(), want, "{agent}");
        }
        let empty = VmConfig::default();
        assert!(!empty.agent_enabled() && empty.cloudinit_drive().is_none());
    }

    #[test]
    fn pci_shapes() {
        let m: PciMapping = serde_json::from_value(json!({
            "id": "gpu0",
            "map": ["node=pve,path=0000:01:00.0,id=10de:2204,iommugroup=14,subsystem-id=1458:403b"],
        }))
        .unwrap();
        let e = m.entry_for("pve").unwrap();
        assert_eq!(e.path, "0000:01:00.0");
        assert_eq!(e.iommugroup, Some(14));
        assert!(m.entry_for("pve2").is_none());
        assert!(m.checks.is_empty() && !m.mdev);
        // Several entries for one node, `;`-separated paths, and the host's checks.
        let m: PciMapping = serde_json::from_value(json!({
            "id": "gpu0", "mdev": 1,
            "map": ["path=0000:01:00.0;0000:02:00.0,node=pve,id=10de:2204",
                    "node=pve,path=0000:03:00,id=10de:2204", "node=pve2,path=0000:01:00.0,id=10de:2204"],
            "checks": [{"severity": "warning", "message": "x"},
                       {"severity": "error", "message": "Invalid configuration: pci device '0000:02:00.0' not found\n"}],
        }))
        .unwrap();
        let pve = m.entries_for("pve");
        assert_eq!(pve.len(), 2);
        assert_eq!(pve[0].paths(), ["0000:01:00.0", "0000:02:00.0"]);
        assert_eq!(pve[1].paths(), ["0000:03:00"]);
        assert!(m.mdev);
        assert_eq!(
            m.check_errors(),
            ["Invalid configuration: pci device '0000:02:00.0' not found"]
        );
        let d: Vec<PciDevice> = serde_json::from_value(json!([
            {"id":"0000:01:00.0","class":"0x030000","vendor":"0x10de","vendor_name":"NVIDIA Corporation","device":"0x2204","device_name":"GA102 [GeForce RTX 3090]","iommugroup":15,"mdev":true},
            {"id":"0000:02:00.0","class":"0x010802","vendor":"0x8086","device":"0xa808","iommugroup":-1}
        ]))
        .unwrap();
        assert!(d[0].is_display_controller() && d[0].mdev);
        assert!(!d[1].is_display_controller());
        assert_eq!(d[1].iommugroup, -1);
        assert_eq!(d[0].bus_device(), "0000:01:00");
        assert_eq!(d[1].describe(), "8086:a808");
    }

    #[test]
    fn upid_parses() {
        let u = Upid::parse("UPID:pve:00061CB3:010BA69C:64EFECB0:qmcreate:101:root@pam:").unwrap();
        assert_eq!(u.node, "pve");
        assert_eq!(u.pid, 0x61CB3);
        assert_eq!(u.starttime, 0x64EFECB0);
        assert_eq!(u.kind, "qmcreate");
        assert_eq!(u.id, "101");
        assert_eq!(u.user, "root@pam");
        let t = Upid::parse("UPID:pve2:0000A1B2:0001C3D4:6560F1E2:vzdump::em@pve!ci:").unwrap();
        assert_eq!(t.id, "");
        assert_eq!(t.user, "em@pve!ci");
        for bad in [
            "",
            "UPID:",
            "pve:1:2:3:x:y:z:",
            "UPID:pve:zz:1:2:t:i:u:",
            "UPID::1:2:3:t:i:u:",
        ] {
            assert!(Upid::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn task_status_verdicts() {
        let s = |v: serde_json::Value| serde_json::from_value::<TaskStatus>(v).unwrap();
        assert!(!s(json!({"status":"running"})).stopped());
        assert!(s(json!({"status":"stopped","exitstatus":"OK"})).succeeded());
        assert!(s(json!({"status":"stopped","exitstatus":"WARNINGS: 2"})).succeeded());
        assert!(!s(json!({"status":"stopped","exitstatus":"clone failed: x"})).succeeded());
    }

    #[test]
    fn storage_config_entries() {
        let cfg: Vec<StorageConfig> = serde_json::from_value(json!([
            {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images", "thinpool": "data", "vgname": "pve", "digest": "x"},
            {"storage": "nfs", "type": "nfs", "content": "images", "disable": 1, "nodes": "pve2,pve3", "shared": 1}
        ]))
        .unwrap();
        assert!(!cfg[0].disable && cfg[0].node_list().is_empty() && cfg[0].available_on("pve"));
        assert!(cfg[1].disable && cfg[1].shared);
        assert_eq!(cfg[1].node_list(), ["pve2", "pve3"]);
        assert!(!cfg[1].available_on("pve") && cfg[1].available_on("pve3"));
    }

    #[test]
    fn storage_content() {
        let st: StorageStatus = serde_json::from_value(json!({
            "active":1,"avail":"100","content":"rootdir,images","enabled":1,"shared":0,"total":200,"type":"lvmthin","used":100
        }))
        .unwrap();
        assert!(st.allows("images") && !st.allows("iso"));
        assert_eq!(st.avail, 100);
        assert!(st.active && st.enabled && !st.shared);
    }
}
