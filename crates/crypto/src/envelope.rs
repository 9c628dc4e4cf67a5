//! Sealed, signed record envelopes.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! off  len  field
//!   0    4  magic "RFLE"
//!   4    1  format_version (= 1)
//!   5    1  kind
//!   6    4  key_epoch u32
//!  10   16  case_id
//!  26   16  record_id
//!  42    8  record_version u64
//!  50   32  signer (Ed25519 public key)
//!  82   12  nonce (random)
//!  94    4  ct_len u32 (ciphertext incl. 16-byte GCM tag)
//!  98   ct_len  AES-256-GCM ciphertext || tag, AAD = bytes 0..82
//!  98+ct_len  64  Ed25519 signature over "rfl-record-sig-v1" || bytes 0..98+ct_len
//! ```

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::{DataKey, DevicePublicKey, DeviceSigningKey};
use crate::{RecordAad, RecordKind, FORMAT_VERSION};

/// Envelope magic bytes.
pub const ENVELOPE_MAGIC: [u8; 4] = *b"RFLE";
/// Domain separation prefix of the record signature.
const SIG_DOMAIN: &[u8] = b"rfl-record-sig-v1";

const OFF_SIGNER: usize = 50;
const AAD_END: usize = 82;
const OFF_NONCE: usize = 82;
const OFF_CT_LEN: usize = 94;
const HEADER_LEN: usize = 98;
const TAG_LEN: usize = 16;
const SIG_LEN: usize = 64;

/// Bytes an envelope adds to its plaintext (header + GCM tag + signature).
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + TAG_LEN + SIG_LEN;

/// Parsed envelope header (nothing here is secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// Format version byte (always [`FORMAT_VERSION`] after a successful parse).
    pub format_version: u8,
    /// Ids, kind, version and key epoch the record claims.
    pub aad: RecordAad,
    /// Device key that claims to have signed it.
    pub signer: DevicePublicKey,
    /// Length of ciphertext including the 16-byte GCM tag (plaintext length + 16).
    pub ciphertext_len: usize,
}

/// A record that was verified and decrypted; the type says so.
pub struct OpenedRecord {
    /// The (trusted) device key that signed the record.
    pub signer: DevicePublicKey,
    /// The plaintext, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for OpenedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedRecord")
            .field("signer", &self.signer)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

fn aes_key(key: &DataKey) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&aead::AES_256_GCM, key.expose_bytes())
        .map_err(|_| CryptoError::KeyFormat("aes-256-gcm key"))?;
    Ok(LessSafeKey::new(unbound))
}

/// Bytes 0..82 of the envelope: the header fields authenticated as AEAD associated data.
fn header_aad(aad: &RecordAad, signer: &DevicePublicKey) -> [u8; AAD_END] {
    let mut h = [0u8; AAD_END];
    h[0..4].copy_from_slice(&ENVELOPE_MAGIC);
    h[4] = FORMAT_VERSION;
    h[5] = aad.kind.as_u8();
    h[6..10].copy_from_slice(&aad.key_epoch.to_be_bytes());
    h[10..26].copy_from_slice(aad.case_id.as_bytes());
    h[26..42].copy_from_slice(aad.record_id.as_bytes());
    h[42..50].copy_from_slice(&aad.version.to_be_bytes());
    h[OFF_SIGNER..AAD_END].copy_from_slice(signer.as_bytes());
    h
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIG_DOMAIN.len() + body.len());
    m.extend_from_slice(SIG_DOMAIN);
    m.extend_from_slice(body);
    m
}

/// Seal one record version (see module docs for the layout).
pub fn seal_record(
    key: &DataKey,
    aad: &RecordAad,
    plaintext: &[u8],
    signer: &DeviceSigningKey,
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CryptoError::Randomness)?;
    seal_record_with_nonce(key, aad, plaintext, signer, nonce)
}

/// Deterministic sealing for test vectors only. Never expose: nonce reuse under
/// one key breaks AES-GCM.
pub(crate) fn seal_record_with_nonce(
    key: &DataKey,
    aad: &RecordAad,
    plaintext: &[u8],
    signer: &DeviceSigningKey,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let ct_len = plaintext
        .len()
        .checked_add(TAG_LEN)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(CryptoError::Malformed("plaintext too long"))?;
    let sealing_key = aes_key(key)?;
    let signer_pub = signer.public_key();

    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
    out.extend_from_slice(&header_aad(aad, &signer_pub));
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
    let sig = signer.sign(&signed_message(&out));
    out.extend_from_slice(&sig);
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
/// (no trailing bytes). Does NOT verify the signature.
pub fn parse_envelope_header(envelope: &[u8]) -> Result<EnvelopeHeader> {
    if envelope.len() < HEADER_LEN + TAG_LEN + SIG_LEN {
        return Err(CryptoError::Malformed("envelope too short"));
    }
    if envelope[0..4] != ENVELOPE_MAGIC {
        return Err(CryptoError::Malformed("bad magic"));
    }
    let format_version = envelope[4];
    if format_version != FORMAT_VERSION {
        return Err(CryptoError::UnsupportedVersion(format_version));
    }
    let kind = RecordKind::from_u8(envelope[5]).ok_or(CryptoError::UnknownKind(envelope[5]))?;
    let key_epoch = be_u32(&envelope[6..10])?;
    let case_id = uuid_at(&envelope[10..26])?;
    let record_id = uuid_at(&envelope[26..42])?;
    let version = be_u64(&envelope[42..50])?;
    let signer = DevicePublicKey::from_slice(&envelope[OFF_SIGNER..AAD_END])?;
    let ct_len = usize::try_from(be_u32(&envelope[OFF_CT_LEN..HEADER_LEN])?)
        .map_err(|_| CryptoError::Malformed("ciphertext length"))?;
    if ct_len < TAG_LEN {
        return Err(CryptoError::Malformed("ciphertext shorter than tag"));
    }
    let expected_total = HEADER_LEN
        .checked_add(ct_len)
        .and_then(|n| n.checked_add(SIG_LEN))
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
        signer,
        ciphertext_len: ct_len,
    })
}

/// Verify the signature of a header-parsed envelope.
fn check_signature(envelope: &[u8], header: &EnvelopeHeader) -> Result<()> {
    let sig_start = envelope.len() - SIG_LEN; // parse guaranteed len >= HEADER_LEN+TAG_LEN+SIG_LEN
    header.signer.verify(
        &signed_message(&envelope[..sig_start]),
        &envelope[sig_start..],
    )
}

/// Parse and verify the signature (no data key needed; for sync agents/servers).
/// This proves the envelope was produced by `header.signer`; whether that key is
/// trusted for this case is the caller's decision.
pub fn verify_envelope(envelope: &[u8]) -> Result<EnvelopeHeader> {
    let header = parse_envelope_header(envelope)?;
    check_signature(envelope, &header)?;
    Ok(header)
}

/// Check the header equals `expected` field by field, check the signer is trusted,
/// verify the signature, then decrypt with AAD rebuilt from `expected`.
pub fn open_record(
    key: &DataKey,
    expected: &RecordAad,
    envelope: &[u8],
    trusted: &dyn Fn(&DevicePublicKey) -> bool,
) -> Result<OpenedRecord> {
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
    if !trusted(&header.signer) {
        return Err(CryptoError::UntrustedSigner);
    }
    check_signature(envelope, &header)?;

    let opening_key = aes_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&envelope[OFF_NONCE..OFF_CT_LEN]);
    let aad_bytes = header_aad(expected, &header.signer);
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
    Ok(OpenedRecord {
        signer: header.signer,
        plaintext: buf,
    })
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

    struct Fx {
        key: DataKey,
        signer: DeviceSigningKey,
        aad: RecordAad,
        env: Vec<u8>,
    }

    fn fx() -> Fx {
        let key = DataKey::generate().unwrap();
        let signer = DeviceSigningKey::generate().unwrap();
        let aad = aad();
        let env = seal_record(&key, &aad, b"sought person: Amina", &signer).unwrap();
        Fx {
            key,
            signer,
            aad,
            env,
        }
    }

    fn trust(pk: DevicePublicKey) -> impl Fn(&DevicePublicKey) -> bool {
        move |k| *k == pk
    }

    #[test]
    fn roundtrip() {
        let f = fx();
        let pk = f.signer.public_key();
        let opened = open_record(&f.key, &f.aad, &f.env, &trust(pk)).unwrap();
        assert_eq!(&opened.plaintext[..], b"sought person: Amina");
        assert_eq!(opened.signer, pk);
        assert_eq!(f.env.len(), ENVELOPE_OVERHEAD + 20);
        assert!(!format!("{opened:?}").contains("Amina"));
    }

    #[test]
    fn empty_plaintext_roundtrip() {
        let f = fx();
        let env = seal_record(&f.key, &f.aad, b"", &f.signer).unwrap();
        let o = open_record(&f.key, &f.aad, &env, &|_| true).unwrap();
        assert!(o.plaintext.is_empty());
    }

    #[test]
    fn nonces_are_fresh() {
        let f = fx();
        let e2 = seal_record(&f.key, &f.aad, b"sought person: Amina", &f.signer).unwrap();
        assert_ne!(f.env, e2);
        assert_ne!(f.env[OFF_NONCE..OFF_CT_LEN], e2[OFF_NONCE..OFF_CT_LEN]);
    }

    #[test]
    fn header_parse_and_verify() {
        let f = fx();
        let h = parse_envelope_header(&f.env).unwrap();
        assert_eq!(h.format_version, FORMAT_VERSION);
        assert_eq!(h.aad, f.aad);
        assert_eq!(h.signer, f.signer.public_key());
        assert_eq!(h.ciphertext_len, 20 + TAG_LEN);
        assert_eq!(verify_envelope(&f.env).unwrap(), h);
    }

    #[test]
    fn header_mismatches() {
        let f = fx();
        let t = trust(f.signer.public_key());
        let cases: [(RecordAad, &str); 5] = [
            (
                RecordAad {
                    case_id: Uuid::new_v4(),
                    ..f.aad
                },
                "case_id",
            ),
            (
                RecordAad {
                    record_id: Uuid::new_v4(),
                    ..f.aad
                },
                "record_id",
            ),
            (
                RecordAad {
                    kind: RecordKind::Message,
                    ..f.aad
                },
                "kind",
            ),
            (
                RecordAad {
                    version: f.aad.version + 1,
                    ..f.aad
                },
                "version",
            ),
            (
                RecordAad {
                    key_epoch: f.aad.key_epoch + 1,
                    ..f.aad
                },
                "key_epoch",
            ),
        ];
        for (exp, field) in cases {
            match open_record(&f.key, &exp, &f.env, &t) {
                Err(CryptoError::HeaderMismatch(got)) => assert_eq!(got, field),
                other => panic!("expected mismatch on {field}, got {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn untrusted_signer() {
        let f = fx();
        let r = open_record(&f.key, &f.aad, &f.env, &|_| false);
        assert!(matches!(r, Err(CryptoError::UntrustedSigner)));
    }

    #[test]
    fn wrong_key() {
        let f = fx();
        let other = DataKey::generate().unwrap();
        let r = open_record(&other, &f.aad, &f.env, &|_| true);
        assert!(matches!(r, Err(CryptoError::DecryptionFailed)));
    }

    #[test]
    fn resigned_header_change_fails_decryption() {
        // An attacker with a trusted signing key who rewrites the header (e.g. moves the
        // record to another case) and re-signs still cannot make it decrypt.
        let f = fx();
        let mut env = f.env.clone();
        let new_case = Uuid::new_v4();
        env[10..26].copy_from_slice(new_case.as_bytes());
        let n = env.len() - SIG_LEN;
        env.truncate(n);
        let sig = f.signer.sign(&signed_message(&env));
        env.extend_from_slice(&sig);
        verify_envelope(&env).unwrap();
        let exp = RecordAad {
            case_id: new_case,
            ..f.aad
        };
        let r = open_record(&f.key, &exp, &env, &|_| true);
        assert!(matches!(r, Err(CryptoError::DecryptionFailed)));
    }

    #[test]
    fn signer_swap_detected() {
        // Replacing the signer and signature with another device's makes AAD differ.
        let f = fx();
        let evil = DeviceSigningKey::generate().unwrap();
        let mut env = f.env.clone();
        env[OFF_SIGNER..AAD_END].copy_from_slice(evil.public_key().as_bytes());
        let n = env.len() - SIG_LEN;
        env.truncate(n);
        let sig = evil.sign(&signed_message(&env));
        env.extend_from_slice(&sig);
        let r = open_record(&f.key, &f.aad, &env, &|_| true);
        assert!(matches!(r, Err(CryptoError::DecryptionFailed)));
    }

    #[test]
    fn bad_signature() {
        let f = fx();
        let mut env = f.env.clone();
        let n = env.len();
        env[n - 1] ^= 1;
        assert!(matches!(
            verify_envelope(&env),
            Err(CryptoError::BadSignature)
        ));
        assert!(matches!(
            open_record(&f.key, &f.aad, &env, &|_| true),
            Err(CryptoError::BadSignature)
        ));
    }

    #[test]
    fn malformed_inputs() {
        let f = fx();
        // trailing bytes
        let mut e = f.env.clone();
        e.push(0);
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed("trailing bytes"))
        ));
        // truncated
        let e = &f.env[..f.env.len() - 1];
        assert!(matches!(
            parse_envelope_header(e),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            parse_envelope_header(&[]),
            Err(CryptoError::Malformed(_))
        ));
        // magic
        let mut e = f.env.clone();
        e[0] = b'X';
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed("bad magic"))
        ));
        // version
        let mut e = f.env.clone();
        e[4] = 2;
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::UnsupportedVersion(2))
        ));
        // kind
        let mut e = f.env.clone();
        e[5] = 0;
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::UnknownKind(0))
        ));
        e[5] = 6;
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::UnknownKind(6))
        ));
        // ct_len below tag length
        let mut e = f.env.clone();
        e[OFF_CT_LEN..HEADER_LEN].copy_from_slice(&15u32.to_be_bytes());
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed(_))
        ));
        // huge ct_len
        let mut e = f.env.clone();
        e[OFF_CT_LEN..HEADER_LEN].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_envelope_header(&e),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn replay_of_old_version_detected() {
        let f = fx();
        let t = trust(f.signer.public_key());
        let v4 = RecordAad {
            version: 4,
            ..f.aad
        };
        // The server returns the (validly signed) v3 envelope when v4 was requested.
        assert!(matches!(
            open_record(&f.key, &v4, &f.env, &t),
            Err(CryptoError::HeaderMismatch("version"))
        ));
    }

    #[test]
    fn errors_do_not_leak_plaintext() {
        let f = fx();
        let other = DataKey::generate().unwrap();
        let e = open_record(&other, &f.aad, &f.env, &|_| true).unwrap_err();
        let msg = format!("{e} {e:?}");
        assert!(!msg.contains("Amina"));
    }
}
