//! Certificate revocation lists: a society's signed, numbered, cumulative list of the keys it
//! no longer trusts. A certificate is otherwise bounded only by its `not_after`; with a list, an
//! admin removes a member's keys at once, and every client that loads the list refuses to wrap a
//! case key to them or to count a signature by them.
//!
//! Each list repeats every entry of the one before it and names that list's hash, so a client
//! that kept the last list it verified can tell a newer list from a rolled-back or pruned one
//! without seeing the lists in between ([`VerifiedRevocations::check_follows`]).
//!
//! Byte layout and rules: `docs/crypto.md`, section "Certificate revocation lists".

use std::fmt;

use uuid::Uuid;

use crate::cert::{CertifiedRole, KeyCertificate, RootPublicKey, SocietyRootKey, VerifiedKeys};
use crate::commit::sha256;
use crate::error::{CryptoError, Result};
use crate::keys::{from_hex, to_hex, DevicePublicKey, DeviceSigningKey};

/// Magic at the start of every revocation list.
pub const REVOCATION_MAGIC: [u8; 4] = *b"RFLR";
/// Version of the revocation list encoding.
pub const REVOCATION_VERSION: u8 = 1;
const DOMAIN: &[u8] = b"rfl-revocations-v1";
const HEADER_LEN: usize = 4 + 1 + 16 + 8 + 32 + 8 + 4;
const ENTRY_LEN: usize = 16 + 32 + 8 + 1;
const TRAILER_LEN: usize = 32 + 64;
/// Most entries a list may hold (about 5.8 MB): far above any society's staff.
pub const MAX_REVOCATIONS: usize = 100_000;

fn err(reason: &'static str) -> CryptoError {
    CryptoError::Revocation(reason)
}

/// Why a key was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RevocationReason {
    /// No reason given.
    Unspecified = 0,
    /// The private keys are, or may be, known to someone else.
    KeyCompromise = 1,
    /// The member left the society or no longer works on cases.
    Departed = 2,
    /// The device or authenticator holding the keys is lost.
    DeviceLost = 3,
    /// The member has new keys; these are retired.
    Superseded = 4,
}

impl RevocationReason {
    /// From the wire byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Unspecified,
            1 => Self::KeyCompromise,
            2 => Self::Departed,
            3 => Self::DeviceLost,
            4 => Self::Superseded,
            _ => return None,
        })
    }

    /// The wire byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Name as written in the CLI and the API (`key_compromise`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "key_compromise",
            Self::Departed => "departed",
            Self::DeviceLost => "device_lost",
            Self::Superseded => "superseded",
        }
    }

    /// From [`Self::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        (0..=4).filter_map(Self::from_u8).find(|r| r.as_str() == s)
    }
}

/// One revoked set of keys: a subject's keys as certified, named by their digest
/// ([`KeyCertificate::keys_digest`]), so that every certificate of those keys is revoked and new
/// keys of the same member can be certified later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RevocationEntry {
    /// The member (the society id for the escrow key).
    pub subject_id: Uuid,
    /// [`crate::subject_keys_digest`] of the revoked keys.
    pub keys_digest: [u8; 32],
    /// When the admin revoked them, Unix seconds (the admin's clock).
    pub revoked_at: i64,
    /// Why.
    pub reason: RevocationReason,
}

impl RevocationEntry {
    fn sort_key(&self) -> ([u8; 16], [u8; 32]) {
        (*self.subject_id.as_bytes(), self.keys_digest)
    }
}

/// A list before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationListBody {
    /// The society whose keys it revokes.
    pub society_id: Uuid,
    /// 1 for the society's first list, then strictly +1.
    pub number: u64,
    /// [`RevocationList::hash`] of list `number - 1` (zeros for list 1).
    pub previous: [u8; 32],
    /// When it was signed, Unix seconds (the signer's clock).
    pub issued_at: i64,
    /// Every revoked key set, in any order (they are written sorted).
    pub entries: Vec<RevocationEntry>,
}

impl RevocationListBody {
    /// The list that follows `previous` (or the first list, if `None`): every entry of the
    /// previous list plus `added`; an entry for keys already revoked is left out.
    pub fn next(
        society_id: Uuid,
        previous: Option<&VerifiedRevocations>,
        added: &[RevocationEntry],
        issued_at: i64,
    ) -> Result<RevocationListBody> {
        let mut entries = previous.map(|p| p.entries().to_vec()).unwrap_or_default();
        if let Some(p) = previous {
            if p.society_id() != society_id {
                return Err(err("revocation list is for another society"));
            }
        }
        for a in added {
            if !entries.iter().any(|e| e.sort_key() == a.sort_key()) {
                entries.push(*a);
            }
        }
        Ok(RevocationListBody {
            society_id,
            number: previous.map_or(1, |p| p.number() + 1),
            previous: previous.map_or([0; 32], |p| p.hash()),
            issued_at,
            entries,
        })
    }

    fn encode_unsigned(&self, issuer: &[u8; 32]) -> Result<Vec<u8>> {
        if self.number == 0 {
            return Err(err("revocation lists are numbered from 1"));
        }
        if (self.number == 1) != (self.previous == [0; 32]) {
            return Err(err(
                "only the first revocation list has no previous list, and it must not have one",
            ));
        }
        if self.entries.len() > MAX_REVOCATIONS {
            return Err(err("too many revocations in one list"));
        }
        let mut sorted = self.entries.clone();
        sorted.sort_unstable_by_key(RevocationEntry::sort_key);
        if sorted
            .windows(2)
            .any(|w| w[0].sort_key() == w[1].sort_key())
        {
            return Err(err("the same keys are listed twice"));
        }
        let count = u32::try_from(sorted.len()).map_err(|_| err("too many revocations"))?;
        let mut b = Vec::with_capacity(HEADER_LEN + sorted.len() * ENTRY_LEN + TRAILER_LEN);
        b.extend_from_slice(&REVOCATION_MAGIC);
        b.push(REVOCATION_VERSION);
        b.extend_from_slice(self.society_id.as_bytes());
        b.extend_from_slice(&self.number.to_be_bytes());
        b.extend_from_slice(&self.previous);
        b.extend_from_slice(&self.issued_at.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        for e in &sorted {
            b.extend_from_slice(e.subject_id.as_bytes());
            b.extend_from_slice(&e.keys_digest);
            b.extend_from_slice(&e.revoked_at.to_be_bytes());
            b.push(e.reason.as_u8());
        }
        b.extend_from_slice(issuer);
        Ok(b)
    }

    fn finish(
        &self,
        issuer: [u8; 32],
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<RevocationList> {
        let mut bytes = self.encode_unsigned(&issuer)?;
        let sig = sign(&signed_message(&bytes));
        bytes.extend_from_slice(&sig);
        RevocationList::from_bytes(&bytes)
    }

    /// Signs the list with a society admin's device key.
    pub fn sign_by_admin(&self, admin: &DeviceSigningKey) -> Result<RevocationList> {
        self.finish(*admin.public_key().as_bytes(), |m| admin.sign(m))
    }

    /// Signs the list with the society root key (e.g. to revoke the last admin).
    pub fn sign_by_root(&self, root: &SocietyRootKey) -> Result<RevocationList> {
        self.finish(*root.public().as_bytes(), |m| root.sign_raw(m))
    }
}

fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + unsigned.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(unsigned);
    m
}

/// A parsed revocation list whose signature has **not** been checked (the server parses lists
/// without trusting them; a client trusts only [`VerifiedRevocations`]).
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationList {
    bytes: Vec<u8>,
    body: RevocationListBody,
    issuer: [u8; 32],
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("society_id", &self.body.society_id)
            .field("number", &self.body.number)
            .field("entries", &self.body.entries.len())
            .finish_non_exhaustive()
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.0.len() < N {
            return Err(CryptoError::Malformed("revocation list truncated"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut a = [0u8; N];
        a.copy_from_slice(head);
        Ok(a)
    }
}

impl RevocationList {
    /// Parses a list without any key: magic, version, lengths, entries sorted and unique, the
    /// numbering rule. Does not verify the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<RevocationList> {
        if bytes.len() >= 5 && bytes[0..4] == REVOCATION_MAGIC && bytes[4] != REVOCATION_VERSION {
            return Err(CryptoError::UnsupportedVersion(bytes[4]));
        }
        let mut r = Reader(bytes);
        if r.take::<4>()? != REVOCATION_MAGIC {
            return Err(CryptoError::Malformed("bad revocation list magic"));
        }
        let _version = r.take::<1>()?;
        let society_id = Uuid::from_bytes(r.take()?);
        let number = u64::from_be_bytes(r.take()?);
        let previous = r.take::<32>()?;
        let issued_at = i64::from_be_bytes(r.take()?);
        let count = u32::from_be_bytes(r.take()?) as usize;
        if count > MAX_REVOCATIONS {
            return Err(err("too many revocations in one list"));
        }
        if bytes.len() != HEADER_LEN + count * ENTRY_LEN + TRAILER_LEN {
            return Err(CryptoError::Malformed("revocation list length"));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let subject_id = Uuid::from_bytes(r.take()?);
            let keys_digest = r.take::<32>()?;
            let revoked_at = i64::from_be_bytes(r.take()?);
            let [reason] = r.take::<1>()?;
            entries.push(RevocationEntry {
                subject_id,
                keys_digest,
                revoked_at,
                reason: RevocationReason::from_u8(reason)
                    .ok_or(err("unknown revocation reason"))?,
            });
        }
        let issuer = r.take::<32>()?;
        let body = RevocationListBody {
            society_id,
            number,
            previous,
            issued_at,
            entries,
        };
        // The encoding is unique: re-encoding must give the same bytes (sorted, unique entries,
        // the numbering rule).
        let unsigned = body.encode_unsigned(&issuer)?;
        if unsigned[..] != bytes[..bytes.len() - 64] {
            return Err(err("revocation entries are not sorted"));
        }
        Ok(RevocationList {
            bytes: bytes.to_vec(),
            body,
            issuer,
        })
    }

    /// The encoded list.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Lowercase hex of [`Self::to_bytes`] (the API's form).
    pub fn to_hex(&self) -> String {
        to_hex(&self.bytes)
    }

    /// From [`Self::to_hex`].
    pub fn from_hex(s: &str) -> Result<RevocationList> {
        let b = from_hex(s).ok_or(CryptoError::Malformed("revocation list hex"))?;
        Self::from_bytes(&b)
    }

    /// SHA-256 of the encoded list: the next list's `previous`.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.bytes)
    }

    /// What the list says (unverified).
    pub fn body(&self) -> &RevocationListBody {
        &self.body
    }

    /// The entry revoking these keys of `subject_id`, if the list holds one (entries are sorted,
    /// so this is a binary search: lists may hold many thousands).
    pub fn find(&self, subject_id: Uuid, keys_digest: &[u8; 32]) -> Option<&RevocationEntry> {
        let key = (*subject_id.as_bytes(), *keys_digest);
        self.body
            .entries
            .binary_search_by_key(&key, RevocationEntry::sort_key)
            .ok()
            .map(|i| &self.body.entries[i])
    }

    /// The key that signed it (the society root, or an admin's device key).
    pub fn issuer_key(&self) -> &[u8; 32] {
        &self.issuer
    }

    /// Whether the signature is by `key` and verifies (what the server checks of an admin's
    /// upload; clients call [`Self::verify`]).
    pub fn signed_by(&self, key: &DevicePublicKey) -> bool {
        self.issuer == *key.as_bytes()
            && key
                .verify(
                    &signed_message(&self.bytes[..self.bytes.len() - 64]),
                    &self.bytes[self.bytes.len() - 64..],
                )
                .is_ok()
    }

    /// Verifies the list against the pinned society root: it must be for `society_id`, signed by
    /// the root or by one of `admins` (society-admin keys whose certificate chain verified), and
    /// its signer's own keys must not be on it (an admin cannot revoke themselves, and a revoked
    /// admin signs no later list: every list repeats the ones before).
    pub fn verify(
        &self,
        root: &RootPublicKey,
        society_id: Uuid,
        admins: &[VerifiedKeys],
    ) -> Result<VerifiedRevocations> {
        let msg = signed_message(&self.bytes[..self.bytes.len() - 64]);
        let sig = &self.bytes[self.bytes.len() - 64..];
        if self.issuer == *root.as_bytes() {
            root.verify_raw(&msg, sig)
                .map_err(|_| err("revocation list signature does not verify"))?;
        } else {
            let admin = admins
                .iter()
                .find(|a| {
                    a.role() == CertifiedRole::SocietyAdmin
                        && a.society_id() == society_id
                        && a.signing_key().map(|k| k.as_bytes()) == Some(&self.issuer)
                })
                .ok_or(err(
                    "revocation list not signed by the society root or a certified admin",
                ))?;
            let key = admin
                .signing_key()
                .ok_or(err("revocation list not signed by a certified admin"))?;
            key.verify(&msg, sig)
                .map_err(|_| err("revocation list signature does not verify"))?;
            if self
                .body
                .entries
                .iter()
                .any(|e| e.subject_id == admin.subject_id() && e.keys_digest == admin.keys_digest())
            {
                return Err(err("revocation list signed by keys it revokes"));
            }
        }
        if self.body.society_id != society_id {
            return Err(err("revocation list is for another society"));
        }
        Ok(VerifiedRevocations(self.clone()))
    }
}

/// A revocation list whose signature verified against the pinned root (only
/// [`RevocationList::verify`] makes one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRevocations(RevocationList);

impl VerifiedRevocations {
    /// The society.
    pub fn society_id(&self) -> Uuid {
        self.0.body.society_id
    }

    /// The list's number.
    pub fn number(&self) -> u64 {
        self.0.body.number
    }

    /// The list's hash.
    pub fn hash(&self) -> [u8; 32] {
        self.0.hash()
    }

    /// Every revoked key set, sorted by subject and keys digest.
    pub fn entries(&self) -> &[RevocationEntry] {
        &self.0.body.entries
    }

    /// The list as verified.
    pub fn list(&self) -> &RevocationList {
        &self.0
    }

    /// Whether these keys of `subject_id` are revoked.
    pub fn is_revoked(&self, subject_id: Uuid, keys_digest: &[u8; 32]) -> bool {
        self.0
            .body
            .entries
            .binary_search_by_key(
                &(*subject_id.as_bytes(), *keys_digest),
                RevocationEntry::sort_key,
            )
            .is_ok()
    }

    /// Whether the keys a certificate certifies are revoked.
    pub fn revokes(&self, cert: &KeyCertificate) -> bool {
        self.is_revoked(cert.subject_id(), &cert.keys_digest())
    }

    /// Checks that this list, served after `earlier` was seen (and kept, authenticated, by the
    /// client), does not roll back: the same list, or a later one that still holds every entry of
    /// `earlier` at its time (and, if it is the very next list, names `earlier` as its previous).
    pub fn check_follows(&self, earlier: &RevocationList) -> Result<()> {
        let old = &earlier.body;
        let new = &self.0.body;
        if new.society_id != old.society_id {
            return Err(err("revocation list is for another society"));
        }
        if new.number < old.number {
            return Err(err("the revocation list is older than one seen before"));
        }
        if new.number == old.number {
            return if self.hash() == earlier.hash() {
                Ok(())
            } else {
                Err(err("two different revocation lists with the same number"))
            };
        }
        if new.number == old.number + 1 && new.previous != earlier.hash() {
            return Err(err(
                "the revocation list does not follow the one seen before",
            ));
        }
        if old
            .entries
            .iter()
            .any(|e| !self.is_revoked(e.subject_id, &e.keys_digest))
        {
            return Err(err("the revocation list drops a revocation seen before"));
        }
        // An entry keeps its time: one moved later would count the revoked keys' signatures
        // again up to the new time.
        if old.entries.iter().any(|e| {
            self.0
                .find(e.subject_id, &e.keys_digest)
                .is_some_and(|n| n.revoked_at != e.revoked_at)
        }) {
            return Err(err(
                "the revocation list changes the time of a revocation seen before",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{issue_admin_cert, issue_member_cert, verify_chain, Validity};
    use crate::keys::AgeIdentity;

    struct Society {
        id: Uuid,
        root: SocietyRootKey,
        admin_key: DeviceSigningKey,
        admin_cert: KeyCertificate,
        admin: VerifiedKeys,
        member_cert: KeyCertificate,
    }

    fn society() -> Society {
        let id = Uuid::new_v4();
        let root = SocietyRootKey::generate().unwrap();
        let v = Validity::new(0, 10_000).unwrap();
        let admin_key = DeviceSigningKey::generate().unwrap();
        let admin_cert = issue_admin_cert(
            &root,
            id,
            Uuid::new_v4(),
            admin_key.public_key(),
            &AgeIdentity::generate().recipient(),
            v,
        )
        .unwrap();
        let admin = verify_chain(&root.public(), id, std::slice::from_ref(&admin_cert), 5).unwrap();
        let member_key = DeviceSigningKey::generate().unwrap();
        let member_cert = issue_member_cert(
            &admin_key,
            &admin_cert,
            Uuid::new_v4(),
            CertifiedRole::Caseworker,
            member_key.public_key(),
            &AgeIdentity::generate().recipient(),
            v,
        )
        .unwrap();
        Society {
            id,
            root,
            admin_key,
            admin_cert,
            admin,
            member_cert,
        }
    }

    fn entry(cert: &KeyCertificate) -> RevocationEntry {
        RevocationEntry {
            subject_id: cert.subject_id(),
            keys_digest: cert.keys_digest(),
            revoked_at: 7,
            reason: RevocationReason::Departed,
        }
    }

    #[test]
    fn an_admin_revokes_a_member_and_the_list_verifies_and_round_trips() {
        let s = society();
        let body = RevocationListBody::next(s.id, None, &[entry(&s.member_cert)], 9).unwrap();
        let list = body.sign_by_admin(&s.admin_key).unwrap();
        let parsed = RevocationList::from_hex(&list.to_hex()).unwrap();
        assert_eq!(parsed, list);
        let v = parsed
            .verify(&s.root.public(), s.id, std::slice::from_ref(&s.admin))
            .unwrap();
        assert!(v.revokes(&s.member_cert));
        assert!(!v.revokes(&s.admin_cert));
        assert_eq!(v.number(), 1);
        assert!(list.signed_by(&s.admin_key.public_key()));
    }

    #[test]
    fn a_list_by_an_unknown_key_or_for_another_society_or_altered_is_refused() {
        let s = society();
        let body = RevocationListBody::next(s.id, None, &[entry(&s.member_cert)], 9).unwrap();
        let stranger = DeviceSigningKey::generate().unwrap();
        let forged = body.sign_by_admin(&stranger).unwrap();
        assert!(forged
            .verify(&s.root.public(), s.id, std::slice::from_ref(&s.admin))
            .is_err());
        let list = body.sign_by_root(&s.root).unwrap();
        assert!(list.verify(&s.root.public(), s.id, &[]).is_ok());
        assert!(list.verify(&s.root.public(), Uuid::new_v4(), &[]).is_err());
        // Any byte of the list changed: it no longer parses or no longer verifies.
        let bytes = list.to_bytes().to_vec();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            if let Ok(l) = RevocationList::from_bytes(&b) {
                assert!(l.verify(&s.root.public(), s.id, &[]).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn an_admin_cannot_sign_a_list_that_revokes_their_own_keys() {
        let s = society();
        let body = RevocationListBody::next(s.id, None, &[entry(&s.admin_cert)], 9).unwrap();
        let list = body.sign_by_admin(&s.admin_key).unwrap();
        assert!(list
            .verify(&s.root.public(), s.id, std::slice::from_ref(&s.admin))
            .is_err());
        // The root can.
        let list = body.sign_by_root(&s.root).unwrap();
        assert!(list
            .verify(&s.root.public(), s.id, &[])
            .unwrap()
            .revokes(&s.admin_cert));
    }

    #[test]
    fn a_successor_must_keep_every_entry_and_never_go_back() {
        let s = society();
        let admins = std::slice::from_ref(&s.admin);
        let root = s.root.public();
        let first = RevocationListBody::next(s.id, None, &[entry(&s.member_cert)], 9)
            .unwrap()
            .sign_by_admin(&s.admin_key)
            .unwrap()
            .verify(&root, s.id, admins)
            .unwrap();
        let other = RevocationEntry {
            subject_id: Uuid::new_v4(),
            keys_digest: [3; 32],
            revoked_at: 8,
            reason: RevocationReason::KeyCompromise,
        };
        let second = RevocationListBody::next(s.id, Some(&first), &[other], 10)
            .unwrap()
            .sign_by_admin(&s.admin_key)
            .unwrap()
            .verify(&root, s.id, admins)
            .unwrap();
        assert_eq!(second.number(), 2);
        assert!(second.check_follows(first.list()).is_ok());
        assert!(first.check_follows(first.list()).is_ok());
        assert!(first.check_follows(second.list()).is_err(), "rollback");
        // A list 2 that drops the first entry.
        let pruned = RevocationListBody {
            society_id: s.id,
            number: 2,
            previous: first.hash(),
            issued_at: 10,
            entries: vec![other],
        }
        .sign_by_admin(&s.admin_key)
        .unwrap()
        .verify(&root, s.id, admins)
        .unwrap();
        assert!(pruned.check_follows(first.list()).is_err());
        // A list 2 that names another predecessor.
        let forked = RevocationListBody {
            previous: [9; 32],
            ..RevocationListBody::next(s.id, Some(&first), &[other], 10).unwrap()
        }
        .sign_by_admin(&s.admin_key)
        .unwrap()
        .verify(&root, s.id, admins)
        .unwrap();
        assert!(forked.check_follows(first.list()).is_err());
        // A list 2 that moves the first revocation later (its keys' signatures would count
        // again up to then).
        let mut moved = RevocationListBody::next(s.id, Some(&first), &[other], 10).unwrap();
        for e in &mut moved.entries {
            if e.subject_id == s.member_cert.subject_id() {
                e.revoked_at = 1_000_000;
            }
        }
        let moved = moved
            .sign_by_admin(&s.admin_key)
            .unwrap()
            .verify(&root, s.id, admins)
            .unwrap();
        assert!(
            moved.check_follows(first.list()).is_err(),
            "a revocation moved later"
        );
        // Another list 1.
        let twin = RevocationListBody::next(s.id, None, &[other], 9)
            .unwrap()
            .sign_by_admin(&s.admin_key)
            .unwrap()
            .verify(&root, s.id, admins)
            .unwrap();
        assert!(twin.check_follows(first.list()).is_err());
    }

    #[test]
    fn entries_are_written_sorted_once_and_parsing_refuses_other_orders() {
        let s = society();
        let a = RevocationEntry {
            subject_id: Uuid::from_bytes([2; 16]),
            keys_digest: [1; 32],
            revoked_at: 1,
            reason: RevocationReason::Unspecified,
        };
        let b = RevocationEntry {
            subject_id: Uuid::from_bytes([1; 16]),
            ..a
        };
        let list = RevocationListBody::next(s.id, None, &[a, b, a], 3)
            .unwrap()
            .sign_by_root(&s.root)
            .unwrap();
        assert_eq!(list.body().entries, vec![b, a]);
        let dup = RevocationListBody {
            entries: vec![a, a],
            ..list.body().clone()
        };
        assert!(dup.sign_by_root(&s.root).is_err());
        // Swap the two entries in the bytes: refused as unsorted.
        let mut bytes = list.to_bytes().to_vec();
        let (e0, e1) = (HEADER_LEN, HEADER_LEN + ENTRY_LEN);
        let first: Vec<u8> = bytes[e0..e1].to_vec();
        let second: Vec<u8> = bytes[e1..e1 + ENTRY_LEN].to_vec();
        bytes[e0..e1].copy_from_slice(&second);
        bytes[e1..e1 + ENTRY_LEN].copy_from_slice(&first);
        assert!(RevocationList::from_bytes(&bytes).is_err());
        assert!(RevocationList::from_bytes(&list.to_bytes()[..40]).is_err());
        let mut v2 = list.to_bytes().to_vec();
        v2[4] = 2;
        assert!(matches!(
            RevocationList::from_bytes(&v2),
            Err(CryptoError::UnsupportedVersion(2))
        ));
    }
}
