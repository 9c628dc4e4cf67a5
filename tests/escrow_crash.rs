//! An escrow-key rotation survives a crash of the admin's client or of the server (issue 9): run
//! the same command again and it finishes. The server is the real one in a process of its own
//! (`rfl-test-server`), killed with SIGKILL at random points and started again on the same database;
//! the client is the real SDK, its task dropped at random points (the process dying between two
//! awaits). After each round every escrow wrapping of every case and epoch is under the society's
//! current key, opens with it to the same key as before, none is left under a retired key, nothing
//! is lost or duplicated, and a caseworker's reads during the rotation never failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rfl_crypto::{unwrap_escrow_identity, AgeIdentity, EscrowBatch};
use rfl_system_tests::crash::{
    again_while_conflict, free_port, import_round, session_on, Reading, Rng, ServerProcess,
};
use rfl_system_tests::{Backend, TestServer, TestSociety};

const CASES_PER_ROUND: u64 = 80;
const ROUNDS: u64 = 4;
/// Wrappings per page and batch: several batches a round, so a crash can fall between two.
const PAGE: usize = 9;

/// The society's current escrow key generation and identity, as the store and the recovery key
/// give them.
fn current(t: &TestServer, soc: &TestSociety) -> (i32, AgeIdentity) {
    let s = t.store.society(soc.id).unwrap().unwrap();
    let e = s.escrow.unwrap();
    let id = unwrap_escrow_identity(
        &e.wrapped_identity,
        *soc.id.as_uuid(),
        soc.recovery.as_age(),
    )
    .unwrap();
    (s.escrow_gen, id)
}

/// Every escrow wrapping under `gen`, opened with `identity`: the keys by (case, epoch).
fn keys(
    t: &TestServer,
    soc: &TestSociety,
    gen: i32,
    identity: &AgeIdentity,
) -> HashMap<(uuid::Uuid, u32), [u8; 32]> {
    let society = *soc.id.as_uuid();
    let mut batches: HashMap<uuid::Uuid, EscrowBatch> = HashMap::new();
    t.store
        .escrow_wraps(soc.id, gen, None, 1_000_000)
        .unwrap()
        .into_iter()
        .map(|r| {
            let info = rfl_crypto::escrow_wrap_info(&r.wrapped).unwrap();
            let batch = batches.entry(info.batch_id).or_insert_with(|| {
                EscrowBatch::open(&r.wrapped, society, identity.as_age()).unwrap()
            });
            let key = batch.unwrap(&r.wrapped, r.case_id, r.key_epoch).unwrap();
            ((r.case_id, r.key_epoch), *key.expose_bytes())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_escrow_rotation_is_finished_by_running_it_again() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = Arc::new(t.society("Red Cross R").await);
        let cw = t.caseworker(&soc).await;
        let port = free_port();
        let bin = env!("CARGO_BIN_EXE_rfl-test-server");
        let mut server = Some(ServerProcess::start(bin, &t, port));
        let url = format!("http://localhost:{port}");
        let admin = session_on(&url, &soc.admin, &soc.root_fingerprint).await;
        let mut reader = session_on(&url, &cw, &soc.root_fingerprint).await;
        let mut rng = Rng(0xe5c ^ backend as u64);

        for round in 0..ROUNDS {
            // The escrow key changed last round: the caseworker's session loads the new one.
            Arc::get_mut(&mut reader)
                .unwrap()
                .refresh_directory()
                .await
                .unwrap();
            let ids = import_round(&reader, round, CASES_PER_ROUND, 30).await;
            let (gen, identity) = current(&t, &soc);
            let before = keys(&t, &soc, gen, &identity);
            assert_eq!(before.len(), ids.len(), "round {round}");

            // The caseworker reads cases all the while (rounds where the client dies).
            let reading = (round % 2 == 1).then(|| Reading::start(reader.clone(), ids.clone()));

            let run = {
                let (a, soc) = (admin.clone(), soc.clone());
                tokio::spawn(async move {
                    a.rotate_escrow_by(&soc.recovery, Some(&soc.root), PAGE, |_| {})
                        .await
                })
            };
            tokio::time::sleep(Duration::from_millis(2 + rng.below(80))).await;
            if round % 2 == 0 {
                server.take().unwrap().kill();
                let _ = run.await.unwrap();
                server = Some(ServerProcess::start(bin, &t, port));
            } else {
                run.abort();
                let _ = run.await;
            }
            let job = t.store.escrow_rotation(soc.id).unwrap();
            eprintln!(
                "round {round}: job {:?} ({} of {} moved)",
                job.as_ref().map(|j| (j.new_gen, j.completed_at.is_some())),
                job.as_ref().map_or(0, |j| j.done),
                job.as_ref().map_or(0, |j| j.total)
            );
            // Again, to the end: what is left, and nothing twice.
            let done = again_while_conflict(|| {
                admin.rotate_escrow_by(&soc.recovery, Some(&soc.root), PAGE, |_| {})
            })
            .await;
            let report = done.unwrap();
            assert!(report.completed, "round {round}");
            if let Some(r) = reading {
                assert!(r.finish().await > 0);
            }

            // A new key; every wrapping under it, the same keys; none under an older generation.
            let (new_gen, new_identity) = current(&t, &soc);
            assert!(new_gen > gen, "round {round}");
            assert_ne!(new_identity.recipient(), identity.recipient());
            for g in 1..new_gen {
                assert!(
                    t.store
                        .escrow_wraps(soc.id, g, None, 10)
                        .unwrap()
                        .is_empty(),
                    "round {round}: wrappings left under generation {g}"
                );
            }
            assert_eq!(
                keys(&t, &soc, new_gen, &new_identity),
                before,
                "round {round}"
            );
            // The caseworker opens every case, whole.
            for id in &ids {
                let o = reader.open_case(*id).await.unwrap();
                assert!(!o.file.persons.is_empty());
            }
        }
        server.take().unwrap().kill();
        t.stop().await;
    }
}
