//! `rfl sync` end to end, as README step 13 runs it: the society's own server and a hub (two real
//! servers on port 0, SQLite; `tests/two_instances.rs` in the root package runs the same exchange
//! over SQLite and PostgreSQL), the Movement root set on both with `rfl movement init` and
//! `rfl movement set-root`, the society registered on the hub under its id, its sync agent enrolled
//! on both, and a case written on each side reaching the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Cli;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfl_sync_keeps_a_society_s_server_and_the_hub_in_step() {
    let (own_db, dir, own_store, own) = common::server().await;
    let (hub_db, _hub_dir, hub_store, hub) = common::server().await;
    let (society, code) =
        rfl_api::identity::create_society(&own_store, "CLI Red Cross", None, now_ms(), 72).unwrap();
    let movement_code = rfl_api::identity::movement_admin_code(&own_store, now_ms(), 72).unwrap();
    let hub_movement_code =
        rfl_api::identity::movement_admin_code(&hub_store, now_ms(), 72).unwrap();
    let (same, hub_code) =
        rfl_api::identity::create_society(&hub_store, "CLI Red Cross", Some(society), now_ms(), 72)
            .unwrap();
    assert_eq!(same, society);
    let own_cli = Cli {
        dir: dir.path().to_owned(),
        server: own.url(),
    };
    let hub_cli = Cli {
        dir: dir.path().to_owned(),
        server: hub.url(),
    };
    let society = society.to_string();

    tokio::task::spawn_blocking(move || {
        let enrol = |cli: &Cli, keystore: &str, code: &str, extra: &[&str]| {
            let mut args = vec![
                "enrol",
                "--server",
                &cli.server,
                "--origin",
                "http://localhost:8080",
                "--code",
                code,
                "--work-factor",
                "14",
            ];
            args.extend_from_slice(extra);
            cli.ok_json(keystore, &args)
        };
        let code_for = |cli: &Cli, keystore: &str, role: &str| {
            cli.ok_json(keystore, &["invite", "--role", role])["code"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let certify = |cli: &Cli, admin: &str, member: &str, extra: &[&str]| {
            let me = cli.ok_json(member, &["whoami"]);
            let id = me["member_id"].as_str().unwrap().to_owned();
            let fp = me["keys_fingerprint"].as_str().unwrap().to_owned();
            let mut args = extra.to_vec();
            args.extend_from_slice(&[id.as_str(), "--fingerprint", fp.as_str()]);
            cli.ok_json(admin, &args);
        };

        // The society's own server: its admin, root and escrow key, a caseworker and a case; the
        // Movement root certifies the society's root there.
        enrol(&own_cli, "admin.json", &code, &[]);
        let init = own_cli.ok_json(
            "admin.json",
            &[
                "society",
                "init",
                "--recovery-identity-out",
                "recovery.txt",
                "--root-key-out",
                "root.key",
            ],
        );
        let root_fp = init["root_fingerprint"].as_str().unwrap().to_owned();
        let cw_code = code_for(&own_cli, "admin.json", "caseworker");
        enrol(
            &own_cli,
            "cw.json",
            &cw_code,
            &["--root-fingerprint", &root_fp],
        );
        certify(&own_cli, "admin.json", "cw.json", &["certify"]);
        let case_args = [
            "case",
            "create",
            "--enquirer",
            "Amina Haddad",
            "--sought",
            "Omar Haddad",
            "--relationship",
            "sibling",
            "--separation",
            "armed_conflict",
        ];
        let own_case = own_cli.ok_json("cw.json", &case_args)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        enrol(&own_cli, "movement.json", &movement_code, &[]);
        own_cli.ok_json(
            "movement.json",
            &["movement", "init", "--root-key-out", "movement-root.key"],
        );
        own_cli.ok_json(
            "movement.json",
            &[
                "movement",
                "certify-society",
                &society,
                "--fingerprint",
                &root_fp,
                "--root-key",
                "movement-root.key",
            ],
        );

        // The hub: the same Movement root; the society's admin there, who invites the agent.
        enrol(&hub_cli, "hub-movement.json", &hub_movement_code, &[]);
        hub_cli.ok_json(
            "hub-movement.json",
            &["movement", "set-root", "--root-key", "movement-root.key"],
        );
        enrol(&hub_cli, "hub-admin.json", &hub_code, &[]);
        let agent_hub_code = code_for(&hub_cli, "hub-admin.json", "sync_agent");
        enrol(&hub_cli, "agent-hub.json", &agent_hub_code, &["--machine"]);
        let agent_code = code_for(&own_cli, "admin.json", "sync_agent");
        enrol(&own_cli, "agent.json", &agent_code, &["--machine"]);

        // The first round: the hub takes the society's trust material, then its case.
        let round = own_cli.ok_json("agent.json", &["sync", "--hub", "agent-hub.json"]);
        assert_eq!(round["trust_to_hub"]["root_changed"], true, "{round}");
        assert_eq!(round["trust_to_hub"]["escrow"], true, "{round}");
        assert_eq!(round["to_hub"]["cases"], 1, "{round}");
        assert_eq!(round["to_hub"]["applied"], 1, "{round}");
        assert!(dir_has(&own_cli, "agent.json.sync"));

        // The society's admin on the hub pins the root and is certified with the root key; a
        // caseworker enrols there and writes a case.
        hub_cli.ok_json("hub-admin.json", &["society", "pin-root", &root_fp]);
        let me = hub_cli.ok_json("hub-admin.json", &["whoami"]);
        let hub_admin = me["member_id"].as_str().unwrap().to_owned();
        let fp = me["keys_fingerprint"].as_str().unwrap().to_owned();
        hub_cli.ok_json(
            "hub-admin.json",
            &[
                "society",
                "certify-admin",
                &hub_admin,
                "--fingerprint",
                &fp,
                "--root-key",
                "root.key",
            ],
        );
        let hub_cw_code = code_for(&hub_cli, "hub-admin.json", "caseworker");
        enrol(
            &hub_cli,
            "hub-cw.json",
            &hub_cw_code,
            &["--root-fingerprint", &root_fp],
        );
        certify(&hub_cli, "hub-admin.json", "hub-cw.json", &["certify"]);
        let hub_case = hub_cli.ok_json("hub-cw.json", &case_args)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(hub_case, own_case);

        // The next round: the hub's certificates reach the society's server, then the case.
        let round = own_cli.ok_json("agent.json", &["sync", "--hub", "agent-hub.json"]);
        assert_eq!(round["trust_from_hub"]["certificates"], 2, "{round}");
        assert_eq!(round["from_hub"]["applied"], 1, "{round}");
        assert_eq!(
            round["from_hub"]["refused"],
            serde_json::json!([]),
            "{round}"
        );

        // No case is in conflict: the conflict commands say so, and resolving one that is not
        // is refused with why (exit code 5, invalid).
        assert_eq!(
            own_cli.ok_json("cw.json", &["case", "conflicts"]),
            serde_json::json!([])
        );
        let out = own_cli.run("cw.json", &["case", "conflicts"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("no case you hold is in conflict"));
        let shown = own_cli.ok_json("cw.json", &["case", "show", &own_case]);
        assert!(shown.get("conflict").is_none(), "{shown}");
        let out = own_cli.run(
            "cw.json",
            &[
                "case",
                "resolve",
                &own_case,
                "--take",
                "here",
                "--field",
                "x:y=there",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "a malformed --field is a usage error"
        );
        let out = own_cli.run("cw.json", &["case", "resolve", &own_case, "--take", "here"]);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("not in conflict"));

        // A state file someone else moved on is refused, with what to do about it.
        let path = own_cli.dir.join("agent.json.sync");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"seq\": ", "\"seq\": 9", 1)).unwrap();
        let out = own_cli.run("agent.json", &["sync", "--hub", "agent-hub.json"]);
        assert_eq!(
            out.status.code(),
            Some(7),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("delete it to sync from the start"));
    })
    .await
    .unwrap();
    own.stop().await;
    hub.stop().await;
    drop((own_db, hub_db));
}

fn dir_has(cli: &Cli, file: &str) -> bool {
    cli.dir.join(file).exists()
}
