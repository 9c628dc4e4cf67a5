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

    /// First admin: creates the society escrow key (wrapped to the offline recovery recipient) and the
    /// society's signing root, which certifies the escrow key and this admin; pins the root. Returns the
    /// root key, to be kept offline by the admins; its fingerprint is what people pin.
    pub async fn init_society(&mut self, recovery: &AgeRecipient) -> Result<SocietyRootKey> {
        let escrow = self.set_society_escrow(recovery).await?;
        let root = self.create_society_root(&escrow).await?;
        self.pin_root(&root.public().fingerprint()).await?;
        Ok(root)
    }

    /// The first step of [`Session::init_society`]: creates the society escrow identity and uploads it
    /// wrapped to `recovery`, and returns its recipient. Once this has succeeded, the recovery key is
    /// the only way to the escrow identity (the server sets it once), so a caller that generated the
    /// recovery key must have kept it before calling this.
    pub async fn set_society_escrow(&self, recovery: &AgeRecipient) -> Result<AgeRecipient> {
        let society = *self.society_id().as_uuid();
        let escrow = AgeIdentity::generate();
        let wrapped = wrap_escrow_identity(&escrow, society, recovery.as_age())?;
        self.api()
            .set_escrow(&EscrowDto {
                recipient: escrow.recipient().to_string(),
                wrapped_identity: wrapped.into(),
            })
            .await?;
        Ok(escrow.recipient())
    }

    /// The second step of [`Session::init_society`]: creates the society root, certifies `escrow` and
    /// this admin with it, and uploads the root and both certificates. Returns the root key without
    /// pinning it, so the caller can keep the key before anything else can fail; then pin it
    /// ([`Session::pin_root`]) to check what the server now serves.
    pub async fn create_society_root(&self, escrow: &AgeRecipient) -> Result<SocietyRootKey> {
        let society = *self.society_id().as_uuid();
        let root = SocietyRootKey::generate()?;
        let v = validity(ROOT_CERT_DAYS)?;
        let escrow_cert = issue_escrow_cert(&root, society, escrow, v)?;
        let admin_cert = issue_admin_cert(
            &root,
            society,
            *self.member_id().as_uuid(),
            self.keys().signing.public_key(),
            &self.keys().age.recipient(),
            v,
        )?;
        self.api()
            .put_no_content(
                "/v1/society/root",
                &SetRoot {
                    root_public_key: root.public().as_bytes().to_vec().into(),
                    certificates: vec![escrow_cert.to_hex(), admin_cert.to_hex()],
                },
            )
            .await?;
        Ok(root)
    }

    /// A member of this society as the server lists them, with the public keys they registered.
    pub(crate) async fn registered_keys(
        &self,
        member: MemberId,
    ) -> Result<(MemberDto, DevicePublicKey, AgeRecipient)> {
        let m = self
            .api()
            .members()
            .await?
            .members
            .into_iter()
            .find(|m| m.id == member)
            .ok_or_else(|| ClientError::Invalid(format!("no member {member} in your society")))?;
        let signing = DevicePublicKey::from_slice(&m.signing_key.0)?;
        let recipient = AgeRecipient::parse(&m.age_recipient)?;
        Ok((m, signing, recipient))
    }

    /// An admin revokes every key of `member` the society knows (their registered keys and any
    /// certified ones) by publishing the next revocation list, signed with this admin's device key,
    /// then suspends the member. Clients stop wrapping case keys to them at once. Running it again
    /// after a failure finishes the job: keys already listed are not listed twice, and a list
    /// published meanwhile by another admin is reloaded and followed.
    pub async fn revoke_member(
        &self,
        member: MemberId,
        reason: RevocationReason,
    ) -> Result<Revoked> {
        if member == self.member_id() {
            return Err(ClientError::Invalid(
                "you cannot revoke your own keys: another admin (or the society root) must".into(),
            ));
        }
        let (m, signing, recipient) = self.registered_keys(member).await?;
        let registered = subject_keys_digest(Some(&signing), &recipient);
        let published = self
            .publish_revocations(
                *member.as_uuid(),
                |t| {
                    std::iter::once(registered)
                        .chain(
                            t.certificates
                                .get(member.as_uuid())
                                .map(|(c, _)| c.keys_digest()),
                        )
                        .collect()
                },
                reason,
            )
            .await?;
        self.reload_members().await?;
        let listed = self.with_trust(|t| {
            t.revocations
                .as_ref()
                .is_some_and(|r| r.is_revoked(*member.as_uuid(), &registered))
        })?;
        if !listed {
            return Err(ClientError::Invalid(
                "the revocation list kept changing while this ran: run the command again".into(),
            ));
        }
        let suspended = if m.suspended {
            false
        } else {
            self.api().suspend(member).await?;
            true
        };
        Ok(Revoked {
            member,
            list_number: published,
            suspended,
        })
    }

    /// Publishes the society's next revocation list with the keys `digests` names (given the trust
    /// as reloaded) of `subject` added, signed with this admin's device key; keys listed already are
    /// not listed twice. On 409 (another admin published meanwhile) it reloads and signs again.
    /// Returns the number of the list it published, none if there was nothing to add.
    pub(crate) async fn publish_revocations(
        &self,
        subject: Uuid,
        digests: impl Fn(&crate::trust::Trust) -> Vec<[u8; 32]>,
        reason: RevocationReason,
    ) -> Result<Option<u64>> {
        for _attempt in 0..3 {
            self.reload_members().await?;
            let (previous, wanted) = self.with_trust(|t| (t.revocations.clone(), digests(t)))?;
            let now = now_secs();
            let added: Vec<RevocationEntry> = wanted
                .into_iter()
                .map(|keys_digest| RevocationEntry {
                    subject_id: subject,
                    keys_digest,
                    revoked_at: now,
                    reason,
                })
                .filter(|e| {
                    !previous
                        .as_ref()
                        .is_some_and(|p| p.is_revoked(e.subject_id, &e.keys_digest))
                })
                .collect();
            if added.is_empty() {
                return Ok(None);
            }
            let list = RevocationListBody::next(
                *self.society_id().as_uuid(),
                previous.as_ref(),
                &added,
                now,
            )?
            .sign_by_admin(&self.keys().signing)?;
            match self
                .api()
                .put_no_content(
                    "/v1/society/revocations",
                    &RevocationListRequest {
                        list: list.to_hex(),
                    },
                )
                .await
            {
                Ok(()) => return Ok(Some(list.body().number)),
                // Another admin published a list meanwhile: reload it and sign the next one.
                Err(ClientError::Api { status: 409, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Refused unless `root` is the society root this session pinned (a root key file of another
    /// society, or a forged one, signs nothing here).
    pub(crate) fn check_root_key(&self, root: &SocietyRootKey) -> Result<()> {
        let pinned = self.pinned_root().ok_or_else(|| {
            ClientError::Invalid("pin your society's root key fingerprint first".into())
        })?;
        // The current root, as the pinned one (or a succession from it) leads to.
        let current = self.with_trust(|t| t.root).ok().flatten();
        let ok = match current {
            Some(c) => c == root.public(),
            None => root.public().matches_fingerprint(pinned),
        };
        if !ok {
            return Err(ClientError::Invalid(
                "this root key is not your society's current root (the one you pinned, or the one \
                 its successions lead to)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// An admin certifies another **admin**'s keys with the society root key (only the root issues
    /// admin certificates), after comparing `keys_fingerprint` (read out by the new admin) with the
    /// keys the server lists for them. Refused unless `root` is the root this session pinned, the
    /// member is registered as a society admin, and their keys are not revoked.
    pub async fn certify_admin(
        &self,
        member: MemberId,
        keys_fingerprint_read_out: &str,
        root: &SocietyRootKey,
    ) -> Result<Certification> {
        self.check_root_key(root)?;
        self.reload_members().await?;
        let (m, signing, recipient) = self.registered_keys(member).await?;
        if m.role != Role::SocietyAdmin {
            return Err(ClientError::Invalid(format!(
                "member {member} is not a society admin: certify them with `rfl certify`"
            )));
        }
        if let Some((next_signing, next_recipient)) =
            next_keys_read_out(&m, keys_fingerprint_read_out)?
        {
            self.check_keys_to_certify(
                member,
                &next_signing,
                &next_recipient,
                keys_fingerprint_read_out,
            )?;
            let cert = issue_admin_cert(
                root,
                *self.society_id().as_uuid(),
                *member.as_uuid(),
                next_signing,
                &next_recipient,
                validity(ROOT_CERT_DAYS)?,
            )?;
            let old = subject_keys_digest(Some(&signing), &recipient);
            self.switch_member_keys(member, &cert, old, Some(root))
                .await?;
            return Ok(Certification::Rotated);
        }
        self.check_keys_to_certify(member, &signing, &recipient, keys_fingerprint_read_out)?;
        let cert = issue_admin_cert(
            root,
            *self.society_id().as_uuid(),
            *member.as_uuid(),
            signing,
            &recipient,
            validity(ROOT_CERT_DAYS)?,
        )?;
        self.upload_certificate(&cert).await?;
        Ok(Certification::Certified)
    }

    /// Sends a certificate this admin issued (`POST /v1/certificates`).
    async fn upload_certificate(&self, cert: &KeyCertificate) -> Result<()> {
        self.api()
            .post_no_content(
                "/v1/certificates",
                &Certificates {
                    certificates: vec![cert.to_hex()],
                },
            )
            .await
    }

    /// The checks before any certificate is signed: the keys are not revoked, and they are the ones
    /// the member read out (a server that substituted them is caught here).
    fn check_keys_to_certify(
        &self,
        member: MemberId,
        signing: &DevicePublicKey,
        recipient: &AgeRecipient,
        keys_fingerprint_read_out: &str,
    ) -> Result<()> {
        let digest = subject_keys_digest(Some(signing), recipient);
        if self.with_trust(|t| {
            t.revocations
                .as_ref()
                .is_some_and(|r| r.is_revoked(*member.as_uuid(), &digest))
        })? {
            return Err(ClientError::Invalid(
                "these keys were revoked: the member must enrol new keys before they are certified"
                    .into(),
            ));
        }
        if keys_fingerprint(signing, recipient) != keys_fingerprint_read_out.trim() {
            return Err(ClientError::Tampered(
                "the keys the server lists for this member are not the ones they read out: not certified"
                    .into(),
            ));
        }
        Ok(())
    }

    /// An admin certifies a member's keys, after comparing `keys_fingerprint` (read out by the member,
    /// out of band) with the keys the server lists for them: a server that substituted the keys is
    /// caught here, before anything is signed.
    pub async fn certify_member(
        &self,
        member: MemberId,
        keys_fingerprint_read_out: &str,
    ) -> Result<Certification> {
        let (m, signing, recipient) = self.registered_keys(member).await?;
        let next = next_keys_read_out(&m, keys_fingerprint_read_out)?;
        let (cert_signing, cert_recipient) = match &next {
            Some((s, r)) => (*s, r.clone()),
            None => (signing, recipient.clone()),
        };
        self.check_keys_to_certify(
            member,
            &cert_signing,
            &cert_recipient,
            keys_fingerprint_read_out,
        )?;
        let mine = self
            .with_trust(|t| {
                t.certificates
                    .get(self.member_id().as_uuid())
                    .map(|(c, _)| c.clone())
            })?
            .ok_or_else(|| {
                ClientError::Invalid(
                    "you have no admin certificate that verifies against the pinned root".into(),
                )
            })?;
        let cert = issue_member_cert(
            &self.keys().signing,
            &mine,
            *member.as_uuid(),
            certified_role(m.role)?,
            cert_signing,
            &cert_recipient,
            validity(MEMBER_CERT_DAYS)?,
        )?;
        if next.is_some() {
            // The member is rotating their keys: the certificate of the new ones switches them.
            let old = subject_keys_digest(Some(&signing), &recipient);
            self.switch_member_keys(member, &cert, old, None).await?;
            return Ok(Certification::Rotated);
        }
        self.upload_certificate(&cert).await?;
        Ok(Certification::Certified)
    }
}

/// The keys a member registered to rotate to, if those are the keys whose fingerprint they read out.
fn next_keys_read_out(
    m: &MemberDto,
    keys_fingerprint_read_out: &str,
) -> Result<Option<(DevicePublicKey, AgeRecipient)>> {
    let Some(next) = &m.next_keys else {
        return Ok(None);
    };
    let signing = DevicePublicKey::from_slice(&next.signing_key.0)?;
    let recipient = AgeRecipient::parse(&next.age_recipient)?;
    Ok(
        (keys_fingerprint(&signing, &recipient) == keys_fingerprint_read_out.trim())
            .then_some((signing, recipient)),
    )
}
