//! Re-wrapping the cases of a member who lost every authenticator survives a crash of the admin's
//! client or of the server (issue 9): run it again and it finishes what is left. The server is the
//! real one in a process of its own (`rfl-test-server`), killed with SIGKILL at random points and
//! started again on the same database; the client is the real SDK, its task dropped at random
//! points. Afterwards every case the member held is one re-key further, at the next key epoch,
//! exactly once, and the member, on new keys, opens every one of them whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rfl_client::{enrol_person, Site, SoftAuthenticator};
use rfl_system_tests::crash::{
    again_while_conflict, free_port, import_round, session_on, Rng, ServerProcess,
};
use rfl_system_tests::{Backend, TestServer};

const CASES_PER_ROUND: u64 = 90;
const ROUNDS: u64 = 6;
/// Cases per request: several requests a round, so a crash can fall between two.
const BATCH: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rewrap_is_finished_by_running_it_again() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross R").await;
        let port = free_port();
        let mut server = Some(ServerProcess::start(
            env!("CARGO_BIN_EXE_rfl-test-server"),
            &t,
            port,
        ));
        let url = format!("http://localhost:{port}");
        let site = Site::new(&url, &t.config.webauthn.rp_origin);
        let admin = session_on(&url, &soc.admin, &soc.root_fingerprint).await;
        let mut rng = Rng(0x12e3 ^ backend as u64);

        for round in 0..ROUNDS {
            // A caseworker with cases loses their authenticator; the admin resets them, they enrol
            // again, the admin certifies the new keys.
            let loser = t.caseworker(&soc).await;
            let me = loser.member_id();
            let ids = import_round(&loser, round, CASES_PER_ROUND, 30).await;
            let versions: Vec<u64> = ids
                .iter()
                .map(|id| t.store.case_heads(soc.id, &[*id]).unwrap()[0].case.version)
                .collect();
            let code = admin.reset_member(me).await.unwrap();
            let mut fresh = SoftAuthenticator::new();
            let back = enrol_person(&site, &code.code, &mut fresh).await.unwrap();
            admin
                .certify_member(me, &back.keys_fingerprint())
                .await
                .unwrap();

            let delay = Duration::from_millis(10 + rng.below(150));
            if round % 2 == 0 {
                // The server dies mid-way; the client's request fails (or the run had finished).
                let mut dying = server.take().unwrap();
                let (_, ()) = tokio::join!(
                    admin.rewrap_member_cases_by(me, &soc.recovery, BATCH, |_| {}),
                    async {
                        tokio::time::sleep(delay).await;
                        dying.kill_now();
                    }
                );
                dying.reap();
                server = Some(ServerProcess::start(
                    env!("CARGO_BIN_EXE_rfl-test-server"),
                    &t,
                    port,
                ));
            } else {
                // The client dies mid-way: its future is dropped between two awaits.
                let _ = tokio::time::timeout(
                    delay,
                    admin.rewrap_member_cases_by(me, &soc.recovery, BATCH, |_| {}),
                )
                .await;
            }
            let left = t
                .store
                .retired_member_cases(soc.id, me, None, 1000)
                .unwrap()
                .len();
            eprintln!(
                "round {round}: {left} of {} cases left to re-wrap",
                ids.len()
            );
            again_while_conflict(|| admin.rewrap_member_cases_by(me, &soc.recovery, BATCH, |_| {}))
                .await
                .unwrap();

            // Nothing left; every case exactly one commit further, at epoch 2, held by the member.
            assert!(t
                .store
                .retired_member_cases(soc.id, me, None, 1000)
                .unwrap()
                .is_empty());
            let heads = t.store.case_heads(soc.id, &ids).unwrap();
            assert_eq!(heads.len(), ids.len());
            for (id, before) in ids.iter().zip(&versions) {
                let h = heads.iter().find(|h| h.case.id == *id).unwrap();
                assert_eq!(h.case.key_epoch, 2, "round {round}");
                assert_eq!(h.case.version, before + 1, "round {round}: one re-key");
                assert!(h.holders.iter().any(|x| x.recipient == *me.as_uuid()));
            }
            // The member, signed in on the new keys, opens every case whole.
            let s = session_on(&url, &back, &soc.root_fingerprint).await;
            for id in &ids {
                let o = s.open_case(*id).await.unwrap();
                assert!(!o.file.persons.is_empty());
            }
        }
        server.take().unwrap().kill();
        t.stop().await;
    }
}
