//! Sharing a case within a society (issue 9), on SQLite and PostgreSQL: a holder grants the case to
//! another certified member with a signed grant commit; the grantee opens it; who holds it is listed
//! and checked against the signed head; uncertified and revoked members are refused before any wrap;
//! a host that adds a holder behind the clients' back is caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::ClientError;
use rfl_crypto::{CommitOp, RevocationReason};
use rfl_domain::api::GrantRequest;
use rfl_domain::Role;
use rfl_system_tests::{case, note, Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_grants_a_case_and_the_grantee_opens_and_writes_it() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        let created = a.create_case(&case(1)).await.unwrap();
        let id = created.id;
        // B holds no key: the case does not exist for them.
        assert_eq!(b.open_case(id).await.unwrap_err().status(), Some(404));

        a.grant_case(id, b.member_id()).await.unwrap();
        let opened = b.open_case(id).await.unwrap();
        assert_eq!(opened.file.persons.len(), case(1).persons.len());
        assert_eq!(opened.head.seq, 2, "the grant is a commit");

        // Who holds it, checked against the head, as both see it.
        for s in [&a, &b] {
            let o = s.open_case(id).await.unwrap();
            let h = s.case_holders(&o).await.unwrap();
            let ids: Vec<_> = h.holders.iter().map(|x| x.recipient_id).collect();
            let mut members = vec![*a.member_id().as_uuid(), *b.member_id().as_uuid()];
            members.sort();
            members.push(*soc.id.as_uuid());
            assert_eq!(ids, members);
            assert!(h.holders.iter().all(|x| x.certified && !x.revoked));
            assert_eq!(h.holders[0].role, Some(Role::Caseworker));
        }

        // B writes to it; A opens B's commit, which keeps the holders.
        b.add_note(id, note("called the delegation")).await.unwrap();
        let o = a.open_case(id).await.unwrap();
        assert_eq!(o.file.notes.len(), case(1).notes.len() + 1);
        assert_eq!(o.head.seq, 3);

        // Granting twice is refused.
        let e = a.grant_case(id, b.member_id()).await.unwrap_err();
        assert!(e.to_string().contains("already"), "{e}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncertified_and_revoked_members_are_refused_before_any_wrap() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Crescent B").await;
        let a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        // C enrols but is never certified.
        let code = soc
            .admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        let c = t.enrol_person(&code.code).await.session;
        let id = a.create_case(&case(2)).await.unwrap().id;

        let e = a.grant_case(id, c.member_id()).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        soc.admin
            .revoke_member(b.member_id(), RevocationReason::Departed)
            .await
            .unwrap();
        let e = a.grant_case(id, b.member_id()).await.unwrap_err();
        assert!(e.to_string().contains("revoked"), "{e}");
        // Nothing was granted: A alone holds the case.
        let o = a.open_case(id).await.unwrap();
        assert_eq!(o.head.seq, 1);
        let h = a.case_holders(&o).await.unwrap();
        assert_eq!(h.holders.len(), 2, "A and the escrow key");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_the_host_adds_is_caught_and_the_server_refuses_a_grant_that_hides_the_grantee() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Cruz Roja C").await;
        let a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        let c = t.caseworker(&soc).await;
        let id = a.create_case(&case(3)).await.unwrap().id;

        // A grant commit that does not add the grantee to the holders (the head's digest, unchanged):
        // the server refuses it, and nothing is stored.
        let opened = a.open_case(id).await.unwrap();
        let commit = a
            .commit_for(&opened, CommitOp::Grant, opened.status, &[])
            .unwrap();
        let e = a
            .api()
            .grant(
                id,
                &GrantRequest {
                    member_id: b.member_id(),
                    wrapped: vec![1; 200].into(),
                    commit: commit.as_bytes().to_vec().into(),
                    older_keys: vec![],
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(422), "{e}");
        assert_eq!(b.open_case(id).await.unwrap_err().status(), Some(404));

        // The host gives C a key row of its own making (a copy of A's wrapped key): C's client cannot
        // open it, and A's client sees a holder the signed head does not name.
        let n = t.db.tamper(&format!(
            "INSERT INTO case_keys (case_id, recipient_id, key_epoch, wrapped, created_at) \
             SELECT case_id, {}, key_epoch, wrapped, created_at FROM case_keys \
             WHERE recipient_id = {}",
            t.db.blob(c.member_id().as_uuid().as_bytes()),
            t.db.blob(a.member_id().as_uuid().as_bytes()),
        ));
        assert_eq!(n, 1);
        assert!(matches!(
            c.open_case(id).await.unwrap_err(),
            ClientError::Tampered(_)
        ));
        let o = a.open_case(id).await.unwrap();
        let e = a.case_holders(&o).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        // And A refuses to grant on top of that list.
        let e = a.grant_case(id, b.member_id()).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        t.stop().await;
    }
}
