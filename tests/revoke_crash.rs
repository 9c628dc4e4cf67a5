//! A member's revocation survives a crash of the admin's client or of the server (issue 9): run the
//! re-key again and it finishes what is left. The server is the real one in a process of its own
//! (`rfl-test-server`), killed with SIGKILL at random points and started again on the same
//! database; the client is the real SDK, its re-key task dropped at random points (the process
//! dying between two awaits). Afterwards every case the member held is at the next key epoch exactly
//! once, without them, with every record it had; the colleague who keeps a case opens it, and the
//! colleague's reads during a re-key whose client dies never fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rfl_crypto::RevocationReason;
use rfl_system_tests::crash::{
    again_while_conflict, free_port, import_round, session_on, Reading, Rng, ServerProcess,
};
use rfl_system_tests::{Backend, TestServer};

const CASES_PER_ROUND: u64 = 120;
const ROUNDS: u64 = 4;
/// Cases per re-key request: several requests a round, so a crash can fall between two.
const BATCH: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_revocation_is_finished_by_running_it_again() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross K").await;
        let cw = t.caseworker(&soc).await;
        let port = free_port();
        let mut server = Some(ServerProcess::start(
            env!("CARGO_BIN_EXE_rfl-test-server"),
            &t,
            port,
        ));
        let url = format!("http://localhost:{port}");
        let admin = session_on(&url, &soc.admin, &soc.root_fingerprint).await;
        let reader = session_on(&url, &cw, &soc.root_fingerprint).await;
        let mut rng = Rng(0x4e7 ^ backend as u64);

        for round in 0..ROUNDS {
            // A caseworker with cases, every other one shared with the colleague.
            let leaver = t.caseworker(&soc).await;
            let ids = import_round(&leaver, round, CASES_PER_ROUND, 40).await;
            let shared: Vec<_> = ids.iter().copied().step_by(2).collect();
            for id in &shared {
                leaver.grant_case(*id, cw.member_id()).await.unwrap();
            }
            let versions: Vec<usize> = ids
                .iter()
                .map(|id| t.store.case_heads(soc.id, &[*id]).unwrap()[0].case.version as usize)
                .collect();
            admin
                .revoke_member(leaver.member_id(), RevocationReason::Departed)
                .await
                .unwrap();

            // The colleague reads the shared cases all the while (rounds where the client dies).
            let reading = (round % 2 == 1).then(|| Reading::start(reader.clone(), shared.clone()));

            let run = {
                let a = admin.clone();
                let m = leaver.member_id();
                tokio::spawn(async move { a.rekey_member_cases_by(m, BATCH, |_| {}).await })
            };
            tokio::time::sleep(Duration::from_millis(2 + rng.below(60))).await;
            if round % 2 == 0 {
                server.take().unwrap().kill();
                let _ = run.await.unwrap();
                server = Some(ServerProcess::start(
                    env!("CARGO_BIN_EXE_rfl-test-server"),
                    &t,
                    port,
                ));
            } else {
                run.abort();
                let _ = run.await;
            }
            // Again, to the end: what is left, and nothing twice.
            let left = t
                .store
                .member_cases(soc.id, leaver.member_id(), None, 1000)
                .unwrap()
                .len();
            eprintln!(
                "round {round}: {left} of {} cases left to re-key",
                ids.len()
            );
            let done = again_while_conflict(|| {
                admin.rekey_member_cases_by(leaver.member_id(), BATCH, |_| {})
            })
            .await;
            done.unwrap();
            if let Some(r) = reading {
                assert!(r.finish().await > 0);
            }

            // Every case exactly one commit further, at epoch 2, without the member; none left.
            assert!(t
                .store
                .member_cases(soc.id, leaver.member_id(), None, 1000)
                .unwrap()
                .is_empty());
            let heads = t.store.case_heads(soc.id, &ids).unwrap();
            assert_eq!(heads.len(), ids.len());
            for (id, before) in ids.iter().zip(&versions) {
                let h = heads.iter().find(|h| h.case.id == *id).unwrap();
                assert_eq!(h.case.key_epoch, 2, "round {round}");
                assert_eq!(
                    h.case.version as usize,
                    before + 1,
                    "round {round}: one re-key"
                );
                let holders: Vec<_> = h.holders.iter().map(|h| h.recipient).collect();
                assert!(!holders.contains(leaver.member_id().as_uuid()));
                assert!(
                    holders.contains(soc.id.as_uuid()),
                    "the escrow key holds it"
                );
            }
            // The colleague opens every shared case, whole.
            for id in &shared {
                let o = reader.open_case(*id).await.unwrap();
                assert_eq!(o.summary.key_epoch, 2);
                assert!(!o.file.persons.is_empty());
            }
        }
        server.take().unwrap().kill();
        t.stop().await;
    }
}
