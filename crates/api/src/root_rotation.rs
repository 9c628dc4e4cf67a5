//! Rotating a society's signing root (docs/crypto.md, "Rotating the society root"):
//! `POST /v1/society/root/rotation` replaces the root, every certificate it issued and the latest
//! revocation list in one transaction, with the succession the old and new roots signed.
//!
//! The server checks what keeps the store consistent (the signatures included, which are public
//! data): the succession hands the current root over, the new certificates are the new root's, one
//! for each subject the old root certified and for the same keys, and the list is the next one,
//! signed by the new root. Clients verify all of it again from the root they pinned.

use std::collections::HashMap;

use actix_web::{post, web, HttpResponse};
use rfl_crypto::{verify_chain, DevicePublicKey, KeyCertificate, RootPublicKey, RootSuccession};
use rfl_storage::{CertificateRow, RootRotation};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::certs::check_next_list;
use crate::error::{ApiError, Problem};
use crate::roles::{Authorized, SocietyAdmins};
use crate::{blocking, State};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(rotate_root);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RootRotationRequest {
    /// The succession the current root and its successor signed, lowercase hex
    /// (`RootSuccession::to_hex`, 236 bytes).
    #[schema(pattern = "^([0-9a-f]{2})+$", min_length = 472, max_length = 472)]
    pub succession: String,
    /// The new root's certificates of every subject the current root certified (the society's
    /// admins and escrow key), for the same keys, lowercase hex.
    #[schema(min_items = 1, max_items = 1000)]
    pub certificates: Vec<String>,
    /// The society's next revocation list, signed by the new root, lowercase hex.
    #[schema(pattern = "^([0-9a-f]{2})+$", min_length = 2)]
    pub revocations: String,
}

/// Rotate the society's signing root (society admin; needs a recent passkey sign-in): the
/// succession both roots signed, the new root's certificate of every subject the old root
/// certified, and the next revocation list signed by the new root, stored in one transaction.
/// Members keep the fingerprint they pinned: their clients follow the succession.
#[utoipa::path(tag = "certificates", security(("bearer" = [])), request_body = RootRotationRequest, responses(
    (status = 204), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 409, description = "The root or the revocation list changed meanwhile", body = Problem),
    (status = 422, body = Problem)))]
#[post("/society/root/rotation")]
async fn rotate_root(
    state: State,
    Authorized(caller, _): Authorized<SocietyAdmins>,
    body: web::Json<RootRotationRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let succession = RootSuccession::from_hex(&req.succession)
        .map_err(|e| ApiError::BadRequest(format!("the succession is malformed: {e}")))?;
    if req.certificates.is_empty() || req.certificates.len() > 1000 {
        return Err(ApiError::BadRequest("send 1 to 1000 certificates".into()));
    }
    let certs = req
        .certificates
        .iter()
        .map(|h| {
            KeyCertificate::from_hex(h.trim())
                .map_err(|e| ApiError::BadRequest(format!("a certificate is malformed: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let store = state.store.clone();
    let now = state.now();
    blocking(move || {
        let society = *caller.society_id.as_uuid();
        succession
            .verify(society)
            .map_err(|e| ApiError::Unprocessable(format!("the succession does not verify: {e}")))?;
        let trust = store.society_certificates(caller.society_id)?;
        let current = trust
            .root
            .ok_or_else(|| ApiError::Unprocessable("the society has no root yet".into()))?;
        if succession.old_root() != RootPublicKey::from_bytes(current) {
            return Err(ApiError::Conflict(
                "the succession does not replace the society's current root: reload and try again"
                    .into(),
            ));
        }
        let new_root = succession.new_root();
        // What the old root certified now: subject → keys.
        let old_root = RootPublicKey::from_bytes(current);
        let mut expected: HashMap<uuid::Uuid, [u8; 32]> = HashMap::new();
        for row in &trust.certificates {
            let Ok(c) = KeyCertificate::from_bytes(&row.certificate) else {
                continue;
            };
            if c.role().issued_by_root() && c.issuer_key() == old_root.as_bytes() {
                expected.insert(c.subject_id(), c.keys_digest());
            }
        }
        let now_secs = now / 1000;
        let mut rows = Vec::with_capacity(certs.len());
        for c in &certs {
            verify_chain(&new_root, society, std::slice::from_ref(c), now_secs).map_err(|e| {
                ApiError::Unprocessable(format!("a certificate is not the new root's: {e}"))
            })?;
            if expected.remove(&c.subject_id()) != Some(c.keys_digest()) {
                return Err(ApiError::Unprocessable(
                    "a certificate is not for a subject the old root certified, or not for the \
                     same keys, or given twice"
                        .into(),
                ));
            }
            rows.push(CertificateRow {
                subject_id: c.subject_id(),
                certificate: c.to_bytes(),
                issued_at: now,
            });
        }
        if !expected.is_empty() {
            return Err(ApiError::Conflict(format!(
                "{} subject(s) the old root certified have no certificate of the new root: reload \
                 and try again",
                expected.len()
            )));
        }
        let list = check_next_list(&store, caller.society_id, &req.revocations, |list, _| {
            if list.signed_by(&DevicePublicKey::from_bytes(*new_root.as_bytes())) {
                Ok(())
            } else {
                Err(ApiError::Unprocessable(
                    "the revocation list is not signed by the new root".into(),
                ))
            }
        })?;
        Ok(store.rotate_society_root(
            caller.society_id,
            &RootRotation {
                old_root: current,
                new_root: *new_root.as_bytes(),
                succession: succession.to_bytes(),
                certificates: rows,
                list_number: list.body().number,
                list: list.to_bytes().to_vec(),
            },
            now,
        )?)
    })
    .await?;
    tracing::info!(society = %caller.society_id, by = %caller.member_id, "society root rotated");
    Ok(HttpResponse::NoContent().finish())
}
