//! National society sync (`docs/sync.md`), end to end on SQLite and PostgreSQL. So far: what a sync
//! agent reads before any change, which instance a server is and how far its society's changes
//! have got.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rfl_system_tests::{case, Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_agent_learns_the_instance_and_its_society_s_last_change() {
    for backend in Backend::ALL {
        let t = TestServer::start(backend).await;
        let soc = t.society("Red Cross A").await;
        let other = t.society("Red Crescent B").await;
        let agent = t.sync_agent(&soc).await;
        let cw = t.caseworker(&soc).await;
        let other_cw = t.caseworker(&other).await;

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
