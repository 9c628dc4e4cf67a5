use super::*;
use secrecy::ExposeSecret;

#[test]
fn data_key_generate_distinct_and_debug_redacted() {
    let a = DataKey::generate().unwrap();
    let b = DataKey::generate().unwrap();
    assert_ne!(a.expose_bytes(), b.expose_bytes());
    let k = DataKey::from_bytes([7u8; 32]);
    assert_eq!(k.expose_bytes(), &[7u8; 32]);
    let dbg = format!("{k:?}");
    assert!(!dbg.contains('7'), "{dbg}");
}

#[test]
fn signing_roundtrip_and_pkcs8() {
    let k = DeviceSigningKey::generate().unwrap();
    let sig = k.sign(b"hello");
    k.public_key().verify(b"hello", &sig).unwrap();
    assert!(matches!(
        k.public_key().verify(b"hellp", &sig),
        Err(CryptoError::BadSignature)
    ));
    assert!(matches!(
        k.public_key().verify(b"hello", &sig[..63]),
        Err(CryptoError::BadSignature)
    ));
    let k2 = DeviceSigningKey::from_pkcs8(k.pkcs8_der()).unwrap();
    assert_eq!(k.public_key(), k2.public_key());
    assert_eq!(k.sign(b"x"), k2.sign(b"x"));
    assert!(matches!(
        DeviceSigningKey::from_pkcs8(&[0u8; 10]),
        Err(CryptoError::KeyFormat(_))
    ));
    let other = DeviceSigningKey::generate().unwrap();
    assert!(other.public_key().verify(b"hello", &sig).is_err());
    assert!(!format!("{k:?}").is_empty());
}

#[test]
fn a_verifier_verifies_exactly_as_the_key_does() {
    let k = DeviceSigningKey::generate().unwrap();
    let public = k.public_key();
    let v = public.verifier().unwrap();
    assert_eq!(v.public_key(), public);
    let sig = k.sign(b"hello");
    let other = DeviceSigningKey::generate().unwrap().sign(b"hello");
    let mut flipped = sig;
    flipped[10] ^= 1;
    for (msg, sig) in [
        (&b"hello"[..], &sig[..]),
        (b"hellp", &sig),
        (b"hello", &sig[..63]),
        (b"hello", &other),
        (b"hello", &flipped),
    ] {
        assert_eq!(v.verify(msg, sig).is_ok(), public.verify(msg, sig).is_ok());
    }
    assert!(v.verify(b"hello", &sig).is_ok());
    // About half of all y are not on the curve: such a key has no verifier, and nothing
    // verifies under it.
    let not_points: Vec<DevicePublicKey> = (2u8..40)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            DevicePublicKey::from_bytes(b)
        })
        .filter(|k| k.verifier().is_err())
        .collect();
    assert!(!not_points.is_empty());
    for bad in not_points {
        assert!(matches!(bad.verifier(), Err(CryptoError::BadSignature)));
        assert!(matches!(
            bad.verify(b"hello", &sig),
            Err(CryptoError::BadSignature)
        ));
    }
}

#[test]
fn public_key_slice_and_fingerprint() {
    let k = DeviceSigningKey::generate().unwrap();
    let p = k.public_key();
    assert_eq!(DevicePublicKey::from_slice(p.as_bytes()).unwrap(), p);
    assert_eq!(DevicePublicKey::from_bytes(*p.as_bytes()), p);
    assert!(matches!(
        DevicePublicKey::from_slice(&[0u8; 31]),
        Err(CryptoError::KeyFormat(_))
    ));
    assert!(DevicePublicKey::from_slice(&[0u8; 33]).is_err());
    let fp = DevicePublicKey::from_bytes([0u8; 32]).fingerprint();
    // SHA-256 of 32 zero bytes = 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
    assert_eq!(fp, "66687aadf862bd776c8fc18b8e9f8e20");
}

#[test]
fn hex_roundtrip_and_rejects() {
    let b: Vec<u8> = (0u8..=255).collect();
    assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
    assert_eq!(from_hex("ABcd").unwrap(), vec![0xab, 0xcd]);
    assert_eq!(from_hex("").unwrap(), Vec::<u8>::new());
    assert!(from_hex("abc").is_none());
    assert!(from_hex("0g").is_none());
    assert!(from_hex("\u{e9}").is_none());
}

#[test]
fn age_identity_and_recipient_roundtrip() {
    let id = AgeIdentity::generate();
    let s = id.to_secret_string();
    assert!(s.expose_secret().starts_with("AGE-SECRET-KEY-1"));
    let id2 = AgeIdentity::parse(s.expose_secret()).unwrap();
    assert_eq!(id.recipient(), id2.recipient());
    let r = id.recipient().to_string();
    assert!(r.starts_with("age1"));
    assert_eq!(AgeRecipient::parse(&r).unwrap(), id.recipient());
    assert!(matches!(
        AgeRecipient::parse("age1nope"),
        Err(CryptoError::KeyFormat(_))
    ));
    assert!(matches!(
        AgeIdentity::parse(&r),
        Err(CryptoError::KeyFormat(_))
    ));
    let dbg = format!("{id:?}");
    assert!(!dbg.contains("AGE-SECRET-KEY"));
}

#[cfg(feature = "plugin")]
mod plugin {
    use super::*;
    use age_core::primitives::bech32_encode;
    use bech32::Hrp;

    fn recipient_string(name: &str, data: &[u8]) -> String {
        bech32_encode(Hrp::parse(&format!("age1{name}")).unwrap(), data)
    }

    fn identity_string(name: &str, data: &[u8]) -> String {
        let hrp = format!("age-plugin-{name}-");
        bech32_encode(Hrp::parse(&hrp).unwrap(), data).to_uppercase()
    }

    #[test]
    fn plugin_recipients_parse_in_canonical_form() {
        let s = recipient_string("yubikey", &[7u8; 33]);
        assert!(s.starts_with("age1yubikey1"), "{s}");
        let r = AgeRecipient::parse(&format!("  {s}\n")).unwrap();
        assert!(r.is_plugin());
        assert_eq!(r.plugin_name(), Some("yubikey"));
        assert_eq!(r.to_string(), s);
        // age reads plugin recipients in lower case only (the canonical form); mixed case is
        // not Bech32 at all.
        assert!(matches!(
            AgeRecipient::parse(&s.to_ascii_uppercase()),
            Err(CryptoError::KeyFormat(_))
        ));
        let mut mixed = s.clone();
        mixed.replace_range(..1, "A");
        assert!(matches!(
            AgeRecipient::parse(&mixed),
            Err(CryptoError::KeyFormat(_))
        ));
        // Different plugin or key: different recipient.
        assert_ne!(
            AgeRecipient::parse(&recipient_string("yubikey", &[8u8; 33])).unwrap(),
            r
        );
        assert_ne!(
            AgeRecipient::parse(&recipient_string("tpm", &[7u8; 33])).unwrap(),
            r
        );
        // X25519 stays X25519, and differs from any plugin recipient.
        let x = AgeIdentity::generate().recipient();
        assert!(!x.is_plugin());
        assert_eq!(x.plugin_name(), None);
        assert_ne!(x, r);
        // The X25519-only parser refuses plugin recipients.
        assert!(matches!(
            AgeRecipient::parse_x25519(&s),
            Err(CryptoError::KeyFormat(_))
        ));
        assert_eq!(AgeRecipient::parse_x25519(&x.to_string()).unwrap(), x);
    }

    #[test]
    fn garbage_recipients_are_refused() {
        let good = recipient_string("rfltest", &[1u8; 32]);
        let mut bad_checksum = good.clone();
        let last = bad_checksum.pop().unwrap();
        bad_checksum.push(if last == 'q' { 'p' } else { 'q' });
        let bad_name = recipient_string("bad/name", &[1u8; 32]);
        for s in [
            "",
            "age1",
            "age1nope",
            "AGE-SECRET-KEY-1",
            "ssh-ed25519 AAAA",
            bad_checksum.as_str(),
            bad_name.as_str(),
            "age1rfltest1",
            "not a key at all",
        ] {
            assert!(
                matches!(AgeRecipient::parse(s), Err(CryptoError::KeyFormat(_))),
                "{s:?} accepted"
            );
        }
    }

    #[test]
    fn plugin_identities_need_their_recipient() {
        let id = identity_string("rfltest", &[3u8; 32]);
        let r = AgeRecipient::parse(&recipient_string("rfltest", &[4u8; 32])).unwrap();
        let pid = AgeIdentity::plugin(&id, &r).unwrap();
        assert!(pid.is_plugin());
        assert_eq!(pid.recipient(), r);
        // The "secret" of a plugin identity is its identity string: a handle to the token.
        assert_eq!(pid.to_secret_string().expose_secret(), id);
        // age reads plugin identities in upper case only, as plugins print them.
        assert!(AgeIdentity::plugin(&id.to_ascii_lowercase(), &r).is_err());
        // A plugin identity alone cannot say its recipient.
        assert!(matches!(
            AgeIdentity::parse(&id),
            Err(CryptoError::KeyFormat(
                "age plugin identity given without its recipient"
            ))
        ));
        // The recipient must be a plugin recipient of the same plugin.
        let other = AgeRecipient::parse(&recipient_string("yubikey", &[4u8; 32])).unwrap();
        assert!(matches!(
            AgeIdentity::plugin(&id, &other),
            Err(CryptoError::KeyFormat(_))
        ));
        let x = AgeIdentity::generate().recipient();
        assert!(AgeIdentity::plugin(&id, &x).is_err());
        // Garbage.
        for s in [
            "AGE-PLUGIN-",
            "AGE-PLUGIN-RFLTEST-1",
            "AGE-SECRET-KEY-1QQQ",
            "x",
        ] {
            assert!(
                matches!(AgeIdentity::plugin(s, &r), Err(CryptoError::KeyFormat(_))),
                "{s:?} accepted"
            );
        }
        let dbg = format!("{pid:?}");
        assert!(!dbg.contains(&id), "{dbg}");
    }

    #[test]
    fn identity_files_of_both_kinds() {
        let id = identity_string("yubikey", &[5u8; 40]);
        let rs = recipient_string("yubikey", &[6u8; 33]);
        // age-plugin-yubikey's layout.
        let yubikey = format!(
            "#       Serial: 12345678, Slot: 1\n#         Name: age identity 1a2b3c4d\n\
             #   PIN policy: Once   (A PIN is required once per session, if set)\n\
             #    Recipient: {rs}\n{id}\n"
        );
        let pid = AgeIdentity::from_identity_file(&yubikey).unwrap();
        assert!(pid.is_plugin());
        assert_eq!(pid.recipient().to_string(), rs);
        assert_eq!(pid.to_secret_string().expose_secret(), id);
        // age-plugin's layout (print_new_identity).
        let plain = format!("# created: 2026-01-01T00:00:00Z\n# recipient: {rs}\n\n{id}\n");
        let pid = AgeIdentity::from_identity_file(&plain).unwrap();
        assert_eq!(pid.recipient().to_string(), rs);
        // No recipient line for a plugin identity.
        assert!(matches!(
            AgeIdentity::from_identity_file(&format!("# created: now\n{id}\n")),
            Err(CryptoError::KeyFormat(
                "identity file has no `# recipient:` line for its plugin identity"
            ))
        ));
        // Two identities, two recipients, none.
        assert!(
            AgeIdentity::from_identity_file(&format!("# recipient: {rs}\n{id}\n{id}\n")).is_err()
        );
        assert!(AgeIdentity::from_identity_file(&format!(
            "# recipient: {rs}\n# recipient: {rs}\n{id}\n"
        ))
        .is_err());
        assert!(AgeIdentity::from_identity_file("# recipient: nothing\n").is_err());
        assert!(AgeIdentity::from_identity_file("").is_err());
        assert!(AgeIdentity::from_identity_file(&format!("# recipient: garbage\n{id}\n")).is_err());
        // An X25519 identity file: the recipient is derived; a recipient line must match it.
        let x = AgeIdentity::generate();
        let xs = x.to_secret_string().expose_secret().to_owned();
        let back = AgeIdentity::from_identity_file(&format!("# a key\n{xs}\n")).unwrap();
        assert!(!back.is_plugin());
        assert_eq!(back.recipient(), x.recipient());
        let with = format!(
            "# public key: ignored\n# recipient: {}\n{xs}\n",
            x.recipient()
        );
        assert_eq!(
            AgeIdentity::from_identity_file(&with).unwrap().recipient(),
            x.recipient()
        );
        let wrong = format!(
            "# recipient: {}\n{xs}\n",
            AgeIdentity::generate().recipient()
        );
        assert!(matches!(
            AgeIdentity::from_identity_file(&wrong),
            Err(CryptoError::KeyFormat(
                "identity file's recipient line does not match its identity"
            ))
        ));
    }

    #[test]
    fn a_missing_plugin_is_a_clear_error() {
        // No `age-plugin-rflnosuchplugin` anywhere on PATH.
        let r = AgeRecipient::parse(&recipient_string("rflnosuchplugin", &[9u8; 32])).unwrap();
        let key = DataKey::generate().unwrap();
        let e = crate::wrap_data_key(&key, uuid::Uuid::nil(), 1, r.as_age()).unwrap_err();
        assert!(
            matches!(&e, CryptoError::PluginMissing(b) if b == "age-plugin-rflnosuchplugin"),
            "{e:?}"
        );
        assert!(e.to_string().contains("not found on PATH"), "{e}");
        // A file the plugin would have to open: wrapped to an X25519 key here, but the only
        // identity offered is the missing plugin's.
        let id = identity_string("rflnosuchplugin", &[9u8; 32]);
        let pid = AgeIdentity::plugin(&id, &r).unwrap();
        let x = AgeIdentity::generate();
        let w = crate::wrap_data_key(&key, uuid::Uuid::nil(), 1, x.recipient().as_age()).unwrap();
        let e = crate::unwrap_data_key(&w, uuid::Uuid::nil(), 1, pid.as_age()).unwrap_err();
        assert!(
            matches!(&e, CryptoError::PluginMissing(b) if b == "age-plugin-rflnosuchplugin"),
            "{e:?}"
        );
    }
}
