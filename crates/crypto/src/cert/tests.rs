use super::*;
use std::fmt;

use crate::keys::{AgeIdentity, DataKey, DeviceSigningKey};
use crate::unwrap_data_key;

const NOW: i64 = 1_750_000_000;
const DAY: i64 = 86_400;

fn window() -> Validity {
    Validity::new(NOW - DAY, NOW + 365 * DAY).unwrap()
}

struct Society {
    id: Uuid,
    root: SocietyRootKey,
    admin_id: Uuid,
    admin: DeviceSigningKey,
    admin_cert: KeyCertificate,
    escrow: AgeIdentity,
    escrow_cert: KeyCertificate,
}

fn society() -> Society {
    let id = Uuid::new_v4();
    let root = SocietyRootKey::generate().unwrap();
    let admin_id = Uuid::new_v4();
    let admin = DeviceSigningKey::generate().unwrap();
    let admin_age = AgeIdentity::generate();
    let admin_cert = issue_admin_cert(
        &root,
        id,
        admin_id,
        admin.public_key(),
        &admin_age.recipient(),
        window(),
    )
    .unwrap();
    let escrow = AgeIdentity::generate();
    let escrow_cert = issue_escrow_cert(&root, id, &escrow.recipient(), window()).unwrap();
    Society {
        id,
        root,
        admin_id,
        admin,
        admin_cert,
        escrow,
        escrow_cert,
    }
}

struct Member {
    id: Uuid,
    signing: DeviceSigningKey,
    age: AgeIdentity,
    cert: KeyCertificate,
}

fn member(s: &Society, role: CertifiedRole) -> Member {
    let id = Uuid::new_v4();
    let signing = DeviceSigningKey::generate().unwrap();
    let age = AgeIdentity::generate();
    let cert = issue_member_cert(
        &s.admin,
        &s.admin_cert,
        id,
        role,
        signing.public_key(),
        &age.recipient(),
        window(),
    )
    .unwrap();
    Member {
        id,
        signing,
        age,
        cert,
    }
}

fn reason(r: Result<impl fmt::Debug>) -> &'static str {
    match r {
        Err(CryptoError::Certificate(m)) => m,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

/// Re-sign a certificate after tampering, as a forger holding `key` would.
fn resign(mut c: KeyCertificate, key: &DeviceSigningKey) -> KeyCertificate {
    c.issuer = *key.public_key().as_bytes();
    c.signature = key.sign(&c.signed_message());
    c
}

#[test]
fn admin_chain_verifies() {
    let s = society();
    let v = verify_chain(
        &s.root.public(),
        s.id,
        std::slice::from_ref(&s.admin_cert),
        NOW,
    )
    .unwrap();
    assert_eq!(v.role(), CertifiedRole::SocietyAdmin);
    assert_eq!(v.subject_id(), s.admin_id);
    assert_eq!(v.society_id(), s.id);
    assert_eq!(v.signing_key(), Some(&s.admin.public_key()));
    assert_eq!(v.age_recipient(), s.admin_cert.age_recipient());
    assert_eq!(v.valid_until(), NOW + 365 * DAY);
    v.expect(s.admin_id, CertifiedRole::SocietyAdmin).unwrap();
}

#[test]
fn caseworker_chain_verifies_and_key_wraps() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let chain = [s.admin_cert.clone(), cw.cert.clone()];
    let v = verify_chain(&s.root.public(), s.id, &chain, NOW).unwrap();
    assert_eq!(v.role(), CertifiedRole::Caseworker);
    assert_eq!(v.subject_id(), cw.id);
    assert_eq!(v.signing_key(), Some(&cw.signing.public_key()));
    assert_eq!(v.age_recipient(), &cw.age.recipient());
    v.expect(cw.id, CertifiedRole::Caseworker).unwrap();
    assert_eq!(
        reason(v.expect(s.admin_id, CertifiedRole::Caseworker)),
        "certificate is for another subject"
    );
    assert_eq!(
        reason(v.expect(cw.id, CertifiedRole::SocietyAdmin)),
        "certificate grants a different role"
    );

    let key = DataKey::generate().unwrap();
    let case = Uuid::new_v4();
    let w = wrap_data_key_certified(&key, case, 1, &v).unwrap();
    let back = unwrap_data_key(&w, case, 1, cw.age.as_age()).unwrap();
    assert_eq!(back.expose_bytes(), key.expose_bytes());
}

#[test]
#[cfg(feature = "plugin")]
fn plugin_recipients_are_certified_in_canonical_form() {
    use age_core::primitives::bech32_encode;
    let s = society();
    let hrp = bech32::Hrp::parse("age1yubikey").unwrap();
    let recipient = AgeRecipient::parse(&bech32_encode(hrp, &[2u8; 33])).unwrap();
    let id = Uuid::new_v4();
    let signing = DeviceSigningKey::generate().unwrap();
    let cert = issue_member_cert(
        &s.admin,
        &s.admin_cert,
        id,
        CertifiedRole::Caseworker,
        signing.public_key(),
        &recipient,
        window(),
    )
    .unwrap();
    let bytes = cert.to_bytes();
    let text = recipient.to_string();
    assert_eq!(bytes.len(), 153 + 32 + text.len());
    let back = KeyCertificate::from_bytes(&bytes).unwrap();
    assert_eq!(back.age_recipient(), &recipient);
    let v = verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), back], NOW).unwrap();
    assert_eq!(v.age_recipient(), &recipient);
    assert!(v.age_recipient().is_plugin());
    // age reads plugin recipients in lower case only: upper case is refused outright.
    let start = bytes.len() - 96 - text.len();
    let mut up = bytes.clone();
    up[start..start + text.len()].copy_from_slice(text.to_ascii_uppercase().as_bytes());
    assert!(matches!(
        KeyCertificate::from_bytes(&up),
        Err(CryptoError::KeyFormat(_))
    ));
}

#[test]
fn escrow_chain_verifies() {
    let s = society();
    let v = verify_chain(
        &s.root.public(),
        s.id,
        std::slice::from_ref(&s.escrow_cert),
        NOW,
    )
    .unwrap();
    assert_eq!(v.role(), CertifiedRole::Escrow);
    assert_eq!(v.subject_id(), s.id);
    assert_eq!(v.signing_key(), None);
    assert_eq!(v.age_recipient(), &s.escrow.recipient());
    v.expect(s.id, CertifiedRole::Escrow).unwrap();
    let key = DataKey::generate().unwrap();
    let w = wrap_data_key_certified(&key, Uuid::nil(), 0, &v).unwrap();
    assert!(unwrap_data_key(&w, Uuid::nil(), 0, s.escrow.as_age()).is_ok());
}

#[test]
fn auditor_and_sync_agent_verify_but_receive_no_case_keys() {
    let s = society();
    for role in [CertifiedRole::Auditor, CertifiedRole::SyncAgent] {
        let m = member(&s, role);
        let v = verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), m.cert], NOW).unwrap();
        assert_eq!(v.role(), role);
        let key = DataKey::generate().unwrap();
        assert_eq!(
            reason(wrap_data_key_certified(&key, Uuid::nil(), 0, &v)),
            "this role may not receive case keys"
        );
    }
}

/// Issue 3: a server that substitutes a caseworker's public key is caught before
/// any data key is wrapped to it.
#[test]
fn server_substituting_caseworker_age_key_is_caught() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let server = AgeIdentity::generate();
    let mut forged = cw.cert.clone();
    forged.age_recipient = server.recipient();
    // What the server hands out travels as bytes; re-parse as the client would.
    let forged = KeyCertificate::from_bytes(&forged.to_bytes()).unwrap();
    let r = verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), forged], NOW);
    assert_eq!(reason(r), "certificate signature does not verify");
    // No VerifiedKeys, so wrap_data_key_certified cannot even be called.
}

#[test]
fn substituted_signing_key_is_caught() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let mut forged = cw.cert.clone();
    forged.signing_key = Some(DeviceSigningKey::generate().unwrap().public_key());
    let r = verify_chain(&s.root.public(), s.id, &[s.admin_cert.clone(), forged], NOW);
    assert_eq!(reason(r), "certificate signature does not verify");
}

#[test]
fn server_substituting_escrow_key_is_caught() {
    let s = society();
    let server = AgeIdentity::generate();
    // (a) edit the recipient in the genuine certificate.
    let mut forged = s.escrow_cert.clone();
    forged.age_recipient = server.recipient();
    let r = verify_chain(&s.root.public(), s.id, &[forged], NOW);
    assert_eq!(reason(r), "certificate signature does not verify");
    // (b) sign an escrow certificate with the server's own root.
    let server_root = SocietyRootKey::generate().unwrap();
    let own = issue_escrow_cert(&server_root, s.id, &server.recipient(), window()).unwrap();
    let r = verify_chain(&s.root.public(), s.id, &[own], NOW);
    assert_eq!(reason(r), "certificate not issued by the society root");
    // (c) the escrow cert of another society (same root would be needed: it is not).
    let other = society();
    let r = verify_chain(&s.root.public(), s.id, &[other.escrow_cert], NOW);
    assert_eq!(reason(r), "certificate not issued by the society root");
}

#[test]
fn admin_cert_from_another_root_is_refused() {
    let s = society();
    let other_root = SocietyRootKey::generate().unwrap();
    let age = AgeIdentity::generate();
    let fake_admin = issue_admin_cert(
        &other_root,
        s.id,
        s.admin_id,
        s.admin.public_key(),
        &age.recipient(),
        window(),
    )
    .unwrap();
    let cw = member(&s, CertifiedRole::Caseworker);
    let r = verify_chain(
        &s.root.public(),
        s.id,
        std::slice::from_ref(&fake_admin),
        NOW,
    );
    assert_eq!(reason(r), "certificate not issued by the society root");
    let r = verify_chain(&s.root.public(), s.id, &[fake_admin, cw.cert], NOW);
    assert_eq!(reason(r), "certificate not issued by the society root");
    // Claiming the right root as issuer but signing with another key.
    let mut lying = issue_admin_cert(
        &other_root,
        s.id,
        s.admin_id,
        s.admin.public_key(),
        &age.recipient(),
        window(),
    )
    .unwrap();
    lying.issuer = *s.root.public().as_bytes();
    let r = verify_chain(&s.root.public(), s.id, &[lying], NOW);
    assert_eq!(reason(r), "certificate signature does not verify");
}

#[test]
fn member_cert_alone_or_from_another_admin_is_refused() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let r = verify_chain(&s.root.public(), s.id, std::slice::from_ref(&cw.cert), NOW);
    assert_eq!(reason(r), "certificate not issued by the society root");
    // A second, genuine admin of the same society did not issue this cert.
    let admin2 = DeviceSigningKey::generate().unwrap();
    let age2 = AgeIdentity::generate();
    let admin2_cert = issue_admin_cert(
        &s.root,
        s.id,
        Uuid::new_v4(),
        admin2.public_key(),
        &age2.recipient(),
        window(),
    )
    .unwrap();
    let r = verify_chain(&s.root.public(), s.id, &[admin2_cert, cw.cert], NOW);
    assert_eq!(reason(r), "certificate not issued by the given admin");
    assert_eq!(
        reason(verify_chain(&s.root.public(), s.id, &[], NOW)),
        "empty certificate chain"
    );
}

#[test]
fn cert_issued_by_a_caseworker_is_refused() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    // The caseworker's client refuses to issue at all.
    let victim = AgeIdentity::generate();
    let r = issue_member_cert(
        &cw.signing,
        &cw.cert,
        Uuid::new_v4(),
        CertifiedRole::Caseworker,
        DeviceSigningKey::generate().unwrap().public_key(),
        &victim.recipient(),
        window(),
    );
    assert_eq!(reason(r), "issuer is not a society admin");
    // A hand-made certificate signed by the caseworker's key is refused by verifiers.
    let mut m = member(&s, CertifiedRole::Caseworker).cert;
    m.age_recipient = victim.recipient();
    let m = resign(m, &cw.signing);
    let chain = [s.admin_cert.clone(), cw.cert.clone(), m.clone()];
    assert_eq!(
        reason(verify_chain(&s.root.public(), s.id, &chain, NOW)),
        "issuer is not a society admin"
    );
    // The escrow certificate cannot issue either (it has no signing key).
    let chain = [s.escrow_cert.clone(), m];
    assert_eq!(
        reason(verify_chain(&s.root.public(), s.id, &chain, NOW)),
        "issuer is not a society admin"
    );
}

#[test]
fn admins_cannot_issue_admin_or_escrow_certs() {
    let s = society();
    let age = AgeIdentity::generate();
    let k = DeviceSigningKey::generate().unwrap().public_key();
    for role in [CertifiedRole::SocietyAdmin, CertifiedRole::Escrow] {
        let r = issue_member_cert(
            &s.admin,
            &s.admin_cert,
            Uuid::new_v4(),
            role,
            k,
            &age.recipient(),
            window(),
        );
        assert_eq!(
            reason(r),
            "admins may issue only caseworker, auditor and sync agent certificates"
        );
    }
    // Hand-made admin cert signed by an admin: refused on verification.
    let mut c = s.admin_cert.clone();
    c.subject_id = Uuid::new_v4();
    let c = resign(c, &s.admin);
    let chain = [s.admin_cert.clone(), c];
    assert_eq!(
        reason(verify_chain(&s.root.public(), s.id, &chain, NOW)),
        "admins may issue only caseworker, auditor and sync agent certificates"
    );
    // The root does not sign caseworkers directly.
    let mut c = member(&s, CertifiedRole::Caseworker).cert;
    c.issuer = *s.root.public().as_bytes();
    c.signature = s.root.sign_raw(&c.signed_message());
    assert_eq!(
        reason(verify_chain(&s.root.public(), s.id, &[c], NOW)),
        "the society root issues only admin and escrow certificates"
    );
}

#[test]
fn wrong_admin_key_for_issuing() {
    let s = society();
    let other = DeviceSigningKey::generate().unwrap();
    let age = AgeIdentity::generate();
    let r = issue_member_cert(
        &other,
        &s.admin_cert,
        Uuid::new_v4(),
        CertifiedRole::Caseworker,
        other.public_key(),
        &age.recipient(),
        window(),
    );
    assert_eq!(
        reason(r),
        "signing key does not match the admin certificate"
    );
}

#[test]
fn wrong_society_is_refused() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let other = Uuid::new_v4();
    assert_eq!(
        reason(verify_chain(
            &s.root.public(),
            other,
            std::slice::from_ref(&s.admin_cert),
            NOW
        )),
        "certificate is for another society"
    );
    assert_eq!(
        reason(verify_chain(
            &s.root.public(),
            other,
            std::slice::from_ref(&s.escrow_cert),
            NOW
        )),
        "certificate is for another society"
    );
    // Admin cert for society A, member cert (signed by that admin) claiming society B.
    let mut c = cw.cert.clone();
    c.society_id = other;
    let c = resign(c, &s.admin);
    assert_eq!(
        reason(verify_chain(
            &s.root.public(),
            s.id,
            &[s.admin_cert.clone(), c],
            NOW
        )),
        "certificate is for another society"
    );
}

#[test]
fn validity_windows() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let chain = [s.admin_cert.clone(), cw.cert.clone()];
    let w = window();
    let pk = s.root.public();
    assert!(verify_chain(&pk, s.id, &chain, w.not_before).is_ok());
    assert!(verify_chain(&pk, s.id, &chain, w.not_after).is_ok());
    assert_eq!(
        reason(verify_chain(&pk, s.id, &chain, w.not_before - 1)),
        "certificate not yet valid"
    );
    assert_eq!(
        reason(verify_chain(&pk, s.id, &chain, w.not_after + 1)),
        "certificate expired"
    );
    // An expired admin certificate invalidates the member below it.
    let age = AgeIdentity::generate();
    let short = issue_admin_cert(
        &s.root,
        s.id,
        s.admin_id,
        s.admin.public_key(),
        &age.recipient(),
        Validity::new(NOW - 2 * DAY, NOW - DAY).unwrap(),
    )
    .unwrap();
    assert_eq!(
        reason(verify_chain(&pk, s.id, &[short, cw.cert.clone()], NOW)),
        "certificate expired"
    );
    // Member expiry shortens valid_until.
    let late = issue_member_cert(
        &s.admin,
        &s.admin_cert,
        cw.id,
        CertifiedRole::Caseworker,
        cw.signing.public_key(),
        &cw.age.recipient(),
        Validity::new(NOW, NOW + DAY).unwrap(),
    )
    .unwrap();
    let v = verify_chain(&pk, s.id, &[s.admin_cert.clone(), late.clone()], NOW).unwrap();
    assert_eq!(v.valid_until(), NOW + DAY);
    assert_eq!(
        reason(verify_chain(
            &pk,
            s.id,
            &[s.admin_cert.clone(), late],
            NOW - 1
        )),
        "certificate not yet valid"
    );
    assert_eq!(
        reason(Validity::new(2, 1)),
        "certificate validity window is empty"
    );
    let r = issue_escrow_cert(
        &s.root,
        s.id,
        &s.escrow.recipient(),
        Validity {
            not_before: 5,
            not_after: 4,
        },
    );
    assert_eq!(reason(r), "certificate validity window is empty");
}

#[test]
fn encoding_roundtrip_and_layout() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    for c in [&s.admin_cert, &s.escrow_cert, &cw.cert] {
        let b = c.to_bytes();
        assert_eq!(&KeyCertificate::from_bytes(&b).unwrap(), c);
        assert_eq!(&KeyCertificate::from_hex(&c.to_hex()).unwrap(), c);
        assert_eq!(&b[..4], b"RFLC");
        assert_eq!(b[4], 1);
        assert_eq!(b[5], c.role().as_u8());
        assert_eq!(&b[6..22], c.society_id().as_bytes());
        assert_eq!(&b[22..38], c.subject_id().as_bytes());
        assert_eq!(&b[b.len() - 64..], c.signature());
        assert_eq!(&b[b.len() - 96..b.len() - 64], c.issuer_key());
        assert_eq!(c.format_version(), KEY_CERT_VERSION);
        let json = serde_json::to_string(c).unwrap();
        let back: KeyCertificate = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, c);
    }
    // X25519 recipient: 62 bytes.
    assert_eq!(s.escrow_cert.to_bytes().len(), MIN_CERT_LEN + 62);
    assert_eq!(cw.cert.to_bytes().len(), MIN_CERT_LEN + 32 + 62);
    assert!(serde_json::from_str::<KeyCertificate>("\"zz\"").is_err());
    assert!(serde_json::from_str::<KeyCertificate>("\"00\"").is_err());
    assert!(KeyCertificate::from_hex("abc").is_err());
}

#[test]
fn truncated_extended_and_unknown() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let b = cw.cert.to_bytes();
    for n in 0..b.len() {
        assert!(
            KeyCertificate::from_bytes(&b[..n]).is_err(),
            "truncated to {n}"
        );
    }
    let mut long = b.clone();
    long.push(0);
    assert!(matches!(
        KeyCertificate::from_bytes(&long),
        Err(CryptoError::Malformed(
            "trailing bytes after key certificate"
        ))
    ));
    let mut v = b.clone();
    v[4] = 2;
    assert!(matches!(
        KeyCertificate::from_bytes(&v),
        Err(CryptoError::UnsupportedVersion(2))
    ));
    for role in [0u8, 6, 255] {
        let mut r = b.clone();
        r[5] = role;
        assert!(matches!(
            KeyCertificate::from_bytes(&r),
            Err(CryptoError::UnknownRole(x)) if x == role
        ));
    }
    let mut m = b.clone();
    m[0] = b'X';
    assert!(matches!(
        KeyCertificate::from_bytes(&m),
        Err(CryptoError::Malformed(_))
    ));
    let mut f = b.clone();
    f[54] = 2;
    assert!(matches!(
        KeyCertificate::from_bytes(&f),
        Err(CryptoError::Malformed(_))
    ));
}

#[test]
fn decoding_rejects_inconsistent_shapes() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    // Caseworker role without signing key.
    let mut c = cw.cert.clone();
    c.signing_key = None;
    assert_eq!(
        reason(KeyCertificate::from_bytes(&c.to_bytes())),
        "certificate lacks the subject's signing key"
    );
    // Escrow with a signing key.
    let mut e = s.escrow_cert.clone();
    e.signing_key = Some(cw.signing.public_key());
    assert_eq!(
        reason(KeyCertificate::from_bytes(&e.to_bytes())),
        "escrow certificate must not carry a signing key"
    );
    // Escrow for a subject other than the society.
    let mut e = s.escrow_cert.clone();
    e.subject_id = Uuid::new_v4();
    assert_eq!(
        reason(KeyCertificate::from_bytes(&e.to_bytes())),
        "escrow certificate subject must be the society itself"
    );
    // Empty validity window.
    let mut w = s.admin_cert.clone();
    w.validity = Validity {
        not_before: 10,
        not_after: 9,
    };
    assert_eq!(
        reason(KeyCertificate::from_bytes(&w.to_bytes())),
        "certificate validity window is empty"
    );
    // Non-canonical recipient (upper case bech32 parses, but is refused).
    let b = s.escrow_cert.to_bytes();
    let r = s.escrow_cert.age_recipient().to_string();
    let start = b.len() - 96 - r.len();
    let mut up = b.clone();
    up[start..start + r.len()].copy_from_slice(r.to_ascii_uppercase().as_bytes());
    assert!(matches!(
        KeyCertificate::from_bytes(&up),
        Err(CryptoError::Malformed(
            "key certificate recipient not in canonical form"
        ))
    ));
    // Not a recipient at all.
    let mut bad = b.clone();
    bad[start + 10] = b'!';
    assert!(matches!(
        KeyCertificate::from_bytes(&bad),
        Err(CryptoError::KeyFormat(_))
    ));
    // Oversized declared recipient length.
    let mut big = b;
    big[start - 2..start].copy_from_slice(&2000u16.to_be_bytes());
    assert!(matches!(
        KeyCertificate::from_bytes(&big),
        Err(CryptoError::Malformed("key certificate recipient length"))
    ));
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let pk = s.root.public();
    let cases: [(usize, Vec<KeyCertificate>); 3] = [
        (0, vec![s.admin_cert.clone()]),
        (0, vec![s.escrow_cert.clone()]),
        (1, vec![s.admin_cert.clone(), cw.cert.clone()]),
    ];
    for (idx, chain) in cases {
        let b = chain[idx].to_bytes();
        for i in 0..b.len() * 8 {
            let mut x = b.clone();
            x[i / 8] ^= 1 << (i % 8);
            let Ok(c) = KeyCertificate::from_bytes(&x) else {
                continue;
            };
            let mut ch = chain.clone();
            ch[idx] = c;
            assert!(verify_chain(&pk, s.id, &ch, NOW).is_err(), "bit {i}");
        }
    }
}

#[test]
fn root_key_pkcs8_fingerprint_and_pinning() {
    let root = SocietyRootKey::generate().unwrap();
    let again = SocietyRootKey::from_pkcs8(root.pkcs8_der()).unwrap();
    assert_eq!(root.public(), again.public());
    let pk = root.public();
    assert_eq!(RootPublicKey::from_slice(pk.as_bytes()).unwrap(), pk);
    assert_eq!(RootPublicKey::from_bytes(*pk.as_bytes()), pk);
    assert!(RootPublicKey::from_slice(&[0u8; 31]).is_err());
    let fp = pk.fingerprint();
    assert_eq!(fp.len(), 32);
    assert!(pk.matches_fingerprint(&format!("  {}\n", fp.to_uppercase())));
    assert_eq!(RootPublicKey::pinned(pk.as_bytes(), &fp).unwrap(), pk);
    let other = SocietyRootKey::generate().unwrap().public();
    assert_eq!(
        reason(RootPublicKey::pinned(other.as_bytes(), &fp)),
        "society root key does not match the pinned fingerprint"
    );
    assert_eq!(
        RootPublicKey::from_bytes([0u8; 32]).fingerprint(),
        "66687aadf862bd776c8fc18b8e9f8e20"
    );
    let dbg = format!("{root:?}");
    assert!(dbg.contains(&fp));
    assert!(SocietyRootKey::from_pkcs8(&[1, 2, 3]).is_err());
}

#[test]
fn subject_fingerprint_binds_both_keys() {
    let s = society();
    let cw = member(&s, CertifiedRole::Caseworker);
    let fp = cw.cert.subject_fingerprint();
    assert_eq!(
        fp,
        subject_keys_fingerprint(Some(&cw.signing.public_key()), &cw.age.recipient())
    );
    let other_age = AgeIdentity::generate().recipient();
    assert_ne!(
        fp,
        subject_keys_fingerprint(Some(&cw.signing.public_key()), &other_age)
    );
    let other_sig = DeviceSigningKey::generate().unwrap().public_key();
    assert_ne!(
        fp,
        subject_keys_fingerprint(Some(&other_sig), &cw.age.recipient())
    );
    assert_ne!(fp, subject_keys_fingerprint(None, &cw.age.recipient()));
}

#[test]
fn role_codes_roundtrip() {
    for v in 0u8..=255 {
        match CertifiedRole::from_u8(v) {
            Some(r) => {
                assert_eq!(r.as_u8(), v);
                let json = serde_json::to_string(&r).unwrap();
                assert_eq!(json, format!("\"{}\"", r.as_str()));
                assert_eq!(serde_json::from_str::<CertifiedRole>(&json).unwrap(), r);
            }
            None => assert!(v == 0 || v > 5),
        }
    }
}

#[test]
fn error_messages_contain_no_key_material() {
    let s = society();
    let other = society();
    let e = verify_chain(
        &s.root.public(),
        s.id,
        std::slice::from_ref(&other.admin_cert),
        NOW,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "key certificate rejected: certificate not issued by the society root"
    );
    for k in [
        s.root.public().fingerprint(),
        other.root.public().fingerprint(),
        to_hex(other.root.public().as_bytes()),
    ] {
        assert!(!e.contains(&k));
    }
}
