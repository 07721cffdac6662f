//! The template play (`ansible/playbooks/prepare-template.yml`) and `em-infra prepare`, without
//! Proxmox: the real `ansible-playbook` runs against this machine (connection local) with TEST
//! DOUBLES of `qm` and `virt-customize` first on PATH (scripts below, written into a temporary
//! directory), and a local HTTP server in place of cloud-images.ubuntu.com (an "image" and its
//! SHA256SUMS). The fake `qm` keeps VM configurations as files in the shape `qm config` prints and
//! records every call, so each test asserts what the play decided and what it would have run.
//!
//! Needs `<repo>/.venv/bin/ansible-playbook` (the test command installs it); skipped with a message
//! without it, except under CI=true where that is a failure.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use em_infra_core::prepare::{self, TemplateInputs};
use serde_json::Value;
use support::{Repo, code, repo_root, run_logged, stderr};

const IMAGE: &str = "ubuntu-22.04-server-cloudimg-amd64.img";

/// TEST DOUBLE for Proxmox VE's `qm`: models only what prepare-template.yml calls, as strictly as
/// real `qm` on the points the play relies on (see the script's comments).
pub(crate) const FAKE_QM: &str = r#"#!/usr/bin/env bash
# TEST DOUBLE for Proxmox VE's `qm`, written by crates/em-infra/tests/it/prepare.rs. Not Proxmox: it
# models only the calls prepare-template.yml makes. Every call is appended to
# $FAKE_QM_DIR/calls.log; VM <id>'s configuration is $FAKE_QM_DIR/<id>.conf, in the
# "key: value" shape real `qm config` prints. Strict like real qm where the play relies on it:
# - create/set parse every option before changing anything and reject an unknown one
#   (pve-common PVE::JSONSchema::get_options: Getopt's "Unknown option", then
#   "400 unable to parse option", exit 255); the double knows the options listed in known_opt;
# - `--ide2 <storage>:cloudinit` allocates vm-<id>-cloudinit (media=cdrom), as qemu-server does;
# - `qm template` refuses a template and a running VM ($FAKE_QM_DIR/<id>.running) with
#   qemu-server's messages (src/PVE/API2/Qemu.pm, `template`), and renames vm-<id>-disk to
#   base-<id>-disk (PVE::QemuServer::template_create);
# - FAKE_QM_SILENT_FAIL=template (a comma list) makes `qm template` do nothing and exit 0, as real
#   qm does when the template task fails: qm.pm maps `template` without $upid_exit, and pve-common's
#   CLIHandler::run_cli_handler ends in `exit 0`; only the task's error reaches stderr.
set -euo pipefail
dir=${FAKE_QM_DIR:?FAKE_QM_DIR must be set}
printf 'qm %s\n' "$*" >>"$dir/calls.log"
conf() { printf '%s/%s.conf' "$dir" "$1"; }
set_key() { # file key value: replace or add "key: value"
  local file=$1 key=$2 value=$3
  grep -v "^$key: " "$file" >"$file.tmp" || true
  printf '%s: %s\n' "$key" "$value" >>"$file.tmp"
  sort -o "$file" "$file.tmp" && rm -f "$file.tmp"
}
known_opt() {
  case $1 in
    name|memory|cores|sockets|cpu|balloon|onboot|net0|scsihw|serial0|vga|agent|ostype|tags|description) ;;
    scsi0|ide2|boot|ciupgrade|ciuser|cipassword|citype|sshkeys|ipconfig0|nameserver|searchdomain|cicustom) ;;
    *) return 1 ;;
  esac
}
check_opts() { # --key value ...: all known, each with a value
  while (($#)); do
    local key=${1#--}
    if [[ $1 != --* ]] || ! known_opt "$key"; then
      printf 'Unknown option: %s\n400 unable to parse option\n' "$key" >&2; exit 255
    fi
    if (($# < 2)); then printf 'Option %s requires an argument\n400 unable to parse option\n' "$key" >&2; exit 255; fi
    shift 2
  done
}
set_opts() { # id file --key value ...
  local id=$1 file=$2; shift 2
  while (($#)); do
    local key=${1#--} value=$2; shift 2
    if [[ $key == scsi0 ]]; then # attaching an unused disk removes its unusedN entry
      local vol=${value%%,*}
      grep -v "^unused[0-9]*: $vol\$" "$file" >"$file.tmp" || true; mv "$file.tmp" "$file"
    fi
    if [[ $key == ide2 && $value =~ ^([^:,]+):cloudinit$ ]]; then
      value="${BASH_REMATCH[1]}:vm-$id-cloudinit,media=cdrom"
    fi
    set_key "$file" "$key" "$value"
  done
}
missing() { echo "Configuration file 'nodes/pve/qemu-server/$1.conf' does not exist" >&2; exit 2; }
cmd=$1; shift
case $cmd in
  config) # like qm.pm: the description is printed through encode_text (':' and '%' escaped)
    [[ -f $(conf "$1") ]] || missing "$1"
    sed -e '/^description: /{s/%/%25/g;s/:/%3A/g;s/^description%3A /description: /}' "$(conf "$1")" ;;
  create)
    id=$1; shift
    if [[ -f $(conf "$id") ]]; then echo "unable to create VM $id - VM $id already exists" >&2; exit 255; fi
    check_opts "$@"
    : >"$(conf "$id")"; set_opts "$id" "$(conf "$id")" "$@" ;;
  set)
    id=$1; shift
    check_opts "$@"
    [[ -f $(conf "$id") ]] || missing "$id"
    set_opts "$id" "$(conf "$id")" "$@" ;;
  disk)
    [[ $1 == import ]] || { echo "fake qm: unsupported: disk $*" >&2; exit 1; }
    id=$2 file=$3 storage=$4
    [[ -f $(conf "$id") ]] || missing "$id"
    [[ -f $file ]] || { echo "source '$file' does not exist" >&2; exit 2; }
    set_key "$(conf "$id")" unused0 "$storage:vm-$id-disk-0"
    echo "Successfully imported disk as 'unused0:$storage:vm-$id-disk-0'" ;;
  template)
    [[ -f $(conf "$1") ]] || missing "$1"
    if grep -q '^template: 1$' "$(conf "$1")"; then echo "you can't convert a template to a template" >&2; exit 255; fi
    if [[ -e $dir/$1.running ]]; then echo "you can't convert a VM to template if VM is running" >&2; exit 255; fi
    if [[ ,${FAKE_QM_SILENT_FAIL:-}, == *,template,* ]]; then
      echo "fake qm: injected task failure (FAKE_QM_SILENT_FAIL=template): nothing converted, exit 0 like real qm" >&2
      exit 0
    fi
    sed -i "s/vm-$1-disk/base-$1-disk/" "$(conf "$1")"; set_key "$(conf "$1")" template 1 ;;
  destroy)
    rm -f "$(conf "$1")" ;;
  *) echo "fake qm: unsupported command: $cmd $*" >&2; exit 1 ;;
esac
"#;

/// TEST DOUBLE for libguestfs' `virt-customize`.
pub(crate) const FAKE_VIRT_CUSTOMIZE: &str = r#"#!/usr/bin/env bash
# TEST DOUBLE for virt-customize (libguestfs), written by crates/em-infra/tests/prepare.rs: records
# its arguments in $FAKE_QM_DIR/calls.log and appends a marker to the image given with -a.
set -euo pipefail
printf 'virt-customize %s\n' "$*" >>"${FAKE_QM_DIR:?}/calls.log"
[[ $1 == -a && -f $2 ]] || { echo "fake virt-customize: expected -a <existing image>" >&2; exit 1; }
printf 'customized\n' >>"$2"
"#;

fn ansible_playbook() -> Option<PathBuf> {
    let bin = repo_root().join(".venv/bin/ansible-playbook");
    if bin.is_file() {
        Some(bin)
    } else {
        support::skip_or_fail(&format!(
            "{} is missing (./scripts/test.sh installs ansible-core into .venv)",
            bin.display()
        ));
        None
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A stand-in for cloud-images.ubuntu.com: serves `files` (path → body) over HTTP on 127.0.0.1,
/// 404 for anything else. Returns the base URL; the thread lives as long as the test process.
fn serve(files: BTreeMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" || header == "\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = match files.get(&path) {
                Some(body) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found\n".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    base
}

/// An image and the SHA256SUMS that lists it (with `listed_sha`, normally the image's own).
fn release(image: &[u8], listed_sha: &str) -> String {
    let sums = format!(
        "{} *other-server-cloudimg-amd64.img\n{listed_sha} *{IMAGE}\n",
        "0".repeat(64)
    );
    serve(BTreeMap::from([
        (format!("/{IMAGE}"), image.to_vec()),
        ("/SHA256SUMS".to_string(), sums.into_bytes()),
    ]))
}

/// This machine's node name as the play reads it (`uname -n`, up to the first dot).
fn node_name() -> String {
    let out = Command::new("uname").arg("-n").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

/// The fake `qm`'s world plus everything the play needs to run locally.
struct Pve {
    dir: tempfile::TempDir,
}

impl Pve {
    fn new() -> Pve {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [("qm", FAKE_QM), ("virt-customize", FAKE_VIRT_CUSTOMIZE)] {
            let path = dir.path().join("bin").join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, body).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::create_dir_all(dir.path().join("qm")).unwrap();
        Pve { dir }
    }

    fn qm_dir(&self) -> PathBuf {
        self.dir.path().join("qm")
    }

    fn path_env(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.dir.path().join("bin")];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).unwrap()
    }

    /// A recorded `qm config` for VM `id`.
    fn put_vm(&self, id: u64, config: &str) {
        fs::write(self.qm_dir().join(format!("{id}.conf")), config).unwrap();
    }

    fn vm(&self, id: u64) -> Option<String> {
        fs::read_to_string(self.qm_dir().join(format!("{id}.conf"))).ok()
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.qm_dir().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = fs::remove_file(self.qm_dir().join("calls.log"));
    }

    fn result(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.dir.path().join("result.json")).unwrap())
            .unwrap()
    }

    /// Variables that point the play at this machine, the fakes and the local image server.
    fn local_vars(&self, base_url: &str) -> Value {
        serde_json::json!({
            "ansible_connection": "local",
            "ansible_python_interpreter": repo_root().join(".venv/bin/python"),
            "proxmox_template_node": node_name(),
            "proxmox_template_image_base_url": base_url,
            "proxmox_template_cache_dir": self.dir.path().join("cache"),
        })
    }

    /// Run the play with the inventory and vars em-infra would write (template 9000 on this
    /// node), plus `extra` variables.
    fn play(&self, base_url: &str, refresh: bool, extra: Value) -> Output {
        self.play_with_env(base_url, refresh, extra, &[])
    }

    /// [`Pve::play`] with more environment variables for the play (and so for the fakes).
    fn play_with_env(
        &self,
        base_url: &str,
        refresh: bool,
        extra: Value,
        env: &[(&str, &str)],
    ) -> Output {
        let ansible = ansible_playbook().unwrap();
        let t = TemplateInputs {
            template_vm_id: 9000,
            datastore_id: "local-lvm".into(),
            network_bridge: "vmbr0".into(),
            proxmox_node: node_name(),
            refresh_vm_id: 9001,
        };
        let (inventory, vars) = {
            let d = self.dir.path();
            fs::write(
                d.join("inventory.yml"),
                prepare::inventory_yaml(&t.proxmox_node, "127.0.0.1", "root"),
            )
            .unwrap();
            let v = prepare::vars_json(&t, refresh, &d.join("result.json"));
            fs::write(d.join("vars.json"), v.to_string()).unwrap();
            (d.join("inventory.yml"), d.join("vars.json"))
        };
        let mut local = self.local_vars(base_url);
        for (k, v) in extra.as_object().unwrap() {
            local[k] = v.clone();
        }
        let local_file = self.dir.path().join("local.json");
        fs::write(&local_file, local.to_string()).unwrap();
        let _ = fs::remove_file(self.dir.path().join("result.json"));
        let mut cmd = Command::new(ansible);
        cmd.current_dir(repo_root())
            .arg("-i")
            .arg(&inventory)
            .arg(prepare::PLAYBOOK)
            .arg("--extra-vars")
            .arg(format!("@{}", vars.display()))
            .arg("--extra-vars")
            .arg(format!("@{}", local_file.display()))
            .env("PATH", self.path_env())
            .env("FAKE_QM_DIR", self.qm_dir())
            .envs(env.iter().copied())
            .env("ANSIBLE_CONFIG", repo_root().join("ansible.cfg"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.dir.path().join("ansible-tmp"));
        let out = cmd.output().unwrap();
        eprintln!(
            "--- ansible-playbook → {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// (changed, failed) of the one host in the PLAY RECAP.
fn recap(out: &Output) -> (u32, u32) {
    let hosts = em_infra_core::ansible::parse_recap(&stdout(out));
    assert_eq!(hosts.len(), 1, "one host in the recap: {hosts:?}");
    (hosts[0].1, hosts[0].2)
}

fn our_template(id: u64, sha: &str) -> String {
    format!(
        "agent: enabled=1\nboot: order=scsi0\nciupgrade: 0\n\
         description: em-infra template; image sha256={sha}; image={IMAGE}; url=x\n\
         ide2: local-lvm:vm-{id}-cloudinit,media=cdrom\nmemory: 2048\nname: ubuntu-2204-em-infra\n\
         net0: virtio=BC:24:11:2E:C1:0A,bridge=vmbr0\nostype: l26\nscsi0: local-lvm:base-{id}-disk-0,discard=on,size=2252M\n\
         scsihw: virtio-scsi-single\nserial0: socket\ntags: em-infra;template\ntemplate: 1\nvga: serial0\n"
    )
}

fn creates(calls: &[String]) -> Vec<&String> {
    calls
        .iter()
        .filter(|c| c.starts_with("qm create") || c.starts_with("qm destroy"))
        .collect()
}

const OLD_SHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn a_template_with_the_same_image_is_skipped_with_changed_0() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release A\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();
    pve.put_vm(9000, &our_template(9000, &sha));
    let before = pve.vm(9000);

    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    assert_eq!(recap(&out), (0, 0), "a matching template changes nothing");
    assert!(
        stdout(&out).contains("em-infra template: skip (VM 9000)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        pve.calls(),
        vec!["qm config 9000"],
        "only read, never create"
    );
    assert_eq!(pve.vm(9000), before);
    assert_eq!(pve.result()["decision"], "skip");
    assert_eq!(pve.result()["image_sha256"], sha.as_str());
    assert!(!pve.dir.path().join("cache").exists(), "nothing downloaded");
}

#[test]
fn a_foreign_vm_at_the_template_id_fails_and_is_not_touched() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release A\n";
    let base = release(image, &sha256_hex(image));
    let pve = Pve::new();
    let foreign = "boot: order=scsi0\nmemory: 8192\nname: build-server\nscsi0: local-lvm:vm-9000-disk-0,size=64G\n";
    pve.put_vm(9000, foreign);

    let out = pve.play(&base, true, serde_json::json!({}));
    assert_ne!(code(&out), 0);
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("VM 9000 (build-server) exists but is not an em-infra template"),
        "{text}"
    );
    assert!(text.contains("em-infra never touches another VM"), "{text}");
    assert_eq!(pve.calls(), vec!["qm config 9000"]);
    assert_eq!(pve.vm(9000).as_deref(), Some(foreign));

    // A template that is someone else's (no em-infra description) is just as foreign.
    pve.clear_calls();
    pve.put_vm(
        9000,
        "description: my golden image\nname: golden\ntemplate: 1\n",
    );
    let out = pve.play(&base, false, serde_json::json!({}));
    assert_ne!(code(&out), 0);
    assert!(
        (stdout(&out) + &stderr(&out))
            .contains("VM 9000 (golden) exists but is not an em-infra template")
    );
    assert!(creates(&pve.calls()).is_empty());
}

#[test]
fn a_template_from_another_image_is_reported_and_left_alone_without_refresh() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release B\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();
    pve.put_vm(9000, &our_template(9000, OLD_SHA));
    let before = pve.vm(9000);

    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    assert_eq!(recap(&out), (0, 0));
    let text = stdout(&out);
    assert!(text.contains("newer image available"), "{text}");
    assert!(text.contains("em-infra prepare --refresh"), "{text}");
    assert!(creates(&pve.calls()).is_empty(), "{:?}", pve.calls());
    assert_eq!(pve.vm(9000), before);
    assert!(pve.vm(9001).is_none());
    let result = pve.result();
    assert_eq!(result["decision"], "newer");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains(&format!("built from sha256 {OLD_SHA}"))
    );
}

#[test]
fn no_vm_decides_to_create_and_decide_only_stops_there() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release A\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();

    let out = pve.play(
        &base,
        false,
        serde_json::json!({"proxmox_template_decide_only": true}),
    );
    assert_eq!(code(&out), 0);
    assert_eq!(recap(&out), (0, 0));
    assert!(
        stdout(&out).contains("em-infra template: create (VM 9000)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(pve.calls(), vec!["qm config 9000"]);
    assert!(pve.vm(9000).is_none());
    assert_eq!(pve.result()["decision"], "create");
    assert_eq!(pve.result()["vm_id"], 9000);
}

#[test]
fn builds_the_template_then_a_rerun_changes_nothing() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release A\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();

    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    let (changed, failed) = recap(&out);
    assert!(changed > 0 && failed == 0);
    let custom = pve.dir.path().join(format!(
        "cache/{sha}/em-infra-ubuntu-22.04-server-cloudimg-amd64.qcow2"
    ));
    let calls = pve.calls();
    assert_eq!(
        calls,
        vec![
            "qm config 9000".to_string(),
            format!("virt-customize -a {}.partial --install qemu-guest-agent --truncate /etc/machine-id", custom.display()),
            format!(
                "qm create 9000 --name ubuntu-2204-em-infra --memory 2048 --cores 2 --net0 virtio,bridge=vmbr0 \
                 --scsihw virtio-scsi-single --serial0 socket --vga serial0 --agent enabled=1 --ostype l26 \
                 --tags em-infra;template --description em-infra template (building); image sha256={sha}; \
                 image={IMAGE}; url={base}/{IMAGE}"
            ),
            format!("qm disk import 9000 {} local-lvm", custom.display()),
            "qm config 9000".to_string(),
            "qm set 9000 --scsi0 local-lvm:vm-9000-disk-0,discard=on,iothread=1,ssd=1 --ide2 local-lvm:cloudinit \
             --boot order=scsi0 --ciupgrade 0".to_string(),
            "qm template 9000".to_string(),
            // Read back: qm's exit codes are not trusted (see verify.yml).
            "qm config 9000".to_string(),
            format!("qm set 9000 --description em-infra template; image sha256={sha}; image={IMAGE}; url={base}/{IMAGE}"),
            "qm config 9000".to_string(),
        ]
    );
    // The pristine download is verified and kept; the customized copy is a separate file.
    assert_eq!(
        fs::read(pve.dir.path().join(format!("cache/{sha}/{IMAGE}"))).unwrap(),
        image
    );
    assert!(
        fs::read_to_string(&custom)
            .unwrap()
            .ends_with("customized\n")
    );
    let config = pve.vm(9000).unwrap();
    for line in [
        "template: 1",
        "scsi0: local-lvm:base-9000-disk-0,discard=on,iothread=1,ssd=1",
        "ide2: local-lvm:vm-9000-cloudinit,media=cdrom",
        "boot: order=scsi0",
        "ciupgrade: 0",
        "serial0: socket",
        "agent: enabled=1",
        "scsihw: virtio-scsi-single",
        &format!("description: em-infra template; image sha256={sha};"),
    ] {
        assert!(config.contains(line), "{line:?} missing from\n{config}");
    }
    assert!(!config.contains("unused0"), "{config}");
    assert_eq!(pve.result()["decision"], "built");

    pve.clear_calls();
    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    assert_eq!(recap(&out), (0, 0), "rerun with the same image: changed=0");
    assert_eq!(pve.calls(), vec!["qm config 9000"]);
}

#[test]
fn refresh_builds_a_new_template_under_a_new_id_and_keeps_the_old_one() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release B\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();
    pve.put_vm(9000, &our_template(9000, OLD_SHA));
    let old = pve.vm(9000);

    let out = pve.play(&base, true, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    assert_eq!(pve.vm(9000), old, "the old template is untouched");
    let new = pve.vm(9001).expect("a new template at 9001");
    assert!(new.contains("template: 1") && new.contains(&format!("image sha256={sha}")));
    assert!(
        !pve.calls()
            .iter()
            .any(|c| c.starts_with("qm") && c.contains(" 9000 ") && !c.starts_with("qm config"))
    );
    let result = pve.result();
    assert_eq!(result["decision"], "built");
    assert_eq!(result["vm_id"], 9001);
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("Set template_vm_id = 9001 in terraform.tfvars")
    );

    // Again with --refresh: the new template already holds the image; nothing changes.
    pve.clear_calls();
    let out = pve.play(&base, true, serde_json::json!({}));
    assert_eq!(recap(&out), (0, 0));
    assert_eq!(pve.calls(), vec!["qm config 9000", "qm config 9001"]);
    assert_eq!(pve.result()["decision"], "skip");
}

#[test]
fn an_interrupted_build_is_removed_and_rebuilt() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release A\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();
    pve.put_vm(
        9000,
        &format!(
            "description: em-infra template (building); image sha256={sha}; image={IMAGE}\nname: ubuntu-2204-em-infra\nunused0: local-lvm:vm-9000-disk-0\n"
        ),
    );
    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    let calls = pve.calls();
    assert_eq!(calls[1], "qm destroy 9000 --purge", "{calls:?}");
    assert!(pve.vm(9000).unwrap().contains("template: 1"));
}

/// Real `qm template` exits 0 when its task fails (see FAKE_QM's header): the play must notice
/// by reading the configuration back, keep the VM marked as an interrupted build, and rebuild it.
#[test]
fn a_template_task_that_fails_with_exit_0_is_caught_by_reading_the_config_back() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release A\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();

    let out = pve.play_with_env(
        &base,
        false,
        serde_json::json!({}),
        &[("FAKE_QM_SILENT_FAIL", "template")],
    );
    assert_ne!(code(&out), 0, "the play must not trust qm's exit code");
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains(
            "The qm commands exited 0, but VM 9000 is not the template they should have made"
        ),
        "{text}"
    );
    assert!(
        text.contains("missing template: 1 (qm template converted it)"),
        "{text}"
    );
    assert!(
        text.contains("the next run removes it and builds again"),
        "{text}"
    );
    let config = pve.vm(9000).unwrap();
    assert!(!config.contains("template: 1"), "{config}");
    assert!(
        config.contains("description: em-infra template (building);"),
        "the VM still reads as an interrupted build:\n{config}"
    );
    assert!(
        !pve.calls()
            .iter()
            .any(|c| c.contains("--description em-infra template;")),
        "the finished description is never written: {:?}",
        pve.calls()
    );

    // Without the fault, the next run recognises the interrupted build and builds it again.
    pve.clear_calls();
    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    assert_eq!(pve.calls()[1], "qm destroy 9000 --purge");
    assert_eq!(pve.result()["decision"], "built");
    assert!(pve.vm(9000).unwrap().contains("template: 1"));
}

/// A template built before the play set ciupgrade (or with another value) gets it set; new
/// clones inherit it. Then a rerun changes nothing.
#[test]
fn a_kept_template_gets_ciupgrade_set_and_a_rerun_changes_nothing() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, release A\n";
    let sha = sha256_hex(image);
    let base = release(image, &sha);
    let pve = Pve::new();
    let legacy = our_template(9000, &sha).replace("ciupgrade: 0\n", "");
    pve.put_vm(9000, &legacy);

    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(code(&out), 0);
    assert_eq!(recap(&out), (1, 0), "one change: ciupgrade");
    assert_eq!(
        pve.calls(),
        vec![
            "qm config 9000",
            "qm set 9000 --ciupgrade 0",
            "qm config 9000"
        ]
    );
    let config = pve.vm(9000).unwrap();
    assert!(config.contains("ciupgrade: 0"), "{config}");
    assert_eq!(
        config.replace("ciupgrade: 0\n", ""),
        legacy,
        "nothing else changed"
    );
    let result = pve.result();
    assert_eq!(result["decision"], "skip");
    let message = result["message"].as_str().unwrap();
    assert!(message.starts_with("template is up to date"), "{message}");
    assert!(
        message.contains(
            "set ciupgrade=0 on template 9000 (clones no longer run apt upgrade at first boot)"
        ),
        "{message}"
    );

    pve.clear_calls();
    let out = pve.play(&base, false, serde_json::json!({}));
    assert_eq!(recap(&out), (0, 0), "rerun: changed=0");
    assert_eq!(pve.calls(), vec!["qm config 9000"]);

    // Opting back in to Proxmox's default is the same config-only change.
    let out = pve.play(
        &base,
        false,
        serde_json::json!({"proxmox_template_ciupgrade": true}),
    );
    assert_eq!(recap(&out), (1, 0));
    assert!(pve.vm(9000).unwrap().contains("ciupgrade: 1"));
    assert!(
        pve.result()["message"]
            .as_str()
            .unwrap()
            .contains("clones run apt upgrade at first boot")
    );
}

/// The `qm` double refuses what real `qm` refuses, before changing anything.
#[test]
fn the_qm_double_is_as_strict_as_qm_where_the_play_relies_on_it() {
    let pve = Pve::new();
    let qm = |args: &[&str]| {
        Command::new(pve.dir.path().join("bin/qm"))
            .args(args)
            .env("FAKE_QM_DIR", pve.qm_dir())
            .output()
            .unwrap()
    };
    let built = our_template(9000, OLD_SHA);
    pve.put_vm(9000, &built);

    let out = qm(&["set", "9000", "--ciupgrade", "0", "--cloud-upgrade", "0"]);
    assert_eq!(code(&out), 255);
    assert!(
        stderr(&out).contains("Unknown option: cloud-upgrade\n400 unable to parse option"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pve.vm(9000).unwrap(), built, "nothing applied");

    let out = qm(&["template", "9000"]);
    assert_eq!(code(&out), 255);
    assert!(stderr(&out).contains("you can't convert a template to a template"));

    pve.put_vm(9100, "name: running-vm\nscsi0: local-lvm:vm-9100-disk-0\n");
    fs::write(pve.qm_dir().join("9100.running"), "").unwrap();
    let out = qm(&["template", "9100"]);
    assert_eq!(code(&out), 255);
    assert!(stderr(&out).contains("you can't convert a VM to template if VM is running"));
    assert!(!pve.vm(9100).unwrap().contains("template"));

    let out = qm(&["set", "9001", "--ciupgrade", "0"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("9001.conf' does not exist"));
}

#[test]
fn an_image_that_does_not_match_the_published_checksum_is_refused() {
    let Some(_) = ansible_playbook() else { return };
    let image = b"jammy image, tampered\n";
    // The list names another checksum than the served image has.
    let base = release(image, &"2".repeat(64));
    let pve = Pve::new();
    let out = pve.play(&base, false, serde_json::json!({}));
    assert_ne!(code(&out), 0);
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.to_lowercase().contains("checksum mismatch") || text.contains("did not match"),
        "{text}"
    );
    assert!(creates(&pve.calls()).is_empty(), "{:?}", pve.calls());
    assert!(pve.vm(9000).is_none());
}

#[test]
fn a_pruned_release_is_reported_before_anything_changes() {
    let Some(_) = ansible_playbook() else { return };
    // A release directory that no longer exists: no SHA256SUMS, no image.
    let base = serve(BTreeMap::new());
    let pve = Pve::new();
    let out = pve.play(&base, false, serde_json::json!({}));
    assert_ne!(code(&out), 0);
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains(&format!("Cannot read {base}/SHA256SUMS")),
        "{text}"
    );
    assert!(text.contains("pin a newer one"), "{text}");
    assert!(pve.calls().is_empty(), "decided nothing: {:?}", pve.calls());
}

/// The clones inherit the template's `ciupgrade 0` only because our Terraform never sets the bpg
/// provider's `initialization.upgrade`: unset, v0.111.1 sends no `ciupgrade` on create
/// (proxmoxtf/resource/vm/vm.go, GetOkExists). Set, it would override the template and change the
/// user data (so the cloud-init instance-id) of VMs cloned from an older template.
#[test]
fn no_terraform_vm_sets_initialization_upgrade() {
    fn tf_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() && !name.starts_with('.') {
                tf_files(&path, out);
            } else if name.ends_with(".tf") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    tf_files(&repo_root().join("terraform"), &mut files);
    let mut vm_resources = 0;
    for file in &files {
        let body: hcl::Body = hcl::from_str(&fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for vm in body.blocks().filter(|b| {
            b.identifier() == "resource"
                && b.labels().first().map(|l| l.as_str()) == Some("proxmox_virtual_environment_vm")
        }) {
            vm_resources += 1;
            for init in vm
                .body()
                .blocks()
                .filter(|b| b.identifier() == "initialization")
            {
                assert!(
                    !init.body().attributes().any(|a| a.key() == "upgrade"),
                    "{}: initialization.upgrade must stay unset (the template carries ciupgrade 0)",
                    file.display()
                );
                assert!(
                    init.body().attributes().any(|a| a.key() == "datastore_id"),
                    "{}: the initialization block was read",
                    file.display()
                );
            }
        }
    }
    assert!(vm_resources >= 1, "no VM resource found in {files:?}");
}

// ---- em-infra prepare (the CLI around the play) ----

#[test]
fn prepare_without_the_endpoint_is_bad_input_naming_it() {
    let repo = Repo::new();
    let out = run_logged(
        repo.cmd().arg("prepare").env_remove("PROXMOX_VE_ENDPOINT"),
        "prepare without PROXMOX_VE_ENDPOINT",
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("PROXMOX_VE_ENDPOINT is not set"));
    assert!(!repo.state_dir().join("prepare/inventory.yml").exists());

    let out = run_logged(
        repo.cmd()
            .arg("prepare")
            .env("PROXMOX_VE_ENDPOINT", "pve.lan:8006"),
        "prepare with a malformed endpoint",
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("PROXMOX_VE_ENDPOINT=\"pve.lan:8006\" has no scheme"));
}

#[test]
fn prepare_with_broken_tfvars_is_bad_input() {
    let repo = Repo::new();
    let tfvars = repo.env_dir().join("terraform.tfvars");
    let text = fs::read_to_string(&tfvars).unwrap();
    assert!(text.contains("template_vm_id    = 9000"));
    fs::write(
        &tfvars,
        text.replace("template_vm_id    = 9000", "template_vm_id    = 5"),
    )
    .unwrap();
    let out = run_logged(
        repo.cmd()
            .arg("prepare")
            .env("PROXMOX_VE_ENDPOINT", "https://127.0.0.1:8006/"),
        "prepare with a bad template_vm_id",
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("template_vm_id"), "{}", stderr(&out));
    assert!(!repo.state_dir().join("prepare/vars.json").exists());
}

/// `em-infra prepare` end to end: the inventory and vars it writes, the play it runs (here
/// pointed at this machine and the fakes through EM_INFRA_ANSIBLE_VARS_FILE), and what it prints.
#[test]
fn prepare_builds_reports_up_to_date_then_newer_then_refreshes() {
    let Some(_) = ansible_playbook() else { return };
    let repo = Repo::new();
    let pve = Pve::new();
    let image_a = b"jammy image, release A\n";
    let base_a = release(image_a, &sha256_hex(image_a));
    let site_vars = repo.root().join("site-vars.json");
    let prepare = |base: &str, args: &[&str], label: &str| -> Output {
        fs::write(&site_vars, pve.local_vars(base).to_string()).unwrap();
        run_logged(
            repo.cmd()
                .arg("prepare")
                .args(args)
                .env("PROXMOX_VE_ENDPOINT", "https://127.0.0.1:8006/")
                .env("PROXMOX_VE_SSH_USERNAME", "root")
                .env("EM_INFRA_ANSIBLE_VARS_FILE", &site_vars)
                .env("PATH", pve.path_env())
                .env("FAKE_QM_DIR", pve.qm_dir()),
            label,
        )
    };

    let out = prepare(&base_a, &[], "first prepare");
    assert_eq!(code(&out), 0);
    let work = repo.state_dir().join("prepare");
    let inventory = fs::read_to_string(work.join("inventory.yml")).unwrap();
    // The fixture's proxmox_node is the default "pve"; the host is the endpoint's.
    assert!(inventory.contains("proxmox_hosts:\n  hosts:\n    \"pve\":\n      ansible_host: \"127.0.0.1\"\n      ansible_user: \"root\"\n"), "{inventory}");
    let vars: Value =
        serde_json::from_str(&fs::read_to_string(work.join("vars.json")).unwrap()).unwrap();
    assert_eq!(vars["proxmox_template_vm_id"], 9000);
    assert_eq!(vars["proxmox_template_datastore"], "local-lvm");
    assert_eq!(vars["proxmox_template_bridge"], "vmbr0");
    assert_eq!(vars["proxmox_template_refresh"], false);
    assert_eq!(vars["proxmox_template_refresh_vm_id"], 9001);
    let log = fs::read_to_string(work.join("prepare.log")).unwrap();
    assert!(log.contains("PLAY RECAP"), "{log}");
    assert!(
        stderr(&out).contains("Create VM 9000"),
        "progress shows tasks"
    );
    assert!(stderr(&out).contains("✓ template 9000: built template 9000"));
    assert!(pve.vm(9000).unwrap().contains("template: 1"));

    pve.clear_calls();
    let out = prepare(&base_a, &["--json"], "second prepare, --json");
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("✓ template 9000: template is up to date"));
    assert_eq!(pve.calls(), vec!["qm config 9000"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["decision"], "skip");
    assert_eq!(json["vm_id"], 9000);
    assert_eq!(json["image_sha256"], sha256_hex(image_a).as_str());

    let image_b = b"jammy image, release B\n";
    let base_b = release(image_b, &sha256_hex(image_b));
    let out = prepare(&base_b, &[], "prepare with a newer pinned image");
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("! template 9000: newer image available"));
    assert!(pve.vm(9001).is_none());

    let out = prepare(&base_b, &["--refresh"], "prepare --refresh");
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("✓ template 9001: built template 9001"));
    assert!(stderr(&out).contains("next: set template_vm_id = 9001 in"));
    assert!(pve.vm(9001).unwrap().contains("template: 1"));

    // A failing play is a stage failure (exit 4) with the log's tail and path.
    pve.put_vm(9000, "name: someone-else\n");
    let out = prepare(&base_b, &[], "prepare over a foreign VM");
    assert_eq!(code(&out), 4);
    assert!(stderr(&out).contains("exists but is not an em-infra template"));
    assert!(stderr(&out).contains("full log:"));
}
