//! Malformed, mistyped, oversized and unauthenticated requests get a 4xx problem+json, never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use rfl_system_tests::case as synthetic_case;
use rfl_system_tests::{Backend, TestServer};

async fn expect_problem(resp: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problem_json() {
    for backend in Backend::ALL {
        let t = TestServer::start_with(backend, |c| c.limits.json_body_bytes = 64 * 1024).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let id = cw.create_case(&synthetic_case(1)).await.unwrap().id;
        let token = cw.token().unwrap().to_owned();
        let http = reqwest::Client::new();
        let url = |p: &str| format!("{}{}", t.url(), p);
        let authed = |rb: reqwest::RequestBuilder| rb.bearer_auth(&token);

        // no token, bad token
        expect_problem(http.get(url("/v1/cases")).send().await.unwrap(), 401).await;
        expect_problem(
            http.get(url("/v1/cases"))
                .bearer_auth("abc.def.ghi")
                .send()
                .await
                .unwrap(),
            401,
        )
        .await;
        // malformed JSON
        let r = authed(http.post(url("/v1/cases")))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        expect_problem(r, 400).await;
        // wrong types
        let r = authed(http.put(url(&format!("/v1/cases/{id}/status"))))
            .json(&serde_json::json!({"status": 5, "commit": 7}))
            .send()
            .await
            .unwrap();
        expect_problem(r, 400).await;
        // unknown fields
        let r = authed(http.put(url(&format!("/v1/cases/{id}/status"))))
            .json(&serde_json::json!({"status": "tracing", "commit": "AAAA", "force": true}))
            .send()
            .await
            .unwrap();
        expect_problem(r, 400).await;
        // unknown status value
        let r = authed(http.put(url(&format!("/v1/cases/{id}/status"))))
            .json(&serde_json::json!({"status": "vanished", "commit": "AAAA"}))
            .send()
            .await
            .unwrap();
        expect_problem(r, 400).await;
        // oversize body
        let r = authed(http.post(url(&format!("/v1/cases/{id}/records"))))
            .header("content-type", "application/json")
            .body(format!("{{\"records\":[\"{}\"]}}", "A".repeat(200_000)))
            .send()
            .await
            .unwrap();
        expect_problem(r, 413).await;
        // invalid ids
        expect_problem(
            authed(http.get(url("/v1/cases/not-a-uuid")))
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        expect_problem(
            authed(http.get(url(&format!("/v1/cases/{id}/attachments/x/chunks/0"))))
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        // bad query
        expect_problem(
            authed(http.get(url("/v1/cases?limit=0")))
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        expect_problem(
            authed(http.get(url("/v1/cases?limit=abc")))
                .send()
                .await
                .unwrap(),
            400,
        )
        .await;
        // unknown route, wrong content type
        expect_problem(http.get(url("/v2/nothing")).send().await.unwrap(), 404).await;
        expect_problem(
            authed(http.get(url(&format!("/v1/cases/{id}/nothing"))))
                .send()
                .await
                .unwrap(),
            404,
        )
        .await;
        let r = authed(http.post(url("/v1/cases")))
            .body("x")
            .send()
            .await
            .unwrap();
        expect_problem(r, 415).await;
        // an envelope filed under another case is refused before anything is stored
        let opened = cw.open_case(id).await.unwrap();
        let other = cw.create_case(&synthetic_case(2)).await.unwrap().id;
        let w = cw
            .seal_record(
                &opened,
                opened.header_id,
                rfl_domain::api::RecordKind::CaseHeader,
                2,
                &opened.file.header,
            )
            .unwrap();
        let commit = cw
            .commit_for(
                &opened,
                rfl_crypto::CommitOp::Records,
                opened.status,
                std::slice::from_ref(&w),
            )
            .unwrap();
        let commit = rfl_domain::api::Base64Bytes(commit.as_bytes().to_vec());
        let r = authed(http.post(url(&format!("/v1/cases/{other}/records"))))
            .json(&serde_json::json!({"records": [w], "commit": commit}))
            .send()
            .await
            .unwrap();
        let p = expect_problem(r, 422).await;
        assert!(p["detail"].as_str().unwrap().contains("case id"));
        // An unknown enrolment code, in a machine enrolment that is otherwise valid (a well-formed code
        // that was never issued, a real key pair): the code lookup refuses it. The same request with an
        // issued code enrols the machine.
        let keys = rfl_client::DeviceKeys::generate().unwrap();
        let enrolment = |code: &str| {
            serde_json::json!({
                "code": code,
                "signing_key": base64_std(keys.signing.public_key().as_bytes()),
                "age_recipient": keys.age.recipient().to_string(),
            })
        };
        let (never_issued, _) = rfl_api::identity::new_enrolment_code().unwrap();
        let r = http
            .post(url("/v1/enrol"))
            .json(&enrolment(&never_issued))
            .send()
            .await
            .unwrap();
        // Well-formed, so not 400: the rules refuse it (422).
        let p = expect_problem(r, 422).await;
        assert_eq!(p["detail"], "unknown enrolment code");
        let issued = soc
            .admin
            .issue_enrolment_code(rfl_domain::Role::SyncAgent)
            .await
            .unwrap();
        let r = http
            .post(url("/v1/enrol"))
            .json(&enrolment(&issued.code))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "the control enrols");
        // health and the OpenAPI document
        assert_eq!(
            http.get(url("/healthz")).send().await.unwrap().status(),
            200
        );
        assert_eq!(http.get(url("/readyz")).send().await.unwrap().status(), 200);
        let doc: serde_json::Value = http
            .get(url("/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert!(doc["paths"]["/v1/cases/{id}"]["get"].is_object());
        assert!(doc["paths"]["/v1/cases/batch"]["post"].is_object());
        t.stop().await;
    }
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A method the OpenAPI document does not list for a path it has is answered 405 with `Allow` (the
/// document's methods for that path) and a problem document, with or without a token; a literal path
/// is not taken for a template that also matches it (`/v1/cases/batch` is not `/v1/cases/{id}`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeclared_methods_get_405_with_allow() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross A").await;
    let cw = t.caseworker(&soc).await;
    let id = cw.create_case(&synthetic_case(1)).await.unwrap().id;
    let token = cw.token().unwrap().to_owned();
    let http = reqwest::Client::new();
    let doc = t.openapi_document().await;
    let cases = [
        ("PATCH", "/v1/cases".to_owned(), "/v1/cases", "GET, POST"),
        ("DELETE", format!("/v1/cases/{id}"), "/v1/cases/{id}", "GET"),
        (
            "GET",
            "/v1/cases/batch".to_owned(),
            "/v1/cases/batch",
            "POST",
        ),
        ("POST", "/v1/me".to_owned(), "/v1/me", "GET"),
        (
            "DELETE",
            "/v1/passkeys/key-wraps".to_owned(),
            "/v1/passkeys/key-wraps",
            "PUT",
        ),
        ("TRACE", "/healthz".to_owned(), "/healthz", "GET"),
        (
            "PUT",
            "/v1/openapi.json".to_owned(),
            "/v1/openapi.json",
            "GET",
        ),
    ];
    for (method, path, template, allow) in cases {
        // The expected methods are the document's.
        let documented: Vec<String> = doc["paths"][template]
            .as_object()
            .unwrap_or_else(|| panic!("{template} is in the document"))
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        assert_eq!(documented.join(", "), allow, "{template} in the document");
        for with_token in [false, true] {
            let mut rb = http.request(method.parse().unwrap(), format!("{}{path}", t.url()));
            if with_token {
                rb = rb.bearer_auth(&token);
            }
            let r = rb.send().await.unwrap();
            assert_eq!(
                r.headers().get("allow").and_then(|v| v.to_str().ok()),
                Some(allow),
                "{method} {path}: Allow"
            );
            let p = expect_problem(r, 405).await;
            assert_eq!(p["type"], "https://rfl.example/problems/method-not-allowed");
        }
    }
    // The declared method on the same paths still works.
    let r = http
        .get(format!("{}/v1/cases/{id}", t.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    t.stop().await;
}

/// An error the framework answers itself (an oversized attachment chunk, read as raw bytes) is a
/// problem document too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_errors_are_problem_json() {
    let t = TestServer::start_with(Backend::Sqlite, |c| c.limits.chunk_bytes = 1024).await;
    let soc = t.society("Red Cross A").await;
    let cw = t.caseworker(&soc).await;
    let id = cw.create_case(&synthetic_case(1)).await.unwrap().id;
    let path = format!(
        "/v1/cases/{id}/attachments/{}/chunks/0",
        uuid::Uuid::now_v7()
    );
    let r = t
        .send_raw(
            &cw,
            Method::PUT,
            &path,
            &[("content-type", "application/octet-stream")],
            vec![0u8; 4096],
        )
        .await;
    expect_too_large(r).await;
    t.stop().await;
}

async fn expect_too_large(r: reqwest::Response) {
    let p = expect_problem(r, 413).await;
    assert_eq!(p["type"], "https://rfl.example/problems/payload-too-large");
}

/// A bulk import larger than the batch limit (its own, above the JSON body limit) is refused with
/// 413 as problem+json; one that says so in `Content-Length` is refused before its body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_batch_is_refused_with_413() {
    let t = TestServer::start_with(Backend::Sqlite, |c| c.limits.batch_body_bytes = 1024).await;
    let soc = t.society("Red Cross A").await;
    let cw = t.caseworker(&soc).await;
    let body = format!("{{\"cases\":[\"{}\"]}}", "A".repeat(4096));
    let escrow = cw.sealer().unwrap().escrow_recipient().unwrap();
    let r = t
        .send_raw(
            &cw,
            Method::POST,
            "/v1/cases/batch",
            &[
                ("content-type", "application/json"),
                (rfl_domain::api::ESCROW_KEY_HEADER, escrow.as_str()),
            ],
            body,
        )
        .await;
    expect_too_large(r).await;
    t.stop().await;
}
