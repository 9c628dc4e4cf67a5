use thiserror::Error;

/// What went wrong in storage. Messages name the kind of object, never its content.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("expired: {0}")]
    Expired(&'static str),
    /// The operation is not allowed for this kind of object (e.g. a machine's code used by a person).
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("connection pool error: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database connection error: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("bad configuration: {0}")]
    Config(String),
}

impl StorageError {
    /// Maps unique-key violations to a conflict; everything else stays a database error.
    pub(crate) fn from_insert(e: diesel::result::Error, what: &'static str) -> StorageError {
        use diesel::result::{DatabaseErrorKind, Error as E};
        match e {
            E::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StorageError::Conflict(what),
            E::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                StorageError::Invalid(format!("{what}: refers to something that does not exist"))
            }
            other => StorageError::Database(other),
        }
    }
}
