//! Key certificates: the society root key certifies admins and the escrow key; admins
//! certify caseworkers, auditors and sync agents. Clients verify the chain
//! (society root → admin → member) before they wrap any case key to a recipient, so
//! a server cannot slip its own key in as a caseworker's or as the escrow key.
//!
//! Byte layout and chain rules: `docs/crypto.md`, section "Key certificates". This module holds
//! the roles and the certificate format; `root` the society root key, `issue` the issuing and
//! `verify` the chain verification.

use uuid::Uuid;

use crate::error::{CryptoError, Result};
use crate::keys::{from_hex, to_hex, AgeRecipient, DevicePublicKey};

mod issue;
mod root;
mod verify;

pub use issue::{issue_admin_cert, issue_escrow_cert, issue_member_cert};
pub use root::{RootPublicKey, SocietyRootKey};
pub use verify::{
    escrow_batch_certified, holder_batch_certified, verify_chain, wrap_data_key_certified,
    VerifiedKeys,
};

/// Magic at the start of every encoded key certificate.
pub const KEY_CERT_MAGIC: &[u8; 4] = b"RFLC";
/// Version of the key certificate encoding.
pub const KEY_CERT_VERSION: u8 = 1;
/// Domain separation prefix of the signed message.
const KEY_CERT_DOMAIN: &[u8] = b"rfl-keycert-v1";
/// Domain separation prefix of [`subject_keys_fingerprint`].
const SUBJECT_FP_DOMAIN: &[u8] = b"rfl-subject-keys-v1";
/// Upper bound on the encoded age recipient (an X25519 recipient is 62 bytes).
const MAX_RECIPIENT_LEN: usize = 1024;
/// Smallest possible encoding: fixed fields, no signing key, empty recipient.
const MIN_CERT_LEN: usize = 4 + 1 + 1 + 16 + 16 + 8 + 8 + 1 + 2 + 32 + 64;

fn cert_err(reason: &'static str) -> CryptoError {
    CryptoError::Certificate(reason)
}

// ---------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------

/// The role a key certificate grants its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum CertifiedRole {
    /// Society admin: issues member certificates. Certified by the society root.
    SocietyAdmin = 1,
    /// Caseworker. Certified by an admin.
    Caseworker = 2,
    /// Auditor (reads the audit trail, never case content). Certified by an admin.
    Auditor = 3,
    /// The society's sync agent (a machine). Certified by an admin.
    SyncAgent = 4,
    /// The society escrow key: an age recipient only, no signing key; the subject id is
    /// the society id. Certified by the society root.
    Escrow = 5,
}

impl CertifiedRole {
    /// Wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// From wire value; `None` if unknown.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(CertifiedRole::SocietyAdmin),
            2 => Some(CertifiedRole::Caseworker),
            3 => Some(CertifiedRole::Auditor),
            4 => Some(CertifiedRole::SyncAgent),
            5 => Some(CertifiedRole::Escrow),
            _ => None,
        }
    }

    /// snake_case name (same as serde).
    pub fn as_str(self) -> &'static str {
        match self {
            CertifiedRole::SocietyAdmin => "society_admin",
            CertifiedRole::Caseworker => "caseworker",
            CertifiedRole::Auditor => "auditor",
            CertifiedRole::SyncAgent => "sync_agent",
            CertifiedRole::Escrow => "escrow",
        }
    }

    /// Whether certificates of this role are signed by the society root (admin, escrow)
    /// rather than by an admin (caseworker, auditor, sync agent).
    pub fn issued_by_root(self) -> bool {
        matches!(self, CertifiedRole::SocietyAdmin | CertifiedRole::Escrow)
    }

    /// Whether a subject of this role carries an Ed25519 signing key (all but escrow).
    pub fn has_signing_key(self) -> bool {
        self != CertifiedRole::Escrow
    }

    /// Whether case data keys may be wrapped to a subject of this role: caseworkers,
    /// admins and the escrow key. Auditors and sync agents never receive case keys.
    pub fn may_receive_case_keys(self) -> bool {
        matches!(
            self,
            CertifiedRole::Caseworker | CertifiedRole::SocietyAdmin | CertifiedRole::Escrow
        )
    }
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// Validity window of a certificate, unix seconds, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// First second at which the certificate is valid.
    pub not_before: i64,
    /// Last second at which the certificate is valid.
    pub not_after: i64,
}

impl Validity {
    /// A window; `not_before` must not be after `not_after`.
    pub fn new(not_before: i64, not_after: i64) -> Result<Self> {
        let v = Validity {
            not_before,
            not_after,
        };
        v.check()?;
        Ok(v)
    }

    fn check(&self) -> Result<()> {
        if self.not_before > self.not_after {
            return Err(cert_err("certificate validity window is empty"));
        }
        Ok(())
    }

    fn check_at(&self, now_secs: i64) -> Result<()> {
        if now_secs < self.not_before {
            return Err(cert_err("certificate not yet valid"));
        }
        if now_secs > self.not_after {
            return Err(cert_err("certificate expired"));
        }
        Ok(())
    }
}

/// A signed statement "in society S, subject X with role R holds these public keys".
///
/// Fields are private: a certificate is made only by the `issue_*` functions or by
/// [`KeyCertificate::from_bytes`], and is trusted only after [`verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCertificate {
    role: CertifiedRole,
    society_id: Uuid,
    subject_id: Uuid,
    validity: Validity,
    signing_key: Option<DevicePublicKey>,
    age_recipient: AgeRecipient,
    issuer: [u8; 32],
    signature: [u8; 64],
}

impl KeyCertificate {
    /// Encoding format version (always [`KEY_CERT_VERSION`] for certificates this build accepts).
    pub fn format_version(&self) -> u8 {
        KEY_CERT_VERSION
    }

    /// Role granted to the subject.
    pub fn role(&self) -> CertifiedRole {
        self.role
    }

    /// Society the certificate belongs to.
    pub fn society_id(&self) -> Uuid {
        self.society_id
    }

    /// Member id of the subject (the society id for the escrow certificate).
    pub fn subject_id(&self) -> Uuid {
        self.subject_id
    }

    /// Validity window.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// The subject's Ed25519 device key (`None` only for the escrow certificate).
    pub fn signing_key(&self) -> Option<&DevicePublicKey> {
        self.signing_key.as_ref()
    }

    /// The subject's age recipient.
    pub fn age_recipient(&self) -> &AgeRecipient {
        &self.age_recipient
    }

    /// Raw Ed25519 public key of the issuer (the society root for admin and escrow
    /// certificates, an admin's device key otherwise).
    pub fn issuer_key(&self) -> &[u8; 32] {
        &self.issuer
    }

    /// Ed25519 signature by the issuer.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Fingerprint of the subject's keys (see [`subject_keys_fingerprint`]).
    pub fn subject_fingerprint(&self) -> String {
        subject_keys_fingerprint(self.signing_key.as_ref(), &self.age_recipient)
    }

    /// [`subject_keys_digest`] of the certified keys (what a revocation list names).
    pub fn keys_digest(&self) -> [u8; 32] {
        subject_keys_digest(self.signing_key.as_ref(), &self.age_recipient)
    }

    /// Everything before the signature.
    fn tbs(&self) -> Vec<u8> {
        let recipient = self.age_recipient.to_string();
        let mut out = Vec::with_capacity(MIN_CERT_LEN + 32 + recipient.len());
        out.extend_from_slice(KEY_CERT_MAGIC);
        out.push(KEY_CERT_VERSION);
        out.push(self.role.as_u8());
        out.extend_from_slice(self.society_id.as_bytes());
        out.extend_from_slice(self.subject_id.as_bytes());
        out.extend_from_slice(&self.validity.not_before.to_be_bytes());
        out.extend_from_slice(&self.validity.not_after.to_be_bytes());
        match &self.signing_key {
            Some(k) => {
                out.push(1);
                out.extend_from_slice(k.as_bytes());
            }
            None => out.push(0),
        }
        // Constructors only accept recipients of at most MAX_RECIPIENT_LEN bytes; should
        // that ever fail, u16::MAX makes the encoding unparseable instead of ambiguous.
        let len = u16::try_from(recipient.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(recipient.as_bytes());
        out.extend_from_slice(&self.issuer);
        out
    }

    /// The exact bytes the issuer signs: `"rfl-keycert-v1"` ‖ every byte before the signature.
    fn signed_message(&self) -> Vec<u8> {
        let tbs = self.tbs();
        let mut m = Vec::with_capacity(KEY_CERT_DOMAIN.len() + tbs.len());
        m.extend_from_slice(KEY_CERT_DOMAIN);
        m.extend_from_slice(&tbs);
        m
    }

    /// Canonical binary encoding (layout in `docs/crypto.md`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.tbs();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parse the canonical encoding. Structural checks only: the signature and chain are
    /// checked by [`verify_chain`]. Rejects wrong magic, truncation and trailing bytes
    /// (`Malformed`), other versions (`UnsupportedVersion`), unknown roles
    /// (`UnknownRole`), and non-canonical or inconsistent content.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let mut r = Reader { buf: b, pos: 0 };
        if r.array::<4>()? != *KEY_CERT_MAGIC {
            return Err(CryptoError::Malformed("key certificate magic"));
        }
        let version = r.u8()?;
        if version != KEY_CERT_VERSION {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        let role_byte = r.u8()?;
        let role = CertifiedRole::from_u8(role_byte).ok_or(CryptoError::UnknownRole(role_byte))?;
        let society_id = Uuid::from_bytes(r.array::<16>()?);
        let subject_id = Uuid::from_bytes(r.array::<16>()?);
        let not_before = i64::from_be_bytes(r.array::<8>()?);
        let not_after = i64::from_be_bytes(r.array::<8>()?);
        let signing_key = match r.u8()? {
            0 => None,
            1 => Some(DevicePublicKey::from_bytes(r.array::<32>()?)),
            _ => return Err(CryptoError::Malformed("key certificate signing-key flag")),
        };
        let len = usize::from(u16::from_be_bytes(r.array::<2>()?));
        if len > MAX_RECIPIENT_LEN {
            return Err(CryptoError::Malformed("key certificate recipient length"));
        }
        let recipient = std::str::from_utf8(r.take(len)?)
            .map_err(|_| CryptoError::KeyFormat("age recipient"))?;
        let age_recipient = AgeRecipient::parse(recipient)?;
        if age_recipient.to_string() != recipient {
            return Err(CryptoError::Malformed(
                "key certificate recipient not in canonical form",
            ));
        }
        let issuer = r.array::<32>()?;
        let signature = r.array::<64>()?;
        if r.pos != b.len() {
            return Err(CryptoError::Malformed(
                "trailing bytes after key certificate",
            ));
        }
        let cert = KeyCertificate {
            role,
            society_id,
            subject_id,
            validity: Validity {
                not_before,
                not_after,
            },
            signing_key,
            age_recipient,
            issuer,
            signature,
        };
        cert.check_shape()?;
        Ok(cert)
    }

    /// Lowercase hex of [`Self::to_bytes`] (the serde form).
    pub fn to_hex(&self) -> String {
        to_hex(&self.to_bytes())
    }

    /// Parse the hex form ([`Self::to_hex`]).
    pub fn from_hex(s: &str) -> Result<Self> {
        let b = from_hex(s.trim()).ok_or(CryptoError::Malformed("key certificate hex"))?;
        Self::from_bytes(&b)
    }

    /// Invariants every certificate satisfies, however it was made.
    fn check_shape(&self) -> Result<()> {
        self.validity.check()?;
        match (self.role.has_signing_key(), self.signing_key.is_some()) {
            (true, false) => return Err(cert_err("certificate lacks the subject's signing key")),
            (false, true) => {
                return Err(cert_err("escrow certificate must not carry a signing key"))
            }
            _ => {}
        }
        if self.role == CertifiedRole::Escrow && self.subject_id != self.society_id {
            return Err(cert_err(
                "escrow certificate subject must be the society itself",
            ));
        }
        Ok(())
    }
}

impl serde::Serialize for KeyCertificate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for KeyCertificate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        KeyCertificate::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(CryptoError::Malformed("key certificate length"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(CryptoError::Malformed("key certificate truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
}

/// Digest of a subject's public keys: SHA-256(`"rfl-subject-keys-v1"` ‖ flag u8 ‖ [signing key
/// 32] ‖ recipient length u16 ‖ recipient). Revocation lists name keys by it.
pub fn subject_keys_digest(
    signing_key: Option<&DevicePublicKey>,
    age_recipient: &AgeRecipient,
) -> [u8; 32] {
    let recipient = age_recipient.to_string();
    let mut m = Vec::with_capacity(SUBJECT_FP_DOMAIN.len() + 35 + recipient.len());
    m.extend_from_slice(SUBJECT_FP_DOMAIN);
    match signing_key {
        Some(k) => {
            m.push(1);
            m.extend_from_slice(k.as_bytes());
        }
        None => m.push(0),
    }
    m.extend_from_slice(
        &u16::try_from(recipient.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(recipient.as_bytes());
    crate::commit::sha256(&m)
}

/// Fingerprint of a subject's public keys, for the admin to compare out of band with
/// what the subject's own device shows before signing a certificate: lowercase hex of
/// the first 16 bytes of [`subject_keys_digest`].
pub fn subject_keys_fingerprint(
    signing_key: Option<&DevicePublicKey>,
    age_recipient: &AgeRecipient,
) -> String {
    to_hex(&subject_keys_digest(signing_key, age_recipient)[..16])
}

#[cfg(test)]
mod tests;
