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
mod tests {
    use super::*;
    use crate::date::ApproxDate;
    use crate::person::{Address, Person, Phone, Place};
    use crate::records::{
        CaseCategory, ConsentRecording, DeliveryStatus, PersonRole, ProcessingConsent, Separation,
        SeparationEvent,
    };
    use proptest::prelude::*;

    fn today() -> Date {
        Date::new(2025, 6, 15).unwrap()
    }

    fn d(y: i32, m: u8, day: u8) -> Date {
        Date::new(y, m, day).unwrap()
    }

    fn id(n: u128) -> RecordId {
        RecordId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn paths(e: &ValidationError) -> Vec<&str> {
        e.paths().collect()
    }

    fn header() -> CaseHeader {
        CaseHeader {
            category: CaseCategory::TracingRequest,
            separation: Separation {
                event: SeparationEvent::ArmedConflict,
                place: Some(Place::locality_in("Mariupol", "UA")),
                date: Some(ApproxDate::year_month(2022, 3)),
                description: None,
            },
            vulnerabilities: vec![],
            consent: ProcessingConsent {
                given: true,
                date: Some(d(2023, 2, 1)),
                recorded_how: Some(ConsentRecording::Written),
            },
            reference: None,
        }
    }

    /// Secret markers: if any appears in an enquirer view, whereabouts leaked.
    const REFUSER_CITY: &str = "RefuserCity";
    const REFUSER_PHONE: &str = "+48 111 222 333";
    const REFUSER_LAST_SEEN: &str = "RefuserLastSeen";
    const REFUSER_STREET: &str = "RefuserCity Street 7";
    const UNASKED_CITY: &str = "UnaskedCity";
    const UNASKED_PHONE: &str = "+48 444 555 666";

    fn sought(
        given: &str,
        consent: WhereaboutsConsent,
        city: &str,
        phone: &str,
        last_seen: &str,
    ) -> PersonRecord {
        let mut p = Person::named(vec![PersonName::new(given, "Kovalenko")]);
        p.contact.phones.push(Phone {
            number: phone.into(),
            label: None,
        });
        p.last_known_location = Some(LastKnownLocation {
            place: Place::locality_in(last_seen, "UA"),
            date: Some(ApproxDate::year(2022)),
        });
        let mut r = PersonRecord::sought(p, Relationship::Sibling);
        r.tracing_status = TracingStatus::Located;
        r.whereabouts_consent = consent;
        r.located = Some(Location {
            place: Place::locality_in(city, "PL"),
            located_on: d(2024, 2, 2),
            contact: ContactDetails {
                phones: vec![Phone {
                    number: phone.into(),
                    label: Some("mobile".into()),
                }],
                emails: vec![],
                addresses: vec![Address {
                    lines: vec![format!("{city} Street 7")],
                    locality: Some(city.into()),
                    postal_code: None,
                    country: Some("PL".into()),
                }],
            },
            details: None,
        });
        r
    }

    fn case() -> CaseFile {
        let mut unasked = sought(
            "Taras",
            WhereaboutsConsent::NotAsked,
            UNASKED_CITY,
            UNASKED_PHONE,
            "UnaskedLastSeen",
        );
        // Not located yet: consent cannot have been asked.
        unasked.tracing_status = TracingStatus::Sought;
        unasked.located = None;
        CaseFile {
            header: header(),
            persons: vec![
                Entry::new(
                    id(1),
                    PersonRecord::enquirer(Person::named(vec![PersonName::new(
                        "Olena",
                        "Kovalenko",
                    )])),
                ),
                Entry::new(
                    id(2),
                    sought(
                        "Mariia",
                        WhereaboutsConsent::Agreed,
                        "AgreedCity",
                        "+48 777 888 999",
                        "AgreedLastSeen",
                    ),
                ),
                Entry::new(
                    id(3),
                    sought(
                        "Andrii",
                        WhereaboutsConsent::Refused,
                        REFUSER_CITY,
                        REFUSER_PHONE,
                        REFUSER_LAST_SEEN,
                    ),
                ),
                Entry::new(id(4), unasked),
            ],
            messages: vec![Entry::new(
                id(10),
                RedCrossMessage {
                    from: PersonRef::Enquirer,
                    to: PersonRef::Record(id(2)),
                    date: d(2024, 3, 3),
                    language: "uk".into(),
                    body: "We are alive and in Poland.".into(),
                    delivery_status: DeliveryStatus::Delivered,
                },
            )],
            notes: vec![Entry::new(
                id(11),
                Note {
                    author: "KM".into(),
                    text: "Sibling located via PRCS.".into(),
                    created: d(2024, 2, 3),
                },
            )],
            attachments: vec![Entry::new(
                id(12),
                AttachmentMeta {
                    file_name: "family.jpg".into(),
                    media_type: "image/jpeg".into(),
                    size_bytes: 1000,
                    chunk_count: 1,
                    sha256: "0f".repeat(32),
                    description: None,
                    depicts: Some(id(3)),
                },
            )],
        }
    }

    #[test]
    fn good_case_validates() {
        assert_eq!(case().validate(today()), Ok(()));
    }

    #[test]
    fn enquirer_and_sought_counts() {
        let mut c = case();
        c.persons[1].record =
            PersonRecord::enquirer(Person::named(vec![PersonName::new("A", "B")]));
        let err = c.validate(today()).unwrap_err();
        assert_eq!(paths(&err), vec!["persons"]);
        assert_eq!(
            err.problems[0].message,
            "must contain exactly one enquirer (found 2)"
        );

        let mut c = case();
        c.persons.retain(|e| e.record.is_sought());
        c.messages.clear();
        let err = c.validate(today()).unwrap_err();
        assert_eq!(
            err.problems[0].message,
            "must contain exactly one enquirer (found 0)"
        );

        let mut c = case();
        c.persons.truncate(1);
        c.messages.clear();
        c.attachments.clear();
        let err = c.validate(today()).unwrap_err();
        assert_eq!(
            err.problems[0].message,
            "must contain at least one sought person"
        );
    }

    #[test]
    fn references_must_resolve() {
        let mut c = case();
        c.messages[0].record.to = PersonRef::Index(9);
        c.messages[0].record.from = PersonRef::Record(id(99));
        c.attachments[0].record.depicts = Some(id(98));
        let err = c.validate(today()).unwrap_err();
        assert_eq!(
            paths(&err),
            vec![
                "messages[0].record.from",
                "messages[0].record.to",
                "attachments[0].record.depicts"
            ]
        );

        // Different refs, same person.
        let mut c = case();
        c.messages[0].record.to = PersonRef::Index(0);
        assert_eq!(
            paths(&c.validate(today()).unwrap_err()),
            vec!["messages[0].record.to"]
        );

        // Attachments may only depict persons, not other records.
        let mut c = case();
        c.attachments[0].record.depicts = Some(id(10));
        assert_eq!(
            paths(&c.validate(today()).unwrap_err()),
            vec!["attachments[0].record.depicts"]
        );
    }

    #[test]
    fn record_ids_unique_across_kinds() {
        let mut c = case();
        c.notes[0].id = id(2);
        c.attachments[0].id = id(10);
        assert_eq!(
            paths(&c.validate(today()).unwrap_err()),
            vec!["notes[0].id", "attachments[0].id"]
        );
    }

    #[test]
    fn nested_problems_are_prefixed_and_valueless() {
        let mut c = case();
        c.persons[2].record.person.names[0].family = String::new();
        c.persons[2].record.person.names[0].given = " ".into();
        c.persons[1].record.person.contact.phones[0].number = "SECRET-NUMBER".into();
        c.header.consent.date = Some(d(2025, 7, 1));
        c.notes[0].record.created = d(2030, 1, 1);
        let err = c.validate(today()).unwrap_err();
        assert_eq!(
            paths(&err),
            vec![
                "header.consent.date",
                "persons[1].record.person.contact.phones[0].number",
                "persons[2].record.person.names[0]",
                "persons[2].record.person.names[0].given",
                "notes[0].record.created",
            ]
        );
        let msg = err.to_string();
        for secret in ["SECRET", "Andrii", "Kovalenko", "2030", "2025-07-01"] {
            assert!(!msg.contains(secret), "{msg} leaks {secret}");
        }
    }

    #[test]
    fn resolve_refs() {
        let c = case();
        assert_eq!(c.resolve(PersonRef::Enquirer).map(|e| e.id), Some(id(1)));
        assert_eq!(c.resolve(PersonRef::Index(2)).map(|e| e.id), Some(id(3)));
        assert_eq!(
            c.resolve(PersonRef::Record(id(4))).map(|e| e.id),
            Some(id(4))
        );
        assert!(c.resolve(PersonRef::Index(4)).is_none());
        let mut pinned = c.clone();
        pinned.messages[0].record.to = PersonRef::Index(2);
        assert!(pinned.has_positional_refs());
        assert!(pinned.pin_person_refs());
        assert_eq!(pinned.messages[0].record.to, PersonRef::Record(id(3)));
        assert!(!pinned.has_positional_refs());
        pinned.persons.reverse();
        assert_eq!(
            pinned.resolve(pinned.messages[0].record.to).map(|e| e.id),
            Some(id(3))
        );
        assert!(c.resolve(PersonRef::Record(id(10))).is_none());
        assert_eq!(c.sought().count(), 3);
        assert_eq!(
            c.enquirer().map(|e| e.record.role),
            Some(PersonRole::Enquirer)
        );
    }

    #[test]
    fn enquirer_view_shares_only_with_agreement() {
        let c = case();
        let v = c.enquirer_view();
        assert_eq!(v.sought.len(), 3);
        assert_eq!(
            v.sought.iter().map(|s| s.record_id).collect::<Vec<_>>(),
            vec![id(2), id(3), id(4)]
        );

        let agreed = &v.sought[0];
        assert!(!agreed.whereabouts_withheld);
        let w = agreed.whereabouts.as_ref().unwrap();
        assert_eq!(w.located, c.persons[1].record.located);
        assert_eq!(w.contact, c.persons[1].record.person.contact);
        assert_eq!(
            w.last_known_location,
            c.persons[1].record.person.last_known_location
        );

        for (view, rec) in [(&v.sought[1], &c.persons[2]), (&v.sought[2], &c.persons[3])] {
            assert!(view.whereabouts_withheld);
            assert!(view.whereabouts.is_none());
            // Names, relationship and status are still shared.
            assert_eq!(view.names, rec.record.person.names);
            assert_eq!(view.relationship_to_enquirer, Some(Relationship::Sibling));
            assert_eq!(view.tracing_status, rec.record.tracing_status);
        }
        assert_eq!(v.sought[1].tracing_status, TracingStatus::Located);
        assert_eq!(v.sought[2].tracing_status, TracingStatus::Sought);
    }

    #[test]
    fn refusing_adult_never_appears_in_serialised_view() {
        let c = case();
        let json = serde_json::to_string(&c.enquirer_view()).unwrap();
        for secret in [
            REFUSER_CITY,
            REFUSER_PHONE,
            REFUSER_LAST_SEEN,
            REFUSER_STREET,
            UNASKED_CITY,
            UNASKED_PHONE,
            "UnaskedLastSeen",
        ] {
            assert!(!json.contains(secret), "view leaks {secret}");
        }
        // The agreeing sibling's whereabouts are there.
        assert!(json.contains("AgreedCity"));
        assert!(json.contains("AgreedLastSeen"));
        // The view never carries the enquirer's own record or case notes.
        assert!(!json.contains("Olena"));
        assert!(!json.contains("PRCS"));
        assert!(json.contains(r#""whereabouts_withheld":true"#));
        // Round trip.
        let back: EnquirerView = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c.enquirer_view());
    }

    #[test]
    fn consent_withdrawn_removes_whereabouts() {
        let mut c = case();
        assert!(c.enquirer_view().sought[0].whereabouts.is_some());
        c.persons[1].record.whereabouts_consent = WhereaboutsConsent::Refused;
        let v = c.enquirer_view();
        assert!(v.sought[0].whereabouts.is_none());
        assert!(v.sought[0].whereabouts_withheld);
        assert!(!serde_json::to_string(&v).unwrap().contains("AgreedCity"));
    }

    #[test]
    fn view_rule_does_not_depend_on_validity() {
        // Even an invalid record (consent recorded as refused on a person
        // whose status says not located) must not leak.
        let mut c = case();
        c.persons[2].record.tracing_status = TracingStatus::Sought;
        assert!(c.validate(today()).is_err());
        let json = serde_json::to_string(&c.enquirer_view()).unwrap();
        assert!(!json.contains(REFUSER_CITY));
        assert!(!json.contains(REFUSER_PHONE));
    }

    #[test]
    fn renewed_ids_are_fresh_and_references_follow_their_person() {
        let old = case();
        let mut c = old.clone();
        c.renew_record_ids();
        let ids = |f: &CaseFile| -> Vec<RecordId> {
            let persons = f.persons.iter().map(|e| e.id);
            let messages = f.messages.iter().map(|e| e.id);
            let notes = f.notes.iter().map(|e| e.id);
            persons
                .chain(messages)
                .chain(notes)
                .chain(f.attachments.iter().map(|e| e.id))
                .collect()
        };
        let (before, after) = (ids(&old), ids(&c));
        assert_eq!(before.len(), after.len());
        assert!(after.iter().all(|id| !before.contains(id)));
        assert_eq!(after.iter().collect::<HashSet<_>>().len(), after.len());
        assert_eq!(c.messages[0].record.to, PersonRef::Record(c.persons[1].id));
        assert_eq!(c.attachments[0].record.depicts, Some(c.persons[2].id));
        assert_eq!(c.validate(today()), Ok(()));
        // only the ids changed
        let mut back = c.clone();
        for (b, o) in back.persons.iter_mut().zip(&old.persons) {
            b.id = o.id;
        }
        back.messages[0].id = old.messages[0].id;
        back.messages[0].record.to = old.messages[0].record.to;
        back.notes[0].id = old.notes[0].id;
        back.attachments[0].id = old.attachments[0].id;
        back.attachments[0].record.depicts = old.attachments[0].record.depicts;
        assert_eq!(back, old);

        // a reference to no person, or to an id two persons shared, stays for validate to report
        let mut c = old.clone();
        c.messages[0].record.to = PersonRef::Record(id(99));
        c.persons[3].id = id(1);
        c.attachments[0].record.depicts = Some(id(1));
        c.renew_record_ids();
        assert_eq!(c.messages[0].record.to, PersonRef::Record(id(99)));
        assert_eq!(c.attachments[0].record.depicts, Some(id(1)));
        let err = c.validate(today()).unwrap_err();
        assert_eq!(
            paths(&err),
            vec!["messages[0].record.to", "attachments[0].record.depicts"]
        );
    }

    #[test]
    fn record_ids_may_be_left_out_on_input() {
        let mut v = serde_json::to_value(case()).unwrap();
        for list in ["persons", "messages", "notes", "attachments"] {
            for e in v[list].as_array_mut().unwrap() {
                e.as_object_mut().unwrap().remove("id");
            }
        }
        // the references by id point nowhere now; by index they still work
        v["messages"][0]["record"]["to"] = serde_json::json!({"index": 1});
        v["attachments"][0]["record"]
            .as_object_mut()
            .unwrap()
            .remove("depicts");
        let c: CaseFile = serde_json::from_value(v).unwrap();
        let ids: HashSet<RecordId> = c.persons.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 4, "each record got its own id");
        assert_eq!(c.validate(today()), Ok(()));
    }

    #[test]
    fn case_file_json_shape_and_round_trip() {
        let c = case();
        let v = serde_json::to_value(&c).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 5);
        for k in ["header", "persons", "messages", "notes", "attachments"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(
            v["persons"][0]["id"],
            "00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(v["persons"][0]["record"]["role"], "enquirer");
        assert_eq!(v["persons"][2]["record"]["whereabouts_consent"], "refused");
        assert_eq!(
            v["messages"][0]["record"]["to"]["record"],
            id(2).to_string()
        );
        assert_eq!(v["attachments"][0]["record"]["depicts"], id(3).to_string());

        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<CaseFile>(&json).unwrap(), c);

        // Empty collections may be omitted.
        let mut min = v.clone();
        let o = min.as_object_mut().unwrap();
        o.remove("messages");
        o.remove("notes");
        o.remove("attachments");
        let parsed: CaseFile = serde_json::from_value(min).unwrap();
        assert!(parsed.messages.is_empty() && parsed.notes.is_empty());
    }

    #[test]
    fn case_file_rejects_unknown_fields() {
        let v = serde_json::to_value(case()).unwrap();
        type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|v| {
                v["status"] = "open".into();
            }),
            Box::new(|v| {
                v["persons"][0]["kind"] = "person".into();
            }),
            Box::new(|v| {
                v["persons"][1]["record"]["person"]["religion"] = "x".into();
            }),
            Box::new(|v| {
                v["messages"][0]["record"]["cc"] = "x".into();
            }),
            Box::new(|v| {
                v["header"]["separation"]["date"]["day"] = 3.into();
            }),
            Box::new(|v| {
                v["persons"][1]["record"]["located"]["place"]["gps"] = "x".into();
            }),
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut x = v.clone();
            m(&mut x);
            assert!(
                serde_json::from_value::<CaseFile>(x).is_err(),
                "mutation {i}"
            );
        }
    }

    proptest! {
        /// Over many synthetic cases: for every sought person who did not
        /// agree, nothing of their located place or contact reaches the view.
        #[test]
        fn view_never_leaks_without_agreement(seed in any::<u64>()) {
            let c = crate::fixtures::synthetic_case(seed);
            let v = c.enquirer_view();
            prop_assert_eq!(v.sought.len(), c.sought().count());
            for (view, e) in v.sought.iter().zip(c.sought()) {
                prop_assert_eq!(view.record_id, e.id);
                let agreed = e.record.whereabouts_consent == WhereaboutsConsent::Agreed;
                prop_assert_eq!(view.whereabouts.is_some(), agreed);
                prop_assert_eq!(view.whereabouts_withheld, !agreed);
                if !agreed {
                    let json = serde_json::to_string(view).unwrap();
                    if let Some(l) = &e.record.located {
                        for ph in &l.contact.phones {
                            prop_assert!(!json.contains(&ph.number));
                        }
                        for a in &l.contact.addresses {
                            for line in &a.lines {
                                prop_assert!(!json.contains(line.as_str()));
                            }
                        }
                        prop_assert!(!json.contains("located_on"));
                    }
                    for ph in &e.record.person.contact.phones {
                        prop_assert!(!json.contains(&ph.number));
                    }
                    prop_assert!(!json.contains("last_known_location"));
                }
            }
        }
    }
}
