//! A large sync survives a crash of the agent or of either server (`docs/sync.md`, "Checkpoints
//! and the agent"): both servers are the real one in processes of their own (`rfl-test-server`),
//! each killed with SIGKILL at random points of a pass and started again on the same database;
//! the agent is the real SDK's pass, its task dropped at random points (the process dying between
//! two awaits). It goes on from the checkpoint it kept last. In the end both sides hold the same
//! commits, records and keys: nothing lost, nothing stored twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rfl_client::sync::{carry_trust, pass, Checkpoint};
use rfl_client::Session;
use rfl_domain::CaseFile;
use rfl_system_tests::crash::{free_port, Rng, ServerProcess};
use rfl_system_tests::instances::{everything, pair, ORDERS};
use rfl_system_tests::{case, note, TestServer};

/// New cases on the society's server before each round's pass.
const CASES: u64 = 300;
const PAGE: u32 = 25;
const ROUNDS: u64 = 9;
const BIN: &str = env!("CARGO_BIN_EXE_rfl-test-server");

/// The agent `s` signed in on the server process at `port` (the same database and token key).
async fn on(s: &Session, port: u16) -> Arc<Session> {
    let url = format!("http://localhost:{port}");
    Arc::new(
        Session::with_token(&url, s.token().unwrap().to_owned(), s.keys_arc())
            .await
            .unwrap(),
    )
}

/// One server in a process of its own, on `t`'s database.
struct Proc {
    port: u16,
    process: Option<ServerProcess>,
}

impl Proc {
    fn start(t: &TestServer) -> Proc {
        let port = free_port();
        Proc {
            port,
            process: Some(ServerProcess::start(BIN, t, port)),
        }
    }

    fn restart(&mut self, t: &TestServer) {
        self.process.take().unwrap().kill();
        self.process = Some(ServerProcess::start(BIN, t, self.port));
    }

    fn stop(mut self) {
        self.process.take().unwrap().kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_points_completes_with_nothing_lost_or_stored_twice() {
    for (own_backend, hub_backend) in ORDERS {
        let p = pair(own_backend, hub_backend).await;
        let cw = p.own.caseworker(&p.soc).await;
        carry_trust(p.agent_own.api(), p.agent_hub.api())
            .await
            .unwrap();

        let mut own = Proc::start(&p.own);
        let mut hub = Proc::start(&p.hub);
        let mut rng = Rng(0x5eed ^ own_backend as u64);
        let mut checkpoint: Option<Checkpoint> = None;
        let mut interrupted = 0;
        for round in 0..ROUNDS {
            // New cases, and a note on an old one, on the society's server before each pass, so
            // that every pass has a large sync to do after its checkpoint.
            let files: Vec<CaseFile> = (0..CASES).map(|i| case(10_000 * (round + 1) + i)).collect();
            let report = cw.import(files, 100, |_| {}).await.unwrap();
            assert_eq!(report.created, CASES as usize);
            if let Some(c) = cw.list_cases(None, 1).await.unwrap().cases.first() {
                cw.add_note(c.id, note("news from the tracing office"))
                    .await
                    .unwrap();
            }
            let (from, to) = (
                on(&p.agent_own, own.port).await,
                on(&p.agent_hub, hub.port).await,
            );
            let run =
                tokio::spawn(
                    async move { pass(from.api(), to.api(), checkpoint, Some(PAGE)).await },
                );
            tokio::time::sleep(Duration::from_millis(5 + rng.below(120))).await;
            match round % 3 {
                // The hub dies mid-pass: the agent's push fails (or the pass had finished).
                0 => hub.restart(&p.hub),
                // The society's server dies mid-pass: the agent's pull fails.
                1 => own.restart(&p.own),
                // The agent dies mid-pass: the servers go on with what they had.
                _ => run.abort(),
            }
            match run.await {
                // The pass ended before the crash: its checkpoint is the agent's next start.
                Ok(Ok(done)) => checkpoint = done.checkpoint,
                _ => interrupted += 1,
            }
        }
        // The crashes hit passes under way (a test whose crashes all came after the end would
        // prove nothing).
        assert!(
            interrupted >= 5,
            "only {interrupted} of {ROUNDS} passes were cut short"
        );

        // After the crashes, passes from the checkpoint the agent kept until one completes.
        let (from, to) = (
            on(&p.agent_own, own.port).await,
            on(&p.agent_hub, hub.port).await,
        );
        let done = pass(from.api(), to.api(), checkpoint, Some(PAGE))
            .await
            .unwrap();
        assert!(
            done.refused.is_empty() && done.conflicts.is_empty(),
            "{done:?}"
        );
        let again = pass(from.api(), to.api(), done.checkpoint, Some(PAGE))
            .await
            .unwrap();
        assert_eq!((again.cases, again.applied), (0, 0), "{again:?}");

        // Both sides hold the same, every case once, and the caseworker opens what reached the
        // hub through the hub's copy.
        let at_own = everything(&p.agent_own).await;
        let at_hub = everything(&p.agent_hub).await;
        assert_eq!(at_own.len(), (CASES * ROUNDS) as usize);
        assert_eq!(at_hub, at_own, "nothing lost, nothing stored twice");
        own.stop();
        hub.stop();
        p.own.stop().await;
        p.hub.stop().await;
    }
}
