//! Two instances of one society (`docs/sync.md`): the society's own server and the hub, with the
//! Movement root set on both, the society registered on the hub under its id, and its sync agent
//! enrolled on both. Shared by the two-instance tests and the sync crash tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test harness: failing loudly is the point

use std::collections::BTreeMap;

use rfl_client::Session;
use rfl_domain::api::SyncPageDto;
use rfl_domain::Role;

use crate::{Backend, Person, TestServer, TestSociety, T0_MILLIS};

/// A society's own server with the society (admin, escrow, root certified by the Movement root),
/// and a hub where the Movement registered it under the same id, with its sync agent on both.
pub struct Pair {
    pub own: TestServer,
    pub hub: TestServer,
    pub soc: TestSociety,
    pub agent_own: Session,
    pub agent_hub: Session,
    /// The hub's admin of the society (enrolled there with the code of `create-society --id`).
    pub hub_admin: Session,
}

/// A Movement admin of `t`, stepped up.
pub async fn movement_admin(t: &TestServer) -> Person {
    let code = rfl_api::identity::movement_admin_code(&t.store, T0_MILLIS, 72).unwrap();
    let mut mv = t.enrol_person(&code).await;
    mv.session.step_up(&mut mv.authenticator).await.unwrap();
    mv
}

pub async fn pair(own: Backend, hub: Backend) -> Pair {
    let own = TestServer::start(own).await;
    let hub = TestServer::start(hub).await;
    let soc = own.society("Red Cross A").await;

    // The Movement root (held offline) is set on both instances; it certifies the society's root.
    let mv = movement_admin(&own).await;
    let movement = mv.session.init_movement().await.unwrap();
    mv.session
        .certify_society(&movement, soc.id, &soc.root_fingerprint)
        .await
        .unwrap();
    let mv_hub = movement_admin(&hub).await;
    mv_hub.session.set_movement_root(&movement).await.unwrap();

    // The Movement registers the society on the hub under the id its own server gave it.
    let (id, code) =
        rfl_api::identity::create_society(&hub.store, "Red Cross A", Some(soc.id), T0_MILLIS, 72)
            .unwrap();
    assert_eq!(id, soc.id);
    let again = rfl_api::identity::create_society(&hub.store, "Other", Some(soc.id), T0_MILLIS, 72);
    assert!(
        matches!(again, Err(rfl_api::error::ApiError::Conflict(_))),
        "{again:?}"
    );
    let hub_admin = hub.enrol(&code).await;
    let agent_code = hub_admin
        .issue_enrolment_code(Role::SyncAgent)
        .await
        .unwrap();
    let agent_hub = hub.enrol_machine(&agent_code.code).await;
    let agent_own = own.sync_agent(&soc).await;
    Pair {
        own,
        hub,
        soc,
        agent_own,
        agent_hub,
        hub_admin,
    }
}

pub const ORDERS: [(Backend, Backend); 2] = [
    (Backend::Sqlite, Backend::Postgres),
    (Backend::Postgres, Backend::Sqlite),
];

/// Everything a page carries that both sides must hold alike, by case: the commits, the records
/// (envelopes and what the server says of them) and the wrapped keys.
pub type Held = BTreeMap<rfl_domain::CaseId, (Vec<Vec<u8>>, Vec<String>, Vec<String>)>;

pub async fn everything(agent: &Session) -> Held {
    let mut held = Held::new();
    let mut after = 0;
    loop {
        let page: SyncPageDto = agent
            .api()
            .sync_changes((0, after), None, Some(3))
            .await
            .unwrap();
        for c in page.cases {
            assert!(c.whole);
            let records = c
                .records
                .iter()
                .map(|r| {
                    format!(
                        "{} {:?} v{} e{} by {} {:?}",
                        r.id, r.kind, r.version, r.key_epoch, r.author_id, r.envelope.0
                    )
                })
                .collect();
            let mut keys: Vec<String> = c
                .keys
                .iter()
                .map(|k| {
                    format!(
                        "{} e{} g{} {:?} {:?}",
                        k.recipient_id,
                        k.key_epoch,
                        k.escrow_gen,
                        k.wrapped.0,
                        k.keys_digest.as_ref().map(|d| &d.0)
                    )
                })
                .collect();
            keys.sort();
            let commits = c.commits.into_iter().map(|b| b.0).collect();
            held.insert(c.case.id, (commits, records, keys));
        }
        after = page.next;
        if !page.more {
            return held;
        }
    }
}
