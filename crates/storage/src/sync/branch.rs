//! A case in conflict (`docs/sync.md`, "Conflicts and merges"): the other side wrote on a commit
//! this server has since moved past. Its branch is kept whole beside this server's own chain of
//! the case (the commits after the last one both share, every record its head lists, every wrapped
//! key it came with), so neither version is lost, and a reader can show both.

use super::*;
use crate::{epoch_i32, version_i64, CommitWrite, RecordWrite};
use rfl_domain::{CaseId, MemberId};

/// The other side's branch of a case in conflict, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Branch {
    /// The number of the last commit this server's chain and the branch share.
    pub fork_seq: u64,
    /// The branch's head: its number and hash.
    pub head_seq: u64,
    pub head_hash: Vec<u8>,
    /// The branch's commits after the fork, oldest first; the last is its head.
    pub commits: Vec<Vec<u8>>,
    /// Every record the branch's head lists, in record-id order (none when only the head was read).
    pub records: Vec<RecordRow>,
    /// Every wrapped key the branch came with (none when only the head was read).
    pub keys: Vec<CaseKeyRow>,
    /// When this server first stored a branch of the case, and when it last extended it.
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When a merge commit on this server resolved the conflict (the branch's commits stay: the
    /// merge names its head). None while the case is in conflict.
    pub merged_at: Option<Millis>,
}

/// A branch to store, checked by the caller first: its commits verified, each the child of the one
/// before, the first the child of this server's commit `fork_seq`; its head listing exactly
/// `records` and naming the holders `keys` give.
#[derive(Clone, Debug)]
pub struct IncomingBranch {
    pub case: CaseId,
    pub society: SocietyId,
    /// The head hash of the branch this server held when the caller checked (none: no branch). The
    /// write is a compare-and-swap on it: if another branch was stored meanwhile, nothing is.
    pub replaces: Option<Vec<u8>>,
    pub fork_seq: u64,
    /// The commits after the fork, oldest first: (number, bytes).
    pub commits: Vec<(u64, Vec<u8>)>,
    pub head_hash: Vec<u8>,
    pub records: Vec<RecordRow>,
    pub keys: Vec<CaseKeyRow>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = case_branch_records)]
#[diesel(treat_none_as_default_value = false)]
pub(super) struct BranchRecordDb {
    pub(super) case_id: Vec<u8>,
    pub(super) id: Vec<u8>,
    pub(super) kind: i16,
    pub(super) version: i64,
    pub(super) key_epoch: i32,
    pub(super) author_id: Vec<u8>,
    pub(super) envelope: Vec<u8>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = case_branch_keys)]
#[diesel(treat_none_as_default_value = false)]
pub(super) struct BranchKeyDb {
    pub(super) case_id: Vec<u8>,
    pub(super) recipient_id: Vec<u8>,
    pub(super) key_epoch: i32,
    pub(super) escrow_gen: i32,
    pub(super) wrapped: Vec<u8>,
    pub(super) keys_digest: Option<Vec<u8>>,
    pub(super) created_at: i64,
}

/// A branch's row: case, fork, head number, head hash, created, updated, merged.
type BranchHead = (Vec<u8>, i64, i64, Vec<u8>, i64, i64, Option<i64>);

impl Store {
    /// The branches held of the cases `ids` (those in conflict), with their commits; with their
    /// records and keys too if `whole`. One snapshot, two reads (four if `whole`).
    pub fn case_branches(&self, ids: &[CaseId], whole: bool) -> Result<HashMap<CaseId, Branch>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Vec<u8>> = ids.iter().map(|i| id_bytes(i.as_uuid())).collect();
        type Read = (
            Vec<BranchHead>,
            Vec<(Vec<u8>, Vec<u8>)>,
            Vec<BranchRecordDb>,
            Vec<BranchKeyDb>,
        );
        let (heads, commits, records, keys): Read = snapshot!(self, conn => {
            let heads: Vec<BranchHead> = case_branches::table
                .filter(case_branches::case_id.eq_any(&ids))
                .select((
                    case_branches::case_id,
                    case_branches::fork_seq,
                    case_branches::head_seq,
                    case_branches::head_hash,
                    case_branches::created_at,
                    case_branches::updated_at,
                    case_branches::merged_at,
                ))
                .load(conn)?;
            if heads.is_empty() {
                return Ok((heads, Vec::new(), Vec::new(), Vec::new()));
            }
            let commits = case_branch_commits::table
                .filter(case_branch_commits::case_id.eq_any(&ids))
                .order((case_branch_commits::case_id, case_branch_commits::seq))
                .select((case_branch_commits::case_id, case_branch_commits::body))
                .load(conn)?;
            let (records, keys) = if whole {
                (
                    case_branch_records::table
                        .filter(case_branch_records::case_id.eq_any(&ids))
                        .order((case_branch_records::case_id, case_branch_records::id))
                        .select(BranchRecordDb::as_select())
                        .load(conn)?,
                    case_branch_keys::table
                        .filter(case_branch_keys::case_id.eq_any(&ids))
                        .order((
                            case_branch_keys::case_id,
                            case_branch_keys::recipient_id,
                            case_branch_keys::key_epoch,
                        ))
                        .select(BranchKeyDb::as_select())
                        .load(conn)?,
                )
            } else {
                (Vec::new(), Vec::new())
            };
            Ok((heads, commits, records, keys))
        })?;
        let mut out: HashMap<Vec<u8>, Branch> = HashMap::new();
        for (case, fork, head_seq, head_hash, created_at, updated_at, merged_at) in heads {
            out.insert(
                case,
                Branch {
                    fork_seq: version_u64(fork)?,
                    head_seq: version_u64(head_seq)?,
                    head_hash,
                    commits: Vec::new(),
                    records: Vec::new(),
                    keys: Vec::new(),
                    created_at,
                    updated_at,
                    merged_at,
                },
            );
        }
        for (case, body) in commits {
            if let Some(b) = out.get_mut(&case) {
                b.commits.push(body);
            }
        }
        for r in records {
            if let Some(b) = out.get_mut(&r.case_id) {
                b.records.push(
                    RecordDb {
                        id: r.id,
                        case_id: r.case_id.clone(),
                        kind: r.kind,
                        version: r.version,
                        key_epoch: r.key_epoch,
                        author_id: r.author_id,
                        envelope: r.envelope,
                        seq: 0,
                        created_at: r.created_at,
                        updated_at: r.updated_at,
                    }
                    .into_record()?,
                );
            }
        }
        for k in keys {
            if let Some(b) = out.get_mut(&k.case_id) {
                b.keys.push(key_row(KeyDb {
                    case_id: k.case_id.clone(),
                    recipient_id: k.recipient_id,
                    key_epoch: k.key_epoch,
                    wrapped: k.wrapped,
                    created_at: k.created_at,
                    escrow_gen: k.escrow_gen,
                    keys_digest: k.keys_digest,
                })?);
            }
        }
        out.into_iter()
            .map(|(id, b)| Ok((CaseId::from_uuid(uuid_from(&id)?), b)))
            .collect()
    }

    /// Stores each of `branches` (all of one society) in one transaction: made, or replacing the
    /// branch it extends if that is still the one held (a compare-and-swap on `replaces`). A branch
    /// whose case moved to another society, or whose held branch changed since the caller read it,
    /// is answered with a conflict and nothing of it is written; the others are stored. This
    /// server's own chain of the case is not touched.
    pub fn store_branches(
        &self,
        branches: &[IncomingBranch],
        now: Millis,
    ) -> Result<Vec<Result<()>>> {
        if branches.is_empty() {
            return Ok(Vec::new());
        }
        for b in branches {
            if b.commits.is_empty() || b.commits.iter().any(|(n, _)| *n <= b.fork_seq) {
                return Err(StorageError::Invalid(
                    "a branch's commits come after its fork".into(),
                ));
            }
        }
        let out: Vec<std::result::Result<(), &'static str>> = write_tx!(self, conn => {
            let mut out = Vec::with_capacity(branches.len());
            for b in branches {
                let case = id_bytes(b.case.as_uuid());
                let soc = id_bytes(b.society.as_uuid());
                let of_society: i64 = cases::table
                    .filter(cases::id.eq(&case))
                    .filter(cases::society_id.eq(&soc))
                    .count()
                    .get_result(conn)?;
                // The branch held (merged or not): a merged one is replaced by a new conflict.
                let held: Option<Vec<u8>> = case_branches::table
                    .filter(case_branches::case_id.eq(&case))
                    .select(case_branches::head_hash)
                    .get_result(conn)
                    .optional()?;
                if of_society != 1 {
                    out.push(Err("the case is not of this society here"));
                    continue;
                }
                if held != b.replaces {
                    out.push(Err(
                        "the case's conflict changed on this server since the run was checked: check it again",
                    ));
                    continue;
                }
                let head_seq = b.commits.last().map_or(0, |(n, _)| *n);
                if held.is_some() {
                    clear_branch!(conn, &case);
                    diesel::update(case_branches::table.filter(case_branches::case_id.eq(&case)))
                        .set((
                            case_branches::fork_seq.eq(version_i64(b.fork_seq)?),
                            case_branches::head_seq.eq(version_i64(head_seq)?),
                            case_branches::head_hash.eq(&b.head_hash),
                            case_branches::updated_at.eq(now),
                            case_branches::merged_at.eq(None::<i64>),
                        ))
                        .execute(conn)?;
                } else {
                    diesel::insert_into(case_branches::table)
                        .values((
                            case_branches::case_id.eq(&case),
                            case_branches::fork_seq.eq(version_i64(b.fork_seq)?),
                            case_branches::head_seq.eq(version_i64(head_seq)?),
                            case_branches::head_hash.eq(&b.head_hash),
                            case_branches::created_at.eq(now),
                            case_branches::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                }
                let commits = b
                    .commits
                    .iter()
                    .map(|(n, body)| {
                        Ok((
                            case_branch_commits::case_id.eq(case.clone()),
                            case_branch_commits::seq.eq(version_i64(*n)?),
                            case_branch_commits::body.eq(body.clone()),
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                diesel::insert_into(case_branch_commits::table)
                    .values(&commits)
                    .execute(conn)
                    .map_err(|e| StorageError::from_insert(e, "a branch commit is listed twice"))?;
                let records = b
                    .records
                    .iter()
                    .map(|r| {
                        Ok(BranchRecordDb {
                            case_id: case.clone(),
                            id: id_bytes(r.id.as_uuid()),
                            kind: r.kind,
                            version: version_i64(r.version)?,
                            key_epoch: epoch_i32(r.key_epoch)?,
                            author_id: id_bytes(r.author_id.as_uuid()),
                            envelope: r.envelope.clone(),
                            created_at: r.created_at,
                            updated_at: r.updated_at,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                insert_fixed!(conn, case_branch_records::table, &records, "a branch record is listed twice");
                let keys = b
                    .keys
                    .iter()
                    .map(|k| {
                        Ok(BranchKeyDb {
                            case_id: case.clone(),
                            recipient_id: id_bytes(&k.recipient_id),
                            key_epoch: epoch_i32(k.key_epoch)?,
                            escrow_gen: i32::try_from(k.escrow_gen).map_err(|_| {
                                StorageError::Invalid("escrow generation out of range".into())
                            })?,
                            wrapped: k.wrapped.clone(),
                            keys_digest: k.keys_digest.clone(),
                            created_at: k.created_at,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                insert_fixed!(conn, case_branch_keys::table, &keys, "a branch key is listed twice");
                out.push(Ok(()));
            }
            Ok(out)
        })?;
        Ok(out
            .into_iter()
            .map(|r| r.map_err(StorageError::Conflict))
            .collect())
    }
}

/// A case in conflict that a member holds ([`Store::conflicts_held`]).
#[derive(Clone, Debug)]
pub struct HeldConflict {
    pub case: CaseRow,
    pub fork_seq: u64,
    pub their_version: u64,
    pub kept_at: Millis,
}

impl Store {
    /// Whether `member` holds a key of `case`'s current epoch (one point lookup).
    pub fn holds_case(&self, member: MemberId, case: CaseId) -> Result<bool> {
        let me = id_bytes(member.as_uuid());
        let id = id_bytes(case.as_uuid());
        let n: i64 = read!(self, conn => {
            cases::table
                .inner_join(
                    case_keys::table.on(case_keys::case_id
                        .eq(cases::id)
                        .and(case_keys::key_epoch.eq(cases::key_epoch))),
                )
                .filter(cases::id.eq(&id))
                .filter(case_keys::case_id.eq(&id))
                .filter(case_keys::recipient_id.eq(&me))
                .count()
                .get_result(conn)?
        });
        Ok(n > 0)
    }

    /// The cases in conflict that `member` holds a key of the current epoch for, in id order: one
    /// read (the key table's primary key, then the branch by case id).
    pub fn conflicts_held(&self, member: MemberId) -> Result<Vec<HeldConflict>> {
        let me = id_bytes(member.as_uuid());
        let rows: Vec<(CaseDb, i64, i64, i64)> = read!(self, conn => {
            cases::table
                .inner_join(
                    case_keys::table.on(case_keys::case_id
                        .eq(cases::id)
                        .and(case_keys::key_epoch.eq(cases::key_epoch))),
                )
                .inner_join(case_branches::table.on(case_branches::case_id.eq(cases::id)))
                .filter(case_keys::recipient_id.eq(&me))
                .filter(case_branches::merged_at.is_null())
                .order(cases::id)
                .select((
                    CaseDb::as_select(),
                    case_branches::fork_seq,
                    case_branches::head_seq,
                    case_branches::created_at,
                ))
                .load(conn)?
        });
        rows.into_iter()
            .map(|(row, fork, head, kept_at)| {
                Ok(HeldConflict {
                    case: row.into_case()?,
                    fork_seq: version_u64(fork)?,
                    their_version: version_u64(head)?,
                    kept_at,
                })
            })
            .collect()
    }
}

impl Store {
    /// Stores a merge commit of `case` written here by `member` (who must hold it), on this
    /// server's head `parent`, resolving the conflict whose kept branch has head `branch_head`, in
    /// one transaction: the head and the branch are compare-and-swapped (a moved head, or a branch
    /// extended or merged meanwhile, is a conflict and nothing is written), the records the merge
    /// brings are stored (new ones made, others replaced where the stored version is older), the
    /// commit numbered in the society's sequence, and the branch marked merged (its commits stay:
    /// the merge names its head).
    #[allow(clippy::too_many_arguments)] // one transaction's inputs, each checked by the caller
    pub fn write_merge(
        &self,
        member: MemberId,
        case: CaseId,
        parent: &[u8],
        commit: &CommitWrite,
        writes: &[RecordWrite],
        branch_head: &[u8],
        now: Millis,
    ) -> Result<CaseRow> {
        let n = i64::try_from(writes.len())
            .map_err(|_| StorageError::Invalid("too many records".into()))?;
        let seq_no = version_i64(commit.seq)?;
        let author = id_bytes(member.as_uuid());
        let row = write_tx!(self, conn => {
            let (row, _) = case_for_member!(conn, member, case).ok_or(StorageError::NotFound)?;
            if row.version != seq_no - 1 || row.head_hash.as_deref() != Some(parent) {
                return Err(StorageError::Conflict(
                    "the case was changed by someone else since you opened it: reload it and retry",
                ));
            }
            let resolved = diesel::update(
                case_branches::table
                    .filter(case_branches::case_id.eq(&row.id))
                    .filter(case_branches::head_hash.eq(branch_head))
                    .filter(case_branches::merged_at.is_null()),
            )
            .set(case_branches::merged_at.eq(now))
            .execute(conn)?;
            if resolved != 1 {
                return Err(StorageError::Conflict(
                    "the other version of the case changed, or the conflict was merged, since you \
                     opened it: reload it and retry",
                ));
            }
            let mut seq = next_seq!(conn, &row.society_id, n + 1);
            for w in writes {
                let version = version_i64(w.version)?;
                let id = id_bytes(w.id.as_uuid());
                let updated = diesel::update(
                    records::table
                        .filter(records::id.eq(&id))
                        .filter(records::case_id.eq(&row.id))
                        .filter(records::kind.eq(w.kind))
                        .filter(records::version.lt(version)),
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
                if updated == 0 {
                    diesel::insert_into(records::table)
                        .values(&RecordDb {
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
                        })
                        .execute(conn)
                        .map_err(|e| {
                            StorageError::from_insert(
                                e,
                                "a record of the merge is held at the same or a later version",
                            )
                        })?;
                }
                seq += 1;
            }
            let updated = store_commit_as_head!(conn, row, seq_no, commit, seq, now);
            Ok(updated)
        })?;
        row.into_case()
    }
}
