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
    #[error("keystore: {0}")]
    Keystore(String),
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
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
