//! Stand-ins for the GPU and apt lab tests, each named as one: Debian packages with NVIDIA's
//! and Ubuntu's package names whose Description says STAND-IN, signed flat apt repositories
//! served from the lab's controller, and scripts on the lab host that play cloud-init's first
//! boot, a concurrent apt holding the locks, and the kernel loading the nvidia module at boot.
//!
//! The one boundary the role is told about is `nvidia_gpu_sysfs_root`: the lab host has no
//! NVIDIA GPU, so a boot unit writes a fake PCI device and, when the stand-in kernel module is
//! installed, its `module/nvidia/version` under `/run` (a tmpfs: a reboot "unloads" it, and the
//! next boot loads whatever is installed then), exactly as the kernel and udev do with /sys.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testlab::Lab;

use crate::support::sha256_of;

/// Driver versions of the stand-in packages (Ubuntu's version shape).
pub(crate) const DRIVER_V1: &str = "580.95.05-0ubuntu0.24.04.1";
pub(crate) const DRIVER_V2: &str = "580.105.08-0ubuntu0.24.04.1";
/// The role's default toolkit pin, and a newer version the repository also offers.
pub(crate) const TOOLKIT_PIN: &str = "1.18.1-1";
pub(crate) const TOOLKIT_NEWER: &str = "1.19.0-1";
/// Where the fake sysfs lives on the lab host (`nvidia_gpu_sysfs_root`).
pub(crate) const FAKE_SYSFS: &str = "/run/em-standin-sys";
/// The controller port the repositories are served on.
const PORT: u16 = 18091;

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One stand-in package.
pub(crate) struct Pkg {
    pub name: String,
    pub version: String,
    pub depends: Vec<String>,
    pub conflicts: Vec<String>,
    /// What the real package is, for the Description.
    pub what: String,
    /// `(path, mode, content)` of each file it installs.
    pub files: Vec<(String, u32, String)>,
    pub postinst: Option<String>,
}

impl Pkg {
    pub(crate) fn new(name: &str, version: &str, what: &str) -> Self {
        Pkg {
            name: name.into(),
            version: version.into(),
            depends: Vec::new(),
            conflicts: Vec::new(),
            what: what.into(),
            files: Vec::new(),
            postinst: None,
        }
    }

    pub(crate) fn depends(mut self, dep: &str) -> Self {
        self.depends.push(dep.into());
        self
    }

    pub(crate) fn conflicts(mut self, pkg: &str) -> Self {
        self.conflicts.push(pkg.into());
        self
    }

    pub(crate) fn file(mut self, path: &str, mode: u32, content: &str) -> Self {
        self.files.push((path.into(), mode, content.into()));
        self
    }

    pub(crate) fn postinst(mut self, script: &str) -> Self {
        self.postinst = Some(script.into());
        self
    }

    /// `dpkg-deb --build` into `out`; returns the .deb.
    fn build(&self, work: &Path, out: &Path) -> PathBuf {
        let root = work.join(format!("{}_{}", self.name, self.version));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("DEBIAN")).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: all\nMaintainer: em-infra tests <tests@em-infra.invalid>\n\
             Section: misc\nPriority: optional\n",
            self.name, self.version
        );
        if !self.depends.is_empty() {
            control.push_str(&format!("Depends: {}\n", self.depends.join(", ")));
        }
        if !self.conflicts.is_empty() {
            control.push_str(&format!("Conflicts: {}\n", self.conflicts.join(", ")));
        }
        control.push_str(&format!(
            "Description: STAND-IN for em-infra's tests, not the real package\n {}\n",
            self.what
        ));
        fs::write(root.join("DEBIAN/control"), control).unwrap();
        if let Some(script) = &self.postinst {
            let p = root.join("DEBIAN/postinst");
            fs::write(&p, script).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (path, mode, content) in &self.files {
            let p = root.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, content).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        }
        let deb = out.join(format!("{}_{}_all.deb", self.name, self.version));
        run_ok(
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zgzip", "--build"])
                .arg(&root)
                .arg(&deb),
        );
        deb
    }
}

/// The nvidia-smi stand-in: works only when the stand-in module is loaded at the library's
/// version. Messages and exit codes are NVML's (9 NVML_ERROR_DRIVER_NOT_LOADED, 18
/// NVML_ERROR_LIB_RM_VERSION_MISMATCH).
fn nvidia_smi_script() -> String {
    format!(
        r#"#!/bin/sh
# STAND-IN for nvidia-smi (em-infra tests), not NVIDIA's.
mod={FAKE_SYSFS}/module/nvidia/version
lib=$(cat /usr/lib/em-infra-standin/libnvidia-ml.version)
if [ ! -r "$mod" ]; then
  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
  exit 9
fi
if [ "$(cat "$mod")" != "$lib" ]; then
  echo "Failed to initialize NVML: Driver/library version mismatch"
  echo "NVML library version: $lib"
  exit 18
fi
echo "GPU 0: NVIDIA Stand-In GPU (UUID: GPU-00000000-0000-0000-0000-000000000000)"
"#
    )
}

fn upstream(version: &str) -> &str {
    version.split('-').next().unwrap()
}

/// Ubuntu's server driver packages of branch 580 at `v`, both flavours, and the full
/// (X) driver, modelled on nvidia-graphics-drivers-580-server: the metapackages depend on
/// the kernel module and libraries at exactly their own version.
pub(crate) fn driver_packages(v: &str) -> Vec<Pkg> {
    let up = upstream(v);
    let exact = |p: &str| format!("{p} (= {v})");
    let module = |flavour: &str, other: &str| {
        let name = if flavour == "open" {
            "nvidia-dkms-580-server-open"
        } else {
            "nvidia-dkms-580-server"
        };
        Pkg::new(
            name,
            v,
            &format!("NVIDIA DKMS kernel module ({flavour}); the lab's boot unit loads it"),
        )
        .conflicts(other)
        .file(
            "/usr/lib/em-infra-standin/nvidia.ko.version",
            0o644,
            &format!("{up} {flavour}\n"),
        )
    };
    vec![
        Pkg::new(
            "libnvidia-compute-580-server",
            v,
            "NVIDIA libcompute package",
        )
        .file(
            "/usr/lib/em-infra-standin/libnvidia-ml.version",
            0o644,
            &format!("{up}\n"),
        ),
        Pkg::new(
            "nvidia-utils-580-server",
            v,
            "NVIDIA Server Driver support binaries (nvidia-smi)",
        )
        .depends(&exact("libnvidia-compute-580-server"))
        .file("/usr/bin/nvidia-smi", 0o755, &nvidia_smi_script()),
        module("proprietary", "nvidia-dkms-580-server-open"),
        module("open", "nvidia-dkms-580-server"),
        Pkg::new(
            "nvidia-headless-580-server",
            v,
            "NVIDIA headless metapackage",
        )
        .depends(&exact("nvidia-dkms-580-server"))
        .depends(&exact("libnvidia-compute-580-server")),
        Pkg::new(
            "nvidia-headless-580-server-open",
            v,
            "NVIDIA headless metapackage (open kernel module)",
        )
        .depends(&exact("nvidia-dkms-580-server-open"))
        .depends(&exact("libnvidia-compute-580-server")),
        Pkg::new(
            "libnvidia-gl-580-server",
            v,
            "NVIDIA OpenGL/GLX/EGL/GLES libraries (X; a server does not need them)",
        ),
        Pkg::new(
            "nvidia-driver-580-server",
            v,
            "NVIDIA Server Driver metapackage (with X)",
        )
        .depends(&exact("nvidia-headless-580-server"))
        .depends(&exact("nvidia-utils-580-server"))
        .depends(&exact("libnvidia-gl-580-server")),
    ]
}

/// The container toolkit's four packages at `v`, with upstream's dependency shape: the toolkit
/// wants its base at exactly its version but the tools only at >= (so pinning the toolkit
/// alone lets the tools and the library move on).
pub(crate) fn toolkit_packages(v: &str) -> Vec<Pkg> {
    let up = upstream(v);
    let tool = |name: &str| {
        format!(
            "#!/bin/sh\n# STAND-IN for {name} (em-infra tests), not NVIDIA's.\necho \"{name} stand-in {up}\"\n"
        )
    };
    vec![
        Pkg::new(
            "libnvidia-container1",
            v,
            "NVIDIA container runtime library",
        )
        .file(
            "/usr/lib/em-infra-standin/libnvidia-container1.version",
            0o644,
            &format!("{up}\n"),
        ),
        Pkg::new(
            "libnvidia-container-tools",
            v,
            "NVIDIA container runtime library (command-line tools)",
        )
        .depends(&format!("libnvidia-container1 (>= {v})"))
        .file(
            "/usr/bin/nvidia-container-cli",
            0o755,
            &tool("nvidia-container-cli"),
        ),
        Pkg::new(
            "nvidia-container-toolkit-base",
            v,
            "NVIDIA Container Toolkit Base",
        )
        .file(
            "/usr/bin/nvidia-container-runtime",
            0o755,
            &tool("nvidia-container-runtime"),
        )
        .file("/usr/bin/nvidia-ctk", 0o755, &tool("nvidia-ctk")),
        Pkg::new("nvidia-container-toolkit", v, "NVIDIA Container toolkit")
            .depends(&format!("nvidia-container-toolkit-base (= {v})"))
            .depends(&format!("libnvidia-container-tools (>= {v})"))
            .depends("libnvidia-container-tools (<< 2.0.0)")
            .file(
                "/usr/bin/nvidia-container-runtime-hook",
                0o755,
                &tool("nvidia-container-runtime-hook"),
            ),
    ]
}

/// A kernel-image stand-in: its postinst asks for a reboot the way Ubuntu's kernel packages
/// do (/usr/share/update-notifier/notify-reboot-required writes these two files).
pub(crate) fn kernel_package(v: &str) -> Pkg {
    Pkg::new(
        "linux-image-standin",
        v,
        "a kernel image: asks for a reboot when installed",
    )
    .postinst(
        "#!/bin/sh\nset -e\ntouch /var/run/reboot-required\n\
         echo linux-image-standin >> /var/run/reboot-required.pkgs\n",
    )
}

/// Signed flat apt repositories under one directory, served over HTTP from the controller.
pub(crate) struct Repos {
    work: PathBuf,
    www: PathBuf,
    gnupg: PathBuf,
    server: Option<Child>,
    base_url: String,
}

impl Repos {
    /// A signing key (ed25519, no passphrase) in a private GnuPG home.
    pub(crate) fn new(tmp: &Path, lab: &Lab) -> Self {
        let gnupg = tmp.join("gnupg");
        fs::create_dir_all(&gnupg).unwrap();
        fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
        let www = tmp.join("www");
        fs::create_dir_all(&www).unwrap();
        let repos = Repos {
            work: tmp.join("debs"),
            www,
            gnupg,
            server: None,
            base_url: format!("http://{}:{PORT}", lab.controller_addr()),
        };
        run_ok(repos.gpg().args([
            "--quick-gen-key",
            "em-infra test stand-in repositories",
            "ed25519",
            "sign",
            "never",
        ]));
        let key = run_ok(repos.gpg().args(["--armor", "--export"]));
        fs::write(repos.key_path(), format!("{key}\n")).unwrap();
        repos
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(&self.gnupg).args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        c
    }

    /// The armored public key, also served as `<url>/gpgkey`.
    pub(crate) fn key_path(&self) -> PathBuf {
        self.www.join("gpgkey")
    }

    pub(crate) fn url(&self, repo: &str) -> String {
        format!("{}/{repo}", self.base_url)
    }

    /// Builds `pkgs` into the flat repository `repo` (e.g. `archive`, `toolkit/amd64`) and
    /// republishes its Packages and signed InRelease.
    pub(crate) fn add(&self, repo: &str, pkgs: &[Pkg]) {
        let dir = self.www.join(repo);
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(&self.work).unwrap();
        for p in pkgs {
            p.build(&self.work, &dir);
        }
        self.publish(&dir);
    }

    fn publish(&self, dir: &Path) {
        let mut debs: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        let mut packages = String::new();
        for deb in &debs {
            let control = run_ok(Command::new("dpkg-deb").arg("-f").arg(deb));
            packages.push_str(&format!(
                "{control}\nFilename: ./{}\nSize: {}\nSHA256: {}\n\n",
                deb.file_name().unwrap().to_string_lossy(),
                fs::metadata(deb).unwrap().len(),
                sha256_of(deb)
            ));
        }
        let index = dir.join("Packages");
        fs::write(&index, &packages).unwrap();
        let date = run_ok(
            Command::new("date")
                .env("LC_ALL", "C")
                .args(["-u", "+%a, %d %b %Y %H:%M:%S UTC"]),
        );
        let release = format!(
            "Origin: em-infra tests\nLabel: em-infra stand-in repository (not a real archive)\n\
             Date: {date}\nArchitectures: amd64 arm64 all\nSHA256:\n {} {} Packages\n",
            sha256_of(&index),
            packages.len()
        );
        fs::write(dir.join("Release"), release).unwrap();
        run_ok(
            self.gpg()
                .arg("--output")
                .arg(dir.join("InRelease"))
                .arg("--clearsign")
                .arg(dir.join("Release")),
        );
    }

    /// Serves the repositories from the controller namespace (a process the test owns).
    pub(crate) fn serve(&mut self, lab: &Lab) {
        let child = lab
            .command("python3")
            .args(["-m", "http.server", &PORT.to_string(), "--bind"])
            .arg(lab.controller_addr().to_string())
            .arg("--directory")
            .arg(&self.www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the repository server");
        self.server = Some(child);
        let probe = format!(
            "import urllib.request; urllib.request.urlopen('{}/gpgkey', timeout=1)",
            self.base_url
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !run(lab.command("python3").args(["-c", &probe]))
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "the repository server did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Repos {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // gpg started an agent for this home; it must not outlive the test.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.gnupg)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// Writes `content` to `path` on `host` (mode `mode`, parents created).
pub(crate) fn put(lab: &Lab, host: &str, path: &str, mode: &str, content: &str) {
    let mut child = lab
        .ssh(host)
        .arg(format!("install -D -m {mode} /dev/stdin {path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "writing {path} on {host}: {}",
        text(&out)
    );
}

pub(crate) fn ssh(lab: &Lab, host: &str, script: &str) -> Output {
    run(lab.ssh(host).arg(script))
}

pub(crate) fn ssh_ok(lab: &Lab, host: &str, script: &str) -> String {
    let out = ssh(lab, host, script);
    assert!(out.status.success(), "on {host}: {script}\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The boot unit that plays the kernel for the fake GPU: an NVIDIA PCI device (and an Intel
/// one) in the fake sysfs, and the nvidia module "loaded" at boot when one is installed.
const FAKE_GPU_BOOT: &str = r#"#!/bin/sh
# TEST STAND-IN (em-infra tests): what the kernel and udev do at boot on a VM with an NVIDIA GPU
# passed through: the PCI device appears, and an installed nvidia module is loaded.
set -eu
sys=/run/em-standin-sys
mkdir -p "$sys/bus/pci/devices/0000:01:00.0" "$sys/bus/pci/devices/0000:00:1f.0"
echo 0x10de > "$sys/bus/pci/devices/0000:01:00.0/vendor"
echo 0x8086 > "$sys/bus/pci/devices/0000:00:1f.0/vendor"
if [ -r /usr/lib/em-infra-standin/nvidia.ko.version ]; then
  mkdir -p "$sys/module/nvidia"
  cut -d' ' -f1 /usr/lib/em-infra-standin/nvidia.ko.version > "$sys/module/nvidia/version"
  cut -d' ' -f2 /usr/lib/em-infra-standin/nvidia.ko.version > "$sys/module/nvidia/flavour"
fi
"#;

const FAKE_GPU_UNIT: &str = "[Unit]\nDescription=TEST STAND-IN: fake NVIDIA GPU and module loading (em-infra tests)\n\
Before=ssh.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
ExecStart=/usr/local/lib/em-infra-test/fake-gpu-boot\n\n[Install]\nWantedBy=multi-user.target\n";

/// Holds apt's and dpkg's locks the way a running apt does: fcntl write locks (apt-pkg's
/// GetLock in contrib/fileutl.cc uses F_SETLK with F_WRLCK; Python's lockf is the same call).
/// `now` takes them at once (or fails), `next` waits for the apt holding them to finish, as a
/// second apt would. Writes `<tag>.waiting` at once, `<tag>.held` once it holds them and
/// `<tag>.released` (the time) just before letting go. Under /var/lib: a reboot keeps them.
const HOLD_LOCKS: &str = r#"#!/usr/bin/python3
# TEST STAND-IN (em-infra tests): another apt (cloud-init's package_upgrade, unattended-upgrades,
# apt-daily's download) holding apt/dpkg locks for a while.
import fcntl, os, sys, time
secs, tag, mode, locks = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
state = "/var/lib/em-test"
os.makedirs(state, exist_ok=True)
open(f"{state}/{tag}.waiting", "w").close()
fds = []
for path in locks:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.lockf(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if mode == "now" else 0))
    fds.append(fd)
with open(f"{state}/{tag}.held", "w") as f:
    f.write(str(time.time()))
time.sleep(secs)
with open(f"{state}/{tag}.released", "w") as f:
    f.write(str(time.time()))
for fd in fds:
    os.close(fd)
"#;

/// `cloud-init` itself: only `status [--wait] [--long]`, with cloud-init's output and exit
/// codes (docs: explanation/failure_states, return_codes: 0 done, 1 error, 2 degraded done).
const CLOUD_INIT: &str = r#"#!/bin/sh
# STAND-IN for cloud-init (em-infra tests), not cloud-init: only `status`.
state=/var/lib/cloud-init-standin
[ "${1:-}" = status ] || { echo "cloud-init stand-in: only 'status' is implemented" >&2; exit 3; }
wait=no; long=no
for a in "$@"; do case "$a" in --wait) wait=yes ;; --long) long=yes ;; esac; done
if [ "$wait" = yes ]; then
  while [ ! -e "$state/result" ]; do printf .; sleep 1; done
  echo
fi
if [ ! -e "$state/result" ]; then echo "status: running"; exit 0; fi
case "$(cat "$state/result")" in
  done) echo "status: done"; exit 0 ;;
  degraded) echo "status: degraded done"; exit 2 ;;
  *)
    echo "status: error"
    if [ "$long" = yes ]; then
      echo "extended_status: error"
      echo "errors:"
      echo "	- ('package_update_upgrade_install', ProcessExecutionError('apt-get dist-upgrade exited 100'))"
    fi
    exit 1 ;;
esac
"#;

/// cloud-init's first boot: package_upgrade holds apt's locks for a while, then the final
/// stage ends with `result` (what `status` reports).
const CLOUD_INIT_BOOT: &str = r#"#!/bin/sh
# TEST STAND-IN (em-infra tests): cloud-init's first boot on a fresh clone.
set -eu
state=/var/lib/cloud-init-standin
mkdir -p "$state"
rm -f "$state/result"
/usr/local/lib/em-infra-test/hold-apt-locks "$1" cloud-init now /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock \
  /var/lib/apt/lists/lock /var/cache/apt/archives/lock
echo "$2" > "$state/result"
"#;

/// Records each apt run (update, dpkg) with the time and cloud-init's state at that moment.
const APT_ORDER: &str = r#"#!/bin/sh
# TEST PROBE (em-infra tests): apt's Pre-Invoke hooks call it.
mkdir -p /var/lib/em-test
echo "$1 $(date +%s.%N) $(cat /var/lib/cloud-init-standin/result 2>/dev/null || echo running)" >> /var/lib/em-test/apt-order.log
"#;

/// Prepares the lab host: offline (the Debian mirrors are unreachable), the stand-in archive
/// as its package source, the fake GPU at boot, the lock holder, the apt order probe and
/// (with `cloud_init`) the cloud-init stand-in.
pub(crate) fn prepare_host(lab: &Lab, host: &str, repos: &Repos, cloud_init: bool) {
    let key = fs::read_to_string(repos.key_path()).unwrap();
    put(
        lab,
        host,
        "/etc/apt/keyrings/em-standin-archive.asc",
        "0644",
        &key,
    );
    put(
        lab,
        host,
        "/etc/apt/sources.list.d/em-standin-archive.list",
        "0644",
        &format!(
            "# TEST STAND-IN for the Ubuntu archive (em-infra tests)\n\
             deb [signed-by=/etc/apt/keyrings/em-standin-archive.asc] {} ./\n",
            repos.url("archive")
        ),
    );
    let lib = "/usr/local/lib/em-infra-test";
    put(
        lab,
        host,
        &format!("{lib}/fake-gpu-boot"),
        "0755",
        FAKE_GPU_BOOT,
    );
    put(
        lab,
        host,
        "/etc/systemd/system/em-infra-test-fake-gpu.service",
        "0644",
        FAKE_GPU_UNIT,
    );
    put(
        lab,
        host,
        &format!("{lib}/hold-apt-locks"),
        "0755",
        HOLD_LOCKS,
    );
    put(lab, host, &format!("{lib}/apt-order"), "0755", APT_ORDER);
    put(
        lab,
        host,
        "/etc/apt/apt.conf.d/99em-test-order",
        "0644",
        &format!(
            "APT::Update::Pre-Invoke {{ \"{lib}/apt-order update\"; }};\n\
             DPkg::Pre-Invoke {{ \"{lib}/apt-order dpkg\"; }};\n"
        ),
    );
    if cloud_init {
        put(lab, host, "/usr/bin/cloud-init", "0755", CLOUD_INIT);
        put(
            lab,
            host,
            &format!("{lib}/cloud-init-boot"),
            "0755",
            CLOUD_INIT_BOOT,
        );
    }
    ssh_ok(
        lab,
        host,
        "mv /etc/apt/sources.list /etc/apt/sources.list.debian-unreachable && \
         systemctl daemon-reload && systemctl enable --now em-infra-test-fake-gpu.service",
    );
}

/// Starts cloud-init's stand-in first boot: holds apt's locks `secs` seconds, then reports
/// `result`. Returns once the locks are held.
pub(crate) fn start_cloud_init(lab: &Lab, host: &str, secs: u32, result: &str) {
    ssh_ok(
        lab,
        host,
        &format!(
            "rm -f /var/lib/em-test/cloud-init.* && systemd-run --quiet --collect --unit=em-test-cloud-init-{} \
             /usr/local/lib/em-infra-test/cloud-init-boot {secs} {result}",
            std::process::id()
        ),
    );
    wait_for_file(lab, host, "/var/lib/em-test/cloud-init.held");
}

/// Starts another apt's lock holding (`tag`) of `locks` for `secs` seconds: `now` (returns once
/// it holds them) or `next` (it waits for the current holder; returns at once).
pub(crate) fn hold_locks(lab: &Lab, host: &str, tag: &str, mode: &str, secs: u32, locks: &[&str]) {
    ssh_ok(
        lab,
        host,
        &format!(
            "rm -f /var/lib/em-test/{tag}.* && systemd-run --quiet --collect --unit=em-test-{tag} \
             /usr/local/lib/em-infra-test/hold-apt-locks {secs} {tag} {mode} {}",
            locks.join(" ")
        ),
    );
    let marker = if mode == "now" { "held" } else { "waiting" };
    wait_for_file(lab, host, &format!("/var/lib/em-test/{tag}.{marker}"));
}

fn wait_for_file(lab: &Lab, host: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ssh(lab, host, &format!("test -e {path}")).status.success() {
        assert!(Instant::now() < deadline, "{path} did not appear on {host}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(kind, epoch seconds, cloud-init state)` of every apt run the probe recorded.
pub(crate) fn apt_runs(lab: &Lab, host: &str) -> Vec<(String, f64, String)> {
    let out = ssh(
        lab,
        host,
        "cat /var/lib/em-test/apt-order.log 2>/dev/null; true",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.to_string(),
                f.next()?.parse().ok()?,
                f.next()?.to_string(),
            ))
        })
        .collect()
}

/// Reboots `host` itself (as an operator would) and waits until it is back with a new boot id.
pub(crate) fn reboot_host(lab: &Lab, host: &str) {
    let before = ssh_ok(lab, host, "cat /proc/sys/kernel/random/boot_id");
    let _ = ssh(lab, host, "systemctl reboot");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = ssh(lab, host, "cat /proc/sys/kernel/random/boot_id");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !id.is_empty() && id != before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{host} did not come back from its reboot"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    ssh_ok(lab, host, "systemctl is-system-running --wait || true");
}
