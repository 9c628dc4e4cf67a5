//! Rotating a society's escrow key: the job record, and the escrow wrappings it moves to the new key.
//!
//! The server cannot re-wrap anything (it holds no escrow identity); an admin's client does, in
//! batches. What the server keeps is the bookkeeping that makes the job safe to interrupt and resume:
//! each escrow wrapping says which key generation it was made for (`case_keys.escrow_gen`), a batch
//! moves rows from the old generation to the new one in one transaction, and the new key replaces
//! the old one only when no row of the old generation is left.

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::{MemberId, SocietyId};
use uuid::Uuid;

use crate::schema::*;
use crate::{epoch_i32, id_bytes, uuid_from, Millis, Pools, Result, StorageError, Store};

/// The key an admin's client made to replace the society escrow key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEscrowRotation {
    /// The new escrow key's age recipient.
    pub recipient: String,
    /// Its identity, age-encrypted to the society's recovery key.
    pub wrapped_identity: Vec<u8>,
    /// Its certificate, signed by the society root (checked by the API).
    pub certificate: Vec<u8>,
}

/// An escrow-key rotation job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowRotation {
    pub society_id: SocietyId,
    /// The generation of the new key (the old one's plus one).
    pub new_gen: i32,
    pub old_recipient: String,
    pub new: NewEscrowRotation,
    /// Escrow wrappings under the old key when the job started.
    pub total: i64,
    /// Escrow wrappings moved to the new key since.
    pub done: i64,
    pub started_by: MemberId,
    pub started_at: Millis,
    /// When the new key replaced the old one; none while the job runs.
    pub completed_at: Option<Millis>,
}

/// One escrow wrapping of a case key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscrowWrapRow {
    pub case_id: Uuid,
    pub key_epoch: u32,
    pub wrapped: Vec<u8>,
}

/// What finishing a rotation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EscrowCompletion {
    /// The new key is the society's escrow key now (or was already).
    Completed(EscrowRotation),
    /// This many wrappings are still under the old key (written while the job ran): nothing changed.
    Remaining(i64),
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = escrow_rotations)]
#[diesel(treat_none_as_default_value = false)]
struct EscrowRotationDb {
    society_id: Vec<u8>,
    new_gen: i32,
    old_recipient: String,
    new_recipient: String,
    new_wrapped: Vec<u8>,
    new_certificate: Vec<u8>,
    total: i64,
    done: i64,
    started_by: Vec<u8>,
    started_at: i64,
    completed_at: Option<i64>,
}

impl EscrowRotationDb {
    fn into_rotation(self) -> Result<EscrowRotation> {
        Ok(EscrowRotation {
            society_id: SocietyId::from_uuid(uuid_from(&self.society_id)?),
            new_gen: self.new_gen,
            old_recipient: self.old_recipient,
            new: NewEscrowRotation {
                recipient: self.new_recipient,
                wrapped_identity: self.new_wrapped,
                certificate: self.new_certificate,
            },
            total: self.total,
            done: self.done,
            started_by: MemberId::from_uuid(uuid_from(&self.started_by)?),
            started_at: self.started_at,
            completed_at: self.completed_at,
        })
    }
}

/// The society's running rotation on `$conn`, if any.
macro_rules! running_rotation {
    ($conn:ident, $soc:expr) => {
        escrow_rotations::table
            .filter(escrow_rotations::society_id.eq($soc))
            .filter(escrow_rotations::completed_at.is_null())
            .select(EscrowRotationDb::as_select())
            .get_result::<EscrowRotationDb>($conn)
            .optional()?
    };
}

/// How many of the society's escrow wrappings are of generation `$gen`: a range scan of the key
/// table's primary key (recipient first).
macro_rules! count_gen {
    ($conn:ident, $soc:expr, $gen:expr) => {
        case_keys::table
            .filter(case_keys::recipient_id.eq($soc))
            .filter(case_keys::escrow_gen.eq($gen))
            .count()
            .get_result::<i64>($conn)?
    };
}

impl Store {
    /// Starts rotating `society`'s escrow key to `new`, in one transaction: refused as a conflict if
    /// the society has no escrow key or a rotation runs already (resume that one), and as invalid if
    /// `new` is the current key. The job counts the wrappings under the current key.
    pub fn start_escrow_rotation(
        &self,
        society: SocietyId,
        new: &NewEscrowRotation,
        by: MemberId,
        now: Millis,
    ) -> Result<EscrowRotation> {
        let soc = id_bytes(society.as_uuid());
        let row = write_tx!(self, conn => {
            let (gen, current): (i32, Option<String>) = societies::table
                .filter(societies::id.eq(&soc))
                .select((societies::escrow_gen, societies::escrow_recipient))
                .get_result(conn)?;
            let current = current.ok_or(StorageError::Conflict(
                "the society has no escrow key yet: set it up first (rfl society init)",
            ))?;
            if running_rotation!(conn, &soc).is_some() {
                return Err(StorageError::Conflict(
                    "an escrow-key rotation is running already: run the same command again to resume it",
                ));
            }
            if current == new.recipient {
                return Err(StorageError::Invalid(
                    "the new escrow key is the current one".into(),
                ));
            }
            let row = EscrowRotationDb {
                society_id: soc.clone(),
                new_gen: gen + 1,
                old_recipient: current,
                new_recipient: new.recipient.clone(),
                new_wrapped: new.wrapped_identity.clone(),
                new_certificate: new.certificate.clone(),
                total: count_gen!(conn, &soc, gen),
                done: 0,
                started_by: id_bytes(by.as_uuid()),
                started_at: now,
                completed_at: None,
            };
            diesel::insert_into(escrow_rotations::table)
                .values(&row)
                .execute(conn)?;
            Ok(row)
        })?;
        self.refresh_key_statistics()?;
        row.into_rotation()
    }

    /// PostgreSQL: fresh planner statistics of the key table, which a rotation is about to rewrite.
    /// Statistics taken before the previous rotation say that no wrapping is of the generation this
    /// one moves; the planner then took the batch update's key-table side for one row and ran it as
    /// a nested loop over every wrapping of the society for every row of the batch: 107 s a batch
    /// of 5,000 at 100,000 cases instead of milliseconds (docs/benchmarks.md, run 18). A sample of
    /// the table, tenths of a second at a national caseload; it takes no lock ordinary reads or
    /// writes wait for. SQLite updates row by row through the primary key and needs nothing.
    fn refresh_key_statistics(&self) -> Result<()> {
        if let Pools::Postgres(pool) = &self.pools {
            diesel::sql_query("ANALYZE case_keys").execute(&mut pool.get()?)?;
        }
        Ok(())
    }

    /// The society's latest escrow-key rotation (running or completed), if any.
    pub fn escrow_rotation(&self, society: SocietyId) -> Result<Option<EscrowRotation>> {
        let soc = id_bytes(society.as_uuid());
        let row: Option<EscrowRotationDb> = read!(self, conn => {
            let latest: Option<i32> = escrow_rotations::table
                .filter(escrow_rotations::society_id.eq(&soc))
                .select(diesel::dsl::max(escrow_rotations::new_gen))
                .get_result(conn)?;
            match latest {
                Some(gen) => Some(
                    escrow_rotations::table
                        .find((&soc, gen))
                        .select(EscrowRotationDb::as_select())
                        .get_result(conn)?,
                ),
                None => None,
            }
        });
        row.map(EscrowRotationDb::into_rotation).transpose()
    }

    /// The society's escrow wrappings of generation `gen`, in (case, epoch) order after `after`, at
    /// most `limit`: a range scan of the key table's primary key from where the last page ended
    /// (on PostgreSQL, one statement per `PG_BULK_STATEMENT_ROWS` rows).
    pub fn escrow_wraps(
        &self,
        society: SocietyId,
        gen: i32,
        after: Option<(Uuid, u32)>,
        limit: i64,
    ) -> Result<Vec<EscrowWrapRow>> {
        let soc = id_bytes(society.as_uuid());
        let (after_case, after_epoch) = match after {
            Some((c, e)) => (id_bytes(&c), epoch_i32(e)?),
            None => (Vec::new(), 0),
        };
        // PostgreSQL: in statements of a few rows (`PG_BULK_STATEMENT_ROWS`), each from where
        // the last ended. SQLite reads in-process and never holds up the writer: one statement.
        let chunk = match &self.pools {
            Pools::Postgres(_) => i64::try_from(PG_BULK_STATEMENT_ROWS).unwrap_or(limit),
            Pools::Sqlite { .. } => limit,
        };
        let rows: Vec<(Vec<u8>, i32, Vec<u8>)> = read!(self, conn => {
            let mut rows: Vec<(Vec<u8>, i32, Vec<u8>)> = Vec::new();
            let (mut after_case, mut after_epoch) = (after_case, after_epoch);
            loop {
                let want = chunk.min(limit - rows.len() as i64);
                let got: Vec<(Vec<u8>, i32, Vec<u8>)> = case_keys::table
                    .filter(case_keys::recipient_id.eq(&soc))
                    .filter(case_keys::case_id.ge(&after_case))
                    .filter(
                        case_keys::case_id
                            .gt(&after_case)
                            .or(case_keys::key_epoch.gt(after_epoch)),
                    )
                    .filter(case_keys::escrow_gen.eq(gen))
                    .order((case_keys::case_id, case_keys::key_epoch))
                    .limit(want)
                    .select((case_keys::case_id, case_keys::key_epoch, case_keys::wrapped))
                    .load(conn)?;
                let short = (got.len() as i64) < want;
                rows.extend(got);
                match rows.last() {
                    Some((c, e, _)) if !short && (rows.len() as i64) < limit => {
                        after_case = c.clone();
                        after_epoch = *e;
                    }
                    _ => break,
                }
            }
            rows
        });
        rows.into_iter()
            .map(|(c, e, wrapped)| {
                Ok(EscrowWrapRow {
                    case_id: uuid_from(&c)?,
                    key_epoch: u32::try_from(e)
                        .map_err(|_| StorageError::Invalid("a negative key epoch".into()))?,
                    wrapped,
                })
            })
            .collect()
    }

    /// Replaces escrow wrappings with ones made for the key of the running rotation to generation
    /// `new_gen`, in one transaction: a row is replaced only if it is still under the old key, so a
    /// batch sent twice (a response lost, a resumed job) changes nothing the second time. Returns
    /// how many rows this batch moved, and the job as it is now. A conflict if no such rotation runs.
    pub fn rotate_escrow_wraps(
        &self,
        society: SocietyId,
        new_gen: i32,
        rows: &[EscrowWrapRow],
    ) -> Result<(usize, EscrowRotation)> {
        let soc = id_bytes(society.as_uuid());
        // In key order, so that each PostgreSQL statement's share of the batch is a narrow range.
        let mut sorted: Vec<&EscrowWrapRow> = rows.iter().collect();
        sorted.sort_by_key(|r| (r.case_id, r.key_epoch));
        let mut ids = Vec::with_capacity(rows.len());
        let mut epochs = Vec::with_capacity(rows.len());
        let mut wraps = Vec::with_capacity(rows.len());
        for r in sorted {
            ids.push(id_bytes(&r.case_id));
            epochs.push(epoch_i32(r.key_epoch)?);
            wraps.push(r.wrapped.clone());
        }
        let not_running = || {
            StorageError::Conflict(
                "no escrow-key rotation to this key is running (it completed, or another started)",
            )
        };
        macro_rules! rotate_tx {
            ($conn:ident, $update:expr) => {{
                let mut job = running_rotation!($conn, &soc).ok_or_else(not_running)?;
                if job.new_gen != new_gen {
                    return Err(not_running());
                }
                let moved: usize = $update($conn, new_gen - 1)?;
                job.done += i64::try_from(moved)
                    .map_err(|_| StorageError::Invalid("too many rows".into()))?;
                diesel::update(escrow_rotations::table.find((&soc, new_gen)))
                    .set(escrow_rotations::done.eq(job.done))
                    .execute($conn)?;
                Ok((moved, job))
            }};
        }
        let (moved, job) = match &self.pools {
            // A statement per `PG_BULK_STATEMENT_ROWS` rows of the batch, in key order, each told
            // the range its rows span (`update_wraps_pg`).
            Pools::Postgres(pool) => {
                let rows_per = PG_BULK_STATEMENT_ROWS;
                pool.get()?
                    .transaction(|conn| -> Result<(usize, EscrowRotationDb)> {
                        rotate_tx!(conn, |conn: &mut PgConnection, old: i32| -> Result<usize> {
                            let mut moved = 0;
                            for ((ids, epochs), wraps) in ids
                                .chunks(rows_per)
                                .zip(epochs.chunks(rows_per))
                                .zip(wraps.chunks(rows_per))
                            {
                                moved +=
                                    update_wraps_pg(conn, &soc, new_gen, old, ids, epochs, wraps)?;
                            }
                            Ok(moved)
                        })
                    })?
            }
            // In-process: a prepared statement per row costs microseconds.
            Pools::Sqlite { write, .. } => {
                write
                    .get()?
                    .immediate_transaction(|conn| -> Result<(usize, EscrowRotationDb)> {
                        rotate_tx!(conn, |conn: &mut SqliteConnection,
                                          old: i32|
                         -> Result<usize> {
                            let mut moved = 0;
                            for ((id, epoch), wrapped) in ids.iter().zip(&epochs).zip(&wraps) {
                                moved += diesel::update(
                                    case_keys::table
                                        .filter(case_keys::recipient_id.eq(&soc))
                                        .filter(case_keys::case_id.eq(id))
                                        .filter(case_keys::key_epoch.eq(epoch))
                                        .filter(case_keys::escrow_gen.eq(old)),
                                )
                                .set((
                                    case_keys::wrapped.eq(wrapped),
                                    case_keys::escrow_gen.eq(new_gen),
                                ))
                                .execute(conn)?;
                            }
                            Ok(moved)
                        })
                    })?
            }
        };
        Ok((moved, job.into_rotation()?))
    }

    /// Finishes the running rotation to generation `new_gen`, in one transaction: if no escrow
    /// wrapping of the old key is left, the new key becomes the society's escrow key (its recipient,
    /// its wrapped identity and its certificate) and the job is marked completed; else nothing
    /// changes and the count left is returned. Completing a completed job returns it again.
    ///
    /// The transaction first locks the society's change sequence, which every write of the society's
    /// wrapped keys takes before it checks which escrow key it wrapped to (`escrow_gen!`): none can
    /// slip a wrapping of the old key in between the count and the switch.
    pub fn complete_escrow_rotation(
        &self,
        society: SocietyId,
        new_gen: i32,
        now: Millis,
    ) -> Result<EscrowCompletion> {
        let soc = id_bytes(society.as_uuid());
        let done = write_tx!(self, conn => {
            diesel::update(society_seq::table.filter(society_seq::society_id.eq(&soc)))
                .set(society_seq::value.eq(society_seq::value))
                .execute(conn)?;
            let job: Option<EscrowRotationDb> = escrow_rotations::table
                .find((&soc, new_gen))
                .select(EscrowRotationDb::as_select())
                .get_result(conn)
                .optional()?;
            let Some(mut job) = job else {
                return Err(StorageError::Conflict("no escrow-key rotation to this key"));
            };
            if job.completed_at.is_some() {
                return Ok(Ok(job));
            }
            let left = count_gen!(conn, &soc, new_gen - 1);
            if left > 0 {
                return Ok(Err(left));
            }
            let switched = diesel::update(
                societies::table
                    .filter(societies::id.eq(&soc))
                    .filter(societies::escrow_gen.eq(new_gen - 1)),
            )
            .set((
                societies::escrow_recipient.eq(Some(&job.new_recipient)),
                societies::escrow_wrapped.eq(Some(&job.new_wrapped)),
                societies::escrow_gen.eq(new_gen),
            ))
            .execute(conn)?;
            if switched != 1 {
                return Err(StorageError::Conflict("the society escrow key changed meanwhile"));
            }
            diesel::insert_into(key_certificates::table)
                .values((
                    key_certificates::subject_id.eq(&soc),
                    key_certificates::society_id.eq(&soc),
                    key_certificates::certificate.eq(&job.new_certificate),
                    key_certificates::issued_at.eq(now),
                ))
                .on_conflict(key_certificates::subject_id)
                .do_update()
                .set((
                    key_certificates::certificate.eq(&job.new_certificate),
                    key_certificates::issued_at.eq(now),
                ))
                .execute(conn)?;
            diesel::update(escrow_rotations::table.find((&soc, new_gen)))
                .set(escrow_rotations::completed_at.eq(Some(now)))
                .execute(conn)?;
            job.completed_at = Some(now);
            Ok(Ok(job))
        })?;
        Ok(match done {
            Ok(job) => EscrowCompletion::Completed(job.into_rotation()?),
            Err(n) => EscrowCompletion::Remaining(n),
        })
    }
}

/// Moves `ids`' escrow wrappings (in key order) of generation `old` to `new_gen` with `wraps`: one
/// statement, told the range the rows span, so the planner reads it once and joins by hash instead
/// of probing the primary key per row (docs/benchmarks.md, run 19). The range only narrows the rows
/// considered; the join on (case, epoch) still decides.
fn update_wraps_pg(
    conn: &mut PgConnection,
    soc: &[u8],
    new_gen: i32,
    old: i32,
    ids: &[Vec<u8>],
    epochs: &[i32],
    wraps: &[Vec<u8>],
) -> Result<usize> {
    use diesel::sql_types::{Array, Binary, Integer};
    let (Some(lowest), Some(highest)) = (ids.iter().min(), ids.iter().max()) else {
        return Ok(0);
    };
    Ok(diesel::sql_query(
        "UPDATE case_keys AS k SET wrapped = v.wrapped, escrow_gen = $5 \
         FROM unnest($1, $2, $3) AS v(case_id, key_epoch, wrapped) \
         WHERE k.recipient_id = $4 AND k.case_id = v.case_id \
           AND k.key_epoch = v.key_epoch AND k.escrow_gen = $6 \
           AND k.case_id BETWEEN $7 AND $8",
    )
    .bind::<Array<Binary>, _>(ids)
    .bind::<Array<Integer>, _>(epochs)
    .bind::<Array<Binary>, _>(wraps)
    .bind::<Binary, _>(soc)
    .bind::<Integer, _>(new_gen)
    .bind::<Integer, _>(old)
    .bind::<Binary, _>(lowest)
    .bind::<Binary, _>(highest)
    .execute(conn)?)
}

/// Rows per PostgreSQL statement of a rotation's page read and batch write. Each statement runs in
/// a database backend at the ordinary priority, which the server cannot lower, and on two cores a
/// read woken behind one waits until it ends or its time slice does (1.5 ms or more). Statements
/// of 50 rows take under a millisecond, so no read waits long behind one; the whole batch is still
/// one transaction. With 5,000 rows per statement the p99 of reads at 1,000 reads/s during a
/// rotation was 4–5× the quiet one; with 50, about 2× (docs/benchmarks.md, run 21). The unit tests
/// use 2, so that every test of a page or a batch crosses statement boundaries.
const PG_BULK_STATEMENT_ROWS: usize = if cfg!(test) { 2 } else { 50 };
