//! Each society numbers its own changes (`docs/sync.md`): numbers, independence of writers, and
//! the migration from the one shared counter.

use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::MigrationHarness;

use super::*;
use crate::testing::{TestBackend, TestDatabase};
use crate::tests::{each_backend, enrol, escrowed, new_case, ESCROW, NOW};
use rfl_domain::SocietyId;

#[test]
fn each_society_numbers_its_own_changes() {
    each_backend(|store| {
        let a = escrowed(store, "A");
        let b = escrowed(store, "B");
        let alice = enrol(store, a, Role::Caseworker, 1);
        let bob = enrol(store, b, Role::Caseworker, 2);

        let a1 = store
            .create_cases(&[new_case(a, &alice, 2)], ESCROW, NOW)
            .unwrap();
        let b1 = store
            .create_cases(&[new_case(b, &bob, 2)], ESCROW, NOW)
            .unwrap();
        let a2 = store
            .create_cases(&[new_case(a, &alice, 2)], ESCROW, NOW)
            .unwrap();
        // A's first case took 1 (its two records 2 and 3); B starts at 1 whatever A has written.
        assert_eq!(a1.rows[0].seq, 1);
        assert_eq!(b1.rows[0].seq, 1);
        assert_eq!(a2.rows[0].seq, 4, "A goes on from its own last number");
    });
}

/// A transaction that holds society A's sequence (as a long write of A does) delays the next write
/// of A, and no write of B. With the one shared counter, B's write waited too.
#[test]
fn writers_of_one_society_never_wait_for_another_s() {
    let db = TestDatabase::new(TestBackend::Postgres);
    let store = Store::open(&db.url, 4).unwrap();
    let a = escrowed(&store, "A");
    let b = escrowed(&store, "B");
    let alice = enrol(&store, a, Role::Caseworker, 1);
    let bob = enrol(&store, b, Role::Caseworker, 2);

    let mut holder = PgConnection::establish(&db.url).unwrap();
    holder.batch_execute("BEGIN").unwrap();
    let locked = diesel::sql_query(format!(
        "UPDATE society_seq SET value = value WHERE society_id = {}",
        db.blob(a.as_uuid().as_bytes())
    ))
    .execute(&mut holder)
    .unwrap();
    assert_eq!(locked, 1);

    // B's write goes through while A's sequence is held (on another thread, so that a wait fails
    // the test instead of hanging it).
    let (done_b, b_written) = mpsc::channel();
    let store_b = store.clone();
    std::thread::spawn(move || {
        let _ = done_b.send(store_b.create_cases(&[new_case(b, &bob, 1)], ESCROW, NOW));
    });
    let written = b_written
        .recv_timeout(Duration::from_secs(30))
        .expect("a write of B waited for A's sequence");
    assert_eq!(written.unwrap().rows.len(), 1);

    // A's write waits until the holder commits, then goes through.
    let (done_a, a_written) = mpsc::channel();
    let store_a = store.clone();
    std::thread::spawn(move || {
        let _ = done_a.send(store_a.create_cases(&[new_case(a, &alice, 1)], ESCROW, NOW));
    });
    assert!(
        a_written.recv_timeout(Duration::from_millis(300)).is_err(),
        "a write of A did not wait for A's sequence"
    );
    holder.batch_execute("COMMIT").unwrap();
    let written = a_written.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(written.unwrap().rows.len(), 1);
}

/// A database made before society sequences: every society goes on from the shared counter's last
/// number, so a number a reader already holds stays below every new one.
#[test]
fn migrated_societies_go_on_from_the_shared_counter() {
    for backend in TestBackend::ALL {
        let db = TestDatabase::new(backend);
        macro_rules! migrate_to_before_sequences {
            ($conn:expr, $source:expr) => {{
                let pending = $conn.pending_migrations($source).unwrap();
                for m in pending
                    .iter()
                    .filter(|m| !m.name().to_string().ends_with("_society_sequences"))
                {
                    $conn.run_migration(m.as_ref()).unwrap();
                }
            }};
        }
        match backend {
            TestBackend::Sqlite => {
                let path = db.sqlite_path().unwrap();
                let mut conn = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                migrate_to_before_sequences!(conn, SQLITE_MIGRATIONS);
            }
            TestBackend::Postgres => {
                let mut conn = PgConnection::establish(&db.url).unwrap();
                migrate_to_before_sequences!(conn, POSTGRES_MIGRATIONS);
            }
        }
        let (a, b) = (SocietyId::new(), SocietyId::new());
        for (id, name) in [(a, "A"), (b, "B")] {
            db.tamper(&format!(
                "INSERT INTO societies (id, name, created_at) VALUES ({}, '{name}', 0)",
                db.blob(id.as_uuid().as_bytes())
            ));
        }
        db.tamper("UPDATE change_counter SET value = 41 WHERE id = 1");

        let store = Store::open(&db.url, 4).unwrap();
        let escrow = SocietyEscrow {
            recipient: ESCROW.into(),
            wrapped_identity: vec![5; 180],
        };
        for (seed, s) in [(1, a), (2, b)] {
            store.set_society_escrow(s, &escrow).unwrap();
            let member = enrol(&store, s, Role::Caseworker, seed);
            let created = store
                .create_cases(&[new_case(s, &member, 0)], ESCROW, NOW)
                .unwrap();
            assert_eq!(created.rows[0].seq, 42, "{backend:?}");
        }
    }
}

/// A database has one instance id from its creation on: the same however often it is opened, and
/// another database's differs. A society's position in its sequence is its last number.
#[test]
fn a_database_names_itself_and_where_each_society_s_sequence_stands() {
    for backend in TestBackend::ALL {
        let db = TestDatabase::new(backend);
        let other = TestDatabase::new(backend);
        let store = Store::open(&db.url, 2).unwrap();
        let id = store.instance_id().unwrap();
        assert_eq!(Store::open(&db.url, 2).unwrap().instance_id().unwrap(), id);
        assert_ne!(
            Store::open(&other.url, 2).unwrap().instance_id().unwrap(),
            id
        );

        let a = escrowed(&store, "A");
        assert_eq!(store.society_seq(a).unwrap(), 0);
        let alice = enrol(&store, a, Role::Caseworker, 1);
        store
            .create_cases(&[new_case(a, &alice, 2)], ESCROW, NOW)
            .unwrap();
        assert_eq!(
            store.society_seq(a).unwrap(),
            3,
            "one case row and two records"
        );
        assert!(matches!(
            store.society_seq(SocietyId::new()),
            Err(StorageError::NotFound)
        ));
    }
}
