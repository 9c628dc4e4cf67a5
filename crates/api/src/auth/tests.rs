use super::*;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};

/// Token keys and the PKCS#8 document they were made from, so tests can sign forged tokens with the
/// very key that verifies them.
fn keys_and_der() -> (TokenKeys, Vec<u8>) {
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let keys = TokenKeys::from_pkcs8(doc.as_ref(), "rfl", "rfl-api", 900).unwrap();
    (keys, doc.as_ref().to_vec())
}

fn keys() -> TokenKeys {
    keys_and_der().0
}

const NOW: i64 = 1_800_000_000_000;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An EdDSA JWT over exactly this header and these claims, signed with `der`.
fn sign(der: &[u8], header: &Value, claims: &Value) -> String {
    let pair = Ed25519KeyPair::from_pkcs8(der).unwrap();
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(claims).unwrap())
    );
    let sig = pair.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

/// The header and claims of a token `k` issued at `NOW`, as JSON.
fn issued(k: &TokenKeys) -> (String, Value, Value) {
    let (t, _) = k
        .issue(
            MemberId::new(),
            SocietyId::new(),
            Role::Caseworker,
            0,
            AuthMethod::Passkey,
            NOW,
        )
        .unwrap();
    let part = |i: usize| -> Value {
        serde_json::from_slice(&B64.decode(t.split('.').nth(i).unwrap()).unwrap()).unwrap()
    };
    let (h, c) = (part(0), part(1));
    (t, h, c)
}

fn with(v: &Value, field: &str, value: Value) -> Value {
    let mut v = v.clone();
    v[field] = value;
    v
}

fn without(v: &Value, field: &str) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove(field).unwrap();
    v
}

fn reason(r: Result<TokenClaims, ApiError>) -> Option<String> {
    match r {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

#[test]
fn a_token_is_verified_once_and_its_times_still_every_time() {
    let k = keys();
    let member = MemberId::new();
    let (t, _) = k
        .issue(
            member,
            SocietyId::new(),
            Role::Caseworker,
            7,
            AuthMethod::Passkey,
            NOW,
        )
        .unwrap();
    let first = k.verify_cached(&t, NOW).unwrap();
    assert_eq!(first, k.verify(&t, NOW).unwrap());
    assert_eq!(first.security_stamp, 7);
    assert_eq!(k.verified.lock().unwrap().len(), 1);
    // Seen before: the same claims, and the injected clock still decides expiry.
    assert_eq!(k.verify_cached(&t, NOW + 899_000).unwrap(), first);
    assert!(matches!(
        k.verify_cached(&t, NOW + 900_000),
        Err(ApiError::Unauthorized("token expired"))
    ));
    assert!(matches!(
        k.verify_cached(&t, NOW - 1000),
        Err(ApiError::Unauthorized("token not yet valid"))
    ));
    // Any other bytes are not the token seen, and are verified (and refused) in full.
    let mut forged = t.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(k.verify_cached(&forged, NOW).is_err());
    assert_eq!(k.verified.lock().unwrap().len(), 1);
    // Another server key never takes the first one's word for it.
    assert!(keys().verify_cached(&t, NOW).is_err());
}

#[test]
fn issue_and_verify() {
    let k = keys();
    let (t, exp) = k
        .issue(
            MemberId::new(),
            SocietyId::new(),
            Role::Caseworker,
            0,
            AuthMethod::Passkey,
            NOW,
        )
        .unwrap();
    assert_eq!(exp, NOW / 1000 + 900);
    assert!(k.verify(&t, NOW).is_ok());
    assert!(k.verify(&t, NOW + 899_000).is_ok());
    assert!(matches!(
        k.verify(&t, NOW + 900_000),
        Err(ApiError::Unauthorized("token expired"))
    ));
    assert!(matches!(
        k.verify(&t, NOW - 1000),
        Err(ApiError::Unauthorized("token not yet valid"))
    ));
}

/// Each check in `verify`, shown to be what refuses a token that differs from a valid one in that
/// one header field or claim and is signed with the verifying key itself. All cases are tried and
/// the failures reported together.
#[test]
fn each_check_refuses_a_token_that_differs_only_in_what_it_checks() {
    let (k, der) = keys_and_der();
    let (t, h, c) = issued(&k);
    let now = NOW / 1000;
    // Controls: the issued token and its header and claims re-signed here verify.
    assert_eq!(reason(k.verify(&t, NOW)), None);
    assert_eq!(reason(k.verify(&sign(&der, &h, &c), NOW)), None);
    assert_eq!(
        reason(k.verify(&sign(&der, &h, &with(&c, "exp", json!(now + 1))), NOW)),
        None
    );
    let other_der = keys_and_der().1;
    let hs256 = {
        let h = with(&h, "alg", json!("HS256"));
        let input = format!(
            "{}.{}",
            B64.encode(serde_json::to_vec(&h).unwrap()),
            t.split('.').nth(1).unwrap()
        );
        let public = Ed25519KeyPair::from_pkcs8(&der)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public);
        let sig = B64.encode(ring::hmac::sign(&key, input.as_bytes()).as_ref());
        format!("{input}.{sig}")
    };
    let mut cases: Vec<(String, String, &str)> = vec![
        (
            "alg none, unsigned".into(),
            format!(
                "{}.{}.",
                B64.encode(serde_json::to_vec(&with(&h, "alg", json!("none"))).unwrap()),
                t.split('.').nth(1).unwrap()
            ),
            "malformed token",
        ),
        (
            "alg HS256 keyed with the public key".into(),
            hs256,
            "token algorithm not accepted",
        ),
        (
            "kid of another key".into(),
            sign(
                &der,
                &with(&h, "kid", json!("ed25519-0000000000000000")),
                &c,
            ),
            "token key unknown",
        ),
        (
            "no kid".into(),
            sign(&der, &without(&h, "kid"), &c),
            "token key unknown",
        ),
        (
            "signed by another key under this kid".into(),
            sign(&other_der, &h, &c),
            "token invalid",
        ),
        (
            "another role under the original signature".into(),
            {
                let mut p: Vec<String> = t.split('.').map(str::to_owned).collect();
                p[1] = B64
                    .encode(serde_json::to_vec(&with(&c, "role", json!("society_admin"))).unwrap());
                p.join(".")
            },
            "token invalid",
        ),
        (
            "audience of another service".into(),
            sign(&der, &h, &with(&c, "aud", json!("someone-else"))),
            "token invalid",
        ),
        (
            "audience as a list without ours".into(),
            sign(&der, &h, &with(&c, "aud", json!(["someone-else"]))),
            "token invalid",
        ),
        (
            "another issuer".into(),
            sign(&der, &h, &with(&c, "iss", json!("evil"))),
            "token invalid",
        ),
        (
            "expired this second".into(),
            sign(&der, &h, &with(&c, "exp", json!(now))),
            "token expired",
        ),
        (
            "valid from the next second".into(),
            sign(&der, &h, &with(&c, "nbf", json!(now + 1))),
            "token not yet valid",
        ),
        (
            "exp as a string".into(),
            sign(&der, &h, &with(&c, "exp", json!((now + 900).to_string()))),
            "token invalid",
        ),
        (
            "sub that is no member id".into(),
            sign(&der, &h, &with(&c, "sub", json!("admin"))),
            "token invalid",
        ),
        (
            "an unknown claim".into(),
            sign(&der, &h, &with(&c, "adm", json!(true))),
            "token invalid",
        ),
        (
            "unknown sign-in method".into(),
            sign(&der, &h, &with(&c, "amr", json!(["pwd"]))),
            "token invalid: unknown sign-in method",
        ),
    ];
    for claim in ["exp", "nbf", "aud", "iss", "sub", "jti"] {
        cases.push((
            format!("no {claim}"),
            sign(&der, &h, &without(&c, claim)),
            "token invalid",
        ));
    }
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(case, token, expected)| {
            let got = reason(k.verify(&token, NOW));
            (got.as_deref() != Some(expected))
                .then(|| format!("{case}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_token_of_another_key_is_refused() {
    let (a, b) = (keys(), keys());
    let (t, _, _) = issued(&a);
    assert!(matches!(
        b.verify(&t, NOW),
        Err(ApiError::Unauthorized("token key unknown"))
    ));
}
