//! Key epochs (issue 9), on SQLite and PostgreSQL: revoking a member re-keys every case they held;
//! a revoked member's client, holding every key and ciphertext it ever had, opens nothing written
//! afterwards; a host that keeps them in or serves the old epoch is caught; a holder removes another
//! (ungrant); records of earlier epochs still open, for a member granted later too, and are sealed
//! again under the new key on request; the server refuses re-keys that add, keep or hide holders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_crypto::{
    open_record, parse_commit, parse_envelope_header, unwrap_data_key, wrap_data_key, DataKey,
    RevocationReason,
};
use rfl_domain::api::{CaseDto, RekeyDto, RekeyRequest, WrappedKeyDto};
use rfl_domain::CaseId;
use rfl_system_tests::{case, note, Backend, TestServer};

/// What `rfl member revoke` does: the revocation list and suspension, then the re-key.
async fn revoke(
    admin: &rfl_client::Session,
    member: rfl_domain::MemberId,
) -> rfl_client::RekeySummary {
    admin
        .revoke_member(member, RevocationReason::Departed)
        .await
        .unwrap();
    admin.rekey_member_cases(member, |_| {}).await.unwrap()
}

/// Every record envelope of a case as `dto` serves it, with its key epoch.
fn epochs(dto: &CaseDto) -> Vec<u32> {
    dto.records
        .iter()
        .map(|r| parse_envelope_header(&r.envelope.0).unwrap().aad.key_epoch)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_member_rekeys_their_cases_and_every_key_they_kept_opens_nothing_new() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross R").await;
        let a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        let mut shared: Vec<CaseId> = Vec::new();
        for seed in 1..=3 {
            let id = a.create_case(&case(seed)).await.unwrap().id;
            a.grant_case(id, b.member_id()).await.unwrap();
            shared.push(id);
        }
        // A case B alone holds: after the revocation only the escrow key holds it.
        let own = b.create_case(&case(9)).await.unwrap().id;
        let id = shared[0];

        // What B keeps: the case as served to B, and B's data key, unwrapped.
        let kept: CaseDto = b.api().get_case(id, None).await.unwrap();
        let old_key: DataKey =
            unwrap_data_key(&kept.wrapped_key.0, *id.as_uuid(), 1, b.keys().age.as_age()).unwrap();
        let head_before = a.open_case(id).await.unwrap().head;

        let done = revoke(&soc.admin, b.member_id()).await;
        assert_eq!(done.rekeyed, 4, "{done:?}");
        assert!(done.left_out.is_empty());
        // Running it again finds nothing left to do.
        let again = soc
            .admin
            .rekey_member_cases(b.member_id(), |_| {})
            .await
            .unwrap();
        assert_eq!(again.rekeyed, 0);

        // A opens every shared case at epoch 2; the old records still open (under epoch 1's key).
        for s in &shared {
            let o = a.open_case(*s).await.unwrap();
            assert_eq!(o.summary.key_epoch, 2);
            assert_eq!(o.file.persons.len(), case(1).persons.len());
            let h = a.case_holders(&o).await.unwrap();
            let ids: Vec<_> = h.holders.iter().map(|x| x.recipient_id).collect();
            assert_eq!(ids, vec![*a.member_id().as_uuid(), *soc.id.as_uuid()]);
        }
        let o = a.open_case(own).await;
        assert_eq!(
            o.unwrap_err().status(),
            Some(404),
            "A never held B's own case"
        );

        // A writes after the revocation.
        a.add_note(id, note("the family was found in the north"))
            .await
            .unwrap();
        // The case as served now (B's client never opened it, so no earlier head binds it).
        assert!(b.heads().get(id).is_none());
        let now: CaseDto = a.api().get_case(id, None).await.unwrap();
        assert_eq!(now.case.key_epoch, 2);
        let newest = now
            .records
            .iter()
            .find(|r| parse_envelope_header(&r.envelope.0).unwrap().aad.key_epoch == 2)
            .expect("a record sealed under the new epoch");
        let aad = parse_envelope_header(&newest.envelope.0).unwrap().aad;
        // B's old key opens none of it ...
        assert!(open_record(&old_key, &aad, &newest.envelope.0).is_err());
        // ... and B's client, holding that key, refuses the case as served now: the old key
        // wrapped to epoch 2 (what a colluding host could serve) is not the key the head commits to.
        let mut forged = now.clone();
        forged.wrapped_key = wrap_data_key(
            &old_key,
            *id.as_uuid(),
            2,
            b.keys().age.recipient().as_age(),
        )
        .unwrap()
        .into();
        let e = b.decrypt_case(id, forged).unwrap_err();
        assert!(
            e.to_string()
                .contains("not the one this case is sealed under"),
            "{e}"
        );
        // The old wrapped key itself, served as epoch 2's, does not open (it is bound to epoch 1).
        let mut replayed = now.clone();
        replayed.wrapped_key = kept.wrapped_key.clone();
        let e = b.decrypt_case(id, replayed).unwrap_err();
        assert!(e.to_string().contains("does not open"), "{e}");
        // The server no longer serves B anything of these cases (B is suspended, and its key rows
        // are gone).
        assert_eq!(
            t.db.blobs(&format!(
                "SELECT wrapped AS b FROM case_keys WHERE recipient_id = {}",
                t.db.blob(b.member_id().as_uuid().as_bytes())
            ))
            .len(),
            0
        );

        // A member granted after the re-key opens the old records too (the grant passes every
        // epoch's key), and so does the new note.
        let c = t.caseworker(&soc).await;
        a.grant_case(id, c.member_id()).await.unwrap();
        let oc = c.open_case(id).await.unwrap();
        assert_eq!(oc.file.notes.len(), case(1).notes.len() + 1);

        // Eager re-encryption: every record moves to epoch 2, and both still open the case.
        assert!(epochs(&now).contains(&1));
        a.reencrypt_case(id).await.unwrap().expect("records moved");
        let after: CaseDto = a.api().get_case(id, None).await.unwrap();
        assert!(
            epochs(&after).iter().all(|e| *e == 2),
            "{:?}",
            epochs(&after)
        );
        assert!(a.reencrypt_case(id).await.unwrap().is_none());
        let oc = c.open_case(id).await.unwrap();
        assert_eq!(oc.file.notes.len(), case(1).notes.len() + 1);

        // A host that serves the case as it was before the revocation (the re-key commit and
        // everything after dropped, epoch 1 again) is caught by a client that saw the re-key.
        t.db.tamper(&format!(
            "UPDATE cases SET version = {}, key_epoch = 1, head_hash = {} WHERE id = {}",
            head_before.seq,
            t.db.blob(&head_before.hash.0),
            t.db.blob(id.as_uuid().as_bytes())
        ));
        // (A still has its key row of epoch 1, so the server serves A the old head.)
        let e = a.open_case(id).await.unwrap_err();
        assert!(e.to_string().contains("rolled this case back"), "{e}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_ungrants_another_and_the_server_refuses_rekeys_that_add_keep_or_hide_holders() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Crescent U").await;
        let a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        let c = t.caseworker(&soc).await;
        let id = a.create_case(&case(11)).await.unwrap().id;
        a.grant_case(id, b.member_id()).await.unwrap();
        b.open_case(id).await.unwrap();

        // Refused before anything is sent: oneself, and a member who does not hold the case.
        assert!(a.ungrant_case(id, a.member_id()).await.is_err());
        let e = a.ungrant_case(id, c.member_id()).await.unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e}");
        // C, who does not hold the case, cannot re-key it: it does not exist for them.
        let opened = a.open_case(id).await.unwrap();
        let ek = a.sealer().unwrap().escrow_recipient().unwrap();
        let bogus = RekeyRequest {
            cases: vec![RekeyDto {
                case_id: id,
                keys: vec![],
                commit: vec![0; 255].into(),
                own_older_keys: vec![],
                older_keys_of: None,
            }],
        };
        assert_eq!(
            c.api().rekey(&bogus, &ek).await.unwrap_err().status(),
            Some(404)
        );

        // A re-key that hands the new key to someone who never held the case (a grant in
        // disguise), or that leaves out the escrow key: 422, nothing written.
        let escrow = WrappedKeyDto {
            recipient_id: *soc.id.as_uuid(),
            wrapped: vec![1; 300].into(),
        };
        let to = |m: rfl_domain::MemberId| WrappedKeyDto {
            recipient_id: *m.as_uuid(),
            wrapped: vec![1; 200].into(),
        };
        let commit = a
            .commit_for(&opened, rfl_crypto::CommitOp::Rekey, opened.status, &[])
            .unwrap();
        for keys in [
            vec![to(a.member_id()), to(c.member_id()), escrow.clone()],
            vec![to(a.member_id())],
            vec![to(a.member_id()), escrow.clone()],
        ] {
            let e = a
                .api()
                .rekey(
                    &RekeyRequest {
                        cases: vec![RekeyDto {
                            case_id: id,
                            keys,
                            commit: commit.as_bytes().to_vec().into(),
                            own_older_keys: vec![],
                            older_keys_of: None,
                        }],
                    },
                    &ek,
                )
                .await
                .unwrap_err();
            assert_eq!(e.status(), Some(422), "{e}");
        }
        assert_eq!(a.open_case(id).await.unwrap().summary.key_epoch, 1);

        // The ungrant: B loses the case, A and C (granted later) keep working.
        let s = a.ungrant_case(id, b.member_id()).await.unwrap();
        assert_eq!(s.key_epoch, 2);
        assert_eq!(b.open_case(id).await.unwrap_err().status(), Some(404));
        let head = parse_commit(
            &a.api()
                .get_case(id, None)
                .await
                .unwrap()
                .head_commit
                .unwrap()
                .0,
        )
        .unwrap();
        assert_eq!(head.body().op, rfl_crypto::CommitOp::Rekey);
        a.add_note(id, note("after the ungrant")).await.unwrap();
        a.grant_case(id, c.member_id()).await.unwrap();
        let oc = c.open_case(id).await.unwrap();
        assert_eq!(oc.file.notes.len(), case(11).notes.len() + 1);

        // A stale re-key (its parent is no longer the head) is a conflict.
        let stale = RekeyRequest {
            cases: vec![RekeyDto {
                case_id: id,
                keys: vec![to(a.member_id()), escrow.clone()],
                commit: commit.as_bytes().to_vec().into(),
                own_older_keys: vec![],
                older_keys_of: None,
            }],
        };
        assert_eq!(
            a.api().rekey(&stale, &ek).await.unwrap_err().status(),
            Some(409)
        );

        // The admin's listing of a member's cases is for admins only.
        assert_eq!(
            a.api()
                .member_cases(c.member_id(), None, 10)
                .await
                .unwrap_err()
                .status(),
            Some(403)
        );
        let listed = soc
            .admin
            .api()
            .member_cases(c.member_id(), None, 10)
            .await
            .unwrap();
        assert_eq!(listed.cases.len(), 1);
        assert_eq!(listed.cases[0].case.id, id);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_leaves_out_suspended_holders_skips_what_does_not_verify_and_stale_writes_get_409(
) {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross S").await;
        let a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        let d = t.caseworker(&soc).await;
        // B's cases: one shared with A and D, one shared with A, one whose head the host breaks.
        let shared = b.create_case(&case(21)).await.unwrap().id;
        b.grant_case(shared, a.member_id()).await.unwrap();
        b.grant_case(shared, d.member_id()).await.unwrap();
        let second = b.create_case(&case(22)).await.unwrap().id;
        b.grant_case(second, a.member_id()).await.unwrap();
        let broken = b.create_case(&case(23)).await.unwrap().id;
        // A opens the shared case now, and will write to it after the re-key from this view.
        let stale = a.open_case(shared).await.unwrap();

        // D is suspended (not revoked): the re-key leaves them out rather than failing.
        soc.admin.api().suspend(d.member_id()).await.unwrap();
        // The host flips a bit of one head's signature.
        let n = t.db.tamper(&format!(
            "UPDATE case_commits SET body = {} WHERE case_id = {} AND seq = 1",
            t.db.blob(&{
                let mut c =
                    t.db.blobs(&format!(
                        "SELECT body AS b FROM case_commits WHERE case_id = {} AND seq = 1",
                        t.db.blob(broken.as_uuid().as_bytes())
                    ))
                    .remove(0);
                c[200] ^= 1;
                c
            }),
            t.db.blob(broken.as_uuid().as_bytes())
        ));
        assert_eq!(n, 1);

        let done = revoke(&soc.admin, b.member_id()).await;
        assert_eq!(done.rekeyed, 2, "{done:?}");
        assert_eq!(done.left_out.get(d.member_id().as_uuid()), Some(&1));
        assert_eq!(done.skipped.len(), 1, "{done:?}");
        assert_eq!(done.skipped[0].case, broken);
        let o = a.open_case(shared).await.unwrap();
        let h = a.case_holders(&o).await.unwrap();
        let ids: Vec<_> = h.holders.iter().map(|x| x.recipient_id).collect();
        assert_eq!(ids, vec![*a.member_id().as_uuid(), *soc.id.as_uuid()]);

        // A write sealed under the old epoch, on the old head: 409 (reload and retry), not 422.
        let w = a
            .seal_record(
                &stale,
                rfl_domain::RecordId::new(),
                rfl_domain::api::RecordKind::Note,
                1,
                &note("from the old view"),
            )
            .unwrap();
        let e = a.commit_writes(&stale, vec![w]).await.unwrap_err();
        assert_eq!(e.status(), Some(409), "{e}");
        t.stop().await;
    }
}
