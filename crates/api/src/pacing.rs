//! Bulk database work gives way to ordinary requests.
//!
//! [`crate::bulk::idle`] lowers the server's own threads for bulk work, but a bulk statement runs
//! where the server cannot lower it: in a PostgreSQL backend process, or on SQLite's single writer.
//! On a busy core a woken thread can wait up to a scheduler tick (4 ms at 250 Hz) behind such a
//! statement, and a read passes through several threads, so while a rotation's statements run back
//! to back, about one read in a hundred waited 10–20 ms (docs/benchmarks.md, runs 18 and 19).
//!
//! The pacer bounds the share of the time bulk statements hold the database while ordinary requests
//! arrive, as PostgreSQL's autovacuum bounds its own with a cost delay: after a bulk step whose
//! statement took `t`, the next one starts no earlier than `t × (100 / share − 1)` later. With no
//! ordinary request in the last second, bulk work runs at full speed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The routes whose requests are bulk work (an escrow rotation's pages and batches). Every other
/// request counts as ordinary.
pub const BULK_ROUTES: [&str; 1] = ["/v1/society/escrow/rotation/wraps"];

/// How recent an ordinary request must be for bulk work to give way to it.
const RECENT: Duration = Duration::from_secs(1);

/// Paces bulk statements across all requests of one server.
#[derive(Debug)]
pub struct Pacer {
    /// `100 / share − 1`: the pause owed per unit of a bulk statement's time.
    pause_per_busy: f64,
    state: Mutex<PaceState>,
}

#[derive(Debug, Default)]
struct PaceState {
    last_ordinary: Option<Instant>,
    next_bulk: Option<Instant>,
}

impl Pacer {
    /// `share_percent`: the most of the time bulk statements may hold the database while ordinary
    /// requests arrive, 1 to 100 (100: no pacing). Out-of-range values are clamped.
    pub fn new(share_percent: u8) -> Pacer {
        let share = f64::from(share_percent.clamp(1, 100)) / 100.0;
        Pacer {
            pause_per_busy: 1.0 / share - 1.0,
            state: Mutex::new(PaceState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PaceState> {
        // The state is two instants, valid whatever a panicking holder left.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An ordinary request arrived at `now`.
    pub fn ordinary(&self, now: Instant) {
        self.state().last_ordinary = Some(now);
    }

    fn ordinary_recently(state: &PaceState, now: Instant) -> bool {
        state
            .last_ordinary
            .is_some_and(|t| now.saturating_duration_since(t) < RECENT)
    }

    /// How long a bulk step starting at `now` waits first.
    pub fn wait_before(&self, now: Instant) -> Duration {
        let state = self.state();
        if !Self::ordinary_recently(&state, now) {
            return Duration::ZERO;
        }
        state
            .next_bulk
            .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
    }

    /// A bulk statement took `busy`, ending at `now`.
    pub fn finished(&self, busy: Duration, now: Instant) {
        let mut state = self.state();
        let pause = busy.mul_f64(self.pause_per_busy);
        let next = now + pause;
        // Several bulk steps may end in any order: the latest turn wins.
        state.next_bulk = Some(state.next_bulk.map_or(next, |n| n.max(next)));
    }

    /// Waits for the next bulk step's turn, without holding a thread.
    pub async fn turn(&self) {
        let wait = self.wait_before(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs a bulk statement `f` (blocking: call it on a blocking or bulk thread) and records its
    /// time.
    pub fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.finished(started.elapsed(), Instant::now());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn alone_bulk_work_never_waits() {
        let p = Pacer::new(25);
        let t0 = Instant::now();
        p.finished(100 * MS, t0);
        assert_eq!(p.wait_before(t0), Duration::ZERO);
        // An ordinary request long ago does not count.
        p.ordinary(t0);
        assert_eq!(p.wait_before(t0 + 2 * RECENT), Duration::ZERO);
    }

    #[test]
    fn with_ordinary_requests_bulk_work_holds_at_most_its_share() {
        let p = Pacer::new(25);
        let t0 = Instant::now();
        p.ordinary(t0);
        p.finished(100 * MS, t0);
        // 100 ms of bulk statement at a 25 % share owes 300 ms of pause.
        assert_eq!(p.wait_before(t0), 300 * MS);
        assert_eq!(p.wait_before(t0 + 200 * MS), 100 * MS);
        assert_eq!(p.wait_before(t0 + 300 * MS), Duration::ZERO);
    }

    #[test]
    fn the_latest_turn_wins_and_a_full_share_never_waits() {
        let p = Pacer::new(50);
        let t0 = Instant::now();
        p.ordinary(t0);
        p.finished(100 * MS, t0 + 50 * MS);
        p.finished(10 * MS, t0);
        assert_eq!(p.wait_before(t0), 150 * MS);

        let free = Pacer::new(100);
        free.ordinary(t0);
        free.finished(100 * MS, t0);
        assert_eq!(free.wait_before(t0), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_turn_waits_what_is_owed() {
        let p = Pacer::new(50);
        p.ordinary(Instant::now());
        p.timed(|| std::thread::sleep(2 * MS));
        let started = Instant::now();
        p.turn().await;
        // A 50 % share owes the statement's own time again: about 2 ms.
        assert!(started.elapsed() >= MS, "{:?}", started.elapsed());
        // Owed once: the next turn is free.
        assert_eq!(p.wait_before(Instant::now()), Duration::ZERO);
    }
}
