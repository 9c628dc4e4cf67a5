//! What a push of changes from another server reads and keeps (`docs/sync.md`, "Push"): the state
//! of the cases it names, and the answer under its idempotency key.

use super::*;
use crate::models::RecordDb;
use rfl_domain::CaseId;

/// How long an answer is kept under its idempotency key.
pub const PUSH_ANSWER_MS: Millis = 24 * 60 * 60 * 1000;

/// A case as this server holds it, for checking what another server sent of it.
#[derive(Clone, Debug)]
pub struct CaseState {
    pub row: CaseRow,
    /// Every commit, by number: (number, bytes).
    pub commits: Vec<(u64, Vec<u8>)>,
    pub records: Vec<RecordRow>,
    pub keys: Vec<CaseKeyRow>,
}

/// An answer kept under an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushAnswer {
    /// The digest of the request it answered.
    pub request_digest: Vec<u8>,
    pub answer: Vec<u8>,
}

impl Store {
    /// The cases of `ids` this server holds, each with its commits, records and wrapped keys, read
    /// in one snapshot with four reads whatever the number of cases.
    pub fn case_states(&self, ids: &[CaseId]) -> Result<HashMap<CaseId, CaseState>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Vec<u8>> = ids.iter().map(|i| id_bytes(i.as_uuid())).collect();
        type Read = (
            Vec<CaseDb>,
            Vec<(Vec<u8>, i64, Vec<u8>)>,
            Vec<RecordDb>,
            Vec<KeyDb>,
        );
        let (rows, commits, records, keys): Read = snapshot!(self, conn => {
            let rows: Vec<CaseDb> = cases::table
                .filter(cases::id.eq_any(&ids))
                .select(CaseDb::as_select())
                .load(conn)?;
            let commits = case_commits::table
                .filter(case_commits::case_id.eq_any(&ids))
                .order((case_commits::case_id, case_commits::seq))
                .select((case_commits::case_id, case_commits::seq, case_commits::body))
                .load(conn)?;
            let records = records::table
                .filter(records::case_id.eq_any(&ids))
                .order((records::case_id, records::id))
                .select(RecordDb::as_select())
                .load(conn)?;
            let keys = case_keys::table
                .filter(case_keys::case_id.eq_any(&ids))
                .select(KeyDb::as_select())
                .load(conn)?;
            Ok((rows, commits, records, keys))
        })?;
        let mut out: HashMap<Vec<u8>, CaseState> = HashMap::new();
        for row in rows {
            let id = row.id.clone();
            out.insert(
                id,
                CaseState {
                    row: row.into_case()?,
                    commits: Vec::new(),
                    records: Vec::new(),
                    keys: Vec::new(),
                },
            );
        }
        for (case, seq, body) in commits {
            if let Some(s) = out.get_mut(&case) {
                s.commits.push((version_u64(seq)?, body));
            }
        }
        for r in records {
            if let Some(s) = out.get_mut(&r.case_id) {
                s.records.push(r.into_record()?);
            }
        }
        for k in keys {
            let case = k.case_id.clone();
            if let Some(s) = out.get_mut(&case) {
                s.keys.push(key_row(k)?);
            }
        }
        Ok(out.into_values().map(|s| (s.row.id, s)).collect())
    }

    /// The answer kept for `society`'s push under `key`, unless older than [`PUSH_ANSWER_MS`].
    pub fn push_answer(
        &self,
        society: SocietyId,
        key: &str,
        now: Millis,
    ) -> Result<Option<PushAnswer>> {
        let soc = id_bytes(society.as_uuid());
        let found: Option<(Vec<u8>, Vec<u8>)> = read!(self, conn => {
            sync_pushes::table
                .filter(sync_pushes::society_id.eq(&soc))
                .filter(sync_pushes::idempotency_key.eq(key))
                .filter(sync_pushes::created_at.gt(now - PUSH_ANSWER_MS))
                .select((sync_pushes::request_digest, sync_pushes::answer))
                .get_result(conn)
                .optional()?
        });
        Ok(found.map(|(request_digest, answer)| PushAnswer {
            request_digest,
            answer,
        }))
    }

    /// Keeps `answer` for `society`'s push under `key` (replacing an expired one; the first of two
    /// concurrent pushes under one key keeps its answer), and clears the society's expired ones.
    pub fn put_push_answer(
        &self,
        society: SocietyId,
        key: &str,
        answer: &PushAnswer,
        now: Millis,
    ) -> Result<()> {
        let soc = id_bytes(society.as_uuid());
        write_tx!(self, conn => {
            diesel::delete(
                sync_pushes::table
                    .filter(sync_pushes::society_id.eq(&soc))
                    .filter(sync_pushes::created_at.le(now - PUSH_ANSWER_MS)),
            )
            .execute(conn)?;
            diesel::insert_into(sync_pushes::table)
                .values((
                    sync_pushes::society_id.eq(&soc),
                    sync_pushes::idempotency_key.eq(key),
                    sync_pushes::request_digest.eq(&answer.request_digest),
                    sync_pushes::answer.eq(&answer.answer),
                    sync_pushes::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            Ok(())
        })
    }

    /// The checkpoint this server keeps of `society`'s changes from the instance `source`: it
    /// holds every one numbered up to it there (none: it has been told of none).
    pub fn sync_checkpoint(&self, society: SocietyId, source: Uuid) -> Result<Option<u64>> {
        let soc = id_bytes(society.as_uuid());
        let src = id_bytes(&source);
        let seq: Option<i64> = read!(self, conn => {
            sync_checkpoints::table
                .filter(sync_checkpoints::society_id.eq(&soc))
                .filter(sync_checkpoints::source_instance.eq(&src))
                .select(sync_checkpoints::seq)
                .get_result(conn)
                .optional()?
        });
        seq.map(|s| {
            u64::try_from(s).map_err(|_| StorageError::Invalid("a negative checkpoint".into()))
        })
        .transpose()
    }

    /// Sets the checkpoint of `society`'s changes from `source` to `seq`, earlier or later than
    /// the one held (a sender restored from a backup numbers on from an earlier change).
    pub fn put_sync_checkpoint(
        &self,
        society: SocietyId,
        source: Uuid,
        seq: u64,
        now: Millis,
    ) -> Result<()> {
        let soc = id_bytes(society.as_uuid());
        let src = id_bytes(&source);
        let seq = i64::try_from(seq)
            .map_err(|_| StorageError::Invalid("a checkpoint out of range".into()))?;
        write_tx!(self, conn => {
            diesel::insert_into(sync_checkpoints::table)
                .values((
                    sync_checkpoints::society_id.eq(&soc),
                    sync_checkpoints::source_instance.eq(&src),
                    sync_checkpoints::seq.eq(seq),
                    sync_checkpoints::updated_at.eq(now),
                ))
                .on_conflict((sync_checkpoints::society_id, sync_checkpoints::source_instance))
                .do_update()
                .set((
                    sync_checkpoints::seq.eq(seq),
                    sync_checkpoints::updated_at.eq(now),
                ))
                .execute(conn)?;
            Ok(())
        })
    }
}
