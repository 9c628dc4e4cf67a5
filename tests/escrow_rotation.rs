//! Rotating the society escrow key (issue 9), on SQLite and PostgreSQL: every case key of every
//! epoch moves to the new key and opens with it, none with the old; the old key's certificate is
//! revoked, so a host serving it again is caught; a client that loaded the old key cannot store
//! wrappings for it once it is retired; an interrupted rotation resumes without the root key and
//! picks up cases written meanwhile under the old key; the old key stays the society's until then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use rfl_client::ClientError;
use rfl_crypto::{unwrap_escrow_identity, AgeIdentity, EscrowBatch};
use rfl_storage::EscrowWrapRow;
use rfl_system_tests::{case, Backend, TestServer, TestSociety};

/// The society's escrow identity as the server keeps it now, opened with the recovery key.
async fn escrow_identity(soc: &TestSociety) -> AgeIdentity {
    let e = soc.admin.api().society().await.unwrap().escrow.unwrap();
    unwrap_escrow_identity(
        &e.wrapped_identity.0,
        *soc.id.as_uuid(),
        soc.recovery.as_age(),
    )
    .unwrap()
}

/// Every escrow wrapping of the society under key generation `gen`.
fn rows(t: &TestServer, soc: &TestSociety, gen: i32) -> Vec<EscrowWrapRow> {
    t.store.escrow_wraps(soc.id, gen, None, 100_000).unwrap()
}

/// Opens every wrapping with `identity` (each batch header once); the keys, by (case, epoch).
fn open_all(
    soc: &TestSociety,
    identity: &AgeIdentity,
    rows: &[EscrowWrapRow],
) -> Result<HashMap<(uuid::Uuid, u32), [u8; 32]>, String> {
    let society = *soc.id.as_uuid();
    let mut batches: HashMap<uuid::Uuid, EscrowBatch> = HashMap::new();
    let mut keys = HashMap::new();
    for r in rows {
        let info = rfl_crypto::escrow_wrap_info(&r.wrapped).map_err(|e| e.to_string())?;
        let batch = match batches.entry(info.batch_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(
                EscrowBatch::open(&r.wrapped, society, identity.as_age())
                    .map_err(|e| e.to_string())?,
            ),
        };
        let key = batch
            .unwrap(&r.wrapped, r.case_id, r.key_epoch)
            .map_err(|e| e.to_string())?;
        keys.insert((r.case_id, r.key_epoch), *key.expose_bytes());
    }
    Ok(keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_key_moves_to_the_new_escrow_key_and_the_old_one_is_retired() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross E").await;
        let a = t.caseworker(&soc).await;
        let b = t.caseworker(&soc).await;
        let first = a.create_case(&case(1)).await.unwrap().id;
        a.import((10..15).map(case).collect(), 2, |_| {})
            .await
            .unwrap();
        // A case at its second key epoch: two escrow wrappings, both must move.
        a.grant_case(first, b.member_id()).await.unwrap();
        a.ungrant_case(first, b.member_id()).await.unwrap();
        let old = escrow_identity(&soc).await;
        let before = rows(&t, &soc, 1);
        assert_eq!(before.len(), 7, "6 cases, one at epoch 2");
        let keys = open_all(&soc, &old, &before).unwrap();
        let old_cert = t.db.blobs(&format!(
            "SELECT certificate AS b FROM key_certificates WHERE subject_id = {}",
            t.db.blob(soc.id.as_uuid().as_bytes())
        ));

        let seen = std::sync::Mutex::new(Vec::new());
        let report = soc
            .admin
            .rotate_escrow_by(&soc.recovery, Some(&soc.root), 3, |p| {
                seen.lock().unwrap().push((p.done, p.total))
            })
            .await
            .unwrap();
        assert!(report.completed && !report.resumed);
        assert_eq!((report.total, report.moved, report.done), (7, 7, 7));
        assert_eq!(report.new_gen, 2);
        assert!(report.revocation_list.is_some());
        assert!(report.unopened.is_empty());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(0, 7), (3, 7), (6, 7), (7, 7)],
            "progress in batches of 3"
        );

        // Every key of every epoch opens with the new key, and is the same key; none with the old.
        let new = escrow_identity(&soc).await;
        assert_ne!(new.recipient(), old.recipient());
        assert_eq!(new.recipient().to_string(), report.recipient);
        assert!(rows(&t, &soc, 1).is_empty());
        let after = rows(&t, &soc, 2);
        assert_eq!(open_all(&soc, &new, &after).unwrap(), keys);
        assert!(open_all(&soc, &old, &after).is_err());

        // A session that loaded the old key cannot store a case wrapped to it: refused, not stored
        // as the new key's. Reloaded, it wraps to the new key.
        let e = a.create_case(&case(30)).await.unwrap_err();
        assert_eq!(e.status(), Some(409), "{e}");
        let mut a = a;
        a.refresh_directory().await.unwrap();
        let id = a.create_case(&case(30)).await.unwrap().id;
        let latest = rows(&t, &soc, 2);
        let opened = open_all(&soc, &new, &latest).unwrap();
        assert!(opened.contains_key(&(*id.as_uuid(), 1)));

        // A recovery identity that does not open the escrow key starts nothing (a job whose new key
        // were wrapped to it could never be resumed).
        let e = soc
            .admin
            .rotate_escrow(&AgeIdentity::generate(), Some(&soc.root), |_| {})
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e}");
        assert!(soc
            .admin
            .escrow_rotation()
            .await
            .unwrap()
            .unwrap()
            .completed_at
            .is_some());
        // Running it again starts another rotation, which needs the root key.
        let e = soc
            .admin
            .rotate_escrow(&soc.recovery, None, |_| {})
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--root-key"), "{e}");
        // The host serving the old escrow certificate again is caught: its keys are revoked.
        t.db.tamper(&format!(
            "UPDATE key_certificates SET certificate = {} WHERE subject_id = {}",
            t.db.blob(&old_cert[0]),
            t.db.blob(soc.id.as_uuid().as_bytes())
        ));
        let mut b = b;
        b.refresh_directory().await.unwrap();
        let e = b.create_case(&case(31)).await.unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");

        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_resumes_and_catches_cases_written_meanwhile() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Crescent F").await;
        let cw = t.caseworker(&soc).await;
        cw.import((40..50).map(case).collect(), 5, |_| {})
            .await
            .unwrap();
        let old = escrow_identity(&soc).await;

        // The admin's client dies after its first batch of 4 (a panic stands for the crash).
        let run = soc
            .admin
            .rotate_escrow_by(&soc.recovery, Some(&soc.root), 4, |p| {
                if p.done >= 4 {
                    panic!("the client dies here");
                }
            });
        let crashed =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
        assert!(crashed.is_err());
        let job = soc.admin.escrow_rotation().await.unwrap().unwrap();
        assert_eq!((job.total, job.done, job.completed_at), (10, 4, None));
        // The old key is still the society's: every case still opens with it, and caseworkers
        // keep writing under it (these wrappings are found by the resumed run).
        assert_eq!(escrow_identity(&soc).await.recipient(), old.recipient());
        assert_eq!(rows(&t, &soc, 1).len(), 6);
        let late = cw.create_case(&case(60)).await.unwrap().id;
        assert!(open_all(&soc, &old, &rows(&t, &soc, 1)).is_ok());

        // Completing is refused while wrappings of the old key are left.
        let c: rfl_domain::api::EscrowCompletionDto = soc
            .admin
            .api()
            .post(
                "/v1/society/escrow/rotation/complete",
                &rfl_domain::api::CompleteEscrowRotation { new_gen: 2 },
            )
            .await
            .unwrap();
        assert_eq!(c.left, 7);
        assert!(c.rotation.completed_at.is_none());

        // Resumed without the root key: the new key comes from the job, opened with the recovery key.
        let report = soc
            .admin
            .rotate_escrow_by(&soc.recovery, None, 4, |_| {})
            .await
            .unwrap();
        assert!(report.completed && report.resumed);
        assert_eq!((report.moved, report.done, report.total), (7, 11, 10));
        let new = escrow_identity(&soc).await;
        assert_eq!(new.recipient().to_string(), job.recipient);
        let all = rows(&t, &soc, 2);
        assert_eq!(all.len(), 11);
        let keys = open_all(&soc, &new, &all).unwrap();
        assert!(keys.contains_key(&(*late.as_uuid(), 1)));
        // Each case opens for its caseworker as before.
        for c in cw.list_all_cases().await.unwrap() {
            let o = cw.open_case(c.id).await.unwrap();
            assert!(!o.file.persons.is_empty());
        }
        t.stop().await;
    }
}

/// Starts a rotation by hand (what a client that checks nothing would send); the error expected.
async fn start(
    soc: &TestSociety,
    new: &AgeIdentity,
    wrapped: &[u8],
    cert: &rfl_crypto::KeyCertificate,
) -> ClientError {
    soc.admin
        .api()
        .post::<_, rfl_domain::api::EscrowRotationDto>(
            "/v1/society/escrow/rotation",
            &rfl_domain::api::StartEscrowRotation {
                recipient: new.recipient().to_string(),
                wrapped_identity: wrapped.to_vec().into(),
                certificate: cert.to_hex(),
            },
        )
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_to_a_key_the_root_did_not_certify_is_refused() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross G").await;
    let cw = t.caseworker(&soc).await;
    cw.create_case(&case(1)).await.unwrap();
    let society = *soc.id.as_uuid();
    let new = AgeIdentity::generate();
    let wrapped =
        rfl_crypto::wrap_escrow_identity(&new, society, soc.recovery.recipient().as_age()).unwrap();
    // Certified by another root: the server refuses to start the job.
    let other = rfl_crypto::SocietyRootKey::generate().unwrap();
    let v = rfl_crypto::Validity::new(0, i64::MAX / 2).unwrap();
    let cert = rfl_crypto::issue_escrow_cert(&other, society, &new.recipient(), v).unwrap();
    let e = start(&soc, &new, &wrapped, &cert).await;
    assert_eq!(e.status(), Some(422), "{e}");
    // A genuine certificate of another key than the one given: refused too.
    let cert =
        rfl_crypto::issue_escrow_cert(&soc.root, society, &AgeIdentity::generate().recipient(), v)
            .unwrap();
    let e = start(&soc, &new, &wrapped, &cert).await;
    assert_eq!(e.status(), Some(422), "{e}");
    // A caseworker cannot start, list or move anything.
    let e = cw
        .api()
        .get::<rfl_domain::api::EscrowWrapsResponse>("/v1/society/escrow/rotation/wraps?gen=1")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    assert!(soc.admin.escrow_rotation().await.unwrap().is_none());
    t.stop().await;
}
