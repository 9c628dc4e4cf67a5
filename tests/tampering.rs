//! The host tampering suite: with the real server running, an attacker who holds the host edits the
//! database directly (SQLite file or PostgreSQL), and the real client opens the case. Every edit is
//! refused with `ClientError::Tampered` (exit code 7 in `rfl`) and a message that names what failed;
//! every legitimate change still opens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::{ClientError, Session};
use rfl_crypto::{wrap_data_key, DataKey};
use rfl_domain::api::RecordKind;
use rfl_domain::records::PersonRef;
use rfl_domain::{CaseFile, CaseId, CaseStatus, Entry, RecordId, RedCrossMessage};
use rfl_system_tests::{case, note, Backend, TestServer};
use uuid::Uuid;

/// A Red Cross message from the enquirer to a sought person of `f`.
fn message(f: &CaseFile) -> RedCrossMessage {
    let sought = f
        .persons
        .iter()
        .find(|p| !p.record.is_enquirer())
        .expect("a sought person")
        .id;
    RedCrossMessage {
        from: PersonRef::Enquirer,
        to: PersonRef::Record(sought),
        date: rfl_client::session::today(),
        language: "ar".into(),
        body: "We are safe in Amman".into(),
        delivery_status: Default::default(),
    }
}

/// A case with every kind of record (persons, a message, a note) and two commits, opened by `cw`, so
/// `cw` knows its head.
async fn fresh(cw: &Session, seed: u64) -> CaseId {
    let mut f = case(seed);
    if f.messages.is_empty() {
        let m = message(&f);
        f.messages.push(Entry::new(RecordId::new(), m));
    }
    let id = cw.create_case(&f).await.unwrap().id;
    cw.add_note(id, note("the enquirer is the person she fled from"))
        .await
        .unwrap();
    cw.open_case(id).await.unwrap();
    id
}

async fn refused(cw: &Session, id: CaseId, what: &str) {
    match cw.open_case(id).await {
        Err(ClientError::Tampered(m)) => {
            assert!(m.contains(what), "expected «{what}», got «{m}»")
        }
        Err(e) => panic!("expected a refusal naming «{what}», got {e:?}"),
        Ok(_) => panic!("the tampering went unnoticed (expected «{what}»)"),
    }
}

fn hexid(t: &TestServer, id: &Uuid) -> String {
    t.db.blob(id.as_bytes())
}

/// A record of `kind` in the case as stored.
fn record_of(
    t: &TestServer,
    cw: &Session,
    id: CaseId,
    kind: RecordKind,
) -> (RecordId, u64, Vec<u8>) {
    let b = t.store.get_case(cw.member_id(), id, None).unwrap().unwrap();
    let r = b
        .records
        .into_iter()
        .find(|r| r.kind == kind.code())
        .expect("a record of that kind");
    (r.id, r.version, r.envelope)
}

fn flip(mut b: Vec<u8>, at: usize) -> Vec<u8> {
    let i = at.min(b.len() - 1);
    b[i] ^= 0x01;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_edits_the_database_is_caught() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let mut person = t.caseworker_person(&soc).await;
        let carol = t.caseworker(&soc).await;
        let cw = &person.session;
        let me = *cw.member_id().as_uuid();

        // Delete the row of a sought person, a Red Cross message, a note.
        for (n, kind) in [RecordKind::Person, RecordKind::Message, RecordKind::Note]
            .into_iter()
            .enumerate()
        {
            let id = fresh(cw, 10 + n as u64).await;
            let (rid, _, _) = record_of(&t, cw, id, kind);
            let sql = format!(
                "DELETE FROM records WHERE id = {}",
                hexid(&t, rid.as_uuid())
            );
            assert_eq!(t.db.tamper(&sql), 1);
            refused(cw, id, "missing").await;
        }

        // Move a record row from one case into another: both are refused.
        let a = fresh(cw, 20).await;
        let b = fresh(cw, 21).await;
        let (rid, _, _) = record_of(&t, cw, a, RecordKind::Note);
        t.db.tamper(&format!(
            "UPDATE records SET case_id = {} WHERE id = {}",
            hexid(&t, b.as_uuid()),
            hexid(&t, rid.as_uuid())
        ));
        refused(cw, a, "missing").await;
        refused(cw, b, "another case").await;

        // Flip a byte of each stored blob: a record, the wrapped key, the head commit.
        let id = fresh(cw, 30).await;
        let (rid, _, env) = record_of(&t, cw, id, RecordKind::Person);
        t.db.tamper(&format!(
            "UPDATE records SET envelope = {} WHERE id = {}",
            t.db.blob(&flip(env, 100)),
            hexid(&t, rid.as_uuid())
        ));
        refused(cw, id, "altered").await;

        let id = fresh(cw, 31).await;
        let wrapped = t
            .store
            .get_case(cw.member_id(), id, None)
            .unwrap()
            .unwrap()
            .wrapped_key;
        t.db.tamper(&format!(
            "UPDATE case_keys SET wrapped = {} WHERE case_id = {} AND recipient_id = {}",
            t.db.blob(&flip(wrapped, 30)),
            hexid(&t, id.as_uuid()),
            hexid(&t, &me)
        ));
        refused(cw, id, "wrapped data key does not open").await;

        for at in [5usize, 40, 98, 120, 200] {
            let id = fresh(cw, 32 + at as u64).await;
            let head = t.store.get_case(cw.member_id(), id, None).unwrap().unwrap();
            let body = head.head_commit.unwrap();
            t.db.tamper(&format!(
                "UPDATE case_commits SET body = {} WHERE case_id = {} AND seq = {}",
                t.db.blob(&flip(body, at)),
                hexid(&t, id.as_uuid()),
                head.case.version
            ));
            refused(cw, id, "head commit").await;
        }

        // Re-attribute the head commit to another certified member.
        let id = fresh(cw, 40).await;
        let head = t.store.get_case(cw.member_id(), id, None).unwrap().unwrap();
        let mut body = head.head_commit.unwrap();
        body[99..115].copy_from_slice(carol.member_id().as_uuid().as_bytes());
        t.db.tamper(&format!(
            "UPDATE case_commits SET body = {} WHERE case_id = {} AND seq = {}",
            t.db.blob(&body),
            hexid(&t, id.as_uuid()),
            head.case.version
        ));
        refused(cw, id, "signature does not verify").await;

        // Delete the head commit.
        let id = fresh(cw, 41).await;
        t.db.tamper(&format!(
            "DELETE FROM case_commits WHERE case_id = {} AND seq = 2",
            hexid(&t, id.as_uuid())
        ));
        refused(cw, id, "no head commit").await;

        // Roll one record back to the version the client saw before the last update.
        let id = fresh(cw, 50).await;
        let (rid, v, old_env) = record_of(&t, cw, id, RecordKind::Note);
        cw.update_case(id, |f| {
            f.notes
                .iter_mut()
                .find(|n| n.id == rid)
                .unwrap()
                .record
                .text = "moved to Kakuma".into();
            Ok(())
        })
        .await
        .unwrap();
        cw.open_case(id).await.unwrap();
        t.db.tamper(&format!(
            "UPDATE records SET envelope = {}, version = {v} WHERE id = {}",
            t.db.blob(&old_env),
            hexid(&t, rid.as_uuid())
        ));
        refused(cw, id, "rolled back").await;

        // Roll the whole case back to its state before the last update (records, head, commits).
        let id = fresh(cw, 51).await;
        let before = t.store.get_case(cw.member_id(), id, None).unwrap().unwrap();
        cw.update_case(id, |f| {
            f.notes
                .push(Entry::new(RecordId::new(), note("second note")));
            f.header.reference = Some("NEW".into());
            Ok(())
        })
        .await
        .unwrap();
        cw.open_case(id).await.unwrap();
        let cid = hexid(&t, id.as_uuid());
        let kept: Vec<String> = before
            .records
            .iter()
            .map(|r| hexid(&t, r.id.as_uuid()))
            .collect();
        t.db.tamper(&format!(
            "DELETE FROM records WHERE case_id = {cid} AND id NOT IN ({})",
            kept.join(", ")
        ));
        for r in &before.records {
            t.db.tamper(&format!(
                "UPDATE records SET envelope = {}, version = {} WHERE id = {}",
                t.db.blob(&r.envelope),
                r.version,
                hexid(&t, r.id.as_uuid())
            ));
        }
        t.db.tamper(&format!(
            "DELETE FROM case_commits WHERE case_id = {cid} AND seq > {}",
            before.case.version
        ));
        t.db.tamper(&format!(
            "UPDATE cases SET version = {}, head_hash = {} WHERE id = {cid}",
            before.case.version,
            t.db.blob(before.case.head_hash.as_deref().unwrap())
        ));
        refused(cw, id, "rolled this case back").await;

        // Rewrite the status.
        let id = fresh(cw, 60).await;
        t.db.tamper(&format!(
            "UPDATE cases SET status = 'closed_at_enquirer_request' WHERE id = {}",
            hexid(&t, id.as_uuid())
        ));
        refused(cw, id, "status was rewritten").await;

        // Serve a wrapped key of a fresh data key, bound to the right case and epoch (the member's
        // age recipient is public)...
        let recipient = cw.keys().age.recipient();
        let id = fresh(cw, 70).await;
        let forged = wrap_data_key(
            &DataKey::generate().unwrap(),
            *id.as_uuid(),
            1,
            recipient.as_age(),
        )
        .unwrap();
        t.db.tamper(&format!(
            "UPDATE case_keys SET wrapped = {} WHERE case_id = {} AND recipient_id = {}",
            t.db.blob(&forged),
            hexid(&t, id.as_uuid()),
            hexid(&t, &me)
        ));
        refused(cw, id, "not the one this case is sealed under").await;

        // ... and by claiming a new key epoch.
        let id = fresh(cw, 71).await;
        let forged = wrap_data_key(
            &DataKey::generate().unwrap(),
            *id.as_uuid(),
            2,
            recipient.as_age(),
        )
        .unwrap();
        t.db.tamper(&format!(
            "INSERT INTO case_keys (case_id, recipient_id, key_epoch, wrapped, created_at) \
             VALUES ({}, {}, 2, {}, 0)",
            hexid(&t, id.as_uuid()),
            hexid(&t, &me),
            t.db.blob(&forged)
        ));
        t.db.tamper(&format!(
            "UPDATE cases SET key_epoch = 2 WHERE id = {}",
            hexid(&t, id.as_uuid())
        ));
        refused(cw, id, "key epoch").await;

        // The history between the head this client saw and the current head: another session of
        // the same person commits twice; the client follows the chain. Deleting or altering a
        // commit in between breaks it.
        let mut other =
            rfl_client::sign_in_person(&t.site(), cw.member_id(), &mut person.authenticator)
                .await
                .unwrap();
        other.pin_root(&soc.root_fingerprint).await.unwrap();
        let cw = &person.session;
        for (n, edit) in ["none", "delete", "alter"].into_iter().enumerate() {
            let id = fresh(cw, 80 + n as u64).await;
            other.add_note(id, note("first")).await.unwrap();
            other.set_status(id, CaseStatus::Tracing).await.unwrap();
            let cid = hexid(&t, id.as_uuid());
            match edit {
                "none" => {
                    let opened = cw.open_case(id).await.unwrap();
                    assert_eq!(opened.head.seq, 4);
                    assert_eq!(opened.status, CaseStatus::Tracing);
                    continue;
                }
                "delete" => {
                    t.db.tamper(&format!(
                        "DELETE FROM case_commits WHERE case_id = {cid} AND seq = 3"
                    ));
                }
                _ => {
                    let b = t
                        .store
                        .get_case(cw.member_id(), id, Some(2))
                        .unwrap()
                        .unwrap();
                    let c3 = flip(b.commits_since[0].clone(), 120);
                    t.db.tamper(&format!(
                        "UPDATE case_commits SET body = {} WHERE case_id = {cid} AND seq = 3",
                        t.db.blob(&c3)
                    ));
                }
            }
            refused(cw, id, "does not descend").await;
        }

        // Legitimate changes of every kind still open, for this client and for one that never saw
        // the case.
        let id = fresh(cw, 90).await;
        cw.set_status(id, CaseStatus::Tracing).await.unwrap();
        cw.attach(
            id,
            &b"scan"[..],
            "scan.pdf",
            "application/pdf",
            None,
            |_| {},
        )
        .await
        .unwrap();
        let shown = cw.open_case(id).await.unwrap();
        cw.add_message(id, message(&shown.file)).await.unwrap();
        let opened = cw.open_case(id).await.unwrap();
        assert_eq!(opened.file.attachments.len(), 1);
        let fresh_eyes = other.open_case(id).await.unwrap();
        assert_eq!(fresh_eyes.head, opened.head);

        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_attachment_chunk_is_caught() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let cw = t.caseworker(&soc).await;
        let id = fresh(&cw, 1).await;
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let aid = cw
            .attach(id, &bytes[..], "photo.jpg", "image/jpeg", None, |_| {})
            .await
            .unwrap();
        let chunk = t
            .store
            .get_chunk(cw.member_id(), id, aid, 1)
            .unwrap()
            .unwrap();
        t.db.tamper(&format!(
            "UPDATE attachment_chunks SET data = {} WHERE attachment_id = {} AND idx = 1",
            t.db.blob(&flip(chunk, 17)),
            hexid(&t, aid.as_uuid())
        ));
        let opened = cw.open_case(id).await.unwrap();
        let mut out = Vec::new();
        let e = cw
            .download_attachment(&opened, aid, &mut out)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ClientError::Tampered(m) if m.contains("attachment")),
            "{e:?}"
        );
        t.stop().await;
    }
}
