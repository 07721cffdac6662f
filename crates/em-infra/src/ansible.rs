//! ansible (filled in by the orchestrator work).
