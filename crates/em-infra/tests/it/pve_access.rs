//! Proxmox VE's permission model behind `GET /access/permissions`, for the API test server: roles,
//! ACL entries for users and tokens, propagation, privilege separation, and the privilege names
//! of PVE 8 and PVE 9. Read from pve-access-control (master 9.1.1 and stable-bookworm 8.2.3):
//!
//! - the valid names: `$privgroups` in `src/PVE/AccessControl.pm` (PVE 9 dropped `VM.Monitor` and
//!   added `VM.GuestAgent.*` and `VM.Replicate`); a role in user.cfg naming an invalid privilege
//!   loads without it ("ignore invalid privilege", AccessControl.pm `parse_user_config`);
//! - `roles()` (AccessControl.pm): walk the ACL tree from `/`; at each level a token's own entries,
//!   else the user's, replace what was inherited; an entry applies below its path only with
//!   propagate=1; `NoAccess` wins;
//! - `permissions()` (RPCEnvironment.pm): a token without privilege separation has exactly its
//!   user's privileges; a privilege-separated one the intersection of its own and its user's;
//! - the endpoint (API2/AccessControl.pm `permissions`): with `path`, `{path: {priv: 0|1}}` (the
//!   path echoed as given, `{}` as its value when nothing is held); without, every path of
//!   `/ /access /access/groups /nodes /pool /sdn /storage /vms` and of any ACL entry where
//!   something is held; another user's permissions need `Sys.Audit` on `/access`.
//!
//! Groups and pools are not modelled: em-infra relies on neither.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::pve_server::{Reply, error, ok};

/// Privileges both releases know.
const COMMON: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];
/// Only PVE 8 (and older).
const PVE8_ONLY: &[&str] = &["VM.Monitor"];
/// Only PVE 9 (access-control 9.0.2/9.0.3).
const PVE9_ONLY: &[&str] = &[
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.Unrestricted",
    "VM.Replicate",
];

/// Every privilege name a PVE release with this major version accepts.
pub(crate) fn valid_privileges(major: u32) -> BTreeSet<&'static str> {
    let extra = if major >= 9 { PVE9_ONLY } else { PVE8_ONLY };
    COMMON.iter().chain(extra).copied().collect()
}

/// Who an ACL entry is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    User(String),
    Token(String),
}

#[derive(Debug, Clone)]
struct AclEntry {
    path: String,
    subject: Subject,
    role: String,
    propagate: bool,
}

/// user.cfg as far as permissions go: roles, tokens (with their privsep flag) and the ACL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// Role → privileges as written in user.cfg; names the release does not know are ignored.
    roles: BTreeMap<String, Vec<String>>,
    /// Token ID → privilege separation.
    tokens: BTreeMap<String, bool>,
    acl: Vec<AclEntry>,
}

impl Access {
    /// Nothing granted; the built-in roles `Administrator` (every valid privilege) and `NoAccess`.
    pub(crate) fn new() -> Access {
        let mut access = Access::default();
        let all: Vec<&str> = COMMON
            .iter()
            .chain(PVE8_ONLY)
            .chain(PVE9_ONLY)
            .copied()
            .collect();
        access = access.role("Administrator", &all).role("NoAccess", &[]);
        access
    }

    /// What the test server answers by default: `token`'s user has `Administrator` on `/`
    /// (propagated) and the token has no privilege separation, so every check passes.
    pub(crate) fn admin(token: &str) -> Access {
        let user = user_of(token);
        Access::new()
            .token(token, false)
            .grant_user("/", &user, "Administrator", true)
    }

    /// Define (or replace) a role.
    pub(crate) fn role(mut self, name: &str, privileges: &[&str]) -> Access {
        self.roles.insert(
            name.into(),
            privileges.iter().map(|p| (*p).to_string()).collect(),
        );
        self
    }

    /// Declare a token (`user@realm!name`) with its privilege-separation flag.
    pub(crate) fn token(mut self, token: &str, privsep: bool) -> Access {
        self.tokens.insert(token.into(), privsep);
        self
    }

    /// `pveum acl modify <path> --users <user> --roles <role> --propagate <0|1>`.
    pub(crate) fn grant_user(self, path: &str, user: &str, role: &str, propagate: bool) -> Access {
        self.grant(path, Subject::User(user.into()), role, propagate)
    }

    /// `pveum acl modify <path> --tokens <token> --roles <role> --propagate <0|1>`.
    pub(crate) fn grant_token(
        self,
        path: &str,
        token: &str,
        role: &str,
        propagate: bool,
    ) -> Access {
        self.grant(path, Subject::Token(token.into()), role, propagate)
    }

    fn grant(mut self, path: &str, subject: Subject, role: &str, propagate: bool) -> Access {
        self.acl.push(AclEntry {
            path: path.into(),
            subject,
            role: role.into(),
            propagate,
        });
        self
    }

    /// `roles()`: the roles `subject` has on `path`, with their propagate flag.
    fn roles_on(&self, subject: &Subject, path: &str) -> BTreeMap<String, bool> {
        let mut roles = BTreeMap::new();
        let parts: Vec<&str> = if path == "/" {
            vec![""]
        } else {
            path.split('/').collect()
        };
        let mut current = String::new();
        for (i, part) in parts.iter().enumerate() {
            let final_level = i + 1 == parts.len();
            if !part.is_empty() {
                current.push('/');
                current.push_str(part);
            }
            let level = if current.is_empty() { "/" } else { &current };
            let mut new: Option<BTreeMap<String, bool>> = None;
            for e in self
                .acl
                .iter()
                .filter(|e| e.path == level && &e.subject == subject)
            {
                if final_level || e.propagate {
                    new.get_or_insert_with(BTreeMap::new)
                        .insert(e.role.clone(), e.propagate);
                }
            }
            if let Some(new) = new {
                roles = new; // overwrite what was inherited
            }
        }
        if let Some(p) = roles.get("NoAccess") {
            return BTreeMap::from([("NoAccess".to_string(), *p)]);
        }
        roles
    }

    /// The privileges of `subject` on `path`, as the release loads the roles.
    fn privileges_of(&self, major: u32, subject: &Subject, path: &str) -> BTreeMap<String, bool> {
        let valid = valid_privileges(major);
        let mut privs: BTreeMap<String, bool> = BTreeMap::new();
        for (role, propagate) in self.roles_on(subject, path) {
            for p in self.roles.get(&role).into_iter().flatten() {
                if valid.contains(p.as_str()) {
                    let entry = privs.entry(p.clone()).or_insert(false);
                    *entry = *entry || propagate;
                }
            }
        }
        privs
    }

    /// `permissions()`: what `authid` (a user or a token) holds on `path`.
    pub(crate) fn permissions(
        &self,
        major: u32,
        authid: &str,
        path: &str,
    ) -> BTreeMap<String, bool> {
        if !authid.contains('!') {
            return self.privileges_of(major, &Subject::User(authid.into()), path);
        }
        let Some(&privsep) = self.tokens.get(authid) else {
            return BTreeMap::new();
        };
        let user = self.privileges_of(major, &Subject::User(user_of(authid)), path);
        if !privsep {
            return user;
        }
        self.privileges_of(major, &Subject::Token(authid.into()), path)
            .into_iter()
            .filter_map(|(p, prop)| user.get(&p).map(|uprop| (p, prop && *uprop)))
            .collect()
    }

    /// The answer to `GET /access/permissions<query>` from `authid` on a PVE `major` host.
    pub(crate) fn reply(&self, major: u32, authid: &str, query: &str) -> Reply {
        let params = query_params(query);
        let target = params
            .get("userid")
            .cloned()
            .unwrap_or_else(|| authid.to_string());
        let own = target == authid || (user_of(&target) == authid && target.contains('!'));
        if !own
            && !self
                .permissions(major, authid, "/access")
                .contains_key("Sys.Audit")
        {
            return error(403, "Permission check failed (/access, Sys.Audit)");
        }
        let as_json = |privs: BTreeMap<String, bool>| -> Value {
            privs
                .into_iter()
                .map(|(p, prop)| (p, json!(i32::from(prop))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        if let Some(path) = params.get("path") {
            return ok(json!({ path.as_str(): as_json(self.permissions(major, &target, path)) }));
        }
        let mut paths: BTreeSet<String> = [
            "/",
            "/access",
            "/access/groups",
            "/nodes",
            "/pool",
            "/sdn",
            "/storage",
            "/vms",
        ]
        .iter()
        .map(|p| (*p).to_string())
        .collect();
        paths.extend(self.acl.iter().map(|e| e.path.clone()));
        let mut out = serde_json::Map::new();
        for p in paths {
            let privs = self.permissions(major, &target, &p);
            if !privs.is_empty() {
                out.insert(p, as_json(privs));
            }
        }
        ok(Value::Object(out))
    }
}

impl Access {
    /// Whether `authid` holds any of `privs` on `path` (PVE's `check_any`).
    fn has_any(&self, major: u32, authid: &str, path: &str, privs: &[&str]) -> bool {
        let held = self.permissions(major, authid, path);
        privs.iter().any(|p| held.contains_key(*p))
    }

    /// `check_sdn_bridge`: SDN.Audit or SDN.Use on the bridge, or on one of its VLANs that has
    /// an ACL entry (RPCEnvironment.pm).
    fn sees_bridge(&self, major: u32, authid: &str, bridge: &str) -> bool {
        let path = format!("/sdn/zones/localnetwork/{bridge}");
        let privs = ["SDN.Audit", "SDN.Use"];
        self.has_any(major, authid, &path, &privs)
            || self
                .acl
                .iter()
                .filter(|e| {
                    e.path
                        .strip_prefix(&path)
                        .is_some_and(|r| r.starts_with('/'))
                })
                .any(|e| self.has_any(major, authid, &e.path, &privs))
    }

    /// Apply the permission checks and filters real PVE applies to the endpoints em-infra reads,
    /// to a route's successful `reply` for `key` (`"GET /path?query"`): a 403 `Permission check
    /// failed (<path>, <privs>)` where the endpoint checks, entries dropped where it filters.
    /// Sources (pve-manager, qemu-server, pve-storage): `Cluster.pm` resources (VM.Audit per
    /// guest), `Qemu.pm` vm_config (VM.Audit), `Storage/Status.pm` read_status and index
    /// (Datastore.Audit|Datastore.AllocateSpace), `Network.pm` index (bridges need SDN.Audit or
    /// SDN.Use), `Cluster/Mapping/PCI.pm` index (Mapping.Modify|Use|Audit), `Hardware/PCI.pm`
    /// (Sys.Audit|Sys.Modify on /), `Nodes.pm` status (Sys.Audit on /nodes/<node>).
    pub(crate) fn guard(&self, major: u32, authid: &str, key: &str, reply: Reply) -> Reply {
        if reply.status != 200 {
            return reply;
        }
        let Some(target) = key.strip_prefix("GET ") else {
            return reply;
        };
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let deny = |acl: &str, privs: &[&str]| -> Option<Reply> {
            (!self.has_any(major, authid, acl, privs)).then(|| {
                error(
                    403,
                    &format!("Permission check failed ({acl}, {})", privs.join("|")),
                )
            })
        };
        let filter = |reply: Reply, keep: &dyn Fn(&Value) -> bool| -> Reply {
            let mut reply = reply;
            if let Some(items) = reply.body["data"].as_array_mut() {
                items.retain(|item| keep(item));
            }
            reply
        };
        const STORAGE: &[&str] = &["Datastore.Audit", "Datastore.AllocateSpace"];
        match parts.as_slice() {
            ["cluster", "resources"] => filter(reply, &|r| match r["vmid"].as_u64() {
                Some(id) => self.has_any(major, authid, &format!("/vms/{id}"), &["VM.Audit"]),
                None => true,
            }),
            ["nodes", _, "qemu", id, "config"] => {
                deny(&format!("/vms/{id}"), &["VM.Audit"]).unwrap_or(reply)
            }
            ["nodes", _, "storage", id, "status"] => {
                deny(&format!("/storage/{id}"), STORAGE).unwrap_or(reply)
            }
            ["nodes", _, "storage"] => filter(reply, &|s| {
                let id = s["storage"].as_str().unwrap_or_default();
                self.has_any(major, authid, &format!("/storage/{id}"), STORAGE)
            }),
            ["nodes", _, "network"] => filter(reply, &|i| {
                let bridge = matches!(i["type"].as_str(), Some("bridge" | "OVSBridge"));
                !bridge || self.sees_bridge(major, authid, i["iface"].as_str().unwrap_or_default())
            }),
            ["cluster", "mapping", "pci"] => filter(reply, &|m| {
                let id = m["id"].as_str().unwrap_or_default();
                let privs = ["Mapping.Modify", "Mapping.Use", "Mapping.Audit"];
                self.has_any(major, authid, &format!("/mapping/pci/{id}"), &privs)
            }),
            ["nodes", _, "hardware", "pci"] => {
                deny("/", &["Sys.Audit", "Sys.Modify"]).unwrap_or(reply)
            }
            ["nodes", node, "status"] => {
                deny(&format!("/nodes/{node}"), &["Sys.Audit"]).unwrap_or(reply)
            }
            _ => reply,
        }
    }
}

/// `user@realm` of `user@realm!token` (a user ID stays as it is).
fn user_of(authid: &str) -> String {
    authid
        .split_once('!')
        .map_or(authid, |(u, _)| u)
        .to_string()
}

/// `?a=b&c=%2Fd` → {a: b, c: /d}.
fn query_params(query: &str) -> BTreeMap<String, String> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "em@pve!t";

    fn privs(access: &Access, major: u32, path: &str) -> Vec<String> {
        access.permissions(major, TOKEN, path).into_keys().collect()
    }

    #[test]
    fn propagation_privsep_and_release_names() {
        let role = ["VM.Audit", "VM.Monitor", "VM.GuestAgent.Audit"];
        // Granted on /vms with propagate: /vms/100 inherits; without propagate it does not.
        let a = Access::new()
            .role("R", &role)
            .token(TOKEN, false)
            .grant_user("/vms", "em@pve", "R", true);
        assert_eq!(privs(&a, 8, "/vms/100"), ["VM.Audit", "VM.Monitor"]);
        assert_eq!(
            privs(&a, 9, "/vms/100"),
            ["VM.Audit", "VM.GuestAgent.Audit"]
        );
        assert!(privs(&a, 9, "/storage/x").is_empty());
        let a = Access::new()
            .role("R", &role)
            .token(TOKEN, false)
            .grant_user("/vms", "em@pve", "R", false);
        assert!(privs(&a, 8, "/vms/100").is_empty());
        assert_eq!(privs(&a, 8, "/vms"), ["VM.Audit", "VM.Monitor"]);
        // A deeper entry replaces the inherited roles; NoAccess wins.
        let a = Access::new()
            .role("R", &role)
            .role("A", &["VM.Audit"])
            .token(TOKEN, false)
            .grant_user("/", "em@pve", "R", true)
            .grant_user("/vms/101", "em@pve", "A", true)
            .grant_user("/vms/102", "em@pve", "NoAccess", true);
        assert_eq!(privs(&a, 8, "/vms/101"), ["VM.Audit"]);
        assert!(privs(&a, 8, "/vms/102").is_empty());
        assert_eq!(privs(&a, 8, "/vms/103"), ["VM.Audit", "VM.Monitor"]);
        // Privilege separation: the token's own ACL intersected with the user's.
        let a = Access::new()
            .role("R", &role)
            .role("A", &["VM.Audit"])
            .token(TOKEN, true)
            .grant_user("/", "em@pve", "A", true)
            .grant_token("/", TOKEN, "R", true);
        assert_eq!(privs(&a, 8, "/vms/100"), ["VM.Audit"]);
        let only_token = Access::new()
            .role("R", &role)
            .token(TOKEN, true)
            .grant_token("/", TOKEN, "R", true);
        assert!(privs(&only_token, 8, "/vms/100").is_empty());
    }

    #[test]
    fn reply_shapes() {
        let a = Access::admin(TOKEN);
        let r = a.reply(9, TOKEN, "?path=%2Fvms%2F100");
        assert_eq!(r.status, 200);
        assert_eq!(r.body["data"]["/vms/100"]["VM.GuestAgent.Audit"], 1);
        assert!(r.body["data"]["/vms/100"].get("VM.Monitor").is_none());
        let none = Access::new()
            .token(TOKEN, false)
            .reply(8, TOKEN, "?path=/vms");
        assert_eq!(none.body["data"], json!({"/vms": {}}));
        let all = a.reply(8, TOKEN, "");
        assert_eq!(all.body["data"]["/"]["VM.Monitor"], 1);
        let other = Access::new()
            .token(TOKEN, false)
            .reply(8, TOKEN, "?userid=root%40pam");
        assert_eq!(other.status, 403);
    }
}
