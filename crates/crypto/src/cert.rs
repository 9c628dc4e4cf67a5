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
mod tests {
    use super::*;
    use crate::keys::AgeIdentity;
    use crate::unwrap_data_key;

    const NOW: i64 = 1_750_000_000;
    const DAY: i64 = 86_400;

    fn window() -> Validity {
        Validity::new(NOW - DAY, NOW + 365 * DAY).unwrap()
    }

    struct Society {
        id: Uuid,
        root: SocietyRootKey,
        admin_id: Uuid,
        admin: DeviceSigningKey,
        admin_cert: KeyCertificate,
        escrow: AgeIdentity,
        escrow_cert: KeyCertificate,
    }

    fn society() -> Society {
        let id = Uuid::new_v4();
        let root = SocietyRootKey::generate().unwrap();
        let admin_id = Uuid::new_v4();
        let admin = DeviceSigningKey::generate().unwrap();
        let admin_age = AgeIdentity::generate();
        let admin_cert = issue_admin_cert(
            &root,
            id,
            admin_id,
            admin.public_key(),
            &admin_age.recipient(),
            window(),
        )
        .unwrap();
        let escrow = AgeIdentity::generate();
        let escrow_cert = issue_escrow_cert(&root, id, &escrow.recipient(), window()).unwrap();
        Society {
            id,
            root,
            admin_id,
            admin,
            admin_cert,
            escrow,
            escrow_cert,
        }
    }

    struct Member {
        id: Uuid,
        signing: DeviceSigningKey,
        age: AgeIdentity,
        cert: KeyCertificate,
    }

    fn member(s: &Society, role: CertifiedRole) -> Member {
        let id = Uuid::new_v4();
        let signing = DeviceSigningKey::generate().unwrap();
        let age = AgeIdentity::generate();
        let cert = issue_member_cert(
            &s.admin,
            &s.admin_cert,
            id,
            role,
            signing.public_key(),
            &age.recipient(),
            window(),
        )
        .unwrap();
        Member {
            id,
            signing,
            age,
            cert,
        }
    }

    fn reason(r: Result<impl fmt::Debug>) -> &'static str {
        match r {
            Err(CryptoError::Certificate(m)) => m,
            other => panic!("expected a certificate error, got {other:?}"),
        }
    }

    /// Re-sign a certificate after tampering, as a forger holding `key` would.
    fn resign(mut c: KeyCertificate, key: &DeviceSigningKey) -> KeyCertificate {
        c.issuer = *key.public_key().as_bytes();
        c.signature = key.sign(&c.signed_message());
        c
    }

    #[test]
    fn admin_chain_verifies() {
        let s = society();
        let v = verify_chain(
            &s.root.public(),
            s.id,
            std::slice::from_ref(&s.admin_cert),
            NOW,
        )
        .unwrap();
        assert_eq!(v.role(), CertifiedRole::SocietyAdmin);
        assert_eq!(v.subject_id(), s.admin_id);
        assert_eq!(v.society_id(), s.id);
        assert_eq!(v.signing_key(), Some(&s.admin.public_key()));
        assert_eq!(v.age_recipient(), s.admin_cert.age_recipient());
        assert_eq!(v.valid_until(), NOW + 365 * DAY);
        v.expect(s.admin_id, CertifiedRole::SocietyAdmin).unwrap();
    }

    #[test]
    fn caseworker_chain_verifies_and_key_wraps() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let chain = [s.admin_cert.clone(), cw.cert.clone()];
        let v = verify_chain(&s.root.public(), s.id, &chain, NOW).unwrap();
        assert_eq!(v.role(), CertifiedRole::Caseworker);
        assert_eq!(v.subject_id(), cw.id);
        assert_eq!(v.signing_key(), Some(&cw.signing.public_key()));
        assert_eq!(v.age_recipient(), &cw.age.recipient());
        v.expect(cw.id, CertifiedRole::Caseworker).unwrap();
        assert_eq!(
            reason(v.expect(s.admin_id, CertifiedRole::Caseworker)),
            "certificate is for another subject"
        );
        assert_eq!(
            reason(v.expect(cw.id, CertifiedRole::SocietyAdmin)),
            "certificate grants a different role"
        );

        let key = DataKey::generate().unwrap();
        let case = Uuid::new_v4();
        let w = wrap_data_key_certified(&key, case, 1, &v).unwrap();
        let back = unwrap_data_key(&w, case, 1, cw.age.as_age()).unwrap();
        assert_eq!(back.expose_bytes(), key.expose_bytes());
    }

    #[test]
    #[cfg(feature = "plugin")]
    fn plugin_recipients_are_certified_in_canonical_form() {
        use age_core::primitives::bech32_encode;
        let s = society();
        let hrp = bech32::Hrp::parse("age1yubikey").unwrap();
        let recipient = AgeRecipient::parse(&bech32_encode(hrp, &[2u8; 33])).unwrap();
        let id = Uuid::new_v4();
        let signing = DeviceSigningKey::generate().unwrap();
        let cert = issue_member_cert(
            &s.admin,
            &s.admin_cert,
            id,
            CertifiedRole::Caseworker,
            signing.public_key(),
            &recipient,
            window(),
        )
        .unwrap();
        let bytes = cert.to_bytes();
        let text = recipient.to_string();
        assert_eq!(bytes.len(), 153 + 32 + text.len());
        let back = KeyCertificate::from_bytes(&bytes).unwrap();
        assert_eq!(back.age_recipient(), &recipient);
        let v = verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), back], NOW).unwrap();
        assert_eq!(v.age_recipient(), &recipient);
        assert!(v.age_recipient().is_plugin());
        // age reads plugin recipients in lower case only: upper case is refused outright.
        let start = bytes.len() - 96 - text.len();
        let mut up = bytes.clone();
        up[start..start + text.len()].copy_from_slice(text.to_ascii_uppercase().as_bytes());
        assert!(matches!(
            KeyCertificate::from_bytes(&up),
            Err(CryptoError::KeyFormat(_))
        ));
    }

    #[test]
    fn escrow_chain_verifies() {
        let s = society();
        let v = verify_chain(
            &s.root.public(),
            s.id,
            std::slice::from_ref(&s.escrow_cert),
            NOW,
        )
        .unwrap();
        assert_eq!(v.role(), CertifiedRole::Escrow);
        assert_eq!(v.subject_id(), s.id);
        assert_eq!(v.signing_key(), None);
        assert_eq!(v.age_recipient(), &s.escrow.recipient());
        v.expect(s.id, CertifiedRole::Escrow).unwrap();
        let key = DataKey::generate().unwrap();
        let w = wrap_data_key_certified(&key, Uuid::nil(), 0, &v).unwrap();
        assert!(unwrap_data_key(&w, Uuid::nil(), 0, s.escrow.as_age()).is_ok());
    }

    #[test]
    fn auditor_and_sync_agent_verify_but_receive_no_case_keys() {
        let s = society();
        for role in [CertifiedRole::Auditor, CertifiedRole::SyncAgent] {
            let m = member(&s, role);
            let v =
                verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), m.cert], NOW).unwrap();
            assert_eq!(v.role(), role);
            let key = DataKey::generate().unwrap();
            assert_eq!(
                reason(wrap_data_key_certified(&key, Uuid::nil(), 0, &v)),
                "this role may not receive case keys"
            );
        }
    }

    /// Issue 3: a server that substitutes a caseworker's public key is caught before
    /// any data key is wrapped to it.
    #[test]
    fn server_substituting_caseworker_age_key_is_caught() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let server = AgeIdentity::generate();
        let mut forged = cw.cert.clone();
        forged.age_recipient = server.recipient();
        // What the server hands out travels as bytes; re-parse as the client would.
        let forged = KeyCertificate::from_bytes(&forged.to_bytes()).unwrap();
        let r = verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), forged], NOW);
        assert_eq!(reason(r), "certificate signature does not verify");
        // No VerifiedKeys, so wrap_data_key_certified cannot even be called.
    }

    #[test]
    fn substituted_signing_key_is_caught() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let mut forged = cw.cert.clone();
        forged.signing_key = Some(DeviceSigningKey::generate().unwrap().public_key());
        let r = verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), forged], NOW);
        assert_eq!(reason(r), "certificate signature does not verify");
    }

    #[test]
    fn server_substituting_escrow_key_is_caught() {
        let s = society();
        let server = AgeIdentity::generate();
        // (a) edit the recipient in the genuine certificate.
        let mut forged = s.escrow_cert.clone();
        forged.age_recipient = server.recipient();
        let r = verify_chain(&s.root.public(), s.id, &[forged], NOW);
        assert_eq!(reason(r), "certificate signature does not verify");
        // (b) sign an escrow certificate with the server's own root.
        let server_root = SocietyRootKey::generate().unwrap();
        let own = issue_escrow_cert(&server_root, s.id, &server.recipient(), window()).unwrap();
        let r = verify_chain(&s.root.public(), s.id, &[own], NOW);
        assert_eq!(reason(r), "certificate not issued by the society root");
        // (c) the escrow cert of another society (same root would be needed: it is not).
        let other = society();
        let r = verify_chain(&s.root.public(), s.id, &[other.escrow_cert], NOW);
        assert_eq!(reason(r), "certificate not issued by the society root");
    }

    #[test]
    fn admin_cert_from_another_root_is_refused() {
        let s = society();
        let other_root = SocietyRootKey::generate().unwrap();
        let age = AgeIdentity::generate();
        let fake_admin = issue_admin_cert(
            &other_root,
            s.id,
            s.admin_id,
            s.admin.public_key(),
            &age.recipient(),
            window(),
        )
        .unwrap();
        let cw = member(&s, CertifiedRole::Caseworker);
        let r = verify_chain(
            &s.root.public(),
            s.id,
            std::slice::from_ref(&fake_admin),
            NOW,
        );
        assert_eq!(reason(r), "certificate not issued by the society root");
        let r = verify_chain(&s.root.public(), s.id, &[fake_admin, cw.cert], NOW);
        assert_eq!(reason(r), "certificate not issued by the society root");
        // Claiming the right root as issuer but signing with another key.
        let mut lying = issue_admin_cert(
            &other_root,
            s.id,
            s.admin_id,
            s.admin.public_key(),
            &age.recipient(),
            window(),
        )
        .unwrap();
        lying.issuer = *s.root.public().as_bytes();
        let r = verify_chain(&s.root.public(), s.id, &[lying], NOW);
        assert_eq!(reason(r), "certificate signature does not verify");
    }

    #[test]
    fn member_cert_alone_or_from_another_admin_is_refused() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let r = verify_chain(&s.root.public(), s.id, std::slice::from_ref(&cw.cert), NOW);
        assert_eq!(reason(r), "certificate not issued by the society root");
        // A second, genuine admin of the same society did not issue this cert.
        let admin2 = DeviceSigningKey::generate().unwrap();
        let age2 = AgeIdentity::generate();
        let admin2_cert = issue_admin_cert(
            &s.root,
            s.id,
            Uuid::new_v4(),
            admin2.public_key(),
            &age2.recipient(),
            window(),
        )
        .unwrap();
        let r = verify_chain(&s.root.public(), s.id, &[admin2_cert, cw.cert], NOW);
        assert_eq!(reason(r), "certificate not issued by the given admin");
        assert_eq!(
            reason(verify_chain(&s.root.public(), s.id, &[], NOW)),
            "empty certificate chain"
        );
    }

    #[test]
    fn cert_issued_by_a_caseworker_is_refused() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        // The caseworker's client refuses to issue at all.
        let victim = AgeIdentity::generate();
        let r = issue_member_cert(
            &cw.signing,
            &cw.cert,
            Uuid::new_v4(),
            CertifiedRole::Caseworker,
            DeviceSigningKey::generate().unwrap().public_key(),
            &victim.recipient(),
            window(),
        );
        assert_eq!(reason(r), "issuer is not a society admin");
        // A hand-made certificate signed by the caseworker's key is refused by verifiers.
        let mut m = member(&s, CertifiedRole::Caseworker).cert;
        m.age_recipient = victim.recipient();
        let m = resign(m, &cw.signing);
        let chain = [s.admin_cert.clone(), cw.cert.clone(), m.clone()];
        assert_eq!(
            reason(verify_chain(&s.root.public(), s.id, &chain, NOW)),
            "issuer is not a society admin"
        );
        // The escrow certificate cannot issue either (it has no signing key).
        let chain = [s.escrow_cert.clone(), m];
        assert_eq!(
            reason(verify_chain(&s.root.public(), s.id, &chain, NOW)),
            "issuer is not a society admin"
        );
    }

    #[test]
    fn admins_cannot_issue_admin_or_escrow_certs() {
        let s = society();
        let age = AgeIdentity::generate();
        let k = DeviceSigningKey::generate().unwrap().public_key();
        for role in [CertifiedRole::SocietyAdmin, CertifiedRole::Escrow] {
            let r = issue_member_cert(
                &s.admin,
                &s.admin_cert,
                Uuid::new_v4(),
                role,
                k,
                &age.recipient(),
                window(),
            );
            assert_eq!(
                reason(r),
                "admins may issue only caseworker, auditor and sync agent certificates"
            );
        }
        // Hand-made admin cert signed by an admin: refused on verification.
        let mut c = s.admin_cert.clone();
        c.subject_id = Uuid::new_v4();
        let c = resign(c, &s.admin);
        let chain = [s.admin_cert.clone(), c];
        assert_eq!(
            reason(verify_chain(&s.root.public(), s.id, &chain, NOW)),
            "admins may issue only caseworker, auditor and sync agent certificates"
        );
        // The root does not sign caseworkers directly.
        let mut c = member(&s, CertifiedRole::Caseworker).cert;
        c.issuer = *s.root.public().as_bytes();
        c.signature = s.root.sign_raw(&c.signed_message());
        assert_eq!(
            reason(verify_chain(&s.root.public(), s.id, &[c], NOW)),
            "the society root issues only admin and escrow certificates"
        );
    }

    #[test]
    fn wrong_admin_key_for_issuing() {
        let s = society();
        let other = DeviceSigningKey::generate().unwrap();
        let age = AgeIdentity::generate();
        let r = issue_member_cert(
            &other,
            &s.admin_cert,
            Uuid::new_v4(),
            CertifiedRole::Caseworker,
            other.public_key(),
            &age.recipient(),
            window(),
        );
        assert_eq!(
            reason(r),
            "signing key does not match the admin certificate"
        );
    }

    #[test]
    fn wrong_society_is_refused() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let other = Uuid::new_v4();
        assert_eq!(
            reason(verify_chain(
                &s.root.public(),
                other,
                std::slice::from_ref(&s.admin_cert),
                NOW
            )),
            "certificate is for another society"
        );
        assert_eq!(
            reason(verify_chain(
                &s.root.public(),
                other,
                std::slice::from_ref(&s.escrow_cert),
                NOW
            )),
            "certificate is for another society"
        );
        // Admin cert for society A, member cert (signed by that admin) claiming society B.
        let mut c = cw.cert.clone();
        c.society_id = other;
        let c = resign(c, &s.admin);
        assert_eq!(
            reason(verify_chain(
                &s.root.public(),
                s.id,
                &[s.admin_cert.clone(), c],
                NOW
            )),
            "certificate is for another society"
        );
    }

    #[test]
    fn validity_windows() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let chain = [s.admin_cert.clone(), cw.cert.clone()];
        let w = window();
        let pk = s.root.public();
        assert!(verify_chain(&pk, s.id, &chain, w.not_before).is_ok());
        assert!(verify_chain(&pk, s.id, &chain, w.not_after).is_ok());
        assert_eq!(
            reason(verify_chain(&pk, s.id, &chain, w.not_before - 1)),
            "certificate not yet valid"
        );
        assert_eq!(
            reason(verify_chain(&pk, s.id, &chain, w.not_after + 1)),
            "certificate expired"
        );
        // An expired admin certificate invalidates the member below it.
        let age = AgeIdentity::generate();
        let short = issue_admin_cert(
            &s.root,
            s.id,
            s.admin_id,
            s.admin.public_key(),
            &age.recipient(),
            Validity::new(NOW - 2 * DAY, NOW - DAY).unwrap(),
        )
        .unwrap();
        assert_eq!(
            reason(verify_chain(&pk, s.id, &[short, cw.cert.clone()], NOW)),
            "certificate expired"
        );
        // Member expiry shortens valid_until.
        let late = issue_member_cert(
            &s.admin,
            &s.admin_cert,
            cw.id,
            CertifiedRole::Caseworker,
            cw.signing.public_key(),
            &cw.age.recipient(),
            Validity::new(NOW, NOW + DAY).unwrap(),
        )
        .unwrap();
        let v = verify_chain(&pk, s.id, &[s.admin_cert.clone(), late.clone()], NOW).unwrap();
        assert_eq!(v.valid_until(), NOW + DAY);
        assert_eq!(
            reason(verify_chain(
                &pk,
                s.id,
                &[s.admin_cert.clone(), late],
                NOW - 1
            )),
            "certificate not yet valid"
        );
        assert_eq!(
            reason(Validity::new(2, 1)),
            "certificate validity window is empty"
        );
        let r = issue_escrow_cert(
            &s.root,
            s.id,
            &s.escrow.recipient(),
            Validity {
                not_before: 5,
                not_after: 4,
            },
        );
        assert_eq!(reason(r), "certificate validity window is empty");
    }

    #[test]
    fn encoding_roundtrip_and_layout() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        for c in [&s.admin_cert, &s.escrow_cert, &cw.cert] {
            let b = c.to_bytes();
            assert_eq!(&KeyCertificate::from_bytes(&b).unwrap(), c);
            assert_eq!(&KeyCertificate::from_hex(&c.to_hex()).unwrap(), c);
            assert_eq!(&b[..4], b"RFLC");
            assert_eq!(b[4], 1);
            assert_eq!(b[5], c.role().as_u8());
            assert_eq!(&b[6..22], c.society_id().as_bytes());
            assert_eq!(&b[22..38], c.subject_id().as_bytes());
            assert_eq!(&b[b.len() - 64..], c.signature());
            assert_eq!(&b[b.len() - 96..b.len() - 64], c.issuer_key());
            assert_eq!(c.format_version(), KEY_CERT_VERSION);
            let json = serde_json::to_string(c).unwrap();
            let back: KeyCertificate = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, c);
        }
        // X25519 recipient: 62 bytes.
        assert_eq!(s.escrow_cert.to_bytes().len(), MIN_CERT_LEN + 62);
        assert_eq!(cw.cert.to_bytes().len(), MIN_CERT_LEN + 32 + 62);
        assert!(serde_json::from_str::<KeyCertificate>("\"zz\"").is_err());
        assert!(serde_json::from_str::<KeyCertificate>("\"00\"").is_err());
        assert!(KeyCertificate::from_hex("abc").is_err());
    }

    #[test]
    fn truncated_extended_and_unknown() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let b = cw.cert.to_bytes();
        for n in 0..b.len() {
            assert!(
                KeyCertificate::from_bytes(&b[..n]).is_err(),
                "truncated to {n}"
            );
        }
        let mut long = b.clone();
        long.push(0);
        assert!(matches!(
            KeyCertificate::from_bytes(&long),
            Err(CryptoError::Malformed(
                "trailing bytes after key certificate"
            ))
        ));
        let mut v = b.clone();
        v[4] = 2;
        assert!(matches!(
            KeyCertificate::from_bytes(&v),
            Err(CryptoError::UnsupportedVersion(2))
        ));
        for role in [0u8, 6, 255] {
            let mut r = b.clone();
            r[5] = role;
            assert!(matches!(
                KeyCertificate::from_bytes(&r),
                Err(CryptoError::UnknownRole(x)) if x == role
            ));
        }
        let mut m = b.clone();
        m[0] = b'X';
        assert!(matches!(
            KeyCertificate::from_bytes(&m),
            Err(CryptoError::Malformed(_))
        ));
        let mut f = b.clone();
        f[54] = 2;
        assert!(matches!(
            KeyCertificate::from_bytes(&f),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn decoding_rejects_inconsistent_shapes() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        // Caseworker role without signing key.
        let mut c = cw.cert.clone();
        c.signing_key = None;
        assert_eq!(
            reason(KeyCertificate::from_bytes(&c.to_bytes())),
            "certificate lacks the subject's signing key"
        );
        // Escrow with a signing key.
        let mut e = s.escrow_cert.clone();
        e.signing_key = Some(cw.signing.public_key());
        assert_eq!(
            reason(KeyCertificate::from_bytes(&e.to_bytes())),
            "escrow certificate must not carry a signing key"
        );
        // Escrow for a subject other than the society.
        let mut e = s.escrow_cert.clone();
        e.subject_id = Uuid::new_v4();
        assert_eq!(
            reason(KeyCertificate::from_bytes(&e.to_bytes())),
            "escrow certificate subject must be the society itself"
        );
        // Empty validity window.
        let mut w = s.admin_cert.clone();
        w.validity = Validity {
            not_before: 10,
            not_after: 9,
        };
        assert_eq!(
            reason(KeyCertificate::from_bytes(&w.to_bytes())),
            "certificate validity window is empty"
        );
        // Non-canonical recipient (upper case bech32 parses, but is refused).
        let b = s.escrow_cert.to_bytes();
        let r = s.escrow_cert.age_recipient().to_string();
        let start = b.len() - 96 - r.len();
        let mut up = b.clone();
        up[start..start + r.len()].copy_from_slice(r.to_ascii_uppercase().as_bytes());
        assert!(matches!(
            KeyCertificate::from_bytes(&up),
            Err(CryptoError::Malformed(
                "key certificate recipient not in canonical form"
            ))
        ));
        // Not a recipient at all.
        let mut bad = b.clone();
        bad[start + 10] = b'!';
        assert!(matches!(
            KeyCertificate::from_bytes(&bad),
            Err(CryptoError::KeyFormat(_))
        ));
        // Oversized declared recipient length.
        let mut big = b;
        big[start - 2..start].copy_from_slice(&2000u16.to_be_bytes());
        assert!(matches!(
            KeyCertificate::from_bytes(&big),
            Err(CryptoError::Malformed("key certificate recipient length"))
        ));
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let pk = s.root.public();
        let cases: [(usize, Vec<KeyCertificate>); 3] = [
            (0, vec![s.admin_cert.clone()]),
            (0, vec![s.escrow_cert.clone()]),
            (1, vec![s.admin_cert.clone(), cw.cert.clone()]),
        ];
        for (idx, chain) in cases {
            let b = chain[idx].to_bytes();
            for i in 0..b.len() * 8 {
                let mut x = b.clone();
                x[i / 8] ^= 1 << (i % 8);
                let Ok(c) = KeyCertificate::from_bytes(&x) else {
                    continue;
                };
                let mut ch = chain.clone();
                ch[idx] = c;
                assert!(verify_chain(&pk, s.id, &ch, NOW).is_err(), "bit {i}");
            }
        }
    }

    #[test]
    fn root_key_pkcs8_fingerprint_and_pinning() {
        let root = SocietyRootKey::generate().unwrap();
        let again = SocietyRootKey::from_pkcs8(root.pkcs8_der()).unwrap();
        assert_eq!(root.public(), again.public());
        let pk = root.public();
        assert_eq!(RootPublicKey::from_slice(pk.as_bytes()).unwrap(), pk);
        assert_eq!(RootPublicKey::from_bytes(*pk.as_bytes()), pk);
        assert!(RootPublicKey::from_slice(&[0u8; 31]).is_err());
        let fp = pk.fingerprint();
        assert_eq!(fp.len(), 32);
        assert!(pk.matches_fingerprint(&format!("  {}\n", fp.to_uppercase())));
        assert_eq!(RootPublicKey::pinned(pk.as_bytes(), &fp).unwrap(), pk);
        let other = SocietyRootKey::generate().unwrap().public();
        assert_eq!(
            reason(RootPublicKey::pinned(other.as_bytes(), &fp)),
            "society root key does not match the pinned fingerprint"
        );
        assert_eq!(
            RootPublicKey::from_bytes([0u8; 32]).fingerprint(),
            "66687aadf862bd776c8fc18b8e9f8e20"
        );
        let dbg = format!("{root:?}");
        assert!(dbg.contains(&fp));
        assert!(SocietyRootKey::from_pkcs8(&[1, 2, 3]).is_err());
    }

    #[test]
    fn subject_fingerprint_binds_both_keys() {
        let s = society();
        let cw = member(&s, CertifiedRole::Caseworker);
        let fp = cw.cert.subject_fingerprint();
        assert_eq!(
            fp,
            subject_keys_fingerprint(Some(&cw.signing.public_key()), &cw.age.recipient())
        );
        let other_age = AgeIdentity::generate().recipient();
        assert_ne!(
            fp,
            subject_keys_fingerprint(Some(&cw.signing.public_key()), &other_age)
        );
        let other_sig = DeviceSigningKey::generate().unwrap().public_key();
        assert_ne!(
            fp,
            subject_keys_fingerprint(Some(&other_sig), &cw.age.recipient())
        );
        assert_ne!(fp, subject_keys_fingerprint(None, &cw.age.recipient()));
    }

    #[test]
    fn role_codes_roundtrip() {
        for v in 0u8..=255 {
            match CertifiedRole::from_u8(v) {
                Some(r) => {
                    assert_eq!(r.as_u8(), v);
                    let json = serde_json::to_string(&r).unwrap();
                    assert_eq!(json, format!("\"{}\"", r.as_str()));
                    assert_eq!(serde_json::from_str::<CertifiedRole>(&json).unwrap(), r);
                }
                None => assert!(v == 0 || v > 5),
            }
        }
    }

    #[test]
    fn error_messages_contain_no_key_material() {
        let s = society();
        let other = society();
        let e = verify_chain(
            &s.root.public(),
            s.id,
            std::slice::from_ref(&other.admin_cert),
            NOW,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "key certificate rejected: certificate not issued by the society root"
        );
        for k in [
            s.root.public().fingerprint(),
            other.root.public().fingerprint(),
            to_hex(other.root.public().as_bytes()),
        ] {
            assert!(!e.contains(&k));
        }
    }
}
