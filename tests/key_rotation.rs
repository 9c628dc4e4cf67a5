//! Rotating a person's keys (issue 9), on SQLite and PostgreSQL: new keys prepared and registered,
//! certified by an admin (which switches the member and revokes the old keys), every case key
//! re-wrapped to the new keys with a new epoch; the old keys open nothing written afterwards,
//! commits signed before the switch still verify for everyone, and sessions holding the old keys
//! stop working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::session::KeyRotation;
use rfl_client::trust::Certification;
use rfl_client::{sign_in_person, ClientError, Session};
use rfl_crypto::{unwrap_self_wrapped, DevicePublicKey};
use rfl_domain::CaseId;
use rfl_system_tests::{case, note, Backend, TestServer, TestSociety};

async fn sign_in(
    t: &TestServer,
    soc: &TestSociety,
    who: rfl_domain::MemberId,
    auth: &mut rfl_client::SoftAuthenticator,
) -> Session {
    let mut s = sign_in_person(&t.site(), who, auth).await.unwrap();
    s.pin_root(&soc.root_fingerprint).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_rotates_their_keys_and_every_case_moves_to_them() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let mut soc = t.society("Red Cross K").await;
        let mut a = t.caseworker_person(&soc).await;
        let b = t.caseworker(&soc).await;
        let me = a.session.member_id();
        // A's own case; a case shared with B; B's case granted to A; a case at epoch 2.
        let own = a.session.create_case(&case(1)).await.unwrap().id;
        let shared = a.session.create_case(&case(2)).await.unwrap().id;
        a.session.grant_case(shared, b.member_id()).await.unwrap();
        let theirs = b.create_case(&case(3)).await.unwrap().id;
        b.grant_case(theirs, me).await.unwrap();
        let rekeyed = a.session.create_case(&case(4)).await.unwrap().id;
        a.session.grant_case(rekeyed, b.member_id()).await.unwrap();
        a.session
            .ungrant_case(rekeyed, b.member_id())
            .await
            .unwrap();
        let cases: [CaseId; 4] = [own, shared, theirs, rekeyed];
        let old_keys = a.session.keys_arc();

        // 1. New keys prepared and registered; nothing changes until they are certified.
        let fp = match a.session.rotate_keys(|_| {}).await.unwrap() {
            KeyRotation::AwaitingCertificate { fingerprint } => fingerprint,
            other => panic!("{other:?}"),
        };
        let next = a.session.prepared_keys().unwrap().clone();
        // Running it again registers the same keys.
        match a.session.rotate_keys(|_| {}).await.unwrap() {
            KeyRotation::AwaitingCertificate { fingerprint } => assert_eq!(fingerprint, fp),
            other => panic!("{other:?}"),
        }
        a.session.open_case(own).await.unwrap();
        // The prepared keys survive a new sign-in (the authenticator holds them).
        let again = sign_in(&t, &soc, me, &mut a.authenticator).await;
        assert!(again.prepared_keys().is_some());
        assert!(again.retired_keys().is_none());

        // 2. A wrong fingerprint certifies nothing; the right one switches A to the new keys.
        soc.step_up().await;
        let e = soc.admin.certify_member(me, "0000").await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        assert_eq!(
            soc.admin.certify_member(me, &fp).await.unwrap(),
            Certification::Rotated
        );
        // The same fingerprint again: those keys are now the member's registered ones, so this is
        // an ordinary renewal of their certificate.
        assert_eq!(
            soc.admin.certify_member(me, &fp).await.unwrap(),
            Certification::Certified
        );
        // The session still holding the old keys no longer works.
        assert!(a.session.add_note(own, note("late")).await.is_err());

        // Between the switch and the re-wrap, A reads everything (with the old keys) and B still
        // verifies what A signed with the old keys.
        let mut s = sign_in(&t, &soc, me, &mut a.authenticator).await;
        assert!(s.retired_keys().is_some());
        assert_eq!(
            s.keys().signing.public_key(),
            next.signing.public_key(),
            "the new keys are in use"
        );
        for id in cases {
            s.open_case(id).await.unwrap();
        }
        let notes_before = b.open_case(shared).await.unwrap().file.notes.len();

        // 3. Every case key is re-wrapped to the new keys, each case at a new epoch.
        let done = match s.rotate_keys(|_| {}).await.unwrap() {
            KeyRotation::Switched(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(done.finished, "{done:?}");
        assert_eq!(done.rekeyed, 4, "{done:?}");
        assert!(
            done.skipped.is_empty() && done.left_out.is_empty(),
            "{done:?}"
        );
        assert_eq!(done.authenticators, 1);
        assert!(s
            .api()
            .retired_cases(None, 10)
            .await
            .unwrap()
            .cases
            .is_empty());

        // Signed in again: only the new keys; every case opens, old records included.
        let s = sign_in(&t, &soc, me, &mut a.authenticator).await;
        assert!(s.retired_keys().is_none() && s.prepared_keys().is_none());
        for id in cases {
            let o = s.open_case(id).await.unwrap();
            assert!(!o.file.persons.is_empty());
        }
        s.add_note(shared, note("after the rotation"))
            .await
            .unwrap();
        let seen = b.open_case(shared).await.unwrap();
        assert_eq!(
            seen.file.notes.len(),
            notes_before + 1,
            "B reads what A signed with the new keys"
        );
        // Holders name A's new keys.
        let holders = s
            .case_holders(&s.open_case(shared).await.unwrap())
            .await
            .unwrap();
        assert!(holders.holders.iter().all(|h| !h.revoked), "{holders:?}");

        // The old keys open nothing written after the rotation: A's key of the new epoch is
        // wrapped to the new key-wrapping key only.
        let dto = s.api().get_case(own, None).await.unwrap();
        assert_eq!(dto.case.key_epoch, 2);
        assert!(unwrap_self_wrapped(
            &dto.wrapped_key.0,
            *own.as_uuid(),
            2,
            old_keys.case_key().unwrap()
        )
        .is_err());
        for k in &dto.older_keys {
            assert!(unwrap_self_wrapped(
                &k.wrapped.0,
                *own.as_uuid(),
                k.key_epoch,
                old_keys.case_key().unwrap()
            )
            .is_err());
        }
        // The old keys are revoked: nobody wraps to them again.
        let m = b
            .api()
            .members()
            .await
            .unwrap()
            .members
            .into_iter()
            .find(|m| m.id == me)
            .unwrap();
        assert_eq!(
            DevicePublicKey::from_slice(&m.signing_key.0).unwrap(),
            next.signing.public_key()
        );
        assert!(m.next_keys.is_none());
        t.stop().await;
    }
}
