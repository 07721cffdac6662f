//! The one place failures become process exit codes (also listed in `em-infra --help` and the
//! README).

use em_infra_core::failure::{self, FailureKind};

/// Documented exit codes.
pub(crate) mod code {
    pub(crate) const OK: u8 = 0;
    pub(crate) const INTERNAL: u8 = 1;
    pub(crate) const BAD_INPUT: u8 = 2;
    pub(crate) const PREFLIGHT_FAILED: u8 = 3;
    pub(crate) const STAGE_FAILED: u8 = 4;
    pub(crate) const REFUSED: u8 = 5;
    pub(crate) const LOCKED: u8 = 75;
    pub(crate) const INTERRUPTED: u8 = 130;
}

/// The exit code of a failure kind; `None` (no typed failure in the chain) is internal.
pub(crate) fn exit_code(kind: Option<FailureKind>) -> u8 {
    match kind {
        None => code::INTERNAL,
        Some(FailureKind::BadInput) => code::BAD_INPUT,
        Some(FailureKind::Preflight) => code::PREFLIGHT_FAILED,
        Some(FailureKind::Stage) => code::STAGE_FAILED,
        Some(FailureKind::Refused) => code::REFUSED,
        Some(FailureKind::Locked) => code::LOCKED,
        Some(FailureKind::Interrupted) => code::INTERRUPTED,
    }
}

/// The exit code for an error: the kind of the first typed failure in its cause chain.
pub(crate) fn exit_code_of(err: &anyhow::Error) -> u8 {
    exit_code(failure::kind_of(err))
}

#[cfg(test)]
mod tests {
    use em_infra_core::failure::{Failure, bad_input};

    use super::*;

    #[test]
    fn every_kind_has_its_documented_code() {
        let cases: [(anyhow::Error, u8); 7] = [
            (bad_input("x"), 2),
            (Failure::Preflight("x".into()).into(), 3),
            (
                Failure::Stage {
                    stage: "s".into(),
                    message: "m".into(),
                }
                .into(),
                4,
            ),
            (Failure::Refused("x".into()).into(), 5),
            (Failure::Locked("x".into()).into(), 75),
            (Failure::Interrupted("x".into()).into(), 130),
            (anyhow::anyhow!("a bug"), 1),
        ];
        for (err, want) in cases {
            assert_eq!(exit_code_of(&err), want, "{err}");
        }
        // The first typed failure in the chain decides, whatever context wraps it.
        let wrapped = bad_input("inner").context("outer");
        assert_eq!(exit_code_of(&wrapped), code::BAD_INPUT);
    }
}
