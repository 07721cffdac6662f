//! Typed failures. Every error em-infra reports on purpose carries a [`Failure`] somewhere in its
//! cause chain; its [`FailureKind`] travels up untouched, and only the binary turns it into an
//! exit number (one module there). Anything without a `Failure` is internal: a bug, or an I/O
//! error outside the project's control.

/// A failure whose kind decides how the front end reports it.
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

/// What kind of failure it was, without its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    BadInput,
    Preflight,
    Stage,
    Refused,
    Locked,
    Interrupted,
}

impl Failure {
    pub fn kind(&self) -> FailureKind {
        match self {
            Failure::BadInput(_) => FailureKind::BadInput,
            Failure::Preflight(_) => FailureKind::Preflight,
            Failure::Stage { .. } => FailureKind::Stage,
            Failure::Refused(_) => FailureKind::Refused,
            Failure::Locked(_) => FailureKind::Locked,
            Failure::Interrupted(_) => FailureKind::Interrupted,
        }
    }
}

/// Shorthand for returning a bad-input failure from anywhere in the library.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    Failure::BadInput(msg.into()).into()
}

/// The kind of the first [`Failure`] in `err`'s cause chain; `None` means internal.
pub fn kind_of(err: &anyhow::Error) -> Option<FailureKind> {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map(Failure::kind)
}
