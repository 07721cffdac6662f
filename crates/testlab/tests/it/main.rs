//! testlab's integration tests, linked once: real labs through the library ([`lab`]) and the
//! `em-testlab` command end to end ([`cli`]). Both need root (skipped otherwise, except in CI).

mod cli;
mod lab;
