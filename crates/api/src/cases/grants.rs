//! Sharing a case within a society: a holder wraps the case's current data key to another member
//! with a signed grant commit (`POST /v1/cases/{id}/grants`), and any holder lists who holds it
//! (`GET /v1/cases/{id}/holders`). Part of `cases`: every case access passes through it.
//!
//! The server cannot check that the wrapped key opens (it holds no key); the grantee's client
//! does, against the commit's key commitment. What it checks: the caller holds the case, the
//! grantee is an active caseworker or admin of the society who does not hold it yet, and the grant
//! commit is the next on the head, keeps the records, status and key epoch, and states the holders
//! digest of the current holders plus the grantee.

use actix_web::{get, post, web, HttpResponse};
use rfl_crypto::CommitOp;
use rfl_domain::api::{CaseSummaryDto, GrantRequest, HoldersResponse};
use rfl_domain::{CaseId, MemberId};
use rfl_storage::WrappedKey;

use super::{check_commit, check_fresh, digest_of, for_commit, summary, Expected};
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, CaseHolders};
use crate::{blocking, State};

/// Largest wrapped key accepted (an age X25519 wrap is about 200 bytes; a plugin's may be larger).
const MAX_WRAPPED: usize = 4096;

/// Give another member of the society the case (a holder): the case's current data key wrapped to
/// their certified age recipient, with a signed grant commit on top of the head. A commit whose parent
/// is not the head is refused with 409, a member who holds the case already with 409.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = GrantRequest, responses(
    (status = 200, body = CaseSummaryDto), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem)))]
#[post("/cases/{id}/grants")]
pub(super) async fn grant(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
    body: web::Json<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let req = body.into_inner();
    if req.wrapped.0.is_empty() || req.wrapped.0.len() > MAX_WRAPPED {
        return Err(ApiError::Unprocessable(
            "the wrapped key has a bad size".into(),
        ));
    }
    let now = state.now();
    let store = state.store.clone();
    let row = blocking(move || {
        let (mut dir, cur) = for_commit(&store, &caller, id)?;
        check_fresh(&req.commit.0, id, cur.row.version + 1, cur.head)?;
        let current = store
            .case_holders(caller.member_id, id)?
            .ok_or(ApiError::NotFound)?
            .holders;
        let grantee = dir.new_holder(req.member_id)?;
        // Holders of another society (a case transferred to this one, or from it, with the
        // sender keeping access) are named with their registered keys too.
        let foreign: Vec<uuid::Uuid> = current
            .iter()
            .map(|h| h.recipient)
            .filter(|r| {
                *r != *cur.row.society_id.as_uuid()
                    && !dir.members.contains_key(&MemberId::from_uuid(*r))
            })
            .collect();
        if !foreign.is_empty() {
            for m in store.members_by_ids(&foreign)? {
                dir.members.entry(m.id).or_insert(m);
            }
        }
        // Records sealed before a re-key stay under their epoch's key: the grantee gets every
        // earlier epoch's key too, each once.
        let epochs: Vec<u32> = req.older_keys.iter().map(|k| k.key_epoch).collect();
        if epochs != (1..cur.row.key_epoch).collect::<Vec<u32>>() {
            return Err(ApiError::Unprocessable(format!(
                "send the data key of every earlier key epoch (1 to {}), in order, each once",
                cur.row.key_epoch.saturating_sub(1)
            )));
        }
        if req
            .older_keys
            .iter()
            .any(|k| k.wrapped.0.is_empty() || k.wrapped.0.len() > MAX_WRAPPED)
        {
            return Err(ApiError::Unprocessable(
                "a wrapped key has a bad size".into(),
            ));
        }
        if current.iter().any(|h| h.recipient == grantee.member_id) {
            return Err(ApiError::Conflict(format!(
                "member {} holds this case already",
                req.member_id
            )));
        }
        // The current holders as their rows are wrapped (a holder who rotated their keys and
        // has not re-wrapped yet is named with the keys they rotated away from).
        let after = dir.rows_digest(
            &caller,
            current
                .iter()
                .filter(|h| h.recipient != *cur.row.society_id.as_uuid())
                .map(|h| (h.recipient, h.keys_digest.as_deref()))
                .chain(std::iter::once((grantee.member_id, None))),
        )?;
        let commit = check_commit(
            &req.commit.0,
            &caller,
            &dir,
            &Expected {
                op: CommitOp::Grant,
                case: id,
                seq: cur.row.version + 1,
                parent: cur.head,
                key_epoch: cur.row.key_epoch,
                status: cur.row.status,
                state: digest_of(id, &cur.entries)?,
                holders: after,
            },
        )?;
        Ok(store.write_commit(
            caller.member_id,
            id,
            &cur.head.0,
            &commit,
            &[],
            &std::iter::once((cur.row.key_epoch, req.wrapped.0))
                .chain(
                    req.older_keys
                        .into_iter()
                        .map(|k| (k.key_epoch, k.wrapped.0)),
                )
                .map(|(epoch, wrapped)| {
                    (
                        epoch,
                        WrappedKey {
                            recipient_id: grantee.member_id,
                            wrapped,
                        },
                    )
                })
                .collect::<Vec<_>>(),
            &dir.recipient_keys(std::iter::once(grantee.member_id)),
            now,
        )?)
    })
    .await?;
    tracing::info!(case = %id, by = %caller.member_id, member = %req.member_id, "case granted");
    Ok(HttpResponse::Ok().json(summary(row, None)))
}

/// Who holds the case's current data key: its members (with role, the digest of their registered
/// keys and since when) and the society escrow key. Clients check the members against the head
/// commit's holders digest.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = HoldersResponse), (status = 404, body = Problem)))]
#[get("/cases/{id}/holders")]
pub(super) async fn holders(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let store = state.store.clone();
    let resp = blocking(move || {
        let found = store
            .case_holders(caller.member_id, id)?
            .ok_or(ApiError::NotFound)?;
        let (key_epoch, rows) = (found.key_epoch, found.holders);
        // One read of the holders' member rows (no query per holder; of either society for a
        // case transferred with the sender keeping access).
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.recipient).collect();
        let members: std::collections::HashMap<_, _> = store
            .members_by_ids(&ids)?
            .into_iter()
            .map(|m| (*m.id.as_uuid(), m))
            .collect();
        let list = super::rekey::holder_dtos(&members, rows)?;
        Ok(HoldersResponse {
            key_epoch,
            holders: list,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(resp))
}
