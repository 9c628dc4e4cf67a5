//! Rotating the server's token-signing key (issue 9), on SQLite and PostgreSQL, with two API nodes on
//! one database and neither restarted: a key is added (both verify its tokens once they hold its
//! file, neither signs with it), promoted only once both do, then signs every new token on both; the
//! old key verifies until its last token has expired and is retired then. A node that does not hold
//! the primary key's file refuses to start, and a key the database lists under another public key
//! than the node's file is not used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use rfl_api::clock::Clock;
use rfl_api::signing_keys::{self, RotationSettings};
use rfl_client::sign_in_person;
use rfl_storage::TokenKeyState;
use rfl_system_tests::{Backend, TestServer, T0_MILLIS};

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The status `GET /v1/me` with `token` gets from the node at `url`.
async fn me(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_key_is_added_distributed_and_promoted_while_two_nodes_keep_serving() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross T").await;
        let mut p = t.caseworker_person(&soc).await;
        let me_id = p.session.member_id();
        let b = t.another_node(None).await.unwrap();
        let (a_url, b_url) = (t.url(), b.url());
        let settings = RotationSettings::from_config(&t.config);

        let old_token = p.session.token().unwrap().to_owned();
        let old = kid(&old_token);
        assert_eq!(me(&a_url, &old_token).await, 200);
        assert_eq!(
            me(&b_url, &old_token).await,
            200,
            "both nodes share the key"
        );
        let keys = t.store.token_keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0].kid.as_str(), keys[0].state),
            (old.as_str(), TokenKeyState::Primary)
        );

        // Add: the file is written beside the configured one and listed as next; neither node has
        // read it yet, so promoting would strand them.
        let (next, added) =
            signing_keys::add_next_key(&t.store, &settings, t.clock.now_millis()).unwrap();
        assert!(added);
        assert!(settings.files.path_for(&next.kid).exists());
        let (again, added_again) =
            signing_keys::add_next_key(&t.store, &settings, t.clock.now_millis()).unwrap();
        assert_eq!(
            (again.kid.as_str(), added_again),
            (next.kid.as_str(), false)
        );
        let (missing, running) =
            signing_keys::nodes_without(&t.store, &settings, &next.kid, t.clock.now_millis())
                .unwrap();
        assert_eq!((missing.len(), running), (2, 2));

        // Distribute: each node reads the file on its next refresh, without a restart.
        let a_sync = t.server.refresh_keys().await.unwrap();
        let b_sync = b.refresh_keys().await.unwrap();
        for s in [&a_sync, &b_sync] {
            assert_eq!(
                s.primary.as_deref(),
                Some(old.as_str()),
                "the next key signs nothing yet"
            );
            assert!(s.verifying.contains(&next.kid));
        }
        let (missing, _) =
            signing_keys::nodes_without(&t.store, &settings, &next.kid, t.clock.now_millis())
                .unwrap();
        assert!(missing.is_empty());

        // Promote: after their next refresh both nodes sign with the new key, and verify each
        // other's tokens and the old ones.
        let promoted_at = t.clock.now_millis();
        let until = signing_keys::promote(&t.store, &settings, &next.kid, promoted_at).unwrap();
        assert_eq!(
            until,
            promoted_at + (t.config.auth.token_ttl_secs + 2 * settings.refresh_secs) as i64 * 1000
        );
        t.server.refresh_keys().await.unwrap();
        b.refresh_keys().await.unwrap();
        let on_a = sign_in_person(&t.site(), me_id, &mut p.authenticator)
            .await
            .unwrap();
        let b_site = rfl_client::Site::new(&b_url, &t.config.webauthn.rp_origin);
        let on_b = sign_in_person(&b_site, me_id, &mut p.authenticator)
            .await
            .unwrap();
        for token in [on_a.token().unwrap(), on_b.token().unwrap()] {
            assert_eq!(
                kid(token),
                next.kid,
                "the promoted key signs every new token"
            );
            assert_eq!(me(&a_url, token).await, 200);
            assert_eq!(me(&b_url, token).await, 200);
        }
        assert_eq!(
            me(&a_url, &old_token).await,
            200,
            "the old key still verifies"
        );
        assert_eq!(me(&b_url, &old_token).await, 200);

        // A token of the old key valid for longer than any the server issues (forged with the old
        // key file, which a test can read): accepted until the old key retires, refused after.
        let long = {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let parts: Vec<&str> = old_token.split('.').collect();
            let mut claims: serde_json::Value =
                serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
            claims["exp"] = serde_json::json!(T0_MILLIS / 1000 + 86_400);
            t.sign_token(
                &b64.decode(parts[0]).unwrap(),
                &serde_json::to_vec(&claims).unwrap(),
            )
        };
        assert_eq!(me(&a_url, &long).await, 200);
        t.clock.set_millis(until);
        t.server.refresh_keys().await.unwrap();
        let b_sync = b.refresh_keys().await.unwrap();
        assert_eq!(
            b_sync.verifying,
            vec![next.kid.clone()],
            "the old key is retired"
        );
        assert_eq!(
            me(&a_url, &long).await,
            401,
            "cached verifications went with it"
        );
        assert_eq!(me(&b_url, &long).await, 401);

        // Its file can go; the nodes keep working on the new one.
        let deleted =
            signing_keys::delete_retired_files(&t.store, &settings, t.clock.now_millis()).unwrap();
        assert_eq!(
            deleted,
            vec![std::path::PathBuf::from(&t.config.auth.signing_key_file)]
        );
        let fresh = sign_in_person(&b_site, me_id, &mut p.authenticator)
            .await
            .unwrap();
        assert_eq!(me(&a_url, fresh.token().unwrap()).await, 200);

        // A node without the primary key's file (a folder of its own) refuses to start, naming the
        // file to copy.
        let elsewhere = tempfile::tempdir().unwrap();
        let err = match t
            .another_node(Some(&elsewhere.path().join("token.pk8")))
            .await
        {
            Ok(_) => panic!("a node without the primary key started"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&next.kid), "{err}");

        b.stop().await;
        t.stop().await;
    }
}
