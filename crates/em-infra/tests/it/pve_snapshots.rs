//! VM snapshots for the Proxmox API test server: a model of one node's VMs, their disks,
//! snapshots, config locks and tasks, plugged into [`PveServer`] as a [`Handler`], answering the
//! calls as qemu-server does and recording each one so tests can assert the sequence.
//!
//! What it encodes, and where from (qemu-server master `e6352be6` = 9.2.6, pve-guest-common
//! `4a8f6cb`, pve-common `f665029`, pve-manager `14a22df3`, pve-storage `0c56bad8`):
//! - Order of checks: permission (403), then parameters (400), then the handler (pve-manager
//!   `PVE/HTTPServer.pm` `rest_handler`: `check_api2_permissions` before `handle`).
//! - Permissions on `/vms/{vmid}`: list `VM.Audit`; create and delete `VM.Snapshot`; rollback
//!   `VM.Snapshot` or `VM.Snapshot.Rollback` (`any => 1`), and with `start=1` also
//!   `VM.PowerMgmt` (qemu-server `PVE/API2/Qemu.pm` :6082, :6174, :6375, :6414, :6443).
//! - Parameters: `snapname` is `pve-snapshot-name` (`pve-configid`, at most 40; pve-common
//!   `src/PVE/JSONSchema.pm` :30, :188-196, :252-262), booleans over HTTP are `0` or `1`
//!   (`check_type` :1251-1260), no other parameter is allowed (`additionalProperties => 0`);
//!   400 "Parameter verification failed." with the texts under `errors` (:1628-1648, :1378, :1581).
//! - Synchronous refusals (500): the names `current` and `pending` (Qemu.pm :6212-6216), a VM
//!   without configuration on the node (pve-guest-common `src/PVE/AbstractConfig.pm` :57).
//! - In the task, in PVE's order: `__snapshot_prepare` (:730-785: template, lock, duplicate name,
//!   the storage feature), `snapshot_rollback` (:1124-1214: template, unknown snapshot, ZFS's
//!   newest-only rule from pve-storage `ZFSPoolPlugin.pm` :588-613, incomplete snapshot, lock,
//!   then the VM is stopped), `snapshot_delete` (:922-1052: unknown snapshot, lock, parent links
//!   moved to the deleted snapshot's parent). A failure is the task's exit status (pve-common
//!   `src/PVE/RESTEnvironment.pm` :650-665 writes `TASK ERROR: <msg>`, `PVE/UPID.pm` reads it).
//! - The list: snapshots in no particular order (Perl `keys`), then `current` with `parent` and
//!   `running` (Qemu.pm :6128-6163); task status as pve-manager `PVE/API2/Tasks.pm` :454-545
//!   answers it (a token's task has `user` and `tokenid` apart).

use crate::pve_server::{Handler, PveServer, Reply, error, ok};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The snapshot model of one node, plugged into a [`PveServer`]. Clones share the model.
#[derive(Clone)]
pub(crate) struct PveSnapshots {
    model: Arc<Mutex<Model>>,
}

struct Model {
    node: String,
    /// `user@realm!tokenid`, the tasks' owner.
    token_id: String,
    /// Storage ID → type.
    storages: BTreeMap<String, String>,
    vms: BTreeMap<u64, Vm>,
    tasks: BTreeMap<String, Task>,
    calls: Vec<String>,
    /// How many polls a task answers `running` before it stops.
    running_polls: u32,
    next_pid: u32,
    /// Seconds; every snapshot gets a later `snaptime` than the one before.
    clock: i64,
}

struct Vm {
    running: bool,
    template: bool,
    lock: Option<String>,
    /// The snapshot the present state descends from.
    parent: Option<String>,
    /// Drive key → drive string (`local-lvm:vm-101-disk-0,size=32G`).
    disks: BTreeMap<String, String>,
    snapshots: BTreeMap<String, Snap>,
    /// Privileges the token lacks on `/vms/<id>`.
    denied: BTreeSet<String>,
}

struct Snap {
    snaptime: i64,
    description: String,
    parent: Option<String>,
    snapstate: Option<String>,
}

struct Task {
    kind: &'static str,
    vmid: u64,
    pid: u32,
    starttime: i64,
    polls_left: u32,
    /// `OK` or the error.
    exit: String,
    /// What the task changes when it stops well.
    done: Option<Done>,
}

enum Done {
    Create(String),
    Rollback { name: String, start: bool },
    Delete(String),
}

impl PveSnapshots {
    /// A model of node `node` (storages `local-lvm` lvmthin, `tank` zfspool, `local` dir,
    /// `thick` lvm), answering on `server` for the token `token_id` (`user@realm!tokenid`).
    pub(crate) fn install(server: &PveServer, node: &str, token_id: &str) -> PveSnapshots {
        let storages = [
            ("local-lvm", "lvmthin"),
            ("tank", "zfspool"),
            ("local", "dir"),
            ("thick", "lvm"),
        ]
        .into_iter()
        .map(|(id, kind)| (id.to_string(), kind.to_string()))
        .collect();
        let model = Arc::new(Mutex::new(Model {
            node: node.to_string(),
            token_id: token_id.to_string(),
            storages,
            vms: BTreeMap::new(),
            tasks: BTreeMap::new(),
            calls: Vec::new(),
            running_polls: 2,
            next_pid: 0x0003_A2F1,
            clock: 1_764_133_262,
        }));
        let handler_model = model.clone();
        let handler: Handler = Arc::new(move |method, path, body| {
            handler_model.lock().unwrap().answer(method, path, body)
        });
        server.handle(handler);
        PveSnapshots { model }
    }

    /// Add VM `vmid` with `disks` (`("scsi0", "local-lvm:vm-101-disk-0,size=32G")`).
    pub(crate) fn add_vm(&self, vmid: u64, running: bool, disks: &[(&str, &str)]) {
        self.model.lock().unwrap().vms.insert(
            vmid,
            Vm {
                running,
                template: false,
                lock: None,
                parent: None,
                disks: disks
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                snapshots: BTreeMap::new(),
                denied: BTreeSet::new(),
            },
        );
    }

    /// Take away `privilege` on `/vms/<vmid>` from the token.
    pub(crate) fn deny(&self, vmid: u64, privilege: &str) {
        self.vm(vmid, |vm| {
            vm.denied.insert(privilege.to_string());
        });
    }

    /// Set (or clear) the VM's config lock, as a running backup (`backup`) or migration does.
    pub(crate) fn set_lock(&self, vmid: u64, lock: Option<&str>) {
        self.vm(vmid, |vm| vm.lock = lock.map(str::to_string));
    }

    /// Make VM `vmid` a template.
    pub(crate) fn make_template(&self, vmid: u64) {
        self.vm(vmid, |vm| vm.template = true);
    }

    /// How many polls each task answers `running` before it stops (default 2).
    pub(crate) fn running_polls(&self, polls: u32) {
        self.model.lock().unwrap().running_polls = polls;
    }

    /// A complete snapshot someone took outside em-infra (`qm snapshot`), newest of all.
    pub(crate) fn snapshot_taken_elsewhere(&self, vmid: u64, name: &str) {
        let mut model = self.model.lock().unwrap();
        model.clock += 60;
        let snaptime = model.clock;
        let vm = model.vms.get_mut(&vmid).expect("VM in the model");
        vm.snapshots.insert(
            name.to_string(),
            Snap {
                snaptime,
                description: String::new(),
                parent: vm.parent.clone(),
                snapstate: None,
            },
        );
        vm.parent = Some(name.to_string());
    }

    /// Every call the model answered, one line each: `POST /nodes/pve/qemu/101/snapshot
    /// snapname=x vmstate=0`, `task qmsnapshot 101: running`, `task qmsnapshot 101: stopped OK`;
    /// a refusal ends in `→ <status>`.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.model.lock().unwrap().calls.clone()
    }

    /// The VM's snapshot names (sorted), its parent and whether it runs.
    pub(crate) fn state(&self, vmid: u64) -> (Vec<String>, Option<String>, bool) {
        let model = self.model.lock().unwrap();
        let vm = &model.vms[&vmid];
        (
            vm.snapshots.keys().cloned().collect(),
            vm.parent.clone(),
            vm.running,
        )
    }

    fn vm(&self, vmid: u64, f: impl FnOnce(&mut Vm)) {
        f(self
            .model
            .lock()
            .unwrap()
            .vms
            .get_mut(&vmid)
            .expect("VM in the model"));
    }
}

/// A form body or query string as pairs, percent-decoded.
fn pairs(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text).into_owned().collect()
}

/// One percent-encoded path segment, decoded.
fn segment(text: &str) -> String {
    form_urlencoded::parse(format!("s={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[derive(Clone, Copy)]
enum Kind {
    SnapName,
    Boolean,
    Text,
}

/// Check `params` against a method's schema as pve-common's `validate` does; `Err` is the 400.
fn validate(
    params: &[(String, String)],
    schema: &[(&str, Kind, bool)],
) -> Result<BTreeMap<String, String>, Reply> {
    let mut errors = BTreeMap::new();
    let given: BTreeMap<String, String> = params.iter().cloned().collect();
    for (key, value) in &given {
        let Some((_, kind, _)) = schema.iter().find(|(k, _, _)| k == key) else {
            errors.insert(
                key.clone(),
                "property is not defined in schema and the schema does not allow additional \
                 properties"
                    .to_string(),
            );
            continue;
        };
        let problem = match kind {
            Kind::SnapName => {
                let mut chars = value.chars();
                let configid = value.len() >= 2
                    && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !configid {
                    Some(format!(
                        "invalid format - invalid configuration ID '{value}'\n"
                    ))
                } else if value.len() > 40 {
                    Some("value may only be 40 characters long".to_string())
                } else {
                    None
                }
            }
            Kind::Boolean => (value != "0" && value != "1")
                .then(|| format!("type check ('boolean') failed - got '{value}'")),
            Kind::Text => None,
        };
        if let Some(problem) = problem {
            errors.insert(key.clone(), problem);
        }
    }
    for (key, _, required) in schema {
        if *required && !given.contains_key(*key) {
            errors.insert(
                key.to_string(),
                "property is missing and it is not optional".to_string(),
            );
        }
    }
    if errors.is_empty() {
        Ok(given)
    } else {
        let mut reply = error(400, "Parameter verification failed.");
        reply.body["errors"] = json!(errors);
        Err(reply)
    }
}

/// Whether pve-storage's `volume_has_feature('snapshot')` is true for `volname` on a storage of
/// type `kind` (`LvmThinPlugin.pm` :408, `ZFSPoolPlugin.pm` :809, `RBDPlugin.pm` :955,
/// `BTRFSPlugin.pm` :600; qcow2 only: `Plugin.pm` :1575 for dir/nfs/cifs, `LVMPlugin.pm` :1367).
fn storage_can_snapshot(kind: &str, volname: &str) -> bool {
    match kind {
        "lvmthin" | "zfspool" | "zfs" | "rbd" | "btrfs" => true,
        "dir" | "nfs" | "cifs" | "lvm" => volname.ends_with(".qcow2"),
        _ => false,
    }
}

impl Model {
    fn answer(&mut self, method: &str, target: &str, body: &[u8]) -> Option<Reply> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(segment)
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let (reply, line) = match (method, segs.as_slice()) {
            ("GET", ["nodes", node, "tasks", upid, "status"]) if *node == self.node => {
                return self.poll(upid);
            }
            (_, ["nodes", node, "qemu", vmid, rest @ ..]) if *node == self.node => {
                let vmid: u64 = vmid.parse().ok()?;
                let params = pairs(if method == "DELETE" {
                    query.as_bytes()
                } else {
                    body
                });
                let reply = match (method, rest) {
                    ("GET", ["snapshot"]) => self.list(vmid),
                    ("POST", ["snapshot"]) => self.create(vmid, &params),
                    ("POST", ["snapshot", name, "rollback"]) => self.rollback(vmid, name, &params),
                    ("DELETE", ["snapshot", name]) => self.delete(vmid, name, &params),
                    ("GET", ["config"]) if self.vms.contains_key(&vmid) => self.config(vmid),
                    _ => return None,
                };
                let mut line = format!("{method} {path}");
                for (k, v) in &params {
                    line.push_str(&format!(" {k}={v}"));
                }
                (reply, line)
            }
            _ => return None,
        };
        let line = if reply.status == 200 {
            line
        } else {
            format!("{line} → {}", reply.status)
        };
        self.calls.push(line);
        Some(reply)
    }

    /// 403 unless the token has one of `privileges` on the VM (`Permission check failed
    /// (/vms/101, A|B)` for several, pve-access-control `RPCEnvironment.pm` `check_any`).
    fn permit(&self, vmid: u64, privileges: &[&str]) -> Result<(), Reply> {
        let denied = self.vms.get(&vmid).map(|vm| &vm.denied);
        if privileges
            .iter()
            .any(|p| denied.is_none_or(|d| !d.contains(*p)))
        {
            return Ok(());
        }
        Err(error(
            403,
            &format!(
                "Permission check failed (/vms/{vmid}, {})",
                privileges.join("|")
            ),
        ))
    }

    fn no_config(&self, vmid: u64) -> Reply {
        error(
            500,
            &format!(
                "Configuration file 'nodes/{}/qemu-server/{vmid}.conf' does not exist",
                self.node
            ),
        )
    }

    fn config(&self, vmid: u64) -> Reply {
        let vm = &self.vms[&vmid];
        let mut config = json!({
            "name": format!("vm{vmid}"),
            "digest": "0f3c9a4e5b6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f",
        });
        for (k, v) in &vm.disks {
            config[k] = json!(v);
        }
        if let Some(parent) = &vm.parent {
            config["parent"] = json!(parent);
        }
        if vm.template {
            config["template"] = json!(1);
        }
        ok(config)
    }

    fn list(&mut self, vmid: u64) -> Reply {
        if let Err(reply) = self.permit(vmid, &["VM.Audit"]) {
            return reply;
        }
        let Some(vm) = self.vms.get(&vmid) else {
            return self.no_config(vmid);
        };
        // Perl's hash order is no order: answer newest first so a client cannot lean on it.
        let mut items: Vec<Value> = vm
            .snapshots
            .iter()
            .rev()
            .map(|(name, s)| {
                let mut item = json!({"name": name, "snaptime": s.snaptime, "vmstate": 0,
                                      "description": s.description});
                if let Some(p) = &s.parent {
                    item["parent"] = json!(p);
                }
                if let Some(state) = &s.snapstate {
                    item["snapstate"] = json!(state);
                }
                item
            })
            .collect();
        let mut current = json!({"name": "current", "digest": "0f3c9a4e5b6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f",
                                 "running": i32::from(vm.running), "description": "You are here!"});
        if let Some(p) = &vm.parent {
            current["parent"] = json!(p);
        }
        items.push(current);
        ok(json!(items))
    }

    fn create(&mut self, vmid: u64, params: &[(String, String)]) -> Reply {
        if let Err(reply) = self.permit(vmid, &["VM.Snapshot"]) {
            return reply;
        }
        let params = match validate(
            params,
            &[
                ("snapname", Kind::SnapName, true),
                ("vmstate", Kind::Boolean, false),
                ("description", Kind::Text, false),
            ],
        ) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let name = params["snapname"].clone();
        if name == "current" || name.eq_ignore_ascii_case("pending") {
            let reserved = if name == "current" {
                "current"
            } else {
                "pending"
            };
            return error(
                500,
                &format!("unable to use snapshot name '{reserved}' (reserved name)"),
            );
        }
        let (storages, clock) = (self.storages.clone(), self.clock + 60);
        let Some(vm) = self.vms.get_mut(&vmid) else {
            return self.no_config(vmid);
        };
        let unsupported = vm.disks.values().any(|drive| {
            if drive.contains("media=cdrom") {
                return false;
            }
            let file = drive.split(',').next().unwrap_or_default();
            let Some((storage, volname)) = file.split_once(':') else {
                return true;
            };
            !storage_can_snapshot(storages.get(storage).map_or("", String::as_str), volname)
        });
        let refusal = if vm.template {
            Some("you can't take a snapshot if it's a template".to_string())
        } else if let Some(lock) = &vm.lock {
            Some(format!("VM is locked ({lock})"))
        } else if vm.snapshots.contains_key(&name) {
            Some(format!("snapshot name '{name}' already used"))
        } else if unsupported {
            Some("snapshot feature is not available".to_string())
        } else {
            None
        };
        if refusal.is_none() {
            vm.lock = Some("snapshot".into());
            vm.snapshots.insert(
                name.clone(),
                Snap {
                    snaptime: clock,
                    description: params.get("description").cloned().unwrap_or_default(),
                    parent: vm.parent.clone(),
                    snapstate: Some("prepare".into()),
                },
            );
            self.clock = clock;
        }
        self.task("qmsnapshot", vmid, refusal, Done::Create(name))
    }

    fn rollback(&mut self, vmid: u64, name: &str, params: &[(String, String)]) -> Reply {
        if let Err(reply) = self.permit(vmid, &["VM.Snapshot", "VM.Snapshot.Rollback"]) {
            return reply;
        }
        let mut all = params.to_vec();
        all.push(("snapname".into(), name.into()));
        let params = match validate(
            &all,
            &[
                ("snapname", Kind::SnapName, true),
                ("start", Kind::Boolean, false),
            ],
        ) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let start = params.get("start").is_some_and(|s| s == "1");
        // qemu-server ≥ 9.1.10 (commit 7ba9640b) checks this up front.
        if start && let Err(reply) = self.permit(vmid, &["VM.PowerMgmt"]) {
            return reply;
        }
        let storages = self.storages.clone();
        let Some(vm) = self.vms.get_mut(&vmid) else {
            return self.no_config(vmid);
        };
        let newer_on_zfs = vm.snapshots.get(name).and_then(|snap| {
            let newer = vm.snapshots.values().any(|s| s.snaptime > snap.snaptime);
            let zfs_disk = vm.disks.values().find_map(|drive| {
                let file = drive.split(',').next()?;
                let (storage, _) = file.split_once(':')?;
                (storages.get(storage).map(String::as_str) == Some("zfspool"))
                    .then(|| file.to_string())
            })?;
            newer.then_some(zfs_disk)
        });
        let refusal = if vm.template {
            Some("you can't rollback if vm is a template".to_string())
        } else if !vm.snapshots.contains_key(name) {
            Some(format!("snapshot '{name}' does not exist"))
        } else if let Some(volid) = newer_on_zfs {
            Some(format!(
                "can't rollback, '{name}' is not most recent snapshot on '{volid}'"
            ))
        } else if let Some(state) = &vm.snapshots[name].snapstate {
            Some(format!(
                "unable to rollback to incomplete snapshot (snapstate = {state})"
            ))
        } else {
            vm.lock
                .as_ref()
                .map(|lock| format!("VM is locked ({lock})"))
        };
        if refusal.is_none() {
            vm.running = false;
            vm.lock = Some("rollback".into());
        }
        let done = Done::Rollback {
            name: name.to_string(),
            start,
        };
        self.task("qmrollback", vmid, refusal, done)
    }

    fn delete(&mut self, vmid: u64, name: &str, params: &[(String, String)]) -> Reply {
        if let Err(reply) = self.permit(vmid, &["VM.Snapshot"]) {
            return reply;
        }
        let mut all = params.to_vec();
        all.push(("snapname".into(), name.into()));
        if let Err(reply) = validate(
            &all,
            &[
                ("snapname", Kind::SnapName, true),
                ("force", Kind::Boolean, false),
            ],
        ) {
            return reply;
        }
        let Some(vm) = self.vms.get_mut(&vmid) else {
            return self.no_config(vmid);
        };
        let refusal = if !vm.snapshots.contains_key(name) {
            Some(format!("snapshot '{name}' does not exist"))
        } else if let Some(lock) = &vm.lock {
            Some(format!("VM is locked ({lock})"))
        } else if vm.template {
            Some("you can't delete a snapshot if vm is a template".to_string())
        } else {
            None
        };
        if refusal.is_none() {
            vm.lock = Some("snapshot-delete".into());
            if let Some(snap) = vm.snapshots.get_mut(name) {
                snap.snapstate = Some("delete".into());
            }
        }
        self.task(
            "qmdelsnapshot",
            vmid,
            refusal,
            Done::Delete(name.to_string()),
        )
    }

    /// Start a task that stops with `refusal` as its error, or with `OK` after applying `done`.
    fn task(
        &mut self,
        kind: &'static str,
        vmid: u64,
        refusal: Option<String>,
        done: Done,
    ) -> Reply {
        self.next_pid += 1;
        let (pid, starttime) = (self.next_pid, self.clock);
        let upid = format!(
            "UPID:{}:{pid:08X}:{:08X}:{starttime:08X}:{kind}:{vmid}:{}:",
            self.node,
            0x01B2_C3D4 + pid,
            self.token_id
        );
        let ok_now = refusal.is_none();
        self.tasks.insert(
            upid.clone(),
            Task {
                kind,
                vmid,
                pid,
                starttime,
                polls_left: self.running_polls,
                exit: refusal.unwrap_or_else(|| "OK".into()),
                done: ok_now.then_some(done),
            },
        );
        ok(json!(upid))
    }

    fn poll(&mut self, upid: &str) -> Option<Reply> {
        let node = self.node.clone();
        let (user, tokenid) = self
            .token_id
            .split_once('!')
            .map_or((self.token_id.clone(), None), |(u, t)| {
                (u.to_string(), Some(t.to_string()))
            });
        let task = self.tasks.get_mut(upid)?;
        let mut status = json!({
            "upid": upid, "node": node, "pid": task.pid, "pstart": 0x01B2_C3D4 + task.pid,
            "starttime": task.starttime, "type": task.kind, "id": task.vmid.to_string(),
            "user": user,
        });
        if let Some(tokenid) = tokenid {
            status["tokenid"] = json!(tokenid);
        }
        let line = format!("task {} {}", task.kind, task.vmid);
        if task.polls_left > 0 {
            task.polls_left -= 1;
            status["status"] = json!("running");
            self.calls.push(format!("{line}: running"));
            return Some(ok(status));
        }
        status["status"] = json!("stopped");
        status["exitstatus"] = json!(task.exit);
        self.calls.push(format!("{line}: stopped {}", task.exit));
        let (vmid, done) = (task.vmid, task.done.take());
        if let (Some(done), Some(vm)) = (done, self.vms.get_mut(&vmid)) {
            vm.lock = None;
            match done {
                Done::Create(name) => {
                    if let Some(snap) = vm.snapshots.get_mut(&name) {
                        snap.snapstate = None;
                    }
                    vm.parent = Some(name);
                }
                Done::Rollback { name, start } => {
                    vm.parent = Some(name);
                    vm.running = start;
                }
                Done::Delete(name) => {
                    let gone = vm.snapshots.remove(&name);
                    let grandparent = gone.and_then(|s| s.parent);
                    if vm.parent.as_deref() == Some(&name) {
                        vm.parent.clone_from(&grandparent);
                    }
                    for snap in vm.snapshots.values_mut() {
                        if snap.parent.as_deref() == Some(&name) {
                            snap.parent.clone_from(&grandparent);
                        }
                    }
                }
            }
        }
        Some(ok(status))
    }
}
