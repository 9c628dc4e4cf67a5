//! The encrypted records that make up a case.
//!
//! Each record is sealed separately by the client; the server sees only its
//! [`RecordKind`] and ciphertext.

use std::fmt;

use crate::date::Date;
use crate::error::ValidationError;

/// The kind of an encrypted record (visible to the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RecordKind {
    /// [`CaseHeader`].
    CaseHeader,
    /// [`PersonRecord`].
    Person,
    /// [`RedCrossMessage`].
    Message,
    /// [`Note`].
    Note,
    /// [`AttachmentMeta`].
    Attachment,
}

impl RecordKind {
    /// Every kind.
    pub const ALL: [RecordKind; 5] = [
        RecordKind::CaseHeader,
        RecordKind::Person,
        RecordKind::Message,
        RecordKind::Note,
        RecordKind::Attachment,
    ];

    /// The snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::CaseHeader => "case_header",
            RecordKind::Person => "person",
            RecordKind::Message => "message",
            RecordKind::Note => "note",
            RecordKind::Attachment => "attachment",
        }
    }

    /// Parses the snake_case name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Common behaviour of record payloads.
pub trait Record: serde::Serialize + serde::de::DeserializeOwned {
    /// The kind label stored beside the ciphertext.
    const KIND: RecordKind;

    /// Validates the record on its own (cross-record references are checked
    /// by [`crate::CaseFile::validate`]).
    fn validate_record(&self, today: Date) -> Result<(), ValidationError>;
}

mod attachment;
mod header;
mod message;
mod note;
mod person;

pub use attachment::AttachmentMeta;
pub use header::{
    CaseCategory, CaseHeader, ConsentRecording, ProcessingConsent, Separation, SeparationEvent,
    Vulnerability,
};
pub use message::{DeliveryStatus, PersonRef, RedCrossMessage};
pub use note::Note;
pub use person::{PersonRecord, PersonRole, Relationship, TracingStatus, WhereaboutsConsent};

#[cfg(test)]
mod tests;
