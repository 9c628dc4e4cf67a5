//! A person of a case: the enquirer, the sought person and relatives, with their tracing status.

use super::{Record, RecordKind};
use crate::date::Date;
use crate::error::ValidationError;
use crate::person::{Location, Person};
use crate::validate::{line, Path, Problems, ROOT, SHORT};

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
