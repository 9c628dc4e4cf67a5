//! PostgreSQL: a case read in one statement.
//!
//! The portable read ([`crate::Store::get_case`] on SQLite) is a read-only transaction of four
//! queries: the reader's standing, the case with the reader's key, its records, its commits. On
//! SQLite those are calls into the same process. On PostgreSQL each is a round trip to another
//! process, six with `BEGIN` and `COMMIT`, and those trips were most of a read's cost
//! (docs/benchmarks.md, run 12). Here the same rows come back from one statement, which PostgreSQL
//! runs on one snapshot: what the transaction guaranteed, without it.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Binary, Bool, Integer, Nullable, SmallInt, Text};
use diesel::PgConnection;
use rfl_domain::{CaseId, MemberId};

use crate::id_bytes;
use crate::members::Standing;
use crate::models::{CaseDb, RecordDb};
use crate::{Result, StorageError};

/// The case row, the reader's wrapped key, the records (record-id order), the commits
/// `(seq, body)` from the first one asked for up to the head, and the reader's wrapped keys of
/// earlier key epochs `(epoch, wrapped)`.
pub(crate) type Found = (
    CaseDb,
    Vec<u8>,
    Vec<RecordDb>,
    Vec<(i64, Vec<u8>)>,
    Vec<(i32, Vec<u8>)>,
);

/// A piece of the statement: SQL, or where a parameter goes.
enum Part {
    Sql(&'static str),
    Member,
    Case,
    /// The first commit asked for (NULL: the head only).
    From,
}

/// Every column may be NULL: no such member (standing), no case this member holds a key for (case,
/// key, records, commits), or a case with no records or commits (arrays).
const STATEMENT: [Part; 19] = [
    Part::Sql(
        "SELECT m.suspended, m.security_stamp, \
           c.id, c.society_id, c.status, c.key_epoch, c.version, c.seq, c.created_by, \
           c.created_at, c.updated_at, c.head_hash, k.wrapped, \
           r.ids, r.kinds, r.versions, r.epochs, r.authors, r.envelopes, r.seqs, r.created, \
           r.updated, h.seqs AS commit_seqs, h.bodies AS commit_bodies, \
           o.epochs AS older_epochs, o.wrapped AS older_wrapped \
         FROM (SELECT 1) AS one \
         LEFT JOIN members m ON m.id = ",
    ),
    Part::Member,
    Part::Sql(" LEFT JOIN cases c ON c.id = "),
    Part::Case,
    Part::Sql(" LEFT JOIN case_keys k ON k.recipient_id = "),
    Part::Member,
    Part::Sql(" AND k.case_id = "),
    Part::Case,
    Part::Sql(
        " AND k.key_epoch = c.key_epoch \
         LEFT JOIN LATERAL ( \
             SELECT array_agg(id) AS ids, array_agg(kind) AS kinds, array_agg(version) AS versions, \
                    array_agg(key_epoch) AS epochs, array_agg(author_id) AS authors, \
                    array_agg(envelope) AS envelopes, array_agg(seq) AS seqs, \
                    array_agg(created_at) AS created, array_agg(updated_at) AS updated \
             FROM records WHERE case_id = ",
    ),
    Part::Case,
    Part::Sql(
        " AND k.case_id IS NOT NULL \
         ) r ON true \
         LEFT JOIN LATERAL ( \
             SELECT array_agg(seq) AS seqs, array_agg(body) AS bodies FROM case_commits \
             WHERE case_id = ",
    ),
    Part::Case,
    Part::Sql(" AND k.case_id IS NOT NULL AND seq >= LEAST(COALESCE("),
    Part::From,
    Part::Sql(
        "::bigint, c.version), c.version) AND seq <= c.version) h ON true \
         LEFT JOIN LATERAL ( \
             SELECT array_agg(key_epoch) AS epochs, array_agg(wrapped) AS wrapped FROM case_keys \
             WHERE recipient_id = ",
    ),
    Part::Member,
    Part::Sql(" AND case_id = "),
    Part::Case,
    // Earlier epochs only: nothing to look for at epoch 1 (most cases).
    Part::Sql(" AND c.key_epoch > 1 AND key_epoch < c.key_epoch AND k.case_id IS NOT NULL) o ON true"),
];

/// [`STATEMENT`] with its parameters, as a query diesel can prepare once per connection and cache (a
/// `sql_query` is never cached, and planning this statement took three times as long as running
/// it). Aggregates see their rows in one order, so the arrays of one lateral line up; the order of
/// records and commits is restored in Rust ([`read_case`]), not asked of `array_agg`.
#[derive(Debug, Clone, diesel::query_builder::QueryId)]
struct ReadCase {
    member: Vec<u8>,
    case: Vec<u8>,
    from: Option<i64>,
}

impl diesel::query_builder::QueryFragment<Pg> for ReadCase {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, Pg>,
    ) -> QueryResult<()> {
        for part in &STATEMENT {
            match part {
                Part::Sql(sql) => out.push_sql(sql),
                Part::Member => out.push_bind_param::<Binary, _>(&self.member)?,
                Part::Case => out.push_bind_param::<Binary, _>(&self.case)?,
                Part::From => out.push_bind_param::<Nullable<BigInt>, _>(&self.from)?,
            }
        }
        Ok(())
    }
}

impl diesel::query_builder::Query for ReadCase {
    type SqlType = diesel::sql_types::Untyped;
}

impl RunQueryDsl<PgConnection> for ReadCase {}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Nullable<Bool>)]
    suspended: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    security_stamp: Option<i64>,
    #[diesel(sql_type = Nullable<Binary>)]
    id: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    society_id: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    key_epoch: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    version: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    seq: Option<i64>,
    #[diesel(sql_type = Nullable<Binary>)]
    created_by: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    created_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    updated_at: Option<i64>,
    #[diesel(sql_type = Nullable<Binary>)]
    head_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Binary>)]
    wrapped: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Array<Binary>>)]
    ids: Option<Vec<Vec<u8>>>,
    #[diesel(sql_type = Nullable<Array<SmallInt>>)]
    kinds: Option<Vec<i16>>,
    #[diesel(sql_type = Nullable<Array<BigInt>>)]
    versions: Option<Vec<i64>>,
    #[diesel(sql_type = Nullable<Array<Integer>>)]
    epochs: Option<Vec<i32>>,
    #[diesel(sql_type = Nullable<Array<Binary>>)]
    authors: Option<Vec<Vec<u8>>>,
    #[diesel(sql_type = Nullable<Array<Binary>>)]
    envelopes: Option<Vec<Vec<u8>>>,
    #[diesel(sql_type = Nullable<Array<BigInt>>)]
    seqs: Option<Vec<i64>>,
    #[diesel(sql_type = Nullable<Array<BigInt>>)]
    created: Option<Vec<i64>>,
    #[diesel(sql_type = Nullable<Array<BigInt>>)]
    updated: Option<Vec<i64>>,
    #[diesel(sql_type = Nullable<Array<BigInt>>)]
    commit_seqs: Option<Vec<i64>>,
    #[diesel(sql_type = Nullable<Array<Binary>>)]
    commit_bodies: Option<Vec<Vec<u8>>>,
    #[diesel(sql_type = Nullable<Array<Integer>>)]
    older_epochs: Option<Vec<i32>>,
    #[diesel(sql_type = Nullable<Array<Binary>>)]
    older_wrapped: Option<Vec<Vec<u8>>>,
}

/// The reader's standing and the case, as [`crate::Store::get_case_with_standing`] returns them
/// before conversion. `from` is the first commit asked for (`None`: the head only).
pub(crate) fn read_case(
    conn: &mut PgConnection,
    member: MemberId,
    case: CaseId,
    from: Option<i64>,
) -> Result<(Option<Standing>, Option<Found>)> {
    let row: Row = ReadCase {
        member: id_bytes(member.as_uuid()),
        case: id_bytes(case.as_uuid()),
        from,
    }
    .get_result(conn)?;
    let standing = match (row.suspended, row.security_stamp) {
        (Some(suspended), Some(security_stamp)) => Some(Standing {
            suspended,
            security_stamp,
        }),
        _ => None,
    };
    let (Some(id), Some(wrapped)) = (row.id, row.wrapped) else {
        return Ok((standing, None));
    };
    let broken = || StorageError::Invalid("a stored case row is incomplete".into());
    let case_row = CaseDb {
        id: id.clone(),
        society_id: row.society_id.ok_or_else(broken)?,
        status: row.status.ok_or_else(broken)?,
        key_epoch: row.key_epoch.ok_or_else(broken)?,
        version: row.version.ok_or_else(broken)?,
        seq: row.seq.ok_or_else(broken)?,
        created_by: row.created_by.ok_or_else(broken)?,
        created_at: row.created_at.ok_or_else(broken)?,
        updated_at: row.updated_at.ok_or_else(broken)?,
        head_hash: row.head_hash,
    };
    let ids = row.ids.unwrap_or_default();
    let n = ids.len();
    let column = |v: Option<Vec<i64>>| -> Result<Vec<i64>> {
        let v = v.unwrap_or_default();
        if v.len() == n {
            Ok(v)
        } else {
            Err(broken())
        }
    };
    let (versions, seqs) = (column(row.versions)?, column(row.seqs)?);
    let (created, updated) = (column(row.created)?, column(row.updated)?);
    let kinds = row.kinds.unwrap_or_default();
    let epochs = row.epochs.unwrap_or_default();
    let authors = row.authors.unwrap_or_default();
    let envelopes = row.envelopes.unwrap_or_default();
    if kinds.len() != n || epochs.len() != n || authors.len() != n || envelopes.len() != n {
        return Err(broken());
    }
    let mut records: Vec<RecordDb> = ids
        .into_iter()
        .zip(kinds)
        .zip(versions.into_iter().zip(epochs))
        .zip(authors.into_iter().zip(envelopes))
        .zip(seqs.into_iter().zip(created.into_iter().zip(updated)))
        .map(
            |((((rid, kind), (version, key_epoch)), (author_id, envelope)), (seq, (c, u)))| {
                RecordDb {
                    id: rid,
                    case_id: id.clone(),
                    kind,
                    version,
                    key_epoch,
                    author_id,
                    envelope,
                    seq,
                    created_at: c,
                    updated_at: u,
                }
            },
        )
        .collect();
    // Bytewise, as SQLite's BLOB and PostgreSQL's bytea order them.
    records.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let commit_seqs = row.commit_seqs.unwrap_or_default();
    let commit_bodies = row.commit_bodies.unwrap_or_default();
    if commit_seqs.len() != commit_bodies.len() {
        return Err(broken());
    }
    let mut commits: Vec<(i64, Vec<u8>)> = commit_seqs.into_iter().zip(commit_bodies).collect();
    commits.sort_unstable_by_key(|(seq, _)| *seq);
    let older_epochs = row.older_epochs.unwrap_or_default();
    let older_wrapped = row.older_wrapped.unwrap_or_default();
    if older_epochs.len() != older_wrapped.len() {
        return Err(broken());
    }
    let mut older: Vec<(i32, Vec<u8>)> = older_epochs.into_iter().zip(older_wrapped).collect();
    older.sort_unstable_by_key(|(epoch, _)| *epoch);
    Ok((standing, Some((case_row, wrapped, records, commits, older))))
}
