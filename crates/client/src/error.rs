use thiserror::Error;

/// What went wrong on the client side. Messages never include case content or key material.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server refused ({status} {title}): {detail}")]
    Api {
        status: u16,
        title: String,
        detail: String,
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

impl ClientError {
    /// The HTTP status of a refusal by the server, if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}
