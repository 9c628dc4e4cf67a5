//! The Restoring Family Links (RFL) case model and its rules.
//!
//! Plain Rust types and pure functions only: no IO, no clock reads (where a
//! rule needs "today" it is a parameter), no storage, no web framework.
//!
//! * [`ids`]: identifier newtypes ([`CaseId`], [`RecordId`], [`MemberId`],
//!   [`SocietyId`]).
//! * [`status`]: the server-visible case workflow ([`CaseStatus`]) and member
//!   roles ([`Role`]).
//! * [`date`]: calendar dates ([`Date`]) and approximate dates
//!   ([`ApproxDate`]) as families actually remember them.
//! * [`person`], [`records`], [`case`]: the encrypted case content as the
//!   Family Links Network knows it, with validation and the enquirer view rule
//!   ([`CaseFile::enquirer_view`]).
//! * `fixtures` (cargo feature `fixtures`): deterministic synthetic cases.
//!
//! Validation never echoes personal data: every [`Problem`] names a path and
//! describes what is wrong, never the offending value.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod case;
pub mod date;
pub mod error;
pub mod ids;
pub mod person;
pub mod records;
pub mod status;
mod validate;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

pub use case::{CaseFile, EnquirerView, Entry, SoughtPersonView, Whereabouts};
pub use date::{ApproxDate, Date, DateError};
pub use error::{DomainError, Problem, ValidationError};
pub use ids::{CaseId, InvalidId, MemberId, RecordId, SocietyId};
pub use person::{
    Address, ContactDetails, LastKnownLocation, Location, NameKind, Person, PersonName, Phone,
    Place, Sex,
};
pub use records::{
    AttachmentMeta, CaseCategory, CaseHeader, ConsentRecording, DeliveryStatus, Note, PersonRecord,
    PersonRef, PersonRole, ProcessingConsent, Record, RecordKind, RedCrossMessage, Relationship,
    Separation, SeparationEvent, TracingStatus, Vulnerability, WhereaboutsConsent,
};
pub use status::{CaseStatus, Role};
