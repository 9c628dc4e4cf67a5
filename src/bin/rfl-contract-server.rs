//! `rfl-contract-server`: a real server for the API contract check in CI (`.ci/run` runs
//! schemathesis against it), **for tests only**. It starts `rfl-server` on port 0 over a fresh
//! SQLite database in a temporary folder, on the test harness's fixed clock, and enrols a society
//! (its admin sets the escrow key and root) and a certified caseworker through the real client SDK,
//! with software passkeys, exactly as `tests/` do. The caseworker creates one case so that ids exist.
//!
//! It is not an admin command of `rfl-server`: it mints its own society and people on its own
//! throw-away database, and can never touch a production one.
//!
//! Usage: `rfl-contract-server OUT_FILE`. When everything is ready it writes `OUT_FILE` (replaced
//! atomically, mode 0600) as shell assignments: `RFL_URL`, `RFL_TOKEN` (the caseworker's access
//! token), `RFL_CASE_ID` and `RFL_MEMBER_ID`; then it serves until SIGTERM or SIGINT, and removes its
//! database on the way out.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use rfl_system_tests::{Backend, TestServer};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rfl-contract-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        return Err("usage: rfl-contract-server OUT_FILE".into());
    };
    let out = std::path::PathBuf::from(out);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;

    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Contract Red Cross").await;
    let cw = t.caseworker(&soc).await;
    let case = cw
        .create_case(&rfl_system_tests::case(1))
        .await
        .map_err(|e| format!("create a case: {e}"))?;
    let token = cw.token().ok_or("the caseworker has no token")?;
    let env = format!(
        "RFL_URL={}\nRFL_TOKEN={}\nRFL_CASE_ID={}\nRFL_MEMBER_ID={}\n",
        t.url(),
        token,
        case.id,
        cw.member_id()
    );
    write_private(&out, env.as_bytes()).map_err(|e| format!("write {}: {e}", out.display()))?;
    eprintln!(
        "rfl-contract-server: ready at {} ({})",
        t.url(),
        out.display()
    );

    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string())?,
    }
    t.stop().await;
    let _ = std::fs::remove_file(&out);
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it (mode 0600), renamed into place, so a
/// reader never sees a half-written file.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
