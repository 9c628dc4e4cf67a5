//! Transfers of a case between national societies (docs/crypto.md, "The Movement root and
//! transfers"). Part of `cases`: every case access passes through it.
//!
//! 1. A holder offers the case (`POST /v1/cases/{id}/transfers`): the data key of every epoch
//!    wrapped to the receiving society's escrow key, which their client verified through the
//!    Movement root. Nothing about the case changes yet.
//! 2. Both societies' admins see it (`GET /v1/transfers`). The receiving admin reads the case with
//!    the offered keys (`GET /v1/transfers/{id}/case`), opens them with the society's recovery
//!    identity, verifies the case as a whole, and accepts (`POST /v1/transfers/{id}/accept`) with
//!    a signed transfer commit: the case moves to their society, assigned to one of its members.
//!    If the sender gave access up, the commit starts a new key epoch wrapped only to the
//!    assignee; either way the sending society's escrow rows go.
//! 3. Or the receiving admin rejects it, or the sending society's admin cancels it
//!    (`POST /v1/transfers/{id}/reject`).
//!
//! The server checks what it can: the offer is at the case's current version and epoch, to
//! another society's current escrow key, one pending offer per case; the acceptance is by an admin
//! of the receiving society, names an active member of it, and its commit is the next on the head,
//! keeps records and status, and states the right epoch and holders.

use std::collections::HashMap;

use actix_web::{get, post, web, HttpResponse};
use rfl_crypto::{holders_digest, CommitOp};
use rfl_domain::api::{
    AcceptTransferRequest, CaseDto, CaseSummaryDto, EpochKeyDto, TransferCaseResponse, TransferDto,
    TransferListResponse, TransferRequest,
};
use rfl_domain::{CaseId, MemberId};
use rfl_storage::{
    CaseBundle, TransferAcceptance, TransferCase, TransferOffer, TransferRow, TransferState,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::commits::current_state;
use super::rekey::holder_dtos;
use super::{check_commit, digest_of, directory, record_dto, summary, Expected};
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, CaseHolders, SocietyAdmins};
use crate::{blocking, State};

/// Largest wrapped key accepted (as for a grant).
const MAX_WRAPPED: usize = 4096;
/// Most key epochs a transfer carries.
const MAX_EPOCHS: usize = 10_000;

fn transfer_dto(t: TransferRow) -> TransferDto {
    TransferDto {
        id: t.id,
        case_id: t.case_id,
        from_society: t.from_society,
        to_society: t.to_society,
        offered_by: t.offered_by,
        offered_at: t.offered_at,
        case_version: t.case_version,
        key_epoch: t.key_epoch,
        keep_access: t.keep_access,
        state: t.state.as_str().to_owned(),
        decided_by: t.decided_by,
        decided_at: t.decided_at,
        assigned_to: t.assigned_to,
    }
}

/// The keys of epochs 1 to `last`, in order, each once and of a sane size.
fn epoch_keys(
    keys: Vec<EpochKeyDto>,
    last: u32,
    what: &str,
) -> Result<Vec<(u32, Vec<u8>)>, ApiError> {
    if keys.len() > MAX_EPOCHS || keys.iter().map(|k| k.key_epoch).ne(1..=last) {
        return Err(ApiError::Unprocessable(format!(
            "send {what} of every key epoch (1 to {last}), in order, each once"
        )));
    }
    if keys
        .iter()
        .any(|k| k.wrapped.0.is_empty() || k.wrapped.0.len() > MAX_WRAPPED)
    {
        return Err(ApiError::Unprocessable(
            "a wrapped key has a bad size".into(),
        ));
    }
    Ok(keys
        .into_iter()
        .map(|k| (k.key_epoch, k.wrapped.0))
        .collect())
}

/// Offer the case to another society: its data key of every epoch wrapped to that society's
/// escrow key (which the client verified through the Movement root). The case is unchanged until
/// the receiving society accepts. 409 if the case changed since it was opened, if the receiving
/// society's escrow key is another, or if the case has a pending offer.
#[utoipa::path(tag = "transfers", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = TransferRequest, responses(
    (status = 201, body = TransferDto), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem)))]
#[post("/cases/{id}/transfers")]
pub(super) async fn offer_transfer(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
    body: web::Json<TransferRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let req = body.into_inner();
    if req.to_society == caller.society_id {
        return Err(ApiError::Unprocessable(
            "a case is transferred to another society: share it within yours with a grant".into(),
        ));
    }
    if req.escrow_recipient.len() > 1024 {
        return Err(ApiError::Unprocessable(
            "the escrow recipient is too long".into(),
        ));
    }
    if req.keys.is_empty() {
        return Err(ApiError::Unprocessable(
            "send the data key of every key epoch of the case".into(),
        ));
    }
    let epoch = u32::try_from(req.keys.len()).unwrap_or(u32::MAX);
    let keys = epoch_keys(req.keys, epoch, "the data key")?;
    let offer = TransferOffer {
        id: Uuid::now_v7(),
        case: id,
        from: caller.society_id,
        to: req.to_society,
        by: caller.member_id,
        case_version: req.case_version,
        key_epoch: epoch,
        keep_access: req.keep_access,
        escrow_recipient: req.escrow_recipient,
        keys,
    };
    let store = state.store.clone();
    let now = state.now();
    let row = blocking(move || Ok(store.offer_transfer(&offer, now)?)).await?;
    tracing::info!(case = %id, by = %caller.member_id, to = %row.to_society, transfer = %row.id, "case offered to another society");
    Ok(HttpResponse::Created().json(transfer_dto(row)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only the transfers still pending.
    #[serde(default)]
    pending: bool,
}

/// Transfers from or to the caller's society, newest first (society admins: both societies' admins
/// see every step).
#[utoipa::path(tag = "transfers", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = TransferListResponse)))]
#[get("/transfers")]
pub(super) async fn list_transfers(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let pending = query.into_inner().pending;
    let store = state.store.clone();
    let rows = blocking(move || Ok(store.society_transfers(caller.society_id, pending)?)).await?;
    Ok(HttpResponse::Ok().json(TransferListResponse {
        transfers: rows.into_iter().map(transfer_dto).collect(),
    }))
}

/// The case as it stands with the offered keys (`wrapped_key` is the current epoch's, wrapped to
/// the society's escrow key; `older_keys`, the earlier ones), and its holders with their keys'
/// digests, for the receiving society's admin to verify before accepting. 404 unless pending and
/// offered to the caller's society.
#[utoipa::path(tag = "transfers", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TransferCaseResponse), (status = 404, body = Problem)))]
#[get("/transfers/{id}/case")]
pub(super) async fn transfer_case(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let store = state.store.clone();
    let resp = blocking(move || {
        let tc = store
            .transfer_case(caller.society_id, id)?
            .ok_or(ApiError::NotFound)?;
        // The holders' keys digests, from their member rows (one read).
        let ids: Vec<Uuid> = tc.holders.iter().map(|h| h.recipient).collect();
        let members: HashMap<_, _> = store
            .members_by_ids(&ids)?
            .into_iter()
            .map(|m| (*m.id.as_uuid(), m))
            .collect();
        let holders = holder_dtos(&members, tc.holders.clone())?;
        let count = tc.records.len() as i64;
        let mut keys = tc.keys.clone();
        let current = keys
            .pop()
            .ok_or_else(|| ApiError::Internal("a transfer without keys".into()))?;
        Ok(TransferCaseResponse {
            transfer: transfer_dto(tc.transfer),
            case: CaseDto {
                case: summary(tc.case, Some(count)),
                wrapped_key: current.1.into(),
                records: tc
                    .records
                    .into_iter()
                    .map(record_dto)
                    .collect::<Result<_, _>>()?,
                head_commit: Some(tc.head_commit.into()),
                commits: Vec::new(),
                older_keys: keys
                    .into_iter()
                    .map(|(key_epoch, wrapped)| EpochKeyDto {
                        key_epoch,
                        wrapped: wrapped.into(),
                    })
                    .collect(),
            },
            holders,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(resp))
}

/// Accept a transfer (society admin of the receiving society; needs a recent passkey sign-in):
/// the transfer commit on the case's head, signed by the caller, with the case's keys for the
/// member it is assigned to and for the society's escrow key. If the sender kept access, the commit
/// keeps the key epoch and its holders gain the assignee; otherwise it starts the next epoch, held
/// by the assignee alone. 409 if the case changed since it was read, or was re-keyed since the offer.
#[utoipa::path(tag = "transfers", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = AcceptTransferRequest, responses(
    (status = 200, body = CaseSummaryDto), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem)))]
#[post("/transfers/{id}/accept")]
pub(super) async fn accept_transfer(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<Uuid>,
    body: web::Json<AcceptTransferRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let req = body.into_inner();
    let store = state.store.clone();
    let now = state.now();
    let row = blocking(move || {
        let TransferCase {
            transfer,
            keys: _,
            case,
            records,
            head_commit,
            holders,
        } = store
            .transfer_case(caller.society_id, id)?
            .ok_or(ApiError::NotFound)?;
        let case_id = case.id;
        let cur = current_state(CaseBundle {
            case,
            wrapped_key: Vec::new(),
            records,
            head_commit: Some(head_commit),
            commits_since: Vec::new(),
            older_keys: Vec::new(),
        })?;
        if cur.row.key_epoch != transfer.key_epoch {
            return Err(ApiError::Conflict(
                "the case was re-keyed since it was offered: the sender must offer it again".into(),
            ));
        }
        let mut dir = directory(&store, &caller)?;
        let assignee = dir.new_holder(req.assign)?;
        let (key_epoch, after) = if transfer.keep_access {
            // The sending society's holders keep their rows: the digest names them as their rows
            // are wrapped, plus the assignee. Their keys are in the sending society's directory.
            let ids: Vec<Uuid> = holders.iter().map(|h| h.recipient).collect();
            for m in store.members_by_ids(&ids)? {
                dir.members.entry(m.id).or_insert(m);
            }
            let from = *transfer.from_society.as_uuid();
            let after = dir.rows_digest(
                &caller,
                holders
                    .iter()
                    .filter(|h| h.recipient != from)
                    .map(|h| (h.recipient, h.keys_digest.as_deref()))
                    .chain(std::iter::once((assignee.member_id, None))),
            )?;
            (cur.row.key_epoch, after)
        } else {
            let after = holders_digest(std::slice::from_ref(&assignee))
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
            (cur.row.key_epoch + 1, after)
        };
        let member_keys = epoch_keys(req.member_keys, key_epoch, "the assignee's data key")?;
        let escrow_keys = epoch_keys(req.escrow_keys, key_epoch, "the escrow key's data key")?;
        let commit = check_commit(
            &req.commit.0,
            &caller,
            &dir,
            &Expected {
                op: CommitOp::Transfer,
                case: case_id,
                seq: cur.row.version + 1,
                parent: cur.head,
                key_epoch,
                status: cur.row.status,
                state: digest_of(case_id, &cur.entries)?,
                holders: after,
            },
        )?;
        let assigned = MemberId::from_uuid(assignee.member_id);
        Ok(store.accept_transfer(
            &TransferAcceptance {
                transfer: id,
                society: caller.society_id,
                by: caller.member_id,
                parent: cur.head.0.to_vec(),
                commit,
                key_epoch,
                assignee: assigned,
                member_keys,
                escrow_keys,
                escrow_recipient: req.escrow_recipient,
                wrapped_for: dir.recipient_keys(std::iter::once(assignee.member_id)),
            },
            now,
        )?)
    })
    .await?;
    tracing::info!(transfer = %id, case = %row.id, by = %caller.member_id, "transfer accepted");
    Ok(HttpResponse::Ok().json(summary(row, None)))
}

/// Reject a pending transfer (an admin of the receiving society) or cancel it (an admin of the
/// sending one; both need a recent passkey sign-in). The case stays where it is.
#[utoipa::path(tag = "transfers", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TransferDto), (status = 404, body = Problem), (status = 409, body = Problem)))]
#[post("/transfers/{id}/reject")]
pub(super) async fn reject_transfer(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let store = state.store.clone();
    let now = state.now();
    let row =
        blocking(move || Ok(store.close_transfer(caller.society_id, id, caller.member_id, now)?))
            .await?;
    let verb = if row.state == TransferState::Rejected {
        "transfer rejected"
    } else {
        "transfer cancelled"
    };
    tracing::info!(transfer = %id, by = %caller.member_id, "{verb}");
    Ok(HttpResponse::Ok().json(transfer_dto(row)))
}
