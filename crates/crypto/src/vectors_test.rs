//! Committed test vectors under `crates/crypto/tests/vectors/`.
//!
//! The `check_*` tests compare against the committed JSON and never regenerate it.
//! `generate_vectors` (ignored) rewrites the files; run it only when the format
//! deliberately changes:
//! `cargo test -p rfl-crypto generate_vectors -- --ignored`.

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::envelope::seal_record_with_nonce;
use crate::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

fn load(name: &str) -> Value {
    let s = std::fs::read_to_string(format!("{DIR}/{name}")).unwrap();
    serde_json::from_str(&s).unwrap()
}

fn hx(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

fn uuid(v: &Value, field: &str) -> Uuid {
    Uuid::parse_str(v[field].as_str().unwrap()).unwrap()
}

fn aad_of(v: &Value) -> RecordAad {
    RecordAad {
        case_id: uuid(v, "case_id"),
        record_id: uuid(v, "record_id"),
        kind: serde_json::from_value(v["kind"].clone()).unwrap(),
        version: v["version"].as_u64().unwrap(),
        key_epoch: u32::try_from(v["key_epoch"].as_u64().unwrap()).unwrap(),
    }
}

fn arr32(b: &[u8]) -> [u8; 32] {
    b.try_into().unwrap()
}

/// Attachment vector plaintext: byte i = (i * 7 + 3) mod 256.
fn attachment_plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + 3) % 256) as u8).collect()
}

const INLINE_LIMIT: usize = 4096;

#[test]
#[ignore = "regenerates committed vectors"]
fn generate_vectors() {
    std::fs::create_dir_all(DIR).unwrap();
    let write = |name: &str, v: Value| {
        let s = serde_json::to_string_pretty(&v).unwrap() + "\n";
        std::fs::write(format!("{DIR}/{name}"), s).unwrap();
    };

    // (a) record envelope with a fixed nonce.
    let key_bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
    let key = DataKey::from_bytes(key_bytes);
    let signer = DeviceSigningKey::generate().unwrap();
    let aad = RecordAad {
        case_id: Uuid::parse_str("0190f5a2-7b1c-7d3e-8f40-112233445566").unwrap(),
        record_id: Uuid::parse_str("0190f5a2-7b1c-7d3e-8f40-aabbccddeeff").unwrap(),
        kind: RecordKind::Message,
        version: 7,
        key_epoch: 2,
    };
    let nonce: [u8; 12] = std::array::from_fn(|i| 0xa0 + i as u8);
    let plaintext = br#"{"text":"We are safe in Nairobi. Love, Amina"}"#;
    let env = seal_record_with_nonce(&key, &aad, plaintext, &signer, nonce).unwrap();
    write(
        "record_envelope.json",
        json!({
            "description": "rfl record envelope v1 sealed with a FIXED nonce (test only)",
            "data_key": hex::encode(key.expose_bytes()),
            "signer_pkcs8": hex::encode(signer.pkcs8_der()),
            "signer_public": hex::encode(signer.public_key().as_bytes()),
            "nonce": hex::encode(nonce),
            "case_id": aad.case_id.to_string(),
            "record_id": aad.record_id.to_string(),
            "kind": aad.kind,
            "version": aad.version,
            "key_epoch": aad.key_epoch,
            "plaintext": hex::encode(plaintext),
            "envelope": hex::encode(&env),
        }),
    );

    // (b) age-wrapped data key (age is randomized: check by unwrapping).
    let id = AgeIdentity::generate();
    let case_id = Uuid::parse_str("0190f5a2-7b1c-7d3e-8f40-000000000001").unwrap();
    let dk = DataKey::from_bytes(std::array::from_fn(|i| 0xff - i as u8));
    let wrapped = wrap_data_key(&dk, case_id, 5, id.recipient().as_age()).unwrap();
    write(
        "wrapped_data_key.json",
        json!({
            "description": "age X25519 wrapped data key, payload rfl-dk-v1 || case_id || epoch || key",
            "identity": id.to_secret_string().expose_secret(),
            "recipient": id.recipient().to_string(),
            "case_id": case_id.to_string(),
            "key_epoch": 5,
            "data_key": hex::encode(dk.expose_bytes()),
            "wrapped": hex::encode(&wrapped),
        }),
    );

    // (c) attachment: 2 chunks.
    let akey = DataKey::from_bytes(std::array::from_fn(|i| 0x40 + i as u8));
    let aaad = RecordAad {
        case_id: Uuid::parse_str("0190f5a2-7b1c-7d3e-8f40-000000000002").unwrap(),
        record_id: Uuid::parse_str("0190f5a2-7b1c-7d3e-8f40-000000000003").unwrap(),
        kind: RecordKind::Attachment,
        version: 1,
        key_epoch: 1,
    };
    let len = ATTACHMENT_CHUNK_SIZE + 1000;
    let pt = attachment_plaintext(len);
    let mut s = AttachmentSealer::new(&akey, &aaad).unwrap();
    let pieces: Vec<&[u8]> = pt.chunks(ATTACHMENT_CHUNK_SIZE).collect();
    let mut chunks = vec![];
    for (i, p) in pieces.iter().enumerate() {
        let sealed = s.seal_chunk(p, i + 1 == pieces.len()).unwrap();
        let sha = ring::digest::digest(&ring::digest::SHA256, &sealed);
        let mut c = json!({
            "plaintext_len": p.len(),
            "sealed_len": sealed.len(),
            "sealed_sha256": hex::encode(sha.as_ref()),
            "sealed_head": hex::encode(&sealed[..64]),
        });
        if sealed.len() <= INLINE_LIMIT {
            c["sealed"] = json!(hex::encode(&sealed));
        }
        chunks.push(c);
    }
    let digest = s.finish().unwrap();
    write(
        "attachment.json",
        json!({
            "description": "attachment STREAM; plaintext byte i = (i*7+3) mod 256; chunks larger than 4096 bytes are given by length, SHA-256 and first 64 bytes",
            "data_key": hex::encode(akey.expose_bytes()),
            "case_id": aaad.case_id.to_string(),
            "record_id": aaad.record_id.to_string(),
            "kind": aaad.kind,
            "version": aaad.version,
            "key_epoch": aaad.key_epoch,
            "plaintext_len": len,
            "chunks": chunks,
            "digest": hex::encode(digest),
        }),
    );
}

#[test]
fn check_record_envelope_vector() {
    let v = load("record_envelope.json");
    let key = DataKey::from_bytes(arr32(&hx(&v, "data_key")));
    let signer = DeviceSigningKey::from_pkcs8(&hx(&v, "signer_pkcs8")).unwrap();
    assert_eq!(
        signer.public_key().as_bytes()[..],
        hx(&v, "signer_public")[..]
    );
    let aad = aad_of(&v);
    let nonce: [u8; 12] = hx(&v, "nonce").try_into().unwrap();
    let pt = hx(&v, "plaintext");
    let expected = hx(&v, "envelope");

    let env = seal_record_with_nonce(&key, &aad, &pt, &signer, nonce).unwrap();
    assert_eq!(env, expected, "envelope bytes changed: format break");

    let h = verify_envelope(&expected).unwrap();
    assert_eq!(h.aad, aad);
    assert_eq!(h.signer, signer.public_key());
    let pk = signer.public_key();
    let opened = open_record(&key, &aad, &expected, &|k| *k == pk).unwrap();
    assert_eq!(&opened.plaintext[..], &pt[..]);
}

#[test]
fn check_wrapped_data_key_vector() {
    let v = load("wrapped_data_key.json");
    let id = AgeIdentity::parse(v["identity"].as_str().unwrap()).unwrap();
    assert_eq!(id.recipient().to_string(), v["recipient"].as_str().unwrap());
    let case_id = uuid(&v, "case_id");
    let epoch = u32::try_from(v["key_epoch"].as_u64().unwrap()).unwrap();
    let wrapped = hx(&v, "wrapped");
    let dk = unwrap_data_key(&wrapped, case_id, epoch, id.as_age()).unwrap();
    assert_eq!(dk.expose_bytes()[..], hx(&v, "data_key")[..]);
    assert!(matches!(
        unwrap_data_key(&wrapped, Uuid::nil(), epoch, id.as_age()),
        Err(CryptoError::WrongKeyBinding)
    ));
    assert!(matches!(
        unwrap_data_key(&wrapped, case_id, epoch + 1, id.as_age()),
        Err(CryptoError::WrongKeyBinding)
    ));
}

#[test]
fn check_attachment_vector() {
    let v = load("attachment.json");
    let key = DataKey::from_bytes(arr32(&hx(&v, "data_key")));
    let aad = aad_of(&v);
    let len = usize::try_from(v["plaintext_len"].as_u64().unwrap()).unwrap();
    let pt = attachment_plaintext(len);
    let chunks = v["chunks"].as_array().unwrap();
    assert!(chunks.len() >= 2);
    let digest = arr32(&hx(&v, "digest"));

    let mut sealer = AttachmentSealer::new(&key, &aad).unwrap();
    let mut opener = AttachmentOpener::new(&key, &aad).unwrap();
    let mut off = 0;
    let mut recovered = vec![];
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let n = usize::try_from(c["plaintext_len"].as_u64().unwrap()).unwrap();
        let sealed = sealer.seal_chunk(&pt[off..off + n], last).unwrap();
        off += n;
        assert_eq!(sealed.len() as u64, c["sealed_len"].as_u64().unwrap());
        let sha = ring::digest::digest(&ring::digest::SHA256, &sealed);
        assert_eq!(sha.as_ref(), &hx(c, "sealed_sha256")[..], "chunk {i}");
        assert_eq!(&sealed[..64], &hx(c, "sealed_head")[..], "chunk {i}");
        // Open the committed bytes where they are inlined.
        let committed = if c.get("sealed").is_some() {
            let b = hx(c, "sealed");
            assert_eq!(b, sealed, "chunk {i}");
            b
        } else {
            sealed
        };
        recovered.extend_from_slice(&opener.open_chunk(&committed, last).unwrap());
    }
    assert_eq!(off, len);
    assert_eq!(sealer.finish().unwrap(), digest);
    opener.finish(&digest).unwrap();
    assert_eq!(recovered, pt);
}
