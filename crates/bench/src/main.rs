#![forbid(unsafe_code)]
//! `rfl-bench`: encrypted vs plaintext import and reads through the real server and client.
//!
//! ```text
//! cargo build --release -p rfl-bench
//! target/release/rfl-bench --cases 515000 --backend sqlite
//! ```

// mimalloc instead of glibc's malloc: the hot paths allocate and free many short-lived buffers (JSON
// bodies, envelopes, rows), and glibc's allocator was ~12 % of an import profile (docs/benchmarks.md,
// run 10).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rfl_bench::data::generate;
use rfl_bench::measure::{progress_printer, read_load, ImportResult, ReadLimit};
use rfl_bench::primitives::Primitives;
use rfl_bench::report::{markdown, BackendReport, Machine, PhaseReport, Report};
use rfl_bench::setup::{backend_name, Env};
use rfl_bench::{auth, baseline};
use rfl_bench::{BenchResult, Context};
use rfl_domain::CaseId;
use rfl_storage::testing::TestBackend;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

/// Seeds synthetic cases through the real rfl server and client (encrypted, then a plaintext baseline on
/// the same API path) and measures import time, concurrent reads and database size.
#[derive(Debug, Parser)]
#[command(
    name = "rfl-bench",
    after_help = "BENCH_READ_TRACE=FILE: every read load appends one line per read to FILE: its \
                  scheduled start (µs since the Unix epoch) and its latency (µs), to line slow \
                  reads up with a database's log or a scheduler trace."
)]
struct Args {
    /// Number of synthetic cases per phase.
    #[arg(long, default_value_t = 2000)]
    cases: usize,
    /// Database backend(s). PostgreSQL: a fresh database on RFL_TEST_POSTGRES_URL
    /// (default postgres://postgres@127.0.0.1:5432/postgres), dropped afterwards.
    #[arg(long, value_enum, default_value_t = BackendArg::Sqlite)]
    backend: BackendArg,
    /// Cases per POST /v1/cases/batch (the server accepts at most 2000).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Read for this many seconds (per phase).
    #[arg(long, default_value_t = 10.0)]
    read_secs: f64,
    /// Read exactly this many cases instead of for a fixed time.
    #[arg(long)]
    read_count: Option<u64>,
    /// Sign-ins per load, passkey and key login, sequential and concurrent (0: no sign-in loads).
    #[arg(long, default_value_t = 500)]
    signin_count: u64,
    /// Concurrent clients in the concurrent sign-in loads (each with its own software passkey).
    #[arg(long, default_value_t = 8)]
    signin_clients: usize,
    /// Concurrent clients for `GET /v1/me` against `GET /healthz`.
    #[arg(long, default_value_t = 32)]
    auth_clients: usize,
    /// Seconds of each of `GET /v1/me` and `GET /healthz` (0: not measured).
    #[arg(long, default_value_t = 1.0)]
    auth_secs: f64,
    /// Calls of `TokenKeys::verify` in the single-thread microbenchmark (0: not measured).
    #[arg(long, default_value_t = 20_000)]
    verify_iterations: u64,
    /// Cases held by the member whose revocation is measured, each re-keyed (0: not measured).
    #[arg(long, default_value_t = 5000)]
    revoke_cases: usize,
    /// Concurrent readers during the revocation (0: the re-key alone, no reads measured).
    #[arg(long, default_value_t = 8)]
    revoke_readers: usize,
    /// The revocation's readers open loop at this many reads per second in all (0: closed loop,
    /// as fast as they can).
    #[arg(long, default_value_t = 0.0)]
    revoke_read_rate: f64,
    /// Cases of the society whose escrow key is rotated (0: not measured; the issue's figure is
    /// for 515,000).
    #[arg(long, default_value_t = 0)]
    rotate_cases: usize,
    /// Concurrent readers during the escrow-key rotation (0: the rotation alone).
    #[arg(long, default_value_t = 8)]
    rotate_readers: usize,
    /// Then rotate again with the readers open loop at this many reads per second in all
    /// (0: no second rotation).
    #[arg(long, default_value_t = 0.0)]
    rotate_read_rate: f64,
    /// Wrappings per page and batch of the rotation (at most the client's, 5,000).
    #[arg(long, default_value_t = rfl_client::escrow_rotation::ROTATION_PAGE)]
    rotate_page: usize,
    /// Cases each of two concurrent writers imports, both of one society and then one of each of
    /// two societies (0: not measured).
    #[arg(long, default_value_t = 0)]
    societies_cases: usize,
    /// Cases a society holds when its sync agent pulls them all, then pushes and pulls 1,000
    /// commits signed offline (0: not measured).
    #[arg(long, default_value_t = 0)]
    sync_cases: usize,
    /// Cases a hub holds when the society's sync agent (the `rfl sync` binary) carries them all
    /// to the society's new server on a second server, then 1,000 changed (0: not measured).
    #[arg(long, default_value_t = 0)]
    sync_e2e_cases: usize,
    /// The `rfl` binary the end-to-end sync runs [default: beside this program].
    #[arg(long)]
    rfl: Option<std::path::PathBuf>,
    /// Print machine-readable JSON on stdout instead of the markdown table.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn read_limit(&self) -> ReadLimit {
        match self.read_count {
            Some(n) => ReadLimit::Count(n),
            None => ReadLimit::Duration(Duration::from_secs_f64(self.read_secs.max(0.1))),
        }
    }

    fn read_limit_text(&self) -> String {
        match self.read_limit() {
            ReadLimit::Count(n) => format!("{n} in total"),
            ReadLimit::Duration(d) => format!("for {:.0} s", d.as_secs_f64()),
            ReadLimit::Until(_) => "until stopped".to_owned(),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.cases == 0 {
        eprintln!("rfl-bench: --cases must be at least 1");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rfl-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(run(&args));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("rfl-bench: cannot print JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        println!("{}", markdown(&report));
    }
    let failed: Vec<&String> = report
        .errors
        .iter()
        .chain(report.backends.iter().flat_map(|b| &b.errors))
        .collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for e in failed {
            eprintln!("rfl-bench: FAILED: {e}");
        }
        ExitCode::FAILURE
    }
}

async fn run(args: &Args) -> Report {
    let machine = Machine::detect();
    let mut errors = Vec::new();
    let mut token_verify = None;
    if args.verify_iterations > 0 {
        eprintln!("== token verification, 1 thread");
        let n = args.verify_iterations;
        match tokio::task::spawn_blocking(move || auth::token_verify_bench(n))
            .await
            .ctx("token microbenchmark task")
            .and_then(|r| r)
        {
            Ok(t) => {
                eprintln!(
                    "  TokenKeys::verify: {:.1} µs per call ({} calls); issue: {:.1} µs",
                    t.verify_us_per_call, t.iterations, t.issue_us_per_call
                );
                token_verify = Some(t);
            }
            Err(e) => errors.push(format!("token verification: {e}")),
        }
    }
    let backends = match args.backend {
        BackendArg::Sqlite => vec![TestBackend::Sqlite],
        BackendArg::Postgres => vec![TestBackend::Postgres],
        BackendArg::Both => vec![TestBackend::Sqlite, TestBackend::Postgres],
    };
    let mut out = Vec::new();
    for &backend in &backends {
        let mut rep = BackendReport {
            backend: backend_name(backend).to_owned(),
            cases: args.cases,
            batch_size: args.batch_size,
            clients: args.clients,
            read_limit: args.read_limit_text(),
            ..BackendReport::default()
        };
        eprintln!("== {}: encrypted", rep.backend);
        if let Err(e) = phase(backend, args, Path::Encrypted, &mut rep).await {
            rep.errors.push(format!("{} encrypted: {e}", rep.backend));
        }
        eprintln!("== {}: plaintext baseline", rep.backend);
        if let Err(e) = phase(backend, args, Path::Baseline, &mut rep).await {
            rep.errors.push(format!("{} baseline: {e}", rep.backend));
        }
        if args.signin_count > 0 || args.auth_secs > 0.0 {
            eprintln!(
                "== {}: sign-ins and authentication per request",
                rep.backend
            );
            if let Err(e) = auth_phase(backend, args, machine.nproc, &mut rep).await {
                rep.errors.push(format!("{} sign-ins: {e}", rep.backend));
            }
        }
        if args.revoke_cases > 0 {
            eprintln!(
                "== {}: revoking a member and re-keying their cases",
                rep.backend
            );
            if let Err(e) = revoke_phase(backend, args, &mut rep).await {
                rep.errors.push(format!("{} revocation: {e}", rep.backend));
            }
        }
        if args.rotate_cases > 0 {
            eprintln!("== {}: rotating the society escrow key", rep.backend);
            if let Err(e) = rotate_phase(backend, args, &mut rep).await {
                rep.errors
                    .push(format!("{} escrow rotation: {e}", rep.backend));
            }
        }
        if args.societies_cases > 0 {
            eprintln!("== {}: two writers, of one society and of two", rep.backend);
            if let Err(e) = societies_phase(backend, args, &mut rep).await {
                rep.errors.push(format!("{} two writers: {e}", rep.backend));
            }
        }
        if args.sync_cases > 0 {
            eprintln!("== {}: sync, pull and push", rep.backend);
            if let Err(e) = sync_phase(backend, args, &mut rep).await {
                rep.errors.push(format!("{} sync: {e}", rep.backend));
            }
        }
        if let Some(shape) = &rep.shape {
            let record_bytes = (shape.plaintext_bytes / shape.records.max(1)).max(1);
            let escrow_batch = args.batch_size;
            match tokio::task::spawn_blocking(move || {
                Primitives::measure(record_bytes, escrow_batch)
            })
            .await
            .ctx("primitives task")
            .and_then(|r| r)
            {
                Ok(p) => {
                    eprintln!(
                        "  primitives (1 thread): sign {:.1} µs, verify {:.1} µs, age wrap {:.1} µs, \
                         self-wrap {:.1} µs, seal {:.1} µs, open {:.1} µs, hash {:.1} µs",
                        p.sign_us,
                        p.verify_us,
                        p.age_wrap_us,
                        p.self_wrap_us,
                        p.seal_record_us,
                        p.open_record_us,
                        p.envelope_hash_us
                    );
                    rep.primitives = Some(p);
                }
                Err(e) => rep.errors.push(format!("primitives: {e}")),
            }
        }
        rep.finish(machine.nproc);
        out.push(rep);
    }
    let mut sync_e2e = Vec::new();
    if args.sync_e2e_cases > 0 {
        let rfl = args
            .rfl
            .clone()
            .unwrap_or_else(rfl_bench::sync_e2e::default_rfl);
        let (reports, failed) =
            rfl_bench::sync_e2e::phases(&backends, args.sync_e2e_cases, args.batch_size, &rfl)
                .await;
        sync_e2e = reports;
        errors.extend(failed);
    }
    Report {
        machine,
        sync_e2e,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_utc_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        token_verify,
        backends: out,
        errors,
    }
}

/// Sign-ins and per-request authentication on their own fresh database and server, whose sign-in rate
/// limits are raised (see [`auth::BENCH_AUTH_LIMIT_PER_MINUTE`]). Torn down whatever happens.
async fn auth_phase(
    backend: TestBackend,
    args: &Args,
    cores: usize,
    rep: &mut BackendReport,
) -> BenchResult<()> {
    let env = Env::start_with(backend, auth::raise_auth_limits).await?;
    let opts = auth::AuthOptions {
        signin_count: args.signin_count,
        signin_clients: args.signin_clients,
        request_clients: args.auth_clients,
        request_secs: args.auth_secs.max(0.0),
    };
    let mut out = auth::AuthReport::default();
    let measured = auth::measure(&env, opts, cores, &mut out).await;
    rep.auth = Some(out);
    if let Err(e) = env.finish().await {
        rep.errors.push(format!("sign-in phase teardown: {e}"));
    }
    measured
}

/// A member's revocation with the re-key of their cases, on its own fresh database and server.
/// Torn down whatever happens.
async fn revoke_phase(
    backend: TestBackend,
    args: &Args,
    rep: &mut BackendReport,
) -> BenchResult<()> {
    let env = Env::start(backend).await?;
    let mut out = rfl_bench::revoke::RevokeReport::default();
    let measured = rfl_bench::revoke::measure(
        &env,
        args.revoke_cases,
        args.revoke_readers,
        Some(args.revoke_read_rate),
        &mut out,
    )
    .await;
    rep.revoke = Some(out);
    if let Err(e) = env.finish().await {
        rep.errors.push(format!("revocation phase teardown: {e}"));
    }
    measured
}

/// The escrow-key rotation of a society, on its own fresh database and server. Torn down whatever
/// happens.
async fn rotate_phase(
    backend: TestBackend,
    args: &Args,
    rep: &mut BackendReport,
) -> BenchResult<()> {
    let env = Env::start(backend).await?;
    let mut out = rfl_bench::rotate::RotateReport::default();
    let measured = rfl_bench::rotate::measure(
        &env,
        args.rotate_cases,
        args.rotate_readers,
        Some(args.rotate_read_rate),
        args.rotate_page,
        &mut out,
    )
    .await;
    if let Err(e) = &measured {
        eprintln!("  failed: {e}");
    }
    rep.rotate = Some(out);
    if let Err(e) = env.finish().await {
        rep.errors
            .push(format!("escrow rotation phase teardown: {e}"));
    }
    measured
}

/// Two concurrent writers of one society, then of two, on their own fresh database and server.
/// Torn down whatever happens.
async fn societies_phase(
    backend: TestBackend,
    args: &Args,
    rep: &mut BackendReport,
) -> BenchResult<()> {
    let env = Env::start(backend).await?;
    let mut out = rfl_bench::societies::SocietiesReport::default();
    let measured =
        rfl_bench::societies::measure(&env, args.societies_cases, args.batch_size, &mut out).await;
    rep.societies = Some(out);
    if let Err(e) = env.finish().await {
        rep.errors.push(format!("two writers phase teardown: {e}"));
    }
    measured
}

/// The sync's pull and push on their own fresh database and server. Torn down whatever happens.
async fn sync_phase(backend: TestBackend, args: &Args, rep: &mut BackendReport) -> BenchResult<()> {
    let env = Env::start(backend).await?;
    let mut out = rfl_bench::sync::SyncReport::default();
    let measured = rfl_bench::sync::measure(&env, args.sync_cases, args.batch_size, &mut out).await;
    rep.sync = Some(out);
    if let Err(e) = env.finish().await {
        rep.errors.push(format!("sync phase teardown: {e}"));
    }
    measured
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Encrypted,
    Baseline,
}

/// One path on its own fresh database and server. The environment is torn down (server stopped,
/// database dropped) whether or not the measurement succeeded.
async fn phase(
    backend: TestBackend,
    args: &Args,
    path: Path,
    rep: &mut BackendReport,
) -> BenchResult<()> {
    let env = Env::start(backend).await?;
    let mut phase_rep = PhaseReport::default();
    let measured = measure_phase(&env, args, path, rep, &mut phase_rep).await;
    let size = env.finish().await;
    if measured.is_ok() {
        match &size {
            Ok(bytes) => phase_rep.set_db_size(*bytes, args.cases),
            Err(e) => rep.errors.push(format!("database size: {e}")),
        }
    }
    match path {
        Path::Encrypted => rep.encrypted = phase_rep,
        Path::Baseline => rep.baseline = phase_rep,
    }
    measured
}

async fn measure_phase(
    env: &Env,
    args: &Args,
    path: Path,
    rep: &mut BackendReport,
    out: &mut PhaseReport,
) -> BenchResult<()> {
    let n = args.cases;
    eprintln!("  generating {n} synthetic cases (not timed)");
    let (files, shape) = tokio::task::spawn_blocking(move || generate(n))
        .await
        .ctx("generator task")??;
    rep.shape = Some(shape);
    out.db_bytes_empty = Some(env.db_size(false).await?);
    // The ids the import gives each case (derived from its content under the caseworker's key, so
    // both paths use the same ones), and what a read of each must give back.
    let ids = rfl_client::session::import_case_ids(
        env.caseworker.keys().case_key().ctx("key-wrapping key")?,
        &files,
    )
    .ctx("import ids")?;
    let expected: std::collections::HashMap<CaseId, [u8; 32]> = ids
        .iter()
        .copied()
        .zip(files.iter())
        .map(|(id, f)| Ok((id, rfl_bench::data::content_digest(f)?)))
        .collect::<BenchResult<_>>()?;
    let expected = Arc::new(ContentCheck::new(expected));

    let label = match path {
        Path::Encrypted => "encrypted import",
        Path::Baseline => "baseline import",
    };
    let progress = progress_printer(label.to_owned(), n);
    let started = Instant::now();
    let stored = match path {
        Path::Encrypted => {
            let r = env
                .caseworker
                .import(files, args.batch_size, progress)
                .await
                .ctx("Session::import")?;
            r.created + r.already_present
        }
        Path::Baseline => {
            let ctx = env.baseline_ctx()?;
            // Timed, as inside `Session::import`: the same ids in the same (id) order.
            let plan = rfl_client::session::import_plan(
                env.caseworker.keys().case_key().ctx("key-wrapping key")?,
                files,
            )
            .ctx("import plan")?;
            baseline::import(env.caseworker.api(), ctx, plan, args.batch_size, progress).await?
        }
    };
    let elapsed = started.elapsed();
    if stored != n {
        return Err(format!("{label} stored {stored} of {n} cases"));
    }
    let import = ImportResult::new(n, elapsed);
    eprintln!(
        "  {label}: {n} cases in {:.1} s ({:.0} cases/s)",
        import.seconds, import.cases_per_sec
    );
    out.import = Some(import);

    if env.analyze().await? {
        eprintln!("  ANALYZE done (not timed)");
        rep.analyzed_after_import = true;
    }

    // Reads, with a fresh token (the import may have used up much of the first one's 15 minutes).
    let session = Arc::new(env.login_again().await?);
    eprintln!("  listing the stored cases (not timed)");
    let ids: Vec<CaseId> = session
        .list_all_cases()
        .await
        .ctx("list cases")?
        .into_iter()
        .map(|c| c.id)
        .collect();
    if ids.len() != n {
        return Err(format!(
            "the caseworker sees {} cases, {n} were imported",
            ids.len()
        ));
    }
    let ids = Arc::new(ids);
    eprintln!(
        "  {} readers reading random cases {}",
        args.clients,
        args.read_limit_text()
    );
    let reads = match path {
        Path::Encrypted => {
            let s = session.clone();
            let expected = expected.clone();
            read_load(ids, args.clients, args.read_limit(), move |id| {
                let s = s.clone();
                let expected = expected.clone();
                async move {
                    let c = s.open_case(id).await.ctx("open_case")?;
                    expected.check(id, &c.file)
                }
            })
            .await?
        }
        Path::Baseline => {
            let api = session.api().clone();
            let expected = expected.clone();
            read_load(ids, args.clients, args.read_limit(), move |id| {
                let api = api.clone();
                let expected = expected.clone();
                async move {
                    let dto = api.get_case(id, None).await.ctx("GET /v1/cases/{id}")?;
                    let f = baseline::parse_case(id, dto)?;
                    expected.check(id, &f)
                }
            })
            .await?
        }
    };
    eprintln!(
        "  reads: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms; content of {} reads checked",
        reads.reads_per_sec,
        reads.p50_ms,
        reads.p99_ms,
        expected.checked()
    );
    out.reads = Some(reads);

    // Client CPU per case, one thread, no I/O: what the loads above spend outside HTTP and the database.
    let sample: Vec<CaseId> = session
        .list_cases(None, 300)
        .await
        .ctx("list cases")?
        .cases
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut dtos = Vec::with_capacity(sample.len());
    for id in &sample {
        dtos.push((
            *id,
            session.api().get_case(*id, None).await.ctx("get a case")?,
        ));
    }
    let sealer = match path {
        Path::Encrypted => Some(session.sealer().ctx("sealer")?),
        Path::Baseline => None,
    };
    let ctx = env.baseline_ctx()?;
    // A client that has seen none of these cases: every open verifies its head commit.
    let s = env.login_again().await?;
    let (build_us, build_alone_us, read_us, reopen_us) =
        tokio::task::spawn_blocking(move || -> BenchResult<(f64, f64, f64, f64)> {
            let today = rfl_client::session::today();
            let files = (0..dtos.len() as u64)
                .map(rfl_bench::data::bench_case)
                .collect::<BenchResult<Vec<_>>>()?;
            let t = Instant::now();
            // As an import seals them: the cases of one request share one escrow batch.
            let batch = match &sealer {
                Some(sealer) => Some(sealer.escrow_batch().ctx("escrow batch")?),
                None => None,
            };
            for f in &files {
                match (&sealer, &batch) {
                    (Some(sealer), Some(batch)) => {
                        sealer
                            .seal_new_case_in(batch, f, CaseId::new(), today)
                            .ctx("seal a case")?;
                    }
                    _ => {
                        baseline::build_new_case(&ctx, f, CaseId::new(), today)?;
                    }
                }
            }
            let build_us = t.elapsed().as_secs_f64() * 1e6 / files.len().max(1) as f64;
            // A case created alone (rfl case create): a batch of one, so its own age encryption.
            let alone = &files[..files.len().min(50)];
            let t = Instant::now();
            for f in alone {
                match &sealer {
                    Some(sealer) => {
                        sealer.seal_new_case(f, today).ctx("seal a case")?;
                    }
                    None => {
                        baseline::build_new_case(&ctx, f, CaseId::new(), today)?;
                    }
                }
            }
            let build_alone_us = t.elapsed().as_secs_f64() * 1e6 / alone.len().max(1) as f64;
            let count = dtos.len().max(1) as f64;
            let again = dtos.clone();
            let open_all = |dtos: Vec<(CaseId, rfl_domain::api::CaseDto)>| -> BenchResult<f64> {
                let t = Instant::now();
                for (id, dto) in dtos {
                    match &sealer {
                        Some(_) => {
                            s.decrypt_case(id, dto).ctx("decrypt a case")?;
                        }
                        None => {
                            baseline::parse_case(id, dto)?;
                        }
                    }
                }
                Ok(t.elapsed().as_secs_f64() * 1e6 / count)
            };
            let read_us = open_all(dtos)?;
            // The same cases again, unchanged: their heads are the ones this client verified.
            let reopen_us = open_all(again)?;
            Ok((build_us, build_alone_us, read_us, reopen_us))
        })
        .await
        .ctx("client CPU task")??;
    eprintln!(
        "  client CPU per case (1 thread): build {build_us:.0} µs (alone {build_alone_us:.0} µs), open {read_us:.0} µs (again {reopen_us:.0} µs)"
    );
    out.client_reopen_us_per_case = Some(reopen_us);
    out.client_build_us_per_case = Some(build_us);
    out.client_build_alone_us = Some(build_alone_us);
    out.client_read_us_per_case = Some(read_us);
    Ok(())
}

/// What the reads must give back: the content digest of the case imported under each id.
///
/// The digest (a clone, a sort and a JSON serialisation of the whole case, then SHA-256) is the
/// benchmark's own check, not part of opening a case, and cost about 5 % of the CPU of a read load
/// (docs/benchmarks.md, run 11). So it runs on the first read and then on one read in
/// [`ContentCheck::EVERY`], spread over all cases and clients; a wrong case would still fail the run.
struct ContentCheck {
    expected: std::collections::HashMap<CaseId, [u8; 32]>,
    reads: std::sync::atomic::AtomicU64,
    checked: std::sync::atomic::AtomicU64,
}

impl ContentCheck {
    const EVERY: u64 = 16;

    fn new(expected: std::collections::HashMap<CaseId, [u8; 32]>) -> Self {
        Self {
            expected,
            reads: 0.into(),
            checked: 0.into(),
        }
    }

    /// Checks this read if its turn has come: it must be exactly the case imported under `id`.
    fn check(&self, id: CaseId, file: &rfl_domain::CaseFile) -> BenchResult<()> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.reads.fetch_add(1, Relaxed).is_multiple_of(Self::EVERY) {
            return Ok(());
        }
        self.checked.fetch_add(1, Relaxed);
        let want = self
            .expected
            .get(&id)
            .ok_or_else(|| format!("case {id} was not imported"))?;
        if rfl_bench::data::content_digest(file)? != *want {
            return Err(format!(
                "case {id} came back with other content than was imported"
            ));
        }
        Ok(())
    }

    fn checked(&self) -> u64 {
        self.checked.load(std::sync::atomic::Ordering::Relaxed)
    }
}
