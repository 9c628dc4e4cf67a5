//! `rfl-test-server`: the real server (`rfl_api::start_with`) in a process of its own, **for tests
//! only**, so that a test can kill it with SIGKILL in the middle of a write and start it again on the
//! same database (`tests/import_crash.rs`). It differs from `rfl-server serve` in what a test needs
//! to set: the database, the port, the token-signing key file, the WebAuthn origin, and a clock fixed
//! at a given time (the harness's `ManualClock` time, so tokens the harness issued are valid here).
//!
//! Usage: `rfl-test-server DB_URL BIND KEY_FILE ORIGIN NOW_MILLIS`; prints `listening URL` and serves
//! until killed.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use rfl_api::auth::TokenKeys;
use rfl_api::clock::ManualClock;
use rfl_api::config::Config;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rfl-test-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, bind, key, origin, now] = args.as_slice() else {
        return Err("usage: rfl-test-server DB_URL BIND KEY_FILE ORIGIN NOW_MILLIS".into());
    };
    let now: i64 = now.parse().map_err(|_| "NOW_MILLIS is not a number")?;
    let mut config = Config::load(None).map_err(|e| e.to_string())?;
    config.server.bind = bind.clone();
    config.server.workers = 2;
    config.database.url = db.clone();
    config.database.pool_size = 4;
    config.auth.signing_key_file = key.clone();
    config.webauthn.rp_origin = origin.clone();
    let store = rfl_storage::Store::open(db, 4).map_err(|e| e.to_string())?;
    let tokens = TokenKeys::load_or_create(
        std::path::Path::new(key),
        &config.auth.issuer,
        &config.auth.audience,
        config.auth.token_ttl_secs,
    )
    .map_err(|e| e.to_string())?;
    let server = rfl_api::start_with(config, store, tokens, Arc::new(ManualClock::new(now)))
        .await
        .map_err(|e| e.to_string())?;
    println!("listening {}", server.url());
    match server.task.await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
