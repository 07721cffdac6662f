//! doctor's privilege check end to end: the real binary against the API test server's permission
//! model (pve_access.rs) on a PVE 8 and a PVE 9 host, for the 1 server + 2 workers + 1 GPU worker
//! two-node plan (privilege_lab.rs). A correct token is all ✓; each required privilege removed in
//! turn is one ✗ naming it, its paths and its `pveum` fix; and docs/runbooks.md shows exactly what
//! `doctor --print-role` prints.

use em_infra_core::proxmox::privileges::{self, Release};
use serde_json::{Value, json};

use crate::privilege_lab::{ClusterLab, TOKEN_ID, USER, full_role, runbook_access};
use crate::pve_access::Access;

fn checks(report: &Value) -> &Vec<Value> {
    report["checks"].as_array().unwrap()
}

fn failed(report: &Value) -> Vec<&Value> {
    checks(report)
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect()
}

/// The failed `privilege …` checks' names.
fn missing(report: &Value) -> Vec<&str> {
    failed(report)
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| n.starts_with("privilege "))
        .collect()
}

/// doctor's other checks that fail when the token lacks `privilege`, because the endpoint they
/// read refuses (403) or hides what they look for — as real PVE does and the test server models.
fn also_failing(privilege: &str) -> &'static [&'static str] {
    match privilege {
        // GET /cluster/resources drops the template.
        "VM.Audit" => &["template 9000"],
        // GET /nodes/<n>/network drops the bridge.
        "SDN.Use" => &["bridge vmbr0 on pve", "bridge vmbr0 on pve2"],
        // GET /cluster/mapping/pci drops the mapping; GET …/hardware/pci answers 403.
        "Mapping.Use" | "Sys.Audit" => &["GPU lab-gpu-1"],
        _ => &[],
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    checks(report)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report:#}"))
}

#[test]
fn a_correct_token_is_all_green_on_pve8_and_pve9() {
    for major in [8, 9] {
        let lab = ClusterLab::new(major);
        let (code, report) = lab.doctor();
        for c in checks(&report) {
            let want = if c["group"] == "cluster" {
                "skip"
            } else {
                "ok"
            };
            assert_eq!(c["status"], want, "PVE {major}: {c:#}");
        }
        assert_eq!(code, 0, "PVE {major}: {report:#}");
        let detail = check(&report, "token privileges")["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            detail.starts_with(&format!(
                "{TOKEN_ID} holds the 19 privileges this plan needs on PVE {major} (on /, "
            )),
            "{detail}"
        );
        for path in [
            "/vms/9000",
            "/vms/9100",
            "/vms/9110",
            "/vms/9111",
            "/vms/9140",
            "/storage/local-lvm",
            "/sdn/zones/localnetwork/vmbr0",
            "/mapping/pci/gpu0",
        ] {
            assert!(detail.contains(path), "{path} in {detail}");
        }
        // One request per path, with the path as a query parameter (PVE decodes it).
        let asked: Vec<String> = lab
            .server
            .requests()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("GET /access/permissions"))
            .collect();
        assert_eq!(asked.len(), 9, "{asked:#?}");
        assert!(asked.contains(&"GET /access/permissions?path=%2Fvms%2F9140".to_string()));
    }
}

#[test]
fn each_required_privilege_removed_in_turn_is_named_with_its_fix() {
    for major in [8, 9] {
        let release = Release::from_major(Some(major));
        let lab = ClusterLab::new(major);
        let full = full_role(release);
        for removed in &full {
            let role: Vec<&str> = full.iter().copied().filter(|p| p != removed).collect();
            lab.server.set_access(runbook_access(&role));
            let (code, report) = lab.doctor();
            assert_eq!(code, 3, "PVE {major} without {removed}: {report:#}");
            assert_eq!(
                missing(&report),
                [format!("privilege {removed}")],
                "PVE {major} without {removed}: {report:#}"
            );
            let others: Vec<&str> = failed(&report)
                .iter()
                .filter_map(|c| c["name"].as_str())
                .filter(|n| !n.starts_with("privilege "))
                .collect();
            assert_eq!(
                others,
                also_failing(removed),
                "PVE {major} without {removed}"
            );
            let c = check(&report, &format!("privilege {removed}"));
            let detail = c["detail"].as_str().unwrap();
            assert!(
                detail.starts_with(&format!("the token lacks {removed}")),
                "{detail}"
            );
            let fix = c["fix"].as_str().unwrap();
            assert!(
                fix.starts_with(&format!(
                    "pveum role modify EmInfra --append 1 --privs \"{removed}\" (EmInfra is the role docs/runbooks.md creates; use your role's name)"
                )),
                "{fix}"
            );
            assert!(
                fix.contains(&format!(
                    "--users '{USER}' --tokens '{TOKEN_ID}' --roles EmInfra"
                )),
                "{fix}"
            );
            assert!(!fix.contains("VM.Monitor") || major == 8, "{fix}");
        }
    }
}

#[test]
fn missing_privileges_name_their_paths_and_reasons() {
    let lab = ClusterLab::new(9);
    let without = |gone: &[&str]| -> Vec<&'static str> {
        full_role(Release::Pve9)
            .into_iter()
            .filter(|p| !gone.contains(p))
            .collect()
    };
    lab.server.set_access(runbook_access(&without(&[
        "VM.Migrate",
        "VM.Clone",
        "Sys.Audit",
    ])));
    let (_, report) = lab.doctor();
    assert_eq!(
        missing(&report),
        [
            "privilege VM.Migrate",
            "privilege VM.Clone",
            "privilege Sys.Audit"
        ]
    );
    // The GPU check's own call is refused, as PVE refuses it.
    assert_eq!(
        check(&report, "GPU lab-gpu-1")["detail"],
        "permission denied on /nodes/pve2/hardware/pci: the token lacks Sys.Audit or Sys.Modify on /"
    );
    let migrate = check(&report, "privilege VM.Migrate");
    assert_eq!(
        migrate["detail"],
        "the token lacks VM.Migrate on /vms/9111, /vms/9140: bpg clones on the template's node and migrates \
         the VM to its own node (non-shared storage)"
    );
    assert!(
        migrate["fix"].as_str().unwrap().ends_with(
            "pveum acl modify /vms --users 'em-infra@pve' --tokens 'em-infra@pve!doctor' --roles EmInfra"
        ),
        "{migrate:#}"
    );
    assert_eq!(
        check(&report, "privilege VM.Clone")["detail"],
        "the token lacks VM.Clone on /vms/9000: full clone of the template"
    );
    // The human rendering: the ✗ line, its fix beneath.
    let human = lab.cmd(&["doctor"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&human.stderr);
    for line in [
        "✗ privilege VM.Clone: the token lacks VM.Clone on /vms/9000: full clone of the template\n",
        "  fix: pveum role modify EmInfra --append 1 --privs \"VM.Clone\" (EmInfra is the role",
    ] {
        assert!(stderr.contains(line), "{line:?} not in:\n{stderr}");
    }
    let sys = check(&report, "privilege Sys.Audit");
    assert!(
        sys["detail"]
            .as_str()
            .unwrap()
            .starts_with("the token lacks Sys.Audit (or Sys.Modify) on /: doctor lists"),
        "{sys:#}"
    );
    assert!(
        sys["fix"]
            .as_str()
            .unwrap()
            .contains("pveum acl modify / --users"),
        "{sys:#}"
    );
}

#[test]
fn pve9_drops_vm_monitor_and_accepts_unrestricted_for_the_agent() {
    let lab = ClusterLab::new(9);
    // A role written for PVE 8: on PVE 9 user.cfg loads it without VM.Monitor, and it lacks
    // VM.GuestAgent.Audit.
    lab.server
        .set_access(runbook_access(&full_role(Release::Pve8)));
    let (code, report) = lab.doctor();
    assert_eq!(code, 3);
    assert_eq!(failed(&report).len(), 1, "{report:#}");
    let c = check(&report, "privilege VM.GuestAgent.Audit");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "the token lacks VM.GuestAgent.Audit (or VM.GuestAgent.Unrestricted) on /vms/9100, /vms/9110, /vms/9111, /vms/9140: the guest agent"
        ) && detail.contains("PVE 9 dropped VM.Monitor"),
        "{detail}"
    );
    assert!(!report.to_string().contains("--privs \\\"VM.Monitor"));

    // VM.GuestAgent.Unrestricted satisfies the agent endpoints too (qemu-server's `any` check).
    let mut role = full_role(Release::Pve9);
    role.retain(|p| *p != "VM.GuestAgent.Audit");
    role.push("VM.GuestAgent.Unrestricted");
    lab.server.set_access(runbook_access(&role));
    let (code, report) = lab.doctor();
    assert_eq!(code, 0, "{report:#}");

    // On PVE 8 the same PVE 9 role lacks VM.Monitor (VM.GuestAgent.* are invalid names there).
    let lab8 = ClusterLab::new(8);
    lab8.server
        .set_access(runbook_access(&full_role(Release::Pve9)));
    let (_, report) = lab8.doctor();
    let names: Vec<&Value> = failed(&report).iter().map(|c| &c["name"]).collect();
    assert_eq!(names, [&json!("privilege VM.Monitor")]);
}

#[test]
fn grants_that_do_not_reach_the_paths_fail() {
    let lab = ClusterLab::new(8);
    let role = full_role(Release::Pve8);
    // Granted on / without propagation: nothing below / has it.
    lab.server.set_access(
        Access::new()
            .role("EmInfra", &role)
            .token(TOKEN_ID, false)
            .grant_user("/", USER, "EmInfra", false),
    );
    let (_, report) = lab.doctor();
    // Everything but Sys.Audit, which is checked on / itself.
    assert_eq!(missing(&report).len(), role.len() - 1, "{report:#}");
    // The endpoints refuse or hide accordingly.
    assert_eq!(
        check(&report, "storage local-lvm on pve")["detail"],
        "permission denied on /nodes/pve/storage/local-lvm/status: the token lacks \
         Datastore.Audit or Datastore.AllocateSpace on /storage/local-lvm"
    );
    assert!(
        check(&report, "privilege VM.Allocate")["detail"]
            .as_str()
            .unwrap()
            .starts_with(
                "the token lacks VM.Allocate on /vms/9100, /vms/9110, /vms/9111, /vms/9140"
            )
    );

    // A privilege-separated token granted the role, but its user not: the intersection is empty.
    lab.server.set_access(
        Access::new()
            .role("EmInfra", &role)
            .token(TOKEN_ID, true)
            .grant_token("/", TOKEN_ID, "EmInfra", true),
    );
    let (_, report) = lab.doctor();
    assert_eq!(missing(&report).len(), role.len(), "{report:#}");
    // With both granted it passes.
    lab.server.set_access(
        Access::new()
            .role("EmInfra", &role)
            .token(TOKEN_ID, true)
            .grant_token("/", TOKEN_ID, "EmInfra", true)
            .grant_user("/", USER, "EmInfra", true),
    );
    let (code, report) = lab.doctor();
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn shared_storage_and_single_node_plans_need_no_migrate() {
    let lab = ClusterLab::new(9);
    let mut role = full_role(Release::Pve9);
    role.retain(|p| *p != "VM.Migrate");
    lab.server.set_access(runbook_access(&role));
    let (_, report) = lab.doctor();
    assert_eq!(
        check(&report, "privilege VM.Migrate")["status"],
        "fail",
        "local-lvm is not shared"
    );
    // Shared storage: bpg clones straight to the other node.
    for node in ["pve", "pve2"] {
        let key = format!("GET /nodes/{node}/storage/local-lvm/status");
        let mut status = crate::privilege_lab::two_node_routes(9)[&key].body["data"].clone();
        status["shared"] = json!(1);
        lab.server.route(&key, crate::pve_server::ok(status));
    }
    let (code, report) = lab.doctor();
    assert_eq!(code, 0, "{report:#}");
    // Everything on the template's node: no migration either.
    let lab = ClusterLab::new(9);
    lab.server.set_access(runbook_access(&role));
    lab.tfvars(&[
        ("node_placement", "{}"),
        ("gpu_workers", "[{ mapping = \"gpu0\" }]"),
    ]);
    lab.server.route(
        "GET /cluster/mapping/pci",
        crate::pve_server::happy_routes()["GET /cluster/mapping/pci"].clone(),
    );
    let (code, report) = lab.doctor();
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn a_failing_permissions_call_is_one_failed_check() {
    let lab = ClusterLab::new(8);
    lab.server.route(
        "GET /access/permissions?path=%2F",
        crate::pve_server::error(500, "internal error"),
    );
    let (_, report) = lab.doctor();
    let c = check(&report, "token privileges");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("GET /access/permissions?path=%2F failed with HTTP 500: internal error"),
        "{c:#}"
    );
}

#[test]
fn the_runbook_shows_what_print_role_prints() {
    let runbook = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/runbooks.md"),
    )
    .unwrap();
    for major in ["8", "9"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_em-infra"))
            .args(["doctor", "--print-role", major])
            .current_dir(std::env::temp_dir())
            .env_remove("EM_INFRA_ROOT")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let printed = String::from_utf8(out.stdout).unwrap();
        let block = format!("```bash\n{printed}```\n");
        assert!(
            runbook.contains(&block),
            "docs/runbooks.md lacks the block `em-infra doctor --print-role {major}` prints:\n{block}"
        );
    }
    assert!(
        runbook.contains(&privileges::markdown_table()),
        "docs/runbooks.md lacks the privilege table:\n{}",
        privileges::markdown_table()
    );
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_em-infra"))
        .args(["--json", "doctor", "--print-role", "9"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["pve"], 9);
    assert_eq!(json["role"], "EmInfra");
    assert!(
        json["requirements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["privilege"] != "VM.Monitor")
    );
}
