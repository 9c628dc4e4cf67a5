//! Key epochs: a re-key commit starts a case's next epoch (`POST /v1/cases/rekey`), and a society
//! admin lists the cases a member holds to re-key them when the member is revoked
//! (`GET /v1/members/{id}/cases`). Part of `cases`: every case access passes through it.
//!
//! The server cannot check that the new data key is the one the commit commits to (it holds no
//! key); each holder's client does when it opens the case. What it checks, for every case of a
//! request, before anything is written:
//! - the caller holds the case's current epoch, or is an admin of its society (who re-keys the
//!   cases of a member they revoke without holding them);
//! - the new key is wrapped to the society escrow key and otherwise only to members who hold the
//!   case now and may still receive a key (active caseworkers and admins): a re-key never adds a
//!   holder, and never keeps a suspended one;
//! - the commit is the next on the head, at the next key epoch, with the head's records and
//!   status, signed by the caller, and states the holders digest of exactly those members.
//!
//! Members who held the case and are not given the new key lose every key row of it. A request is
//! one transaction: all its cases are re-keyed, or none.

use std::collections::{HashMap, HashSet};

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use rfl_crypto::{parse_commit, CommitOp};
use rfl_domain::api::{
    CasesElsewhereDto, CasesElsewhereResponse, EpochKeyDto, HolderDto, MemberCaseDto,
    MemberCasesResponse, RekeyDto, RekeyRequest, RekeyResponse, SuspendedHolderDto,
    SuspendedHoldersResponse,
};
use rfl_domain::{CaseId, MemberId, Role};
use rfl_storage::{CaseHead, EpochKeys, HolderRow, Member, RekeyWrite, WrappedKey};

use super::{
    check_commit, check_fresh, holder_of, page_limit, summary, Directory, Expected, ListQuery,
};
use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, CaseHolders, SocietyAdmins};
use crate::{blocking, State};

/// Most cases one re-key request carries (one transaction).
pub(super) const MAX_REKEY: usize = 1000;
/// Largest wrapped key accepted (an escrow batch wrapping carries its age header).
const MAX_WRAPPED: usize = 4096;

/// The holders of a case as the API lists them: role and keys digest from the society's members
/// (one read for all), since when from the key rows. A holder who left the society is still
/// listed: the key is theirs.
pub(super) fn holder_dtos(
    members: &HashMap<uuid::Uuid, Member>,
    rows: Vec<HolderRow>,
) -> Result<Vec<HolderDto>, ApiError> {
    rows.into_iter()
        .map(|row| {
            let (role, keys_digest) = match (members.get(&row.recipient), &row.keys_digest) {
                // A row still wrapped to keys the member rotated away from names those keys.
                (Some(m), Some(d)) => (Some(m.role), Some(crate::hex(d))),
                (Some(m), None) => (Some(m.role), Some(crate::hex(&holder_of(m)?.keys_digest))),
                (None, _) => (None, None),
            };
            Ok(HolderDto {
                recipient_id: row.recipient,
                role,
                keys_digest,
                since: row.since,
            })
        })
        .collect()
}

/// Checks one case's re-key against the case as it stands.
fn check_rekey(
    caller: &Caller,
    dir: &Directory,
    head: &CaseHead,
    dto: &RekeyDto,
) -> Result<RekeyWrite, ApiError> {
    let case = dto.case_id;
    let bad = |what: &str| ApiError::Unprocessable(format!("case {case}: {what}"));
    let society = *caller.society_id.as_uuid();
    let holders: HashSet<uuid::Uuid> = head.holders.iter().map(|h| h.recipient).collect();
    if !holders.contains(caller.member_id.as_uuid()) && caller.role != Role::SocietyAdmin {
        return Err(ApiError::NotFound);
    }
    let parent_hash = super::head_hash(&head.case)?;
    check_fresh(&dto.commit.0, case, head.case.version + 1, parent_hash)?;
    let mut given = HashSet::new();
    for k in &dto.keys {
        if !given.insert(k.recipient_id) {
            return Err(bad("a recipient is named twice"));
        }
        if k.wrapped.0.is_empty() || k.wrapped.0.len() > MAX_WRAPPED {
            return Err(bad("a wrapped key has a bad size"));
        }
        if k.recipient_id == society {
            continue;
        }
        if !holders.contains(&k.recipient_id) {
            return Err(bad(&format!(
                "{} does not hold the case: a re-key only keeps holders (grant the case to add one)",
                k.recipient_id
            )));
        }
        if !dir.may_receive(MemberId::from_uuid(k.recipient_id)) {
            return Err(bad(&format!(
                "member {} is not an active caseworker or admin (suspended, or of no society holding \
                 the case): leave them out",
                k.recipient_id
            )));
        }
    }
    if !given.contains(&society) {
        return Err(bad(
            "the new data key must be wrapped to the society escrow key",
        ));
    }
    let parent = parse_commit(&head.head_commit)
        .map_err(|_| ApiError::Internal("stored head commit malformed".into()))?;
    let next_epoch = head
        .case
        .key_epoch
        .checked_add(1)
        .ok_or_else(|| bad("the case has reached its last key epoch"))?;
    let commit = check_commit(
        &dto.commit.0,
        caller,
        dir,
        &Expected {
            op: CommitOp::Rekey,
            case,
            seq: head.case.version + 1,
            parent: parent_hash,
            key_epoch: next_epoch,
            status: head.case.status,
            state: parent.body().state,
            holders: dir.holders_digest(caller, given.iter().copied())?,
        },
    )?;
    let mut removed: Vec<uuid::Uuid> = holders
        .into_iter()
        .filter(|h| *h != society && !given.contains(h))
        .collect();
    let me = *caller.member_id.as_uuid();
    // Whose earlier rows are re-wrapped: the caller's own (after rotating its keys), or, by a
    // society admin, a member they reset (re-wrapped from the escrow key).
    let target = match dto.older_keys_of {
        None => me,
        Some(m) if caller.role == Role::SocietyAdmin => *m.as_uuid(),
        Some(_) => {
            return Err(ApiError::Forbidden(
                "only a society admin re-wraps another member's earlier keys",
            ))
        }
    };
    let mut older = Vec::new();
    if !dto.own_older_keys.is_empty() {
        // The rows of every earlier epoch: all of them go, and these take their place.
        if !given.contains(&target) {
            return Err(bad(
                "only a holder who keeps the case gets its earlier keys re-wrapped",
            ));
        }
        let epochs: Vec<u32> = dto.own_older_keys.iter().map(|k| k.key_epoch).collect();
        if epochs != (1..next_epoch).collect::<Vec<u32>>() {
            return Err(bad(&format!(
                "send your data key of every earlier key epoch (1 to {}), in order, each once",
                next_epoch - 1
            )));
        }
        if dto
            .own_older_keys
            .iter()
            .any(|k| k.wrapped.0.is_empty() || k.wrapped.0.len() > MAX_WRAPPED)
        {
            return Err(bad("a wrapped key has a bad size"));
        }
        removed.push(target);
        older = dto
            .own_older_keys
            .iter()
            .map(|k| {
                (
                    k.key_epoch,
                    WrappedKey {
                        recipient_id: target,
                        wrapped: k.wrapped.0.clone(),
                    },
                )
            })
            .collect();
    }
    Ok(RekeyWrite {
        case,
        parent: parent_hash.0.to_vec(),
        commit,
        key_epoch: next_epoch,
        keys: dto.keys.iter().map(WrappedKey::from).collect(),
        removed,
        older,
    })
}

/// Start the next key epoch of cases: for each, a new data key wrapped to the holders who keep the
/// case and to the society escrow key, with a signed re-key commit on its head. A holder re-keys a
/// case to drop another holder (ungrant); a society admin re-keys the cases of a member they
/// revoke. All or nothing: a case changed since its head was read is refused with 409, and nothing
/// is written.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("rfl-escrow-key" = String, Header, pattern = "^age1[0-9a-z]{1,1020}$", description = "The society escrow key (age recipient) the escrow wrappings were made for: refused with 409 unless it is the current one")),
    request_body = RekeyRequest, responses(
    (status = 200, body = RekeyResponse), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, body = Problem), (status = 422, body = Problem)))]
#[post("/cases/rekey")]
pub(super) async fn rekey(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    http: HttpRequest,
    body: web::Json<RekeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let escrow = super::escrow_key(&http)?;
    let req = body.into_inner();
    if req.cases.is_empty() || req.cases.len() > MAX_REKEY {
        return Err(ApiError::Unprocessable(format!(
            "send 1 to {MAX_REKEY} cases"
        )));
    }
    let now = state.now();
    let store = state.store.clone();
    let n = req.cases.len();
    blocking(move || {
        let mut dir = super::directory(&store, &caller)?;
        let mut seen = HashSet::new();
        let ids: Vec<CaseId> = req.cases.iter().map(|c| c.case_id).collect();
        if let Some(twice) = ids.iter().find(|id| !seen.insert(**id)) {
            return Err(ApiError::Unprocessable(format!(
                "case {twice} is given twice"
            )));
        }
        let heads: HashMap<CaseId, CaseHead> = store
            .case_heads(caller.society_id, &ids)?
            .into_iter()
            .map(|h| (h.case.id, h))
            .collect();
        // Holders of another society kept in a case this society owns (transferred to it with the
        // sender keeping access): their member rows too, in one read.
        let society = *caller.society_id.as_uuid();
        let foreign: Vec<uuid::Uuid> = req
            .cases
            .iter()
            .flat_map(|c| c.keys.iter().map(|k| k.recipient_id))
            .filter(|r| *r != society && !dir.members.contains_key(&MemberId::from_uuid(*r)))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !foreign.is_empty() {
            for m in store.members_by_ids(&foreign)? {
                dir.members.entry(m.id).or_insert(m);
            }
        }
        let writes = req
            .cases
            .iter()
            .map(|dto| {
                let head = heads.get(&dto.case_id).ok_or(ApiError::NotFound)?;
                check_rekey(&caller, &dir, head, dto)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let wrapped_for = dir.recipient_keys(writes.iter().flat_map(|w| {
            w.keys
                .iter()
                .chain(w.older.iter().map(|(_, k)| k))
                .map(|k| k.recipient_id)
        }));
        store.rekey_cases(caller.society_id, &escrow, &writes, &wrapped_for, now)?;
        Ok(())
    })
    .await?;
    tracing::info!(by = %caller.member_id, cases = n, "cases re-keyed");
    Ok(HttpResponse::Ok().json(RekeyResponse { rekeyed: n }))
}

/// The cases of the society a member holds a key of the current epoch for (society admin), each
/// with its head commit and holders: what the admin re-keys when revoking the member, or when
/// another society revoked one of its members who holds cases of this one. A page at a time, in
/// case-id order.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = MemberCasesResponse), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem)))]
#[get("/members/{id}/cases")]
pub(super) async fn member_cases(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<MemberId>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    admin_member_page(
        state,
        caller,
        path,
        query,
        Whose::AnySociety,
        |store, caller, member, after, limit| {
            let heads = store.member_cases(caller.society_id, member, after, limit)?;
            Ok((heads, HashMap::new()))
        },
    )
    .await
}

/// How many cases of each other society a member of the caller's society holds (society admin):
/// cases transferred with the sender keeping access, which only their owning society re-keys. What
/// the admin revoking the member tells those societies' admins.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = CasesElsewhereResponse), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem)))]
#[get("/members/{id}/cases-elsewhere")]
pub(super) async fn member_cases_elsewhere(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<MemberId>,
) -> Result<HttpResponse, ApiError> {
    let member = path.into_inner();
    let store = state.store.clone();
    let rows = blocking(move || {
        if !society_members(&store, &caller)?.contains_key(member.as_uuid()) {
            return Err(ApiError::NotFound);
        }
        Ok(store.member_cases_elsewhere(caller.society_id, member)?)
    })
    .await?;
    let societies = rows
        .into_iter()
        .map(|(society_id, cases)| CasesElsewhereDto { society_id, cases })
        .collect();
    Ok(HttpResponse::Ok().json(CasesElsewhereResponse { societies }))
}

/// Members of other societies, suspended there, who still hold a key of the current epoch of a
/// case this society owns (society admin): a case transferred to it with the sender keeping
/// access. The admin's client checks each one's revocation on their society's signed list (through
/// the Movement root) before re-keying their cases here (`rfl society rekey-revoked`).
#[utoipa::path(tag = "cases", security(("bearer" = [])),
    responses((status = 200, body = SuspendedHoldersResponse), (status = 403, body = Problem)))]
#[get("/society/suspended-holders")]
pub(super) async fn suspended_holders(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let holders = blocking(move || Ok(store.suspended_foreign_holders(caller.society_id)?)).await?;
    let holders = holders
        .into_iter()
        .map(|h| SuspendedHolderDto {
            member_id: h.member,
            society_id: h.society,
            cases: h.cases,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SuspendedHoldersResponse { holders }))
}

/// The cases of the society where a member an admin reset (who lost every authenticator) still has
/// key rows wrapped to their revoked keys (society admin), each with its head commit, holders and
/// escrow wrappings of every key epoch: what the admin re-wraps to the member's new keys from the
/// escrow key (`rfl member rewrap`). A page at a time, in case-id order.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(("id" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = MemberCasesResponse), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem)))]
#[get("/members/{id}/retired-cases")]
pub(super) async fn member_retired_cases(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<MemberId>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    admin_member_page(
        state,
        caller,
        path,
        query,
        Whose::OwnSociety,
        |store, caller, member, after, limit| {
            let heads = store.retired_member_cases(caller.society_id, member, after, limit)?;
            let ids: Vec<CaseId> = heads.iter().map(|h| h.case.id).collect();
            let escrow = store.escrow_keys_of(caller.society_id, &ids)?;
            Ok((heads, escrow))
        },
    )
    .await
}

/// Whose cases an admin may list: a member of their own society, or a member of any society (the
/// cases listed are the admin's society's in either case).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Whose {
    OwnSociety,
    AnySociety,
}

/// A page of the cases `list` gives for a member (society admins), each with the escrow wrappings
/// `list` gives for it, if any; holders of either society are named with their keys.
async fn admin_member_page(
    state: State,
    caller: Caller,
    path: web::Path<MemberId>,
    query: web::Query<ListQuery>,
    whose: Whose,
    list: impl FnOnce(
            &rfl_storage::Store,
            &Caller,
            MemberId,
            Option<CaseId>,
            i64,
        ) -> Result<(Vec<CaseHead>, HashMap<CaseId, EpochKeys>), ApiError>
        + Send
        + 'static,
) -> Result<HttpResponse, ApiError> {
    let member = path.into_inner();
    let q = query.into_inner();
    let limit = page_limit(q.limit, state.config.limits.page_max)?;
    let store = state.store.clone();
    let resp = blocking(move || {
        let mut members = society_members(&store, &caller)?;
        if !members.contains_key(member.as_uuid()) {
            let elsewhere = whose == Whose::AnySociety
                && !store.members_by_ids(&[*member.as_uuid()])?.is_empty();
            if !elsewhere {
                return Err(ApiError::NotFound);
            }
        }
        let (heads, mut escrow) = list(&store, &caller, member, q.after, limit)?;
        // Holders of another society (a case shared by transfer): their rows too, in one read.
        let foreign: Vec<uuid::Uuid> = heads
            .iter()
            .flat_map(|h| h.holders.iter().map(|r| r.recipient))
            .filter(|r| *r != *caller.society_id.as_uuid() && !members.contains_key(r))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !foreign.is_empty() {
            for m in store.members_by_ids(&foreign)? {
                members.entry(*m.id.as_uuid()).or_insert(m);
            }
        }
        let mut page = cases_page(&members, heads, limit)?;
        for c in &mut page.cases {
            c.escrow_keys = escrow
                .remove(&c.case.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(key_epoch, wrapped)| EpochKeyDto {
                    key_epoch,
                    wrapped: wrapped.into(),
                })
                .collect();
        }
        Ok(page)
    })
    .await?;
    Ok(HttpResponse::Ok().json(resp))
}

/// The cases where the caller still has a key row wrapped to keys it rotated away from, each with
/// its head commit and holders: what its client re-wraps to its new keys (`rfl keys rotate`). A
/// page at a time, in case-id order.
#[utoipa::path(tag = "cases", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = MemberCasesResponse), (status = 400, body = Problem), (status = 403, body = Problem)))]
#[get("/me/retired-cases")]
pub(super) async fn retired_cases(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = page_limit(q.limit, state.config.limits.page_max)?;
    let store = state.store.clone();
    let resp = blocking(move || {
        let members = society_members(&store, &caller)?;
        let heads =
            store.retired_member_cases(caller.society_id, caller.member_id, q.after, limit)?;
        cases_page(&members, heads, limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(resp))
}

/// The caller's society's members by id (one read).
fn society_members(
    store: &rfl_storage::Store,
    caller: &Caller,
) -> Result<HashMap<uuid::Uuid, Member>, ApiError> {
    Ok(store
        .society_members(caller.society_id)?
        .into_iter()
        .map(|m| (*m.id.as_uuid(), m))
        .collect())
}

/// A page of cases with their heads and holders; `next_after` when the page is full.
fn cases_page(
    members: &HashMap<uuid::Uuid, Member>,
    heads: Vec<CaseHead>,
    limit: i64,
) -> Result<MemberCasesResponse, ApiError> {
    let next_after = if heads.len() as i64 == limit {
        heads.last().map(|h| h.case.id)
    } else {
        None
    };
    let cases = heads
        .into_iter()
        .map(|h| {
            Ok(MemberCaseDto {
                holders: holder_dtos(members, h.holders)?,
                head_commit: h.head_commit.into(),
                case: summary(h.case, None),
                escrow_keys: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(MemberCasesResponse { cases, next_after })
}
