//! Key-login challenge signatures.
//!
//! Message = `"rfl-auth-v1" || len(audience) as u64 BE || audience (UTF-8) || challenge`.

use crate::error::Result;
use crate::keys::{DevicePublicKey, DeviceSigningKey};

const AUTH_DOMAIN: &[u8] = b"rfl-auth-v1";

/// The exact bytes a device signs to answer a login challenge.
pub fn auth_challenge_message(audience: &str, challenge: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_DOMAIN.len() + 8 + audience.len() + challenge.len());
    m.extend_from_slice(AUTH_DOMAIN);
    // usize -> u64 is lossless on every supported target (pointer width <= 64).
    m.extend_from_slice(&(audience.len() as u64).to_be_bytes());
    m.extend_from_slice(audience.as_bytes());
    m.extend_from_slice(challenge);
    m
}

/// Sign a login challenge for `audience` (e.g. the server origin).
pub fn sign_auth_challenge(key: &DeviceSigningKey, audience: &str, challenge: &[u8]) -> [u8; 64] {
    key.sign(&auth_challenge_message(audience, challenge))
}

/// Verify a login challenge signature ([`crate::CryptoError::BadSignature`] on failure).
pub fn verify_auth_challenge(
    public: &DevicePublicKey,
    audience: &str,
    challenge: &[u8],
    signature: &[u8],
) -> Result<()> {
    public.verify(&auth_challenge_message(audience, challenge), signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CryptoError;

    #[test]
    fn message_layout() {
        let m = auth_challenge_message("ab", &[1, 2]);
        assert_eq!(&m[..11], b"rfl-auth-v1");
        assert_eq!(&m[11..19], &2u64.to_be_bytes());
        assert_eq!(&m[19..], &[b'a', b'b', 1, 2]);
        // Length prefix makes audience/challenge split unambiguous.
        assert_ne!(
            auth_challenge_message("ab", b"c"),
            auth_challenge_message("a", b"bc")
        );
    }

    #[test]
    fn sign_verify() {
        let k = DeviceSigningKey::generate().unwrap();
        let pk = k.public_key();
        let sig = sign_auth_challenge(&k, "https://rfl.example", b"nonce123");
        verify_auth_challenge(&pk, "https://rfl.example", b"nonce123", &sig).unwrap();
        for (aud, ch) in [
            ("https://evil.example", &b"nonce123"[..]),
            ("https://rfl.example", &b"nonce124"[..]),
        ] {
            assert!(matches!(
                verify_auth_challenge(&pk, aud, ch, &sig),
                Err(CryptoError::BadSignature)
            ));
        }
        let other = DeviceSigningKey::generate().unwrap().public_key();
        assert!(verify_auth_challenge(&other, "https://rfl.example", b"nonce123", &sig).is_err());
        // A record signature can never be mistaken for an auth signature (domain separation).
        assert!(verify_auth_challenge(&pk, "", b"", &k.sign(b"")).is_err());
    }
}
