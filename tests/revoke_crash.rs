//! A member's revocation survives a crash of the admin's client or of the server (issue 9): run the
//! re-key again and it finishes what is left. The server is the real one in a process of its own
//! (`rfl-test-server`), killed with SIGKILL at random points and started again on the same
//! database; the client is the real SDK, its re-key task dropped at random points (the process
//! dying between two awaits). Afterwards every case the member held is at the next key epoch exactly
//! once, without them, with every record it had; the colleague who keeps a case opens it, and the
//! colleague's reads during a re-key whose client dies never fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rfl_client::Session;
use rfl_crypto::RevocationReason;
use rfl_domain::CaseFile;
use rfl_system_tests::{case, Backend, TestServer, T0_MILLIS};

const CASES_PER_ROUND: u64 = 120;
const ROUNDS: u64 = 4;
/// Cases per re-key request: several requests a round, so a crash can fall between two.
const BATCH: usize = 15;

struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts `rfl-test-server` on the test's database, token key and port; returns when it listens.
    fn start(t: &TestServer, port: u16) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rfl-test-server"))
            .args([
                t.db.url.as_str(),
                &format!("127.0.0.1:{port}"),
                t.config.auth.signing_key_file.as_str(),
                t.config.webauthn.rp_origin.as_str(),
                &T0_MILLIS.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rfl-test-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening "),
            "rfl-test-server said {line:?}"
        );
        ServerProcess { child }
    }

    /// SIGKILL: no shutdown, whatever it is doing.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A small deterministic generator for the crash points.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

async fn on(url: &str, s: &Session, root: &str) -> Arc<Session> {
    let mut o = Session::with_token(url, s.token().unwrap().to_owned(), s.keys_arc())
        .await
        .unwrap();
    o.pin_root(root).await.unwrap();
    Arc::new(o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_revocation_is_finished_by_running_it_again() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross K").await;
        let cw = t.caseworker(&soc).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Some(ServerProcess::start(&t, port));
        let url = format!("http://localhost:{port}");
        let admin = on(&url, &soc.admin, &soc.root_fingerprint).await;
        let reader = on(&url, &cw, &soc.root_fingerprint).await;
        let mut rng = Rng(0x4e7 ^ backend as u64);

        for round in 0..ROUNDS {
            // A caseworker with cases, every other one shared with the colleague.
            let leaver = t.caseworker(&soc).await;
            let files: Vec<CaseFile> = (0..CASES_PER_ROUND)
                .map(|i| case(10_000 * (round + 1) + i))
                .collect();
            leaver.import(files, 40, |_| {}).await.unwrap();
            let ids: Vec<_> = leaver
                .list_all_cases()
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id)
                .collect();
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
            let stop = Arc::new(AtomicBool::new(false));
            let reads = Arc::new(AtomicUsize::new(0));
            let reading = (round % 2 == 1).then(|| {
                let (r, stop, reads, shared) =
                    (reader.clone(), stop.clone(), reads.clone(), shared.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = shared[i % shared.len()];
                        let o = r
                            .open_case(id)
                            .await
                            .expect("a read during the re-key failed");
                        assert!(!o.file.persons.is_empty());
                        reads.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            });

            let run = {
                let a = admin.clone();
                let m = leaver.member_id();
                tokio::spawn(async move { a.rekey_member_cases_by(m, BATCH, |_| {}).await })
            };
            tokio::time::sleep(Duration::from_millis(2 + rng.below(60))).await;
            if round % 2 == 0 {
                server.take().unwrap().kill();
                let _ = run.await.unwrap();
                server = Some(ServerProcess::start(&t, port));
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
            let mut done = admin
                .rekey_member_cases_by(leaver.member_id(), BATCH, |_| {})
                .await;
            for _ in 0..20 {
                // A request the dead client sent may still be committing: a 409, then read again.
                match &done {
                    Err(e) if e.status() == Some(409) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        done = admin
                            .rekey_member_cases_by(leaver.member_id(), BATCH, |_| {})
                            .await;
                    }
                    _ => break,
                }
            }
            done.unwrap();
            stop.store(true, Ordering::Relaxed);
            if let Some(r) = reading {
                r.await.unwrap();
                assert!(reads.load(Ordering::Relaxed) > 0);
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
                let holders: Vec<_> = h.holders.iter().map(|(r, _)| *r).collect();
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
