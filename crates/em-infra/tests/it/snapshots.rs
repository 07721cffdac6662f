//! VM snapshots through the library's Proxmox client against the API test server's snapshot
//! model (`pve_snapshots`): the calls with their task polling, each refusal as the caller's
//! case, names refused before any request exactly where PVE refuses them, and the storage
//! table agreeing with what the server lets snapshot.

use crate::pve_server::{PveServer, happy_routes, ok};
use crate::pve_snapshots::PveSnapshots;
use em_infra_core::proxmox::snapshot::{
    self, SnapshotError, SnapshotName, SnapshotSupport, TASK_TIMEOUT,
};
use em_infra_core::proxmox::{ApiToken, Client, ProxmoxError, Settings, TlsMode};
use serde_json::json;
use std::time::Duration;

const TOKEN_ID: &str = "em-infra@pve!snap";
const SECRET: &str = "3f0d7c1e-9a2b-4c5d-8e6f-0a1b2c3d4e5f";
const RUN: &str = "20261126T050102.123Z-1a2b";

struct Lab {
    _dir: tempfile::TempDir,
    server: PveServer,
    pve: PveSnapshots,
    client: Client,
}

impl Lab {
    fn new() -> Lab {
        let server = PveServer::start(&format!("{TOKEN_ID}={SECRET}"), happy_routes());
        let pve = PveSnapshots::install(&server, "pve", TOKEN_ID);
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(Settings {
            endpoint: em_infra_core::proxmox::normalize_endpoint(&server.url()).unwrap(),
            token: ApiToken::parse(&format!("{TOKEN_ID}={SECRET}")).unwrap(),
            tls: TlsMode::PinnedCa(server.write_ca(dir.path())),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        Lab {
            _dir: dir,
            server,
            pve,
            client,
        }
    }
}

fn name(text: &str) -> SnapshotName {
    SnapshotName::parse(text).unwrap()
}

#[test]
fn create_list_rollback_delete_poll_their_tasks() {
    let lab = Lab::new();
    lab.pve.add_vm(
        101,
        true,
        &[
            ("scsi0", "local-lvm:vm-101-disk-0,iothread=1,size=32G"),
            ("ide2", "local-lvm:vm-101-cloudinit,media=cdrom"),
        ],
    );
    let c = &lab.client;
    let snap = SnapshotName::for_run(RUN).unwrap();
    let snap_path = format!("/nodes/pve/qemu/101/snapshot/{snap}");

    let created = c
        .create_snapshot("pve", 101, &snap, "before upgrade", TASK_TIMEOUT)
        .unwrap();
    assert!(
        created.upid.starts_with("UPID:pve:") && created.upid.contains(":qmsnapshot:101:"),
        "{}",
        created.upid
    );
    assert_eq!(created.status.exitstatus.as_deref(), Some("OK"));

    let list = c.snapshots("pve", 101).unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let ours = list.iter().find(|s| s.name == snap.as_str()).unwrap();
    assert_eq!(ours.run_id().as_deref(), Some(RUN));
    assert_eq!(ours.description, "before upgrade");
    assert!(ours.is_complete() && !ours.vmstate && ours.snaptime.is_some());
    let current = list.last().unwrap();
    assert!(current.is_current() && current.running);
    assert_eq!(current.parent.as_deref(), Some(snap.as_str()));

    // PVE stops a running VM to roll it back; `start` brings it up again.
    c.rollback_snapshot("pve", 101, &snap, false, TASK_TIMEOUT)
        .unwrap();
    assert!(!c.snapshots("pve", 101).unwrap().last().unwrap().running);
    c.rollback_snapshot("pve", 101, &snap, true, TASK_TIMEOUT)
        .unwrap();
    assert!(lab.pve.state(101).2);

    c.delete_snapshot("pve", 101, &snap, false, TASK_TIMEOUT)
        .unwrap();
    let list = c.snapshots("pve", 101).unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].is_current() && list[0].parent.is_none());

    let task = |kind: &str| {
        vec![
            format!("task {kind} 101: running"),
            format!("task {kind} 101: running"),
            format!("task {kind} 101: stopped OK"),
        ]
    };
    let mut expected = vec![format!(
        "POST /nodes/pve/qemu/101/snapshot snapname={snap} vmstate=0 description=before upgrade"
    )];
    expected.extend(task("qmsnapshot"));
    expected.push("GET /nodes/pve/qemu/101/snapshot".into());
    expected.push(format!("POST {snap_path}/rollback"));
    expected.extend(task("qmrollback"));
    expected.push("GET /nodes/pve/qemu/101/snapshot".into());
    expected.push(format!("POST {snap_path}/rollback start=1"));
    expected.extend(task("qmrollback"));
    expected.push(format!("DELETE {snap_path}"));
    expected.extend(task("qmdelsnapshot"));
    expected.push("GET /nodes/pve/qemu/101/snapshot".into());
    assert_eq!(lab.pve.calls(), expected);

    // Every request carried the token; the polls went to the task's node.
    let requests = lab.server.requests();
    assert!(
        requests
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some(&format!("PVEAPIToken={TOKEN_ID}={SECRET}")))
    );
    assert!(
        requests
            .iter()
            .any(|(key, _)| key == &format!("GET /nodes/pve/tasks/{}/status", created.upid))
    );
}

#[test]
fn delete_with_force_and_parents_relinked() {
    let lab = Lab::new();
    lab.pve
        .add_vm(101, false, &[("scsi0", "local-lvm:vm-101-disk-0,size=32G")]);
    let c = &lab.client;
    c.create_snapshot("pve", 101, &name("first"), "", TASK_TIMEOUT)
        .unwrap();
    c.create_snapshot("pve", 101, &name("second"), "", TASK_TIMEOUT)
        .unwrap();
    c.delete_snapshot("pve", 101, &name("first"), true, TASK_TIMEOUT)
        .unwrap();
    let list = c.snapshots("pve", 101).unwrap();
    let second = list.iter().find(|s| s.name == "second").unwrap();
    assert_eq!(second.parent, None, "{list:?}");
    assert_eq!(list.last().unwrap().parent.as_deref(), Some("second"));
    assert!(
        lab.pve
            .calls()
            .contains(&"DELETE /nodes/pve/qemu/101/snapshot/first force=1".to_string())
    );
    // An empty description is not sent.
    assert!(
        lab.pve
            .calls()
            .contains(&"POST /nodes/pve/qemu/101/snapshot snapname=first vmstate=0".to_string())
    );
}

#[test]
fn refusals_become_the_callers_cases() {
    let lab = Lab::new();
    lab.pve.running_polls(0);
    lab.pve
        .add_vm(101, true, &[("scsi0", "local-lvm:vm-101-disk-0,size=32G")]);
    let c = &lab.client;
    let snap = SnapshotName::for_run(RUN).unwrap();
    c.create_snapshot("pve", 101, &snap, "", TASK_TIMEOUT)
        .unwrap();

    let err = c
        .create_snapshot("pve", 101, &snap, "", TASK_TIMEOUT)
        .unwrap_err();
    assert_eq!(
        err,
        SnapshotError::AlreadyExists {
            vmid: 101,
            name: snap.to_string()
        }
    );
    assert!(err.fix().contains(&format!("qm delsnapshot 101 {snap}")));

    let other = name("never-taken");
    for err in [
        c.rollback_snapshot("pve", 101, &other, false, TASK_TIMEOUT)
            .unwrap_err(),
        c.delete_snapshot("pve", 101, &other, false, TASK_TIMEOUT)
            .unwrap_err(),
    ] {
        assert_eq!(err.to_string(), "VM 101 has no snapshot named never-taken");
    }

    // A backup holds the config lock: every call fails in its task, named after the VM.
    lab.pve.set_lock(101, Some("backup"));
    let err = c
        .delete_snapshot("pve", 101, &snap, false, TASK_TIMEOUT)
        .unwrap_err();
    let SnapshotError::Api(ProxmoxError::Locked { what, message }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        (what.as_str(), message.as_str()),
        ("VM 101", "VM is locked (backup)")
    );
    assert!(
        err.to_string()
            .starts_with("another task holds the lock on VM 101; retry"),
        "{err}"
    );
    lab.pve.set_lock(101, None);
    assert_eq!(lab.pve.state(101).0, [snap.to_string()]);

    let err = c.snapshots("pve", 999).unwrap_err();
    assert_eq!(
        err,
        SnapshotError::NoSuchVm {
            node: "pve".into(),
            vmid: 999
        }
    );

    lab.pve.add_vm(
        9100,
        false,
        &[("scsi0", "local-lvm:base-9100-disk-0,size=4G")],
    );
    lab.pve.make_template(9100);
    let err = c
        .create_snapshot("pve", 9100, &snap, "", TASK_TIMEOUT)
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("failed: you can't take a snapshot if it's a template"),
        "{err}"
    );
}

#[test]
fn missing_privileges_are_403s_naming_them() {
    let lab = Lab::new();
    lab.pve.running_polls(0);
    lab.pve
        .add_vm(101, false, &[("scsi0", "local-lvm:vm-101-disk-0,size=32G")]);
    let c = &lab.client;
    let snap = name("before");
    c.create_snapshot("pve", 101, &snap, "", TASK_TIMEOUT)
        .unwrap();

    // VM.Snapshot.Rollback alone is enough to roll back; not to take or delete snapshots.
    lab.pve.deny(101, "VM.Snapshot");
    for err in [
        c.create_snapshot("pve", 101, &name("again"), "", TASK_TIMEOUT)
            .unwrap_err(),
        c.delete_snapshot("pve", 101, &snap, false, TASK_TIMEOUT)
            .unwrap_err(),
    ] {
        let SnapshotError::Api(api) = &err else {
            panic!("{err:?}");
        };
        assert!(api.is_forbidden(), "{err:?}");
        assert!(
            err.to_string()
                .ends_with("the token lacks VM.Snapshot on /vms/101"),
            "{err}"
        );
        assert!(
            err.fix()
                .contains("pveum acl modify /vms/101 --tokens 'em-infra@pve!snap'")
        );
    }
    c.rollback_snapshot("pve", 101, &snap, false, TASK_TIMEOUT)
        .unwrap();

    // Starting after the rollback needs VM.PowerMgmt (qemu-server ≥ 9.1.10).
    lab.pve.deny(101, "VM.PowerMgmt");
    let err = c
        .rollback_snapshot("pve", 101, &snap, true, TASK_TIMEOUT)
        .unwrap_err();
    assert!(
        err.to_string().ends_with("lacks VM.PowerMgmt on /vms/101"),
        "{err}"
    );

    lab.pve.deny(101, "VM.Snapshot.Rollback");
    let err = c
        .rollback_snapshot("pve", 101, &snap, false, TASK_TIMEOUT)
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("lacks VM.Snapshot or VM.Snapshot.Rollback on /vms/101"),
        "{err}"
    );

    lab.pve.deny(101, "VM.Audit");
    let err = c.snapshots("pve", 101).unwrap_err();
    assert!(
        err.to_string().ends_with("lacks VM.Audit on /vms/101"),
        "{err}"
    );
    // The refusals came before any task.
    let calls = lab.pve.calls();
    assert_eq!(
        calls.iter().filter(|l| l.ends_with("→ 403")).count(),
        5,
        "{calls:#?}"
    );
    assert_eq!(
        calls.iter().filter(|l| l.starts_with("task ")).count(),
        2,
        "{calls:#?}"
    );
}

#[test]
fn storage_without_snapshots_and_zfs_newest_only() {
    let lab = Lab::new();
    lab.pve.running_polls(0);
    lab.pve.add_vm(
        102,
        false,
        &[
            ("scsi0", "local-lvm:vm-102-disk-0,size=32G"),
            ("scsi1", "thick:vm-102-disk-1,size=100G"),
        ],
    );
    let c = &lab.client;
    let err = c
        .create_snapshot("pve", 102, &name("before"), "", TASK_TIMEOUT)
        .unwrap_err();
    assert_eq!(err, SnapshotError::NotSupported { vmid: 102 });
    assert!(err.fix().contains("--no-snapshot"));
    assert!(lab.pve.state(102).0.is_empty());

    // ZFS rolls back only to the newest snapshot of a volume.
    lab.pve
        .add_vm(104, false, &[("scsi0", "tank:vm-104-disk-0,size=32G")]);
    let snap = SnapshotName::for_run(RUN).unwrap();
    c.create_snapshot("pve", 104, &snap, "", TASK_TIMEOUT)
        .unwrap();
    lab.pve.snapshot_taken_elsewhere(104, "manual");
    let err = c
        .rollback_snapshot("pve", 104, &snap, false, TASK_TIMEOUT)
        .unwrap_err();
    assert!(
        err.to_string().ends_with(&format!(
            "failed: can't rollback, '{snap}' is not most recent snapshot on 'tank:vm-104-disk-0'"
        )),
        "{err}"
    );
}

#[test]
fn a_task_that_does_not_stop_is_bounded() {
    let lab = Lab::new();
    lab.pve.running_polls(u32::MAX);
    lab.pve
        .add_vm(101, false, &[("scsi0", "local-lvm:vm-101-disk-0,size=32G")]);
    let started = std::time::Instant::now();
    let err = lab
        .client
        .create_snapshot("pve", 101, &name("slow"), "", Duration::from_millis(700))
        .unwrap_err();
    assert!(
        matches!(err, SnapshotError::Api(ProxmoxError::TaskTimeout { .. })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The library refuses a name exactly when the server (PVE's rules) does: each name is checked
/// locally and also sent raw with `Client::post`.
#[test]
fn names_are_refused_locally_where_pve_refuses_them() {
    let lab = Lab::new();
    lab.pve.running_polls(0);
    lab.pve
        .add_vm(101, false, &[("scsi0", "local-lvm:vm-101-disk-0,size=32G")]);
    let forty = format!("a{}", "0".repeat(39));
    let names = [
        "ab".to_string(),
        "a".into(),
        String::new(),
        "1ab".into(),
        "-ab".into(),
        "a.b".into(),
        "a b".into(),
        "a/b".into(),
        "snäp".into(),
        "A_b-9".into(),
        "vzdump".into(),
        "current".into(),
        "Current".into(),
        "pending".into(),
        "PenDing".into(),
        forty.clone(),
        format!("{forty}1"),
        SnapshotName::for_run(RUN).unwrap().to_string(),
    ];
    for text in &names {
        let local = SnapshotName::parse(text);
        let remote = lab.client.post::<String>(
            "/nodes/pve/qemu/101/snapshot",
            &[("snapname", text), ("vmstate", "0")],
        );
        assert_eq!(
            local.is_ok(),
            remote.is_ok(),
            "{text:?}: {local:?} / {remote:?}"
        );
        if let Err(e) = local {
            assert!(e.to_string().contains(&format!("{text:?}")), "{e}");
        }
    }
    let refused = |params: &[(&str, &str)]| {
        lab.client
            .post::<String>("/nodes/pve/qemu/101/snapshot", params)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused(&[("snapname", "a.b")]),
        "POST /nodes/pve/qemu/101/snapshot failed with HTTP 400: Parameter verification failed.; \
         snapname: invalid format - invalid configuration ID 'a.b'"
    );
    assert!(
        refused(&[("snapname", &format!("{forty}1"))])
            .ends_with("snapname: value may only be 40 characters long")
    );
    assert!(
        refused(&[("snapname", "current")])
            .ends_with("HTTP 500: unable to use snapshot name 'current' (reserved name)")
    );
    assert!(
        refused(&[("snapname", "ok1"), ("vmstate", "true")])
            .ends_with("vmstate: type check ('boolean') failed - got 'true'")
    );
    assert!(refused(&[("snapname", "ok1"), ("ram", "1")]).ends_with(
        "ram: property is not defined in schema and the schema does not allow additional properties"
    ));
    assert!(refused(&[]).ends_with("snapname: property is missing and it is not optional"));
}

/// The library's storage table, applied to a VM's disks as PVE lists them, predicts what the
/// server lets snapshot.
#[test]
fn the_storage_table_predicts_the_servers_answer() {
    let lab = Lab::new();
    lab.pve.running_polls(0);
    lab.server.route(
        "GET /nodes/pve/storage?content=images",
        ok(json!([
            {"storage": "local-lvm", "type": "lvmthin", "content": "rootdir,images", "active": 1, "enabled": 1},
            {"storage": "tank", "type": "zfspool", "content": "images,rootdir", "active": 1, "enabled": 1},
            {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup,images", "active": 1, "enabled": 1},
            {"storage": "thick", "type": "lvm", "content": "images", "active": 1, "enabled": 1}
        ])),
    );
    let vms: [(u64, &[(&str, &str)]); 5] = [
        (
            201,
            &[
                ("scsi0", "local-lvm:vm-201-disk-0,size=8G"),
                ("ide2", "thick:vm-201-cloudinit,media=cdrom"),
            ],
        ),
        (
            202,
            &[
                ("scsi0", "tank:vm-202-disk-0,size=8G"),
                ("efidisk0", "local-lvm:vm-202-disk-1,size=4M"),
            ],
        ),
        (203, &[("virtio0", "local:203/vm-203-disk-0.qcow2,size=8G")]),
        (204, &[("scsi0", "local:204/vm-204-disk-0.raw,size=8G")]),
        (
            205,
            &[
                ("scsi0", "local-lvm:vm-205-disk-0,size=8G"),
                ("sata1", "thick:vm-205-disk-1,size=8G"),
            ],
        ),
    ];
    let types: std::collections::BTreeMap<String, String> = lab
        .client
        .image_storages("pve")
        .unwrap()
        .into_iter()
        .map(|s| (s.storage, s.status.kind.unwrap_or_default()))
        .collect();
    for (vmid, disks) in vms {
        lab.pve.add_vm(vmid, false, disks);
        let config = lab.client.vm_config("pve", vmid).unwrap();
        let support: Vec<SnapshotSupport> = snapshot::snapshot_disks(&config)
            .iter()
            .map(|d| {
                snapshot::volume_snapshot_support(&types[d.storage.as_deref().unwrap()], &d.volume)
            })
            .collect();
        let predicted = support.iter().all(SnapshotSupport::can_snapshot);
        let answer = lab
            .client
            .create_snapshot("pve", vmid, &name("probe"), "", TASK_TIMEOUT);
        assert_eq!(
            predicted,
            answer.is_ok(),
            "VM {vmid}: {support:?} / {answer:?}"
        );
        if !predicted {
            assert_eq!(answer.unwrap_err(), SnapshotError::NotSupported { vmid });
        }
    }
}
