//! A case changed on two instances of one society while they were apart (`docs/sync.md`,
//! "Conflicts and merges"): the society's own server and the hub, one on SQLite and the other on
//! PostgreSQL, each keep both versions after one round of the sync agent; caseworkers see both,
//! verified, and merge them; the merge reaches the other side, whichever side made it, and both
//! sides end with the same commits, records and keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::session::{MergePlan, Side};
use rfl_client::sync::{round, SyncState};
use rfl_client::{ClientError, Session};
use rfl_domain::api::{RecordDto, SyncOutcome, SyncPushDto};
use rfl_domain::CaseStatus;
use rfl_system_tests::instances::{everything, pair, Pair, ORDERS};
use rfl_system_tests::{case, note, Backend, TestServer, T0_MILLIS};

/// A commit of a case that `author` signs on `on`, as their client does offline at a field office
/// that syncs with the hub: the same records, holders and key, another status.
fn offline_status(author: &Session, on: &rfl_crypto::Commit, status: CaseStatus) -> Vec<u8> {
    let mut body = *on.body();
    body.op = rfl_crypto::CommitOp::Status;
    body.seq = on.body().seq + 1;
    body.parent = on.hash();
    body.status = status.code();
    body.author = *author.member_id().as_uuid();
    body.created_at = T0_MILLIS + 60_000;
    body.sign(&author.keys().signing)
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// A case changed on both sides while they were apart, before they meet again: the caseworker of
/// the society's server added a note there, and a field office that syncs with the hub marked it as
/// being traced there (a commit the caseworker's client signed offline), both on commit 1.
struct Apart {
    p: Pair,
    cw: Session,
    id: rfl_domain::CaseId,
    state: SyncState,
    /// The field office's commit 2 (the hub's head), and the society's server's commit 2.
    tracing: Vec<u8>,
    own_head: Vec<u8>,
}

/// What the hub keeps of another version of case `id`.
fn kept_of(server: &TestServer, id: rfl_domain::CaseId) -> rfl_storage::Branch {
    server
        .store
        .case_branches(&[id], true)
        .unwrap()
        .remove(&id)
        .unwrap()
}

/// A field office's sync with the hub (here, its agent's push): the hub applies `case` on its head.
async fn from_field_office(hub: &Session, key: &str, case: rfl_domain::api::SyncCaseDto) {
    let r = hub
        .api()
        .sync_push(key, &SyncPushDto { cases: vec![case] })
        .await
        .unwrap();
    assert_eq!(r.cases[0].outcome, SyncOutcome::Applied, "{r:?}");
}

/// `case` as a sync sends it after `merge`, made by `author` on the version `on`: the merge commit
/// on top, and the records it writes in place of theirs.
fn with_merge(
    mut case: rfl_domain::api::SyncCaseDto,
    merge: &rfl_client::session::SignedMerge,
    on: &rfl_client::OpenedCase,
    author: &Session,
) -> rfl_domain::api::SyncCaseDto {
    case.commits.push(merge.commit.as_bytes().to_vec().into());
    for w in &merge.records {
        case.records.retain(|r| r.id != w.id);
        case.records.push(RecordDto {
            id: w.id,
            kind: w.kind,
            version: w.version,
            key_epoch: on.summary.key_epoch,
            author_id: author.member_id(),
            envelope: w.envelope.clone(),
            seq: 0,
            created_at: T0_MILLIS,
            updated_at: T0_MILLIS,
        });
    }
    case
}

async fn apart(own_backend: Backend, hub_backend: Backend) -> Apart {
    let p = pair(own_backend, hub_backend).await;
    let (own, hub) = (&p.agent_own, &p.agent_hub);
    let cw = p.own.caseworker(&p.soc).await;
    let id = cw.create_case(&case(4)).await.unwrap().id;
    let mut state = SyncState::default();
    round(own, hub, &mut state, Some(2), |_| Ok(()))
        .await
        .unwrap();
    assert_eq!(everything(own).await, everything(hub).await);
    cw.add_note(id, note("the brother wrote from the camp"))
        .await
        .unwrap();
    let mut at_hub = hub.api().sync_case_whole(id).await.unwrap();
    let first = rfl_crypto::parse_commit(&at_hub.commits[0].0).unwrap();
    let tracing = offline_status(&cw, &first, CaseStatus::Tracing);
    at_hub.commits.push(tracing.clone().into());
    from_field_office(hub, "field-office", at_hub).await;
    let own_head = own.api().sync_case_whole(id).await.unwrap().commits[1]
        .0
        .clone();
    Apart {
        p,
        cw,
        id,
        state,
        tracing,
        own_head,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_changed_on_both_sides_while_apart_keeps_both_versions_on_both_sides() {
    for (own_backend, hub_backend) in ORDERS {
        let Apart {
            p,
            cw,
            id,
            mut state,
            tracing,
            own_head,
        } = apart(own_backend, hub_backend).await;
        let (own, hub) = (&p.agent_own, &p.agent_hub);

        // They meet: each side is sent the other's version, asks for it whole, and keeps it
        // beside its own. Nothing is overwritten: each side's own version still stands.
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        for (way, pass) in [("to the hub", &r.to_hub), ("from the hub", &r.from_hub)] {
            assert_eq!(pass.conflicts.len(), 1, "{way}: {r:?}");
            assert_eq!(pass.conflicts[0].at, Some(2), "{way}: {r:?}");
            assert_eq!(pass.conflicts[0].applied, 1, "{way}: {r:?}");
            assert!(pass.refused.is_empty(), "{way}: {r:?}");
        }
        let kept_own = kept_of(&p.own, id);
        let kept_hub = kept_of(&p.hub, id);
        assert_eq!(kept_own.commits, vec![tracing.clone()]);
        assert_eq!(kept_hub.commits, vec![own_head.clone()]);
        assert_eq!((kept_own.fork_seq, kept_hub.fork_seq), (1, 1));
        assert_eq!(
            hub.api().sync_case_whole(id).await.unwrap().commits[1].0,
            tracing
        );

        // The caseworker is told: the case is listed as in conflict, and opening it shows both
        // versions, each verified as a whole, and where they differ (the note is in one only).
        let listed = cw.conflicts().await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (
                listed[0].case.id,
                listed[0].fork_seq,
                listed[0].their_version
            ),
            (id, 1, 2)
        );
        let (ours, conflict) = cw.open_case_and_conflict(id).await.unwrap();
        let conflict = conflict.unwrap();
        let their_version = conflict.theirs.as_ref().unwrap();
        assert_eq!(ours.status, CaseStatus::Open);
        assert_eq!(conflict.fork_seq, 1);
        assert_eq!(their_version.status, CaseStatus::Tracing);
        assert_eq!(ours.file.notes.len(), their_version.file.notes.len() + 1);
        let d = rfl_client::session::differences(&ours, their_version).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].kind, d[0].field.as_ref()), ("note", None));
        assert!(d[0].ours.is_some() && d[0].theirs.is_none());
        // Opening the other version kept nothing of it as this case's verified head.
        assert_eq!(cw.open_case(id).await.unwrap().head, ours.head);
        // A host that edits the kept version is caught: a record of it left out.
        let db = &p.own.db;
        let case_blob = db.blob(id.as_uuid().as_bytes());
        let dropped = db.tamper(&format!(
            "DELETE FROM case_branch_records WHERE case_id = {case_blob} AND id = (SELECT id FROM \
             case_branch_records WHERE case_id = {case_blob} ORDER BY id LIMIT 1)"
        ));
        assert_eq!(dropped, 1);
        let e = cw.open_case_and_conflict(id).await.err().unwrap();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        assert!(e.to_string().contains("records"), "{e}");
        // The kept version restored as the hub holds it, so the rest of the test goes on.
        p.own
            .store
            .store_branches(
                &[rfl_storage::IncomingBranch {
                    case: id,
                    society: p.soc.id,
                    replaces: Some(kept_own.head_hash.clone()),
                    fork_seq: 1,
                    commits: vec![(2, tracing.clone())],
                    head_hash: kept_own.head_hash.clone(),
                    records: kept_own.records.clone(),
                    keys: kept_own.keys.clone(),
                }],
                T0_MILLIS,
            )
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        let (_, restored) = cw.open_case_and_conflict(id).await.unwrap();
        assert_eq!(restored.unwrap().theirs.unwrap().head, their_version.head);
        // The other version sent again is held already: nothing is stored twice.
        let mut again = own.api().sync_case_whole(id).await.unwrap();
        again.commits.truncate(1);
        again.commits.push(tracing.clone().into());
        let r = own
            .api()
            .sync_push("again", &SyncPushDto { cases: vec![again] })
            .await
            .unwrap();
        assert_eq!(r.cases[0].outcome, SyncOutcome::Conflict, "{r:?}");
        assert_eq!(r.cases[0].applied, 0, "held already: {r:?}");

        // The next round carries nothing: each side holds both versions already, and the
        // checkpoints moved on.
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert_eq!((r.to_hub.cases, r.from_hub.cases), (0, 0), "{r:?}");

        // The caseworker resolves it on the society's server: the hub's status, and the note
        // only this side has is kept (a merge loses nothing). The merge commit names both heads.
        let plan = MergePlan {
            default: Side::There,
            fields: Default::default(),
            status: Side::There,
        };
        let merged = cw.merge_case(id, &plan).await.unwrap();
        assert_eq!(
            (merged.case.version, merged.case.status),
            (3, CaseStatus::Tracing)
        );
        let (after, none) = cw.open_case_and_conflict(id).await.unwrap();
        assert!(none.is_none());
        assert!(cw.conflicts().await.unwrap().is_empty());
        assert_eq!(after.file.notes.len(), ours.file.notes.len());
        let head = own.api().sync_case_whole(id).await.unwrap().commits[2]
            .0
            .clone();
        let merge = rfl_crypto::parse_commit(&head).unwrap();
        assert_eq!(merge.body().op, rfl_crypto::CommitOp::Merge);
        assert_eq!(merge.body().parent, ours.head.hash);
        assert_eq!(merge.second_parent(), Some(their_version.head.hash));
        // Merging again is refused: there is nothing left to merge.
        let again = cw.merge_case(id, &plan).await.unwrap_err();
        assert!(again.to_string().contains("not in conflict"), "{again}");

        // The next round takes the merge to the hub, which checks it as a whole and makes the
        // merged version its own (its own version kept, merged); back on the society's server,
        // every commit is held already. Both sides then hold the same commits, records and keys.
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert_eq!((r.to_hub.cases, r.to_hub.applied), (1, 2), "{r:?}");
        assert!(
            r.to_hub.conflicts.is_empty() && r.to_hub.refused.is_empty(),
            "{r:?}"
        );
        assert_eq!((r.from_hub.applied, r.from_hub.known), (0, 2), "{r:?}");
        assert_eq!(everything(own).await, everything(hub).await);
        let kept = kept_of(&p.hub, id);
        assert!(kept.merged_at.is_some());
        assert_eq!(kept.commits, vec![tracing.clone()]);
        assert_eq!(
            hub.api().sync_case_whole(id).await.unwrap().commits[2].0,
            head
        );
        // The caseworker's client opens the merged case, and the next round carries nothing.
        assert_eq!(cw.open_case(id).await.unwrap().status, CaseStatus::Tracing);
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert_eq!((r.to_hub.cases, r.from_hub.cases), (0, 0), "{r:?}");

        p.own.stop().await;
        p.hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_made_on_the_other_side_s_version_reaches_this_side_and_its_caseworkers_follow_it()
{
    for (own_backend, hub_backend) in ORDERS {
        let Apart {
            p,
            cw,
            id,
            mut state,
            tracing,
            own_head,
        } = apart(own_backend, hub_backend).await;
        let (own, hub) = (&p.agent_own, &p.agent_hub);
        round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        // The field office goes on writing on the hub's version: the next round brings only its
        // new commit, whose parent the society's server holds only in the version it kept; it
        // asks for the case whole, and the kept version goes on.
        let at_hub = hub.api().sync_case_whole(id).await.unwrap();
        let on = rfl_crypto::parse_commit(&at_hub.commits[1].0).unwrap();
        let located = offline_status(&cw, &on, CaseStatus::Located);
        let mut more = at_hub.clone();
        more.commits.push(located.clone().into());
        from_field_office(hub, "field-office-2", more).await;
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert_eq!(r.from_hub.conflicts.len(), 1, "{r:?}");
        assert!(r.from_hub.refused.is_empty(), "{r:?}");
        let kept = kept_of(&p.own, id);
        assert_eq!(kept.commits, vec![tracing.clone(), located.clone()]);
        // The caseworker's client verified the society's server's version (its head, commit 2).
        let (ours, conflict) = cw.open_case_and_conflict(id).await.unwrap();
        let theirs = conflict.unwrap().theirs.unwrap();
        assert_eq!((theirs.head.seq, theirs.status), (3, CaseStatus::Located));

        // The field office merges on the hub's version: its status, and the note only the
        // society's server has is kept. Its sync brings the merge to the hub, which applies it on
        // its head and marks its conflict resolved.
        let plan = MergePlan {
            default: Side::Here,
            fields: Default::default(),
            status: Side::Here,
        };
        let merge = cw.sign_merge(&theirs, &ours, &plan).unwrap();
        assert_eq!(merge.commit.second_parent(), Some(ours.head.hash));
        let at_hub = with_merge(
            hub.api().sync_case_whole(id).await.unwrap(),
            &merge,
            &theirs,
            &cw,
        );
        let r = hub
            .api()
            .sync_push(
                "field-office-merge",
                &SyncPushDto {
                    cases: vec![at_hub],
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (r.cases[0].outcome, r.cases[0].applied),
            (SyncOutcome::Applied, 1),
            "{r:?}"
        );
        let kept = kept_of(&p.hub, id);
        assert!(kept.merged_at.is_some());

        // The next round brings the merge to the society's server, which takes the hub's version
        // as its own (its own kept, merged): both sides hold the same again.
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert_eq!((r.from_hub.cases, r.from_hub.applied), (1, 3), "{r:?}");
        assert!(
            r.from_hub.refused.is_empty() && r.from_hub.conflicts.is_empty(),
            "{r:?}"
        );
        assert_eq!(everything(own).await, everything(hub).await);
        let kept = kept_of(&p.own, id);
        assert_eq!(
            (kept.commits.clone(), kept.merged_at.is_some()),
            (vec![own_head.clone()], true)
        );

        // The caseworker last verified commit 2 of the version the merge replaced here. A host
        // that drops that version cannot pass the merged head off as a descendant of it: refused.
        let db = &p.own.db;
        let case_blob = db.blob(id.as_uuid().as_bytes());
        let dropped = db.tamper(&format!(
            "DELETE FROM case_branch_commits WHERE case_id = {case_blob}"
        ));
        assert_eq!(dropped, 1);
        let e = cw.open_case(id).await.err().unwrap();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");
        db.tamper(&format!(
            "INSERT INTO case_branch_commits (case_id, seq, body) VALUES ({case_blob}, 2, {})",
            db.blob(&own_head)
        ));
        // With it, their client follows the merge's second parent to it, and opens the merged
        // case: the hub's status, and the note only this side had.
        let merged = cw.open_case(id).await.unwrap();
        assert_eq!(merged.head.hash, merge.commit.hash());
        assert_eq!(merged.status, CaseStatus::Located);
        assert_eq!(merged.file.notes.len(), ours.file.notes.len());
        assert!(cw.conflicts().await.unwrap().is_empty());
        assert_eq!(
            hub.api().sync_case_whole(id).await.unwrap().commits[1].0,
            tracing
        );

        p.own.stop().await;
        p.hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_merging_the_same_conflict_end_in_one_more_merge_and_the_same_version() {
    for (own_backend, hub_backend) in ORDERS {
        let Apart {
            p,
            cw,
            id,
            mut state,
            ..
        } = apart(own_backend, hub_backend).await;
        let (own, hub) = (&p.agent_own, &p.agent_hub);
        round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        // Both sides merge the conflict before they meet again: the caseworker on the society's
        // server, and the field office on the hub's version.
        let (ours, conflict) = cw.open_case_and_conflict(id).await.unwrap();
        let theirs = conflict.unwrap().theirs.unwrap();
        let take = |side| MergePlan {
            default: side,
            fields: Default::default(),
            status: side,
        };
        let on_hub = cw.sign_merge(&theirs, &ours, &take(Side::Here)).unwrap();
        cw.merge_case(id, &take(Side::Here)).await.unwrap();
        let at_hub = with_merge(
            hub.api().sync_case_whole(id).await.unwrap(),
            &on_hub,
            &theirs,
            &cw,
        );
        from_field_office(hub, "field-office-merge", at_hub).await;

        // They meet: each side keeps the other's merge as a new conflict; nothing is refused.
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        for (way, pass) in [("to the hub", &r.to_hub), ("from the hub", &r.from_hub)] {
            assert_eq!(pass.conflicts.len(), 1, "{way}: {r:?}");
            assert!(pass.refused.is_empty(), "{way}: {r:?}");
        }
        assert!(kept_of(&p.own, id).merged_at.is_none());
        assert!(kept_of(&p.hub, id).merged_at.is_none());

        // One more merge, of the two merges, on the society's server: the hub adopts it, and
        // both sides hold the same version.
        assert_eq!(cw.conflicts().await.unwrap().len(), 1);
        let last = cw.merge_case(id, &take(Side::There)).await.unwrap();
        assert_eq!(last.case.version, 4);
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert!(
            r.to_hub.conflicts.is_empty() && r.to_hub.refused.is_empty(),
            "{r:?}"
        );
        assert_eq!(everything(own).await, everything(hub).await);
        assert!(cw.conflicts().await.unwrap().is_empty());
        assert_eq!(cw.open_case(id).await.unwrap().head.seq, 4);
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert_eq!((r.to_hub.cases, r.from_hub.cases), (0, 0), "{r:?}");

        p.own.stop().await;
        p.hub.stop().await;
    }
}
