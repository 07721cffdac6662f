//! The failure classes em-infra reports, and the one place they become process exit codes.

use std::process::ExitCode;

/// Documented exit codes (also listed in `em-infra --help` and the README).
pub mod code {
    pub const OK: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const PREFLIGHT_FAILED: u8 = 3;
    pub const STAGE_FAILED: u8 = 4;
    pub const REFUSED: u8 = 5;
    pub const LOCKED: u8 = 75;
    pub const INTERRUPTED: u8 = 130;
}

/// A failure whose class decides the exit code. Anything else that reaches `main` is internal (1).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The user's input is wrong: flags, tfvars, a missing or corrupt file. The message says the fix.
    #[error("{0}")]
    BadInput(String),
    #[error("preflight failed: {0}")]
    Preflight(String),
    #[error("stage {stage} failed: {message}")]
    Stage { stage: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Locked(String),
    #[error("interrupted during {0}; continue with `em-infra up --resume`")]
    Interrupted(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::BadInput(_) => code::BAD_INPUT,
            Failure::Preflight(_) => code::PREFLIGHT_FAILED,
            Failure::Stage { .. } => code::STAGE_FAILED,
            Failure::Refused(_) => code::REFUSED,
            Failure::Locked(_) => code::LOCKED,
            Failure::Interrupted(_) => code::INTERRUPTED,
        }
    }
}

/// Shorthand for returning a bad-input failure from anywhere in the library.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    Failure::BadInput(msg.into()).into()
}

/// The exit code for an error: the first `Failure` in its cause chain, else internal.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map_or(code::INTERNAL, Failure::exit_code)
}

pub fn to_process(code: u8) -> ExitCode {
    ExitCode::from(code)
}
