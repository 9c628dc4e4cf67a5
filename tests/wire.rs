//! The binary framing (`application/x-postcard`, docs/crypto.md "Binary framing") says what JSON
//! says: a case read either way is the same case, a batch sent either way stores the same cases, and
//! a body that is not what its `Content-Type` claims is refused with a problem, never stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use rfl_client::session::{today, Session};
use rfl_domain::api::{wire, BatchRequest, BatchResponse, CaseDto};
use rfl_domain::CaseId;
use rfl_system_tests::case as synthetic_case;
use rfl_system_tests::{Backend, TestServer};

async fn get_case_as(t: &TestServer, cw: &Session, id: CaseId, accept: &str) -> reqwest::Response {
    let path = format!("/v1/cases/{id}");
    t.send_raw(cw, Method::GET, &path, &[("accept", accept)], Vec::new())
        .await
}

async fn post_batch(
    t: &TestServer,
    cw: &Session,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let escrow = cw.sealer().unwrap().escrow_recipient().unwrap();
    let headers = [
        ("content-type", content_type),
        (rfl_domain::api::ESCROW_KEY_HEADER, escrow.as_str()),
    ];
    t.send_raw(cw, Method::POST, "/v1/cases/batch", &headers, body)
        .await
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A batch of new cases sealed by `cw`, with the seeds given.
fn sealed_batch(cw: &Session, seeds: std::ops::Range<u64>) -> BatchRequest {
    let sealer = cw.sealer().unwrap();
    let escrow = sealer.escrow_batch().unwrap();
    BatchRequest {
        cases: seeds
            .map(|s| {
                sealer
                    .seal_new_case_in(&escrow, &synthetic_case(s), CaseId::new(), today())
                    .unwrap()
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_reads_the_same_in_json_and_in_the_binary_framing() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let file = synthetic_case(3);
        let id = cw.create_case(&file).await.unwrap().id;

        let json = get_case_as(&t, &cw, id, "application/json").await;
        assert_eq!(json.status(), 200);
        assert_eq!(content_type(&json), "application/json");
        assert_eq!(json.headers().get("vary").unwrap(), "Accept");
        let json_bytes = json.bytes().await.unwrap();
        let from_json: CaseDto = serde_json::from_slice(&json_bytes).unwrap();

        let bin = get_case_as(
            &t,
            &cw,
            id,
            "application/json;q=0.5, application/x-postcard",
        )
        .await;
        assert_eq!(bin.status(), 200);
        assert_eq!(content_type(&bin), wire::MEDIA_TYPE);
        assert_eq!(bin.headers().get("vary").unwrap(), "Accept");
        let bytes = bin.bytes().await.unwrap();
        let from_bin: CaseDto = wire::decode(&bytes).unwrap();
        assert_eq!(
            serde_json::to_value(&from_bin).unwrap(),
            serde_json::to_value(&from_json).unwrap(),
            "the same case, field for field and byte for byte"
        );
        // No base64: the binary answer is at least a fifth smaller than the JSON one (base64 alone
        // makes the ciphertext a third larger), and no larger than the bytes it carries plus a
        // little framing.
        assert!(
            bytes.len() * 5 < json_bytes.len() * 4,
            "{} against {} in JSON",
            bytes.len(),
            json_bytes.len()
        );
        let carried: usize = from_bin
            .records
            .iter()
            .map(|r| r.envelope.0.len())
            .sum::<usize>()
            + from_bin.wrapped_key.0.len()
            + from_bin.head_commit.as_ref().map_or(0, |c| c.0.len());
        assert!(bytes.len() < carried + 400, "{} for {carried}", bytes.len());

        // What the client opens from the binary answer is the case as created, verified.
        let opened = cw.decrypt_case(id, from_bin).unwrap();
        assert_eq!(opened.file.header, file.header);
        let opened = cw.open_case(id).await.unwrap();
        assert_eq!(opened.file.persons.len(), file.persons.len());

        // An error answer stays a problem document, whatever was asked for.
        let missing = get_case_as(&t, &cw, CaseId::new(), wire::MEDIA_TYPE).await;
        assert_eq!(missing.status(), 404);
        assert_eq!(content_type(&missing), "application/problem+json");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stores_the_same_cases_in_json_and_in_the_binary_framing() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let as_json = sealed_batch(&cw, 10..13);
        let as_bin = sealed_batch(&cw, 20..23);

        let r = post_batch(&t, &cw, "application/json", as_json.to_json().unwrap()).await;
        assert_eq!(r.status(), 201);
        let r: BatchResponse = r.json().await.unwrap();
        assert_eq!((r.created, r.already_present), (3, 0));
        let r = post_batch(&t, &cw, wire::MEDIA_TYPE, as_bin.to_wire().unwrap()).await;
        assert_eq!(r.status(), 201);
        let r: BatchResponse = r.json().await.unwrap();
        assert_eq!((r.created, r.already_present), (3, 0));
        // The JSON batch sent again in the binary framing is the same batch: already there.
        let r = post_batch(&t, &cw, wire::MEDIA_TYPE, as_json.to_wire().unwrap()).await;
        let r: BatchResponse = r.json().await.unwrap();
        assert_eq!((r.created, r.already_present), (0, 3));

        for (batch, seeds) in [(&as_json, 10..13), (&as_bin, 20..23)] {
            for (case, seed) in batch.cases.iter().zip(seeds) {
                let opened = cw.open_case(case.id).await.unwrap();
                assert_eq!(opened.file.header, synthetic_case(seed).header);
            }
        }
        assert_eq!(cw.list_all_cases().await.unwrap().len(), 6);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_body_that_is_not_what_it_claims_is_refused_and_nothing_is_stored() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross A").await;
    let cw = t.caseworker(&soc).await;
    let batch = sealed_batch(&cw, 1..3);
    let bin = batch.to_wire().unwrap();

    let problem = |r: reqwest::Response, status: u16| async move {
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(content_type(&r), "application/problem+json");
        let p: serde_json::Value = r.json().await.unwrap();
        p["detail"].as_str().unwrap().to_owned()
    };
    // Binary bytes called JSON, JSON called binary, a binary body cut short or running on.
    let detail = problem(
        post_batch(&t, &cw, "application/json", bin.clone()).await,
        400,
    )
    .await;
    assert!(detail.contains("invalid JSON body"), "{detail}");
    let json = batch.to_json().unwrap();
    let detail = problem(post_batch(&t, &cw, wire::MEDIA_TYPE, json).await, 400).await;
    assert!(
        detail.contains("invalid application/x-postcard body"),
        "{detail}"
    );
    let cut = bin[..bin.len() - 1].to_vec();
    problem(post_batch(&t, &cw, wire::MEDIA_TYPE, cut).await, 400).await;
    let mut longer = bin.clone();
    longer.push(0);
    problem(post_batch(&t, &cw, wire::MEDIA_TYPE, longer).await, 400).await;
    // A media type the server does not read.
    let detail = problem(post_batch(&t, &cw, "text/plain", bin.clone()).await, 415).await;
    assert!(detail.contains(wire::MEDIA_TYPE), "{detail}");

    assert!(cw.list_all_cases().await.unwrap().is_empty());
    let r = post_batch(&t, &cw, wire::MEDIA_TYPE, bin).await;
    assert_eq!(r.status(), 201);
    assert_eq!(cw.list_all_cases().await.unwrap().len(), 2);
    t.stop().await;
}
