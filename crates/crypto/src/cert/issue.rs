//! Issuing certificates: the society root certifies admins and the escrow key, an admin certifies
//! the members of the admin's society.

use uuid::Uuid;

use super::{cert_err, CertifiedRole, KeyCertificate, SocietyRootKey, Validity, MAX_RECIPIENT_LEN};
use crate::error::{CryptoError, Result};
use crate::keys::{AgeRecipient, DevicePublicKey, DeviceSigningKey};

fn check_recipient_len(r: &AgeRecipient) -> Result<()> {
    if r.to_string().len() > MAX_RECIPIENT_LEN {
        return Err(CryptoError::KeyFormat("age recipient too long"));
    }
    Ok(())
}

/// Sign a fresh certificate with `sign`, after checking its invariants.
fn finish(
    mut cert: KeyCertificate,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Result<KeyCertificate> {
    check_recipient_len(&cert.age_recipient)?;
    cert.check_shape()?;
    cert.signature = sign(&cert.signed_message());
    Ok(cert)
}

/// The society root certifies an admin's device key and age recipient.
pub fn issue_admin_cert(
    root: &SocietyRootKey,
    society_id: Uuid,
    admin_id: Uuid,
    signing_key: DevicePublicKey,
    age_recipient: &AgeRecipient,
    validity: Validity,
) -> Result<KeyCertificate> {
    let cert = KeyCertificate {
        role: CertifiedRole::SocietyAdmin,
        society_id,
        subject_id: admin_id,
        validity,
        signing_key: Some(signing_key),
        age_recipient: age_recipient.clone(),
        issuer: *root.public().as_bytes(),
        signature: [0u8; 64],
    };
    finish(cert, |m| root.sign_raw(m))
}

/// The society root certifies the society escrow recipient (subject id = society id).
pub fn issue_escrow_cert(
    root: &SocietyRootKey,
    society_id: Uuid,
    escrow_recipient: &AgeRecipient,
    validity: Validity,
) -> Result<KeyCertificate> {
    let cert = KeyCertificate {
        role: CertifiedRole::Escrow,
        society_id,
        subject_id: society_id,
        validity,
        signing_key: None,
        age_recipient: escrow_recipient.clone(),
        issuer: *root.public().as_bytes(),
        signature: [0u8; 64],
    };
    finish(cert, |m| root.sign_raw(m))
}

/// An admin certifies a member (caseworker, auditor or sync agent) of the admin's
/// society with the admin's device key. `admin_cert` must be the admin's own
/// certificate (role, society and key are checked here; its root signature is checked
/// by whoever verifies the resulting chain).
///
/// The admin's client must have confirmed the member's keys out of band (e.g. by
/// comparing [`subject_keys_fingerprint`]) before calling this.
pub fn issue_member_cert(
    admin_signing: &DeviceSigningKey,
    admin_cert: &KeyCertificate,
    member_id: Uuid,
    role: CertifiedRole,
    signing_key: DevicePublicKey,
    age_recipient: &AgeRecipient,
    validity: Validity,
) -> Result<KeyCertificate> {
    if admin_cert.role != CertifiedRole::SocietyAdmin {
        return Err(cert_err("issuer is not a society admin"));
    }
    let admin_pk = admin_signing.public_key();
    if admin_cert.signing_key != Some(admin_pk) {
        return Err(cert_err("signing key does not match the admin certificate"));
    }
    if role.issued_by_root() {
        return Err(cert_err(
            "admins may issue only caseworker, auditor and sync agent certificates",
        ));
    }
    let cert = KeyCertificate {
        role,
        society_id: admin_cert.society_id,
        subject_id: member_id,
        validity,
        signing_key: Some(signing_key),
        age_recipient: age_recipient.clone(),
        issuer: *admin_pk.as_bytes(),
        signature: [0u8; 64],
    };
    finish(cert, |m| admin_signing.sign(m))
}
