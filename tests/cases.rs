//! End-to-end: the real server on port 0, a fresh database per test (SQLite and PostgreSQL), the real
//! client SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::ClientError;
use rfl_domain::api::{RecordKind, StatusRequest, WriteRecordsRequest};
use rfl_domain::records::Note;
use rfl_domain::{CaseId, CaseStatus, Entry, RecordId};
use rfl_system_tests::case as synthetic_case;
use rfl_system_tests::{Backend, TestServer};

fn note(text: &str) -> Note {
    Note {
        author: "KM".into(),
        text: text.into(),
        created: rfl_client::session::today(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_life_cycle() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let file = synthetic_case(7);
        let created = cw.create_case(&file).await.unwrap();
        assert_eq!(created.status, CaseStatus::Open);

        let list = cw.list_all_cases().await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, created.id);
        assert!(list[0].record_count.unwrap() >= 3);

        let opened = cw.open_case(created.id).await.unwrap();
        assert_eq!(opened.file.header, file.header);
        assert_eq!(opened.file.persons.len(), file.persons.len());
        for p in &file.persons {
            assert!(opened.file.persons.contains(p), "person record round-trips");
        }

        // messages, notes, updates
        let note_id = cw
            .add_note(created.id, note("first contact made"))
            .await
            .unwrap();
        let opened = cw.open_case(created.id).await.unwrap();
        assert!(opened.file.notes.iter().any(|n| n.id == note_id));
        cw.update_case(created.id, |f| {
            f.header.reference = Some("REF-2".into());
            Ok(())
        })
        .await
        .unwrap();
        let opened = cw.open_case(created.id).await.unwrap();
        assert_eq!(opened.file.header.reference.as_deref(), Some("REF-2"));
        assert_eq!(opened.versions[&opened.header_id].1, 2);

        // status workflow, through the client and refused when illegal
        for s in [
            CaseStatus::Tracing,
            CaseStatus::Located,
            CaseStatus::FamilyInformed,
        ] {
            assert_eq!(cw.set_status(created.id, s).await.unwrap().status, s);
        }
        let err = cw
            .set_status(created.id, CaseStatus::Open)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Invalid(_)), "{err}");
        // the server refuses it too, with a clear message
        let raw = cw
            .api()
            .set_status(
                created.id,
                &StatusRequest {
                    status: CaseStatus::Open,
                    expected_version: 4,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(raw.status(), Some(422), "{raw}");
        assert!(
            raw.to_string()
                .contains("cannot go from family_informed to open"),
            "{raw}"
        );
        assert_eq!(
            cw.set_status(created.id, CaseStatus::Closed)
                .await
                .unwrap()
                .status,
            CaseStatus::Closed
        );

        // attachments: 3 chunks, streamed both ways
        let photo: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let aid = cw
            .attach(
                created.id,
                &photo[..],
                "photo.jpg",
                "image/jpeg",
                Some("family photo".into()),
                |_| {},
            )
            .await
            .unwrap();
        let opened = cw.open_case(created.id).await.unwrap();
        let meta = &opened
            .file
            .attachments
            .iter()
            .find(|a| a.id == aid)
            .unwrap()
            .record;
        assert_eq!((meta.size_bytes, meta.chunk_count), (600_000, 3));
        let mut back = Vec::new();
        assert_eq!(
            cw.download_attachment(&opened, aid, &mut back)
                .await
                .unwrap(),
            600_000
        );
        assert_eq!(back, photo);

        // the admin reads the caseworker's case? No: the key was wrapped to the caseworker and escrow only.
        assert_eq!(
            soc.admin.open_case(created.id).await.unwrap_err().status(),
            Some(404)
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_version_update_is_refused_and_loses_nothing() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let id = cw.create_case(&synthetic_case(3)).await.unwrap().id;

        // Two edits prepared from the same version; the second to arrive is refused.
        let first = cw.open_case(id).await.unwrap();
        let second = cw.open_case(id).await.unwrap();
        assert_eq!(first.versions, second.versions);
        cw.update_case(id, |f| {
            f.header.reference = Some("WINNER".into());
            Ok(())
        })
        .await
        .unwrap();
        // The second writer still has version n and sends version n+1: refused, nothing written.
        let header_v = second.versions[&second.header_id].1;
        // a write naming the old version goes to the server and is refused with 409
        let raw = cw
            .api()
            .write_records(
                id,
                &WriteRecordsRequest {
                    records: vec![rfl_domain::api::RecordWriteDto {
                        id: second.header_id,
                        kind: RecordKind::CaseHeader,
                        version: header_v + 1,
                        envelope: t_reseal(&cw, &second, header_v + 1).await,
                    }],
                },
            )
            .await
            .unwrap_err();
        assert_eq!(raw.status(), Some(409), "{raw}");
        let now = cw.open_case(id).await.unwrap();
        assert_eq!(
            now.file.header.reference.as_deref(),
            Some("WINNER"),
            "nothing lost"
        );
        t.stop().await;
    }
}

/// The envelope a second writer would send: the old header sealed as `version`.
async fn t_reseal(
    cw: &rfl_client::Session,
    opened: &rfl_client::OpenedCase,
    version: u64,
) -> rfl_domain::api::Base64Bytes {
    cw.seal_record(
        opened,
        opened.header_id,
        RecordKind::CaseHeader,
        version,
        &opened.file.header,
    )
    .unwrap()
    .envelope
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn societies_cannot_see_each_other() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let a = t.society("Red Cross A").await;
        let b = t.society("Red Crescent B").await;
        let alice = t.caseworker(&a).await;
        let carol = t.caseworker(&a).await;
        let bob = t.caseworker(&b).await;
        let id = alice.create_case(&synthetic_case(1)).await.unwrap().id;

        assert!(bob.list_all_cases().await.unwrap().is_empty());
        assert!(carol.list_all_cases().await.unwrap().is_empty());
        for s in [&bob, &carol] {
            let e = s.open_case(id).await.unwrap_err();
            assert_eq!(e.status(), Some(404), "not 403: existence is not revealed");
            assert_eq!(
                s.set_status(id, CaseStatus::Tracing)
                    .await
                    .unwrap_err()
                    .status(),
                Some(404)
            );
            assert_eq!(
                s.add_note(id, note("x")).await.unwrap_err().status(),
                Some(404)
            );
        }
        // guessing ids
        assert_eq!(
            bob.open_case(CaseId::new()).await.unwrap_err().status(),
            Some(404)
        );
        // a case may not be wrapped to a member of another society
        let mut file = synthetic_case(2);
        file.notes.push(Entry::new(RecordId::new(), note("n")));
        let sealer = alice.sealer().unwrap();
        let mut dto = sealer
            .seal_new_case(&file, rfl_client::session::today())
            .unwrap();
        dto.keys[0].recipient_id = *bob.member_id().as_uuid();
        dto.keys.push(rfl_domain::api::WrappedKeyDto {
            recipient_id: *alice.member_id().as_uuid(),
            wrapped: vec![1; 200].into(),
        });
        let e = alice.api().create_case(&dto).await.unwrap_err();
        assert_eq!(e.status(), Some(422), "{e}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_on_the_injected_clock() {
    let t = TestServer::start(Backend::Sqlite).await;
    let soc = t.society("Red Cross A").await;
    let cw = t.caseworker(&soc).await;
    assert!(cw.api().me().await.is_ok());
    t.clock.advance_secs(899);
    assert!(cw.api().me().await.is_ok());
    t.clock.advance_secs(1);
    let e = cw.api().me().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(e.to_string().contains("expired"));
    t.stop().await;
}
