//! Timed loads: bulk import and concurrent random reads.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rfl_domain::CaseId;
use serde::Serialize;

use crate::{BenchResult, Context, SplitMix64};

#[derive(Clone, Debug, Serialize)]
pub struct ImportResult {
    pub cases: usize,
    pub seconds: f64,
    pub cases_per_sec: f64,
}

impl ImportResult {
    pub fn new(cases: usize, elapsed: Duration) -> ImportResult {
        let seconds = elapsed.as_secs_f64();
        ImportResult {
            cases,
            seconds,
            cases_per_sec: cases as f64 / seconds.max(1e-9),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ReadResult {
    pub clients: usize,
    pub reads: u64,
    pub seconds: f64,
    pub reads_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// CPU time of this process (client, server and, on SQLite, the database: every thread) per
    /// read, in µs; `None` where the kernel does not say. Unlike reads/s it does not move with what
    /// else the machine runs, so an A/B of two builds compares it.
    pub process_cpu_us_per_read: Option<f64>,
}

/// CPU time (user + system) of this process so far, all threads, from `/proc/self/stat` (in clock
/// ticks of 10 ms: USER_HZ is 100 on Linux x86_64 and arm64 whatever the kernel's own tick).
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // Fields 3.. follow; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Prints import progress to stderr about every 10 %.
pub fn progress_printer(label: String, total: usize) -> impl Fn(usize) {
    let last = AtomicUsize::new(0);
    let started = Instant::now();
    move |done: usize| {
        let tenth = (done * 10) / total.max(1);
        if tenth > last.swap(tenth, Ordering::Relaxed) || done == total {
            eprintln!(
                "  {label}: {done}/{total} cases stored ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// When a read load stops.
#[derive(Clone, Copy, Debug)]
pub enum ReadLimit {
    Duration(Duration),
    Count(u64),
    /// Until the flag is set (reads while something else runs).
    Until(&'static AtomicBool),
}

/// Nearest-rank percentile of sorted microsecond samples, in milliseconds.
pub fn percentile_ms(sorted_micros: &[u64], p: f64) -> f64 {
    if sorted_micros.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_micros.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_micros.len()) - 1;
    sorted_micros[idx] as f64 / 1000.0
}

/// `clients` tasks, each reading random cases from `ids` in a loop until `limit`. One failed read fails
/// the whole load. A short untimed warm-up (one read per client) opens the connections first.
pub async fn read_load<F, Fut>(
    ids: Arc<Vec<CaseId>>,
    clients: usize,
    limit: ReadLimit,
    op: F,
) -> BenchResult<ReadResult>
where
    F: Fn(CaseId) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<()>> + Send + 'static,
{
    read_load_at(ids, clients, limit, op, None).await
}

/// [`read_load`], closed loop (each client reads again as soon as a read ends: the load saturates
/// the machine) or, with `rate`, open loop: `rate` reads per second in all, each client's reads
/// scheduled at fixed times and each latency taken from its scheduled time, so a read held up by
/// a slow one counts its wait too (no coordinated omission).
pub async fn read_load_at<F, Fut>(
    ids: Arc<Vec<CaseId>>,
    clients: usize,
    limit: ReadLimit,
    op: F,
    rate: Option<f64>,
) -> BenchResult<ReadResult>
where
    F: Fn(CaseId) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<()>> + Send + 'static,
{
    if ids.is_empty() {
        return Err("no cases to read".into());
    }
    let clients = clients.max(1);
    // Warm-up.
    let mut warm = tokio::task::JoinSet::new();
    for c in 0..clients {
        let id = ids[c % ids.len()];
        warm.spawn(op.clone()(id));
    }
    while let Some(r) = warm.join_next().await {
        r.ctx("warm-up task")??;
    }

    let issued = Arc::new(AtomicU64::new(0));
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let deadline = match limit {
        ReadLimit::Duration(d) => Some(started + d),
        ReadLimit::Count(_) | ReadLimit::Until(_) => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let ids = ids.clone();
        let op = op.clone();
        let issued = issued.clone();
        // Open loop: this client's reads every `clients / rate` seconds, staggered.
        let interval = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(clients as f64 / r));
        let mut next = tokio::time::Instant::now()
            + interval.map_or(Duration::ZERO, |i| i.mul_f64(c as f64 / clients as f64));
        tasks.spawn(async move {
            let mut rng = SplitMix64(0x5EED_0000 + c as u64);
            let mut lat = Vec::with_capacity(4096);
            let mut trace = Vec::new();
            let tracing = read_trace_file().is_some();
            loop {
                match (limit, deadline) {
                    (_, Some(d)) if Instant::now() >= d => break,
                    (ReadLimit::Until(stop), _) if stop.load(Ordering::Relaxed) => break,
                    (ReadLimit::Count(n), _) if issued.fetch_add(1, Ordering::Relaxed) >= n => {
                        break
                    }
                    _ => {}
                }
                let id = ids[rng.below(ids.len())];
                let t0 = match interval {
                    Some(i) => {
                        tokio::time::sleep_until(next).await;
                        let scheduled = next;
                        next += i;
                        scheduled.into_std()
                    }
                    None => Instant::now(),
                };
                op(id).await?;
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                lat.push(us);
                if tracing {
                    trace.push((unix_micros_at(t0), us));
                }
            }
            BenchResult::Ok((lat, trace))
        });
    }
    let mut all = Vec::new();
    let mut traced = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (lat, trace) = r.ctx("read task")??;
        all.extend(lat);
        traced.extend(trace);
    }
    if let Some(path) = read_trace_file() {
        write_read_trace(&path, &mut traced)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    all.sort_unstable();
    let reads = all.len() as u64;
    Ok(ReadResult {
        clients,
        reads,
        seconds: elapsed,
        reads_per_sec: reads as f64 / elapsed.max(1e-9),
        p50_ms: percentile_ms(&all, 50.0),
        p99_ms: percentile_ms(&all, 99.0),
        max_ms: all.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
        process_cpu_us_per_read: cpu
            .filter(|_| reads > 0)
            .map(|c| c.as_secs_f64() * 1e6 / reads as f64),
    })
}

/// `BENCH_READ_TRACE`: a file to which every read load appends one line per read, `start
/// latency` (the read's scheduled start in µs since the Unix epoch, its latency in µs), to line slow
/// reads up with a database's log. Off unless set.
fn read_trace_file() -> Option<std::path::PathBuf> {
    std::env::var_os("BENCH_READ_TRACE").map(Into::into)
}

/// The wall-clock time, in µs since the Unix epoch, of the monotonic instant `at`.
fn unix_micros_at(at: Instant) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let back = at.elapsed();
    u64::try_from(now.saturating_sub(back).as_micros()).unwrap_or(u64::MAX)
}

fn write_read_trace(path: &std::path::Path, traced: &mut [(u64, u64)]) -> BenchResult<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ctx("opening BENCH_READ_TRACE")?;
    write_trace_lines(std::io::BufWriter::new(file), traced).ctx("writing BENCH_READ_TRACE")
}

/// The reads in the order they were scheduled, one `start latency` line each.
fn write_trace_lines(
    mut out: impl std::io::Write,
    traced: &mut [(u64, u64)],
) -> std::io::Result<()> {
    traced.sort_unstable();
    for (start, us) in traced.iter() {
        writeln!(out, "{start} {us}")?;
    }
    out.flush()
}

/// A timed load of independent operations (sign-ins, authenticated or unauthenticated requests).
#[derive(Clone, Debug, Serialize)]
pub struct OpsResult {
    pub clients: usize,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl OpsResult {
    /// Mean wall time per operation at this throughput, in µs (the whole machine's time, all cores).
    pub fn wall_us_per_op(&self) -> f64 {
        1e6 / self.ops_per_sec.max(1e-9)
    }
}

/// One task per element of `states`, each running `op` in a loop until `limit` (a count is shared by
/// all clients). `op` takes the client's state and hands it back, so a client may own something it
/// needs `&mut` access to (a software authenticator). One untimed operation per client first (warm-up:
/// connections opened). One failed operation fails the load. The clients' states are handed back.
pub async fn client_load<S, F, Fut>(
    states: Vec<S>,
    limit: ReadLimit,
    op: F,
) -> BenchResult<(OpsResult, Vec<S>)>
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<S>> + Send + 'static,
{
    let clients = states.len();
    if clients == 0 {
        return Err("a load needs at least one client".into());
    }
    let mut warm = tokio::task::JoinSet::new();
    for s in states {
        warm.spawn(op.clone()(s));
    }
    let mut states = Vec::with_capacity(clients);
    while let Some(r) = warm.join_next().await {
        states.push(r.ctx("warm-up task")??);
    }

    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match limit {
        ReadLimit::Duration(d) => Some(started + d),
        ReadLimit::Count(_) | ReadLimit::Until(_) => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for s in states {
        let op = op.clone();
        let issued = issued.clone();
        tasks.spawn(async move {
            let mut state = s;
            let mut lat = Vec::with_capacity(1024);
            loop {
                match (limit, deadline) {
                    (_, Some(d)) if Instant::now() >= d => break,
                    (ReadLimit::Until(stop), _) if stop.load(Ordering::Relaxed) => break,
                    (ReadLimit::Count(n), _) if issued.fetch_add(1, Ordering::Relaxed) >= n => {
                        break
                    }
                    _ => {}
                }
                let t0 = Instant::now();
                state = op(state).await?;
                lat.push(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            BenchResult::Ok((state, lat))
        });
    }
    let mut all = Vec::new();
    let mut states = Vec::with_capacity(clients);
    while let Some(r) = tasks.join_next().await {
        let (state, lat) = r.ctx("load task")??;
        states.push(state);
        all.extend(lat);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let ops = all.len() as u64;
    let result = OpsResult {
        clients,
        ops,
        seconds: elapsed,
        ops_per_sec: ops as f64 / elapsed.max(1e-9),
        p50_ms: percentile_ms(&all, 50.0),
        p99_ms: percentile_ms(&all, 99.0),
        max_ms: all.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
    };
    Ok((result, states))
}

/// Reads of `ids` by `clients` readers for 2 s (5 s open loop), then again while `work` runs (none with no
/// readers): the p99 of ordinary reads with and without the work. Each case is read once first, so
/// both loads see the same heads.
pub async fn reads_around<F, Fut, W, T>(
    ids: Arc<Vec<CaseId>>,
    clients: usize,
    op: F,
    work: W,
) -> BenchResult<(T, Option<Around>)>
where
    F: Fn(CaseId) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<()>> + Send + 'static,
    W: Future<Output = T>,
{
    reads_around_at(ids, clients, op, work, None).await
}

/// [`reads_around`], with the reads open loop at `rate` reads per second in all (see
/// [`read_load_at`]); the warm-up is closed loop.
/// Open loop, a third window of quiet reads follows the work (after the same pause): on a shared
/// host the quiet p99 can move several-fold between runs, and a "before" far from the "after"
/// says that the run's ratio is the host's noise, not the work's doing.
pub async fn reads_around_at<F, Fut, W, T>(
    ids: Arc<Vec<CaseId>>,
    clients: usize,
    op: F,
    work: W,
    rate: Option<f64>,
) -> BenchResult<(T, Option<Around>)>
where
    F: Fn(CaseId) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = BenchResult<()>> + Send + 'static,
    W: Future<Output = T>,
{
    if clients == 0 {
        return Ok((work.await, None));
    }
    let warm = read_load(
        ids.clone(),
        clients,
        ReadLimit::Count(ids.len() as u64),
        op.clone(),
    )
    .await?;
    eprintln!(
        "  warmed up: {} cases read once ({:.0}/s)",
        ids.len(),
        warm.reads_per_sec
    );
    // Open loop, the quiet reads come after a pause (what the closed-loop warm-up left to the
    // allocator and the database settles) and last 5 s: at 1,000 reads/s, 2 s gave a p99 from the 20
    // slowest of 2,000 reads, which moved between 2.8 and 8.7 ms from run to run.
    let quiet_for = if rate.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Duration::from_secs(5)
    } else {
        Duration::from_secs(2)
    };
    let quiet = read_load_at(
        ids.clone(),
        clients,
        ReadLimit::Duration(quiet_for),
        op.clone(),
        rate,
    )
    .await?;
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let during = tokio::spawn(read_load_at(
        ids.clone(),
        clients,
        ReadLimit::Until(stop),
        op.clone(),
        rate,
    ));
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    let during = during.await.ctx("read task")??;
    eprintln!(
        "  reads during: p99 {:.2} ms ({} reads); quiet: p99 {:.2} ms ({} reads)",
        during.p99_ms, during.reads, quiet.p99_ms, quiet.reads
    );
    let after = match rate {
        Some(_) => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after =
                read_load_at(ids, clients, ReadLimit::Duration(quiet_for), op, rate).await?;
            eprintln!(
                "  quiet again after: p99 {:.2} ms ({} reads)",
                after.p99_ms, after.reads
            );
            Some(after)
        }
        None => None,
    };
    Ok((
        out,
        Some(Around {
            quiet,
            during,
            after,
        }),
    ))
}

/// Ordinary reads around a piece of work.
#[derive(Clone, Debug)]
pub struct Around {
    /// Just before it.
    pub quiet: ReadResult,
    /// While it ran.
    pub during: ReadResult,
    /// Just after it (open loop only).
    pub after: Option<ReadResult>,
}

impl Around {
    /// p99 during / p99 just before.
    pub fn p99_ratio(&self) -> f64 {
        self.during.p99_ms / self.quiet.p99_ms.max(1e-9)
    }
}

/// The read every read load here makes: `reader` opens a case (fetch, verify, decrypt).
pub fn opener(
    reader: Arc<rfl_client::Session>,
) -> impl Fn(CaseId) -> std::pin::Pin<Box<dyn Future<Output = BenchResult<()>> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |id: CaseId| {
        let reader = reader.clone();
        Box::pin(async move {
            reader.open_case(id).await.ctx("open_case")?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_trace_is_one_line_per_read_in_start_order() {
        let mut traced = vec![(30, 7), (10, 1_500), (20, 9)];
        let mut out = Vec::new();
        write_trace_lines(&mut out, &mut traced).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "10 1500\n20 9\n30 7\n");
    }

    #[test]
    fn a_read_start_is_dated_on_the_wall_clock() {
        let wall = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
        };
        let before = wall(std::time::SystemTime::now());
        let at = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let dated = unix_micros_at(at);
        let after = wall(std::time::SystemTime::now());
        // Dated when `at` was taken, not when it was read: about 20 ms before `after`. The two clocks
        // are read at different moments, so allow a millisecond either way.
        assert!(dated + 1_000 >= before, "{dated} long before {before}");
        assert!(dated + 19_000 <= after, "{dated} + 19 ms > {after}");
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&[7000], 99.0), 7.0);
        assert!(percentile_ms(&[], 50.0).is_nan());
    }

    #[test]
    fn process_cpu_time_grows_with_work() {
        let before = process_cpu_time().unwrap();
        let started = Instant::now();
        let mut x = 0u64;
        // Busy until the process has used 100 ms more (whatever else runs), for at most 20 s.
        let worked = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
            let worked = process_cpu_time().unwrap() - before;
            if worked >= Duration::from_millis(100) || started.elapsed() > Duration::from_secs(20) {
                break worked;
            }
        };
        assert!(
            worked >= Duration::from_millis(100),
            "{worked:?} in {:?}",
            started.elapsed()
        );
    }
}
