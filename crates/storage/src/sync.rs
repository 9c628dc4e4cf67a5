//! What a sync reader reads (`docs/sync.md`): which instance this database is, how far a society's
//! change sequence has got, and the changes after a cursor, page by page.

/// Deletes the commits, records and keys kept of case `$case`'s branch (id bytes), not its row.
macro_rules! clear_branch {
    ($conn:ident, $case:expr) => {{
        diesel::delete(case_branch_keys::table.filter(case_branch_keys::case_id.eq($case)))
            .execute($conn)?;
        diesel::delete(case_branch_records::table.filter(case_branch_records::case_id.eq($case)))
            .execute($conn)?;
        diesel::delete(case_branch_commits::table.filter(case_branch_commits::case_id.eq($case)))
            .execute($conn)?;
    }};
}

mod adopt;
mod apply;
mod branch;
mod push;
mod trust;
pub use adopt::AdoptedMerge;
pub use apply::IncomingRun;
pub use branch::{Branch, HeldConflict, IncomingBranch};
pub use push::{CaseState, PushAnswer, PUSH_ANSWER_MS};
pub use trust::TrustAdoption;

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::SocietyId;
use uuid::Uuid;

use crate::models::{CaseDb, RecordDb};
use crate::schema::*;
use crate::{id_bytes, uuid_from, CaseRow, Millis, Pools, RecordRow, Result, StorageError, Store};

impl Store {
    /// This database's instance id, made once when it was created (migration `000018_instance`).
    pub fn instance_id(&self) -> Result<Uuid> {
        let id: Vec<u8> = read!(self, conn => {
            instance::table.select(instance::id).get_result(conn)?
        });
        Uuid::from_slice(&id)
            .map_err(|_| StorageError::Invalid("the stored instance id is not 16 bytes".into()))
    }

    /// The last sequence number handed out for `society`'s changes (0 before its first change).
    pub fn society_seq(&self, society: SocietyId) -> Result<i64> {
        let soc = id_bytes(society.as_uuid());
        Ok(read!(self, conn => {
            society_seq::table
                .filter(society_seq::society_id.eq(&soc))
                .select(society_seq::value)
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)?
        }))
    }
}

/// One page of a society's changes after a reader's cursor ([`Store::changes`]).
#[derive(Clone, Debug)]
pub struct ChangePage {
    /// The society's last sequence number in the snapshot the page was read in: once a page comes
    /// back short, the reader has every change up to it.
    pub society_seq: i64,
    /// The cases changed after the cursor, each once, in the order of their last change.
    pub cases: Vec<CaseChange>,
}

/// One case of a [`ChangePage`], with what the reader lacks of it.
#[derive(Clone, Debug)]
pub struct CaseChange {
    pub case: CaseRow,
    /// Whether the page carries the case whole: every commit from the first and every record.
    /// True when the reader cannot have seen it (no commit of it was numbered in this society at or
    /// before `since`: it is new, or came in by a transfer), or when it passed through another
    /// society since the reader last saw it (whose record numbers say nothing of `since`).
    pub whole: bool,
    /// The commits the reader lacks, oldest first: after the last one numbered in this society at
    /// or before `since` (all of them when `whole`). The last is the head.
    pub commits: Vec<Vec<u8>>,
    /// The records as they are now: those written after `since` (all of them when `whole`), in
    /// record-id order.
    pub records: Vec<RecordRow>,
    /// Every wrapped key of the case (every epoch, members and the society's escrow key), by
    /// recipient and epoch: a handful per case, and a re-key or grant changes them.
    pub keys: Vec<CaseKeyRow>,
}

/// A case data key of one epoch wrapped to one recipient, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseKeyRow {
    /// A member id, or the society id for the society's escrow key.
    pub recipient_id: Uuid,
    pub key_epoch: u32,
    /// The escrow key generation of an escrow wrapping; 0 on a member's row.
    pub escrow_gen: u32,
    pub wrapped: Vec<u8>,
    /// The digest of the member keys the wrapping was made for (none on escrow rows and on rows
    /// stored before digests were kept).
    pub keys_digest: Option<Vec<u8>>,
    pub created_at: Millis,
}

/// A wrapped key row as a sync reads and writes it, with the digest of the keys it was wrapped for.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = case_keys)]
#[diesel(treat_none_as_default_value = false)]
struct KeyDb {
    case_id: Vec<u8>,
    recipient_id: Vec<u8>,
    key_epoch: i32,
    wrapped: Vec<u8>,
    created_at: i64,
    escrow_gen: i32,
    keys_digest: Option<Vec<u8>>,
}

impl_bulk!(KeyDb, case_keys::table);
impl_bulk!(CaseDb, cases::table);
impl_bulk!(RecordDb, records::table);
impl_bulk!(crate::models::CommitDb, case_commits::table);

fn key_row(k: KeyDb) -> Result<CaseKeyRow> {
    let bad = |_| StorageError::Invalid("a stored key epoch or generation is negative".into());
    Ok(CaseKeyRow {
        recipient_id: uuid_from(&k.recipient_id)?,
        key_epoch: u32::try_from(k.key_epoch).map_err(bad)?,
        escrow_gen: u32::try_from(k.escrow_gen).map_err(bad)?,
        wrapped: k.wrapped,
        keys_digest: k.keys_digest,
        created_at: k.created_at,
    })
}

fn version_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StorageError::Invalid("a stored commit number is negative".into()))
}
/// A commit as read: case, number in the case, bytes, the society that numbered it.
type CommitOf = (Vec<u8>, i64, Vec<u8>, Vec<u8>);
/// A commit of one case: its number, its bytes, whether another society numbered it.
type Chained = (i64, Vec<u8>, bool);

/// What [`Store::changes`] reads in its snapshot.
struct PageRows {
    /// The society's last sequence number.
    current: i64,
    rows: Vec<CaseDb>,
    /// Per case, the number of its last commit numbered in the society at or before `since`.
    seen: Vec<(Vec<u8>, Option<i64>)>,
    commits: Vec<CommitOf>,
    records: Vec<RecordDb>,
    keys: Vec<KeyDb>,
}

impl Store {
    /// The cases of `society` changed after sequence number `after`, at most `limit` of them, in
    /// the order of their last change (a CouchDB-style changes feed: a case changed three times is
    /// listed once, at its latest number), each with the commits and records a reader lacks that
    /// holds every change up to `since` (`since` ≤ `after`: a reader paging through one pass keeps
    /// the cursor it started the pass at, since a case it has not reached yet in this pass is one
    /// it holds only as of that cursor). One snapshot, five range reads whatever the page's size:
    /// the cases by (society, seq), then their commits, records and keys by case id.
    pub fn changes(
        &self,
        society: SocietyId,
        since: i64,
        after: i64,
        limit: i64,
    ) -> Result<ChangePage> {
        if since > after {
            return Err(StorageError::Invalid(
                "since must not be beyond after".into(),
            ));
        }
        let soc = id_bytes(society.as_uuid());
        let PageRows {
            current,
            rows,
            seen,
            commits,
            records,
            keys,
        } = snapshot!(self, conn => {
            let current: i64 = society_seq::table
                .filter(society_seq::society_id.eq(&soc))
                .select(society_seq::value)
                .get_result(conn)
                .optional()?
                .ok_or(StorageError::NotFound)?;
            let rows: Vec<CaseDb> = cases::table
                .filter(cases::society_id.eq(&soc))
                .filter(cases::seq.gt(after))
                .order(cases::seq)
                .limit(limit)
                .select(CaseDb::as_select())
                .load(conn)?;
            if rows.is_empty() {
                return Ok(PageRows {
                    current,
                    rows,
                    seen: Vec::new(),
                    commits: Vec::new(),
                    records: Vec::new(),
                    keys: Vec::new(),
                });
            }
            let ids: Vec<&[u8]> = rows.iter().map(|r| r.id.as_slice()).collect();
            // The last commit of each case the reader holds: the newest numbered in this society
            // at or before `since` (none from 0).
            let seen: Vec<(Vec<u8>, Option<i64>)> = if since > 0 {
                case_commits::table
                    .filter(case_commits::case_id.eq_any(&ids))
                    .filter(case_commits::society_id.eq(&soc))
                    .filter(case_commits::change_seq.le(since))
                    .group_by(case_commits::case_id)
                    .select((case_commits::case_id, diesel::dsl::max(case_commits::seq)))
                    .load(conn)?
            } else {
                Vec::new()
            };
            // Every commit but those numbered in this society at or before `since`; the ones of
            // other societies before the reader's last are dropped below.
            let commits: Vec<CommitOf> = case_commits::table
                .filter(case_commits::case_id.eq_any(&ids))
                .filter(
                    case_commits::society_id
                        .ne(&soc)
                        .or(case_commits::change_seq.gt(since)),
                )
                .order((case_commits::case_id, case_commits::seq))
                .select((
                    case_commits::case_id,
                    case_commits::seq,
                    case_commits::body,
                    case_commits::society_id,
                ))
                .load(conn)?;
            let last_seen: HashMap<&[u8], i64> = seen
                .iter()
                .filter_map(|(id, s)| s.map(|s| (id.as_slice(), s)))
                .collect();
            // Whole records for a case the reader never saw, or one that went through another
            // society since; only those written after `since` otherwise.
            let moved: HashSet<&[u8]> = commits
                .iter()
                .filter(|(c, seq, _, by)| {
                    *by != soc && last_seen.get(c.as_slice()).is_some_and(|l| seq > l)
                })
                .map(|(c, ..)| c.as_slice())
                .collect();
            let (whole, partial): (Vec<&[u8]>, Vec<&[u8]>) = ids
                .iter()
                .partition(|id| !last_seen.contains_key(*id) || moved.contains(*id));
            let mut records: Vec<RecordDb> = Vec::new();
            if !whole.is_empty() {
                records = records::table
                    .filter(records::case_id.eq_any(&whole))
                    .select(RecordDb::as_select())
                    .load(conn)?;
            }
            if !partial.is_empty() {
                records.extend(
                    records::table
                        .filter(records::case_id.eq_any(&partial))
                        .filter(records::seq.gt(since))
                        .select(RecordDb::as_select())
                        .load::<RecordDb>(conn)?,
                );
            }
            let keys: Vec<KeyDb> = case_keys::table
                .filter(case_keys::case_id.eq_any(&ids))
                .select(KeyDb::as_select())
                .load(conn)?;
            Ok(PageRows {
                current,
                rows,
                seen,
                commits,
                records,
                keys,
            })
        })?;

        let last_seen: HashMap<Vec<u8>, i64> = seen
            .into_iter()
            .filter_map(|(id, s)| s.map(|s| (id, s)))
            .collect();
        let mut commits_of: HashMap<Vec<u8>, Vec<Chained>> = HashMap::new();
        for (case, seq, body, by) in commits {
            let foreign = by != soc;
            commits_of
                .entry(case)
                .or_default()
                .push((seq, body, foreign));
        }
        let mut records_of: HashMap<Vec<u8>, Vec<RecordRow>> = HashMap::new();
        for r in records {
            let case = r.case_id.clone();
            records_of.entry(case).or_default().push(r.into_record()?);
        }
        let mut keys_of: HashMap<Vec<u8>, Vec<CaseKeyRow>> = HashMap::new();
        for k in keys {
            let case = k.case_id.clone();
            keys_of.entry(case).or_default().push(key_row(k)?);
        }
        let cases = rows
            .into_iter()
            .map(|row| {
                let seen = last_seen.get(&row.id).copied();
                let chain: Vec<Chained> = commits_of
                    .remove(&row.id)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(seq, _, _)| seen.is_none_or(|s| *seq > s))
                    .collect();
                let whole = seen.is_none() || chain.iter().any(|(_, _, foreign)| *foreign);
                let mut records = records_of.remove(&row.id).unwrap_or_default();
                records.sort_by(|a, b| a.id.as_uuid().as_bytes().cmp(b.id.as_uuid().as_bytes()));
                let mut keys = keys_of.remove(&row.id).unwrap_or_default();
                keys.sort_by(|a, b| {
                    (a.recipient_id, a.key_epoch).cmp(&(b.recipient_id, b.key_epoch))
                });
                Ok(CaseChange {
                    whole,
                    commits: chain.into_iter().map(|(_, body, _)| body).collect(),
                    records,
                    keys,
                    case: row.into_case()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ChangePage {
            society_seq: current,
            cases,
        })
    }
}
