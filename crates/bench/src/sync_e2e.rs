//! National society sync end to end (issue 10, `docs/sync.md`): two real servers, each on its own
//! fresh database, and the society's sync agent between them as the real `rfl sync` binary in a
//! process of its own (so that its memory is its own). The hub holds N cases of a society (set up
//! there: its admin, root, escrow key and caseworker); the society's new server, on the other
//! backend, holds none. One round of the agent carries them all hub → society (the initial sync);
//! the next carries them back as held already (the echo); after a caseworker on the hub changes
//! 1,000 of them, the next carries those (the incremental sync). Beside them, the same pages read
//! alone from the hub (the read side's floor).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rfl_api::clock::{Clock, SystemClock};
use rfl_client::{enrol_person, Session, Site, SoftAuthenticator};
use rfl_domain::{CaseStatus, Role, SocietyId};
use rfl_storage::testing::TestBackend;
use serde::{Deserialize, Serialize};

use crate::auth::key_signin;
use crate::setup::{backend_name, Env, Server};
use crate::{BenchResult, Context};

/// Cases per page, in both the agent's passes and the read floor (the servers' default
/// `limits.page_max`).
const PAGE: u32 = 1000;
/// Cases a caseworker changes between the two rounds.
const CHANGED: usize = 1000;
/// The agents' keystores' scrypt work factor (the CLI's default is 18; the unlock is not what
/// is measured, and it is paid once a round).
const WORK_FACTOR: &str = "14";
const PASSPHRASE: &str = "rfl-bench sync agent passphrase";

/// One pass as the agent reports it (`rfl sync --json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PassFigures {
    pub pages: u64,
    pub cases: u64,
    pub known: u64,
    pub applied: u64,
    pub secs: f64,
    pub sender_secs: f64,
    pub receiver_secs: f64,
    #[serde(default, skip_serializing)]
    conflicts: Vec<serde_json::Value>,
    #[serde(default, skip_serializing)]
    refused: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RoundJson {
    to_hub: PassFigures,
    from_hub: PassFigures,
}

/// One round of `rfl sync`, as a process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundFigures {
    /// The society's server to the hub.
    pub to_hub: PassFigures,
    /// The hub to the society's server.
    pub from_hub: PassFigures,
    /// The whole process: unlocking both keystores, signing in on both sides, the trust bundles
    /// both ways and both passes, seconds.
    pub process_secs: f64,
    /// The agent's resident memory (`VmRSS`), sampled every 250 ms: seconds since the start, MiB.
    pub rss_samples: Vec<(f64, f64)>,
    pub rss_peak_mib: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncE2eReport {
    /// The hub's backend: it holds the cases.
    pub sender: String,
    /// The society's new server's backend: it holds none before the first round.
    pub receiver: String,
    pub cases: usize,
    /// Every page read alone from the hub by the agent's SDK, dropped once counted: seconds.
    pub read_floor_secs: f64,
    /// The first round: every case hub → society (`from_hub`).
    pub initial: RoundFigures,
    /// The second: the same commits back to the hub, each held already (`to_hub`).
    pub echo: RoundFigures,
    /// Commits made by a caseworker on the hub between the rounds (status changes, one each on
    /// as many cases).
    pub changed: usize,
    /// The third: those commits hub → society (`from_hub`).
    pub incremental: RoundFigures,
}

/// Runs the measurement: a hub on `sender` with `cases` cases imported (not timed), the
/// society's new server on `receiver`, the agent's three rounds. `rfl` is the agent's binary.
pub async fn measure(
    sender: TestBackend,
    receiver: TestBackend,
    cases: usize,
    batch_size: usize,
    rfl: &Path,
    out: &mut SyncE2eReport,
) -> BenchResult<()> {
    out.sender = backend_name(sender).to_owned();
    out.receiver = backend_name(receiver).to_owned();
    out.cases = cases;
    if !rfl.is_file() {
        return Err(format!(
            "no rfl binary at {} (cargo build --release -p rfl-client --bin rfl, or --rfl PATH)",
            rfl.display()
        ));
    }
    let hub = Env::start(sender).await?;
    let society = Server::start(receiver).await?;
    let measured = run(&hub, &society, cases, batch_size, rfl, out).await;
    let torn = (hub.finish().await, society.finish().await);
    measured?;
    torn.0?;
    torn.1?;
    Ok(())
}

async fn run(
    hub: &Env,
    society: &Server,
    cases: usize,
    batch_size: usize,
    rfl: &Path,
    out: &mut SyncE2eReport,
) -> BenchResult<()> {
    eprintln!("  importing {cases} synthetic cases on the hub (not timed)");
    let n = crate::sync::import_synthetic(hub, cases, batch_size).await?;
    hub.analyze().await?;

    let dir = tempfile::tempdir().ctx("create a temporary folder")?;
    // `rfl sync` runs on the society's server's keystore, with `--hub` the hub's.
    let (agent_hub, agent_own) = two_instances(hub, society, dir.path(), rfl).await?;

    out.read_floor_secs = read_floor(hub, n).await?;
    eprintln!(
        "  read floor: every page from the hub alone in {:.2} s",
        out.read_floor_secs
    );

    let commits = u64::try_from(n).unwrap_or(u64::MAX);
    eprintln!("  initial sync: one round of rfl sync, hub → society");
    out.initial = agent_round(rfl, &agent_own, &agent_hub).await?;
    check(&out.initial.from_hub, commits, 0, "the initial pass")?;
    check(
        &out.initial.to_hub,
        0,
        0,
        "the first round's pass to the hub",
    )?;
    society.analyze().await?;
    eprintln!("  the echo: the next round");
    out.echo = agent_round(rfl, &agent_own, &agent_hub).await?;
    check(&out.echo.to_hub, 0, commits, "the echo")?;
    check(
        &out.echo.from_hub,
        0,
        0,
        "the echo round's pass from the hub",
    )?;

    eprintln!("  a caseworker on the hub changes {CHANGED} cases (not timed)");
    out.changed = change(&hub.caseworker, CHANGED.min(n)).await?;
    out.incremental = agent_round(rfl, &agent_own, &agent_hub).await?;
    let changed = u64::try_from(out.changed).unwrap_or(u64::MAX);
    check(
        &out.incremental.from_hub,
        changed,
        0,
        "the incremental pass",
    )?;
    check(
        &out.incremental.to_hub,
        0,
        0,
        "the incremental round's pass to the hub",
    )?;
    Ok(())
}

/// What the two servers need for the agent to carry the society's cases from `home` (the hub,
/// where the society was set up and its cases are) to `fresh` (the society's new server): the
/// Movement root set on both, certifying the society's root; the society registered on `fresh`
/// under its id; the agent enrolled on both with `rfl enrol --machine`. Returns its keystores on
/// `home` and on `fresh`.
async fn two_instances(
    home: &Env,
    fresh: &Server,
    dir: &Path,
    rfl: &Path,
) -> BenchResult<(PathBuf, PathBuf)> {
    let now = SystemClock.now_millis();
    let ttl = home.config.auth.enrolment_code_ttl_hours;
    let home_srv = home.server();
    let home_site = Site::new(&home.base, &home.rp_origin);
    let fresh_site = Site::new(&fresh.base, &fresh.config.webauthn.rp_origin);

    let code = home_srv
        .with_store(move |s| rfl_api::identity::movement_admin_code(s, now, ttl).ctx("code"))
        .await?;
    let movement_admin = stepped_up(&home_site, &code).await?;
    let movement = movement_admin
        .init_movement()
        .await
        .ctx("set the Movement root")?;
    movement_admin
        .certify_society(&movement, home.society, &home.root_fingerprint)
        .await
        .ctx("certify the society's root")?;
    let code = fresh
        .with_store(move |s| rfl_api::identity::movement_admin_code(s, now, ttl).ctx("code"))
        .await?;
    stepped_up(&fresh_site, &code)
        .await?
        .set_movement_root(&movement)
        .await
        .ctx("set the Movement root on the new server")?;

    let society: SocietyId = home.society;
    let (_, code) = fresh
        .with_store(move |s| {
            rfl_api::identity::create_society(s, "rfl-bench society", Some(society), now, ttl)
                .ctx("register the society on the new server")
        })
        .await?;
    let fresh_admin = stepped_up(&fresh_site, &code).await?;
    let fresh_code = fresh_admin
        .issue_enrolment_code(Role::SyncAgent)
        .await
        .ctx("a sync agent code on the new server")?
        .code;
    let home_code = home
        .admin
        .lock()
        .await
        .0
        .issue_enrolment_code(Role::SyncAgent)
        .await
        .ctx("a sync agent code on the hub")?
        .code;
    let agent_home = dir.join("agent-hub.json");
    let agent_fresh = dir.join("agent.json");
    enrol_agent(rfl, &agent_home, &home.base, &home_code).await?;
    enrol_agent(rfl, &agent_fresh, &fresh.base, &fresh_code).await?;
    Ok((agent_home, agent_fresh))
}

/// A person enrolled with `code` and stepped up (a fresh passkey sign-in).
async fn stepped_up(site: &Site, code: &str) -> BenchResult<Session> {
    let mut authenticator = SoftAuthenticator::new();
    let mut s = enrol_person(site, code, &mut authenticator)
        .await
        .ctx("enrol")?;
    s.step_up(&mut authenticator).await.ctx("step up")?;
    Ok(s)
}

async fn enrol_agent(rfl: &Path, keystore: &Path, server: &str, code: &str) -> BenchResult<()> {
    let status = tokio::process::Command::new(rfl)
        .env("RFL_CLIENT_PASSPHRASE", PASSPHRASE)
        .arg("--keystore")
        .arg(keystore)
        .args(["enrol", "--machine", "--server", server, "--code", code])
        .args(["--work-factor", WORK_FACTOR])
        .stdout(Stdio::null())
        .status()
        .await
        .ctx("run rfl enrol")?;
    if !status.success() {
        return Err(format!("rfl enrol --machine on {server}: {status}"));
    }
    Ok(())
}

/// Every page of the society's changes read from the hub alone, with the agent's SDK, each
/// dropped once counted.
async fn read_floor(own: &Env, n: usize) -> BenchResult<f64> {
    let anon = rfl_client::http::Api::new(&own.base).ctx("client")?;
    let token = key_signin(&anon, own.agent_member, &own.agent_keys).await?;
    let agent = anon.with_token(token);
    let started = Instant::now();
    let (mut after, mut pulled) = (0, 0);
    loop {
        let page = agent
            .sync_changes((0, after), None, Some(PAGE))
            .await
            .ctx("GET /v1/sync/changes")?;
        pulled += page.cases.len();
        after = page.next;
        if !page.more {
            break;
        }
    }
    if pulled != n {
        return Err(format!("the read floor carried {pulled} cases, not {n}"));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// One round of `rfl sync` as a process of its own, its memory sampled as it runs.
async fn agent_round(rfl: &Path, own: &Path, hub: &Path) -> BenchResult<RoundFigures> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(rfl)
        .env("RFL_CLIENT_PASSPHRASE", PASSPHRASE)
        .arg("--keystore")
        .arg(own)
        .args(["--json", "sync", "--page", &PAGE.to_string(), "--hub"])
        .arg(hub)
        .stdout(Stdio::piped())
        .spawn()
        .ctx("run rfl sync")?;
    let pid = child.id().ok_or("rfl sync has no process id")?;
    let mut stdout = child.stdout.take().ok_or("rfl sync has no stdout")?;
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut buf)
            .await
            .map(|_| buf)
    });
    let mut fig = RoundFigures::default();
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.ctx("wait for rfl sync")?,
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                if let Some(mib) = rss_mib(pid) {
                    fig.rss_samples.push((started.elapsed().as_secs_f64(), mib));
                    fig.rss_peak_mib = fig.rss_peak_mib.max(mib);
                }
            }
        }
    };
    fig.process_secs = started.elapsed().as_secs_f64();
    let stdout = reader.await.ctx("read rfl sync")?.ctx("read rfl sync")?;
    if !status.success() {
        return Err(format!("rfl sync: {status}"));
    }
    let round: RoundJson = serde_json::from_slice(&stdout).ctx("parse rfl sync --json")?;
    (fig.to_hub, fig.from_hub) = (round.to_hub, round.from_hub);
    eprintln!(
        "  round: from the hub {} cases, {} stored, in {:.2} s (hub {:.2} s, society {:.2} s); to \
         the hub {} cases, {} held already, in {:.2} s; process {:.2} s, agent RSS peak {:.0} MiB",
        fig.from_hub.cases,
        fig.from_hub.applied,
        fig.from_hub.secs,
        fig.from_hub.sender_secs,
        fig.from_hub.receiver_secs,
        fig.to_hub.cases,
        fig.to_hub.known,
        fig.to_hub.secs,
        fig.process_secs,
        fig.rss_peak_mib
    );
    Ok(fig)
}

/// Fails unless the pass stored `applied` commits, found `known` held already, and reported no
/// conflict and no refusal.
fn check(p: &PassFigures, applied: u64, known: u64, what: &str) -> BenchResult<()> {
    if p.applied != applied || p.known != known || !p.conflicts.is_empty() || !p.refused.is_empty()
    {
        return Err(format!(
            "{what}: {} stored (expected {applied}), {} held already (expected {known}), {} \
             conflicts, {} refused",
            p.applied,
            p.known,
            p.conflicts.len(),
            p.refused.len()
        ));
    }
    Ok(())
}

/// The caseworker moves `n` cases to tracing, one commit each.
async fn change(caseworker: &Session, n: usize) -> BenchResult<usize> {
    let page = caseworker
        .list_cases(None, i64::try_from(n).unwrap_or(i64::MAX))
        .await
        .ctx("list cases")?;
    for c in page.cases.iter().take(n) {
        caseworker
            .set_status(c.id, CaseStatus::Tracing)
            .await
            .ctx("set a case's status")?;
    }
    Ok(page.cases.len().min(n))
}

/// A process's resident memory, MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

pub fn markdown(s: &mut String, r: &SyncE2eReport) {
    use std::fmt::Write;
    let (i, e, c) = (&r.initial, &r.echo, &r.incremental);
    // The agent's memory once started (its first 2 s load the keystores and sign in).
    let settled: Vec<f64> = i
        .rss_samples
        .iter()
        .filter(|(t, _)| *t >= 2.0)
        .map(|x| x.1)
        .collect();
    let low = settled.iter().copied().fold(f64::INFINITY, f64::min);
    let high = settled.iter().copied().fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "**Sync end to end, hub on {} → society's new server on {}** ({} cases): initial pass \
         {:.2} s ({:.0} cases/s; hub busy {:.2} s, society's server busy {:.2} s; the hub's \
         pages read alone {:.2} s), whole first round {:.2} s; agent RSS {:.0}–{:.0} MiB over {} \
         samples after its first 2 s. The echo back to the hub: {:.2} s. {} changed on the hub: \
         pass {:.0} ms, whole round {:.0} ms (the `rfl sync` process).\n",
        r.sender,
        r.receiver,
        r.cases,
        i.from_hub.secs,
        r.cases as f64 / i.from_hub.secs.max(1e-9),
        i.from_hub.sender_secs,
        i.from_hub.receiver_secs,
        r.read_floor_secs,
        i.process_secs,
        if settled.is_empty() { 0.0 } else { low },
        high,
        settled.len(),
        e.to_hub.secs,
        r.changed,
        c.from_hub.secs * 1e3,
        c.process_secs * 1e3,
    );
}

/// Every order of the two backends `backends` allow (one backend: both sides on it), each
/// measured on fresh servers; failures are returned as messages beside the reports.
pub async fn phases(
    backends: &[TestBackend],
    cases: usize,
    batch_size: usize,
    rfl: &Path,
) -> (Vec<SyncE2eReport>, Vec<String>) {
    let orders: Vec<(TestBackend, TestBackend)> = match backends {
        [one] => vec![(*one, *one)],
        _ => vec![
            // The hub on PostgreSQL, as in production, and the society's server on its
            // embedded default; then the other way round.
            (TestBackend::Postgres, TestBackend::Sqlite),
            (TestBackend::Sqlite, TestBackend::Postgres),
        ],
    };
    let (mut reports, mut errors) = (Vec::new(), Vec::new());
    for (sender, receiver) in orders {
        let (s, r) = (backend_name(sender), backend_name(receiver));
        eprintln!("== sync end to end: the hub on {s}, the society's new server on {r}");
        let mut out = SyncE2eReport::default();
        if let Err(e) = measure(sender, receiver, cases, batch_size, rfl, &mut out).await {
            errors.push(format!("sync end to end {s} → {r}: {e}"));
        }
        reports.push(out);
    }
    (reports, errors)
}

/// The `rfl` binary beside this program's (both are built into the same target folder).
pub fn default_rfl() -> PathBuf {
    std::env::current_exe()
        .map(|p| p.with_file_name("rfl"))
        .unwrap_or_else(|_| PathBuf::from("rfl"))
}
