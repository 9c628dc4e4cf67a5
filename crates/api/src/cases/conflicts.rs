//! Cases in conflict (`docs/sync.md`, "Conflicts and merges"): changed on two instances while they
//! were apart, so this server keeps the other side's version beside its own. A holder lists them
//! (`GET /v1/conflicts`) and reads both versions of one (`GET /v1/cases/{id}/conflict`), to verify
//! each as a whole and show them side by side. Part of `cases`: every case access passes through it.

use actix_web::{get, web, HttpResponse};
use rfl_domain::api::{CaseConflictDto, CaseDto, ConflictSummaryDto, ConflictsDto, EpochKeyDto};
use rfl_domain::CaseId;

use super::{record_dto, summary};
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, CaseHolders};
use crate::{blocking, State};

/// The cases the caller holds that are in conflict, in id order.
#[utoipa::path(tag = "cases", security(("bearer" = [])), responses(
    (status = 200, body = ConflictsDto), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/conflicts")]
pub(super) async fn list_conflicts(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let held = blocking(move || Ok(store.conflicts_held(caller.member_id)?)).await?;
    Ok(HttpResponse::Ok().json(ConflictsDto {
        conflicts: held
            .into_iter()
            .map(|c| ConflictSummaryDto {
                case: summary(c.case, None),
                fork_seq: c.fork_seq,
                their_version: c.their_version,
                kept_at: c.kept_at,
            })
            .collect(),
    }))
}

/// Both versions of a case in conflict (holders only): this server's commits from the last one
/// both share to its head, and the other side's version whole, its data keys wrapped to the
/// caller. 404 when the case is not in conflict, or the caller does not hold it.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = CaseConflictDto), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
#[get("/cases/{id}/conflict")]
pub(super) async fn get_conflict(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let store = state.store.clone();
    let me = *caller.member_id.as_uuid();
    let dto = blocking(move || {
        let branch = store
            .case_branches(&[id], true)?
            .remove(&id)
            .ok_or(ApiError::NotFound)?;
        // The caller's read of the case: it must hold it, and gets this server's commits from
        // the shared one on (commits after `since`, then the head).
        let since = branch.fork_seq.saturating_sub(1);
        let ours = store
            .get_case(caller.member_id, id, Some(since))?
            .ok_or(ApiError::NotFound)?;
        let head = parse_head(branch.commits.last())?;
        let mut case = summary(ours.case, Some(branch.records.len() as i64));
        case.version = branch.head_seq;
        case.key_epoch = head.key_epoch;
        case.status = rfl_domain::CaseStatus::from_code(head.status)
            .ok_or_else(|| ApiError::Internal("a kept branch states an unknown status".into()))?;
        let mut mine: Vec<_> = branch
            .keys
            .iter()
            .filter(|k| k.recipient_id == me)
            .collect();
        mine.sort_by_key(|k| k.key_epoch);
        let wrapped_key = mine
            .iter()
            .find(|k| k.key_epoch == head.key_epoch)
            .map(|k| k.wrapped.clone())
            .unwrap_or_default();
        let older_keys = mine
            .iter()
            .filter(|k| k.key_epoch < head.key_epoch)
            .map(|k| EpochKeyDto {
                key_epoch: k.key_epoch,
                wrapped: k.wrapped.clone().into(),
            })
            .collect();
        let mut commits = branch.commits;
        let their_head = commits.pop();
        let mut ours_commits: Vec<_> = ours.commits_since;
        ours_commits.extend(ours.head_commit);
        Ok(CaseConflictDto {
            fork_seq: branch.fork_seq,
            ours: ours_commits.into_iter().map(Into::into).collect(),
            theirs: CaseDto {
                case,
                wrapped_key: wrapped_key.into(),
                records: branch
                    .records
                    .into_iter()
                    .map(record_dto)
                    .collect::<Result<_, _>>()?,
                head_commit: their_head.map(Into::into),
                commits: commits.into_iter().map(Into::into).collect(),
                older_keys,
            },
            kept_at: branch.created_at,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(dto))
}

/// What a kept branch's head states of the case (its commits were verified before they were kept).
fn parse_head(head: Option<&Vec<u8>>) -> Result<rfl_crypto::CommitBody, ApiError> {
    let head = head.ok_or_else(|| ApiError::Internal("a kept branch has no commit".into()))?;
    rfl_crypto::parse_commit(head)
        .map(|c| *c.body())
        .map_err(|_| ApiError::Internal("a kept branch's commit does not parse".into()))
}
