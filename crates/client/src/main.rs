#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! `rfl`: the caseworker's command-line client. All encryption happens in this process.
//!
//! Exit codes: 0 success; 1 other failure; 2 bad usage; 3 not found or not allowed; 4 conflict (someone
//! else changed the case: reload and retry); 5 invalid input; 6 server unreachable; 7 verification failed
//! (the server returned something tampered with). An age plugin that is missing or fails is 1.
//!
//! The commands are in [`cli`], one file per command group.

// mimalloc instead of glibc's malloc: the hot paths allocate and free many short-lived buffers (JSON
// bodies, envelopes, rows), and glibc's allocator was ~12 % of an import profile (docs/benchmarks.md,
// run 10).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("cannot start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e.to_string());
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

/// The error line on stderr. `eprintln!` would panic on a closed stderr; the exit code still tells.
fn report(message: &str) {
    let _ = writeln!(std::io::stderr(), "rfl: {message}");
}
