//! `em-infra prepare` against a lab host standing in for a FRESH Proxmox VE host WITHOUT A
//! SUBSCRIPTION: a real Debian host (systemd-nspawn, see `crates/testlab`) reached over real SSH,
//! with real apt, the `qm` test double of `prepare.rs` on its PATH, no virt-customize, and an apt
//! source like the enterprise repository's that answers 401 Unauthorized (an HTTP server in the
//! lab's controller namespace; it also serves the "cloud image" and its SHA256SUMS, and after the
//! fix a small apt repository with a libguestfs-tools TEST DOUBLE).
//!
//! Needs root (lab), `dpkg-deb` and `<repo>/.venv/bin/ansible-playbook`; skipped with a message
//! without them, except under CI=true, where that is a failure.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use testlab::{Lab, LabSpec};

use crate::prepare::{FAKE_QM, FAKE_VIRT_CUSTOMIZE};
use crate::support::{self, Repo, code, on_path, repo_root, run_logged, sha256_of, stderr};

const IMAGE: &str = "ubuntu-22.04-server-cloudimg-amd64.img";
/// The fixture's proxmox_node: the play refuses a host whose `uname -n` differs.
const NODE: &str = "pve";
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 11);
/// Where the 401 answers come from, like https://enterprise.proxmox.com/debian/pve.
const ENTERPRISE_PATH: &str = "/debian/pve";

/// An HTTP server on the lab's controller address: `files` (path → body), 401 Unauthorized with
/// a Basic challenge under [`ENTERPRISE_PATH`] (what enterprise.proxmox.com answers a host without
/// a subscription key), 404 otherwise. The listener is bound by a thread that joined the
/// controller's network namespace; it serves as long as the test process lives.
fn serve_in_lab(lab: &Lab, files: BTreeMap<String, Vec<u8>>) -> String {
    let netns = Path::new("/run/netns").join(lab.controller_netns());
    let addr = lab.controller_addr();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ns = fs::File::open(&netns).unwrap();
        // SAFETY: a valid namespace descriptor; setns moves only this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {}", netns.display());
        let listener = TcpListener::bind((addr, 0)).unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
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
            let mut parts = request.split_whitespace();
            let method = parts.next().unwrap_or("GET").to_string();
            // apt asks a flat repository ("deb URL ./") for URL/./Packages.
            let path = parts.next().unwrap_or("/").replace("/./", "/");
            let (status, extra, body) = if path.starts_with(ENTERPRISE_PATH) {
                (
                    "401 Unauthorized",
                    "WWW-Authenticate: Basic realm=\"Proxmox Enterprise Repository\"\r\n",
                    Vec::new(),
                )
            } else if let Some(body) = files.get(&path) {
                ("200 OK", "", body.clone())
            } else {
                ("404 Not Found", "", b"not found\n".to_vec())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
    });
    let bound = rx.recv().unwrap();
    format!("http://{bound}")
}

/// A `libguestfs-tools` TEST DOUBLE as a .deb whose virt-customize is `prepare.rs`'s double, and
/// the flat repository index (`Packages`) that lists it: (path → body) for [`serve_in_lab`].
fn guestfs_double_repo(tmp: &Path) -> BTreeMap<String, Vec<u8>> {
    let pkg = tmp.join("pkg");
    fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    fs::create_dir_all(pkg.join("usr/bin")).unwrap();
    fs::create_dir_all(pkg.join("usr/lib/em-infra-test")).unwrap();
    let control = "Package: libguestfs-tools\nVersion: 1:1.52.0-99+emtest\nArchitecture: all\n\
                   Maintainer: em-infra tests <tests@invalid>\n\
                   Description: TEST DOUBLE of libguestfs-tools (em-infra tests)\n \
                   virt-customize records its arguments; it customizes nothing.\n";
    fs::write(pkg.join("DEBIAN/control"), control).unwrap();
    fs::write(
        pkg.join("usr/lib/em-infra-test/virt-customize"),
        FAKE_VIRT_CUSTOMIZE,
    )
    .unwrap();
    fs::write(
        pkg.join("usr/bin/virt-customize"),
        "#!/bin/sh\nFAKE_QM_DIR=/var/lib/fake-qm exec /usr/lib/em-infra-test/virt-customize \"$@\"\n",
    )
    .unwrap();
    for f in [
        "usr/bin/virt-customize",
        "usr/lib/em-infra-test/virt-customize",
    ] {
        run_ok(Command::new("chmod").arg("755").arg(pkg.join(f)));
    }
    let deb = tmp.join("libguestfs-tools_all.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(&pkg)
            .arg(&deb),
    );
    let bytes = fs::read(&deb).unwrap();
    let (head, description) = control.split_once("Description:").unwrap();
    let packages = format!(
        "{head}Filename: ./libguestfs-tools_all.deb\nSize: {}\nSHA256: {}\nDescription:{description}",
        bytes.len(),
        sha256_of(&deb)
    );
    BTreeMap::from([
        ("/repo/Packages".to_string(), packages.into_bytes()),
        ("/repo/libguestfs-tools_all.deb".to_string(), bytes),
    ])
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A shell script on the lab host; returns its stdout.
fn on_host(lab: &Lab, script: &str) -> String {
    String::from_utf8_lossy(&run_ok(lab.ssh(NODE).arg(script)).stdout).to_string()
}

/// Write `body` to `path` on the lab host with `mode`.
fn put_file(lab: &Lab, path: &str, body: &str, mode: &str) {
    let mut child = lab
        .ssh(NODE)
        .arg(format!(
            "mkdir -p \"$(dirname {path})\" && cat > {path} && chmod {mode} {path}"
        ))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "writing {path} on the lab host"
    );
}

#[test]
fn an_unsubscribed_host_is_explained_before_anything_changes_then_builds_once_fixed() {
    if !testlab::require_root_or_skip() {
        return;
    }
    if !repo_root().join(".venv/bin/ansible-playbook").is_file() {
        return support::skip_or_fail(
            "no .venv/bin/ansible-playbook (./scripts/test.sh installs it)",
        );
    }
    if !on_path("dpkg-deb") {
        return support::skip_or_fail("dpkg-deb is not on PATH (package dpkg)");
    }
    let repo = Repo::new();
    let mut lab =
        Lab::up(LabSpec::new(repo.root().join("lab")).host(NODE, NODE_IP)).expect("lab up");

    let image = b"jammy image, release A\n";
    let image_sha = {
        let p = repo.root().join("image");
        fs::write(&p, image).unwrap();
        sha256_of(&p)
    };
    let mut files = guestfs_double_repo(repo.root());
    files.insert(format!("/{IMAGE}"), image.to_vec());
    files.insert(
        "/SHA256SUMS".into(),
        format!("{image_sha} *{IMAGE}\n").into_bytes(),
    );
    let base = serve_in_lab(&lab, files);

    // The Proxmox side: the qm double on root's PATH, and an interrupted build at 9000 (so the
    // play's first change would be `qm destroy`), apt sources like a fresh PVE 8 host's.
    put_file(&lab, "/usr/local/lib/em-infra-test/qm", FAKE_QM, "755");
    put_file(
        &lab,
        "/usr/local/sbin/qm",
        "#!/bin/sh\nFAKE_QM_DIR=/var/lib/fake-qm exec /usr/local/lib/em-infra-test/qm \"$@\"\n",
        "755",
    );
    let building = format!(
        "description: em-infra template (building); image sha256={image_sha}; image={IMAGE}\nname: ubuntu-2204-em-infra\n"
    );
    put_file(&lab, "/var/lib/fake-qm/9000.conf", &building, "644");
    let enterprise_list = "/etc/apt/sources.list.d/pve-enterprise.list";
    put_file(
        &lab,
        enterprise_list,
        &format!("deb {base}{ENTERPRISE_PATH} bookworm pve-enterprise\n"),
        "644",
    );
    assert_eq!(
        on_host(&lab, "command -v virt-customize || echo none"),
        "none\n"
    );

    let site_vars = repo.root().join("site-vars.json");
    fs::write(
        &site_vars,
        serde_json::json!({ "proxmox_template_image_base_url": base }).to_string(),
    )
    .unwrap();
    let prepare = |label: &str| {
        let mut cmd = support::em_in_lab_cmd(&lab, &repo, &["prepare"]);
        cmd.env("PROXMOX_VE_ENDPOINT", format!("https://{NODE_IP}:8006/"))
            .env("PROXMOX_VE_SSH_USERNAME", "root");
        run_logged(&mut cmd, label)
    };

    let out = prepare("prepare on a host whose enterprise repository answers 401");
    assert_eq!(code(&out), 4, "a stage failure");
    let err = stderr(&out);
    for part in [
        format!("{base}{ENTERPRISE_PATH}/dists/bookworm/InRelease answered 401 Unauthorized"),
        format!("{enterprise_list} lists it"),
        "enable the pve-no-subscription repository".to_string(),
        "Nothing was changed on the host".to_string(),
    ] {
        assert!(err.contains(&part), "{part:?} missing from:\n{err}");
    }
    assert_eq!(
        on_host(&lab, "cat /var/lib/fake-qm/calls.log"),
        "qm config 9000\n",
        "read, never destroyed or created"
    );
    assert_eq!(on_host(&lab, "cat /var/lib/fake-qm/9000.conf"), building);
    assert_eq!(
        on_host(&lab, "ls /var/cache/em-infra 2>/dev/null || echo none"),
        "none\n",
        "nothing downloaded"
    );

    // The documented fix on PVE 8: comment the enterprise line out, use another repository.
    on_host(
        &lab,
        &format!(
            "sed -i 's/^deb /# deb /' {enterprise_list} && \
             echo 'deb [trusted=yes] {base}/repo ./' > /etc/apt/sources.list.d/em-test.list && \
             rm /var/lib/fake-qm/calls.log"
        ),
    );
    let out = prepare("prepare after disabling the enterprise repository");
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).contains("✓ template 9000: built template 9000"),
        "{}",
        stderr(&out)
    );
    assert!(on_host(&lab, "dpkg -s libguestfs-tools").contains("Status: install ok installed"));
    let calls = on_host(&lab, "cat /var/lib/fake-qm/calls.log");
    assert!(
        calls.contains("qm destroy 9000 --purge\n")
            && calls.contains("virt-customize -a ")
            && calls.contains("qm template 9000\n"),
        "{calls}"
    );
    let config = on_host(&lab, "cat /var/lib/fake-qm/9000.conf");
    assert!(
        config.contains("template: 1") && config.contains("ciupgrade: 0"),
        "{config}"
    );

    let out = prepare("prepare again");
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("✓ template 9000: template is up to date"));
    let log = fs::read_to_string(repo.state_dir().join("prepare/prepare.log")).unwrap();
    let recap = em_infra_core::ansible::parse_recap(&log);
    assert_eq!(recap.len(), 1, "{log}");
    assert_eq!((recap[0].1, recap[0].2), (0, 0), "rerun: changed=0");

    lab.down().unwrap();
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
}
