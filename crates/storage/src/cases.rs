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

mod chunks;
mod commit;
mod read;

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
                society_id: society.clone(),
                change_seq: 0, // the case row's number, set below once the sequence is taken
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
            let mut seq = next_seq!(conn, &society, changes);
            let gen = escrow_gen!(conn, &society, escrow);
            for row in key_rows.iter_mut().filter(|r| r.recipient_id == society) {
                row.escrow_gen = gen;
            }
            for row in case_rows.iter_mut() {
                row.seq = seq;
                seq += 1;
            }
            // A new case's one commit, in the same order as its case row.
            for (commit, row) in commit_rows.iter_mut().zip(&case_rows) {
                commit.change_seq = row.seq;
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
}
