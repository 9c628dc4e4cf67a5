//! Every test runs against both backends; PostgreSQL must be reachable.

use super::*;
use crate::schema::{case_commits, cases};
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
        check_commit_numbers(&store);
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

/// Run after every test of both backends, so every write path is held to it: each commit carries
/// the society and the number of the write that made it (`case_commits.society_id`, `change_seq`:
/// what a sync reader asks for). Along a case's chain the numbers grow while the case stays in one
/// society (a transfer moves it on to the receiving society's sequence), and the head's society and
/// number are the case row's.
fn check_commit_numbers(store: &Store) {
    let (commits, cases) = commit_numbers(store).unwrap();
    let cases: std::collections::HashMap<Vec<u8>, (i64, Vec<u8>, i64)> = cases
        .into_iter()
        .map(|(id, version, society, seq)| (id, (version, society, seq)))
        .collect();
    for pair in commits.windows(2) {
        let ((a, _, a_soc, a_change), (b, b_no, b_soc, b_change)) = (&pair[0], &pair[1]);
        if a == b && a_soc == b_soc {
            assert!(
                a_change < b_change,
                "commit {b_no}: its write is numbered {b_change}, after {a_change}"
            );
        }
    }
    for (case, no, society, change) in &commits {
        assert!(*change > 0, "commit {no} has no change number");
        let (version, case_society, seq) = &cases[case];
        if no == version {
            assert_eq!(
                change, seq,
                "a head commit's change number is not its case's"
            );
            assert_eq!(
                society, case_society,
                "a head commit's society is not its case's"
            );
        }
    }
}

/// Every commit's (case, number, society, change number), in chain order, and every case's (id,
/// version, society, change number).
#[allow(clippy::type_complexity)]
fn commit_numbers(
    store: &Store,
) -> Result<(
    Vec<(Vec<u8>, i64, Vec<u8>, i64)>,
    Vec<(Vec<u8>, i64, Vec<u8>, i64)>,
)> {
    let commits = read!(store, conn => {
        case_commits::table
            .order((case_commits::case_id, case_commits::seq))
            .select((
                case_commits::case_id,
                case_commits::seq,
                case_commits::society_id,
                case_commits::change_seq,
            ))
            .load(conn)?
    });
    let cases = read!(store, conn => {
        cases::table
            .select((cases::id, cases::version, cases::society_id, cases::seq))
            .load(conn)?
    });
    Ok((commits, cases))
}
