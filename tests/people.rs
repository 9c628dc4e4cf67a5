//! People and their authenticators, end to end on SQLite and PostgreSQL: enrolment by one-time code and
//! passkey, key login for machines only, step-up for admin operations, and a person's private keys held
//! per authenticator (wrapped under its PRF output, which never reaches the server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::http::Api;
use rfl_client::{enrol_person, sign_in_person, ClientError, DeviceKeys, SoftAuthenticator};
use rfl_crypto::PRF_SALT;
use rfl_domain::{MemberId, Role};
use rfl_system_tests::{contains_any_encoding, recording_proxy, Backend, TestServer};
use secrecy::ExposeSecret;

/// The PRF output `authenticator` gives for its credential (by a sign-in ceremony the test runs
/// itself; the server's answer is not used).
async fn prf_output(
    t: &TestServer,
    member: MemberId,
    authenticator: &mut SoftAuthenticator,
) -> [u8; 32] {
    let api = Api::new(&t.url()).unwrap();
    let start = api.passkey_login_start(member).await.unwrap();
    let (_, prf) = authenticator
        .assert(&t.config.webauthn.rp_origin, &start.options, &PRF_SALT)
        .await
        .unwrap();
    *prf.expect("the soft authenticator has PRF").expose()
}

fn status(e: ClientError) -> Option<u16> {
    e.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_only_with_passkeys_and_machines_only_with_keys() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let site = t.site();

        // A person's code cannot enrol a bare device key; a machine's code cannot enrol a passkey.
        let person_code = soc
            .admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        let keys = DeviceKeys::generate().unwrap();
        let e = rfl_client::session::enrol(&t.url(), &person_code.code, &keys)
            .await
            .unwrap_err();
        assert_eq!(status(e), Some(403));
        let agent_code = soc
            .admin
            .issue_enrolment_code(Role::SyncAgent)
            .await
            .unwrap();
        let e = enrol_person(&site, &agent_code.code, &mut SoftAuthenticator::new())
            .await
            .unwrap_err();
        assert_eq!(status(e), Some(403));
        // Neither refusal spent the code.
        let cw = enrol_person(&site, &person_code.code, &mut SoftAuthenticator::new())
            .await
            .unwrap();
        assert_eq!(cw.role(), Role::Caseworker);
        let agent = t.enrol_machine(&agent_code.code).await;
        assert_eq!(agent.role(), Role::SyncAgent);

        // The person's device keys (taken from their session, as a thief of an unlocked laptop would)
        // do not sign them in: key login is for machines.
        let stolen = std::sync::Arc::new(
            DeviceKeys::from_secret_bytes(&cw.keys().to_secret_bytes().unwrap()).unwrap(),
        );
        let e = rfl_client::Session::login(&t.url(), cw.member_id(), stolen)
            .await
            .unwrap_err();
        assert_eq!(status(e), Some(401));

        // Without the authenticator there is no sign-in either: another authenticator is refused.
        assert!(
            sign_in_person(&site, cw.member_id(), &mut SoftAuthenticator::new())
                .await
                .is_err()
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_need_a_sign_in_within_five_minutes() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let mut soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let doc = t.openapi_document().await;
        let mut step_up_ops = 0;
        for (_, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                if op.get("x-step-up-seconds").is_some() {
                    step_up_ops += 1;
                }
            }
        }
        assert!(
            step_up_ops >= 8,
            "every admin write is marked: {step_up_ops}"
        );

        // Fresh: allowed.
        soc.admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        // Six minutes later the token is still valid (15 min) for ordinary reads...
        t.clock.advance_secs(6 * 60);
        soc.admin.api().members().await.unwrap();
        cw.list_cases(None, 10).await.unwrap();
        // ...but not for admin operations: 401 with RFC 9470's challenge.
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/enrolment-codes", t.url()))
            .bearer_auth(soc.admin.token().unwrap())
            .json(&serde_json::json!({"role": "caseworker"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("insufficient_user_authentication"),
            "{challenge}"
        );
        assert!(challenge.contains("max_age=300"), "{challenge}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body["type"],
            "https://rfl.example/problems/step-up-required"
        );
        let e = soc.admin.api().suspend(cw.member_id()).await.unwrap_err();
        assert_eq!(status(e), Some(401));
        // A fresh assertion with the admin's authenticator: allowed again.
        soc.step_up().await;
        soc.admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        soc.admin.api().suspend(cw.member_id()).await.unwrap();
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_authenticator_holds_the_keys_and_they_rewrap_without_it() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let site = t.site();
        let mut p = t.caseworker_person(&soc).await;
        let member = p.session.member_id();
        let case = p
            .session
            .create_case(&rfl_system_tests::case(1))
            .await
            .unwrap();

        // A second authenticator gets its own wrapping of the same keys.
        let mut second = SoftAuthenticator::new();
        p.session.add_authenticator(&mut second).await.unwrap();
        let via_second = sign_in_person(&site, member, &mut second).await.unwrap();
        let opened = via_second.open_case(case.id).await.unwrap();
        assert_eq!(opened.file, rfl_system_tests::case(1));
        assert_eq!(
            via_second.keys().signing.public_key(),
            p.session.keys().signing.public_key()
        );

        // Re-wrap to every authenticator with neither present (only their public halves are used);
        // both still open the keys afterwards.
        p.session.step_up(&mut p.authenticator).await.unwrap();
        assert_eq!(
            p.session
                .rewrap_keys_for_all_authenticators()
                .await
                .unwrap(),
            2
        );
        for a in [&mut p.authenticator, &mut second] {
            let s = sign_in_person(&site, member, a).await.unwrap();
            s.open_case(case.id).await.unwrap();
        }

        // A server that swaps an authenticator's public half for one of its own is caught before
        // anything is encrypted to it, and nothing is written.
        let rows = t.store.member_passkeys(member).unwrap();
        let mut wrap =
            rfl_crypto::AuthenticatorWrap::decode(rows[1].key_wrap.as_ref().unwrap()).unwrap();
        let servers_own = rfl_crypto::AgeIdentity::generate();
        wrap.recipient = servers_own.recipient();
        t.store
            .set_key_wraps(member, &[(rows[1].id.clone(), wrap.encode())])
            .unwrap();
        let e = p
            .session
            .rewrap_keys_for_all_authenticators()
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        let after = t.store.member_passkeys(member).unwrap();
        assert_eq!(
            after[0].key_wrap, rows[0].key_wrap,
            "nothing was re-wrapped"
        );
        t.stop().await;
    }
}

/// Everything the client sends during enrolment, sign-ins and adding an authenticator is recorded at
/// the socket, and the database is read back: neither holds the PRF outputs, the person's private keys,
/// or anything else a PRF output alone would let the server compute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_derived_from_the_prf_output_reaches_the_server() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let (proxy, recording) = recording_proxy(&t.url()).await;
        let site = rfl_client::Site::new(&proxy, &t.config.webauthn.rp_origin);

        let code = soc
            .admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        let mut first = SoftAuthenticator::new();
        let s = enrol_person(&site, &code.code, &mut first).await.unwrap();
        let member = s.member_id();
        let mut second = SoftAuthenticator::new();
        s.add_authenticator(&mut second).await.unwrap();
        soc.admin
            .certify_member(member, &s.keys_fingerprint())
            .await
            .unwrap();
        let mut signed_in = sign_in_person(&site, member, &mut second).await.unwrap();
        signed_in.pin_root(&soc.root_fingerprint).await.unwrap();
        let case = signed_in
            .create_case(&rfl_system_tests::case(2))
            .await
            .unwrap();
        signed_in.open_case(case.id).await.unwrap();
        let sent = recording.lock().unwrap().clone();
        assert!(
            sent.len() > 10_000,
            "the proxy saw the traffic ({} bytes)",
            sent.len()
        );

        let mut secrets: Vec<(String, Vec<u8>)> = vec![
            (
                "first PRF output".into(),
                prf_output(&t, member, &mut first).await.to_vec(),
            ),
            (
                "second PRF output".into(),
                prf_output(&t, member, &mut second).await.to_vec(),
            ),
            (
                "age identity".into(),
                s.keys()
                    .age
                    .to_secret_string()
                    .expose_secret()
                    .as_bytes()
                    .to_vec(),
            ),
            ("signing key".into(), s.keys().signing.pkcs8_der().to_vec()),
        ];
        // The Ed25519 seed alone (the last 32 bytes of ring's PKCS#8 v2 document hold the public key;
        // the seed sits at offset 16).
        secrets.push((
            "signing seed".into(),
            s.keys().signing.pkcs8_der()[16..48].to_vec(),
        ));
        // Positive control: the recording does hold what was sent in the clear (the member id).
        assert!(contains_any_encoding(&sent, member.to_string().as_bytes()));

        let db_text: Vec<u8> = t
            .store
            .member_passkeys(member)
            .unwrap()
            .into_iter()
            .flat_map(|p| [p.passkey.into_bytes(), p.key_wrap.unwrap_or_default()].concat())
            .collect();
        for (what, secret) in &secrets {
            assert!(
                !contains_any_encoding(&sent, secret),
                "the {what} reached the server"
            );
            assert!(
                !contains_any_encoding(&db_text, secret),
                "the {what} is in the database"
            );
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_enrolment_requests_are_4xx_problems() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross A").await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        let req = http.post(format!("{}{}", t.url(), path)).json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
            (status, ctype)
        }
    };
    let problem = "application/problem+json".to_owned();
    // A well-formed code that was never issued: the code lookup refuses it (the code is all that
    // starting a ceremony takes).
    let (never_issued, _) = rfl_api::identity::new_enrolment_code().unwrap();
    assert_eq!(
        post(
            "/v1/enrol/passkey/start",
            serde_json::json!({ "code": never_issued })
        )
        .await,
        (422, problem.clone())
    );
    let refusal: serde_json::Value = http
        .post(format!("{}/v1/enrol/passkey/start", t.url()))
        .json(&serde_json::json!({ "code": never_issued }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refusal["detail"], "unknown enrolment code");
    assert_eq!(
        post("/v1/enrol/passkey/start", serde_json::json!({}))
            .await
            .0,
        400
    );
    let code = soc
        .admin
        .issue_enrolment_code(Role::Caseworker)
        .await
        .unwrap();
    let start: serde_json::Value = http
        .post(format!("{}/v1/enrol/passkey/start", t.url()))
        .json(&serde_json::json!({"code": code.code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = DeviceKeys::generate().unwrap();
    let finish = |credential: serde_json::Value, wrap: Option<String>| {
        serde_json::json!({
            "ceremony_id": start["ceremony_id"],
            "credential": credential,
            "signing_key": base64_std(keys.signing.public_key().as_bytes()),
            "age_recipient": keys.age.recipient().to_string(),
            "key_wrap": wrap,
        })
    };
    // A malformed credential: 400 (serde), and the ceremony is still there to finish.
    assert_eq!(
        post(
            "/v1/enrol/passkey/finish",
            finish(serde_json::json!({"id": 1}), None)
        )
        .await,
        (400, problem.clone())
    );
    // An oversized key wrapping: 400 before anything is spent.
    let credential = serde_json::json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"},
        "extensions": {}
    });
    assert_eq!(
        post(
            "/v1/enrol/passkey/finish",
            finish(credential.clone(), Some(base64_std(&vec![1u8; 5000])))
        )
        .await,
        (400, problem.clone())
    );
    // A forged answer to the ceremony: refused (4xx), never 500; then the ceremony is spent.
    let forged = post("/v1/enrol/passkey/finish", finish(credential.clone(), None)).await;
    assert!((400..500).contains(&forged.0), "{forged:?}");
    assert_eq!(
        post("/v1/enrol/passkey/finish", finish(credential, None)).await,
        (401, problem)
    );
    t.stop().await;
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
