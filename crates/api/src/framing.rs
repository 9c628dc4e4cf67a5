//! Bodies on the wire: a request body read whole under a size limit, spelled as JSON or in the
//! binary framing by its `Content-Type` (`rfl_domain::api::wire`, docs/crypto.md "Binary framing"),
//! and a case answered in the framing its reader's `Accept` asks for.

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use rfl_domain::api::{wire, CaseDto};

use crate::error::ApiError;

/// How a bulk request body is spelled: JSON, or the binary framing of the same types.
#[derive(Clone, Copy)]
pub enum BodyFraming {
    Json,
    Binary,
}

impl BodyFraming {
    /// From `Content-Type`: JSON when it says so (or says nothing), the binary framing when it names
    /// it, and 415 for anything else.
    pub fn of(req: &HttpRequest) -> Result<BodyFraming, ApiError> {
        let Some(ct) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
            return Ok(BodyFraming::Json);
        };
        let ct = ct.to_str().unwrap_or_default();
        let media = ct.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/json") {
            Ok(BodyFraming::Json)
        } else if wire::is_media_type(ct) {
            Ok(BodyFraming::Binary)
        } else {
            Err(ApiError::UnsupportedMediaType(format!(
                "send the body as application/json or {}",
                wire::MEDIA_TYPE
            )))
        }
    }

    pub fn decode<T: serde::de::DeserializeOwned>(self, body: &[u8]) -> Result<T, ApiError> {
        match self {
            BodyFraming::Json => serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}"))),
            BodyFraming::Binary => wire::decode(body).map_err(|e| {
                ApiError::BadRequest(format!("invalid {} body: {e}", wire::MEDIA_TYPE))
            }),
        }
    }
}

/// The request body, refused past `limit` bytes. The buffer is sized once from `Content-Length`
/// (a claim only: never beyond `limit`, and the bytes that really come are what counts), so a batch
/// of several megabytes is not copied into ever larger buffers on the way in.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `dto` as JSON, or in the binary framing when `Accept` names it (encoded into a buffer of
/// `capacity` bytes); either way with `Vary: Accept`.
pub fn answer<T: serde::Serialize>(
    req: &HttpRequest,
    dto: &T,
    capacity: usize,
) -> Result<HttpResponse, ApiError> {
    let binary = wants_binary(req);
    let mut resp = HttpResponse::Ok();
    resp.insert_header((actix_web::http::header::VARY, "Accept"));
    if !binary {
        return Ok(resp.json(dto));
    }
    let body = wire::encode_into(dto, Vec::with_capacity(capacity))
        .map_err(|e| ApiError::Internal(format!("could not encode an answer: {e}")))?;
    Ok(resp.content_type(wire::MEDIA_TYPE).body(body))
}

/// Whether the request's `Accept` names the binary framing.
pub fn wants_binary(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(wire::accepts)
}

/// `dto` encoded as [`answer`] would (JSON, or the binary framing with `binary`), for a large answer
/// encoded on the blocking pool; [`encoded_answer`] sends it.
pub fn encode_answer<T: serde::Serialize>(
    dto: &T,
    binary: bool,
    capacity: usize,
) -> Result<Vec<u8>, ApiError> {
    if binary {
        wire::encode_into(dto, Vec::with_capacity(capacity))
            .map_err(|e| ApiError::Internal(format!("could not encode an answer: {e}")))
    } else {
        serde_json::to_vec(dto)
            .map_err(|e| ApiError::Internal(format!("could not encode an answer: {e}")))
    }
}

/// An answer [`encode_answer`] made, with its content type and `Vary: Accept`.
pub fn encoded_answer(body: Vec<u8>, binary: bool) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    resp.insert_header((actix_web::http::header::VARY, "Accept"));
    resp.content_type(if binary {
        wire::MEDIA_TYPE
    } else {
        "application/json"
    })
    .body(body)
}

/// A case as JSON, or in the binary framing when `Accept` names it; either way with `Vary: Accept`.
pub fn case_answer(req: &HttpRequest, dto: &CaseDto) -> Result<HttpResponse, ApiError> {
    // Sized once: the bytes carried, and a bound on the ids and varints around them.
    let carried = dto.wrapped_key.0.len()
        + dto.head_commit.as_ref().map_or(0, |c| c.0.len())
        + dto.commits.iter().map(|c| c.0.len() + 10).sum::<usize>()
        + dto
            .records
            .iter()
            .map(|r| r.envelope.0.len() + 96)
            .sum::<usize>();
    answer(req, dto, carried + 160)
}
