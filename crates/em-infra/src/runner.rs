//! runner (filled in by the orchestrator work).
