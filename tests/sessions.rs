//! Instant lock-out and token hardening, end to end (SQLite and PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use rfl_system_tests::{case, Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_and_revocation_lock_out_on_the_next_request() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let id = cw.create_case(&case(1)).await.unwrap().id;
        assert!(cw.open_case(id).await.is_ok());

        // a suspended caseworker's token stops working at once
        soc.admin.api().suspend(cw.member_id()).await.unwrap();
        let e = cw.open_case(id).await.unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
        assert!(e.to_string().contains("suspended"));
        // reinstating does not revive the old token
        soc.admin.api().reinstate(cw.member_id()).await.unwrap();
        let e = cw.open_case(id).await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(e.to_string().contains("revoked"), "{e}");

        // only admins suspend; nobody suspends themselves; other societies' members are not found
        let other = t.caseworker(&soc).await;
        assert_eq!(
            other
                .api()
                .suspend(soc.admin.member_id())
                .await
                .unwrap_err()
                .status(),
            Some(403)
        );
        assert_eq!(
            soc.admin
                .api()
                .suspend(soc.admin.member_id())
                .await
                .unwrap_err()
                .status(),
            Some(422)
        );
        let b = t.society("Red Crescent B").await;
        assert_eq!(
            b.admin
                .api()
                .suspend(other.member_id())
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );

        // sign out everywhere: the token is dead on its next use
        assert!(other.api().me().await.is_ok());
        other.api().revoke_tokens().await.unwrap();
        let e = other.api().me().await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross A").await;
    let token = soc.admin.token().unwrap().to_owned();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let me = format!("{}/v1/me", t.url());
    let status = |tok: String| {
        let http = http.clone();
        let me = me.clone();
        async move {
            http.get(&me)
                .bearer_auth(tok)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let enc = |v: &serde_json::Value| b64.encode(serde_json::to_vec(v).unwrap());
    assert_eq!(status(token.clone()).await, 200);

    // alg none
    let mut h = header.clone();
    h["alg"] = "none".into();
    assert_eq!(status(format!("{}.{}.", enc(&h), parts[1])).await, 401);
    // HS256 keyed with the server's public key (the classic algorithm confusion)
    let mut h = header.clone();
    h["alg"] = "HS256".into();
    let signing_input = format!("{}.{}", enc(&h), parts[1]);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, t.tokens_public_key().as_slice());
    let sig = b64.encode(ring::hmac::sign(&key, signing_input.as_bytes()).as_ref());
    assert_eq!(status(format!("{signing_input}.{sig}")).await, 401);
    // unknown kid
    let mut h = header.clone();
    h["kid"] = "ed25519-0000000000000000".into();
    assert_eq!(
        status(format!("{}.{}.{}", enc(&h), parts[1], parts[2])).await,
        401
    );
    // changed claims (bad signature): wrong audience, wrong issuer, other role
    for (field, value) in [
        ("aud", "someone-else"),
        ("iss", "evil"),
        ("role", "movement_admin"),
    ] {
        let mut c = claims.clone();
        c[field] = value.into();
        assert_eq!(
            status(format!("{}.{}.{}", parts[0], enc(&c), parts[2])).await,
            401,
            "{field}"
        );
    }
    // expired and not yet valid, on the injected clock
    t.clock.advance_secs(900);
    assert_eq!(status(token.clone()).await, 401);
    t.clock.advance_secs(-2000);
    assert_eq!(status(token.clone()).await, 401);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_rate_limited_per_account_and_per_address() {
    let t = TestServer::start_with(Backend::Sqlite, |c| {
        c.limits.auth_per_minute_per_account = 3;
        c.limits.auth_per_minute_per_address = 8;
    })
    .await;
    let http = reqwest::Client::new();
    let challenge = |member: uuid::Uuid| {
        let http = http.clone();
        let url = format!("{}/v1/auth/challenge", t.url());
        async move {
            http.post(url)
                .json(&serde_json::json!({ "member_id": member }))
                .send()
                .await
                .unwrap()
        }
    };
    let victim = uuid::Uuid::now_v7();
    for _ in 0..3 {
        assert_eq!(challenge(victim).await.status(), 200);
    }
    let r = challenge(victim).await;
    assert_eq!(r.status(), 429, "the account's budget is spent");
    assert_eq!(r.headers().get("retry-after").unwrap(), "60");
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    // other accounts are served until the address's budget (8, counting the 4 above) is spent
    for _ in 0..4 {
        assert_eq!(challenge(uuid::Uuid::now_v7()).await.status(), 200);
    }
    assert_eq!(
        challenge(uuid::Uuid::now_v7()).await.status(),
        429,
        "the address's budget is spent"
    );
    let r = http
        .post(format!("{}/v1/auth/token", t.url()))
        .json(&serde_json::json!({"challenge_id": uuid::Uuid::now_v7(), "signature": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_codes_are_single_use_expiring_revocable_and_bound_to_a_society() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let b = t.society("Red Crescent B").await;
        let admin = soc.admin.api();
        let enrol_with = |code: String| {
            let site = t.site();
            async move {
                let mut authenticator = rfl_client::SoftAuthenticator::new();
                rfl_client::enrol_person(&site, &code, &mut authenticator).await
            }
        };

        // revoked before use: refused, and listed as expired
        let c = soc
            .admin
            .issue_enrolment_code(rfl_domain::Role::Caseworker)
            .await
            .unwrap();
        let listed = admin.enrolment_codes().await.unwrap();
        assert!(listed
            .codes
            .iter()
            .any(|i| i.id == c.id && i.used_at.is_none()));
        assert!(
            !serde_json::to_string(&listed).unwrap().contains(&c.code),
            "codes are never listed"
        );
        assert_eq!(
            b.admin
                .api()
                .revoke_enrolment_code(&c.id)
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );
        admin.revoke_enrolment_code(&c.id).await.unwrap();
        assert_eq!(
            enrol_with(c.code.clone()).await.unwrap_err().status(),
            Some(410)
        );
        assert_eq!(
            admin
                .revoke_enrolment_code("zz")
                .await
                .unwrap_err()
                .status(),
            Some(400)
        );

        // single use; a used code cannot be revoked
        let c = soc
            .admin
            .issue_enrolment_code(rfl_domain::Role::Caseworker)
            .await
            .unwrap();
        let member = enrol_with(c.code.clone()).await.unwrap();
        assert_eq!(
            member.society_id(),
            soc.id,
            "a code enrols into its own society only"
        );
        assert_eq!(
            enrol_with(c.code.clone()).await.unwrap_err().status(),
            Some(409)
        );
        assert_eq!(
            admin
                .revoke_enrolment_code(&c.id)
                .await
                .unwrap_err()
                .status(),
            Some(404)
        );

        // expiring (72 h by default), on the injected clock
        let c = soc
            .admin
            .issue_enrolment_code(rfl_domain::Role::Caseworker)
            .await
            .unwrap();
        t.clock.advance_secs(72 * 3600);
        assert_eq!(
            enrol_with(c.code.clone()).await.unwrap_err().status(),
            Some(410)
        );
        t.stop().await;
    }
}
