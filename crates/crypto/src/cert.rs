//! Key certificates: the society root key certifies admins and the escrow key; admins
//! certify caseworkers, auditors and sync agents. Clients verify the chain
//! (society root → admin → member) before they wrap any case key to a recipient, so
//! a server cannot slip its own key in as a caseworker's or as the escrow key.
//!
//! Byte layout and chain rules: `docs/crypto.md`, section "Key certificates".

use std::fmt;

use ring::signature;
use uuid::Uuid;

use crate::error::{CryptoError, Result};
use crate::escrow::EscrowBatch;
use crate::keys::{from_hex, to_hex, AgeRecipient, DataKey, DevicePublicKey, DeviceSigningKey};
use crate::wrap::wrap_data_key;

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
// Society root key
// ---------------------------------------------------------------------------

/// A society's signing root key (Ed25519). Held offline by the society's admins; it
/// signs admin certificates and the escrow certificate, nothing else.
pub struct SocietyRootKey(DeviceSigningKey);

impl SocietyRootKey {
    /// Generate a new random root key.
    pub fn generate() -> Result<Self> {
        DeviceSigningKey::generate().map(SocietyRootKey)
    }

    /// Load from its (v2) PKCS#8 DER document, as produced by [`Self::pkcs8_der`].
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        DeviceSigningKey::from_pkcs8(der).map(SocietyRootKey)
    }

    /// The PKCS#8 DER document (secret! keep offline).
    pub fn pkcs8_der(&self) -> &[u8] {
        self.0.pkcs8_der()
    }

    /// The public half, which clients pin by its [`RootPublicKey::fingerprint`].
    pub fn public(&self) -> RootPublicKey {
        RootPublicKey(*self.0.public_key().as_bytes())
    }

    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg)
    }
}

impl fmt::Debug for SocietyRootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocietyRootKey")
            .field("public", &self.public().fingerprint())
            .finish_non_exhaustive()
    }
}

/// Public half of a [`SocietyRootKey`] (raw Ed25519, 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RootPublicKey([u8; 32]);

impl RootPublicKey {
    /// From raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        RootPublicKey(b)
    }

    /// From a slice; must be exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| CryptoError::KeyFormat("ed25519 public key length"))?;
        Ok(RootPublicKey(arr))
    }

    /// Accept `b` as the society root key only if its fingerprint is `fingerprint`
    /// (the value that reached the client out of band, e.g. inside the enrolment code;
    /// case and surrounding whitespace are ignored).
    pub fn pinned(b: &[u8], fingerprint: &str) -> Result<Self> {
        let key = Self::from_slice(b)?;
        if key.matches_fingerprint(fingerprint) {
            Ok(key)
        } else {
            Err(cert_err(
                "society root key does not match the pinned fingerprint",
            ))
        }
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex of the first 16 bytes of SHA-256(public key), as for
    /// [`DevicePublicKey::fingerprint`]. This is what travels out of band.
    pub fn fingerprint(&self) -> String {
        DevicePublicKey::from_bytes(self.0).fingerprint()
    }

    /// Whether `fingerprint` (case-insensitive, surrounding whitespace ignored) is this key's.
    pub fn matches_fingerprint(&self, fingerprint: &str) -> bool {
        fingerprint.trim().eq_ignore_ascii_case(&self.fingerprint())
    }

    pub(crate) fn verify_raw(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(msg, sig)
            .map_err(|_| CryptoError::BadSignature)
    }
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

// ---------------------------------------------------------------------------
// Issuing
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

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

#[cfg(test)]
mod tests;
