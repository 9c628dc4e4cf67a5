//! Every test runs against both backends; PostgreSQL must be reachable.

use super::*;
use crate::testing::{TestBackend, TestDatabase};
use rfl_domain::{CaseId, MemberId, RecordId, SocietyId};

pub(crate) const NOW: Millis = 1_800_000_000_000;
const DAY: Millis = 86_400_000;

pub(crate) fn each_backend(test: impl Fn(&Store)) {
    for backend in TestBackend::ALL {
        let db = TestDatabase::new(backend);
        let store = Store::open(&db.url, 4).unwrap();
        assert_eq!(
            store.backend(),
            match backend {
                TestBackend::Sqlite => Backend::Sqlite,
                TestBackend::Postgres => Backend::Postgres,
            }
        );
        test(&store);
    }
}

fn code(society: SocietyId, role: Role, seed: u8) -> NewEnrolmentCode {
    NewEnrolmentCode {
        code_hash: [seed; 32],
        society_id: society,
        role,
        created_by: None,
        created_at: NOW,
        expires_at: NOW + 3 * DAY,
        for_member: None,
    }
}

/// A registered passkey as the store sees it (opaque JSON text and an opaque key wrapping).
fn fake_passkey(seed: u8) -> NewPasskey {
    NewPasskey {
        id: vec![seed, 0xC7, seed],
        passkey: format!("{{\"fake\":{seed}}}"),
        key_wrap: Some(vec![seed; 40]),
    }
}

pub(crate) fn enrol(store: &Store, society: SocietyId, role: Role, seed: u8) -> Member {
    let c = code(society, role, seed);
    store.insert_enrolment_code(&c).unwrap();
    store
        .redeem_enrolment_code(
            &c.code_hash,
            &Enrolment {
                member_id: MemberId::new(),
                signing_key: vec![seed; 32],
                age_recipient: format!("age1test{seed}"),
                passkey: (!is_machine_role(role)).then(|| fake_passkey(seed)),
            },
            NOW,
        )
        .unwrap()
}

pub(crate) fn society(store: &Store, name: &str) -> SocietyId {
    let id = SocietyId::new();
    store
        .create_society(
            id,
            name,
            code(id, Role::SocietyAdmin, 100 + name.as_bytes()[0] % 100),
            NOW,
        )
        .unwrap();
    id
}

/// The escrow recipient of societies made by [`escrowed`] (the store does not parse it).
pub(crate) const ESCROW: &str = "age1escrow-test";

/// A society with an escrow key set, so cases can be stored.
pub(crate) fn escrowed(store: &Store, name: &str) -> SocietyId {
    let id = society(store, name);
    store
        .set_society_escrow(
            id,
            &SocietyEscrow {
                recipient: ESCROW.into(),
                wrapped_identity: vec![5; 180],
            },
        )
        .unwrap();
    id
}

pub(crate) fn new_case(society: SocietyId, author: &Member, records: usize) -> NewCase {
    let id = CaseId::new();
    NewCase {
        id,
        society_id: society,
        created_by: author.id,
        status: CaseStatus::Open,
        key_epoch: 1,
        keys: vec![
            WrappedKey {
                recipient_id: *author.id.as_uuid(),
                wrapped: vec![1; 200],
            },
            WrappedKey {
                recipient_id: *society.as_uuid(),
                wrapped: vec![2; 200],
            },
        ],
        records: (0..records)
            .map(|i| RecordWrite {
                id: RecordId::new(),
                kind: (i % 4 + 1) as i16,
                version: 1,
                envelope: vec![i as u8; 300],
            })
            .collect(),
        commit: commit(1, CaseStatus::Open),
    }
}

/// An opaque commit as the store sees it (the API parses and verifies real ones).
pub(crate) fn commit(seq: u64, status: CaseStatus) -> CommitWrite {
    CommitWrite {
        seq,
        hash: vec![seq as u8; 32],
        body: vec![0xC0, seq as u8],
        status,
    }
}

#[test]
fn societies_and_enrolment() {
    each_backend(|store| {
        store.ping().unwrap();
        let s = society(store, "Red Cross A");
        assert!(matches!(
            store.create_society(
                SocietyId::new(),
                "Red Cross A",
                code(s, Role::SocietyAdmin, 201),
                NOW
            ),
            Err(StorageError::Conflict(_))
        ));
        let admin = store
            .redeem_enrolment_code(
                &[182; 32],
                &Enrolment {
                    member_id: MemberId::new(),
                    signing_key: vec![9; 32],
                    age_recipient: "age1admin".into(),
                    passkey: Some(fake_passkey(9)),
                },
                NOW + 1,
            )
            .unwrap();
        assert_eq!(admin.role, Role::SocietyAdmin);
        assert_eq!(admin.society_id, s);
        assert_eq!(store.member(admin.id).unwrap().unwrap(), admin);

        // single use
        let again = store.redeem_enrolment_code(
            &[182; 32],
            &Enrolment {
                member_id: MemberId::new(),
                signing_key: vec![10; 32],
                age_recipient: "age1x".into(),
                passkey: Some(fake_passkey(10)),
            },
            NOW + 2,
        );
        assert!(matches!(again, Err(StorageError::Conflict(_))), "{again:?}");
        // unknown
        assert!(matches!(
            store.redeem_enrolment_code(
                &[77; 32],
                &Enrolment {
                    member_id: MemberId::new(),
                    signing_key: vec![11; 32],
                    age_recipient: "age1x".into(),
                    passkey: Some(fake_passkey(11)),
                },
                NOW
            ),
            Err(StorageError::NotFound)
        ));
        // expired, and an expired code is not spent
        let c = code(s, Role::Caseworker, 50);
        store.insert_enrolment_code(&c).unwrap();
        let e = Enrolment {
            member_id: MemberId::new(),
            signing_key: vec![50; 32],
            age_recipient: "age1y".into(),
            passkey: Some(fake_passkey(50)),
        };
        assert!(matches!(
            store.redeem_enrolment_code(&c.code_hash, &e, c.expires_at),
            Err(StorageError::Expired(_))
        ));
        assert!(store.member(e.member_id).unwrap().is_none());

        // escrow is set once
        let escrow = SocietyEscrow {
            recipient: "age1escrow".into(),
            wrapped_identity: vec![5; 180],
        };
        store.set_society_escrow(s, &escrow).unwrap();
        assert!(matches!(
            store.set_society_escrow(s, &escrow),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(store.society(s).unwrap().unwrap().escrow, Some(escrow));
        assert_eq!(store.society_members(s).unwrap().len(), 1);
    });
}

#[test]
fn challenges_are_single_use() {
    each_backend(|store| {
        let s = society(store, "S");
        let m = enrol(store, s, Role::Caseworker, 1);
        let c = Challenge {
            id: Uuid::now_v7(),
            member_id: m.id,
            challenge: vec![3; 32],
            expires_at: NOW + 60_000,
        };
        store.insert_challenge(&c).unwrap();
        let taken = store.take_challenge(c.id).unwrap().unwrap();
        assert_eq!(taken.challenge, c.challenge);
        assert_eq!(taken.member_id, m.id);
        assert!(store.take_challenge(c.id).unwrap().is_none());
    });
}

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

#[test]
fn in_memory_sqlite_is_refused() {
    assert!(matches!(
        Store::open(":memory:", 2),
        Err(StorageError::Config(_))
    ));
    assert!(matches!(
        Store::open("sqlite://:memory:", 2),
        Err(StorageError::Config(_))
    ));
}

#[test]
fn suspension_changes_the_security_stamp() {
    each_backend(|store| {
        let a = society(store, "A");
        let b = society(store, "B");
        let m = enrol(store, a, Role::Caseworker, 1);
        assert_eq!(m.security_stamp, 0);
        let s = store.set_suspended(a, m.id, true).unwrap();
        assert!(s.suspended);
        assert_eq!(s.security_stamp, 1);
        // an admin of another society cannot touch them
        assert!(matches!(
            store.set_suspended(b, m.id, false),
            Err(StorageError::NotFound)
        ));
        let r = store.set_suspended(a, m.id, false).unwrap();
        assert!(!r.suspended);
        assert_eq!(r.security_stamp, 2);
        store.revoke_tokens(m.id).unwrap();
        assert_eq!(store.member(m.id).unwrap().unwrap().security_stamp, 3);
        assert!(matches!(
            store.revoke_tokens(MemberId::new()),
            Err(StorageError::NotFound)
        ));
    });
}

#[test]
fn people_enrol_with_a_passkey_and_machines_with_a_key() {
    each_backend(|store| {
        let s = society(store, "Red Cross P");
        let person = code(s, Role::Caseworker, 60);
        let machine = code(s, Role::SyncAgent, 61);
        store.insert_enrolment_code(&person).unwrap();
        store.insert_enrolment_code(&machine).unwrap();
        assert_eq!(
            store.usable_enrolment_code(&person.code_hash, NOW).unwrap(),
            (s, Role::Caseworker, None)
        );
        let keys_only = |seed: u8| Enrolment {
            member_id: MemberId::new(),
            signing_key: vec![seed; 32],
            age_recipient: format!("age1p{seed}"),
            passkey: None,
        };
        // A person's code without a passkey, a machine's code with one: refused, and neither is spent.
        assert!(matches!(
            store.redeem_enrolment_code(&person.code_hash, &keys_only(60), NOW),
            Err(StorageError::Refused(_))
        ));
        let mut with_passkey = keys_only(61);
        with_passkey.passkey = Some(fake_passkey(61));
        assert!(matches!(
            store.redeem_enrolment_code(&machine.code_hash, &with_passkey, NOW),
            Err(StorageError::Refused(_))
        ));
        assert!(store.member(with_passkey.member_id).unwrap().is_none());
        assert!(store.usable_enrolment_code(&person.code_hash, NOW).is_ok());
        assert!(store.usable_enrolment_code(&machine.code_hash, NOW).is_ok());

        // The person enrols with the passkey in the same transaction; its key wrapping comes back at
        // sign-in.
        let m = store
            .redeem_enrolment_code(&person.code_hash, &with_passkey, NOW)
            .unwrap();
        let keys = store.member_passkeys(m.id).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_wrap, Some(vec![61; 40]));
        assert_eq!(
            store
                .passkey_used(m.id, &keys[0].id, None, NOW + 1)
                .unwrap(),
            Some(vec![61; 40])
        );
        assert!(matches!(
            store.usable_enrolment_code(&person.code_hash, NOW),
            Err(StorageError::Conflict(_))
        ));
        // The machine enrols with its key.
        store
            .redeem_enrolment_code(&machine.code_hash, &keys_only(62), NOW)
            .unwrap();

        // Re-wrapping is all or nothing: one foreign credential and nothing changes.
        let second = fake_passkey(63);
        store.add_passkey(m.id, &second, NOW).unwrap();
        let other = enrol(store, s, Role::Caseworker, 64);
        let foreign = store.member_passkeys(other.id).unwrap()[0].id.clone();
        assert!(matches!(
            store.set_key_wraps(
                m.id,
                &[(keys[0].id.clone(), vec![1; 8]), (foreign, vec![2; 8])]
            ),
            Err(StorageError::NotFound)
        ));
        assert_eq!(
            store.member_passkeys(m.id).unwrap()[0].key_wrap,
            Some(vec![61; 40])
        );
        store
            .set_key_wraps(
                m.id,
                &[
                    (keys[0].id.clone(), vec![1; 8]),
                    (second.id.clone(), vec![3; 8]),
                ],
            )
            .unwrap();
        let after: Vec<_> = store
            .member_passkeys(m.id)
            .unwrap()
            .into_iter()
            .map(|p| p.key_wrap)
            .collect();
        assert_eq!(after, vec![Some(vec![1; 8]), Some(vec![3; 8])]);
    });
}

#[test]
fn certificates_and_the_root_are_stored_per_society() {
    each_backend(|store| {
        let s = society(store, "Cruz Roja C");
        let other = society(store, "Dansk Rode Kors");
        let m = enrol(store, s, Role::Caseworker, 70);
        let cert = |subject: Uuid, b: u8| CertificateRow {
            subject_id: subject,
            certificate: vec![b; 40],
            issued_at: NOW,
        };
        assert_eq!(
            store.society_certificates(s).unwrap(),
            SocietyTrust {
                root: None,
                certificates: vec![],
                retired: vec![],
                revocations: None,
                successions: vec![],
                movement_certificates: vec![],
            }
        );
        store
            .put_certificates(s, Some(&[1; 32]), &[cert(*s.as_uuid(), 1)], NOW)
            .unwrap();
        // The root is set once; the same root again is fine, another is a conflict and stores nothing.
        store
            .put_certificates(s, Some(&[1; 32]), &[cert(*m.id.as_uuid(), 2)], NOW)
            .unwrap();
        assert!(matches!(
            store.put_certificates(s, Some(&[9; 32]), &[cert(*m.id.as_uuid(), 3)], NOW),
            Err(StorageError::Conflict(_))
        ));
        // A newer certificate replaces the subject's earlier one.
        store
            .put_certificates(s, None, &[cert(*m.id.as_uuid(), 4)], NOW + 1)
            .unwrap();
        let SocietyTrust {
            root,
            certificates: certs,
            ..
        } = store.society_certificates(s).unwrap();
        assert_eq!(root, Some([1; 32]));
        assert_eq!(certs.len(), 2, "{certs:?}");
        let mine: Vec<_> = certs
            .iter()
            .filter(|c| c.subject_id == *m.id.as_uuid())
            .collect();
        assert_eq!(mine.len(), 1);
        assert!(certs.contains(&CertificateRow {
            subject_id: *m.id.as_uuid(),
            certificate: vec![4; 40],
            issued_at: NOW
        }));
        // Another society cannot overwrite this society's subject, and sees none of them.
        assert!(matches!(
            store.put_certificates(other, None, &[cert(*m.id.as_uuid(), 5)], NOW),
            Err(StorageError::NotFound)
        ));
        assert_eq!(
            store.society_certificates(other).unwrap(),
            SocietyTrust {
                root: None,
                certificates: vec![],
                retired: vec![],
                revocations: None,
                successions: vec![],
                movement_certificates: vec![],
            }
        );
    });
}

#[test]
fn revocation_lists_are_numbered_from_one_without_gaps_and_the_latest_is_served() {
    each_backend(|store| {
        let s = society(store, "Magen David Adom");
        let other = society(store, "Croix-Rouge D");
        assert_eq!(store.latest_revocation_list(s).unwrap(), None);
        // Not the first: refused, nothing stored.
        assert!(matches!(
            store.add_revocation_list(s, 2, &[2; 10], NOW),
            Err(StorageError::Conflict(_))
        ));
        store.add_revocation_list(s, 1, &[1; 10], NOW).unwrap();
        // The same number twice (two admins at once): one wins.
        assert!(matches!(
            store.add_revocation_list(s, 1, &[9; 10], NOW),
            Err(StorageError::Conflict(_))
        ));
        store.add_revocation_list(s, 2, &[2; 10], NOW + 1).unwrap();
        assert_eq!(store.latest_revocation_list(s).unwrap(), Some(vec![2; 10]));
        assert_eq!(
            store.society_certificates(s).unwrap().revocations,
            Some(vec![2; 10])
        );
        // Each society has its own numbering.
        assert_eq!(store.latest_revocation_list(other).unwrap(), None);
        store.add_revocation_list(other, 1, &[7; 10], NOW).unwrap();
        assert_eq!(store.latest_revocation_list(s).unwrap(), Some(vec![2; 10]));
    });
}

/// The SQLite build must let each connection map the whole file (`.cargo/config.toml` raises the
/// bundled 2 GiB cap): past the cap, pages are read one pread at a time into the page cache.
#[test]
fn sqlite_connections_map_a_national_caseload_whole() {
    #[derive(diesel::QueryableByName)]
    struct Mapped {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        mmap_size: i64,
    }
    let db = TestDatabase::new(TestBackend::Sqlite);
    let store = Store::open(&db.url, 2).unwrap();
    let Pools::Sqlite { read, write } = &store.pools else {
        panic!("a SQLite store");
    };
    for pool in [read, write] {
        let m: Mapped = diesel::sql_query("PRAGMA mmap_size")
            .get_result(&mut pool.get().unwrap())
            .unwrap();
        assert_eq!(u64::try_from(m.mmap_size).unwrap(), SQLITE_MMAP_BYTES);
    }
}

#[test]
fn a_root_rotation_replaces_root_and_certificates_together_or_not_at_all() {
    each_backend(|store| {
        let s = society(store, "Red Cross Root");
        let cert = |subject: Uuid, b: u8| CertificateRow {
            subject_id: subject,
            certificate: vec![b; 40],
            issued_at: NOW,
        };
        let escrow = *s.as_uuid();
        store
            .put_certificates(s, Some(&[1; 32]), &[cert(escrow, 1)], NOW)
            .unwrap();
        let rotation = |old: [u8; 32], subject: Uuid| RootRotation {
            old_root: old,
            new_root: [2; 32],
            succession: vec![7; 236],
            certificates: vec![cert(subject, 2)],
            list_number: 1,
            list: vec![9; 100],
        };
        // Not the current root, or a certificate that replaces none: nothing stored.
        for bad in [rotation([3; 32], escrow), rotation([1; 32], Uuid::new_v4())] {
            assert!(matches!(
                store.rotate_society_root(s, &bad, NOW),
                Err(StorageError::Conflict(_))
            ));
            let t = store.society_certificates(s).unwrap();
            assert_eq!(t.root, Some([1; 32]));
            assert!(t.successions.is_empty() && t.revocations.is_none());
            assert_eq!(t.certificates[0].certificate, vec![1; 40]);
        }
        store
            .rotate_society_root(s, &rotation([1; 32], escrow), NOW)
            .unwrap();
        let t = store.society_certificates(s).unwrap();
        assert_eq!(t.root, Some([2; 32]));
        assert_eq!(t.successions, vec![vec![7; 236]]);
        assert_eq!(t.certificates[0].certificate, vec![2; 40]);
        assert_eq!(t.revocations, Some(vec![9; 100]));
        // The same rotation again: the root moved on.
        assert!(store
            .rotate_society_root(s, &rotation([1; 32], escrow), NOW)
            .is_err());
    });
}
