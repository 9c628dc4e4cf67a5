//! What the crash tests share: the real server in a process of its own, killed with SIGKILL and
//! started again on the same database, a deterministic generator for the crash points, and client
//! sessions on that server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rfl_client::Session;

use crate::{TestServer, T0_MILLIS};

/// `rfl-test-server` running on a test's database.
pub struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts `bin` (`env!("CARGO_BIN_EXE_rfl-test-server")` in the test) on the test's database,
    /// token key and port; returns when it listens.
    #[allow(clippy::expect_used, clippy::unwrap_used)]
    pub fn start(bin: &str, t: &TestServer, port: u16) -> ServerProcess {
        let mut child = Command::new(bin)
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
    #[allow(clippy::unwrap_used)]
    pub fn kill(mut self) {
        self.kill_now();
        self.reap();
    }

    /// SIGKILL without waiting for the process to be gone ([`ServerProcess::reap`] does).
    #[allow(clippy::unwrap_used)]
    pub fn kill_now(&mut self) {
        self.child.kill().unwrap();
    }

    /// Waits until the killed process is gone.
    #[allow(clippy::unwrap_used)]
    pub fn reap(mut self) {
        self.child.wait().unwrap();
    }
}

/// A free local port for a server process.
#[allow(clippy::unwrap_used)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A small deterministic generator for the crash points.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `s`'s sign-in, on the server at `url`, with the society root pinned.
#[allow(clippy::unwrap_used)]
pub async fn session_on(url: &str, s: &Session, root: &str) -> Arc<Session> {
    let mut o = Session::with_token(url, s.token().unwrap().to_owned(), s.keys_arc())
        .await
        .unwrap();
    o.pin_root(root).await.unwrap();
    Arc::new(o)
}

/// A caseworker reading cases over and over while something else runs: every read must succeed.
pub struct Reading {
    stop: Arc<std::sync::atomic::AtomicBool>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Reading {
    /// Starts reading `ids` in turn with `s`; a read that fails fails the test.
    pub fn start(s: Arc<Session>, ids: Vec<rfl_domain::CaseId>) -> Reading {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, rd) = (stop.clone(), reads.clone());
        let task = tokio::spawn(async move {
            let mut i = 0;
            while !st.load(Ordering::Relaxed) && !ids.is_empty() {
                match s.open_case(ids[i % ids.len()]).await {
                    Ok(o) => assert!(!o.file.persons.is_empty(), "a case read back empty"),
                    Err(e) => panic!("a read during the run failed: {e}"),
                }
                rd.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
        Reading { stop, reads, task }
    }

    /// Stops reading; how many reads there were (all of them succeeded).
    #[allow(clippy::unwrap_used)]
    pub async fn finish(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runs `f` again while it answers 409 (a request the dead client sent may still be committing), up
/// to 20 times, 100 ms apart; its last answer.
pub async fn again_while_conflict<T, F, Fut>(mut f: F) -> rfl_client::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = rfl_client::Result<T>>,
{
    let mut done = f().await;
    for _ in 0..20 {
        match &done {
            Err(e) if e.status() == Some(409) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                done = f().await;
            }
            _ => break,
        }
    }
    done
}

/// `s` imports `n` new cases for round `round` (in requests of `batch`); every case `s` holds now.
#[allow(clippy::unwrap_used)]
pub async fn import_round(
    s: &Session,
    round: u64,
    n: u64,
    batch: usize,
) -> Vec<rfl_domain::CaseId> {
    let files: Vec<rfl_domain::CaseFile> = (0..n)
        .map(|i| crate::case(10_000 * (round + 1) + i))
        .collect();
    s.import(files, batch, |_| {}).await.unwrap();
    s.list_all_cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}
