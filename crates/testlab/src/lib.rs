//! Lab of real SSH hosts for tests (see README).
