//! A society's changes feed (`Store::changes`, `docs/sync.md` "Pull"), on both backends: each
//! changed case once, in the order of its last change, with what a reader at the cursor lacks of
//! it; a case the reader cannot have seen comes whole.

use super::*;
use crate::tests::{commit, each_backend, enrol, escrowed, new_case, ESCROW, NOW};
use crate::tests_transfers::{acceptance, offer};
use rfl_domain::{CaseId, CaseStatus, MemberId, RecordId, Role, SocietyId};

fn ids(page: &ChangePage) -> Vec<CaseId> {
    page.cases.iter().map(|c| c.case.id).collect()
}

fn one(store: &Store, case: &NewCase) -> CaseRow {
    store
        .create_cases(std::slice::from_ref(case), ESCROW, NOW)
        .unwrap()
        .rows
        .remove(0)
}

#[test]
fn a_society_s_changes_come_once_each_in_the_order_of_their_last_change() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let b = escrowed(store, "B");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let bob = enrol(store, b, Role::Caseworker, 2);
        let c1 = new_case(a, &alice, 2);
        let c2 = new_case(a, &alice, 1);
        let c3 = new_case(a, &alice, 3);
        let (r1, r2, _) = (one(store, &c1), one(store, &c2), one(store, &c3));
        let b1 = new_case(b, &bob, 1);
        one(store, &b1);

        let all = store.changes(a, 0, 0, 10).unwrap();
        assert_eq!(ids(&all), vec![c1.id, c2.id, c3.id]);
        assert_eq!(all.society_seq, store.society_seq(a).unwrap());
        for (got, sent) in all.cases.iter().zip([&c1, &c2, &c3]) {
            assert!(got.whole, "a reader at 0 has seen nothing");
            assert_eq!(got.commits, vec![sent.commit.body.clone()]);
            let mut want: Vec<_> = sent.records.iter().map(|r| r.id).collect();
            want.sort_by_key(|id| *id.as_uuid().as_bytes());
            assert_eq!(got.records.iter().map(|r| r.id).collect::<Vec<_>>(), want);
            assert_eq!(
                got.records.iter().map(|r| &r.envelope).collect::<Vec<_>>(),
                want.iter()
                    .map(|id| &sent.records.iter().find(|r| r.id == *id).unwrap().envelope)
                    .collect::<Vec<_>>()
            );
            let mut holders: Vec<Uuid> = got.keys.iter().map(|k| k.recipient_id).collect();
            holders.sort();
            let mut expected = vec![*alice.id.as_uuid(), *a.as_uuid()];
            expected.sort();
            assert_eq!(holders, expected, "the author's key and the escrow key");
        }

        // In pages: the cursor after a page is its last case's number.
        let first = store.changes(a, 0, 0, 2).unwrap();
        assert_eq!(ids(&first), vec![c1.id, c2.id]);
        assert_eq!(first.cases[1].case.seq, r2.seq);
        let rest = store.changes(a, 0, r2.seq, 2).unwrap();
        assert_eq!(ids(&rest), vec![c3.id]);
        assert!(
            rest.cases[0].whole,
            "a pass that began at 0 has seen nothing"
        );

        // A write to the first case: a reader that has everything gets that case alone, with the
        // new commit and the one record written; it moves to the end of the feed.
        let cursor = all.society_seq;
        assert!(store
            .changes(a, cursor, cursor, 10)
            .unwrap()
            .cases
            .is_empty());
        let v2 = RecordWrite {
            version: 2,
            envelope: vec![42; 10],
            ..c1.records[1].clone()
        };
        let c1_2 = commit(2, CaseStatus::Tracing);
        store
            .write_commit(
                alice.id,
                c1.id,
                &c1.commit.hash,
                &c1_2,
                std::slice::from_ref(&v2),
                &[],
                &[],
                NOW + 1,
            )
            .unwrap();
        let next = store.changes(a, cursor, cursor, 10).unwrap();
        assert_eq!(ids(&next), vec![c1.id]);
        let changed = &next.cases[0];
        assert!(!changed.whole);
        assert_eq!(changed.commits, vec![c1_2.body.clone()]);
        assert_eq!(changed.records.len(), 1);
        assert_eq!(
            (changed.records[0].id, changed.records[0].version),
            (v2.id, 2)
        );
        assert!(changed.case.seq > r1.seq);
        assert_eq!(changed.case.version, 2);
        assert_eq!(next.society_seq, changed.case.seq);

        // A reader in the middle of a pass that began at 0 holds the first case not at all: the
        // pass had not reached it when it changed (and `after` alone does not say so).
        let mid = store.changes(a, 0, r2.seq, 10).unwrap();
        assert_eq!(ids(&mid), vec![c3.id, c1.id]);
        assert!(mid.cases[1].whole);
        assert_eq!(mid.cases[1].commits.len(), 2);
        assert!(matches!(
            store.changes(a, r2.seq, 0, 10),
            Err(StorageError::Invalid(_))
        ));

        // From 0 the case comes whole, once, at its last change.
        let again = store.changes(a, 0, 0, 10).unwrap();
        assert_eq!(ids(&again), vec![c2.id, c3.id, c1.id]);
        assert_eq!(
            again.cases[2].commits,
            vec![c1.commit.body.clone(), c1_2.body.clone()]
        );
        assert_eq!(again.cases[2].records.len(), 2);

        // Another society's feed is its own; a society that does not exist has none.
        assert_eq!(ids(&store.changes(b, 0, 0, 10).unwrap()), vec![b1.id]);
        assert!(matches!(
            store.changes(SocietyId::new(), 0, 0, 10),
            Err(StorageError::NotFound)
        ));
    });
}

#[test]
fn a_case_that_comes_in_by_a_transfer_is_sent_whole() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let b = escrowed(store, "B");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let bob = enrol(store, b, Role::Caseworker, 2);
        let b_admin = enrol(store, b, Role::SocietyAdmin, 3);
        let own = new_case(b, &bob, 1);
        one(store, &own);
        let moving = new_case(a, &alice, 2);
        one(store, &moving);
        let cursor = store.society_seq(b).unwrap();

        let t = store
            .offer_transfer(&offer(&moving, a, b, alice.id, false), NOW)
            .unwrap();
        store
            .accept_transfer(&acceptance(&t, b, b_admin.id, bob.id, 2), NOW)
            .unwrap();

        let page = store.changes(b, cursor, cursor, 10).unwrap();
        assert_eq!(ids(&page), vec![moving.id]);
        let came = &page.cases[0];
        assert!(came.whole, "B's reader never saw it");
        assert_eq!(came.commits.len(), 2, "from its first commit, made in A");
        assert_eq!(came.records.len(), 2);
        assert!(came
            .keys
            .iter()
            .any(|k| k.recipient_id == *bob.id.as_uuid() && k.key_epoch == 2));
        assert!(!ids(&store.changes(a, 0, 0, 10).unwrap()).contains(&moving.id));
    });
}

fn record(id: RecordId, version: u64, author: MemberId, byte: u8) -> RecordRow {
    RecordRow {
        id,
        kind: 2,
        version,
        key_epoch: 1,
        author_id: author,
        envelope: vec![byte; 40],
        seq: 0,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn key(recipient: Uuid) -> CaseKeyRow {
    CaseKeyRow {
        recipient_id: recipient,
        key_epoch: 1,
        escrow_gen: 0,
        wrapped: vec![6; 200],
        keys_digest: None,
        created_at: NOW,
    }
}

#[test]
fn a_run_from_another_server_makes_or_continues_a_case_on_its_head_only() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let (r1, r2) = (RecordId::new(), RecordId::new());
        let made = IncomingRun {
            case: CaseId::new(),
            society: a,
            on: None,
            commits: vec![commit(1, CaseStatus::Open), commit(2, CaseStatus::Tracing)],
            key_epoch: 1,
            created_by: alice.id,
            created_at: NOW - 5,
            records: vec![record(r1, 1, alice.id, 1), record(r2, 2, alice.id, 2)],
            keys: vec![
                CaseKeyRow {
                    keys_digest: Some(vec![5; 32]),
                    ..key(*alice.id.as_uuid())
                },
                key(*a.as_uuid()),
            ],
            resolves: None,
        };
        let row = store.apply_run(&made, NOW).unwrap();
        assert_eq!(
            (row.version, row.status, row.society_id),
            (2, CaseStatus::Tracing, a)
        );
        assert_eq!(row.seq, store.society_seq(a).unwrap());
        let read = store
            .get_case(alice.id, made.case, Some(0))
            .unwrap()
            .unwrap();
        assert_eq!(read.head_commit, Some(commit(2, CaseStatus::Tracing).body));
        assert_eq!(read.commits_since, vec![commit(1, CaseStatus::Open).body]);
        assert_eq!(
            read.records
                .iter()
                .map(|r| (r.id, r.version))
                .collect::<Vec<_>>(),
            {
                let mut v = vec![(r1, 1), (r2, 2)];
                v.sort_by_key(|(id, _)| *id.as_uuid().as_bytes());
                v
            }
        );
        // The case is in the society's feed, as any case written here is.
        let page = store.changes(a, 0, 0, 10).unwrap();
        assert_eq!(page.cases[0].commits.len(), 2);
        let mut keys = page.cases[0].keys.clone();
        keys.sort_by_key(|k| k.keys_digest.is_none());
        // As sent, with the digest they were wrapped for; the escrow row stamped with the
        // society's own escrow generation (its escrow key set once: 1), whatever the sender said.
        let mut want = made.keys.clone();
        want[1].escrow_gen = 1;
        assert_eq!(keys, want);

        // Made twice: refused, nothing written.
        assert!(matches!(
            store.apply_run(&made, NOW),
            Err(StorageError::Conflict(_))
        ));

        // Continued on its head: the newer version of r1 is stored, the version of r2 it already
        // holds is left alone, keys it holds are no error.
        let mut next = made.clone();
        next.on = Some((2, commit(2, CaseStatus::Tracing).hash));
        next.commits = vec![commit(3, CaseStatus::Tracing)];
        next.records = vec![record(r1, 2, alice.id, 9), record(r2, 1, alice.id, 0)];
        let row = store.apply_run(&next, NOW + 1).unwrap();
        assert_eq!(row.version, 3);
        let read = store.get_case(alice.id, made.case, None).unwrap().unwrap();
        let got: Vec<(RecordId, u64, u8)> = read
            .records
            .iter()
            .map(|r| (r.id, r.version, r.envelope[0]))
            .collect();
        assert!(
            got.contains(&(r1, 2, 9)) && got.contains(&(r2, 2, 2)),
            "{got:?}"
        );

        // On a head that has moved: refused, nothing written.
        assert!(matches!(
            store.apply_run(&next, NOW + 2),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(
            store
                .get_case(alice.id, made.case, None)
                .unwrap()
                .unwrap()
                .case
                .version,
            3
        );

        // In one batch, the run that no longer fits is rolled back alone: the other is stored.
        let other = IncomingRun {
            case: CaseId::new(),
            on: None,
            records: vec![record(RecordId::new(), 1, alice.id, 3)],
            ..made.clone()
        };
        let stored = store
            .apply_runs(&[next.clone(), other.clone()], NOW + 3)
            .unwrap();
        assert!(
            matches!(stored[0], Err(StorageError::Conflict(_))),
            "{stored:?}"
        );
        assert_eq!(stored[1].as_ref().unwrap().id, other.case);
        let read = store.get_case(alice.id, other.case, None).unwrap().unwrap();
        assert_eq!(read.records.len(), 1);

        // New cases in bulk (one statement a table, a COPY on PostgreSQL): a case made here
        // already, and one sent twice in the batch, are refused alone; the 300 others are stored
        // whole, each in the society's feed.
        let fresh: Vec<IncomingRun> = (0..300)
            .map(|n| IncomingRun {
                case: CaseId::new(),
                on: None,
                records: vec![
                    record(RecordId::new(), 1, alice.id, n as u8),
                    record(RecordId::new(), 1, alice.id, 1),
                ],
                ..made.clone()
            })
            .collect();
        let mut batch = vec![made.clone(), fresh[7].clone()];
        batch.extend(fresh.iter().cloned());
        let seq = store.society_seq(a).unwrap();
        let stored = store.apply_runs(&batch, NOW + 4).unwrap();
        assert!(matches!(stored[0], Err(StorageError::Conflict(_))));
        assert_eq!(stored[1].as_ref().unwrap().id, fresh[7].case);
        assert!(matches!(stored[9], Err(StorageError::Conflict(_))));
        let ok = stored.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 300, "{stored:?}");
        let page = store.changes(a, seq, seq, 1000).unwrap();
        assert_eq!(page.cases.len(), 300);
        assert!(page
            .cases
            .iter()
            .all(|c| c.records.len() == 2 && c.keys.len() == 2 && c.commits.len() == 2));
        let read = store
            .get_case(alice.id, fresh[299].case, None)
            .unwrap()
            .unwrap();
        assert_eq!(read.case.version, 2);
    });
}

#[test]
fn a_push_answer_is_kept_under_its_key_for_a_day_and_the_first_one_stays() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let b = escrowed(store, "B");
        let answer = |d: u8, body: u8| PushAnswer {
            request_digest: vec![d; 32],
            answer: vec![body; 10],
        };
        assert_eq!(store.push_answer(a, "k1", NOW).unwrap(), None);
        store.put_push_answer(a, "k1", &answer(1, 1), NOW).unwrap();
        // A concurrent second push under the key does not replace the first answer.
        store.put_push_answer(a, "k1", &answer(2, 2), NOW).unwrap();
        assert_eq!(
            store.push_answer(a, "k1", NOW + 1).unwrap(),
            Some(answer(1, 1))
        );
        // Keys are per society.
        assert_eq!(store.push_answer(b, "k1", NOW).unwrap(), None);
        // A day later it is gone, and the key may be used again.
        let later = NOW + PUSH_ANSWER_MS;
        assert_eq!(store.push_answer(a, "k1", later).unwrap(), None);
        store
            .put_push_answer(a, "k1", &answer(3, 3), later)
            .unwrap();
        assert_eq!(
            store.push_answer(a, "k1", later).unwrap(),
            Some(answer(3, 3))
        );
    });
}

#[test]
fn the_state_of_the_cases_a_push_names_is_read_at_once() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let (c1, c2) = (new_case(a, &alice, 2), new_case(a, &alice, 1));
        one(store, &c1);
        one(store, &c2);
        let states = store.case_states(&[c1.id, c2.id, CaseId::new()]).unwrap();
        assert_eq!(
            states.len(),
            2,
            "a case this server does not hold is absent"
        );
        let s1 = &states[&c1.id];
        assert_eq!(s1.commits, vec![(1, c1.commit.body.clone())]);
        assert_eq!(s1.records.len(), 2);
        assert_eq!(s1.keys.len(), 2);
        assert_eq!(states[&c2.id].records.len(), 1);
    });
}

#[test]
fn trust_from_another_instance_is_stored_only_on_what_the_caller_read() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let subject = Uuid::now_v7();
        let cert = |byte: u8| CertificateRow {
            subject_id: subject,
            certificate: vec![byte; 8],
            issued_at: NOW,
        };
        let first = TrustAdoption {
            held: (None, 0, 0),
            root: [1; 32],
            successions: vec![vec![9; 4]],
            movement_certificates: vec![([1; 32], vec![7; 4])],
            certificates: vec![cert(1)],
            retired: vec![(subject, [3; 32], vec![2; 8])],
            list: Some((3, vec![5; 4])),
            escrow: None,
        };
        assert!(!first.is_empty());
        store.adopt_trust(a, &first, NOW).unwrap();
        let held = store.society_certificates(a).unwrap();
        assert_eq!(held.root, Some([1; 32]));
        assert_eq!(held.successions, vec![vec![9; 4]]);
        assert_eq!(held.movement_certificates, vec![vec![7; 4]]);
        assert_eq!(held.certificates, vec![cert(1)]);
        assert_eq!(held.retired, vec![vec![2; 8]]);
        assert_eq!(
            held.revocations,
            Some(vec![5; 4]),
            "a list may skip numbers"
        );

        // Checked against what is no longer held: nothing is stored.
        let stale = TrustAdoption {
            certificates: vec![cert(4)],
            ..first.clone()
        };
        assert!(matches!(
            store.adopt_trust(a, &stale, NOW),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(
            store.society_certificates(a).unwrap().certificates,
            vec![cert(1)]
        );

        // On what is held: a newer certificate replaces the subject's, the root moves on.
        let next = TrustAdoption {
            held: (Some([1; 32]), 1, 3),
            root: [2; 32],
            successions: vec![vec![8; 4]],
            movement_certificates: Vec::new(),
            certificates: vec![cert(4)],
            retired: vec![(subject, [3; 32], vec![2; 8])],
            list: Some((4, vec![6; 4])),
            // The escrow key held, its identity wrapped anew: the held wrapping stays.
            escrow: Some(SocietyEscrow {
                recipient: ESCROW.into(),
                wrapped_identity: vec![4; 16],
            }),
        };
        store.adopt_trust(a, &next, NOW).unwrap();
        let held = store.society_certificates(a).unwrap();
        assert_eq!(held.root, Some([2; 32]));
        assert_eq!(held.successions, vec![vec![9; 4], vec![8; 4]]);
        assert_eq!(held.certificates, vec![cert(4)]);
        assert_eq!(held.retired.len(), 1, "a retired certificate is kept once");
        assert_eq!(held.revocations, Some(vec![6; 4]));
        let escrow = store.society(a).unwrap().unwrap().escrow.unwrap();
        assert_eq!(escrow.recipient, ESCROW);
        assert_ne!(
            escrow.wrapped_identity,
            vec![4; 16],
            "the held wrapping stays"
        );
        // Another escrow key does not replace the one held (that is a rotation's job).
        let other = TrustAdoption {
            held: (Some([2; 32]), 2, 4),
            root: [2; 32],
            escrow: Some(SocietyEscrow {
                recipient: "age1other".into(),
                wrapped_identity: vec![5; 16],
            }),
            ..TrustAdoption::default()
        };
        store.adopt_trust(a, &other, NOW).unwrap();
        let escrow = store.society(a).unwrap().unwrap().escrow.unwrap();
        assert_eq!(escrow.recipient, ESCROW);
        let nothing = TrustAdoption {
            held: (Some([2; 32]), 2, 4),
            root: [2; 32],
            ..TrustAdoption::default()
        };
        assert!(nothing.is_empty());
    });
}

#[test]
fn a_checkpoint_of_another_instance_s_changes_is_kept_per_society_and_may_move_back() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let b = escrowed(store, "B");
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(store.sync_checkpoint(a, one).unwrap(), None);
        store.put_sync_checkpoint(a, one, 40, NOW).unwrap();
        store.put_sync_checkpoint(a, two, 7, NOW).unwrap();
        store.put_sync_checkpoint(b, one, 3, NOW).unwrap();
        assert_eq!(store.sync_checkpoint(a, one).unwrap(), Some(40));
        assert_eq!(store.sync_checkpoint(a, two).unwrap(), Some(7));
        assert_eq!(store.sync_checkpoint(b, one).unwrap(), Some(3));
        // A sender restored from a backup numbers on from an earlier change.
        store.put_sync_checkpoint(a, one, 12, NOW + 1).unwrap();
        assert_eq!(store.sync_checkpoint(a, one).unwrap(), Some(12));
        assert!(store.put_sync_checkpoint(a, one, u64::MAX, NOW).is_err());
    });
}
