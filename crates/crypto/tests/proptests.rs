//! Property tests: round trips and single-bit-flip rejection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rfl_crypto::*;
use uuid::Uuid;

fn kind() -> impl Strategy<Value = RecordKind> {
    (1u8..=5).prop_map(|v| RecordKind::from_u8(v).unwrap())
}

fn record_aad() -> impl Strategy<Value = RecordAad> {
    (
        any::<u128>(),
        any::<u128>(),
        kind(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(c, r, kind, version, key_epoch)| RecordAad {
            case_id: Uuid::from_u128(c),
            record_id: Uuid::from_u128(r),
            kind,
            version,
            key_epoch,
        })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn record_roundtrip(aad in record_aad(), pt in proptest::collection::vec(any::<u8>(), 0..2048), key in any::<[u8; 32]>()) {
        let key = DataKey::from_bytes(key);
        let env = seal_record(&key, &aad, &pt).unwrap();
        let h = parse_envelope_header(&env).unwrap();
        prop_assert_eq!(h.aad, aad);
        prop_assert_eq!(h.ciphertext_len, pt.len() + 16);
        let opened = open_record(&key, &aad, &env).unwrap();
        prop_assert_eq!(&opened[..], &pt[..]);
    }

    #[test]
    fn record_bit_flip_rejected(aad in record_aad(), pt in proptest::collection::vec(any::<u8>(), 0..256), bit in any::<prop::sample::Index>()) {
        let key = DataKey::generate().unwrap();
        let mut env = seal_record(&key, &aad, &pt).unwrap();
        let i = bit.index(env.len() * 8);
        env[i / 8] ^= 1 << (i % 8);
        prop_assert!(open_record(&key, &aad, &env).is_err());
    }

    #[test]
    fn wrapped_key_bit_flip_rejected(case in any::<u128>(), epoch in any::<u32>(), bit in any::<prop::sample::Index>()) {
        let id = AgeIdentity::generate();
        let key = DataKey::generate().unwrap();
        let case = Uuid::from_u128(case);
        let mut w = wrap_data_key(&key, case, epoch, id.recipient().as_age()).unwrap();
        let back = unwrap_data_key(&w, case, epoch, id.as_age()).unwrap();
        prop_assert_eq!(back.expose_bytes(), key.expose_bytes());
        let i = bit.index(w.len() * 8);
        w[i / 8] ^= 1 << (i % 8);
        prop_assert!(unwrap_data_key(&w, case, epoch, id.as_age()).is_err(), "flip of bit {} accepted", i);
    }

    #[test]
    fn escrow_bit_flip_rejected(soc in any::<u128>(), bit in any::<prop::sample::Index>()) {
        let recovery = AgeIdentity::generate();
        let escrow = AgeIdentity::generate();
        let soc = Uuid::from_u128(soc);
        let mut w = wrap_escrow_identity(&escrow, soc, recovery.recipient().as_age()).unwrap();
        let i = bit.index(w.len() * 8);
        w[i / 8] ^= 1 << (i % 8);
        prop_assert!(unwrap_escrow_identity(&w, soc, recovery.as_age()).is_err(), "flip of bit {} accepted", i);
    }

    #[test]
    fn attachment_roundtrip_and_bit_flip(aad in record_aad(), extra in 0usize..512, bit in any::<prop::sample::Index>(), which in any::<prop::sample::Index>()) {
        let key = DataKey::generate().unwrap();
        // One full chunk + a short last chunk, or a single short chunk.
        let len = if extra % 2 == 0 { ATTACHMENT_CHUNK_SIZE + extra } else { extra };
        let pt: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut s = AttachmentSealer::new(&key, &aad).unwrap();
        let pieces: Vec<&[u8]> = if pt.is_empty() { vec![&pt[..]] } else { pt.chunks(ATTACHMENT_CHUNK_SIZE).collect() };
        let mut chunks: Vec<Vec<u8>> = pieces.iter().enumerate().map(|(i, p)| s.seal_chunk(p, i + 1 == pieces.len()).unwrap()).collect();
        let digest = s.finish().unwrap();

        let open = |chunks: &[Vec<u8>]| -> Result<Vec<u8>> {
            let mut o = AttachmentOpener::new(&key, &aad)?;
            let mut out = vec![];
            for (i, c) in chunks.iter().enumerate() {
                out.extend_from_slice(&o.open_chunk(c, i + 1 == chunks.len())?);
            }
            o.finish(&digest)?;
            Ok(out)
        };
        prop_assert_eq!(open(&chunks).unwrap(), pt);

        let c = which.index(chunks.len());
        let i = bit.index(chunks[c].len() * 8);
        chunks[c][i / 8] ^= 1 << (i % 8);
        prop_assert!(open(&chunks).is_err());
    }

    #[test]
    fn auth_roundtrip(aud in ".{0,40}", ch in proptest::collection::vec(any::<u8>(), 0..64), bit in any::<prop::sample::Index>()) {
        let k = DeviceSigningKey::generate().unwrap();
        let mut sig = sign_auth_challenge(&k, &aud, &ch);
        prop_assert!(verify_auth_challenge(&k.public_key(), &aud, &ch, &sig).is_ok());
        let i = bit.index(512);
        sig[i / 8] ^= 1 << (i % 8);
        prop_assert!(verify_auth_challenge(&k.public_key(), &aud, &ch, &sig).is_err());
    }
}

#[test]
fn passphrase_keystore_roundtrip_public_api() {
    let pw = secrecy::SecretString::from("pass".to_owned());
    let k = DeviceSigningKey::generate().unwrap();
    let sealed = seal_with_passphrase(k.pkcs8_der(), &pw, 10).unwrap();
    let der = open_with_passphrase(&sealed, &pw).unwrap();
    let k2 = DeviceSigningKey::from_pkcs8(&der).unwrap();
    assert_eq!(k.public_key(), k2.public_key());
}

/// Exhaustive version of the bit-flip properties for one envelope and one wrapped key.
#[test]
fn exhaustive_single_bit_flips() {
    let key = DataKey::generate().unwrap();
    let aad = RecordAad {
        case_id: Uuid::new_v4(),
        record_id: Uuid::new_v4(),
        kind: RecordKind::Person,
        version: 1,
        key_epoch: 1,
    };
    let env = seal_record(&key, &aad, b"name: Yusuf").unwrap();
    for i in 0..env.len() * 8 {
        let mut e = env.clone();
        e[i / 8] ^= 1 << (i % 8);
        assert!(open_record(&key, &aad, &e).is_err(), "envelope bit {i}");
    }

    let id = AgeIdentity::generate();
    let w = wrap_data_key(&key, aad.case_id, 1, id.recipient().as_age()).unwrap();
    for i in 0..w.len() * 8 {
        let mut x = w.clone();
        x[i / 8] ^= 1 << (i % 8);
        assert!(
            unwrap_data_key(&x, aad.case_id, 1, id.as_age()).is_err(),
            "wrapped key bit {i}"
        );
    }
}
