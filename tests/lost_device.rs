//! A person who lost every authenticator (issue 9), on SQLite and PostgreSQL: an admin resets them
//! (keys revoked as device lost, passkeys removed, sessions ended, a code that re-enrols the same
//! member), they enrol again with new keys, an admin certifies those and re-wraps every case from
//! the escrow key. Afterwards they read every case, history included; the lost keys open nothing
//! of the new epochs; other holders verify what the member signed before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::{sign_in_person, ClientError, SoftAuthenticator};
use rfl_crypto::EscrowBatch;
use rfl_domain::CaseId;
use rfl_system_tests::{case, note, Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_lost_every_authenticator_gets_every_case_back_and_the_lost_keys_nothing_new()
{
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let mut soc = t.society("Red Cross L").await;
        let mut a = t.caseworker_person(&soc).await;
        let b = t.caseworker(&soc).await;
        let me = a.session.member_id();
        // A's own case with a note; a case shared with B; B's case granted to A; a case at epoch 2.
        let own = a.session.create_case(&case(1)).await.unwrap().id;
        a.session
            .add_note(own, note("before the loss"))
            .await
            .unwrap();
        let shared = a.session.create_case(&case(2)).await.unwrap().id;
        a.session.grant_case(shared, b.member_id()).await.unwrap();
        let theirs = b.create_case(&case(3)).await.unwrap().id;
        b.grant_case(theirs, me).await.unwrap();
        let rekeyed = a.session.create_case(&case(4)).await.unwrap().id;
        a.session.add_note(rekeyed, note("epoch 1")).await.unwrap();
        a.session.grant_case(rekeyed, b.member_id()).await.unwrap();
        a.session
            .ungrant_case(rekeyed, b.member_id())
            .await
            .unwrap();
        let cases: [CaseId; 4] = [own, shared, theirs, rekeyed];
        let notes: Vec<usize> = {
            let mut n = Vec::new();
            for id in cases {
                n.push(a.session.open_case(id).await.unwrap().file.notes.len());
            }
            n
        };
        let lost = a.session.keys_arc();

        // 1. The admin resets A: the old session dies, the old authenticator signs in no more.
        soc.step_up().await;
        let e = soc
            .admin
            .reset_member(soc.admin.member_id())
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");
        let code = soc.admin.reset_member(me).await.unwrap();
        assert!(a.session.open_case(own).await.is_err());
        assert!(sign_in_person(&t.site(), me, &mut a.authenticator)
            .await
            .is_err());
        // Running it again issues a new code, and the first one dies.
        let first = code;
        let code = soc.admin.reset_member(me).await.unwrap();
        assert_ne!(code.code, first.code);
        assert!(
            rfl_client::enrol_person(&t.site(), &first.code, &mut SoftAuthenticator::new())
                .await
                .is_err()
        );
        // B stops wrapping to the lost keys at once: a grant to A is refused before any wrap.
        let other = b.create_case(&case(5)).await.unwrap().id;
        assert!(b.grant_case(other, me).await.is_err());

        // 2. A enrols again with the code: the same member, new keys, a new passkey.
        let mut fresh = SoftAuthenticator::new();
        let mut s = rfl_client::enrol_person(&t.site(), &code.code, &mut fresh)
            .await
            .unwrap();
        assert_eq!(s.member_id(), me, "the same member");
        s.pin_root(&soc.root_fingerprint).await.unwrap();
        assert_ne!(
            s.keys().signing.public_key(),
            lost.signing.public_key(),
            "new keys"
        );
        // The code works once.
        assert!(
            rfl_client::enrol_person(&t.site(), &code.code, &mut SoftAuthenticator::new())
                .await
                .is_err()
        );
        // Uncertified, the new keys get nothing re-wrapped.
        let e = soc
            .admin
            .rewrap_member_cases(me, &soc.recovery, |_| {})
            .await
            .unwrap_err();
        assert!(e.to_string().contains("certif"), "{e}");
        soc.admin
            .certify_member(me, &s.keys_fingerprint())
            .await
            .unwrap();

        // 3. The admin re-wraps A's cases from escrow, each at a new epoch.
        let done = soc
            .admin
            .rewrap_member_cases(me, &soc.recovery, |_| {})
            .await
            .unwrap();
        assert_eq!(done.rekeyed, 4, "{done:?}");
        assert!(
            done.skipped.is_empty() && done.left_out.is_empty(),
            "{done:?}"
        );
        // Again: nothing left.
        let again = soc
            .admin
            .rewrap_member_cases(me, &soc.recovery, |_| {})
            .await
            .unwrap();
        assert_eq!(again.rekeyed, 0);

        // A reads every case again, history included, and writes.
        let s = sign_in_person(&t.site(), me, &mut fresh).await.unwrap();
        let mut s = s;
        s.pin_root(&soc.root_fingerprint).await.unwrap();
        for (id, n) in cases.iter().zip(&notes) {
            let o = s.open_case(*id).await.unwrap();
            assert_eq!(o.file.notes.len(), *n, "case {id}: its whole history");
        }
        s.add_note(shared, note("after the reset")).await.unwrap();
        let seen = b.open_case(shared).await.unwrap();
        assert_eq!(
            seen.file.notes.len(),
            notes[1] + 1,
            "B verifies what A signed before and after"
        );
        b.open_case(theirs).await.unwrap();

        // The lost keys open nothing of the new epochs.
        for id in cases {
            let dto = s.api().get_case(id, None).await.unwrap();
            assert!(dto.case.key_epoch >= 2);
            assert!(
                EscrowBatch::open(&dto.wrapped_key.0, *me.as_uuid(), lost.age.as_age()).is_err(),
                "case {id}"
            );
        }
        t.stop().await;
    }
}
