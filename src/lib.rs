#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! Test harness for the end-to-end tests in `tests/`: a real `rfl-server` on port 0 over a fresh
//! database (SQLite file or a new PostgreSQL database), a controllable clock, and enrolled clients.

pub mod crash;
pub mod instances;

use std::sync::Arc;

use rfl_api::auth::TokenKeys;
use rfl_api::clock::ManualClock;
use rfl_api::config::Config;
use rfl_api::RunningServer;
use rfl_client::session::{enrol, Session};
use rfl_client::{DeviceKeys, Site, SoftAuthenticator};
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

/// A society with its first admin (who set the escrow key), the admin's authenticator, and the offline
/// recovery identity.
pub struct TestSociety {
    pub id: SocietyId,
    pub admin: Session,
    pub admin_authenticator: SoftAuthenticator,
    pub recovery: AgeIdentity,
    /// The society's signing root (kept offline in real life) and the fingerprint members pin.
    pub root: rfl_crypto::SocietyRootKey,
    pub root_fingerprint: String,
}

impl TestSociety {
    /// A fresh passkey assertion by the admin (for operations that need step-up).
    #[allow(clippy::expect_used)]
    pub async fn step_up(&mut self) {
        self.admin
            .step_up(&mut self.admin_authenticator)
            .await
            .expect("step-up");
    }
}

/// A person: their signed-in session and their authenticator.
pub struct Person {
    pub session: Session,
    pub authenticator: SoftAuthenticator,
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
        let tokens = TokenKeys::from_config(&config.auth).expect("token key");
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

    /// The OpenAPI document this server serves (`GET /v1/openapi.json`).
    #[allow(clippy::expect_used)]
    pub async fn openapi_document(&self) -> serde_json::Value {
        reqwest::get(format!("{}/v1/openapi.json", self.url()))
            .await
            .expect("GET /v1/openapi.json")
            .json()
            .await
            .expect("the document is JSON")
    }

    /// Sends `body` as it is, with `who`'s token and the headers given: the request a client
    /// library would not make.
    #[allow(clippy::expect_used)]
    pub async fn send_raw(
        &self,
        who: &Session,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut rb = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(who.token().expect("a signed-in session"))
            .body(body);
        for (name, value) in headers {
            rb = rb.header(*name, *value);
        }
        rb.send().await.expect("the server answers")
    }

    /// The raw Ed25519 public key that verifies this server's access tokens.
    #[allow(clippy::expect_used)]
    pub fn tokens_public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        let der = std::fs::read(&self.config.auth.signing_key_file).expect("token key file");
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der).expect("token key");
        pair.public_key().as_ref().to_vec()
    }

    /// A JWT with exactly this `header` and these `claims` (JSON, as given), signed with this server's
    /// own token key. A test forges tokens with it that pass the signature check, so that the check it
    /// is about (kid, audience, issuer, times, …) is what refuses them.
    #[allow(clippy::expect_used)]
    pub fn sign_token(&self, header: &[u8], claims: &[u8]) -> String {
        let der = std::fs::read(&self.config.auth.signing_key_file).expect("token key file");
        sign_jwt(&der, header, claims)
    }

    /// Creates a society; returns its id and the first admin's enrolment code.
    #[allow(clippy::expect_used)]
    pub fn create_society(&self, name: &str) -> (SocietyId, String) {
        rfl_api::identity::create_society(&self.store, name, None, self.clock.now(), 72)
            .expect("create society")
    }

    /// The API address and the WebAuthn origin of this server.
    pub fn site(&self) -> Site {
        Site::new(&self.url(), &self.config.webauthn.rp_origin)
    }

    /// Enrols a person with `code` and a new software authenticator (a passkey with PRF holding their
    /// keys), signed in.
    #[allow(clippy::expect_used)]
    pub async fn enrol_person(&self, code: &str) -> Person {
        let mut authenticator = SoftAuthenticator::new();
        let session = rfl_client::enrol_person(&self.site(), code, &mut authenticator)
            .await
            .expect("enrol a person");
        Person {
            session,
            authenticator,
        }
    }

    /// Enrols a person with `code` (see [`TestServer::enrol_person`]); only their session.
    pub async fn enrol(&self, code: &str) -> Session {
        self.enrol_person(code).await.session
    }

    /// Enrols a machine (sync agent) with `code` and its Ed25519 key, and signs it in by key login.
    #[allow(clippy::expect_used)]
    pub async fn enrol_machine(&self, code: &str) -> Session {
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
        let Person {
            session: mut admin,
            authenticator,
        } = self.enrol_person(&code).await;
        let recovery = AgeIdentity::generate();
        let root = admin
            .init_society(&recovery.recipient())
            .await
            .expect("escrow and root");
        let root_fingerprint = root.public().fingerprint();
        TestSociety {
            id,
            admin,
            admin_authenticator: authenticator,
            recovery,
            root,
            root_fingerprint,
        }
    }

    /// The sync agent of `society` (a machine): enrolled with its device key through an
    /// admin-issued code, and signed in.
    #[allow(clippy::expect_used)]
    pub async fn sync_agent(&self, society: &TestSociety) -> Session {
        let code = society
            .admin
            .issue_enrolment_code(Role::SyncAgent)
            .await
            .expect("a sync agent's enrolment code");
        self.enrol_machine(&code.code).await
    }

    /// A caseworker enrolled in `society` through an admin-issued code.
    pub async fn caseworker(&self, society: &TestSociety) -> Session {
        self.caseworker_person(society).await.session
    }

    /// A caseworker enrolled in `society`, with their authenticator: they pin the society's root (given
    /// with the code), and the admin certifies their keys after comparing fingerprints.
    #[allow(clippy::expect_used)]
    pub async fn caseworker_person(&self, society: &TestSociety) -> Person {
        let code = society
            .admin
            .issue_enrolment_code(Role::Caseworker)
            .await
            .expect("code");
        let mut p = self.enrol_person(&code.code).await;
        society
            .admin
            .certify_member(p.session.member_id(), &p.session.keys_fingerprint())
            .await
            .expect("certify");
        p.session
            .pin_root(&society.root_fingerprint)
            .await
            .expect("pin the root");
        p
    }

    /// Another API node on this server's database and key files, listening on a port of its own
    /// (sharing the WebAuthn origin, as nodes behind one load balancer do), with `key_file` as its
    /// configured token key file (the test's own by default).
    pub async fn another_node(
        &self,
        key_file: Option<&std::path::Path>,
    ) -> Result<RunningServer, rfl_api::StartError> {
        let mut config = self.config.clone();
        config.server.bind = "127.0.0.1:0".into();
        if let Some(f) = key_file {
            config.auth.signing_key_file = f.display().to_string();
        }
        let tokens = TokenKeys::from_config(&config.auth)?;
        rfl_api::start_with(
            config,
            self.store.clone(),
            tokens,
            Arc::new(self.clock.clone()),
        )
        .await
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A compact JWS (`header.claims.signature`, base64url) over exactly these `header` and `claims` bytes,
/// signed with the Ed25519 PKCS#8 key `pkcs8` (EdDSA).
#[allow(clippy::expect_used)]
pub fn sign_jwt(pkcs8: &[u8], header: &[u8], claims: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8).expect("an Ed25519 PKCS#8 key");
    let input = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let sig = pair.sign(input.as_bytes());
    format!("{input}.{}", b64.encode(sig.as_ref()))
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

/// A caseworker's note written today.
pub fn note(text: &str) -> rfl_domain::records::Note {
    rfl_domain::records::Note {
        author: "KM".into(),
        text: text.into(),
        created: rfl_client::session::today(),
    }
}

/// A synthetic case as a caseworker would create it: attachments are added afterwards with their
/// bytes, so the fixture's attachment records are left out.
pub fn case(seed: u64) -> rfl_domain::CaseFile {
    let mut f = rfl_domain::fixtures::synthetic_case(seed);
    f.attachments.clear();
    f
}

/// Everything clients sent through a [`recording_proxy`], byte for byte.
pub type Recording = Arc<std::sync::Mutex<Vec<u8>>>;

/// A TCP proxy on 127.0.0.1 port 0 in front of `target` (an `http://host:port` address) that records
/// every byte clients send: a test points a client at the returned address and then searches what
/// reached the server. Returns the proxy's `http://` address and the recording.
#[allow(clippy::expect_used)]
pub async fn recording_proxy(target: &str) -> (String, Recording) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = target
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy address");
    let recording: Recording = Arc::default();
    let rec = recording.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            let rec = rec.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = tokio::io::split(outbound);
                let upstream = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match ri.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if let Ok(mut r) = rec.lock() {
                                    r.extend_from_slice(&buf[..n]);
                                }
                                if wo.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = wo.shutdown().await;
                };
                let downstream = async {
                    let _ = tokio::io::copy(&mut ro, &mut wi).await;
                    let _ = wi.shutdown().await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    (format!("http://{addr}"), recording)
}

/// Every encoding of `needle` a careless client or server might use: raw, standard and URL-safe base64
/// (with and without padding), and hex (lower and upper case).
pub fn encodings(needle: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let e = base64::engine::general_purpose::STANDARD;
    let en = base64::engine::general_purpose::STANDARD_NO_PAD;
    let u = base64::engine::general_purpose::URL_SAFE;
    let un = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        needle.to_vec(),
        e.encode(needle).into_bytes(),
        en.encode(needle).into_bytes(),
        u.encode(needle).into_bytes(),
        un.encode(needle).into_bytes(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ]
}

/// Whether any encoding of `needle` occurs in `haystack`.
pub fn contains_any_encoding(haystack: &[u8], needle: &[u8]) -> bool {
    encodings(needle)
        .iter()
        .any(|n| haystack.windows(n.len()).any(|w| w == n.as_slice()))
}
