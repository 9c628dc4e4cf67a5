//! What the `rfl` binary's tests share: a real server on port 0 over a fresh SQLite database, and
//! a runner of the binary with a keystore and a passphrase.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use rfl_api::auth::TokenKeys;
use rfl_api::clock::SystemClock;
use rfl_api::config::Config;
use rfl_api::RunningServer;
use rfl_storage::testing::{TestBackend, TestDatabase};
use rfl_storage::Store;

/// A server on port 0 over a fresh SQLite database, its WebAuthn origin the default
/// (`http://localhost:8080`, which `rfl enrol --origin` names), with a directory for keystores.
pub async fn server() -> (TestDatabase, tempfile::TempDir, Store, RunningServer) {
    let db = TestDatabase::new(TestBackend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(None).unwrap();
    config.server.bind = "127.0.0.1:0".into();
    config.server.workers = 2;
    config.database.url = db.url.clone();
    // Every command signs in afresh, and this test runs more of them a minute than the default
    // sign-in budgets allow (20 per account, 60 per address); tests/sessions.rs covers the limits.
    config.limits.auth_per_minute_per_account = 1_000;
    config.limits.auth_per_minute_per_address = 1_000;
    let url = db.url.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&url, 4))
        .await
        .unwrap()
        .unwrap();
    let tokens =
        TokenKeys::load_or_create(&dir.path().join("k.pk8"), "rfl", "rfl-api", 900).unwrap();
    let server = rfl_api::start_with(config, store.clone(), tokens, Arc::new(SystemClock))
        .await
        .unwrap();
    (db, dir, store, server)
}

pub struct Cli {
    pub dir: PathBuf,
    pub server: String,
}

impl Cli {
    pub fn run(&self, keystore: &str, args: &[&str]) -> Output {
        self.run_with("a passphrase long enough", keystore, args)
    }

    pub fn run_with(&self, passphrase: &str, keystore: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rfl"))
            .current_dir(&self.dir)
            .env("RFL_CLIENT_PASSPHRASE", passphrase)
            .arg("--keystore")
            .arg(keystore)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok_json(&self, keystore: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(keystore, &all);
        assert!(
            out.status.success(),
            "rfl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
