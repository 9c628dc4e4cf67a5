//! Rotating the society escrow key over every case of a society (issue 9): `Session::rotate_escrow`,
//! the same call as `rfl society rotate-escrow`, from start to the revocation of the old key.
//! Ordinary reads of a sample of the cases run during the rotation and, for comparison, for 2 s just
//! before it.
//!
//! Measured in the same run:
//! - the X25519 floor: the age key agreements the rotation cannot avoid (one per old batch header
//!   opened, one per new batch made and one per new batch verified), at this machine's rate;
//! - the symmetric floor: one old wrapping opened, one new made and opened again, per wrapping;
//! - the plaintext baseline: the same job afterwards with the cryptography left out (the same pages
//!   fetched, the same bytes sent back in the same batches, the same completion): the floor the
//!   API and the database set.
//!
//! Setup (not timed): the environment's caseworker imports the cases.

use std::time::Instant;

use rfl_client::escrow_rotation::ROTATION_PAGE;
use rfl_crypto::{
    issue_escrow_cert, wrap_escrow_identity, AgeIdentity, DataKey, EscrowBatch, Validity,
};
use rfl_domain::api::{
    CompleteEscrowRotation, EscrowCompletionDto, EscrowRotationDto, EscrowWrapsResponse,
    RotateEscrowWraps, RotatedEscrowWraps, StartEscrowRotation,
};
use rfl_domain::CaseId;
use serde::Serialize;

use crate::data::generate;
use crate::measure::{opener, progress_printer, reads_around, reads_around_at, Around, ReadResult};
use crate::setup::Env;
use crate::{BenchResult, Context};

/// Cases the readers read (spread over the whole society): each is read once before the quiet load.
const READ_SAMPLE: usize = 5_000;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RotateReport {
    pub cases: usize,
    /// Escrow wrappings re-wrapped (one per case and key epoch).
    pub wraps: u64,
    /// The whole rotation, seconds (`Session::rotate_escrow`).
    pub rotate_secs: f64,
    pub wraps_per_sec: f64,
    /// Old batch headers opened, new batches made.
    pub old_batches: usize,
    pub new_batches: usize,
    /// age X25519 operations per second on one core (an encryption and a decryption, averaged).
    pub x25519_ops_per_sec: f64,
    /// The rotation's X25519 operations at that rate, seconds.
    pub x25519_floor_secs: f64,
    /// Opening an old wrapping, making a new one and opening it again, µs per wrapping (one core).
    pub rewrap_us: f64,
    /// All wrappings at that rate on one core, seconds.
    pub symmetric_floor_secs: f64,
    /// The same job without the cryptography, seconds.
    pub baseline_secs: f64,
    pub reads_quiet: Option<ReadResult>,
    pub reads_during: Option<ReadResult>,
    /// p99 during / p99 quiet.
    pub p99_ratio: Option<f64>,
    /// A second rotation of the same cases (to the next key) with the readers open loop at this
    /// many reads per second in all: ordinary reads, not a saturating load.
    pub paced_rate: Option<f64>,
    pub paced_rotate_secs: Option<f64>,
    pub paced_reads_quiet: Option<ReadResult>,
    pub paced_reads_during: Option<ReadResult>,
    /// Open-loop reads again just after the second rotation: the host's noise check.
    pub paced_reads_after: Option<ReadResult>,
    pub paced_p99_ratio: Option<f64>,
    /// Wrappings per page and batch of the rotation.
    pub page: usize,
}

/// Runs the rotation measurement on `env` (a fresh server): `cases` cases, `clients` readers.
pub async fn measure(
    env: &Env,
    cases: usize,
    clients: usize,
    paced_rate: Option<f64>,
    page: usize,
    out: &mut RotateReport,
) -> BenchResult<()> {
    out.page = page;
    out.cases = cases;
    eprintln!("  the caseworker imports {cases} cases (not timed)");
    let (files, _) = tokio::task::spawn_blocking(move || generate(cases))
        .await
        .ctx("generator task")??;
    env.caseworker
        .import(files, 1000, progress_printer("import".into(), cases))
        .await
        .ctx("import")?;
    if env.analyze().await? {
        eprintln!("  ANALYZE done (not timed)");
    }
    let ids: Vec<CaseId> = env
        .caseworker
        .list_all_cases()
        .await
        .ctx("list")?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let step = (ids.len() / READ_SAMPLE).max(1);
    let sample: Vec<CaseId> = ids.iter().copied().step_by(step).collect();
    let reader = std::sync::Arc::new(env.login_again().await?);

    let mut admin = env.admin.lock().await;
    let (session, authenticator) = &mut *admin;
    session.step_up(authenticator).await.ctx("admin step-up")?;
    let session = &*session;
    let sample = std::sync::Arc::new(sample);
    // One timed rotation of every wrapping to the next key (the recovery key certifies each).
    let timed_rotation = || async {
        let started = Instant::now();
        let r = session
            .rotate_escrow_by(&env.recovery, Some(&env.root), page, |_| {})
            .await;
        (r, started.elapsed().as_secs_f64())
    };
    let ((report, secs), reads) = reads_around(
        sample.clone(),
        clients,
        opener(reader.clone()),
        timed_rotation(),
    )
    .await?;
    let report = report.ctx("rotate the escrow key")?;
    if !report.completed || report.done < cases as u64 {
        return Err(format!(
            "the rotation moved {} wrappings of {cases} cases and did not complete",
            report.done
        ));
    }
    out.wraps = report.done;
    out.rotate_secs = secs;
    out.wraps_per_sec = report.done as f64 / secs.max(1e-9);
    out.old_batches = report.old_batches;
    out.new_batches = report.new_batches;
    eprintln!(
        "  {} wrappings re-wrapped in {secs:.2} s ({:.0}/s; {} old batches, {} new)",
        out.wraps, out.wraps_per_sec, out.old_batches, out.new_batches
    );
    if let Some(reads) = reads {
        out.p99_ratio = Some(reads.p99_ratio());
        out.reads_quiet = Some(reads.quiet);
        out.reads_during = Some(reads.during);
    }

    if let Some(rate) = paced_rate.filter(|r| *r > 0.0) {
        // The same rotation again (to the next key), the readers at a fixed rate.
        let ((again, secs), reads) = reads_around_at(
            sample.clone(),
            clients,
            opener(reader),
            timed_rotation(),
            Some(rate),
        )
        .await?;
        let again = again.ctx("rotate the escrow key again")?;
        if !again.completed {
            return Err("the second rotation did not complete".into());
        }
        eprintln!("  again, readers at {rate:.0} reads/s: {secs:.2} s");
        out.paced_rate = Some(rate);
        out.paced_rotate_secs = Some(secs);
        if let Some(reads) = reads {
            out.paced_p99_ratio = Some(reads.p99_ratio());
            out.paced_reads_quiet = Some(reads.quiet);
            out.paced_reads_during = Some(reads.during);
            out.paced_reads_after = reads.after;
        }
    }

    let floors = tokio::task::spawn_blocking(floors)
        .await
        .ctx("floor task")??;
    out.x25519_ops_per_sec = floors.0;
    out.rewrap_us = floors.1;
    let x25519_ops = (out.old_batches + 2 * out.new_batches) as f64;
    out.x25519_floor_secs = x25519_ops / out.x25519_ops_per_sec.max(1e-9);
    out.symmetric_floor_secs = out.wraps as f64 * out.rewrap_us / 1e6;
    eprintln!(
        "  floors: X25519 {:.0} ops/s → {:.2} s; re-wrap {:.2} µs → {:.2} s (one core)",
        out.x25519_ops_per_sec, out.x25519_floor_secs, out.rewrap_us, out.symmetric_floor_secs
    );
    out.baseline_secs = baseline(env, session).await?;
    eprintln!(
        "  baseline (the same job, no cryptography): {:.2} s",
        out.baseline_secs
    );
    Ok(())
}

/// X25519 operations per second (age encryption and decryption of a batch header to an X25519
/// recipient, averaged) and µs per re-wrapped wrapping, each on one core.
fn floors() -> BenchResult<(f64, f64)> {
    const N: u32 = 300;
    let society = uuid::Uuid::now_v7();
    let identity = AgeIdentity::generate();
    let recipient = identity.recipient();
    let started = Instant::now();
    let mut last = None;
    for _ in 0..N {
        let b = EscrowBatch::new(society, recipient.as_age()).ctx("batch")?;
        let key = DataKey::generate().ctx("key")?;
        last = Some(b.wrap(&key, society, 1).ctx("wrap")?);
    }
    let encrypt = started.elapsed().as_secs_f64() / f64::from(N);
    let wrapped = last.ok_or("no wrapping")?;
    let started = Instant::now();
    for _ in 0..N {
        EscrowBatch::open(&wrapped, society, identity.as_age()).ctx("open")?;
    }
    let decrypt = started.elapsed().as_secs_f64() / f64::from(N);
    let ops_per_sec = 2.0 / (encrypt + decrypt);

    // Per wrapping: open the old, wrap to a new batch, open the new (as the rotation verifies).
    const M: u32 = 20_000;
    let old = EscrowBatch::open(&wrapped, society, identity.as_age()).ctx("open")?;
    let new = EscrowBatch::new(society, recipient.as_age()).ctx("batch")?;
    let started = Instant::now();
    for _ in 0..M {
        let key = old.unwrap(&wrapped, society, 1).ctx("unwrap")?;
        let again = new.wrap(&key, society, 1).ctx("wrap")?;
        let back = new.unwrap(&again, society, 1).ctx("unwrap")?;
        if !back.same_as(&key) {
            return Err("a re-wrapped key differs".into());
        }
    }
    let rewrap_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(M);
    Ok((ops_per_sec, rewrap_us))
}

/// The same job with the cryptography left out: a job started with a new key (made and certified
/// before the clock starts), every page of the wrappings fetched and sent back unchanged in the same
/// batches with the next page fetched meanwhile, and the completion. Seconds.
async fn baseline(env: &Env, s: &rfl_client::Session) -> BenchResult<f64> {
    let society = *env.society.as_uuid();
    let new = AgeIdentity::generate();
    let wrapped = wrap_escrow_identity(&new, society, env.recovery.recipient().as_age())
        .ctx("wrap the baseline key")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ctx("clock")?
        .as_secs() as i64;
    let cert = issue_escrow_cert(
        &env.root,
        society,
        &new.recipient(),
        Validity::new(now - 300, now + 86_400).ctx("validity")?,
    )
    .ctx("certify the baseline key")?;
    let job: EscrowRotationDto = s
        .api()
        .post(
            "/v1/society/escrow/rotation",
            &StartEscrowRotation {
                recipient: new.recipient().to_string(),
                wrapped_identity: wrapped.into(),
                certificate: cert.to_hex(),
            },
        )
        .await
        .ctx("start the baseline job")?;
    let started = Instant::now();
    let old_gen = job.new_gen - 1;
    let page = |after: Option<(uuid::Uuid, u32)>| async move {
        let mut path =
            format!("/v1/society/escrow/rotation/wraps?gen={old_gen}&limit={ROTATION_PAGE}");
        if let Some((c, e)) = after {
            path.push_str(&format!("&after_case={c}&after_epoch={e}"));
        }
        s.api()
            .get_wire::<EscrowWrapsResponse>(&path)
            .await
            .map(|r| r.wraps)
    };
    let mut wraps = page(None).await.ctx("a page")?;
    while !wraps.is_empty() {
        let last = wraps.last().map(|w| (w.case_id, w.key_epoch));
        let full = wraps.len() == ROTATION_PAGE;
        let body = rfl_domain::api::wire::encode(&RotateEscrowWraps {
            new_gen: job.new_gen,
            wraps,
        })
        .ctx("encode a batch")?;
        let send = s
            .api()
            .post_wire::<RotatedEscrowWraps>("/v1/society/escrow/rotation/wraps", body);
        let fetch = async {
            if full {
                page(last).await
            } else {
                Ok(Vec::new())
            }
        };
        let (sent, next) = tokio::join!(send, fetch);
        sent.ctx("a batch")?;
        wraps = next.ctx("a page")?;
    }
    let c: EscrowCompletionDto = s
        .api()
        .post(
            "/v1/society/escrow/rotation/complete",
            &CompleteEscrowRotation {
                new_gen: job.new_gen,
            },
        )
        .await
        .ctx("complete the baseline job")?;
    if c.left != 0 {
        return Err(format!("{} wrappings left after the baseline job", c.left));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The report's section.
pub fn markdown(s: &mut String, r: &RotateReport) {
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "**Rotating the society escrow key over {} cases** ({} escrow wrappings in pages of {}, {} \
         old batch headers, {} new batches): **{:.2} s** ({:.0} wrappings/s; target ≤ 60 s, aim 20 s). \
         Floors in the same run: X25519 {:.0} ops/s → {:.2} s; re-wrap {:.2} µs per wrapping → \
         {:.2} s on one core; the same job without cryptography (baseline) {:.2} s.\n",
        r.cases,
        r.wraps,
        r.page,
        r.old_batches,
        r.new_batches,
        r.rotate_secs,
        r.wraps_per_sec,
        r.x25519_ops_per_sec,
        r.x25519_floor_secs,
        r.rewrap_us,
        r.symmetric_floor_secs,
        r.baseline_secs
    );
    if let (Some(quiet), Some(during)) = (&r.reads_quiet, &r.reads_during) {
        let reads = Around {
            quiet: quiet.clone(),
            during: during.clone(),
            after: None,
        };
        crate::report::reads_table(s, "during the rotation", &reads);
    }
    if let (Some(rate), Some(secs), Some(quiet), Some(during)) = (
        r.paced_rate,
        r.paced_rotate_secs,
        &r.paced_reads_quiet,
        &r.paced_reads_during,
    ) {
        let reads = Around {
            quiet: quiet.clone(),
            during: during.clone(),
            after: r.paced_reads_after.clone(),
        };
        let _ = writeln!(
            s,
            "\n**The same rotation again, readers open loop at {rate:.0} reads/s in all** \
             (ordinary reads, latency from each read's scheduled time): **{secs:.2} s**.\n"
        );
        crate::report::reads_table(s, "during the second rotation", &reads);
    }
}
