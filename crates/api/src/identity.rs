//! Societies, enrolment, key login, and the member key directory.

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use rfl_crypto::{AgeRecipient, DevicePublicKey};
use rfl_domain::api::{
    ChallengeRequest, ChallengeResponse, CreateSocietyRequest, CreateSocietyResponse, EnrolRequest,
    EnrolResponse, EnrolmentCodeInfo, EnrolmentCodeRequest, EnrolmentCodeResponse,
    EnrolmentCodesResponse, EscrowDto, MeResponse, MemberDto, MembersResponse, NextKeysDto,
    RecoveryRotation, SocietyResponse, TokenRequest, TokenResponse,
};
use rfl_domain::{MemberId, Role, SocietyId};
use rfl_storage::{Challenge, Enrolment, Member, NewEnrolmentCode, SocietyEscrow, Store};
use ring::rand::SecureRandom;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{AuthMethod, Caller};
use crate::error::{ApiError, Problem};
use crate::roles::{
    AnyMember, Authorized, CaseHolders, MovementAdmins, SocietyAdmins, SocietyPeople,
};
use crate::{blocking, State};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(enrol)
        .service(challenge)
        .service(token)
        .service(me)
        .service(society)
        .service(set_escrow)
        .service(rotate_recovery)
        .service(members)
        .service(suspend_member)
        .service(reinstate_member)
        .service(revoke_my_tokens)
        .service(create_enrolment_code)
        .service(create_society_endpoint)
        .service(list_enrolment_codes)
        .service(revoke_enrolment_code);
}

/// A fresh one-time enrolment code (128 random bits, shown as 8 groups of 4 hex digits) and its hash.
pub fn new_enrolment_code() -> Result<(String, [u8; 32]), ApiError> {
    let mut raw = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| ApiError::Internal("no randomness".into()))?;
    let hexed = hex::encode(raw);
    let code = hexed
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    let hash = hash_code(&code);
    Ok((code, hash))
}

/// Codes are compared by SHA-256 of their normal form (lower case, no separators or spaces).
pub fn hash_code(code: &str) -> [u8; 32] {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let d = ring::digest::digest(&ring::digest::SHA256, normal.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `rfl-server admin create-society`: creates the society and returns its first admin's enrolment
/// code. `id` registers a society under the id another instance already gave it (its own server,
/// for the hub it syncs with: `docs/sync.md`, "Trust across instances"); without it the society
/// gets a new id.
pub fn create_society(
    store: &Store,
    name: &str,
    id: Option<SocietyId>,
    now_millis: i64,
    code_ttl_hours: u64,
) -> Result<(SocietyId, String), ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "a society name has 1 to 200 characters".into(),
        ));
    }
    let id = id.unwrap_or_else(SocietyId::new);
    let (code, code_hash) = new_enrolment_code()?;
    store.create_society(
        id,
        name,
        NewEnrolmentCode {
            code_hash,
            society_id: id,
            role: Role::SocietyAdmin,
            created_by: None,
            created_at: now_millis,
            expires_at: now_millis + hours_to_millis(code_ttl_hours),
            for_member: None,
        },
        now_millis,
    )?;
    Ok((id, code))
}

/// The tenant that Movement admins belong to. It holds no cases.
pub const MOVEMENT_TENANT: &str = "Movement administration";

/// `rfl-server admin create-movement-admin`: an enrolment code for a Movement admin, who creates
/// national societies and can read no society's cases.
pub fn movement_admin_code(
    store: &Store,
    now_millis: i64,
    code_ttl_hours: u64,
) -> Result<String, ApiError> {
    let tenant = match store.society_by_name(MOVEMENT_TENANT)? {
        Some(s) => s.id,
        None => create_society(store, MOVEMENT_TENANT, None, now_millis, code_ttl_hours)?.0,
    };
    let (code, code_hash) = new_enrolment_code()?;
    store.insert_enrolment_code(&NewEnrolmentCode {
        code_hash,
        society_id: tenant,
        role: Role::MovementAdmin,
        created_by: None,
        created_at: now_millis,
        expires_at: now_millis + hours_to_millis(code_ttl_hours),
        for_member: None,
    })?;
    Ok(code)
}

pub(crate) fn hours_to_millis(h: u64) -> i64 {
    i64::try_from(h).unwrap_or(72).saturating_mul(3_600_000)
}

pub(crate) fn member_dto(m: Member) -> MemberDto {
    MemberDto {
        id: m.id,
        role: m.role,
        signing_key: m.signing_key.into(),
        age_recipient: m.age_recipient,
        suspended: m.suspended,
        next_keys: m.next_keys.map(|n| NextKeysDto {
            signing_key: n.signing_key.into(),
            age_recipient: n.age_recipient,
        }),
    }
}

/// Enrol a machine (a society's sync agent) with a one-time code: registers its Ed25519 device key and
/// age recipient. People enrol with a passkey instead (`/v1/enrol/passkey/start`): a person's code is
/// refused here (403).
#[utoipa::path(tag = "identity", request_body = EnrolRequest, responses(
    (status = 201, body = EnrolResponse),
    (status = 400, body = Problem), (status = 403, description = "The code is a person's: enrol with a passkey", body = Problem),
    (status = 409, description = "Code already used, or key already enrolled", body = Problem),
    (status = 410, description = "Code expired", body = Problem),
    (status = 422, description = "Unknown enrolment code, or an age recipient that does not parse", body = Problem),
    (status = 429, description = "Too many attempts from this address", body = Problem)))]
#[post("/enrol")]
async fn enrol(
    state: State,
    req: HttpRequest,
    body: web::Json<EnrolRequest>,
) -> Result<HttpResponse, ApiError> {
    state.auth_limits.address(req.peer_addr().map(|a| a.ip()))?;
    let req = body.into_inner();
    let (key, recipient) =
        crate::passkeys::parse_public_keys(&req.signing_key, &req.age_recipient)?;
    let hash = hash_code(&req.code);
    let now = state.now();
    let store = state.store.clone();
    let member = blocking(move || {
        let enrolment = Enrolment {
            member_id: MemberId::new(),
            signing_key: key.as_bytes().to_vec(),
            age_recipient: recipient.to_string(),
            // Only machines enrol with keys alone; the store refuses a person's code here.
            passkey: None,
        };
        store
            .redeem_enrolment_code(&hash, &enrolment, now)
            .map_err(|e| match e {
                rfl_storage::StorageError::NotFound => {
                    ApiError::Unprocessable("unknown enrolment code".into())
                }
                other => other.into(),
            })
    })
    .await?;
    tracing::info!(member = %member.id, society = %member.society_id, role = member.role.as_str(), "member enrolled");
    Ok(HttpResponse::Created().json(EnrolResponse {
        member_id: member.id,
        society_id: member.society_id,
        role: member.role,
    }))
}

/// Start a key login: a random challenge for the member's device key to sign.
#[utoipa::path(tag = "identity", request_body = ChallengeRequest, responses(
    (status = 200, body = ChallengeResponse), (status = 429, description = "Too many attempts", body = Problem)))]
#[post("/auth/challenge")]
async fn challenge(
    state: State,
    req: HttpRequest,
    body: web::Json<ChallengeRequest>,
) -> Result<HttpResponse, ApiError> {
    let member_id = body.into_inner().member_id;
    state.auth_limits.address(req.peer_addr().map(|a| a.ip()))?;
    state.auth_limits.account(member_id)?;
    let mut bytes = vec![0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Internal("no randomness".into()))?;
    let now = state.now();
    let expires_at = now + i64::try_from(state.config.auth.challenge_ttl_secs).unwrap_or(60) * 1000;
    let c = Challenge {
        id: uuid::Uuid::now_v7(),
        member_id,
        challenge: bytes.clone(),
        expires_at,
    };
    let store = state.store.clone();
    let id = c.id;
    blocking(move || {
        // Unknown members get a challenge too, never stored, so the answer does not tell who exists.
        if store.member(member_id)?.is_some() {
            store.insert_challenge(&c)?;
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().json(ChallengeResponse {
        challenge_id: id,
        challenge: bytes.into(),
        audience: state.config.auth.audience.clone(),
        expires_at: expires_at / 1000,
    }))
}

/// Finish a key login (sync agents only): the signed challenge buys a short-lived access token.
#[utoipa::path(tag = "identity", request_body = TokenRequest, responses(
    (status = 200, body = TokenResponse), (status = 401, body = Problem),
    (status = 429, description = "Too many attempts from this address", body = Problem)))]
#[post("/auth/token")]
async fn token(
    state: State,
    http: HttpRequest,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth_limits
        .address(http.peer_addr().map(|a| a.ip()))?;
    let req = body.into_inner();
    let now = state.now();
    let store = state.store.clone();
    let audience = state.config.auth.audience.clone();
    let member = blocking(move || {
        let c = store
            .take_challenge(req.challenge_id)?
            .ok_or(ApiError::Unauthorized(
                "login failed: unknown or used challenge",
            ))?;
        if c.expires_at <= now {
            return Err(ApiError::Unauthorized("login failed: challenge expired"));
        }
        let m = store
            .member(c.member_id)?
            .ok_or(ApiError::Unauthorized("login failed"))?;
        if m.suspended {
            return Err(ApiError::Unauthorized("login failed: account suspended"));
        }
        let key = DevicePublicKey::from_slice(&m.signing_key)
            .map_err(|_| ApiError::Internal("stored key malformed".into()))?;
        rfl_crypto::verify_auth_challenge(&key, &audience, &c.challenge, &req.signature.0)
            .map_err(|_| ApiError::Unauthorized("login failed: bad signature"))?;
        if !rfl_storage::is_machine_role(m.role) {
            // A stolen device key alone must not sign a person in: people need their authenticator.
            return Err(ApiError::Unauthorized(
                "login failed: people sign in with a passkey; key login is for sync agents",
            ));
        }
        Ok(m)
    })
    .await?;
    Ok(HttpResponse::Ok().json(state.tokens.sign_in_response(
        &member,
        AuthMethod::DeviceKey,
        now,
    )?))
}

/// Who the caller is, with their registered public keys.
#[utoipa::path(tag = "identity", security(("bearer" = [])), responses((status = 200, body = MeResponse), (status = 401, body = Problem)))]
#[get("/me")]
async fn me(
    state: State,
    Authorized(caller, _): Authorized<AnyMember>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let id = caller.member_id;
    let m = blocking(move || Ok(store.member(id)?)).await?;
    Ok(HttpResponse::Ok().json(MeResponse {
        member_id: caller.member_id,
        society_id: caller.society_id,
        role: caller.role,
        signing_key: m.as_ref().map(|m| m.signing_key.clone().into()),
        age_recipient: m.map(|m| m.age_recipient),
    }))
}

/// The caller's society, with its escrow key (public recipient and the identity wrapped to the recovery key).
#[utoipa::path(tag = "identity", security(("bearer" = [])), responses((status = 200, body = SocietyResponse), (status = 401, body = Problem)))]
#[get("/society")]
async fn society(
    state: State,
    Authorized(caller, _): Authorized<SocietyPeople>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let s = blocking(move || store.society(caller.society_id)?.ok_or(ApiError::NotFound)).await?;
    Ok(HttpResponse::Ok().json(SocietyResponse {
        id: s.id,
        name: s.name,
        escrow: s.escrow.map(|e| EscrowDto {
            recipient: e.recipient,
            wrapped_identity: e.wrapped_identity.into(),
        }),
    }))
}

/// The escrow recipient parsed, and the wrapped identity's size checked.
fn escrow_fields(recipient: &str, wrapped_identity: &[u8]) -> Result<AgeRecipient, ApiError> {
    let recipient = AgeRecipient::parse(recipient.trim()).map_err(|_| {
        ApiError::Unprocessable("recipient must be an age recipient (age1…)".into())
    })?;
    if wrapped_identity.is_empty() || wrapped_identity.len() > 16 * 1024 {
        return Err(ApiError::BadRequest(
            "wrapped_identity must be an age file of at most 16 KiB".into(),
        ));
    }
    Ok(recipient)
}

/// Set the society escrow key once (society admin). Every case key is also wrapped to it.
#[utoipa::path(tag = "identity", security(("bearer" = [])), request_body = EscrowDto, responses(
    (status = 204), (status = 403, body = Problem), (status = 409, description = "Already set", body = Problem),
    (status = 422, description = "The recipient does not parse", body = Problem)))]
#[put("/society/escrow")]
async fn set_escrow(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<EscrowDto>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let recipient = escrow_fields(&req.recipient, &req.wrapped_identity.0)?;
    let store = state.store.clone();
    blocking(move || {
        store
            .set_society_escrow(
                caller.society_id,
                &SocietyEscrow {
                    recipient: recipient.to_string(),
                    wrapped_identity: req.wrapped_identity.0,
                },
            )
            .map_err(ApiError::from)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, "society escrow key set");
    Ok(HttpResponse::NoContent().finish())
}

/// Replace the wrapping of the society escrow identity with one to a new recovery key (society
/// admin; needs a recent passkey sign-in). The escrow key and every case key wrapped to it stay as
/// they are: a recovery-key rotation is one unwrap with the old key and one wrap to the new, done by
/// the admin's client (`rfl society rotate-recovery`). Refused with 409 if the escrow key or the
/// wrapping changed since the client read it.
#[utoipa::path(tag = "identity", security(("bearer" = [])), request_body = RecoveryRotation, responses(
    (status = 204), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 409, description = "The escrow key or its wrapping changed meanwhile", body = Problem),
    (status = 422, description = "The recipient does not parse", body = Problem)))]
#[put("/society/escrow/recovery")]
async fn rotate_recovery(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<RecoveryRotation>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let recipient = escrow_fields(&req.recipient, &req.wrapped_identity.0)?;
    let replaces = req.replaces_sha256.trim().to_ascii_lowercase();
    let store = state.store.clone();
    blocking(move || {
        let current = store
            .society(caller.society_id)?
            .ok_or(ApiError::NotFound)?
            .escrow
            .ok_or_else(|| ApiError::Conflict("the society has no escrow key yet".into()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &current.wrapped_identity);
        let current_hex = crate::hex(digest.as_ref());
        if current_hex != replaces || current.recipient != recipient.to_string() {
            return Err(ApiError::Conflict(
                "the society escrow key or its wrapping changed meanwhile: reload and run again"
                    .into(),
            ));
        }
        store
            .replace_escrow_wrapping(
                caller.society_id,
                &current.recipient,
                &current.wrapped_identity,
                &req.wrapped_identity.0,
            )
            .map_err(ApiError::from)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, "society recovery key rotated");
    Ok(HttpResponse::NoContent().finish())
}

/// The key directory of the caller's society: whom case keys can be wrapped to, whose signatures count.
#[utoipa::path(tag = "identity", security(("bearer" = [])), responses((status = 200, body = MembersResponse), (status = 403, body = Problem)))]
#[get("/members")]
async fn members(
    state: State,
    Authorized(caller, _): Authorized<CaseHolders>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let list = blocking(move || Ok(store.society_members(caller.society_id)?)).await?;
    Ok(HttpResponse::Ok().json(MembersResponse {
        members: list.into_iter().map(member_dto).collect(),
    }))
}

async fn change_suspension(
    state: State,
    caller: Caller,
    member: MemberId,
    suspended: bool,
) -> Result<HttpResponse, ApiError> {
    if member == caller.member_id {
        return Err(ApiError::Unprocessable(
            "you cannot suspend or reinstate yourself".into(),
        ));
    }
    let store = state.store.clone();
    let m =
        blocking(move || Ok(store.set_suspended(caller.society_id, member, suspended)?)).await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, member = %m.id, suspended, "member suspension changed");
    Ok(HttpResponse::Ok().json(member_dto(m)))
}

/// Suspend a member of the caller's society (society admin): every token already issued to them stops
/// working on its next request, on every node, and they cannot sign in.
#[utoipa::path(tag = "identity", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)), responses(
    (status = 200, body = MemberDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
#[post("/members/{id}/suspend")]
async fn suspend_member(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<MemberId>,
) -> Result<HttpResponse, ApiError> {
    change_suspension(state, caller, path.into_inner(), true).await
}

/// Lift a suspension (society admin). Tokens issued before the suspension stay invalid.
#[utoipa::path(tag = "identity", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)), responses(
    (status = 200, body = MemberDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
#[post("/members/{id}/reinstate")]
async fn reinstate_member(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<MemberId>,
) -> Result<HttpResponse, ApiError> {
    change_suspension(state, caller, path.into_inner(), false).await
}

/// Sign out everywhere: every access token issued to the caller so far stops working.
#[utoipa::path(tag = "identity", security(("bearer" = [])), responses((status = 204), (status = 401, body = Problem)))]
#[post("/auth/revoke")]
async fn revoke_my_tokens(
    state: State,
    Authorized(caller, _): Authorized<AnyMember>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    blocking(move || Ok(store.revoke_tokens(caller.member_id)?)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The society's enrolment codes of the last 30 days (society admin): ids, roles, times; never the codes.
#[utoipa::path(tag = "identity", security(("bearer" = [])), responses(
    (status = 200, body = EnrolmentCodesResponse), (status = 403, body = Problem)))]
#[get("/enrolment-codes")]
async fn list_enrolment_codes(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
) -> Result<HttpResponse, ApiError> {
    let since = state.now() - 30 * 86_400_000;
    let store = state.store.clone();
    let rows = blocking(move || Ok(store.enrolment_codes(caller.society_id, since)?)).await?;
    Ok(HttpResponse::Ok().json(EnrolmentCodesResponse {
        codes: rows
            .into_iter()
            .map(|r| EnrolmentCodeInfo {
                id: hex::encode(&r.code_hash),
                role: r.role,
                created_at: r.created_at / 1000,
                expires_at: r.expires_at / 1000,
                used_at: r.used_at.map(|u| u / 1000),
            })
            .collect(),
    }))
}

/// Revoke an unused enrolment code (society admin): it stops working at once.
#[utoipa::path(tag = "identity", security(("bearer" = [])), params(("id" = String, Path, description = "The code's id (hex SHA-256)", pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 204), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 404, description = "Unknown, used, or another society's code", body = Problem)))]
#[delete("/enrolment-codes/{id}")]
async fn revoke_enrolment_code(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let hash = hex::decode(path.into_inner())
        .ok()
        .filter(|h| h.len() == 32)
        .ok_or_else(|| ApiError::BadRequest("a code id is 64 hex digits".into()))?;
    let now = state.now();
    let store = state.store.clone();
    blocking(move || Ok(store.revoke_enrolment_code(caller.society_id, &hash, now)?)).await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, "enrolment code revoked");
    Ok(HttpResponse::NoContent().finish())
}

/// Create a national society (Movement admin); returns its first admin's one-time enrolment code.
#[utoipa::path(tag = "identity", security(("bearer" = [])), request_body = CreateSocietyRequest, responses(
    (status = 201, body = CreateSocietyResponse), (status = 400, body = Problem), (status = 403, body = Problem),
    (status = 409, description = "A society with this name exists", body = Problem)))]
#[post("/societies")]
async fn create_society_endpoint(
    state: State,
    Authorized(caller, _): Authorized<MovementAdmins>,
    body: web::Json<CreateSocietyRequest>,
) -> Result<HttpResponse, ApiError> {
    let CreateSocietyRequest { name, id } = body.into_inner();
    let now = state.now();
    let ttl = state.config.auth.enrolment_code_ttl_hours;
    let store = state.store.clone();
    let (society_id, code) = blocking(move || create_society(&store, &name, id, now, ttl)).await?;
    tracing::info!(society = %society_id, by = %caller.member_id, "society created");
    Ok(HttpResponse::Created().json(CreateSocietyResponse {
        society_id,
        admin_enrolment_code: code,
    }))
}

/// Issue a one-time enrolment code for a new member of the caller's society (society admin).
#[utoipa::path(tag = "identity", security(("bearer" = [])), request_body = EnrolmentCodeRequest, responses(
    (status = 201, body = EnrolmentCodeResponse), (status = 403, body = Problem)))]
#[post("/enrolment-codes")]
async fn create_enrolment_code(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<EnrolmentCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let role = body.into_inner().role;
    if role == Role::MovementAdmin {
        return Err(ApiError::Forbidden(
            "a society admin cannot create Movement admins",
        ));
    }
    let (code, code_hash) = new_enrolment_code()?;
    let now = state.now();
    let expires_at = now + hours_to_millis(state.config.auth.enrolment_code_ttl_hours);
    let store = state.store.clone();
    blocking(move || {
        Ok(store.insert_enrolment_code(&NewEnrolmentCode {
            code_hash,
            society_id: caller.society_id,
            role,
            created_by: Some(caller.member_id),
            created_at: now,
            expires_at,
            for_member: None,
        })?)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, role = role.as_str(), "enrolment code issued");
    Ok(HttpResponse::Created().json(EnrolmentCodeResponse {
        id: hex::encode(code_hash),
        code,
        role,
        expires_at: expires_at / 1000,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_and_normalised() {
        let (a, ha) = new_enrolment_code().unwrap();
        let (b, _) = new_enrolment_code().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 39);
        assert_eq!(hash_code(&a), ha);
        assert_eq!(hash_code(&a.to_uppercase().replace('-', " ")), ha);
    }
}
