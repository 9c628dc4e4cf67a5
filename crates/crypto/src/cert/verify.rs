//! Verifying a certificate chain against the pinned society root, and wrapping only to keys whose
//! chain verified.

use uuid::Uuid;

use super::{cert_err, subject_keys_digest, CertifiedRole, KeyCertificate, RootPublicKey};
use crate::error::Result;
use crate::escrow::EscrowBatch;
use crate::keys::{AgeRecipient, DataKey, DevicePublicKey};
use crate::wrap::wrap_data_key;

/// Public keys of a subject whose certificate chain verified. Only [`verify_chain`]
/// makes values of this type, so holding one proves the check was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedKeys {
    society_id: Uuid,
    subject_id: Uuid,
    role: CertifiedRole,
    signing_key: Option<DevicePublicKey>,
    age_recipient: AgeRecipient,
    valid_until: i64,
}

impl VerifiedKeys {
    /// Society of the subject.
    pub fn society_id(&self) -> Uuid {
        self.society_id
    }

    /// Member id (the society id for the escrow key).
    pub fn subject_id(&self) -> Uuid {
        self.subject_id
    }

    /// Certified role.
    pub fn role(&self) -> CertifiedRole {
        self.role
    }

    /// Certified Ed25519 device key (`None` for the escrow key).
    pub fn signing_key(&self) -> Option<&DevicePublicKey> {
        self.signing_key.as_ref()
    }

    /// Certified age recipient.
    pub fn age_recipient(&self) -> &AgeRecipient {
        &self.age_recipient
    }

    /// [`subject_keys_digest`] of these keys.
    pub fn keys_digest(&self) -> [u8; 32] {
        subject_keys_digest(self.signing_key.as_ref(), &self.age_recipient)
    }

    /// Last second at which every certificate of the chain is valid.
    pub fn valid_until(&self) -> i64 {
        self.valid_until
    }

    /// Check that these keys belong to the subject and role the caller asked for (a
    /// server could otherwise answer a request for one member with another's valid chain).
    pub fn expect(&self, subject_id: Uuid, role: CertifiedRole) -> Result<()> {
        if self.subject_id != subject_id {
            return Err(cert_err("certificate is for another subject"));
        }
        if self.role != role {
            return Err(cert_err("certificate grants a different role"));
        }
        Ok(())
    }
}

/// Check one certificate against the public key that should have signed it, then its
/// society and validity window. Signature first: nothing unauthenticated is interpreted.
fn verify_one(
    cert: &KeyCertificate,
    issuer_verify: impl FnOnce(&[u8], &[u8]) -> Result<()>,
    society_id: Uuid,
    now_secs: i64,
) -> Result<()> {
    issuer_verify(&cert.signed_message(), &cert.signature)
        .map_err(|_| cert_err("certificate signature does not verify"))?;
    if cert.society_id != society_id {
        return Err(cert_err("certificate is for another society"));
    }
    cert.check_shape()?;
    cert.validity.check_at(now_secs)
}

/// Verify a certificate chain against the pinned society root and return the subject's
/// keys. Accepted chains:
///
/// * `[admin_cert]`: a society admin, signed by the root;
/// * `[escrow_cert]`: the society escrow key, signed by the root;
/// * `[admin_cert, member_cert]`: a caseworker, auditor or sync agent, signed by that
///   admin's device key.
///
/// Every certificate must be for `society_id` and valid at `now_secs`. Errors are
/// [`CryptoError::Certificate`] with a reason that never contains key bytes.
pub fn verify_chain(
    root: &RootPublicKey,
    society_id: Uuid,
    chain: &[KeyCertificate],
    now_secs: i64,
) -> Result<VerifiedKeys> {
    let (first, rest) = chain
        .split_first()
        .ok_or(cert_err("empty certificate chain"))?;
    if first.issuer != *root.as_bytes() {
        return Err(cert_err("certificate not issued by the society root"));
    }
    verify_one(first, |m, s| root.verify_raw(m, s), society_id, now_secs)?;
    if !first.role.issued_by_root() {
        return Err(cert_err(
            "the society root issues only admin and escrow certificates",
        ));
    }
    let mut subject = first;
    let mut valid_until = first.validity.not_after;
    for cert in rest {
        let issuer = subject;
        let issuer_key = match (issuer.role, issuer.signing_key) {
            (CertifiedRole::SocietyAdmin, Some(k)) => k,
            _ => return Err(cert_err("issuer is not a society admin")),
        };
        if cert.issuer != *issuer_key.as_bytes() {
            return Err(cert_err("certificate not issued by the given admin"));
        }
        verify_one(cert, |m, s| issuer_key.verify(m, s), society_id, now_secs)?;
        if cert.role.issued_by_root() {
            return Err(cert_err(
                "admins may issue only caseworker, auditor and sync agent certificates",
            ));
        }
        valid_until = valid_until.min(cert.validity.not_after);
        subject = cert;
    }
    Ok(VerifiedKeys {
        society_id,
        subject_id: subject.subject_id,
        role: subject.role,
        signing_key: subject.signing_key,
        age_recipient: subject.age_recipient.clone(),
        valid_until,
    })
}

/// [`wrap_data_key`] to a recipient whose certificate chain verified. Refuses roles that
/// never hold case keys (auditor, sync agent). Using this instead of `wrap_data_key`
/// with a bare recipient makes "verify before wrapping" a type-level rule.
pub fn wrap_data_key_certified(
    key: &DataKey,
    case_id: Uuid,
    key_epoch: u32,
    recipient: &VerifiedKeys,
) -> Result<Vec<u8>> {
    if !recipient.role.may_receive_case_keys() {
        return Err(cert_err("this role may not receive case keys"));
    }
    wrap_data_key(key, case_id, key_epoch, recipient.age_recipient.as_age())
}

/// A new batch of wrappings ([`EscrowBatch::new`]) to one member whose certificate chain verified,
/// named by their member id: one age encryption to their recipient for any number of cases (a
/// re-key wraps every case of a revoked member to each remaining holder this way). Refuses roles
/// that never hold case keys.
pub fn holder_batch_certified(holder: &VerifiedKeys) -> Result<EscrowBatch> {
    if !holder.role.may_receive_case_keys() {
        return Err(cert_err("this role may not receive case keys"));
    }
    EscrowBatch::new(holder.subject_id, holder.age_recipient.as_age())
}

/// A new escrow batch ([`EscrowBatch::new`]) to the society escrow key whose certificate chain
/// verified: only the escrow certificate of the society itself is accepted, so the server cannot
/// slip in a key of its own.
pub fn escrow_batch_certified(escrow: &VerifiedKeys) -> Result<EscrowBatch> {
    escrow.expect(escrow.society_id, CertifiedRole::Escrow)?;
    EscrowBatch::new(escrow.society_id, escrow.age_recipient.as_age())
}
