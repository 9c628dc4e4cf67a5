//! Rotating a person's keys (docs/crypto.md, "Rotating a person's keys"):
//! - `PUT /v1/me/next-keys`: a person registers the public keys they will rotate to;
//! - `POST /v1/members/{id}/keys`: an admin's certificate of those keys, with the revocation list
//!   that retires the current ones, switches the member to them in one transaction;
//! - `POST /v1/members/{id}/reset`: a member who lost every authenticator is reset by an admin (their
//!   keys revoked, their passkeys removed) and gets a code that re-enrols them with new keys.
//!
//! As for every certificate, the server checks only structure and tenancy (the certificate names
//! the member, their role and exactly the keys they registered; the list is signed by the caller or
//! the root, follows the latest and lists the keys retired): clients verify the signatures.

use actix_web::{post, put, web, HttpResponse};
use rfl_crypto::{subject_keys_digest, AgeRecipient, DevicePublicKey, KeyCertificate};
use rfl_domain::api::{
    EnrolmentCodeResponse, MemberDto, NextKeysDto, ResetMemberRequest, SwitchKeysRequest,
};
use rfl_domain::MemberId;
use rfl_storage::{KeySwitch, MemberReset, NewEnrolmentCode, NextKeys};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::certs::{check_revocations, role_of};
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, People, SocietyAdmins};
use crate::{blocking, State};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(put_next_keys)
        .service(switch_keys)
        .service(reset_member);
}

/// The digest of stored keys (`subject_keys_digest`).
fn keys_digest(signing: &[u8], recipient: &str) -> Result<[u8; 32], ApiError> {
    let signing = DevicePublicKey::from_slice(signing)
        .map_err(|_| ApiError::Internal("a stored device key is not 32 bytes".into()))?;
    let recipient = AgeRecipient::parse(recipient)
        .map_err(|_| ApiError::Internal("a stored age recipient does not parse".into()))?;
    Ok(subject_keys_digest(Some(&signing), &recipient))
}

/// `member` of the caller's society.
fn member_of(
    store: &rfl_storage::Store,
    caller: &crate::auth::Caller,
    member: MemberId,
) -> Result<rfl_storage::Member, ApiError> {
    store
        .member(member)?
        .filter(|m| m.society_id == caller.society_id)
        .ok_or(ApiError::NotFound)
}

/// The society's next revocation list in `hex`, checked ([`check_revocations`], signed by the
/// calling admin or the root) to revoke `m`'s current keys; with their digest.
fn revoking_current_keys(
    store: &rfl_storage::Store,
    caller: &crate::auth::Caller,
    m: &rfl_storage::Member,
    hex: &str,
) -> Result<([u8; 32], rfl_crypto::RevocationList), ApiError> {
    let old = keys_digest(&m.signing_key, &m.age_recipient)?;
    let me = store.member(caller.member_id)?.ok_or(ApiError::NotFound)?;
    let signer = DevicePublicKey::from_slice(&me.signing_key)
        .map_err(|_| ApiError::Internal("a stored device key is not 32 bytes".into()))?;
    let list = check_revocations(store, caller.society_id, &signer, hex)?;
    if list.find(*m.id.as_uuid(), &old).is_none() {
        return Err(ApiError::Unprocessable(
            "the revocation list does not revoke the member's current keys".into(),
        ));
    }
    Ok((old, list))
}

/// Register the keys you will rotate to (people; needs a recent passkey sign-in). They change
/// nothing until a society admin certifies them (`POST /v1/members/{id}/keys`); registering others
/// replaces them. Your client keeps their private halves wrapped for your authenticators first.
#[utoipa::path(tag = "identity", security(("bearer" = [])), request_body = NextKeysDto, responses(
    (status = 200, body = MemberDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 422, body = Problem)))]
#[put("/me/next-keys")]
async fn put_next_keys(
    state: State,
    Authorized(caller, _): Authorized<People>,
    body: web::Json<NextKeysDto>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let signing = DevicePublicKey::from_slice(&req.signing_key.0)
        .map_err(|_| ApiError::BadRequest("signing_key must be 32 bytes".into()))?;
    signing
        .verifier()
        .map_err(|_| ApiError::Unprocessable("signing_key is not an Ed25519 public key".into()))?;
    let recipient = AgeRecipient::parse(req.age_recipient.trim())
        .map_err(|_| ApiError::Unprocessable("age_recipient does not parse".into()))?;
    let store = state.store.clone();
    let m = blocking(move || {
        let me = store.member(caller.member_id)?.ok_or(ApiError::NotFound)?;
        if me.signing_key == signing.as_bytes() || me.age_recipient == recipient.to_string() {
            return Err(ApiError::Unprocessable(
                "new keys must differ from your current ones, both of them".into(),
            ));
        }
        Ok(store.set_next_keys(
            caller.member_id,
            &NextKeys {
                signing_key: signing.as_bytes().to_vec(),
                age_recipient: recipient.to_string(),
            },
        )?)
    })
    .await?;
    tracing::info!(member = %caller.member_id, "next keys registered");
    Ok(HttpResponse::Ok().json(crate::identity::member_dto(m)))
}

/// Certify a member's next keys and switch them to those (society admin; needs a recent passkey
/// sign-in), with the society's next revocation list, which must retire the member's current keys.
/// In one transaction: the registered keys change, the old certificate is kept as retired (their
/// earlier commits still verify), the member's key rows under the old keys are marked for them to
/// re-wrap, and the member's sessions end.
#[utoipa::path(tag = "certificates", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = SwitchKeysRequest, responses(
    (status = 200, body = MemberDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "Not the next revocation list, or the member registered other keys meanwhile", body = Problem),
    (status = 422, body = Problem)))]
#[post("/members/{id}/keys")]
async fn switch_keys(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<MemberId>,
    body: web::Json<SwitchKeysRequest>,
) -> Result<HttpResponse, ApiError> {
    let member = path.into_inner();
    let req = body.into_inner();
    let cert = KeyCertificate::from_hex(req.certificate.trim())
        .map_err(|e| ApiError::BadRequest(format!("the certificate is malformed: {e}")))?;
    let store = state.store.clone();
    let now = state.now();
    let m = blocking(move || {
        let m = member_of(&store, &caller, member)?;
        let next = m.next_keys.clone().ok_or_else(|| {
            ApiError::Unprocessable(
                "the member has registered no new keys (they run `rfl keys rotate` first)".into(),
            )
        })?;
        let same_keys = cert.signing_key().map(|k| k.as_bytes().as_slice())
            == Some(next.signing_key.as_slice())
            && cert.age_recipient().to_string() == next.age_recipient;
        if cert.subject_id() != *member.as_uuid()
            || cert.society_id() != *caller.society_id.as_uuid()
            || role_of(cert.role()) != Some(m.role)
            || !same_keys
        {
            return Err(ApiError::Unprocessable(
                "the certificate does not name the member, their role and the new keys they registered"
                    .into(),
            ));
        }
        let (old, list) = revoking_current_keys(&store, &caller, &m, &req.revocations)?;
        if list.find(*member.as_uuid(), &keys_digest(&next.signing_key, &next.age_recipient)?).is_some() {
            return Err(ApiError::Unprocessable(
                "the revocation list revokes the new keys".into(),
            ));
        }
        Ok(store.switch_member_keys(
            caller.society_id,
            member,
            &KeySwitch {
                next,
                certificate: cert.to_bytes(),
                old_keys_digest: old,
                list_number: list.body().number,
                list: list.to_bytes().to_vec(),
            },
            now,
        )?)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, %member, "member keys rotated");
    Ok(HttpResponse::Ok().json(crate::identity::member_dto(m)))
}

/// Reset a member who lost every authenticator (society admin; needs a recent passkey sign-in), with
/// the society's next revocation list, which must revoke the member's current keys. In one
/// transaction: the list is stored, the member's certificate retired, their passkeys removed, their
/// sessions ended, their key rows marked for re-wrapping, and a one-time code issued that re-enrols
/// the same member with new keys and a new passkey (`rfl enrol --code`). An admin then certifies the
/// new keys and re-wraps the member's cases from the escrow key (`rfl member rewrap`).
#[utoipa::path(tag = "certificates", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    request_body = ResetMemberRequest, responses(
    (status = 201, body = EnrolmentCodeResponse), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "Not the next revocation list", body = Problem),
    (status = 422, body = Problem)))]
#[post("/members/{id}/reset")]
async fn reset_member(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    path: web::Path<MemberId>,
    body: web::Json<ResetMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let member = path.into_inner();
    let req = body.into_inner();
    if member == caller.member_id {
        return Err(ApiError::Forbidden(
            "another admin resets you: you cannot reset yourself",
        ));
    }
    let (code, code_hash) = crate::identity::new_enrolment_code()?;
    let store = state.store.clone();
    let now = state.now();
    let expires_at =
        now + crate::identity::hours_to_millis(state.config.auth.enrolment_code_ttl_hours);
    let m = blocking(move || {
        let m = member_of(&store, &caller, member)?;
        if rfl_storage::is_machine_role(m.role) {
            return Err(ApiError::Unprocessable(
                "a sync agent has no authenticator to lose: revoke it and enrol a new one".into(),
            ));
        }
        let (old, list) = revoking_current_keys(&store, &caller, &m, &req.revocations)?;
        Ok(store.reset_member(
            caller.society_id,
            member,
            &MemberReset {
                old_keys_digest: old,
                list_number: list.body().number,
                list: list.to_bytes().to_vec(),
                code: NewEnrolmentCode {
                    code_hash,
                    society_id: caller.society_id,
                    role: m.role,
                    created_by: Some(caller.member_id),
                    created_at: now,
                    expires_at,
                    for_member: Some(member),
                },
            },
            now,
        )?)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, %member, "member reset");
    Ok(HttpResponse::Created().json(EnrolmentCodeResponse {
        id: hex::encode(code_hash),
        code,
        role: m.role,
        expires_at: expires_at / 1000,
    }))
}
