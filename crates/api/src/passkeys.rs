//! WebAuthn passkeys (webauthn-rs): adding a passkey to a signed-in member, signing in with one, listing
//! and removing them.
//!
//! Ceremony state is kept in the database (any node can finish a ceremony another began), expires after
//! [`CEREMONY_TTL_MILLIS`] by the injected clock, and is deleted when it is read, so each ceremony can be
//! finished once. User verification is required in both ceremonies (webauthn-rs's passkey calls set the
//! policy to `required` and check the UV flag). Whatever the authenticator or client sends that
//! webauthn-rs refuses is answered 400 (malformed) or 401 (refused), never 500.

use std::sync::Arc;

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rfl_domain::api::TokenResponse;
use rfl_domain::MemberId;
use rfl_storage::{Ceremony, CeremonyKind, PasskeyRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use crate::config::WebauthnConfig;
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, People};
use crate::{blocking, AppState, State};

/// How long a registration or sign-in ceremony may be finished after it started.
pub const CEREMONY_TTL_MILLIS: i64 = 5 * 60 * 1000;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(register_start)
        .service(register_finish)
        .service(login_start)
        .service(login_finish)
        .service(list)
        .service(remove)
        .service(member_passkeys)
        .service(revoke_member_passkey);
}

/// The relying party from the `[webauthn]` configuration.
pub fn relying_party(config: &WebauthnConfig) -> Result<Webauthn, String> {
    let origin = Url::parse(&config.rp_origin)
        .map_err(|e| format!("webauthn.rp_origin is not a URL: {e}"))?;
    WebauthnBuilder::new(&config.rp_id, &origin)
        .map_err(|e| format!("webauthn.rp_id / rp_origin: {e}"))?
        .rp_name(&config.rp_name)
        .build()
        .map_err(|e| format!("webauthn configuration: {e}"))
}

// --- wire types (webauthn-rs's own JSON for the ceremony options and credentials) --------------------

/// A registration ceremony begun: pass `options` to the authenticator (`navigator.credentials.create`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyRegistrationStart {
    pub ceremony_id: Uuid,
    /// WebAuthn `CredentialCreationOptions` (webauthn-rs `CreationChallengeResponse`).
    #[schema(value_type = Object)]
    pub options: CreationChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegistrationFinish {
    pub ceremony_id: Uuid,
    /// The authenticator's answer (webauthn-rs `RegisterPublicKeyCredential`).
    #[schema(value_type = Object)]
    pub credential: RegisterPublicKeyCredential,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginStartRequest {
    #[schema(value_type = String, format = Uuid)]
    pub member_id: MemberId,
}

/// A sign-in ceremony begun: pass `options` to the authenticator (`navigator.credentials.get`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyLoginStart {
    pub ceremony_id: Uuid,
    /// WebAuthn `CredentialRequestOptions` (webauthn-rs `RequestChallengeResponse`).
    #[schema(value_type = Object)]
    pub options: RequestChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginFinish {
    pub ceremony_id: Uuid,
    /// The authenticator's assertion (webauthn-rs `PublicKeyCredential`).
    #[schema(value_type = Object)]
    pub credential: PublicKeyCredential,
}

/// One of the caller's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyDto {
    /// The credential id, base64url without padding.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last sign-in with it.
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeysResponse {
    pub passkeys: Vec<PasskeyDto>,
}

fn passkey_dto(p: &PasskeyRow) -> PasskeyDto {
    PasskeyDto {
        id: URL_SAFE_NO_PAD.encode(&p.id),
        created_at: p.created_at / 1000,
        last_used_at: p.last_used_at.map(|t| t / 1000),
    }
}

fn parse_passkey(row: &PasskeyRow) -> Result<Passkey, ApiError> {
    serde_json::from_str(&row.passkey)
        .map_err(|e| ApiError::Internal(format!("stored passkey unreadable: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value)
        .map_err(|e| ApiError::Internal(format!("cannot serialise WebAuthn state: {e}")))
}

/// Takes a ceremony (single use) and checks it has not expired.
fn take_live_ceremony(
    st: &AppState,
    id: Uuid,
    kind: CeremonyKind,
    now: i64,
) -> Result<Ceremony, ApiError> {
    let c = st
        .store
        .take_ceremony(id, kind)?
        .ok_or(ApiError::Unauthorized(
            "unknown or already used ceremony: start again",
        ))?;
    if c.expires_at <= now {
        return Err(ApiError::Unauthorized("this ceremony expired: start again"));
    }
    Ok(c)
}

// --- adding a passkey ------------------------------------------------------------------------------

/// Begin adding a passkey to the signed-in person (user verification required). The person's existing
/// passkeys are excluded, so an authenticator is not registered twice.
#[utoipa::path(tag = "passkeys", security(("bearer" = [])), responses(
    (status = 200, body = PasskeyRegistrationStart), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[post("/passkeys/register/start")]
async fn register_start(
    state: State,
    Authorized(caller, _): Authorized<People>,
) -> Result<HttpResponse, ApiError> {
    let st: Arc<AppState> = state.get_ref().clone();
    let now = st.now();
    let start = blocking(move || {
        let existing = st
            .store
            .member_passkeys(caller.member_id)?
            .iter()
            .map(|p| parse_passkey(p).map(|k| k.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        // The user name is the member id: authenticators may display it, and it is not personal data.
        let name = caller.member_id.to_string();
        let (options, reg) = st
            .webauthn
            .start_passkey_registration(*caller.member_id.as_uuid(), &name, &name, Some(existing))
            .map_err(|e| ApiError::Internal(format!("cannot start a registration: {e}")))?;
        let ceremony = Ceremony {
            id: Uuid::now_v7(),
            kind: CeremonyKind::Register,
            member_id: Some(caller.member_id),
            code_hash: None,
            state: to_json(&reg)?,
            expires_at: now + CEREMONY_TTL_MILLIS,
        };
        st.store.insert_ceremony(&ceremony, now)?;
        Ok(PasskeyRegistrationStart {
            ceremony_id: ceremony.id,
            options,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(start))
}

/// Finish adding a passkey: the authenticator's answer to the registration ceremony.
#[utoipa::path(tag = "passkeys", security(("bearer" = [])), request_body = PasskeyRegistrationFinish, responses(
    (status = 201, body = PasskeyDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 409, description = "This credential is already registered", body = Problem)))]
#[post("/passkeys/register/finish")]
async fn register_finish(
    state: State,
    Authorized(caller, _): Authorized<People>,
    body: web::Json<PasskeyRegistrationFinish>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let st: Arc<AppState> = state.get_ref().clone();
    let now = st.now();
    let row = blocking(move || {
        let c = take_live_ceremony(&st, req.ceremony_id, CeremonyKind::Register, now)?;
        if c.member_id != Some(caller.member_id) {
            return Err(ApiError::Unauthorized(
                "unknown or already used ceremony: start again",
            ));
        }
        let reg: PasskeyRegistration = serde_json::from_str(&c.state)
            .map_err(|e| ApiError::Internal(format!("stored ceremony unreadable: {e}")))?;
        let passkey = st
            .webauthn
            .finish_passkey_registration(&req.credential, &reg)
            .map_err(refusal)?;
        Ok(st.store.add_passkey(
            caller.member_id,
            passkey.cred_id(),
            &to_json(&passkey)?,
            now,
        )?)
    })
    .await?;
    tracing::info!(member = %caller.member_id, "passkey registered");
    Ok(HttpResponse::Created().json(passkey_dto(&row)))
}

/// Why webauthn-rs refused an authenticator's answer, in words for the caller: a fixed text per
/// reason (nothing from the request is echoed). Malformed answers are 400, refused ones 401.
fn refusal(e: WebauthnError) -> ApiError {
    use WebauthnError as W;
    let why = match e {
        W::InvalidRPOrigin | W::CredentialCrossOrigin => {
            "the authenticator's answer was refused: wrong origin"
        }
        W::InvalidRPIDHash => "the authenticator's answer was refused: wrong relying party id",
        W::MismatchedChallenge | W::ChallengeNotFound | W::InvalidClientDataType => {
            "the authenticator's answer was refused: it answers another challenge"
        }
        W::UserNotPresent | W::UserNotVerified | W::InconsistentUserVerificationPolicy => {
            "the authenticator's answer was refused: user verification is required"
        }
        W::CredentialNotFound => {
            "the authenticator's answer was refused: this credential is not registered to this account"
        }
        W::CredentialExcludedFromRequest | W::CredentialAlreadyExists => {
            "the authenticator's answer was refused: this credential is already registered"
        }
        W::CredentialPossibleCompromise => {
            "the authenticator's answer was refused: its signature counter went backwards (cloned?)"
        }
        W::ParseBase64Failure(_)
        | W::ParseCBORFailure(_)
        | W::ParseJSONFailure(_)
        | W::ParseNOMFailure
        | W::ParseInsufficientBytesAvailable => {
            return ApiError::BadRequest("the authenticator's answer is malformed".into())
        }
        _ => "the authenticator's answer was refused",
    };
    ApiError::Unauthorized(why)
}

// --- signing in ------------------------------------------------------------------------------------

/// Begin signing in with a passkey: a challenge for one of the member's registered credentials.
#[utoipa::path(tag = "passkeys", request_body = PasskeyLoginStartRequest, responses(
    (status = 200, body = PasskeyLoginStart), (status = 401, body = Problem),
    (status = 429, description = "Too many attempts", body = Problem)))]
#[post("/auth/passkey/start")]
async fn login_start(
    state: State,
    http: HttpRequest,
    body: web::Json<PasskeyLoginStartRequest>,
) -> Result<HttpResponse, ApiError> {
    let member_id = body.into_inner().member_id;
    state
        .auth_limits
        .address(http.peer_addr().map(|a| a.ip()))?;
    state.auth_limits.account(member_id)?;
    let st: Arc<AppState> = state.get_ref().clone();
    let now = st.now();
    let start = blocking(move || {
        let keys = st
            .store
            .member_passkeys(member_id)?
            .iter()
            .map(parse_passkey)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            // Unknown members and members without a passkey get the same answer.
            return Err(ApiError::Unauthorized(
                "sign-in failed: no passkey is registered for this account",
            ));
        }
        let (options, auth) = st
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| ApiError::Internal(format!("cannot start a sign-in: {e}")))?;
        let ceremony = Ceremony {
            id: Uuid::now_v7(),
            kind: CeremonyKind::Authenticate,
            member_id: Some(member_id),
            code_hash: None,
            state: to_json(&auth)?,
            expires_at: now + CEREMONY_TTL_MILLIS,
        };
        st.store.insert_ceremony(&ceremony, now)?;
        Ok(PasskeyLoginStart {
            ceremony_id: ceremony.id,
            options,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(start))
}

/// Finish signing in: a valid assertion (user verified) buys the same short-lived access token as the
/// key login.
#[utoipa::path(tag = "passkeys", request_body = PasskeyLoginFinish, responses(
    (status = 200, body = TokenResponse), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 429, description = "Too many attempts", body = Problem)))]
#[post("/auth/passkey/finish")]
async fn login_finish(
    state: State,
    http: HttpRequest,
    body: web::Json<PasskeyLoginFinish>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth_limits
        .address(http.peer_addr().map(|a| a.ip()))?;
    let req = body.into_inner();
    let st: Arc<AppState> = state.get_ref().clone();
    let now = st.now();
    let member = blocking(move || {
        let c = take_live_ceremony(&st, req.ceremony_id, CeremonyKind::Authenticate, now)?;
        let member_id = c
            .member_id
            .ok_or_else(|| ApiError::Internal("sign-in ceremony without a member".into()))?;
        let auth: PasskeyAuthentication = serde_json::from_str(&c.state)
            .map_err(|e| ApiError::Internal(format!("stored ceremony unreadable: {e}")))?;
        let result = st
            .webauthn
            .finish_passkey_authentication(&req.credential, &auth)
            .map_err(refusal)?;
        if !result.user_verified() {
            return Err(ApiError::Unauthorized(
                "sign-in failed: the authenticator did not verify the user",
            ));
        }
        let m = st
            .store
            .member(member_id)?
            .ok_or(ApiError::Unauthorized("sign-in failed"))?;
        if m.suspended {
            return Err(ApiError::Unauthorized("sign-in failed: account suspended"));
        }
        // The credential was one of the member's when the ceremony began; it must still be (it may have
        // been removed since).
        let row = st
            .store
            .member_passkeys(member_id)?
            .into_iter()
            .find(|p| p.id == *result.cred_id())
            .ok_or(ApiError::Unauthorized(
                "sign-in failed: this passkey was removed",
            ))?;
        let mut passkey = parse_passkey(&row)?;
        let updated = match passkey.update_credential(&result) {
            Some(true) => Some(to_json(&passkey)?),
            _ => None,
        };
        st.store
            .passkey_used(member_id, &row.id, updated.as_deref(), now)?;
        Ok(m)
    })
    .await?;
    tracing::info!(member = %member.id, "signed in with a passkey");
    Ok(HttpResponse::Ok().json(state.tokens.sign_in_response(&member, now)?))
}

// --- listing and removing --------------------------------------------------------------------------

/// The signed-in person's passkeys.
#[utoipa::path(tag = "passkeys", security(("bearer" = [])), responses(
    (status = 200, body = PasskeysResponse), (status = 401, body = Problem)))]
#[get("/passkeys")]
async fn list(
    state: State,
    Authorized(caller, _): Authorized<People>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let rows = blocking(move || Ok(store.member_passkeys(caller.member_id)?)).await?;
    Ok(HttpResponse::Ok().json(PasskeysResponse {
        passkeys: rows.iter().map(passkey_dto).collect(),
    }))
}

/// Remove one of the signed-in person's passkeys (never the last: 409). Every access token issued to
/// them so far stops working, so a lost authenticator's sessions end too; sign in again.
#[utoipa::path(tag = "passkeys", security(("bearer" = [])),
    params(("id" = String, Path, description = "Credential id, base64url")), responses(
    (status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "The last passkey cannot be removed", body = Problem)))]
#[delete("/passkeys/{id}")]
async fn remove(
    state: State,
    Authorized(caller, _): Authorized<People>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = URL_SAFE_NO_PAD
        .decode(path.into_inner().trim_end_matches('='))
        .map_err(|_| ApiError::BadRequest("the passkey id must be base64url".into()))?;
    let store = state.store.clone();
    blocking(move || Ok(store.remove_passkey(caller.member_id, &id)?)).await?;
    tracing::info!(member = %caller.member_id, "passkey removed");
    Ok(HttpResponse::NoContent().finish())
}

/// A member's passkeys, for their society admin (to revoke a lost or stolen one).
#[utoipa::path(tag = "passkeys", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)), responses(
    (status = 200, body = PasskeysResponse), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[get("/members/{id}/passkeys")]
async fn member_passkeys(
    state: State,
    crate::roles::Authorized(caller, _): crate::roles::Authorized<crate::roles::SocietyAdmins>,
    path: web::Path<MemberId>,
) -> Result<HttpResponse, ApiError> {
    let member = path.into_inner();
    let store = state.store.clone();
    let rows = blocking(move || {
        let m = store.member(member)?.ok_or(ApiError::NotFound)?;
        if m.society_id != caller.society_id {
            return Err(ApiError::NotFound);
        }
        Ok(store.member_passkeys(member)?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(PasskeysResponse {
        passkeys: rows.iter().map(passkey_dto).collect(),
    }))
}

/// Revoke one authenticator of a member of the caller's society (society admin), even their last: every
/// access token already issued to the member stops working on its next request, on every node.
#[utoipa::path(tag = "passkeys", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("credential" = String, Path, description = "Credential id, base64url")),
    responses((status = 204), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[delete("/members/{id}/passkeys/{credential}")]
async fn revoke_member_passkey(
    state: State,
    crate::roles::Authorized(caller, _): crate::roles::Authorized<crate::roles::SocietyAdmins>,
    path: web::Path<(MemberId, String)>,
) -> Result<HttpResponse, ApiError> {
    let (member, credential) = path.into_inner();
    let id = URL_SAFE_NO_PAD
        .decode(credential.trim_end_matches('='))
        .map_err(|_| ApiError::BadRequest("the passkey id must be base64url".into()))?;
    let store = state.store.clone();
    blocking(move || Ok(store.revoke_passkey(caller.society_id, member, &id)?)).await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, member = %member, "passkey revoked by admin");
    Ok(HttpResponse::NoContent().finish())
}
