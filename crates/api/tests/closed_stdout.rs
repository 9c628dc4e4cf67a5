//! `rfl-server openapi | head`: a reader that has gone away ends the output, not the command. The
//! pipe's read end is closed before the server starts, so every write fails with EPIPE; before, the
//! binary panicked with "failed printing to stdout".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn a_closed_stdout_is_the_end_of_the_output_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_rfl-server"))
        .arg("openapi")
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "{:?}: {err}",
        out.status
    );
}
