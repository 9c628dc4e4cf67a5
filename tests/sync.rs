//! National society sync (`docs/sync.md`), end to end on SQLite and PostgreSQL. So far: what a sync
//! agent reads before any change (which instance a server is and how far its society's changes
//! have got), and the changes feed it pulls, verified as a receiving server will verify it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use rfl_client::ClientError;
use rfl_client::Session;
use rfl_crypto::{parse_commit, CommitHash, DevicePublicKey};
use rfl_domain::api::{
    Base64Bytes, CaseSummaryDto, RecordDto, SyncCaseDto, SyncKeyDto, SyncOutcome, SyncPageDto,
    SyncPushDto, SyncPushResponse,
};
use rfl_domain::{CaseId, CaseStatus, MemberId};
use rfl_system_tests::{case, note, Backend, TestServer, TestSociety};

/// A server with society A (its sync agent and a caseworker) and society B (a caseworker).
struct TwoSocieties {
    t: TestServer,
    soc: TestSociety,
    agent: Session,
    cw: Session,
    other_cw: Session,
}

async fn two_societies(backend: Backend) -> TwoSocieties {
    let t = TestServer::start(backend).await;
    let soc = t.society("Red Cross A").await;
    let other = t.society("Red Crescent B").await;
    let agent = t.sync_agent(&soc).await;
    let cw = t.caseworker(&soc).await;
    let other_cw = t.caseworker(&other).await;
    TwoSocieties {
        t,
        soc,
        agent,
        cw,
        other_cw,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_agent_learns_the_instance_and_its_society_s_last_change() {
    for backend in Backend::ALL {
        let TwoSocieties {
            t,
            soc,
            agent,
            cw,
            other_cw,
        } = two_societies(backend).await;

        let before = agent.api().sync_info().await.unwrap();
        assert_eq!(before.society_id, soc.id);

        // A case of another society leaves the agent's society's sequence where it was; a case of
        // its own society (one case row and its records) moves it on.
        other_cw.create_case(&case(2)).await.unwrap();
        assert_eq!(agent.api().sync_info().await.unwrap(), before);
        cw.create_case(&case(1)).await.unwrap();
        let after = agent.api().sync_info().await.unwrap();
        assert_eq!(after.instance_id, before.instance_id);
        assert!(after.seq > before.seq, "{after:?} after {before:?}");
        // The society's admin reads the same.
        assert_eq!(soc.admin.api().sync_info().await.unwrap(), after);

        // Another server (another database) is another instance.
        let t2 = TestServer::start(backend).await;
        let soc2 = t2.society("Red Cross A").await;
        assert_ne!(
            soc2.admin.api().sync_info().await.unwrap().instance_id,
            after.instance_id
        );
        t2.stop().await;
        t.stop().await;
    }
}

/// Checks one case of a page as a receiving server will: every commit parses, is of this case,
/// is signed by its author's key and links to the one before it (from the first when the case
/// comes whole); the head is the case's version and lists exactly the records sent.
fn verify(c: &SyncCaseDto, authors: &HashMap<MemberId, DevicePublicKey>) {
    let mut parent: Option<CommitHash> = None;
    let mut head = None;
    for (i, bytes) in c.commits.iter().enumerate() {
        let commit = parse_commit(&bytes.0).unwrap();
        let body = *commit.body();
        assert_eq!(body.case_id, *c.case.id.as_uuid());
        if i == 0 && c.whole {
            assert_eq!(body.seq, 1, "a whole case starts at its first commit");
        }
        if let Some(p) = &parent {
            assert_eq!(body.parent, *p, "the chain holds");
        }
        parent = Some(commit.hash());
        let key = authors.get(&MemberId::from_uuid(body.author)).unwrap();
        head = Some(commit.verify(key).unwrap());
    }
    let head = head.expect("a changed case has at least its head");
    assert_eq!(head.body().seq, c.case.version);
    if c.whole {
        let envelopes: Vec<&[u8]> = c.records.iter().map(|r| r.envelope.0.as_slice()).collect();
        head.check_records(&envelopes).unwrap();
    }
}

/// One pass: every page from `since` until the feed says there is no more.
async fn pull_all(agent: &rfl_client::Session, since: u64, limit: u32) -> (Vec<SyncPageDto>, u64) {
    let mut pages = Vec::new();
    let mut cursor = since;
    loop {
        let page = agent
            .api()
            .sync_changes((since, cursor), None, Some(limit))
            .await
            .unwrap();
        assert_eq!((page.since, page.after), (since, cursor));
        cursor = page.next;
        let more = page.more;
        pages.push(page);
        if !more {
            return (pages, cursor);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_agent_pulls_its_society_s_changes_page_by_page_and_each_verifies() {
    for backend in Backend::ALL {
        let TwoSocieties {
            t,
            soc,
            agent,
            cw,
            other_cw,
        } = two_societies(backend).await;
        let cw2 = t.caseworker(&soc).await;
        let authors: HashMap<MemberId, DevicePublicKey> = [&cw, &cw2]
            .iter()
            .map(|s| (s.member_id(), s.keys().signing.public_key()))
            .collect();

        let mut ids: Vec<CaseId> = Vec::new();
        for seed in 1..=5 {
            ids.push(cw.create_case(&case(seed)).await.unwrap().id);
        }
        other_cw.create_case(&case(9)).await.unwrap();
        cw.add_note(ids[0], note("seen at the border post"))
            .await
            .unwrap();
        cw.set_status(ids[1], CaseStatus::Tracing).await.unwrap();
        cw.grant_case(ids[2], cw2.member_id()).await.unwrap();
        cw2.add_note(ids[2], note("a second caseworker's note"))
            .await
            .unwrap();

        // From 0, in pages of 2: each case once, in the order of its last change, whole, and
        // each verifies; another society's case is not there.
        let (pages, cursor) = pull_all(&agent, 0, 2).await;
        assert_eq!(pages.len(), 3);
        assert!(pages[0].more && pages[1].more && !pages[2].more);
        let got: Vec<CaseId> = pages
            .iter()
            .flat_map(|p| p.cases.iter().map(|c| c.case.id))
            .collect();
        assert_eq!(got, vec![ids[3], ids[4], ids[0], ids[1], ids[2]]);
        for c in pages.iter().flat_map(|p| &p.cases) {
            assert!(c.whole);
            verify(c, &authors);
        }
        let granted = pages[2].cases.iter().find(|c| c.case.id == ids[2]).unwrap();
        assert_eq!(granted.commits.len(), 3, "create, grant, note");
        assert!(granted
            .keys
            .iter()
            .any(|k| k.recipient_id == *cw2.member_id().as_uuid()));
        assert!(
            granted
                .keys
                .iter()
                .any(|k| k.recipient_id == *soc.id.as_uuid()),
            "the escrow key"
        );
        let info = agent.api().sync_info().await.unwrap();
        assert_eq!(
            cursor, info.seq,
            "the last page's cursor is the society's last number"
        );
        assert_eq!(pages[0].instance_id, info.instance_id);

        // Nothing new: one empty page. One more note: that case alone, its one new commit on top
        // of the head the reader has, and the one record it wrote.
        let (idle, same) = pull_all(&agent, cursor, 2).await;
        assert!(idle[0].cases.is_empty() && same == cursor);
        let old_head = parse_commit(&granted.commits[2].0).unwrap().hash();
        cw.add_note(ids[2], note("the family was found"))
            .await
            .unwrap();
        let (next, _) = pull_all(&agent, cursor, 2).await;
        let c = &next[0].cases[0];
        assert_eq!(
            (next[0].cases.len(), c.case.id, c.whole),
            (1, ids[2], false)
        );
        assert_eq!(c.commits.len(), 1);
        assert_eq!(
            parse_commit(&c.commits[0].0).unwrap().body().parent,
            old_head
        );
        assert_eq!(
            c.records.len(),
            1,
            "only the record written after the cursor"
        );
        verify(c, &authors);

        // A cursor it cannot honour says where to resume: beyond the last number, from the last
        // number; another instance's, from 0. A caseworker may not read the feed.
        let beyond = agent
            .api()
            .sync_changes((0, info.seq + 1_000), None, None)
            .await;
        match beyond {
            Err(ClientError::SyncCursor {
                resume_after,
                instance_id,
                ..
            }) => {
                assert_eq!(instance_id, info.instance_id);
                assert_eq!(resume_after, agent.api().sync_info().await.unwrap().seq);
            }
            other => panic!("{other:?}"),
        }
        let elsewhere = agent
            .api()
            .sync_changes((cursor, cursor), Some(uuid::Uuid::new_v4()), None)
            .await;
        assert!(
            matches!(
                elsewhere,
                Err(ClientError::SyncCursor {
                    resume_after: 0,
                    ..
                })
            ),
            "{elsewhere:?}"
        );
        assert_eq!(
            cw.api()
                .sync_changes((0, 0), None, None)
                .await
                .unwrap_err()
                .status(),
            Some(403)
        );
        t.stop().await;
    }
}

/// A commit of `case` that `author` signs on `parent` (the case's commit `on`), as a caseworker's
/// client does offline: the same records, holders and key, another status.
fn offline_status(
    author: &Session,
    on: &rfl_crypto::Commit,
    status: CaseStatus,
    created_at: i64,
) -> Vec<u8> {
    let mut body = *on.body();
    body.op = rfl_crypto::CommitOp::Status;
    body.seq = on.body().seq + 1;
    body.parent = on.hash();
    body.status = status.code();
    body.author = *author.member_id().as_uuid();
    body.created_at = created_at;
    body.sign(&author.keys().signing)
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// `case` as a push sends it: the case as pulled, with these commits and no records or keys.
fn with_commits(case: &SyncCaseDto, commits: Vec<Vec<u8>>) -> SyncCaseDto {
    SyncCaseDto {
        whole: false,
        commits: commits.into_iter().map(Base64Bytes).collect(),
        records: Vec::new(),
        keys: Vec::new(),
        ..case.clone()
    }
}

fn outcomes(r: &SyncPushResponse) -> Vec<(SyncOutcome, u64, u64, Option<u64>)> {
    r.cases
        .iter()
        .map(|o| (o.outcome, o.known, o.applied, o.at))
        .collect()
}

/// The records of a case sealed offline, as a push carries them.
fn made_records(
    sealed: &rfl_domain::api::NewCaseDto,
    author: &Session,
    now: i64,
) -> Vec<RecordDto> {
    sealed
        .records
        .iter()
        .map(|r| RecordDto {
            id: r.id,
            kind: r.kind,
            version: r.version,
            key_epoch: 1,
            author_id: author.member_id(),
            envelope: r.envelope.clone(),
            seq: 0,
            created_at: now,
            updated_at: now,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_verified_on_arrival_and_stored_only_where_it_continues_the_head() {
    for backend in Backend::ALL {
        let TwoSocieties {
            t, soc, agent, cw, ..
        } = two_societies(backend).await;
        let c1 = cw.create_case(&case(1)).await.unwrap().id;
        let c2 = cw.create_case(&case(2)).await.unwrap().id;
        let page = agent.api().sync_changes((0, 0), None, None).await.unwrap();
        let pulled = |id: CaseId| page.cases.iter().find(|c| c.case.id == id).unwrap().clone();
        let head1 = parse_commit(&pulled(c1).commits[0].0).unwrap();
        let now = 1_900_000_000_000;

        // What the server holds already is known, and nothing is written.
        let back = SyncPushDto {
            cases: page.cases.clone(),
        };
        let r = agent.api().sync_push("again", &back).await.unwrap();
        assert_eq!(
            outcomes(&r),
            vec![
                (SyncOutcome::Known, 1, 0, None),
                (SyncOutcome::Known, 1, 0, None)
            ]
        );

        // A commit the caseworker signed offline, on the head: stored, and the caseworker's own
        // client verifies it when it opens the case. In the same batch, every kind of tampering
        // is refused, and the good commit goes through anyway.
        let tracing = offline_status(&cw, &head1, CaseStatus::Tracing, now);
        let mut flipped = tracing.clone();
        flipped[200] ^= 1;
        let other_case = offline_status(
            &cw,
            &parse_commit(&pulled(c2).commits[0].0).unwrap(),
            CaseStatus::Tracing,
            now,
        );
        let stranger = rfl_crypto::DeviceSigningKey::generate().unwrap();
        let forged = {
            let mut b = *parse_commit(&tracing).unwrap().body();
            b.status = CaseStatus::Closed.code();
            b.sign(&stranger).unwrap().as_bytes().to_vec()
        };
        let located_on_tracing = offline_status(
            &cw,
            &parse_commit(&tracing).unwrap(),
            CaseStatus::Located,
            now + 1,
        );
        let gap = offline_status(
            &cw,
            &parse_commit(&located_on_tracing).unwrap(),
            CaseStatus::FamilyInformed,
            now + 2,
        );
        let batch = SyncPushDto {
            cases: vec![
                with_commits(&pulled(c1), vec![flipped]),
                with_commits(&pulled(c1), vec![other_case]),
                with_commits(&pulled(c1), vec![forged]),
                with_commits(&pulled(c1), vec![tracing.clone(), gap.clone()]),
                with_commits(&pulled(c1), vec![tracing.clone()]),
                with_commits(&pulled(c1), vec![gap.clone()]),
            ],
        };
        let r = agent.api().sync_push("offline-1", &batch).await.unwrap();
        let got = outcomes(&r);
        assert_eq!(
            got[0],
            (SyncOutcome::Refused, 0, 0, Some(2)),
            "{:?}",
            r.cases[0]
        );
        assert_eq!(
            got[1],
            (SyncOutcome::Refused, 0, 0, None),
            "{:?}",
            r.cases[1]
        );
        assert_eq!(
            got[2],
            (SyncOutcome::Refused, 0, 0, Some(2)),
            "{:?}",
            r.cases[2]
        );
        assert_eq!(
            got[3],
            (SyncOutcome::Refused, 0, 0, None),
            "a broken chain: {:?}",
            r.cases[3]
        );
        assert_eq!(
            got[4],
            (SyncOutcome::Applied, 0, 1, None),
            "{:?}",
            r.cases[4]
        );
        assert_eq!(
            got[5],
            (SyncOutcome::Refused, 0, 0, Some(4)),
            "a gap: {:?}",
            r.cases[5]
        );
        for (i, why) in [
            (0, "signature"),
            (1, "another case"),
            (2, "signature"),
            (5, "missing parent"),
        ] {
            let reason = r.cases[i].reason.as_deref().unwrap();
            assert!(reason.contains(why), "{i}: {reason}");
        }
        let opened = cw.open_case(c1).await.unwrap();
        assert_eq!(opened.status, CaseStatus::Tracing);
        assert_eq!(opened.summary.version, 2);

        // The same batch under the same key: the same answer, nothing written again. Another
        // batch under that key is refused.
        let again = agent.api().sync_push("offline-1", &batch).await.unwrap();
        assert_eq!(again, r);
        let reused = agent.api().sync_push("offline-1", &back).await.unwrap_err();
        assert_eq!(reused.status(), Some(422));

        // Written offline on the old head while the server moved on: a conflict, and the
        // server's version stands.
        let closed = offline_status(&cw, &head1, CaseStatus::Closed, now + 5);
        let r = agent
            .api()
            .sync_push(
                "offline-2",
                &SyncPushDto {
                    cases: vec![with_commits(&pulled(c1), vec![closed.clone()])],
                },
            )
            .await
            .unwrap();
        // Its records were not sent (only those written after the sender's cursor are), so the
        // server cannot check the branch's head, and asks for the case whole.
        assert_eq!(outcomes(&r), vec![(SyncOutcome::NeedsWhole, 0, 0, Some(2))]);
        assert!(t.store.case_branches(&[c1], true).unwrap().is_empty());
        // Sent whole, the branch is kept beside the server's own, and the server's version
        // stands; sent again, nothing changes. A branch whose head does not state the records
        // sent is refused.
        let mut whole = pulled(c1);
        whole.commits.push(Base64Bytes(closed.clone()));
        let mut wrong = whole.clone();
        wrong.records.pop();
        let r = agent
            .api()
            .sync_push("offline-3", &SyncPushDto { cases: vec![wrong] })
            .await
            .unwrap();
        assert_eq!(outcomes(&r)[0].0, SyncOutcome::Refused, "{r:?}");
        for key in ["offline-4", "offline-5"] {
            let r = agent
                .api()
                .sync_push(
                    key,
                    &SyncPushDto {
                        cases: vec![whole.clone()],
                    },
                )
                .await
                .unwrap();
            let stored = u64::from(key == "offline-4");
            assert_eq!(
                outcomes(&r),
                vec![(SyncOutcome::Conflict, 1, stored, Some(2))]
            );
        }
        let kept = t
            .store
            .case_branches(&[c1], true)
            .unwrap()
            .remove(&c1)
            .unwrap();
        assert_eq!((kept.fork_seq, kept.head_seq), (1, 2));
        assert_eq!(kept.commits, vec![closed.clone()]);
        assert_eq!(kept.records.len(), whole.records.len());
        assert_eq!(kept.keys.len(), whole.keys.len());
        assert_eq!(cw.open_case(c1).await.unwrap().status, CaseStatus::Tracing);

        // A case made offline at a field office: new here, stored whole, and its author opens it.
        let sealed = cw
            .sealer()
            .unwrap()
            .seal_new_case(&case(3), rfl_client::session::today())
            .unwrap();
        let escrow_gen = pulled(c2)
            .keys
            .iter()
            .find(|k| k.recipient_id == *soc.id.as_uuid())
            .unwrap()
            .escrow_gen;
        let made = SyncCaseDto {
            case: CaseSummaryDto {
                id: sealed.id,
                version: 1,
                status: CaseStatus::Open,
                ..pulled(c2).case
            },
            whole: true,
            commits: vec![sealed.commit.clone()],
            records: made_records(&sealed, &cw, now),
            keys: sealed
                .keys
                .iter()
                .map(|k| SyncKeyDto {
                    recipient_id: k.recipient_id,
                    key_epoch: 1,
                    escrow_gen: if k.recipient_id == *soc.id.as_uuid() {
                        escrow_gen
                    } else {
                        0
                    },
                    wrapped: k.wrapped.clone(),
                    keys_digest: None,
                    created_at: now,
                })
                .collect(),
        };
        // Without its records it does not match its commit, and is refused.
        let bare = SyncCaseDto {
            records: Vec::new(),
            ..made.clone()
        };
        let r = agent
            .api()
            .sync_push(
                "field-1",
                &SyncPushDto {
                    cases: vec![bare, made],
                },
            )
            .await
            .unwrap();
        assert_eq!(
            outcomes(&r),
            vec![
                (SyncOutcome::Refused, 0, 0, Some(1)),
                (SyncOutcome::Applied, 0, 1, None)
            ],
            "{r:?}"
        );
        let opened = cw.open_case(sealed.id).await.unwrap();
        assert_eq!(opened.file, case(3));

        // The agent's own key, certified by the society's admin, signs no commit that counts: a
        // sync agent carries commits, it does not write cases.
        soc.admin
            .certify_member(agent.member_id(), &agent.keys_fingerprint())
            .await
            .unwrap();
        let head2 = parse_commit(&tracing).unwrap();
        let by_agent = offline_status(&agent, &head2, CaseStatus::Closed, now + 9);
        // A record or a wrapped key sent twice, or a key of an epoch the case has not reached:
        // refused, so what is stored is exactly what was checked.
        let twice = SyncCaseDto {
            records: [
                made_records(&sealed, &cw, now),
                made_records(&sealed, &cw, now),
            ]
            .concat(),
            ..with_commits(&pulled(c2), vec![])
        };
        let mut early = pulled(c2);
        early.commits = vec![Base64Bytes(offline_status(
            &cw,
            &parse_commit(&pulled(c2).commits[0].0).unwrap(),
            CaseStatus::Tracing,
            now + 10,
        ))];
        early.whole = false;
        early.records = Vec::new();
        let mut key_twice = early.clone();
        key_twice.keys = [early.keys.clone(), early.keys.clone()].concat();
        let mut key_ahead = early.clone();
        for k in &mut key_ahead.keys {
            k.key_epoch = 2;
        }
        let r = agent
            .api()
            .sync_push(
                "field-2",
                &SyncPushDto {
                    cases: vec![
                        with_commits(&pulled(c1), vec![by_agent]),
                        SyncCaseDto {
                            commits: early.commits.clone(),
                            ..twice
                        },
                        key_twice,
                        key_ahead,
                    ],
                },
            )
            .await
            .unwrap();
        let reasons: Vec<String> = r
            .cases
            .iter()
            .map(|o| o.reason.clone().unwrap_or_default())
            .collect();
        assert!(
            r.cases.iter().all(|o| o.outcome == SyncOutcome::Refused),
            "{r:?}"
        );
        assert!(reasons[0].contains("not certified"), "{}", reasons[0]);
        assert!(reasons[1].contains("sent twice"), "{}", reasons[1]);
        assert!(reasons[2].contains("sent twice"), "{}", reasons[2]);
        assert!(reasons[3].contains("not reached"), "{}", reasons[3]);
        assert_eq!(cw.open_case(c1).await.unwrap().status, CaseStatus::Tracing);
        assert_eq!(cw.open_case(c2).await.unwrap().status, CaseStatus::Open);
        t.stop().await;
    }
}
