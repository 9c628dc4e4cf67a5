//! Which keys a society's root certifies, and why: the one verification of a society's trust
//! material (its roots, key certificates and revocation list) that a client does before it wraps a
//! key or believes a commit, and that a server does before it takes a commit from another server
//! (`docs/sync.md`, "Push"). No IO: the caller fetches the material and pins the roots.

use std::collections::HashMap;

use uuid::Uuid;

use crate::cert::{verify_chain, CertifiedRole, KeyCertificate, RootPublicKey, VerifiedKeys};
use crate::error::CryptoError;
use crate::keys::DeviceVerifier;
use crate::revocation::{RevocationList, VerifiedRevocations};

/// Why a society's trust material was refused as a whole (a certificate that does not verify is
/// only left out).
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no society root to verify against")]
    NoRoot,
    #[error("the society's revocation list is not genuine: {0}")]
    ListNotGenuine(CryptoError),
    #[error(
        "the society's revocation list seen before is no longer served: revoked keys would count \
         again"
    )]
    ListWithdrawn,
    #[error("the revocation list was rolled back: {0}")]
    ListRolledBack(CryptoError),
}

/// The keys verified against a society's roots.
#[derive(Debug, Default)]
pub struct Trust {
    /// Verified certificates by subject (member id; the society id for the escrow key), none of
    /// them revoked.
    pub certificates: HashMap<Uuid, (KeyCertificate, VerifiedKeys)>,
    /// Certificates that verified but whose keys the society revoked (a subject who rotated their
    /// keys has one for each set they rotated away from), with the revocation time (Unix seconds):
    /// never wrapped to, and their signatures count only on commits dated before it.
    pub revoked: HashMap<Uuid, Vec<(KeyCertificate, VerifiedKeys, i64)>>,
    /// The society's revocation list, verified.
    pub revocations: Option<VerifiedRevocations>,
    /// The society root these were verified against (the pinned one's successor, if any).
    pub root: Option<RootPublicKey>,
}

impl Trust {
    /// Verifies every certificate against `roots`; those that fail are left out. The revocation
    /// list, if any, must verify (signed by the root or a certified admin) and must follow `seen`,
    /// the last list the verifier accepted: none after one was seen, an older one or one that
    /// drops an entry is refused. Keys on the list move to [`Trust::revoked`], and so do the
    /// members certified by a revoked admin (their issuer is no longer trusted).
    ///
    /// `roots` are the society's roots from the pinned one to the current one (the last), as the
    /// successions lead ([`crate::roots_from_pin`]): the current root's certificates count; an
    /// earlier root's only if their keys are revoked, for commits dated before that.
    pub fn verify(
        roots: &[RootPublicKey],
        society: Uuid,
        certs: Vec<KeyCertificate>,
        list: Option<RevocationList>,
        seen: Option<&RevocationList>,
        now: i64,
    ) -> Result<Trust, TrustError> {
        let (root, earlier) = roots.split_last().ok_or(TrustError::NoRoot)?;
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
            Some(list) => Some(
                list.verify(root, society, &admin_keys)
                    .map_err(TrustError::ListNotGenuine)?,
            ),
            None => None,
        };
        match (seen, &revocations) {
            (Some(_), None) => return Err(TrustError::ListWithdrawn),
            (Some(old), Some(new)) => new.check_follows(old).map_err(TrustError::ListRolledBack)?,
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

    /// Keeps `c` as `subject`'s current certificate unless one issued later is kept already (a
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

    /// The certified signing keys of `author` whose signature counts on a commit dated
    /// `created_at_ms`: the current one, and revoked ones up to their revocation
    /// ([`signature_counts`]); only keys certified for a role that writes cases (caseworker,
    /// society admin): a sync agent's or an auditor's certified key signs no commit.
    pub fn author_keys(&self, author: Uuid, created_at_ms: i64) -> Vec<DeviceVerifier> {
        let current = self.get(author).map(|v| (v, None));
        let revoked = self
            .revoked
            .get(&author)
            .into_iter()
            .flatten()
            .map(|(_, v, at)| (v, Some(*at)));
        current
            .into_iter()
            .chain(revoked)
            .filter(|(v, at)| {
                matches!(
                    v.role(),
                    CertifiedRole::Caseworker | CertifiedRole::SocietyAdmin
                ) && signature_counts(*at, created_at_ms)
            })
            .filter_map(|(v, _)| v.signing_key().and_then(|k| k.verifier().ok()))
            .collect()
    }
}

/// Whether a signature by keys revoked at `revoked_at` (Unix seconds; none: not revoked) counts on
/// a commit dated `created_at_ms` (Unix milliseconds): up to and within the second of the
/// revocation.
pub fn signature_counts(revoked_at: Option<i64>, created_at_ms: i64) -> bool {
    revoked_at.is_none_or(|at| created_at_ms.div_euclid(1000) <= at)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_revoked_signature_counts_up_to_the_second_of_its_revocation() {
        assert!(super::signature_counts(None, i64::MAX));
        assert!(super::signature_counts(Some(100), 99_999));
        assert!(
            super::signature_counts(Some(100), 100_999),
            "within the second"
        );
        assert!(!super::signature_counts(Some(100), 101_000));
        assert!(!super::signature_counts(Some(-1), 0));
    }
}
