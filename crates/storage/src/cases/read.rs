//! Reading cases: a member's list, one case whole (in one statement on PostgreSQL), its holders.

use super::*;

impl Store {
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
}
