//! A whole case as the client holds it in plaintext, its cross-record rules,
//! and the enquirer view rule.

use std::collections::{HashMap, HashSet};

use crate::date::Date;
use crate::error::ValidationError;
use crate::ids::RecordId;
use crate::person::{ContactDetails, LastKnownLocation, Location, PersonName};
pub use crate::records::PersonRef;
use crate::records::{
    AttachmentMeta, CaseHeader, Note, PersonRecord, RedCrossMessage, Relationship, TracingStatus,
    WhereaboutsConsent,
};
use crate::validate::{Path, Problems, ROOT};

/// A record together with its id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry<T> {
    /// The record's id. Input may leave it out (a case file written by hand): the record then gets a
    /// fresh id, i.e. it is a new record.
    #[serde(default = "RecordId::new")]
    pub id: RecordId,
    /// The record.
    pub record: T,
}

impl<T> Entry<T> {
    /// Pairs an id with a record.
    pub fn new(id: RecordId, record: T) -> Self {
        Self { id, record }
    }
}

/// A complete case: header, persons, messages, notes and attachment metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The case header.
    pub header: CaseHeader,
    /// The enquirer and the sought persons.
    pub persons: Vec<Entry<PersonRecord>>,
    /// Red Cross messages.
    #[serde(default)]
    pub messages: Vec<Entry<RedCrossMessage>>,
    /// Caseworker notes.
    #[serde(default)]
    pub notes: Vec<Entry<Note>>,
    /// Attachment metadata.
    #[serde(default)]
    pub attachments: Vec<Entry<AttachmentMeta>>,
}

impl CaseFile {
    /// The (first) enquirer of the case.
    #[must_use]
    pub fn enquirer(&self) -> Option<&Entry<PersonRecord>> {
        self.persons.iter().find(|e| e.record.is_enquirer())
    }

    /// The sought persons, in order.
    pub fn sought(&self) -> impl Iterator<Item = &Entry<PersonRecord>> {
        self.persons.iter().filter(|e| e.record.is_sought())
    }

    /// Replaces every [`PersonRef::Index`] by the [`PersonRef::Record`] it resolves to. A case's
    /// records are stored one by one and come back in record-id order, not in the order of
    /// `persons`, so a reference by position is pinned to the record before the case is sealed. An
    /// index that resolves to nothing is left for validation to report. Returns whether anything
    /// changed.
    pub fn pin_person_refs(&mut self) -> bool {
        let ids: Vec<RecordId> = self.persons.iter().map(|e| e.id).collect();
        let mut changed = false;
        for m in &mut self.messages {
            for r in [&mut m.record.from, &mut m.record.to] {
                if let PersonRef::Index(i) = *r {
                    if let Some(id) = ids.get(i) {
                        *r = PersonRef::Record(*id);
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    /// This case with its references by position pinned to records: borrowed when there are none.
    #[must_use]
    pub fn with_pinned_refs(&self) -> std::borrow::Cow<'_, CaseFile> {
        if self.has_positional_refs() {
            let mut f = self.clone();
            f.pin_person_refs();
            std::borrow::Cow::Owned(f)
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// Whether any reference is by position ([`CaseFile::pin_person_refs`] would change something).
    #[must_use]
    pub fn has_positional_refs(&self) -> bool {
        self.messages.iter().any(|m| {
            matches!(m.record.from, PersonRef::Index(_))
                || matches!(m.record.to, PersonRef::Index(_))
        })
    }

    /// Resolves a [`PersonRef`] to a person entry of this case.
    #[must_use]
    pub fn resolve(&self, r: PersonRef) -> Option<&Entry<PersonRecord>> {
        match r {
            PersonRef::Enquirer => self.enquirer(),
            PersonRef::Index(i) => self.persons.get(i),
            PersonRef::Record(id) => self.persons.iter().find(|e| e.id == id),
        }
    }

    /// Gives every record a fresh id, for a case file that becomes a new case: record ids are unique
    /// across cases, so a copy of another case's file (`rfl case show --json`) would collide with it.
    /// References to a person by record id (a message's sender or addressee, what an attachment
    /// depicts) follow that person to its new id; a reference to an id that is not exactly one person
    /// of this case is left as it was, for [`CaseFile::validate`] to report.
    pub fn renew_record_ids(&mut self) {
        // old id -> new id, or None if several persons had that id
        let mut renamed: HashMap<RecordId, Option<RecordId>> = HashMap::new();
        for e in &mut self.persons {
            let new = RecordId::new();
            renamed
                .entry(e.id)
                .and_modify(|n| *n = None)
                .or_insert(Some(new));
            e.id = new;
        }
        let follow = |id: RecordId| renamed.get(&id).copied().flatten().unwrap_or(id);
        for e in &mut self.messages {
            e.id = RecordId::new();
            for r in [&mut e.record.from, &mut e.record.to] {
                if let PersonRef::Record(id) = r {
                    *id = follow(*id);
                }
            }
        }
        for e in &mut self.notes {
            e.id = RecordId::new();
        }
        for e in &mut self.attachments {
            e.id = RecordId::new();
            e.record.depicts = e.record.depicts.map(follow);
        }
    }

    /// Validates every record and the rules across records: exactly one
    /// enquirer, at least one sought person, unique record ids, and message
    /// and attachment references pointing at persons of this case.
    pub fn validate(&self, today: Date) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.header.check(today, &ROOT.field("header"), &mut p);

        let enquirers = self
            .persons
            .iter()
            .filter(|e| e.record.is_enquirer())
            .count();
        if enquirers != 1 {
            p.push(
                "persons",
                format!("must contain exactly one enquirer (found {enquirers})"),
            );
        }
        if self.sought().next().is_none() {
            p.push("persons", "must contain at least one sought person");
        }

        let mut seen = HashSet::new();
        let mut dup = |id: RecordId, path: &Path<'_>, p: &mut Problems| {
            if !seen.insert(id) {
                p.push(
                    path.field("id"),
                    "duplicates another record id in this case",
                );
            }
        };

        for (i, e) in self.persons.iter().enumerate() {
            let path = ROOT.index("persons", i);
            dup(e.id, &path, &mut p);
            e.record.check(today, &path.field("record"), &mut p);
        }
        for (i, e) in self.messages.iter().enumerate() {
            let path = ROOT.index("messages", i);
            dup(e.id, &path, &mut p);
            let rp = path.field("record");
            e.record.check(today, &rp, &mut p);
            for (field, r) in [("from", e.record.from), ("to", e.record.to)] {
                if self.resolve(r).is_none() {
                    p.push(rp.field(field), "does not refer to a person of this case");
                }
            }
            if let (Some(f), Some(t)) = (self.resolve(e.record.from), self.resolve(e.record.to)) {
                if f.id == t.id && e.record.from != e.record.to {
                    p.push(rp.field("to"), "is the same as the sender");
                }
            }
        }
        for (i, e) in self.notes.iter().enumerate() {
            let path = ROOT.index("notes", i);
            dup(e.id, &path, &mut p);
            e.record.check(today, &path.field("record"), &mut p);
        }
        for (i, e) in self.attachments.iter().enumerate() {
            let path = ROOT.index("attachments", i);
            dup(e.id, &path, &mut p);
            let rp = path.field("record");
            e.record.check(&rp, &mut p);
            if let Some(id) = e.record.depicts {
                if !self.persons.iter().any(|x| x.id == id) {
                    p.push(
                        rp.field("depicts"),
                        "does not refer to a person of this case",
                    );
                }
            }
        }
        p.finish()
    }

    /// What may be told to the enquirer about the sought persons.
    ///
    /// For each sought person: names, relationship and tracing status. Their
    /// whereabouts (where they were located, their contact details and last
    /// known location) are included **only** if they agreed
    /// ([`WhereaboutsConsent::Agreed`]); otherwise they are withheld and
    /// `whereabouts_withheld` is `true`. A located adult who refused is never
    /// revealed to the enquirer through this view.
    #[must_use]
    pub fn enquirer_view(&self) -> EnquirerView {
        let sought = self
            .sought()
            .map(|e| {
                let r = &e.record;
                let whereabouts = match r.whereabouts_consent {
                    WhereaboutsConsent::Agreed => Some(Whereabouts {
                        located: r.located.clone(),
                        contact: r.person.contact.clone(),
                        last_known_location: r.person.last_known_location.clone(),
                    }),
                    WhereaboutsConsent::Refused | WhereaboutsConsent::NotAsked => None,
                };
                SoughtPersonView {
                    record_id: e.id,
                    names: r.person.names.clone(),
                    relationship_to_enquirer: r.relationship_to_enquirer.clone(),
                    tracing_status: r.tracing_status,
                    whereabouts_withheld: whereabouts.is_none(),
                    whereabouts,
                }
            })
            .collect();
        EnquirerView { sought }
    }
}

/// What the enquirer may learn about the sought persons of their case.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnquirerView {
    /// One entry per sought person, in case order.
    pub sought: Vec<SoughtPersonView>,
}

/// One sought person as the enquirer may see them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoughtPersonView {
    /// The person record.
    pub record_id: RecordId,
    /// Names.
    pub names: Vec<PersonName>,
    /// Relationship to the enquirer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship_to_enquirer: Option<Relationship>,
    /// Tracing status.
    pub tracing_status: TracingStatus,
    /// Present only if the sought person agreed to share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whereabouts: Option<Whereabouts>,
    /// `true` whenever `whereabouts` is absent (refused or not asked).
    pub whereabouts_withheld: bool,
}

/// Whereabouts of a sought person, shared only with their agreement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Whereabouts {
    /// Where they were located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub located: Option<Location>,
    /// Their contact details.
    #[serde(default, skip_serializing_if = "ContactDetails::is_empty")]
    pub contact: ContactDetails,
    /// Their last known location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_location: Option<LastKnownLocation>,
}

#[cfg(test)]
mod tests;
