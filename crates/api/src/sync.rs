//! National society sync (`docs/sync.md`): `GET /v1/sync/info`, which instance this is and how far
//! the caller's society's change sequence has got; `GET /v1/sync/changes`, the society's changes
//! after a cursor, page by page; `POST /v1/sync/changes` (`push.rs`), another server's commits
//! verified on arrival; and `GET` and `PUT /v1/sync/trust` (`trust.rs`), the society's trust material
//! for and from its other instance.

use actix_web::{get, put, web, HttpRequest, HttpResponse};
use rfl_domain::api::{
    SetSyncCheckpoint, SyncCaseDto, SyncCheckpointDto, SyncInfoDto, SyncKeyDto, SyncPageDto,
};
use rfl_domain::{CaseId, SocietyId};
use rfl_storage::{CaseKeyRow, ChangePage};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::cases::{record_dto, summary};
use crate::error::{ApiError, Problem};
use crate::framing;
use crate::roles::{Authorized, SyncAgents, SyncPeers};
use crate::{blocking, State};

mod fork;
mod merge;
mod push;
mod trust;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(info)
        .service(changes)
        .service(whole_case)
        .service(push::push_changes)
        .service(trust::get_trust)
        .service(trust::put_trust)
        .service(get_checkpoint)
        .service(put_checkpoint);
}

/// The checkpoint this server keeps of the caller's society's changes from the instance
/// `{instance}` (sync agents only): it holds every one numbered up to `seq` there (`null`: it has
/// been told of none).
#[utoipa::path(tag = "sync", security(("bearer" = [])),
    params(("instance" = String, Path, description = "The sending instance's id")),
    responses((status = 200, body = SyncCheckpointDto), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
#[get("/sync/checkpoints/{instance}")]
async fn get_checkpoint(
    state: State,
    Authorized(caller, _): Authorized<SyncAgents>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let source = path.into_inner();
    let seq = blocking(move || Ok(store.sync_checkpoint(caller.society_id, source)?)).await?;
    Ok(HttpResponse::Ok().json(SyncCheckpointDto { seq }))
}

/// Sets the checkpoint of the caller's society's changes from the instance `{instance}` (sync
/// agents only, after a pass that carried every change up to `seq` there). It may move back: a
/// sender restored from a backup numbers on from an earlier change.
#[utoipa::path(tag = "sync", security(("bearer" = [])),
    params(("instance" = String, Path, description = "The sending instance's id")),
    request_body = SetSyncCheckpoint,
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
#[put("/sync/checkpoints/{instance}")]
async fn put_checkpoint(
    state: State,
    Authorized(caller, _): Authorized<SyncAgents>,
    path: web::Path<Uuid>,
    body: web::Json<SetSyncCheckpoint>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (source, seq, now) = (path.into_inner(), body.seq, state.now());
    if seq > i64::MAX as u64 {
        return Err(ApiError::BadRequest(
            "the checkpoint is out of range".into(),
        ));
    }
    blocking(move || Ok(store.put_sync_checkpoint(caller.society_id, source, seq, now)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn seq_u64(seq: i64) -> Result<u64, ApiError> {
    u64::try_from(seq).map_err(|_| ApiError::Internal("a negative change number".into()))
}

/// This database's instance id and the caller's society's last change number (sync agents and
/// society admins). A sync cursor names the instance it was read from, so one read from another
/// database is recognised as such.
#[utoipa::path(tag = "sync", security(("bearer" = [])), responses(
    (status = 200, body = SyncInfoDto), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/sync/info")]
async fn info(
    state: State,
    Authorized(caller, _): Authorized<SyncPeers>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (instance_id, seq) =
        blocking(move || Ok((store.instance_id()?, store.society_seq(caller.society_id)?))).await?;
    Ok(HttpResponse::Ok().json(SyncInfoDto {
        instance_id,
        society_id: caller.society_id,
        seq: seq_u64(seq)?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    /// The society whose changes to read: the caller's own (the default; no other yet).
    #[param(value_type = Option<String>, format = Uuid)]
    society: Option<SocietyId>,
    /// Where the page starts: the `next` of the page before (0, the default, reads from the start).
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    after: Option<u64>,
    /// The cursor up to which the reader holds every change: where its current pass began (the
    /// `next` of the last page of its last complete pass; at most `after`). The page carries what
    /// such a reader lacks of each case: the commits and records after it, or the whole case when
    /// the reader cannot have it. 0, the default, sends every case whole, which is always correct.
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    since: Option<u64>,
    /// The instance the cursor was read from (`instance_id` of a page or of `/v1/sync/info`). A
    /// cursor of another instance is refused with 409 and where to resume.
    #[param(value_type = Option<String>, format = Uuid)]
    instance: Option<Uuid>,
    /// Cases per page (default and at most the server's `limits.page_max`).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// The society's cases changed after `after` (sync agents only), each once, in the order of their
/// last change, with the commits, records and wrapped keys a reader that holds every change up to
/// `since` lacks: a changes feed, read in one snapshot. A cursor this server cannot honour (another instance's, or
/// beyond the society's last number, as after a restore from an older backup) is answered 409
/// `sync-cursor` with `instance_id` and `resume_after`; resuming from any earlier cursor, 0
/// included, is always correct, since applying a change twice changes nothing.
#[utoipa::path(tag = "sync", security(("bearer" = [])), params(ChangesQuery), responses(
    (status = 200, description = "One page: JSON, or the binary framing of the same type \
        (docs/crypto.md, \"Binary framing\") when `Accept` names `application/x-postcard`",
        content((SyncPageDto = "application/json"), (Vec<u8> = "application/x-postcard"))),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 409, description = "`sync-cursor`: the cursor is not this instance's, or beyond the \
        society's last number; `resume_after` says where to go on from", body = Problem)))]
#[get("/sync/changes")]
async fn changes(
    state: State,
    req: HttpRequest,
    Authorized(caller, _): Authorized<SyncAgents>,
    query: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let society = q.society.unwrap_or(caller.society_id);
    if society != caller.society_id {
        return Err(ApiError::Forbidden(
            "a sync agent reads its own society's changes",
        ));
    }
    let max = state.config.limits.page_max;
    let limit = q.limit.unwrap_or(max);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {max}"
        )));
    }
    let after = q.after.unwrap_or(0);
    let since = q.since.unwrap_or(0);
    if since > after {
        return Err(ApiError::BadRequest(
            "since must not be beyond after: it is where the pass began".into(),
        ));
    }
    let after_i64 = i64::try_from(after)
        .map_err(|_| ApiError::BadRequest("after is beyond any sequence number".into()))?;
    // `since` ≤ `after`, which fits.
    let since_i64 = i64::try_from(since).unwrap_or(0);
    let binary = framing::wants_binary(&req);
    let store = state.store.clone();
    // The read, the answer's shape and its encoding: one trip to the blocking pool (a page is
    // megabytes).
    let body = blocking(move || {
        let instance_id = store.instance_id()?;
        if q.instance.is_some_and(|i| i != instance_id) {
            return Err(ApiError::SyncCursor {
                detail: "the cursor was read from another instance (a restored or rebuilt \
                         database): resume from your checkpoint for this instance, or from 0"
                    .into(),
                instance_id,
                resume_after: 0,
            });
        }
        let page = store.changes(society, since_i64, after_i64, limit)?;
        if after_i64 > page.society_seq {
            return Err(ApiError::SyncCursor {
                detail: "the cursor is beyond this society's last change (the server was \
                         restored from an older backup): push what it lacks, then resume from \
                         its last number"
                    .into(),
                instance_id,
                resume_after: seq_u64(page.society_seq)?,
            });
        }
        let dto = page_dto(instance_id, society, (since, after), limit, page)?;
        framing::encode_answer(&dto, binary, dto.wire_len_bound())
    })
    .await?;
    Ok(framing::encoded_answer(body, binary))
}

/// A wrapped key as a sync carries it.
fn key_dto(k: CaseKeyRow) -> SyncKeyDto {
    SyncKeyDto {
        recipient_id: k.recipient_id,
        key_epoch: k.key_epoch,
        escrow_gen: k.escrow_gen,
        wrapped: k.wrapped.into(),
        keys_digest: k.keys_digest.map(Into::into),
        created_at: k.created_at,
    }
}

/// One case of the caller's society whole (sync agents only): every commit from the first, every
/// record and every wrapped key, read in one snapshot. A receiving server asks for it (push outcome
/// `needs_whole`) when the case changed on both sides: to keep the other side's branch it must
/// check every record that branch's head lists, and a page carries only those written after the
/// reader's cursor.
#[utoipa::path(tag = "sync", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "The case")),
    responses(
    (status = 200, description = "The case: JSON, or the binary framing of the same type \
        when `Accept` names `application/x-postcard`",
        content((SyncCaseDto = "application/json"), (Vec<u8> = "application/x-postcard"))),
    (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[get("/sync/cases/{id}")]
async fn whole_case(
    state: State,
    req: HttpRequest,
    Authorized(caller, _): Authorized<SyncAgents>,
    path: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let binary = framing::wants_binary(&req);
    let store = state.store.clone();
    let body = blocking(move || {
        let held = store
            .case_states(&[id])?
            .remove(&id)
            .filter(|s| s.row.society_id == caller.society_id)
            .ok_or(ApiError::NotFound)?;
        let dto = SyncCaseDto {
            case: summary(held.row, None),
            whole: true,
            commits: held.commits.into_iter().map(|(_, b)| b.into()).collect(),
            records: held
                .records
                .into_iter()
                .map(record_dto)
                .collect::<Result<_, ApiError>>()?,
            keys: held.keys.into_iter().map(key_dto).collect(),
        };
        let bound = dto.wire_len_bound();
        framing::encode_answer(&dto, binary, bound)
    })
    .await?;
    Ok(framing::encoded_answer(body, binary))
}

fn page_dto(
    instance_id: Uuid,
    society_id: SocietyId,
    (since, after): (u64, u64),
    limit: i64,
    page: ChangePage,
) -> Result<SyncPageDto, ApiError> {
    let more = page.cases.len() as i64 == limit;
    let next = match page.cases.last() {
        Some(last) if more => seq_u64(last.case.seq)?,
        _ => seq_u64(page.society_seq)?,
    };
    let cases = page
        .cases
        .into_iter()
        .map(|c| {
            Ok(SyncCaseDto {
                case: summary(c.case, None),
                whole: c.whole,
                commits: c.commits.into_iter().map(Into::into).collect(),
                records: c
                    .records
                    .into_iter()
                    .map(record_dto)
                    .collect::<Result<_, ApiError>>()?,
                keys: c.keys.into_iter().map(key_dto).collect(),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(SyncPageDto {
        instance_id,
        society_id,
        since,
        after,
        next,
        more,
        cases,
    })
}
