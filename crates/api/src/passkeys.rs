//! WebAuthn passkeys (webauthn-rs): adding a passkey to a signed-in member, signing in with one, listing
//! and removing them.
//!
//! Ceremony state is kept in the database (any node can finish a ceremony another began), expires after
//! [`CEREMONY_TTL_MILLIS`] by the injected clock, and is deleted when it is read, so each ceremony can be
//! finished once. User verification is required in both ceremonies (webauthn-rs's passkey calls set the
//! policy to `required` and check the UV flag). Whatever the authenticator or client sends that
//! webauthn-rs refuses is answered 400 (malformed) or 401 (refused), never 500.

use std::sync::Arc;

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rfl_crypto::{AgeRecipient, DevicePublicKey};
use rfl_domain::api::{Base64Bytes, TokenResponse};
use rfl_domain::{MemberId, Role, SocietyId};
use rfl_storage::{Ceremony, CeremonyKind, Enrolment, NewPasskey, PasskeyRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use crate::auth::AuthMethod;
use crate::config::WebauthnConfig;
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, People};
use crate::{blocking, AppState, State};

/// How long a registration or sign-in ceremony may be finished after it started.
pub const CEREMONY_TTL_MILLIS: i64 = 5 * 60 * 1000;

/// Largest key wrapping the server keeps for one authenticator (the client's is a few hundred bytes).
pub const MAX_KEY_WRAP_BYTES: usize = 4096;

fn key_wrap(wrap: Option<Base64Bytes>) -> Result<Option<Vec<u8>>, ApiError> {
    match wrap {
        Some(w) if w.0.is_empty() || w.0.len() > MAX_KEY_WRAP_BYTES => Err(ApiError::BadRequest(
            format!("key_wrap must be 1 to {MAX_KEY_WRAP_BYTES} bytes"),
        )),
        other => Ok(other.map(|w| w.0)),
    }
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(enrol_start)
        .service(enrol_finish)
        .service(set_key_wraps)
        .service(register_start)
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
    #[schema(value_type = RegistrationCredential)]
    pub credential: RegisterPublicKeyCredential,
    /// The client's wrapping of the person's private keys for this authenticator (opaque; see
    /// docs/crypto.md). Absent when the authenticator has no PRF extension: it then signs in but cannot
    /// unlock the person's keys.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Byte, min_length = 4, max_length = 5464)]
    pub key_wrap: Option<Base64Bytes>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyEnrolStartRequest {
    /// The one-time enrolment code an admin gave you.
    pub code: String,
}

/// An enrolment ceremony begun: the member id the person will have, and the options for the
/// authenticator.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyEnrolStart {
    pub ceremony_id: Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub member_id: MemberId,
    /// WebAuthn `CredentialCreationOptions` (webauthn-rs `CreationChallengeResponse`).
    #[schema(value_type = Object)]
    pub options: CreationChallengeResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyEnrolFinish {
    pub ceremony_id: Uuid,
    /// The authenticator's answer (webauthn-rs `RegisterPublicKeyCredential`).
    #[schema(value_type = RegistrationCredential)]
    pub credential: RegisterPublicKeyCredential,
    /// Ed25519 device public key (32 bytes): signs the person's records.
    #[schema(value_type = String, format = Byte, pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$", min_length = 44, max_length = 44)]
    pub signing_key: Base64Bytes,
    /// age recipient (`age1…`: X25519, or an age plugin's such as `age1yubikey1…`) that case keys
    /// are wrapped to.
    #[schema(pattern = "^age1[0-9a-z]+$", max_length = 1024)]
    pub age_recipient: String,
    /// The client's wrapping of the person's private keys for this authenticator (see
    /// [`PasskeyRegistrationFinish::key_wrap`]).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Byte, min_length = 4, max_length = 5464)]
    pub key_wrap: Option<Base64Bytes>,
}

/// The JSON shape of a WebAuthn registration answer as the server reads it (webauthn-rs
/// `RegisterPublicKeyCredential`); for the document only. Binary fields are base64url without padding.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct RegistrationCredential {
    id: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    rawId: String,
    response: AttestationResponse,
    #[schema(rename = "type")]
    kind: String,
    /// Client extension outputs (unknown members are ignored).
    #[schema(value_type = Object, required = false)]
    extensions: (),
}

/// `AuthenticatorAttestationResponse` (webauthn-rs `AuthenticatorAttestationResponseRaw`).
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct AttestationResponse {
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    attestationObject: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    clientDataJSON: String,
    #[schema(value_type = Option<Vec<String>>)]
    transports: Option<()>,
}

/// The JSON shape of a WebAuthn assertion as the server reads it (webauthn-rs `PublicKeyCredential`);
/// for the document only. Binary fields are base64url without padding.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct AssertionCredential {
    id: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    rawId: String,
    response: AssertionResponse,
    #[schema(rename = "type")]
    kind: String,
    /// Client extension outputs (unknown members are ignored).
    #[schema(value_type = Object, required = false)]
    extensions: (),
}

/// `AuthenticatorAssertionResponse` (webauthn-rs `AuthenticatorAssertionResponseRaw`).
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub struct AssertionResponse {
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    authenticatorData: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    clientDataJSON: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    signature: String,
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    userHandle: Option<String>,
}

/// A person enrolled: who they are now, and a token (the registration was a user-verified
/// authentication).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyEnrolResponse {
    #[schema(value_type = String, format = Uuid)]
    pub member_id: MemberId,
    #[schema(value_type = String, format = Uuid)]
    pub society_id: SocietyId,
    pub role: Role,
    pub token: TokenResponse,
}

/// New key wrappings for several of the caller's passkeys (after the person's keys were rotated).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyWrapsRequest {
    #[schema(min_items = 1)]
    pub wraps: Vec<KeyWrapDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyWrapDto {
    /// The credential id, base64url without padding.
    #[schema(
        pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$"
    )]
    pub id: String,
    #[schema(value_type = String, format = Byte, min_length = 4, max_length = 5464)]
    pub key_wrap: Base64Bytes,
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
    #[schema(value_type = AssertionCredential)]
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
    /// The person's key wrapping for this authenticator (in the person's own list only; opaque).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Byte)]
    pub key_wrap: Option<Base64Bytes>,
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
        key_wrap: None,
    }
}

/// The person's own view of a passkey: with its key wrapping (for re-wrapping after a rotation).
fn own_passkey_dto(p: &PasskeyRow) -> PasskeyDto {
    PasskeyDto {
        key_wrap: p.key_wrap.clone().map(Base64Bytes),
        ..passkey_dto(p)
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

// --- enrolling a person -----------------------------------------------------------------------------

pub(crate) fn parse_public_keys(
    signing_key: &Base64Bytes,
    age_recipient: &str,
) -> Result<(DevicePublicKey, AgeRecipient), ApiError> {
    let key = DevicePublicKey::from_slice(&signing_key.0).map_err(|_| {
        ApiError::BadRequest("signing_key must be a 32-byte Ed25519 public key".into())
    })?;
    // Long enough for any age plugin recipient; a key certificate holds at most 1024 bytes.
    if age_recipient.len() > 1024 {
        return Err(ApiError::BadRequest(
            "age_recipient must be at most 1024 bytes".into(),
        ));
    }
    let recipient = AgeRecipient::parse(age_recipient.trim()).map_err(|_| {
        ApiError::Unprocessable(
            "age_recipient must be an age recipient (age1…: X25519, or an age plugin's)".into(),
        )
    })?;
    Ok((key, recipient))
}

/// Begin enrolling a person with a one-time code and their first passkey. The code must be usable and
/// a person's (a sync agent's code enrols with `/v1/enrol`); it is spent only when the ceremony
/// finishes.
#[utoipa::path(tag = "identity", request_body = PasskeyEnrolStartRequest, responses(
    (status = 200, body = PasskeyEnrolStart), (status = 400, body = Problem),
    (status = 403, description = "The code is a sync agent's", body = Problem),
    (status = 409, description = "Code already used", body = Problem),
    (status = 410, description = "Code expired or revoked", body = Problem),
    (status = 422, description = "Unknown enrolment code", body = Problem),
    (status = 429, description = "Too many attempts from this address", body = Problem)))]
#[post("/enrol/passkey/start")]
async fn enrol_start(
    state: State,
    http: HttpRequest,
    body: web::Json<PasskeyEnrolStartRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth_limits
        .address(http.peer_addr().map(|a| a.ip()))?;
    let hash = crate::identity::hash_code(&body.into_inner().code);
    let st: Arc<AppState> = state.get_ref().clone();
    let now = st.now();
    let start = blocking(move || {
        let (_, role, existing) =
            st.store
                .usable_enrolment_code(&hash, now)
                .map_err(|e| match e {
                    rfl_storage::StorageError::NotFound => {
                        ApiError::Unprocessable("unknown enrolment code".into())
                    }
                    other => other.into(),
                })?;
        if rfl_storage::is_machine_role(role) {
            return Err(ApiError::Forbidden(
                "this code is for a sync agent, which enrols with its device key (/v1/enrol)",
            ));
        }
        // A code from an admin's reset re-enrols that member (same id, so the same WebAuthn user).
        let member_id = existing.unwrap_or_else(MemberId::new);
        let name = member_id.to_string();
        let (options, reg) = st
            .webauthn
            .start_passkey_registration(*member_id.as_uuid(), &name, &name, None)
            .map_err(|e| ApiError::Internal(format!("cannot start a registration: {e}")))?;
        let ceremony = Ceremony {
            id: Uuid::now_v7(),
            kind: CeremonyKind::Enrol,
            member_id: Some(member_id),
            code_hash: Some(hash),
            state: to_json(&reg)?,
            expires_at: now + CEREMONY_TTL_MILLIS,
        };
        st.store.insert_ceremony(&ceremony, now)?;
        Ok(PasskeyEnrolStart {
            ceremony_id: ceremony.id,
            member_id,
            options,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(start))
}

/// Finish enrolling a person: the authenticator's answer, the person's public keys, and their keys'
/// wrapping for this authenticator. The code is spent, the member and the passkey are created in one
/// transaction, and the answer carries a token.
#[utoipa::path(tag = "identity", request_body = PasskeyEnrolFinish, responses(
    (status = 201, body = PasskeyEnrolResponse), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem),
    (status = 409, description = "Code already used, or key or credential already enrolled", body = Problem),
    (status = 410, description = "Code expired or revoked", body = Problem),
    (status = 422, description = "Unknown enrolment code, an age recipient that does not parse, or an authenticator answer that does not", body = Problem),
    (status = 429, description = "Too many attempts from this address", body = Problem)))]
#[post("/enrol/passkey/finish")]
async fn enrol_finish(
    state: State,
    http: HttpRequest,
    body: web::Json<PasskeyEnrolFinish>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth_limits
        .address(http.peer_addr().map(|a| a.ip()))?;
    let req = body.into_inner();
    let (key, recipient) = parse_public_keys(&req.signing_key, &req.age_recipient)?;
    let wrap = key_wrap(req.key_wrap)?;
    let st: Arc<AppState> = state.get_ref().clone();
    let now = st.now();
    let member = blocking(move || {
        let c = take_live_ceremony(&st, req.ceremony_id, CeremonyKind::Enrol, now)?;
        let (Some(member_id), Some(code_hash)) = (c.member_id, c.code_hash) else {
            return Err(ApiError::Internal(
                "enrolment ceremony without member or code".into(),
            ));
        };
        let reg: PasskeyRegistration = serde_json::from_str(&c.state)
            .map_err(|e| ApiError::Internal(format!("stored ceremony unreadable: {e}")))?;
        let passkey = st
            .webauthn
            .finish_passkey_registration(&req.credential, &reg)
            .map_err(refusal)?;
        let enrolment = Enrolment {
            member_id,
            signing_key: key.as_bytes().to_vec(),
            age_recipient: recipient.to_string(),
            passkey: Some(NewPasskey {
                id: passkey.cred_id().to_vec(),
                passkey: to_json(&passkey)?,
                key_wrap: wrap,
            }),
        };
        Ok(st
            .store
            .redeem_enrolment_code(&code_hash, &enrolment, now)?)
    })
    .await?;
    tracing::info!(member = %member.id, society = %member.society_id, role = member.role.as_str(), "person enrolled with a passkey");
    let token = state
        .tokens
        .sign_in_response(&member, AuthMethod::Passkey, now)?;
    Ok(HttpResponse::Created().json(PasskeyEnrolResponse {
        member_id: member.id,
        society_id: member.society_id,
        role: member.role,
        token,
    }))
}

/// Replace the key wrappings of the caller's passkeys, all in one transaction (after the client rotated
/// the person's keys: it re-wraps them to every authenticator's public wrapping key, without those
/// authenticators present). Needs a recent passkey sign-in (step-up).
#[utoipa::path(tag = "passkeys", security(("bearer" = [])), request_body = KeyWrapsRequest, responses(
    (status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
#[put("/passkeys/key-wraps")]
async fn set_key_wraps(
    state: State,
    Authorized(caller, _): Authorized<People>,
    body: web::Json<KeyWrapsRequest>,
) -> Result<HttpResponse, ApiError> {
    let wraps = body
        .into_inner()
        .wraps
        .into_iter()
        .map(|w| {
            let id = URL_SAFE_NO_PAD
                .decode(w.id.trim_end_matches('='))
                .map_err(|_| ApiError::BadRequest("the passkey id must be base64url".into()))?;
            let wrap = key_wrap(Some(w.key_wrap))?.unwrap_or_default();
            Ok((id, wrap))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    if wraps.is_empty() {
        return Err(ApiError::BadRequest("wraps must not be empty".into()));
    }
    let store = state.store.clone();
    blocking(move || Ok(store.set_key_wraps(caller.member_id, &wraps)?)).await?;
    tracing::info!(member = %caller.member_id, "key wrappings replaced");
    Ok(HttpResponse::NoContent().finish())
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
        let new = NewPasskey {
            id: passkey.cred_id().to_vec(),
            passkey: to_json(&passkey)?,
            key_wrap: key_wrap(req.key_wrap)?,
        };
        Ok(st.store.add_passkey(caller.member_id, &new, now)?)
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
            return ApiError::Unprocessable("the authenticator's answer is malformed".into())
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
        let wrap = st
            .store
            .passkey_used(member_id, &row.id, updated.as_deref(), now)?;
        Ok((m, wrap))
    })
    .await?;
    let (member, wrap) = member;
    tracing::info!(member = %member.id, "signed in with a passkey");
    let mut response = state
        .tokens
        .sign_in_response(&member, AuthMethod::Passkey, now)?;
    response.key_wrap = wrap.map(Base64Bytes);
    Ok(HttpResponse::Ok().json(response))
}

// --- listing and removing --------------------------------------------------------------------------

/// The signed-in person's passkeys.
#[utoipa::path(tag = "passkeys", operation_id = "list_passkeys", security(("bearer" = [])), responses(
    (status = 200, body = PasskeysResponse), (status = 401, body = Problem)))]
#[get("/passkeys")]
async fn list(
    state: State,
    Authorized(caller, _): Authorized<People>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let rows = blocking(move || Ok(store.member_passkeys(caller.member_id)?)).await?;
    Ok(HttpResponse::Ok().json(PasskeysResponse {
        passkeys: rows.iter().map(own_passkey_dto).collect(),
    }))
}

/// Remove one of the signed-in person's passkeys (never the last: 409). Every access token issued to
/// them so far stops working, so a lost authenticator's sessions end too; sign in again.
#[utoipa::path(tag = "passkeys", security(("bearer" = [])),
    params(("id" = String, Path, description = "Credential id, base64url", pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$")), responses(
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
    params(("id" = String, Path, format = Uuid), ("credential" = String, Path, description = "Credential id, base64url", pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$")),
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
