//! `em-infra runs bundle`: one `.tar.gz` with what a bug report about a run needs — the run's
//! records, the environment's `state.json` and lock, the tool versions, the tfvars and the
//! inventory — with every secret redacted.
//!
//! Every file goes through [`Scrubber::scrub`] before it enters the archive:
//! - the secrets em-infra knows by value: the Proxmox API token (whole, and its secret part after
//!   `=`) and passwords from the environment ([`Redactor::from_env`]), the k3s join token
//!   ([`Environment::token_file`]) and the credentials in the cluster's kubeconfig;
//! - private key blocks (`-----BEGIN … PRIVATE KEY-----` to `-----END … PRIVATE KEY-----`),
//!   replaced whole, also when only their end is in a file (a log's tail);
//! - the values of credential fields wherever they appear: `client-key-data`,
//!   `client-certificate-data`, `token`, `password` (`key: value`, `key=value`, quoted or not).
//!
//! Never included: Terraform plan files (`plan.tfplan`: binary, and a plan may hold secrets), the
//! kubeconfig and the k3s token file. The archive is written atomically with mode `0600`.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::edit::expr::Expression;
use serde::Serialize;

use crate::config::hclsrc::{SourceFile, object_key_str};
use crate::config::{Environment, Project};
use crate::engine::lock;
use crate::engine::runs::{RunEntry, find_run, list_runs, runs_dir};
use crate::engine::state::EnvState;
use crate::failure::{FailureKind, bad_input, kind_of};
use crate::runner::{self, Capture, Cmd, Interrupt, REDACTED, Redactor};

mod scrub;
pub use scrub::{Scrubber, redact_credential_fields, redact_private_keys};

/// `<state_dir>/bundles`: where bundles go unless `--output` says otherwise.
pub const BUNDLES_DIR: &str = "bundles";
/// What a private key block becomes.
pub const PRIVATE_KEY_REDACTED: &str = "[REDACTED PRIVATE KEY]";
/// How long a tool gets to print its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an unreadable lock file's content a bundle shows.
const LOCK_TEXT_LIMIT: usize = 4096;

/// `em-infra runs bundle`.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// Environment name or directory.
    pub env: String,
    /// Run id or unique prefix; `None`: the newest run.
    pub run_id: Option<String>,
    /// Archive path, or an existing directory to put `<run-id>.tar.gz` in; `None`:
    /// `<state_dir>/bundles/<run-id>.tar.gz`.
    pub output: Option<PathBuf>,
    /// em-infra's version, as the binary reports it.
    pub version: String,
}

/// One file in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleEntry {
    /// Path inside the archive (`em-infra-bundle-<run-id>/run/events.jsonl`).
    pub name: String,
    /// Size in bytes, after redaction.
    pub size: u64,
    /// Whether redaction changed the file.
    pub redacted: bool,
}

/// Something the bundle does not hold, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// The file (relative to the run directory or the environment), or what is missing.
    pub name: String,
    pub why: String,
}

/// A written bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Bundle {
    /// The archive.
    pub path: PathBuf,
    pub run_id: String,
    /// In archive order; `README.txt` first.
    pub entries: Vec<BundleEntry>,
    /// Files not included and information that was not available.
    pub left_out: Vec<LeftOut>,
}

/// Write the bundle of one run (default: the newest) of `opts.env`.
pub fn bundle(project: &Project, opts: &BundleOptions) -> anyhow::Result<Bundle> {
    let env = project.environment(&opts.env)?;
    let runs = list_runs(&env.state_dir)?;
    let run = match &opts.run_id {
        Some(id) => find_run(&runs, id, &env)?,
        None => runs.first().ok_or_else(|| {
            bad_input(format!(
                "no runs yet for environment {} (in {}): nothing to bundle; start one with `em-infra up`",
                env.name,
                runs_dir(&env.state_dir).display()
            ))
        })?,
    };
    let path = output_path(&env, &run.run_id, opts.output.as_deref())?;
    let scrubber = Scrubber::for_environment(&env);
    let mut contents = Contents::new(&scrubber);

    add_run_dir(&mut contents, &run.dir, &run.dir, "run")?;
    let versions = ToolVersions::collect(project, &env, &opts.version);
    contents.add_text(
        "versions.txt",
        "em-infra's and the tools' versions, and the pinned ones",
        &versions.render(),
        None,
    );
    add_environment(&mut contents, &env)?;

    let top = format!("em-infra-bundle-{}", run.run_id);
    let readme = readme(&env, run, &contents, &opts.version);
    contents.items.insert(
        0,
        Item {
            name: "README.txt".into(),
            about: String::new(),
            bytes: readme.into_bytes(),
            redacted: false,
            mtime: now_secs(),
        },
    );
    let bytes = archive(&top, &contents.items)?;
    crate::fsutil::write_secret(&path, &bytes)?;
    Ok(Bundle {
        path,
        run_id: run.run_id.clone(),
        entries: contents
            .items
            .iter()
            .map(|i| BundleEntry {
                name: format!("{top}/{}", i.name),
                size: i.bytes.len() as u64,
                redacted: i.redacted,
            })
            .collect(),
        left_out: contents.left_out,
    })
}

/// Where the archive goes: `--output` (a file, or a directory for `<run-id>.tar.gz`), else
/// `<state_dir>/bundles/<run-id>.tar.gz` (the directory created with mode 0700).
fn output_path(env: &Environment, run_id: &str, output: Option<&Path>) -> anyhow::Result<PathBuf> {
    let name = format!("{run_id}.tar.gz");
    match output {
        None => {
            let dir = env.state_dir.join(BUNDLES_DIR);
            crate::fsutil::ensure_private_dir(&dir)?;
            Ok(dir.join(name))
        }
        Some(dir) if dir.is_dir() => Ok(dir.join(name)),
        Some(file) => {
            let parent = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(bad_input(format!(
                    "--output {}: the directory {} does not exist; create it or choose another path",
                    file.display(),
                    parent.display()
                )));
            }
            Ok(file.to_path_buf())
        }
    }
}

/// One file for the archive, already redacted.
#[derive(Debug)]
struct Item {
    /// Relative to the archive's top directory.
    name: String,
    /// One line for the README.
    about: String,
    bytes: Vec<u8>,
    redacted: bool,
    mtime: u64,
}

/// What goes into the archive, collected before it is written (the README lists it).
struct Contents<'a> {
    scrubber: &'a Scrubber,
    items: Vec<Item>,
    left_out: Vec<LeftOut>,
}

impl<'a> Contents<'a> {
    fn new(scrubber: &'a Scrubber) -> Self {
        Contents {
            scrubber,
            items: Vec::new(),
            left_out: Vec::new(),
        }
    }

    /// Add `text`, redacted, as `name`.
    fn add_text(&mut self, name: &str, about: &str, text: &str, mtime: Option<u64>) {
        let scrubbed = self.scrubber.scrub(text);
        self.items.push(Item {
            name: name.to_string(),
            about: about.to_string(),
            redacted: scrubbed != text,
            bytes: scrubbed.into_bytes(),
            mtime: mtime.unwrap_or_else(now_secs),
        });
    }

    /// Add the file at `path`, redacted, as `name`. Bytes that are not UTF-8 become U+FFFD, so
    /// that no secret hides from the redaction in a binary file.
    fn add_file(&mut self, name: &str, about: &str, path: &Path) -> anyhow::Result<()> {
        let bytes = fs_err::read(path)?;
        let mtime = fs_err::metadata(path)
            .ok()
            .and_then(|m| u64::try_from(m.mtime()).ok());
        self.add_text(name, about, &String::from_utf8_lossy(&bytes), mtime);
        Ok(())
    }

    fn leave_out(&mut self, name: impl Into<String>, why: impl Into<String>) {
        self.left_out.push(LeftOut {
            name: name.into(),
            why: why.into(),
        });
    }
}

fn now_secs() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}

/// Why a file of a run directory never goes into a bundle.
fn excluded(name: &str) -> Option<&'static str> {
    if name.ends_with(".tfplan") {
        Some("a binary Terraform plan, which may hold secrets")
    } else if name == "kubeconfig" {
        Some("the cluster's credentials")
    } else if name == "k3s-token" {
        Some("the cluster's join token")
    } else {
        None
    }
}

/// Every regular file under `dir` (sorted, recursively), as `<prefix>/<relative path>`; symbolic
/// links are not followed.
fn add_run_dir(
    contents: &mut Contents<'_>,
    root: &Path,
    dir: &Path,
    prefix: &str,
) -> anyhow::Result<()> {
    let mut entries: Vec<_> = fs_err::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs_err::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            add_run_dir(contents, root, &path, prefix)?;
        } else if !kind.is_file() {
            contents.leave_out(format!("{prefix}/{relative}"), "not a regular file");
        } else if let Some(why) = excluded(&name) {
            contents.leave_out(format!("{prefix}/{relative}"), why);
        } else {
            let about = describe_run_file(&name);
            contents.add_file(&format!("{prefix}/{relative}"), &about, &path)?;
        }
    }
    Ok(())
}

/// One line about a file of a run directory.
fn describe_run_file(name: &str) -> String {
    match name {
        "events.jsonl" => "every event of the run, one JSON object a line".into(),
        "summary.json" => "the run's record: stages, results, durations, exit codes".into(),
        "plan-summary.txt" | "plan-summary.json" => {
            "what the Terraform plan changes, per node".into()
        }
        "planned-nodes.txt" => "the nodes the tfvars describe (preflight)".into(),
        "inventory.json" => "the Ansible inventory the configure stage used".into(),
        "nodes.json" => "the nodes as the verify stage found them".into(),
        _ => match name.strip_suffix(".log") {
            Some(stage) => format!("the {stage} stage's log: the commands it ran and their output"),
            None => "a file of the run directory".into(),
        },
    }
}

/// The environment's `state.json`, lock, tfvars and inventory.
fn add_environment(contents: &mut Contents<'_>, env: &Environment) -> anyhow::Result<()> {
    let state = EnvState::path(&env.state_dir);
    if state.is_file() {
        contents.add_file(
            "env/state.json",
            "the environment's recorded stage results",
            &state,
        )?;
    } else {
        contents.leave_out("state.json", format!("{} does not exist", state.display()));
    }

    contents.add_text(
        "env/lock.json",
        "the environment's lock: its holder's record, or that none is held",
        &lock_report(env),
        None,
    );

    let tfvars = env.default_tfvars();
    match tfvars.file_name() {
        Some(file) if tfvars.is_file() => {
            let name = format!("env/{}", file.to_string_lossy());
            contents.add_file(&name, "the tfvars the environment runs with", &tfvars)?;
        }
        _ => contents.leave_out(
            "tfvars",
            format!(
                "neither terraform.tfvars nor terraform.tfvars.example in {}",
                env.dir.display()
            ),
        ),
    }

    let tfstate = env.tfstate();
    if !tfstate.is_file() {
        contents.leave_out(
            "inventory",
            format!(
                "no Terraform state at {} (nothing provisioned)",
                tfstate.display()
            ),
        );
    } else {
        match crate::inventory::document(&tfstate, None) {
            Ok(doc) => contents.add_text(
                "env/inventory.json",
                "the inventory from the Terraform state now (`em-infra inventory --list`)",
                &format!("{}\n", serde_json::to_string_pretty(&doc)?),
                None,
            ),
            Err(e) => contents.leave_out(
                "inventory",
                contents
                    .scrubber
                    .scrub(&format!("no inventory from {}: {e:#}", tfstate.display())),
            ),
        }
    }
    Ok(())
}

/// The lock file's record, or that there is none, as JSON.
fn lock_report(env: &Environment) -> String {
    let path = env.state_dir.join(lock::LOCK_FILE);
    let report = if !path.exists() {
        serde_json::json!({
            "lock_file": path,
            "held": false,
            "note": "no lock file: no em-infra run holds this environment",
        })
    } else if let Some(holder) = lock::read_holder(&env.state_dir) {
        let alive = lock::holder_is_alive(&holder);
        let note = if alive {
            format!("held by a live em-infra process (pid {})", holder.pid)
        } else {
            "the holder is not a live process on this host: a stale lock, left by a run that \
             ended without releasing it"
                .to_string()
        };
        serde_json::json!({ "lock_file": path, "held": alive, "holder": holder, "note": note })
    } else {
        let text = std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(LOCK_TEXT_LIMIT)]).into_owned())
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        serde_json::json!({
            "lock_file": path,
            "held": serde_json::Value::Null,
            "content": text,
            "note": "the lock file holds no readable record (a run starting right now, or a partial write)",
        })
    };
    format!("{report:#}\n")
}

/// What versions the bundle records. A tool that cannot be run is `not found` (or why it failed),
/// never an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolVersions {
    pub em_infra: String,
    /// `terraform version -json` (or tofu's), on one line.
    pub terraform: String,
    /// The `bpg/proxmox` version pinned in the environment's `versions.tf`.
    pub provider_pin: String,
    /// The first line of `ansible-playbook --version`.
    pub ansible: String,
    /// `k3s_version` in `ansible/group_vars/all.yml`.
    pub k3s_pin: String,
}

impl ToolVersions {
    pub fn collect(project: &Project, env: &Environment, em_infra: &str) -> Self {
        ToolVersions {
            em_infra: em_infra.to_string(),
            terraform: terraform_version(env),
            provider_pin: provider_pin(&env.dir.join("versions.tf")),
            ansible: ansible_version(project),
            k3s_pin: match crate::kube::pinned_k3s_version(&project.root) {
                Ok(v) => v,
                Err(e) => format!("not found ({e:#})"),
            },
        }
    }

    /// `versions.txt`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (what, value) in [
            ("em-infra", &self.em_infra),
            ("terraform version -json", &self.terraform),
            ("bpg/proxmox pin (versions.tf)", &self.provider_pin),
            ("ansible-playbook --version", &self.ansible),
            ("k3s pin (ansible/group_vars/all.yml)", &self.k3s_pin),
        ] {
            let _ = writeln!(out, "{what}: {value}");
        }
        out
    }
}

/// Run a version command through the runner: its stdout (or, when it printed nothing there, its
/// other output), or why there is none.
fn tool_output(cmd: &Cmd) -> Result<String, String> {
    let outcome = runner::run(
        cmd,
        &mut std::io::sink(),
        &Redactor::from_env(),
        &Interrupt::detached(),
        Capture::Stdout,
        &mut (),
    );
    match outcome {
        Err(e) if kind_of(&e) == Some(FailureKind::Preflight) => Err("not found".into()),
        Err(e) => Err(format!("could not run it: {e:#}")),
        Ok(out) if out.timed_out => Err(format!(
            "did not answer within {}s",
            VERSION_TIMEOUT.as_secs()
        )),
        Ok(out) if !out.success() => Err(format!(
            "{}: {}",
            out.exited_with(),
            out.tail.first().map_or("", |l| l.trim())
        )),
        Ok(out) if out.stdout.trim().is_empty() => Ok(out.tail.join("\n")),
        Ok(out) => Ok(out.stdout),
    }
}

fn terraform_version(env: &Environment) -> String {
    let Some(bin) = crate::terraform::binary() else {
        return "not found (neither terraform nor tofu is on PATH)".into();
    };
    let cmd = Cmd::new(&bin, format!("{bin} version -json"))
        .arg(format!("-chdir={}", env.dir.display()))
        .args(["version", "-json"])
        .env("CHECKPOINT_DISABLE", "1")
        .timeout(VERSION_TIMEOUT);
    match tool_output(&cmd) {
        Ok(out) => {
            let one_line = serde_json::from_str::<serde_json::Value>(&out)
                .map_or_else(|_| out.trim().replace('\n', " "), |v| v.to_string());
            format!("{one_line} ({bin})")
        }
        Err(why) => format!("{why} ({bin})"),
    }
}

fn ansible_version(project: &Project) -> String {
    let program = crate::ansible::program(project, "ansible-playbook");
    let cmd = Cmd::new(&program, "ansible-playbook --version")
        .arg("--version")
        .env("ANSIBLE_NOCOLOR", "1")
        .timeout(VERSION_TIMEOUT);
    match tool_output(&cmd) {
        Ok(out) => format!(
            "{} ({})",
            out.lines().next().unwrap_or("").trim(),
            program.display()
        ),
        Err(why) => format!("{why} ({})", program.display()),
    }
}

/// The `bpg/proxmox` version in `versions.tf`'s `required_providers`.
fn provider_pin(versions_tf: &Path) -> String {
    let file = match SourceFile::load(versions_tf) {
        Ok(Ok(file)) => file,
        Ok(Err(finding)) => return format!("not found ({})", finding.message),
        Err(_) => return format!("not found (no {})", versions_tf.display()),
    };
    let pin = file.blocks("terraform").find_map(|tf| {
        tf.body.get_blocks("required_providers").find_map(|rp| {
            rp.body.attributes().find_map(|attr| {
                let Expression::Object(obj) = &attr.value else {
                    return None;
                };
                let get = |key: &str| {
                    obj.iter()
                        .find(|(k, _)| object_key_str(k).as_deref() == Some(key))
                        .and_then(|(_, v)| match v.expr() {
                            Expression::String(s) => Some(s.as_str().to_string()),
                            _ => None,
                        })
                };
                let source = get("source")?;
                (source.trim_start_matches("registry.terraform.io/") == "bpg/proxmox")
                    .then(|| get("version"))
                    .flatten()
            })
        })
    });
    pin.unwrap_or_else(|| {
        format!(
            "not found (no bpg/proxmox version in {})",
            versions_tf.display()
        )
    })
}

/// `README.txt`: what is inside, what is not, and that secrets were redacted.
fn readme(env: &Environment, run: &RunEntry, contents: &Contents<'_>, version: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "em-infra bug-report bundle");
    let _ = writeln!(out);
    let _ = writeln!(out, "environment  {} ({})", env.name, env.dir.display());
    match &run.summary {
        Ok(s) => {
            let exit = s
                .exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "run          {} (em-infra {}: {}{exit})",
                run.run_id, s.command, s.result
            );
        }
        Err(why) => {
            let _ = writeln!(out, "run          {} (incomplete: {why})", run.run_id);
        }
    }
    let _ = writeln!(
        out,
        "created      {} by em-infra {version}",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Secrets were redacted from every file: the Proxmox API token and passwords\n\
         (PROXMOX_VE_* environment variables), the k3s join token, kubeconfig credentials\n\
         (client-key-data, client-certificate-data, token, password) and private key blocks\n\
         read {REDACTED} or {PRIVATE_KEY_REDACTED}. Not included: Terraform plan files\n\
         (plan.tfplan), the kubeconfig and the k3s-token file. Read the files before you\n\
         share them all the same."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Contents:");
    let width = contents
        .items
        .iter()
        .map(|i| i.name.len())
        .chain(["README.txt".len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "  {:width$}  this file", "README.txt");
    for item in &contents.items {
        let mark = if item.redacted {
            " (secrets redacted)"
        } else {
            ""
        };
        let _ = writeln!(out, "  {:width$}  {}{mark}", item.name, item.about);
    }
    if !contents.left_out.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Not included:");
        for l in &contents.left_out {
            let _ = writeln!(out, "  {}: {}", l.name, l.why);
        }
    }
    out
}

/// The `.tar.gz`: a top directory (0700) with the files (0600) below it.
fn archive(top: &str, items: &[Item]) -> anyhow::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let now = now_secs();
    let mut dirs: Vec<String> = vec![top.to_string()];
    for item in items {
        let mut parts: Vec<&str> = item.name.split('/').collect();
        parts.pop();
        for depth in 1..=parts.len() {
            let dir = format!("{top}/{}", parts[..depth].join("/"));
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    for dir in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o700);
        header.set_mtime(now);
        tar.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
    }
    for item in items {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(item.bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(item.mtime);
        tar.append_data(
            &mut header,
            format!("{top}/{}", item.name),
            item.bytes.as_slice(),
        )?;
    }
    Ok(tar.into_inner()?.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_pin_is_read_from_versions_tf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("versions.tf");
        assert!(provider_pin(&path).starts_with("not found"));
        std::fs::write(
            &path,
            "terraform {\n  required_providers {\n    proxmox = {\n      source  = \"bpg/proxmox\"\n      version = \"0.111.1\"\n    }\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(provider_pin(&path), "0.111.1");
    }
}
