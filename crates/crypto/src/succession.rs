//! Root successions: a society replaces its signing root, and the old root signs the new one
//! (docs/crypto.md, "Rotating the society root"). A client that pinned any root of the society
//! follows the successions from it to the current root, so members keep the fingerprint they were
//! given at enrolment.
//!
//! Wire format (fixed length, 236 bytes):
//!
//! ```text
//! "RFL-ROOT-SUCCESSION\x01"  20 bytes  magic and version
//! society_id                 16 bytes
//! old_root                   32 bytes  raw Ed25519 public key
//! new_root                   32 bytes  raw Ed25519 public key
//! issued_at                   8 bytes  unix seconds, big-endian i64
//! by_old                     64 bytes  Ed25519 signature by the old root
//! by_new                     64 bytes  Ed25519 signature by the new root
//! ```
//!
//! Both signatures are over the first 108 bytes (magic to issued_at). The old root's says "this is my
//! successor"; the new root's proves the successor holds its private key.

use uuid::Uuid;

use crate::cert::{RootPublicKey, SocietyRootKey};
use crate::error::{CryptoError, Result};
use crate::keys::{from_hex, to_hex};

const MAGIC: &[u8; 20] = b"RFL-ROOT-SUCCESSION\x01";
const SIGNED_LEN: usize = 20 + 16 + 32 + 32 + 8;
/// Length of an encoded succession.
pub const SUCCESSION_LEN: usize = SIGNED_LEN + 64 + 64;

fn err(reason: &'static str) -> CryptoError {
    CryptoError::Certificate(reason)
}

/// One society root handing over to the next, signed by both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootSuccession {
    society_id: Uuid,
    old_root: RootPublicKey,
    new_root: RootPublicKey,
    issued_at: i64,
    by_old: [u8; 64],
    by_new: [u8; 64],
}

impl RootSuccession {
    /// `old` hands the society `society_id` over to `new` at `issued_at` (unix seconds).
    pub fn sign(
        society_id: Uuid,
        old: &SocietyRootKey,
        new: &SocietyRootKey,
        issued_at: i64,
    ) -> Result<RootSuccession> {
        if old.public() == new.public() {
            return Err(err("a root cannot succeed itself"));
        }
        let mut s = RootSuccession {
            society_id,
            old_root: old.public(),
            new_root: new.public(),
            issued_at,
            by_old: [0; 64],
            by_new: [0; 64],
        };
        let msg = s.signed_message();
        s.by_old = old.sign_raw(&msg);
        s.by_new = new.sign_raw(&msg);
        Ok(s)
    }

    fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(SIGNED_LEN);
        m.extend_from_slice(MAGIC);
        m.extend_from_slice(self.society_id.as_bytes());
        m.extend_from_slice(self.old_root.as_bytes());
        m.extend_from_slice(self.new_root.as_bytes());
        m.extend_from_slice(&self.issued_at.to_be_bytes());
        m
    }

    pub fn society_id(&self) -> Uuid {
        self.society_id
    }

    pub fn old_root(&self) -> RootPublicKey {
        self.old_root
    }

    pub fn new_root(&self) -> RootPublicKey {
        self.new_root
    }

    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// Both signatures verify, the roots differ, and it is for `society_id`.
    pub fn verify(&self, society_id: Uuid) -> Result<()> {
        let msg = self.signed_message();
        self.old_root
            .verify_raw(&msg, &self.by_old)
            .map_err(|_| err("root succession not signed by the old root"))?;
        self.new_root
            .verify_raw(&msg, &self.by_new)
            .map_err(|_| err("root succession not signed by the new root"))?;
        if self.old_root == self.new_root {
            return Err(err("a root cannot succeed itself"));
        }
        if self.society_id != society_id {
            return Err(err("root succession is for another society"));
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.signed_message();
        b.extend_from_slice(&self.by_old);
        b.extend_from_slice(&self.by_new);
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<RootSuccession> {
        if b.len() != SUCCESSION_LEN {
            return Err(CryptoError::Malformed("root succession length"));
        }
        if &b[..20] != MAGIC {
            return Err(CryptoError::Malformed("root succession magic or version"));
        }
        let arr32 = |r: std::ops::Range<usize>| -> Result<[u8; 32]> {
            b[r].try_into()
                .map_err(|_| CryptoError::Malformed("root succession"))
        };
        let arr64 = |r: std::ops::Range<usize>| -> Result<[u8; 64]> {
            b[r].try_into()
                .map_err(|_| CryptoError::Malformed("root succession"))
        };
        let mut society = [0u8; 16];
        society.copy_from_slice(&b[20..36]);
        let mut at = [0u8; 8];
        at.copy_from_slice(&b[100..108]);
        Ok(RootSuccession {
            society_id: Uuid::from_bytes(society),
            old_root: RootPublicKey::from_bytes(arr32(36..68)?),
            new_root: RootPublicKey::from_bytes(arr32(68..100)?),
            issued_at: i64::from_be_bytes(at),
            by_old: arr64(108..172)?,
            by_new: arr64(172..236)?,
        })
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.to_bytes())
    }

    pub fn from_hex(s: &str) -> Result<RootSuccession> {
        let b = from_hex(s.trim()).ok_or(CryptoError::Malformed("root succession hex"))?;
        Self::from_bytes(&b)
    }
}

/// The society's roots from the one whose fingerprint is `pinned` to the current one, following
/// `successions` (oldest first, as the server keeps them): the pinned root first, the current one
/// last. Refused unless the pinned root is `current` or one of the successions' old roots, and every
/// succession from there verifies and hands over to the next, ending at `current`.
pub fn roots_from_pin(
    pinned: &str,
    society_id: Uuid,
    current: &RootPublicKey,
    successions: &[RootSuccession],
) -> Result<Vec<RootPublicKey>> {
    if current.matches_fingerprint(pinned) {
        return Ok(vec![*current]);
    }
    let start = successions
        .iter()
        .position(|s| s.old_root().matches_fingerprint(pinned))
        .ok_or(err(
            "society root key does not match the pinned fingerprint, and no succession leads from it",
        ))?;
    let mut roots = vec![successions[start].old_root()];
    for s in &successions[start..] {
        s.verify(society_id)?;
        if roots.last() != Some(&s.old_root()) {
            return Err(err("root successions do not follow one another"));
        }
        roots.push(s.new_root());
    }
    if roots.last() != Some(current) {
        return Err(err("root successions do not end at the current root"));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pinned_root_leads_to_the_current_one_only_through_signed_successions() {
        let society = Uuid::from_u128(7);
        let r0 = SocietyRootKey::generate().unwrap();
        let r1 = SocietyRootKey::generate().unwrap();
        let r2 = SocietyRootKey::generate().unwrap();
        let s1 = RootSuccession::sign(society, &r0, &r1, 100).unwrap();
        let s2 = RootSuccession::sign(society, &r1, &r2, 200).unwrap();
        let chain = vec![s1.clone(), s2.clone()];
        let fp0 = r0.public().fingerprint();
        let roots = roots_from_pin(&fp0, society, &r2.public(), &chain).unwrap();
        assert_eq!(roots, vec![r0.public(), r1.public(), r2.public()]);
        let fp1 = r1.public().fingerprint();
        assert_eq!(
            roots_from_pin(&fp1, society, &r2.public(), &chain).unwrap(),
            vec![r1.public(), r2.public()]
        );
        assert_eq!(
            roots_from_pin(&r2.public().fingerprint(), society, &r2.public(), &[]).unwrap(),
            vec![r2.public()]
        );
        // Round trip.
        assert_eq!(RootSuccession::from_bytes(&s1.to_bytes()).unwrap(), s1);
        assert_eq!(s1.to_bytes().len(), SUCCESSION_LEN);

        // A host's own root, "succeeding" the pinned one without its signature: refused.
        let evil = SocietyRootKey::generate().unwrap();
        let mut forged = RootSuccession::sign(society, &evil, &evil_two(), 300).unwrap();
        forged.old_root = r2.public();
        let e = roots_from_pin(
            &fp0,
            society,
            &forged.new_root(),
            &[s1.clone(), s2.clone(), forged],
        );
        assert!(e.is_err());
        // A gap, the wrong end, another society, a tampered time: refused.
        assert!(roots_from_pin(&fp0, society, &r2.public(), std::slice::from_ref(&s2)).is_err());
        assert!(roots_from_pin(&fp0, society, &r1.public(), &chain).is_err());
        assert!(roots_from_pin(&fp0, Uuid::from_u128(8), &r2.public(), &chain).is_err());
        let mut bytes = s1.to_bytes();
        bytes[107] ^= 1;
        let moved = RootSuccession::from_bytes(&bytes).unwrap();
        assert!(moved.verify(society).is_err());
        // Not signed by the new root (no proof it holds the key).
        let mut half = s1.clone();
        half.by_new = [0; 64];
        assert!(half.verify(society).is_err());
        assert!(RootSuccession::sign(society, &r0, &r0, 1).is_err());
    }

    fn evil_two() -> SocietyRootKey {
        SocietyRootKey::generate().unwrap()
    }

    const VECTOR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/root_succession.json"
    );

    /// Writes `tests/vectors/root_succession.json` (fresh random roots): run only when the format
    /// changes, `cargo test -p rfl-crypto generate_root_succession_vector -- --ignored`.
    #[test]
    #[ignore = "regenerates a committed vector"]
    fn generate_root_succession_vector() {
        let society = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        let old = SocietyRootKey::generate().unwrap();
        let new = SocietyRootKey::generate().unwrap();
        let s = RootSuccession::sign(society, &old, &new, 1_800_000_000).unwrap();
        let v = serde_json::json!({
            "comment": "A society root succession (docs/crypto.md, \"Rotating the society root\"): the old and new roots' PKCS#8 documents, the society, the time, and the 236-byte succession both sign. Ed25519 is deterministic: signing again gives the same bytes.",
            "society_id": society.to_string(),
            "old_root_pkcs8": to_hex(old.pkcs8_der()),
            "new_root_pkcs8": to_hex(new.pkcs8_der()),
            "old_root_fingerprint": old.public().fingerprint(),
            "new_root_fingerprint": new.public().fingerprint(),
            "issued_at": 1_800_000_000_i64,
            "succession": s.to_hex(),
        });
        std::fs::write(VECTOR, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    }

    #[test]
    fn check_root_succession_vector() {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(VECTOR).unwrap()).unwrap();
        let text = |f: &str| v[f].as_str().unwrap().to_owned();
        let society = Uuid::parse_str(&text("society_id")).unwrap();
        let old = SocietyRootKey::from_pkcs8(&from_hex(&text("old_root_pkcs8")).unwrap()).unwrap();
        let new = SocietyRootKey::from_pkcs8(&from_hex(&text("new_root_pkcs8")).unwrap()).unwrap();
        let s = RootSuccession::from_hex(&text("succession")).unwrap();
        s.verify(society).unwrap();
        assert_eq!(s.old_root(), old.public());
        assert_eq!(s.new_root(), new.public());
        assert_eq!(old.public().fingerprint(), text("old_root_fingerprint"));
        assert_eq!(new.public().fingerprint(), text("new_root_fingerprint"));
        let again =
            RootSuccession::sign(society, &old, &new, v["issued_at"].as_i64().unwrap()).unwrap();
        assert_eq!(
            again.to_hex(),
            text("succession"),
            "the encoding is the committed one"
        );
        let roots =
            roots_from_pin(&text("old_root_fingerprint"), society, &new.public(), &[s]).unwrap();
        assert_eq!(roots.len(), 2);
    }
}
