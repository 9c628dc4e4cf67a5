//! Signing in with a passkey.

use super::*;

/// Begin signing in with a passkey: a challenge for one of the member's registered credentials.
#[utoipa::path(tag = "passkeys", request_body = PasskeyLoginStartRequest, responses(
    (status = 200, body = PasskeyLoginStart), (status = 401, body = Problem),
    (status = 429, description = "Too many attempts", body = Problem)))]
#[post("/auth/passkey/start")]
pub(super) async fn login_start(
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
pub(super) async fn login_finish(
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
