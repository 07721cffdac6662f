//! `em-infra doctor` on what the token cannot see and on the shapes older hosts send: the reason
//! in the status line only, VM IDs taken by guests the token may not audit, storages that are
//! undefined, disabled or restricted to other nodes, containers at the template ID, and PCI
//! mappings with several entries or `;`-separated paths, checked by the host (`?check-node=`).
//! The same lab as [`crate::doctor`]: the real binary against the PVE API test server.

use crate::doctor::{Lab, client};
use crate::pve_server::{error, legacy};

#[test]
fn older_hosts_give_the_reason_only_in_the_status_line() {
    let lab = Lab::new();
    // A PVE 8 host before libpve-http-server-perl 5.2.0: `{"data":null}` and the reason in the
    // status line.
    lab.server.route(
        "GET /nodes/pve/qemu/9000/config",
        legacy(error(403, "Permission check failed (/vms/9000, VM.Audit)")),
    );
    lab.server.route(
        "GET /nodes/pve/storage/local-lvm/status",
        legacy(error(
            500,
            "can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout",
        )),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "template 9000",
        "fail",
        "permission denied on /nodes/pve/qemu/9000/config: the token lacks VM.Audit on /vms/9000",
        "pveum acl modify /vms/9000 --tokens 'em-infra@pve!doctor' --roles <a role with VM.Audit>",
    );
    run.assert_check(
        "storage local-lvm on pve",
        "fail",
        "another task holds the lock on storage local-lvm",
        "wait for the running task",
    );
    // Without any reason at all (an empty status line reason), the status says so.
    lab.server.route(
        "GET /nodes/pve/network",
        crate::pve_server::Reply {
            status: 500,
            body: serde_json::json!({ "data": null }),
            reason: None,
        },
    );
    let err = client(&lab).network("pve").unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET /nodes/pve/network failed with HTTP 500: (no reason given)"
    );
}
