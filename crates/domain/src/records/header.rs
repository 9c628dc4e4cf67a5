//! The case header: category, separation, vulnerabilities and consent.

use super::{Record, RecordKind};
use crate::date::{ApproxDate, Date};
use crate::error::ValidationError;
use crate::person::Place;
use crate::validate::{opt_line, opt_text, Path, Problems, LONG, ROOT};

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
