//! Certified public keys on the client: which keys this session trusts, and why.
//!
//! The server hands out every public key, so none is trusted for what the server says. A session trusts
//! the society's signing root only if it matches the fingerprint the person was given out of band
//! (pinned), and then exactly the keys that root certifies: admins and the escrow key directly, other
//! members through an admin's certificate (`rfl_crypto::verify_chain`). Case keys are wrapped only to
//! keys verified this way (and to the session's own keys), and records count only if signed by one.

use std::collections::HashMap;

use rfl_crypto::{
    issue_admin_cert, issue_escrow_cert, issue_member_cert, roots_from_pin, subject_keys_digest,
    subject_keys_fingerprint, verify_chain, wrap_escrow_identity, AgeIdentity, AgeRecipient,
    CertifiedRole, DevicePublicKey, KeyCertificate, RevocationEntry, RevocationList,
    RevocationListBody, RevocationReason, RootPublicKey, RootSuccession, SocietyRootKey, Validity,
    VerifiedKeys, VerifiedRevocations,
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

/// The keys a session verified against its pinned root.
#[derive(Debug, Default)]
pub struct Trust {
    /// Verified certificates by subject (member id; the society id for the escrow key), none of
    /// them revoked.
    pub(crate) certificates: HashMap<Uuid, (KeyCertificate, VerifiedKeys)>,
    /// Certificates that verified but whose keys the society revoked (a subject who rotated their
    /// keys has one for each set they rotated away from), with the revocation time (Unix seconds):
    /// never wrapped to, and their signatures count only on commits dated before it.
    pub(crate) revoked: HashMap<Uuid, Vec<(KeyCertificate, VerifiedKeys, i64)>>,
    /// The society's revocation list, verified.
    pub(crate) revocations: Option<VerifiedRevocations>,
    /// The society root these were verified against (the pinned one).
    pub(crate) root: Option<RootPublicKey>,
}

impl Trust {
    /// Verifies every certificate the server returned against `root`; those that fail are left out.
    /// The revocation list, if any, must verify (signed by the root or a certified admin) and must
    /// follow `seen`, the last list this client verified: a server that serves none after one was
    /// seen, an older one or one that drops an entry is refused with [`ClientError::Tampered`].
    /// Keys on the list move to [`Trust::revoked`], and so do the members certified by a revoked
    /// admin (their issuer is no longer trusted).
    ///
    /// `roots` are the society's roots from the pinned one to the current one (the last), as the
    /// successions lead ([`rfl_crypto::roots_from_pin`]): the current root's certificates count;
    /// an earlier root's only if their keys are revoked, for commits dated before that.
    pub(crate) fn verify(
        roots: &[RootPublicKey],
        society: Uuid,
        certs: Vec<KeyCertificate>,
        list: Option<RevocationList>,
        seen: Option<&RevocationList>,
        now: i64,
    ) -> Result<Trust> {
        let (root, earlier) = roots
            .split_last()
            .ok_or_else(|| ClientError::Invalid("no society root to verify against".into()))?;
        let (by_root, by_admin): (Vec<_>, Vec<_>) =
            certs.into_iter().partition(|c| c.role().issued_by_root());
        let mut verified_root = Vec::new();
        let mut by_earlier_root = Vec::new();
        for c in by_root {
            if let Ok(v) = verify_chain(root, society, std::slice::from_ref(&c), now) {
                verified_root.push((c, v));
            } else if let Some(v) = earlier
                .iter()
                .rev()
                .find_map(|r| verify_chain(r, society, std::slice::from_ref(&c), now).ok())
            {
                by_earlier_root.push((c, v));
            }
        }
        let admin_keys: Vec<VerifiedKeys> = verified_root
            .iter()
            .filter(|(c, _)| c.role() == CertifiedRole::SocietyAdmin)
            .map(|(_, v)| v.clone())
            .collect();
        let revocations = match list {
            Some(list) => Some(list.verify(root, society, &admin_keys).map_err(|e| {
                ClientError::Tampered(format!("the society's revocation list is not genuine: {e}"))
            })?),
            None => None,
        };
        match (seen, &revocations) {
            (Some(_), None) => {
                return Err(ClientError::Tampered(
                    "the server no longer serves the society's revocation list this client saw                      before: revoked keys would count again"
                        .into(),
                ))
            }
            (Some(old), Some(new)) => new.check_follows(old).map_err(|e| {
                ClientError::Tampered(format!("the server rolled the revocation list back: {e}"))
            })?,
            (None, _) => {}
        }
        let revoked_at = |c: &KeyCertificate| {
            revocations.as_ref().and_then(|r| {
                r.list()
                    .find(c.subject_id(), &c.keys_digest())
                    .map(|e| e.revoked_at)
            })
        };
        let mut trust = Trust {
            revocations: None,
            root: Some(*root),
            ..Trust::default()
        };
        let mut admins = Vec::new();
        for (c, v) in verified_root {
            if let Some(at) = revoked_at(&c) {
                trust.add_revoked(c, v, at);
                continue;
            }
            if c.role() == CertifiedRole::SocietyAdmin {
                admins.push(c.clone());
            }
            trust.add_current(c, v);
        }
        // An earlier root's certificates: only keys revoked since (retired by a rotation), whose
        // signatures count on commits dated before. A root that was replaced may have leaked:
        // nothing it signs counts as current.
        for (c, v) in by_earlier_root {
            if let Some(at) = revoked_at(&c) {
                trust.add_revoked(c, v, at);
            }
        }
        let revoked_admins: Vec<(KeyCertificate, i64)> = trust
            .revoked
            .values()
            .flatten()
            .filter(|(c, _, _)| c.role() == CertifiedRole::SocietyAdmin)
            .map(|(c, _, at)| (c.clone(), *at))
            .collect();
        for c in by_admin {
            let by =
                |a: &KeyCertificate| a.signing_key().map(|k| k.as_bytes()) == Some(c.issuer_key());
            // The chain through the admin, under whichever of the roots certified them.
            let chain = |admin: &KeyCertificate| {
                roots
                    .iter()
                    .rev()
                    .find_map(|r| verify_chain(r, society, &[admin.clone(), c.clone()], now).ok())
            };
            if let Some(admin) = admins.iter().find(|a| by(a)) {
                if let Some(v) = chain(admin) {
                    match revoked_at(&c) {
                        Some(at) => trust.add_revoked(c, v, at),
                        None => trust.add_current(c, v),
                    }
                }
            } else if let Some((admin, admin_at)) = revoked_admins.iter().find(|(a, _)| by(a)) {
                if let Some(v) = chain(admin) {
                    let at = revoked_at(&c).map_or(*admin_at, |own| own.min(*admin_at));
                    trust.add_revoked(c, v, at);
                }
            }
        }
        trust.revocations = revocations;
        Ok(trust)
    }

    /// Keeps `c` as `subject`'s current certificate unless one issued later is kept already (the
    /// server serves every certificate it holds; an unrevoked earlier one is an older certificate
    /// of the same keys).
    fn add_current(&mut self, c: KeyCertificate, v: VerifiedKeys) {
        let newer = self
            .certificates
            .get(&c.subject_id())
            .is_some_and(|(kept, _)| kept.validity().not_before > c.validity().not_before);
        if !newer {
            self.certificates.insert(c.subject_id(), (c, v));
        }
    }

    fn add_revoked(&mut self, c: KeyCertificate, v: VerifiedKeys, at: i64) {
        self.revoked
            .entry(c.subject_id())
            .or_default()
            .push((c, v, at));
    }

    /// The verified keys of `subject`, if not revoked.
    pub fn get(&self, subject: Uuid) -> Option<&VerifiedKeys> {
        self.certificates.get(&subject).map(|(_, v)| v)
    }

    /// Whether `subject` has verified keys that the society revoked (and no unrevoked ones).
    pub fn is_revoked(&self, subject: Uuid) -> bool {
        !self.certificates.contains_key(&subject) && self.revoked.contains_key(&subject)
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
        let trust = Trust::verify(&roots, society, certs, list, seen.as_ref(), now_secs())?;
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
