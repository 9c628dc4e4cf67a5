//! Rotating a society's signing root (issue 9), on SQLite and PostgreSQL: the old root signs the new
//! one, which re-certifies the admins and the escrow key and signs the next revocation list. Members
//! who pinned the old fingerprint follow the succession and work on (open, grant, create, verify
//! what others signed before); new members pin the new fingerprint; the old root key certifies
//! nothing any more. A host that swaps in a root of its own, or forges the succession, is caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::ClientError;
use rfl_domain::Role;
use rfl_system_tests::{case, note, Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_follow_the_succession_and_the_old_root_certifies_nothing_more() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let mut soc = t.society("Red Cross S").await;
        let mut a = t.caseworker(&soc).await;
        let mut b = t.caseworker(&soc).await;
        let shared = a.create_case(&case(1)).await.unwrap().id;
        a.add_note(shared, note("before the rotation"))
            .await
            .unwrap();
        a.grant_case(shared, b.member_id()).await.unwrap();
        let notes = a.open_case(shared).await.unwrap().file.notes.len();
        let old_fp = soc.root_fingerprint.clone();

        // A root key that is not the current one rotates nothing.
        soc.step_up().await;
        let stranger = rfl_crypto::SocietyRootKey::generate().unwrap();
        let e = soc
            .admin
            .rotate_root(&stranger, |_| Ok(()))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");

        let mut kept = None;
        let new = soc
            .admin
            .rotate_root(&soc.root, |k| {
                kept = Some(k.public());
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(kept, Some(new.public()), "kept before it was sent");
        let new_fp = new.public().fingerprint();
        assert_ne!(new_fp, old_fp);

        // Members who pinned the old root follow the succession (their trust reloaded).
        a.pin_root(&old_fp).await.unwrap();
        b.pin_root(&old_fp).await.unwrap();
        let seen = b.open_case(shared).await.unwrap();
        assert_eq!(
            seen.file.notes.len(),
            notes,
            "B verifies what A signed before"
        );
        b.add_note(shared, note("after the rotation"))
            .await
            .unwrap();
        assert_eq!(
            a.open_case(shared).await.unwrap().file.notes.len(),
            notes + 1
        );
        let own = b.create_case(&case(2)).await.unwrap().id;
        b.grant_case(own, a.member_id()).await.unwrap();
        a.open_case(own).await.unwrap();

        // A new member pins the new fingerprint; the admin certifies them as before.
        let code = soc
            .admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        let mut c = t.enrol(&code.code).await;
        soc.admin
            .certify_member(c.member_id(), &c.keys_fingerprint())
            .await
            .unwrap();
        c.pin_root(&new_fp).await.unwrap();
        a.grant_case(shared, c.member_id()).await.unwrap();
        assert_eq!(
            c.open_case(shared).await.unwrap().file.notes.len(),
            notes + 1
        );

        // The old root key certifies nothing now: the admin's client refuses it.
        let code = soc
            .admin
            .issue_enrolment_code(Role::SocietyAdmin)
            .await
            .unwrap();
        let admin2 = t.enrol(&code.code).await;
        let e = soc
            .admin
            .certify_admin(admin2.member_id(), &admin2.keys_fingerprint(), &soc.root)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");
        soc.admin
            .certify_admin(admin2.member_id(), &admin2.keys_fingerprint(), &new)
            .await
            .unwrap();

        // A host that swaps in a root of its own (no succession from the pinned one) is caught.
        let evil = rfl_crypto::SocietyRootKey::generate().unwrap();
        let n = t.db.tamper(&format!(
            "UPDATE society_roots SET root_public_key = {}",
            t.db.blob(evil.public().as_bytes())
        ));
        assert_eq!(n, 1);
        let e = b.pin_root(&old_fp).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        // Put back, then a forged succession: its old root's signature broken.
        t.db.tamper(&format!(
            "UPDATE society_roots SET root_public_key = {}",
            t.db.blob(new.public().as_bytes())
        ));
        b.pin_root(&old_fp).await.unwrap();
        let mut forged =
            t.db.blobs("SELECT succession AS b FROM root_successions")
                .remove(0);
        forged[120] ^= 1;
        t.db.tamper(&format!(
            "UPDATE root_successions SET succession = {}",
            t.db.blob(&forged)
        ));
        let e = b.pin_root(&old_fp).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        // A member who pinned the new root is not misled by the old chain either way.
        c.pin_root(&new_fp).await.unwrap();
        t.stop().await;
    }
}
