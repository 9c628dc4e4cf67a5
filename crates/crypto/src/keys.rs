//! Key types: per-case data keys, Ed25519 device keys, age identities/recipients.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

/// Random 256-bit per-case data key; zeroized on drop; `Debug` prints nothing secret.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Generate a fresh random data key from the system CSPRNG.
    pub fn generate() -> Result<DataKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut k[..])
            .map_err(|_| CryptoError::Randomness)?;
        Ok(DataKey(k))
    }

    /// Wrap existing key bytes (e.g. after unwrapping). The array passed in is
    /// moved into zeroizing storage; callers should zeroize their own copies.
    pub fn from_bytes(b: [u8; 32]) -> DataKey {
        DataKey(Zeroizing::new(b))
    }

    /// The raw key bytes. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Ed25519 device signing key (ring). The PKCS#8 document is kept in zeroizing storage.
///
/// Note: ring's `Ed25519KeyPair` does not zeroize its own internal copy on drop;
/// that is a limitation of ring, not of this wrapper.
pub struct DeviceSigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl DeviceSigningKey {
    /// Generate a new random device key.
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| CryptoError::Randomness)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Load a key from its (v2) PKCS#8 DER document, as produced by [`Self::pkcs8_der`].
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let pair =
            Ed25519KeyPair::from_pkcs8(der).map_err(|_| CryptoError::KeyFormat("ed25519 pkcs8"))?;
        Ok(DeviceSigningKey {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
        })
    }

    /// The PKCS#8 DER document (secret!). For storing in the passphrase-protected keystore.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half.
    pub fn public_key(&self) -> DevicePublicKey {
        let mut b = [0u8; 32];
        // ring's Ed25519 public keys are always exactly 32 bytes.
        b.copy_from_slice(self.pair.public_key().as_ref());
        DevicePublicKey(b)
    }

    /// Sign `msg` (Ed25519 is deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        // ring's Ed25519 signatures are always exactly 64 bytes.
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

impl fmt::Debug for DeviceSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSigningKey")
            .field("public", &self.public_key().fingerprint())
            .finish_non_exhaustive()
    }
}

/// Ed25519 device public key (raw 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DevicePublicKey([u8; 32]);

impl DevicePublicKey {
    /// From raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        DevicePublicKey(b)
    }

    /// From a slice; must be exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| CryptoError::KeyFormat("ed25519 public key length"))?;
        Ok(DevicePublicKey(arr))
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Verify an Ed25519 signature over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(msg, sig)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// Lowercase hex of the first 16 bytes of SHA-256(public key).
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.0);
        to_hex(&d.as_ref()[..16])
    }
}

pub(crate) fn to_hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    s
}

/// Decode lowercase or uppercase hex; `None` on odd length or a non-hex character.
pub(crate) fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => Some((nibble(*hi)? << 4) | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

/// age X25519 identity (secret key) wrapper.
pub struct AgeIdentity(pub(crate) age::x25519::Identity);

impl AgeIdentity {
    /// Generate a new random X25519 identity.
    pub fn generate() -> Self {
        AgeIdentity(age::x25519::Identity::generate())
    }

    /// Parse an `AGE-SECRET-KEY-1...` string (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<Self> {
        age::x25519::Identity::from_str(s.trim())
            .map(AgeIdentity)
            .map_err(|_| CryptoError::KeyFormat("age x25519 identity"))
    }

    /// The `AGE-SECRET-KEY-1...` encoding, as a secret.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.to_string()
    }

    /// The matching recipient (public key).
    pub fn recipient(&self) -> AgeRecipient {
        AgeRecipient(self.0.to_public())
    }

    /// As an age identity, for decryption.
    pub fn as_age(&self) -> &dyn age::Identity {
        &self.0
    }
}

impl fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentity(recipient = {})", self.recipient())
    }
}

/// age X25519 recipient (public key) wrapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgeRecipient(age::x25519::Recipient);

impl AgeRecipient {
    /// Parse an `age1...` string (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<Self> {
        age::x25519::Recipient::from_str(s.trim())
            .map(AgeRecipient)
            .map_err(|_| CryptoError::KeyFormat("age x25519 recipient"))
    }

    /// As an age recipient, for encryption.
    pub fn as_age(&self) -> &dyn age::Recipient {
        &self.0
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn data_key_generate_distinct_and_debug_redacted() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        let k = DataKey::from_bytes([7u8; 32]);
        assert_eq!(k.expose_bytes(), &[7u8; 32]);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains('7'), "{dbg}");
    }

    #[test]
    fn signing_roundtrip_and_pkcs8() {
        let k = DeviceSigningKey::generate().unwrap();
        let sig = k.sign(b"hello");
        k.public_key().verify(b"hello", &sig).unwrap();
        assert!(matches!(
            k.public_key().verify(b"hellp", &sig),
            Err(CryptoError::BadSignature)
        ));
        assert!(matches!(
            k.public_key().verify(b"hello", &sig[..63]),
            Err(CryptoError::BadSignature)
        ));
        let k2 = DeviceSigningKey::from_pkcs8(k.pkcs8_der()).unwrap();
        assert_eq!(k.public_key(), k2.public_key());
        assert_eq!(k.sign(b"x"), k2.sign(b"x"));
        assert!(matches!(
            DeviceSigningKey::from_pkcs8(&[0u8; 10]),
            Err(CryptoError::KeyFormat(_))
        ));
        let other = DeviceSigningKey::generate().unwrap();
        assert!(other.public_key().verify(b"hello", &sig).is_err());
        assert!(!format!("{k:?}").is_empty());
    }

    #[test]
    fn public_key_slice_and_fingerprint() {
        let k = DeviceSigningKey::generate().unwrap();
        let p = k.public_key();
        assert_eq!(DevicePublicKey::from_slice(p.as_bytes()).unwrap(), p);
        assert_eq!(DevicePublicKey::from_bytes(*p.as_bytes()), p);
        assert!(matches!(
            DevicePublicKey::from_slice(&[0u8; 31]),
            Err(CryptoError::KeyFormat(_))
        ));
        assert!(DevicePublicKey::from_slice(&[0u8; 33]).is_err());
        let fp = DevicePublicKey::from_bytes([0u8; 32]).fingerprint();
        // SHA-256 of 32 zero bytes = 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
        assert_eq!(fp, "66687aadf862bd776c8fc18b8e9f8e20");
    }

    #[test]
    fn hex_roundtrip_and_rejects() {
        let b: Vec<u8> = (0u8..=255).collect();
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert_eq!(from_hex("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert_eq!(from_hex("").unwrap(), Vec::<u8>::new());
        assert!(from_hex("abc").is_none());
        assert!(from_hex("0g").is_none());
        assert!(from_hex("\u{e9}").is_none());
    }

    #[test]
    fn age_identity_and_recipient_roundtrip() {
        let id = AgeIdentity::generate();
        let s = id.to_secret_string();
        assert!(s.expose_secret().starts_with("AGE-SECRET-KEY-1"));
        let id2 = AgeIdentity::parse(s.expose_secret()).unwrap();
        assert_eq!(id.recipient(), id2.recipient());
        let r = id.recipient().to_string();
        assert!(r.starts_with("age1"));
        assert_eq!(AgeRecipient::parse(&r).unwrap(), id.recipient());
        assert!(matches!(
            AgeRecipient::parse("age1nope"),
            Err(CryptoError::KeyFormat(_))
        ));
        assert!(matches!(
            AgeIdentity::parse(&r),
            Err(CryptoError::KeyFormat(_))
        ));
        let dbg = format!("{id:?}");
        assert!(!dbg.contains("AGE-SECRET-KEY"));
    }
}
