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
                PersonRecord::enquirer(Person::named(vec![PersonName::new("Olena", "Kovalenko")])),
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
    c.persons[1].record = PersonRecord::enquirer(Person::named(vec![PersonName::new("A", "B")]));
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
