//! Passkeys (WebAuthn) end to end, on SQLite and PostgreSQL: a real server, the real client, and a
//! software passkey (webauthn-authenticator-rs) doing real ceremonies with real signatures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::http::Api;
use rfl_client::passkey::PasskeyInfo;
use rfl_client::Session;
use rfl_domain::MemberId;
use rfl_system_tests::{Backend, TestServer};
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::{AuthenticatorBackend, WebauthnAuthenticator};

fn origin(t: &TestServer) -> Url {
    Url::parse(&t.url()).unwrap()
}

/// A software passkey that claims user verification (passkeys require it).
fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

async fn add_passkey(t: &TestServer, who: &Session, pk: &mut SoftPasskey) -> PasskeyInfo {
    let o = origin(t);
    who.api()
        .add_passkey(|opts| pk.do_registration(o, opts))
        .await
        .expect("register passkey")
}

/// Signs in with a passkey; an API handle carrying the new token.
async fn sign_in(t: &TestServer, member: MemberId, pk: &mut SoftPasskey) -> Api {
    let o = origin(t);
    let api = Api::new(&t.url()).unwrap();
    let tok = api
        .sign_in_with_passkey(member, |opts| pk.do_authentication(o, opts))
        .await
        .expect("passkey sign-in");
    assert_eq!(tok.token_type, "Bearer");
    api.with_token(tok.token)
}

/// POSTs raw JSON; returns status, content type and body (to check problem+json, not only the status).
async fn post_json(
    t: &TestServer,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> (u16, String, serde_json::Value) {
    let mut rb = reqwest::Client::new()
        .post(format!("{}{}", t.url(), path))
        .json(body);
    if let Some(tok) = token {
        rb = rb.bearer_auth(tok);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, ctype, body)
}

/// Asserts a refusal: the expected 4xx status, problem+json, and a detail mentioning `word`.
fn refused(what: &str, got: (u16, String, serde_json::Value), status: u16, word: &str) {
    let (s, ctype, body) = got;
    assert_eq!(s, status, "{what}: {body}");
    assert_eq!(ctype, "application/problem+json", "{what}");
    assert_eq!(body["status"], status, "{what}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(word), "{what}: {detail:?} lacks {word:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_register_sign_in_list_and_remove() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let mut first = authenticator();
        let mut second = authenticator();

        // a person enrols with a passkey (it holds the wrapping of their keys) and adds another
        let enrolled = cw.api().passkeys().await.unwrap();
        assert_eq!(enrolled.len(), 1);
        assert!(enrolled[0].key_wrap.is_some());
        let enrolled = enrolled[0].clone();
        let one = add_passkey(&t, &cw, &mut first).await;
        let listed = cw.api().passkeys().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&enrolled) && listed.contains(&one));
        let find = |l: &[PasskeyInfo], id: &str| l.iter().find(|p| p.id == id).cloned().unwrap();
        assert_eq!(find(&listed, &one.id).last_used_at, None);

        // and signs in with it; the token works
        let api = sign_in(&t, cw.member_id(), &mut first).await;
        let me = api.me().await.unwrap();
        assert_eq!(me.member_id, cw.member_id());
        assert_eq!(me.role, cw.role());
        let listed = api.passkeys().await.unwrap();
        assert!(
            find(&listed, &one.id).last_used_at.is_some(),
            "sign-in is recorded"
        );
        // the counter is updated, so signing in again works too
        sign_in(&t, cw.member_id(), &mut first).await;

        // a second authenticator
        let two = add_passkey(&t, &cw, &mut second).await;
        assert_ne!(one.id, two.id);
        assert_eq!(api.passkeys().await.unwrap().len(), 3);
        let api = sign_in(&t, cw.member_id(), &mut second).await;

        // removing one ends every session issued so far (the removed authenticator may be lost)
        api.delete_passkey(&one.id).await.unwrap();
        assert_eq!(api.me().await.unwrap_err().status(), Some(401));
        assert_eq!(cw.api().me().await.unwrap_err().status(), Some(401));
        let api = sign_in(&t, cw.member_id(), &mut second).await;
        let left = api.passkeys().await.unwrap();
        assert_eq!(left.len(), 2);
        find(&left, &two.id);
        api.delete_passkey(&enrolled.id).await.unwrap();
        let api = sign_in(&t, cw.member_id(), &mut second).await;

        // the last one is never removed; unknown ids are not found; garbage ids are bad requests
        let e = api.delete_passkey(&two.id).await.unwrap_err();
        assert_eq!(e.status(), Some(409), "{e}");
        let e = api.delete_passkey(&one.id).await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{e}");
        let e = api.delete_passkey("not*base64").await.unwrap_err();
        assert_eq!(e.status(), Some(400), "{e}");
        assert_eq!(api.passkeys().await.unwrap().len(), 1);
        assert!(api.me().await.is_ok(), "a refused removal changes nothing");

        // another member's passkey cannot be removed by id (not found, not told apart)
        let other = t.caseworker(&soc).await;
        let mut theirs = authenticator();
        add_passkey(&t, &other, &mut theirs).await;
        let e = other.api().delete_passkey(&two.id).await.unwrap_err();
        assert_eq!(e.status(), Some(404));

        // a member without a passkey (a machine) cannot start a passkey sign-in
        let agent_code = soc
            .admin
            .issue_enrolment_code(rfl_domain::Role::SyncAgent)
            .await
            .unwrap();
        let none = t.enrol_machine(&agent_code.code).await;
        let e = Api::new(&t.url())
            .unwrap()
            .passkey_login_start(none.member_id())
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webauthn_input_is_refused_with_problems_never_500() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let mut soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let other = t.caseworker(&soc).await;
        let mut pk = authenticator();
        let mut other_pk = authenticator();
        add_passkey(&t, &cw, &mut pk).await;
        let other_key = add_passkey(&t, &other, &mut other_pk).await;
        let token = cw.token().unwrap().to_owned();
        let anon = Api::new(&t.url()).unwrap();
        let wrong_origin = Url::parse("http://localhost:1").unwrap();

        // --- registration ---
        // wrong origin: the authenticator ran on another site
        let start = cw.api().passkey_register_start().await.unwrap();
        let cred = authenticator()
            .do_registration(wrong_origin.clone(), start.options)
            .unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "registration from another origin",
            post_json(&t, "/v1/passkeys/register/finish", Some(&token), &body).await,
            401,
            "origin",
        );
        // wrong relying party id (the low-level authenticator call skips the browser's own check)
        let start = cw.api().passkey_register_start().await.unwrap();
        let mut opts = start.options.public_key;
        opts.rp.id = "evil.example".into();
        let cred =
            AuthenticatorBackend::perform_register(&mut authenticator(), origin(&t), opts, 60_000)
                .unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "registration for another relying party",
            post_json(&t, "/v1/passkeys/register/finish", Some(&token), &body).await,
            401,
            "relying party",
        );
        // another member cannot finish my registration ceremony
        let start = cw.api().passkey_register_start().await.unwrap();
        let cred = authenticator()
            .do_registration(origin(&t), start.options)
            .unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "someone else's registration ceremony",
            post_json(
                &t,
                "/v1/passkeys/register/finish",
                Some(other.token().unwrap()),
                &body,
            )
            .await,
            401,
            "ceremony",
        );
        // malformed credential
        let start = cw.api().passkey_register_start().await.unwrap();
        let body =
            serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": { "id": 1 } });
        refused(
            "malformed registration",
            post_json(&t, "/v1/passkeys/register/finish", Some(&token), &body).await,
            400,
            "JSON",
        );
        // without a token
        let body = serde_json::json!({});
        refused(
            "unauthenticated registration",
            post_json(&t, "/v1/passkeys/register/start", None, &body).await,
            401,
            "sign in",
        );

        // --- sign-in ---
        // wrong origin
        let start = anon.passkey_login_start(cw.member_id()).await.unwrap();
        let cred = pk
            .do_authentication(wrong_origin.clone(), start.options)
            .unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "assertion from another origin",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "origin",
        );
        // wrong relying party id
        let start = anon.passkey_login_start(cw.member_id()).await.unwrap();
        let mut opts = start.options.public_key;
        opts.rp_id = "evil.example".into();
        let cred = AuthenticatorBackend::perform_auth(&mut pk, origin(&t), opts, 60_000).unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "assertion for another relying party",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "relying party",
        );
        // a ceremony is finished once
        let start = anon.passkey_login_start(cw.member_id()).await.unwrap();
        let cred = pk.do_authentication(origin(&t), start.options).unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        let (status, _, ok) = post_json(&t, "/v1/auth/passkey/finish", None, &body).await;
        assert_eq!(status, 200, "{ok}");
        assert!(ok["token"].is_string());
        refused(
            "reused ceremony",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "already used",
        );
        // and within 5 minutes
        let start = anon.passkey_login_start(cw.member_id()).await.unwrap();
        let cred = pk.do_authentication(origin(&t), start.options).unwrap();
        t.clock.advance_secs(301);
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "expired ceremony",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "expired",
        );
        // an expired ceremony is gone too
        refused(
            "expired ceremony, again",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "already used",
        );
        // an assertion by a credential registered to someone else
        let start = anon.passkey_login_start(cw.member_id()).await.unwrap();
        let mut opts = start.options;
        opts.public_key.allow_credentials[0].id = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &other_key.id,
        )
        .unwrap();
        let cred = other_pk.do_authentication(origin(&t), opts).unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "assertion from an unregistered credential",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "not registered",
        );
        // unknown ceremony; malformed assertion
        let body = serde_json::json!({ "ceremony_id": uuid::Uuid::now_v7(), "credential": cred });
        refused(
            "unknown ceremony",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "ceremony",
        );
        let body = serde_json::json!({ "ceremony_id": uuid::Uuid::now_v7(), "credential": "x" });
        refused(
            "malformed assertion",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            400,
            "JSON",
        );

        // a suspended member is refused, with a valid assertion (the admin signs in afresh: suspending
        // needs a sign-in within 5 minutes, and the clock moved on)
        soc.step_up().await;
        soc.admin.api().suspend(cw.member_id()).await.unwrap();
        let start = anon.passkey_login_start(cw.member_id()).await.unwrap();
        let cred = pk.do_authentication(origin(&t), start.options).unwrap();
        let body = serde_json::json!({ "ceremony_id": start.ceremony_id, "credential": cred });
        refused(
            "suspended member",
            post_json(&t, "/v1/auth/passkey/finish", None, &body).await,
            401,
            "suspended",
        );
        // reinstated, the same passkey works again
        soc.admin.api().reinstate(cw.member_id()).await.unwrap();
        sign_in(&t, cw.member_id(), &mut pk).await;
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_revokes_a_lost_authenticator_and_its_sessions_end() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let mut lost = authenticator();
        let info = add_passkey(&t, &cw, &mut lost).await;
        let session = sign_in(&t, cw.member_id(), &mut lost).await;
        assert!(session.me().await.is_ok());

        // the admin sees the member's authenticators and revokes the lost one, even the last
        let listed = soc
            .admin
            .api()
            .member_passkeys(cw.member_id())
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|p| p.id == info.id));
        let enrolled = listed.iter().find(|p| p.id != info.id).unwrap().id.clone();
        assert!(
            listed.iter().all(|p| p.key_wrap.is_none()),
            "an admin never sees key wrappings"
        );
        soc.admin
            .api()
            .revoke_member_passkey(cw.member_id(), &info.id)
            .await
            .unwrap();
        // ...and the other one too: even the last can be revoked by an admin
        soc.admin
            .api()
            .revoke_member_passkey(cw.member_id(), &enrolled)
            .await
            .unwrap();
        assert!(soc
            .admin
            .api()
            .member_passkeys(cw.member_id())
            .await
            .unwrap()
            .is_empty());

        // every token of the member stops at once, and the lost authenticator no longer signs in
        assert_eq!(session.me().await.unwrap_err().status(), Some(401));
        assert_eq!(cw.api().me().await.unwrap_err().status(), Some(401));
        let o = origin(&t);
        let again = Api::new(&t.url())
            .unwrap()
            .sign_in_with_passkey(cw.member_id(), |opts| lost.do_authentication(o, opts))
            .await;
        assert!(again.is_err());

        // caseworkers cannot revoke; admins of another society do not find the member
        let other = t.caseworker(&soc).await;
        let e = other
            .api()
            .revoke_member_passkey(cw.member_id(), &info.id)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(403));
        let b = t.society("Red Crescent B").await;
        let e = b
            .admin
            .api()
            .member_passkeys(cw.member_id())
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(404));
        t.stop().await;
    }
}
