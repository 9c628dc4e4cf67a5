//! `rfl-server admin rotate-signing-key` as an operator runs it (issue 9), on SQLite and PostgreSQL:
//! the real binary, against a running `rfl-server` on the same database and key folder. The command
//! adds a key, waits until the running node reports holding it, promotes it, and says so; `--status`
//! then shows the new key signing and the old one verifying until its last token expires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use rfl_storage::testing::{TestBackend, TestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_rfl-server");

fn server_command(db: &TestDatabase, dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("RFL_DATABASE__URL", &db.url)
        .env("RFL_DATABASE__POOL_SIZE", "2")
        .env(
            "RFL_AUTH__SIGNING_KEY_FILE",
            dir.join("keys").join("token.pk8").display().to_string(),
        )
        .env("RFL_AUTH__SIGNING_KEY_REFRESH_SECS", "1")
        .env("RFL_SERVER__BIND", "127.0.0.1:0")
        .env("RFL_SERVER__WORKERS", "1")
        .env("RFL_LOG__LEVEL", "warn");
    c
}

fn admin(db: &TestDatabase, dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = server_command(db, dir)
        .args(["admin", "rotate-signing-key"])
        .args(args)
        .output()
        .expect("run rfl-server admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_adds_waits_for_the_running_node_and_promotes() {
    for backend in TestBackend::ALL {
        let db = TestDatabase::new(backend);
        let dir = tempfile::tempdir().unwrap();

        // Before any server ran, there is no key to rotate from.
        let (ok, _, err) = admin(&db, dir.path(), &["--status"]);
        assert!(!ok);
        assert!(err.contains("start rfl-server once first"), "{err}");

        let mut server = server_command(&db, dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rfl-server");
        let mut line = String::new();
        let mut lines = BufReader::new(server.stderr.take().unwrap());
        while !line.contains("listening on") {
            line.clear();
            assert!(
                lines.read_line(&mut line).unwrap() > 0,
                "rfl-server stopped"
            );
        }
        // Keep reading its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.lines() {});

        let (ok, out, err) = admin(&db, dir.path(), &["--wait", "30"]);
        assert!(ok, "{out}\n{err}");
        assert!(out.contains("added ed25519-"), "{out}");
        assert!(out.contains("1 running node(s) verify"), "{out}");
        assert!(out.contains("promoted ed25519-"), "{out}");
        let (ok, status, _) = admin(&db, dir.path(), &["--status"]);
        assert!(ok);
        assert!(status.contains("primary (signs), file here"), "{status}");
        assert!(status.contains("previous (verifies until"), "{status}");
        let files = std::fs::read_dir(dir.path().join("keys")).unwrap().count();
        assert_eq!(files, 2, "the configured key and the added one");

        server.kill().unwrap();
        server.wait().unwrap();
    }
}
