//! terraform (filled in by the orchestrator work).
