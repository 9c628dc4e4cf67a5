//! Certified public keys on the client: which keys this session trusts, and why.
//!
//! The server hands out every public key, so none is trusted for what the server says. A session trusts
//! the society's signing root only if it matches the fingerprint the person was given out of band
//! (pinned), and then exactly the keys that root certifies: admins and the escrow key directly, other
//! members through an admin's certificate (`rfl_crypto::verify_chain`). Case keys are wrapped only to
//! keys verified this way (and to the session's own keys), and records count only if signed by one.

use rfl_crypto::{
    issue_admin_cert, issue_escrow_cert, issue_member_cert, roots_from_pin, subject_keys_digest,
    subject_keys_fingerprint, wrap_escrow_identity, AgeIdentity, AgeRecipient, CertifiedRole,
    DevicePublicKey, KeyCertificate, RevocationEntry, RevocationList, RevocationListBody,
    RevocationReason, RootPublicKey, RootSuccession, SocietyRootKey, Validity, VerifiedKeys,
};
use rfl_domain::api::{Base64Bytes, EscrowDto, MemberDto};
use rfl_domain::{MemberId, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::session::Session;

mod admin;
use crate::{ClientError, Result};

/// How long root-issued certificates (admins, escrow) are valid.
pub const ROOT_CERT_DAYS: i64 = 2 * 365;
/// How long an admin-issued member certificate is valid.
pub const MEMBER_CERT_DAYS: i64 = 365;
/// Clock skew tolerated between the issuing and the verifying client.
const SKEW_SECS: i64 = 300;

/// The keys a session verified against its pinned root (`rfl_crypto::Trust`: the same
/// verification a server does of another server's commits).
pub use rfl_crypto::Trust;

/// A society's trust material refused as a whole: no root is a usage error, anything else is the
/// server's doing.
pub(crate) fn trust_error(e: rfl_crypto::TrustError) -> ClientError {
    match e {
        rfl_crypto::TrustError::NoRoot => ClientError::Invalid(e.to_string()),
        _ => ClientError::Tampered(e.to_string()),
    }
}

#[derive(Deserialize)]
struct CertificatesResponse {
    root_public_key: Option<Base64Bytes>,
    certificates: Vec<String>,
    #[serde(default)]
    revocations: Option<String>,
    #[serde(default)]
    root_successions: Vec<String>,
}

#[derive(Serialize)]
struct SetRoot {
    root_public_key: Base64Bytes,
    certificates: Vec<String>,
}

#[derive(Serialize)]
struct RevocationListRequest {
    list: String,
}

/// What certifying a member's keys did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Certification {
    /// Their registered keys are certified.
    Certified,
    /// The keys they prepared with `rfl keys rotate` are certified and now theirs; their old keys
    /// are revoked (superseded).
    Rotated,
}

/// What [`Session::revoke_member`] did.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Revoked {
    /// The member.
    pub member: MemberId,
    /// The revocation list it published (none if their keys were already listed).
    pub list_number: Option<u64>,
    /// Whether it suspended the member (false if already suspended).
    pub suspended: bool,
}

#[derive(Serialize)]
struct Certificates {
    certificates: Vec<String>,
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn validity(days: i64) -> Result<Validity> {
    let now = now_secs();
    Ok(Validity::new(now - SKEW_SECS, now + days * 86_400)?)
}

fn certified_role(role: Role) -> Result<CertifiedRole> {
    match role {
        Role::Caseworker => Ok(CertifiedRole::Caseworker),
        Role::Auditor => Ok(CertifiedRole::Auditor),
        Role::SyncAgent => Ok(CertifiedRole::SyncAgent),
        _ => Err(ClientError::Invalid(
            "only caseworkers, auditors and sync agents are certified by an admin".into(),
        )),
    }
}

/// The fingerprint of a subject's public keys, to be compared out of band before an admin certifies
/// them (`rfl_crypto::subject_keys_fingerprint`).
pub fn keys_fingerprint(signing: &DevicePublicKey, recipient: &AgeRecipient) -> String {
    subject_keys_fingerprint(Some(signing), recipient)
}

/// A society's trust material as the server serves it, parsed: its root successions, its key
/// certificates (one that does not parse is left out, as one that does not verify) and its
/// revocation list. A malformed succession or list is tampering.
pub(crate) fn parse_material(
    successions: &[String],
    certificates: &[String],
    revocations: Option<&str>,
) -> Result<(
    Vec<RootSuccession>,
    Vec<KeyCertificate>,
    Option<RevocationList>,
)> {
    let successions = successions
        .iter()
        .map(|h| RootSuccession::from_hex(h))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Tampered(format!("a root succession is malformed: {e}")))?;
    let certs = certificates
        .iter()
        .filter_map(|h| KeyCertificate::from_hex(h).ok())
        .collect();
    let list = revocations
        .map(RevocationList::from_hex)
        .transpose()
        .map_err(|e| {
            ClientError::Tampered(format!("the society's revocation list is malformed: {e}"))
        })?;
    Ok((successions, certs, list))
}

impl Session {
    /// Fetches the society's root key and certificates and keeps exactly the keys that verify against
    /// the pinned root fingerprint. Without a pin, or before the society has a root, nothing is trusted
    /// but this session's own keys.
    pub(crate) async fn load_trust(&self) -> Result<Trust> {
        let Some(pin) = self.pinned_root() else {
            return Ok(Trust::default());
        };
        let resp: CertificatesResponse = self.api().get("/v1/society/certificates").await?;
        let Some(root) = resp.root_public_key else {
            return Ok(Trust::default());
        };
        let society = *self.society_id().as_uuid();
        let current = RootPublicKey::from_slice(&root.0).map_err(|_| {
            ClientError::Tampered("the society root key on the server is malformed".into())
        })?;
        let (successions, certs, list) = parse_material(
            &resp.root_successions,
            &resp.certificates,
            resp.revocations.as_deref(),
        )?;
        // The pinned root, or one that a chain of successions signed by each root leads to.
        let roots = roots_from_pin(pin, society, &current, &successions).map_err(|_| {
            ClientError::Tampered(
                "the society root key on the server does not match the fingerprint you were given, \
                 and no succession signed by that root leads to it"
                    .into(),
            )
        })?;
        // The last list this client verified (kept MAC'd beside the keystore by `rfl`).
        let seen = self
            .heads()
            .revocations()
            .map(|bytes| RevocationList::from_bytes(&bytes))
            .transpose()
            .map_err(|e| ClientError::Tampered(format!("the revocation list kept locally: {e}")))?;
        let trust = Trust::verify(&roots, society, certs, list, seen.as_ref(), now_secs())
            .map_err(trust_error)?;
        if let Some(r) = &trust.revocations {
            if seen.as_ref().map(|s| s.hash()) != Some(r.hash()) {
                self.heads().put_revocations(r.list().to_bytes())?;
            }
        }
        Ok(trust)
    }

    /// The verified keys of a member, for wrapping a case key to them: refused with a clear error if
    /// the member has no certificate that verifies against the pinned root.
    pub async fn certified_member(&self, member: MemberId) -> Result<VerifiedKeys> {
        let known = self.with_trust(|t| t.get(*member.as_uuid()).cloned())?;
        let found = match known {
            Some(k) => Some(k),
            // Certified since the keys were loaded: load them again.
            None => {
                self.reload_members().await?;
                self.with_trust(|t| t.get(*member.as_uuid()).cloned())?
            }
        };
        if found.is_none() && self.with_trust(|t| t.is_revoked(*member.as_uuid()))? {
            return Err(ClientError::Invalid(format!(
                "the keys of member {member} were revoked by your society: nothing is wrapped to them"
            )));
        }
        found.ok_or_else(|| {
            ClientError::Tampered(format!(
                "member {member} has no certificate that verifies against your society's root: \
                     their keys cannot be trusted (an admin must certify them)"
            ))
        })
    }

    /// The fingerprint of this person's own public keys, to read out to the admin who certifies them.
    pub fn keys_fingerprint(&self) -> String {
        keys_fingerprint(
            &self.keys().signing.public_key(),
            &self.keys().age.recipient(),
        )
    }
}
