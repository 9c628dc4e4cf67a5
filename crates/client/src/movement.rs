//! The Movement root (docs/crypto.md, "The Movement root and transfers"): Movement admins hold it
//! offline and certify each society's root with it; every member pins its fingerprint, as they pin
//! their society's. Another society's keys count for this client only if the pinned Movement root
//! certifies a root of that society from which its successions lead to its current root, and that
//! root certifies the keys.

use std::sync::Arc;

use rfl_crypto::{
    certified_society_roots, RootPublicKey, SocietyCertificate, SocietyRootKey, Validity,
};
use rfl_domain::api::{MovementRootDto, SocietyCertificateRequest, SocietyTrustResponse};
use rfl_domain::SocietyId;

use crate::session::{tampered, Session};
use crate::trust::{now_secs, parse_material, Trust, ROOT_CERT_DAYS};
use crate::{ClientError, Result};

/// Clock skew tolerated between the Movement admin's client and others.
const SKEW_SECS: i64 = 300;

impl Session {
    /// The Movement root as the server has it, accepted only if it matches the pinned fingerprint.
    pub async fn movement_root(&self) -> Result<RootPublicKey> {
        let pin = self.pinned_movement().ok_or_else(|| {
            ClientError::Invalid(
                "pin the Movement root's fingerprint first (`rfl movement pin FINGERPRINT`; it is \
                 given out of band, like your society's)"
                    .into(),
            )
        })?;
        let dto: MovementRootDto = match self.api().get("/v1/movement/root").await {
            Err(ClientError::Api { status: 404, .. }) => return Err(ClientError::Invalid(
                "the server has no Movement root yet (a Movement admin runs `rfl movement init`)"
                    .into(),
            )),
            other => other?,
        };
        RootPublicKey::pinned(&dto.root_public_key.0, pin).map_err(|_| {
            tampered("the Movement root on the server does not match the fingerprint you pinned")
        })
    }

    /// Another society's keys, verified through the pinned Movement root (and kept for this
    /// session): refused unless a certificate of the Movement root leads to the society's current
    /// root. A revocation list, if any, must verify too; this client has no earlier one of that
    /// society to hold it to.
    pub async fn society_trust(&self, society: SocietyId) -> Result<Arc<Trust>> {
        let movement = self.movement_root().await?;
        let resp: SocietyTrustResponse = self
            .api()
            .get(&format!("/v1/societies/{society}/trust"))
            .await?;
        if resp.society_id != society {
            return Err(tampered("the server answered with another society's keys"));
        }
        let uuid = *society.as_uuid();
        let current = resp
            .root_public_key
            .as_ref()
            .map(|r| RootPublicKey::from_slice(&r.0))
            .transpose()
            .map_err(|_| tampered("the society's root key on the server is malformed"))?
            .ok_or_else(|| {
                ClientError::Invalid(format!("society {society} has no root key yet"))
            })?;
        let (successions, keys, list) = parse_material(
            &resp.root_successions,
            &resp.certificates,
            resp.revocations.as_deref(),
        )?;
        let certs: Vec<SocietyCertificate> = resp
            .movement_certificates
            .iter()
            .filter_map(|h| SocietyCertificate::from_hex(h).ok())
            .collect();
        let now = now_secs();
        let roots = certified_society_roots(&movement, uuid, &current, &successions, &certs, now)
            .map_err(|_| {
            ClientError::Invalid(format!(
                "society {society} ({}) is not certified by the Movement root you pinned: \
                         nothing is wrapped to its keys (a Movement admin runs `rfl movement \
                         certify-society`)",
                resp.name
            ))
        })?;
        let trust = Arc::new(
            Trust::verify(&roots, uuid, keys, list, None, now)
                .map_err(crate::trust::trust_error)?,
        );
        self.keep_foreign_trust(society, trust.clone());
        Ok(trust)
    }

    /// A Movement admin's first step: a new Movement root, its public key set on the server (once).
    /// Returns the root, to be kept offline; its fingerprint is what every member pins.
    pub async fn init_movement(&self) -> Result<SocietyRootKey> {
        let root = SocietyRootKey::generate()?;
        self.set_movement_root(&root).await?;
        Ok(root)
    }

    /// Sets `root` as the Movement root on the server (once; the same key again is accepted).
    pub async fn set_movement_root(&self, root: &SocietyRootKey) -> Result<()> {
        self.api()
            .put_no_content(
                "/v1/movement/root",
                &MovementRootDto {
                    root_public_key: root.public().as_bytes().to_vec().into(),
                },
            )
            .await
    }

    /// A Movement admin certifies `society`'s current root with the Movement root `movement`,
    /// refused unless that root's fingerprint is `fingerprint` (read out by the society's admins,
    /// out of band): the server cannot have the Movement vouch for a root of its own.
    pub async fn certify_society(
        &self,
        movement: &SocietyRootKey,
        society: SocietyId,
        fingerprint: &str,
    ) -> Result<SocietyCertificate> {
        let resp: SocietyTrustResponse = self
            .api()
            .get(&format!("/v1/societies/{society}/trust"))
            .await?;
        let root = resp
            .root_public_key
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "society {society} has no root yet: its first admin runs `rfl society init`"
                ))
            })
            .and_then(|r| {
                RootPublicKey::pinned(&r.0, fingerprint).map_err(|_| {
                    ClientError::Invalid(
                        "the society's root on the server does not match the fingerprint given: \
                         nothing was certified"
                            .into(),
                    )
                })
            })?;
        let now = now_secs();
        let validity = Validity::new(now - SKEW_SECS, now + ROOT_CERT_DAYS * 86_400)?;
        let cert = SocietyCertificate::issue(movement, *society.as_uuid(), &root, validity)?;
        self.api()
            .post_no_content(
                "/v1/movement/certificates",
                &SocietyCertificateRequest {
                    certificate: cert.to_hex(),
                },
            )
            .await?;
        Ok(cert)
    }
}
