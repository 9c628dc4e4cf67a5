use thiserror::Error;

/// What went wrong on the client side. Messages never include case content or key material.
#[derive(Debug, Error)]
pub enum ClientError {
    /// With its causes: reqwest's own message names only the request ("error sending request for
    /// url …"), the cause says why (refused, reset, closed before the answer came).
    #[error("cannot reach the server: {}", with_causes(.0))]
    Http(#[from] reqwest::Error),
    #[error("server refused ({status} {title}): {detail}")]
    Api {
        status: u16,
        title: String,
        detail: String,
    },
    /// The server cannot honour a sync cursor (another instance's, or beyond its society's last
    /// change) and says where to go on from (`docs/sync.md`, "Sequences and cursors").
    #[error("server refused the sync cursor: {detail}")]
    SyncCursor {
        detail: String,
        instance_id: uuid::Uuid,
        resume_after: u64,
    },
    #[error("cryptography: {0}")]
    Crypto(#[from] rfl_crypto::CryptoError),
    #[error("the server sent something that fails verification: {0}")]
    Tampered(String),
    #[error("invalid case data: {0}")]
    Validation(#[from] rfl_domain::ValidationError),
    #[error("{0}")]
    Invalid(String),
    /// Records changed both in the file and by someone else since the file's base; nothing was
    /// written. (The message names the records; the versions are in the value, for the caller to show.)
    #[error("{} record(s) were changed both in your file and by someone else since you took it ({}): nothing was written", .0.len(), .0.iter().map(|c| c.record.to_string()).collect::<Vec<_>>().join(", "))]
    Conflict(Vec<crate::merge::MergeConflict>),
    #[error("keystore: {0}")]
    Keystore(String),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("binary body: {0}")]
    Wire(#[from] rfl_domain::api::wire::WireError),
}

/// An error's message followed by those of its causes, each once (a cause's message often repeats
/// its own cause's).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let msg = c.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cause = c.source();
    }
    out
}

impl ClientError {
    /// The HTTP status of a refusal by the server, if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::SyncCursor { .. } => Some(409),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("error sending request for url (http://127.0.0.1:1/v1/cases/batch)")]
    struct Outer(#[source] Middle);
    #[derive(Debug, Error)]
    #[error("client error (SendRequest)")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn a_transport_error_says_why_not_only_which_request() {
        let e = Outer(Middle(std::io::Error::other(
            "connection closed before message completed",
        )));
        assert_eq!(
            with_causes(&e),
            "error sending request for url (http://127.0.0.1:1/v1/cases/batch): \
             client error (SendRequest): connection closed before message completed"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = Middle(std::io::Error::other("client error (SendRequest)"));
        assert_eq!(with_causes(&e), "client error (SendRequest)");
    }

    #[tokio::test]
    async fn a_refused_connection_is_named_in_the_message() {
        // Port 1 on the loopback: nothing listens there.
        let api = crate::http::Api::new("http://127.0.0.1:1").unwrap();
        let e = api
            .get::<serde_json::Value>("/v1/health")
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("cannot reach the server: "), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
    }
}
