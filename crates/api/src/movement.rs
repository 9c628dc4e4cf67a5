//! The Movement root (docs/crypto.md, "The Movement root and transfers"): its public key, set once
//! by a Movement admin who holds the key offline; its certificates of society roots; and a
//! society's trust material as any member verifies it against the Movement root they pinned.
//!
//! The server stores and serves; it vouches for nothing. It checks that a certificate parses, is
//! signed by the Movement root it holds, names a society it knows and that society's current root
//! (or an earlier one), and is valid now, so that it keeps nothing clients would refuse.

use actix_web::{get, post, put, web, HttpResponse};
use rfl_crypto::{RootSuccession, SocietyCertificate};
use rfl_domain::api::{
    Base64Bytes, MemberSocietyDto, MovementRootDto, SocietyCertificateRequest, SocietyTrustResponse,
};
use rfl_domain::{MemberId, SocietyId};
use rfl_storage::{Society, SocietyTrust, Store};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, Problem};
use crate::roles::{AnyMember, Authorized, CaseHolders, MovementAdmins};
use crate::{blocking, State};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(set_movement_root)
        .service(get_movement_root)
        .service(certify_society)
        .service(society_trust)
        .service(member_society);
}

/// Set the Movement root's public key (Movement admin; needs a recent passkey sign-in). Set once:
/// the same key again is accepted, another is refused with 409.
#[utoipa::path(tag = "movement", security(("bearer" = [])), request_body = MovementRootDto, responses(
    (status = 204), (status = 409, description = "Another Movement root is set", body = Problem),
    (status = 422, body = Problem)))]
#[put("/movement/root")]
async fn set_movement_root(
    state: State,
    Authorized(caller, _): Authorized<MovementAdmins>,
    body: web::Json<MovementRootDto>,
) -> Result<HttpResponse, ApiError> {
    let key: [u8; 32] = body
        .into_inner()
        .root_public_key
        .0
        .as_slice()
        .try_into()
        .map_err(|_| {
            ApiError::Unprocessable("root_public_key must be a 32-byte Ed25519 public key".into())
        })?;
    let store = state.store.clone();
    let now = state.now();
    blocking(move || Ok(store.set_movement_root(&key, caller.member_id, now)?)).await?;
    tracing::info!(by = %caller.member_id, "Movement root set");
    Ok(HttpResponse::NoContent().finish())
}

/// The Movement root's public key (any member; 404 before it is set). Clients accept it only if
/// it matches the fingerprint they pinned.
#[utoipa::path(tag = "movement", security(("bearer" = [])), responses(
    (status = 200, body = MovementRootDto), (status = 404, body = Problem)))]
#[get("/movement/root")]
async fn get_movement_root(
    state: State,
    _caller: Authorized<AnyMember>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let key = blocking(move || Ok(store.movement_root()?))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(MovementRootDto {
        root_public_key: Base64Bytes(key.to_vec()),
    }))
}

/// Store the Movement root's certificate of a society's root (Movement admin; needs a recent
/// passkey sign-in). A newer certificate of the same root replaces the older.
#[utoipa::path(tag = "movement", security(("bearer" = [])), request_body = SocietyCertificateRequest, responses(
    (status = 204), (status = 404, description = "No such society", body = Problem),
    (status = 409, description = "No Movement root is set", body = Problem),
    (status = 422, body = Problem)))]
#[post("/movement/certificates")]
async fn certify_society(
    state: State,
    Authorized(caller, _): Authorized<MovementAdmins>,
    body: web::Json<SocietyCertificateRequest>,
) -> Result<HttpResponse, ApiError> {
    let cert = SocietyCertificate::from_hex(&body.into_inner().certificate)
        .map_err(|e| ApiError::Unprocessable(format!("the society certificate: {e}")))?;
    let store = state.store.clone();
    let now = state.now();
    let society = SocietyId::from_uuid(cert.society_id());
    blocking(move || {
        let movement = store.movement_root()?.ok_or_else(|| {
            ApiError::Conflict("no Movement root is set (rfl movement init)".into())
        })?;
        let movement = rfl_crypto::RootPublicKey::from_bytes(movement);
        let root = cert
            .verify(&movement, cert.society_id(), now / 1000)
            .map_err(|e| ApiError::Unprocessable(format!("the society certificate: {e}")))?;
        let trust = store.society_certificates(society)?;
        let current = trust.root.ok_or_else(|| {
            ApiError::Unprocessable(
                "the society has no root yet: its first admin runs `rfl society init`".into(),
            )
        })?;
        let earlier = trust
            .successions
            .iter()
            .filter_map(|b| RootSuccession::from_bytes(b).ok())
            .any(|s| s.old_root() == root);
        if *root.as_bytes() != current && !earlier {
            return Err(ApiError::Unprocessable(
                "the certificate names a root this society never had".into(),
            ));
        }
        Ok(store.put_society_certificate(society, root.as_bytes(), &cert.to_bytes(), now)?)
    })
    .await?;
    tracing::info!(society = %society, by = %caller.member_id, "society root certified by the Movement root");
    Ok(HttpResponse::NoContent().finish())
}

/// A society's trust material (any member): its root, root successions, key certificates,
/// revocation list and escrow key, and the Movement root's certificates of its roots. Clients
/// verify it against the Movement root fingerprint they pinned before wrapping anything to it.
#[utoipa::path(tag = "movement", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = SocietyTrustResponse), (status = 404, body = Problem)))]
#[get("/societies/{id}/trust")]
async fn society_trust(
    state: State,
    _caller: Authorized<AnyMember>,
    path: web::Path<SocietyId>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    Ok(HttpResponse::Ok().json(society_and_trust(store, path.into_inner()).await?.1))
}

/// A society (404 if there is none) and its trust material as it is served.
pub(crate) async fn society_and_trust(
    store: Store,
    id: SocietyId,
) -> Result<(Society, SocietyTrustResponse), ApiError> {
    blocking(move || {
        let society = store.society(id)?.ok_or(ApiError::NotFound)?;
        let t = store.society_certificates(id)?;
        let served = trust_response(&society, t);
        Ok((society, served))
    })
    .await
}

/// A society's trust material as it is served: every certificate (current and retired) in hex.
fn trust_response(society: &Society, t: SocietyTrust) -> SocietyTrustResponse {
    let hex = |b: &Vec<u8>| crate::hex(b);
    SocietyTrustResponse {
        society_id: society.id,
        name: society.name.clone(),
        root_public_key: t.root.map(|r| Base64Bytes(r.to_vec())),
        certificates: t
            .certificates
            .iter()
            .map(|r| crate::hex(&r.certificate))
            .chain(t.retired.iter().map(hex))
            .collect(),
        revocations: t.revocations.as_deref().map(crate::hex),
        root_successions: t.successions.iter().map(hex).collect(),
        movement_certificates: t.movement_certificates.iter().map(hex).collect(),
        escrow_recipient: society.escrow.as_ref().map(|e| e.recipient.clone()),
    }
}

/// The society of a member (caseworkers and admins): a client that meets a commit signed by a
/// member of another society (a case transferred with the sender keeping access) learns whose
/// keys to verify through the Movement root. Only a hint: nothing counts until those keys verify.
#[utoipa::path(tag = "movement", security(("bearer" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = MemberSocietyDto), (status = 404, body = Problem)))]
#[get("/members/{id}/society")]
async fn member_society(
    state: State,
    _caller: Authorized<CaseHolders>,
    path: web::Path<MemberId>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let store = state.store.clone();
    let m = blocking(move || Ok(store.member(id)?))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(MemberSocietyDto {
        society_id: m.society_id,
    }))
}
