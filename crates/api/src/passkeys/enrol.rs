//! Enrolling a person: a one-time code and their first passkey, then the key wrappings their
//! authenticator's PRF output opens.

use super::*;

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
pub(super) async fn enrol_start(
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
pub(super) async fn enrol_finish(
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
pub(super) async fn set_key_wraps(
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
