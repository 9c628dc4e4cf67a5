//! Listing and removing passkeys: a person's own, and (admins) a member's.

use super::*;

/// The signed-in person's passkeys.
#[utoipa::path(tag = "passkeys", operation_id = "list_passkeys", security(("bearer" = [])), responses(
    (status = 200, body = PasskeysResponse), (status = 401, body = Problem)))]
#[get("/passkeys")]
pub(super) async fn list(
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
pub(super) async fn remove(
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
pub(super) async fn member_passkeys(
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
pub(super) async fn revoke_member_passkey(
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
