//! Revoking a member who holds many cases (issue 9): the revocation list and the suspension, then
//! the re-key of every case they held, each a new key epoch whose data key is wrapped to the
//! colleague who keeps the case and to the escrow key. Ordinary reads of those cases run during the
//! re-key and, for comparison, for 2 s just before it (the cheaper reads: a re-keyed case opens
//! with one more key, its earlier epoch's).
//!
//! Setup (not timed): a caseworker who will leave imports the cases and grants each to a colleague
//! (the environment's caseworker), so every case has one holder who stays.

use std::sync::Arc;
use std::time::Instant;

use rfl_client::ClientError;
use rfl_crypto::RevocationReason;
use rfl_domain::CaseId;
use serde::Serialize;

use crate::data::generate;
use crate::measure::{opener, progress_printer, reads_around_at, Around, ReadResult};
use crate::setup::Env;
use crate::{BenchResult, Context};

/// Grants made at once during the setup.
const GRANT_CONCURRENCY: usize = 8;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RevokeReport {
    /// Cases the revoked member held, each also held by one colleague who stays.
    pub cases: usize,
    /// Publishing the revocation list and suspending the member, seconds.
    pub revoke_secs: f64,
    /// Re-keying every case they held, seconds (listing, verifying each head, a new key wrapped to
    /// the colleague and the escrow key, the commit, the server's checks and writes).
    pub rekey_secs: f64,
    /// The two together: what `rfl member revoke` takes.
    pub total_secs: f64,
    pub rekey_cases_per_sec: f64,
    /// Reads of those cases by the colleague for 2 s just before the revocation (none with no
    /// readers).
    pub reads_quiet: Option<ReadResult>,
    /// The same reads while the revocation and re-key ran.
    pub reads_during: Option<ReadResult>,
    /// Open loop, the same reads again just after: the host's noise check.
    pub reads_after: Option<ReadResult>,
    /// p99 during / p99 quiet.
    pub p99_ratio: Option<f64>,
    /// The readers' rate, reads per second in all, when open loop (none: closed loop, each reader
    /// reading again as soon as a read ends).
    pub read_rate: Option<f64>,
}

/// Runs the revocation measurement on `env` (a fresh server): `cases` cases, `clients` readers.
pub async fn measure(
    env: &Env,
    cases: usize,
    clients: usize,
    read_rate: Option<f64>,
    out: &mut RevokeReport,
) -> BenchResult<()> {
    let read_rate = read_rate.filter(|r| *r > 0.0);
    out.read_rate = read_rate;
    out.cases = cases;
    let leaver = Arc::new(env.another_caseworker().await?);
    eprintln!(
        "  the leaving caseworker imports {cases} cases and grants each to a colleague (not timed)"
    );
    let (files, _) = tokio::task::spawn_blocking(move || generate(cases))
        .await
        .ctx("generator task")??;
    leaver
        .import(files, 1000, progress_printer("import".into(), cases))
        .await
        .ctx("import")?;
    let ids: Vec<CaseId> = leaver
        .list_all_cases()
        .await
        .ctx("list")?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let colleague = env.cw_member;
    let mut next = ids.iter().copied();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < GRANT_CONCURRENCY {
            let Some(id) = next.next() else { break };
            let l = leaver.clone();
            running.spawn(async move { l.grant_case(id, colleague).await.map(|_| ()) });
        }
        match running.join_next().await {
            Some(r) => r.ctx("grant task")?.ctx("grant")?,
            None => break,
        }
    }

    // The colleague's reads: first quietly, then during the revocation.
    let reader = Arc::new(env.login_again().await?);
    let ids = Arc::new(ids);
    let op = opener(reader);
    let mut admin = env.admin.lock().await;
    let (session, authenticator) = &mut *admin;
    session.step_up(authenticator).await.ctx("admin step-up")?;
    let session = &*session;
    let work = async {
        let started = Instant::now();
        let revoked = session
            .revoke_member(leaver.member_id(), RevocationReason::Departed)
            .await;
        let revoke_secs = started.elapsed().as_secs_f64();
        let rekeyed = match revoked {
            Ok(_) => session.rekey_member_cases(leaver.member_id(), |_| {}).await,
            Err(e) => Err(e),
        };
        (rekeyed, revoke_secs, started.elapsed().as_secs_f64())
    };
    // Every case is read once first, so that the quiet reads and those during the re-key see the
    // same heads (the reader's client follows each head once after the re-key: one commit more).
    let ((rekeyed, revoke_secs, total), reads) =
        reads_around_at(ids, clients, op, work, read_rate).await?;
    let rekeyed: Result<_, ClientError> = rekeyed;
    let summary = rekeyed.ctx("revoke and re-key")?;
    if summary.rekeyed != cases {
        return Err(format!("{} of {cases} cases re-keyed", summary.rekeyed));
    }
    out.revoke_secs = revoke_secs;
    out.total_secs = total;
    out.rekey_secs = total - revoke_secs;
    out.rekey_cases_per_sec = cases as f64 / out.rekey_secs.max(1e-9);
    eprintln!(
        "  revoked in {revoke_secs:.2} s, {cases} cases re-keyed in {:.2} s ({:.0}/s)",
        out.rekey_secs, out.rekey_cases_per_sec
    );
    if let Some(reads) = reads {
        out.p99_ratio = Some(reads.p99_ratio());
        out.reads_during = Some(reads.during);
        out.reads_quiet = Some(reads.quiet);
        out.reads_after = reads.after;
    }
    Ok(())
}

/// The report's section.
pub fn markdown(s: &mut String, r: &RevokeReport) {
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "**Revoking a member who holds {} cases** (each also held by one colleague): revocation \
         list and suspension {:.2} s; re-key of every case {:.2} s ({:.0} cases/s); **total {:.2} s** \
         (target ≤ 2 s).\n",
        r.cases, r.revoke_secs, r.rekey_secs, r.rekey_cases_per_sec, r.total_secs
    );
    if let (Some(quiet), Some(during)) = (&r.reads_quiet, &r.reads_during) {
        if let Some(rate) = r.read_rate {
            let _ = writeln!(
                s,
                "Readers open loop at {rate:.0} reads/s in all (latency from each read's scheduled time).\n"
            );
        }
        let reads = Around {
            quiet: quiet.clone(),
            during: during.clone(),
            after: r.reads_after.clone(),
        };
        crate::report::reads_table(s, "during the revocation and re-key", &reads);
    }
}
