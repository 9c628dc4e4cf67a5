//! Cases in the store, on both backends: batches stored whole, tenancy, reads in record order,
//! optimistic concurrency on records, the status workflow and attachment chunks.

use super::*;
use crate::tests::{commit, each_backend, enrol, escrowed, new_case, ESCROW, NOW};
use rfl_domain::{MemberId, RecordId};

#[test]
fn a_large_batch_is_stored_whole_in_fixed_size_statements() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let alice = enrol(store, a, Role::Caseworker, 1);
        // 301 cases (2 x 128 + 32 + 8 + 5 x 1 rows), 903 records, 602 key rows: every statement size.
        let batch: Vec<NewCase> = (0..301).map(|_| new_case(a, &alice, 3)).collect();
        let created = store.create_cases(&batch, ESCROW, NOW).unwrap();
        assert_eq!((created.rows.len(), created.already_present), (301, 0));
        let listed = store.list_cases(alice.id, None, 1000).unwrap();
        assert_eq!(listed.len(), 301);
        assert!(listed.iter().all(|c| c.record_count == 3));
        for c in [&batch[0], &batch[150], &batch[300]] {
            let bundle = store.get_case(alice.id, c.id, None).unwrap().unwrap();
            assert_eq!(bundle.records.len(), 3);
            assert_eq!(bundle.head_commit.as_deref(), Some(&c.commit.body[..]));
        }
        // stored again (a re-run): all present, nothing written twice
        let again = store.create_cases(&batch, ESCROW, NOW).unwrap();
        assert_eq!((again.rows.len(), again.already_present), (0, 301));
    });
}

#[test]
fn case_life_cycle_and_tenancy() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let b = escrowed(store, "B");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let carol = enrol(store, a, Role::Caseworker, 2);
        let bob = enrol(store, b, Role::Caseworker, 3);

        let batch: Vec<NewCase> = (0..5).map(|_| new_case(a, &alice, 3)).collect();
        let created = store.create_cases(&batch, ESCROW, NOW).unwrap();
        assert_eq!(created.already_present, 0);
        let rows = created.rows;
        assert_eq!(rows.len(), 5);
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

        // a case stored already by the same member (a re-run import) is skipped and counted
        let again = vec![new_case(a, &alice, 1), batch[0].clone()];
        let created = store.create_cases(&again, ESCROW, NOW).unwrap();
        assert_eq!((created.rows.len(), created.already_present), (1, 1));
        assert_eq!(created.rows[0].id, again[0].id);
        // an id someone else stored: nothing of the batch is written
        let mut theirs = batch[1].clone();
        theirs.created_by = carol.id;
        let dup = vec![new_case(a, &alice, 1), theirs];
        assert!(matches!(
            store.create_cases(&dup, ESCROW, NOW),
            Err(StorageError::Conflict(_))
        ));
        assert!(store.get_case(alice.id, dup[0].id, None).unwrap().is_none());

        let listed = store.list_cases(alice.id, None, 100).unwrap();
        assert_eq!(listed.len(), 6);
        assert_eq!(listed.iter().filter(|c| c.record_count == 3).count(), 5);
        let page = store
            .list_cases(alice.id, Some(listed[1].case.id), 2)
            .unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].case.id, listed[2].case.id);

        // others see nothing: not their society, or no key
        assert!(store.list_cases(bob.id, None, 100).unwrap().is_empty());
        assert!(store.list_cases(carol.id, None, 100).unwrap().is_empty());
        assert!(store.get_case(bob.id, batch[0].id, None).unwrap().is_none());
        assert!(store
            .get_case(carol.id, batch[0].id, None)
            .unwrap()
            .is_none());

        // with the reader's standing, read in the same snapshot
        let read = store
            .get_case_with_standing(alice.id, batch[0].id, None)
            .unwrap();
        assert_eq!(
            read.standing,
            Some(Standing {
                suspended: false,
                security_stamp: 0
            })
        );
        assert_eq!(read.bundle.unwrap().records.len(), 3);
        let nobody = store
            .get_case_with_standing(MemberId::new(), batch[0].id, None)
            .unwrap();
        assert!(nobody.standing.is_none() && nobody.bundle.is_none());
        store.revoke_tokens(bob.id).unwrap();
        assert_eq!(
            store.standing(bob.id).unwrap().map(|s| s.security_stamp),
            Some(1)
        );

        let bundle = store
            .get_case(alice.id, batch[0].id, None)
            .unwrap()
            .unwrap();
        assert_eq!(bundle.wrapped_key, vec![1; 200]);
        assert_eq!(bundle.records.len(), 3);
        let ids: Vec<_> = bundle
            .records
            .iter()
            .map(|r| *r.id.as_uuid().as_bytes())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "records in record-id order"
        );
        assert_eq!(bundle.case.status, CaseStatus::Open);
        assert_eq!(bundle.head_commit, Some(vec![0xC0, 1]));
        assert_eq!(bundle.case.head_hash, Some(vec![1; 32]));
        assert!(bundle.commits_since.is_empty());
    });
}

/// A case's records come back in record-id byte order whatever order they were written in, each as
/// written, and a case with no records comes back with none. Both backends: PostgreSQL reads a
/// case with one statement of its own (`pg_read.rs`), SQLite with a transaction of four queries.
#[test]
fn a_case_reads_back_whole_in_record_id_order() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let mut c = new_case(a, &alice, 5);
        for (i, r) in c.records.iter_mut().enumerate() {
            r.id = RecordId::from_uuid(Uuid::from_bytes([0xF0 - (i as u8) * 0x10; 16]));
        }
        let empty = new_case(a, &alice, 0);
        store
            .create_cases(&[c.clone(), empty.clone()], ESCROW, NOW)
            .unwrap();
        let read = store.get_case_with_standing(alice.id, c.id, None).unwrap();
        assert_eq!(read.standing.map(|s| s.suspended), Some(false));
        let bundle = read.bundle.unwrap();
        let mut want: Vec<_> = c
            .records
            .iter()
            .map(|r| (r.id, r.kind, r.version, r.envelope.clone()))
            .collect();
        want.sort_by_key(|w| *w.0.as_uuid().as_bytes());
        let got: Vec<_> = bundle
            .records
            .iter()
            .map(|r| (r.id, r.kind, r.version, r.envelope.clone()))
            .collect();
        assert_eq!(got, want);
        assert!(bundle
            .records
            .iter()
            .all(|r| r.author_id == alice.id && r.key_epoch == 1 && r.created_at == NOW));
        assert_eq!(bundle.wrapped_key, vec![1; 200]);
        assert_eq!(bundle.case.id, c.id);
        assert!(bundle.commits_since.is_empty());
        let none = store
            .get_case(alice.id, empty.id, Some(0))
            .unwrap()
            .unwrap();
        assert!(none.records.is_empty());
        assert_eq!(none.head_commit.as_deref(), Some(&empty.commit.body[..]));
    });
}

#[test]
fn optimistic_concurrency_on_records() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let bob = enrol(store, a, Role::Caseworker, 2);
        let c = new_case(a, &alice, 1);
        let created = store
            .create_cases(std::slice::from_ref(&c), ESCROW, NOW)
            .unwrap()
            .rows
            .remove(0);
        let rec = c.records[0].clone();
        let head1 = vec![1u8; 32];

        let v2 = RecordWrite {
            version: 2,
            envelope: vec![42; 10],
            ..rec.clone()
        };
        let c2 = commit(2, CaseStatus::Open);
        let after = store
            .write_commit(
                alice.id,
                c.id,
                &head1,
                &c2,
                std::slice::from_ref(&v2),
                &[],
                &[],
                NOW + 5,
            )
            .unwrap();
        assert!(after.seq > created.seq);
        assert_eq!(after.updated_at, NOW + 5);
        assert_eq!(after.version, 2);
        assert_eq!(after.head_hash, Some(c2.hash.clone()));

        // a second writer whose commit is on the old head is refused and loses nothing
        let stale_commit = commit(2, CaseStatus::Open);
        let r = store.write_commit(
            alice.id,
            c.id,
            &head1,
            &stale_commit,
            &[],
            &[],
            &[],
            NOW + 6,
        );
        assert!(matches!(r, Err(StorageError::Conflict(_))), "{r:?}");
        let c3 = commit(3, CaseStatus::Open);

        // a second writer still at version 1 is refused and loses nothing
        let stale = RecordWrite {
            version: 2,
            envelope: vec![7; 10],
            ..rec.clone()
        };
        let new_note = RecordWrite {
            id: RecordId::new(),
            kind: 4,
            version: 1,
            envelope: vec![8; 10],
        };
        let r = store.write_commit(
            alice.id,
            c.id,
            &c2.hash,
            &c3,
            &[new_note.clone(), stale],
            &[],
            &[],
            NOW + 6,
        );
        assert!(matches!(r, Err(StorageError::Conflict(_))), "{r:?}");
        let bundle = store.get_case(alice.id, c.id, Some(0)).unwrap().unwrap();
        assert_eq!(bundle.records.len(), 1, "the whole write was rolled back");
        assert_eq!(bundle.records[0].envelope, vec![42; 10]);
        assert_eq!(bundle.records[0].version, 2);
        assert_eq!(bundle.case.version, 2);
        assert_eq!(bundle.head_commit, Some(c2.body.clone()));
        assert_eq!(
            bundle.commits_since,
            vec![vec![0xC0, 1]],
            "the chain after commit 0"
        );

        // a new record id that exists already, a version 0, someone without a key
        assert!(matches!(
            store.write_commit(
                alice.id,
                c.id,
                &c2.hash,
                &c3,
                std::slice::from_ref(&rec),
                &[],
                &[],
                NOW
            ),
            Err(StorageError::Conflict(_))
        ));
        assert!(matches!(
            store.write_commit(
                alice.id,
                c.id,
                &c2.hash,
                &c3,
                &[RecordWrite {
                    version: 0,
                    ..new_note.clone()
                }],
                &[],
                &[],
                NOW
            ),
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(
            store.write_commit(
                bob.id,
                c.id,
                &c2.hash,
                &c3,
                std::slice::from_ref(&new_note),
                &[],
                &[],
                NOW
            ),
            Err(StorageError::NotFound)
        ));
        // the right head: stored
        let r = store
            .write_commit(
                alice.id,
                c.id,
                &c2.hash,
                &c3,
                std::slice::from_ref(&new_note),
                &[],
                &[],
                NOW,
            )
            .unwrap();
        assert_eq!(r.version, 3);
    });
}

#[test]
fn status_workflow() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let c = new_case(a, &alice, 0);
        store
            .create_cases(std::slice::from_ref(&c), ESCROW, NOW)
            .unwrap();
        // The status is whatever the stored commit gives (the API checks the workflow).
        let c2 = commit(2, CaseStatus::Tracing);
        let r = store
            .write_commit(alice.id, c.id, &[1; 32], &c2, &[], &[], &[], NOW)
            .unwrap();
        assert_eq!((r.status, r.version), (CaseStatus::Tracing, 2));
        // stale: its parent is not the head
        assert!(matches!(
            store.write_commit(
                alice.id,
                c.id,
                &[1; 32],
                &commit(2, CaseStatus::Located),
                &[],
                &[],
                &[],
                NOW
            ),
            Err(StorageError::Conflict(_))
        ));
        let r = store
            .write_commit(
                alice.id,
                c.id,
                &c2.hash,
                &commit(3, CaseStatus::Located),
                &[],
                &[],
                &[],
                NOW,
            )
            .unwrap();
        assert_eq!(r.status, CaseStatus::Located);
    });
}

#[test]
fn attachment_chunks() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let bob = enrol(store, a, Role::Caseworker, 2);
        let c = new_case(a, &alice, 0);
        store
            .create_cases(std::slice::from_ref(&c), ESCROW, NOW)
            .unwrap();
        let att = RecordId::new();
        store
            .put_chunk(alice.id, c.id, att, 0, &[1, 2, 3], NOW)
            .unwrap();
        assert!(matches!(
            store.put_chunk(alice.id, c.id, att, 0, &[9], NOW),
            Err(StorageError::Conflict(_))
        ));
        assert!(matches!(
            store.put_chunk(bob.id, c.id, att, 1, &[9], NOW),
            Err(StorageError::NotFound)
        ));
        assert_eq!(
            store.get_chunk(alice.id, c.id, att, 0).unwrap(),
            Some(vec![1, 2, 3])
        );
        assert_eq!(store.get_chunk(alice.id, c.id, att, 1).unwrap(), None);
        assert_eq!(store.get_chunk(bob.id, c.id, att, 0).unwrap(), None);
    });
}
