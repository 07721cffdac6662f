//! The node-side package work on real lab hosts: the `nvidia_gpu` role (driver, toolkit,
//! holds, reboot) and the `node_os` upgrade, against stand-in packages from signed local apt
//! repositories (see [`standin`]), with cloud-init still running and other apt runs holding
//! the locks. Plus the docs' GPU names against what the roles and verify apply (no lab).
//!
//! Needs root (lab), `dpkg-deb`, `gpg` and Ansible in `<repo>/.venv/bin`; skips without them,
//! except under `CI=true`.

mod standin;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use testlab::{Lab, LabSpec};

use crate::support::{on_path, repo_root, skip_or_fail as skip};
use standin::{
    DRIVER_V1, DRIVER_V2, FAKE_SYSFS, Repos, TOOLKIT_NEWER, TOOLKIT_PIN, apt_runs, driver_packages,
    hold_locks, kernel_package, prepare_host, reboot_host, run, ssh, ssh_ok, start_cloud_init,
    text, toolkit_packages,
};

const HOST: &str = "lab-gpu-1";
const ALL_LOCKS: [&str; 4] = [
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
];
const DRIVER_PROPRIETARY: [&str; 4] = [
    "nvidia-headless-580-server",
    "nvidia-utils-580-server",
    "nvidia-dkms-580-server",
    "libnvidia-compute-580-server",
];
const TOOLKIT: [&str; 4] = [
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
];
/// The driver install task, as today's role and main's name it.
const DRIVER_TASK_PREFIX: &str = "TASK [nvidia_gpu : Install the ";
const REBOOT_TASK: &str = "Reboot to load the installed driver";

/// The node part of gpu-workers.yml without k3s; the agent's restart handler is a marker.
const GPU_PLAY: &str = r#"---
- name: TEST PLAY - the node part of gpu-workers.yml (role nvidia_gpu), without k3s
  hosts: gpu_workers
  gather_facts: true
  gather_subset: [min]
  become: true
  roles:
    - role: nvidia_gpu
  handlers:
    - name: Restart k3s-agent
      ansible.builtin.file:
        path: /var/lib/em-test/k3s-agent-restarted
        state: touch
        mode: "0644"
"#;

fn ansible_bin_dir() -> PathBuf {
    std::env::var_os("EM_INFRA_ANSIBLE_BIN_DIR")
        .map_or_else(|| repo_root().join(".venv/bin"), PathBuf::from)
}

struct GpuLab {
    lab: Lab,
    repos: Repos,
    inventory: PathBuf,
    play: PathBuf,
    env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
}

/// A one-host lab with the stand-in archive (driver `DRIVER_V1` + `extra`) and the toolkit
/// repository (the pinned and a newer version), served from the controller.
fn gpu_lab(prefix: &str, cloud_init: bool, extra: Vec<standin::Pkg>) -> Option<GpuLab> {
    if !testlab::require_root_or_skip() {
        return None;
    }
    for tool in ["dpkg-deb", "gpg", "gpgconf"] {
        if !on_path(tool) {
            skip(&format!("{tool} is not on PATH"));
            return None;
        }
    }
    if !ansible_bin_dir().join("ansible-playbook").is_file() {
        skip(&format!(
            "no ansible-playbook in {}",
            ansible_bin_dir().display()
        ));
        return None;
    }
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let lab =
        Lab::up(LabSpec::new(tmp.path().join("lab")).host(HOST, "10.231.0.61".parse().unwrap()))
            .expect("lab up");
    let mut repos = Repos::new(tmp.path(), &lab);
    let mut archive = driver_packages(DRIVER_V1);
    archive.extend(extra);
    repos.add("archive", &archive);
    let mut toolkit = toolkit_packages(TOOLKIT_PIN);
    toolkit.extend(toolkit_packages(TOOLKIT_NEWER));
    repos.add("toolkit/amd64", &toolkit);
    repos.serve(&lab);
    prepare_host(&lab, HOST, &repos, cloud_init);

    let inventory = tmp.path().join("inventory.yml");
    fs::write(
        &inventory,
        format!(
            "all:\n  children:\n    k3s_cluster:\n      children:\n        k3s_agents:\n          children:\n\
             \x20           gpu_workers:\n              hosts:\n                {HOST}: {{ansible_host: 10.231.0.61, em_role: gpu_worker}}\n"
        ),
    )
    .unwrap();
    let play = tmp.path().join("gpu-node.yml");
    fs::write(&play, GPU_PLAY).unwrap();
    let mut env = lab.ansible_env();
    env.push(("ANSIBLE_NOCOLOR".into(), "1".into()));
    env.push((
        "ANSIBLE_LOCAL_TEMP".into(),
        tmp.path().join("ansible-tmp").display().to_string(),
    ));
    Some(GpuLab {
        lab,
        repos,
        inventory,
        play,
        env,
        _tmp: tmp,
    })
}

impl GpuLab {
    /// `extra`: `name=value` pairs (as `-e`) and options such as `--check`.
    fn args(&self, playbook: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["-i".to_string(), self.inventory.display().to_string()];
        for e in extra {
            if !e.starts_with("--") {
                args.push("-e".into());
            }
            args.push((*e).to_string());
        }
        args.push(playbook.display().to_string());
        args
    }

    fn playbook(&self, playbook: &Path, extra: &[&str]) -> (Output, String, Duration) {
        let started = Instant::now();
        let out = run(self
            .lab
            .command(ansible_bin_dir().join("ansible-playbook"))
            .current_dir(repo_root())
            .args(self.args(playbook, extra))
            .envs(self.env.iter().map(|(k, v)| (k, v))));
        let t = text(&out);
        (out, t, started.elapsed())
    }

    /// The GPU play with the lab's boundaries: the fake sysfs and the local toolkit repository.
    fn gpu(&self, extra: &[&str]) -> (Output, String, Duration) {
        self.playbook(&self.play, &self.gpu_vars(extra))
    }

    fn gpu_vars<'a>(&self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&'a str> = vec![
            leak(format!("nvidia_gpu_sysfs_root={FAKE_SYSFS}")),
            leak(format!(
                "nvidia_gpu_toolkit_repo_url={}",
                self.repos.url("toolkit/$(ARCH)")
            )),
            leak(format!(
                "nvidia_gpu_toolkit_key_url={}",
                self.repos.url("gpgkey")
            )),
        ];
        v.extend_from_slice(extra);
        v
    }

    /// The GPU play, killed (the whole process group, as a lost terminal would) right after the
    /// driver install task reported: the driver is installed, nothing after it ran.
    fn gpu_interrupted_after_driver_install(&self, extra: &[&str]) -> String {
        let mut child = self
            .lab
            .command(ansible_bin_dir().join("ansible-playbook"))
            .current_dir(repo_root())
            .args(self.args(&self.play, &self.gpu_vars(extra)))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        let mut seen = String::new();
        let mut in_driver_task = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("TASK [") {
                in_driver_task = line.starts_with(DRIVER_TASK_PREFIX) && line.contains("driver]");
            } else if in_driver_task && line.starts_with("changed: [") {
                // SAFETY: signalling a process group this test created.
                unsafe { libc::killpg(pgid, libc::SIGKILL) };
                break;
            }
        }
        let _ = child.wait();
        assert!(
            in_driver_task,
            "the run ended before the driver install reported a change:\n{seen}"
        );
        seen
    }

    fn ssh_ok(&self, script: &str) -> String {
        ssh_ok(&self.lab, HOST, script)
    }

    /// Installed packages matching the dpkg-query pattern, with versions.
    fn installed(&self, pattern: &str) -> BTreeMap<String, String> {
        let out = ssh(
            &self.lab,
            HOST,
            &format!(
                "dpkg-query -W -f='${{db:Status-Abbrev}} ${{Package}} ${{Version}}\\n' '{pattern}'"
            ),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.as_bytes().get(1) == Some(&b'i'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.get(1)?.to_string(), f.get(2)?.to_string()))
            })
            .collect()
    }

    fn holds(&self) -> Vec<String> {
        self.ssh_ok("apt-mark showhold")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn boot_id(&self) -> String {
        self.ssh_ok("cat /proc/sys/kernel/random/boot_id")
    }
}

/// Extra-vars strings live for the whole test.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Per host: `ok`, `changed`, `failed`, ... from the last PLAY RECAP.
fn recap(output: &str) -> BTreeMap<String, u64> {
    let Some(start) = output.rfind("PLAY RECAP") else {
        return BTreeMap::new();
    };
    output[start..]
        .lines()
        .find_map(|l| l.split_once(" : ").filter(|(h, _)| h.trim() == HOST))
        .map(|(_, counts)| {
            counts
                .split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The result word (`ok`, `changed`, `skipping`, `fatal`) of the last run of a task.
fn task_result<'a>(output: &'a str, task: &str) -> Option<&'a str> {
    let header = output.rfind(&format!(" : {task}]"))?;
    output[header..].lines().skip(1).find_map(|l| {
        ["ok:", "changed:", "skipping:", "fatal:"]
            .into_iter()
            .find(|w| l.starts_with(w))
            .map(|w| w.trim_end_matches(':'))
    })
}

fn assert_succeeded(out: &Output, t: &str, what: &str) {
    let r = recap(t);
    assert!(
        out.status.success() && r.get("failed") == Some(&0),
        "{what} failed:\n{t}"
    );
}

fn assert_no_change(out: &Output, t: &str, what: &str) {
    assert_succeeded(out, t, what);
    assert_eq!(
        recap(t).get("changed"),
        Some(&0),
        "{what} must change nothing:\n{t}"
    );
}

/// Issue 10 point 5: every package task of the GPU play waits for cloud-init (a failed
/// cloud-init stops it with its status before any apt run) and for apt locks other apt runs
/// hold: longer than apt's default 60 s lock timeout, and the download lock apt-get does not
/// wait for by itself.
#[test]
fn gpu_play_waits_for_cloud_init_and_for_held_apt_locks() {
    let Some(g) = gpu_lab("em-gpu-apt-", true, Vec::new()) else {
        return;
    };

    // 1. cloud-init ends in an error: the play stops with cloud-init's status, no apt ran.
    start_cloud_init(&g.lab, HOST, 3, "error");
    let (out, t, _) = g.gpu(&[]);
    assert!(
        !out.status.success(),
        "a failed cloud-init must stop the play:\n{t}"
    );
    assert!(
        t.contains("cloud-init on lab-gpu-1 finished with an error")
            && t.contains("status: error")
            && t.contains("package_update_upgrade_install")
            && t.contains("/var/log/cloud-init.log"),
        "{t}"
    );
    assert!(
        apt_runs(&g.lab, HOST).is_empty(),
        "apt ran before cloud-init was done"
    );
    assert!(g.installed("*nvidia*").is_empty());

    // 2. A fresh clone: cloud-init's package_upgrade holds the locks for 20 s, then
    //    unattended-upgrades (waiting behind it) holds them 55 s more: longer than apt's
    //    default lock timeout of 60 s after cloud-init is done.
    start_cloud_init(&g.lab, HOST, 20, "done");
    hold_locks(&g.lab, HOST, "unattended-upgrades", "next", 55, &ALL_LOCKS);
    let (out, t, took) = g.gpu(&[]);
    assert_succeeded(&out, &t, "the GPU play behind cloud-init and held locks");
    let released: f64 = g
        .ssh_ok("cat /var/lib/em-test/unattended-upgrades.released")
        .parse()
        .unwrap();
    let runs = apt_runs(&g.lab, HOST);
    assert!(runs.iter().any(|(kind, _, _)| kind == "dpkg"), "{runs:?}");
    for (kind, at, cloud_init) in &runs {
        assert_eq!(
            cloud_init, "done",
            "apt ({kind}) ran while cloud-init was running: {runs:?}"
        );
        assert!(
            *at >= released,
            "apt ({kind}) ran at {at} while the locks were held until {released}"
        );
    }
    assert!(took >= Duration::from_secs(70), "took only {took:?}");
    assert!(
        g.installed("nvidia-utils-580-server")
            .contains_key("nvidia-utils-580-server")
    );
    eprintln!("GPU play behind cloud-init (20 s) and locks (75 s): {took:.1?}");

    // 3. apt-daily's download holds only the archives lock (apt-get does not wait for that one
    //    itself) while the toolkit moves to a new pin: the play retries and succeeds.
    hold_locks(
        &g.lab,
        HOST,
        "apt-daily",
        "now",
        45,
        &["/var/cache/apt/archives/lock"],
    );
    let newer = format!("nvidia_gpu_toolkit_version={TOOLKIT_NEWER}");
    let (out, t, _) = g.gpu(&[&newer]);
    assert_succeeded(&out, &t, "the toolkit upgrade behind the download lock");
    assert!(
        t.contains("FAILED - RETRYING: [lab-gpu-1]: Install the NVIDIA container toolkit"),
        "the download lock was never met:\n{t}"
    );
    let released: f64 = g
        .ssh_ok("cat /var/lib/em-test/apt-daily.released")
        .parse()
        .unwrap();
    let last = apt_runs(&g.lab, HOST);
    let (_, at, _) = last.iter().rev().find(|(k, _, _)| k == "dpkg").unwrap();
    assert!(
        *at >= released,
        "dpkg ran at {at}, the download lock was held until {released}"
    );
    for p in TOOLKIT {
        assert_eq!(
            g.installed(p).get(p).map(String::as_str),
            Some(TOOLKIT_NEWER),
            "{p}"
        );
    }

    // 4. Nothing left to do.
    let (out, t, _) = g.gpu(&[&newer]);
    assert_no_change(&out, &t, "the rerun");
}

/// Issue 10 point 10: the headless driver of the chosen flavour, held with its libraries; the
/// four toolkit packages at the pin; a reboot whenever the driver is installed but not loaded
/// (after an upgrade behind the role's back, after an interrupted run); a flavour switch only
/// on purpose; reruns change nothing.
#[test]
fn gpu_driver_is_held_pinned_reloaded_after_interruption_and_flavour_switches_on_purpose() {
    let Some(g) = gpu_lab("em-gpu-driver-", false, Vec::new()) else {
        return;
    };

    // 1. First run: headless proprietary driver, toolkit at the pin, holds, reboot, nvidia-smi.
    let boot0 = g.boot_id();
    let (out, t, took) = g.gpu(&[]);
    assert_succeeded(&out, &t, "the first GPU run");
    eprintln!("first GPU run {took:.1?}");
    let driver = g.installed("*nvidia*");
    for p in DRIVER_PROPRIETARY {
        assert_eq!(
            driver.get(p).map(String::as_str),
            Some(DRIVER_V1),
            "{p}: {driver:?}"
        );
    }
    for p in ["nvidia-driver-580-server", "libnvidia-gl-580-server"] {
        assert!(
            !driver.contains_key(p),
            "{p} (X) on a headless server: {driver:?}"
        );
    }
    for p in TOOLKIT {
        assert_eq!(
            driver.get(p).map(String::as_str),
            Some(TOOLKIT_PIN),
            "{p}: {driver:?}"
        );
    }
    let holds = g.holds();
    for p in DRIVER_PROPRIETARY.iter().chain(TOOLKIT.iter()) {
        assert!(holds.contains(&p.to_string()), "{p} not held: {holds:?}");
    }
    assert_eq!(task_result(&t, REBOOT_TASK), Some("changed"), "{t}");
    assert_ne!(g.boot_id(), boot0);
    assert!(g.ssh_ok("nvidia-smi -L").starts_with("GPU 0: "));
    assert!(g.ssh_ok("test -e /var/lib/em-test/k3s-agent-restarted && echo yes") == "yes");

    // 2. Rerun: nothing to do, no reboot; check mode agrees.
    let (out, t, _) = g.gpu(&[]);
    assert_no_change(&out, &t, "the rerun");
    let (out, t, _) = g.gpu(&["--check"]);
    assert_no_change(&out, &t, "the rerun in check mode");

    // 3. Time: the driver moved to a new version behind the role's back (a held package
    //    upgraded on purpose). The old module is still loaded: nvidia-smi reports the mismatch,
    //    and the rerun reboots although it installed nothing.
    g.repos.add("archive", &driver_packages(DRIVER_V2));
    g.ssh_ok(&format!(
        "apt-get update -qq && apt-get install -y -qq --allow-change-held-packages {} >/dev/null",
        DRIVER_PROPRIETARY.join(" ")
    ));
    let smi = ssh(&g.lab, HOST, "nvidia-smi -L");
    assert_eq!(smi.status.code(), Some(18), "{}", text(&smi));
    let (out, t, _) = g.gpu(&[]);
    assert_succeeded(&out, &t, "the run after the driver changed underneath");
    assert_eq!(task_result(&t, REBOOT_TASK), Some("changed"), "{t}");
    assert_eq!(
        g.ssh_ok(&format!("cat {FAKE_SYSFS}/module/nvidia/version")),
        DRIVER_V2.split('-').next().unwrap()
    );

    // 4. Another flavour is refused: nothing changes, the message says how to switch.
    let before = g.installed("*nvidia*");
    let (out, t, _) = g.gpu(&["nvidia_gpu_driver_flavour=open"]);
    assert!(
        !out.status.success(),
        "a flavour switch must be refused:\n{t}"
    );
    let purge = "apt-get purge -y nvidia-dkms-580-server nvidia-headless-580-server";
    assert!(
        t.contains("lab-gpu-1 has another NVIDIA driver installed (nvidia-dkms-580-server, nvidia-headless-580-server)")
            && t.contains("nvidia_gpu_driver_flavour=open")
            && t.contains("sudo apt-mark unhold $(apt-mark showhold | grep nvidia)")
            && t.contains(purge),
        "{t}"
    );
    assert_eq!(recap(&t).get("changed"), Some(&0), "{t}");
    assert_eq!(g.installed("*nvidia*"), before);

    // 5. The switch on purpose, as the message says; the old module unloads with the reboot.
    g.ssh_ok(&format!(
        "apt-mark unhold $(apt-mark showhold | grep nvidia) >/dev/null && {purge} -qq >/dev/null && \
         apt-get autoremove -y -qq >/dev/null"
    ));
    reboot_host(&g.lab, HOST);
    assert!(
        !ssh(&g.lab, HOST, &format!("test -e {FAKE_SYSFS}/module/nvidia"))
            .status
            .success()
    );

    // 6. A run interrupted right after the driver install: installed, not loaded.
    let open = "nvidia_gpu_driver_flavour=open";
    let seen = g.gpu_interrupted_after_driver_install(&[open]);
    assert!(
        g.installed("nvidia-headless-580-server-open")
            .contains_key("nvidia-headless-580-server-open"),
        "{seen}"
    );
    let smi = ssh(&g.lab, HOST, "nvidia-smi -L");
    assert_eq!(smi.status.code(), Some(9), "{}", text(&smi));

    // 7. The rerun recovers: reboot, then nvidia-smi works with the open module, held.
    let (out, t, _) = g.gpu(&[open]);
    assert_succeeded(&out, &t, "the rerun after the interrupted run");
    assert_eq!(task_result(&t, REBOOT_TASK), Some("changed"), "{t}");
    assert_eq!(
        g.ssh_ok(&format!("cat {FAKE_SYSFS}/module/nvidia/flavour")),
        "open"
    );
    assert!(g.ssh_ok("nvidia-smi -L").starts_with("GPU 0: "));
    let driver = g.installed("*nvidia*");
    assert!(!driver.contains_key("nvidia-dkms-580-server"), "{driver:?}");
    let holds = g.holds();
    for p in [
        "nvidia-headless-580-server-open",
        "nvidia-dkms-580-server-open",
        "nvidia-utils-580-server",
        "libnvidia-compute-580-server",
    ]
    .iter()
    .chain(TOOLKIT.iter())
    {
        assert!(driver.contains_key(*p), "{p} not installed: {driver:?}");
        assert!(holds.contains(&p.to_string()), "{p} not held: {holds:?}");
    }

    // 8. And nothing left to do.
    let (out, t, _) = g.gpu(&[open]);
    assert_no_change(&out, &t, "the rerun with the open flavour");
}

/// Issue 10 point 4 (node side): the OS upgrade runs only when asked for, after cloud-init and
/// behind held locks, never touches held packages (the NVIDIA holds), reboots only when
/// allowed, and a rerun changes nothing.
#[test]
fn os_upgrade_is_explicit_keeps_holds_and_reboots_only_when_allowed() {
    let Some(g) = gpu_lab("em-os-upgrade-", true, vec![kernel_package("6.8.0-40.40")]) else {
        return;
    };
    let os_upgrade = repo_root().join("ansible/playbooks/os-upgrade.yml");
    // The node as the GPU role leaves it: driver installed and held (no reboot needed here).
    g.ssh_ok(
        "apt-get update -qq && apt-get install -y -qq nvidia-headless-580-server nvidia-utils-580-server \
         linux-image-standin >/dev/null && apt-mark hold nvidia-headless-580-server nvidia-utils-580-server \
         nvidia-dkms-580-server libnvidia-compute-580-server >/dev/null && \
         rm -f /var/run/reboot-required /var/run/reboot-required.pkgs /var/lib/em-test/apt-order.log && \
         mkdir -p /var/lib/cloud-init-standin && echo done > /var/lib/cloud-init-standin/result",
    );

    // 1. Not asked for: nothing happens.
    g.repos.add("archive", &driver_packages(DRIVER_V2));
    g.repos.add("archive", &[kernel_package("6.8.0-41.41")]);
    let (out, t, _) = g.playbook(&os_upgrade, &[]);
    assert_no_change(&out, &t, "os-upgrade.yml without node_os_upgrade");
    assert_eq!(
        g.installed("linux-image-standin")["linux-image-standin"],
        "6.8.0-40.40"
    );
    assert!(
        apt_runs(&g.lab, HOST).is_empty(),
        "apt ran without node_os_upgrade"
    );

    // 2. Asked for, on a clone whose cloud-init still runs (10 s), after which apt-daily's
    //    download holds the archives lock (20 s): waits, upgrades what is not held, keeps the holds,
    //    does not reboot, says the node needs one.
    start_cloud_init(&g.lab, HOST, 10, "done");
    hold_locks(
        &g.lab,
        HOST,
        "apt-daily",
        "next",
        20,
        &["/var/cache/apt/archives/lock"],
    );
    let boot = g.boot_id();
    let (out, t, took) = g.playbook(&os_upgrade, &["node_os_upgrade=true"]);
    assert_succeeded(&out, &t, "the OS upgrade");
    eprintln!("OS upgrade behind cloud-init and the download lock: {took:.1?}");
    assert!(recap(&t)["changed"] >= 1, "{t}");
    assert!(
        t.contains("FAILED - RETRYING: [lab-gpu-1]: Upgrade every package that is not held"),
        "the download lock was never met:\n{t}"
    );
    assert_eq!(
        g.installed("linux-image-standin")["linux-image-standin"],
        "6.8.0-41.41"
    );
    let driver = g.installed("*nvidia*");
    for p in DRIVER_PROPRIETARY {
        assert_eq!(
            driver.get(p).map(String::as_str),
            Some(DRIVER_V1),
            "held {p} changed: {driver:?}"
        );
    }
    let released: f64 = g
        .ssh_ok("cat /var/lib/em-test/apt-daily.released")
        .parse()
        .unwrap();
    let runs = apt_runs(&g.lab, HOST);
    assert!(runs.iter().any(|(k, _, _)| k == "dpkg"), "{runs:?}");
    for (kind, at, cloud_init) in &runs {
        assert_eq!(
            cloud_init, "done",
            "apt ({kind}) ran while cloud-init was running: {runs:?}"
        );
        if kind == "dpkg" {
            assert!(
                *at >= released,
                "dpkg ran at {at}, the download lock was held until {released}"
            );
        }
    }
    assert_eq!(g.boot_id(), boot, "rebooted without node_os_upgrade_reboot");
    g.ssh_ok("test -e /var/run/reboot-required");
    assert!(
        t.contains(
            "lab-gpu-1 needs a reboot to use what the upgrade installed (linux-image-standin)"
        ) && t.contains("node_os_upgrade_reboot=true"),
        "{t}"
    );

    // 3. Rerun: nothing new, no reboot; check mode agrees.
    let (out, t, _) = g.playbook(&os_upgrade, &["node_os_upgrade=true"]);
    assert_no_change(&out, &t, "the OS upgrade rerun");
    let (out, t, _) = g.playbook(&os_upgrade, &["node_os_upgrade=true", "--check"]);
    assert_no_change(&out, &t, "the OS upgrade rerun in check mode");

    // 4. Reboot allowed: the node reboots (once), the flag is gone; then nothing to do.
    let allow = ["node_os_upgrade=true", "node_os_upgrade_reboot=true"];
    let (out, t, _) = g.playbook(&os_upgrade, &allow);
    assert_succeeded(&out, &t, "the OS upgrade with reboot");
    assert_eq!(recap(&t)["changed"], 1, "{t}");
    assert_ne!(g.boot_id(), boot, "no reboot");
    assert!(
        !ssh(&g.lab, HOST, "test -e /var/run/reboot-required")
            .status
            .success()
    );
    let (out, t, _) = g.playbook(&os_upgrade, &allow);
    assert_no_change(&out, &t, "the OS upgrade rerun with reboot allowed");
}

/// Issue 10: the docs name the images and node labels that the roles' manifests and verify
/// really apply (no lab needed).
#[test]
fn docs_name_the_gpu_images_and_labels_that_are_applied() {
    let root = repo_root();
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    let kube = read("crates/em-infra-core/src/kube/mod.rs");
    let constant = |name: &str| {
        let line = kube
            .lines()
            .find(|l| l.contains(&format!("const {name}: &str")))
            .unwrap_or_else(|| panic!("{name} not in kube/mod.rs"));
        line.split('"').nth(1).unwrap().to_string()
    };
    let defaults = read("ansible/roles/nvidia_gpu/defaults/main.yml");
    let plugin_image = defaults
        .lines()
        .find_map(|l| l.strip_prefix("nvidia_gpu_device_plugin_image: "))
        .unwrap()
        .trim()
        .to_string();
    let template = read("ansible/roles/nvidia_gpu/templates/em-infra-nvidia.yaml.j2");
    assert!(template.contains("image: {{ nvidia_gpu_device_plugin_image }}:"));
    let applied_images = [
        constant("DEFAULT_GPU_IMAGE"),
        constant("DEFAULT_SMOKE_IMAGE"),
        format!("{plugin_image}:<pinned>"),
    ];

    // The labels the roles set at registration: the server's literal one, the agent's from
    // em_role (its argument spec's choices, `_` -> `-`), and the GPU workers' presence label
    // that the device plugin's nodeSelector matches.
    let agent = read("ansible/roles/k3s_agent/tasks/main.yml");
    let server = read("ansible/roles/k3s_server/tasks/main.yml");
    assert!(agent.contains("'em-infra/role=' ~ (em_role | replace('_', '-'))"));
    assert!(server.contains("'em-infra/role=control-plane'"));
    assert!(agent.contains("'nvidia.com/gpu.present=true'"));
    assert!(template.contains("nvidia.com/gpu.present: \"true\""));
    let agent_spec = read("ansible/roles/k3s_agent/meta/argument_specs.yml");
    let choices = agent_spec
        .lines()
        .find_map(|l| l.trim().strip_prefix("choices: ["))
        .unwrap()
        .trim_end_matches(']');
    let mut role_values = vec!["control-plane".to_string()];
    role_values.extend(choices.split(", ").map(|c| c.replace('_', "-")));
    let labels: [(&str, Vec<String>); 2] = [
        ("em-infra/role", role_values),
        ("nvidia.com/gpu.present", vec!["true".to_string()]),
    ];

    let mut problems = Vec::new();
    let docs = String::from_utf8(
        std::process::Command::new("git")
            .args(["ls-files", "*.md"])
            .current_dir(&root)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for doc in docs.lines() {
        let body = read(doc);
        for (n, line) in body.lines().enumerate() {
            // Container images in the registry the GPU manifests and verify pull from.
            for start in line.match_indices("nvcr.io/").map(|(i, _)| i) {
                let image: String = line[start..]
                    .chars()
                    .take_while(|c| !matches!(c, '`' | ' ' | ')' | ',' | '"'))
                    .collect();
                if !applied_images.contains(&image) {
                    problems.push(format!(
                        "{doc}:{}: image {image} is not what em-infra applies ({applied_images:?})",
                        n + 1
                    ));
                }
            }
            // Node labels as `key=value` (a `<a|b>` value lists alternatives).
            for (key, values) in &labels {
                for (i, _) in line.match_indices(&format!("{key}=")) {
                    let value: String = line[i + key.len() + 1..]
                        .chars()
                        .take_while(|c| !matches!(c, '`' | ' ' | ')' | ',' | ';'))
                        .collect();
                    for v in value.trim_matches(['<', '>']).split('|') {
                        if !values.iter().any(|w| w == v) {
                            problems.push(format!(
                                "{doc}:{}: label {key}={v}; the roles set {key} only to {values:?}",
                                n + 1
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
