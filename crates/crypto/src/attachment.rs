//! Streaming attachment encryption (STREAM construction, as in age's payload).
//!
//! * per-attachment key = HKDF-SHA256(ikm = data key, salt = "rfl-attachment-v1",
//!   info = `RecordAad::encode()` of the attachment record), 32 bytes, AES-256-GCM;
//! * chunk `i` (from 0): nonce = `i` as 11-byte big-endian || last flag (0x01 on the
//!   final chunk, else 0x00); AAD = `RecordAad::encode()`; sealed chunk = ct || tag;
//! * every chunk but the last carries exactly [`ATTACHMENT_CHUNK_SIZE`] plaintext bytes;
//!   the last carries 0..=ATTACHMENT_CHUNK_SIZE, and is empty only if it is chunk 0;
//! * digest = SHA-256 over the concatenation of all sealed chunks (= the stored blob).

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::digest;
use ring::hkdf;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::DataKey;
use crate::{RecordAad, ATTACHMENT_CHUNK_SIZE, RECORD_AAD_LEN};

const HKDF_SALT: &[u8] = b"rfl-attachment-v1";
const TAG_LEN: usize = 16;

struct StreamState {
    key: LessSafeKey,
    aad: [u8; RECORD_AAD_LEN],
    counter: u64,
    done: bool,
    hash: digest::Context,
}

impl StreamState {
    fn new(key: &DataKey, aad: &RecordAad) -> Result<Self> {
        let aad = aad.encode();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(key.expose_bytes());
        let info = [&aad[..]];
        let okm = prk
            .expand(&info, &aead::AES_256_GCM)
            .map_err(|_| CryptoError::KeyFormat("attachment key derivation"))?;
        let key = LessSafeKey::new(UnboundKey::from(okm));
        Ok(StreamState {
            key,
            aad,
            counter: 0,
            done: false,
            hash: digest::Context::new(&digest::SHA256),
        })
    }

    fn nonce(&self, last: bool) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[3..11].copy_from_slice(&self.counter.to_be_bytes());
        n[11] = u8::from(last);
        Nonce::assume_unique_for_key(n)
    }

    /// Check the plaintext length rule for a chunk and the stream state.
    fn check(&self, pt_len: usize, last: bool) -> Result<()> {
        if self.done {
            return Err(CryptoError::AttachmentState("chunk after the last chunk"));
        }
        if pt_len > ATTACHMENT_CHUNK_SIZE {
            return Err(CryptoError::Malformed("attachment chunk too large"));
        }
        if !last && pt_len != ATTACHMENT_CHUNK_SIZE {
            return Err(CryptoError::Malformed(
                "non-final attachment chunk not full",
            ));
        }
        if last && pt_len == 0 && self.counter != 0 {
            return Err(CryptoError::Malformed("empty final attachment chunk"));
        }
        Ok(())
    }

    fn advance(&mut self, sealed: &[u8], last: bool) -> Result<()> {
        self.hash.update(sealed);
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(CryptoError::AttachmentState("chunk counter overflow"))?;
        self.done = last;
        Ok(())
    }
}

/// Seals an attachment chunk by chunk.
pub struct AttachmentSealer {
    st: StreamState,
}

impl AttachmentSealer {
    /// Start sealing the attachment described by `aad` under the case data key.
    pub fn new(key: &DataKey, aad: &RecordAad) -> Result<Self> {
        Ok(AttachmentSealer {
            st: StreamState::new(key, aad)?,
        })
    }

    /// Seal the next chunk. Non-final chunks must be exactly [`ATTACHMENT_CHUNK_SIZE`]
    /// bytes. Errors if called after the last chunk.
    pub fn seal_chunk(&mut self, plaintext: &[u8], last: bool) -> Result<Vec<u8>> {
        self.st.check(plaintext.len(), last)?;
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let nonce = self.st.nonce(last);
        self.st
            .key
            .seal_in_place_append_tag(nonce, Aad::from(&self.st.aad[..]), &mut out)
            .map_err(|_| CryptoError::Malformed("attachment chunk too large"))?;
        self.st.advance(&out, last)?;
        Ok(out)
    }

    /// Digest of the sealed chunk stream (SHA-256 of the concatenated sealed chunks).
    /// Errors if the last chunk has not been sealed.
    pub fn finish(self) -> Result<[u8; 32]> {
        if !self.st.done {
            return Err(CryptoError::AttachmentState("last chunk not sealed"));
        }
        Ok(digest_bytes(self.st.hash))
    }
}

fn digest_bytes(ctx: digest::Context) -> [u8; 32] {
    let d = ctx.finish();
    let mut out = [0u8; 32];
    // SHA-256 output is always 32 bytes.
    out.copy_from_slice(d.as_ref());
    out
}

/// Opens an attachment chunk by chunk (chunks must be given in order).
pub struct AttachmentOpener {
    st: StreamState,
}

impl AttachmentOpener {
    /// Start opening the attachment described by `aad` under the case data key.
    pub fn new(key: &DataKey, aad: &RecordAad) -> Result<Self> {
        Ok(AttachmentOpener {
            st: StreamState::new(key, aad)?,
        })
    }

    /// Open the next chunk. `last` must be true exactly for the final chunk of the stream.
    pub fn open_chunk(&mut self, sealed: &[u8], last: bool) -> Result<Zeroizing<Vec<u8>>> {
        let pt_len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CryptoError::Malformed("attachment chunk shorter than tag"))?;
        self.st.check(pt_len, last)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let nonce = self.st.nonce(last);
        let n = self
            .st
            .key
            .open_in_place(nonce, Aad::from(&self.st.aad[..]), &mut buf[..])
            .map_err(|_| CryptoError::DecryptionFailed)?
            .len();
        buf.truncate(n);
        self.st.advance(sealed, last)?;
        Ok(buf)
    }

    /// Check the stream ended with a last chunk (else [`CryptoError::Truncated`]) and
    /// its digest equals `expected_digest` (else [`CryptoError::DigestMismatch`]).
    pub fn finish(self, expected_digest: &[u8; 32]) -> Result<()> {
        if !self.st.done {
            return Err(CryptoError::Truncated);
        }
        let got = digest_bytes(self.st.hash);
        if bool::from(got.ct_eq(expected_digest)) {
            Ok(())
        } else {
            Err(CryptoError::DigestMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordKind;
    use uuid::Uuid;

    fn aad() -> RecordAad {
        RecordAad {
            case_id: Uuid::new_v4(),
            record_id: Uuid::new_v4(),
            kind: RecordKind::Attachment,
            version: 1,
            key_epoch: 1,
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    /// Seal `pt` split into standard chunks.
    fn seal_all(key: &DataKey, aad: &RecordAad, pt: &[u8]) -> (Vec<Vec<u8>>, [u8; 32]) {
        let mut s = AttachmentSealer::new(key, aad).unwrap();
        let mut out = vec![];
        if pt.is_empty() {
            out.push(s.seal_chunk(&[], true).unwrap());
        } else {
            let chunks: Vec<&[u8]> = pt.chunks(ATTACHMENT_CHUNK_SIZE).collect();
            for (i, c) in chunks.iter().enumerate() {
                out.push(s.seal_chunk(c, i + 1 == chunks.len()).unwrap());
            }
        }
        (out, s.finish().unwrap())
    }

    fn open_all(
        key: &DataKey,
        aad: &RecordAad,
        chunks: &[Vec<u8>],
        digest: &[u8; 32],
    ) -> Result<Vec<u8>> {
        let mut o = AttachmentOpener::new(key, aad)?;
        let mut pt = vec![];
        for (i, c) in chunks.iter().enumerate() {
            pt.extend_from_slice(&o.open_chunk(c, i + 1 == chunks.len())?);
        }
        o.finish(digest)?;
        Ok(pt)
    }

    #[test]
    fn roundtrip_sizes() {
        let key = DataKey::generate().unwrap();
        let a = aad();
        for n in [
            0,
            1,
            ATTACHMENT_CHUNK_SIZE - 1,
            ATTACHMENT_CHUNK_SIZE,
            ATTACHMENT_CHUNK_SIZE + 1,
            2 * ATTACHMENT_CHUNK_SIZE + 7,
        ] {
            let pt = data(n);
            let (chunks, d) = seal_all(&key, &a, &pt);
            assert_eq!(chunks.len(), n.div_ceil(ATTACHMENT_CHUNK_SIZE).max(1));
            let all: Vec<u8> = chunks.concat();
            assert_eq!(digest::digest(&digest::SHA256, &all).as_ref(), &d[..]);
            assert_eq!(open_all(&key, &a, &chunks, &d).unwrap(), pt);
        }
    }

    #[test]
    fn deterministic_given_key_and_aad() {
        let key = DataKey::from_bytes([9; 32]);
        let a = aad();
        let pt = data(1000);
        assert_eq!(seal_all(&key, &a, &pt), seal_all(&key, &a, &pt));
        let b = RecordAad { version: 2, ..a };
        assert_ne!(seal_all(&key, &a, &pt).0, seal_all(&key, &b, &pt).0);
    }

    #[test]
    fn wrong_key_or_aad() {
        let key = DataKey::generate().unwrap();
        let a = aad();
        let (chunks, d) = seal_all(&key, &a, &data(100));
        let other = DataKey::generate().unwrap();
        assert!(matches!(
            open_all(&other, &a, &chunks, &d),
            Err(CryptoError::DecryptionFailed)
        ));
        let b = RecordAad {
            case_id: Uuid::new_v4(),
            ..a
        };
        assert!(matches!(
            open_all(&key, &b, &chunks, &d),
            Err(CryptoError::DecryptionFailed)
        ));
    }

    #[test]
    fn truncation_reorder_drop_last() {
        let key = DataKey::generate().unwrap();
        let a = aad();
        let (chunks, d) = seal_all(&key, &a, &data(2 * ATTACHMENT_CHUNK_SIZE + 5));
        assert_eq!(chunks.len(), 3);

        // Truncation: stop before the last chunk.
        let mut o = AttachmentOpener::new(&key, &a).unwrap();
        o.open_chunk(&chunks[0], false).unwrap();
        o.open_chunk(&chunks[1], false).unwrap();
        assert!(matches!(o.finish(&d), Err(CryptoError::Truncated)));

        // Dropping the last chunk and claiming the previous one is last.
        let mut o = AttachmentOpener::new(&key, &a).unwrap();
        o.open_chunk(&chunks[0], false).unwrap();
        assert!(matches!(
            o.open_chunk(&chunks[1], true),
            Err(CryptoError::DecryptionFailed)
        ));

        // Reordering.
        let mut o = AttachmentOpener::new(&key, &a).unwrap();
        assert!(matches!(
            o.open_chunk(&chunks[1], false),
            Err(CryptoError::DecryptionFailed)
        ));
        let swapped = vec![chunks[1].clone(), chunks[0].clone(), chunks[2].clone()];
        assert!(open_all(&key, &a, &swapped, &d).is_err());

        // Dropping a middle chunk.
        let dropped = vec![chunks[0].clone(), chunks[2].clone()];
        assert!(matches!(
            open_all(&key, &a, &dropped, &d),
            Err(CryptoError::DecryptionFailed)
        ));

        // Chunk after last.
        let mut o = AttachmentOpener::new(&key, &a).unwrap();
        for (i, c) in chunks.iter().enumerate() {
            o.open_chunk(c, i == 2).unwrap();
        }
        assert!(matches!(
            o.open_chunk(&chunks[2], true),
            Err(CryptoError::AttachmentState(_))
        ));
    }

    #[test]
    fn digest_mismatch() {
        let key = DataKey::generate().unwrap();
        let a = aad();
        let (chunks, mut d) = seal_all(&key, &a, &data(10));
        d[0] ^= 1;
        assert!(matches!(
            open_all(&key, &a, &chunks, &d),
            Err(CryptoError::DigestMismatch)
        ));
    }

    #[test]
    fn sealer_misuse() {
        let key = DataKey::generate().unwrap();
        let a = aad();
        let mut s = AttachmentSealer::new(&key, &a).unwrap();
        assert!(matches!(
            s.seal_chunk(&[0; 10], false),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            s.seal_chunk(&vec![0; ATTACHMENT_CHUNK_SIZE + 1], true),
            Err(CryptoError::Malformed(_))
        ));
        s.seal_chunk(&vec![0; ATTACHMENT_CHUNK_SIZE], false)
            .unwrap();
        assert!(matches!(
            s.seal_chunk(&[], true),
            Err(CryptoError::Malformed(_))
        ));
        s.seal_chunk(&[1], true).unwrap();
        assert!(matches!(
            s.seal_chunk(&[1], true),
            Err(CryptoError::AttachmentState(_))
        ));
        s.finish().unwrap();

        let s = AttachmentSealer::new(&key, &a).unwrap();
        assert!(matches!(s.finish(), Err(CryptoError::AttachmentState(_))));
        let mut s = AttachmentSealer::new(&key, &a).unwrap();
        s.seal_chunk(&vec![0; ATTACHMENT_CHUNK_SIZE], false)
            .unwrap();
        assert!(matches!(s.finish(), Err(CryptoError::AttachmentState(_))));
    }

    #[test]
    fn opener_rejects_short_chunk() {
        let key = DataKey::generate().unwrap();
        let mut o = AttachmentOpener::new(&key, &aad()).unwrap();
        assert!(matches!(
            o.open_chunk(&[0; 15], true),
            Err(CryptoError::Malformed(_))
        ));
        let o = AttachmentOpener::new(&key, &aad()).unwrap();
        assert!(matches!(o.finish(&[0; 32]), Err(CryptoError::Truncated)));
    }
}
