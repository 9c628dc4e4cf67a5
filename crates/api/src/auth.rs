//! Access tokens: short-lived EdDSA JWTs signed by the server's Ed25519 key.
//!
//! jsonwebtoken's defaults are lax (leeway, unchecked `nbf`, unbound `kid`), so verification here pins
//! the algorithm, binds `kid` to the one key, requires `exp`, `nbf`, `aud`, `iss`, `sub`, `jti` with
//! their JSON types, and checks times against the injected clock with no leeway.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::{Algorithm, Header, Validation};
use rfl_domain::{MemberId, Role, SocietyId};
use rfl_storage::{Standing, Store};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::signing_keys::{KeyFiles, KeySet, LocalKey};
use crate::AppState;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: MemberId,
    pub soc: SocietyId,
    pub role: Role,
    /// The member's security stamp when the token was issued.
    pub stp: i64,
    /// When the member authenticated (unix seconds, OpenID Connect `auth_time`); tokens are only issued
    /// at sign-in, so this equals `iat`, and step-up checks it.
    pub auth_time: i64,
    /// How (RFC 8176 `amr`): `["hwk", "mfa"]` for a passkey with user verification, `["swk"]` for a
    /// machine's device key.
    pub amr: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: uuid::Uuid,
}

/// The server's token keys and the rules tokens are checked against.
pub struct TokenKeys {
    /// The keys this node signs and verifies with now ([`TokenKeys::sync`] replaces them).
    set: RwLock<Arc<KeySet>>,
    /// Where this node's key files are (none for a key given in memory).
    files: Option<KeyFiles>,
    /// The key given in memory, for a node without files.
    given: Option<Arc<LocalKey>>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    /// Tokens verified already (see [`TokenKeys::verify_cached`]).
    verified: Mutex<HashMap<[u8; 32], VerifiedToken>>,
}

/// A token whose signature and claims verified once: what it says and when it is valid.
#[derive(Clone, Copy)]
struct VerifiedToken {
    claims: TokenClaims,
    nbf: i64,
    exp: i64,
}

/// At most this many verified tokens are remembered (expired ones are dropped first when it is full).
const VERIFIED_TOKENS_MAX: usize = 16_384;

pub use crate::signing_keys::KeyFileError;

/// What a node found when it read the token keys' state again ([`TokenKeys::sync`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySync {
    /// The key it signs with, if it holds the one the database names primary.
    pub primary: Option<String>,
    /// The primary key's kid when this node does not hold its file.
    pub missing_primary: Option<String>,
    /// The keys it verifies with.
    pub verifying: Vec<String>,
}

impl TokenKeys {
    /// Loads the key files of `path` (the configured file and the keys added beside it), creating the
    /// configured file (mode 0600) with a new key if there is none. Until [`TokenKeys::sync`] reads the
    /// database, the configured key (or else the first file) signs and every file verifies.
    pub fn load_or_create(
        path: &Path,
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
    ) -> Result<TokenKeys, KeyFileError> {
        let files = KeyFiles::new(path);
        let local = files.load_or_create()?;
        let mut set = KeySet::default();
        for k in &local {
            set.verifying.insert(k.kid.clone(), k.clone());
        }
        set.primary = local.first().cloned();
        Ok(Self::with(
            set,
            Some(files),
            None,
            issuer,
            audience,
            ttl_secs,
        ))
    }

    /// The key files `config` names ([`TokenKeys::load_or_create`]).
    pub fn from_config(config: &crate::config::AuthConfig) -> Result<TokenKeys, KeyFileError> {
        Self::load_or_create(
            Path::new(&config.signing_key_file),
            &config.issuer,
            &config.audience,
            config.token_ttl_secs,
        )
    }

    /// One key, given as a PKCS#8 document (no files: benchmarks, unit tests).
    pub fn from_pkcs8(
        der: &[u8],
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
    ) -> Option<TokenKeys> {
        let key = Arc::new(LocalKey::from_pkcs8(der, None)?);
        Some(Self::with(
            KeySet::only(key.clone()),
            None,
            Some(key),
            issuer,
            audience,
            ttl_secs,
        ))
    }

    fn with(
        set: KeySet,
        files: Option<KeyFiles>,
        given: Option<Arc<LocalKey>>,
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
    ) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = 0;
        // Times are checked below against the injected clock; presence and types by `Claims`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        TokenKeys {
            set: RwLock::new(Arc::new(set)),
            files,
            given,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(900),
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(s) => s.clone(),
            // A writer panicked mid-swap; the Arc it was replacing is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The kid of the key this node signs with now, if any.
    pub fn kid(&self) -> Option<String> {
        self.current().primary.as_ref().map(|k| k.kid.clone())
    }

    /// Reads the token keys' state from `store` again (blocking): the key files this node holds now,
    /// which of them the database lists and in which state at `now`. A database without keys (a new
    /// installation, or one from before key rotation) adopts this node's first key as primary. Then
    /// reports this node (`node_id`) as running with the keys it verifies, and forgets nodes silent
    /// for a day. Tokens verified before are checked again if a key stopped verifying.
    pub fn sync(
        &self,
        store: &Store,
        node_id: &str,
        now: i64,
    ) -> Result<KeySync, crate::signing_keys::RotateError> {
        let local: Vec<Arc<LocalKey>> = match (&self.files, &self.given) {
            (Some(files), _) => files.load_all()?,
            (None, Some(k)) => vec![k.clone()],
            (None, None) => Vec::new(),
        };
        let mut rows = store.token_keys()?;
        if rows.is_empty() {
            if let Some(first) = local.first() {
                rows = store.adopt_first_token_key(&first.kid, &first.public, now)?;
            }
        }
        let set = KeySet::agreed(&rows, &local, now);
        let mut verifying: Vec<String> = set.verifying.keys().cloned().collect();
        verifying.sort();
        let missing_primary = match &set.primary {
            Some(_) => None,
            None => rows
                .iter()
                .find(|r| r.state == rfl_storage::TokenKeyState::Primary)
                .map(|r| r.kid.clone()),
        };
        let report = KeySync {
            primary: set.primary.as_ref().map(|k| k.kid.clone()),
            missing_primary,
            verifying: verifying.clone(),
        };
        let dropped = {
            let before = self.current();
            before
                .verifying
                .keys()
                .any(|k| !set.verifying.contains_key(k))
        };
        match self.set.write() {
            Ok(mut s) => *s = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        if dropped {
            if let Ok(mut m) = self.verified.lock() {
                m.clear();
            }
        }
        store.token_key_heartbeat(node_id, &verifying, now, now - 86_400_000)?;
        Ok(report)
    }

    /// Issues a token valid from `now_millis` for the configured lifetime; returns it with its expiry.
    pub fn issue(
        &self,
        member: MemberId,
        society: SocietyId,
        role: Role,
        security_stamp: i64,
        method: AuthMethod,
        now_millis: i64,
    ) -> Result<(String, i64), ApiError> {
        let now = now_millis / 1000;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: member,
            soc: society,
            role,
            stp: security_stamp,
            auth_time: now,
            amr: method.amr().iter().map(|s| (*s).to_owned()).collect(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            jti: uuid::Uuid::new_v4(),
        };
        let set = self.current();
        let key = set.primary.as_ref().ok_or(ApiError::Unavailable(
            "this server node does not hold the current token-signing key: try again, or another node",
        ))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| ApiError::Internal(format!("token signing failed: {e}")))?;
        Ok((token, claims.exp))
    }

    /// The answer to a successful sign-in (key login or passkey): a token for `member` as it is now.
    pub fn sign_in_response(
        &self,
        member: &rfl_storage::Member,
        method: AuthMethod,
        now_millis: i64,
    ) -> Result<rfl_domain::api::TokenResponse, ApiError> {
        let (token, expires_at) = self.issue(
            member.id,
            member.society_id,
            member.role,
            member.security_stamp,
            method,
            now_millis,
        )?;
        Ok(rfl_domain::api::TokenResponse {
            token,
            token_type: "Bearer".into(),
            expires_at,
            key_wrap: None,
        })
    }

    /// Verifies a token's signature, algorithm, key, audience, issuer and times at `now_millis`. Whether
    /// its member may still use it is checked against the database by the [`Caller`] extractor.
    pub fn verify(&self, token: &str, now_millis: i64) -> Result<TokenClaims, ApiError> {
        self.verify_token(token, now_millis).map(|v| v.claims)
    }

    /// [`TokenKeys::verify`] once per token: a token seen before (by SHA-256 of its bytes) is not
    /// verified again, only its times are checked against `now_millis`. Whether its member may still
    /// use it (suspension, security stamp) is read from the database on every request as before, so
    /// revocation takes effect on the next request either way.
    pub fn verify_cached(&self, token: &str, now_millis: i64) -> Result<TokenClaims, ApiError> {
        let key: [u8; 32] = {
            let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            let mut k = [0u8; 32];
            k.copy_from_slice(d.as_ref());
            k
        };
        let seen = self.verified.lock().ok().and_then(|m| m.get(&key).copied());
        let v = match seen {
            Some(v) => v,
            None => {
                let v = self.verify_token(token, now_millis)?;
                if let Ok(mut m) = self.verified.lock() {
                    if m.len() >= VERIFIED_TOKENS_MAX {
                        let now = now_millis / 1000;
                        m.retain(|_, t| t.exp > now);
                        if m.len() >= VERIFIED_TOKENS_MAX {
                            m.clear();
                        }
                    }
                    m.insert(key, v);
                }
                v
            }
        };
        check_times(v.nbf, v.exp, now_millis)?;
        Ok(v.claims)
    }

    fn verify_token(&self, token: &str, now_millis: i64) -> Result<VerifiedToken, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::Unauthorized("malformed token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(ApiError::Unauthorized("token algorithm not accepted"));
        }
        let set = self.current();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| set.verifying.get(kid))
            .ok_or(ApiError::Unauthorized("token key unknown"))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized("token invalid"))?;
        let c = data.claims;
        check_times(c.nbf, c.exp, now_millis)?;
        let method = AuthMethod::from_amr(&c.amr).ok_or(ApiError::Unauthorized(
            "token invalid: unknown sign-in method",
        ))?;
        Ok(VerifiedToken {
            claims: TokenClaims {
                caller: Caller {
                    member_id: c.sub,
                    society_id: c.soc,
                    role: c.role,
                    auth_time: c.auth_time,
                    method,
                },
                security_stamp: c.stp,
            },
            nbf: c.nbf,
            exp: c.exp,
        })
    }
}

/// A token is valid from `nbf` (inclusive) to `exp` (exclusive), unix seconds, with no leeway.
fn check_times(nbf: i64, exp: i64, now_millis: i64) -> Result<(), ApiError> {
    let now = now_millis / 1000;
    if exp <= now {
        return Err(ApiError::Unauthorized("token expired"));
    }
    if nbf > now {
        return Err(ApiError::Unauthorized("token not yet valid"));
    }
    Ok(())
}

/// A token whose signature and times were verified; not yet checked against the member's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    pub caller: Caller,
    pub security_stamp: i64,
}

/// Who is calling: a verified access token of a member who is not suspended and whose security stamp
/// still matches. Extracting it from a request is the authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub member_id: MemberId,
    pub society_id: SocietyId,
    pub role: Role,
    /// When the caller signed in (unix seconds).
    pub auth_time: i64,
    pub method: AuthMethod,
}

/// How a token's holder signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A WebAuthn assertion with user verification (people).
    Passkey,
    /// A signature by the member's Ed25519 device key (machines: sync agents).
    DeviceKey,
}

impl AuthMethod {
    /// The token's `amr` values (RFC 8176).
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            AuthMethod::Passkey => &["hwk", "mfa"],
            AuthMethod::DeviceKey => &["swk"],
        }
    }

    fn from_amr(amr: &[String]) -> Option<AuthMethod> {
        [AuthMethod::Passkey, AuthMethod::DeviceKey]
            .into_iter()
            .find(|m| m.amr().iter().copied().eq(amr.iter().map(String::as_str)))
    }
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Caller, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The gate (crate::roles::gate) has already authenticated requests to protected routes.
        if let Some(caller) = req.extensions().get::<Caller>().copied() {
            return Box::pin(async move { Ok(caller) });
        }
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// Verifies the request's bearer token and that its member may still use it: not suspended, security
/// stamp unchanged. Suspension and revocation change the stamp, so every earlier token fails here on
/// its next request, on every node.
pub async fn authenticate(req: &HttpRequest) -> Result<Caller, actix_web::Error> {
    let (state, claims) = verify_request(req)?;
    let store = state.store.clone();
    let member = claims.caller.member_id;
    let current = crate::blocking(move || Ok(store.standing(member)?)).await?;
    Ok(claims.admit(current)?)
}

impl TokenClaims {
    /// The caller, if the member's `current` standing still admits this token: the member exists, is
    /// not suspended, and the security stamp is the one the token was issued under.
    pub fn admit(self, current: Option<Standing>) -> Result<Caller, ApiError> {
        match current {
            Some(m) if !m.suspended && m.security_stamp == self.security_stamp => Ok(self.caller),
            Some(m) if m.suspended => Err(ApiError::Unauthorized("your account is suspended")),
            Some(_) => Err(ApiError::Unauthorized(
                "this token was revoked: sign in again",
            )),
            None => Err(ApiError::Unauthorized("unknown account")),
        }
    }
}

/// The claims of the request's bearer token, verified (signature, times; cached per token) but not
/// yet admitted against the member's standing: no database access.
pub fn verify_claims(req: &HttpRequest) -> Result<TokenClaims, actix_web::Error> {
    verify_request(req).map(|(_, claims)| claims)
}

fn verify_request(
    req: &HttpRequest,
) -> Result<(web::Data<Arc<AppState>>, TokenClaims), actix_web::Error> {
    let state = req
        .app_data::<web::Data<Arc<AppState>>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("app state missing".into()))?;
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("sign in first: no bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed authorization header"))?;
    let token = value.strip_prefix("Bearer ").ok_or(ApiError::Unauthorized(
        "authorization must be a bearer token",
    ))?;
    let claims = state
        .tokens
        .verify_cached(token.trim(), state.clock.now_millis())?;
    Ok((state, claims))
}

#[cfg(test)]
mod tests;
