//! Transfers between national societies (issue 9), on SQLite and PostgreSQL: the Movement root
//! certifies society roots; a caseworker offers a case to another society, whose keys their client
//! verified through the Movement root they pinned; that society's admin verifies the case as a
//! whole, accepts it and assigns it. The sender gives access up (a new key epoch without them) or
//! keeps it (both societies read and write it, each verifying the other's signatures). A transfer
//! to a society the pinned Movement root does not certify is refused before anything is wrapped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::ClientError;
use rfl_system_tests::{case, note, Backend, Person, TestServer, T0_MILLIS};

fn assert_refused(e: &ClientError, what: &str) {
    assert!(
        matches!(e, ClientError::Invalid(m) if m.contains(what)),
        "expected a refusal naming {what:?}, got {e}"
    );
}

/// The Movement admin enrolled, stepped up, with a new Movement root set on the server and pinned:
/// the admin, the root (held offline) and its fingerprint.
async fn movement_root(t: &TestServer) -> (Person, rfl_crypto::SocietyRootKey, String) {
    let code = rfl_api::identity::movement_admin_code(&t.store, T0_MILLIS, 72).unwrap();
    let mut mv = t.enrol_person(&code).await;
    mv.session.step_up(&mut mv.authenticator).await.unwrap();
    let movement = mv.session.init_movement().await.unwrap();
    let fp = movement.public().fingerprint();
    mv.session.pin_movement(&fp);
    (mv, movement, fp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_moves_to_a_society_the_movement_root_certifies_and_nowhere_else() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        // The Movement admin creates the Movement root (held offline) and pins it.
        let (mv, movement, fp) = movement_root(&t).await;
        // Set once.
        let other = rfl_crypto::SocietyRootKey::generate().unwrap();
        let e = mv.session.set_movement_root(&other).await.unwrap_err();
        assert!(matches!(e, ClientError::Api { status: 409, .. }), "{e}");

        let mut a = t.society("Red Cross A").await;
        let mut b = t.society("Red Crescent B").await;
        let c = t.society("Red Cross C").await;
        for s in [&mut a.admin, &mut b.admin] {
            s.pin_movement(&fp);
        }
        let mut a1 = t.caseworker(&a).await;
        let mut b1 = t.caseworker(&b).await;
        a1.pin_movement(&fp);
        b1.pin_movement(&fp);

        let given = a1.create_case(&case(1)).await.unwrap().id;
        a1.add_note(given, note("traced to a camp in the north"))
            .await
            .unwrap();
        let before = a1.open_case(given).await.unwrap();

        // B is not certified yet: refused before anything is wrapped or sent.
        let e = a1.offer_transfer(given, b.id, false).await.unwrap_err();
        assert_refused(&e, "not certified by the Movement root");
        assert!(b.admin.transfers(false).await.unwrap().is_empty());

        // The Movement admin certifies A and B after comparing their root fingerprints; a wrong
        // fingerprint certifies nothing.
        let e = mv
            .session
            .certify_society(&movement, b.id, &a.root_fingerprint)
            .await
            .unwrap_err();
        assert_refused(&e, "does not match the fingerprint");
        for s in [&a, &b] {
            mv.session
                .certify_society(&movement, s.id, &s.root_fingerprint)
                .await
                .unwrap();
        }

        // A host that slips in a certificate of C signed by a Movement root of its own gains
        // nothing: C stays uncertified for every client.
        let rogue = rfl_crypto::SocietyCertificate::issue(
            &other,
            *c.id.as_uuid(),
            &c.root.public(),
            rfl_crypto::Validity::new(0, i64::MAX / 2).unwrap(),
        )
        .unwrap();
        t.store
            .put_society_certificate(c.id, c.root.public().as_bytes(), &rogue.to_bytes(), 0)
            .unwrap();
        let e = a1.offer_transfer(given, c.id, false).await.unwrap_err();
        assert_refused(&e, "not certified by the Movement root");
        // A client pinned to another Movement root trusts nobody's certificate.
        let mut stranger = t.caseworker(&a).await;
        stranger.pin_movement(&other.public().fingerprint());
        let own = stranger.create_case(&case(9)).await.unwrap().id;
        let e = stranger.offer_transfer(own, b.id, false).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        // Nor is a society its own destination.
        let e = a1.offer_transfer(given, a.id, false).await.unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");

        // The offer: pending, one at a time, seen by both societies' admins.
        let offer = a1.offer_transfer(given, b.id, false).await.unwrap();
        assert_eq!(offer.state, "pending");
        let e = a1.offer_transfer(given, b.id, false).await.unwrap_err();
        assert!(matches!(e, ClientError::Api { status: 409, .. }), "{e}");
        assert_eq!(a.admin.transfers(true).await.unwrap()[0].id, offer.id);
        assert_eq!(b.admin.transfers(true).await.unwrap()[0].id, offer.id);
        assert!(c.admin.transfers(false).await.unwrap().is_empty());
        // Until it is accepted, nothing changes for the sender.
        a1.open_case(given).await.unwrap();
        // Not a member of B, or a wrong recovery identity: refused.
        b.step_up().await;
        let e = b
            .admin
            .accept_transfer(offer.id, a1.member_id(), &b.recovery)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("certif"), "{e}");
        let e = b
            .admin
            .accept_transfer(offer.id, b1.member_id(), &a.recovery)
            .await
            .unwrap_err();
        assert_refused(&e, "recovery identity");

        // Accepted, assigned to B's caseworker: a new key epoch without A's holders.
        let moved = b
            .admin
            .accept_transfer(offer.id, b1.member_id(), &b.recovery)
            .await
            .unwrap();
        assert_eq!(moved.society_id, b.id);
        assert_eq!(moved.key_epoch, 2);
        let seen = b1.open_case(given).await.unwrap();
        assert_eq!(
            seen.file.notes, before.file.notes,
            "the whole history moves"
        );
        assert_eq!(seen.file.header, before.file.header);
        b1.add_note(given, note("family informed")).await.unwrap();
        let e = a1.open_case(given).await.unwrap_err();
        assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e}");
        let done = &a.admin.transfers(false).await.unwrap()[0];
        assert_eq!(done.state, "accepted");
        assert_eq!(done.assigned_to, Some(b1.member_id()));
        let e = b
            .admin
            .accept_transfer(offer.id, b1.member_id(), &b.recovery)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e}");

        // Keeping access: both societies hold the case and verify each other's commits.
        let shared = a1.create_case(&case(2)).await.unwrap().id;
        let n = a1.open_case(shared).await.unwrap().file.notes.len();
        let offer = a1.offer_transfer(shared, b.id, true).await.unwrap();
        let moved = b
            .admin
            .accept_transfer(offer.id, b1.member_id(), &b.recovery)
            .await
            .unwrap();
        assert_eq!((moved.society_id, moved.key_epoch), (b.id, 1));
        b1.add_note(shared, note("seen at the border"))
            .await
            .unwrap();
        let at_a = a1.open_case(shared).await.unwrap();
        assert_eq!(
            at_a.file.notes.len(),
            n + 1,
            "A verifies B's commit and reads it"
        );
        a1.add_note(shared, note("the enquirer moved"))
            .await
            .unwrap();
        assert_eq!(b1.open_case(shared).await.unwrap().file.notes.len(), n + 2);
        // Each side lists the holders of both, checked against the signed head, and shares the
        // case within its own society.
        let b2 = t.caseworker(&b).await;
        b1.grant_case(shared, b2.member_id()).await.unwrap();
        assert_eq!(b2.open_case(shared).await.unwrap().file.notes.len(), n + 2);
        let opened = a1.open_case(shared).await.unwrap();
        let holders = a1.case_holders(&opened).await.unwrap();
        for m in [a1.member_id(), b1.member_id(), b2.member_id()] {
            let h = holders
                .holders
                .iter()
                .find(|h| h.recipient_id == *m.as_uuid())
                .unwrap();
            assert!(h.certified, "{m} is certified by their society's root");
        }
        let opened = b1.open_case(shared).await.unwrap();
        let holders = b1.case_holders(&opened).await.unwrap();
        assert!(holders
            .holders
            .iter()
            .any(|h| h.recipient_id == *a1.member_id().as_uuid() && h.certified));
        let mut a2 = t.caseworker(&a).await;
        a1.grant_case(shared, a2.member_id()).await.unwrap();
        // A member who pinned no Movement root is told to, not shown a case it cannot verify.
        let e = a2.open_case(shared).await.unwrap_err();
        assert_refused(&e, "pin the Movement root");
        a2.pin_movement(&fp);
        a2.open_case(shared).await.unwrap();
        // The owning society re-keys it, keeping the other society's holders (their keys
        // verified through the Movement root); the sending side cannot.
        let e = a1.ungrant_case(shared, a2.member_id()).await.unwrap_err();
        assert_refused(&e, "its holders there re-key it");
        let rekeyed = b1.ungrant_case(shared, a2.member_id()).await.unwrap();
        assert_eq!(rekeyed.key_epoch, 2);
        let e = a2.open_case(shared).await.unwrap_err();
        assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e}");
        assert_eq!(a1.open_case(shared).await.unwrap().summary.key_epoch, 2);
        b2.open_case(shared).await.unwrap();

        // Rejected by B, or cancelled by A: the case stays where it was.
        let stays = a1.create_case(&case(3)).await.unwrap().id;
        let offer = a1.offer_transfer(stays, b.id, false).await.unwrap();
        b.step_up().await;
        assert_eq!(
            b.admin.reject_transfer(offer.id).await.unwrap().state,
            "rejected"
        );
        let offer = a1.offer_transfer(stays, b.id, false).await.unwrap();
        a.step_up().await;
        assert_eq!(
            a.admin.reject_transfer(offer.id).await.unwrap().state,
            "cancelled"
        );
        let e = c.admin.reject_transfer(offer.id).await.unwrap_err();
        assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e}");
        let kept = a1.open_case(stays).await.unwrap();
        assert_eq!(kept.summary.society_id, a.id);
        t.stop().await;
    }
}

/// A member of A who kept access to a case transferred to B is revoked by A: A's re-key cannot
/// touch B's case, so B's admin finds them (the server lists them as suspended), checks the
/// revocation on A's signed list through the Movement root, and re-keys B's cases without them,
/// keeping A's other holders. The key the revoked member kept opens nothing written afterwards. A
/// member A only suspended, with no revocation on its list, is left as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_revoked_by_their_society_is_rekeyed_out_of_the_other_societys_cases() {
    use rfl_crypto::{open_record, parse_envelope_header, unwrap_self_wrapped, RevocationReason};
    use rfl_domain::api::CaseDto;
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let (mv, movement, fp) = movement_root(&t).await;
        let mut a = t.society("Red Cross A").await;
        let mut b = t.society("Red Crescent B").await;
        for s in [&a, &b] {
            mv.session
                .certify_society(&movement, s.id, &s.root_fingerprint)
                .await
                .unwrap();
        }
        for s in [&mut a.admin, &mut b.admin] {
            s.pin_movement(&fp);
        }
        let mut a1 = t.caseworker(&a).await;
        let mut a2 = t.caseworker(&a).await;
        let mut a3 = t.caseworker(&a).await;
        let mut b1 = t.caseworker(&b).await;
        for s in [&mut a1, &mut a2, &mut a3, &mut b1] {
            s.pin_movement(&fp);
        }
        // Two cases move to B with A keeping access: one shared by a1 and a2, one by a3. And a
        // case of A's own that a1 holds.
        let shared = a1.create_case(&case(1)).await.unwrap().id;
        a1.grant_case(shared, a2.member_id()).await.unwrap();
        let other = a3.create_case(&case(2)).await.unwrap().id;
        let own = a1.create_case(&case(3)).await.unwrap().id;
        b.step_up().await;
        for (id, by) in [(shared, &a1), (other, &a3)] {
            let offer = by.offer_transfer(id, b.id, true).await.unwrap();
            b.admin
                .accept_transfer(offer.id, b1.member_id(), &b.recovery)
                .await
                .unwrap();
        }
        assert!(b
            .admin
            .suspended_foreign_holders()
            .await
            .unwrap()
            .is_empty());
        let other_epoch = b1.open_case(other).await.unwrap().summary.key_epoch;

        // What a1 keeps: the shared case's data key of its current epoch.
        let kept: CaseDto = a1.api().get_case(shared, None).await.unwrap();
        let epoch = kept.case.key_epoch;
        let old_key = unwrap_self_wrapped(
            &kept.wrapped_key.0,
            *shared.as_uuid(),
            epoch,
            a1.keys().case_key().unwrap(),
        )
        .unwrap();

        // A revokes a1 and re-keys A's cases: B's case is not A's to re-key.
        a.step_up().await;
        a.admin
            .revoke_member(a1.member_id(), RevocationReason::Departed)
            .await
            .unwrap();
        let done = a
            .admin
            .rekey_member_cases(a1.member_id(), |_| {})
            .await
            .unwrap();
        assert_eq!(done.rekeyed, 1, "A's own case only: {done:?}");
        // A's admin is told what only B can re-key.
        let elsewhere = a
            .admin
            .member_cases_elsewhere(a1.member_id())
            .await
            .unwrap();
        assert_eq!(elsewhere.len(), 1);
        assert_eq!((elsewhere[0].society_id, elsewhere[0].cases), (b.id, 1));
        let e = b
            .admin
            .member_cases_elsewhere(a1.member_id())
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(404), "only the member's own society asks");
        assert_eq!(a2.open_case(own).await.unwrap_err().status(), Some(404));
        assert_eq!(b1.open_case(shared).await.unwrap().summary.key_epoch, epoch);
        // A suspends a3 without revoking their keys: the server's word alone re-keys nothing.
        a.admin.api().suspend(a3.member_id()).await.unwrap();

        let listed = b.admin.suspended_foreign_holders().await.unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        let find = |m: rfl_domain::MemberId| listed.iter().find(|h| h.member == m).unwrap();
        let (h1, h3) = (find(a1.member_id()), find(a3.member_id()));
        assert_eq!(
            (h1.society, h1.cases, h1.unverified.clone()),
            (a.id, 1, None)
        );
        assert!(h3
            .unverified
            .as_deref()
            .unwrap()
            .contains("does not revoke"));

        b.step_up().await;
        let done = b.admin.rekey_revoked_holders(|_, _| {}).await.unwrap();
        assert_eq!(done.rekeyed.len(), 1, "{done:?}");
        assert_eq!(done.rekeyed[0].holder.member, a1.member_id());
        assert_eq!(done.rekeyed[0].rekey.rekeyed, 1);
        assert!(
            done.rekeyed[0].rekey.left_out.is_empty(),
            "a2 is kept: {done:?}"
        );
        assert_eq!(done.unverified.len(), 1);
        assert_eq!(done.unverified[0].member, a3.member_id());
        // a3 still holds the other case; a1 holds nothing of B's any more.
        assert_eq!(
            b1.open_case(other).await.unwrap().summary.key_epoch,
            other_epoch
        );
        let listed = b.admin.suspended_foreign_holders().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].member, a3.member_id());

        // B writes after the re-key; A's remaining holder reads it, a1's kept key opens none of it.
        let opened = b1.open_case(shared).await.unwrap();
        assert_eq!(opened.summary.key_epoch, epoch + 1);
        let holders = b1.case_holders(&opened).await.unwrap();
        let ids: Vec<_> = holders.holders.iter().map(|h| h.recipient_id).collect();
        assert!(!ids.contains(a1.member_id().as_uuid()), "{ids:?}");
        assert!(ids.contains(a2.member_id().as_uuid()), "{ids:?}");
        b1.add_note(shared, note("the family was found"))
            .await
            .unwrap();
        let n = a2.open_case(shared).await.unwrap().file.notes.len();
        assert_eq!(n, case(1).notes.len() + 1);
        let now: CaseDto = b1.api().get_case(shared, None).await.unwrap();
        let newest = now
            .records
            .iter()
            .find(|r| parse_envelope_header(&r.envelope.0).unwrap().aad.key_epoch == epoch + 1)
            .expect("a record sealed under the new epoch");
        let aad = parse_envelope_header(&newest.envelope.0).unwrap().aad;
        assert!(open_record(&old_key, &aad, &newest.envelope.0).is_err());
        t.stop().await;
    }
}
