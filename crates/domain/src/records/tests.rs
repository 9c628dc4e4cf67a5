use super::attachment::is_media_type;
use super::*;
use crate::date::ApproxDate;
use crate::ids::RecordId;
use crate::person::{ContactDetails, Location, Person, PersonName, Phone, Place};

fn today() -> Date {
    Date::new(2025, 6, 15).unwrap()
}

fn d(y: i32, m: u8, day: u8) -> Date {
    Date::new(y, m, day).unwrap()
}

fn paths(e: &ValidationError) -> Vec<&str> {
    e.paths().collect()
}

fn header() -> CaseHeader {
    CaseHeader {
        category: CaseCategory::TracingRequest,
        separation: Separation {
            event: SeparationEvent::Migration,
            place: Some(Place::locality_in("Tripoli", "LY")),
            date: Some(ApproxDate::year_month(2016, 5)),
            description: Some("Separated at the port.".into()),
        },
        vulnerabilities: vec![Vulnerability::Medical, Vulnerability::Elderly],
        consent: ProcessingConsent {
            given: true,
            date: Some(d(2024, 1, 10)),
            recorded_how: Some(ConsentRecording::Written),
        },
        reference: Some("ERC-2024-0001".into()),
    }
}

#[test]
fn header_good_and_bad() {
    assert_eq!(header().validate(today()), Ok(()));

    let mut h = header();
    h.separation.event = SeparationEvent::Other;
    h.separation.description = None;
    h.separation.date = Some(ApproxDate::full(2016, 2, 30));
    h.separation.place = Some(Place::default());
    h.vulnerabilities.push(Vulnerability::Medical);
    h.consent.date = Some(d(2026, 1, 1));
    h.consent.recorded_how = None;
    h.reference = Some("R".repeat(101));
    let err = h.validate(today()).unwrap_err();
    assert_eq!(
        paths(&err),
        vec![
            "separation.place",
            "separation.date.day",
            "separation.description",
            "vulnerabilities[2]",
            "consent.date",
            "consent.recorded_how",
            "reference",
        ]
    );

    let mut h = header();
    h.consent = ProcessingConsent {
        given: true,
        date: None,
        recorded_how: Some(ConsentRecording::Oral),
    };
    assert_eq!(
        paths(&h.validate(today()).unwrap_err()),
        vec!["consent.date"]
    );
    h.consent = ProcessingConsent {
        given: false,
        date: None,
        recorded_how: None,
    };
    assert_eq!(h.validate(today()), Ok(()));
}

#[test]
fn header_serde() {
    let h = header();
    let json = serde_json::to_string(&h).unwrap();
    assert!(json.contains(r#""category":"tracing_request""#));
    assert!(json.contains(r#""vulnerabilities":["medical","elderly"]"#));
    assert_eq!(serde_json::from_str::<CaseHeader>(&json).unwrap(), h);
    let bad = json.replacen(r#""category""#, r#""priority":1,"category""#, 1);
    assert!(serde_json::from_str::<CaseHeader>(&bad).is_err());
    let bad = json.replacen(r#""given":true"#, r#""given":true,"witness":"x""#, 1);
    assert!(serde_json::from_str::<CaseHeader>(&bad).is_err());
}

fn person() -> Person {
    Person::named(vec![PersonName::new("Saba", "Tekle")])
}

fn located() -> Location {
    Location {
        place: Place::locality_in("Catania", "IT"),
        located_on: d(2024, 3, 1),
        contact: ContactDetails::default(),
        details: None,
    }
}

#[test]
fn person_record_rules() {
    assert_eq!(PersonRecord::enquirer(person()).validate(today()), Ok(()));
    assert_eq!(
        PersonRecord::sought(person(), Relationship::Sibling).validate(today()),
        Ok(())
    );

    let mut e = PersonRecord::enquirer(person());
    e.relationship_to_enquirer = Some(Relationship::Parent);
    e.whereabouts_consent = WhereaboutsConsent::Agreed;
    e.tracing_status = TracingStatus::Located;
    e.located = Some(located());
    assert_eq!(
        paths(&e.validate(today()).unwrap_err()),
        vec![
            "relationship_to_enquirer",
            "tracing_status",
            "whereabouts_consent",
            "located"
        ]
    );

    let mut s = PersonRecord::sought(person(), Relationship::OtherRelative(" ".into()));
    s.tracing_status = TracingStatus::Located;
    assert_eq!(
        paths(&s.validate(today()).unwrap_err()),
        vec!["relationship_to_enquirer", "located"]
    );

    let mut s = PersonRecord::sought(person(), Relationship::Child);
    s.relationship_to_enquirer = None;
    s.whereabouts_consent = WhereaboutsConsent::Refused;
    s.located = Some(located());
    assert_eq!(
        paths(&s.validate(today()).unwrap_err()),
        vec!["relationship_to_enquirer", "located", "whereabouts_consent"]
    );

    let mut s = PersonRecord::sought(person(), Relationship::Spouse);
    s.tracing_status = TracingStatus::Located;
    s.located = Some(located());
    for c in [
        WhereaboutsConsent::NotAsked,
        WhereaboutsConsent::Agreed,
        WhereaboutsConsent::Refused,
    ] {
        s.whereabouts_consent = c;
        assert_eq!(s.validate(today()), Ok(()));
    }
    // Deceased with a grave location is fine, but no consent to record.
    s.tracing_status = TracingStatus::Deceased;
    s.whereabouts_consent = WhereaboutsConsent::NotAsked;
    assert_eq!(s.validate(today()), Ok(()));

    // Person problems are nested under "person".
    let mut s = PersonRecord::sought(person(), Relationship::Spouse);
    s.person.names[0].family = "\u{1b}[31m".into();
    assert_eq!(
        paths(&s.validate(today()).unwrap_err()),
        vec!["person.names[0].family"]
    );
}

#[test]
fn person_record_serde() {
    let mut s = PersonRecord::sought(person(), Relationship::OtherRelative("step-uncle".into()));
    s.tracing_status = TracingStatus::Located;
    s.located = Some(located());
    s.whereabouts_consent = WhereaboutsConsent::Refused;
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(r#""relationship_to_enquirer":{"other_relative":"step-uncle"}"#));
    assert!(json.contains(r#""whereabouts_consent":"refused""#));
    assert!(json.contains(r#""located_on":"2024-03-01""#));
    assert_eq!(serde_json::from_str::<PersonRecord>(&json).unwrap(), s);

    // Defaults: a sought person without consent fields is not asked.
    let minimal = r#"{"role":"sought","person":{"names":[{"given":"Saba"}]},"relationship_to_enquirer":"parent"}"#;
    let m: PersonRecord = serde_json::from_str(minimal).unwrap();
    assert_eq!(m.whereabouts_consent, WhereaboutsConsent::NotAsked);
    assert_eq!(m.tracing_status, TracingStatus::Sought);

    for bad in [
        r#"{"role":"witness","person":{"names":[{"given":"Saba"}]}}"#,
        r#"{"role":"sought","person":{"names":[{"given":"Saba"}]},"consent":"agreed"}"#,
        r#"{"role":"sought","person":{"names":[{"given":"Saba"}]},"whereabouts_consent":"maybe"}"#,
        r#"{"role":"sought","person":{"names":[{"given":"Saba"}]},"relationship_to_enquirer":"friend"}"#,
    ] {
        assert!(serde_json::from_str::<PersonRecord>(bad).is_err(), "{bad}");
    }
}

fn message() -> RedCrossMessage {
    RedCrossMessage {
        from: PersonRef::Enquirer,
        to: PersonRef::Index(1),
        date: d(2024, 5, 1),
        language: "ti".into(),
        body: "We are well.\nWrite soon.".into(),
        delivery_status: DeliveryStatus::InTransit,
    }
}

#[test]
fn message_rules() {
    assert_eq!(message().validate(today()), Ok(()));
    let mut m = message();
    m.to = PersonRef::Enquirer;
    m.date = d(2025, 6, 16);
    m.language = "Tigrinya".into();
    m.body = "x".repeat(RedCrossMessage::MAX_BODY_CHARS + 1);
    let err = m.validate(today()).unwrap_err();
    assert_eq!(paths(&err), vec!["to", "date", "language", "body"]);
    assert!(!err.to_string().contains("Tigrinya"));
    assert!(!err.to_string().contains("xxxx"));

    let mut m = message();
    m.body = "é".repeat(RedCrossMessage::MAX_BODY_CHARS);
    assert_eq!(m.validate(today()), Ok(()));
    m.body = "   ".into();
    assert_eq!(paths(&m.validate(today()).unwrap_err()), vec!["body"]);
}

#[test]
fn message_serde() {
    let m = message();
    let json = serde_json::to_string(&m).unwrap();
    assert!(json.starts_with(r#"{"from":"enquirer","to":{"index":1},"date":"2024-05-01""#));
    assert_eq!(serde_json::from_str::<RedCrossMessage>(&json).unwrap(), m);
    let id = RecordId::new();
    let r = serde_json::to_string(&PersonRef::Record(id)).unwrap();
    assert_eq!(r, format!(r#"{{"record":"{id}"}}"#));
    let bad = json.replacen(r#""date""#, r#""subject":"x","date""#, 1);
    assert!(serde_json::from_str::<RedCrossMessage>(&bad).is_err());
    assert!(serde_json::from_str::<PersonRef>(r#"{"name":"x"}"#).is_err());
}

#[test]
fn note_rules() {
    let n = Note {
        author: "caseworker KM".into(),
        text: "Called the branch.".into(),
        created: d(2025, 6, 15),
    };
    assert_eq!(n.validate(today()), Ok(()));
    let json = serde_json::to_string(&n).unwrap();
    assert_eq!(serde_json::from_str::<Note>(&json).unwrap(), n);
    assert!(serde_json::from_str::<Note>(&json.replacen('{', r#"{"tags":[],"#, 1)).is_err());
    let bad = Note {
        author: String::new(),
        text: String::new(),
        created: d(2025, 6, 16),
    };
    assert_eq!(
        paths(&bad.validate(today()).unwrap_err()),
        vec!["author", "text", "created"]
    );
}

fn attachment() -> AttachmentMeta {
    AttachmentMeta {
        file_name: "photo of Saba.jpg".into(),
        media_type: "image/jpeg".into(),
        size_bytes: 200_000,
        chunk_count: 4,
        sha256: "ab".repeat(32),
        description: Some("Wedding photo".into()),
        depicts: None,
    }
}

#[test]
fn attachment_rules() {
    assert_eq!(attachment().validate(), Ok(()));
    let mut empty = attachment();
    empty.size_bytes = 0;
    empty.chunk_count = 1;
    assert_eq!(empty.validate(), Ok(()));

    let mut a = attachment();
    a.file_name = "../Saba/secret.jpg".into();
    a.media_type = "jpeg".into();
    a.size_bytes = AttachmentMeta::MAX_SIZE_BYTES + 1;
    a.chunk_count = 0;
    a.sha256 = "AB".repeat(32);
    a.description = Some(String::new());
    let err = a.validate().unwrap_err();
    assert_eq!(
        paths(&err),
        vec![
            "file_name",
            "media_type",
            "size_bytes",
            "chunk_count",
            "sha256",
            "description"
        ]
    );
    assert!(!err.to_string().contains("Saba"));

    let mut a = attachment();
    a.size_bytes = 3;
    a.chunk_count = 4;
    a.sha256 = "ab".repeat(31);
    a.file_name = "..".into();
    assert_eq!(
        paths(&a.validate().unwrap_err()),
        vec!["file_name", "chunk_count", "sha256"]
    );
    for good in [
        "image/jpeg",
        "application/pdf",
        "image/svg+xml",
        "application/vnd.ms-excel",
    ] {
        assert!(is_media_type(good), "{good}");
    }
    for bad in [
        "",
        "image",
        "image/",
        "/jpeg",
        "image/jpeg; q=1",
        "image/jp eg",
        "a/b/c",
    ] {
        assert!(!is_media_type(bad), "{bad}");
    }
    let json = serde_json::to_string(&attachment()).unwrap();
    assert_eq!(
        serde_json::from_str::<AttachmentMeta>(&json).unwrap(),
        attachment()
    );
    assert!(
        serde_json::from_str::<AttachmentMeta>(&json.replacen('{', r#"{"path":"x","#, 1)).is_err()
    );
}

#[test]
fn record_kinds() {
    for k in RecordKind::ALL {
        assert_eq!(RecordKind::parse(k.as_str()), Some(k));
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
    }
    assert_eq!(RecordKind::parse("case header"), None);
    assert_eq!(CaseHeader::KIND, RecordKind::CaseHeader);
    assert_eq!(PersonRecord::KIND.as_str(), "person");
    assert_eq!(RedCrossMessage::KIND.as_str(), "message");
    assert_eq!(Note::KIND.as_str(), "note");
    assert_eq!(AttachmentMeta::KIND.as_str(), "attachment");
    assert!(attachment().validate_record(today()).is_ok());
    assert!(header().validate_record(today()).is_ok());
}

#[test]
fn phone_in_located_contact_is_checked() {
    let mut s = PersonRecord::sought(person(), Relationship::Spouse);
    s.tracing_status = TracingStatus::Located;
    let mut loc = located();
    loc.contact.phones.push(Phone {
        number: "12".into(),
        label: None,
    });
    s.located = Some(loc);
    assert_eq!(
        paths(&s.validate(today()).unwrap_err()),
        vec!["located.contact.phones[0].number"]
    );
}
