//! `.em-infra/<env>/state.json`: each stage's last result, its input fingerprint, times and run id.
//! Written atomically; a corrupt file is reported, never overwritten silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::Stage;
use crate::engine::events::Verdict;
use crate::failure::bad_input;

pub const STATE_FILE: &str = "state.json";
const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageState {
    pub result: Verdict,
    /// blake3 of the stage's inputs when it last ran.
    pub fingerprint: String,
    pub started_at: jiff::Timestamp,
    /// `null` while the stage runs — and forever when the run died inside it.
    #[serde(default)]
    pub finished_at: Option<jiff::Timestamp>,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvState {
    pub schema: u32,
    pub env: String,
    #[serde(default)]
    pub stages: BTreeMap<Stage, StageState>,
    /// Fingerprint of the environment's `.tf` files when `terraform init` last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_init: Option<String>,
}

impl EnvState {
    pub fn new(env: &str) -> Self {
        EnvState {
            schema: SCHEMA,
            env: env.to_string(),
            stages: BTreeMap::new(),
            terraform_init: None,
        }
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(STATE_FILE)
    }

    /// Load the state; a missing file is a fresh environment, a corrupt one is bad input.
    pub fn load(state_dir: &Path, env: &str) -> anyhow::Result<Self> {
        let path = Self::path(state_dir);
        let text = match fs_err::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(env)),
            Err(e) => return Err(e.into()),
        };
        let state: EnvState = serde_json::from_str(&text).map_err(|e| {
            bad_input(format!(
                "{} is corrupt ({e}). It is em-infra's checkpoint record, not Terraform state: move it aside \
                 (`mv {0} {0}.corrupt`) and rerun; stages then run from the start, which is safe because each \
                 one is idempotent",
                path.display()
            ))
        })?;
        if state.schema != SCHEMA {
            return Err(bad_input(format!(
                "{} has schema {} but this em-infra writes schema {SCHEMA}: move it aside and rerun",
                path.display(),
                state.schema
            )));
        }
        Ok(state)
    }

    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(&Self::path(state_dir), &bytes, 0o600)
    }

    /// The first stage, in pipeline order, that did not finish — failed, refused, interrupted,
    /// or started and never ended (the run died inside it): what `--resume` continues from.
    pub fn resume_point(&self) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| {
            self.stages.get(s).is_some_and(|st| {
                matches!(
                    st.result,
                    Verdict::Failed | Verdict::Interrupted | Verdict::Refused | Verdict::Running
                )
            })
        })
    }
}

/// A fingerprint over named inputs (file contents or values), stable across runs.
#[derive(Default)]
pub struct Fingerprint(blake3::Hasher);

impl Fingerprint {
    pub fn value(mut self, name: &str, value: &[u8]) -> Self {
        self.0.update(name.as_bytes());
        self.0.update(&(value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// A file's content; a missing file hashes as "absent" so appearing/disappearing changes it.
    pub fn file(self, path: &Path) -> Self {
        let content = std::fs::read(path).unwrap_or_else(|_| b"<absent>".to_vec());
        self.value(&path.to_string_lossy(), &content)
    }

    /// Every `*.tf` file directly in `dir`, sorted by name.
    pub fn tf_files(mut self, dir: &Path) -> Self {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tf"))
            .collect();
        files.sort();
        for f in files {
            self = self.file(&f);
        }
        self
    }

    pub fn finish(self) -> String {
        self.0.finalize().to_hex()[..16].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_fresh_and_roundtrips() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = EnvState::load(dir.path(), "e").unwrap();
        assert!(st.stages.is_empty());
        let now = jiff::Timestamp::now();
        st.stages.insert(
            Stage::Configure,
            StageState {
                result: Verdict::Interrupted,
                fingerprint: "f".into(),
                started_at: now,
                finished_at: Some(now),
                run_id: "r".into(),
                message: String::new(),
            },
        );
        st.save(dir.path()).unwrap();
        let back = EnvState::load(dir.path(), "e").unwrap();
        assert_eq!(back.resume_point(), Some(Stage::Configure));
    }

    #[test]
    fn a_start_without_an_end_is_the_resume_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = EnvState::new("e");
        let now = jiff::Timestamp::now();
        let record = |result| StageState {
            result,
            fingerprint: "f".into(),
            started_at: now,
            finished_at: None,
            run_id: "r".into(),
            message: String::new(),
        };
        st.stages
            .insert(Stage::Preflight, record(Verdict::Succeeded));
        st.stages
            .insert(Stage::Provision, record(Verdict::Succeeded));
        // The run was killed inside configure: only its start was written.
        st.stages.insert(Stage::Configure, record(Verdict::Running));
        st.save(dir.path()).unwrap();
        let back = EnvState::load(dir.path(), "e").unwrap();
        assert_eq!(back.resume_point(), Some(Stage::Configure));
        let text = std::fs::read_to_string(EnvState::path(dir.path())).unwrap();
        assert!(text.contains("\"result\": \"running\""), "{text}");
        assert!(text.contains("\"finished_at\": null"), "{text}");
    }

    #[test]
    fn corrupt_file_is_bad_input_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = EnvState::path(dir.path());
        std::fs::write(&path, "{\"schema\": 1, \"env\": \"e\", \"sta").unwrap();
        let err = EnvState::load(dir.path(), "e").unwrap_err();
        assert_eq!(
            crate::failure::kind_of(&err),
            Some(crate::failure::FailureKind::BadInput)
        );
        assert!(err.to_string().contains("is corrupt"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"schema\": 1, \"env\": \"e\", \"sta"
        );
    }
}
