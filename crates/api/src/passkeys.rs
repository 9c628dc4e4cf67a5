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

mod enrol;
mod login;
mod manage;
mod register;
mod wire;

pub(crate) use enrol::parse_public_keys;
use enrol::{enrol_finish, enrol_start, set_key_wraps};
use login::{login_finish, login_start};
use manage::{list, member_passkeys, remove, revoke_member_passkey};
use register::{register_finish, register_start};
pub use wire::*;

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
