//! The `rfl` binary end to end against a real server on port 0 (SQLite; the storage and API tests
//! cover PostgreSQL): enrol, escrow set-up, invitation, the case life cycle, attachments, export, and
//! the exit codes scripts rely on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rfl_command_line() {
    let (db, dir, store, server) = common::server().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (_, code) =
        rfl_api::identity::create_society(&store, "CLI Red Cross", None, now, 72).unwrap();
    let server_url = server.url();
    let cli = Cli {
        dir: dir.path().to_owned(),
        server: server_url.clone(),
    };
    let d = dir.path().to_owned();

    tokio::task::spawn_blocking(move || {
        let s = cli.server.as_str();
        // A new keystore's passphrase and work factor are checked before anything is sent (the code
        // is still good afterwards): the same rule for a typed passphrase and one from the environment.
        let weak = cli.run("weak.json", &["enrol", "--server", s, "--code", &code, "--work-factor", "10"]);
        assert_eq!(weak.status.code(), Some(2), "{}", String::from_utf8_lossy(&weak.stderr));
        assert!(String::from_utf8_lossy(&weak.stderr).contains("10 is not in 14..=22"));
        let short = Command::new(env!("CARGO_BIN_EXE_rfl"))
            .current_dir(&d)
            .env("RFL_CLIENT_PASSPHRASE", "too short")
            .args(["--keystore", "weak.json", "enrol", "--server", s, "--code", &code])
            .output()
            .unwrap();
        assert_eq!(short.status.code(), Some(5), "{}", String::from_utf8_lossy(&short.stderr));
        assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
        assert!(!d.join("weak.json").exists());

        let r = cli.ok_json("admin.json", &["enrol", "--server", s, "--origin", "http://localhost:8080", "--code", &code, "--work-factor", "14"]);
        assert_eq!(r["role"], "society_admin");
        // the code works once
        let again = cli.run("other.json", &["enrol", "--server", s, "--origin", "http://localhost:8080", "--code", &code, "--work-factor", "14"]);
        assert_eq!(again.status.code(), Some(4), "{}", String::from_utf8_lossy(&again.stderr));

        // cases need the escrow key first. A society init that fails (the wrong passphrase; one too
        // short to seal the root key) leaves no file behind, so it can simply be run again.
        for (pass, exit) in [("not the admin's passphrase", 1), ("too short", 5)] {
            let failed = cli.run_with(
                pass,
                "admin.json",
                &["society", "init", "--recovery-identity-out", "recovery.txt", "--root-key-out", "root.key"],
            );
            assert_eq!(failed.status.code(), Some(exit), "{}", String::from_utf8_lossy(&failed.stderr));
            assert!(!d.join("recovery.txt").exists() && !d.join("root.key").exists());
        }
        let init = cli.ok_json(
            "admin.json",
            &["society", "init", "--recovery-identity-out", "recovery.txt", "--root-key-out", "root.key"],
        );
        let root_fp = init["root_fingerprint"].as_str().unwrap().to_owned();
        assert_eq!(root_fp.len(), 32);
        assert!(std::fs::read(d.join("root.key")).unwrap().starts_with(b"age-encryption.org/v1"), "sealed");
        assert!(std::fs::read_to_string(d.join("recovery.txt")).unwrap().starts_with("AGE-SECRET-KEY-1"));
        // the escrow key is set once: a second run is refused, and its recovery identity (which
        // would open nothing) is not left behind
        let again = cli.run(
            "admin.json",
            &["society", "init", "--recovery-identity-out", "recovery2.txt", "--root-key-out", "root2.key"],
        );
        assert_eq!(again.status.code(), Some(4), "{}", String::from_utf8_lossy(&again.stderr));
        assert!(!d.join("recovery2.txt").exists() && !d.join("root2.key").exists());
        // text output gives the expiry as an RFC 3339 UTC time, e.g. 2026-12-04T09:12:00Z
        let text = cli.run("admin.json", &["invite", "--role", "auditor"]);
        assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
        let text = String::from_utf8(text.stdout).unwrap();
        let until = text.split("valid until ").nth(1).unwrap().split(';').next().unwrap();
        let b = until.as_bytes();
        assert!(
            b.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' && b[19] == b'Z' && until.starts_with("20"),
            "{text}"
        );
        let invite = cli.ok_json("admin.json", &["invite", "--role", "caseworker"]);
        assert!(invite["expires_at"].is_i64(), "JSON keeps the Unix time");
        let cw_code = invite["code"].as_str().unwrap().to_owned();
        // a second invitation, revoked before anyone uses it
        let spare = cli.ok_json("admin.json", &["invite", "--role", "caseworker"]);
        let spare_id = spare["id"].as_str().unwrap().to_owned();
        cli.ok_json("admin.json", &["revoke-code", &spare_id]);
        let codes = cli.ok_json("admin.json", &["codes"]);
        assert_eq!(codes["codes"].as_array().unwrap().len(), 4, "the first admin's and three invitations");
        let table = String::from_utf8(cli.run("admin.json", &["codes"]).stdout).unwrap();
        assert!(table.starts_with(&format!("{:<64}  {:<14}  expires_at (UTC)", "id", "role")), "{table}");
        assert_eq!(table.lines().filter(|l| l.contains(":00Z") || l.contains("Z  ")).count(), 4, "{table}");
        let revoked = cli.run(
            "spare.json",
            &["enrol", "--server", s, "--origin", "http://localhost:8080", "--code", spare["code"].as_str().unwrap(), "--work-factor", "14"],
        );
        assert_eq!(revoked.status.code(), Some(5), "{}", String::from_utf8_lossy(&revoked.stderr));
        cli.ok_json(
            "cw.json",
            &["enrol", "--server", s, "--origin", "http://localhost:8080", "--code", &cw_code, "--work-factor", "14",
              "--root-fingerprint", &root_fp],
        );
        // The caseworker reads their keys' fingerprint out to the admin, who certifies them; a wrong
        // fingerprint (keys substituted on the way) is refused with the verification exit code.
        let me = cli.ok_json("cw.json", &["whoami"]);
        let member = me["member_id"].as_str().unwrap().to_owned();
        let keys_fp = me["keys_fingerprint"].as_str().unwrap().to_owned();
        let wrong = cli.run("admin.json", &["certify", &member, "--fingerprint", &"0".repeat(32)]);
        assert_eq!(wrong.status.code(), Some(7), "{}", String::from_utf8_lossy(&wrong.stderr));
        cli.ok_json("admin.json", &["certify", &member, "--fingerprint", &keys_fp]);

        // wrong passphrase: a clear failure, not a crash
        let bad = Command::new(env!("CARGO_BIN_EXE_rfl"))
            .current_dir(&d)
            .env("RFL_CLIENT_PASSPHRASE", "wrong")
            .args(["--keystore", "cw.json", "case", "list"])
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("wrong passphrase"));

        let created = cli.ok_json(
            "cw.json",
            &[
                "case", "create", "--enquirer", "Amina Haddad", "--sought", "Omar Haddad", "--relationship",
                "sibling", "--separation", "armed_conflict",
            ],
        );
        let id = created["id"].as_str().unwrap().to_owned();
        // bulk import from JSON Lines
        let lines: String = (0..30u64)
            .map(|i| {
                let mut f = rfl_domain::fixtures::synthetic_case(i);
                f.attachments.clear();
                serde_json::to_string(&f).unwrap() + "\n"
            })
            .collect();
        std::fs::write(d.join("cases.jsonl"), lines).unwrap();
        let imported = cli.ok_json("cw.json", &["case", "import", "--file", "cases.jsonl", "--batch-size", "7"]);
        assert_eq!(imported["imported"], 30);
        // the same import again (as after a crash): nothing duplicated, and it says so
        let again = cli.ok_json("cw.json", &["case", "import", "--file", "cases.jsonl", "--batch-size", "7"]);
        assert_eq!((again["imported"].as_u64(), again["already_present"].as_u64()), (Some(0), Some(30)));
        let list = cli.ok_json("cw.json", &["case", "list", "--all"]);
        assert_eq!(list.as_array().unwrap().len(), 31);
        // `rfl case list | head`: a reader that has gone away ends the output, not the command. The
        // pipe's read end is closed before rfl starts, so every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let piped = Command::new(env!("CARGO_BIN_EXE_rfl"))
            .current_dir(&d)
            .env("RFL_CLIENT_PASSPHRASE", "a passphrase long enough")
            .args(["--keystore", "cw.json", "case", "list", "--all"])
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&piped.stderr);
        assert!(piped.status.success() && !err.contains("panicked"), "{:?}: {err}", piped.status);
        // no --separation: the default event, `other`, must be described; it is "not recorded" unless
        // --separation-description says more
        let bare = cli.ok_json("cw.json", &["case", "create", "--enquirer", "Lina Saleh", "--sought", "Karim Saleh", "--relationship", "sibling"]);
        let bare = cli.ok_json("cw.json", &["case", "show", bare["id"].as_str().unwrap()]);
        assert_eq!(bare["content"]["header"]["separation"]["event"], "other");
        assert_eq!(bare["content"]["header"]["separation"]["description"], "not recorded");
        let told = cli.ok_json(
            "cw.json",
            &["case", "create", "--enquirer", "Lina Saleh", "--sought", "Karim Saleh", "--separation-description", "Lost each other at the border"],
        );
        let told = cli.ok_json("cw.json", &["case", "show", told["id"].as_str().unwrap()]);
        assert_eq!(told["content"]["header"]["separation"]["description"], "Lost each other at the border");
        cli.ok_json("cw.json", &["message", "add", &id, "--body", "We are safe in Amman"]);
        cli.ok_json("cw.json", &["note", "add", &id, "--text", "Called the delegation"]);
        std::fs::write(d.join("photo.jpg"), vec![7u8; 300_000]).unwrap();
        cli.ok_json("cw.json", &["attach", &id, "photo.jpg", "--media-type", "image/jpeg"]);
        let shown = cli.ok_json("cw.json", &["case", "show", &id]);
        assert_eq!(shown["content"]["messages"].as_array().unwrap().len(), 1);
        assert_eq!(shown["content"]["notes"].as_array().unwrap().len(), 1);
        assert_eq!(shown["content"]["persons"][0]["record"]["person"]["names"][0]["given"], "Amina");

        // a new case from a copy of this one (`case show --json`, as the README says) or from a file
        // without record ids: the records get fresh ids, references by index still hold
        let mut copy = shown["content"].clone();
        copy["attachments"] = serde_json::json!([]); // attachments are added with `rfl attach`
        std::fs::write(d.join("copy.json"), serde_json::to_vec(&copy).unwrap()).unwrap();
        let copied = cli.ok_json("cw.json", &["case", "create", "--file", "copy.json"]);
        let copied = cli.ok_json("cw.json", &["case", "show", copied["id"].as_str().unwrap()]);
        let ids = |v: &serde_json::Value| -> Vec<String> {
            ["persons", "messages", "notes"]
                .iter()
                .flat_map(|k| v["content"][k].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()))
                .collect()
        };
        let (old_ids, new_ids) = (ids(&shown), ids(&copied));
        assert_eq!(old_ids.len(), 4);
        assert!(new_ids.iter().all(|id| !old_ids.contains(id)), "{new_ids:?} {old_ids:?}");
        assert_eq!(copied["content"]["messages"][0]["record"]["body"], "We are safe in Amman");
        // without ids, a file can refer to persons only by position ({"index": i})
        let person_ids: Vec<serde_json::Value> =
            copy["persons"].as_array().unwrap().iter().map(|p| p["id"].clone()).collect();
        for m in copy["messages"].as_array_mut().unwrap() {
            for end in ["from", "to"] {
                if let Some(r) = m["record"][end].get("record").cloned() {
                    let i = person_ids.iter().position(|id| *id == r).unwrap();
                    m["record"][end] = serde_json::json!({ "index": i });
                }
            }
        }
        for list in ["persons", "messages", "notes"] {
            for e in copy[list].as_array_mut().unwrap() {
                e.as_object_mut().unwrap().remove("id");
            }
        }
        std::fs::write(d.join("no-ids.json"), serde_json::to_vec(&copy).unwrap()).unwrap();
        cli.ok_json("cw.json", &["case", "create", "--file", "no-ids.json"]);

        // update from what `case show --json` printed: change the reference, keep everything else
        let mut edit = shown.clone();
        edit["content"]["header"]["reference"] = "ERC-2026-1".into();
        std::fs::write(d.join("edit.json"), serde_json::to_vec(&edit).unwrap()).unwrap();
        // meanwhile someone else edits the note: the update keeps their edit
        let mut other = shown.clone();
        other["content"]["notes"][0]["record"]["text"] = "Called the delegation twice".into();
        std::fs::write(d.join("other.json"), serde_json::to_vec(&other).unwrap()).unwrap();
        cli.ok_json("cw.json", &["case", "update", &id, "--file", "other.json"]);
        let r = cli.ok_json("cw.json", &["case", "update", &id, "--file", "edit.json"]);
        assert_eq!((r["written"].as_u64(), r["kept_theirs"].as_u64()), (Some(1), Some(1)));
        let merged = cli.ok_json("cw.json", &["case", "show", &id]);
        assert_eq!(merged["content"]["header"]["reference"], "ERC-2026-1");
        assert_eq!(merged["content"]["notes"][0]["record"]["text"], "Called the delegation twice");
        // the same note changed from the old base, differently: refused (4), both versions shown
        let mut clash = shown.clone();
        clash["content"]["notes"][0]["record"]["text"] = "Did not call".into();
        std::fs::write(d.join("clash.json"), serde_json::to_vec(&clash).unwrap()).unwrap();
        let refused = cli.run("cw.json", &["case", "update", &id, "--file", "clash.json"]);
        assert_eq!(refused.status.code(), Some(4), "{}", String::from_utf8_lossy(&refused.stderr));
        let out = String::from_utf8_lossy(&refused.stdout);
        assert!(out.contains("Did not call") && out.contains("Called the delegation twice"), "{out}");
        // a bare case file names no base: refused before anything is sent
        std::fs::write(d.join("bare.json"), serde_json::to_vec(&merged["content"]).unwrap()).unwrap();
        let bare = cli.run("cw.json", &["case", "update", &id, "--file", "bare.json"]);
        assert_eq!(bare.status.code(), Some(5), "{}", String::from_utf8_lossy(&bare.stderr));
        let shown = cli.ok_json("cw.json", &["case", "show", &id]);
        assert_eq!(shown["content"]["notes"][0]["record"]["text"], "Called the delegation twice");
        // `rfl` remembers the commit it verified, beside the keystore
        assert!(d.join("cw.json.heads").exists());

        // status workflow and its exit codes
        cli.ok_json("cw.json", &["case", "status", &id, "tracing"]);
        let illegal = cli.run("cw.json", &["case", "status", &id, "open"]);
        assert_eq!(illegal.status.code(), Some(5));
        assert!(String::from_utf8_lossy(&illegal.stderr).contains("cannot go from tracing to open"));
        let unknown = cli.run("cw.json", &["case", "show", "01a20fa2-6d7b-76ae-8c51-a8a90959dcec"]);
        assert_eq!(unknown.status.code(), Some(3), "{}", String::from_utf8_lossy(&unknown.stderr));
        let usage = cli.run("cw.json", &["case", "show", "not-an-id"]);
        assert_eq!(usage.status.code(), Some(2));

        // export: decrypted case and attachment
        cli.ok_json("cw.json", &["export", &id, "--out", "case.json", "--attachments-dir", "files"]);
        let exported: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("case.json")).unwrap()).unwrap();
        assert_eq!(exported["header"]["reference"], "ERC-2026-1");
        let files: Vec<_> = std::fs::read_dir(d.join("files")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let path = files[0].as_ref().unwrap().path();
        assert_eq!(std::fs::read(path).unwrap(), vec![7u8; 300_000]);

        // holders and a grant to the admin, checked against the signed head
        let admin_id = cli.ok_json("admin.json", &["whoami"])["member_id"].as_str().unwrap().to_owned();
        let h = cli.ok_json("cw.json", &["case", "holders", &id]);
        assert_eq!(h["holders"].as_array().unwrap().len(), 2, "the caseworker and the escrow key: {h}");
        cli.ok_json("cw.json", &["case", "grant", &id, &admin_id]);
        let table = String::from_utf8(cli.run("cw.json", &["case", "holders", &id]).stdout).unwrap();
        assert!(table.contains(&admin_id) && table.contains("society_admin"), "{table}");
        assert_eq!(table.matches("certified").count(), 3, "{table}");
        let shown = cli.ok_json("admin.json", &["case", "show", &id]);
        assert_eq!(shown["content"]["header"]["reference"], "ERC-2026-1");
        let twice = cli.run("cw.json", &["case", "grant", &id, &admin_id]);
        assert_eq!(twice.status.code(), Some(5), "{}", String::from_utf8_lossy(&twice.stderr));

        // the admin revokes the caseworker: their keys are listed, their account suspended, and
        // every case they held re-keyed without them
        let bad_reason = cli.run("admin.json", &["member", "revoke", &member, "--reason", "bored"]);
        assert_eq!(bad_reason.status.code(), Some(5));
        let r = cli.ok_json("admin.json", &["member", "revoke", &member, "--reason", "device_lost"]);
        let v = &r["revoked"];
        assert_eq!((v["list_number"].as_u64(), v["suspended"].as_bool()), (Some(1), Some(true)), "{r}");
        assert!(r["rekey"]["rekeyed"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(r["held_elsewhere"], serde_json::json!([]), "no other society here: {r}");
        let out = cli.run("cw.json", &["case", "list"]);
        assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
        let h = cli.ok_json("admin.json", &["case", "holders", &id]);
        assert_eq!(h["key_epoch"], 2, "{h}");
        let holders: Vec<_> = h["holders"].as_array().unwrap().iter().map(|x| x["recipient_id"].as_str().unwrap()).collect();
        assert!(!holders.contains(&member.as_str()), "{h}");
        assert_eq!(holders.len(), 2, "the admin and the escrow key: {h}");
        // running it again finds nothing left to re-key
        let again = cli.ok_json("admin.json", &["member", "revoke", &member, "--reason", "device_lost"]);
        assert_eq!(again["rekey"]["rekeyed"], 0, "{again}");
        let shown = cli.ok_json("admin.json", &["case", "show", &id]);
        assert_eq!(shown["content"]["header"]["reference"], "ERC-2026-1");
        // a member of this society is not another society's revoked holder; none holds a case here
        let foreign = cli.ok_json("admin.json", &["society", "revoked-holders", "--rekey"]);
        assert_eq!(foreign["rekeyed"].as_array().map(Vec::len), Some(0), "{foreign}");
        assert_eq!(cli.ok_json("admin.json", &["society", "revoked-holders"]), serde_json::json!([]));

        // the recovery key moves to a new one; the old one then opens nothing the server holds
        let rotated = cli.ok_json(
            "admin.json",
            &["society", "rotate-recovery", "--recovery-identity", "recovery.txt", "--new-recovery-identity-out", "recovery2.txt"],
        );
        assert!(rotated["recovery_recipient"].as_str().unwrap().starts_with("age1"));
        assert!(std::fs::read_to_string(d.join("recovery2.txt")).unwrap().starts_with("AGE-SECRET-KEY-1"));
        let stale = cli.run(
            "admin.json",
            &["society", "rotate-recovery", "--recovery-identity", "recovery.txt", "--new-recovery-identity-out", "recovery3.txt"],
        );
        assert_eq!(stale.status.code(), Some(5), "{}", String::from_utf8_lossy(&stale.stderr));
        assert!(!d.join("recovery3.txt").exists(), "a refused rotation leaves no identity behind");

        // a second admin, certified with the society root key
        let code2 = cli.ok_json("admin.json", &["invite", "--role", "society_admin"])["code"].as_str().unwrap().to_owned();
        cli.ok_json(
            "admin2.json",
            &["enrol", "--server", s, "--origin", "http://localhost:8080", "--code", &code2, "--work-factor", "14",
              "--root-fingerprint", &root_fp],
        );
        let me2 = cli.ok_json("admin2.json", &["whoami"]);
        let admin2 = me2["member_id"].as_str().unwrap().to_owned();
        let fp2 = me2["keys_fingerprint"].as_str().unwrap().to_owned();
        let wrong = cli.run("admin.json", &["society", "certify-admin", &admin2, "--fingerprint", &"0".repeat(32), "--root-key", "root.key"]);
        assert_eq!(wrong.status.code(), Some(7), "{}", String::from_utf8_lossy(&wrong.stderr));
        // before the root certifies them, no case key is wrapped to them; after, it is
        let early = cli.run("admin.json", &["case", "grant", &id, &admin2]);
        assert_eq!(early.status.code(), Some(7), "{}", String::from_utf8_lossy(&early.stderr));
        cli.ok_json("admin.json", &["society", "certify-admin", &admin2, "--fingerprint", &fp2, "--root-key", "root.key"]);
        cli.ok_json("admin.json", &["case", "grant", &id, &admin2]);
        let shown = cli.ok_json("admin2.json", &["case", "show", &id]);
        assert_eq!(shown["content"]["header"]["reference"], "ERC-2026-1");

        // the first admin takes the case back from the second: a new key epoch without them
        let un = cli.ok_json("admin.json", &["case", "ungrant", &id, &admin2]);
        assert_eq!(un["key_epoch"], 3, "{un}");
        let gone = cli.run("admin2.json", &["case", "show", &id]);
        assert_eq!(gone.status.code(), Some(3), "{}", String::from_utf8_lossy(&gone.stderr));
        // and seals the records of earlier epochs again under the current key
        let re = cli.ok_json("admin.json", &["case", "reencrypt", &id]);
        assert_eq!(re["key_epoch"], 3, "{re}");
        assert!(cli.ok_json("admin.json", &["case", "reencrypt", &id]).is_null());
        let shown = cli.ok_json("admin.json", &["case", "show", &id]);
        assert_eq!(shown["content"]["header"]["reference"], "ERC-2026-1");
    })
    .await
    .unwrap();
    server.stop().await;
    drop(db);
}

/// `rfl enrol --age-identity`: the file must hold an age plugin identity with its `# recipient:` line,
/// and the plugin must be on PATH. Both are checked before anything is sent (the server here does not
/// even exist), and fail with a clear message. The whole path with a working plugin is tested in the
/// root package (`tests/age_plugin.rs`, with the software plugin `age-plugin-rfltest`).
#[test]
fn enrol_with_an_age_plugin_identity_checks_the_file_and_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli {
        dir: dir.path().to_owned(),
        server: "http://127.0.0.1:9".into(),
    };
    let id =
        "AGE-PLUGIN-RFLNOSUCHPLUGIN-1PYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYS48AK97";
    let recipient =
        "age1rflnosuchplugin1pyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysc6jm8r";
    let enrol = |file: &str, machine: bool| {
        let mut args = vec![
            "enrol",
            "--server",
            &cli.server,
            "--code",
            "unused",
            "--work-factor",
            "14",
            "--age-identity",
            file,
        ];
        if machine {
            args.push("--machine");
        }
        cli.run("ks.json", &args)
    };

    std::fs::write(
        dir.path().join("no-recipient.txt"),
        format!("# created: now\n{id}\n"),
    )
    .unwrap();
    let out = enrol("no-recipient.txt", false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("no `# recipient:` line"), "{err}");

    let x25519 = "AGE-SECRET-KEY-1PYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSTFVYXW";
    std::fs::write(dir.path().join("x25519.txt"), format!("{x25519}\n")).unwrap();
    let out = enrol("x25519.txt", false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("takes an age plugin identity"), "{err}");

    std::fs::write(
        dir.path().join("token.txt"),
        format!("# recipient: {recipient}\n{id}\n"),
    )
    .unwrap();
    for machine in [false, true] {
        let out = enrol("token.txt", machine);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("age-plugin-rflnosuchplugin` not found on PATH"),
            "{err}"
        );
    }
    assert!(
        !dir.path().join("ks.json").exists(),
        "no keystore without a working token"
    );
}
