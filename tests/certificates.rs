//! Certified public keys end to end, on SQLite and PostgreSQL: the society root (pinned by fingerprint)
//! certifies the escrow key and admins, admins certify members, and a client wraps case keys only to
//! keys that verify. A server that substitutes a key is caught before any data key is wrapped to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::session::Session;
use rfl_client::ClientError;
use rfl_crypto::{
    issue_admin_cert, issue_escrow_cert, AgeIdentity, KeyCertificate, SocietyRootKey, Validity,
};
use rfl_domain::SocietyId;
use rfl_storage::CertificateRow;
use rfl_system_tests::{Backend, TestServer};

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_substitutes_keys_is_caught_before_any_data_key_is_wrapped() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let mut a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        a.create_case(&rfl_system_tests::case(1)).await.unwrap();

        // A's client trusts B's keys because the admin certified them, under the pinned root.
        let verified = a.certified_member(b.member_id()).await.unwrap();
        assert_eq!(
            verified.age_recipient().to_string(),
            b.keys().age.recipient().to_string()
        );
        assert_eq!(
            verified.signing_key().copied(),
            Some(b.keys().signing.public_key())
        );

        // The server swaps B's age recipient for its own inside B's genuine certificate: the signature
        // no longer verifies, and A's client refuses B's keys.
        let certs = t.store.society_certificates(soc.id).unwrap().certificates;
        let b_row = certs
            .iter()
            .find(|c| c.subject_id == *b.member_id().as_uuid())
            .unwrap()
            .clone();
        let genuine = b.keys().age.recipient().to_string();
        let servers = AgeIdentity::generate().recipient().to_string();
        let mut forged = b_row.certificate.clone();
        let at = forged
            .windows(genuine.len())
            .position(|w| w == genuine.as_bytes())
            .unwrap();
        forged[at..at + servers.len()].copy_from_slice(servers.as_bytes());
        assert!(
            KeyCertificate::from_bytes(&forged).is_ok(),
            "structurally fine"
        );
        t.store
            .put_certificates(
                soc.id,
                None,
                &[CertificateRow {
                    certificate: forged,
                    ..b_row.clone()
                }],
                0,
            )
            .unwrap();
        a.refresh_directory().await.unwrap();
        let e = a.certified_member(b.member_id()).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");

        // The server swaps the escrow key for one of its own, certified by a root of its own: A's client
        // refuses to create a case, and nothing reaches the server.
        let fake_root = SocietyRootKey::generate().unwrap();
        let own = AgeIdentity::generate();
        let v = Validity::new(now_secs() - 60, now_secs() + 3600).unwrap();
        let fake = issue_escrow_cert(&fake_root, *soc.id.as_uuid(), &own.recipient(), v).unwrap();
        t.store
            .put_certificates(
                soc.id,
                None,
                &[CertificateRow {
                    subject_id: *soc.id.as_uuid(),
                    certificate: fake.to_bytes(),
                    issued_at: 0,
                }],
                0,
            )
            .unwrap();
        a.refresh_directory().await.unwrap();
        let before = a.list_all_cases().await.unwrap().len();
        let e = a.create_case(&rfl_system_tests::case(2)).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        assert_eq!(
            a.list_all_cases().await.unwrap().len(),
            before,
            "no case was stored"
        );

        // A client pinned to another root trusts nothing on this server.
        let mut c = t.caseworker(&soc).await;
        let e = c.pin_root(&"0".repeat(32)).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_only_certificates_for_its_own_society_and_one_root() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross A").await;
    let other = t.society("Red Crescent B").await;
    let cw = t.caseworker(&soc).await;
    let certs = t.store.society_certificates(soc.id).unwrap().certificates;
    let hex: Vec<String> = certs
        .iter()
        .map(|c| KeyCertificate::from_bytes(&c.certificate).unwrap().to_hex())
        .collect();
    let http = reqwest::Client::new();
    // The status and, for a refusal, the reason given.
    let post = |token: &str, body: serde_json::Value| {
        let req = http
            .post(format!("{}/v1/certificates", t.url()))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body["detail"].as_str().map(str::to_owned))
        }
    };
    let certificates = |hex: &[String]| serde_json::json!({ "certificates": hex });
    let other_token = other.admin.token().unwrap().to_owned();
    let soc_token = soc.admin.token().unwrap().to_owned();
    let v = Validity::new(now_secs() - 60, now_secs() + 3600).unwrap();
    // A certificate for `member` (an admin, with their registered keys) naming `society`, signed by
    // `root`.
    let admin_cert = |root: &SocietyRootKey, society: SocietyId, member: &Session| {
        issue_admin_cert(
            root,
            *society.as_uuid(),
            *member.member_id().as_uuid(),
            member.keys().signing.public_key(),
            &member.keys().age.recipient(),
            v,
        )
        .unwrap()
        .to_hex()
    };

    // Tenancy of the certificate: B's admin files a certificate that is right in everything the
    // server checks (it parses; its subject is a member of B with that member's registered role and
    // keys) except that it names society A. It is refused for that; the same certificate naming B is
    // stored.
    let names_a = admin_cert(&other.root, soc.id, &other.admin);
    let names_b = admin_cert(&other.root, other.id, &other.admin);
    assert_eq!(
        post(&other_token, certificates(&[names_a])).await,
        (422, Some("a certificate is for another society".into()))
    );
    assert_eq!(
        post(&other_token, certificates(&[names_b])).await,
        (204, None)
    );
    // Tenancy of the subject: A's admin files a certificate naming society A for a member of B (B's
    // admin, with their registered keys and role). It is refused because its subject is not one of
    // A's members; the same certificate for A's own admin is stored.
    let b_admin_in_a = admin_cert(&soc.root, soc.id, &other.admin);
    let a_admin_in_a = admin_cert(&soc.root, soc.id, &soc.admin);
    assert_eq!(
        post(&soc_token, certificates(&[b_admin_in_a])).await,
        (
            422,
            Some("a certificate names no member of this society".into())
        )
    );
    assert_eq!(
        post(&soc_token, certificates(&[a_admin_in_a])).await,
        (204, None)
    );

    // A's genuine certificates filed by B's admin are refused too; garbage is a 400.
    assert_eq!(post(&other_token, certificates(&hex)).await.0, 422);
    assert_eq!(
        post(&other_token, certificates(&["zz".to_owned()])).await.0,
        400
    );
    // A caseworker cannot certify anyone.
    let cw_token = cw.token().unwrap().to_owned();
    assert_eq!(post(&cw_token, certificates(&hex)).await.0, 403);
    // The root is set once: another root is a conflict.
    let resp = http
        .put(format!("{}/v1/society/root", t.url()))
        .bearer_auth(soc.admin.token().unwrap())
        .json(&serde_json::json!({
            "root_public_key": base64_std(SocietyRootKey::generate().unwrap().public().as_bytes()),
            "certificates": hex,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    t.stop().await;
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A second society admin: enrolled with an admin's code, certified by the society root (only the
/// root issues admin certificates), then certifies a caseworker whom other members trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_admin_certified_by_the_root_certifies_members_others_trust() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let code = soc
            .admin
            .issue_enrolment_code(rfl_domain::Role::SocietyAdmin)
            .await
            .unwrap();
        let mut admin2 = t.enrol_person(&code.code).await.session;
        admin2.pin_root(&soc.root_fingerprint).await.unwrap();
        let fp = admin2.keys_fingerprint();
        // Another root, or keys that are not the ones read out: refused, nothing certified.
        let stranger = SocietyRootKey::generate().unwrap();
        assert!(soc
            .admin
            .certify_admin(admin2.member_id(), &fp, &stranger)
            .await
            .is_err());
        assert!(matches!(
            soc.admin
                .certify_admin(admin2.member_id(), &"0".repeat(32), &soc.root)
                .await,
            Err(ClientError::Tampered(_))
        ));
        soc.admin
            .certify_admin(admin2.member_id(), &fp, &soc.root)
            .await
            .unwrap();

        // The second admin certifies a caseworker; another caseworker trusts both.
        admin2.refresh_directory().await.unwrap();
        let code = admin2
            .issue_enrolment_code(rfl_domain::Role::Caseworker)
            .await
            .unwrap();
        let cw = t.enrol_person(&code.code).await.session;
        admin2
            .certify_member(cw.member_id(), &cw.keys_fingerprint())
            .await
            .unwrap();
        let other = t.caseworker(&soc).await;
        other.certified_member(cw.member_id()).await.unwrap();
        other.certified_member(admin2.member_id()).await.unwrap();
        // A caseworker is not certified as an admin.
        assert!(soc
            .admin
            .certify_admin(cw.member_id(), &cw.keys_fingerprint(), &soc.root)
            .await
            .is_err());
        t.stop().await;
    }
}
