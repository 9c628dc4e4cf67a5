//! Cases in conflict (`docs/sync.md`, "Conflicts and merges"): changed on two instances while they
//! were apart, so this server keeps the other side's version beside its own. A holder lists them
//! (`GET /v1/conflicts`) and reads both versions of one (`GET /v1/cases/{id}/conflict`), to verify
//! each as a whole and show them side by side. Part of `cases`: every case access passes through it.

use actix_web::{get, post, web, HttpResponse};
use rfl_crypto::{CommitHash, CommitOp, StateEntry};
use rfl_domain::api::{
    CaseConflictDto, CaseDto, CaseSummaryDto, ConflictSummaryDto, ConflictsDto, EpochKeyDto,
    MergeRequest, MergedBranchDto,
};
use rfl_domain::{CaseId, CaseStatus};

use super::{
    check_commit, check_fresh, digest_of, for_commit, record_dto, state_after, summary, Expected,
};
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
            .filter(|b| b.merged_at.is_none())
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

/// The version of a case that this server kept when it took the other side's merge (holders
/// only): its commits after the fork, for a client that verified one of them to follow the merge's
/// second parent. 404 when the case has no merged version, or the caller does not hold it.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = MergedBranchDto), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
#[get("/cases/{id}/merged")]
pub(super) async fn get_merged(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let store = state.store.clone();
    let dto = blocking(move || {
        if !store.holds_case(caller.member_id, id)? {
            return Err(ApiError::NotFound);
        }
        let branch = store
            .case_branches(&[id], false)?
            .remove(&id)
            .filter(|b| b.merged_at.is_some())
            .ok_or(ApiError::NotFound)?;
        Ok(MergedBranchDto {
            fork_seq: branch.fork_seq,
            commits: branch.commits.into_iter().map(Into::into).collect(),
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

/// Resolve a case's conflict with a merge commit (holders only; format 4): the next commit on this
/// server's head, naming the other version's head as its second parent, stating the case's records
/// after both versions are brought together (the records it sends are sealed under the case's key
/// epoch, each new or later than this server's version of it) and one of the two versions'
/// statuses, with the holders of this server's version. The conflict is then resolved here, and
/// the other version's commits stay, named by the merge. 409 when the case is not in conflict, or
/// either version moved since the caller opened them.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = MergeRequest, responses(
    (status = 200, body = CaseSummaryDto), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem)))]
#[post("/cases/{id}/merge")]
pub(super) async fn merge(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    path: web::Path<CaseId>,
    body: web::Json<MergeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let req = body.into_inner();
    if req.records.len() > 1000 {
        return Err(ApiError::Unprocessable("send at most 1000 records".into()));
    }
    let now = state.now();
    let st = state.clone();
    let row = blocking(move || {
        let (dir, cur) = for_commit(&st.store, &caller, id)?;
        check_fresh(&req.commit.0, id, cur.row.version + 1, cur.head)?;
        let branch = st
            .store
            .case_branches(&[id], true)?
            .remove(&id)
            .filter(|b| b.merged_at.is_none())
            .ok_or_else(|| {
                ApiError::Conflict(format!(
                    "case {id} is not in conflict: there is nothing to merge"
                ))
            })?;
        let theirs = parse_head(branch.commits.last())?;
        let their_status = CaseStatus::from_code(theirs.status)
            .ok_or_else(|| ApiError::Internal("a kept branch states an unknown status".into()))?;
        if req.status != cur.row.status && req.status != their_status {
            return Err(ApiError::Unprocessable(
                "a merge states the status of one of the two versions".into(),
            ));
        }
        let (state, writes) = state_after(
            id,
            &cur,
            &req.records,
            &st.config.limits,
            |entry, held| match held {
                Some(held) if held.version >= entry.version => {
                    Err(ApiError::Unprocessable(format!(
                        "record {}: a merge writes a version later than this server's",
                        entry.record_id
                    )))
                }
                _ => Ok(()),
            },
        )?;
        // A merge loses nothing: every record of the other version is in it, as late.
        if branch.records.iter().any(|r| {
            state
                .get(r.id.as_uuid())
                .is_none_or(|e| e.version < r.version)
        }) {
            return Err(ApiError::Unprocessable(
                "a merge keeps every record of both versions, each at a version at least as late \
                 as either's: a record of the other version is missing or older"
                    .into(),
            ));
        }
        let entries: Vec<StateEntry> = state.into_values().collect();
        let commit = check_commit(
            &req.commit.0,
            &caller,
            &dir,
            &Expected {
                op: CommitOp::Merge,
                case: id,
                seq: cur.row.version + 1,
                parent: cur.head,
                key_epoch: cur.row.key_epoch,
                status: req.status,
                state: digest_of(id, &entries)?,
                holders: cur.holders,
            },
        )?;
        let second = rfl_crypto::parse_commit(&req.commit.0)
            .ok()
            .and_then(|c| c.second_parent());
        if second
            != Some(CommitHash::from_slice(&branch.head_hash).map_err(|_| {
                ApiError::Internal("a kept branch's head hash is not 32 bytes".into())
            })?)
        {
            return Err(ApiError::Conflict(format!(
                "case {id}: the merge does not name the other version's head, which moved since \
                 you opened it: reload it and retry"
            )));
        }
        Ok(st.store.write_merge(
            caller.member_id,
            id,
            &cur.head.0,
            &commit,
            &writes,
            &branch.head_hash,
            now,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(summary(row, None)))
}
