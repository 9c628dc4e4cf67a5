//! Storing what another server sent of a case (`docs/sync.md`, "Push"): the commits that continue
//! this server's head, with the records and keys they bring, in one transaction that re-checks the
//! head, as a write of this server's own does.

use super::*;
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
}

/// Stores one [`IncomingRun`] `$run` with `$conn` in a transaction already open (see
/// [`Store::apply_runs`]); yields the updated case row.
macro_rules! apply_one {
    ($conn:ident, $run:expr, $now:expr) => {{
        let run: &IncomingRun = $run;
        let now: Millis = $now;
        let Some(head) = run.commits.last() else {
            return Err(StorageError::Invalid("a run without commits".into()));
        };
        let case = id_bytes(run.case.as_uuid());
        let soc = id_bytes(run.society.as_uuid());
        let n = i64::try_from(run.records.len() + run.commits.len())
            .map_err(|_| StorageError::Invalid("too many records".into()))?;
        let head_no = version_i64(head.seq)?;
        let epoch = epoch_i32(run.key_epoch)?;
        let moved = StorageError::Conflict(
            "the case changed on this server since the run was checked: check it again",
        );
        let mut seq = next_seq!($conn, &soc, n);
        let stored: Option<CaseDb> = cases::table
            .filter(cases::id.eq(&case))
            .select(CaseDb::as_select())
            .get_result($conn)
            .optional()?;
        match (&run.on, &stored) {
            (None, None) => {
                diesel::insert_into(cases::table)
                    .values(&CaseDb {
                        id: case.clone(),
                        society_id: soc.clone(),
                        status: head.status.as_str().to_owned(),
                        key_epoch: epoch,
                        version: 0,
                        seq,
                        created_by: id_bytes(run.created_by.as_uuid()),
                        created_at: run.created_at,
                        updated_at: now,
                        head_hash: None,
                    })
                    .execute($conn)?;
            }
            (Some((v, h)), Some(s))
                if s.version == version_i64(*v)?
                    && s.head_hash.as_deref() == Some(h.as_slice())
                    && s.society_id == soc => {}
            _ => return Err(moved),
        }
        // The versions held, in one read.
        let held: HashMap<Vec<u8>, i64> = records::table
            .filter(records::case_id.eq(&case))
            .select((records::id, records::version))
            .load::<(Vec<u8>, i64)>($conn)?
            .into_iter()
            .collect();
        let mut fresh: Vec<RecordDb> = Vec::new();
        for r in &run.records {
            let id = id_bytes(r.id.as_uuid());
            let version = version_i64(r.version)?;
            let held = held.get(&id).copied();
            let rec = RecordDb {
                id,
                case_id: case.clone(),
                kind: r.kind,
                version,
                key_epoch: epoch_i32(r.key_epoch)?,
                author_id: id_bytes(r.author_id.as_uuid()),
                envelope: r.envelope.clone(),
                seq,
                created_at: r.created_at,
                updated_at: r.updated_at,
            };
            match held {
                None => fresh.push(rec),
                Some(v) if v < version => {
                    diesel::update(
                        records::table
                            .filter(records::case_id.eq(&case))
                            .filter(records::id.eq(&rec.id)),
                    )
                    .set((
                        records::kind.eq(rec.kind),
                        records::version.eq(rec.version),
                        records::key_epoch.eq(rec.key_epoch),
                        records::author_id.eq(&rec.author_id),
                        records::envelope.eq(&rec.envelope),
                        records::seq.eq(rec.seq),
                        records::updated_at.eq(rec.updated_at),
                    ))
                    .execute($conn)?;
                }
                Some(_) => continue,
            }
            seq += 1;
        }
        if !fresh.is_empty() {
            diesel::insert_into(records::table)
                .values(&fresh)
                .execute($conn)?;
        }
        let keys: Vec<_> = run
            .keys
            .iter()
            .map(|k| {
                Ok((
                    case_keys::case_id.eq(case.clone()),
                    case_keys::recipient_id.eq(id_bytes(&k.recipient_id)),
                    case_keys::key_epoch.eq(epoch_i32(k.key_epoch)?),
                    case_keys::wrapped.eq(k.wrapped.clone()),
                    case_keys::created_at.eq(k.created_at),
                    case_keys::escrow_gen.eq(i32::try_from(k.escrow_gen).map_err(|_| {
                        StorageError::Invalid("escrow generation out of range".into())
                    })?),
                    case_keys::keys_digest.eq(k.keys_digest.clone()),
                ))
            })
            .collect::<Result<_>>()?;
        if !keys.is_empty() {
            diesel::insert_into(case_keys::table)
                .values(&keys)
                .on_conflict_do_nothing()
                .execute($conn)?;
        }
        // Each commit its own number, in chain order; the head's is the case row's.
        let mut head_seq = seq;
        for c in &run.commits {
            head_seq = seq;
            diesel::insert_into(case_commits::table)
                .values(&CommitDb {
                    case_id: case.clone(),
                    seq: version_i64(c.seq)?,
                    body: c.body.clone(),
                    created_at: now,
                    society_id: soc.clone(),
                    change_seq: seq,
                })
                .execute($conn)
                .map_err(|_| {
                    StorageError::Conflict("this commit number is taken: check the case again")
                })?;
            seq += 1;
        }
        let updated: CaseDb = diesel::update(cases::table.filter(cases::id.eq(&case)))
            .set((
                cases::version.eq(head_no),
                cases::head_hash.eq(Some(head.hash.clone())),
                cases::status.eq(head.status.as_str()),
                cases::key_epoch.eq(epoch),
                cases::seq.eq(head_seq),
                cases::updated_at.eq(now),
            ))
            .returning(CaseDb::as_returning())
            .get_result($conn)?;
        Ok(updated)
    }};
}

impl Store {
    /// Stores an [`IncomingRun`]: [`Store::apply_runs`] of one.
    pub fn apply_run(&self, run: &IncomingRun, now: Millis) -> Result<CaseRow> {
        self.apply_runs(std::slice::from_ref(run), now)?
            .pop()
            .unwrap_or_else(|| Err(StorageError::Invalid("no run".into())))
    }

    /// Stores each [`IncomingRun`] of a push: the case row (made, or moved to the new head if it
    /// is still at the run's `on`), the commits numbered in the society's sequence in chain order,
    /// the records and the missing keys. All in one transaction, each run in a savepoint of its
    /// own: a run whose head moved since the caller read it (a conflict) or that does not fit
    /// (invalid) is rolled back alone and answered with its error, and the others are stored. One
    /// transaction for the batch, not one per case, since on PostgreSQL each commit waits for its
    /// write-ahead log to reach the disk.
    pub fn apply_runs(&self, runs: &[IncomingRun], now: Millis) -> Result<Vec<Result<CaseRow>>> {
        let rows: Vec<Result<CaseDb>> = write_tx!(self, conn => {
            let mut out = Vec::with_capacity(runs.len());
            for run in runs {
                match conn.transaction(|conn| -> Result<CaseDb> { apply_one!(conn, run, now) }) {
                    Err(e @ (StorageError::Conflict(_) | StorageError::Invalid(_))) => out.push(Err(e)),
                    other => out.push(Ok(other?)),
                }
            }
            Ok(out)
        })?;
        Ok(rows
            .into_iter()
            .map(|r| r.and_then(CaseDb::into_case))
            .collect())
    }
}
