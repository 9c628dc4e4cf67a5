//! Writers of two societies at once (issue 10: each society numbers its own changes). Two
//! caseworkers import the same number of cases at the same time, first both of one society, then
//! one of each of two societies, on the same server and database. Each import holds its society's
//! change sequence for the length of each batch's transaction, so two writers of one society take
//! turns on it and writers of two societies need not (`docs/sync.md`). SQLite has one writer for
//! the whole database, so there the two take turns either way.

use std::time::Instant;

use rfl_client::Session;
use serde::Serialize;

use crate::data::generate;
use crate::measure::progress_printer;
use crate::setup::Env;
use crate::{BenchResult, Context};

#[derive(Clone, Debug, Default, Serialize)]
pub struct SocietiesReport {
    /// Cases each of the two writers imports, in each of the two runs.
    pub cases_per_writer: usize,
    /// Both writers of one society: wall time until both imports finished, seconds.
    pub one_society_secs: f64,
    /// One writer of each of two societies: the same.
    pub two_societies_secs: f64,
    /// Cases stored per second in all, one society.
    pub one_society_cases_per_sec: f64,
    /// Cases stored per second in all, two societies.
    pub two_societies_cases_per_sec: f64,
}

/// Runs the measurement on `env` (a fresh server): `cases` cases per writer, `batch_size` cases per
/// request.
pub async fn measure(
    env: &Env,
    cases: usize,
    batch_size: usize,
    out: &mut SocietiesReport,
) -> BenchResult<()> {
    out.cases_per_writer = cases;
    eprintln!("  generating {cases} synthetic cases (not timed; each writer's ids differ)");
    let (files, _) = tokio::task::spawn_blocking(move || generate(cases))
        .await
        .ctx("generator task")??;
    let same_a = env.another_caseworker().await?;
    let same_b = env.another_caseworker().await?;
    let own = env.another_caseworker().await?;
    let other = env.another_society("rfl-bench second society").await?;

    let secs = both(&same_a, &same_b, &files, batch_size, "one society").await?;
    out.one_society_secs = secs;
    out.one_society_cases_per_sec = (2 * cases) as f64 / secs.max(1e-9);
    eprintln!(
        "  two writers of one society: {} cases in {secs:.2} s ({:.0} cases/s)",
        2 * cases,
        out.one_society_cases_per_sec
    );
    let secs = both(&own, &other, &files, batch_size, "two societies").await?;
    out.two_societies_secs = secs;
    out.two_societies_cases_per_sec = (2 * cases) as f64 / secs.max(1e-9);
    eprintln!(
        "  one writer of each of two societies: {} cases in {secs:.2} s ({:.0} cases/s)",
        2 * cases,
        out.two_societies_cases_per_sec
    );
    Ok(())
}

/// Both sessions import `files` at the same time; the wall time until both are done.
async fn both(
    a: &Session,
    b: &Session,
    files: &[rfl_domain::CaseFile],
    batch_size: usize,
    label: &str,
) -> BenchResult<f64> {
    let n = files.len();
    let started = Instant::now();
    let (ra, rb) = tokio::join!(
        a.import(
            files.to_vec(),
            batch_size,
            progress_printer(format!("{label}, writer 1"), n)
        ),
        b.import(
            files.to_vec(),
            batch_size,
            progress_printer(format!("{label}, writer 2"), n)
        ),
    );
    let secs = started.elapsed().as_secs_f64();
    for r in [ra, rb] {
        let r = r.ctx("Session::import")?;
        if r.created != n {
            return Err(format!(
                "{label}: an import stored {} of {n} cases",
                r.created
            ));
        }
    }
    Ok(secs)
}

pub fn markdown(s: &mut String, r: &SocietiesReport) {
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "**Two writers at once** ({} cases each, encrypted import): both of one society {:.2} s \
         ({:.0} cases/s); one of each of two societies {:.2} s ({:.0} cases/s).\n",
        r.cases_per_writer,
        r.one_society_secs,
        r.one_society_cases_per_sec,
        r.two_societies_secs,
        r.two_societies_cases_per_sec
    );
}
