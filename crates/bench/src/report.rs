//! Results, the floors implied by the measured primitive costs in `/work/shared/dependencies.md`, the
//! targets, and their rendering as a markdown table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::auth::{AuthReport, TokenVerifyResult};
use crate::data::DataShape;
use crate::measure::{ImportResult, OpsResult, ReadResult};
use crate::primitives::Primitives;

// --- measured on this kind of machine, one core (dependencies.md) -----------------------------------

/// Ed25519 signatures per second per core.
pub const ED25519_SIGN_PER_SEC: f64 = 53_000.0;
/// Ed25519 verifications per second per core.
pub const ED25519_VERIFY_PER_SEC: f64 = 27_000.0;
/// Bulk insert of 515k rows × 2 KiB in one transaction, seconds.
pub const SQLITE_BULK_REF_SECS: f64 = 10.0;
pub const POSTGRES_BULK_REF_SECS: f64 = 11.0;
pub const BULK_REF_ROWS: f64 = 515_000.0;

// --- targets -------------------------------------------------------------------------------------------

pub const TARGET_CASES: f64 = 515_000.0;
// Issue 8's, set for SQLite (PostgreSQL is reported against the same figures).
pub const TARGET_IMPORT_SECS: f64 = 60.0;
pub const AIM_IMPORT_SECS: f64 = 30.0;
pub const TARGET_READS_PER_SEC: f64 = 10_000.0;
pub const AIM_READS_PER_SEC: f64 = 15_000.0;
pub const TARGET_OVERHEAD: f64 = 1.3;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_gib: f64,
}

impl Machine {
    pub fn detect() -> Machine {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            nproc,
            cpu_model,
            mem_total_gib: mem_kib / (1024.0 * 1024.0),
        }
    }
}

/// What one path (encrypted or baseline) measured. A figure is present only if its phase succeeded.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseReport {
    pub import: Option<ImportResult>,
    pub reads: Option<ReadResult>,
    /// Database size right after setup, before the import.
    pub db_bytes_empty: Option<u64>,
    /// Database size at the end (SQLite: after a WAL checkpoint).
    pub db_bytes: Option<u64>,
    pub db_bytes_per_case: Option<f64>,
    /// (end − empty) / cases.
    pub db_net_bytes_per_case: Option<f64>,
    /// Client CPU to build one new case for upload (seal + sign + wrap, or the baseline's plaintext
    /// envelopes), one thread, no I/O, mean over a sample.
    pub client_build_us_per_case: Option<f64>,
    /// The same for a case created alone (`rfl case create`): its escrow batch is its own, so it pays
    /// a whole age encryption.
    pub client_build_alone_us: Option<f64>,
    /// Client CPU to turn one fetched case into a `CaseFile` (unwrap + verify + decrypt + parse, or the
    /// baseline's parse), one thread, no I/O, mean over a sample.
    pub client_read_us_per_case: Option<f64>,
    /// The same cases opened again, unchanged: the head is the one this client verified, so no
    /// signature is verified a second time.
    pub client_reopen_us_per_case: Option<f64>,
}

impl PhaseReport {
    pub fn set_db_size(&mut self, bytes: u64, cases: usize) {
        self.db_bytes = Some(bytes);
        let n = cases.max(1) as f64;
        self.db_bytes_per_case = Some(bytes as f64 / n);
        self.db_net_bytes_per_case = self
            .db_bytes_empty
            .map(|e| bytes.saturating_sub(e) as f64 / n);
    }
}

/// Lower bounds from primitive costs alone (no HTTP, JSON, base64, validation or scheduling), from
/// the primitives measured in this run ([`Primitives`]) and the bulk-insert reference of
/// `/work/shared/dependencies.md` for the database.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Floors {
    pub cores: usize,
    /// What the floors were computed from.
    pub primitives: Primitives,
    /// Client build of every case (seal, hash, self-wrap, escrow wrap, sign), core-seconds.
    pub client_build_core_secs: f64,
    /// Server acceptance of every case (commit verification, envelope hashes), core-seconds.
    pub server_accept_core_secs: f64,
    /// The baseline's build (commit signature and hashes only), core-seconds.
    pub baseline_build_core_secs: f64,
    /// Bulk insert reference time scaled to the number of cases (one case row ≈ one 2 KiB reference row).
    pub db_bulk_secs: f64,
    /// Encrypted import: all CPU work shared by the cores, and never below the single-writer DB time.
    pub encrypted_import_secs: f64,
    pub baseline_import_secs: f64,
    /// Client CPU to open one case: one verification, one self-unwrap, the key commitment, per record a
    /// hash and an AES-GCM open.
    pub open_floor_us: f64,
    /// Client CPU to build one case.
    pub build_floor_us: f64,
    pub baseline_build_floor_us: f64,
    /// Reads/s if every core did nothing but the client's open (server, HTTP, JSON on the same cores not
    /// counted).
    pub read_crypto_ceiling_per_sec: f64,
}

impl Floors {
    pub fn compute(shape: &DataShape, cores: usize, postgres: bool, p: &Primitives) -> Floors {
        let cores_f = cores.max(1) as f64;
        let n = shape.cases as f64;
        let r = shape.records_per_case();
        let client_build_core_secs = n * p.build_floor_us(r) / 1e6;
        let server_accept_core_secs = n * p.server_accept_us(r) / 1e6;
        let baseline_build_core_secs = n * p.baseline_build_floor_us(r) / 1e6;
        let reference = if postgres {
            POSTGRES_BULK_REF_SECS
        } else {
            SQLITE_BULK_REF_SECS
        };
        let db_bulk_secs = reference * n / BULK_REF_ROWS;
        let encrypted_import_secs =
            ((client_build_core_secs + server_accept_core_secs + db_bulk_secs) / cores_f)
                .max(db_bulk_secs);
        let baseline_import_secs =
            ((baseline_build_core_secs + server_accept_core_secs + db_bulk_secs) / cores_f)
                .max(db_bulk_secs);
        let open_floor_us = p.open_floor_us(r);
        Floors {
            cores,
            primitives: p.clone(),
            client_build_core_secs,
            server_accept_core_secs,
            baseline_build_core_secs,
            db_bulk_secs,
            encrypted_import_secs,
            baseline_import_secs,
            open_floor_us,
            build_floor_us: p.build_floor_us(r),
            baseline_build_floor_us: p.baseline_build_floor_us(r),
            read_crypto_ceiling_per_sec: cores_f * 1e6 / open_floor_us.max(1e-9),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendReport {
    pub backend: String,
    pub cases: usize,
    pub batch_size: usize,
    pub clients: usize,
    pub read_limit: String,
    pub shape: Option<DataShape>,
    pub encrypted: PhaseReport,
    pub baseline: PhaseReport,
    /// Encrypted import time / baseline import time.
    pub import_overhead: Option<f64>,
    /// Baseline reads/s / encrypted reads/s (= time per read, encrypted / baseline).
    pub read_overhead: Option<f64>,
    pub floors: Option<Floors>,
    /// Primitive costs measured at the end of this backend's run (the floors' input).
    pub primitives: Option<Primitives>,
    /// PostgreSQL: `ANALYZE` ran after each import, before the reads (untimed).
    pub analyzed_after_import: bool,
    /// Sign-ins per second and authentication per request (its own fresh database and server).
    pub auth: Option<AuthReport>,
    /// Revoking a member who holds many cases, with the re-key (its own fresh database and server).
    pub revoke: Option<crate::revoke::RevokeReport>,
    pub rotate: Option<crate::rotate::RotateReport>,
    /// Writers of one society, then of two, at once (its own fresh database and server).
    pub societies: Option<crate::societies::SocietiesReport>,
    /// The sync's pull and push, on one server (its own fresh database and server).
    pub sync: Option<crate::sync::SyncReport>,
    pub errors: Vec<String>,
}

impl BackendReport {
    pub fn finish(&mut self, cores: usize) {
        if let (Some(e), Some(b)) = (&self.encrypted.import, &self.baseline.import) {
            self.import_overhead = Some(e.seconds / b.seconds.max(1e-9));
        }
        if let (Some(e), Some(b)) = (&self.encrypted.reads, &self.baseline.reads) {
            self.read_overhead = Some(b.reads_per_sec / e.reads_per_sec.max(1e-9));
        }
        if let (Some(shape), Some(p)) = (&self.shape, &self.primitives) {
            self.floors = Some(Floors::compute(shape, cores, self.backend == "postgres", p));
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub started_utc_unix: u64,
    /// `TokenKeys::verify` alone, one thread (independent of the backend).
    pub token_verify: Option<TokenVerifyResult>,
    pub backends: Vec<BackendReport>,
    /// The sync end to end, two servers and the agent, per order of the backends.
    pub sync_e2e: Vec<crate::sync_e2e::SyncE2eReport>,
    /// Failures outside any backend (the token microbenchmark).
    pub errors: Vec<String>,
}

/// Ed25519 verification at the dependencies.md rate, in µs: the floor of one token verification.
pub fn ed25519_verify_us() -> f64 {
    1e6 / ED25519_VERIFY_PER_SEC
}

/// Ed25519 signature at the dependencies.md rate, in µs: signing one access token.
pub fn ed25519_sign_us() -> f64 {
    1e6 / ED25519_SIGN_PER_SEC
}

/// The encrypted, baseline and ratio cells of a per-case CPU figure in µs.
fn us_cells(e: Option<f64>, p: Option<f64>) -> String {
    format!(
        "{} | {} | {}",
        opt(e, |v| format!("{v:.0} µs")),
        opt(p, |v| format!("{v:.0} µs")),
        opt(e.zip(p), |(e, p)| format!("{:.1}×", e / p.max(1e-9)))
    )
}

/// CPU floor of one key sign-in: the client signs the challenge, the server verifies it and signs the
/// token, in µs.
pub fn key_signin_floor_us() -> f64 {
    2.0 * ed25519_sign_us() + ed25519_verify_us()
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "FAILED / not measured".to_owned(), f)
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The human-readable report (markdown).
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Machine: {} cores ({}), {:.1} GiB RAM. Command: `{}`\n",
        m.nproc, m.cpu_model, m.mem_total_gib, r.command
    );
    if let Some(t) = &r.token_verify {
        let _ = writeln!(
            s,
            "Token verification alone (`TokenKeys::verify`, 1 thread, {} calls on one token): **{:.1} µs per \
             call** ({}/s). dependencies.md: one Ed25519 verification ≈ {:.0} µs ({}/s, ring); \
             jsonwebtoken's `rust_crypto` backend verifies with ed25519-dalek. The same token seen \
             before (`TokenKeys::verify_cached`, what the server does on each request after a token's \
             first): {:.2} µs per call. Issuing one \
             (`TokenKeys::issue`, {} calls): {:.1} µs; one Ed25519 signature ≈ {:.0} µs.\n",
            thousands(t.iterations as f64),
            t.verify_us_per_call,
            thousands(1e6 / t.verify_us_per_call.max(1e-9)),
            ed25519_verify_us(),
            thousands(ED25519_VERIFY_PER_SEC),
            t.verify_cached_us_per_call,
            thousands(t.issue_iterations as f64),
            t.issue_us_per_call,
            ed25519_sign_us(),
        );
    }
    for b in &r.backends {
        backend_markdown(&mut s, b);
    }
    for e in &r.sync_e2e {
        crate::sync_e2e::markdown(&mut s, e);
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "**Failures:**");
        for err in &r.errors {
            let _ = writeln!(s, "- {err}");
        }
        let _ = writeln!(s);
    }
    s
}

fn ops_row(s: &mut String, what: &str, r: Option<&OpsResult>, floor: &str) {
    match r {
        Some(r) => {
            let _ = writeln!(
                s,
                "| {what} | {} | {} | {}/s | {:.2} ms | {:.2} ms | {floor} |",
                r.clients,
                thousands(r.ops as f64),
                thousands(r.ops_per_sec),
                r.p50_ms,
                r.p99_ms
            );
        }
        None => {
            let _ = writeln!(s, "| {what} | | | FAILED / not measured | | | {floor} |");
        }
    }
}

fn auth_markdown(s: &mut String, b: &BackendReport, a: &AuthReport, cores: usize) {
    let _ = writeln!(
        s,
        "Sign-ins and authentication per request ({}, own fresh database and server; sign-in rate limits \
         raised to {}/min per address and per account for this phase):\n",
        b.backend,
        thousands(a.auth_limit_per_minute as f64)
    );
    let _ = writeln!(
        s,
        "| load | clients | count | rate | p50 | p99 | floor (dependencies.md) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
    let passkey_floor = format!(
        "server: 1 P-256 ECDSA verification (not in dependencies.md) + 1 Ed25519 token signature \
         ({:.0} µs); client: 1 P-256 signature",
        ed25519_sign_us()
    );
    let key_floor = format!(
        "≥ {:.0} µs CPU (client sign {:.0} + server verify {:.0} + token sign {:.0}) → ≤ {}/s on {} cores",
        key_signin_floor_us(),
        ed25519_sign_us(),
        ed25519_verify_us(),
        ed25519_sign_us(),
        thousands(cores.max(1) as f64 * 1e6 / key_signin_floor_us()),
        cores.max(1)
    );
    ops_row(
        s,
        "passkey sign-in (start → soft authenticator → finish → token), sequential",
        a.passkey_sequential.as_ref(),
        &passkey_floor,
    );
    ops_row(
        s,
        "passkey sign-in, concurrent",
        a.passkey_concurrent.as_ref(),
        "",
    );
    ops_row(
        s,
        "key sign-in (challenge → Ed25519 signature → token), sequential",
        a.key_sequential.as_ref(),
        &key_floor,
    );
    ops_row(s, "key sign-in, concurrent", a.key_concurrent.as_ref(), "");
    ops_row(
        s,
        "`GET /healthz` (no authentication)",
        a.healthz.as_ref(),
        "",
    );
    ops_row(
        s,
        "`GET /v1/me` (token verification + security-stamp lookup)",
        a.me.as_ref(),
        &format!(
            "over /healthz: ≥ 1 Ed25519 verification ({:.0} µs) + 1 member read per request",
            ed25519_verify_us()
        ),
    );
    let _ = writeln!(s);
    if let (Some(w), Some(c)) = (a.auth_wall_us_per_request, a.auth_core_us_per_request) {
        let _ = writeln!(
            s,
            "Authentication per request (`/v1/me` − `/healthz`, same clients, at saturation): **{w:.1} µs** of \
             wall time per request, ≈ {c:.0} core-µs on {} cores (client, server and database share them). \
             dependencies.md: one Ed25519 verification ≈ {:.0} µs ({}/s), plus one database read.\n",
            cores.max(1),
            ed25519_verify_us(),
            thousands(ED25519_VERIFY_PER_SEC)
        );
    }
}

fn backend_markdown(s: &mut String, b: &BackendReport) {
    backend_main_markdown(s, b);
    if let Some(a) = &b.auth {
        auth_markdown(s, b, a, a.cores);
    }
    if let Some(r) = &b.revoke {
        crate::revoke::markdown(s, r);
    }
    if let Some(r) = &b.rotate {
        crate::rotate::markdown(s, r);
    }
    if let Some(r) = &b.societies {
        crate::societies::markdown(s, r);
    }
    if let Some(r) = &b.sync {
        crate::sync::markdown(s, r);
    }
    backend_targets_markdown(s, b);
}

fn backend_main_markdown(s: &mut String, b: &BackendReport) {
    let _ = writeln!(
        s,
        "### {} — {} cases, batch {}, {} read clients, reads {}\n",
        b.backend,
        thousands(b.cases as f64),
        b.batch_size,
        b.clients,
        b.read_limit
    );
    if let Some(shape) = &b.shape {
        let _ = writeln!(
            s,
            "Data: {:.2} records per case (header, persons, 1 message, 1 note), {} bytes of plaintext JSON \
             per case.\n",
            shape.records_per_case(),
            thousands(shape.plaintext_bytes_per_case())
        );
    }
    if b.analyzed_after_import {
        let _ = writeln!(
            s,
            "PostgreSQL: `ANALYZE` ran after each import, before listing and reading (not timed).\n"
        );
    }
    let f = b.floors.clone().unwrap_or_default();
    let e = &b.encrypted;
    let p = &b.baseline;
    let scale = TARGET_CASES / b.cases.max(1) as f64;
    let _ = writeln!(
        s,
        "| measure | encrypted | plaintext baseline | encrypted / baseline | floor (primitives measured in this run) | target |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---|");
    let _ = writeln!(
        s,
        "| import, wall time | {} | {} | {} | enc ≥ {:.1} s: client build {:.1} + server verify {:.1} + DB {:.1} core-s on {} cores; baseline ≥ {:.1} s | 515k ≤ {:.0} s (aim {:.0} s); overhead ≤ {}× |",
        opt(e.import.as_ref(), |i| format!("{:.1} s", i.seconds)),
        opt(p.import.as_ref(), |i| format!("{:.1} s", i.seconds)),
        opt(b.import_overhead, |o| format!("{o:.2}×")),
        f.encrypted_import_secs,
        f.client_build_core_secs,
        f.server_accept_core_secs,
        f.db_bulk_secs,
        f.cores,
        f.baseline_import_secs,
        TARGET_IMPORT_SECS,
        AIM_IMPORT_SECS,
        TARGET_OVERHEAD
    );
    let _ = writeln!(
        s,
        "| import rate | {} | {} | | enc ≤ {} cases/s | ≥ {} cases/s (515k in 1 min) |",
        opt(e.import.as_ref(), |i| format!(
            "{} cases/s",
            thousands(i.cases_per_sec)
        )),
        opt(p.import.as_ref(), |i| format!(
            "{} cases/s",
            thousands(i.cases_per_sec)
        )),
        thousands(b.cases as f64 / f.encrypted_import_secs.max(1e-9)),
        thousands(TARGET_CASES / TARGET_IMPORT_SECS)
    );
    if b.cases as f64 != TARGET_CASES {
        let _ = writeln!(
            s,
            "| import projected to 515,000 cases (linear) | {} | {} | | enc ≥ {:.1} s | ≤ {:.0} s (aim {:.0} s) |",
            opt(e.import.as_ref(), |i| format!("{:.0} s", i.seconds * scale)),
            opt(p.import.as_ref(), |i| format!("{:.0} s", i.seconds * scale)),
            f.encrypted_import_secs * scale,
            TARGET_IMPORT_SECS,
            AIM_IMPORT_SECS
        );
    }
    let _ = writeln!(
        s,
        "| random reads, throughput | {} | {} | {} | enc ≤ {} reads/s: client open alone ({:.0} µs/read) on {} cores | ≥ {} reads/s (aim {}); overhead ≤ {}× |",
        opt(e.reads.as_ref(), |r| format!("{} reads/s", thousands(r.reads_per_sec))),
        opt(p.reads.as_ref(), |r| format!("{} reads/s", thousands(r.reads_per_sec))),
        opt(b.read_overhead, |o| format!("{o:.2}×")),
        thousands(f.read_crypto_ceiling_per_sec),
        f.open_floor_us,
        f.cores,
        thousands(TARGET_READS_PER_SEC),
        thousands(AIM_READS_PER_SEC),
        TARGET_OVERHEAD
    );
    let _ = writeln!(
        s,
        "| read CPU of the rfl-bench process per read (client + server{}) | {} | {} | {} | | |",
        if b.backend == "sqlite" {
            " + SQLite"
        } else {
            "; PostgreSQL's own processes not counted"
        },
        opt(
            e.reads.as_ref().and_then(|r| r.process_cpu_us_per_read),
            |c| format!("{c:.0} µs")
        ),
        opt(
            p.reads.as_ref().and_then(|r| r.process_cpu_us_per_read),
            |c| format!("{c:.0} µs")
        ),
        opt(
            e.reads
                .as_ref()
                .and_then(|r| r.process_cpu_us_per_read)
                .zip(p.reads.as_ref().and_then(|r| r.process_cpu_us_per_read)),
            |(e, p)| format!("{:.2}×", e / p.max(1e-9))
        ),
    );
    let _ = writeln!(
        s,
        "| read latency p50 | {} | {} | {} | | |",
        opt(e.reads.as_ref(), |r| format!("{:.2} ms", r.p50_ms)),
        opt(p.reads.as_ref(), |r| format!("{:.2} ms", r.p50_ms)),
        opt(e.reads.as_ref().zip(p.reads.as_ref()), |(e, p)| format!(
            "{:.2}×",
            e.p50_ms / p.p50_ms.max(1e-9)
        )),
    );
    let _ = writeln!(
        s,
        "| read latency p99 | {} | {} | {} | | |",
        opt(e.reads.as_ref(), |r| format!("{:.2} ms", r.p99_ms)),
        opt(p.reads.as_ref(), |r| format!("{:.2} ms", r.p99_ms)),
        opt(e.reads.as_ref().zip(p.reads.as_ref()), |(e, p)| format!(
            "{:.2}×",
            e.p99_ms / p.p99_ms.max(1e-9)
        )),
    );
    let _ = writeln!(
        s,
        "| client CPU to build one case alone (`rfl case create`, its own escrow batch) | {} | enc ≥ {:.0} µs (the build floor + one age encryption) | |",
        us_cells(e.client_build_alone_us, p.client_build_alone_us),
        f.build_floor_us + f.primitives.age_wrap_us * (1.0 - 1.0 / f.primitives.escrow_batch.max(1) as f64),
    );
    let _ = writeln!(
        s,
        "| client CPU to build one case in an import (1 thread, no I/O) | {} | enc ≥ {:.0} µs: sign {:.1} + escrow batch wrap {:.1} + escrow age header {:.1} / {} cases + self-wrap {:.1} + {:.1} × (seal {:.1} + hash {:.1}); baseline ≥ {:.0} µs | enc ≤ 100 µs |",
        us_cells(e.client_build_us_per_case, p.client_build_us_per_case),
        f.build_floor_us,
        f.primitives.sign_us,
        f.primitives.escrow_wrap_us,
        f.primitives.age_wrap_us,
        f.primitives.escrow_batch,
        f.primitives.self_wrap_us,
        b.shape.as_ref().map_or(0.0, DataShape::records_per_case),
        f.primitives.seal_record_us,
        f.primitives.envelope_hash_us,
        f.baseline_build_floor_us,
    );
    let _ = writeln!(
        s,
        "| client CPU to open one fetched case, first time (1 thread, no I/O) | {} | enc ≥ {:.0} µs: verify {:.1} + self-unwrap {:.1} + {:.1} × (hash {:.1} + open {:.1}) | enc ≤ 60 µs |",
        us_cells(e.client_read_us_per_case, p.client_read_us_per_case),
        f.open_floor_us,
        f.primitives.verify_us,
        f.primitives.self_unwrap_us,
        b.shape.as_ref().map_or(0.0, DataShape::records_per_case),
        f.primitives.envelope_hash_us,
        f.primitives.open_record_us,
    );
    let _ = writeln!(
        s,
        "| client CPU to open it again, unchanged (head verified before) | {} | enc ≥ {:.0} µs: the open floor without the verification | |",
        us_cells(e.client_reopen_us_per_case, p.client_reopen_us_per_case),
        f.open_floor_us - f.primitives.verify_us,
    );
    let _ = writeln!(
        s,
        "| database size per case (whole DB / N) | {} | {} | {} | plaintext JSON {} B/case | |",
        opt(e.db_bytes_per_case, |v| format!("{} B", thousands(v))),
        opt(p.db_bytes_per_case, |v| format!("{} B", thousands(v))),
        opt(
            e.db_bytes_per_case.zip(p.db_bytes_per_case),
            |(e, p)| format!("{:.2}×", e / p.max(1e-9))
        ),
        b.shape.as_ref().map_or_else(
            || "?".to_owned(),
            |sh| thousands(sh.plaintext_bytes_per_case())
        ),
    );
    let _ = writeln!(
        s,
        "| database size per case (net of the empty DB) | {} | {} | | | |",
        opt(e.db_net_bytes_per_case, |v| format!("{} B", thousands(v))),
        opt(p.db_net_bytes_per_case, |v| format!("{} B", thousands(v))),
    );
    let _ = writeln!(
        s,
        "| database size total | {} | {} | | | |\n",
        opt(e.db_bytes, |v| format!("{:.1} MiB", v as f64 / 1048576.0)),
        opt(p.db_bytes, |v| format!("{:.1} MiB", v as f64 / 1048576.0)),
    );
}

fn backend_targets_markdown(s: &mut String, b: &BackendReport) {
    let e = &b.encrypted;
    let scale = TARGET_CASES / b.cases.max(1) as f64;
    let mut targets = Vec::new();
    if let Some(i) = &e.import {
        let projected = i.seconds * scale;
        let what = if b.cases as f64 == TARGET_CASES {
            "515,000-case encrypted import".to_owned()
        } else {
            format!("encrypted import projected to 515,000 cases ({projected:.0} s)")
        };
        targets.push(format!(
            "{what} ≤ {:.0} s: {}; aim {:.0} s: {}",
            TARGET_IMPORT_SECS,
            verdict(projected <= TARGET_IMPORT_SECS),
            AIM_IMPORT_SECS,
            verdict(projected <= AIM_IMPORT_SECS)
        ));
    }
    if let Some(r) = &e.reads {
        targets.push(format!(
            "encrypted reads ≥ {}/s: {}; aim {}/s: {}",
            thousands(TARGET_READS_PER_SEC),
            verdict(r.reads_per_sec >= TARGET_READS_PER_SEC),
            thousands(AIM_READS_PER_SEC),
            verdict(r.reads_per_sec >= AIM_READS_PER_SEC)
        ));
    }
    if let Some(o) = b.import_overhead {
        targets.push(format!(
            "import overhead ≤ 1.3×: {} ({o:.2}×)",
            verdict(o <= TARGET_OVERHEAD)
        ));
    }
    if let Some(o) = b.read_overhead {
        targets.push(format!(
            "read overhead ≤ 1.3×: {} ({o:.2}×)",
            verdict(o <= TARGET_OVERHEAD)
        ));
    }
    if !targets.is_empty() {
        let _ = writeln!(s, "Issue 8 targets ({}):", b.backend);
        for t in targets {
            let _ = writeln!(s, "- {t}");
        }
        let _ = writeln!(s);
    }
    if !b.errors.is_empty() {
        let _ = writeln!(s, "**Failures ({}):**", b.backend);
        for err in &b.errors {
            let _ = writeln!(s, "- {err}");
        }
        let _ = writeln!(s);
    }
}

/// The table of ordinary reads before and during a long operation (`during`: what ran).
pub fn reads_table(s: &mut String, during: &str, reads: &crate::measure::Around) {
    use std::fmt::Write;
    let (q, d) = (&reads.quiet, &reads.during);
    let _ = writeln!(
        s,
        "| ordinary reads ({} clients) | reads | reads/s | p50 | p99 |\n\
         |---|---:|---:|---:|---:|\n\
         | {:.0} s just before | {} | {:.0} | {:.2} ms | {:.2} ms |\n\
         | {during} | {} | {:.0} | {:.2} ms | {:.2} ms |",
        q.clients,
        q.seconds,
        q.reads,
        q.reads_per_sec,
        q.p50_ms,
        q.p99_ms,
        d.reads,
        d.reads_per_sec,
        d.p50_ms,
        d.p99_ms
    );
    if let Some(a) = &reads.after {
        let _ = writeln!(
            s,
            "| {:.0} s just after | {} | {:.0} | {:.2} ms | {:.2} ms |",
            a.seconds, a.reads, a.reads_per_sec, a.p50_ms, a.p99_ms
        );
    }
    let _ = writeln!(
        s,
        "\np99 during / before: **{:.2}×** (target ≤ 2×).\n",
        reads.p99_ratio()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(515_000.0), "515,000");
        assert_eq!(thousands(-1234567.0), "-1,234,567");
    }

    #[test]
    fn floors_for_the_target_size() {
        let shape = DataShape {
            cases: 515_000,
            records: 515_000 * 5,
            plaintext_bytes: 515_000 * 2000,
        };
        let p = Primitives {
            sign_us: 20.0,
            verify_us: 40.0,
            age_wrap_us: 70.0,
            escrow_wrap_us: 1.0,
            age_unwrap_us: 60.0,
            self_wrap_us: 1.0,
            self_unwrap_us: 1.0,
            key_commitment_us: 1.0,
            seal_record_us: 1.0,
            open_record_us: 1.0,
            envelope_hash_us: 1.0,
            record_bytes: 400,
            escrow_batch: 70,
        };
        let f = Floors::compute(&shape, 2, false, &p);
        // build: 20 + 70 / 70 + 1 + 1 + 1 + 5 × 2 = 34 µs per case
        assert!((f.build_floor_us - 34.0).abs() < 1e-9);
        assert!((f.client_build_core_secs - 515_000.0 * 34e-6).abs() < 1e-6);
        // open: 40 + 1 + 1 + 5 × 2 = 52 µs
        assert!((f.open_floor_us - 52.0).abs() < 1e-9);
        assert!((f.db_bulk_secs - 10.0).abs() < 1e-9);
        assert!(f.encrypted_import_secs > f.baseline_import_secs);
    }
}
