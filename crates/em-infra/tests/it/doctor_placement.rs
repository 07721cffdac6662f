//! `em-infra doctor` on what the token cannot see and on the shapes older hosts send: the reason
//! in the status line only, VM IDs taken by guests the token may not audit, storages that are
//! undefined, disabled or restricted to other nodes, containers at the template ID, and PCI
//! mappings with several entries or `;`-separated paths, checked by the host (`?check-node=`);
//! and the system trust store as the alternative to a pinned CA file. The same lab as
//! [`crate::doctor`]: the real binary against the PVE API test server.

use crate::doctor::{Lab, client};
use crate::pve_server::{error, legacy, ok, param_error, vmid_taken};
use serde_json::json;

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

#[test]
fn the_system_trust_store_is_an_alternative_to_a_pinned_ca_file() {
    let lab = Lab::new();
    // The test CA as "the system store": rustls-native-certs reads only SSL_CERT_FILE when it is
    // set, as OpenSSL and Go (Terraform's provider) do.
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env_remove("EM_INFRA_PVE_CA_FILE")
            .env_remove("SSL_CERT_DIR")
            .env("SSL_CERT_FILE", lab.ca_file()),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.assert_check("API", "ok", "answers to token em-infra@pve!doctor", "");
    assert!(
        !run.stderr.contains("PROXMOX_VE_INSECURE"),
        "{}",
        run.stderr
    );

    // A store without the cluster CA: not trusted, and the fix names both ways to trust it.
    let before = lab.server.requests().len();
    let other = crate::test_ca::TestCa::new("Some other CA");
    let other_file = lab.root().join("other-ca.pem");
    std::fs::write(&other_file, &other.pem).unwrap();
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env_remove("EM_INFRA_PVE_CA_FILE")
            .env_remove("SSL_CERT_DIR")
            .env("SSL_CERT_FILE", &other_file),
    );
    assert_eq!(run.code, 3);
    run.assert_check(
        "API",
        "fail",
        "is not trusted",
        "sudo update-ca-certificates",
    );
    assert_eq!(
        lab.server.requests().len(),
        before,
        "no request got through the handshake"
    );

    // A variable that names nothing readable is a settings error naming it.
    let missing = lab.root().join("no-such-bundle.pem");
    let run = lab.run(
        lab.cmd(&["doctor", "--json"])
            .env_remove("EM_INFRA_PVE_CA_FILE")
            .env_remove("SSL_CERT_DIR")
            .env("SSL_CERT_FILE", &missing),
    );
    assert_eq!(run.code, 3);
    run.assert_check(
        "Proxmox API settings",
        "fail",
        &format!(
            "SSL_CERT_FILE={}: no certificate could be read",
            missing.display()
        ),
        "",
    );
}

#[test]
fn storage_undefined_disabled_or_on_other_nodes_each_with_its_fix() {
    let lab = Lab::new();
    // Undefined: the real 400 "No such storage." (also with the reason only in the status line).
    lab.tfvars(&[("datastore_id", "\"fast-ssd\"")]);
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    assert_eq!(run.failed_names(), ["storage fast-ssd on pve"]);
    run.assert_check(
        "storage fast-ssd on pve",
        "fail",
        "storage fast-ssd is not defined in this cluster (PVE: No such storage.)",
        "set datastore_id to a storage for disk images on pve (those are: local-lvm, tank), or define fast-ssd",
    );
    lab.server.route(
        "GET /nodes/pve/storage/fast-ssd/status",
        legacy(param_error("storage", "No such storage.")),
    );
    lab.doctor().assert_check(
        "storage fast-ssd on pve",
        "fail",
        "is not defined in this cluster (PVE: No such storage.)",
        "",
    );
    lab.tfvars(&[]);

    // Disabled in storage.cfg: the status says only `enabled: 0`; `GET /storage` says why.
    let config = lab.server.data("GET /storage");
    let with = |change: serde_json::Value| {
        let mut c = config.clone();
        for s in c.as_array_mut().unwrap() {
            if s["storage"] == "local-lvm" {
                s.as_object_mut()
                    .unwrap()
                    .extend(change.as_object().unwrap().clone());
            }
        }
        ok(c)
    };
    lab.server
        .unroute("GET /nodes/pve/storage/local-lvm/status");
    lab.server
        .route("GET /storage", with(json!({"disable": 1})));
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "storage local-lvm on pve",
        "fail",
        "storage local-lvm is disabled in storage.cfg (disable 1)",
        "enable it: pvesm set local-lvm --disable 0",
    );

    // Restricted to other nodes: the same status, another cause and another fix.
    lab.server
        .route("GET /storage", with(json!({"nodes": "pve2,pve3"})));
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    let check = run.check("storage local-lvm on pve");
    assert!(
        !check["detail"].as_str().unwrap().contains("disabled"),
        "{check:#}"
    );
    run.assert_check(
        "storage local-lvm on pve",
        "fail",
        "storage local-lvm is not available on node pve: it is restricted to nodes pve2,pve3",
        "if pve has it too, add pve to its nodes: pvesm set local-lvm --nodes pve2,pve3,pve; \
         else set datastore_id to a storage for disk images on pve (those are: tank)",
    );
}

/// The doctor's requests of one kind, e.g. `GET /cluster/nextid`.
fn asked(lab: &Lab, prefix: &str) -> Vec<String> {
    lab.server
        .requests()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(prefix))
        .collect()
}

#[test]
fn vm_ids_taken_by_guests_the_token_cannot_see() {
    let lab = Lab::new();
    // VM 9110 exists, but the token lacks VM.Audit on /vms/9110: /cluster/resources leaves it out.
    lab.server
        .route("GET /cluster/nextid?vmid=9110", legacy(vmid_taken(9110)));
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    assert_eq!(run.failed_names(), ["VM ID 9110"]);
    run.assert_check(
        "VM ID 9110",
        "fail",
        "VM ID 9110 (for lab-worker-1) is taken by a guest this token cannot see: GET /cluster/nextid \
         says VM 9110 already exists, /cluster/resources does not list it (no VM.Audit on /vms/9110)",
        "choose a vm_id_base whose range is free (the nodes use vm_id_base + 0…40); or, to see what it is, \
         grant VM.Audit: pveum acl modify /vms/9110 --tokens 'em-infra@pve!doctor' --roles PVEAuditor",
    );
    // Each planned ID the token cannot see was asked once; the visible template was not.
    let mut ids = asked(&lab, "GET /cluster/nextid");
    ids.sort();
    assert_eq!(
        ids,
        [
            "GET /cluster/nextid?vmid=9100",
            "GET /cluster/nextid?vmid=9110",
            "GET /cluster/nextid?vmid=9140"
        ]
    );

    // Free for nextid too: all green.
    lab.server.unroute("GET /cluster/nextid?vmid=9110");
    let run = lab.doctor();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_check("VM IDs", "ok", "3 free", "");
}

#[test]
fn template_id_missing_hidden_or_a_container() {
    let lab = Lab::new();
    let guests = lab.server.data("GET /cluster/resources?type=vm");
    let without_template: Vec<_> = guests
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["vmid"] != 9000)
        .cloned()
        .collect();
    lab.server.route(
        "GET /cluster/resources?type=vm",
        ok(json!(without_template)),
    );
    // Not there at all: nextid says it is free.
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    let check = run.check("template 9000");
    assert_eq!(check["detail"], "VM 9000 does not exist", "{check:#}");
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .starts_with("build it with `em-infra prepare`")
    );
    // There, but hidden from the token.
    lab.server
        .route("GET /cluster/nextid?vmid=9000", vmid_taken(9000));
    let run = lab.doctor();
    run.assert_check(
        "template 9000",
        "fail",
        "ID 9000 is taken by a guest this token cannot see (GET /cluster/nextid: VM 9000 already exists), \
         so the token lacks VM.Audit on /vms/9000",
        "if it is your template, grant VM.Audit: pveum acl modify /vms/9000 --tokens 'em-infra@pve!doctor' --roles PVEAuditor",
    );

    // A container at the template ID: /cluster/resources says `type: lxc`, and the qemu config
    // path answers as qemu-server does for an ID without a VM config.
    let mut container = guests;
    container[0] = json!({"id": "lxc/9000", "vmid": 9000, "name": "ubuntu-ct", "node": "pve",
                          "type": "lxc", "status": "stopped", "template": 1, "maxcpu": 1});
    lab.server
        .route("GET /cluster/resources?type=vm", ok(container));
    lab.server.unroute("GET /cluster/nextid?vmid=9000");
    lab.server.route(
        "GET /nodes/pve/qemu/9000/config",
        error(
            500,
            "Configuration file 'nodes/pve/qemu-server/9000.conf' does not exist",
        ),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    assert_eq!(run.failed_names(), ["template 9000"]);
    run.assert_check(
        "template 9000",
        "fail",
        "ID 9000 is a container (CT 9000 'ubuntu-ct' on pve), not a VM: the VMs are cloned from a QEMU VM template",
        "set template_vm_id to your VM template's ID, or to a free ID and build the template there with `em-infra prepare`",
    );
}

/// The happy host's PCI devices plus a second RTX 3090 at 0000:03:00.0 (IOMMU group 17).
fn two_gpus(lab: &Lab) -> serde_json::Value {
    let mut devices = lab.server.data("GET /nodes/pve/hardware/pci");
    devices.as_array_mut().unwrap().push(json!(
        {"id": "0000:03:00.0", "class": "0x030000", "vendor": "0x10de", "device": "0x2204",
         "vendor_name": "NVIDIA Corporation", "device_name": "GA102 [GeForce RTX 3090]",
         "subsystem_vendor": "0x1458", "subsystem_device": "0x403b", "iommugroup": 17, "mdev": false}
    ));
    devices
}

const GPU_A: &str = "id=10de:2204,iommugroup=15,node=pve,path=0000:01:00.0,subsystem-id=1458:403b";
const GPU_B: &str = "id=10de:2204,iommugroup=17,node=pve,path=0000:03:00.0,subsystem-id=1458:403b";

#[test]
fn a_mapping_with_several_entries_for_the_node_needs_every_one_valid() {
    let lab = Lab::new();
    lab.server
        .route("GET /nodes/pve/hardware/pci", ok(two_gpus(&lab)));
    // Two entries for pve (the GUI writes one per selected device) and one for another node.
    lab.server.route(
        "GET /cluster/mapping/pci",
        ok(json!([{"id": "gpu0", "map": [GPU_A, GPU_B,
            "id=10de:2204,iommugroup=3,node=pve2,path=0000:41:00.0"]}])),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.assert_check(
        "GPU lab-gpu-1",
        "ok",
        "mapping gpu0 → 0000:01:00.0 NVIDIA Corporation GA102 [GeForce RTX 3090] (IOMMU group 15) | \
         0000:03:00.0 NVIDIA Corporation GA102 [GeForce RTX 3090] (IOMMU group 17) on pve \
         (2 entries for pve: the first free one is used when the VM starts)",
        "",
    );

    // qemu-server checks every entry of the node when the VM starts: a second entry whose card
    // is gone stops the VM, even though the first one is fine.
    lab.server.route(
        "GET /nodes/pve/hardware/pci",
        ok(lab
            .server
            .data("GET /nodes/pve/hardware/pci")
            .as_array()
            .unwrap()[..4]
            .into()),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "mapping 'gpu0' points at 0000:03:00.0, which is not a PCI device of pve",
        "update mapping gpu0 to the GPU's current address",
    );
}

#[test]
fn semicolon_separated_paths_are_valid() {
    let lab = Lab::new();
    lab.server
        .route("GET /nodes/pve/hardware/pci", ok(two_gpus(&lab)));
    lab.server.route(
        "GET /cluster/mapping/pci",
        ok(json!([{"id": "gpu0", "map": [
            "id=10de:2204,iommugroup=15,node=pve,path=0000:01:00.0;0000:03:00.0,subsystem-id=1458:403b"]}])),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run.assert_check(
        "GPU lab-gpu-1",
        "ok",
        "mapping gpu0 → 0000:01:00.0 NVIDIA Corporation GA102 [GeForce RTX 3090] (IOMMU group 15); \
         0000:03:00.0 NVIDIA Corporation GA102 [GeForce RTX 3090] (IOMMU group 17) on pve",
        "",
    );
    // The host agreed: its check (asked for pve) found nothing.
    let checked = client(&lab).pci_mappings_checked("pve").unwrap();
    assert!(checked[0].checks.is_empty(), "{:?}", checked[0].checks);
}

#[test]
fn the_hosts_own_mapping_check_fails_what_the_hardware_list_cannot_show() {
    let lab = Lab::new();
    // The GPU is where the mapping says, but its IOMMU group changed (a kernel or firmware
    // update): PVE refuses to start the VM ("PCI device mapping invalid").
    lab.server.route(
        "GET /cluster/mapping/pci",
        ok(json!([{"id": "gpu0", "map": [
            "id=10de:2204,iommugroup=14,node=pve,path=0000:01:00.0,subsystem-id=1458:403b"]}])),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "Proxmox's own check of mapping 'gpu0' on pve failed: Invalid configuration: 'iommugroup' does not match for 'gpu0' (15 != 14)",
        "edit mapping gpu0 (Datacenter → Resource Mappings → gpu0) and select pve's GPU again",
    );
    assert!(
        lab.server
            .requests()
            .iter()
            .any(|(k, _)| k == "GET /cluster/mapping/pci?check-node=pve")
    );

    // A token without Sys.Audit cannot list the node's PCI devices, but the host still checks
    // the mapping against its own hardware: a device that is not there is still found out.
    lab.server.route(
        "GET /cluster/mapping/pci",
        ok(json!([{"id": "gpu0", "map": [
            "id=10de:2204,iommugroup=15,node=pve,path=0000:05:00.0,subsystem-id=1458:403b"]}])),
    );
    lab.server.freeze("GET /cluster/mapping/pci?check-node=pve");
    lab.server.route(
        "GET /nodes/pve/hardware/pci",
        error(403, "Permission check failed (/, Sys.Audit|Sys.Modify)"),
    );
    let run = lab.doctor();
    assert_eq!(run.code, 3);
    run.assert_check(
        "GPU lab-gpu-1",
        "fail",
        "Proxmox's own check of mapping 'gpu0' on pve failed: Invalid configuration: pci device '0000:05:00.0' not found",
        "select pve's GPU again",
    );
}
