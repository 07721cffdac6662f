//! report (filled in by the orchestrator work).
