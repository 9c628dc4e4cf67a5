//! Sign-ins per second and the cost of authenticating a request.
//!
//! - Passkey sign-ins: the full WebAuthn ceremony (`POST /v1/auth/passkey/start`, the software
//!   authenticator `webauthn_authenticator_rs::softpasskey::SoftPasskey` signs the assertion,
//!   `POST /v1/auth/passkey/finish`, an access token comes back), as `tests/passkeys.rs` does it.
//! - Key sign-ins (Ed25519 challenge, the machines' login) for comparison: `POST /v1/auth/challenge`,
//!   the device key signs, `POST /v1/auth/token`.
//! - Token verification alone: `rfl_api::auth::TokenKeys::verify` in a loop, one thread.
//! - Authentication per request: `GET /v1/me` (bearer token verified, then the member's security stamp
//!   read from the database) against `GET /healthz` (no authentication), same clients and duration.
//!
//! The server's sign-in rate limits (per client address and per account, per minute) would stop a load
//! from one address on one account after a few dozen attempts, so this phase's server runs with both
//! raised to [`BENCH_AUTH_LIMIT_PER_MINUTE`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rfl_api::auth::TokenKeys;
use rfl_api::clock::{Clock, SystemClock};
use rfl_api::config::Config;
use rfl_client::http::Api;
use rfl_client::DeviceKeys;
use rfl_domain::api::{ChallengeRequest, TokenRequest};
use rfl_domain::{MemberId, Role, SocietyId};
use serde::Serialize;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;

use crate::measure::{client_load, OpsResult, ReadLimit};
use crate::setup::Env;
use crate::{BenchResult, Context};

/// Both sign-in rate limits (`limits.auth_per_minute_per_address` and `..._per_account`) while this
/// phase runs. The defaults (60 and 20 per minute) would refuse the load within a second.
pub const BENCH_AUTH_LIMIT_PER_MINUTE: u32 = 1_000_000_000;

/// Raises the sign-in rate limits for the sign-in phase's server.
pub fn raise_auth_limits(config: &mut Config) {
    config.limits.auth_per_minute_per_address = BENCH_AUTH_LIMIT_PER_MINUTE;
    config.limits.auth_per_minute_per_account = BENCH_AUTH_LIMIT_PER_MINUTE;
}

/// `TokenKeys::verify` (and, for reference, `TokenKeys::issue`), one thread, no I/O.
#[derive(Clone, Debug, Serialize)]
pub struct TokenVerifyResult {
    pub iterations: u64,
    pub verify_us_per_call: f64,
    /// `TokenKeys::verify_cached` on the same token, seen before (what each request after the first
    /// costs the server).
    pub verify_cached_us_per_call: f64,
    pub issue_iterations: u64,
    pub issue_us_per_call: f64,
}

/// Times `TokenKeys::verify` on one token issued by `TokenKeys::issue` (a fresh key in a temporary
/// folder, the default issuer, audience and lifetime). Blocking: run it off the async workers.
pub fn token_verify_bench(iterations: u64) -> BenchResult<TokenVerifyResult> {
    let config = Config::load(None).ctx("load the server configuration")?;
    let dir = tempfile::tempdir().ctx("create a temporary folder")?;
    let keys = TokenKeys::load_or_create(
        &dir.path().join("token-signing-key.pk8"),
        &config.auth.issuer,
        &config.auth.audience,
        config.auth.token_ttl_secs,
    )
    .ctx("token key")?;
    let now = SystemClock.now_millis();
    let (member, society) = (MemberId::new(), SocietyId::new());
    let (token, _) = keys
        .issue(
            member,
            society,
            Role::Caseworker,
            7,
            rfl_api::auth::AuthMethod::Passkey,
            now,
        )
        .map_err(|e| format!("issue a token: {e}"))?;
    // Warm-up, and a check that the token verifies at all (a refused token would be timed otherwise).
    for _ in 0..100 {
        let claims = keys
            .verify(&token, now)
            .map_err(|e| format!("verify the issued token: {e}"))?;
        if claims.caller.member_id != member || claims.security_stamp != 7 {
            return Err("the verified token carries other claims than were issued".into());
        }
    }
    let iterations = iterations.max(1);
    let t = Instant::now();
    for _ in 0..iterations {
        let c = keys
            .verify(std::hint::black_box(&token), now)
            .map_err(|e| format!("verify: {e}"))?;
        std::hint::black_box(c);
    }
    let verify_us_per_call = t.elapsed().as_secs_f64() * 1e6 / iterations as f64;
    keys.verify_cached(&token, now)
        .map_err(|e| format!("verify the issued token (cached): {e}"))?;
    let t = Instant::now();
    for _ in 0..iterations {
        let c = keys
            .verify_cached(std::hint::black_box(&token), now)
            .map_err(|e| format!("verify (cached): {e}"))?;
        std::hint::black_box(c);
    }
    let verify_cached_us_per_call = t.elapsed().as_secs_f64() * 1e6 / iterations as f64;
    let issue_iterations = (iterations / 4).max(100);
    let t = Instant::now();
    for _ in 0..issue_iterations {
        let tok = keys
            .issue(
                member,
                society,
                Role::Caseworker,
                7,
                rfl_api::auth::AuthMethod::Passkey,
                now,
            )
            .map_err(|e| format!("issue: {e}"))?;
        std::hint::black_box(tok);
    }
    let issue_us_per_call = t.elapsed().as_secs_f64() * 1e6 / issue_iterations as f64;
    Ok(TokenVerifyResult {
        iterations,
        verify_us_per_call,
        verify_cached_us_per_call,
        issue_iterations,
        issue_us_per_call,
    })
}

/// What the sign-in phase is told to do.
#[derive(Clone, Copy, Debug)]
pub struct AuthOptions {
    /// Sign-ins per load (sequential, then concurrent); 0 skips the sign-in loads.
    pub signin_count: u64,
    /// Clients in the concurrent sign-in loads (each with its own passkey).
    pub signin_clients: usize,
    /// Clients in the `/v1/me` vs `/healthz` loads.
    pub request_clients: usize,
    /// Seconds of each of those two loads; 0 skips them.
    pub request_secs: f64,
}

/// The sign-in phase's figures. A figure is present only if its load succeeded.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuthReport {
    /// Cores of the machine (client, server and database share them).
    pub cores: usize,
    /// Both sign-in rate limits, per minute, on this phase's server.
    pub auth_limit_per_minute: u32,
    pub passkey_sequential: Option<OpsResult>,
    pub passkey_concurrent: Option<OpsResult>,
    pub key_sequential: Option<OpsResult>,
    pub key_concurrent: Option<OpsResult>,
    /// `GET /healthz`, no token.
    pub healthz: Option<OpsResult>,
    /// `GET /v1/me` with a bearer token.
    pub me: Option<OpsResult>,
    /// Wall time per request at saturation, `/v1/me` minus `/healthz` (the whole machine's time).
    pub auth_wall_us_per_request: Option<f64>,
    /// The same times the number of cores: CPU time per request spent authenticating, if every core was
    /// busy in both loads (an estimate).
    pub auth_core_us_per_request: Option<f64>,
}

fn signin_limit(count: u64) -> ReadLimit {
    ReadLimit::Count(count)
}

/// One passkey sign-in: start, the authenticator's assertion, finish; the access token.
async fn passkey_signin(
    api: &Api,
    member: MemberId,
    pk: &mut SoftPasskey,
    origin: &Url,
) -> BenchResult<String> {
    let tok = api
        .sign_in_with_passkey(member, |opts| pk.do_authentication(origin.clone(), opts))
        .await
        .ctx("passkey sign-in")?;
    if tok.token.is_empty() {
        return Err("passkey sign-in returned an empty token".into());
    }
    Ok(tok.token)
}

/// One key sign-in: challenge, Ed25519 signature by the device key, the access token.
pub(crate) async fn key_signin(
    api: &Api,
    member: MemberId,
    keys: &DeviceKeys,
) -> BenchResult<String> {
    let ch = api
        .challenge(&ChallengeRequest { member_id: member })
        .await
        .ctx("POST /v1/auth/challenge")?;
    let sig = rfl_crypto::sign_auth_challenge(&keys.signing, &ch.audience, &ch.challenge.0);
    let tok = api
        .token_for(&TokenRequest {
            challenge_id: ch.challenge_id,
            signature: sig.to_vec().into(),
        })
        .await
        .ctx("POST /v1/auth/token")?;
    if tok.token.is_empty() {
        return Err("key sign-in returned an empty token".into());
    }
    Ok(tok.token)
}

fn print_load(what: &str, r: &OpsResult) {
    eprintln!(
        "  {what}: {} clients, {} in {:.2} s: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        r.clients, r.ops, r.seconds, r.ops_per_sec, r.p50_ms, r.p99_ms
    );
}

/// Runs the sign-in and per-request loads on `env` (whose server must have raised sign-in limits).
/// Figures land in `out` as they are measured; the first failure ends the phase.
pub async fn measure(
    env: &Env,
    o: AuthOptions,
    cores: usize,
    out: &mut AuthReport,
) -> BenchResult<()> {
    out.cores = cores.max(1);
    out.auth_limit_per_minute = env
        .config
        .limits
        .auth_per_minute_per_address
        .min(env.config.limits.auth_per_minute_per_account);
    let member = env.cw_member;
    let origin = Arc::new(Url::parse(&env.rp_origin).ctx("webauthn.rp_origin")?);

    if o.signin_count > 0 {
        // Passkeys: one software authenticator per concurrent client, each registered to the caseworker
        // (a shared one would race on its signature counter, which the server checks).
        let clients = o.signin_clients.max(1);
        eprintln!("  registering {clients} software passkeys for the caseworker (not timed)");
        let mut states = Vec::with_capacity(clients);
        for _ in 0..clients {
            let mut pk = SoftPasskey::new(true);
            let o = (*origin).clone();
            env.caseworker
                .api()
                .add_passkey(|opts| pk.do_registration(o, opts))
                .await
                .ctx("register a passkey")?;
            states.push((Api::new(&env.base).ctx("HTTP client")?, pk));
        }
        let op = {
            let origin = origin.clone();
            move |(api, mut pk): (Api, SoftPasskey)| {
                let origin = origin.clone();
                async move {
                    passkey_signin(&api, member, &mut pk, &origin).await?;
                    Ok((api, pk))
                }
            }
        };
        let mut rest = states.split_off(1);
        let (seq, mut first) =
            client_load(states, signin_limit(o.signin_count), op.clone()).await?;
        print_load("passkey sign-ins, sequential", &seq);
        out.passkey_sequential = Some(seq);
        rest.append(&mut first);
        let (conc, mut states) =
            client_load(rest, signin_limit(o.signin_count), op.clone()).await?;
        print_load("passkey sign-ins, concurrent", &conc);
        out.passkey_concurrent = Some(conc);
        // The token of a passkey sign-in opens the API (untimed check).
        let (api, mut pk) = states.pop().ok_or("no passkey client left")?;
        let token = passkey_signin(&api, member, &mut pk, &origin).await?;
        let me = api
            .with_token(token)
            .me()
            .await
            .ctx("GET /v1/me with a passkey token")?;
        if me.member_id != member {
            return Err("a passkey token signed in someone else".into());
        }

        // Key login (machines only: the society's sync agent), the same way.
        let keys = env.agent_keys.clone();
        let agent = env.agent_member;
        let op = move |api: Api| {
            let keys = keys.clone();
            async move {
                key_signin(&api, agent, &keys).await?;
                Ok(api)
            }
        };
        let (seq, _) = client_load(
            vec![Api::new(&env.base).ctx("HTTP client")?],
            signin_limit(o.signin_count),
            op.clone(),
        )
        .await?;
        print_load("key sign-ins, sequential", &seq);
        out.key_sequential = Some(seq);
        let apis = (0..clients)
            .map(|_| Api::new(&env.base).ctx("HTTP client"))
            .collect::<BenchResult<Vec<_>>>()?;
        let (conc, _) = client_load(apis, signin_limit(o.signin_count), op).await?;
        print_load("key sign-ins, concurrent", &conc);
        out.key_concurrent = Some(conc);
    }

    if o.request_secs > 0.0 {
        let clients = o.request_clients.max(1);
        let limit = ReadLimit::Duration(Duration::from_secs_f64(o.request_secs));
        // A fresh token (the passkey sign-ins above do not change the security stamp, but this one is
        // certainly current).
        let anon = Api::new(&env.base).ctx("HTTP client")?;
        let token = key_signin(&anon, env.agent_member, &env.agent_keys).await?;
        let authed = Api::new(&env.base).ctx("HTTP client")?.with_token(token);

        eprintln!(
            "  GET /healthz, {clients} clients for {:.1} s",
            o.request_secs
        );
        let (health, _) = client_load(vec![anon; clients], limit, |api: Api| async move {
            api.get::<serde_json::Value>("/healthz")
                .await
                .ctx("GET /healthz")?;
            Ok(api)
        })
        .await?;
        print_load("GET /healthz", &health);
        eprintln!(
            "  GET /v1/me, {clients} clients for {:.1} s",
            o.request_secs
        );
        let (me, _) = client_load(vec![authed; clients], limit, move |api: Api| async move {
            let v = api
                .get::<serde_json::Value>("/v1/me")
                .await
                .ctx("GET /v1/me")?;
            if v.get("member_id").is_none() {
                return Err("GET /v1/me answered without a member id".into());
            }
            Ok(api)
        })
        .await?;
        print_load("GET /v1/me", &me);
        let wall = me.wall_us_per_op() - health.wall_us_per_op();
        out.auth_wall_us_per_request = Some(wall);
        out.auth_core_us_per_request = Some(wall * cores.max(1) as f64);
        out.healthz = Some(health);
        out.me = Some(me);
        eprintln!(
            "  authentication per request: +{wall:.1} µs wall at saturation (≈ {:.0} core-µs on {} cores)",
            wall * cores.max(1) as f64,
            cores.max(1)
        );
    }
    Ok(())
}
