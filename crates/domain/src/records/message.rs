//! Red Cross Messages between separated relatives, and their delivery.

use super::{Record, RecordKind};
use crate::date::Date;
use crate::error::ValidationError;
use crate::ids::RecordId;
use crate::validate::{language_tag, text, Path, Problems, ROOT};

/// Who a Red Cross message is from or to.
///
/// JSON: `"enquirer"`, `{"index":1}` (position in `CaseFile::persons`), or
/// `{"record":"<uuid>"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonRef {
    /// The case's enquirer.
    Enquirer,
    /// The person at this index in the case's persons.
    Index(usize),
    /// The person record with this id.
    Record(RecordId),
}

/// Delivery status of a Red Cross message.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Being written.
    #[default]
    Draft,
    /// Collected from the sender.
    Collected,
    /// On its way through the network.
    InTransit,
    /// Handed to the addressee.
    Delivered,
    /// Could not be delivered.
    Undeliverable,
    /// Returned to the sender.
    ReturnedToSender,
}

/// A Red Cross message: short family news.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedCrossMessage {
    /// Sender.
    pub from: PersonRef,
    /// Addressee.
    pub to: PersonRef,
    /// Date written.
    pub date: Date,
    /// Language of the body, BCP 47 tag.
    pub language: String,
    /// Family news.
    pub body: String,
    /// Delivery status.
    #[serde(default)]
    pub delivery_status: DeliveryStatus,
}

impl RedCrossMessage {
    /// Longest body accepted, in characters.
    pub const MAX_BODY_CHARS: usize = 10_000;

    /// Validates the message on its own (references are checked by the case).
    pub fn validate(&self, today: Date) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(today, &ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        if self.from == self.to {
            p.push(path.field("to"), "is the same as the sender");
        }
        if self.date > today {
            p.push(path.field("date"), "is in the future");
        }
        language_tag(p, &path.field("language"), &self.language);
        text(
            p,
            &path.field("body"),
            &self.body,
            true,
            Self::MAX_BODY_CHARS,
        );
    }
}

impl Record for RedCrossMessage {
    const KIND: RecordKind = RecordKind::Message;
    fn validate_record(&self, today: Date) -> Result<(), ValidationError> {
        self.validate(today)
    }
}
