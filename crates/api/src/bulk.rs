//! Bulk work at the idle scheduling class.
//!
//! An escrow rotation sends batches of thousands of wrappings while caseworkers keep reading. On two
//! busy cores a read passes through several threads, and each wake-up could wait out the time slice
//! of a CPU-bound rotation thread of the same class: about one read in a hundred waited 10 to 20 ms
//! (docs/benchmarks.md, run 17). Work given to [`idle`] runs on a thread of its own in Linux's
//! `SCHED_IDLE` class instead, so it takes a core only when no ordinary thread wants it. That brought
//! the p99 of reads during a rotation under 2× its quiet value (run 18). The scheduler still lets an
//! idle-class thread finish its turn up to the next tick (4 ms at this machine's 250 Hz) before a
//! woken ordinary thread on the same core runs, so a job given here should be short: one page or
//! one batch, not a whole rotation.
//!
//! Never give it work that holds a database lock (a write transaction, a row lock): a starved lock
//! holder would hold up every writer behind it. Decode and check at idle, write on the ordinary
//! blocking pool ([`crate::blocking`]).

use tokio::sync::{oneshot, Semaphore};

use crate::error::ApiError;

/// Bulk threads at a time, across all requests: a thread per job, never an unbounded number of
/// them (more jobs wait their turn without holding a thread).
const MAX_BULK_THREADS: usize = 4;
static BULK_SLOTS: Semaphore = Semaphore::const_new(MAX_BULK_THREADS);

/// Runs `f` on a new thread at the lowest scheduling class the platform lets an unprivileged process
/// choose, and waits for its answer without holding an async worker.
pub async fn idle<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let slot = BULK_SLOTS
        .acquire()
        .await
        .map_err(|_| ApiError::Internal("the bulk work limiter is closed".into()))?;
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("rfl-bulk".into())
        .spawn(move || {
            let _slot = slot;
            lower_this_thread();
            // The receiver is gone only if the request was dropped: nothing waits for the answer.
            let _ = tx.send(f());
        })
        .map_err(|e| ApiError::Internal(format!("could not start a bulk thread: {e}")))?;
    rx.await
        .map_err(|_| ApiError::Internal("a bulk thread ended without an answer".into()))?
}

/// Puts the calling thread in the idle class (Linux), or at the lowest priority elsewhere; where
/// neither is allowed the work runs at the ordinary priority, only slower for others.
fn lower_this_thread() {
    use thread_priority::ThreadPriority;
    #[cfg(target_os = "linux")]
    let lowered = {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        )
    };
    #[cfg(not(target_os = "linux"))]
    let lowered = thread_priority::set_current_thread_priority(ThreadPriority::Min);
    if let Err(e) = lowered {
        tracing::debug!(error = ?e, "bulk work runs at the ordinary priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_the_work_and_returns_its_answer_or_error() {
        assert_eq!(idle(|| Ok(41 + 1)).await.unwrap(), 42);
        let e = idle(|| Err::<(), _>(ApiError::Conflict("no".into()))).await;
        assert!(matches!(e, Err(ApiError::Conflict(_))));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_thread_is_in_the_idle_class() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let policy = idle(|| Ok(thread_schedule_policy()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
    }
}
