//! Case data keys wrapped to the society escrow key in batches: one age (X25519) encryption per batch
//! of cases, not one per case. The same construction wraps many cases to one member (a re-key
//! wraps each new data key to the holders who stay): the 16-byte owner field, `society_id` below,
//! then names that member, and only their age identity opens the header.
//!
//! A batch is a random 32-byte secret, age-encrypted once to the escrow recipient (the batch
//! *header*). Each case's data key is then wrapped under a key derived from the secret and bound to
//! the society, the batch, the case and the key epoch, in the manner of RFC 9180 §5.3's exported
//! secrets: one key agreement gives any number of independent keys, opened in any order. Layout of
//! one case's escrow wrapping (header of n bytes, ~ 200 for an X25519 recipient):
//!
//! ```text
//! off    len field
//!   0      4 magic "RFLE"
//!   4      1 format_version (= 2)
//!   5     16 society_id
//!  21     16 batch_id (random)
//!  37      2 n = header length, u16 BE
//!  39      n header: age file to the escrow recipient of
//!            "rfl-escrow-batch-v2" (19) || society_id || batch_id || batch secret (32)
//!  39+n   12 nonce (random)
//!  51+n   48 AES-256-GCM(k, data key) || tag, AAD = bytes 0..39+n || case_id || key_epoch u32 BE
//! k = HKDF-SHA-256(salt = "rfl-escrow-batch-v2", ikm = batch secret,
//!                  info = society_id || batch_id || case_id || key_epoch u32 BE)
//! ```
//!
//! The header is repeated in every case's wrapping so that each stays self-contained: a case can be
//! recovered, moved or re-keyed alone. Recovery opens a header once per batch (one X25519 operation)
//! and every case of the batch with symmetric operations only.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};
use crate::keys::DataKey;
use crate::wrap::{age_decrypt, age_encrypt};
use crate::ENVELOPE_VERSION;

/// Magic of a data key wrapped to the escrow key through a batch.
pub const ESCROW_WRAP_MAGIC: [u8; 4] = *b"RFLE";
const PREFIX_LEN: usize = 39;
const TAIL_LEN: usize = NONCE_LEN + 32 + 16;
const HEADER_PREFIX: &[u8] = b"rfl-escrow-batch-v2";
const HEADER_PAYLOAD_LEN: usize = 19 + 16 + 16 + 32;
const SALT: &[u8] = b"rfl-escrow-batch-v2";

/// One batch of escrow wrappings: its secret (zeroized on drop, never printed) and its header, the
/// secret age-encrypted to the escrow recipient. Made by [`EscrowBatch::new`] (one age encryption)
/// or recovered from any wrapping of the batch by [`EscrowBatch::open`] (one age decryption).
pub struct EscrowBatch {
    society_id: uuid::Uuid,
    id: uuid::Uuid,
    secret: Zeroizing<[u8; 32]>,
    header: Vec<u8>,
}

impl EscrowBatch {
    /// A new batch for `society_id`, its secret encrypted to the escrow `recipient` (the caller has
    /// checked that the society root certifies it; see `EscrowBatch::for_certified`).
    pub fn new(society_id: uuid::Uuid, recipient: &dyn age::Recipient) -> Result<EscrowBatch> {
        let rng = SystemRandom::new();
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill(&mut secret[..])
            .map_err(|_| CryptoError::Randomness)?;
        let mut id = [0u8; 16];
        rng.fill(&mut id).map_err(|_| CryptoError::Randomness)?;
        let id = uuid::Builder::from_random_bytes(id).into_uuid();
        let mut payload = Zeroizing::new([0u8; HEADER_PAYLOAD_LEN]);
        payload[..19].copy_from_slice(HEADER_PREFIX);
        payload[19..35].copy_from_slice(society_id.as_bytes());
        payload[35..51].copy_from_slice(id.as_bytes());
        payload[51..].copy_from_slice(&secret[..]);
        let header = age_encrypt(&payload[..], recipient)?;
        if u16::try_from(header.len()).is_err() {
            return Err(CryptoError::Wrap);
        }
        Ok(EscrowBatch {
            society_id,
            id,
            secret,
            header,
        })
    }

    /// Opens the batch of an escrow wrapping with the escrow identity: one age decryption, after
    /// which [`EscrowBatch::unwrap`] opens every case of the batch in software. The header must name
    /// `society_id` and the wrapping's batch ([`CryptoError::WrongKeyBinding`] otherwise).
    pub fn open(
        wrapped: &[u8],
        society_id: uuid::Uuid,
        escrow: &dyn age::Identity,
    ) -> Result<EscrowBatch> {
        let parts = parse(wrapped)?;
        if parts.society_id != society_id {
            return Err(CryptoError::WrongKeyBinding);
        }
        let payload = age_decrypt(
            parts.header,
            escrow,
            HEADER_PAYLOAD_LEN,
            CryptoError::Unwrap,
        )?;
        if payload.len() != HEADER_PAYLOAD_LEN || &payload[..19] != HEADER_PREFIX {
            return Err(CryptoError::Malformed("escrow batch header payload"));
        }
        if &payload[19..35] != society_id.as_bytes()
            || &payload[35..51] != parts.batch_id.as_bytes()
        {
            return Err(CryptoError::WrongKeyBinding);
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&payload[51..]);
        Ok(EscrowBatch {
            society_id,
            id: parts.batch_id,
            secret,
            header: parts.header.to_vec(),
        })
    }

    /// The batch's id (random; every wrapping of the batch names it).
    pub fn id(&self) -> uuid::Uuid {
        self.id
    }

    /// Wraps one case's data key in this batch (symmetric operations only).
    pub fn wrap(&self, key: &DataKey, case_id: uuid::Uuid, key_epoch: u32) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Randomness)?;
        self.wrap_with_nonce(key, case_id, key_epoch, nonce)
    }

    /// Deterministic wrapping for test vectors only (a nonce must never repeat under one key).
    pub(crate) fn wrap_with_nonce(
        &self,
        key: &DataKey,
        case_id: uuid::Uuid,
        key_epoch: u32,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>> {
        let n = self.header.len();
        let len = u16::try_from(n).map_err(|_| CryptoError::Wrap)?;
        let mut out = Vec::with_capacity(PREFIX_LEN + n + TAIL_LEN);
        out.extend_from_slice(&ESCROW_WRAP_MAGIC);
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(self.society_id.as_bytes());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.header);
        let aad = aad(&out, case_id, key_epoch);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key.expose_bytes());
        let tag = self
            .aead_key(case_id, key_epoch)?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut out[PREFIX_LEN + n + NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Wrap)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Unwraps one case's data key from a wrapping of this batch. A wrapping of another batch or
    /// society, made for another case or epoch, or altered in any bit, is refused.
    pub fn unwrap(&self, wrapped: &[u8], case_id: uuid::Uuid, key_epoch: u32) -> Result<DataKey> {
        let parts = parse(wrapped)?;
        if parts.society_id != self.society_id || parts.batch_id != self.id {
            return Err(CryptoError::WrongKeyBinding);
        }
        let split = wrapped.len() - TAIL_LEN;
        let aad = aad(&wrapped[..split], case_id, key_epoch);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[split..split + NONCE_LEN]);
        let mut buf = Zeroizing::new(wrapped[split + NONCE_LEN..].to_vec());
        let plain = self
            .aead_key(case_id, key_epoch)?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut buf[..],
            )
            .map_err(|_| CryptoError::Unwrap)?;
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(plain);
        Ok(DataKey::from_bytes(*k))
    }

    fn aead_key(&self, case_id: uuid::Uuid, key_epoch: u32) -> Result<LessSafeKey> {
        let mut info = [0u8; 52];
        info[..16].copy_from_slice(self.society_id.as_bytes());
        info[16..32].copy_from_slice(self.id.as_bytes());
        info[32..48].copy_from_slice(case_id.as_bytes());
        info[48..].copy_from_slice(&key_epoch.to_be_bytes());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&self.secret[..]);
        let parts = [&info[..]];
        let okm = prk
            .expand(&parts, &aead::AES_256_GCM)
            .map_err(|_| CryptoError::KeyFormat("hkdf"))?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }

    /// For test vectors only: a batch with a given id and secret and a given header.
    #[cfg(test)]
    pub(crate) fn from_parts(
        society_id: uuid::Uuid,
        id: uuid::Uuid,
        secret: [u8; 32],
        header: Vec<u8>,
    ) -> EscrowBatch {
        EscrowBatch {
            society_id,
            id,
            secret: Zeroizing::new(secret),
            header,
        }
    }
}

impl std::fmt::Debug for EscrowBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EscrowBatch")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What an escrow wrapping names, read without any key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EscrowWrapInfo {
    pub society_id: uuid::Uuid,
    /// Wrappings with the same batch open with one age decryption.
    pub batch_id: uuid::Uuid,
}

/// Whether a wrapped data key is an escrow batch wrapping.
pub fn is_escrow_wrapped(wrapped: &[u8]) -> bool {
    wrapped.starts_with(&ESCROW_WRAP_MAGIC)
}

/// Reads the society and batch an escrow wrapping names (so that recovery opens each batch once).
pub fn escrow_wrap_info(wrapped: &[u8]) -> Result<EscrowWrapInfo> {
    let p = parse(wrapped)?;
    Ok(EscrowWrapInfo {
        society_id: p.society_id,
        batch_id: p.batch_id,
    })
}

/// The SHA-256 of a wrapping's owner, batch id and header (bytes 0 .. 39+n), read without any key:
/// what a client that keeps opened batches files one under, so that a header the host made up
/// under a real batch's id is a batch of its own.
pub fn escrow_batch_tag(wrapped: &[u8]) -> Result<[u8; 32]> {
    let p = parse(wrapped)?;
    Ok(crate::commit::sha256(
        &wrapped[..PREFIX_LEN + p.header.len()],
    ))
}

/// Unwraps one case's data key with the escrow identity (one age decryption: to recover many cases,
/// open each batch once with [`EscrowBatch::open`]).
pub fn unwrap_escrow_wrapped(
    wrapped: &[u8],
    society_id: uuid::Uuid,
    case_id: uuid::Uuid,
    key_epoch: u32,
    escrow: &dyn age::Identity,
) -> Result<DataKey> {
    EscrowBatch::open(wrapped, society_id, escrow)?.unwrap(wrapped, case_id, key_epoch)
}

struct Parts<'a> {
    society_id: uuid::Uuid,
    batch_id: uuid::Uuid,
    header: &'a [u8],
}

fn parse(wrapped: &[u8]) -> Result<Parts<'_>> {
    if wrapped.len() < PREFIX_LEN + TAIL_LEN || !is_escrow_wrapped(wrapped) {
        return Err(CryptoError::Malformed("escrow-wrapped data key"));
    }
    if wrapped[4] != ENVELOPE_VERSION {
        return Err(CryptoError::UnsupportedVersion(wrapped[4]));
    }
    let n = usize::from(u16::from_be_bytes([wrapped[37], wrapped[38]]));
    if wrapped.len() != PREFIX_LEN + n + TAIL_LEN {
        return Err(CryptoError::Malformed("escrow-wrapped data key length"));
    }
    let id = |r: std::ops::Range<usize>| {
        uuid::Uuid::from_slice(&wrapped[r]).map_err(|_| CryptoError::Malformed("escrow wrap id"))
    };
    Ok(Parts {
        society_id: id(5..21)?,
        batch_id: id(21..37)?,
        header: &wrapped[PREFIX_LEN..PREFIX_LEN + n],
    })
}

fn aad(prefix_and_header: &[u8], case_id: uuid::Uuid, key_epoch: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(prefix_and_header.len() + 20);
    a.extend_from_slice(prefix_and_header);
    a.extend_from_slice(case_id.as_bytes());
    a.extend_from_slice(&key_epoch.to_be_bytes());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AgeIdentity;
    use uuid::Uuid;

    fn setup() -> (AgeIdentity, Uuid, EscrowBatch) {
        let escrow = AgeIdentity::generate();
        let society = Uuid::new_v4();
        let batch = EscrowBatch::new(society, escrow.recipient().as_age()).unwrap();
        (escrow, society, batch)
    }

    #[test]
    fn every_case_of_a_batch_opens_after_one_header_decryption() {
        let (escrow, society, batch) = setup();
        let cases: Vec<(Uuid, DataKey)> = (0..5)
            .map(|_| (Uuid::new_v4(), DataKey::generate().unwrap()))
            .collect();
        let wrapped: Vec<Vec<u8>> = cases
            .iter()
            .map(|(c, k)| batch.wrap(k, *c, 1).unwrap())
            .collect();
        let opened = EscrowBatch::open(&wrapped[3], society, escrow.as_age()).unwrap();
        assert_eq!(opened.id(), batch.id());
        for ((c, k), w) in cases.iter().zip(&wrapped) {
            assert!(is_escrow_wrapped(w));
            assert_eq!(
                escrow_wrap_info(w).unwrap(),
                EscrowWrapInfo {
                    society_id: society,
                    batch_id: batch.id()
                }
            );
            assert_eq!(
                opened.unwrap(w, *c, 1).unwrap().expose_bytes(),
                k.expose_bytes()
            );
            assert_eq!(
                unwrap_escrow_wrapped(w, society, *c, 1, escrow.as_age())
                    .unwrap()
                    .expose_bytes(),
                k.expose_bytes()
            );
        }
    }

    #[test]
    fn a_wrapping_is_bound_to_its_case_epoch_society_and_batch() {
        let (escrow, society, batch) = setup();
        let key = DataKey::generate().unwrap();
        let case = Uuid::new_v4();
        let w = batch.wrap(&key, case, 2).unwrap();
        assert!(matches!(
            batch.unwrap(&w, Uuid::new_v4(), 2),
            Err(CryptoError::Unwrap)
        ));
        assert!(matches!(
            batch.unwrap(&w, case, 3),
            Err(CryptoError::Unwrap)
        ));
        assert!(matches!(
            EscrowBatch::open(&w, Uuid::new_v4(), escrow.as_age()),
            Err(CryptoError::WrongKeyBinding)
        ));
        let other = EscrowBatch::new(society, escrow.recipient().as_age()).unwrap();
        assert!(matches!(
            other.unwrap(&w, case, 2),
            Err(CryptoError::WrongKeyBinding)
        ));
        // Another batch's header spliced in (with the wrapping's batch id): its payload names the
        // other batch.
        let w2 = other.wrap(&key, case, 2).unwrap();
        let n2 = other.header.len();
        let mut spliced = w[..37].to_vec();
        spliced.extend_from_slice(&w2[37..39 + n2]);
        spliced.extend_from_slice(&w[w.len() - TAIL_LEN..]);
        assert!(matches!(
            EscrowBatch::open(&spliced, society, escrow.as_age()),
            Err(CryptoError::WrongKeyBinding)
        ));
        // Not the escrow identity.
        assert!(matches!(
            EscrowBatch::open(&w, society, AgeIdentity::generate().as_age()),
            Err(CryptoError::Unwrap)
        ));
    }

    #[test]
    fn any_bit_flip_is_refused() {
        let (escrow, society, batch) = setup();
        let key = DataKey::generate().unwrap();
        let case = Uuid::new_v4();
        let w = batch.wrap(&key, case, 1).unwrap();
        // One bit of every byte (each flip costs an age decryption).
        for i in 0..w.len() {
            let mut t = w.clone();
            t[i] ^= 1 << (i % 8);
            assert!(
                unwrap_escrow_wrapped(&t, society, case, 1, escrow.as_age()).is_err(),
                "flip in byte {i} accepted"
            );
        }
    }

    #[test]
    fn truncation_and_extension_are_malformed() {
        let (_escrow, _society, batch) = setup();
        let w = batch
            .wrap(&DataKey::generate().unwrap(), Uuid::new_v4(), 1)
            .unwrap();
        for t in [&w[..w.len() - 1], &w[..10], &[][..]] {
            assert!(matches!(
                escrow_wrap_info(t),
                Err(CryptoError::Malformed(_))
            ));
        }
        let mut longer = w.clone();
        longer.push(0);
        assert!(matches!(
            escrow_wrap_info(&longer),
            Err(CryptoError::Malformed(_))
        ));
    }
}
