//! Property tests for key certificates: round trips and single-bit-flip rejection,
//! through the public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rfl_crypto::*;
use uuid::Uuid;

const NOW: i64 = 1_767_225_600;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

fn member_role() -> impl Strategy<Value = CertifiedRole> {
    prop_oneof![
        Just(CertifiedRole::Caseworker),
        Just(CertifiedRole::Auditor),
        Just(CertifiedRole::SyncAgent),
    ]
}

struct Fixture {
    society: Uuid,
    root: SocietyRootKey,
    admin_cert: KeyCertificate,
    member_cert: KeyCertificate,
    escrow_cert: KeyCertificate,
}

fn fixture(society: u128, member: u128, role: CertifiedRole, validity: Validity) -> Fixture {
    let society = Uuid::from_u128(society);
    let root = SocietyRootKey::generate().unwrap();
    let admin = DeviceSigningKey::generate().unwrap();
    let admin_cert = issue_admin_cert(
        &root,
        society,
        Uuid::new_v4(),
        admin.public_key(),
        &AgeIdentity::generate().recipient(),
        validity,
    )
    .unwrap();
    let member_cert = issue_member_cert(
        &admin,
        &admin_cert,
        Uuid::from_u128(member),
        role,
        DeviceSigningKey::generate().unwrap().public_key(),
        &AgeIdentity::generate().recipient(),
        validity,
    )
    .unwrap();
    let escrow_cert = issue_escrow_cert(
        &root,
        society,
        &AgeIdentity::generate().recipient(),
        validity,
    )
    .unwrap();
    Fixture {
        society,
        root,
        admin_cert,
        member_cert,
        escrow_cert,
    }
}

fn validity() -> impl Strategy<Value = Validity> {
    (0i64..1_000_000_000, 0i64..1_000_000_000)
        .prop_map(|(a, b)| Validity::new(NOW - a, NOW + b).unwrap())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chain_roundtrip(society in any::<u128>(), member in any::<u128>(), role in member_role(), v in validity()) {
        let f = fixture(society, member, role, v);
        let chain: Vec<KeyCertificate> = [&f.admin_cert, &f.member_cert]
            .iter()
            .map(|c| KeyCertificate::from_bytes(&c.to_bytes()).unwrap())
            .collect();
        let keys = verify_chain(&f.root.public(), f.society, &chain, NOW).unwrap();
        prop_assert_eq!(keys.role(), role);
        prop_assert_eq!(keys.subject_id(), Uuid::from_u128(member));
        prop_assert_eq!(keys.signing_key(), f.member_cert.signing_key());
        prop_assert_eq!(keys.age_recipient(), f.member_cert.age_recipient());
        prop_assert!(verify_chain(&f.root.public(), f.society, &chain, v.not_after + 1).is_err());
        prop_assert!(verify_chain(&f.root.public(), f.society, &chain, v.not_before - 1).is_err());
    }

    #[test]
    fn single_bit_flip_rejected(society in any::<u128>(), role in member_role(), which in 0usize..3, bit in any::<prop::sample::Index>()) {
        let f = fixture(society, 7, role, Validity::new(NOW - 10, NOW + 10).unwrap());
        let mut chain = match which {
            0 => vec![f.admin_cert.clone()],
            1 => vec![f.escrow_cert.clone()],
            _ => vec![f.admin_cert.clone(), f.member_cert.clone()],
        };
        let idx = chain.len() - 1;
        let mut b = chain[idx].to_bytes();
        let i = bit.index(b.len() * 8);
        b[i / 8] ^= 1 << (i % 8);
        if let Ok(c) = KeyCertificate::from_bytes(&b) {
            chain[idx] = c;
            prop_assert!(verify_chain(&f.root.public(), f.society, &chain, NOW).is_err(), "flip of bit {} accepted", i);
        }
        // Flipping a bit of the issuing admin certificate breaks the member's chain too.
        if which == 2 {
            let mut a = f.admin_cert.to_bytes();
            let j = bit.index(a.len() * 8);
            a[j / 8] ^= 1 << (j % 8);
            if let Ok(c) = KeyCertificate::from_bytes(&a) {
                let chain = [c, f.member_cert.clone()];
                prop_assert!(verify_chain(&f.root.public(), f.society, &chain, NOW).is_err(), "admin flip of bit {} accepted", j);
            }
        }
    }

    #[test]
    fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = KeyCertificate::from_bytes(&b);
        let mut prefixed = b"RFLC\x01\x02".to_vec();
        prefixed.extend_from_slice(&b);
        let _ = KeyCertificate::from_bytes(&prefixed);
    }
}
