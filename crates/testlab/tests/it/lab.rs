//! Real labs: need root, netns, overlayfs and systemd-nspawn (skipped otherwise, except in CI).

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Instant;

use testlab::{Lab, LabSpec};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn ok(mut c: Command) -> String {
    let out: Output = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ssh(lab: &Lab, host: &str, script: &str) -> String {
    let mut c = lab.ssh(host);
    c.arg(script);
    ok(c)
}

#[test]
fn three_hosts_boot_answer_ssh_reach_each_other_and_leave_nothing() {
    if !testlab::require_root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let spec = LabSpec::new(tmp.path().join("lab"))
        .host("lab-cp-1", ip("10.231.0.11"))
        .host("lab-worker-1", ip("10.231.0.21"))
        .host("lab-worker-2", ip("10.231.0.22"));
    // Builds the rootfs on first use (outside the boot timing below when already cached).
    testlab::ensure_rootfs(&[]).unwrap();
    let t = Instant::now();
    let mut lab = Lab::up(spec).unwrap();
    eprintln!("timing: 3 hosts up in {:.2} s", t.elapsed().as_secs_f64());

    assert!(lab.controller_netns().starts_with("tl-"));
    assert_eq!(lab.controller_addr(), ip("10.231.0.1"));
    let key = std::fs::metadata(lab.private_key()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );

    for h in lab.hosts() {
        assert_eq!(ssh(&lab, &h.name, "hostname"), h.name);
        assert_eq!(ssh(&lab, &h.name, "systemctl is-active ssh"), "active");
        assert_eq!(ssh(&lab, &h.name, "cat /proc/1/comm"), "systemd");
        let state = ssh(
            &lab,
            &h.name,
            "systemctl is-system-running --wait >/dev/null; systemctl is-system-running || true",
        );
        assert!(
            state == "running" || state == "degraded",
            "{}: system state {state}",
            h.name
        );
        assert!(
            ssh(&lab, &h.name, "ip -4 -o addr show dev eth0").contains(&format!("{}/24", h.addr))
        );
        // Hosts have their own machine id.
        assert_eq!(ssh(&lab, &h.name, "cat /etc/machine-id").len(), 32);
    }
    let ids: std::collections::BTreeSet<String> = lab
        .hosts()
        .iter()
        .map(|h| ssh(&lab, &h.name, "cat /etc/machine-id"))
        .collect();
    assert_eq!(ids.len(), 3, "machine ids must differ");

    // Host to host (k3s agents talk to the server), and every host to the controller address.
    ssh(
        &lab,
        "lab-worker-1",
        // By name: every host's /etc/hosts lists the lab's hosts.
        "timeout 5 bash -c 'exec 3<>/dev/tcp/lab-cp-1/22 && head -c 4 <&3'",
    );
    let banner = ssh(
        &lab,
        "lab-cp-1",
        "timeout 5 bash -c 'exec 3<>/dev/tcp/10.231.0.22/22 && head -c 7 <&3'",
    );
    assert_eq!(banner, "SSH-2.0");
    // Offline by design: nothing outside the lab is reachable.
    ssh(
        &lab,
        "lab-worker-2",
        "! timeout 3 bash -c 'exec 3<>/dev/tcp/151.101.2.132/80' 2>/dev/null",
    );

    // Names from ssh_config work too, and the controller runs arbitrary programs.
    let mut c = lab.command("ssh");
    c.arg("-F")
        .arg(lab.ssh_config())
        .args(["lab-worker-2", "hostname"]);
    assert_eq!(ok(c), "lab-worker-2");
    let mut c = lab.command("ip");
    c.args(["-4", "-o", "addr"]);
    assert!(ok(c).contains("10.231.0.1/24"));

    // Each container has its own cgroup: stopping a unit in one host leaves the same unit in
    // another host running (without per-container cgroups they would share /payload).
    for h in ["lab-cp-1", "lab-worker-1"] {
        ssh(&lab, h, "systemd-run --unit=probe-demo sleep 600");
    }
    ssh(&lab, "lab-cp-1", "systemctl stop probe-demo");
    assert_eq!(
        ssh(&lab, "lab-worker-1", "systemctl is-active probe-demo"),
        "active"
    );
    assert_eq!(
        ssh(&lab, "lab-cp-1", "systemctl is-active probe-demo || true"),
        "inactive"
    );
    // Network sysctls and iptables work inside a host (k3s needs both); the rest is read-only.
    ssh(
        &lab,
        "lab-worker-2",
        "sysctl -qw net.ipv4.ip_forward=1 && iptables -S >/dev/null",
    );

    let t = Instant::now();
    lab.down().unwrap();
    eprintln!("timing: 3 hosts down in {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(lab.leftovers(), Vec::<String>::new());
    assert!(!tmp.path().join("lab").exists());
}

#[test]
fn two_labs_with_the_same_addresses_coexist() {
    if !testlab::require_root_or_skip() {
        return;
    }
    testlab::ensure_rootfs(&[]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut a =
        Lab::up(LabSpec::new(tmp.path().join("a")).host("twin-a", ip("10.231.0.11"))).unwrap();
    let mut b =
        Lab::up(LabSpec::new(tmp.path().join("b")).host("twin-b", ip("10.231.0.11"))).unwrap();
    assert_ne!(a.controller_netns(), b.controller_netns());
    assert_eq!(ssh(&a, "twin-a", "hostname"), "twin-a");
    assert_eq!(ssh(&b, "twin-b", "hostname"), "twin-b");
    // Ansible environment: per-lab ControlPath directory.
    let env_a = a.ansible_env();
    let env_b = b.ansible_env();
    assert_ne!(env_a, env_b);
    a.down().unwrap();
    assert_eq!(a.leftovers(), Vec::<String>::new());
    // Lab b is untouched by a's teardown.
    assert_eq!(ssh(&b, "twin-b", "hostname"), "twin-b");
    b.down().unwrap();
    assert_eq!(b.leftovers(), Vec::<String>::new());
}

#[test]
fn dropping_a_lab_tears_it_down() {
    if !testlab::require_root_or_skip() {
        return;
    }
    testlab::ensure_rootfs(&[]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lab =
        Lab::up(LabSpec::new(tmp.path().join("lab")).host("dropped", ip("10.231.0.31"))).unwrap();
    let id = lab.id().to_string();
    let dir = lab.work_dir().to_path_buf();
    drop(lab);
    assert!(!dir.exists());
    assert!(!testlab::registered_labs().contains(&id));
    assert!(!std::path::Path::new(&format!("/run/netns/tl-{id}-ctl")).exists());
}

/// A host that reboots comes back like a VM: a new boot id (what `ansible.builtin.reboot`
/// compares), an empty /run, the overlay's files kept; the teardown still leaves nothing.
#[test]
fn a_rebooted_host_comes_back() {
    if !testlab::require_root_or_skip() {
        return;
    }
    testlab::ensure_rootfs(&[]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut lab =
        Lab::up(LabSpec::new(tmp.path().join("lab")).host("rebooter", ip("10.231.0.51"))).unwrap();
    let before = ssh(
        &lab,
        "rebooter",
        "touch /run/before-reboot /root/kept; cat /proc/sys/kernel/random/boot_id",
    );
    // The connection may drop before ssh sees the command's status.
    let _ = lab
        .ssh("rebooter")
        .arg("systemctl reboot")
        .output()
        .expect("spawn ssh");
    let deadline = Instant::now() + std::time::Duration::from_secs(90);
    let after = loop {
        let out = lab
            .ssh("rebooter")
            .args([
                "-o",
                "ConnectTimeout=2",
                "cat /proc/sys/kernel/random/boot_id",
            ])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !id.is_empty() && id != before {
            break id;
        }
        assert!(Instant::now() < deadline, "the host did not come back");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_ne!(after, before);
    assert_eq!(
        ssh(
            &lab,
            "rebooter",
            "test ! -e /run/before-reboot && test -e /root/kept && systemctl is-system-running --wait"
        ),
        "running"
    );
    lab.down().unwrap();
    assert_eq!(lab.leftovers(), Vec::<String>::new());
}

/// A test killed mid-run (SIGKILL: no Drop) leaves its lab behind; the next `Lab::up` (or
/// `reap_orphans`, or `em-testlab list`) tears it down.
#[test]
fn a_lab_whose_owner_was_killed_is_reaped() {
    use std::io::{BufRead, BufReader, Write};
    if let Ok(dir) = std::env::var("TESTLAB_ORPHAN_CHILD") {
        let lab = Lab::up(LabSpec::new(dir).host("orphan", ip("10.231.0.41"))).unwrap();
        println!("LAB_ID={}", lab.id());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(300));
        return;
    }
    if !testlab::require_root_or_skip() {
        return;
    }
    testlab::ensure_rootfs(&[]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orphan");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lab::a_lab_whose_owner_was_killed_is_reaped",
            "--nocapture",
        ])
        .env("TESTLAB_ORPHAN_CHILD", &dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(v) = line.unwrap().strip_prefix("LAB_ID=") {
            id = Some(v.to_string());
            break;
        }
    }
    let id = id.expect("child did not start a lab");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(std::path::Path::new(&format!("/run/netns/tl-{id}-ctl")).exists());
    assert!(testlab::reap_orphans().contains(&id));
    assert!(!testlab::registered_labs().contains(&id));
    assert!(!std::path::Path::new(&format!("/run/netns/tl-{id}-ctl")).exists());
    assert!(!dir.exists());
    for h in ["systemd", "unified", ""] {
        let cg = std::path::Path::new("/sys/fs/cgroup")
            .join(h)
            .join(format!("testlab-{id}"));
        assert!(!cg.exists(), "{} left behind", cg.display());
    }
}

/// Boot failures name the host, carry its logs, and leave nothing behind.
#[test]
fn boot_failures_name_the_host_and_leave_nothing() {
    if !testlab::require_root_or_skip() {
        return;
    }
    testlab::ensure_rootfs(&[]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let no_lab_uses = |dir: &std::path::Path| {
        testlab::registered_labs()
            .iter()
            .filter_map(|id| Lab::attach_id(id).ok())
            .all(|l| l.work_dir() != dir)
    };

    // nspawn itself fails.
    let dir = tmp.path().join("broken");
    let mut spec = LabSpec::new(&dir).host("broken-1", ip("10.231.0.61"));
    spec.nspawn_args = vec!["--bind-ro=/nonexistent-testlab:/x".into()];
    let err = format!("{:#}", Lab::up(spec).unwrap_err());
    assert!(err.contains("host broken-1"), "{err}");
    assert!(err.contains("/nonexistent-testlab"), "{err}");
    assert!(!dir.exists());

    // The host boots but sshd never comes up: bounded wait, journal tail in the error.
    let dir = tmp.path().join("nossh");
    let mut spec = LabSpec::new(&dir).host("nossh-1", ip("10.231.0.62"));
    spec.nspawn_args = vec!["--bind-ro=/dev/null:/lib/systemd/system/ssh.service".into()];
    spec.ready_timeout = std::time::Duration::from_secs(3);
    let t = Instant::now();
    let err = format!("{:#}", Lab::up(spec).unwrap_err());
    assert!(t.elapsed().as_secs() < 30);
    assert!(
        err.contains("host nossh-1 (10.231.0.62) not SSH-ready after 3 s"),
        "{err}"
    );
    assert!(err.contains("journal of nossh-1"), "{err}");
    assert!(!dir.exists());
    assert!(no_lab_uses(&dir));
}
