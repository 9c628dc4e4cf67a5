//! Cases: their wrapped keys, records, commits and attachment chunks.

use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use rfl_domain::{CaseId, CaseStatus, MemberId, RecordId, SocietyId};

use crate::models::*;
use crate::schema::*;
use uuid::Uuid;

use crate::members::{standing_of, Standing};
use crate::pg_read::Found;
use crate::{
    epoch_i32, id_bytes, uuid_from, version_i64, Millis, Pools, Result, StorageError, Store,
    INSERT_CHUNK,
};

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
    /// SHA-256 of the head commit (its number is `version`); `None` for a format-1 case, which has
    /// no commits.
    pub head_hash: Option<Vec<u8>>,
}

/// A signed commit to store: its number in the case, its hash and bytes (parsed and verified by the
/// API), and the status it gives the case.
#[derive(Clone, Debug)]
pub struct CommitWrite {
    pub seq: u64,
    pub hash: Vec<u8>,
    pub body: Vec<u8>,
    pub status: CaseStatus,
}

/// A case data key wrapped to one recipient: a member, or the society escrow key (recipient = society id).
#[derive(Clone, Debug)]
pub struct WrappedKey {
    pub recipient_id: Uuid,
    pub wrapped: Vec<u8>,
}

/// The registered keys of a member as the caller's wraps were made for them (what the server's
/// directory read before the write). A write that stores rows wrapped to other members names them:
/// if a member's keys changed since (they rotated), nothing is written, so no row claims the new
/// keys while wrapped to the old ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientKeys {
    pub member: MemberId,
    pub signing_key: Vec<u8>,
    pub age_recipient: String,
}

/// In a write transaction: each member of `$keys` (`&[RecipientKeys]`) still has those keys, else a
/// conflict. The no-op update takes the member's row lock on PostgreSQL, so a key switch
/// ([`Store::switch_member_keys`], which takes the same lock first) either waits for this write, and
/// then marks its rows as under the old keys, or made it fail here.
macro_rules! recipients_unchanged {
    ($conn:ident, $keys:expr) => {{
        for r in $keys {
            let locked = diesel::update(
                members::table
                    .filter(members::id.eq(id_bytes(r.member.as_uuid())))
                    .filter(members::signing_key.eq(&r.signing_key))
                    .filter(members::age_recipient.eq(&r.age_recipient)),
            )
            .set(members::security_stamp.eq(members::security_stamp))
            .execute($conn)?;
            if locked != 1 {
                return Err(StorageError::Conflict(
                    "a member's keys changed since they were read (they rotated them): read the \
                     society's members again and retry",
                ));
            }
        }
    }};
}
pub(crate) use recipients_unchanged;

impl WrappedKey {
    /// Its row in the key table, for `case_id` at `epoch`.
    pub(crate) fn row(&self, case_id: &[u8], epoch: i32, now: Millis) -> CaseKeyDb {
        CaseKeyDb {
            case_id: case_id.to_vec(),
            recipient_id: id_bytes(&self.recipient_id),
            key_epoch: epoch,
            wrapped: self.wrapped.clone(),
            created_at: now,
            escrow_gen: 0,
        }
    }
}

impl From<&rfl_domain::api::WrappedKeyDto> for WrappedKey {
    fn from(k: &rfl_domain::api::WrappedKeyDto) -> WrappedKey {
        WrappedKey {
            recipient_id: k.recipient_id,
            wrapped: k.wrapped.0.clone(),
        }
    }
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
    /// The creating commit (seq 1).
    pub commit: CommitWrite,
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

/// A case as one member may read it: metadata, that member's wrapped data key, every record (in
/// record-id order), the head commit and, if asked for, the commits between a known one and the head.
#[derive(Clone, Debug)]
pub struct CaseBundle {
    pub case: CaseRow,
    pub wrapped_key: Vec<u8>,
    pub records: Vec<RecordRow>,
    /// The head commit's bytes (`None` for a format-1 case).
    pub head_commit: Option<Vec<u8>>,
    /// Commits after the `since` asked for and before the head, oldest first.
    pub commits_since: Vec<Vec<u8>>,
    /// The member's wrapped keys of the case's earlier key epochs, by epoch.
    pub older_keys: Vec<(u32, Vec<u8>)>,
}

/// Who holds a case's current key epoch ([`Store::case_holders`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseHolderRows {
    pub key_epoch: u32,
    /// Each recipient of the epoch's data key, by recipient id.
    pub holders: Vec<HolderRow>,
}

/// A recipient of a key epoch's data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderRow {
    /// A member id, or the society id for its escrow key.
    pub recipient: Uuid,
    /// When the key was stored.
    pub since: Millis,
    /// The digest of the keys the row is wrapped to, when those are keys the member rotated away
    /// from; `None`: the member's registered keys (or the escrow key).
    pub keys_digest: Option<Vec<u8>>,
}

impl HolderRow {
    pub(crate) fn from_db(row: (Vec<u8>, i64, Option<Vec<u8>>)) -> Result<HolderRow> {
        Ok(HolderRow {
            recipient: uuid_from(&row.0)?,
            since: row.1,
            keys_digest: row.2,
        })
    }
}

/// A case read together with its reader's [`Standing`] ([`Store::get_case_with_standing`]).
#[derive(Clone, Debug)]
pub struct CaseRead {
    /// The reader's standing in the same snapshot (`None`: no such member).
    pub standing: Option<Standing>,
    pub bundle: Option<CaseBundle>,
}

/// What a batch of new cases did: the cases created, and how many were stored already.
#[derive(Clone, Debug)]
pub struct CreatedCases {
    pub rows: Vec<CaseRow>,
    pub already_present: usize,
}

#[derive(Clone, Debug)]
pub struct CaseListItem {
    pub case: CaseRow,
    pub record_count: i64,
}

impl Store {
    // --- cases -------------------------------------------------------------------------------------

    /// Creates cases with their wrapped keys and first record versions, all in one transaction.
    ///
    /// A case whose id is stored already, created by the same member, is skipped and counted in
    /// [`CreatedCases::already_present`] (a re-run of an interrupted import); an id stored by anyone
    /// else is a conflict and nothing is written.
    ///
    /// `escrow` is the society escrow key (its age recipient) the cases' escrow wrappings were made
    /// for: refused as a conflict unless it is the society's current one when the transaction runs
    /// (an escrow-key rotation may have completed since the client loaded it).
    pub fn create_cases(
        &self,
        new_cases: &[NewCase],
        escrow: &str,
        now: Millis,
    ) -> Result<CreatedCases> {
        let Some(first) = new_cases.first() else {
            return Ok(CreatedCases {
                rows: Vec::new(),
                already_present: 0,
            });
        };
        let society = id_bytes(first.society_id.as_uuid());
        if new_cases.iter().any(|c| c.society_id != first.society_id) {
            return Err(StorageError::Invalid(
                "cases of one request belong to one society".into(),
            ));
        }
        let mut case_rows = Vec::with_capacity(new_cases.len());
        let mut commit_rows = Vec::with_capacity(new_cases.len());
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
                head_hash: Some(c.commit.hash.clone()),
            });
            if c.commit.seq != 1 || c.commit.status != c.status {
                return Err(StorageError::Invalid(
                    "a new case starts with its first commit".into(),
                ));
            }
            commit_rows.push(CommitDb {
                case_id: case_id.clone(),
                seq: 1,
                body: c.commit.body.clone(),
                created_at: now,
            });
            key_rows.extend(c.keys.iter().map(|k| k.row(&case_id, epoch, now)));
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
        let ids: Vec<Vec<u8>> = case_rows.iter().map(|r| r.id.clone()).collect();
        let result = write_tx!(self, conn => {
            let mut present: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
            for chunk in ids.chunks(INSERT_CHUNK) {
                let found: Vec<(Vec<u8>, Vec<u8>)> = cases::table
                    .filter(cases::id.eq_any(chunk))
                    .select((cases::id, cases::created_by))
                    .load(conn)?;
                for (id, by) in found {
                    let mine = case_rows.iter().any(|r| r.id == id && r.created_by == by);
                    if !mine {
                        return Err(StorageError::Conflict("a case with this id exists"));
                    }
                    present.insert(id);
                }
            }
            if !present.is_empty() {
                case_rows.retain(|r| !present.contains(&r.id));
                commit_rows.retain(|r| !present.contains(&r.case_id));
                key_rows.retain(|r| !present.contains(&r.case_id));
                record_rows.retain(|r| !present.contains(&r.case_id));
            }
            let changes = i64::try_from(case_rows.len() + record_rows.len())
                .map_err(|_| StorageError::Invalid("batch too large".into()))?;
            let mut seq = next_seq!(conn, changes);
            let gen = escrow_gen!(conn, &society, escrow);
            for row in key_rows.iter_mut().filter(|r| r.recipient_id == society) {
                row.escrow_gen = gen;
            }
            for row in case_rows.iter_mut() {
                row.seq = seq;
                seq += 1;
            }
            for row in record_rows.iter_mut() {
                row.seq = seq;
                seq += 1;
            }
            insert_fixed!(conn, cases::table, &case_rows, "a case with this id exists");
            insert_fixed!(conn, case_commits::table, &commit_rows, "a case with this id exists");
            insert_fixed!(conn, case_keys::table, &key_rows, "a key for this recipient exists");
            insert_fixed!(conn, records::table, &record_rows, "a record with this id exists");
            Ok(present.len())
        });
        let already_present = result?;
        Ok(CreatedCases {
            rows: case_rows
                .into_iter()
                .map(CaseDb::into_case)
                .collect::<Result<_>>()?,
            already_present,
        })
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
            let rows: Vec<CaseDb> = held_cases!(conn, &me, &after, limit);
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

    /// A case with the member's wrapped key, all records in record-id order and its head commit, or
    /// `None` when the member holds no key for it — whether it does not exist or belongs to someone
    /// else is not told apart. With `since`, also the commits numbered after it and before the head
    /// (so a client that saw commit `since` can check the head descends from it).
    pub fn get_case(
        &self,
        member: MemberId,
        case: CaseId,
        since: Option<u64>,
    ) -> Result<Option<CaseBundle>> {
        Ok(self.read_case(member, case, since, false)?.bundle)
    }

    /// [`Store::get_case`] with the reading member's [`Standing`] read in the same snapshot, so a
    /// request's authentication and its read are one database call (and agree with each other).
    /// Whoever calls it must check the standing before using the bundle.
    pub fn get_case_with_standing(
        &self,
        member: MemberId,
        case: CaseId,
        since: Option<u64>,
    ) -> Result<CaseRead> {
        self.read_case(member, case, since, true)
    }

    fn read_case(
        &self,
        member: MemberId,
        case: CaseId,
        since: Option<u64>,
        with_standing: bool,
    ) -> Result<CaseRead> {
        let since = since.map(version_i64).transpose()?;
        let (standing, found): (Option<Standing>, Option<Found>) = match &self.pools {
            // One statement instead of a transaction of four (crate::pg_read).
            Pools::Postgres(pool) => {
                let from = since.map(|s| s.saturating_add(1));
                let (standing, found) =
                    crate::pg_read::read_case(&mut *pool.get()?, member, case, from)?;
                (standing.filter(|_| with_standing), found)
            }
            // One deferred transaction, so every query sees the snapshot its first read fixes (the
            // case's row, records and head commit agree even while someone commits to it).
            Pools::Sqlite { read, .. } => read.get()?.transaction(|conn| -> Result<_> {
                let standing = if with_standing {
                    standing_of!(conn, member)
                } else {
                    None
                };
                Ok((
                    standing,
                    match case_for_member!(conn, member, case) {
                        None => None,
                        Some((row, wrapped)) => {
                            let recs: Vec<RecordDb> = records::table
                                .filter(records::case_id.eq(&row.id))
                                .order(records::id)
                                .select(RecordDb::as_select())
                                .load(conn)?;
                            // The head, and the chain after `since` if asked (never more than the head).
                            let from = since
                                .map(|s| s.saturating_add(1))
                                .unwrap_or(row.version)
                                .min(row.version);
                            let commits: Vec<(i64, Vec<u8>)> = case_commits::table
                                .filter(case_commits::case_id.eq(&row.id))
                                .filter(case_commits::seq.ge(from))
                                .filter(case_commits::seq.le(row.version))
                                .order(case_commits::seq)
                                .select((case_commits::seq, case_commits::body))
                                .load(conn)?;
                            // Earlier epochs' keys: none to look for at epoch 1 (most cases).
                            let older: Vec<(i32, Vec<u8>)> = if row.key_epoch > 1 {
                                case_keys::table
                                    .filter(case_keys::recipient_id.eq(id_bytes(member.as_uuid())))
                                    .filter(case_keys::case_id.eq(&row.id))
                                    .filter(case_keys::key_epoch.lt(row.key_epoch))
                                    .order(case_keys::key_epoch)
                                    .select((case_keys::key_epoch, case_keys::wrapped))
                                    .load(conn)?
                            } else {
                                Vec::new()
                            };
                            Some((row, wrapped, recs, commits, older))
                        }
                    },
                ))
            })?,
        };
        let bundle = found
            .map(|(row, wrapped_key, recs, mut commits, older)| {
                let head = match commits.last() {
                    Some((seq, _)) if *seq == row.version => commits.pop().map(|(_, b)| b),
                    _ => None,
                };
                Ok::<_, StorageError>(CaseBundle {
                    case: row.into_case()?,
                    wrapped_key,
                    records: recs
                        .into_iter()
                        .map(RecordDb::into_record)
                        .collect::<Result<_>>()?,
                    head_commit: head,
                    commits_since: commits.into_iter().map(|(_, b)| b).collect(),
                    older_keys: older
                        .into_iter()
                        .map(|(e, w)| {
                            u32::try_from(e).map(|e| (e, w)).map_err(|_| {
                                StorageError::Invalid("stored key epoch out of range".into())
                            })
                        })
                        .collect::<Result<_>>()?,
                })
            })
            .transpose()?;
        Ok(CaseRead { standing, bundle })
    }

    /// The case's metadata if the member holds a key for it.
    pub fn case_for_member(&self, member: MemberId, case: CaseId) -> Result<Option<CaseRow>> {
        let found = read!(self, conn => { case_for_member!(conn, member, case) });
        found.map(|(row, _)| row.into_case()).transpose()
    }

    /// Stores one commit of a case the member holds a key for, with the record versions it writes,
    /// in one transaction. The case must still be at commit `commit.seq - 1` with head `parent`:
    /// otherwise someone else committed first and nothing is written (conflict). Version 1 creates a
    /// record; version n+1 replaces version n (anything else is a conflict too). `keys` are the
    /// keys the commit grants, each with its key epoch: the case's current one or an earlier one;
    /// `wrapped_for`, the keys of the members they were wrapped to ([`RecipientKeys`]).
    #[allow(clippy::too_many_arguments)] // each is a distinct part of one write, all in one transaction
    pub fn write_commit(
        &self,
        member: MemberId,
        case: CaseId,
        parent: &[u8],
        commit: &CommitWrite,
        writes: &[RecordWrite],
        keys: &[(u32, WrappedKey)],
        wrapped_for: &[RecipientKeys],
        now: Millis,
    ) -> Result<CaseRow> {
        let n = i64::try_from(writes.len())
            .map_err(|_| StorageError::Invalid("too many records".into()))?;
        let seq_no = version_i64(commit.seq)?;
        let author = id_bytes(member.as_uuid());
        let stale = StorageError::Conflict(
            "the case was changed by someone else since you opened it: reload it and retry",
        );
        let row = write_tx!(self, conn => {
            recipients_unchanged!(conn, wrapped_for);
            let (row, _) = case_for_member!(conn, member, case).ok_or(StorageError::NotFound)?;
            if row.version != seq_no - 1 || row.head_hash.as_deref() != Some(parent) {
                return Err(stale);
            }
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
            // Keys granted by this commit: of the case's current epoch or an earlier one, to new
            // recipients only.
            let key_rows: Vec<CaseKeyDb> = keys
                .iter()
                .map(|(epoch, k)| {
                    let epoch = epoch_i32(*epoch)?;
                    if epoch < 1 || epoch > row.key_epoch {
                        return Err(StorageError::Invalid("a key of a key epoch the case has not reached".into()));
                    }
                    Ok(CaseKeyDb {
                        case_id: row.id.clone(),
                        recipient_id: id_bytes(&k.recipient_id),
                        key_epoch: epoch,
                        wrapped: k.wrapped.clone(),
                        created_at: now,
                        escrow_gen: 0,
                    })
                })
                .collect::<Result<_>>()?;
            if !key_rows.is_empty() {
                diesel::insert_into(case_keys::table)
                    .values(&key_rows)
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, "this member holds the case already"))?;
            }
            diesel::insert_into(case_commits::table)
                .values(&CommitDb {
                    case_id: row.id.clone(),
                    seq: seq_no,
                    body: commit.body.clone(),
                    created_at: now,
                })
                .execute(conn)
                .map_err(|_| StorageError::Conflict("this commit number is taken: reload the case and retry"))?;
            let updated: CaseDb = diesel::update(
                cases::table.filter(cases::id.eq(&row.id)).filter(cases::version.eq(seq_no - 1)),
            )
            .set((
                cases::version.eq(seq_no),
                cases::head_hash.eq(Some(commit.hash.clone())),
                cases::status.eq(commit.status.as_str()),
                cases::seq.eq(seq),
                cases::updated_at.eq(now),
            ))
            .returning(CaseDb::as_returning())
            .get_result(conn)?;
            Ok(updated)
        })?;
        row.into_case()
    }

    /// Who holds the current key epoch's data key of a case that `member` holds: every recipient
    /// of the epoch (members, and the society id for its escrow key) with when they got it, and the
    /// epoch; `None` if the member holds no key for it (or there is no such case). One snapshot.
    pub fn case_holders(&self, member: MemberId, case: CaseId) -> Result<Option<CaseHolderRows>> {
        type Rows = Vec<(Vec<u8>, i64, Option<Vec<u8>>)>;
        let found: Option<(i32, Rows)> = read!(self, conn => {
            conn.transaction::<_, StorageError, _>(|conn| {
                let Some((row, _)) = case_for_member!(conn, member, case) else {
                    return Ok(None);
                };
                let holders = case_keys::table
                    .filter(case_keys::case_id.eq(&row.id))
                    .filter(case_keys::key_epoch.eq(row.key_epoch))
                    .order(case_keys::recipient_id)
                    .select((case_keys::recipient_id, case_keys::created_at, case_keys::keys_digest))
                    .load(conn)?;
                Ok(Some((row.key_epoch, holders)))
            })?
        });
        found
            .map(|(epoch, rows)| {
                let epoch = u32::try_from(epoch)
                    .map_err(|_| StorageError::Invalid("stored key epoch out of range".into()))?;
                let holders = rows
                    .into_iter()
                    .map(HolderRow::from_db)
                    .collect::<Result<Vec<_>>>()?;
                Ok(CaseHolderRows {
                    key_epoch: epoch,
                    holders,
                })
            })
            .transpose()
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
                .get_result::<Vec<u8>>(conn)
                .optional()?)
        })
    }
}
