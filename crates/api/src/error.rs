//! The one place where errors become HTTP responses: `application/problem+json` (RFC 9457).
//!
//! Details are written for the caller and never contain case content (the server has none) or secrets.
//! Internal errors are logged with their cause and answered with a generic 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use rfl_storage::StorageError;
use serde::Serialize;
use utoipa::ToSchema;

/// Where the problem type URIs live.
pub const PROBLEM_BASE: &str = "https://rfl.example/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong in this case, for the caller; never case content or a secret.
    pub detail: String,
    /// With a refused sync cursor (`sync-cursor`): this server's database.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub instance_id: Option<uuid::Uuid>,
    /// With a refused sync cursor (`sync-cursor`): the cursor to go on from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_after: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// The operation needs a passkey assertion made within the last few minutes (RFC 9470's
    /// `insufficient_user_authentication`): sign in with the passkey again and retry.
    #[error("this operation needs a fresh sign-in with your passkey (within the last {0} seconds): sign in again and retry")]
    StepUpRequired(i64),
    #[error("not found")]
    NotFound,
    /// The path exists, the method does not: the `Allow` header lists the methods it has.
    #[error("this path answers {0} only")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    /// A sync cursor this server cannot honour (read from another database, or beyond the
    /// society's last number): 409, saying where to resume (`docs/sync.md`, "Sequences and
    /// cursors"). A sync is never stuck on a cursor.
    #[error("{detail}")]
    SyncCursor {
        detail: String,
        instance_id: uuid::Uuid,
        resume_after: u64,
    },
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("too many attempts: wait a minute and try again")]
    TooManyRequests,
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::StepUpRequired(_) => "step-up-required",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Gone(_) => "gone",
            ApiError::SyncCursor { .. } => "sync-cursor",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::TooManyRequests => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// One error of every kind, for the OpenAPI document: which problem types each status can carry.
    /// Add a new variant here too (the match below does not compile without it).
    pub fn every_kind() -> Vec<ApiError> {
        let every = vec![
            ApiError::BadRequest(String::new()),
            ApiError::Unauthorized(""),
            ApiError::Forbidden(""),
            ApiError::StepUpRequired(0),
            ApiError::NotFound,
            ApiError::MethodNotAllowed(String::new()),
            ApiError::Conflict(String::new()),
            ApiError::Gone(String::new()),
            ApiError::SyncCursor {
                detail: String::new(),
                instance_id: uuid::Uuid::nil(),
                resume_after: 0,
            },
            ApiError::PayloadTooLarge(0),
            ApiError::UnsupportedMediaType(String::new()),
            ApiError::Unprocessable(String::new()),
            ApiError::TooManyRequests,
            ApiError::Unavailable(""),
            ApiError::Internal(String::new()),
        ];
        for e in &every {
            match e {
                ApiError::BadRequest(_)
                | ApiError::Unauthorized(_)
                | ApiError::Forbidden(_)
                | ApiError::StepUpRequired(_)
                | ApiError::NotFound
                | ApiError::MethodNotAllowed(_)
                | ApiError::Conflict(_)
                | ApiError::Gone(_)
                | ApiError::SyncCursor { .. }
                | ApiError::PayloadTooLarge(_)
                | ApiError::UnsupportedMediaType(_)
                | ApiError::Unprocessable(_)
                | ApiError::TooManyRequests
                | ApiError::Unavailable(_)
                | ApiError::Internal(_) => {}
            }
        }
        every
    }

    /// The URI naming this kind of problem (the `type` of its problem document).
    pub fn problem_type(&self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug())
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let detail = match self {
            ApiError::NotFound => "no such resource, or you have no access to it".to_owned(),
            ApiError::Internal(_) => "the server failed; the error was logged".to_owned(),
            other => other.to_string(),
        };
        let (instance_id, resume_after) = match self {
            ApiError::SyncCursor {
                instance_id,
                resume_after,
                ..
            } => (Some(*instance_id), Some(*resume_after)),
            _ => (None, None),
        };
        Problem {
            kind: self.problem_type(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            instance_id,
            resume_after,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::StepUpRequired(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::SyncCursor { .. } => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(cause = %cause, "internal error");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.content_type("application/problem+json");
        match self {
            ApiError::Unauthorized(_) => {
                resp.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::StepUpRequired(max_age) => {
                resp.insert_header((
                    "WWW-Authenticate",
                    format!("Bearer error=\"insufficient_user_authentication\", max_age={max_age}"),
                ));
            }
            ApiError::TooManyRequests => {
                resp.insert_header(("Retry-After", "60"));
            }
            ApiError::MethodNotAllowed(allow) => {
                resp.insert_header(("Allow", allow.as_str()));
            }
            _ => {}
        }
        resp.json(self.problem())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::NotFound,
            StorageError::Conflict(m) => ApiError::Conflict(m.to_owned()),
            StorageError::Expired(m) => ApiError::Gone(m.to_owned()),
            StorageError::Invalid(m) => ApiError::Unprocessable(m),
            StorageError::Refused(m) => ApiError::Forbidden(m),
            StorageError::Pool(e) => {
                tracing::warn!(cause = %e, "database pool exhausted or unreachable");
                ApiError::Unavailable("the database is not reachable; retry later")
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}

/// Turns actix's extractor errors (bad JSON, bad path, oversize body) into problems. The serde message
/// goes back to the caller who sent the body; it is never logged.
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match err {
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
            ApiError::PayloadTooLarge(limit)
        }
        J::ContentType => {
            ApiError::UnsupportedMediaType("send the body as application/json".into())
        }
        J::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        J::Serialize(e) => ApiError::Internal(e.to_string()),
        J::Payload(e) => ApiError::BadRequest(format!("could not read the body: {e}")),
        other => ApiError::BadRequest(format!("invalid body: {other}")),
    };
    api.into()
}

pub fn path_error(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path: {err}")).into()
}

pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query: {err}")).into()
}

/// Answers an error response that did not come from an [`ApiError`] (the framework's own, e.g. an
/// oversized raw body) with a problem document of its status, so that every error the API sends is
/// `application/problem+json`.
pub async fn problem_fallback(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let status = res.status();
    let is_problem = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return Ok(res.map_into_boxed_body());
    }
    let api = match status {
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized("sign in first"),
        StatusCode::FORBIDDEN => ApiError::Forbidden("not allowed"),
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(0),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("unsupported content type".into())
        }
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable("not ready; retry later"),
        s if s.is_server_error() => {
            tracing::error!(status = s.as_u16(), "framework error answered");
            ApiError::Internal(format!("framework error {s}"))
        }
        s => ApiError::BadRequest(
            s.canonical_reason()
                .unwrap_or("the request was refused")
                .to_owned(),
        ),
    };
    let mut problem = api.problem();
    problem.status = status.as_u16();
    problem.title = status.canonical_reason().unwrap_or("Error").to_owned();
    if let ApiError::PayloadTooLarge(_) = api {
        problem.detail = "the body is larger than the server accepts".into();
    }
    let (req, _) = res.into_parts();
    let resp = HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(problem);
    Ok(actix_web::dev::ServiceResponse::new(req, resp))
}
