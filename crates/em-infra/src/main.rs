//! Thin entry point: parse, run, map the outcome to a documented exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    em_infra::exit::to_process(em_infra::main_with_args(std::env::args_os()))
}
