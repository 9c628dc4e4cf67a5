//! Revoking a member (issue 9), on SQLite and PostgreSQL: an admin publishes the society's next signed
//! revocation list and suspends the member; other clients refuse the revoked keys before any wrap; a
//! host that drops or rolls back the list is caught by a client that saw it; the server keeps no list
//! its clients would refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use rfl_client::session::Session;
use rfl_client::ClientError;
use rfl_crypto::{
    DeviceSigningKey, RevocationEntry, RevocationList, RevocationListBody, RevocationReason,
};
use rfl_system_tests::{Backend, TestServer, TestSociety};

fn is_tampered(r: Result<(), ClientError>) -> bool {
    matches!(r, Err(ClientError::Tampered(_)))
}

async fn revoke(soc: &TestSociety, who: &Session) -> rfl_client::trust::Revoked {
    soc.admin
        .revoke_member(who.member_id(), RevocationReason::Departed)
        .await
        .expect("revoke")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_refused_before_any_wrap_and_is_suspended() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let mut a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        a.certified_member(b.member_id()).await.unwrap();

        let r = revoke(&soc, &b).await;
        assert_eq!(r.list_number, Some(1));
        assert!(r.suspended);
        // Running it again changes nothing and says so.
        let again = revoke(&soc, &b).await;
        assert_eq!((again.list_number, again.suspended), (None, false));

        // A's client, which trusted B's keys a moment ago, refuses them now.
        a.refresh_directory().await.unwrap();
        let refused = a.certified_member(b.member_id()).await.unwrap_err();
        assert!(refused.to_string().contains("revoked"), "{refused}");
        // B can no longer use the service.
        let mut b = b;
        let e = b.refresh_directory().await.unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
        // The admin's client does not certify the revoked keys again.
        let e = soc
            .admin
            .certify_member(b.member_id(), &b.keys_fingerprint())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("revoked"), "{e}");
        // An admin cannot revoke themselves.
        assert!(soc
            .admin
            .revoke_member(soc.admin.member_id(), RevocationReason::Departed)
            .await
            .is_err());
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_drops_or_rolls_back_the_revocation_list_is_caught() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Crescent B").await;
        let mut a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        let c = t.caseworker(&soc).await;
        revoke(&soc, &b).await;
        a.refresh_directory().await.unwrap();
        revoke(&soc, &c).await;
        a.refresh_directory().await.unwrap();
        assert!(a.certified_member(c.member_id()).await.is_err());

        // The host serves list 1 again (which does not name C): A saw list 2 and refuses.
        let saved = t.db.tamper("DELETE FROM revocation_lists WHERE number = 2");
        assert_eq!(saved, 1);
        assert!(is_tampered(a.refresh_directory().await));
        // The host serves no list at all.
        t.db.tamper("DELETE FROM revocation_lists");
        assert!(is_tampered(a.refresh_directory().await));
        // A client that never saw a list cannot tell (docs/threat-model.md): it trusts C again.
        let fresh = t.caseworker(&soc).await;
        fresh.certified_member(c.member_id()).await.unwrap();
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_list_is_refused_by_clients_and_the_server_keeps_only_lists_that_follow() {
    let t = TestServer::start(Backend::Sqlite).await;
    let mut soc = t.society("Cruz Roja C").await;
    let mut a = t.caseworker(&soc).await;
    let b = t.caseworker(&soc).await;
    let d = t.caseworker(&soc).await;
    revoke(&soc, &b).await;

    // The host rewrites the stored list: its signature no longer verifies.
    let stored = t.store.latest_revocation_list(soc.id).unwrap().unwrap();
    let mut altered = stored.clone();
    let last = altered.len() - 70;
    altered[last] ^= 1;
    let hex: String = altered.iter().map(|b| format!("{b:02x}")).collect();
    t.db.tamper(&format!(
        "UPDATE revocation_lists SET list = X'{hex}' WHERE number = 1"
    ));
    assert!(is_tampered(a.refresh_directory().await));
    let genuine: String = stored.iter().map(|b| format!("{b:02x}")).collect();
    t.db.tamper(&format!(
        "UPDATE revocation_lists SET list = X'{genuine}' WHERE number = 1"
    ));
    a.refresh_directory().await.unwrap();

    // What the server refuses, sent as a client library would not.
    let first = RevocationList::from_bytes(&stored).unwrap();
    let entry = |s: &Session| RevocationEntry {
        subject_id: *s.member_id().as_uuid(),
        keys_digest: rfl_crypto::subject_keys_digest(
            Some(&s.keys().signing.public_key()),
            &s.keys().age.recipient(),
        ),
        revoked_at: 1,
        reason: RevocationReason::KeyCompromise,
    };
    let society = *soc.id.as_uuid();
    let body = |list: &RevocationList| serde_json::json!({ "list": list.to_hex() }).to_string();
    let next =
        |entries: Vec<RevocationEntry>, number: u64, previous: [u8; 32]| RevocationListBody {
            society_id: society,
            number,
            previous,
            issued_at: 2,
            entries,
        };
    soc.step_up().await;
    let send = |list: RevocationList| {
        let t = &t;
        let admin = &soc.admin;
        async move {
            t.send_raw(
                admin,
                Method::PUT,
                "/v1/society/revocations",
                &[("content-type", "application/json")],
                body(&list),
            )
            .await
            .status()
            .as_u16()
        }
    };
    let admin_key = &soc.admin.keys().signing;
    let mut both = first.body().entries.clone();
    both.push(entry(&d));
    // Signed by a key that is not the caller's.
    let stranger = DeviceSigningKey::generate().unwrap();
    let l = next(both.clone(), 2, first.hash())
        .sign_by_admin(&stranger)
        .unwrap();
    assert_eq!(send(l).await, 422);
    // Not the next number.
    let l = next(both.clone(), 3, first.hash())
        .sign_by_admin(admin_key)
        .unwrap();
    assert_eq!(send(l).await, 409);
    // Drops B's revocation.
    let l = next(vec![entry(&d)], 2, first.hash())
        .sign_by_admin(admin_key)
        .unwrap();
    assert_eq!(send(l).await, 422);
    // Names another predecessor.
    let l = next(both.clone(), 2, [7; 32])
        .sign_by_admin(admin_key)
        .unwrap();
    assert_eq!(send(l).await, 422);
    // Malformed.
    let r = t
        .send_raw(
            &soc.admin,
            Method::PUT,
            "/v1/society/revocations",
            &[("content-type", "application/json")],
            r#"{"list":"00ff"}"#,
        )
        .await;
    assert_eq!(r.status().as_u16(), 400);
    // A caseworker may not publish one.
    let l = next(both.clone(), 2, first.hash())
        .sign_by_admin(&a.keys().signing)
        .unwrap();
    let r = t
        .send_raw(
            &a,
            Method::PUT,
            "/v1/society/revocations",
            &[("content-type", "application/json")],
            body(&l),
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    // The one that follows is kept, and clients follow it.
    let l = next(both, 2, first.hash())
        .sign_by_admin(admin_key)
        .unwrap();
    assert_eq!(send(l).await, 204);
    a.refresh_directory().await.unwrap();
    assert!(a.certified_member(d.member_id()).await.is_err());
    // Nothing was stored by the refused attempts.
    assert_eq!(
        t.db.tamper("DELETE FROM revocation_lists WHERE number > 2"),
        0
    );
    t.stop().await;
}
