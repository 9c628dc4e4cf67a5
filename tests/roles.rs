//! Every operation in the OpenAPI document states who may call it (`x-roles`). This test walks every
//! operation with every role (and with no token) and checks the server enforces exactly that: callers
//! outside the list get 403 (401 without a token), callers inside it are never refused for their role.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_domain::Role;
use rfl_system_tests::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_the_roles_it_does_not_list() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross A").await;
    let cw = t.caseworker(&soc).await;
    let enrol_role = |role: Role| {
        let soc = &soc;
        let t = &t;
        async move {
            let code = soc.admin.issue_enrolment_code(role).await.unwrap();
            t.enrol(&code.code).await
        }
    };
    let auditor = enrol_role(Role::Auditor).await;
    let agent = t.sync_agent(&soc).await;
    let code =
        rfl_api::identity::movement_admin_code(&t.store, rfl_system_tests::T0_MILLIS, 72).unwrap();
    let movement = t.enrol(&code).await;
    assert_eq!(movement.role(), Role::MovementAdmin);

    let callers: Vec<(Role, String)> = vec![
        (Role::Caseworker, cw.token().unwrap().to_owned()),
        (Role::SocietyAdmin, soc.admin.token().unwrap().to_owned()),
        (Role::Auditor, auditor.token().unwrap().to_owned()),
        (Role::SyncAgent, agent.token().unwrap().to_owned()),
        (Role::MovementAdmin, movement.token().unwrap().to_owned()),
    ];

    let http = reqwest::Client::new();
    let doc = t.openapi_document().await;
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles: Vec<String> = op["x-roles"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} states no roles"))
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            operations.push((method.to_uppercase(), path.clone(), roles));
        }
    }
    assert!(operations.len() >= 20, "the document lists the API");
    // Signing out everywhere kills the token: walk it last.
    operations.sort_by_key(|(_, p, _)| p == "/v1/auth/revoke");

    let uuid = "01a20fa2-6d7b-76ae-8c51-a8a90959dcec";
    let mut checked = 0;
    for (method, path, roles) in &operations {
        let url = format!(
            "{}{}",
            t.url(),
            path.replace("{id}", uuid)
                .replace("{attachment}", uuid)
                .replace("{index}", "0")
        );
        let send = |token: Option<&str>| {
            let mut rb = http.request(method.parse().unwrap(), &url);
            if let Some(tok) = token {
                rb = rb.bearer_auth(tok);
            }
            if method != "GET" && method != "DELETE" {
                rb = if path.contains("/chunks/") {
                    rb.header("content-type", "application/octet-stream")
                        .body("x")
                } else {
                    rb.json(&serde_json::json!({}))
                };
            }
            async move { rb.send().await.unwrap().status().as_u16() }
        };
        if roles == &["public"] {
            let s = send(None).await;
            assert!(
                s != 401 && s != 403,
                "{method} {path} is public but answered {s}"
            );
            continue;
        }
        assert_eq!(send(None).await, 401, "{method} {path} without a token");
        for (role, token) in &callers {
            let s = send(Some(token)).await;
            if roles.iter().any(|r| r == role.as_str()) {
                assert!(
                    s != 401 && s != 403,
                    "{method} {path}: {} is allowed but got {s}",
                    role.as_str()
                );
            } else {
                assert_eq!(
                    s,
                    403,
                    "{method} {path}: {} is not listed and must be refused",
                    role.as_str()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 80, "checked {checked} role/operation pairs");
    t.stop().await;
}
