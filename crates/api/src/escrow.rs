//! Rotating the society escrow key (society admins). The server cannot re-wrap a case key: it holds
//! no escrow identity. It keeps the job record (so an interrupted rotation resumes where it stopped,
//! and knows how many wrappings there are), serves the escrow wrappings still under the old key a
//! page at a time, stores each batch of new wrappings in one transaction, and switches the society to
//! the new key only once no wrapping of the old one is left.
//!
//! Starting needs a recent passkey sign-in; the batches and the completion do not (a rotation of a
//! national caseload may outlast the step-up window, and completing only carries out what the
//! started job already says).

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use rfl_crypto::{verify_chain, AgeRecipient, CertifiedRole, KeyCertificate, RootPublicKey};
use rfl_domain::api::{
    CompleteEscrowRotation, EscrowCompletionDto, EscrowRotationDto, EscrowWrapDto,
    EscrowWrapsResponse, RotateEscrowWraps, RotatedEscrowWraps, StartEscrowRotation,
};
use rfl_storage::{EscrowCompletion, EscrowRotation, EscrowWrapRow, NewEscrowRotation};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, Problem};
use crate::framing::{self, BodyFraming};
use crate::roles::{Authorized, SocietyAdmins};
use crate::{blocking, bulk, State};

/// Most wrappings in one page or one batch.
pub const MAX_WRAPS: usize = 5_000;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(rotation)
        .service(start)
        .service(wraps)
        .service(rotate_wraps)
        .service(complete);
}

fn dto(r: EscrowRotation) -> Result<EscrowRotationDto, ApiError> {
    let count = |n: i64| u64::try_from(n).map_err(|_| ApiError::Internal("negative count".into()));
    Ok(EscrowRotationDto {
        new_gen: u32::try_from(r.new_gen)
            .map_err(|_| ApiError::Internal("negative generation".into()))?,
        old_recipient: r.old_recipient,
        recipient: r.new.recipient,
        wrapped_identity: r.new.wrapped_identity.into(),
        certificate: crate::hex(&r.new.certificate),
        total: count(r.total)?,
        done: count(r.done)?,
        started_by: r.started_by,
        started_at: r.started_at / 1000,
        completed_at: r.completed_at.map(|t| t / 1000),
    })
}

fn gen_i32(gen: u32) -> Result<i32, ApiError> {
    i32::try_from(gen).map_err(|_| ApiError::BadRequest("new_gen is out of range".into()))
}

/// The society's latest escrow-key rotation, running or completed (404 if it never rotated it).
#[utoipa::path(tag = "escrow", security(("bearer" = [])), responses(
    (status = 200, body = EscrowRotationDto), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[get("/society/escrow/rotation")]
async fn rotation(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let r = blocking(move || {
        store
            .escrow_rotation(caller.society_id)?
            .ok_or(ApiError::NotFound)
    })
    .await?;
    Ok(HttpResponse::Ok().json(dto(r)?))
}

/// Start rotating the society escrow key to a new one (society admin; needs a recent passkey
/// sign-in): its age recipient, its identity wrapped to the recovery key, and its escrow
/// certificate, which must be signed by the society root and name that recipient. The job counts the
/// escrow wrappings under the current key. 409 if one runs already (resume it) or the society has no
/// escrow key.
#[utoipa::path(tag = "escrow", security(("bearer" = [])), request_body = StartEscrowRotation, responses(
    (status = 201, body = EscrowRotationDto), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 409, body = Problem), (status = 422, body = Problem)))]
#[post("/society/escrow/rotation")]
async fn start(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<StartEscrowRotation>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let recipient = AgeRecipient::parse(req.recipient.trim()).map_err(|_| {
        ApiError::Unprocessable("recipient must be an age recipient (age1…)".into())
    })?;
    if req.wrapped_identity.0.is_empty() || req.wrapped_identity.0.len() > 16 * 1024 {
        return Err(ApiError::BadRequest(
            "wrapped_identity must be an age file of at most 16 KiB".into(),
        ));
    }
    let cert = KeyCertificate::from_hex(req.certificate.trim())
        .map_err(|e| ApiError::BadRequest(format!("the certificate is malformed: {e}")))?;
    let now = state.now();
    let store = state.store.clone();
    let job = blocking(move || {
        let society = *caller.society_id.as_uuid();
        let root = store
            .society_certificates(caller.society_id)?
            .root
            .ok_or_else(|| ApiError::Conflict("the society has no root key yet".into()))?;
        // What clients will check once the key is the society's: refused now, not after the job.
        let keys = verify_chain(
            &RootPublicKey::from_bytes(root),
            society,
            std::slice::from_ref(&cert),
            now / 1000,
        )
        .map_err(|e| ApiError::Unprocessable(format!("the escrow certificate: {e}")))?;
        keys.expect(society, CertifiedRole::Escrow)
            .map_err(|e| ApiError::Unprocessable(format!("the escrow certificate: {e}")))?;
        if *keys.age_recipient() != recipient {
            return Err(ApiError::Unprocessable(
                "the escrow certificate names another key than the one given".into(),
            ));
        }
        Ok(store.start_escrow_rotation(
            caller.society_id,
            &NewEscrowRotation {
                recipient: recipient.to_string(),
                wrapped_identity: req.wrapped_identity.0,
                certificate: cert.to_bytes(),
            },
            caller.member_id,
            now,
        )?)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, total = job.total,
        "escrow-key rotation started");
    Ok(HttpResponse::Created().json(dto(job)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct WrapsQuery {
    /// The generation of the key whose wrappings to list (the running job's old key).
    #[param(minimum = 1, maximum = 2_147_483_647)]
    gen: u32,
    /// Continue after this case (with `after_epoch`): the last row of the previous page.
    after_case: Option<uuid::Uuid>,
    #[param(maximum = 2_147_483_647)]
    after_epoch: Option<u32>,
    /// Page size (default 1,000, at most 5,000).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<usize>,
}

/// The society's escrow wrappings of key generation `gen`, in (case, epoch) order (society admin):
/// what a rotation re-wraps. A page ends where the next starts (`after_case`, `after_epoch`).
#[utoipa::path(tag = "escrow", security(("bearer" = [])), params(WrapsQuery), responses(
    (status = 200, body = EscrowWrapsResponse, description = "JSON, or the binary framing of the same type \
        when `Accept` names `application/x-postcard`"),
    (status = 400, body = Problem), (status = 403, body = Problem)))]
#[get("/society/escrow/rotation/wraps")]
async fn wraps(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    req: HttpRequest,
    query: web::Query<WrapsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(1_000);
    if !(1..=MAX_WRAPS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_WRAPS}"
        )));
    }
    let after = match (q.after_case, q.after_epoch) {
        (Some(c), Some(e)) => Some((c, e)),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "give both after_case and after_epoch, or neither".into(),
            ))
        }
    };
    let gen =
        i32::try_from(q.gen).map_err(|_| ApiError::BadRequest("gen is out of range".into()))?;
    let store = state.store.clone();
    let limit = i64::try_from(limit).map_err(|_| ApiError::BadRequest("limit".into()))?;
    // The page is read and encoded (megabytes) at the idle class: ordinary reads go first
    // (`bulk`). A read takes no lock a writer waits for; it holds one pooled read connection.
    // Bulk statements take their turn (`pacing`): ordinary requests first.
    let binary = framing::wants_binary(&req);
    state.pacer.turn().await;
    let paced = state.clone();
    let body = bulk::idle(move || {
        let rows = paced
            .pacer
            .timed(|| store.escrow_wraps(caller.society_id, gen, after, limit))?;
        let carried: usize = rows.iter().map(|r| r.wrapped.len() + 32).sum();
        let page = EscrowWrapsResponse {
            wraps: rows
                .into_iter()
                .map(|r| EscrowWrapDto {
                    case_id: r.case_id,
                    key_epoch: r.key_epoch,
                    wrapped: r.wrapped.into(),
                })
                .collect(),
        };
        framing::encode_answer(&page, binary, carried + 16)
    })
    .await?;
    Ok(framing::encoded_answer(body, binary))
}

/// Replace escrow wrappings with ones made for the running job's new key, in one transaction
/// (society admin). A row already moved is left as it is (a batch sent twice moves nothing the
/// second time); the answer says how many this batch moved. 409 if no rotation to that key runs.
#[utoipa::path(tag = "escrow", security(("bearer" = [])), request_body(
    description = "The wrappings, as JSON or in the binary framing of the same type (`application/x-postcard`, \
        docs/crypto.md \"Binary framing\")",
    content((RotateEscrowWraps = "application/json"), (Vec<u8> = "application/x-postcard"))), responses(
    (status = 200, body = RotatedEscrowWraps), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
#[post("/society/escrow/rotation/wraps")]
async fn rotate_wraps(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    http: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Its own body limit, as a bulk import's: a batch is a few megabytes.
    let framing = BodyFraming::of(&http)?;
    let body = framing::read_body(&http, payload, state.config.limits.batch_body_bytes).await?;
    let store = state.store.clone();
    // Decoding and checking a batch of thousands of wrappings at the idle class (`bulk`), then
    // writing it on the blocking pool at the ordinary priority (it holds the write lock).
    let society = *caller.society_id.as_uuid();
    let (gen, rows) = bulk::idle(move || {
        let req: RotateEscrowWraps = framing.decode(&body)?;
        if req.wraps.is_empty() || req.wraps.len() > MAX_WRAPS {
            return Err(ApiError::Unprocessable(format!(
                "send 1 to {MAX_WRAPS} wrappings"
            )));
        }
        let rows = req
            .wraps
            .into_iter()
            .map(|w| {
                // The server can check what a wrapping says of itself without any key: its society.
                match rfl_crypto::escrow_wrap_info(&w.wrapped.0) {
                    Ok(info) if info.society_id == society && w.wrapped.0.len() <= 4096 => {
                        Ok(EscrowWrapRow {
                            case_id: w.case_id,
                            key_epoch: w.key_epoch,
                            wrapped: w.wrapped.0,
                        })
                    }
                    _ => Err(ApiError::Unprocessable(format!(
                        "case {}: not an escrow wrapping for your society",
                        w.case_id
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((gen_i32(req.new_gen)?, rows))
    })
    .await?;
    state.pacer.turn().await;
    let paced = state.clone();
    let (moved, job) = blocking(move || {
        Ok(paced
            .pacer
            .timed(|| store.rotate_escrow_wraps(caller.society_id, gen, &rows))?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(RotatedEscrowWraps {
        moved,
        rotation: dto(job)?,
    }))
}

/// Finish the running rotation (society admin): if no escrow wrapping of the old key is left, the new
/// key becomes the society's escrow key (its certificate is served from then on, and writes for the
/// old key are refused); else nothing changes and `left` says how many are left (written while the
/// job ran: re-wrap them and finish again).
#[utoipa::path(tag = "escrow", security(("bearer" = [])), request_body = CompleteEscrowRotation, responses(
    (status = 200, body = EscrowCompletionDto), (status = 403, body = Problem), (status = 409, body = Problem)))]
#[post("/society/escrow/rotation/complete")]
async fn complete(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<CompleteEscrowRotation>,
) -> Result<HttpResponse, ApiError> {
    let gen = gen_i32(body.new_gen)?;
    let now = state.now();
    let store = state.store.clone();
    let done = blocking(move || {
        let c = store.complete_escrow_rotation(caller.society_id, gen, now)?;
        let (left, job) = match c {
            EscrowCompletion::Completed(job) => (0, job),
            EscrowCompletion::Remaining(n) => (
                n,
                store
                    .escrow_rotation(caller.society_id)?
                    .ok_or(ApiError::NotFound)?,
            ),
        };
        Ok((left, job))
    })
    .await?;
    let (left, job) = done;
    if left == 0 {
        tracing::info!(society = %caller.society_id, by = %caller.member_id, gen,
            "escrow-key rotation completed: the new key is the society's");
    }
    Ok(HttpResponse::Ok().json(EscrowCompletionDto {
        left: u64::try_from(left).map_err(|_| ApiError::Internal("negative count".into()))?,
        rotation: dto(job)?,
    }))
}
