//! Sealed record envelopes (format 2).
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! off  len  field
//!   0    4  magic "RFLE"
//!   4    1  format_version (= 2)
//!   5    1  kind
//!   6    4  key_epoch u32
//!  10   16  case_id
//!  26   16  record_id
//!  42    8  record_version u64
//!  50   12  nonce (random)
//!  62    4  ct_len u32 (ciphertext incl. 16-byte GCM tag)
//!  66   ct_len  AES-256-GCM ciphertext || tag, AAD = bytes 0..50
//! ```
//!
//! A format-2 envelope carries no signature of its own: its authenticity comes from the signed
//! commit that lists it (id, kind, version and SHA-256 of these exact bytes; see [`crate::commit`]).
//! A format-1 envelope (per-record signatures) is refused with [`CryptoError::UnsupportedVersion`].

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::DataKey;
use crate::{RecordAad, RecordKind, ENVELOPE_VERSION};

/// Envelope magic bytes.
pub const ENVELOPE_MAGIC: [u8; 4] = *b"RFLE";

const AAD_END: usize = 50;
const OFF_NONCE: usize = 50;
const OFF_CT_LEN: usize = 62;
const HEADER_LEN: usize = 66;
const TAG_LEN: usize = 16;

/// Bytes an envelope adds to its plaintext (header + GCM tag).
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Parsed envelope header (nothing here is secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// Format version byte (always [`ENVELOPE_VERSION`] after a successful parse).
    pub format_version: u8,
    /// Ids, kind, version and key epoch the record claims.
    pub aad: RecordAad,
    /// Length of ciphertext including the 16-byte GCM tag (plaintext length + 16).
    pub ciphertext_len: usize,
}

fn aes_key(key: &DataKey) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&aead::AES_256_GCM, key.expose_bytes())
        .map_err(|_| CryptoError::KeyFormat("aes-256-gcm key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// Bytes 0..50 of the envelope: the header fields authenticated as AEAD associated data.
fn header_aad(aad: &RecordAad) -> [u8; AAD_END] {
    let mut h = [0u8; AAD_END];
    h[0..4].copy_from_slice(&ENVELOPE_MAGIC);
    h[4] = ENVELOPE_VERSION;
    h[5] = aad.kind.as_u8();
    h[6..10].copy_from_slice(&aad.key_epoch.to_be_bytes());
    h[10..26].copy_from_slice(aad.case_id.as_bytes());
    h[26..42].copy_from_slice(aad.record_id.as_bytes());
    h[42..50].copy_from_slice(&aad.version.to_be_bytes());
    h
}

/// Seal one record version (see module docs for the layout).
pub fn seal_record(key: &DataKey, aad: &RecordAad, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CryptoError::Randomness)?;
    seal_record_with_nonce(key, aad, plaintext, nonce)
}

/// Deterministic sealing for test vectors only. Never expose: nonce reuse under
/// one key breaks AES-GCM.
pub(crate) fn seal_record_with_nonce(
    key: &DataKey,
    aad: &RecordAad,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let ct_len = plaintext
        .len()
        .checked_add(TAG_LEN)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(CryptoError::Malformed("plaintext too long"))?;
    let sealing_key = aes_key(key)?;

    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
    out.extend_from_slice(&header_aad(aad));
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct_len.to_be_bytes());
    out.extend_from_slice(plaintext);
    let tag = {
        let (head, body) = out.split_at_mut(HEADER_LEN);
        sealing_key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&head[..AAD_END]),
                body,
            )
            .map_err(|_| CryptoError::Malformed("plaintext too long"))?
    };
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn be_u32(b: &[u8]) -> Result<u32> {
    Ok(u32::from_be_bytes(
        b.try_into().map_err(|_| CryptoError::Malformed("length"))?,
    ))
}

fn be_u64(b: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(
        b.try_into().map_err(|_| CryptoError::Malformed("length"))?,
    ))
}

fn uuid_at(b: &[u8]) -> Result<uuid::Uuid> {
    uuid::Uuid::from_slice(b).map_err(|_| CryptoError::Malformed("uuid"))
}

/// Parse the header without any key. Checks magic, version, kind and exact length
/// (no trailing bytes).
pub fn parse_envelope_header(envelope: &[u8]) -> Result<EnvelopeHeader> {
    if envelope.len() >= 5 && envelope[0..4] == ENVELOPE_MAGIC && envelope[4] != ENVELOPE_VERSION {
        return Err(CryptoError::UnsupportedVersion(envelope[4]));
    }
    if envelope.len() < HEADER_LEN + TAG_LEN {
        return Err(CryptoError::Malformed("envelope too short"));
    }
    if envelope[0..4] != ENVELOPE_MAGIC {
        return Err(CryptoError::Malformed("bad magic"));
    }
    let format_version = envelope[4];
    let kind = RecordKind::from_u8(envelope[5]).ok_or(CryptoError::UnknownKind(envelope[5]))?;
    let key_epoch = be_u32(&envelope[6..10])?;
    let case_id = uuid_at(&envelope[10..26])?;
    let record_id = uuid_at(&envelope[26..42])?;
    let version = be_u64(&envelope[42..50])?;
    let ct_len = usize::try_from(be_u32(&envelope[OFF_CT_LEN..HEADER_LEN])?)
        .map_err(|_| CryptoError::Malformed("ciphertext length"))?;
    if ct_len < TAG_LEN {
        return Err(CryptoError::Malformed("ciphertext shorter than tag"));
    }
    let expected_total = HEADER_LEN
        .checked_add(ct_len)
        .ok_or(CryptoError::Malformed("ciphertext length"))?;
    if envelope.len() < expected_total {
        return Err(CryptoError::Malformed("envelope truncated"));
    }
    if envelope.len() > expected_total {
        return Err(CryptoError::Malformed("trailing bytes"));
    }
    Ok(EnvelopeHeader {
        format_version,
        aad: RecordAad {
            case_id,
            record_id,
            kind,
            version,
            key_epoch,
        },
        ciphertext_len: ct_len,
    })
}

/// Check the header equals `expected` field by field, then decrypt with AAD rebuilt from
/// `expected`. The caller has already checked (against a verified commit) that these are the
/// exact bytes the case's head lists; this only proves they were sealed under `key`.
pub fn open_record(
    key: &DataKey,
    expected: &RecordAad,
    envelope: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let header = parse_envelope_header(envelope)?;
    let got = &header.aad;
    if got.case_id != expected.case_id {
        return Err(CryptoError::HeaderMismatch("case_id"));
    }
    if got.record_id != expected.record_id {
        return Err(CryptoError::HeaderMismatch("record_id"));
    }
    if got.kind != expected.kind {
        return Err(CryptoError::HeaderMismatch("kind"));
    }
    if got.version != expected.version {
        return Err(CryptoError::HeaderMismatch("version"));
    }
    if got.key_epoch != expected.key_epoch {
        return Err(CryptoError::HeaderMismatch("key_epoch"));
    }
    let opening_key = aes_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&envelope[OFF_NONCE..OFF_CT_LEN]);
    let aad_bytes = header_aad(expected);
    let mut buf = Zeroizing::new(envelope[HEADER_LEN..HEADER_LEN + header.ciphertext_len].to_vec());
    let pt_len = opening_key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad_bytes[..]),
            &mut buf[..],
        )
        .map_err(|_| CryptoError::DecryptionFailed)?
        .len();
    buf.truncate(pt_len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn aad() -> RecordAad {
        RecordAad {
            case_id: Uuid::new_v4(),
            record_id: Uuid::new_v4(),
            kind: RecordKind::Note,
            version: 3,
            key_epoch: 2,
        }
    }

    fn fx() -> (DataKey, RecordAad, Vec<u8>) {
        let key = DataKey::generate().unwrap();
        let aad = aad();
        let env = seal_record(&key, &aad, b"sought person: Amina").unwrap();
        (key, aad, env)
    }

    #[test]
    fn roundtrip() {
        let (key, aad, env) = fx();
        let opened = open_record(&key, &aad, &env).unwrap();
        assert_eq!(&opened[..], b"sought person: Amina");
        assert_eq!(env.len(), ENVELOPE_OVERHEAD + 20);
    }

    #[test]
    fn empty_plaintext_roundtrip() {
        let (key, aad, _) = fx();
        let env = seal_record(&key, &aad, b"").unwrap();
        assert!(open_record(&key, &aad, &env).unwrap().is_empty());
    }

    #[test]
    fn nonces_are_fresh() {
        let (key, aad, env) = fx();
        let e2 = seal_record(&key, &aad, b"sought person: Amina").unwrap();
        assert_ne!(env[OFF_NONCE..OFF_CT_LEN], e2[OFF_NONCE..OFF_CT_LEN]);
    }

    #[test]
    fn header_parse() {
        let (_, aad, env) = fx();
        let h = parse_envelope_header(&env).unwrap();
        assert_eq!(h.format_version, ENVELOPE_VERSION);
        assert_eq!(h.aad, aad);
        assert_eq!(h.ciphertext_len, 20 + TAG_LEN);
    }

    #[test]
    fn header_mismatches() {
        let (key, a, env) = fx();
        let cases: [(RecordAad, &str); 5] = [
            (
                RecordAad {
                    case_id: Uuid::new_v4(),
                    ..a
                },
                "case_id",
            ),
            (
                RecordAad {
                    record_id: Uuid::new_v4(),
                    ..a
                },
                "record_id",
            ),
            (
                RecordAad {
                    kind: RecordKind::Message,
                    ..a
                },
                "kind",
            ),
            (
                RecordAad {
                    version: a.version + 1,
                    ..a
                },
                "version",
            ),
            (
                RecordAad {
                    key_epoch: a.key_epoch + 1,
                    ..a
                },
                "key_epoch",
            ),
        ];
        for (exp, field) in cases {
            match open_record(&key, &exp, &env) {
                Err(CryptoError::HeaderMismatch(got)) => assert_eq!(got, field),
                other => panic!("expected mismatch on {field}, got {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn wrong_key() {
        let (_, aad, env) = fx();
        let other = DataKey::generate().unwrap();
        assert!(matches!(
            open_record(&other, &aad, &env),
            Err(CryptoError::DecryptionFailed)
        ));
    }

    #[test]
    fn rewritten_header_fails_decryption() {
        // A host that rewrites the header (e.g. moves the record to another case) cannot make it
        // decrypt under the new header.
        let (key, aad, mut env) = fx();
        let new_case = Uuid::new_v4();
        env[10..26].copy_from_slice(new_case.as_bytes());
        let exp = RecordAad {
            case_id: new_case,
            ..aad
        };
        assert!(matches!(
            open_record(&key, &exp, &env),
            Err(CryptoError::DecryptionFailed)
        ));
    }

    #[test]
    fn format_1_is_refused_with_its_version() {
        let (_, _, mut env) = fx();
        env[4] = 1;
        assert!(matches!(
            parse_envelope_header(&env),
            Err(CryptoError::UnsupportedVersion(1))
        ));
    }

    #[test]
    fn malformed_inputs() {
        let (_, _, env) = fx();
        let mut e = env.clone();
        e.push(0);
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed("trailing bytes"))
        ));
        assert!(matches!(
            parse_envelope_header(&env[..env.len() - 1]),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            parse_envelope_header(&[]),
            Err(CryptoError::Malformed(_))
        ));
        let mut e = env.clone();
        e[0] = b'X';
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed("bad magic"))
        ));
        let mut e = env.clone();
        e[5] = 0;
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::UnknownKind(0))
        ));
        let mut e = env.clone();
        e[OFF_CT_LEN..HEADER_LEN].copy_from_slice(&15u32.to_be_bytes());
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed(_))
        ));
        let mut e = env.clone();
        e[OFF_CT_LEN..HEADER_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn errors_do_not_leak_plaintext() {
        let (_, aad, env) = fx();
        let other = DataKey::generate().unwrap();
        let e = open_record(&other, &aad, &env).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("Amina"));
    }
}
