//! An import survives a crash of the client or of the server: run the same import again and it
//! imports exactly what is missing, and says how many cases were there already. The server is the
//! real one in a process of its own (`rfl-test-server`), killed with SIGKILL at random points and
//! started again on the same database; the client is the real SDK, its import task dropped at random
//! points (the process dying between two awaits). Nothing is lost, nothing is duplicated, every case
//! opens with the content that was imported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rfl_client::session::import_case_ids;
use rfl_client::Session;
use rfl_domain::CaseFile;
use rfl_system_tests::crash::{free_port, session_on, Rng, ServerProcess};
use rfl_system_tests::{case, Backend, TestServer};

const CASES_PER_ROUND: u64 = 300;
const BATCH: usize = 20;
const ROUNDS: u64 = 6;

fn stored(t: &TestServer, s: &Session) -> usize {
    let mut n = 0;
    let mut after = None;
    loop {
        let page = t.store.list_cases(s.member_id(), after, 500).unwrap();
        n += page.len();
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.case.id),
            _ => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_is_completed_by_running_it_again() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let port = free_port();
        let mut server = Some(ServerProcess::start(
            env!("CARGO_BIN_EXE_rfl-test-server"),
            &t,
            port,
        ));
        let url = format!("http://localhost:{port}");
        let s = session_on(&url, &cw, &soc.root_fingerprint).await;
        let mut rng = Rng(0x5eed ^ backend as u64);
        let mut total = 0;

        for round in 0..ROUNDS {
            let files: Vec<CaseFile> = (0..CASES_PER_ROUND)
                .map(|i| case(1_000 * (round + 1) + i))
                .collect();
            let before = stored(&t, &s);
            let run = {
                let s = s.clone();
                let files = files.clone();
                tokio::spawn(async move { s.import(files, BATCH, |_| {}).await })
            };
            tokio::time::sleep(Duration::from_millis(20 + rng.below(400))).await;
            if round % 2 == 0 {
                // The server dies mid-import; the client's request fails (or the import had finished).
                server.take().unwrap().kill();
                let _ = run.await.unwrap();
                server = Some(ServerProcess::start(
                    env!("CARGO_BIN_EXE_rfl-test-server"),
                    &t,
                    port,
                ));
            } else {
                // The client dies mid-import. The server goes on with what it had received; a batch
                // it is still committing lands or not, but it must be settled before the count is
                // taken, and the only sure end of a server's work is its end: it is killed too after
                // a while, as an operator restarting it would.
                run.abort();
                let _ = run.await;
                tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
                server.take().unwrap().kill();
                server = Some(ServerProcess::start(
                    env!("CARGO_BIN_EXE_rfl-test-server"),
                    &t,
                    port,
                ));
            }
            // PostgreSQL may still commit a transaction whose COMMIT it received before the server
            // died: wait until the count stays put.
            let mut present = stored(&t, &s) - before;
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let now = stored(&t, &s) - before;
                if now == present {
                    break;
                }
                present = now;
            }
            assert!(present <= files.len());

            // The same import again: exactly what is missing, and it says how many were there.
            let report = s.import(files.clone(), BATCH, |_| {}).await.unwrap();
            assert_eq!(report.already_present, present, "round {round}");
            assert_eq!(report.created, files.len() - present, "round {round}");
            total += files.len();
            assert_eq!(
                stored(&t, &s),
                total,
                "round {round}: nothing lost, nothing duplicated"
            );

            // Every case is there once, under the id the import derives, with its content.
            let ids = import_case_ids(s.keys().case_key().unwrap(), &files).unwrap();
            for (id, f) in ids.iter().zip(&files).step_by(7) {
                let opened = s.open_case(*id).await.unwrap();
                assert_eq!(opened.file.header, f.header);
                assert_eq!(opened.file.persons.len(), f.persons.len());
            }
        }
        server.take().unwrap().kill();
        t.stop().await;
    }
}
