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
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use rfl_domain::{CaseId, CaseStatus, MemberId, RecordId, Role, SocietyId};
use uuid::Uuid;

pub use error::StorageError;
use models::*;
use schema::*;
pub use url::describe_database;

pub type Result<T> = std::result::Result<T, StorageError>;

/// Unix time in milliseconds.
pub type Millis = i64;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Rows per multi-row INSERT: keeps every statement under both backends' bind-parameter limits
/// (SQLite 32766, PostgreSQL 65535) for tables of up to 12 columns.
const INSERT_CHUNK: usize = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Pools {
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

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(
        &self,
        conn: &mut SqliteConnection,
    ) -> std::result::Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
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

/// Takes `$n` change sequence numbers; yields the first. The counter row's lock is held until commit, so
/// sequence numbers become visible in order.
macro_rules! next_seq {
    ($conn:ident, $n:expr) => {{
        let n: i64 = $n;
        let last: i64 = diesel::update(change_counter::table.filter(change_counter::id.eq(1)))
            .set(change_counter::value.eq(change_counter::value + n))
            .returning(change_counter::value)
            .get_result($conn)?;
        last - n + 1
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
            .first::<(CaseDb, Vec<u8>)>($conn)
            .optional()?
    }};
}

// Declared after the macros so it can use them.
mod certs;
pub use certs::CertificateRow;
mod passkeys;
pub use passkeys::{Ceremony, CeremonyKind, NewPasskey, PasskeyRow};

fn id_bytes(id: &Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub(crate) fn uuid_from(bytes: &[u8]) -> Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|_| StorageError::Invalid("stored id is not 16 bytes".into()))
}

fn epoch_i32(epoch: u32) -> Result<i32> {
    i32::try_from(epoch).map_err(|_| StorageError::Invalid("key epoch out of range".into()))
}

fn version_i64(version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| StorageError::Invalid("version out of range".into()))
}

// ---------------------------------------------------------------------------------------------------
// Public value types

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Society {
    pub id: SocietyId,
    pub name: String,
    /// The society escrow key's age recipient and its identity wrapped to the offline recovery key.
    pub escrow: Option<SocietyEscrow>,
    pub created_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocietyEscrow {
    pub recipient: String,
    pub wrapped_identity: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: MemberId,
    pub society_id: SocietyId,
    pub role: Role,
    pub signing_key: Vec<u8>,
    pub age_recipient: String,
    pub suspended: bool,
    pub created_at: Millis,
    /// Changes whenever the member's tokens must stop working (suspension, reinstatement, revocation).
    pub security_stamp: i64,
}

/// An enrolment code as stored: only its SHA-256 hash.
#[derive(Clone, Debug)]
pub struct NewEnrolmentCode {
    pub code_hash: [u8; 32],
    pub society_id: SocietyId,
    pub role: Role,
    pub created_by: Option<MemberId>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// An enrolment code as an admin sees it (never the code itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolmentCodeRow {
    pub code_hash: Vec<u8>,
    pub role: Role,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

/// The public keys a member enrols with. People (every role but the sync agent) enrol with their first
/// passkey; machines (sync agents) with their Ed25519 key alone.
#[derive(Clone, Debug)]
pub struct Enrolment {
    pub member_id: MemberId,
    pub signing_key: Vec<u8>,
    pub age_recipient: String,
    pub passkey: Option<NewPasskey>,
}

/// Whether a role is a machine's (enrols and signs in with a device key) rather than a person's (passkeys).
pub fn is_machine_role(role: Role) -> bool {
    role == Role::SyncAgent
}

#[derive(Clone, Debug)]
pub struct Challenge {
    pub id: Uuid,
    pub member_id: MemberId,
    pub challenge: Vec<u8>,
    pub expires_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRow {
    pub id: CaseId,
    pub society_id: SocietyId,
    pub status: CaseStatus,
    pub key_epoch: u32,
    pub version: u64,
    pub seq: i64,
    pub created_by: MemberId,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A case data key wrapped to one recipient: a member, or the society escrow key (recipient = society id).
#[derive(Clone, Debug)]
pub struct WrappedKey {
    pub recipient_id: Uuid,
    pub wrapped: Vec<u8>,
}

/// One record version to write. `version` 1 creates the record; version n+1 replaces version n.
#[derive(Clone, Debug)]
pub struct RecordWrite {
    pub id: RecordId,
    pub kind: i16,
    pub version: u64,
    pub envelope: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct NewCase {
    pub id: CaseId,
    pub society_id: SocietyId,
    pub created_by: MemberId,
    pub status: CaseStatus,
    pub key_epoch: u32,
    pub keys: Vec<WrappedKey>,
    pub records: Vec<RecordWrite>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRow {
    pub id: RecordId,
    pub kind: i16,
    pub version: u64,
    pub key_epoch: u32,
    pub author_id: MemberId,
    pub envelope: Vec<u8>,
    pub seq: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A case as one member may read it: metadata, that member's wrapped data key and every record.
#[derive(Clone, Debug)]
pub struct CaseBundle {
    pub case: CaseRow,
    pub wrapped_key: Vec<u8>,
    pub records: Vec<RecordRow>,
}

#[derive(Clone, Debug)]
pub struct CaseListItem {
    pub case: CaseRow,
    pub record_count: i64,
}

// ---------------------------------------------------------------------------------------------------

impl Store {
    /// Opens (and migrates) the database at `url`: `postgres://…`/`postgresql://…`, or
    /// `sqlite://PATH`/a plain path for SQLite (its folder is created). `:memory:` is refused: each pooled
    /// connection would see its own empty database.
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
                let build = |size: u32| {
                    Pool::builder()
                        .max_size(size)
                        .connection_customizer(Box::new(SqlitePragmas))
                        .build(ConnectionManager::<SqliteConnection>::new(path))
                };
                let write = build(1)?;
                let read = build(pool_size)?;
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
            change_counter::table.select(change_counter::value).first::<i64>(conn)?;
            Ok(())
        })
    }

    // --- societies --------------------------------------------------------------------------------

    /// Creates a society with the one-time enrolment code of its first admin.
    pub fn create_society(
        &self,
        id: SocietyId,
        name: &str,
        first_admin: NewEnrolmentCode,
        now: Millis,
    ) -> Result<Society> {
        let row = SocietyDb {
            id: id_bytes(id.as_uuid()),
            name: name.to_owned(),
            escrow_recipient: None,
            escrow_wrapped: None,
            created_at: now,
        };
        let code = EnrolmentCodeDb::from_new(&first_admin);
        write_tx!(self, conn => {
            diesel::insert_into(societies::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "a society with this name exists"))?;
            diesel::insert_into(enrolment_codes::table).values(&code).execute(conn)?;
            Ok(())
        })?;
        row.into_society()
    }

    pub fn society(&self, id: SocietyId) -> Result<Option<Society>> {
        let row: Option<SocietyDb> = read!(self, conn => {
            societies::table
                .filter(societies::id.eq(id_bytes(id.as_uuid())))
                .select(SocietyDb::as_select())
                .first(conn)
                .optional()?
        });
        row.map(SocietyDb::into_society).transpose()
    }

    pub fn society_by_name(&self, name: &str) -> Result<Option<Society>> {
        let row: Option<SocietyDb> = read!(self, conn => {
            societies::table
                .filter(societies::name.eq(name))
                .select(SocietyDb::as_select())
                .first(conn)
                .optional()?
        });
        row.map(SocietyDb::into_society).transpose()
    }

    /// Sets the society escrow key once; a second attempt is a conflict (rotation is its own operation).
    pub fn set_society_escrow(&self, id: SocietyId, escrow: &SocietyEscrow) -> Result<()> {
        let updated = write_tx!(self, conn => {
            Ok(diesel::update(
                societies::table
                    .filter(societies::id.eq(id_bytes(id.as_uuid())))
                    .filter(societies::escrow_recipient.is_null()),
            )
            .set((
                societies::escrow_recipient.eq(Some(escrow.recipient.clone())),
                societies::escrow_wrapped.eq(Some(escrow.wrapped_identity.clone())),
            ))
            .execute(conn)?)
        })?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StorageError::Conflict(
                "the society escrow key is already set",
            ))
        }
    }

    // --- enrolment ---------------------------------------------------------------------------------

    pub fn insert_enrolment_code(&self, code: &NewEnrolmentCode) -> Result<()> {
        let row = EnrolmentCodeDb::from_new(code);
        write_tx!(self, conn => {
            diesel::insert_into(enrolment_codes::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "enrolment code exists"))?;
            Ok(())
        })
    }

    /// The society's enrolment codes issued since `since`, newest first.
    pub fn enrolment_codes(
        &self,
        society: SocietyId,
        since: Millis,
    ) -> Result<Vec<EnrolmentCodeRow>> {
        let rows: Vec<EnrolmentCodeDb> = read!(self, conn => {
            enrolment_codes::table
                .filter(enrolment_codes::society_id.eq(id_bytes(society.as_uuid())))
                .filter(enrolment_codes::created_at.ge(since))
                .order(enrolment_codes::created_at.desc())
                .select(EnrolmentCodeDb::as_select())
                .load(conn)?
        });
        rows.into_iter()
            .map(|r| {
                Ok(EnrolmentCodeRow {
                    role: parse_role(&r.role)?,
                    code_hash: r.code_hash,
                    created_at: r.created_at,
                    expires_at: r.expires_at,
                    used_at: r.used_at,
                })
            })
            .collect()
    }

    /// Revokes an unused enrolment code of the society: it expires now. A used, unknown or foreign code is
    /// not found.
    pub fn revoke_enrolment_code(
        &self,
        society: SocietyId,
        code_hash: &[u8],
        now: Millis,
    ) -> Result<()> {
        let hash = code_hash.to_vec();
        let n = write_tx!(self, conn => {
            Ok(diesel::update(
                enrolment_codes::table
                    .filter(enrolment_codes::code_hash.eq(&hash))
                    .filter(enrolment_codes::society_id.eq(id_bytes(society.as_uuid())))
                    .filter(enrolment_codes::used_at.is_null()),
            )
            .set(enrolment_codes::expires_at.eq(now))
            .execute(conn)?)
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// Spends a one-time enrolment code and creates the member it was issued for, in one transaction.
    pub fn redeem_enrolment_code(
        &self,
        code_hash: &[u8; 32],
        enrolment: &Enrolment,
        now: Millis,
    ) -> Result<Member> {
        let hash = code_hash.to_vec();
        let member_id = id_bytes(enrolment.member_id.as_uuid());
        let row = write_tx!(self, conn => {
            let code: Option<EnrolmentCodeDb> = enrolment_codes::table
                .filter(enrolment_codes::code_hash.eq(&hash))
                .select(EnrolmentCodeDb::as_select())
                .first(conn)
                .optional()?;
            let code = code.ok_or(StorageError::NotFound)?;
            if code.used_at.is_some() {
                return Err(StorageError::Conflict("this enrolment code was already used"));
            }
            if code.expires_at <= now {
                return Err(StorageError::Expired("this enrolment code has expired"));
            }
            let machine = is_machine_role(parse_role(&code.role)?);
            match (&enrolment.passkey, machine) {
                (None, false) => return Err(StorageError::Refused("people enrol with a passkey: this code is for a person")),
                (Some(_), true) => return Err(StorageError::Refused("this code is for a sync agent, which enrols with its device key")),
                _ => {}
            }
            diesel::update(enrolment_codes::table.filter(enrolment_codes::code_hash.eq(&hash)))
                .set((enrolment_codes::used_at.eq(Some(now)), enrolment_codes::used_by.eq(Some(member_id.clone()))))
                .execute(conn)?;
            let row = MemberDb {
                id: member_id.clone(),
                society_id: code.society_id,
                role: code.role,
                signing_key: enrolment.signing_key.clone(),
                age_recipient: enrolment.age_recipient.clone(),
                suspended: false,
                created_at: now,
                security_stamp: 0,
            };
            diesel::insert_into(members::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "this device key is already enrolled"))?;
            if let Some(p) = &enrolment.passkey {
                diesel::insert_into(crate::schema::passkeys::table)
                    .values(&crate::passkeys::PasskeyDb::new(enrolment.member_id, p, now))
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, "this credential is already registered"))?;
            }
            Ok(row)
        })?;
        row.into_member()
    }

    /// The society and role of an enrolment code that can still be spent (unused, unrevoked, unexpired);
    /// nothing is changed. Used before an enrolment ceremony begins, so a dead code does not cost one.
    pub fn usable_enrolment_code(
        &self,
        code_hash: &[u8; 32],
        now: Millis,
    ) -> Result<(SocietyId, Role)> {
        let hash = code_hash.to_vec();
        let code: Option<EnrolmentCodeDb> = read!(self, conn => {
            enrolment_codes::table
                .filter(enrolment_codes::code_hash.eq(&hash))
                .select(EnrolmentCodeDb::as_select())
                .first(conn)
                .optional()?
        });
        let code = code.ok_or(StorageError::NotFound)?;
        if code.used_at.is_some() {
            return Err(StorageError::Conflict(
                "this enrolment code was already used",
            ));
        }
        if code.expires_at <= now {
            return Err(StorageError::Expired("this enrolment code has expired"));
        }
        Ok((
            SocietyId::from_uuid(uuid_from(&code.society_id)?),
            parse_role(&code.role)?,
        ))
    }

    // --- members -----------------------------------------------------------------------------------

    pub fn member(&self, id: MemberId) -> Result<Option<Member>> {
        let row: Option<MemberDb> = read!(self, conn => {
            members::table
                .filter(members::id.eq(id_bytes(id.as_uuid())))
                .select(MemberDb::as_select())
                .first(conn)
                .optional()?
        });
        row.map(MemberDb::into_member).transpose()
    }

    /// Suspends or reinstates a member of `society` and changes their security stamp, so every access
    /// token already issued to them stops working. Returns the member as it now is.
    pub fn set_suspended(
        &self,
        society: SocietyId,
        member: MemberId,
        suspended: bool,
    ) -> Result<Member> {
        let row: MemberDb = write_tx!(self, conn => {
            let updated = diesel::update(
                members::table
                    .filter(members::id.eq(id_bytes(member.as_uuid())))
                    .filter(members::society_id.eq(id_bytes(society.as_uuid()))),
            )
            .set((members::suspended.eq(suspended), members::security_stamp.eq(members::security_stamp + 1)))
            .returning(MemberDb::as_returning())
            .get_result(conn)
            .optional()?;
            updated.ok_or(StorageError::NotFound)
        })?;
        row.into_member()
    }

    /// Changes the member's security stamp: every access token issued so far stops working.
    pub fn revoke_tokens(&self, member: MemberId) -> Result<()> {
        let n = write_tx!(self, conn => {
            Ok(diesel::update(members::table.filter(members::id.eq(id_bytes(member.as_uuid()))))
                .set(members::security_stamp.eq(members::security_stamp + 1))
                .execute(conn)?)
        })?;
        if n == 1 {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// The members of one society (the key directory clients wrap to and verify signatures against).
    pub fn society_members(&self, society: SocietyId) -> Result<Vec<Member>> {
        let rows: Vec<MemberDb> = read!(self, conn => {
            members::table
                .filter(members::society_id.eq(id_bytes(society.as_uuid())))
                .order(members::id)
                .select(MemberDb::as_select())
                .load(conn)?
        });
        rows.into_iter().map(MemberDb::into_member).collect()
    }

    // --- key login challenges ----------------------------------------------------------------------

    pub fn insert_challenge(&self, c: &Challenge) -> Result<()> {
        let row = ChallengeDb {
            id: id_bytes(&c.id),
            member_id: id_bytes(c.member_id.as_uuid()),
            challenge: c.challenge.clone(),
            expires_at: c.expires_at,
        };
        write_tx!(self, conn => {
            // Expired challenges are useless; drop them here rather than in a sweeper.
            diesel::delete(auth_challenges::table.filter(auth_challenges::expires_at.lt(c.expires_at - 3_600_000)))
                .execute(conn)?;
            diesel::insert_into(auth_challenges::table).values(&row).execute(conn)?;
            Ok(())
        })
    }

    /// Removes and returns a challenge: each can be answered once.
    pub fn take_challenge(&self, id: Uuid) -> Result<Option<Challenge>> {
        let key = id_bytes(&id);
        let row: Option<ChallengeDb> = write_tx!(self, conn => {
            let row = auth_challenges::table
                .filter(auth_challenges::id.eq(&key))
                .select(ChallengeDb::as_select())
                .first(conn)
                .optional()?;
            if row.is_some() {
                diesel::delete(auth_challenges::table.filter(auth_challenges::id.eq(&key))).execute(conn)?;
            }
            Ok(row)
        })?;
        row.map(|r| {
            Ok(Challenge {
                id: uuid_from(&r.id)?,
                member_id: MemberId::from_uuid(uuid_from(&r.member_id)?),
                challenge: r.challenge,
                expires_at: r.expires_at,
            })
        })
        .transpose()
    }

    // --- cases -------------------------------------------------------------------------------------

    /// Creates cases with their wrapped keys and first record versions, all in one transaction.
    pub fn create_cases(&self, new_cases: &[NewCase], now: Millis) -> Result<Vec<CaseRow>> {
        let changes: usize = new_cases.iter().map(|c| 1 + c.records.len()).sum();
        let changes =
            i64::try_from(changes).map_err(|_| StorageError::Invalid("batch too large".into()))?;
        let mut case_rows = Vec::with_capacity(new_cases.len());
        let mut key_rows = Vec::new();
        let mut record_rows = Vec::new();
        for c in new_cases {
            let epoch = epoch_i32(c.key_epoch)?;
            let case_id = id_bytes(c.id.as_uuid());
            let author = id_bytes(c.created_by.as_uuid());
            case_rows.push(CaseDb {
                id: case_id.clone(),
                society_id: id_bytes(c.society_id.as_uuid()),
                status: c.status.as_str().to_owned(),
                key_epoch: epoch,
                version: 1,
                seq: 0,
                created_by: author.clone(),
                created_at: now,
                updated_at: now,
            });
            for k in &c.keys {
                key_rows.push(CaseKeyDb {
                    case_id: case_id.clone(),
                    recipient_id: id_bytes(&k.recipient_id),
                    key_epoch: epoch,
                    wrapped: k.wrapped.clone(),
                    created_at: now,
                });
            }
            for r in &c.records {
                if r.version != 1 {
                    return Err(StorageError::Invalid(
                        "a new case's records start at version 1".into(),
                    ));
                }
                record_rows.push(RecordDb {
                    id: id_bytes(r.id.as_uuid()),
                    case_id: case_id.clone(),
                    kind: r.kind,
                    version: 1,
                    key_epoch: epoch,
                    author_id: author.clone(),
                    envelope: r.envelope.clone(),
                    seq: 0,
                    created_at: now,
                    updated_at: now,
                });
            }
        }
        let seqs = write_tx!(self, conn => {
            let mut seq = next_seq!(conn, changes);
            for row in case_rows.iter_mut() {
                row.seq = seq;
                seq += 1;
            }
            for row in record_rows.iter_mut() {
                row.seq = seq;
                seq += 1;
            }
            for chunk in case_rows.chunks(INSERT_CHUNK) {
                diesel::insert_into(cases::table)
                    .values(chunk)
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, "a case with this id exists"))?;
            }
            for chunk in key_rows.chunks(INSERT_CHUNK) {
                diesel::insert_into(case_keys::table)
                    .values(chunk)
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, "a key for this recipient exists"))?;
            }
            for chunk in record_rows.chunks(INSERT_CHUNK) {
                diesel::insert_into(records::table)
                    .values(chunk)
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, "a record with this id exists"))?;
            }
            Ok(())
        });
        seqs?;
        case_rows.into_iter().map(CaseDb::into_case).collect()
    }

    /// The cases a member holds a key for, in id order (UUIDv7: creation order), after `after`.
    pub fn list_cases(
        &self,
        member: MemberId,
        after: Option<CaseId>,
        limit: i64,
    ) -> Result<Vec<CaseListItem>> {
        let me = id_bytes(member.as_uuid());
        let after = after.map(|a| id_bytes(a.as_uuid())).unwrap_or_default();
        let (rows, counts): (Vec<CaseDb>, Vec<(Vec<u8>, i64)>) = read!(self, conn => {
            let rows: Vec<CaseDb> = cases::table
                .inner_join(
                    case_keys::table.on(case_keys::case_id
                        .eq(cases::id)
                        .and(case_keys::key_epoch.eq(cases::key_epoch))),
                )
                .filter(case_keys::recipient_id.eq(&me))
                // A range scan of the key table's primary key (recipient, case), in case order.
                .filter(case_keys::case_id.gt(&after))
                .order(case_keys::case_id)
                .limit(limit)
                .select(CaseDb::as_select())
                .load(conn)?;
            let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.clone()).collect();
            let counts: Vec<(Vec<u8>, i64)> = if ids.is_empty() {
                Vec::new()
            } else {
                records::table
                    .filter(records::case_id.eq_any(ids))
                    .group_by(records::case_id)
                    .select((records::case_id, count_star()))
                    .load(conn)?
            };
            (rows, counts)
        });
        let counts: std::collections::HashMap<Vec<u8>, i64> = counts.into_iter().collect();
        rows.into_iter()
            .map(|row| {
                let record_count = counts.get(&row.id).copied().unwrap_or(0);
                Ok(CaseListItem {
                    case: row.into_case()?,
                    record_count,
                })
            })
            .collect()
    }

    /// A case with the member's wrapped key and all records, or `None` when the member holds no key for
    /// it — whether it does not exist or belongs to someone else is not told apart.
    pub fn get_case(&self, member: MemberId, case: CaseId) -> Result<Option<CaseBundle>> {
        let found: Option<(CaseDb, Vec<u8>, Vec<RecordDb>)> = read!(self, conn => {
            match case_for_member!(conn, member, case) {
                None => None,
                Some((row, wrapped)) => {
                    let recs: Vec<RecordDb> = records::table
                        .filter(records::case_id.eq(&row.id))
                        .order((records::kind, records::id))
                        .select(RecordDb::as_select())
                        .load(conn)?;
                    Some((row, wrapped, recs))
                }
            }
        });
        found
            .map(|(row, wrapped_key, recs)| {
                Ok(CaseBundle {
                    case: row.into_case()?,
                    wrapped_key,
                    records: recs
                        .into_iter()
                        .map(RecordDb::into_record)
                        .collect::<Result<_>>()?,
                })
            })
            .transpose()
    }

    /// The case's metadata if the member holds a key for it.
    pub fn case_for_member(&self, member: MemberId, case: CaseId) -> Result<Option<CaseRow>> {
        let found = read!(self, conn => { case_for_member!(conn, member, case) });
        found.map(|(row, _)| row.into_case()).transpose()
    }

    /// Writes record versions to a case the member holds a key for. Version 1 creates a record; version
    /// n+1 replaces version n and is refused (conflict, nothing written) if the stored version is not n.
    pub fn write_records(
        &self,
        member: MemberId,
        case: CaseId,
        writes: &[RecordWrite],
        now: Millis,
    ) -> Result<CaseRow> {
        let n = i64::try_from(writes.len())
            .map_err(|_| StorageError::Invalid("too many records".into()))?;
        let author = id_bytes(member.as_uuid());
        let row = write_tx!(self, conn => {
            let (row, _) = case_for_member!(conn, member, case).ok_or(StorageError::NotFound)?;
            let mut seq = next_seq!(conn, n + 1);
            for w in writes {
                let version = version_i64(w.version)?;
                let id = id_bytes(w.id.as_uuid());
                if version == 1 {
                    let rec = RecordDb {
                        id,
                        case_id: row.id.clone(),
                        kind: w.kind,
                        version,
                        key_epoch: row.key_epoch,
                        author_id: author.clone(),
                        envelope: w.envelope.clone(),
                        seq,
                        created_at: now,
                        updated_at: now,
                    };
                    diesel::insert_into(records::table)
                        .values(&rec)
                        .execute(conn)
                        .map_err(|e| StorageError::from_insert(e, "a record with this id exists: update it with its next version"))?;
                } else if version > 1 {
                    let updated = diesel::update(
                        records::table
                            .filter(records::id.eq(&id))
                            .filter(records::case_id.eq(&row.id))
                            .filter(records::kind.eq(w.kind))
                            .filter(records::version.eq(version - 1)),
                    )
                    .set((
                        records::version.eq(version),
                        records::key_epoch.eq(row.key_epoch),
                        records::author_id.eq(&author),
                        records::envelope.eq(&w.envelope),
                        records::seq.eq(seq),
                        records::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                    if updated != 1 {
                        return Err(StorageError::Conflict(
                            "a record was changed by someone else (stale version): reload the case and retry",
                        ));
                    }
                } else {
                    return Err(StorageError::Invalid("record versions start at 1".into()));
                }
                seq += 1;
            }
            let updated: CaseDb = diesel::update(cases::table.filter(cases::id.eq(&row.id)))
                .set((cases::seq.eq(seq), cases::updated_at.eq(now)))
                .returning(CaseDb::as_returning())
                .get_result(conn)?;
            Ok(updated)
        })?;
        row.into_case()
    }

    /// Moves a case along the status workflow if it is still at `expected_version`.
    pub fn set_status(
        &self,
        member: MemberId,
        case: CaseId,
        expected_version: u64,
        to: CaseStatus,
        now: Millis,
    ) -> Result<CaseRow> {
        let expected = version_i64(expected_version)?;
        let row = write_tx!(self, conn => {
            let (row, _) = case_for_member!(conn, member, case).ok_or(StorageError::NotFound)?;
            if row.version != expected {
                return Err(StorageError::Conflict(
                    "the case was changed by someone else (stale version): reload it and retry",
                ));
            }
            let from = parse_status(&row.status)?;
            from.transition(to).map_err(|e| StorageError::Invalid(e.to_string()))?;
            let seq = next_seq!(conn, 1);
            let updated: CaseDb = diesel::update(cases::table.filter(cases::id.eq(&row.id)).filter(cases::version.eq(expected)))
                .set((
                    cases::status.eq(to.as_str()),
                    cases::version.eq(expected + 1),
                    cases::seq.eq(seq),
                    cases::updated_at.eq(now),
                ))
                .returning(CaseDb::as_returning())
                .get_result(conn)?;
            Ok(updated)
        })?;
        row.into_case()
    }

    // --- attachment chunks -------------------------------------------------------------------------

    /// Stores one sealed chunk of an attachment of a case the member holds a key for. Chunks are
    /// write-once: re-sending an existing chunk is a conflict.
    pub fn put_chunk(
        &self,
        member: MemberId,
        case: CaseId,
        attachment: RecordId,
        idx: u32,
        data: &[u8],
        now: Millis,
    ) -> Result<()> {
        let idx = i32::try_from(idx)
            .map_err(|_| StorageError::Invalid("chunk index out of range".into()))?;
        let row = AttachmentChunkDb {
            attachment_id: id_bytes(attachment.as_uuid()),
            idx,
            case_id: id_bytes(case.as_uuid()),
            data: data.to_vec(),
            created_at: now,
        };
        write_tx!(self, conn => {
            case_for_member!(conn, member, case).ok_or(StorageError::NotFound)?;
            diesel::insert_into(attachment_chunks::table)
                .values(&row)
                .execute(conn)
                .map_err(|e| StorageError::from_insert(e, "this chunk was already uploaded"))?;
            Ok(())
        })
    }

    pub fn get_chunk(
        &self,
        member: MemberId,
        case: CaseId,
        attachment: RecordId,
        idx: u32,
    ) -> Result<Option<Vec<u8>>> {
        let idx = i32::try_from(idx)
            .map_err(|_| StorageError::Invalid("chunk index out of range".into()))?;
        read!(self, conn => {
            if case_for_member!(conn, member, case).is_none() {
                return Ok(None);
            }
            Ok(attachment_chunks::table
                .filter(attachment_chunks::attachment_id.eq(id_bytes(attachment.as_uuid())))
                .filter(attachment_chunks::case_id.eq(id_bytes(case.as_uuid())))
                .filter(attachment_chunks::idx.eq(idx))
                .select(attachment_chunks::data)
                .first::<Vec<u8>>(conn)
                .optional()?)
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
