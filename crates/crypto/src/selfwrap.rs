//! Case data keys wrapped to their holder's own symmetric key-wrapping key: no public-key operation,
//! so creating or opening one's own case costs microseconds, and an age plugin token (which holds the
//! holder's age identity) is not asked once per case.
//!
//! The key-wrapping key ([`CaseWrapKey`], 32 random bytes) is one of a person's or machine's private
//! keys: it is sealed with their other keys (to each authenticator, or in a machine's keystore) and
//! is in memory only while signed in. Layout, 65 bytes:
//!
//! ```text
//! off len field
//!   0   4 magic "RFLS"
//!   4   1 format_version (= 2)
//!   5  12 nonce (random)
//!  17  48 AES-256-GCM(k, data key) || tag, AAD = bytes 0..5 || case_id || key_epoch u32 BE
//! k = HKDF-SHA-256(salt = "rfl-self-wrap-v2", ikm = key-wrapping key, info = case_id || key_epoch)
//! ```
//!
//! The per-(case, epoch) key means a nonce is never reused under one AES key in practice, and a
//! wrapping moved to another case or epoch does not open.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::DataKey;
use crate::ENVELOPE_VERSION;

/// Magic of a self-wrapped data key.
pub const SELF_WRAP_MAGIC: [u8; 4] = *b"RFLS";
/// Length of a self-wrapped data key.
pub const SELF_WRAP_LEN: usize = 5 + NONCE_LEN + 32 + 16;
const SALT: &[u8] = b"rfl-self-wrap-v2";

/// A holder's symmetric key-wrapping key; zeroized on drop, never printed.
pub struct CaseWrapKey(Zeroizing<[u8; 32]>);

impl CaseWrapKey {
    /// A fresh random key.
    pub fn generate() -> Result<CaseWrapKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut k[..])
            .map_err(|_| CryptoError::Randomness)?;
        Ok(CaseWrapKey(k))
    }

    /// From stored bytes.
    pub fn from_slice(b: &[u8]) -> Result<CaseWrapKey> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| CryptoError::KeyFormat("case key-wrapping key"))?;
        Ok(CaseWrapKey(Zeroizing::new(arr)))
    }

    /// The raw bytes (to seal them with the holder's other keys).
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HMAC-SHA-256 of `msg` under a key derived from this one for the holder's local state files
    /// (e.g. the case heads a client has verified): only the holder can write a file it will accept.
    pub fn local_state_mac(&self, msg: &[u8]) -> [u8; 32] {
        self.local_state_mac_key().mac(msg)
    }

    /// The key of [`CaseWrapKey::local_state_mac`], derived once for many messages (the ids of an
    /// import: the derivation is three HMACs, the MAC itself one).
    pub fn local_state_mac_key(&self) -> LocalStateMac {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"rfl-local-state-v1").extract(&self.0[..]);
        LocalStateMac(match prk.expand(&[b"hmac"], ring::hmac::HMAC_SHA256) {
            Ok(okm) => okm.into(),
            // expand only fails for outputs longer than 255 hashes; 32 bytes never is.
            Err(_) => ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0[..]),
        })
    }

    /// Whether `tag` is [`CaseWrapKey::local_state_mac`] of `msg` (constant time).
    pub fn check_local_state_mac(&self, msg: &[u8], tag: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        tag.len() == 32 && bool::from(self.local_state_mac(msg).ct_eq(tag))
    }

    fn aead_key(&self, case_id: uuid::Uuid, key_epoch: u32) -> Result<LessSafeKey> {
        let mut info = [0u8; 20];
        info[..16].copy_from_slice(case_id.as_bytes());
        info[16..].copy_from_slice(&key_epoch.to_be_bytes());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&self.0[..]);
        let parts = [&info[..]];
        let okm = prk
            .expand(&parts, &aead::AES_256_GCM)
            .map_err(|_| CryptoError::KeyFormat("hkdf"))?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

/// [`CaseWrapKey::local_state_mac`] with its key derived ([`CaseWrapKey::local_state_mac_key`]).
pub struct LocalStateMac(ring::hmac::Key);

impl LocalStateMac {
    /// HMAC-SHA-256 of `msg`: exactly [`CaseWrapKey::local_state_mac`].
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::hmac::sign(&self.0, msg).as_ref());
        out
    }
}

impl std::fmt::Debug for LocalStateMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalStateMac(..)")
    }
}

impl std::fmt::Debug for CaseWrapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaseWrapKey(<redacted>)")
    }
}

fn aad(case_id: uuid::Uuid, key_epoch: u32) -> [u8; 25] {
    let mut a = [0u8; 25];
    a[..4].copy_from_slice(&SELF_WRAP_MAGIC);
    a[4] = ENVELOPE_VERSION;
    a[5..21].copy_from_slice(case_id.as_bytes());
    a[21..].copy_from_slice(&key_epoch.to_be_bytes());
    a
}

/// Whether a wrapped data key is a self-wrapping (else it is an age file).
pub fn is_self_wrapped(wrapped: &[u8]) -> bool {
    wrapped.starts_with(&SELF_WRAP_MAGIC)
}

/// Wraps a case data key to the holder's own key-wrapping key.
pub fn wrap_data_key_to_self(
    key: &DataKey,
    case_id: uuid::Uuid,
    key_epoch: u32,
    kwk: &CaseWrapKey,
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CryptoError::Randomness)?;
    wrap_to_self_with_nonce(key, case_id, key_epoch, kwk, nonce)
}

/// Deterministic wrapping for test vectors only (a nonce must never repeat under one key).
pub(crate) fn wrap_to_self_with_nonce(
    key: &DataKey,
    case_id: uuid::Uuid,
    key_epoch: u32,
    kwk: &CaseWrapKey,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(SELF_WRAP_LEN);
    out.extend_from_slice(&SELF_WRAP_MAGIC);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.expose_bytes());
    let tag = kwk
        .aead_key(case_id, key_epoch)?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad(case_id, key_epoch)[..]),
            &mut out[5 + NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Wrap)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Unwraps a self-wrapped data key. A wrapping made for another case or epoch, under another
/// holder's key, or altered in any bit, fails with [`CryptoError::Unwrap`].
pub fn unwrap_self_wrapped(
    wrapped: &[u8],
    case_id: uuid::Uuid,
    key_epoch: u32,
    kwk: &CaseWrapKey,
) -> Result<DataKey> {
    if wrapped.len() != SELF_WRAP_LEN || !is_self_wrapped(wrapped) {
        return Err(CryptoError::Malformed("self-wrapped data key"));
    }
    if wrapped[4] != ENVELOPE_VERSION {
        return Err(CryptoError::UnsupportedVersion(wrapped[4]));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&wrapped[5..5 + NONCE_LEN]);
    let mut buf = Zeroizing::new(wrapped[5 + NONCE_LEN..].to_vec());
    let plain = kwk
        .aead_key(case_id, key_epoch)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad(case_id, key_epoch)[..]),
            &mut buf[..],
        )
        .map_err(|_| CryptoError::Unwrap)?;
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(plain);
    Ok(DataKey::from_bytes(*k))
}

const TOKEN_PREFIX: &[u8] = b"rfl-case-wrap-key-v2";

/// Wraps a key-wrapping key with age to the holder's own recipient: for a holder whose age identity
/// is on a token (an age plugin), so that the token is asked once per session, when the key is first
/// needed, and never once per case.
pub fn wrap_case_key_to(kwk: &CaseWrapKey, recipient: &dyn age::Recipient) -> Result<Vec<u8>> {
    let mut payload = Zeroizing::new(Vec::with_capacity(TOKEN_PREFIX.len() + 32));
    payload.extend_from_slice(TOKEN_PREFIX);
    payload.extend_from_slice(kwk.expose_bytes());
    crate::wrap::age_encrypt(&payload, recipient)
}

/// The inverse of [`wrap_case_key_to`] (runs the plugin of a plugin identity).
pub fn unwrap_case_key(wrapped: &[u8], identity: &dyn age::Identity) -> Result<CaseWrapKey> {
    let n = TOKEN_PREFIX.len() + 32;
    let payload = crate::wrap::age_decrypt(wrapped, identity, n, CryptoError::Unwrap)?;
    if payload.len() != n || &payload[..TOKEN_PREFIX.len()] != TOKEN_PREFIX {
        return Err(CryptoError::Malformed("wrapped case key-wrapping key"));
    }
    CaseWrapKey::from_slice(&payload[TOKEN_PREFIX.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// Import ids and the heads file depend on this derivation: pinned to a value computed outside
    /// this code (Python's hmac: HKDF-SHA-256 with salt "rfl-local-state-v1", info "hmac", then
    /// HMAC-SHA-256), once with the key derived per call and once with it kept.
    #[test]
    fn the_local_state_mac_is_hkdf_then_hmac_and_stable() {
        let kwk = CaseWrapKey::from_slice(&[7u8; 32]).unwrap();
        let want = "e90a4cbf56358d04c1cd4958a323eb7a18d565ee9c8301af45c4bfcd2568fd74";
        let key = kwk.local_state_mac_key();
        assert_eq!(
            crate::keys::to_hex(&kwk.local_state_mac(b"rfl-import-id-v1")),
            want
        );
        assert_eq!(crate::keys::to_hex(&key.mac(b"rfl-import-id-v1")), want);
        assert_ne!(key.mac(b"rfl-import-id-v2"), key.mac(b"rfl-import-id-v1"));
        assert!(kwk.check_local_state_mac(b"rfl-import-id-v1", &key.mac(b"rfl-import-id-v1")));
        assert_eq!(format!("{key:?}"), "LocalStateMac(..)");
    }

    #[test]
    fn round_trip_and_bindings() {
        let kwk = CaseWrapKey::generate().unwrap();
        let key = DataKey::generate().unwrap();
        let case = Uuid::new_v4();
        let w = wrap_data_key_to_self(&key, case, 1, &kwk).unwrap();
        assert_eq!(w.len(), SELF_WRAP_LEN);
        assert!(is_self_wrapped(&w));
        let back = unwrap_self_wrapped(&w, case, 1, &kwk).unwrap();
        assert_eq!(back.expose_bytes(), key.expose_bytes());
        assert!(unwrap_self_wrapped(&w, Uuid::new_v4(), 1, &kwk).is_err());
        assert!(unwrap_self_wrapped(&w, case, 2, &kwk).is_err());
        let other = CaseWrapKey::generate().unwrap();
        assert!(unwrap_self_wrapped(&w, case, 1, &other).is_err());
        for i in 0..w.len() * 8 {
            let mut b = w.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(unwrap_self_wrapped(&b, case, 1, &kwk).is_err(), "bit {i}");
        }
        assert_eq!(format!("{kwk:?}"), "CaseWrapKey(<redacted>)");
    }

    #[test]
    fn key_wrapping_key_to_an_age_recipient() {
        let id = crate::AgeIdentity::generate();
        let kwk = CaseWrapKey::generate().unwrap();
        let w = wrap_case_key_to(&kwk, id.recipient().as_age()).unwrap();
        let back = unwrap_case_key(&w, id.as_age()).unwrap();
        assert_eq!(back.expose_bytes(), kwk.expose_bytes());
        let other = crate::AgeIdentity::generate();
        assert!(unwrap_case_key(&w, other.as_age()).is_err());
    }
}
