#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! Test harness for the end-to-end tests in `tests/`: a real `rfl-server` on port 0 over a fresh
//! database (SQLite file or a new PostgreSQL database), a controllable clock, and enrolled clients.

use std::sync::Arc;

use rfl_api::auth::TokenKeys;
use rfl_api::clock::ManualClock;
use rfl_api::config::Config;
use rfl_api::RunningServer;
use rfl_client::session::{enrol, Session};
use rfl_client::DeviceKeys;
use rfl_crypto::AgeIdentity;
use rfl_domain::{Role, SocietyId};
use rfl_storage::testing::{TestBackend, TestDatabase};
use rfl_storage::Store;

pub use rfl_storage::testing::TestBackend as Backend;

/// 2027-01-15T00:00:00Z: tests run on a fixed clock.
pub const T0_MILLIS: i64 = 1_800_000_000_000;

pub struct TestServer {
    pub server: RunningServer,
    pub db: TestDatabase,
    pub store: Store,
    pub clock: ManualClock,
    pub config: Config,
    _dir: tempfile::TempDir,
}

/// A society with its first admin (who set the escrow key) and the offline recovery identity.
pub struct TestSociety {
    pub id: SocietyId,
    pub admin: Session,
    pub recovery: AgeIdentity,
}

impl TestServer {
    pub async fn start(backend: TestBackend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    #[allow(clippy::expect_used, clippy::unwrap_used)]
    pub async fn start_with(backend: TestBackend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let db = TestDatabase::new(backend);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::load(None).expect("default config");
        // WebAuthn needs the server's exact origin, so the port is chosen before the server binds: take a
        // free one from the OS and release it (the server binds it a moment later).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        config.server.bind = format!("127.0.0.1:{port}");
        config.webauthn.rp_origin = format!("http://localhost:{port}");
        config.server.workers = 2;
        config.database.url = db.url.clone();
        config.database.pool_size = 4;
        config.auth.signing_key_file = dir.path().join("token.pk8").display().to_string();
        tweak(&mut config);
        let url = config.database.url.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&url, 4))
            .await
            .unwrap()
            .expect("open store");
        let tokens = TokenKeys::load_or_create(
            std::path::Path::new(&config.auth.signing_key_file),
            &config.auth.issuer,
            &config.auth.audience,
            config.auth.token_ttl_secs,
        )
        .expect("token key");
        let clock = ManualClock::new(T0_MILLIS);
        let server = rfl_api::start_with(
            config.clone(),
            store.clone(),
            tokens,
            Arc::new(clock.clone()),
        )
        .await
        .expect("start server");
        TestServer {
            server,
            db,
            store,
            clock,
            config,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The raw Ed25519 public key that verifies this server's access tokens.
    #[allow(clippy::expect_used)]
    pub fn tokens_public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        let der = std::fs::read(&self.config.auth.signing_key_file).expect("token key file");
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der).expect("token key");
        pair.public_key().as_ref().to_vec()
    }

    /// Creates a society; returns its id and the first admin's enrolment code.
    #[allow(clippy::expect_used)]
    pub fn create_society(&self, name: &str) -> (SocietyId, String) {
        rfl_api::identity::create_society(&self.store, name, self.clock.now(), 72)
            .expect("create society")
    }

    /// Enrols a device with `code` and signs it in.
    #[allow(clippy::expect_used)]
    pub async fn enrol(&self, code: &str) -> Session {
        let keys = DeviceKeys::generate().expect("keys");
        let r = enrol(&self.url(), code, &keys).await.expect("enrol");
        Session::login(&self.url(), r.member_id, Arc::new(keys))
            .await
            .expect("login")
    }

    /// A society whose admin has set up the escrow key.
    #[allow(clippy::expect_used)]
    pub async fn society(&self, name: &str) -> TestSociety {
        let (id, code) = self.create_society(name);
        let mut admin = self.enrol(&code).await;
        let recovery = AgeIdentity::generate();
        admin
            .init_society_escrow(&recovery.recipient())
            .await
            .expect("escrow");
        TestSociety {
            id,
            admin,
            recovery,
        }
    }

    /// A caseworker enrolled in `society` through an admin-issued code.
    #[allow(clippy::expect_used)]
    pub async fn caseworker(&self, society: &TestSociety) -> Session {
        let code = society
            .admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .expect("code");
        let mut s = self.enrol(&code.code).await;
        s.refresh_directory().await.expect("directory");
        s
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

trait Now {
    fn now(&self) -> i64;
}

impl Now for ManualClock {
    fn now(&self) -> i64 {
        use rfl_api::clock::Clock;
        self.now_millis()
    }
}

/// A synthetic case as a caseworker would create it: attachments are added afterwards with their
/// bytes, so the fixture's attachment records are left out.
pub fn case(seed: u64) -> rfl_domain::CaseFile {
    let mut f = rfl_domain::fixtures::synthetic_case(seed);
    f.attachments.clear();
    f
}
