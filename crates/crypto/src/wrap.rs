//! age key wrapping: case data keys to caseworker/escrow recipients, and the
//! society escrow identity to the offline recovery recipient.

use std::io::{Read, Write};

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::{AgeIdentity, DataKey};

const DK_PREFIX: &[u8] = b"rfl-dk-v1";
const DK_PAYLOAD_LEN: usize = 9 + 16 + 4 + 32;
const ESCROW_PREFIX: &[u8] = b"rfl-escrow-v1";
/// Upper bound on an escrow payload (prefix + id + a 74-char identity string, with slack).
const ESCROW_MAX_LEN: usize = 256;

/// Encrypt `payload` with age to one recipient; binary (unarmored) output.
pub(crate) fn age_encrypt(payload: &[u8], recipient: &dyn age::Recipient) -> Result<Vec<u8>> {
    // The file key is wrapped here: a plugin recipient runs its plugin.
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient)).map_err(encrypt_error)?;
    let mut out = Vec::with_capacity(payload.len() + 256);
    let mut w = enc.wrap_output(&mut out).map_err(|_| CryptoError::Wrap)?;
    w.write_all(payload).map_err(|_| CryptoError::Wrap)?;
    // finish() writes the final STREAM chunk; without it the file is truncated.
    w.finish().map_err(|_| CryptoError::Wrap)?;
    Ok(out)
}

/// An age encryption failure: the plugin's failure if a plugin recipient failed, else [`CryptoError::Wrap`].
fn encrypt_error(e: age::EncryptError) -> CryptoError {
    #[cfg(feature = "plugin")]
    if let Some(p) = crate::plugin::encrypt_error(&e) {
        return p;
    }
    drop(e);
    CryptoError::Wrap
}

/// Decrypt an age file with one identity, reading at most `max_len` plaintext bytes
/// (longer payloads are rejected as malformed).
pub(crate) fn age_decrypt(
    wrapped: &[u8],
    identity: &dyn age::Identity,
    max_len: usize,
    err: CryptoError,
) -> Result<Zeroizing<Vec<u8>>> {
    let dec =
        age::Decryptor::new_buffered(wrapped).map_err(|_| CryptoError::Malformed("age file"))?;
    // A plugin identity runs its plugin here; its failures are reported as such.
    let reader = dec.decrypt(std::iter::once(identity)).map_err(|e| {
        #[cfg(feature = "plugin")]
        if let Some(p) = crate::plugin::decrypt_error(&e) {
            return p;
        }
        drop(e);
        err
    })?;
    read_limited(reader, max_len)
}

/// Read to end into zeroizing storage that never reallocates (so no stray copies).
pub(crate) fn read_limited<R: Read>(reader: R, max_len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let cap = max_len
        .checked_add(1)
        .ok_or(CryptoError::Malformed("length"))?;
    let mut buf = Zeroizing::new(vec![0u8; cap]);
    let mut filled = 0usize;
    let mut reader = reader.take(u64::try_from(cap).map_err(|_| CryptoError::Malformed("length"))?);
    loop {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(CryptoError::DecryptionFailed),
        }
        if filled == cap {
            break;
        }
    }
    if filled > max_len {
        return Err(CryptoError::Malformed("payload too long"));
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Wrap a case data key with age to one recipient. Payload:
/// `"rfl-dk-v1" || case_id(16) || key_epoch(u32 BE) || key(32)`.
pub fn wrap_data_key(
    key: &DataKey,
    case_id: uuid::Uuid,
    key_epoch: u32,
    recipient: &dyn age::Recipient,
) -> Result<Vec<u8>> {
    let mut payload = Zeroizing::new([0u8; DK_PAYLOAD_LEN]);
    payload[..9].copy_from_slice(DK_PREFIX);
    payload[9..25].copy_from_slice(case_id.as_bytes());
    payload[25..29].copy_from_slice(&key_epoch.to_be_bytes());
    payload[29..].copy_from_slice(key.expose_bytes());
    age_encrypt(&payload[..], recipient)
}

/// Unwrap a data key and check it is bound to `case_id` and `key_epoch`
/// ([`CryptoError::WrongKeyBinding`] otherwise).
pub fn unwrap_data_key(
    wrapped: &[u8],
    case_id: uuid::Uuid,
    key_epoch: u32,
    identity: &dyn age::Identity,
) -> Result<DataKey> {
    let payload = age_decrypt(wrapped, identity, DK_PAYLOAD_LEN, CryptoError::Unwrap)?;
    if payload.len() != DK_PAYLOAD_LEN || &payload[..9] != DK_PREFIX {
        return Err(CryptoError::Malformed("wrapped data key payload"));
    }
    if &payload[9..25] != case_id.as_bytes() || payload[25..29] != key_epoch.to_be_bytes() {
        return Err(CryptoError::WrongKeyBinding);
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&payload[29..]);
    Ok(DataKey::from_bytes(*k))
}

/// Wrap the society escrow identity to the offline recovery recipient. Payload:
/// `"rfl-escrow-v1" || society_id(16) || identity string bytes`.
pub fn wrap_escrow_identity(
    escrow: &AgeIdentity,
    society_id: uuid::Uuid,
    recovery: &dyn age::Recipient,
) -> Result<Vec<u8>> {
    let secret = escrow.to_secret_string();
    let s = secret.expose_secret().as_bytes();
    let mut payload = Zeroizing::new(Vec::with_capacity(ESCROW_PREFIX.len() + 16 + s.len()));
    payload.extend_from_slice(ESCROW_PREFIX);
    payload.extend_from_slice(society_id.as_bytes());
    payload.extend_from_slice(s);
    age_encrypt(&payload, recovery)
}

/// Unwrap the society escrow identity with the recovery identity and check the
/// society binding ([`CryptoError::WrongKeyBinding`] otherwise).
pub fn unwrap_escrow_identity(
    wrapped: &[u8],
    society_id: uuid::Uuid,
    recovery: &dyn age::Identity,
) -> Result<AgeIdentity> {
    let payload = age_decrypt(wrapped, recovery, ESCROW_MAX_LEN, CryptoError::Unwrap)?;
    let head = ESCROW_PREFIX.len();
    if payload.len() < head + 16 || &payload[..head] != ESCROW_PREFIX {
        return Err(CryptoError::Malformed("wrapped escrow payload"));
    }
    if &payload[head..head + 16] != society_id.as_bytes() {
        return Err(CryptoError::WrongKeyBinding);
    }
    let s = std::str::from_utf8(&payload[head + 16..])
        .map_err(|_| CryptoError::KeyFormat("escrow identity encoding"))?;
    AgeIdentity::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn data_key_roundtrip() {
        let id = AgeIdentity::generate();
        let key = DataKey::generate().unwrap();
        let case = Uuid::new_v4();
        let w = wrap_data_key(&key, case, 3, id.recipient().as_age()).unwrap();
        assert!(w.starts_with(b"age-encryption.org/v1\n"));
        let k2 = unwrap_data_key(&w, case, 3, id.as_age()).unwrap();
        assert_eq!(k2.expose_bytes(), key.expose_bytes());
    }

    #[test]
    fn wrong_identity() {
        let id = AgeIdentity::generate();
        let other = AgeIdentity::generate();
        let key = DataKey::generate().unwrap();
        let case = Uuid::new_v4();
        let w = wrap_data_key(&key, case, 1, id.recipient().as_age()).unwrap();
        assert!(matches!(
            unwrap_data_key(&w, case, 1, other.as_age()),
            Err(CryptoError::Unwrap)
        ));
    }

    #[test]
    fn swapped_between_cases_or_epochs() {
        let id = AgeIdentity::generate();
        let (ka, kb) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
        let (ca, cb) = (Uuid::new_v4(), Uuid::new_v4());
        let wa = wrap_data_key(&ka, ca, 1, id.recipient().as_age()).unwrap();
        let wb = wrap_data_key(&kb, cb, 1, id.recipient().as_age()).unwrap();
        // Server hands case B's wrapped key when case A's is requested.
        assert!(matches!(
            unwrap_data_key(&wb, ca, 1, id.as_age()),
            Err(CryptoError::WrongKeyBinding)
        ));
        assert!(matches!(
            unwrap_data_key(&wa, cb, 1, id.as_age()),
            Err(CryptoError::WrongKeyBinding)
        ));
        // Old epoch handed out as the new one.
        assert!(matches!(
            unwrap_data_key(&wa, ca, 2, id.as_age()),
            Err(CryptoError::WrongKeyBinding)
        ));
    }

    #[test]
    fn garbage_and_wrong_payloads() {
        let id = AgeIdentity::generate();
        assert!(matches!(
            unwrap_data_key(b"not age", Uuid::nil(), 0, id.as_age()),
            Err(CryptoError::Malformed(_))
        ));
        // An escrow blob is not a data key.
        let esc = AgeIdentity::generate();
        let w = wrap_escrow_identity(&esc, Uuid::nil(), id.recipient().as_age()).unwrap();
        assert!(matches!(
            unwrap_data_key(&w, Uuid::nil(), 0, id.as_age()),
            Err(CryptoError::Malformed(_))
        ));
        // A data-key blob is not an escrow identity.
        let key = DataKey::generate().unwrap();
        let w = wrap_data_key(&key, Uuid::nil(), 0, id.recipient().as_age()).unwrap();
        assert!(matches!(
            unwrap_escrow_identity(&w, Uuid::nil(), id.as_age()),
            Err(CryptoError::Malformed(_))
        ));
        // Truncated age file.
        let w = wrap_data_key(&key, Uuid::nil(), 0, id.recipient().as_age()).unwrap();
        assert!(unwrap_data_key(&w[..w.len() - 1], Uuid::nil(), 0, id.as_age()).is_err());
    }

    #[test]
    fn escrow_roundtrip_and_binding() {
        let recovery = AgeIdentity::generate();
        let escrow = AgeIdentity::generate();
        let society = Uuid::new_v4();
        let w = wrap_escrow_identity(&escrow, society, recovery.recipient().as_age()).unwrap();
        let back = unwrap_escrow_identity(&w, society, recovery.as_age()).unwrap();
        assert_eq!(back.recipient(), escrow.recipient());
        assert!(matches!(
            unwrap_escrow_identity(&w, Uuid::new_v4(), recovery.as_age()),
            Err(CryptoError::WrongKeyBinding)
        ));
        assert!(matches!(
            unwrap_escrow_identity(&w, society, escrow.as_age()),
            Err(CryptoError::Unwrap)
        ));
    }

    #[test]
    fn escrow_recovers_case_key() {
        // Full recovery path: recovery identity -> escrow identity -> case data key.
        let recovery = AgeIdentity::generate();
        let escrow = AgeIdentity::generate();
        let society = Uuid::new_v4();
        let case = Uuid::new_v4();
        let key = DataKey::generate().unwrap();
        let wrapped_escrow =
            wrap_escrow_identity(&escrow, society, recovery.recipient().as_age()).unwrap();
        let wrapped_dk = wrap_data_key(&key, case, 1, escrow.recipient().as_age()).unwrap();
        let esc = unwrap_escrow_identity(&wrapped_escrow, society, recovery.as_age()).unwrap();
        let k = unwrap_data_key(&wrapped_dk, case, 1, esc.as_age()).unwrap();
        assert_eq!(k.expose_bytes(), key.expose_bytes());
        // Rotating the recovery key: one re-wrap of the escrow identity, no per-case work.
        let new_recovery = AgeIdentity::generate();
        let rewrapped =
            wrap_escrow_identity(&esc, society, new_recovery.recipient().as_age()).unwrap();
        let esc2 = unwrap_escrow_identity(&rewrapped, society, new_recovery.as_age()).unwrap();
        let k = unwrap_data_key(&wrapped_dk, case, 1, esc2.as_age()).unwrap();
        assert_eq!(k.expose_bytes(), key.expose_bytes());
    }

    #[test]
    fn read_limited_rejects_long() {
        let r = read_limited(&[0u8; 10][..], 9);
        assert!(matches!(r, Err(CryptoError::Malformed(_))));
        assert_eq!(read_limited(&[1u8; 9][..], 9).unwrap().len(), 9);
    }
}
