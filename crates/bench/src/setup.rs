//! One measured environment: a fresh database, the real server on 127.0.0.1 port 0, a society whose
//! admin has set the escrow key, and an enrolled, logged-in caseworker. Everything goes through the real
//! client SDK and HTTP API, except creating the society (a server admin command, as in production).

use std::path::Path;
use std::sync::Arc;

use rfl_api::clock::{Clock, SystemClock};
use rfl_api::config::Config;
use rfl_api::RunningServer;
use rfl_client::session::{enrol, Session};
use rfl_client::{enrol_person, sign_in_person, DeviceKeys, Site, SoftAuthenticator};
use rfl_crypto::{AgeIdentity, AgeRecipient, DataKey, EscrowBatch};
use rfl_domain::{MemberId, Role, SocietyId};
use rfl_storage::testing::{TestBackend, TestDatabase};
use rfl_storage::Store;

use crate::baseline::BaselineCtx;
use crate::{BenchResult, Context};

pub fn backend_name(b: TestBackend) -> &'static str {
    match b {
        TestBackend::Sqlite => "sqlite",
        TestBackend::Postgres => "postgres",
    }
}

/// A running server on a fresh database with a caseworker signed in.
pub struct Env {
    pub backend: TestBackend,
    pub base: String,
    /// The society's first admin, and their authenticator (for a fresh sign-in: step-up).
    pub admin: tokio::sync::Mutex<(Session, SoftAuthenticator)>,
    pub caseworker: Session,
    pub cw_keys: Arc<DeviceKeys>,
    pub cw_member: MemberId,
    /// The caseworker's authenticator (a software one with PRF: it holds the caseworker's keys).
    pub cw_authenticator: tokio::sync::Mutex<SoftAuthenticator>,
    /// The society root's fingerprint, which the caseworker pins.
    pub root_fingerprint: String,
    /// A sync agent of the society (a machine: Ed25519 key login).
    pub agent_keys: Arc<DeviceKeys>,
    pub agent_member: MemberId,
    pub society: SocietyId,
    pub escrow: AgeRecipient,
    /// The society's recovery identity and root key (a real society keeps both offline).
    pub recovery: AgeIdentity,
    pub root: rfl_crypto::SocietyRootKey,
    /// The relying party's configured origin (`webauthn.rp_origin`): what a passkey client presents.
    pub rp_origin: String,
    /// The server's configuration as started (the token key file, issuer, audience, limits).
    pub config: Config,
    srv: Server,
}

/// The real server on a fresh database, with nothing in it: what [`Env`] starts with, and what
/// a second instance (a hub) is.
pub struct Server {
    pub backend: TestBackend,
    pub base: String,
    /// The configuration as started (the token key file, issuer, audience, limits).
    pub config: Config,
    server: Option<RunningServer>,
    db: Option<TestDatabase>,
    _key_dir: tempfile::TempDir,
}

/// Creates the database off the async workers. `TestDatabase::new` panics when it cannot (it is a test
/// helper); the panic is turned into an error here.
async fn fresh_database(backend: TestBackend) -> BenchResult<TestDatabase> {
    tokio::task::spawn_blocking(move || TestDatabase::new(backend))
        .await
        .map_err(|e| {
            format!(
                "cannot create a fresh {} database: {e}",
                backend_name(backend)
            )
        })
}

impl Env {
    pub async fn start(backend: TestBackend) -> BenchResult<Env> {
        Self::start_with(backend, |_| {}).await
    }

    /// As [`Env::start`], with the server configuration adjusted by `tweak` before it starts.
    pub async fn start_with(
        backend: TestBackend,
        tweak: impl FnOnce(&mut Config),
    ) -> BenchResult<Env> {
        let srv = Server::start_with(backend, tweak).await?;
        let (base, started_config) = (srv.base.clone(), srv.config.clone());
        let ttl = started_config.auth.enrolment_code_ttl_hours;
        let now = SystemClock.now_millis();
        // The society and its first admin's code: a server-side admin command, as in production.
        let (society, admin_code) = srv
            .with_store(move |store| {
                rfl_api::identity::create_society(store, "rfl-bench society", None, now, ttl)
                    .ctx("create the society")
            })
            .await?;

        let site = Site::new(&base, &started_config.webauthn.rp_origin);
        let mut admin_authenticator = SoftAuthenticator::new();
        let mut admin = enrol_person(&site, &admin_code, &mut admin_authenticator)
            .await
            .ctx("enrol the admin")?;
        // Kept for the escrow-key rotation (the only measurement that opens the escrow key).
        let recovery = AgeIdentity::generate();
        let root = admin
            .init_society(&recovery.recipient())
            .await
            .ctx("set the society escrow and root keys")?;
        let root_fingerprint = root.public().fingerprint();
        let (caseworker, cw_authenticator) =
            certified_caseworker(&site, &admin, &root_fingerprint).await?;
        let cw_member = caseworker.member_id();
        let cw_keys = caseworker.keys_arc();
        let agent_code = admin
            .issue_enrolment_code(Role::SyncAgent)
            .await
            .ctx("issue a sync agent enrolment code")?
            .code;
        let agent_keys = Arc::new(DeviceKeys::generate().ctx("sync agent keys")?);
        let agent_member = enrol(&base, &agent_code, &agent_keys)
            .await
            .ctx("enrol the sync agent")?
            .member_id;
        let escrow = caseworker
            .api()
            .society()
            .await
            .ctx("read the society")?
            .escrow
            .ok_or("the society has no escrow key after setting it")?
            .recipient;
        let escrow = AgeRecipient::parse(&escrow).ctx("parse the escrow recipient")?;
        Ok(Env {
            backend,
            base,
            admin: tokio::sync::Mutex::new((admin, admin_authenticator)),
            caseworker,
            cw_keys,
            cw_member,
            cw_authenticator: tokio::sync::Mutex::new(cw_authenticator),
            root_fingerprint,
            agent_keys,
            agent_member,
            society,
            escrow,
            recovery,
            root,
            rp_origin: started_config.webauthn.rp_origin.clone(),
            config: started_config,
            srv,
        })
    }

    /// The server this environment runs on.
    pub fn server(&self) -> &Server {
        &self.srv
    }

    /// Another caseworker of the environment's society: enrolled, certified by the admin, the root
    /// pinned.
    pub async fn another_caseworker(&self) -> BenchResult<Session> {
        let admin = self.admin.lock().await;
        let (caseworker, _) = certified_caseworker(
            &Site::new(&self.base, &self.rp_origin),
            &admin.0,
            &self.root_fingerprint,
        )
        .await?;
        Ok(caseworker)
    }

    /// A second society on the same server and database (a server admin command, as in
    /// production), with its admin and root set up, and one caseworker of it.
    pub async fn another_society(&self, name: &str) -> BenchResult<Session> {
        let now = SystemClock.now_millis();
        let ttl = self.config.auth.enrolment_code_ttl_hours;
        let name = name.to_owned();
        let (_, admin_code) = self
            .srv
            .with_store(move |store| {
                rfl_api::identity::create_society(store, &name, None, now, ttl)
                    .ctx("create the society")
            })
            .await?;
        let site = Site::new(&self.base, &self.rp_origin);
        let mut authenticator = SoftAuthenticator::new();
        let mut admin = enrol_person(&site, &admin_code, &mut authenticator)
            .await
            .ctx("enrol the second society's admin")?;
        let root = admin
            .init_society(&AgeIdentity::generate().recipient())
            .await
            .ctx("set the second society's escrow and root keys")?;
        let (caseworker, _) =
            certified_caseworker(&site, &admin, &root.public().fingerprint()).await?;
        Ok(caseworker)
    }

    /// A fresh sign-in of the caseworker with their authenticator (access tokens live 15 minutes; a long
    /// import may outlast one).
    pub async fn login_again(&self) -> BenchResult<Session> {
        let site = Site::new(&self.base, &self.rp_origin);
        let mut authenticator = self.cw_authenticator.lock().await;
        let mut s = sign_in_person(&site, self.cw_member, &mut authenticator)
            .await
            .ctx("caseworker sign-in")?;
        s.pin_root(&self.root_fingerprint)
            .await
            .ctx("pin the society root")?;
        Ok(s)
    }

    /// What the plaintext baseline needs, with wrapped-key sizes taken from real wraps.
    pub fn baseline_ctx(&self) -> BenchResult<BaselineCtx> {
        let key = DataKey::generate().ctx("data key")?;
        let case = uuid::Uuid::now_v7();
        let member_wrapped_len = rfl_crypto::SELF_WRAP_LEN;
        let escrow_wrapped_len = EscrowBatch::new(*self.society.as_uuid(), self.escrow.as_age())
            .and_then(|b| b.wrap(&key, case, 1))
            .ctx("wrap a data key")?
            .len();
        Ok(BaselineCtx {
            member_id: *self.cw_member.as_uuid(),
            society_id: *self.society.as_uuid(),
            keys: self.cw_keys.clone(),
            member_wrapped_len,
            escrow_wrapped_len,
            escrow_recipient: self.escrow.to_string(),
            holders: rfl_crypto::holders_digest(&[rfl_crypto::Holder {
                member_id: *self.cw_member.as_uuid(),
                keys_digest: rfl_crypto::subject_keys_digest(
                    Some(&self.cw_keys.signing.public_key()),
                    &self.cw_keys.age.recipient(),
                ),
            }])
            .ctx("holders digest")?,
        })
    }

    /// Database size in bytes (see [`Server::db_size`]).
    pub async fn db_size(&self, checkpoint: bool) -> BenchResult<u64> {
        self.srv.db_size(checkpoint).await
    }

    /// See [`Server::analyze`].
    pub async fn analyze(&self) -> BenchResult<bool> {
        self.srv.analyze().await
    }

    /// Stops the server; returns the final database size; then drops the database.
    pub async fn finish(self) -> BenchResult<u64> {
        self.srv.finish().await
    }
}

impl Server {
    pub async fn start(backend: TestBackend) -> BenchResult<Server> {
        Self::start_with(backend, |_| {}).await
    }

    /// As [`Server::start`], with the configuration adjusted by `tweak` before it starts.
    pub async fn start_with(
        backend: TestBackend,
        tweak: impl FnOnce(&mut Config),
    ) -> BenchResult<Server> {
        let db = fresh_database(backend).await?;
        let key_dir = tempfile::tempdir().ctx("create a temporary folder")?;
        let mut config = Config::load(None).ctx("load the server configuration")?;
        config.server.bind = "127.0.0.1:0".to_owned();
        config.database.url = db.url.clone();
        config.auth.signing_key_file = key_dir
            .path()
            .join("token-signing-key.pk8")
            .to_string_lossy()
            .into_owned();
        tweak(&mut config);
        let server = rfl_api::start(config.clone(), Arc::new(SystemClock))
            .await
            .ctx("start the server")?;
        // Loopback by address: no name resolution, no IPv6 fallback on connect.
        let base = format!("http://127.0.0.1:{}", server.addr.port());
        Ok(Server {
            backend,
            base,
            config,
            server: Some(server),
            db: Some(db),
            _key_dir: key_dir,
        })
    }

    /// Runs `f` on a store of its own on the server's database, off the async workers: what a
    /// server admin command does.
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> BenchResult<T> + Send + 'static,
    ) -> BenchResult<T> {
        let db = self.db.as_ref().ok_or("the database is gone")?;
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || {
            let store = Store::open(&url, 1).ctx("open the store")?;
            f(&store)
        })
        .await
        .ctx("store task")?
    }

    /// Database size in bytes. SQLite: the database file plus its -wal and -shm (after a
    /// `wal_checkpoint(TRUNCATE)` when `checkpoint`); PostgreSQL: `pg_database_size`.
    pub async fn db_size(&self, checkpoint: bool) -> BenchResult<u64> {
        let db = self.db.as_ref().ok_or("the database is gone")?;
        let url = db.url.clone();
        let path = db.sqlite_path();
        tokio::task::spawn_blocking(move || match path {
            Some(p) => sqlite_size(&p, checkpoint),
            None => postgres_size(&url),
        })
        .await
        .ctx("database size task")?
    }

    /// PostgreSQL: `ANALYZE` (what an operator runs after a bulk load; autovacuum would do it later, and
    /// it is off on the benchmark machine's server). Without statistics the planner hash-joins whole
    /// tables for a page of the case list or one case. SQLite: nothing.
    pub async fn analyze(&self) -> BenchResult<bool> {
        let db = self.db.as_ref().ok_or("the database is gone")?;
        if db.sqlite_path().is_some() {
            return Ok(false);
        }
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let mut conn = diesel::PgConnection::establish(&url).ctx("connect to PostgreSQL")?;
            conn.batch_execute("ANALYZE;").ctx("ANALYZE")?;
            Ok(true)
        })
        .await
        .ctx("ANALYZE task")?
    }

    /// Stops the server; returns the final database size; then drops the database.
    pub async fn finish(mut self) -> BenchResult<u64> {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let size = self.db_size(true).await;
        let db = self.db.take();
        tokio::task::spawn_blocking(move || drop(db))
            .await
            .ctx("drop the database")?;
        size
    }
}

fn sqlite_size(path: &Path, checkpoint: bool) -> BenchResult<u64> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    if checkpoint {
        // The stopped server's pooled connections may close a moment later: wait for them (busy_timeout)
        // rather than fail with "database is locked".
        let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
            .ctx("open the SQLite database")?;
        conn.batch_execute("PRAGMA busy_timeout = 60000; PRAGMA wal_checkpoint(TRUNCATE);")
            .ctx("checkpoint the WAL")?;
    }
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        if let Ok(m) = std::fs::metadata(&name) {
            total += m.len();
        }
    }
    if total == 0 {
        return Err(format!("no SQLite database at {}", path.display()));
    }
    Ok(total)
}

#[derive(diesel::QueryableByName)]
struct DbSize {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    size: i64,
}

fn postgres_size(url: &str) -> BenchResult<u64> {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(url).ctx("connect to PostgreSQL")?;
    let row: DbSize = diesel::sql_query("SELECT pg_database_size(current_database()) AS size")
        .get_result(&mut conn)
        .ctx("pg_database_size")?;
    u64::try_from(row.size).ctx("negative database size")
}

/// A caseworker enrolled with a code from `admin`, certified by them, with the society root pinned;
/// and their authenticator (for a later sign-in).
async fn certified_caseworker(
    site: &Site,
    admin: &Session,
    root_fingerprint: &str,
) -> BenchResult<(Session, SoftAuthenticator)> {
    let code = admin
        .issue_enrolment_code(Role::Caseworker)
        .await
        .ctx("issue a caseworker enrolment code")?
        .code;
    let mut authenticator = SoftAuthenticator::new();
    let mut caseworker = enrol_person(site, &code, &mut authenticator)
        .await
        .ctx("enrol the caseworker")?;
    admin
        .certify_member(caseworker.member_id(), &caseworker.keys_fingerprint())
        .await
        .ctx("certify the caseworker")?;
    caseworker
        .pin_root(root_fingerprint)
        .await
        .ctx("pin the society root")?;
    Ok((caseworker, authenticator))
}
