//! End-to-end: the real server on port 0, a fresh database per test (SQLite and PostgreSQL), the real
//! client SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::ClientError;
use rfl_crypto::CommitOp;
use rfl_domain::api::{RecordKind, StatusRequest, WriteRecordsRequest};
use rfl_domain::{CaseId, CaseStatus, Entry, RecordId};
use rfl_system_tests::case as synthetic_case;
use rfl_system_tests::{note, Backend, TestServer};

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
        // the server refuses it too, with a clear message, even from a correctly signed commit
        let opened = cw.open_case(created.id).await.unwrap();
        let commit = cw
            .commit_for(&opened, CommitOp::Status, CaseStatus::Open, &[])
            .unwrap();
        let raw = cw
            .api()
            .set_status(
                created.id,
                &StatusRequest {
                    status: CaseStatus::Open,
                    commit: commit.as_bytes().to_vec().into(),
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

        // Two writers open the same head; the first to commit wins.
        let first = cw.open_case(id).await.unwrap();
        let second = cw.open_case(id).await.unwrap();
        assert_eq!(first.head, second.head);
        cw.update_case(id, |f| {
            f.header.reference = Some("WINNER".into());
            Ok(())
        })
        .await
        .unwrap();
        // The second writer's commit is on the old head: refused with 409, nothing written — even
        // for a record the first writer did not touch.
        let note_id = RecordId::new();
        let write = cw
            .seal_record(
                &second,
                note_id,
                RecordKind::Note,
                1,
                &note("second writer"),
            )
            .unwrap();
        let commit = cw
            .commit_for(
                &second,
                CommitOp::Records,
                second.status,
                std::slice::from_ref(&write),
            )
            .unwrap();
        let raw = cw
            .api()
            .write_records(
                id,
                &WriteRecordsRequest {
                    records: vec![write],
                    commit: commit.as_bytes().to_vec().into(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(raw.status(), Some(409), "{raw}");
        assert!(raw.to_string().contains("reload"), "{raw}");
        // It reloads and succeeds; nothing of either write is lost.
        cw.update_case(id, |f| {
            f.notes.push(Entry::new(note_id, note("second writer")));
            Ok(())
        })
        .await
        .unwrap();
        let now = cw.open_case(id).await.unwrap();
        assert_eq!(now.file.header.reference.as_deref(), Some("WINNER"));
        assert!(now.file.notes.iter().any(|n| n.id == note_id));
        assert_eq!(now.head.seq, first.head.seq + 2);
        t.stop().await;
    }
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
        let e = alice
            .api()
            .create_case(&dto, &sealer.escrow_recipient().unwrap())
            .await
            .unwrap_err();
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

/// Eight editors take the same case file (as `rfl case show --json` gives it), change the same note,
/// and write at about the same time: one edit lands, the other seven are refused as conflicts naming
/// both versions; none is silently lost. An edit of another record from the same base still merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_from_one_base_never_overwrite_each_other() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = std::sync::Arc::new(t.caseworker(&soc).await);
        let mut file = synthetic_case(5);
        let note_id = RecordId::new();
        file.notes.push(Entry::new(note_id, note("original")));
        let id = cw.create_case(&file).await.unwrap().id;
        let shown = cw.open_case(id).await.unwrap();
        let base = shown.base().unwrap();

        let mut tasks = Vec::new();
        for i in 0..8 {
            let cw = cw.clone();
            let base = base.clone();
            let mut mine = shown.file.clone();
            mine.notes
                .iter_mut()
                .find(|n| n.id == note_id)
                .unwrap()
                .record
                .text = format!("edit {i}");
            tasks.push(tokio::spawn(async move {
                cw.update_from_base(id, &base, &mine).await
            }));
        }
        let mut landed = Vec::new();
        let mut conflicts = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(r) => {
                    assert_eq!(r.written, 1);
                    landed.push(i);
                }
                Err(ClientError::Conflict(c)) => {
                    assert_eq!(c.len(), 1);
                    assert_eq!(c[0].record, note_id);
                    assert_eq!(c[0].yours["text"], format!("edit {i}"));
                    assert!(c[0].theirs["text"].as_str().unwrap().starts_with("edit "));
                    conflicts += 1;
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(landed.len(), 1, "exactly one edit lands");
        assert_eq!(conflicts, 7);
        let now = cw.open_case(id).await.unwrap();
        let text = &now
            .file
            .notes
            .iter()
            .find(|n| n.id == note_id)
            .unwrap()
            .record
            .text;
        assert_eq!(text, &format!("edit {}", landed[0]));

        // From the same (now stale) base, a change to another record merges with the landed edit.
        let mut other = shown.file.clone();
        other.header.reference = Some("REF-MERGED".into());
        let r = cw.update_from_base(id, &base, &other).await.unwrap();
        assert_eq!((r.written, r.kept_theirs), (1, 1));
        let now = cw.open_case(id).await.unwrap();
        assert_eq!(now.file.header.reference.as_deref(), Some("REF-MERGED"));
        let text = &now
            .file
            .notes
            .iter()
            .find(|n| n.id == note_id)
            .unwrap()
            .record
            .text;
        assert_eq!(
            text,
            &format!("edit {}", landed[0]),
            "the other edit is kept"
        );

        // A file that leaves a record out is refused: records cannot be deleted.
        let mut fewer = now.file.clone();
        fewer.notes.clear();
        let e = cw
            .update_from_base(id, &now.base().unwrap(), &fewer)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Invalid(_)), "{e:?}");
        t.stop().await;
    }
}

/// The society's recovery path opens every case: the recovery identity unwraps the escrow identity,
/// which opens each escrow batch once (one age decryption per batch, not per case) and then every
/// case key of the batch, each the key its case's head commit commits to. A wrapping moved to another
/// case does not open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_key_opens_every_case_through_its_escrow_batch() {
    use std::collections::HashMap;
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        cw.create_case(&synthetic_case(1)).await.unwrap();
        let files: Vec<_> = (10..15).map(synthetic_case).collect();
        let report = cw.import(files, 2, |_| {}).await.unwrap();
        assert_eq!(report.created, 5);

        let society = *soc.id.as_uuid();
        let wrapped_identity = soc.admin.api().society().await.unwrap().escrow.unwrap();
        let escrow = rfl_crypto::unwrap_escrow_identity(
            &wrapped_identity.wrapped_identity.0,
            society,
            soc.recovery.as_age(),
        )
        .unwrap();
        let who = t.db.blob(soc.id.as_uuid().as_bytes());
        let ids = t.db.blobs(&format!(
            "SELECT case_id AS b FROM case_keys WHERE recipient_id = {who} ORDER BY case_id"
        ));
        let wraps = t.db.blobs(&format!(
            "SELECT wrapped AS b FROM case_keys WHERE recipient_id = {who} ORDER BY case_id"
        ));
        assert_eq!(wraps.len(), 6, "every case is wrapped to the escrow key");
        let mut batches: HashMap<uuid::Uuid, rfl_crypto::EscrowBatch> = HashMap::new();
        for (id, w) in ids.iter().zip(&wraps) {
            let case = uuid::Uuid::from_slice(id).unwrap();
            let info = rfl_crypto::escrow_wrap_info(w).unwrap();
            assert_eq!(info.society_id, society);
            let batch = match batches.entry(info.batch_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(rfl_crypto::EscrowBatch::open(w, society, escrow.as_age()).unwrap())
                }
            };
            let key = batch.unwrap(w, case, 1).unwrap();
            let dto = cw
                .api()
                .get_case(CaseId::from_uuid(case), None)
                .await
                .unwrap();
            let head = rfl_crypto::parse_commit(&dto.head_commit.unwrap().0).unwrap();
            assert!(head.commits_to_key(&key), "the recovered key is the case's");
            let other = uuid::Uuid::from_slice(&ids[0]).unwrap();
            if other != case {
                assert!(batch.unwrap(w, other, 1).is_err(), "bound to its case");
            }
        }
        // One batch for the case created alone, three for the import of five in requests of two.
        assert_eq!(batches.len(), 4);
        t.stop().await;
    }
}
