//! The other side's merge of a case in conflict made this server's chain (`docs/sync.md`,
//! "Conflicts and merges"): its version becomes the case's, and this server's own version becomes
//! the kept branch, marked merged.

use super::branch::{BranchKeyDb, BranchRecordDb};
use super::*;
use crate::{epoch_i32, version_i64, CommitWrite};
use rfl_domain::CaseId;

/// The other side's merge of a case in conflict, checked by the caller: its version, from the
/// commit after the fork to a head at or after a merge commit whose second parent is this
/// server's head, becomes this server's chain of the case, and this server's version becomes the
/// kept branch, marked merged (its commits stay: the merge names its head).
#[derive(Clone, Debug)]
pub struct AdoptedMerge {
    pub case: CaseId,
    pub society: SocietyId,
    /// This server's head when the caller checked (number and hash): compare-and-swapped.
    pub on: (u64, Vec<u8>),
    /// The head of the branch kept of the case when the caller checked (merged or not; none: no
    /// branch): compare-and-swapped.
    pub branch_head: Option<Vec<u8>>,
    pub fork_seq: u64,
    /// The key epoch of the commit both versions share: escrow rows of epochs up to it are the
    /// same key on both sides, and this server's stay (they are of its current escrow key); the
    /// later ones are the merged version's.
    pub fork_epoch: u32,
    /// The other version's commits after the fork, oldest first; the last is the new head.
    pub commits: Vec<CommitWrite>,
    /// The new head's key epoch.
    pub key_epoch: u32,
    /// Every record the new head lists.
    pub records: Vec<RecordRow>,
    /// The other version's wrapped keys: its members' rows replace this server's, and so do its
    /// escrow rows of the epochs after `fork_epoch`.
    pub keys: Vec<CaseKeyRow>,
}

impl Store {
    /// Stores an [`AdoptedMerge`] in one transaction: the case row and the kept branch are
    /// compare-and-swapped (a moved head or branch is a conflict and nothing is written); this
    /// server's commits after the fork, its records and keys become the kept branch, marked
    /// merged; the other version's commits are numbered in the society's sequence in chain order
    /// and become the case's chain after the fork; the records become exactly those the new head
    /// lists; the keys as [`AdoptedMerge::keys`] says.
    pub fn adopt_merge(&self, m: &AdoptedMerge, now: Millis) -> Result<CaseRow> {
        let head = m
            .commits
            .last()
            .ok_or_else(|| StorageError::Invalid("a merge without commits".into()))?;
        let case = id_bytes(m.case.as_uuid());
        let soc = id_bytes(m.society.as_uuid());
        let fork = version_i64(m.fork_seq)?;
        let on = version_i64(m.on.0)?;
        let moved = StorageError::Conflict(
            "the case or its conflict changed on this server since the merge was checked: check it again",
        );
        let row: CaseDb = write_tx!(self, conn => {
            let current: Option<CaseDb> = cases::table
                .filter(cases::id.eq(&case))
                .filter(cases::society_id.eq(&soc))
                .select(CaseDb::as_select())
                .get_result(conn)
                .optional()?;
            let Some(current) = current else {
                return Err(StorageError::NotFound);
            };
            if current.version != on || current.head_hash.as_deref() != Some(m.on.1.as_slice()) {
                return Err(moved);
            }
            let branch_held: Option<Vec<u8>> = case_branches::table
                .filter(case_branches::case_id.eq(&case))
                .select(case_branches::head_hash)
                .get_result(conn)
                .optional()?;
            if branch_held != m.branch_head {
                return Err(moved);
            }
            // This server's version after the fork becomes the kept branch, merged.
            let own_commits: Vec<(i64, Vec<u8>)> = case_commits::table
                .filter(case_commits::case_id.eq(&case))
                .filter(case_commits::seq.gt(fork))
                .order(case_commits::seq)
                .select((case_commits::seq, case_commits::body))
                .load(conn)?;
            let own_records: Vec<RecordDb> = records::table
                .filter(records::case_id.eq(&case))
                .select(RecordDb::as_select())
                .load(conn)?;
            let own_keys: Vec<KeyDb> = case_keys::table
                .filter(case_keys::case_id.eq(&case))
                .select(KeyDb::as_select())
                .load(conn)?;
            clear_branch!(conn, &case);
            if branch_held.is_some() {
                diesel::update(case_branches::table.filter(case_branches::case_id.eq(&case)))
                    .set((
                        case_branches::fork_seq.eq(fork),
                        case_branches::head_seq.eq(on),
                        case_branches::head_hash.eq(&m.on.1),
                        case_branches::updated_at.eq(now),
                        case_branches::merged_at.eq(now),
                    ))
                    .execute(conn)?;
            } else {
                diesel::insert_into(case_branches::table)
                    .values((
                        case_branches::case_id.eq(&case),
                        case_branches::fork_seq.eq(fork),
                        case_branches::head_seq.eq(on),
                        case_branches::head_hash.eq(&m.on.1),
                        case_branches::created_at.eq(now),
                        case_branches::updated_at.eq(now),
                        case_branches::merged_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            let branch_commits: Vec<_> = own_commits
                .iter()
                .map(|(n, body)| {
                    (
                        case_branch_commits::case_id.eq(case.clone()),
                        case_branch_commits::seq.eq(*n),
                        case_branch_commits::body.eq(body.clone()),
                    )
                })
                .collect();
            diesel::insert_into(case_branch_commits::table)
                .values(&branch_commits)
                .execute(conn)?;
            let branch_records: Vec<BranchRecordDb> = own_records
                .into_iter()
                .map(|r| BranchRecordDb {
                    case_id: r.case_id,
                    id: r.id,
                    kind: r.kind,
                    version: r.version,
                    key_epoch: r.key_epoch,
                    author_id: r.author_id,
                    envelope: r.envelope,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                })
                .collect();
            insert_fixed!(conn, case_branch_records::table, &branch_records, "a branch record is listed twice");
            let fork_epoch = epoch_i32(m.fork_epoch)?;
            // This server's escrow rows of the epochs both versions share stay.
            let escrow_epochs: HashSet<i32> = own_keys
                .iter()
                .filter(|k| k.recipient_id == soc && k.key_epoch <= fork_epoch)
                .map(|k| k.key_epoch)
                .collect();
            let branch_keys: Vec<BranchKeyDb> = own_keys
                .into_iter()
                .map(|k| BranchKeyDb {
                    case_id: k.case_id,
                    recipient_id: k.recipient_id,
                    key_epoch: k.key_epoch,
                    escrow_gen: k.escrow_gen,
                    wrapped: k.wrapped,
                    keys_digest: k.keys_digest,
                    created_at: k.created_at,
                })
                .collect();
            insert_fixed!(conn, case_branch_keys::table, &branch_keys, "a branch key is listed twice");

            // The other version becomes the case's chain after the fork.
            diesel::delete(
                case_commits::table
                    .filter(case_commits::case_id.eq(&case))
                    .filter(case_commits::seq.gt(fork)),
            )
            .execute(conn)?;
            let total = i64::try_from(m.records.len() + m.commits.len())
                .map_err(|_| StorageError::Invalid("too many records".into()))?;
            let mut seq = next_seq!(conn, &soc, total);
            diesel::delete(records::table.filter(records::case_id.eq(&case))).execute(conn)?;
            let records = m
                .records
                .iter()
                .map(|r| {
                    let rec = RecordDb {
                        id: id_bytes(r.id.as_uuid()),
                        case_id: case.clone(),
                        kind: r.kind,
                        version: version_i64(r.version)?,
                        key_epoch: epoch_i32(r.key_epoch)?,
                        author_id: id_bytes(r.author_id.as_uuid()),
                        envelope: r.envelope.clone(),
                        seq,
                        created_at: r.created_at,
                        updated_at: r.updated_at,
                    };
                    seq += 1;
                    Ok(rec)
                })
                .collect::<Result<Vec<_>>>()?;
            insert_fixed!(conn, records::table, &records, "a record is listed twice");
            let commits = m
                .commits
                .iter()
                .map(|c| {
                    let row = crate::models::CommitDb {
                        case_id: case.clone(),
                        seq: version_i64(c.seq)?,
                        body: c.body.clone(),
                        created_at: now,
                        society_id: soc.clone(),
                        change_seq: seq,
                    };
                    seq += 1;
                    Ok(row)
                })
                .collect::<Result<Vec<_>>>()?;
            insert_fixed!(conn, case_commits::table, &commits, "a commit under this number exists");
            // Keys: the other version's members; this server's escrow rows of the shared epochs
            // stay (they are of its current escrow key), the other version's fill the rest.
            diesel::delete(
                case_keys::table
                    .filter(case_keys::case_id.eq(&case))
                    .filter(
                        case_keys::recipient_id
                            .ne(&soc)
                            .or(case_keys::key_epoch.gt(fork_epoch)),
                    ),
            )
            .execute(conn)?;
            let escrow_gen: i32 = societies::table
                .filter(societies::id.eq(&soc))
                .select(societies::escrow_gen)
                .get_result(conn)?;
            let keys = m
                .keys
                .iter()
                .map(|k| {
                    Ok(KeyDb {
                        case_id: case.clone(),
                        recipient_id: id_bytes(&k.recipient_id),
                        key_epoch: epoch_i32(k.key_epoch)?,
                        wrapped: k.wrapped.clone(),
                        created_at: k.created_at,
                        escrow_gen: if k.recipient_id == *m.society.as_uuid() {
                            escrow_gen
                        } else {
                            i32::try_from(k.escrow_gen).map_err(|_| {
                                StorageError::Invalid("escrow generation out of range".into())
                            })?
                        },
                        keys_digest: k.keys_digest.clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|k| k.recipient_id != soc || !escrow_epochs.contains(&k.key_epoch))
                .collect::<Vec<_>>();
            insert_fixed!(conn, case_keys::table, &keys, "a key for this recipient exists");
            let updated: CaseDb = diesel::update(cases::table.filter(cases::id.eq(&case)))
                .set((
                    cases::version.eq(version_i64(head.seq)?),
                    cases::head_hash.eq(Some(head.hash.clone())),
                    cases::status.eq(head.status.as_str()),
                    cases::key_epoch.eq(epoch_i32(m.key_epoch)?),
                    cases::seq.eq(seq - 1),
                    cases::updated_at.eq(now),
                ))
                .returning(CaseDb::as_returning())
                .get_result(conn)?;
            Ok(updated)
        })?;
        row.into_case()
    }
}
