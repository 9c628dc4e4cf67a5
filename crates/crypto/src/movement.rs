//! The Movement root certifies each national society's root (docs/crypto.md, "The Movement root
//! and transfers"). A member pins the Movement root's fingerprint at enrolment as they pin their own
//! society's; with it, their client verifies another society's root, and through that root its
//! escrow key and members, before it wraps a case key to them.
//!
//! A society certificate is fixed-length, 177 bytes:
//!
//! ```text
//! "RFL-SOCIETY-CERT\x01"  17 bytes  magic and version
//! movement_root           32 bytes  raw Ed25519 public key of the issuer
//! society_id              16 bytes
//! society_root            32 bytes  raw Ed25519 public key certified
//! not_before               8 bytes  unix seconds, big-endian i64
//! not_after                8 bytes  unix seconds, big-endian i64
//! signature               64 bytes  Ed25519 by the Movement root over bytes 0..113
//! ```
//!
//! The Movement root is the same kind of key as a society root ([`SocietyRootKey`]), held offline by
//! the Movement's admins. A society that rotates its root keeps its certificate: the successions
//! signed by its old roots lead from the certified root to the current one ([`roots_from_pin`]).

use uuid::Uuid;

use crate::cert::{RootPublicKey, SocietyRootKey, Validity};
use crate::error::{CryptoError, Result};
use crate::keys::{from_hex, to_hex};
use crate::succession::{roots_from_pin, RootSuccession};

const MAGIC: &[u8; 17] = b"RFL-SOCIETY-CERT\x01";
const SIGNED_LEN: usize = 17 + 32 + 16 + 32 + 8 + 8;
/// Length of an encoded society certificate.
pub const SOCIETY_CERT_LEN: usize = SIGNED_LEN + 64;

fn err(reason: &'static str) -> CryptoError {
    CryptoError::Certificate(reason)
}

/// "The society `society_id`'s root is `society_root`", signed by the Movement root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocietyCertificate {
    movement_root: RootPublicKey,
    society_id: Uuid,
    society_root: RootPublicKey,
    validity: Validity,
    signature: [u8; 64],
}

impl SocietyCertificate {
    /// The Movement root `movement` certifies `society_root` as the root of `society_id`.
    pub fn issue(
        movement: &SocietyRootKey,
        society_id: Uuid,
        society_root: &RootPublicKey,
        validity: Validity,
    ) -> Result<SocietyCertificate> {
        let validity = Validity::new(validity.not_before, validity.not_after)?;
        if movement.public() == *society_root {
            return Err(err("the Movement root cannot be a society's root"));
        }
        let mut c = SocietyCertificate {
            movement_root: movement.public(),
            society_id,
            society_root: *society_root,
            validity,
            signature: [0; 64],
        };
        c.signature = movement.sign_raw(&c.signed_message());
        Ok(c)
    }

    fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(SIGNED_LEN);
        m.extend_from_slice(MAGIC);
        m.extend_from_slice(self.movement_root.as_bytes());
        m.extend_from_slice(self.society_id.as_bytes());
        m.extend_from_slice(self.society_root.as_bytes());
        m.extend_from_slice(&self.validity.not_before.to_be_bytes());
        m.extend_from_slice(&self.validity.not_after.to_be_bytes());
        m
    }

    pub fn society_id(&self) -> Uuid {
        self.society_id
    }

    pub fn society_root(&self) -> RootPublicKey {
        self.society_root
    }

    pub fn movement_root(&self) -> RootPublicKey {
        self.movement_root
    }

    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// Signed by `movement`, for `society_id`, and valid at `now` (unix seconds): the certified root.
    pub fn verify(
        &self,
        movement: &RootPublicKey,
        society_id: Uuid,
        now: i64,
    ) -> Result<RootPublicKey> {
        if self.movement_root != *movement {
            return Err(err("society certificate issued by another Movement root"));
        }
        movement
            .verify_raw(&self.signed_message(), &self.signature)
            .map_err(|_| err("society certificate not signed by the Movement root"))?;
        if self.society_id != society_id {
            return Err(err("society certificate is for another society"));
        }
        if now < self.validity.not_before {
            return Err(err("society certificate not yet valid"));
        }
        if now > self.validity.not_after {
            return Err(err("society certificate expired"));
        }
        Ok(self.society_root)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.signed_message();
        b.extend_from_slice(&self.signature);
        b
    }

    pub fn from_bytes(b: &[u8]) -> Result<SocietyCertificate> {
        if b.len() != SOCIETY_CERT_LEN {
            return Err(CryptoError::Malformed("society certificate length"));
        }
        if &b[..17] != MAGIC {
            return Err(CryptoError::Malformed(
                "society certificate magic or version",
            ));
        }
        let arr32 = |at: usize| -> Result<[u8; 32]> {
            b[at..at + 32]
                .try_into()
                .map_err(|_| CryptoError::Malformed("society certificate"))
        };
        let i64_at = |at: usize| -> Result<i64> {
            b[at..at + 8]
                .try_into()
                .map(i64::from_be_bytes)
                .map_err(|_| CryptoError::Malformed("society certificate"))
        };
        let society: [u8; 16] = b[49..65]
            .try_into()
            .map_err(|_| CryptoError::Malformed("society certificate"))?;
        let signature: [u8; 64] = b[SIGNED_LEN..]
            .try_into()
            .map_err(|_| CryptoError::Malformed("society certificate"))?;
        Ok(SocietyCertificate {
            movement_root: RootPublicKey::from_bytes(arr32(17)?),
            society_id: Uuid::from_bytes(society),
            society_root: RootPublicKey::from_bytes(arr32(65)?),
            validity: Validity::new(i64_at(97)?, i64_at(105)?)?,
            signature,
        })
    }

    pub fn to_hex(&self) -> String {
        to_hex(&self.to_bytes())
    }

    pub fn from_hex(s: &str) -> Result<SocietyCertificate> {
        let b = from_hex(s.trim()).ok_or(CryptoError::Malformed("society certificate hex"))?;
        Self::from_bytes(&b)
    }
}

/// Another society's roots as the Movement root vouches for them: some certificate in `certs`,
/// signed by `movement` and valid at `now`, certifies a root of `society_id` from which the
/// `successions` lead to `current` (that root first, `current` last; as [`roots_from_pin`]).
/// Refused if none does.
pub fn certified_society_roots(
    movement: &RootPublicKey,
    society_id: Uuid,
    current: &RootPublicKey,
    successions: &[RootSuccession],
    certs: &[SocietyCertificate],
    now: i64,
) -> Result<Vec<RootPublicKey>> {
    certs
        .iter()
        .filter_map(|c| c.verify(movement, society_id, now).ok())
        .find_map(|root| roots_from_pin(&root.fingerprint(), society_id, current, successions).ok())
        .ok_or(err(
            "no certificate of the Movement root leads to the society's current root",
        ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn validity() -> Validity {
        Validity::new(1_000, 2_000).unwrap()
    }

    #[test]
    fn the_movement_root_vouches_for_a_society_root_and_its_successors() {
        let movement = SocietyRootKey::generate().unwrap();
        let society = Uuid::from_u128(7);
        let r0 = SocietyRootKey::generate().unwrap();
        let r1 = SocietyRootKey::generate().unwrap();
        let c = SocietyCertificate::issue(&movement, society, &r0.public(), validity()).unwrap();
        assert_eq!(c.to_bytes().len(), SOCIETY_CERT_LEN);
        assert_eq!(SocietyCertificate::from_bytes(&c.to_bytes()).unwrap(), c);
        let m = movement.public();
        assert_eq!(c.verify(&m, society, 1_500).unwrap(), r0.public());
        assert_eq!(
            certified_society_roots(
                &m,
                society,
                &r0.public(),
                &[],
                std::slice::from_ref(&c),
                1_500
            )
            .unwrap(),
            vec![r0.public()]
        );
        // After the society rotated its root: its succession leads on from the certified root.
        let s = RootSuccession::sign(society, &r0, &r1, 1_200).unwrap();
        assert_eq!(
            certified_society_roots(
                &m,
                society,
                &r1.public(),
                &[s],
                std::slice::from_ref(&c),
                1_500
            )
            .unwrap(),
            vec![r0.public(), r1.public()]
        );
        // A root no certificate and no succession leads to (the host's own): refused.
        assert!(certified_society_roots(
            &m,
            society,
            &r1.public(),
            &[],
            std::slice::from_ref(&c),
            1_500
        )
        .is_err());
        // Another Movement root, another society, outside its validity, a flipped bit: refused.
        let other = SocietyRootKey::generate().unwrap();
        let forged = SocietyCertificate::issue(&other, society, &r1.public(), validity()).unwrap();
        assert!(forged.verify(&m, society, 1_500).is_err());
        assert!(certified_society_roots(&m, society, &r1.public(), &[], &[forged], 1_500).is_err());
        assert!(c.verify(&m, Uuid::from_u128(8), 1_500).is_err());
        assert!(c.verify(&m, society, 999).is_err());
        assert!(c.verify(&m, society, 2_001).is_err());
        for i in [20, 60, 80, 100, 120, 170] {
            let mut b = c.to_bytes();
            b[i] ^= 1;
            let bad = SocietyCertificate::from_bytes(&b);
            assert!(bad.is_err() || bad.unwrap().verify(&m, society, 1_500).is_err());
        }
        assert!(SocietyCertificate::issue(&movement, society, &m, validity()).is_err());
    }

    const VECTOR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/society_certificate.json"
    );

    /// Writes `tests/vectors/society_certificate.json` (fresh random roots): run only when the
    /// format changes, `cargo test -p rfl-crypto generate_society_certificate_vector -- --ignored`.
    #[test]
    #[ignore = "regenerates a committed vector"]
    fn generate_society_certificate_vector() {
        let society = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        let movement = SocietyRootKey::generate().unwrap();
        let root = SocietyRootKey::generate().unwrap();
        let v = Validity::new(1_800_000_000, 1_863_072_000).unwrap();
        let c = SocietyCertificate::issue(&movement, society, &root.public(), v).unwrap();
        let v = serde_json::json!({
            "comment": "A society certificate (docs/crypto.md, \"The Movement root and transfers\"): the Movement root's PKCS#8 document, the society, its root, the validity, and the 177-byte certificate. Ed25519 is deterministic: issuing again gives the same bytes.",
            "society_id": society.to_string(),
            "movement_root_pkcs8": to_hex(movement.pkcs8_der()),
            "movement_root_fingerprint": movement.public().fingerprint(),
            "society_root": to_hex(root.public().as_bytes()),
            "not_before": 1_800_000_000_i64,
            "not_after": 1_863_072_000_i64,
            "certificate": c.to_hex(),
        });
        std::fs::write(VECTOR, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
    }

    #[test]
    fn check_society_certificate_vector() {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(VECTOR).unwrap()).unwrap();
        let text = |f: &str| v[f].as_str().unwrap().to_owned();
        let society = Uuid::parse_str(&text("society_id")).unwrap();
        let movement =
            SocietyRootKey::from_pkcs8(&from_hex(&text("movement_root_pkcs8")).unwrap()).unwrap();
        assert_eq!(
            movement.public().fingerprint(),
            text("movement_root_fingerprint")
        );
        let root = RootPublicKey::from_slice(&from_hex(&text("society_root")).unwrap()).unwrap();
        let validity = Validity::new(
            v["not_before"].as_i64().unwrap(),
            v["not_after"].as_i64().unwrap(),
        )
        .unwrap();
        let c = SocietyCertificate::from_hex(&text("certificate")).unwrap();
        assert_eq!(
            c.verify(&movement.public(), society, validity.not_before)
                .unwrap(),
            root
        );
        let again = SocietyCertificate::issue(&movement, society, &root, validity).unwrap();
        assert_eq!(
            again.to_hex(),
            text("certificate"),
            "the encoding is the committed one"
        );
    }
}
