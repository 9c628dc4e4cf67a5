//! Keys held by authenticators: a person's private keys wrapped, per authenticator, under a key that
//! only that authenticator can produce (its WebAuthn PRF / CTAP2 hmac-secret output).
//!
//! The pattern is the one deployed for PRF-unlocked vaults (e.g. Bitwarden's "login with passkey"):
//! each authenticator gets its own X25519 (age) key pair. Its *private* half is sealed with AES-256-GCM
//! under a key derived from the PRF output; its *public* half stays readable. The person's keys are
//! age-encrypted to that public half. So:
//!
//! * unlocking needs the authenticator (PRF output → key → private half → the person's keys);
//! * the person's keys can be re-wrapped to every registered authenticator with only the public halves,
//!   i.e. rotated while the other authenticators are in a drawer ([`rewrap_keys`]);
//! * the server stores the whole [`AuthenticatorWrap`] and learns nothing: it never sees the PRF output
//!   (the client strips it from the WebAuthn response) nor anything derived from it.
//!
//! Layout and derivations are specified in `docs/crypto.md` ("Keys held by authenticators").

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::{AgeIdentity, AgeRecipient, DevicePublicKey, DeviceSigningKey};
use crate::wrap::{age_decrypt, age_encrypt};

/// The PRF salt every rfl client asks the authenticator to evaluate (WebAuthn hashes it again with its
/// own "WebAuthn PRF" prefix before CTAP2 hmac-secret sees it). Constant, so one credential always gives
/// the same output.
pub const PRF_SALT: [u8; 32] = *b"rfl/v1 key wrapping (PRF salt)\0\0";

/// First bytes of an encoded [`AuthenticatorWrap`].
pub const KEY_WRAP_MAGIC: [u8; 4] = *b"RFKW";
/// Format version of [`AuthenticatorWrap::encode`].
pub const KEY_WRAP_VERSION: u8 = 1;

const HKDF_SALT: &[u8] = b"rfl/v1 authenticator key-encryption key";
const MAX_CREDENTIAL_ID: usize = 1023; // WebAuthn: credential ids are at most 1023 bytes
const MAX_KEYS_LEN: usize = 16 * 1024;
const MAX_FIELD: usize = 8 * 1024;

/// One authenticator's wrapping of a person's private keys.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthenticatorWrap {
    /// The WebAuthn credential id this wrapping belongs to (bound into the sealing).
    pub credential_id: Vec<u8>,
    /// Public half of the authenticator's wrapping key pair: rotation re-encrypts to it.
    pub recipient: AgeRecipient,
    /// `nonce ‖ AES-256-GCM(KEK, private half)`: only the authenticator's PRF output opens it.
    pub sealed_identity: Vec<u8>,
    /// The person's keys, age-encrypted to [`Self::recipient`].
    pub wrapped_keys: Vec<u8>,
    /// The person's Ed25519 signature over [`recipient_message`]: a client re-wraps keys only to a
    /// public half that the person's own key vouches for, so a server that swaps in its own public half
    /// is caught before any key is encrypted to it.
    pub recipient_signature: [u8; 64],
}

/// What the person signs to vouch for an authenticator's public half: `"rfl/v1 authenticator
/// recipient" ‖ 0x00 ‖ member id (16) ‖ u16 len ‖ credential id ‖ recipient (UTF-8)`.
pub fn recipient_message(
    member: &uuid::Uuid,
    credential_id: &[u8],
    recipient: &AgeRecipient,
) -> Vec<u8> {
    let r = recipient.to_string();
    let mut m = Vec::with_capacity(64 + credential_id.len() + r.len());
    m.extend_from_slice(b"rfl/v1 authenticator recipient\0");
    m.extend_from_slice(member.as_bytes());
    let len = u16::try_from(credential_id.len()).unwrap_or(u16::MAX); // ≤ 1023, checked by callers
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(credential_id);
    m.extend_from_slice(r.as_bytes());
    m
}

impl std::fmt::Debug for AuthenticatorWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AuthenticatorWrap({} bytes sealed, {} bytes wrapped)",
            self.sealed_identity.len(),
            self.wrapped_keys.len()
        )
    }
}

/// KEK = HKDF-SHA256(salt = "rfl/v1 authenticator key-encryption key", ikm = PRF output,
/// info = member id (16 bytes) ‖ credential id) — one key per person and credential.
fn kek(prf: &[u8; 32], member: &uuid::Uuid, credential_id: &[u8]) -> Result<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(prf);
    let info = [member.as_bytes().as_slice(), credential_id];
    let okm = prk
        .expand(&info, &aead::AES_256_GCM)
        .map_err(|_| CryptoError::KeyFormat("authenticator key derivation"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Associated data of the sealed private half: magic ‖ version ‖ member id ‖ credential id.
fn aad(member: &uuid::Uuid, credential_id: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + 1 + 16 + credential_id.len());
    a.extend_from_slice(&KEY_WRAP_MAGIC);
    a.push(KEY_WRAP_VERSION);
    a.extend_from_slice(member.as_bytes());
    a.extend_from_slice(credential_id);
    a
}

fn check_credential_id(credential_id: &[u8]) -> Result<()> {
    if credential_id.is_empty() || credential_id.len() > MAX_CREDENTIAL_ID {
        return Err(CryptoError::Malformed("credential id length"));
    }
    Ok(())
}

/// Wraps `keys` (the person's serialised private keys) for a newly registered authenticator whose PRF
/// output is `prf`: a fresh wrapping key pair, its private half sealed under the PRF-derived key, its
/// public half signed by `signer` (the person's Ed25519 key).
pub fn wrap_keys_for_authenticator(
    prf: &[u8; 32],
    member: &uuid::Uuid,
    credential_id: &[u8],
    keys: &[u8],
    signer: &DeviceSigningKey,
) -> Result<AuthenticatorWrap> {
    check_credential_id(credential_id)?;
    let identity = AgeIdentity::generate();
    let secret = identity.to_secret_string();
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CryptoError::Randomness)?;
    let mut sealed = Zeroizing::new(secret.expose_secret().as_bytes().to_vec());
    kek(prf, member, credential_id)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(member, credential_id)),
            &mut *sealed,
        )
        .map_err(|_| CryptoError::Wrap)?;
    let mut sealed_identity = nonce.to_vec();
    sealed_identity.extend_from_slice(&sealed);
    let recipient = identity.recipient();
    let wrapped_keys = age_encrypt(keys, recipient.as_age())?;
    let recipient_signature = signer.sign(&recipient_message(member, credential_id, &recipient));
    Ok(AuthenticatorWrap {
        credential_id: credential_id.to_vec(),
        recipient,
        sealed_identity,
        wrapped_keys,
        recipient_signature,
    })
}

/// Checks that `wrap`'s public half is vouched for by `person` (the person's own Ed25519 public key,
/// known to the client, not taken from the server).
pub fn verify_recipient(
    wrap: &AuthenticatorWrap,
    member: &uuid::Uuid,
    person: &DevicePublicKey,
) -> Result<()> {
    check_credential_id(&wrap.credential_id)?;
    person.verify(
        &recipient_message(member, &wrap.credential_id, &wrap.recipient),
        &wrap.recipient_signature,
    )
}

/// Re-wraps `keys` (e.g. after a rotation) for an authenticator without it: only the public half of its
/// wrapping key pair is used, after checking that `person` (the key that vouched for it) signed it; the
/// public half is then vouched for by `signer` (the same key, or the new one after a rotation). The
/// sealed private half is kept as it is.
pub fn rewrap_keys(
    wrap: &AuthenticatorWrap,
    member: &uuid::Uuid,
    keys: &[u8],
    person: &DevicePublicKey,
    signer: &DeviceSigningKey,
) -> Result<AuthenticatorWrap> {
    verify_recipient(wrap, member, person)?;
    Ok(AuthenticatorWrap {
        wrapped_keys: age_encrypt(keys, wrap.recipient.as_age())?,
        recipient_signature: signer.sign(&recipient_message(
            member,
            &wrap.credential_id,
            &wrap.recipient,
        )),
        ..wrap.clone()
    })
}

/// Opens the person's keys with the authenticator's PRF output. Fails (without saying more) if the PRF
/// output, member or credential is not the one the wrapping was made for, or anything was altered.
pub fn unwrap_keys(
    prf: &[u8; 32],
    member: &uuid::Uuid,
    wrap: &AuthenticatorWrap,
) -> Result<Zeroizing<Vec<u8>>> {
    check_credential_id(&wrap.credential_id)?;
    if wrap.sealed_identity.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
        return Err(CryptoError::Malformed("sealed identity length"));
    }
    let (nonce, sealed) = wrap.sealed_identity.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unwrap)?;
    let mut buf = Zeroizing::new(sealed.to_vec());
    let plain = kek(prf, member, &wrap.credential_id)?
        .open_in_place(nonce, Aad::from(aad(member, &wrap.credential_id)), &mut buf)
        .map_err(|_| CryptoError::Unwrap)?;
    let text = std::str::from_utf8(plain).map_err(|_| CryptoError::Unwrap)?;
    let identity = AgeIdentity::parse(text).map_err(|_| CryptoError::Unwrap)?;
    // The sealed private half must belong to the public half stored beside it.
    if identity.recipient().to_string() != wrap.recipient.to_string() {
        return Err(CryptoError::Unwrap);
    }
    age_decrypt(
        &wrap.wrapped_keys,
        identity.as_age(),
        MAX_KEYS_LEN,
        CryptoError::Unwrap,
    )
}

impl AuthenticatorWrap {
    /// `magic ‖ version ‖ u16 len ‖ credential id ‖ u16 len ‖ recipient (UTF-8) ‖ u16 len ‖ sealed
    /// identity ‖ u16 len ‖ wrapped keys ‖ recipient signature (64)` (lengths big-endian).
    pub fn encode(&self) -> Vec<u8> {
        let recipient = self.recipient.to_string();
        let mut out = Vec::with_capacity(
            16 + self.credential_id.len()
                + recipient.len()
                + self.sealed_identity.len()
                + self.wrapped_keys.len(),
        );
        out.extend_from_slice(&KEY_WRAP_MAGIC);
        out.push(KEY_WRAP_VERSION);
        for field in [
            &self.credential_id[..],
            recipient.as_bytes(),
            &self.sealed_identity,
            &self.wrapped_keys,
        ] {
            // Fields are bounded on creation and on decode (≤ 8 KiB), so the length fits in u16.
            let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.recipient_signature);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<AuthenticatorWrap> {
        let rest = bytes
            .strip_prefix(&KEY_WRAP_MAGIC[..])
            .ok_or(CryptoError::Malformed("key wrap magic"))?;
        let (&version, mut rest) = rest
            .split_first()
            .ok_or(CryptoError::Malformed("key wrap version"))?;
        if version != KEY_WRAP_VERSION {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        let mut fields: [&[u8]; 4] = [&[]; 4];
        for f in fields.iter_mut() {
            if rest.len() < 2 {
                return Err(CryptoError::Malformed("key wrap length"));
            }
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            if len > MAX_FIELD || rest.len() < 2 + len {
                return Err(CryptoError::Malformed("key wrap length"));
            }
            *f = &rest[2..2 + len];
            rest = &rest[2 + len..];
        }
        let recipient_signature: [u8; 64] = rest
            .try_into()
            .map_err(|_| CryptoError::Malformed("key wrap signature length"))?;
        check_credential_id(fields[0])?;
        let recipient = std::str::from_utf8(fields[1])
            .ok()
            // Always an X25519 key rfl generated: never a plugin recipient, which would let whoever
            // supplied the wrapping pick a program for the client to run.
            .and_then(|s| AgeRecipient::parse_x25519(s).ok())
            .ok_or(CryptoError::Malformed("key wrap recipient"))?;
        Ok(AuthenticatorWrap {
            credential_id: fields[0].to_vec(),
            recipient,
            sealed_identity: fields[2].to_vec(),
            wrapped_keys: fields[3].to_vec(),
            recipient_signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBER: uuid::Uuid = uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001);

    fn person() -> DeviceSigningKey {
        DeviceSigningKey::generate().unwrap()
    }

    #[test]
    fn round_trip_and_binding() {
        let prf = [7u8; 32];
        let keys = b"the person's private keys".to_vec();
        let me = person();
        let w = wrap_keys_for_authenticator(&prf, &MEMBER, b"cred-1", &keys, &me).unwrap();
        verify_recipient(&w, &MEMBER, &me.public_key()).unwrap();
        let w = AuthenticatorWrap::decode(&w.encode()).unwrap();
        assert_eq!(&*unwrap_keys(&prf, &MEMBER, &w).unwrap(), &keys[..]);
        // another PRF output (another authenticator or salt), another member, another credential
        assert!(unwrap_keys(&[8u8; 32], &MEMBER, &w).is_err());
        assert!(unwrap_keys(&prf, &uuid::Uuid::nil(), &w).is_err());
        let mut moved = w.clone();
        moved.credential_id = b"cred-2".to_vec();
        assert!(unwrap_keys(&prf, &MEMBER, &moved).is_err());
        // a sealed half swapped in from another wrapping of the same person is refused
        let other = wrap_keys_for_authenticator(&prf, &MEMBER, b"cred-1", &keys, &me).unwrap();
        let mut mixed = w.clone();
        mixed.recipient = other.recipient.clone();
        assert!(unwrap_keys(&prf, &MEMBER, &mixed).is_err());
    }

    #[test]
    fn rotation_needs_only_the_public_half() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let old = b"old keys".to_vec();
        let (me, next) = (person(), person());
        let wa = wrap_keys_for_authenticator(&a, &MEMBER, b"a", &old, &me).unwrap();
        let wb = wrap_keys_for_authenticator(&b, &MEMBER, b"b", &old, &me).unwrap();
        // rotate with neither PRF output at hand, to a new signing key
        let new = b"new keys".to_vec();
        let pk = me.public_key();
        let wa2 = rewrap_keys(&wa, &MEMBER, &new, &pk, &next).unwrap();
        let wb2 = rewrap_keys(&wb, &MEMBER, &new, &pk, &next).unwrap();
        assert_eq!(&*unwrap_keys(&a, &MEMBER, &wa2).unwrap(), &new[..]);
        assert_eq!(&*unwrap_keys(&b, &MEMBER, &wb2).unwrap(), &new[..]);
        assert_eq!(wa2.sealed_identity, wa.sealed_identity);
        verify_recipient(&wb2, &MEMBER, &next.public_key()).unwrap();
    }

    #[test]
    fn a_swapped_public_half_is_never_wrapped_to() {
        let me = person();
        let mut w = wrap_keys_for_authenticator(&[3u8; 32], &MEMBER, b"a", b"k", &me).unwrap();
        // The server replaces the public half with one whose private half it holds.
        let server = AgeIdentity::generate();
        w.recipient = server.recipient();
        assert!(verify_recipient(&w, &MEMBER, &me.public_key()).is_err());
        assert!(rewrap_keys(&w, &MEMBER, b"secret keys", &me.public_key(), &me).is_err());
        // ...or re-signs it with a key of its own.
        let forger = person();
        w.recipient_signature = forger.sign(&recipient_message(&MEMBER, b"a", &w.recipient));
        assert!(rewrap_keys(&w, &MEMBER, b"secret keys", &me.public_key(), &me).is_err());
    }

    #[test]
    fn every_bit_flip_is_refused() {
        let prf = [9u8; 32];
        let me = person();
        let w = wrap_keys_for_authenticator(&prf, &MEMBER, b"cred", b"keys", &me)
            .unwrap()
            .encode();
        for i in 0..w.len() {
            for bit in 0..8 {
                let mut x = w.clone();
                x[i] ^= 1 << bit;
                let opened = AuthenticatorWrap::decode(&x).and_then(|d| {
                    verify_recipient(&d, &MEMBER, &me.public_key())?;
                    unwrap_keys(&prf, &MEMBER, &d)
                });
                assert!(
                    opened.is_err(),
                    "flip of bit {bit} in byte {i} was accepted"
                );
            }
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b""[..],
            b"RFKW",
            b"RFKW\x02",
            b"XXXX\x01\x00\x00",
            b"RFKW\x01\x00\x01a",
        ] {
            assert!(AuthenticatorWrap::decode(bad).is_err());
        }
    }
}
