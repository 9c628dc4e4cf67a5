//! Adding a passkey to a signed-in person.

use super::*;

/// Begin adding a passkey to the signed-in person (user verification required). The person's existing
/// passkeys are excluded, so an authenticator is not registered twice.
#[utoipa::path(tag = "passkeys", security(("bearer" = [])), responses(
    (status = 200, body = PasskeyRegistrationStart), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[post("/passkeys/register/start")]
pub(super) async fn register_start(
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
pub(super) async fn register_finish(
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
