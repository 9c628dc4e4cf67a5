#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! The rfl REST API (`rfl-server`).
//!
//! The server stores and serves ciphertext. It checks who may touch which case, that envelopes are
//! well-formed and bound to the ids they are filed under, and that their signer is the caller; it cannot
//! read any of them. Every request that touches a case goes through [`cases`], the single place where a
//! later audit log hooks in.

pub mod auth;
pub mod bulk;
pub mod cases;
pub mod certs;
pub mod clock;
pub mod config;
pub mod contract;
pub mod error;
pub mod escrow;
pub mod framing;
pub mod identity;
pub mod member_keys;
pub mod movement;
pub mod pacing;
pub mod passkeys;
pub mod ratelimit;
pub mod roles;
pub mod root_rotation;
pub mod signing_keys;
pub mod sync;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::{ServerHandle, Service};
use actix_web::{get, web, App, HttpResponse, HttpServer};
use rfl_domain::api::HealthResponse;
use rfl_storage::Store;
use utoipa_actix_web::AppExt;

use crate::auth::TokenKeys;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiError;

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub tokens: TokenKeys,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    pub auth_limits: ratelimit::AuthLimits,
    /// The WebAuthn relying party (`[webauthn]` configuration).
    pub webauthn: webauthn_rs::Webauthn,
    /// Bulk database work's turns (`limits.bulk_share_percent`).
    pub pacer: pacing::Pacer,
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }
}

pub type State = web::Data<Arc<AppState>>;

/// Runs blocking work (database, envelope checks) off the async workers.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    web::block(f).await?
}

#[utoipa::path(tag = "health", responses((status = 200, description = "The process is up", body = HealthResponse)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse {
        status: "ok".into(),
    })
}

#[utoipa::path(tag = "health", responses(
    (status = 200, description = "The database answers", body = HealthResponse),
    (status = 503, description = "The database does not answer", body = crate::error::Problem)))]
#[get("/readyz")]
async fn readyz(state: State) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    blocking(move || {
        store
            .ping()
            .map_err(|_| ApiError::Unavailable("the database does not answer"))
    })
    .await?;
    Ok(HttpResponse::Ok().json(HealthResponse {
        status: "ready".into(),
    }))
}

#[utoipa::path(tag = "health", responses((status = 200, description = "This OpenAPI 3 document")))]
#[get("/openapi.json")]
async fn openapi_json(doc: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.get_ref().clone())
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = build(App::new().into_utoipa_app()).split_for_parts();
    api
}

fn build<T>(app: utoipa_actix_web::UtoipaApp<T>) -> utoipa_actix_web::UtoipaApp<T>
where
    T: actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Error = actix_web::Error,
        InitError = (),
    >,
{
    app.service(healthz).service(readyz).service(
        utoipa_actix_web::scope("/v1")
            .service(openapi_json)
            .configure(identity::configure)
            .configure(cases::configure)
            .configure(passkeys::configure)
            .configure(certs::configure)
            .configure(escrow::configure)
            .configure(member_keys::configure)
            .configure(root_rotation::configure)
            .configure(movement::configure)
            .configure(sync::configure),
    )
}

/// Lowercase hex, the API's spelling of digests, certificates and revocation lists.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The OpenAPI document as served, for the compiled-in configuration (`rfl-server openapi` and the
/// tests; a running server states its own limits: [`openapi_document_with`]).
pub fn openapi_document() -> Result<serde_json::Value, String> {
    let config = Config::load(None).map_err(|e| e.to_string())?;
    openapi_document_with(&config)
}

/// The OpenAPI document as served: [`openapi`] with its title, security scheme and role annotations,
/// completed by [`contract::complete`] with what every request can meet (authentication, body and
/// parameter checks, the database), every response described, error bodies typed
/// `application/problem+json` per status as the server sends them (`error.rs`), and `config`'s limits.
pub fn openapi_document_with(config: &Config) -> Result<serde_json::Value, String> {
    let mut doc = serde_json::to_value(finish_openapi(openapi())).map_err(|e| e.to_string())?;
    contract::complete(&mut doc, config.limits.page_max);
    Ok(doc)
}

fn finish_openapi(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    api.info.title = "rfl — Restoring Family Links case store".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "End-to-end encrypted case management. The server stores ciphertext only; clients encrypt. \
         Errors are application/problem+json. 400: the request does not match this document; 422: it \
         does, but the rules refuse it (signatures, workflow, unknown codes). A method this document \
         does not list for a path is answered 405 with Allow."
            .into(),
    );
    let mut components = api.components.take().unwrap_or_default();
    components.add_security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(utoipa::openapi::security::Http::new(
            utoipa::openapi::security::HttpAuthScheme::Bearer,
        )),
    );
    api.components = Some(components);
    roles::annotate(&mut api);
    api
}

/// A server that is listening.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// This node's id in the token keys' heartbeat (random per start).
    pub node_id: String,
    state: Arc<AppState>,
    refresher: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }

    /// Reads the token keys' state again now, as the background refresh does every
    /// `auth.signing_key_refresh_secs`.
    pub async fn refresh_keys(&self) -> Result<auth::KeySync, ApiError> {
        sync_keys(self.state.clone(), self.node_id.clone()).await
    }

    pub async fn stop(self) {
        self.refresher.abort();
        self.handle.stop(true).await;
        let _ = self.task.await;
        let (state, node) = (self.state, self.node_id);
        let _ = tokio::task::spawn_blocking(move || state.store.forget_token_key_node(&node)).await;
    }
}

async fn sync_keys(state: Arc<AppState>, node: String) -> Result<auth::KeySync, ApiError> {
    blocking(move || {
        let now = state.now();
        state
            .tokens
            .sync(&state.store, &node, now)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
}

/// Reads the token keys' state every `every` (a key added, promoted or retired on any node takes
/// effect here without a restart); a failed read keeps the keys as they were and is logged.
fn refresh_keys_every(
    state: Arc<AppState>,
    node: String,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            match sync_keys(state.clone(), node.clone()).await {
                Ok(k) if k.missing_primary.is_some() => tracing::error!(
                    kid = k.missing_primary.as_deref().unwrap_or(""),
                    "this node does not hold the primary token-signing key's file: it cannot sign in \
                     anyone; copy the file from the node where the key was added"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "token keys not refreshed"),
            }
        }
    })
}

/// Opens the store, binds, and starts serving in the background (on the current tokio runtime).
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<RunningServer, StartError> {
    let db_url = config.database.url.clone();
    let pool_size = config.database.pool_size;
    let store = tokio::task::spawn_blocking(move || Store::open(&db_url, pool_size))
        .await
        .map_err(|e| StartError::Other(e.to_string()))??;
    let tokens = TokenKeys::from_config(&config.auth)?;
    start_with(config, store, tokens, clock).await
}

pub async fn start_with(
    config: Config,
    store: Store,
    tokens: TokenKeys,
    clock: Arc<dyn Clock>,
) -> Result<RunningServer, StartError> {
    let bind = config.server.bind.clone();
    let workers = config.server.workers;
    let keep_alive = std::time::Duration::from_secs(config.server.keep_alive_secs);
    let auth_limits = ratelimit::AuthLimits::new(
        config.limits.auth_per_minute_per_address,
        config.limits.auth_per_minute_per_account,
    );
    let webauthn = passkeys::relying_party(&config.webauthn).map_err(StartError::Other)?;
    let pacer = pacing::Pacer::new(config.limits.bulk_share_percent);
    let state = Arc::new(AppState {
        store,
        tokens,
        clock,
        config,
        auth_limits,
        webauthn,
        pacer,
    });
    let node_id = uuid::Uuid::new_v4().to_string();
    let synced = sync_keys(state.clone(), node_id.clone())
        .await
        .map_err(|e| StartError::Other(format!("cannot read the token keys: {e}")))?;
    if let Some(kid) = synced.missing_primary {
        let (st, node) = (state.clone(), node_id.clone());
        let _ = tokio::task::spawn_blocking(move || st.store.forget_token_key_node(&node)).await;
        return Err(StartError::Other(format!(
            "this node does not hold the file of the primary token-signing key {kid}: copy {} from \
             the node where it was added into the folder of auth.signing_key_file",
            signing_keys::KeyFiles::new(std::path::Path::new(&state.config.auth.signing_key_file))
                .path_for(&kid)
                .display()
        )));
    }
    let doc = openapi_document_with(&state.config).map_err(StartError::Other)?;
    let routes = web::Data::new(contract::Routes::from_document(&doc));
    let doc = serde_json::to_string(&doc).map_err(|e| StartError::Other(e.to_string()))?;
    let doc = web::Data::new(doc);
    let data = web::Data::new(state.clone());
    let limits = state.config.limits.clone();
    let mut server = HttpServer::new(move || {
        let json = web::JsonConfig::default()
            .limit(limits.json_body_bytes)
            .error_handler(error::json_error);
        let pacer_state = data.clone();
        let (app, _) = build(
            App::new()
                .app_data(data.clone())
                .app_data(doc.clone())
                .app_data(routes.clone())
                .app_data(json)
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PayloadConfig::new(limits.chunk_bytes))
                .wrap(actix_web::middleware::from_fn(error::problem_fallback))
                .wrap(actix_web::middleware::from_fn(roles::gate))
                .wrap_fn(move |req, srv| {
                    // One line per request: method, route pattern, status, time. Never bodies or queries.
                    let method = req.method().clone();
                    let pattern =
                        contract::request_pattern(&req).unwrap_or_else(|| "unmatched".to_owned());
                    let started = std::time::Instant::now();
                    if !pacing::BULK_ROUTES.contains(&pattern.as_str()) {
                        pacer_state.pacer.ordinary(started);
                    }
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await?;
                        tracing::info!(
                            target: "rfl_api::access",
                            method = %method,
                            route = %pattern,
                            status = res.status().as_u16(),
                            micros = started.elapsed().as_micros() as u64,
                        );
                        Ok(res)
                    }
                })
                .into_utoipa_app(),
        )
        .split_for_parts();
        app.default_service(web::to(contract::no_route))
    });
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server
        .keep_alive(keep_alive)
        .bind(&bind)
        .map_err(|e| StartError::Bind(bind.clone(), e))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| StartError::Other("bound to no address".into()))?;
    let server = server.disable_signals().shutdown_timeout(5).run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, backend = ?state.store.backend(), "rfl-server listening");
    let refresher = refresh_keys_every(
        state.clone(),
        node_id.clone(),
        std::time::Duration::from_secs(state.config.auth.signing_key_refresh_secs),
    );
    Ok(RunningServer {
        addr,
        handle,
        task,
        node_id,
        state,
        refresher,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] rfl_storage::StorageError),
    #[error(transparent)]
    Key(#[from] auth::KeyFileError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Initialises logging once (text or JSON lines on stderr).
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod openapi_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// A bulk route is named as requests are matched (the documented path), or its requests would
    /// count as ordinary and bulk work would pace itself against itself.
    #[test]
    fn every_bulk_route_is_a_documented_path() {
        let doc = super::openapi_document().unwrap();
        for route in super::pacing::BULK_ROUTES {
            assert!(doc["paths"].get(route).is_some(), "{route} is not a route");
        }
    }

    /// What code generators, validators and contract testers need of the document (CI also runs
    /// openapi-spec-validator and schemathesis on it): unique operation ids, a description for every
    /// response, every status the layers before a handler can answer (401 and 403 for a token and a
    /// role, 400/413/415 for a JSON body, 400/404 for path parameters, 503 for the database), and
    /// every error body a problem document typed per status.
    #[test]
    fn the_document_is_complete_where_generators_need_it() {
        let doc = super::openapi_document().unwrap();
        let mut ids = std::collections::HashSet::new();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}: no responses");
                let has = |status: &str| responses.contains_key(status);
                let roles = op["x-roles"].as_array().unwrap();
                if roles.iter().any(|r| r != "public") {
                    assert!(has("401"), "{method} {path} needs a token: 401");
                    assert!(
                        op["security"].as_array().is_some_and(|s| !s.is_empty()),
                        "{method} {path} needs a token: security"
                    );
                    if roles.len() < rfl_domain::Role::ALL.len() {
                        assert!(has("403"), "{method} {path} refuses some roles: 403");
                    }
                }
                if op["requestBody"]["content"]["application/json"].is_object() {
                    for s in ["400", "413", "415"] {
                        assert!(has(s), "{method} {path} reads a JSON body: {s}");
                    }
                }
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                if params.iter().any(|p| p["in"] == "path") {
                    assert!(has("400") && has("404"), "{method} {path}: path parameters");
                }
                if path != "/healthz" && path != "/v1/openapi.json" {
                    assert!(has("503"), "{method} {path} reads the database: 503");
                }
                for (status, r) in responses {
                    assert!(
                        r["description"].as_str().is_some_and(|d| !d.is_empty()),
                        "{method} {path} {status}: no description"
                    );
                    if status.starts_with('4') || status.starts_with('5') {
                        let content = r["content"].as_object().unwrap_or_else(|| {
                            panic!("{method} {path} {status}: errors have a problem body")
                        });
                        assert_eq!(
                            content.keys().collect::<Vec<_>>(),
                            ["application/problem+json"],
                            "{method} {path} {status}: errors are application/problem+json"
                        );
                        let reference = content["application/problem+json"]["schema"]["$ref"]
                            .as_str()
                            .unwrap();
                        let name = reference.trim_start_matches("#/components/schemas/");
                        assert_eq!(name, format!("Problem{status}"));
                        let schema = &doc["components"]["schemas"][name];
                        let kinds = schema["allOf"][1]["properties"]["type"]["enum"]
                            .as_array()
                            .unwrap_or_else(|| panic!("{name} names its problem types"));
                        assert!(!kinds.is_empty(), "{name}: problem types");
                        assert_eq!(
                            schema["allOf"][1]["properties"]["status"]["const"],
                            status.parse::<u16>().unwrap()
                        );
                    }
                }
            }
        }
        // Enums and limits the server enforces are stated.
        let schemas = &doc["components"]["schemas"];
        for (name, values) in [
            ("Role", rfl_domain::Role::ALL.len()),
            ("CaseStatus", rfl_domain::CaseStatus::ALL.len()),
            ("RecordKind", rfl_domain::api::RecordKind::ALL.len()),
        ] {
            assert_eq!(
                schemas[name]["enum"].as_array().map(Vec::len),
                Some(values),
                "{name} is an enum"
            );
        }
        assert_eq!(
            schemas["EnrolRequest"]["properties"]["signing_key"]["maxLength"],
            44
        );
        assert_eq!(
            schemas["WriteRecordsRequest"]["properties"]["records"]["maxItems"],
            1000
        );
        let limit = doc["paths"]["/v1/cases"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 1000);
        assert!(
            operations > 30,
            "the document lists the API ({operations} operations)"
        );
    }
}
