//! Rotating a society's escrow key in the store, on both backends: the job counts the wrappings
//! under the old key, a batch moves rows once (sent again, it moves none), a wrapping written under
//! the old key during the job keeps the job from completing, and completing switches the society's
//! key, certificate and generation at once, after which writes for the old key are refused.

use super::*;
use crate::tests::{each_backend, enrol, escrowed, new_case, ESCROW, NOW};

const NEW: &str = "age1escrow-next";

fn rotation() -> NewEscrowRotation {
    NewEscrowRotation {
        recipient: NEW.into(),
        wrapped_identity: vec![6; 180],
        certificate: vec![7; 215],
    }
}

#[test]
fn an_escrow_rotation_moves_every_wrapping_before_the_new_key_takes_over() {
    each_backend(|store| {
        let s = escrowed(store, "Red Cross E");
        let cw = enrol(store, s, Role::Caseworker, 71);
        let cases: Vec<NewCase> = (0..5).map(|_| new_case(s, &cw, 1)).collect();
        store.create_cases(&cases, ESCROW, NOW).unwrap();

        let same = NewEscrowRotation {
            recipient: ESCROW.into(),
            ..rotation()
        };
        assert!(matches!(
            store.start_escrow_rotation(s, &same, cw.id, NOW),
            Err(StorageError::Invalid(_))
        ));
        let job = store
            .start_escrow_rotation(s, &rotation(), cw.id, NOW)
            .unwrap();
        assert_eq!((job.new_gen, job.total, job.done), (2, 5, 0));
        assert_eq!(job.old_recipient, ESCROW);
        assert!(matches!(
            store.start_escrow_rotation(s, &rotation(), cw.id, NOW),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(store.escrow_rotation(s).unwrap(), Some(job.clone()));

        // Pages in (case, epoch) order, resuming after the last row seen.
        let first = store.escrow_wraps(s, 1, None, 3).unwrap();
        let rest = store
            .escrow_wraps(s, 1, Some((first[2].case_id, first[2].key_epoch)), 10)
            .unwrap();
        assert_eq!((first.len(), rest.len()), (3, 2));
        let mut ids: Vec<Uuid> = cases.iter().map(|c| *c.id.as_uuid()).collect();
        ids.sort();
        let paged: Vec<Uuid> = first.iter().chain(&rest).map(|r| r.case_id).collect();
        assert_eq!(paged, ids);

        // A batch moves its rows once.
        let moved: Vec<EscrowWrapRow> = first
            .iter()
            .map(|r| EscrowWrapRow {
                wrapped: vec![8; 200],
                ..r.clone()
            })
            .collect();
        let (n, job) = store.rotate_escrow_wraps(s, 2, &moved).unwrap();
        assert_eq!((n, job.done), (3, 3));
        let (n, job) = store.rotate_escrow_wraps(s, 2, &moved).unwrap();
        assert_eq!((n, job.done), (0, 3));
        assert!(matches!(
            store.rotate_escrow_wraps(s, 3, &moved),
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(store.escrow_wraps(s, 1, None, 10).unwrap(), rest);
        assert_eq!(store.escrow_wraps(s, 2, None, 10).unwrap().len(), 3);

        // Not complete while rows are left, and a case written under the old key meanwhile is one.
        assert_eq!(
            store.complete_escrow_rotation(s, 2, NOW).unwrap(),
            EscrowCompletion::Remaining(2)
        );
        let late = new_case(s, &cw, 1);
        assert!(matches!(
            store.create_cases(std::slice::from_ref(&late), NEW, NOW),
            Err(StorageError::Conflict(_))
        ));
        store
            .create_cases(std::slice::from_ref(&late), ESCROW, NOW)
            .unwrap();
        let left: Vec<EscrowWrapRow> = store
            .escrow_wraps(s, 1, None, 10)
            .unwrap()
            .into_iter()
            .map(|r| EscrowWrapRow {
                wrapped: vec![9; 200],
                ..r
            })
            .collect();
        assert_eq!(left.len(), 3);
        store.rotate_escrow_wraps(s, 2, &left).unwrap();

        // Complete: the society's escrow key, generation and certificate switch together.
        let EscrowCompletion::Completed(done) =
            store.complete_escrow_rotation(s, 2, NOW + 1).unwrap()
        else {
            panic!("not completed")
        };
        assert_eq!((done.done, done.completed_at), (6, Some(NOW + 1)));
        let soc = store.society(s).unwrap().unwrap();
        assert_eq!(soc.escrow_gen, 2);
        let escrow = soc.escrow.unwrap();
        assert_eq!(
            (escrow.recipient.as_str(), escrow.wrapped_identity),
            (NEW, vec![6; 180])
        );
        let certs = store.society_certificates(s).unwrap().certificates;
        assert!(certs
            .iter()
            .any(|c| c.subject_id == *s.as_uuid() && c.certificate == vec![7; 215]));
        assert!(store.escrow_wraps(s, 1, None, 10).unwrap().is_empty());
        assert_eq!(store.escrow_wraps(s, 2, None, 10).unwrap().len(), 6);
        // Completing again returns the job; a write for the retired key is refused.
        assert!(matches!(
            store.complete_escrow_rotation(s, 2, NOW + 2).unwrap(),
            EscrowCompletion::Completed(_)
        ));
        let after = new_case(s, &cw, 1);
        assert!(matches!(
            store.create_cases(std::slice::from_ref(&after), ESCROW, NOW),
            Err(StorageError::Conflict(_))
        ));
        store
            .create_cases(std::slice::from_ref(&after), NEW, NOW)
            .unwrap();
        assert_eq!(store.escrow_wraps(s, 2, None, 10).unwrap().len(), 7);
        assert!(store
            .escrow_rotation(s)
            .unwrap()
            .unwrap()
            .completed_at
            .is_some());
    });
}

/// PostgreSQL plans a batch of a rotation from the key table's statistics; statistics taken before
/// the previous rotation say no wrapping is of the generation the next one moves, and the batch
/// update then ran as a nested loop over the whole society per row (107 s a batch of 5,000 at
/// 100,000 cases, docs/benchmarks.md run 18). Starting a rotation refreshes them.
#[test]
fn starting_a_rotation_refreshes_postgres_statistics_of_the_wrappings() {
    #[derive(QueryableByName)]
    struct Gens {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        gens: Option<String>,
    }
    let db = crate::testing::TestDatabase::new(crate::testing::TestBackend::Postgres);
    let store = Store::open(&db.url, 4).unwrap();
    let Pools::Postgres(pool) = &store.pools else {
        panic!("not PostgreSQL")
    };
    let gens_known = || {
        let gens = diesel::sql_query(
            "SELECT most_common_vals::text AS gens FROM pg_stats \
             WHERE tablename = 'case_keys' AND attname = 'escrow_gen'",
        )
        .get_result::<Gens>(&mut pool.get().unwrap())
        .unwrap()
        .gens
        .unwrap_or_default();
        let mut gens: Vec<i32> = gens
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .filter_map(|g| g.parse().ok())
            .collect();
        gens.sort_unstable();
        gens
    };
    let s = escrowed(&store, "Red Cross P");
    let cw = enrol(&store, s, Role::Caseworker, 72);
    let cases: Vec<NewCase> = (0..200).map(|_| new_case(s, &cw, 1)).collect();
    store.create_cases(&cases, ESCROW, NOW).unwrap();
    diesel::sql_query("ANALYZE case_keys")
        .execute(&mut pool.get().unwrap())
        .unwrap();
    assert_eq!(gens_known(), [0, 1], "own keys at 0, escrow at 1");

    // A whole rotation to generation 2; the statistics of its start still know only 0 and 1.
    store
        .start_escrow_rotation(s, &rotation(), cw.id, NOW)
        .unwrap();
    let moved: Vec<EscrowWrapRow> = store.escrow_wraps(s, 1, None, 1000).unwrap();
    store.rotate_escrow_wraps(s, 2, &moved).unwrap();
    assert!(matches!(
        store.complete_escrow_rotation(s, 2, NOW).unwrap(),
        EscrowCompletion::Completed(_)
    ));
    assert_eq!(gens_known(), [0, 1]);

    // The next one starts from statistics that know the wrappings it moves.
    let next = NewEscrowRotation {
        recipient: "age1escrow-after-next".into(),
        ..rotation()
    };
    store.start_escrow_rotation(s, &next, cw.id, NOW).unwrap();
    assert_eq!(gens_known(), [0, 2]);
}

/// A batch is told to the database as the range of cases it spans (PostgreSQL plans one range read
/// instead of a probe per row). Rows out of order, with gaps, still move exactly the batch's rows:
/// those inside the range that are not in the batch stay under the old key.
#[test]
fn a_batch_out_of_order_and_with_gaps_moves_its_rows_and_no_others() {
    each_backend(|store| {
        let s = escrowed(store, "Red Cross G");
        let cw = enrol(store, s, Role::Caseworker, 72);
        let cases: Vec<NewCase> = (0..6).map(|_| new_case(s, &cw, 1)).collect();
        store.create_cases(&cases, ESCROW, NOW).unwrap();
        store
            .start_escrow_rotation(s, &rotation(), cw.id, NOW)
            .unwrap();
        let all = store.escrow_wraps(s, 1, None, 10).unwrap();
        assert_eq!(all.len(), 6);
        // The 5th, 1st and 3rd rows of the page, in that order: the 2nd and 4th lie between them.
        let batch: Vec<EscrowWrapRow> = [4, 0, 2]
            .iter()
            .map(|&i| EscrowWrapRow {
                wrapped: vec![8; 200],
                ..all[i].clone()
            })
            .collect();
        let (n, job) = store.rotate_escrow_wraps(s, 2, &batch).unwrap();
        assert_eq!((n, job.done), (3, 3));
        let left: Vec<Uuid> = store
            .escrow_wraps(s, 1, None, 10)
            .unwrap()
            .iter()
            .map(|r| r.case_id)
            .collect();
        assert_eq!(left, vec![all[1].case_id, all[3].case_id, all[5].case_id]);
        let moved = store.escrow_wraps(s, 2, None, 10).unwrap();
        assert_eq!(moved.len(), 3);
        assert!(moved.iter().all(|r| r.wrapped == vec![8; 200]));
        // An empty batch moves nothing.
        assert_eq!(store.rotate_escrow_wraps(s, 2, &[]).unwrap().0, 0);
    });
}
