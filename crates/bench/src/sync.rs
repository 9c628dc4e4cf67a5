//! National society sync (issue 10, `docs/sync.md`): one side of it, on one server. The sync
//! agent pulls every case of a society from 0 (the initial sync's read side), then 1,000 commits a
//! caseworker signed offline are pushed (verified on arrival, stored) and pulled again (the
//! incremental sync). A second server to push the initial pull into comes with the trust bundles of
//! step 5; until then these are the two halves an initial sync is bounded by, measured apart.

use std::time::Instant;

use rfl_client::http::Api;
use rfl_crypto::{parse_commit, CommitOp};
use rfl_domain::api::{Base64Bytes, SyncCaseDto, SyncOutcome, SyncPushDto};
use rfl_domain::CaseStatus;
use serde::Serialize;

use crate::auth::key_signin;
use crate::data::generate;
use crate::measure::progress_printer;
use crate::setup::Env;
use crate::{BenchResult, Context};

/// Cases per page of the pull (the server's default `limits.page_max`).
const PAGE: u32 = 1000;

#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    /// Cases of the society.
    pub cases: usize,
    /// PostgreSQL: `ANALYZE` ran after the import (untimed).
    pub analyzed_after_import: bool,
    /// Pulling every case from 0, page by page, in the binary framing: seconds.
    pub initial_pull_secs: f64,
    pub initial_pull_cases_per_sec: f64,
    /// Bytes of the pages' bodies as decoded (commits, envelopes, wrapped keys).
    pub initial_pull_mb: f64,
    pub pages: usize,
    /// The bench process's resident memory before the pull and at its highest during it, MiB.
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    /// Commits signed offline and pushed in one batch.
    pub pushed: usize,
    /// Pushing them (verified, stored): milliseconds.
    pub push_ms: f64,
    /// Pulling the cases they changed since the cursor: milliseconds.
    pub incremental_pull_ms: f64,
}

/// Runs the measurement on `env` (a fresh server): `cases` cases imported (not timed), then the
/// pulls and the push.
pub async fn measure(
    env: &Env,
    cases: usize,
    batch_size: usize,
    out: &mut SyncReport,
) -> BenchResult<()> {
    out.cases = cases;
    eprintln!("  importing {cases} synthetic cases (not timed)");
    let n = import_synthetic(env, cases, batch_size).await?;
    // What an operator runs after a bulk load (autovacuum is off on the benchmark machine).
    out.analyzed_after_import = env.analyze().await?;
    let anon = Api::new(&env.base).ctx("client")?;
    let token = key_signin(&anon, env.agent_member, &env.agent_keys).await?;
    let agent = anon.with_token(token);

    // The initial pull: every page from 0, each dropped once counted (a real agent pushes it on
    // and keeps only its cursor). 1,000 heads are kept for the offline commits below.
    out.rss_before_mib = rss_mib();
    out.rss_peak_mib = out.rss_before_mib;
    let keep = 1000.min(n);
    let mut heads: Vec<SyncCaseDto> = Vec::with_capacity(keep);
    let mut cursor = 0;
    let mut bytes = 0usize;
    let mut pulled = 0usize;
    let started = Instant::now();
    loop {
        let page = agent
            .sync_changes((0, cursor), None, Some(PAGE))
            .await
            .ctx("GET /v1/sync/changes")?;
        out.pages += 1;
        for c in &page.cases {
            bytes += c.commits.iter().map(|b| b.0.len()).sum::<usize>()
                + c.records.iter().map(|r| r.envelope.0.len()).sum::<usize>()
                + c.keys.iter().map(|k| k.wrapped.0.len()).sum::<usize>();
        }
        out.initial_pull_mb = bytes as f64 / 1e6;
        pulled += page.cases.len();
        if heads.len() < keep {
            heads.extend(page.cases.iter().take(keep - heads.len()).cloned());
        }
        out.rss_peak_mib = out.rss_peak_mib.max(rss_mib());
        cursor = page.next;
        if out.pages.is_multiple_of(50) {
            eprintln!("  pulled {pulled} cases");
        }
        if !page.more {
            break;
        }
    }
    out.initial_pull_secs = started.elapsed().as_secs_f64();
    if pulled != n {
        return Err(format!("the initial pull carried {pulled} cases, not {n}"));
    }
    out.initial_pull_cases_per_sec = n as f64 / out.initial_pull_secs.max(1e-9);
    eprintln!(
        "  initial pull: {n} cases in {:.2} s ({:.0} cases/s, {} pages, {:.0} MB, RSS {:.0} → {:.0} MiB)",
        out.initial_pull_secs,
        out.initial_pull_cases_per_sec,
        out.pages,
        out.initial_pull_mb,
        out.rss_before_mib,
        out.rss_peak_mib
    );

    // 1,000 commits the caseworker signed offline (not timed), pushed in one batch, then pulled.
    let signing = &env.cw_keys.signing;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let batch = SyncPushDto {
        cases: heads
            .iter()
            .map(|c| {
                let head = c.commits.last().ok_or("a pulled case without commits")?;
                let head = parse_commit(&head.0).map_err(|e| e.to_string())?;
                let mut body = *head.body();
                body.op = CommitOp::Status;
                body.seq += 1;
                body.parent = head.hash();
                body.status = CaseStatus::Tracing.code();
                body.created_at = now;
                let commit = body.sign(signing).map_err(|e| e.to_string())?;
                Ok(SyncCaseDto {
                    whole: false,
                    commits: vec![Base64Bytes(commit.as_bytes().to_vec())],
                    records: Vec::new(),
                    keys: Vec::new(),
                    ..c.clone()
                })
            })
            .collect::<BenchResult<_>>()?,
    };
    out.pushed = batch.cases.len();
    let started = Instant::now();
    let answer = agent
        .sync_push("rfl-bench-incremental", &batch)
        .await
        .ctx("POST /v1/sync/changes")?;
    out.push_ms = started.elapsed().as_secs_f64() * 1e3;
    let applied = answer
        .cases
        .iter()
        .filter(|o| o.outcome == SyncOutcome::Applied)
        .count();
    if applied != out.pushed {
        let first = answer
            .cases
            .iter()
            .find(|o| o.outcome != SyncOutcome::Applied)
            .and_then(|o| o.reason.clone())
            .unwrap_or_default();
        return Err(format!(
            "the push applied {applied} of {} commits: {first}",
            out.pushed
        ));
    }
    let started = Instant::now();
    let mut changed = 0;
    let mut after = cursor;
    loop {
        let page = agent
            .sync_changes((cursor, after), None, Some(PAGE))
            .await
            .ctx("GET /v1/sync/changes")?;
        changed += page.cases.len();
        after = page.next;
        if !page.more {
            break;
        }
    }
    out.incremental_pull_ms = started.elapsed().as_secs_f64() * 1e3;
    if changed != out.pushed {
        return Err(format!(
            "the incremental pull carried {changed} cases, not the {} pushed",
            out.pushed
        ));
    }
    eprintln!(
        "  incremental: {} offline commits pushed in {:.0} ms, pulled in {:.0} ms",
        out.pushed, out.push_ms, out.incremental_pull_ms
    );
    Ok(())
}

/// Imports `cases` synthetic cases with the environment's caseworker (encrypted, in batches of
/// `batch_size`), with a progress line; returns how many.
pub async fn import_synthetic(env: &Env, cases: usize, batch_size: usize) -> BenchResult<usize> {
    let (files, _) = tokio::task::spawn_blocking(move || generate(cases))
        .await
        .ctx("generator task")??;
    let n = files.len();
    let r = env
        .caseworker
        .import(files, batch_size, progress_printer("import".into(), n))
        .await
        .ctx("Session::import")?;
    if r.created != n {
        return Err(format!("the import stored {} of {n} cases", r.created));
    }
    Ok(n)
}

/// The process's resident memory, MiB (0 where `/proc` is not there).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn markdown(s: &mut String, r: &SyncReport) {
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "**Sync, one side** ({} cases): initial pull {:.2} s ({:.0} cases/s, {} pages, {:.0} MB; \
         bench RSS {:.0} → {:.0} MiB); {} offline commits pushed in {:.0} ms and pulled in {:.0} ms.\n",
        r.cases,
        r.initial_pull_secs,
        r.initial_pull_cases_per_sec,
        r.pages,
        r.initial_pull_mb,
        r.rss_before_mib,
        r.rss_peak_mib,
        r.pushed,
        r.push_ms,
        r.incremental_pull_ms
    );
}
