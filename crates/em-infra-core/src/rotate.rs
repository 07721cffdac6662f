//! `em-infra rotate-ssh-key`: a new SSH key for the inventory's `ansible_user` on every node, and
//! in the tfvars (`ssh_public_key_path`) for VMs created later.
//!
//! [`plan`] validates everything and changes nothing (it is `--dry-run`); [`rotate`] asks (unless
//! `--yes`), takes the lock and runs `ansible/playbooks/rotate-ssh-key.yml` as a run with one
//! pseudo-stage, `rotate-ssh-key`: install the new key, prove a fresh login with it alone, remove
//! the old key's line; then it writes the tfvars through [`crate::config::edit::write_checked`].
//! Existing VMs are not replaced: `vm_ubuntu22` ignores changes to
//! `initialization[0].user_account` (cloud-init first-boot data), so only new VMs read the key file.
//!
//! The key is given as the new private key's path (its public half beside it as `PATH.pub`), or
//! as the `.pub` path (the private key is then `PATH` without `.pub`): the proof logs in with
//! the private key, so both must exist. "Current" is the key Ansible uses
//! ([`crate::ansible::private_key`]), whose `.pub` names the line that goes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::edit::TfvarsEdit;
use crate::config::{Environment, Project};
use crate::engine::events::{EventKind, Frontend, Question, Verdict};
use crate::engine::run::Run;
use crate::engine::{RunReport, Stage};
use crate::failure::bad_input;
use crate::runner::{Capture, Interrupt, Redactor};

/// The playbook, under `ansible/playbooks/`.
pub const PLAYBOOK: &str = "rotate-ssh-key.yml";
/// The run's command, its pseudo-stage and its log (`rotate-ssh-key.log`).
pub const NAME: &str = "rotate-ssh-key";
/// The tfvars variable naming the public key file.
pub const TFVARS_KEY: &str = "ssh_public_key_path";

/// What `rotate-ssh-key` was asked to do.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    pub env: String,
    /// The new private key, or its `.pub`.
    pub key: PathBuf,
    /// The user already confirmed (`--yes`).
    pub yes: bool,
    pub clear_stale_lock: bool,
}

/// One OpenSSH public key: `type base64 [comment]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    pub body: String,
    pub comment: Option<String>,
}

/// The key types a public key file may hold.
const KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

impl PublicKey {
    /// The first key of a `.pub` file (blank and `#` lines skipped): a known type whose base64
    /// body decodes and names the same type. `None` for anything else (a private key, text).
    pub fn parse(text: &str) -> Option<PublicKey> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))?;
        let mut parts = line.split_whitespace();
        let kind = parts.next()?;
        let body = parts.next()?;
        if !KEY_TYPES.contains(&kind) {
            return None;
        }
        let blob = decode_base64(body)?;
        let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
        if blob.get(4..4 + len)? != kind.as_bytes() {
            return None;
        }
        let comment = parts.collect::<Vec<_>>().join(" ");
        Some(PublicKey {
            kind: kind.to_string(),
            body: body.to_string(),
            comment: (!comment.is_empty()).then_some(comment),
        })
    }

    /// The authorized_keys line.
    pub fn line(&self) -> String {
        match &self.comment {
            Some(c) => format!("{} {} {c}", self.kind, self.body),
            None => format!("{} {}", self.kind, self.body),
        }
    }

    /// `ssh-ed25519 AAAA…xyz` (for messages).
    pub fn short(&self) -> String {
        let tail: String = self
            .body
            .chars()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{} …{tail}", self.kind)
    }
}

/// Standard base64 (with padding), as in OpenSSH public keys.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// The private key and its `.pub` from `--key` (either of the two).
pub fn key_pair(path: &Path) -> (PathBuf, PathBuf) {
    match path.to_str().and_then(|s| s.strip_suffix(".pub")) {
        Some(private) => (PathBuf::from(private), path.to_path_buf()),
        None => {
            let mut public = path.as_os_str().to_owned();
            public.push(".pub");
            (path.to_path_buf(), PathBuf::from(public))
        }
    }
}

/// Everything a rotation changes, validated; nothing changed yet (`--dry-run` shows it).
#[derive(Debug, Clone)]
pub struct RotatePlan {
    pub env: Environment,
    pub tfvars: PathBuf,
    pub ssh_user: String,
    /// `(name, ip)` of every node.
    pub nodes: Vec<(String, String)>,
    pub new_private: PathBuf,
    pub new_public_path: PathBuf,
    pub new_key: PublicKey,
    /// The key Ansible uses now.
    pub old_private: PathBuf,
    pub old_key: PublicKey,
    /// `ssh_public_key_path` before (`None`: not set, the variable's default) and after.
    pub tfvars_before: Option<String>,
    pub tfvars_after: String,
    /// The tfvars' new text (comments and layout kept).
    tfvars_text: String,
}

impl RotatePlan {
    /// Whether the tfvars changes.
    pub fn tfvars_changes(&self) -> bool {
        self.tfvars_before.as_deref() != Some(self.tfvars_after.as_str())
    }

    /// `- ssh_public_key_path = "old"` / `+ ssh_public_key_path = "new"` (empty when equal).
    pub fn tfvars_diff(&self) -> String {
        if !self.tfvars_changes() {
            return String::new();
        }
        let before = match &self.tfvars_before {
            Some(v) => format!("- {TFVARS_KEY} = {v:?}\n"),
            None => "- (unset: the default \"~/.ssh/id_ed25519.pub\")\n".to_string(),
        };
        format!("{before}+ {TFVARS_KEY} = {:?}", self.tfvars_after)
    }

    /// What the user must change so that Ansible, `em-infra ssh` and the next runs use the new
    /// key (`None` when they already do).
    pub fn next_step(&self) -> Option<String> {
        if crate::ansible::private_key().as_deref() == Some(self.new_private.as_path()) {
            return None;
        }
        Some(format!(
            "Ansible and `em-infra ssh` still use {}: export ANSIBLE_PRIVATE_KEY_FILE={} \
             (or move the key pair to ~/.ssh/id_ed25519 and ~/.ssh/id_ed25519.pub)",
            self.old_private.display(),
            self.new_private.display()
        ))
    }
}

fn field(flag: &str, message: impl std::fmt::Display) -> anyhow::Error {
    bad_input(format!("{flag}: {message}; nothing was changed"))
}

/// Validate `opts` against the environment; change nothing.
pub fn plan(project: &Project, opts: &RotateOptions) -> anyhow::Result<RotatePlan> {
    let env = project.environment(&opts.env)?;
    let key = std::path::absolute(&opts.key)?;
    let (new_private, new_public_path) = key_pair(&key);
    if !new_private.is_file() {
        return Err(field(
            "--key",
            format!(
                "the private key {} does not exist (the proof logs in with it)",
                new_private.display()
            ),
        ));
    }
    let text = std::fs::read_to_string(&new_public_path).map_err(|e| {
        field(
            "--key",
            format!(
                "cannot read the public key {}: {e}",
                new_public_path.display()
            ),
        )
    })?;
    let new_key = PublicKey::parse(&text).ok_or_else(|| {
        field(
            "--key",
            format!(
                "{} holds no public key (expected `ssh-ed25519 AAAA…`, `ssh-rsa …` or `ecdsa-…`)",
                new_public_path.display()
            ),
        )
    })?;
    let old_private = crate::ansible::private_key()
        .ok_or_else(|| field("ANSIBLE_PRIVATE_KEY_FILE", "not set, and HOME is not set"))?;
    let (_, old_public_path) = key_pair(&old_private);
    let old_key = std::fs::read_to_string(&old_public_path)
        .ok()
        .and_then(|t| PublicKey::parse(&t))
        .ok_or_else(|| {
            field(
                "ANSIBLE_PRIVATE_KEY_FILE",
                format!(
                    "the current key's public half {} is missing or no public key (write it with \
                     `ssh-keygen -y -f {} > {}`)",
                    old_public_path.display(),
                    old_private.display(),
                    old_public_path.display()
                ),
            )
        })?;
    if old_key.body == new_key.body {
        return Err(field(
            "--key",
            format!(
                "{} is already the key Ansible uses ({}): nothing to rotate",
                new_public_path.display(),
                old_private.display()
            ),
        ));
    }
    let outputs = crate::inventory::load_outputs(&env.tfstate())?;
    if outputs.nodes.is_empty() {
        return Err(field(
            "--env",
            format!(
                "the Terraform state {} has no nodes",
                env.tfstate().display()
            ),
        ));
    }
    let tfvars = env.own_tfvars()?;
    let mut edit = TfvarsEdit::parse(&fs_err::read_to_string(&tfvars)?, &tfvars)?;
    let tfvars_before = edit.string(TFVARS_KEY);
    let tfvars_after = new_public_path.display().to_string();
    edit.set(
        TFVARS_KEY,
        hcl_edit::expr::Expression::from(tfvars_after.as_str()),
    );
    Ok(RotatePlan {
        nodes: outputs
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.ip.to_string()))
            .collect(),
        ssh_user: outputs.ssh_user,
        env,
        tfvars,
        new_private,
        new_public_path,
        new_key,
        old_private,
        old_key,
        tfvars_before,
        tfvars_after,
        tfvars_text: edit.render(),
    })
}

/// Confirm (unless `yes`), lock, run the playbook as a recorded run, then write the tfvars.
pub fn rotate(
    project: &Project,
    plan: &RotatePlan,
    opts: &RotateOptions,
    frontend: &dyn Frontend,
) -> anyhow::Result<RunReport> {
    let env = &plan.env;
    if !opts.yes {
        let question = Question::RotateSshKey {
            env: env.name.clone(),
            nodes: plan.nodes.len(),
        };
        if !frontend.confirm(&question)? {
            return Err(bad_input("not confirmed: nothing was changed"));
        }
    }
    crate::fsutil::ensure_private_dir(&env.state_dir)?;
    let lock = crate::engine::lock(env, NAME, opts.clear_stale_lock)?;
    let mut run = Run::start(
        &env.state_dir,
        &env.name,
        NAME,
        Redactor::from_env(),
        Interrupt::install()?,
        frontend,
        Some(&lock),
    )?;
    let failure = run_rotation(project, plan, &mut run).err();
    let verdict = Verdict::of_outcome(failure.as_ref());
    crate::engine::finish(run, verdict, failure)
}

fn run_rotation(project: &Project, plan: &RotatePlan, run: &mut Run<'_>) -> anyhow::Result<()> {
    // Events use the configure stage's slot; logs and the summary say `rotate-ssh-key`.
    let stage = Stage::Configure;
    let started_at = jiff::Timestamp::now();
    let clock = Instant::now();
    run.emit(Some(stage), EventKind::StageStarted, None, None, NAME)?;
    let result = (|| -> anyhow::Result<String> {
        run.message(
            stage,
            format!(
                "{} on {} node(s) as {}: {} → {}",
                NAME,
                plan.nodes.len(),
                plan.ssh_user,
                plan.old_key.short(),
                plan.new_key.short()
            ),
        )?;
        // The proof's SSH connections must be new ones: a control directory of their own, with a
        // path short enough for a Unix socket.
        let control = tempfile::Builder::new().prefix("em-rk-").tempdir()?;
        let vars = serde_json::json!({
            "rotate_new_public_key": plan.new_key.line(),
            "rotate_new_key_body": plan.new_key.body,
            "rotate_new_private_key": plan.new_private,
            "rotate_old_key_body": plan.old_key.body,
            "rotate_proof_control_dir": control.path(),
        });
        let vars_file = run.artifact(
            stage,
            "rotate-ssh-key-vars.json",
            &serde_json::to_string_pretty(&vars)?,
        )?;
        let mut arg = std::ffi::OsString::from("@");
        arg.push(&vars_file);
        let cmd = crate::ansible::playbook(
            project,
            &plan.env,
            PLAYBOOK,
            "ansible-playbook rotate-ssh-key.yml",
        )
        .arg("--extra-vars")
        .arg(arg);
        let out = run.exec_logged(stage, NAME, &cmd, Capture::Stdout)?;
        let failed = crate::ansible::failures(&out.stdout);
        let detail = (!failed.is_empty()).then(|| crate::ansible::describe_failures(&failed));
        let out = run.check_explained(stage, NAME, &cmd, out, detail)?;
        let recap = crate::ansible::parse_recap(&out.stdout);
        let changed: u32 = recap.iter().map(|(_, c, _)| c).sum();
        let tfvars = if plan.tfvars_changes() {
            let backup = crate::config::edit::write_checked(
                project,
                &plan.env,
                &plan.tfvars,
                &plan.tfvars_text,
            )?;
            run.message(
                stage,
                format!("{}:\n{}", plan.tfvars.display(), plan.tfvars_diff()),
            )?;
            match backup {
                Some(b) => format!("tfvars updated (backup {})", b.display()),
                None => "tfvars updated".to_string(),
            }
        } else {
            "tfvars already names the new key".to_string()
        };
        Ok(format!(
            "{} hosts: new key installed and proven, old key removed, changed={changed}; {tfvars}",
            recap.len()
        ))
    })();
    let outcome = match &result {
        Ok(message) => Ok((Verdict::Succeeded, message.as_str())),
        Err(e) => Err(e),
    };
    run.finish_stage(stage, NAME, started_at, Run::elapsed_ms(clock), outcome)?;
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host";

    #[test]
    fn parses_public_keys() {
        let key = PublicKey::parse(&format!("# mine\n\n{ED}\n")).unwrap();
        assert_eq!(key.kind, "ssh-ed25519");
        assert_eq!(key.comment.as_deref(), Some("me@host"));
        assert_eq!(key.line(), ED);
        assert_eq!(key.short(), "ssh-ed25519 …h2l9GKJl");
        let bare = PublicKey::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        )
        .unwrap();
        assert_eq!(bare.comment, None);
    }

    #[test]
    fn rejects_what_is_no_public_key() {
        for text in [
            "",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
            "ssh-ed25519",
            "ssh-ed25519 not-base64!",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            // The body names another type than the line.
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJ",
        ] {
            assert_eq!(PublicKey::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn decodes_base64() {
        assert_eq!(decode_base64("TWFu").unwrap(), b"Man");
        assert_eq!(decode_base64("TWE=").unwrap(), b"Ma");
        assert_eq!(decode_base64("TQ==").unwrap(), b"M");
        assert_eq!(decode_base64("TQ==TWFu"), None);
        assert_eq!(decode_base64("TQ="), None);
    }

    #[test]
    fn key_pair_from_either_half() {
        let (private, public) = key_pair(Path::new("/k/id_new"));
        assert_eq!(
            (private.as_path(), public.as_path()),
            (Path::new("/k/id_new"), Path::new("/k/id_new.pub"))
        );
        let (private, public) = key_pair(Path::new("/k/id_new.pub"));
        assert_eq!(
            (private.as_path(), public.as_path()),
            (Path::new("/k/id_new"), Path::new("/k/id_new.pub"))
        );
    }
}
