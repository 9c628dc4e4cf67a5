//! Storing what another server sent of its cases (`docs/sync.md`, "Push"): the commits that
//! continue this server's heads, with the records and keys they bring, in one transaction that
//! re-checks each head, as a write of this server's own does.

use super::*;
use crate::bulk::Bulk;
use crate::models::CommitDb;
use crate::{epoch_i32, version_i64, CommitWrite};
use rfl_domain::{CaseId, MemberId};

/// A run of one case's commits from another server, checked by the caller before it comes here:
/// parsed and linked (`rfl_crypto::CommitRun`), each signed by its certified author, landing on
/// `on` (`Landing::Extends`), the head's record list and holders matching what is stored after it.
#[derive(Clone, Debug)]
pub struct IncomingRun {
    pub case: CaseId,
    pub society: SocietyId,
    /// This server's head of the case when the run was checked (number and hash), or none for a
    /// case new here. The write is a compare-and-swap on it: if the head moved, nothing is written.
    pub on: Option<(u64, Vec<u8>)>,
    /// The commits this server lacks, oldest first; the last is the new head.
    pub commits: Vec<CommitWrite>,
    /// The head's key epoch.
    pub key_epoch: u32,
    /// For a case new here: who made it and when (its first commit's author and time).
    pub created_by: MemberId,
    pub created_at: Millis,
    /// Records as the sender holds them: each is stored unless this server holds the same or a
    /// later version already.
    pub records: Vec<RecordRow>,
    /// The case's wrapped keys as the sender holds them: those this server lacks are added.
    pub keys: Vec<CaseKeyRow>,
    /// The head of the kept branch of the case that a merge commit of the run names as its second
    /// parent: that conflict is resolved by the run, and its branch is marked merged.
    pub resolves: Option<Vec<u8>>,
}

/// One run, ready to store: its case's new row and what goes with it.
struct Prepared {
    row: CaseDb,
    /// The stored head it continues (none: a case new here).
    on: Option<(i64, Vec<u8>)>,
    commits: Vec<CommitDb>,
    fresh: Vec<RecordDb>,
    newer: Vec<RecordDb>,
    keys: Vec<KeyDb>,
}

impl Store {
    /// Stores an [`IncomingRun`]: [`Store::apply_runs`] of one.
    pub fn apply_run(&self, run: &IncomingRun, now: Millis) -> Result<CaseRow> {
        self.apply_runs(std::slice::from_ref(run), now)?
            .pop()
            .unwrap_or_else(|| Err(StorageError::Invalid("no run".into())))
    }

    /// Stores the [`IncomingRun`]s of one push, all of one society, in one transaction: each case
    /// row made, or moved to the run's head if it is still at the run's `on` (a compare-and-swap,
    /// one statement per case); the commits numbered in the society's sequence in chain order; the
    /// records unless the same or a later version is held; the wrapped keys this server lacks. A
    /// run whose head moved since the caller read it is answered with a conflict and nothing of it
    /// is written; the others are stored. Everything but the case rows is written in a few
    /// multi-row statements whatever the number of cases: on PostgreSQL a statement is a round trip.
    pub fn apply_runs(&self, runs: &[IncomingRun], now: Millis) -> Result<Vec<Result<CaseRow>>> {
        let Some(first) = runs.first() else {
            return Ok(Vec::new());
        };
        if runs.iter().any(|r| r.society != first.society) {
            return Err(StorageError::Invalid(
                "a push's cases are of one society".into(),
            ));
        }
        if runs.iter().any(|r| r.commits.is_empty()) {
            return Err(StorageError::Invalid("a run without commits".into()));
        }
        let soc = id_bytes(first.society.as_uuid());
        let ids: Vec<Vec<u8>> = runs.iter().map(|r| id_bytes(r.case.as_uuid())).collect();
        let total = runs
            .iter()
            .map(|r| r.records.len() + r.commits.len())
            .sum::<usize>();
        let total =
            i64::try_from(total).map_err(|_| StorageError::Invalid("too many records".into()))?;
        let stored: Vec<std::result::Result<CaseDb, &'static str>> = write_tx!(self, conn => {
            let mut seq = next_seq!(conn, &soc, total);
            // Escrow rows are stamped with the society's current escrow generation here, as a
            // write of this server's own is: the sender's numbering of its rotations is its own.
            let escrow_gen: i32 = societies::table
                .filter(societies::id.eq(&soc))
                .select(societies::escrow_gen)
                .get_result(conn)?;
            let held: HashMap<(Vec<u8>, Vec<u8>), i64> = records::table
                .filter(records::case_id.eq_any(&ids))
                .select((records::case_id, records::id, records::version))
                .load::<(Vec<u8>, Vec<u8>, i64)>(conn)?
                .into_iter()
                .map(|(c, r, v)| ((c, r), v))
                .collect();
            let held_keys: HashSet<(Vec<u8>, Vec<u8>, i32)> = case_keys::table
                .filter(case_keys::case_id.eq_any(&ids))
                .select((case_keys::case_id, case_keys::recipient_id, case_keys::key_epoch))
                .load::<(Vec<u8>, Vec<u8>, i32)>(conn)?
                .into_iter()
                .collect();
            // Cases new to the caller that were made here meanwhile: checked in one query, and
            // the new ones inserted in multi-row statements below (one statement a case is one
            // round trip a case on PostgreSQL). One made by a concurrent push between the two
            // fails the insert, and the whole push with it (nothing written: send it again).
            let new_ids: Vec<&Vec<u8>> = runs
                .iter()
                .zip(&ids)
                .filter(|(r, _)| r.on.is_none())
                .map(|(_, id)| id)
                .collect();
            let made: HashSet<Vec<u8>> = if new_ids.is_empty() {
                HashSet::new()
            } else {
                cases::table
                    .filter(cases::id.eq_any(&new_ids))
                    .select(cases::id)
                    .load::<Vec<u8>>(conn)?
                    .into_iter()
                    .collect()
            };
            let mut out = Vec::with_capacity(runs.len());
            let (mut commits, mut fresh, mut newer, mut keys) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut new_cases = Vec::new();
            let mut making: HashSet<&Vec<u8>> = HashSet::new();
            let mut sent_keys: HashSet<(Vec<u8>, Vec<u8>, i32)> = HashSet::new();
            for (run, case) in runs.iter().zip(&ids) {
                let p = prepare(run, case, &soc, &held, &mut seq, now)?;
                // The compare-and-swap on the head, or the new case (none made meanwhile).
                let swapped = match &p.on {
                    None if made.contains(case) => 0,
                    // Twice in one push: the second is the first's case, made meanwhile.
                    None if !making.insert(case) => 0,
                    None => {
                        new_cases.push(p.row.clone());
                        1
                    }
                    Some((version, hash)) => diesel::update(
                        cases::table
                            .filter(cases::id.eq(case))
                            .filter(cases::society_id.eq(&soc))
                            .filter(cases::version.eq(version))
                            .filter(cases::head_hash.eq(hash)),
                    )
                    .set((
                        cases::version.eq(p.row.version),
                        cases::head_hash.eq(&p.row.head_hash),
                        cases::status.eq(&p.row.status),
                        cases::key_epoch.eq(p.row.key_epoch),
                        cases::seq.eq(p.row.seq),
                        cases::updated_at.eq(now),
                    ))
                    .execute(conn)?,
                };
                if swapped != 1 {
                    out.push(Err("the case changed on this server since the run was checked: check it again"));
                    continue;
                }
                if let Some(branch_head) = &run.resolves {
                    diesel::update(
                        case_branches::table
                            .filter(case_branches::case_id.eq(case))
                            .filter(case_branches::head_hash.eq(branch_head))
                            .filter(case_branches::merged_at.is_null()),
                    )
                    .set(case_branches::merged_at.eq(now))
                    .execute(conn)?;
                }
                commits.extend(p.commits);
                fresh.extend(p.fresh);
                newer.extend(p.newer);
                for mut k in p.keys {
                    if k.recipient_id == soc {
                        k.escrow_gen = escrow_gen;
                    }
                    let at = (k.case_id.clone(), k.recipient_id.clone(), k.key_epoch);
                    if !held_keys.contains(&at) && sent_keys.insert(at) {
                        keys.push(k);
                    }
                }
                out.push(Ok(p.row));
            }
            conn.bulk_insert(&new_cases, "a case with this id was made meanwhile: send it again")?;
            conn.bulk_insert(&commits, "a commit under this number exists")?;
            conn.bulk_insert(&fresh, "a record with this id exists")?;
            conn.bulk_insert(&keys, "a key for this recipient exists")?;
            for r in &newer {
                diesel::update(
                    records::table
                        .filter(records::case_id.eq(&r.case_id))
                        .filter(records::id.eq(&r.id)),
                )
                .set((
                    records::kind.eq(r.kind),
                    records::version.eq(r.version),
                    records::key_epoch.eq(r.key_epoch),
                    records::author_id.eq(&r.author_id),
                    records::envelope.eq(&r.envelope),
                    records::seq.eq(r.seq),
                    records::updated_at.eq(r.updated_at),
                ))
                .execute(conn)?;
            }
            Ok(out)
        })?;
        Ok(stored
            .into_iter()
            .map(|r| match r {
                Ok(row) => row.into_case(),
                Err(m) => Err(StorageError::Conflict(m)),
            })
            .collect())
    }
}

/// The rows of one run: numbers from `seq` on, in chain order (its records' first, then its
/// commits'; the head's is the case row's); records only where `held` has no version as late.
fn prepare(
    run: &IncomingRun,
    case: &[u8],
    soc: &[u8],
    held: &HashMap<(Vec<u8>, Vec<u8>), i64>,
    seq: &mut i64,
    now: Millis,
) -> Result<Prepared> {
    let head = run
        .commits
        .last()
        .ok_or_else(|| StorageError::Invalid("a run without commits".into()))?;
    let mut fresh = Vec::new();
    let mut newer = Vec::new();
    for r in &run.records {
        let rec = RecordDb {
            id: id_bytes(r.id.as_uuid()),
            case_id: case.to_vec(),
            kind: r.kind,
            version: version_i64(r.version)?,
            key_epoch: epoch_i32(r.key_epoch)?,
            author_id: id_bytes(r.author_id.as_uuid()),
            envelope: r.envelope.clone(),
            seq: *seq,
            created_at: r.created_at,
            updated_at: r.updated_at,
        };
        match held.get(&(case.to_vec(), rec.id.clone())) {
            None => fresh.push(rec),
            Some(v) if *v < rec.version => newer.push(rec),
            Some(_) => continue,
        }
        *seq += 1;
    }
    let mut commits = Vec::with_capacity(run.commits.len());
    for c in &run.commits {
        commits.push(CommitDb {
            case_id: case.to_vec(),
            seq: version_i64(c.seq)?,
            body: c.body.clone(),
            created_at: now,
            society_id: soc.to_vec(),
            change_seq: *seq,
        });
        *seq += 1;
    }
    let head_seq = *seq - 1;
    let keys = run
        .keys
        .iter()
        .map(|k| {
            Ok(KeyDb {
                case_id: case.to_vec(),
                recipient_id: id_bytes(&k.recipient_id),
                key_epoch: epoch_i32(k.key_epoch)?,
                wrapped: k.wrapped.clone(),
                created_at: k.created_at,
                escrow_gen: i32::try_from(k.escrow_gen)
                    .map_err(|_| StorageError::Invalid("escrow generation out of range".into()))?,
                keys_digest: k.keys_digest.clone(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Prepared {
        row: CaseDb {
            id: case.to_vec(),
            society_id: soc.to_vec(),
            status: head.status.as_str().to_owned(),
            key_epoch: epoch_i32(run.key_epoch)?,
            version: version_i64(head.seq)?,
            seq: head_seq,
            created_by: id_bytes(run.created_by.as_uuid()),
            created_at: run.created_at,
            updated_at: now,
            head_hash: Some(head.hash.clone()),
        },
        on: run
            .on
            .as_ref()
            .map(|(v, h)| Ok::<_, StorageError>((version_i64(*v)?, h.clone())))
            .transpose()?,
        commits,
        fresh,
        newer,
        keys,
    })
}
