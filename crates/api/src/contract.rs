//! The API contract: the OpenAPI document as served says exactly what the server does.
//!
//! The handlers' `utoipa` annotations state each operation's own answers (its success, and the errors
//! only its handler gives: 404 for an unknown case, 409 for a stale head, …). What every request meets
//! on its way to a handler is stated here, once, from what the document itself says of the operation,
//! so that an operation added later is held to it without anyone remembering to:
//!
//! - needs a token (`x-roles` is not `public`): 401 (no token, a bad or revoked one, or no recent
//!   passkey sign-in for a step-up operation), and 403 when some role is not allowed;
//! - has a JSON body: 400 (malformed, or not matching the schema), 413 (over the size limit), 415
//!   (not `application/json`);
//! - has path or query parameters: 400 (malformed), and 404 for a path naming nothing the caller
//!   may see;
//! - reads the database (all but the health and document routes): 503 when it does not answer.
//!
//! 400 means the request does not match the document; a request that matches it but that the rules
//! refuse (a signature that does not verify, an unknown enrolment code, a workflow step not allowed)
//! is 422. Every error body is `application/problem+json` and its schema names the problem types that
//! status can carry. [`Routes`] answers a method the document does not list for a path it has with
//! 405 and `Allow`.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::dev::ServiceRequest;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::error::ApiError;

/// The methods of an OpenAPI path item, as the document spells them.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Operations that answer without the database.
const NO_DATABASE: [(&str, &str); 2] = [("get", "/healthz"), ("get", "/v1/openapi.json")];

/// Fills in what the annotations leave out (see the module documentation): the statuses every
/// request can meet, a description for every response, and problem bodies typed per status.
/// `page_max` is the configured largest page of the case listings (`GET /v1/cases`, a member's
/// cases, one's retired cases).
pub fn complete(doc: &mut Value, page_max: i64) {
    add_problem_schemas(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if method == "get"
                && matches!(
                    path.as_str(),
                    "/v1/cases"
                        | "/v1/members/{id}/cases"
                        | "/v1/members/{id}/retired-cases"
                        | "/v1/me/retired-cases"
                )
            {
                set_parameter_maximum(op, "limit", page_max);
            }
            let statuses = common_statuses(method, path, op);
            binary_bodies(op);
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for status in statuses {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| json!({}));
            }
            for (status, response) in responses.iter_mut() {
                let Some(response) = response.as_object_mut() else {
                    continue;
                };
                response
                    .entry("description")
                    .or_insert_with(|| status_description(status).into());
                if status.starts_with('4') || status.starts_with('5') {
                    response.insert(
                        "content".into(),
                        json!({"application/problem+json": {"schema": {
                            "$ref": format!("#/components/schemas/Problem{status}")
                        }}}),
                    );
                }
            }
            // Sorted, so the document reads in status order.
            let sorted: BTreeMap<String, Value> = std::mem::take(responses).into_iter().collect();
            responses.extend(sorted);
        }
    }
}

/// The statuses an operation can answer before or around its handler (module documentation).
fn common_statuses(method: &str, path: &str, op: &Value) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let roles: Vec<&str> = op["x-roles"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !roles.is_empty() && roles != ["public"] {
        out.insert(401);
        if roles.len() < rfl_domain::Role::ALL.len() {
            out.insert(403);
        }
    }
    let body = &op["requestBody"]["content"];
    if body.get("application/json").is_some() {
        out.extend([400, 413, 415]);
    } else if body.is_object() {
        out.insert(413);
    }
    let params: Vec<&Value> = op["parameters"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    if params.iter().any(|p| p["in"] == "path") {
        out.extend([400, 404]);
    }
    if params.iter().any(|p| p["in"] == "query") {
        out.insert(400);
    }
    if !NO_DATABASE.contains(&(method, path)) {
        out.insert(503);
    }
    out
}

/// A body that is bytes (`Vec<u8>` in an annotation, which utoipa describes as an array of
/// integers) under a media type other than JSON: a binary string, which is what travels, and never
/// an empty one (an attachment chunk has a byte at least, a binary batch its count).
fn binary_bodies(op: &mut Value) {
    let Some(op) = op.as_object_mut() else {
        return;
    };
    for (key, value) in op.iter_mut() {
        match key.as_str() {
            "requestBody" => binary_content(value),
            "responses" => {
                if let Some(responses) = value.as_object_mut() {
                    responses.values_mut().for_each(binary_content);
                }
            }
            _ => {}
        }
    }
}

fn binary_content(body: &mut Value) {
    let Some(content) = body.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    for (media, body) in content.iter_mut() {
        let is_bytes =
            body["schema"]["type"] == "array" && body["schema"]["items"]["type"] == "integer";
        if is_bytes && !media.ends_with("json") {
            body["schema"] = json!({"type": "string", "format": "binary", "minLength": 1});
        }
    }
}

fn set_parameter_maximum(op: &mut Value, name: &str, max: i64) {
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut().filter(|p| p["name"] == name) {
            if let Some(schema) = p.get_mut("schema").and_then(Value::as_object_mut) {
                schema.insert("maximum".into(), json!(max));
            }
        }
    }
}

/// `Problem400`, `Problem401`, …: the problem document of each error status, with the problem types
/// ([`ApiError::every_kind`]) and the title that status carries. The framework's own errors are
/// answered with one of these kinds too (`error::problem_fallback`).
fn add_problem_schemas(doc: &mut Value) {
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for e in ApiError::every_kind() {
        use actix_web::ResponseError;
        by_status
            .entry(e.status_code().as_u16())
            .or_default()
            .push(e.problem_type());
    }
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, kinds) in by_status {
        let title = actix_web::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        schemas.insert(
            format!("Problem{status}"),
            json!({
                "description": format!("A problem document (RFC 9457) with status {status}"),
                "allOf": [
                    {"$ref": "#/components/schemas/Problem"},
                    {"type": "object", "properties": {
                        "type": {"type": "string", "enum": kinds},
                        "title": {"type": "string", "const": title},
                        "status": {"type": "integer", "const": status},
                    }}
                ]
            }),
        );
    }
}

/// What a status means in this API (the problem body says what went wrong in the case at hand).
fn status_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "Done; no content",
        "400" => "The request does not match this document (body, parameter or header)",
        "401" => "No valid access token (or, for a step-up operation, no passkey sign-in within its x-step-up-seconds), or a sign-in that did not verify",
        "403" => "The caller's role does not allow this",
        "404" => "No such resource for the caller",
        "409" => "Conflict with the current state (e.g. a stale head commit): nothing was written",
        "410" => "Expired",
        "413" => "The body is larger than the server accepts",
        "415" => "Unsupported content type",
        "422" => "Matches this document but the rules refuse it (the problem body says which)",
        "429" => "Too many attempts: wait and retry (Retry-After)",
        "503" => "The database does not answer: retry later",
        _ => "See the problem body",
    }
}

/// The methods of every path of the document, for answering the others with 405.
pub struct Routes {
    allow: BTreeMap<String, String>,
}

impl Routes {
    /// From the document as served: its path templates are the router's patterns.
    pub fn from_document(doc: &Value) -> Routes {
        let mut allow = BTreeMap::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, item) in paths {
                let methods: Vec<String> = item
                    .as_object()
                    .map(|i| {
                        i.keys()
                            .filter(|m| METHODS.contains(&m.as_str()))
                            .map(|m| m.to_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                if !methods.is_empty() {
                    allow.insert(path.clone(), methods.join(", "));
                }
            }
        }
        Routes { allow }
    }

    /// The `Allow` value of a route pattern, if the document has it.
    pub fn allowed(&self, pattern: &str) -> Option<&str> {
        self.allow.get(pattern).map(String::as_str)
    }
}

/// The route pattern a request is for: a literal path of the document wins over a template that
/// also matches it (OpenAPI's rule: `/v1/passkeys/key-wraps` is not `/v1/passkeys/{id}`), otherwise
/// the router's pattern. Worked out once per request (matching runs a regex per resource) and kept
/// in the request for the next middleware that asks: the access log, then the gate.
pub fn request_pattern(req: &ServiceRequest) -> Option<String> {
    if let Some(RequestPattern(p)) = req.extensions().get::<RequestPattern>() {
        return p.clone();
    }
    let pattern = match req.app_data::<web::Data<Routes>>() {
        Some(routes) if routes.allow.contains_key(req.path()) => Some(req.path().to_owned()),
        _ => req.match_pattern(),
    };
    req.extensions_mut().insert(RequestPattern(pattern.clone()));
    pattern
}

/// A request's route pattern, once [`request_pattern`] has found it.
#[derive(Clone)]
struct RequestPattern(Option<String>);

/// The default service: a path the document has, with a method it does not list, is 405 with
/// `Allow`; anything else is 404.
pub async fn no_route(
    req: HttpRequest,
    routes: web::Data<Routes>,
) -> Result<HttpResponse, ApiError> {
    match req
        .match_pattern()
        .and_then(|p| routes.allowed(&p).map(str::to_owned))
    {
        Some(allow) => Err(ApiError::MethodNotAllowed(allow)),
        None => Err(ApiError::NotFound),
    }
}
