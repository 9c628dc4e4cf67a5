//! Bulk client work that must not slow the caseworkers on the same machine.
//!
//! An escrow rotation re-wraps and encodes hundreds of thousands of keys; where the client runs
//! beside a server (an admin's workstation, the benchmark) or beside other clients, that CPU work at
//! the ordinary class delays whatever wakes for a read. Here it runs on a thread of its own in
//! Linux's `SCHED_IDLE` class. A fresh thread per job: an unprivileged thread cannot leave the
//! idle class again, so a pooled thread must never be lowered.

use crate::{ClientError, Result};

/// Runs `job` on a new low-priority thread and awaits its result without holding a runtime worker.
pub(crate) async fn run<T: Send + 'static>(
    job: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (answer, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rfl-idle".into())
        .spawn(move || {
            // Where the class cannot be lowered the job runs at the ordinary one: only slower
            // for others, never wrong.
            let _ = lower();
            // Nobody awaits the answer only when the caller was dropped (the rotation abandoned).
            let _ = answer.send(job());
        })
        .map_err(|e| ClientError::Invalid(format!("could not start a background thread: {e}")))?;
    result
        .await
        .map_err(|_| ClientError::Invalid("a background thread stopped without an answer".into()))?
}

/// Offers the core to any other runnable thread. Called between small pieces of a long job: on this
/// kernel a thread that wakes beside an idle-class thread can wait until the next scheduler tick
/// (4 ms) before it runs (docs/benchmarks.md, run 18).
pub(crate) fn let_others_run() {
    std::thread::yield_now();
}

#[cfg(target_os = "linux")]
fn lower() -> std::result::Result<(), thread_priority::Error> {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy as Normal,
        ThreadSchedulePolicy as Policy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        Policy::Normal(Normal::Idle),
    )
}

#[cfg(not(target_os = "linux"))]
fn lower() -> std::result::Result<(), thread_priority::Error> {
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn answers_and_errors_come_back() {
        assert_eq!(super::run(|| Ok("done")).await.unwrap(), "done");
        let failed = super::run(|| Err::<(), _>(crate::ClientError::Invalid("x".into()))).await;
        assert!(failed.is_err());
    }
}
