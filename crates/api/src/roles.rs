//! Who may call what. Each endpoint's handler takes an [`Authorized`] extractor naming its policy, so an
//! unauthorised caller is refused (403) before the request body is even read; [`access`] states the same
//! per operation for the OpenAPI document (`x-roles`), and a test walks that document with every role
//! and checks the server enforces exactly what it states.

use std::marker::PhantomData;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use rfl_domain::{MemberId, Role};

use crate::auth::{Caller, TokenClaims};
use crate::error::ApiError;
use rfl_storage::Standing;

/// A set of roles allowed to call an endpoint.
pub trait Policy: 'static {
    const ROLES: &'static [Role];
}

/// Roles that hold case data keys: they read and write case content.
pub struct CaseHolders;
impl Policy for CaseHolders {
    const ROLES: &'static [Role] = &[Role::Caseworker, Role::SocietyAdmin];
}

/// Society administration: enrolment codes, suspension, the escrow key.
pub struct SocietyAdmins;
impl Policy for SocietyAdmins {
    const ROLES: &'static [Role] = &[Role::SocietyAdmin];
}

/// The people of a society (not machines, not the Movement admin): the society's own description.
pub struct SocietyPeople;
impl Policy for SocietyPeople {
    const ROLES: &'static [Role] = &[Role::Caseworker, Role::SocietyAdmin, Role::Auditor];
}

/// People, as opposed to machines: what needs a person with an authenticator.
pub struct People;
impl Policy for People {
    const ROLES: &'static [Role] = &[
        Role::Caseworker,
        Role::SocietyAdmin,
        Role::Auditor,
        Role::MovementAdmin,
    ];
}

/// Creating national societies.
pub struct MovementAdmins;
impl Policy for MovementAdmins {
    const ROLES: &'static [Role] = &[Role::MovementAdmin];
}

/// Sync between servers (`docs/sync.md`): the society's sync agent, and its admins.
pub struct SyncPeers;
impl Policy for SyncPeers {
    const ROLES: &'static [Role] = &[Role::SyncAgent, Role::SocietyAdmin];
}

/// Reading and writing a society's changes (`docs/sync.md`): its sync agent only.
pub struct SyncAgents;
impl Policy for SyncAgents {
    const ROLES: &'static [Role] = &[Role::SyncAgent];
}

/// Anyone signed in, machines included (who am I, sign out everywhere).
pub struct AnyMember;
impl Policy for AnyMember {
    const ROLES: &'static [Role] = &[
        Role::Caseworker,
        Role::SocietyAdmin,
        Role::Auditor,
        Role::SyncAgent,
        Role::MovementAdmin,
    ];
}

/// A caller whose token is valid and whose role the policy `P` allows.
pub struct Authorized<P: Policy>(pub Caller, pub(crate) PhantomData<P>);

impl<P: Policy> FromRequest for Authorized<P> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            if P::ROLES.contains(&caller.role) {
                Ok(Authorized(caller, PhantomData))
            } else {
                Err(ApiError::Forbidden("your role may not do this").into())
            }
        })
    }
}

/// A caller whose token is verified (signature, times) and whose role the policy `P` allows, but whose
/// [`Standing`] (suspension, security stamp) is still to be checked: by the handler, in the same
/// database call as its own read, so the request goes to the blocking pool once instead of twice.
/// Nothing the handler read may leave it before [`Pending::admit`] succeeds. Only the routes of
/// [`admits_in_handler`] take one; the gate leaves their standing to them.
pub struct Pending<P: Policy>(TokenClaims, PhantomData<P>);

impl<P: Policy> Pending<P> {
    /// Whose standing the handler must read.
    pub fn member_id(&self) -> MemberId {
        self.0.caller.member_id
    }

    /// The caller, if `current` (read in the handler's own database call) still admits the token.
    pub fn admit(self, current: Option<Standing>) -> Result<Authorized<P>, ApiError> {
        Ok(Authorized(self.0.admit(current)?, PhantomData))
    }
}

impl<P: Policy> FromRequest for Pending<P> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The gate left the verified claims of a route in `admits_in_handler`; elsewhere (or without
        // the gate) the token is verified here. Either way no standing is taken on trust.
        let claims = match req.extensions().get::<TokenClaims>().copied() {
            Some(c) => Ok(c),
            None => crate::auth::verify_claims(req),
        };
        std::future::ready(claims.and_then(|c| {
            if P::ROLES.contains(&c.caller.role) {
                Ok(Pending(c, PhantomData))
            } else {
                Err(ApiError::Forbidden("your role may not do this").into())
            }
        }))
    }
}

/// Routes whose handler checks the caller's standing itself, in its one database call ([`Pending`]):
/// the hot reads. None of them needs step-up (a test checks).
const ADMITS_IN_HANDLER: &[(&str, &str)] = &[("GET", "/v1/cases/{id}")];

/// Whether the route is one of [`ADMITS_IN_HANDLER`].
pub fn admits_in_handler(method: &str, pattern: &str) -> bool {
    ADMITS_IN_HANDLER.contains(&(method, pattern))
}

/// Who may call an operation, as the OpenAPI document states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, enrolment, sign-in; rate limited where it matters).
    Public,
    Roles(&'static [Role]),
}

/// The access rule of each operation, by HTTP method and route pattern: the one table that the gate
/// enforces and the OpenAPI document states. A route missing here is refused (deny by default).
pub fn access(method: &str, pattern: &str) -> Option<Access> {
    use Access::*;
    Some(match (method, pattern) {
        ("GET", "/healthz" | "/readyz" | "/v1/openapi.json")
        | ("POST", "/v1/enrol" | "/v1/auth/challenge" | "/v1/auth/token")
        | ("POST", "/v1/enrol/passkey/start" | "/v1/enrol/passkey/finish")
        | ("POST", "/v1/auth/passkey/start" | "/v1/auth/passkey/finish") => Public,
        ("POST", "/v1/passkeys/register/start" | "/v1/passkeys/register/finish")
        | ("GET", "/v1/passkeys")
        | ("PUT", "/v1/passkeys/key-wraps" | "/v1/me/next-keys")
        | ("DELETE", "/v1/passkeys/{id}") => Roles(People::ROLES),
        ("GET", "/v1/me" | "/v1/movement/root" | "/v1/societies/{id}/trust")
        | ("POST", "/v1/auth/revoke") => Roles(AnyMember::ROLES),
        ("GET", "/v1/society" | "/v1/society/certificates") => Roles(SocietyPeople::ROLES),
        ("GET", "/v1/sync/info") => Roles(SyncPeers::ROLES),
        ("GET" | "POST", "/v1/sync/changes")
        | ("GET", "/v1/sync/cases/{id}")
        | ("GET" | "PUT", "/v1/sync/trust" | "/v1/sync/checkpoints/{instance}") => {
            Roles(SyncAgents::ROLES)
        }
        ("GET", "/v1/members" | "/v1/me/retired-cases" | "/v1/members/{id}/society") => {
            Roles(CaseHolders::ROLES)
        }
        (
            "PUT",
            "/v1/society/escrow"
            | "/v1/society/escrow/recovery"
            | "/v1/society/root"
            | "/v1/society/revocations",
        )
        | ("POST", "/v1/certificates" | "/v1/society/root/rotation")
        | (
            "POST",
            "/v1/members/{id}/suspend"
            | "/v1/members/{id}/reinstate"
            | "/v1/members/{id}/keys"
            | "/v1/members/{id}/reset"
            | "/v1/enrolment-codes",
        )
        | (
            "POST",
            "/v1/society/escrow/rotation"
            | "/v1/society/escrow/rotation/wraps"
            | "/v1/society/escrow/rotation/complete",
        )
        | (
            "GET",
            "/v1/society/escrow/rotation"
            | "/v1/society/escrow/rotation/wraps"
            | "/v1/society/suspended-holders",
        )
        | (
            "GET",
            "/v1/members/{id}/passkeys"
            | "/v1/members/{id}/cases"
            | "/v1/members/{id}/cases-elsewhere"
            | "/v1/members/{id}/retired-cases"
            | "/v1/enrolment-codes",
        )
        | ("GET", "/v1/transfers" | "/v1/transfers/{id}/case")
        | ("POST", "/v1/transfers/{id}/accept" | "/v1/transfers/{id}/reject")
        | ("DELETE", "/v1/enrolment-codes/{id}")
        | ("DELETE", "/v1/members/{id}/passkeys/{credential}") => Roles(SocietyAdmins::ROLES),
        ("POST", "/v1/societies" | "/v1/movement/certificates") | ("PUT", "/v1/movement/root") => {
            Roles(MovementAdmins::ROLES)
        }
        (
            "POST",
            "/v1/cases"
            | "/v1/cases/batch"
            | "/v1/cases/rekey"
            | "/v1/cases/{id}/records"
            | "/v1/cases/{id}/grants"
            | "/v1/cases/{id}/merge"
            | "/v1/cases/{id}/transfers",
        )
        | (
            "GET",
            "/v1/cases"
            | "/v1/cases/{id}"
            | "/v1/cases/{id}/holders"
            | "/v1/cases/{id}/conflict"
            | "/v1/cases/{id}/merged"
            | "/v1/conflicts"
            | "/v1/cases/{id}/attachments/{attachment}/chunks/{index}",
        )
        | (
            "PUT",
            "/v1/cases/{id}/status" | "/v1/cases/{id}/attachments/{attachment}/chunks/{index}",
        ) => Roles(CaseHolders::ROLES),
        _ => return None,
    })
}

/// How recent a passkey sign-in must be for an operation that needs step-up.
pub const STEP_UP_SECS: i64 = 5 * 60;

/// Operations that need a passkey assertion made within the last [`STEP_UP_SECS`] (step-up): every
/// administrative write (issuing and revoking enrolment codes, which also grants admin; suspending and
/// reinstating; revoking a member's authenticator; setting the society's escrow key; creating a
/// society; setting the root key and storing certificates; the Movement root and its certificates;
/// accepting, rejecting or cancelling a transfer; starting an escrow-key rotation; certifying a member's new keys; re-keying cases, which can drop
/// holders), and changing one's own authenticators (adding
/// or removing a passkey, replacing key wrappings, registering keys to rotate to), so a stolen token cannot add the thief's own. A stolen token alone, at most 15 minutes old, can then
/// do none of them once 5 minutes have passed, and a machine's key login can never do them.
pub fn needs_step_up(method: &str, pattern: &str) -> bool {
    matches!(
        (method, pattern),
        (
            "PUT",
            "/v1/society/escrow"
                | "/v1/society/escrow/recovery"
                | "/v1/society/root"
                | "/v1/society/revocations"
                | "/v1/passkeys/key-wraps"
                | "/v1/me/next-keys"
                | "/v1/movement/root"
        ) | ("DELETE", "/v1/passkeys/{id}")
            | (
                "POST",
                "/v1/members/{id}/suspend"
                    | "/v1/members/{id}/reinstate"
                    | "/v1/members/{id}/keys"
                    | "/v1/members/{id}/reset"
                    | "/v1/enrolment-codes"
                    | "/v1/societies"
                    | "/v1/movement/certificates"
                    | "/v1/transfers/{id}/accept"
                    | "/v1/transfers/{id}/reject"
                    | "/v1/society/escrow/rotation"
                    | "/v1/certificates"
                    | "/v1/society/root/rotation"
                    | "/v1/cases/rekey"
                    | "/v1/passkeys/register/start"
                    | "/v1/passkeys/register/finish"
            )
            | (
                "DELETE",
                "/v1/enrolment-codes/{id}" | "/v1/members/{id}/passkeys/{credential}"
            )
    )
}

/// Whether the caller signed in with a passkey recently enough for a step-up operation at `now_millis`.
pub fn stepped_up(caller: &Caller, now_millis: i64) -> bool {
    caller.method == crate::auth::AuthMethod::Passkey
        && now_millis / 1000 - caller.auth_time <= STEP_UP_SECS
}

/// The gate every request passes: authentication and the role check happen here, before routing
/// extracts anything from the request (so a caller without the role learns nothing from body
/// validation). The verified [`Caller`] is left in the request for the handlers.
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let pattern = crate::contract::request_pattern(&req);
    let method = req.method().as_str().to_owned();
    let rule = pattern.as_deref().and_then(|p| access(&method, p));
    match (rule, pattern) {
        (Some(Access::Public), _) => next.call(req).await,
        (Some(Access::Roles(roles)), Some(p)) if admits_in_handler(&method, &p) => {
            // The token and role here; the standing in the handler's own database call. No
            // `Caller` is left for extractors to trust, only the claims for `Pending`.
            let claims = crate::auth::verify_claims(req.request())?;
            if !roles.contains(&claims.caller.role) {
                return Err(ApiError::Forbidden("your role may not do this").into());
            }
            req.extensions_mut().insert(claims);
            next.call(req).await
        }
        (Some(Access::Roles(roles)), Some(p)) => {
            let caller = crate::auth::authenticate(req.request()).await?;
            if !roles.contains(&caller.role) {
                return Err(ApiError::Forbidden("your role may not do this").into());
            }
            if needs_step_up(&method, &p) {
                let now = req
                    .app_data::<actix_web::web::Data<std::sync::Arc<crate::AppState>>>()
                    .map(|s| crate::clock::Clock::now_millis(s.clock.as_ref()))
                    .ok_or_else(|| ApiError::Internal("app state missing".into()))?;
                if !stepped_up(&caller, now) {
                    return Err(ApiError::StepUpRequired(STEP_UP_SECS).into());
                }
            }
            req.extensions_mut().insert(caller);
            next.call(req).await
        }
        // Unknown routes fall through to the default service (404, or 405 with Allow).
        (_, None) => next.call(req).await,
        // A route the document has, with a method it does not list: 405 and the methods it has (not
        // the router's choice of another route that also matches the path, such as
        // `/v1/passkeys/{id}` for `DELETE /v1/passkeys/key-wraps`). A route that exists but is
        // missing from the table is refused.
        (_, Some(p)) => match allowed_methods(&req, &p) {
            Some(allow) => Err(ApiError::MethodNotAllowed(allow).into()),
            None => Err(ApiError::Forbidden("this operation has no access rule").into()),
        },
    }
}

/// The `Allow` value of a route pattern: the document's methods for it, or (without the document)
/// the methods the access table has for it.
fn allowed_methods(req: &ServiceRequest, pattern: &str) -> Option<String> {
    if let Some(routes) = req.app_data::<actix_web::web::Data<crate::contract::Routes>>() {
        return routes.allowed(pattern).map(str::to_owned);
    }
    let methods: Vec<&str> = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        .into_iter()
        .filter(|m| access(m, pattern).is_some())
        .collect();
    (!methods.is_empty()).then(|| methods.join(", "))
}

/// Adds `x-roles` to every operation of the document: `["public"]` or the role names.
pub fn annotate(api: &mut utoipa::openapi::OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        for (method, op) in [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ] {
            let Some(op) = op.as_mut() else { continue };
            let roles: Vec<&str> = match access(method, path) {
                Some(Access::Public) => vec!["public"],
                Some(Access::Roles(r)) => r.iter().map(|r| r.as_str()).collect(),
                None => continue,
            };
            let mut ext = op.extensions.take().unwrap_or_default();
            let mut add = utoipa::openapi::extensions::ExtensionsBuilder::new()
                .add("x-roles", serde_json::json!(roles));
            if needs_step_up(method, path) {
                add = add.add("x-step-up-seconds", serde_json::json!(STEP_UP_SECS));
            }
            ext.merge(add.build());
            op.extensions = Some(ext);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_that_admit_in_handler_are_role_gated_and_need_no_step_up() {
        for (method, pattern) in ADMITS_IN_HANDLER {
            assert!(admits_in_handler(method, pattern));
            assert!(
                matches!(access(method, pattern), Some(Access::Roles(_))),
                "{method} {pattern}"
            );
            assert!(!needs_step_up(method, pattern), "{method} {pattern}");
        }
        assert!(!admits_in_handler("PUT", "/v1/cases/{id}/status"));
    }
}
