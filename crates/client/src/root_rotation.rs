//! Rotating the society's signing root (society admins, with the root key; docs/crypto.md,
//! "Rotating the society root"). The old root signs its successor, the successor re-certifies every
//! subject the old root certified (the admins and the escrow key, for the same keys and validity),
//! and signs the society's next revocation list; the server stores all of it in one transaction.
//! Members keep the fingerprint they pinned: their clients follow the succession.

use rfl_crypto::{
    issue_admin_cert, issue_escrow_cert, CertifiedRole, KeyCertificate, RevocationListBody,
    RootSuccession, SocietyRootKey,
};
use serde::Serialize;

use crate::session::Session;
use crate::trust::now_secs;
use crate::{ClientError, Result};

#[derive(Serialize)]
struct RootRotationRequest {
    succession: String,
    certificates: Vec<String>,
    revocations: String,
}

impl Session {
    /// Replaces the society root `old` (the current one, as this session verified it) with a new
    /// root, which it returns: keep it offline, as the old one was. Every certificate the old root
    /// issued that this session trusts is issued again by the new root; the society's next
    /// revocation list (the same entries) is signed by it. On 409 (the root, a certificate or the
    /// list changed meanwhile) nothing was stored: run it again. `keep` stores the new root key
    /// (sealed, offline) before the server hears of it: a root the server serves and nobody holds
    /// would certify no one again.
    pub async fn rotate_root(
        &self,
        old: &SocietyRootKey,
        keep: impl FnOnce(&SocietyRootKey) -> Result<()>,
    ) -> Result<SocietyRootKey> {
        self.reload_members().await?;
        self.check_root_key(old)?;
        let society = *self.society_id().as_uuid();
        let new = SocietyRootKey::generate()?;
        let now = now_secs();
        let succession = RootSuccession::sign(society, old, &new, now)?;
        let (issued, previous): (Vec<KeyCertificate>, _) = self.with_trust(|t| {
            (
                t.certificates
                    .values()
                    .map(|(c, _)| c.clone())
                    .filter(|c| c.role().issued_by_root())
                    .collect(),
                t.revocations.clone(),
            )
        })?;
        let certificates = issued
            .iter()
            .map(|c| {
                let again = match (c.role(), c.signing_key()) {
                    (CertifiedRole::SocietyAdmin, Some(k)) => issue_admin_cert(
                        &new,
                        society,
                        c.subject_id(),
                        *k,
                        c.age_recipient(),
                        c.validity(),
                    )?,
                    (CertifiedRole::Escrow, _) => {
                        issue_escrow_cert(&new, society, c.age_recipient(), c.validity())?
                    }
                    _ => {
                        return Err(ClientError::Invalid(
                            "a root certificate of an unexpected role".into(),
                        ))
                    }
                };
                Ok(again.to_hex())
            })
            .collect::<Result<Vec<_>>>()?;
        let list =
            RevocationListBody::next(society, previous.as_ref(), &[], now)?.sign_by_root(&new)?;
        keep(&new)?;
        self.api()
            .post_no_content(
                "/v1/society/root/rotation",
                &RootRotationRequest {
                    succession: succession.to_hex(),
                    certificates,
                    revocations: list.to_hex(),
                },
            )
            .await?;
        self.reload_members().await?;
        let current = self.with_trust(|t| t.root)?;
        if current != Some(new.public()) {
            return Err(crate::session::tampered(
                "after the rotation, the server does not serve the new root",
            ));
        }
        Ok(new)
    }
}
