//! Cases, their records and attachment chunks: the one module through which every access to case data
//! passes (the audit log of a later issue hooks in here).
//!
//! The server cannot read what it stores. What it does check, before anything is written:
//! - the caller may hold case data (role) and holds a key for the case (else 404, whether or not it exists);
//! - each envelope's header names the case, record id, kind, version and key epoch it is filed under;
//! - every write is one commit (docs/crypto.md, "Case commits"): its parent is the case's current head
//!   (else 409, nothing written), its number the next, its author the caller, its signature verifies
//!   under the caller's enrolled device key (an active member), its status transition is legal, and it
//!   lists exactly the records the case holds after the write;
//! - a new case's data key is wrapped to the caller and to the society escrow key, and only to members
//!   of the society, and its commit's holders digest names exactly those members' registered keys;
//!   later commits keep the holders digest, except a grant (`grants.rs`), which adds the grantee,
//!   and a re-key (`rekey.rs`), which starts the next key epoch and may drop holders.

mod commits;
mod conflicts;
mod grants;
mod rekey;
mod transfers;

use commits::{
    check_commit, check_fresh, directory, for_commit, head_hash, holder_of, Directory, Expected,
};

use std::collections::HashSet;

use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use rfl_crypto::{
    parse_envelope_header, state_digest, CommitHash, CommitOp, StateDigest, StateEntry,
};
use rfl_domain::api::{
    BatchRequest, BatchResponse, CaseDto, CaseListResponse, CaseSummaryDto, EpochKeyDto,
    NewCaseDto, RecordDto, RecordKind, RecordWriteDto, StatusRequest, WriteRecordsRequest,
    ESCROW_KEY_HEADER,
};
use rfl_domain::{CaseId, CaseStatus, MemberId, RecordId};
use rfl_storage::{CaseListItem, CaseRow, NewCase, RecordRow, RecordWrite, Store, WrappedKey};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Caller;
use crate::config::LimitsConfig;
use crate::error::{ApiError, Problem};
use crate::framing::{self, BodyFraming};
use crate::roles::{Authorized, CaseHolders, Pending};
use crate::{blocking, State};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_case)
        .service(rekey::rekey)
        .service(rekey::member_cases)
        .service(rekey::suspended_holders)
        .service(rekey::member_cases_elsewhere)
        .service(rekey::retired_cases)
        .service(rekey::member_retired_cases)
        .service(create_batch)
        .service(list_cases)
        .service(get_case)
        .service(write_records)
        .service(set_status)
        .service(put_chunk)
        .service(get_chunk)
        .service(conflicts::list_conflicts)
        .service(conflicts::get_conflict)
        .service(conflicts::merge)
        .service(conflicts::get_merged)
        .service(grants::grant)
        .service(grants::holders)
        .service(transfers::offer_transfer)
        .service(transfers::list_transfers)
        .service(transfers::transfer_case)
        .service(transfers::accept_transfer)
        .service(transfers::reject_transfer);
}

pub(crate) fn summary(row: CaseRow, record_count: Option<i64>) -> CaseSummaryDto {
    CaseSummaryDto {
        id: row.id,
        society_id: row.society_id,
        status: row.status,
        key_epoch: row.key_epoch,
        version: row.version,
        seq: row.seq,
        created_by: row.created_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
        record_count,
    }
}

pub(crate) fn record_dto(r: RecordRow) -> Result<RecordDto, ApiError> {
    Ok(RecordDto {
        id: r.id,
        kind: RecordKind::from_code(r.kind)
            .ok_or_else(|| ApiError::Internal("stored record kind unknown".into()))?,
        version: r.version,
        key_epoch: r.key_epoch,
        author_id: r.author_id,
        envelope: r.envelope.into(),
        seq: r.seq,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// The case's state after `records` (each checked against its envelope header, which must carry
/// the case's current key epoch, and each given once), and the writes to store; `also` checks each
/// write's entry against the entry it replaces, if any.
fn state_after(
    id: CaseId,
    cur: &commits::Current,
    records: &[RecordWriteDto],
    limits: &LimitsConfig,
    also: impl Fn(&StateEntry, Option<&StateEntry>) -> Result<(), ApiError>,
) -> Result<
    (
        std::collections::HashMap<uuid::Uuid, StateEntry>,
        Vec<RecordWrite>,
    ),
    ApiError,
> {
    let mut ids = HashSet::new();
    let mut state: std::collections::HashMap<uuid::Uuid, StateEntry> =
        cur.entries.iter().map(|e| (e.record_id, *e)).collect();
    let mut writes = Vec::with_capacity(records.len());
    for w in records {
        if !ids.insert(w.id) {
            return Err(ApiError::Unprocessable(format!(
                "record {} is given twice",
                w.id
            )));
        }
        let (write, entry) = check_record(id, cur.row.key_epoch, w, limits)?;
        also(&entry, state.get(&entry.record_id))?;
        state.insert(entry.record_id, entry);
        writes.push(write);
    }
    Ok((state, writes))
}

/// Checks a record write against its envelope header; yields it with its entry in the case's state.
fn check_record(
    case: CaseId,
    key_epoch: u32,
    w: &RecordWriteDto,
    limits: &LimitsConfig,
) -> Result<(RecordWrite, StateEntry), ApiError> {
    if w.envelope.0.len() > limits.record_bytes {
        return Err(ApiError::PayloadTooLarge(limits.record_bytes));
    }
    let h = parse_envelope_header(&w.envelope.0).map_err(|e| {
        ApiError::Unprocessable(format!("record {}: malformed envelope: {e}", w.id))
    })?;
    let mismatch = |what: &str| {
        ApiError::Unprocessable(format!("record {}: envelope {what} does not match", w.id))
    };
    if h.aad.case_id != *case.as_uuid() {
        return Err(mismatch("case id"));
    }
    if h.aad.record_id != *w.id.as_uuid() {
        return Err(mismatch("record id"));
    }
    if i16::from(h.aad.kind.as_u8()) != w.kind.code() {
        return Err(mismatch("kind"));
    }
    if h.aad.version != w.version {
        return Err(mismatch("version"));
    }
    if h.aad.key_epoch != key_epoch {
        return Err(mismatch("key epoch"));
    }
    let entry = StateEntry {
        record_id: h.aad.record_id,
        kind: h.aad.kind,
        version: h.aad.version,
        envelope_hash: rfl_crypto::envelope_hash(&w.envelope.0),
    };
    Ok((
        RecordWrite {
            id: w.id,
            kind: w.kind.code(),
            version: w.version,
            envelope: w.envelope.0.clone(),
        },
        entry,
    ))
}

fn check_new_case(
    c: &NewCaseDto,
    caller: &Caller,
    dir: &Directory,
    limits: &LimitsConfig,
) -> Result<NewCase, ApiError> {
    if c.key_epoch != 1 {
        return Err(ApiError::Unprocessable(format!(
            "case {}: a new case starts at key epoch 1",
            c.id
        )));
    }
    if c.records.len() > 1000 {
        return Err(ApiError::Unprocessable(format!(
            "case {}: too many records",
            c.id
        )));
    }
    let society = *caller.society_id.as_uuid();
    let mut seen = HashSet::new();
    for k in &c.keys {
        if !seen.insert(k.recipient_id) {
            return Err(ApiError::Unprocessable(format!(
                "case {}: a recipient is named twice",
                c.id
            )));
        }
        if k.recipient_id != society && !dir.may_receive(MemberId::from_uuid(k.recipient_id)) {
            return Err(ApiError::Unprocessable(format!(
                "case {}: key recipient {} is not an active caseworker of your society",
                c.id, k.recipient_id
            )));
        }
        if k.wrapped.0.is_empty() || k.wrapped.0.len() > 4096 {
            return Err(ApiError::Unprocessable(format!(
                "case {}: a wrapped key has a bad size",
                c.id
            )));
        }
    }
    if !seen.contains(caller.member_id.as_uuid()) {
        return Err(ApiError::Unprocessable(format!(
            "case {}: the data key must be wrapped to you",
            c.id
        )));
    }
    if !seen.contains(&society) {
        return Err(ApiError::Unprocessable(format!(
            "case {}: the data key must be wrapped to the society escrow key",
            c.id
        )));
    }
    let mut ids = HashSet::new();
    let (records, entries): (Vec<RecordWrite>, Vec<StateEntry>) = c
        .records
        .iter()
        .map(|w| {
            if !ids.insert(w.id) {
                return Err(ApiError::Unprocessable(format!(
                    "case {}: record {} is given twice",
                    c.id, w.id
                )));
            }
            if w.version != 1 {
                return Err(ApiError::Unprocessable(format!(
                    "case {}: new records start at version 1",
                    c.id
                )));
            }
            check_record(c.id, c.key_epoch, w, limits)
        })
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let commit = check_commit(
        &c.commit.0,
        caller,
        dir,
        &Expected {
            op: CommitOp::Create,
            case: c.id,
            seq: 1,
            parent: CommitHash::ZERO,
            key_epoch: c.key_epoch,
            status: CaseStatus::Open,
            state: digest_of(c.id, &entries)?,
            holders: dir.holders_digest(caller, c.keys.iter().map(|k| k.recipient_id))?,
        },
    )?;
    Ok(NewCase {
        id: c.id,
        society_id: caller.society_id,
        created_by: caller.member_id,
        status: CaseStatus::Open,
        key_epoch: c.key_epoch,
        keys: c.keys.iter().map(WrappedKey::from).collect(),
        records,
        commit,
    })
}

fn digest_of(case: CaseId, entries: &[StateEntry]) -> Result<StateDigest, ApiError> {
    state_digest(entries).map_err(|e| {
        ApiError::Unprocessable(format!("case {case}: the records do not form a state: {e}"))
    })
}

/// The escrow key a request's escrow wrappings were made for: its `Rfl-Escrow-Key` header (the
/// store refuses it unless it is the society's current escrow key).
pub(crate) fn escrow_key(req: &HttpRequest) -> Result<String, ApiError> {
    req.headers()
        .get(ESCROW_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| v.starts_with("age1") && v.len() <= 1024)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "say which society escrow key the data keys are wrapped to: the {ESCROW_KEY_HEADER} \
                 header, its age recipient"
            ))
        })
}

/// Validates and stores new cases in one transaction.
fn create_cases(
    store: &Store,
    caller: &Caller,
    cases: &[NewCaseDto],
    limits: &LimitsConfig,
    escrow: &str,
    now: i64,
) -> Result<rfl_storage::CreatedCases, ApiError> {
    let society = store
        .society(caller.society_id)?
        .ok_or(ApiError::NotFound)?;
    if society.escrow.is_none() {
        return Err(ApiError::Conflict(
            "your society has no escrow key yet: a society admin must set it up (rfl society init) before cases can be created".into(),
        ));
    }
    let dir = directory(store, caller)?;
    let mut ids = HashSet::new();
    let new_cases = cases
        .iter()
        .map(|c| {
            if !ids.insert(c.id) {
                return Err(ApiError::Unprocessable(format!(
                    "case {} is given twice",
                    c.id
                )));
            }
            check_new_case(c, caller, &dir, limits)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(store.create_cases(&new_cases, escrow, now)?)
}

/// Create one case: its wrapped data keys and its first sealed records.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("rfl-escrow-key" = String, Header, pattern = "^age1[0-9a-z]{1,1020}$", description = "The society escrow key (age recipient) the escrow wrappings were made for: refused with 409 unless it is the current one")),
    request_body = NewCaseDto, responses(
    (status = 201, body = CaseSummaryDto), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 409, body = Problem), (status = 422, body = Problem)))]
#[post("/cases")]
async fn create_case(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    req: HttpRequest,
    body: web::Json<NewCaseDto>,
) -> Result<HttpResponse, ApiError> {
    let escrow = escrow_key(&req)?;
    let now = state.now();
    let st = state.clone();
    let created = blocking(move || {
        create_cases(
            &st.store,
            &caller,
            std::slice::from_ref(&body.into_inner()),
            &st.config.limits,
            &escrow,
            now,
        )
    })
    .await?;
    let row = created
        .rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Conflict("a case with this id exists".into()))?;
    Ok(HttpResponse::Created().json(summary(row, None)))
}

/// Create many cases in one transaction (bulk import). All or nothing.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("rfl-escrow-key" = String, Header, pattern = "^age1[0-9a-z]{1,1020}$", description = "The society escrow key (age recipient) the escrow wrappings were made for: refused with 409 unless it is the current one")), request_body(
    description = "The cases, as JSON or in the binary framing of the same type (`application/x-postcard`, \
        docs/crypto.md \"Binary framing\"), which carries ciphertext without base64",
    content((BatchRequest = "application/json"), (Vec<u8> = "application/x-postcard"))), responses(
    (status = 201, body = BatchResponse), (status = 400, body = Problem), (status = 413, body = Problem),
    (status = 409, body = Problem), (status = 422, body = Problem)))]
#[post("/cases/batch")]
async fn create_batch(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limits = state.config.limits.clone();
    // Own body limit: a batch may be larger than ordinary JSON bodies.
    let framing = BodyFraming::of(&req)?;
    let escrow = escrow_key(&req)?;
    let body = framing::read_body(&req, payload, limits.batch_body_bytes).await?;
    let now = state.now();
    let st = state.clone();
    let created = blocking(move || {
        let req: BatchRequest = framing.decode(&body)?;
        if req.cases.len() > st.config.limits.batch_max_cases {
            return Err(ApiError::PayloadTooLarge(st.config.limits.batch_max_cases));
        }
        create_cases(
            &st.store,
            &caller,
            &req.cases,
            &st.config.limits,
            &escrow,
            now,
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(BatchResponse {
        created: created.rows.len(),
        already_present: created.already_present,
        last_seq: created.rows.iter().map(|r| r.seq).max().unwrap_or(0),
    }))
}

/// The page size asked for (default 100), refused outside 1 to the server's `limits.page_max`.
fn page_limit(asked: Option<i64>, max: i64) -> Result<i64, ApiError> {
    let limit = asked.unwrap_or(100);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {max}"
        )));
    }
    Ok(limit)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Return cases after this id (the previous page's `next_after`).
    #[param(value_type = Option<String>, format = Uuid)]
    after: Option<CaseId>,
    /// Page size (default 100; at most the server's `limits.page_max`).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// The cases the caller holds a key for, in creation order.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = CaseListResponse), (status = 400, body = Problem), (status = 403, body = Problem)))]
#[get("/cases")]
async fn list_cases(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = page_limit(q.limit, state.config.limits.page_max)?;
    let store = state.store.clone();
    let items: Vec<CaseListItem> =
        blocking(move || Ok(store.list_cases(caller.member_id, q.after, limit)?)).await?;
    let next_after = if items.len() as i64 == limit {
        items.last().map(|i| i.case.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(CaseListResponse {
        cases: items
            .into_iter()
            .map(|i| summary(i.case, Some(i.record_count)))
            .collect(),
        next_after,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    /// The number of the last commit of this case the client verified: the answer then also carries
    /// the commits after it, so the client can check the head descends from it.
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    since: Option<u64>,
}

/// One case: metadata, the data key wrapped to the caller, every sealed record and the head commit.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid), GetQuery), responses(
    (status = 200, description = "The case: JSON, or the binary framing of the same type (docs/crypto.md, \
        \"Binary framing\") when `Accept` names `application/x-postcard`",
        content((CaseDto = "application/json"), (Vec<u8> = "application/x-postcard"))),
    (status = 404, body = Problem),
    (status = 422, description = "`since` is beyond any commit number", body = Problem)))]
#[get("/cases/{id}")]
async fn get_case(
    state: State,
    req: HttpRequest,
    pending: Pending<CaseHolders>,
    path: web::Path<CaseId>,
    query: web::Query<GetQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let since = query.into_inner().since;
    let store = state.store.clone();
    let member = pending.member_id();
    // The caller's standing and the case in one snapshot, one trip to the blocking pool.
    let read = blocking(move || Ok(store.get_case_with_standing(member, id, since)?)).await?;
    pending.admit(read.standing)?;
    let bundle = read.bundle.ok_or(ApiError::NotFound)?;
    let count = bundle.records.len() as i64;
    let dto = CaseDto {
        case: summary(bundle.case, Some(count)),
        wrapped_key: bundle.wrapped_key.into(),
        records: bundle
            .records
            .into_iter()
            .map(record_dto)
            .collect::<Result<_, _>>()?,
        head_commit: bundle.head_commit.map(Into::into),
        commits: bundle.commits_since.into_iter().map(Into::into).collect(),
        older_keys: bundle
            .older_keys
            .into_iter()
            .map(|(key_epoch, wrapped)| EpochKeyDto {
                key_epoch,
                wrapped: wrapped.into(),
            })
            .collect(),
    };
    framing::case_answer(&req, &dto)
}

/// Add records or new versions of records with one signed commit, all or nothing. A commit whose
/// parent is not the case's head is refused with 409.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = WriteRecordsRequest, responses(
    (status = 200, body = CaseSummaryDto), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem)))]
#[post("/cases/{id}/records")]
async fn write_records(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
    body: web::Json<WriteRecordsRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let req = body.into_inner();
    if req.records.is_empty() || req.records.len() > 1000 {
        return Err(ApiError::Unprocessable("send 1 to 1000 records".into()));
    }
    let now = state.now();
    let st = state.clone();
    let row = blocking(move || {
        let (dir, cur) = for_commit(&st.store, &caller, id)?;
        check_fresh(&req.commit.0, id, cur.row.version + 1, cur.head)?;
        let (state, writes) =
            state_after(id, &cur, &req.records, &st.config.limits, |_, _| Ok(()))?;
        let entries: Vec<StateEntry> = state.into_values().collect();
        let commit = check_commit(
            &req.commit.0,
            &caller,
            &dir,
            &Expected {
                op: CommitOp::Records,
                case: id,
                seq: cur.row.version + 1,
                parent: cur.head,
                key_epoch: cur.row.key_epoch,
                status: cur.row.status,
                state: digest_of(id, &entries)?,
                holders: cur.holders,
            },
        )?;
        Ok(st.store.write_commit(
            caller.member_id,
            id,
            &cur.head.0,
            &commit,
            &writes,
            &[],
            &[],
            now,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(summary(row, None)))
}

/// Move a case along the status workflow with a signed status commit; illegal transitions get 422, a
/// commit whose parent is not the head 409.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = StatusRequest, responses(
    (status = 200, body = CaseSummaryDto), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem)))]
#[put("/cases/{id}/status")]
async fn set_status(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
    body: web::Json<StatusRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let req = body.into_inner();
    let now = state.now();
    let store = state.store.clone();
    let row = blocking(move || {
        let (dir, cur) = for_commit(&store, &caller, id)?;
        check_fresh(&req.commit.0, id, cur.row.version + 1, cur.head)?;
        cur.row
            .status
            .transition(req.status)
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let commit = check_commit(
            &req.commit.0,
            &caller,
            &dir,
            &Expected {
                op: CommitOp::Status,
                case: id,
                seq: cur.row.version + 1,
                parent: cur.head,
                key_epoch: cur.row.key_epoch,
                status: req.status,
                state: digest_of(id, &cur.entries)?,
                holders: cur.holders,
            },
        )?;
        Ok(store.write_commit(
            caller.member_id,
            id,
            &cur.head.0,
            &commit,
            &[],
            &[],
            &[],
            now,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(summary(row, None)))
}

/// Upload one sealed chunk of an attachment (raw bytes). Chunks are write-once.
#[utoipa::path(tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("attachment" = String, Path, format = Uuid), ("index" = u32, Path, maximum = 2_147_483_647)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 204), (status = 400, description = "An empty chunk", body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem), (status = 413, body = Problem),
    (status = 422, description = "The chunk index is beyond what the server stores", body = Problem)))]
#[put("/cases/{id}/attachments/{attachment}/chunks/{index}")]
async fn put_chunk(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<(CaseId, RecordId, u32)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (case, attachment, index) = path.into_inner();
    if body.is_empty() {
        return Err(ApiError::BadRequest("a chunk cannot be empty".into()));
    }
    let now = state.now();
    let store = state.store.clone();
    blocking(move || Ok(store.put_chunk(caller.member_id, case, attachment, index, &body, now)?))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Download one sealed chunk of an attachment.
#[utoipa::path(tag = "cases", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("attachment" = String, Path, format = Uuid), ("index" = u32, Path, maximum = 2_147_483_647)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = Problem),
    (status = 422, description = "The chunk index is beyond what the server stores", body = Problem)))]
#[get("/cases/{id}/attachments/{attachment}/chunks/{index}")]
async fn get_chunk(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<(CaseId, RecordId, u32)>,
) -> Result<HttpResponse, ApiError> {
    let (case, attachment, index) = path.into_inner();
    let store = state.store.clone();
    let data = blocking(move || {
        store
            .get_chunk(caller.member_id, case, attachment, index)?
            .ok_or(ApiError::NotFound)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(data))
}
