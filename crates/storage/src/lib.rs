#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! Persistence for rfl: diesel on SQLite (the embedded default) and PostgreSQL (production).
//!
//! The store holds only what the threat model lets the server see: ids, the owning society, who holds a
//! wrapped key, status, times, versions, sizes, and ciphertext. It knows nothing of case content.
//!
//! All calls are blocking; the API runs them on a blocking thread pool. Every call that writes runs in
//! exactly one transaction. Each backend's queries are written once and expanded for both connection
//! types by the `read!` and `write_tx!` macros, so the two backends cannot drift apart.

mod error;
mod models;
pub mod schema;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod url;

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use rfl_domain::{CaseStatus, Role};
use uuid::Uuid;

pub use error::StorageError;
pub use url::describe_database;

pub type Result<T> = std::result::Result<T, StorageError>;

/// Unix time in milliseconds.
pub type Millis = i64;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Rows per multi-row INSERT: keeps every statement under both backends' bind-parameter limits
/// (SQLite 32766, PostgreSQL 65535) for tables of up to 12 columns.
pub(crate) const INSERT_CHUNK: usize = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Pools {
    /// SQLite allows one writer at a time: all writes go through a one-connection pool so they queue in
    /// the pool instead of failing with SQLITE_BUSY; reads use the other pool concurrently (WAL).
    Sqlite {
        read: Pool<ConnectionManager<SqliteConnection>>,
        write: Pool<ConnectionManager<SqliteConnection>>,
    },
    Postgres(Pool<ConnectionManager<PgConnection>>),
}

/// The database. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    pools: Pools,
}

/// Per-connection settings of a pooled SQLite connection; `cache_kib` is its page cache.
#[derive(Debug)]
struct SqlitePragmas {
    cache_kib: u32,
}

/// Page cache of each reading connection: the inner b-tree pages every case read walks.
const SQLITE_READ_CACHE_KIB: u32 = 64 * 1024;
/// Page cache of the one writing connection. Imported case ids are spread over the whole key space,
/// so every batch touches index pages all over the cases, keys, records and commits indexes (about
/// 300 MiB of index for 515,000 cases); with less, each batch re-reads and spills them. Allocated only
/// as pages are used.
const SQLITE_WRITE_CACHE_KIB: u32 = 1024 * 1024;
/// How much of the database file each connection maps: 64 GiB of address space, so a national
/// caseload is read from the mapping whole (515,000 cases are 2.2 GiB).
pub(crate) const SQLITE_MMAP_BYTES: u64 = 64 << 30;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(
        &self,
        conn: &mut SqliteConnection,
    ) -> std::result::Result<(), diesel::r2d2::Error> {
        // temp_store: a multi-row INSERT's statement journal stays in memory instead of a temporary
        // file. Checkpoints stay SQLite's own (the writer, after a commit that leaves 1,000 pages in
        // the WAL): a checkpointer thread beside a busy writer never catches up, so the WAL never
        // restarts and grows, and appending to it cost more than the checkpoints it saved
        // (docs/benchmarks.md, run 9).
        // mmap_size: pages are read from the mapped file instead of by a pread into the page cache
        // per page, up to SQLITE_MMAP_BYTES (capped by the SQLite build: `.cargo/config.toml` raises
        // the bundled 2 GiB cap); cache_size: see SQLITE_*_CACHE_KIB (the default is 2 MiB).
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA mmap_size = {SQLITE_MMAP_BYTES}; PRAGMA cache_size = -{}; \
             PRAGMA temp_store = MEMORY;",
            self.cache_kib
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection of either backend.
macro_rules! read {
    ($store:expr, $conn:ident => $body:block) => {{
        match &$store.pools {
            Pools::Sqlite { read, .. } => {
                let mut pooled = read.get()?;
                let $conn: &mut SqliteConnection = &mut pooled;
                $body
            }
            Pools::Postgres(pool) => {
                let mut pooled = pool.get()?;
                let $conn: &mut PgConnection = &mut pooled;
                $body
            }
        }
    }};
}

/// Runs `$body` in one read-only snapshot, so every query in it sees the same committed state:
/// SQLite, a deferred transaction on a read connection (WAL fixes the snapshot at its first read);
/// PostgreSQL, `REPEATABLE READ, READ ONLY`.
macro_rules! snapshot {
    ($store:expr, $conn:ident => $body:block) => {{
        match &$store.pools {
            Pools::Sqlite { read, .. } => {
                let mut pooled = read.get()?;
                let $conn: &mut SqliteConnection = &mut pooled;
                $conn.transaction(|$conn| -> Result<_> { $body })
            }
            Pools::Postgres(pool) => {
                let mut pooled = pool.get()?;
                let $conn: &mut PgConnection = &mut pooled;
                $conn
                    .build_transaction()
                    .read_only()
                    .repeatable_read()
                    .run(|$conn| -> Result<_> { $body })
            }
        }
    }};
}

/// Runs `$body` in one write transaction (SQLite: `BEGIN IMMEDIATE` on the single writer connection).
macro_rules! write_tx {
    ($store:expr, $conn:ident => $body:block) => {{
        match &$store.pools {
            Pools::Sqlite { write, .. } => {
                let mut pooled = write.get()?;
                pooled.immediate_transaction(|$conn| -> Result<_> { $body })
            }
            Pools::Postgres(pool) => {
                let mut pooled = pool.get()?;
                pooled.transaction(|$conn| -> Result<_> { $body })
            }
        }
    }};
}

/// Takes `$n` sequence numbers of the society `$society`'s changes (its id's bytes); yields the first.
/// The society's counter row stays locked until commit, so its sequence numbers become visible in
/// order. Each society has its own sequence (`docs/sync.md`), so writers of different societies never
/// wait for each other here.
macro_rules! next_seq {
    ($conn:ident, $society:expr, $n:expr) => {{
        let n: i64 = $n;
        let last: i64 =
            diesel::update(society_seq::table.filter(society_seq::society_id.eq($society)))
                .set(society_seq::value.eq(society_seq::value + n))
                .returning(society_seq::value)
                .get_result($conn)
                .optional()?
                .ok_or_else(|| {
                    StorageError::Invalid("the society has no change sequence".into())
                })?;
        last - n + 1
    }};
}

/// The escrow key generation that wrappings made for the escrow recipient `$recipient` belong to: the
/// society's current one, or a conflict. Run after `next_seq!` for the same society in the same
/// transaction: the society's counter row's lock orders it after any escrow rotation that completed
/// (which takes the lock too), so a
/// write made for the key a rotation just retired is refused instead of stored as the new key's.
macro_rules! escrow_gen {
    ($conn:ident, $society:expr, $recipient:expr) => {{
        let (gen, current): (i32, Option<String>) = societies::table
            .filter(societies::id.eq($society))
            .select((societies::escrow_gen, societies::escrow_recipient))
            .get_result($conn)?;
        if current.as_deref() != Some($recipient) {
            return Err(StorageError::Conflict(
                "the society escrow key is not the one these keys were wrapped to (it was rotated, or \
                 is not set): reload your society's keys and try again",
            ));
        }
        gen
    }};
}

/// The cases a member holds a key of the current epoch for, in id order after `$after` (id bytes;
/// empty for the first page), at most `$limit`: a range scan of the key table's primary key
/// (recipient, case), in case order.
macro_rules! held_cases {
    ($conn:ident, $member:expr, $after:expr, $limit:expr) => {
        held_cases!(@query $conn, $member, $after, $limit, [])
    };
    // Only cases of one society (filtered before the limit, so a page is short only at the end).
    ($conn:ident, $member:expr, $after:expr, $limit:expr, society = $society:expr) => {
        held_cases!(@query $conn, $member, $after, $limit, [.filter(cases::society_id.eq($society))])
    };
    (@query $conn:ident, $member:expr, $after:expr, $limit:expr, [$($narrow:tt)*]) => {{
        cases::table
            .inner_join(
                case_keys::table.on(case_keys::case_id
                    .eq(cases::id)
                    .and(case_keys::key_epoch.eq(cases::key_epoch))),
            )
            .filter(case_keys::recipient_id.eq($member))
            .filter(case_keys::case_id.gt($after))
            $($narrow)*
            .order(case_keys::case_id)
            .limit($limit)
            .select(CaseDb::as_select())
            .load($conn)?
    }};
}

/// Loads a case the member holds a key for (current epoch), with that wrapped key.
macro_rules! case_for_member {
    ($conn:ident, $member:expr, $case:expr) => {{
        cases::table
            .inner_join(
                case_keys::table.on(case_keys::case_id
                    .eq(cases::id)
                    .and(case_keys::key_epoch.eq(cases::key_epoch))),
            )
            .filter(cases::id.eq(id_bytes($case.as_uuid())))
            // Bound on both sides of the join, so the key lookup is a primary-key point lookup whatever
            // the planner's statistics say (PostgreSQL right after a bulk import has none).
            .filter(case_keys::case_id.eq(id_bytes($case.as_uuid())))
            .filter(case_keys::recipient_id.eq(id_bytes($member.as_uuid())))
            .select((CaseDb::as_select(), case_keys::wrapped))
            .get_result::<(CaseDb, Vec<u8>)>($conn)
            .optional()?
    }};
}

/// Inserts every row of the slice `$rows` into `$table` in statements of a few fixed sizes (128, 32, 8
/// and 1 rows). Diesel caches a statement only if its shape is known at compile time: a multi-row
/// insert of a slice is parsed and planned again on every call, one of a fixed-size array once per
/// connection. A batch import's rows take a handful of cached statements.
macro_rules! insert_fixed {
    ($conn:ident, $table:expr, $rows:expr, $what:expr) => {{
        let rest: &[_] = $rows;
        let rest = insert_fixed!(@size $conn, $table, rest, $what, 128);
        let rest = insert_fixed!(@size $conn, $table, rest, $what, 32);
        let rest = insert_fixed!(@size $conn, $table, rest, $what, 8);
        let rest = insert_fixed!(@size $conn, $table, rest, $what, 1);
        debug_assert!(rest.is_empty());
    }};
    (@size $conn:ident, $table:expr, $rest:ident, $what:expr, $n:literal) => {{
        let mut chunks = $rest.chunks_exact($n);
        for chunk in &mut chunks {
            let rows: &[_; $n] = chunk
                .try_into()
                .map_err(|_| StorageError::Invalid("an insert chunk of the wrong size".into()))?;
            diesel::insert_into($table)
                .values(rows)
                .execute($conn)
                .map_err(|e| StorageError::from_insert(e, $what))?;
        }
        chunks.remainder()
    }};
}

/// Stores `$commit` (a `CommitWrite` numbered `$seq_no` in its case) as the head of the case row
/// `$row` (a `CaseDb` at commit `$seq_no - 1`), numbered `$seq` in the society's sequence; yields
/// the updated row. A taken commit number is a conflict.
macro_rules! store_commit_as_head {
    ($conn:ident, $row:expr, $seq_no:expr, $commit:expr, $seq:expr, $now:expr) => {{
        diesel::insert_into(case_commits::table)
            .values(&crate::models::CommitDb {
                case_id: $row.id.clone(),
                seq: $seq_no,
                body: $commit.body.clone(),
                created_at: $now,
                society_id: $row.society_id.clone(),
                change_seq: $seq,
            })
            .execute($conn)
            .map_err(|_| {
                StorageError::Conflict("this commit number is taken: reload the case and retry")
            })?;
        let updated: CaseDb = diesel::update(
            cases::table
                .filter(cases::id.eq(&$row.id))
                .filter(cases::version.eq($seq_no - 1)),
        )
        .set((
            cases::version.eq($seq_no),
            cases::head_hash.eq(Some($commit.hash.clone())),
            cases::status.eq($commit.status.as_str()),
            cases::seq.eq($seq),
            cases::updated_at.eq($now),
        ))
        .returning(CaseDb::as_returning())
        .get_result($conn)?;
        updated
    }};
}

// Declared after the macros so it can use them.
#[macro_use]
mod bulk;
mod cases;
pub use cases::{
    CaseBundle, CaseHolderRows, CaseListItem, CaseRead, CaseRow, CommitWrite, CreatedCases,
    HolderRow, NewCase, RecipientKeys, RecordRow, RecordWrite, WrappedKey,
};
mod certs;
pub use certs::{CertificateRow, RootRotation, SocietyTrust};
mod enrolment;
mod pg_read;
pub use enrolment::{Enrolment, EnrolmentCodeRow, NewEnrolmentCode};
mod members;
pub use members::{Challenge, Member, NextKeys, Standing};
mod keys;
pub use keys::{KeySwitch, MemberReset};
mod passkeys;
pub use passkeys::{Ceremony, CeremonyKind, NewPasskey, PasskeyRow};
mod rekey;
pub use rekey::{CaseHead, EpochKeys, ForeignHolder, RekeyWrite};
mod escrow;
pub use escrow::{EscrowCompletion, EscrowRotation, EscrowWrapRow, NewEscrowRotation};
mod token_keys;
pub use token_keys::{TokenKeyNode, TokenKeyRow, TokenKeyState};
mod transfers;
pub use transfers::{
    TransferAcceptance, TransferCase, TransferOffer, TransferRow, TransferState, TRANSFER_PAGE,
};
mod societies;
// Instance id and sequence positions for sync readers (`docs/sync.md`).
mod sync;
pub use societies::{Society, SocietyEscrow};
pub use sync::{
    AdoptedMerge, Branch, CaseChange, CaseKeyRow, CaseState, ChangePage, HeldConflict,
    IncomingBranch, IncomingRun, PushAnswer, TrustAdoption, PUSH_ANSWER_MS,
};

pub(crate) fn id_bytes(id: &Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub(crate) fn uuid_from(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| StorageError::Invalid("stored id is not 16 bytes".into()))
}

pub(crate) fn epoch_i32(epoch: u32) -> Result<i32> {
    i32::try_from(epoch).map_err(|_| StorageError::Invalid("key epoch out of range".into()))
}

pub(crate) fn version_i64(version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| StorageError::Invalid("version out of range".into()))
}

/// Whether a role is a machine's (enrols and signs in with a device key) rather than a person's (passkeys).
pub fn is_machine_role(role: Role) -> bool {
    role == Role::SyncAgent
}

// ---------------------------------------------------------------------------------------------------

impl Store {
    /// Opens (and migrates) the database at `url`: `postgres://…`/`postgresql://…`, or
    /// `sqlite://PATH`/a plain path for SQLite (its folder is created). `:memory:` is refused: each
    /// pooled connection would see its own empty database.
    ///
    /// A pooled PostgreSQL connection is pinged (`SELECT 1`) when taken, r2d2's default: diesel does
    /// not notice a connection the server dropped, so without the ping a restart of PostgreSQL
    /// would fail every later call on each old connection. SQLite connections are not pinged: the
    /// file cannot go away between two calls, and the ping was a statement per request.
    pub fn open(url: &str, pool_size: u32) -> Result<Store> {
        let pool_size = pool_size.max(1);
        let store = match url::Target::of(url) {
            url::Target::Postgres(url) => {
                let manager = ConnectionManager::<PgConnection>::new(url);
                let pool = Pool::builder().max_size(pool_size).build(manager)?;
                Store {
                    pools: Pools::Postgres(pool),
                }
            }
            url::Target::Sqlite(path) => {
                if path.is_empty() || path.contains(":memory:") {
                    return Err(StorageError::Config(
                        "SQLite needs a file path (an in-memory database is not shared between \
                         connections)"
                            .into(),
                    ));
                }
                if let Some(parent) = Path::new(path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            StorageError::Config(format!("cannot create the database folder: {e}"))
                        })?;
                    }
                }
                let build = |size: u32, cache_kib: u32| {
                    Pool::builder()
                        .max_size(size)
                        .test_on_check_out(false)
                        .connection_customizer(Box::new(SqlitePragmas { cache_kib }))
                        .build(ConnectionManager::<SqliteConnection>::new(path))
                };
                let write = build(1, SQLITE_WRITE_CACHE_KIB)?;
                let read = build(pool_size, SQLITE_READ_CACHE_KIB)?;
                Store {
                    pools: Pools::Sqlite { read, write },
                }
            }
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        match &self.pools {
            Pools::Sqlite { write, .. } => {
                let mut conn = write.get()?;
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|_| ())
                    .map_err(|e| StorageError::Migration(e.to_string()))
            }
            Pools::Postgres(pool) => {
                let mut conn = pool.get()?;
                conn.run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|_| ())
                    .map_err(|e| StorageError::Migration(e.to_string()))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks the database answers (for `/readyz`).
    pub fn ping(&self) -> Result<()> {
        read!(self, conn => {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
    }
}

pub(crate) fn parse_status(s: &str) -> Result<CaseStatus> {
    CaseStatus::parse(s)
        .ok_or_else(|| StorageError::Invalid("stored case status is unknown".into()))
}

pub(crate) fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| StorageError::Invalid("stored role is unknown".into()))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cases;
#[cfg(test)]
mod tests_certs;
#[cfg(test)]
mod tests_escrow;
#[cfg(test)]
mod tests_rekey;
#[cfg(test)]
mod tests_seq;
#[cfg(test)]
mod tests_sync;
#[cfg(test)]
mod tests_transfers;
