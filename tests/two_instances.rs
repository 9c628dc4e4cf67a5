//! Two real `rfl-server` instances of one society (`docs/sync.md`): the society's own server and
//! the hub, one on SQLite and the other on PostgreSQL, with the society's sync agent enrolled on
//! both. The hub takes the society's trust material only through the Movement root, and then the
//! society's commits, which arrive byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_client::http::ReceiverCheckpoint;
use rfl_client::sync::{
    carry_trust, pass, pass_observed, round, Checkpoint, StateFileStore, SyncState,
};
use rfl_client::ClientError;
use rfl_crypto::{issue_admin_cert, RevocationReason, SocietyRootKey, Validity};
use rfl_domain::api::SyncTrustOutcome;
use rfl_domain::{CaseStatus, Role, SocietyId};
use rfl_system_tests::instances::{everything, pair, ORDERS};
use rfl_system_tests::{case, note, T0_MILLIS};

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
        // The hub holds no root of the society yet: it has nothing to carry back, and carrying
        // it sends nothing (a society's new server filled from the hub is in the same place).
        assert!(hub
            .sync_trust_bundle()
            .await
            .unwrap()
            .trust
            .root_public_key
            .is_none());
        let back = carry_trust(hub, p.agent_own.api()).await.unwrap();
        assert!(nothing_added(&back), "{back:?}");

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
        let mut seen = Vec::new();
        let first = pass_observed(from, to, None, Some(2), &mut |p| seen.push(p))
            .await
            .unwrap();
        assert_eq!(first.pages, 3);
        // Progress after each page: 10 changes (a create and a note per case), two cases a page.
        let last = from.sync_info().await.unwrap().seq;
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.iter().all(|p| p.total == last), "{seen:?}");
        assert_eq!(
            seen.iter().map(|p| (p.pages, p.cases)).collect::<Vec<_>>(),
            [(1, 2), (2, 4), (3, 5)]
        );
        assert!(seen.windows(2).all(|w| w[0].done < w[1].done), "{seen:?}");
        assert_eq!(seen[2].done, last);
        assert_eq!(first.cases, 5);
        assert_eq!((first.known, first.applied), (0, 10), "{first:?}");
        assert!(first.conflicts.is_empty() && first.refused.is_empty());
        let checkpoint = first.checkpoint.unwrap();
        assert_eq!(
            everything(&p.agent_hub).await,
            everything(&p.agent_own).await
        );

        // The same pass again (the hub's own checkpoint set back to the start, as a hub restored
        // from a backup made before the first pass would have it): the hub holds every commit
        // already, and nothing changes there.
        let hub_seq = to.sync_info().await.unwrap().seq;
        let sender = from.sync_info().await.unwrap().instance_id;
        to.put_sync_checkpoint(sender, 0).await.unwrap();
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

        // A checkpoint of another instance gives way to the hub's own, which it keeps of the
        // society's server's changes (it holds all of them): nothing is sent.
        let info = from.sync_info().await.unwrap();
        assert_eq!(
            to.sync_checkpoint(info.instance_id).await.unwrap(),
            ReceiverCheckpoint::At(info.seq)
        );
        let receiver = to.sync_info().await.unwrap().instance_id;
        let stray = Checkpoint {
            instance: uuid::Uuid::now_v7(),
            seq: 1,
            receiver,
        };
        let again = pass(from, to, Some(stray), Some(2)).await.unwrap();
        assert!(!again.restarted);
        assert_eq!((again.cases, again.applied), (0, 0), "{again:?}");
        // A checkpoint beyond the sender's last change (the society's server restored from a
        // backup, which keeps its instance id) is refused by the sender: the pass starts again
        // from the start, and the hub's checkpoint goes back with it. Nothing lost, nothing
        // stored twice.
        to.put_sync_checkpoint(info.instance_id, info.seq + 100)
            .await
            .unwrap();
        let restarted = pass(from, to, None, Some(2)).await.unwrap();
        assert!(restarted.restarted);
        assert_eq!(
            (restarted.cases, restarted.applied),
            (5, 0),
            "{restarted:?}"
        );
        assert_eq!(
            to.sync_checkpoint(info.instance_id).await.unwrap(),
            ReceiverCheckpoint::At(info.seq)
        );
        // A checkpoint of changes sent to another receiver (a new hub, one restored from a
        // backup) means nothing here: the pass starts from the hub's own checkpoint, which it
        // keeps of the society's server's changes.
        let elsewhere = Checkpoint {
            receiver: uuid::Uuid::now_v7(),
            ..restarted.checkpoint.unwrap()
        };
        let again = pass(from, to, Some(elsewhere), Some(2)).await.unwrap();
        assert!(!again.restarted);
        assert_eq!((again.cases, again.applied), (0, 0), "{again:?}");
        // The agent's state lost: the same, from the hub's checkpoint.
        let again = pass(from, to, None, Some(2)).await.unwrap();
        assert_eq!((again.cases, again.known), (0, 0), "{again:?}");
        // A hub restored from a backup keeps the checkpoint it had then (set back here by hand):
        // the cases changed after it go again, whatever the agent was told, and come back as
        // held already where the hub has them.
        let agent_checkpoint = again.checkpoint.unwrap();
        to.put_sync_checkpoint(info.instance_id, checkpoint.seq)
            .await
            .unwrap();
        let again = pass(from, to, Some(agent_checkpoint), Some(2))
            .await
            .unwrap();
        assert_eq!(
            (again.cases, again.known, again.applied),
            (2, 2, 0),
            "{again:?}"
        );
        // It ends where the agent's did: the hub holds everything up to there again.
        assert_eq!(again.checkpoint, Some(agent_checkpoint));
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
        // The society's server's own checkpoint set ahead of the agent's (as another agent's
        // later pass would leave it): the pass starts from the earlier, and, held back, sets the
        // server's checkpoint back to it.
        let hub_instance = hub.api().sync_info().await.unwrap().instance_id;
        let agent_seq = state.from_hub.map_or(0, |c| c.seq);
        own.api()
            .put_sync_checkpoint(hub_instance, agent_seq + 50)
            .await
            .unwrap();
        let early = pass(hub.api(), own.api(), state.from_hub, Some(2))
            .await
            .unwrap();
        assert_eq!(early.refused.len(), 1, "{early:?}");
        assert_eq!(early.checkpoint, state.from_hub);
        assert_eq!(
            own.api().sync_checkpoint(hub_instance).await.unwrap(),
            ReceiverCheckpoint::At(agent_seq)
        );

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
