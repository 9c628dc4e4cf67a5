//! The society root key: held offline by the society's admins, it signs admin certificates and the
//! escrow certificate. Clients pin its public half by fingerprint.

use std::fmt;

use ring::signature;

use super::cert_err;
use crate::error::{CryptoError, Result};
use crate::keys::{DevicePublicKey, DeviceSigningKey};

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
