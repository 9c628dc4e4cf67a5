//! Rotating the society recovery key (issue 9), on SQLite and PostgreSQL: one unwrap with the old
//! key and one wrap to the new; every case still opens through the escrow key with the new recovery
//! key, none with the old wrapping gone; a wrong old key, a stale rotation and an escrow key the host
//! swapped are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use rfl_client::ClientError;
use rfl_crypto::{unwrap_escrow_identity, wrap_escrow_identity, AgeIdentity, EscrowBatch};
use rfl_system_tests::{case, Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_recovery_key_opens_every_case_and_the_old_wrapping_is_gone() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let id = cw.create_case(&case(1)).await.unwrap().id;
        let society = *soc.id.as_uuid();
        let before = soc.admin.api().society().await.unwrap().escrow.unwrap();

        let new = AgeIdentity::generate();
        soc.admin
            .rotate_recovery(&soc.recovery, &new.recipient(), Some(&new))
            .await
            .unwrap();
        let after = soc.admin.api().society().await.unwrap().escrow.unwrap();
        assert_eq!(
            after.recipient, before.recipient,
            "the escrow key is unchanged"
        );
        assert_ne!(after.wrapped_identity.0, before.wrapped_identity.0);
        assert!(
            unwrap_escrow_identity(&after.wrapped_identity.0, society, soc.recovery.as_age())
                .is_err()
        );
        let escrow =
            unwrap_escrow_identity(&after.wrapped_identity.0, society, new.as_age()).unwrap();

        // The case's escrow wrapping, untouched, opens with the escrow key the new recovery key gives.
        let who = t.db.blob(soc.id.as_uuid().as_bytes());
        let wraps = t.db.blobs(&format!(
            "SELECT wrapped AS b FROM case_keys WHERE recipient_id = {who}"
        ));
        assert_eq!(wraps.len(), 1);
        let key = EscrowBatch::open(&wraps[0], society, escrow.as_age())
            .unwrap()
            .unwrap(&wraps[0], *id.as_uuid(), 1)
            .unwrap();
        let dto = cw.api().get_case(id, None).await.unwrap();
        assert!(rfl_crypto::parse_commit(&dto.head_commit.unwrap().0)
            .unwrap()
            .commits_to_key(&key));

        // The old recovery key no longer opens what the server holds: a second rotation with it is
        // refused before anything is sent.
        let e = soc
            .admin
            .rotate_recovery(&soc.recovery, &AgeIdentity::generate().recipient(), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_rotation_and_an_escrow_key_the_host_swapped_are_refused() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Crescent B").await;
    let society = *soc.id.as_uuid();
    let escrow = soc.admin.api().society().await.unwrap().escrow.unwrap();

    // A rotation built on a wrapping that is no longer the one stored: 409, nothing changes.
    let body = serde_json::json!({
        "recipient": escrow.recipient,
        "replaces_sha256": "00".repeat(32),
        "wrapped_identity": rfl_domain::api::Base64Bytes(vec![1; 64]),
    });
    let r = t
        .send_raw(
            &soc.admin,
            Method::PUT,
            "/v1/society/escrow/recovery",
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status().as_u16(), 409);
    let still = soc.admin.api().society().await.unwrap().escrow.unwrap();
    assert_eq!(still.wrapped_identity.0, escrow.wrapped_identity.0);

    // The host swaps in an escrow key of its own, wrapped to the society's recovery key: the admin's
    // client opens it but refuses to re-wrap a key the pinned root does not certify.
    let own = AgeIdentity::generate();
    let wrapped = wrap_escrow_identity(&own, society, soc.recovery.recipient().as_age()).unwrap();
    let hex: String = wrapped.iter().map(|b| format!("{b:02x}")).collect();
    t.db.tamper(&format!(
        "UPDATE societies SET escrow_recipient = '{}', escrow_wrapped = X'{hex}'",
        own.recipient()
    ));
    let e = soc
        .admin
        .rotate_recovery(&soc.recovery, &AgeIdentity::generate().recipient(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Tampered(_)), "{e}");
    t.stop().await;
}
