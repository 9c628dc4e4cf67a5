use super::*;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use webauthn_rs::prelude::{Passkey as ServerPasskey, Uuid};
use webauthn_rs::{Webauthn, WebauthnBuilder};

const ORIGIN: &str = "http://localhost:8080";
const SALT_A: [u8; 32] = [0xa5; 32];
const SALT_B: [u8; 32] = [0x5b; 32];

fn server() -> Webauthn {
    WebauthnBuilder::new("localhost", &Url::parse(ORIGIN).unwrap())
        .unwrap()
        .rp_name("rfl tests")
        .build()
        .unwrap()
}

fn assert_send<T: Send>(_: &T) {}

/// Registers a new credential on `server`; returns it as the server stores it, the PRF output
/// at registration for SALT_A, and the JSON that would be sent.
async fn register(
    server: &Webauthn,
    auth: &mut SoftAuthenticator,
    name: &str,
) -> (ServerPasskey, Option<PrfOutput>, String) {
    let (options, state) = server
        .start_passkey_registration(Uuid::new_v4(), name, name, None)
        .unwrap();
    let ceremony = auth.register(ORIGIN, &options, &SALT_A);
    assert_send(&ceremony);
    let (credential, prf) = ceremony.await.unwrap();
    let json = serde_json::to_string(&credential).unwrap();
    let passkey = server
        .finish_passkey_registration(&credential, &state)
        .unwrap();
    (passkey, prf, json)
}

/// Signs in on `server` with one of `passkeys`; returns the PRF output and the JSON sent.
async fn login(
    server: &Webauthn,
    auth: &mut SoftAuthenticator,
    passkeys: &[ServerPasskey],
    salt: &[u8; 32],
) -> (PrfOutput, String) {
    let (options, state) = server.start_passkey_authentication(passkeys).unwrap();
    let ceremony = auth.assert(ORIGIN, &options, salt);
    assert_send(&ceremony);
    let (credential, prf) = ceremony.await.unwrap();
    assert!(credential.extensions.hmac_get_secret.is_none());
    let json = serde_json::to_string(&credential).unwrap();
    let result = server
        .finish_passkey_authentication(&credential, &state)
        .unwrap();
    assert!(result.user_verified(), "user verification must be reported");
    (prf.expect("the authenticator gives a PRF output"), json)
}

/// Nothing of the PRF output, in any usual encoding, is in what goes to the server.
fn assert_not_leaked(json: &str, prf: &PrfOutput) {
    let bytes = prf.expose();
    let encodings = [
        URL_SAFE_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        hex::encode(bytes),
        hex::encode_upper(bytes),
    ];
    for encoded in encodings {
        assert!(!json.contains(&encoded), "PRF output leaked as {encoded}");
    }
    let value: Value = serde_json::from_str(json).unwrap();
    for key in ["extensions", "clientExtensionResults"] {
        if let Some(ext) = value.get(key) {
            assert!(ext.get("prf").is_none(), "a prf entry is sent: {ext}");
        }
    }
}

#[tokio::test]
async fn register_and_authenticate_with_prf_against_webauthn_rs() {
    let server = server();
    let mut auth = SoftAuthenticator::new();
    let (passkey, prf_at_create, reg_json) = register(&server, &mut auth, "alice").await;

    let prf_at_create = prf_at_create.expect("PRF is evaluated at registration");
    assert_not_leaked(&reg_json, &prf_at_create);

    let (a1, json1) = login(&server, &mut auth, std::slice::from_ref(&passkey), &SALT_A).await;
    let (a2, json2) = login(&server, &mut auth, std::slice::from_ref(&passkey), &SALT_A).await;
    let (b, json3) = login(&server, &mut auth, &[passkey], &SALT_B).await;

    assert_eq!(a1.expose().len(), 32);
    assert_eq!(a1.expose(), a2.expose(), "same credential and salt");
    assert_eq!(
        a1.expose(),
        prf_at_create.expose(),
        "same as at registration"
    );
    assert_ne!(a1.expose(), b.expose(), "another salt");
    assert_ne!(a1.expose(), &[0u8; 32]);
    for json in [&json1, &json2, &json3] {
        assert_not_leaked(json, &a1);
        assert_not_leaked(json, &b);
    }
}

#[tokio::test]
async fn second_credential_gives_another_prf_output() {
    let server = server();
    let mut auth = SoftAuthenticator::new();
    let (first, _, _) = register(&server, &mut auth, "alice").await;
    let (second, _, _) = register(&server, &mut auth, "bob").await;
    let (p1, _) = login(&server, &mut auth, &[first], &SALT_A).await;
    let (p2, _) = login(&server, &mut auth, &[second], &SALT_A).await;
    assert_ne!(p1.expose(), p2.expose());
}

#[tokio::test]
async fn prf_output_survives_the_secret_bytes() {
    let server = server();
    let mut auth = SoftAuthenticator::new();
    let (passkey, _, _) = register(&server, &mut auth, "alice").await;
    let (before, _) = login(&server, &mut auth, std::slice::from_ref(&passkey), &SALT_A).await;

    let bytes = auth.to_secret_bytes().unwrap();
    let mut restored = SoftAuthenticator::from_secret_bytes(&bytes).unwrap();
    drop(auth);
    let (after, _) = login(
        &server,
        &mut restored,
        std::slice::from_ref(&passkey),
        &SALT_A,
    )
    .await;
    assert_eq!(before.expose(), after.expose());

    // Round trip is stable, and a fresh authenticator does not know the credential.
    assert_eq!(*restored.to_secret_bytes().unwrap(), *bytes);
    let (options, _) = server.start_passkey_authentication(&[passkey]).unwrap();
    let err = SoftAuthenticator::new()
        .assert(ORIGIN, &options, &SALT_A)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthenticatorError::Ceremony(_)), "{err}");
}

#[test]
fn bad_state_is_an_error() {
    assert!(matches!(
        SoftAuthenticator::from_secret_bytes(b"not json"),
        Err(AuthenticatorError::InvalidState(_))
    ));
    assert!(matches!(
        SoftAuthenticator::from_secret_bytes(br#"{"format":"something else","version":1}"#),
        Err(AuthenticatorError::InvalidState(_))
    ));
    let newer = format!(r#"{{"format":"{STATE_FORMAT}","version":2}}"#);
    assert!(matches!(
        SoftAuthenticator::from_secret_bytes(newer.as_bytes()),
        Err(AuthenticatorError::UnsupportedStateVersion { found: 2, .. })
    ));
    let empty = SoftAuthenticator::new().to_secret_bytes().unwrap();
    let restored = SoftAuthenticator::from_secret_bytes(&empty).unwrap();
    assert_eq!(restored.aaguid.0, SOFT_AUTHENTICATOR_AAGUID);
}

#[tokio::test]
async fn options_of_another_origin_are_refused() {
    let mut auth = SoftAuthenticator::new();
    // The relying party is example.com; the ceremony runs for localhost.
    let other = WebauthnBuilder::new("example.com", &Url::parse("https://example.com").unwrap())
        .unwrap()
        .build()
        .unwrap();
    let (options, _) = other
        .start_passkey_registration(Uuid::new_v4(), "alice", "alice", None)
        .unwrap();
    let err = auth.register(ORIGIN, &options, &SALT_A).await.unwrap_err();
    assert!(
        matches!(err, AuthenticatorError::OriginMismatch { .. }),
        "{err}"
    );
    // Plain http is for localhost only (refused by passkey-client).
    let err = auth
        .register("http://example.com", &options, &SALT_A)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthenticatorError::Ceremony(_)), "{err}");

    // A localhost relying party's options from a foreign origin (which passkey-client 0.6
    // alone would accept when insecure localhost is allowed).
    let server = server();
    let (options, _) = server
        .start_passkey_registration(Uuid::new_v4(), "alice", "alice", None)
        .unwrap();
    for origin in [
        "https://evil.example",
        "http://evil.example",
        "http://127.0.0.1:8080",
    ] {
        let err = auth.register(origin, &options, &SALT_A).await.unwrap_err();
        assert!(
            matches!(
                err,
                AuthenticatorError::OriginMismatch { .. }
                    | AuthenticatorError::InvalidOrigin { .. }
            ),
            "{origin}: {err}"
        );
    }
    assert!(matches!(
        auth.register("not a url", &options, &SALT_A).await,
        Err(AuthenticatorError::InvalidOrigin { .. })
    ));
    // Nothing was stored by the failed ceremonies.
    assert!(auth.credentials.0.is_empty());

    // Same for assertions.
    let (passkey, _, _) = register(&server, &mut auth, "alice").await;
    let (options, _) = server.start_passkey_authentication(&[passkey]).unwrap();
    let err = auth
        .assert("https://evil.example", &options, &SALT_A)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthenticatorError::OriginMismatch { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceremonies_run_inside_spawned_tasks() {
    let server = server();
    let (options, state) = server
        .start_passkey_registration(Uuid::new_v4(), "alice", "alice", None)
        .unwrap();
    let (auth, credential, prf) = tokio::spawn(async move {
        let mut auth = SoftAuthenticator::new();
        let (credential, prf) = auth.register(ORIGIN, &options, &SALT_A).await.unwrap();
        (auth, credential, prf)
    })
    .await
    .unwrap();
    let passkey = server
        .finish_passkey_registration(&credential, &state)
        .unwrap();
    let (options, state) = server.start_passkey_authentication(&[passkey]).unwrap();
    let (credential, prf2) = tokio::spawn(async move {
        let mut auth = auth;
        auth.assert(ORIGIN, &options, &SALT_A).await.unwrap()
    })
    .await
    .unwrap();
    server
        .finish_passkey_authentication(&credential, &state)
        .unwrap();
    assert_eq!(prf.unwrap().expose(), prf2.unwrap().expose());
}

#[test]
fn prf_output_debug_is_redacted() {
    let prf = PrfOutput::from_base64url(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
    let shown = format!("{prf:?}");
    assert!(!shown.contains('7'), "{shown}");
    assert!(PrfOutput::from_base64url(&URL_SAFE_NO_PAD.encode([7u8; 31])).is_err());
    assert!(!format!("{:?}", SoftAuthenticator::new()).is_empty());
}
