//! Writing a case: one signed commit with the record versions and keys it writes, in one transaction.

use super::*;

impl Store {
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
            let mut seq = next_seq!(conn, &row.society_id, n + 1);
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
            let updated = store_commit_as_head!(conn, row, seq_no, commit, seq, now);
            Ok(updated)
        })?;
        row.into_case()
    }
}
