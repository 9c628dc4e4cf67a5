//! The encrypted records that make up a case.
//!
//! Each record is sealed separately by the client; the server sees only its
//! [`RecordKind`] and ciphertext.

use std::fmt;

use crate::date::{ApproxDate, Date};
use crate::error::ValidationError;
use crate::ids::RecordId;
use crate::person::{Location, Person, Place};
use crate::validate::{
    language_tag, line, opt_line, opt_text, text, Path, Problems, LINE, LONG, ROOT, SHORT,
};

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

// ---------------------------------------------------------------- header

/// Category of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseCategory {
    /// A family member looks for a relative.
    TracingRequest,
    /// An unaccompanied or separated child (UASC).
    UnaccompaniedOrSeparatedChild,
    /// A detainee, visited or sought.
    Detainee,
    /// Missing after a disaster.
    MissingAfterDisaster,
    /// Identification of a deceased person.
    DeceasedIdentification,
}

/// What separated the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeparationEvent {
    /// Armed conflict or other violence.
    ArmedConflict,
    /// Migration journey (sea crossing, border, ...).
    Migration,
    /// Natural or technological disaster.
    Disaster,
    /// Arrest or detention.
    Detention,
    /// Displacement inside the country.
    InternalDisplacement,
    /// Something else (see description).
    Other,
}

/// Circumstances of separation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Separation {
    /// The kind of event.
    pub event: SeparationEvent,
    /// Where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    /// When it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<ApproxDate>,
    /// Free-text account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Vulnerability flags on a case.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Vulnerability {
    /// A child without any adult caregiver.
    UnaccompaniedMinor,
    /// A child without their usual caregiver.
    SeparatedMinor,
    /// Medical needs.
    Medical,
    /// Detained.
    Detained,
    /// Tracing or contact could expose someone to harm.
    SecurityRisk,
    /// Survivor of gender-based violence.
    GenderBasedViolenceSurvivor,
    /// Elderly.
    Elderly,
    /// Disability.
    Disability,
    /// Other (explain in a note).
    Other,
}

/// How consent was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentRecording {
    /// Signed form.
    Written,
    /// Spoken, witnessed by a second staff member or volunteer.
    OralWitnessed,
    /// Spoken.
    Oral,
    /// Electronic (online form, recorded call).
    Electronic,
    /// Given by a parent or legal guardian.
    ByGuardian,
}

/// The enquirer's consent to the processing of the case.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingConsent {
    /// Whether consent was given.
    pub given: bool,
    /// When (required if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Date>,
    /// How it was recorded (required if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_how: Option<ConsentRecording>,
}

/// The case header record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseHeader {
    /// Category.
    pub category: CaseCategory,
    /// Circumstances of separation.
    pub separation: Separation,
    /// Vulnerability flags (no duplicates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vulnerabilities: Vec<Vulnerability>,
    /// Consent to processing.
    pub consent: ProcessingConsent,
    /// The society's own reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl CaseHeader {
    /// Validates the header.
    pub fn validate(&self, today: Date) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(today, &ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        let sep = path.field("separation");
        if let Some(pl) = &self.separation.place {
            pl.check(&sep.field("place"), p);
        }
        if let Some(d) = &self.separation.date {
            d.check(today, &sep.field("date"), p);
        }
        opt_text(
            p,
            &sep.field("description"),
            self.separation.description.as_deref(),
            LONG,
        );
        if self.separation.event == SeparationEvent::Other && self.separation.description.is_none()
        {
            p.push(
                sep.field("description"),
                "is required when the event is \"other\"",
            );
        }
        for (i, v) in self.vulnerabilities.iter().enumerate() {
            if self.vulnerabilities[..i].contains(v) {
                p.push(path.index("vulnerabilities", i), "is a duplicate");
            }
        }
        let c = path.field("consent");
        if self.consent.given {
            match self.consent.date {
                None => p.push(c.field("date"), "is required when consent is given"),
                Some(d) if d > today => p.push(c.field("date"), "is in the future"),
                Some(_) => {}
            }
            if self.consent.recorded_how.is_none() {
                p.push(c.field("recorded_how"), "is required when consent is given");
            }
        } else if self.consent.recorded_how.is_some() {
            p.push(
                c.field("recorded_how"),
                "is set although consent was not given",
            );
        }
        opt_line(p, &path.field("reference"), self.reference.as_deref(), 100);
    }
}

impl Record for CaseHeader {
    const KIND: RecordKind = RecordKind::CaseHeader;
    fn validate_record(&self, today: Date) -> Result<(), ValidationError> {
        self.validate(today)
    }
}

// ---------------------------------------------------------------- person

/// Whether a person is the enquirer or is sought.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonRole {
    /// The person asking for the search.
    Enquirer,
    /// A person being looked for.
    Sought,
}

/// Relationship of a sought person to the enquirer (the sought person is the
/// enquirer's ...).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// Mother or father.
    Parent,
    /// Son or daughter.
    Child,
    /// Brother or sister.
    Sibling,
    /// Husband, wife or partner.
    Spouse,
    /// Grandparent.
    Grandparent,
    /// Grandchild.
    Grandchild,
    /// Aunt or uncle.
    AuntOrUncle,
    /// Niece or nephew.
    NieceOrNephew,
    /// Cousin.
    Cousin,
    /// Parent-, child- or sibling-in-law.
    InLaw,
    /// Legal guardian or usual caregiver.
    Guardian,
    /// Another relative, described.
    OtherRelative(String),
    /// Not a relative (friend, neighbour), described.
    NonRelative(String),
}

/// Whether a located sought person agrees that their whereabouts be shared
/// with the enquirer.
///
/// A located adult may refuse; then nothing of their whereabouts may ever
/// reach the enquirer (see [`crate::CaseFile::enquirer_view`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum WhereaboutsConsent {
    /// Not (yet) asked.
    #[default]
    NotAsked,
    /// Agreed to share whereabouts.
    Agreed,
    /// Refused to share whereabouts.
    Refused,
}

/// Tracing status of a sought person.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TracingStatus {
    /// Still being sought.
    #[default]
    Sought,
    /// Found alive (`located` is set).
    Located,
    /// Found deceased.
    Deceased,
    /// Search ended without result.
    NotFound,
}

/// A person record: the enquirer or a sought person.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonRecord {
    /// Enquirer or sought.
    pub role: PersonRole,
    /// The person.
    pub person: Person,
    /// For sought persons: what they are to the enquirer (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_to_enquirer: Option<Relationship>,
    /// For sought persons: tracing status.
    #[serde(default, skip_serializing_if = "is_default")]
    pub tracing_status: TracingStatus,
    /// For sought persons: whether their whereabouts may be shared with the
    /// enquirer. Only meaningful once located.
    #[serde(default, skip_serializing_if = "is_default")]
    pub whereabouts_consent: WhereaboutsConsent,
    /// For sought persons: where they were found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub located: Option<Location>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl PersonRecord {
    /// The enquirer.
    #[must_use]
    pub fn enquirer(person: Person) -> Self {
        Self {
            role: PersonRole::Enquirer,
            person,
            relationship_to_enquirer: None,
            tracing_status: TracingStatus::Sought,
            whereabouts_consent: WhereaboutsConsent::NotAsked,
            located: None,
        }
    }

    /// A sought person, not yet located.
    #[must_use]
    pub fn sought(person: Person, relationship: Relationship) -> Self {
        Self {
            role: PersonRole::Sought,
            relationship_to_enquirer: Some(relationship),
            ..Self::enquirer(person)
        }
    }

    /// Whether this is the enquirer.
    #[must_use]
    pub fn is_enquirer(&self) -> bool {
        self.role == PersonRole::Enquirer
    }

    /// Whether this is a sought person.
    #[must_use]
    pub fn is_sought(&self) -> bool {
        self.role == PersonRole::Sought
    }

    /// Validates the record.
    pub fn validate(&self, today: Date) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(today, &ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        self.person.check(today, &path.field("person"), p);
        let rel = path.field("relationship_to_enquirer");
        match self.role {
            PersonRole::Enquirer => {
                if self.relationship_to_enquirer.is_some() {
                    p.push(rel, "is only recorded for sought persons");
                }
                if self.tracing_status != TracingStatus::Sought {
                    p.push(
                        path.field("tracing_status"),
                        "is only recorded for sought persons",
                    );
                }
                if self.whereabouts_consent != WhereaboutsConsent::NotAsked {
                    p.push(
                        path.field("whereabouts_consent"),
                        "is only recorded for sought persons",
                    );
                }
                if self.located.is_some() {
                    p.push(path.field("located"), "is only recorded for sought persons");
                }
            }
            PersonRole::Sought => {
                match &self.relationship_to_enquirer {
                    None => p.push(rel, "is required for a sought person"),
                    Some(Relationship::OtherRelative(s) | Relationship::NonRelative(s)) => {
                        line(p, &rel, s, true, SHORT);
                    }
                    Some(_) => {}
                }
                let located_status = self.tracing_status == TracingStatus::Located;
                match (&self.located, located_status) {
                    (None, true) => p.push(
                        path.field("located"),
                        "is required when the person is located",
                    ),
                    (Some(_), false) if self.tracing_status != TracingStatus::Deceased => {
                        p.push(
                            path.field("located"),
                            "is set although the person is not located",
                        );
                    }
                    _ => {}
                }
                if let Some(l) = &self.located {
                    l.check(today, &path.field("located"), p);
                }
                if self.whereabouts_consent != WhereaboutsConsent::NotAsked && !located_status {
                    p.push(
                        path.field("whereabouts_consent"),
                        "can only be recorded once the person is located",
                    );
                }
            }
        }
    }
}

impl Record for PersonRecord {
    const KIND: RecordKind = RecordKind::Person;
    fn validate_record(&self, today: Date) -> Result<(), ValidationError> {
        self.validate(today)
    }
}

// ---------------------------------------------------------------- message

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

// ---------------------------------------------------------------- note

/// A caseworker's note.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Who wrote it (a label, e.g. initials or role, not an account id).
    pub author: String,
    /// The note.
    pub text: String,
    /// When it was written.
    pub created: Date,
}

impl Note {
    /// Longest note accepted, in characters.
    pub const MAX_TEXT_CHARS: usize = 20_000;

    /// Validates the note.
    pub fn validate(&self, today: Date) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(today, &ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        line(p, &path.field("author"), &self.author, true, SHORT);
        text(
            p,
            &path.field("text"),
            &self.text,
            true,
            Self::MAX_TEXT_CHARS,
        );
        if self.created > today {
            p.push(path.field("created"), "is in the future");
        }
    }
}

impl Record for Note {
    const KIND: RecordKind = RecordKind::Note;
    fn validate_record(&self, today: Date) -> Result<(), ValidationError> {
        self.validate(today)
    }
}

// ---------------------------------------------------------------- attachment

/// Metadata of an encrypted attachment (photo, document scan, ...). The
/// content itself is a separately sealed chunked stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentMeta {
    /// Original file name (no directories).
    pub file_name: String,
    /// Media type, e.g. `image/jpeg`.
    pub media_type: String,
    /// Plaintext size in bytes.
    pub size_bytes: u64,
    /// Number of sealed chunks (at least 1, even for an empty file).
    pub chunk_count: u32,
    /// SHA-256 of the sealed stream, 64 lower-case hex digits.
    pub sha256: String,
    /// What it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The person record it depicts, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depicts: Option<RecordId>,
}

impl AttachmentMeta {
    /// Largest attachment accepted (1 GiB).
    pub const MAX_SIZE_BYTES: u64 = 1 << 30;

    /// Validates the metadata (the `depicts` reference is checked by the case).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(&ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, path: &Path<'_>, p: &mut Problems) {
        let fp = path.field("file_name");
        line(p, &fp, &self.file_name, true, 255);
        if self.file_name.contains(['/', '\\']) {
            p.push(fp, "must not contain a directory separator");
        }
        if self.file_name == "." || self.file_name == ".." {
            p.push(fp, "is not a file name");
        }
        if !is_media_type(&self.media_type) {
            p.push(
                path.field("media_type"),
                "is not a media type such as \"image/jpeg\"",
            );
        }
        if self.size_bytes > Self::MAX_SIZE_BYTES {
            p.push(path.field("size_bytes"), "exceeds the 1 GiB limit");
        }
        if self.chunk_count == 0 {
            p.push(path.field("chunk_count"), "must be at least 1");
        } else if u64::from(self.chunk_count) > self.size_bytes.max(1) {
            p.push(
                path.field("chunk_count"),
                "is larger than the file size allows",
            );
        }
        if !(self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            p.push(
                path.field("sha256"),
                "must be 64 lower-case hexadecimal digits",
            );
        }
        opt_text(
            p,
            &path.field("description"),
            self.description.as_deref(),
            LINE,
        );
    }
}

/// `type/subtype` with RFC 6838 restricted-name characters, optional
/// parameters after `;` are not allowed.
fn is_media_type(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric()
                    || (i > 0
                        && matches!(
                            b,
                            b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                        ))
            })
    };
    match s.split_once('/') {
        Some((t, st)) => ok(t) && ok(st),
        None => false,
    }
}

impl Record for AttachmentMeta {
    const KIND: RecordKind = RecordKind::Attachment;
    fn validate_record(&self, _today: Date) -> Result<(), ValidationError> {
        self.validate()
    }
}

#[cfg(test)]
mod tests;
