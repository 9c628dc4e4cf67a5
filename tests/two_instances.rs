//! Two real `rfl-server` instances of one society (`docs/sync.md`): the society's own server and
//! the hub, one on SQLite and the other on PostgreSQL, with the society's sync agent enrolled on
//! both. The hub takes the society's trust material only through the Movement root, and then the
//! society's commits, which arrive byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::session::{MergePlan, Side};
use rfl_client::sync::{carry_trust, pass, round, Checkpoint, StateFileStore, SyncState};
use rfl_client::{ClientError, Session};
use rfl_crypto::{issue_admin_cert, RevocationReason, SocietyRootKey, Validity};
use rfl_domain::api::{RecordDto, SyncOutcome, SyncPushDto, SyncTrustOutcome};
use rfl_domain::{CaseStatus, Role, SocietyId};
use rfl_system_tests::instances::{everything, pair, Pair, ORDERS};
use rfl_system_tests::{case, note, Backend, TestServer, T0_MILLIS};

/// An admin certificate of `society` for keys of no one, issued by a root of someone else's
/// making (hex): it verifies against no root the society has.
fn made_up_certificate(stranger: &SocietyRootKey, society: SocietyId) -> String {
    let keys = rfl_client::DeviceKeys::generate().unwrap();
    issue_admin_cert(
        stranger,
        *society.as_uuid(),
        uuid::Uuid::now_v7(),
        keys.signing.public_key(),
        &keys.age.recipient(),
        Validity::new(T0_MILLIS / 1000 - 60, T0_MILLIS / 1000 + 86_400).unwrap(),
    )
    .unwrap()
    .to_hex()
}

fn nothing_added(o: &SyncTrustOutcome) -> bool {
    !o.root_changed
        && o.successions == 0
        && o.movement_certificates == 0
        && o.certificates == 0
        && o.retired == 0
        && o.revocation_list.is_none()
        && !o.escrow
}

fn refused(e: &ClientError, status: u16, what: &str) {
    assert_eq!(e.status(), Some(status), "{e}");
    assert!(e.to_string().contains(what), "expected {what:?} in {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_takes_a_society_s_trust_only_through_the_movement_root_and_never_back() {
    for (own_backend, hub_backend) in ORDERS {
        let p = pair(own_backend, hub_backend).await;
        let hub = p.agent_hub.api();
        let bundle = p.agent_own.api().sync_trust_bundle().await.unwrap();

        // A bundle without the Movement's certificate, or with a root of someone else's making,
        // convinces no hub; nor does another society's bundle.
        let mut bare = bundle.clone();
        bare.trust.movement_certificates.clear();
        refused(&hub.sync_trust(&bare).await.unwrap_err(), 422, "vouches");
        let mut forged = bundle.clone();
        let stranger = SocietyRootKey::generate().unwrap();
        forged.trust.root_public_key = Some(stranger.public().as_bytes().to_vec().into());
        refused(&hub.sync_trust(&forged).await.unwrap_err(), 422, "vouches");
        // A succession the chain does not use (from the bundle's own root, to a root of someone
        // else's making) is refused, not stored unchecked.
        let mut unused = bundle.clone();
        let succession = rfl_crypto::RootSuccession::sign(
            *p.soc.id.as_uuid(),
            &p.soc.root,
            &stranger,
            T0_MILLIS / 1000,
        )
        .unwrap();
        unused.trust.root_successions.push(succession.to_hex());
        refused(
            &hub.sync_trust(&unused).await.unwrap_err(),
            422,
            "one chain",
        );
        let mut other = bundle.clone();
        other.trust.society_id = SocietyId::new();
        refused(
            &hub.sync_trust(&other).await.unwrap_err(),
            403,
            "own society",
        );

        // The genuine bundle: the root, the Movement's certificate of it, the admin's and the
        // escrow key's certificates, all verified.
        let taken = hub.sync_trust(&bundle).await.unwrap();
        assert!(taken.root_changed, "{taken:?}");
        assert_eq!(taken.movement_certificates, 1, "{taken:?}");
        assert_eq!((taken.certificates, taken.unverified), (2, 0), "{taken:?}");
        assert!(nothing_added(&hub.sync_trust(&bundle).await.unwrap()));
        let served = p.hub_admin.api().trust_bundle(p.soc.id).await.unwrap();
        assert_eq!(served.root_public_key, bundle.trust.root_public_key);
        assert_eq!(
            sorted(&served.certificates),
            sorted(&bundle.trust.certificates)
        );
        assert_eq!(
            served.movement_certificates,
            bundle.trust.movement_certificates
        );
        // The escrow key came too: the hub's caseworkers wrap new cases to it.
        assert!(taken.escrow, "{taken:?}");
        let escrow = p.hub_admin.api().society().await.unwrap().escrow.unwrap();
        let own_escrow = bundle.escrow.as_ref().unwrap();
        assert_eq!(escrow.recipient, own_escrow.recipient);
        assert_eq!(escrow.wrapped_identity, own_escrow.wrapped_identity);

        // A root of someone else's making no longer replaces it, vouched for or not.
        refused(
            &hub.sync_trust(&forged).await.unwrap_err(),
            409,
            "does not continue",
        );

        // A certificate its roots did not issue is left out.
        let mut slipped = bundle.clone();
        slipped
            .trust
            .certificates
            .push(made_up_certificate(&stranger, p.soc.id));
        let o = hub.sync_trust(&slipped).await.unwrap();
        assert_eq!((o.certificates, o.unverified), (0, 1), "{o:?}");

        // Two members are certified, then revoked one after the other: each revocation reaches
        // the hub with the next bundle, and an older list (a stale bundle) never replaces a newer
        // one; a list that forks from the held one is refused.
        let mut soc = p.soc;
        let cw1 = p.own.caseworker(&soc).await;
        let cw2 = p.own.caseworker(&soc).await;
        let o = hub
            .sync_trust(&p.agent_own.api().sync_trust_bundle().await.unwrap())
            .await
            .unwrap();
        assert_eq!(o.certificates, 2, "{o:?}");
        soc.step_up().await;
        soc.admin
            .revoke_member(cw1.member_id(), RevocationReason::Departed)
            .await
            .unwrap();
        let first = p.agent_own.api().sync_trust_bundle().await.unwrap();
        soc.admin
            .revoke_member(cw2.member_id(), RevocationReason::Departed)
            .await
            .unwrap();
        let second = p.agent_own.api().sync_trust_bundle().await.unwrap();
        let o = hub.sync_trust(&second).await.unwrap();
        // Their certificates stay as the hub holds them, now revoked by the list.
        assert_eq!(o.revocation_list, Some(2), "{o:?}");
        assert_eq!((o.certificates, o.retired), (0, 0), "{o:?}");
        assert!(nothing_added(&hub.sync_trust(&first).await.unwrap()));
        let mut fork = first.clone();
        let mut list =
            rfl_crypto::RevocationList::from_hex(second.trust.revocations.as_ref().unwrap())
                .unwrap()
                .body()
                .clone();
        list.entries.pop();
        fork.trust.revocations = Some(list.sign_by_root(&soc.root).unwrap().to_hex());
        refused(
            &hub.sync_trust(&fork).await.unwrap_err(),
            409,
            "revocation list",
        );
        let mut no_list = second.clone();
        no_list.trust.revocations = None;
        assert!(nothing_added(&hub.sync_trust(&no_list).await.unwrap()));
        let served = p.hub_admin.api().trust_bundle(soc.id).await.unwrap();
        assert_eq!(served.revocations, second.trust.revocations);

        p.own.stop().await;
        p.hub.stop().await;
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_society_s_cases_reach_the_hub_byte_for_byte_and_a_second_pass_sends_only_what_changed() {
    for (own_backend, hub_backend) in ORDERS {
        let p = pair(own_backend, hub_backend).await;
        let (from, to) = (p.agent_own.api(), p.agent_hub.api());
        let cw = p.own.caseworker(&p.soc).await;
        let mut ids = Vec::new();
        for n in 0..5 {
            let id = cw.create_case(&case(n)).await.unwrap().id;
            cw.add_note(id, note("seen at the border crossing"))
                .await
                .unwrap();
            ids.push(id);
        }

        // Before the hub holds the society's trust, it can verify none of its commits.
        let e = pass(from, to, None, Some(2)).await.unwrap_err();
        refused(&e, 422, "no root");

        carry_trust(from, to).await.unwrap();
        let first = pass(from, to, None, Some(2)).await.unwrap();
        assert_eq!(first.pages, 3);
        assert_eq!(first.cases, 5);
        assert_eq!((first.known, first.applied), (0, 10), "{first:?}");
        assert!(first.conflicts.is_empty() && first.refused.is_empty());
        let checkpoint = first.checkpoint.unwrap();
        assert_eq!(
            everything(&p.agent_hub).await,
            everything(&p.agent_own).await
        );

        // The same pass again: the hub holds every commit already, and nothing changes there.
        let hub_seq = to.sync_info().await.unwrap().seq;
        let again = pass(from, to, None, Some(2)).await.unwrap();
        assert_eq!((again.known, again.applied), (10, 0), "{again:?}");
        assert_eq!(to.sync_info().await.unwrap().seq, hub_seq);

        // One case changes, and one is closed: the next pass from the checkpoint carries only
        // those, and both sides hold the same again.
        cw.add_note(ids[1], note("a cousin answered the message"))
            .await
            .unwrap();
        cw.set_status(ids[3], CaseStatus::ClosedAtEnquirerRequest)
            .await
            .unwrap();
        let next = pass(from, to, Some(checkpoint), Some(2)).await.unwrap();
        assert_eq!(next.cases, 2, "{next:?}");
        assert_eq!((next.known, next.applied), (0, 2), "{next:?}");
        assert_eq!(
            everything(&p.agent_hub).await,
            everything(&p.agent_own).await
        );

        // A checkpoint of another instance is refused by the sender, and the pass starts again
        // from the start: nothing lost, nothing stored twice.
        let receiver = to.sync_info().await.unwrap().instance_id;
        let stray = Checkpoint {
            instance: uuid::Uuid::now_v7(),
            seq: 1,
            receiver,
        };
        let restarted = pass(from, to, Some(stray), Some(2)).await.unwrap();
        assert!(restarted.restarted);
        assert_eq!(restarted.applied, 0, "{restarted:?}");
        // A checkpoint of changes sent to another receiver (a new hub, one restored from a
        // backup) means nothing here: the pass starts from the start.
        let elsewhere = Checkpoint {
            receiver: uuid::Uuid::now_v7(),
            ..restarted.checkpoint.unwrap()
        };
        let again = pass(from, to, Some(elsewhere), Some(2)).await.unwrap();
        assert!(!again.restarted);
        assert_eq!((again.cases, again.applied), (5, 0), "{again:?}");
        assert_eq!(
            everything(&p.agent_hub).await,
            everything(&p.agent_own).await
        );

        // The agent's rounds (what `rfl sync` runs): both ways, each checkpoint kept in a file
        // only the agent can write. What went to the hub comes back as held already.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.json.sync");
        let file = StateFileStore::new(path.clone(), &p.agent_own);
        let key = p.agent_own.keys().case_key().unwrap();
        let mut state = file.load(key).unwrap();
        assert_eq!(state, SyncState::default());
        let r = round(&p.agent_own, &p.agent_hub, &mut state, Some(2), |s| {
            file.save(key, s)
        })
        .await
        .unwrap();
        assert_eq!((r.from_hub.cases, r.from_hub.applied), (5, 0), "{r:?}");
        assert_eq!(r.from_hub.known, 12, "{r:?}");
        assert!(nothing_added(&r.trust_to_hub) && nothing_added(&r.trust_from_hub));
        assert_eq!(file.load(key).unwrap(), state);
        let (to_hub, from_hub) = (state.to_hub.unwrap(), state.from_hub.unwrap());
        assert_eq!(to_hub.instance, from.sync_info().await.unwrap().instance_id);
        assert_eq!(from_hub.instance, to.sync_info().await.unwrap().instance_id);

        // A change on the society's server goes over in the next round, and nothing else does.
        cw.add_note(ids[0], note("the tracing request reached the hub"))
            .await
            .unwrap();
        let r = round(&p.agent_own, &p.agent_hub, &mut state, Some(2), |s| {
            file.save(key, s)
        })
        .await
        .unwrap();
        assert_eq!((r.to_hub.cases, r.to_hub.applied), (1, 1), "{r:?}");
        assert_eq!((r.from_hub.cases, r.from_hub.known), (1, 1), "{r:?}");
        assert_eq!(
            everything(&p.agent_hub).await,
            everything(&p.agent_own).await
        );

        // A checkpoint moved on by someone else would skip changes: the altered file is refused.
        let text = std::fs::read_to_string(&path).unwrap();
        let seq = format!("\"seq\": {}", state.to_hub.unwrap().seq);
        assert!(text.contains(&seq), "{text}");
        std::fs::write(&path, text.replace(&seq, "\"seq\": 999999")).unwrap();
        let e = file.load(key).unwrap_err();
        assert!(matches!(e, ClientError::Tampered(_)), "{e}");

        p.own.stop().await;
        p.hub.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_written_on_the_hub_reaches_the_society_s_server_with_its_author_s_certificate() {
    for (own_backend, hub_backend) in ORDERS {
        let mut p = pair(own_backend, hub_backend).await;
        let (own, hub) = (&p.agent_own, &p.agent_hub);
        let mut state = SyncState::default();
        round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();

        // The society's admin on the hub pins the society's root and certifies their own keys
        // with it (the root key is brought to them, as for any second admin); they certify a
        // caseworker who enrolled on the hub.
        p.hub_admin.pin_root(&p.soc.root_fingerprint).await.unwrap();
        let fingerprint = p.hub_admin.keys_fingerprint();
        p.hub_admin
            .certify_admin(p.hub_admin.member_id(), &fingerprint, &p.soc.root)
            .await
            .unwrap();
        // (A session loads the society's certificates when it pins the root: again, to hold its own.)
        p.hub_admin.pin_root(&p.soc.root_fingerprint).await.unwrap();
        let code = p
            .hub_admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .unwrap();
        let mut hub_cw = p.hub.enrol(&code.code).await;
        p.hub_admin
            .certify_member(hub_cw.member_id(), &hub_cw.keys_fingerprint())
            .await
            .unwrap();
        hub_cw.pin_root(&p.soc.root_fingerprint).await.unwrap();

        // A case written on the hub, wrapped to its author and the society's escrow key.
        let id = hub_cw.create_case(&case(7)).await.unwrap().id;
        hub_cw
            .add_note(id, note("registered at the hub's field office"))
            .await
            .unwrap();
        hub_cw.open_case(id).await.unwrap();

        // Before the certificates the hub's admin issued reach the society's server, it refuses
        // the case (its author is not certified there), and the pass keeps its checkpoint so
        // that the case is sent again.
        let early = pass(hub.api(), own.api(), state.from_hub, Some(2))
            .await
            .unwrap();
        assert_eq!(early.refused.len(), 1, "{early:?}");
        assert_eq!(early.checkpoint, state.from_hub);

        // The next round takes the certificates the hub's admin issued to the society's server,
        // then the case, verified there against them.
        let r = round(own, hub, &mut state, Some(2), |_| Ok(()))
            .await
            .unwrap();
        assert_eq!(r.trust_from_hub.certificates, 2, "{r:?}");
        assert_eq!(r.trust_from_hub.unverified, 0, "{r:?}");
        assert_eq!((r.from_hub.cases, r.from_hub.applied), (1, 2), "{r:?}");
        assert!(r.from_hub.refused.is_empty(), "{r:?}");
        assert_eq!(everything(own).await, everything(hub).await);
        assert!(everything(own).await.contains_key(&id));

        // A certificate the hub's host makes up for a member of its own convinces neither side.
        let mut bundle = hub.api().sync_trust_bundle().await.unwrap();
        let stranger = SocietyRootKey::generate().unwrap();
        bundle
            .trust
            .certificates
            .push(made_up_certificate(&stranger, p.soc.id));
        let o = own.api().sync_trust(&bundle).await.unwrap();
        assert_eq!((o.certificates, o.unverified), (0, 1), "{o:?}");

        p.own.stop().await;
        p.hub.stop().await;
    }
}

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
