//! Key epochs: the cases a member holds, with what re-keying them needs, and re-key commits stored
//! in batches (one transaction each).

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::{CaseId, MemberId, SocietyId};
use uuid::Uuid;

use crate::cases::recipients_unchanged;
use crate::models::*;
use crate::schema::*;
use crate::{
    epoch_i32, id_bytes, uuid_from, version_i64, CaseRow, CommitWrite, HolderRow, Millis, Pools,
    RecipientKeys, Result, StorageError, Store, WrappedKey, INSERT_CHUNK,
};

/// A member of another society who holds cases of this one ([`Store::suspended_foreign_holders`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignHolder {
    pub member: MemberId,
    pub society: SocietyId,
    /// Cases of this society they hold a key of the current epoch for.
    pub cases: u64,
}

/// A case's wrapped data keys by key epoch, oldest first.
pub type EpochKeys = Vec<(u32, Vec<u8>)>;

/// A case as it stands, with what checking its next re-key needs: its head commit and who holds
/// its current key epoch (members, and the society id for its escrow key, with since when).
#[derive(Clone, Debug)]
pub struct CaseHead {
    pub case: CaseRow,
    pub head_commit: Vec<u8>,
    pub holders: Vec<HolderRow>,
}

/// One case's re-key to store: the commit (checked by the API), the head it was made on, the new
/// epoch's wrapped keys, and the members who hold the case now and do not keep it (all their key
/// rows, of every epoch, are deleted). `older`: key rows of earlier epochs stored with the new ones
/// (a member who rotated their keys re-wraps their own; list them in `removed` too, so that their
/// rows under the superseded keys go first).
#[derive(Clone, Debug)]
pub struct RekeyWrite {
    pub case: CaseId,
    pub parent: Vec<u8>,
    pub commit: CommitWrite,
    pub key_epoch: u32,
    pub keys: Vec<WrappedKey>,
    pub removed: Vec<Uuid>,
    pub older: Vec<(u32, WrappedKey)>,
}

type HeadRows = (
    Vec<CaseDb>,
    Vec<(Vec<u8>, Vec<u8>)>,
    Vec<(Vec<u8>, (Vec<u8>, i64, Option<Vec<u8>>))>,
);

/// The head commits and current holders of `rows` (case rows just read on `$conn`): two queries
/// for all of them, whatever their number.
macro_rules! heads_of {
    ($conn:ident, $rows:expr) => {{
        let rows: Vec<CaseDb> = $rows;
        let ids: Vec<Vec<u8>> = rows.iter().map(|r| r.id.clone()).collect();
        let mut commits: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(ids.len());
        let mut holders: Vec<(Vec<u8>, (Vec<u8>, i64, Option<Vec<u8>>))> = Vec::new();
        for chunk in ids.chunks(INSERT_CHUNK) {
            commits.extend(
                case_commits::table
                    .inner_join(
                        cases::table.on(cases::id
                            .eq(case_commits::case_id)
                            .and(cases::version.eq(case_commits::seq))),
                    )
                    .filter(case_commits::case_id.eq_any(chunk))
                    .select((case_commits::case_id, case_commits::body))
                    .load::<(Vec<u8>, Vec<u8>)>($conn)?,
            );
            holders.extend(
                case_keys::table
                    .inner_join(
                        cases::table.on(cases::id
                            .eq(case_keys::case_id)
                            .and(cases::key_epoch.eq(case_keys::key_epoch))),
                    )
                    .filter(case_keys::case_id.eq_any(chunk))
                    .order((case_keys::case_id, case_keys::recipient_id))
                    .select((
                        case_keys::case_id,
                        (
                            case_keys::recipient_id,
                            case_keys::created_at,
                            case_keys::keys_digest,
                        ),
                    ))
                    .load::<(Vec<u8>, (Vec<u8>, i64, Option<Vec<u8>>))>($conn)?,
            );
        }
        Ok::<HeadRows, StorageError>((rows, commits, holders))
    }};
}

fn assemble(rows: HeadRows) -> Result<Vec<CaseHead>> {
    let (cases, commits, holders) = rows;
    let mut commits: std::collections::HashMap<Vec<u8>, Vec<u8>> = commits.into_iter().collect();
    let mut by_case: std::collections::HashMap<Vec<u8>, Vec<HolderRow>> =
        std::collections::HashMap::new();
    for (case, row) in holders {
        by_case
            .entry(case)
            .or_default()
            .push(HolderRow::from_db(row)?);
    }
    cases
        .into_iter()
        .map(|row| {
            let head_commit = commits.remove(&row.id).ok_or_else(|| {
                StorageError::Invalid("a case without its head commit (format 1)".into())
            })?;
            let holders = by_case.remove(&row.id).unwrap_or_default();
            Ok(CaseHead {
                case: row.into_case()?,
                head_commit,
                holders,
            })
        })
        .collect()
}

impl Store {
    /// The cases of `society` that `member` holds a key of the current epoch for, in id order after
    /// `after`, each with its head commit and current holders: what an admin re-keys when the
    /// member is revoked. Three queries however many cases.
    pub fn member_cases(
        &self,
        society: SocietyId,
        member: MemberId,
        after: Option<CaseId>,
        limit: i64,
    ) -> Result<Vec<CaseHead>> {
        let who = id_bytes(member.as_uuid());
        let society = id_bytes(society.as_uuid());
        let after = after.map(|a| id_bytes(a.as_uuid())).unwrap_or_default();
        let rows = read!(self, conn => {
            conn.transaction::<_, StorageError, _>(|conn| {
                let rows: Vec<CaseDb> =
                    held_cases!(conn, &who, &after, limit, society = &society);
                heads_of!(conn, rows)
            })?
        });
        assemble(rows)
    }

    /// The cases of `society` where `member` still has a key row (of any epoch) wrapped to keys
    /// they rotated away from, in id order after `after`, each with its head commit and current
    /// holders: what the member's client re-wraps to their new keys. Four queries.
    pub fn retired_member_cases(
        &self,
        society: SocietyId,
        member: MemberId,
        after: Option<CaseId>,
        limit: i64,
    ) -> Result<Vec<CaseHead>> {
        let who = id_bytes(member.as_uuid());
        let society = id_bytes(society.as_uuid());
        let after = after.map(|a| id_bytes(a.as_uuid())).unwrap_or_default();
        let rows = read!(self, conn => {
            conn.transaction::<_, StorageError, _>(|conn| {
                let ids: Vec<Vec<u8>> = case_keys::table
                    .filter(case_keys::recipient_id.eq(&who))
                    .filter(case_keys::keys_digest.is_not_null())
                    .filter(case_keys::case_id.gt(&after))
                    .select(case_keys::case_id)
                    .distinct()
                    .order(case_keys::case_id)
                    .limit(limit)
                    .load(conn)?;
                let rows: Vec<CaseDb> = cases::table
                    .filter(cases::id.eq_any(&ids))
                    .filter(cases::society_id.eq(&society))
                    .order(cases::id)
                    .select(CaseDb::as_select())
                    .load(conn)?;
                heads_of!(conn, rows)
            })?
        });
        assemble(rows)
    }

    /// Members of other societies, suspended there, who still hold a key of the current epoch of a
    /// case `society` owns (a case transferred to it with the sender keeping access): each with
    /// their society and how many such cases, in member order. What the owning society's admin
    /// re-keys once their client has verified the revocation on the member's society's signed list.
    /// One query; it reads only the key rows of suspended members (the primary key leads with the
    /// recipient).
    pub fn suspended_foreign_holders(&self, society: SocietyId) -> Result<Vec<ForeignHolder>> {
        let soc = id_bytes(society.as_uuid());
        let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = read!(self, conn => {
            members::table
                .inner_join(case_keys::table.on(case_keys::recipient_id.eq(members::id)))
                .inner_join(
                    cases::table.on(cases::id
                        .eq(case_keys::case_id)
                        .and(cases::key_epoch.eq(case_keys::key_epoch))),
                )
                .filter(members::suspended.eq(true))
                .filter(members::society_id.ne(&soc))
                .filter(cases::society_id.eq(&soc))
                .group_by((members::id, members::society_id))
                .select((members::id, members::society_id, diesel::dsl::count_star()))
                .order(members::id)
                .load(conn)?
        });
        rows.into_iter()
            .map(|(m, s, n)| {
                Ok(ForeignHolder {
                    member: MemberId::from_uuid(uuid_from(&m)?),
                    society: SocietyId::from_uuid(uuid_from(&s)?),
                    cases: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect()
    }

    /// How many cases of each other society `member` (of `society`) holds a key of the current
    /// epoch for (cases transferred with the sender keeping access), in society order: what their
    /// admins re-key if `society` revokes the member. One query over the member's key rows.
    pub fn member_cases_elsewhere(
        &self,
        society: SocietyId,
        member: MemberId,
    ) -> Result<Vec<(SocietyId, u64)>> {
        let soc = id_bytes(society.as_uuid());
        let who = id_bytes(member.as_uuid());
        let rows: Vec<(Vec<u8>, i64)> = read!(self, conn => {
            case_keys::table
                .inner_join(
                    cases::table.on(cases::id
                        .eq(case_keys::case_id)
                        .and(cases::key_epoch.eq(case_keys::key_epoch))),
                )
                .filter(case_keys::recipient_id.eq(&who))
                .filter(cases::society_id.ne(&soc))
                .group_by(cases::society_id)
                .select((cases::society_id, diesel::dsl::count_star()))
                .order(cases::society_id)
                .load(conn)?
        });
        rows.into_iter()
            .map(|(s, n)| {
                Ok((
                    SocietyId::from_uuid(uuid_from(&s)?),
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// The escrow wrappings (recipient: the society) of every key epoch of the given cases of
    /// `society`, by case, oldest epoch first: what an admin re-wraps a reset member's earlier keys
    /// from. One query per chunk of cases.
    pub fn escrow_keys_of(
        &self,
        society: SocietyId,
        cases: &[CaseId],
    ) -> Result<std::collections::HashMap<CaseId, EpochKeys>> {
        let soc = id_bytes(society.as_uuid());
        let ids: Vec<Vec<u8>> = cases.iter().map(|c| id_bytes(c.as_uuid())).collect();
        let rows: Vec<(Vec<u8>, i32, Vec<u8>)> = read!(self, conn => {
            let mut rows = Vec::new();
            for chunk in ids.chunks(INSERT_CHUNK) {
                rows.extend(
                    case_keys::table
                        .inner_join(cases::table.on(cases::id.eq(case_keys::case_id)))
                        .filter(cases::society_id.eq(&soc))
                        .filter(case_keys::case_id.eq_any(chunk))
                        .filter(case_keys::recipient_id.eq(&soc))
                        .order((case_keys::case_id, case_keys::key_epoch))
                        .select((case_keys::case_id, case_keys::key_epoch, case_keys::wrapped))
                        .load::<(Vec<u8>, i32, Vec<u8>)>(conn)?,
                );
            }
            rows
        });
        let mut out: std::collections::HashMap<CaseId, EpochKeys> =
            std::collections::HashMap::new();
        for (case, epoch, wrapped) in rows {
            let epoch = u32::try_from(epoch)
                .map_err(|_| StorageError::Invalid("a stored key epoch is negative".into()))?;
            out.entry(CaseId::from_uuid(crate::uuid_from(&case)?))
                .or_default()
                .push((epoch, wrapped));
        }
        Ok(out)
    }

    /// The given cases of `society` as they stand (a case of another society, or none, is left
    /// out): one snapshot, three queries.
    pub fn case_heads(&self, society: SocietyId, ids: &[CaseId]) -> Result<Vec<CaseHead>> {
        let society = id_bytes(society.as_uuid());
        let ids: Vec<Vec<u8>> = ids.iter().map(|i| id_bytes(i.as_uuid())).collect();
        let rows = read!(self, conn => {
            conn.transaction::<_, StorageError, _>(|conn| {
                let mut rows: Vec<CaseDb> = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(INSERT_CHUNK) {
                    rows.extend(
                        cases::table
                            .filter(cases::id.eq_any(chunk))
                            .filter(cases::society_id.eq(&society))
                            .select(CaseDb::as_select())
                            .load::<CaseDb>(conn)?,
                    );
                }
                heads_of!(conn, rows)
            })?
        });
        assemble(rows)
    }

    /// Stores re-key commits, all in one transaction: each case must still be at the head its
    /// commit was made on (else [`StorageError::Conflict`] and nothing is written). Each case moves
    /// to its new key epoch with the new wrapped keys; the members it removes lose every key row of
    /// the case. Returns the cases as they are now.
    ///
    /// `society` and `escrow`: the cases' society and the escrow key (age recipient) their new keys
    /// were wrapped to, refused as in [`Store::create_cases`] unless it is the current one.
    /// `wrapped_for`: the keys of the members the new rows are wrapped to ([`RecipientKeys`]).
    pub fn rekey_cases(
        &self,
        society: SocietyId,
        escrow: &str,
        writes: &[RekeyWrite],
        wrapped_for: &[RecipientKeys],
        now: Millis,
    ) -> Result<Vec<CaseRow>> {
        let soc = id_bytes(society.as_uuid());
        let mut commit_rows = Vec::with_capacity(writes.len());
        let mut key_rows = Vec::new();
        let mut removed: std::collections::HashMap<Vec<u8>, Vec<Vec<u8>>> =
            std::collections::HashMap::new();
        for w in writes {
            let case_id = id_bytes(w.case.as_uuid());
            for m in &w.removed {
                removed
                    .entry(id_bytes(m))
                    .or_default()
                    .push(case_id.clone());
            }
            let epoch = epoch_i32(w.key_epoch)?;
            commit_rows.push(CommitDb {
                case_id: case_id.clone(),
                seq: version_i64(w.commit.seq)?,
                body: w.commit.body.clone(),
                created_at: now,
                society_id: soc.clone(),
                change_seq: 0, // the case row's number, set once the sequence is taken
            });
            key_rows.extend(w.keys.iter().map(|k| k.row(&case_id, epoch, now)));
            for (e, k) in &w.older {
                if *e >= w.key_epoch {
                    return Err(StorageError::Invalid(
                        "an older key row is not of an earlier epoch".into(),
                    ));
                }
                key_rows.push(k.row(&case_id, epoch_i32(*e)?, now));
            }
        }
        let stale = || {
            StorageError::Conflict(
                "a case was changed by someone else since its head was read: read it again and retry",
            )
        };
        let n = i64::try_from(writes.len())
            .map_err(|_| StorageError::Invalid("too many cases".into()))?;
        // Moves each case to its next epoch (compare-and-swap on its head), then the key rows and
        // commits; `$update` is the backend's way of doing the first for the whole batch.
        macro_rules! rekey_tx {
            ($conn:ident, $update:expr) => {{
                recipients_unchanged!($conn, wrapped_for);
                let first = next_seq!($conn, &soc, n);
                let gen = escrow_gen!($conn, &soc, escrow);
                let rows: Vec<CaseDb> = $update($conn, first)?;
                if rows.len() != writes.len() {
                    return Err(stale());
                }
                if rows.iter().any(|r| r.society_id != soc) {
                    return Err(StorageError::Invalid("a case of another society".into()));
                }
                let mut key_rows = key_rows.clone();
                for row in key_rows.iter_mut().filter(|r| r.recipient_id == soc) {
                    row.escrow_gen = gen;
                }
                let numbered: std::collections::HashMap<&[u8], i64> =
                    rows.iter().map(|r| (r.id.as_slice(), r.seq)).collect();
                let mut commit_rows = commit_rows.clone();
                for c in commit_rows.iter_mut() {
                    c.change_seq = *numbered.get(c.case_id.as_slice()).ok_or_else(stale)?;
                }
                // The removed holders' key rows, every epoch: a statement per member removed (a
                // revocation removes one member from every case), not one per case.
                for (member, cases) in &removed {
                    for chunk in cases.chunks(INSERT_CHUNK) {
                        diesel::delete(
                            case_keys::table
                                .filter(case_keys::recipient_id.eq(member))
                                .filter(case_keys::case_id.eq_any(chunk)),
                        )
                        .execute($conn)?;
                    }
                }
                insert_fixed!(
                    $conn,
                    case_commits::table,
                    &commit_rows,
                    "this commit number is taken: read the case again and retry"
                );
                insert_fixed!(
                    $conn,
                    case_keys::table,
                    &key_rows,
                    "a key of the new epoch exists for this recipient"
                );
                Ok(rows)
            }};
        }
        let rows = match &self.pools {
            // One statement for the whole batch: a round trip per case was most of a re-key's cost.
            Pools::Postgres(pool) => pool.get()?.transaction(|conn| -> Result<Vec<CaseDb>> {
                rekey_tx!(conn, |conn: &mut PgConnection, first: i64| pg_advance(
                    conn, writes, first, now
                ))
            })?,
            // In-process: a statement per case costs microseconds.
            Pools::Sqlite { write, .. } => {
                write
                    .get()?
                    .immediate_transaction(|conn| -> Result<Vec<CaseDb>> {
                        rekey_tx!(conn, |conn: &mut SqliteConnection,
                                         first: i64|
                         -> Result<Vec<CaseDb>> {
                            let mut rows = Vec::with_capacity(writes.len());
                            for (seq, w) in (first..).zip(writes) {
                                let epoch = epoch_i32(w.key_epoch)?;
                                let seq_no = version_i64(w.commit.seq)?;
                                let updated: Option<CaseDb> = diesel::update(
                                    cases::table
                                        .filter(cases::id.eq(id_bytes(w.case.as_uuid())))
                                        .filter(cases::version.eq(seq_no - 1))
                                        .filter(cases::head_hash.eq(&w.parent))
                                        .filter(cases::key_epoch.eq(epoch - 1)),
                                )
                                .set((
                                    cases::version.eq(seq_no),
                                    cases::head_hash.eq(Some(w.commit.hash.clone())),
                                    cases::key_epoch.eq(epoch),
                                    cases::seq.eq(seq),
                                    cases::updated_at.eq(now),
                                ))
                                .returning(CaseDb::as_returning())
                                .get_result(conn)
                                .optional()?;
                                rows.push(updated.ok_or_else(stale)?);
                            }
                            Ok(rows)
                        })
                    })?
            }
        };
        rows.into_iter().map(CaseDb::into_case).collect()
    }
}

/// PostgreSQL: moves every case of a batch to its next key epoch in one statement, each only if it
/// is still at the head its re-key was made on; returns the rows it moved (fewer than asked: some
/// case changed meanwhile).
fn pg_advance(
    conn: &mut PgConnection,
    writes: &[RekeyWrite],
    first_seq: i64,
    now: Millis,
) -> Result<Vec<CaseDb>> {
    use diesel::sql_types::{Array, BigInt, Binary, Integer};
    let mut ids = Vec::with_capacity(writes.len());
    let mut versions = Vec::with_capacity(writes.len());
    let mut parents = Vec::with_capacity(writes.len());
    let mut hashes = Vec::with_capacity(writes.len());
    let mut epochs = Vec::with_capacity(writes.len());
    let mut seqs = Vec::with_capacity(writes.len());
    for (seq, w) in (first_seq..).zip(writes) {
        ids.push(id_bytes(w.case.as_uuid()));
        versions.push(version_i64(w.commit.seq)?);
        parents.push(w.parent.clone());
        hashes.push(w.commit.hash.clone());
        epochs.push(epoch_i32(w.key_epoch)?);
        seqs.push(seq);
    }
    Ok(diesel::sql_query(
        "UPDATE cases AS c SET version = v.version, head_hash = v.hash, key_epoch = v.epoch, \
           seq = v.seq, updated_at = $7 \
         FROM unnest($1, $2, $3, $4, $5, $6) AS v(id, version, parent, hash, epoch, seq) \
         WHERE c.id = v.id AND c.version = v.version - 1 AND c.head_hash = v.parent \
           AND c.key_epoch = v.epoch - 1 \
         RETURNING c.id, c.society_id, c.status, c.key_epoch, c.version, c.seq, c.created_by, \
           c.created_at, c.updated_at, c.head_hash",
    )
    .bind::<Array<Binary>, _>(ids)
    .bind::<Array<BigInt>, _>(versions)
    .bind::<Array<Binary>, _>(parents)
    .bind::<Array<Binary>, _>(hashes)
    .bind::<Array<Integer>, _>(epochs)
    .bind::<Array<BigInt>, _>(seqs)
    .bind::<BigInt, _>(now)
    .load::<CaseDb>(conn)?)
}
