//! Certified public keys: the society's root public key and its subjects' key certificates.
//!
//! The server stores and serves them; it does not vouch for them. It checks only what keeps the store
//! tidy (a certificate parses, names the caller's society and one of its members with that member's
//! registered keys and role, or the society's escrow key). Clients verify every signature against the
//! root fingerprint they were given out of band, so a certificate the server forges or alters is caught
//! there, before any case key is wrapped.

use actix_web::{get, post, put, web, HttpResponse};
use rfl_crypto::{CertifiedRole, DevicePublicKey, KeyCertificate, RevocationList};
use rfl_domain::api::Base64Bytes;
use rfl_domain::{MemberId, Role, SocietyId};
use rfl_storage::{CertificateRow, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, SocietyAdmins, SocietyPeople};
use crate::{blocking, State};

/// At most this many certificates in one request.
const MAX_CERTIFICATES: usize = 1000;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(set_root)
        .service(add)
        .service(certificates)
        .service(publish_revocations);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRootRequest {
    /// The society's Ed25519 signing root public key (32 bytes). Set once.
    #[schema(value_type = String, format = Byte, pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$", min_length = 44, max_length = 44)]
    pub root_public_key: Base64Bytes,
    /// Root-signed certificates (the escrow key's, the first admin's), lowercase hex.
    #[schema(min_items = 1, max_items = 1000)]
    pub certificates: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificatesRequest {
    /// Key certificates, lowercase hex (`KeyCertificate::to_hex`).
    #[schema(min_items = 1, max_items = 1000)]
    pub certificates: Vec<String>,
}

/// The society's trust material, for clients to verify against their pinned root fingerprint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificatesResponse {
    #[schema(value_type = Option<String>, format = Byte)]
    pub root_public_key: Option<Base64Bytes>,
    /// Every subject's current certificate, then the certificates of keys members rotated away
    /// from (each revoked by the list: they count for commits signed before), lowercase hex.
    pub certificates: Vec<String>,
    /// The society's latest certificate revocation list, lowercase hex (`RevocationList::to_hex`;
    /// docs/crypto.md), or null before the first. Clients refuse a list older than one they saw.
    #[schema(pattern = "^([0-9a-f]{2})+$")]
    pub revocations: Option<String>,
    /// The society's root successions, oldest first, lowercase hex (`RootSuccession::to_hex`;
    /// docs/crypto.md, "Rotating the society root"): a client that pinned an earlier root follows
    /// them to `root_public_key`.
    pub root_successions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationListRequest {
    /// The society's next revocation list, lowercase hex: signed by the calling admin's device key
    /// (or the society root), numbered one more than the latest, naming its hash, and holding every
    /// entry it holds.
    #[schema(pattern = "^([0-9a-f]{2})+$", min_length = 2)]
    pub list: String,
}

pub(crate) fn role_of(role: CertifiedRole) -> Option<Role> {
    match role {
        CertifiedRole::SocietyAdmin => Some(Role::SocietyAdmin),
        CertifiedRole::Caseworker => Some(Role::Caseworker),
        CertifiedRole::Auditor => Some(Role::Auditor),
        CertifiedRole::SyncAgent => Some(Role::SyncAgent),
        CertifiedRole::Escrow => None,
    }
}

/// Parses the certificates and checks each names `society` and one of its subjects as registered.
fn check(
    store: &Store,
    society: SocietyId,
    hex: &[String],
    now: i64,
) -> Result<Vec<CertificateRow>, ApiError> {
    if hex.is_empty() || hex.len() > MAX_CERTIFICATES {
        return Err(ApiError::BadRequest(format!(
            "give 1 to {MAX_CERTIFICATES} certificates"
        )));
    }
    let soc = store.society(society)?.ok_or(ApiError::NotFound)?;
    // Keys on the society's revocation list are not certified again (clients would not trust them).
    let revoked = store
        .latest_revocation_list(society)?
        .map(|l| RevocationList::from_bytes(&l))
        .transpose()
        .map_err(|_| ApiError::Internal("the stored revocation list does not parse".into()))?;
    // One read for all members (no query per certificate).
    let members: std::collections::HashMap<MemberId, rfl_storage::Member> = store
        .society_members(society)?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    hex.iter()
        .map(|h| {
            let cert = KeyCertificate::from_hex(h.trim())
                .map_err(|e| ApiError::BadRequest(format!("a certificate is malformed: {e}")))?;
            if revoked
                .as_ref()
                .is_some_and(|r| r.find(cert.subject_id(), &cert.keys_digest()).is_some())
            {
                return Err(ApiError::Unprocessable(
                    "a certificate is for keys the society revoked: certify new keys".into(),
                ));
            }
            if cert.society_id() != *society.as_uuid() {
                return Err(ApiError::Unprocessable(
                    "a certificate is for another society".into(),
                ));
            }
            match role_of(cert.role()) {
                None => {
                    let escrow = soc.escrow.as_ref().ok_or_else(|| {
                        ApiError::Unprocessable("set the escrow key before certifying it".into())
                    })?;
                    if cert.age_recipient().to_string() != escrow.recipient {
                        return Err(ApiError::Unprocessable(
                            "the escrow certificate names another key than the society's".into(),
                        ));
                    }
                }
                Some(role) => {
                    let m = members
                        .get(&MemberId::from_uuid(cert.subject_id()))
                        .ok_or_else(|| {
                            ApiError::Unprocessable(
                                "a certificate names no member of this society".into(),
                            )
                        })?;
                    let same_keys = cert.signing_key().map(|k| k.as_bytes().as_slice())
                        == Some(m.signing_key.as_slice())
                        && cert.age_recipient().to_string() == m.age_recipient;
                    if m.role != role || !same_keys {
                        return Err(ApiError::Unprocessable(
                            "a certificate does not match the member's registered role and keys"
                                .into(),
                        ));
                    }
                }
            }
            Ok(CertificateRow {
                subject_id: cert.subject_id(),
                certificate: cert.to_bytes(),
                issued_at: now,
            })
        })
        .collect()
}

/// Set the society's signing root public key (once) with its root-signed certificates (society admin;
/// needs a recent passkey sign-in). Clients pin the root by a fingerprint given to them out of band.
#[utoipa::path(tag = "certificates", security(("bearer" = [])), request_body = SetRootRequest, responses(
    (status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 409, description = "Another root is set", body = Problem), (status = 422, body = Problem)))]
#[put("/society/root")]
async fn set_root(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<SetRootRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let root: [u8; 32] = req.root_public_key.0.as_slice().try_into().map_err(|_| {
        ApiError::BadRequest("root_public_key must be a 32-byte Ed25519 public key".into())
    })?;
    let store = state.store.clone();
    let now = state.now();
    blocking(move || {
        let rows = check(&store, caller.society_id, &req.certificates, now)?;
        Ok(store.put_certificates(caller.society_id, Some(&root), &rows, now)?)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, "society root key set");
    Ok(HttpResponse::NoContent().finish())
}

/// Store key certificates an admin issued (society admin; needs a recent passkey sign-in). A subject's
/// newer certificate replaces its earlier one.
#[utoipa::path(tag = "certificates", security(("bearer" = [])), request_body = CertificatesRequest, responses(
    (status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 422, body = Problem)))]
#[post("/certificates")]
async fn add(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<CertificatesRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let store = state.store.clone();
    let now = state.now();
    let n = req.certificates.len();
    blocking(move || {
        let rows = check(&store, caller.society_id, &req.certificates, now)?;
        Ok(store.put_certificates(caller.society_id, None, &rows, now)?)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, count = n, "key certificates stored");
    Ok(HttpResponse::NoContent().finish())
}

/// The society's root public key and every current key certificate (people of the society).
#[utoipa::path(tag = "certificates", operation_id = "list_certificates", security(("bearer" = [])), responses(
    (status = 200, body = CertificatesResponse), (status = 401, body = Problem), (status = 403, body = Problem)))]
#[get("/society/certificates")]
async fn certificates(
    state: State,
    Authorized(caller, _): Authorized<SocietyPeople>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let t = blocking(move || Ok(store.society_certificates(caller.society_id)?)).await?;
    Ok(HttpResponse::Ok().json(CertificatesResponse {
        root_public_key: t.root.map(|r| Base64Bytes(r.to_vec())),
        certificates: t
            .certificates
            .iter()
            .map(|r| crate::hex(&r.certificate))
            .chain(t.retired.iter().map(|c| crate::hex(c)))
            .collect(),
        revocations: t.revocations.as_deref().map(crate::hex),
        root_successions: t.successions.iter().map(|b| crate::hex(b)).collect(),
    }))
}

/// Checks an uploaded revocation list against what the server knows: it parses, is for `society`,
/// is signed by `signer` (the caller's registered device key) or the society root, and follows the
/// latest stored list (numbered one more, naming its hash, keeping every entry). The signature is
/// checked so that the server keeps no list that its clients would refuse.
pub(crate) fn check_revocations(
    store: &Store,
    society: SocietyId,
    signer: &DevicePublicKey,
    hex: &str,
) -> Result<RevocationList, ApiError> {
    check_next_list(store, society, hex, |list, root| {
        let by_root = root.is_some_and(|r| list.signed_by(&DevicePublicKey::from_bytes(r)));
        if !by_root && !list.signed_by(signer) {
            return Err(ApiError::Unprocessable(
                "the revocation list is not signed by your device key or the society root".into(),
            ));
        }
        Ok(())
    })
}

/// [`check_revocations`] with the signature rule `signed` (given the list and the society's current
/// root).
pub(crate) fn check_next_list(
    store: &Store,
    society: SocietyId,
    hex: &str,
    signed: impl FnOnce(&RevocationList, Option<[u8; 32]>) -> Result<(), ApiError>,
) -> Result<RevocationList, ApiError> {
    let list = RevocationList::from_hex(hex.trim())
        .map_err(|e| ApiError::BadRequest(format!("the revocation list is malformed: {e}")))?;
    let body = list.body();
    if body.society_id != *society.as_uuid() {
        return Err(ApiError::Unprocessable(
            "the revocation list is for another society".into(),
        ));
    }
    let trust = store.society_certificates(society)?;
    signed(&list, trust.root)?;
    let latest = trust
        .revocations
        .as_deref()
        .map(RevocationList::from_bytes)
        .transpose()
        .map_err(|_| ApiError::Internal("the stored revocation list does not parse".into()))?;
    let expected = latest.as_ref().map_or(1, |l| l.body().number + 1);
    if body.number != expected {
        return Err(ApiError::Conflict(format!(
            "the revocation list must be number {expected}: reload it and sign again"
        )));
    }
    if let Some(l) = &latest {
        if body.previous != l.hash() {
            return Err(ApiError::Unprocessable(
                "the revocation list does not name the latest list as its previous".into(),
            ));
        }
        if !l
            .body()
            .entries
            .iter()
            .all(|e| list.find(e.subject_id, &e.keys_digest).is_some())
        {
            return Err(ApiError::Unprocessable(
                "the revocation list drops an earlier revocation".into(),
            ));
        }
    }
    Ok(list)
}

/// Publish the society's next certificate revocation list (society admin; needs a recent passkey
/// sign-in). Clients stop wrapping case keys to the listed keys and stop counting their signatures
/// on commits dated after the revocation. `rfl member revoke` signs and sends it.
#[utoipa::path(tag = "certificates", security(("bearer" = [])), request_body = RevocationListRequest, responses(
    (status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 409, description = "Not the next list: reload it and sign again", body = Problem),
    (status = 422, body = Problem)))]
#[put("/society/revocations")]
async fn publish_revocations(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<RevocationListRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let store = state.store.clone();
    let now = state.now();
    let (number, count) = blocking(move || {
        let me = store.member(caller.member_id)?.ok_or(ApiError::NotFound)?;
        let signer = DevicePublicKey::from_slice(&me.signing_key)
            .map_err(|_| ApiError::Internal("a stored device key is not 32 bytes".into()))?;
        let list = check_revocations(&store, caller.society_id, &signer, &req.list)?;
        let number = list.body().number;
        store.add_revocation_list(caller.society_id, number, list.to_bytes(), now)?;
        Ok((number, list.body().entries.len()))
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, number, revoked = count, "revocation list published");
    Ok(HttpResponse::NoContent().finish())
}
