//! A person as the Family Links Network records them.

use crate::date::{ApproxDate, Date};
use crate::error::ValidationError;
use crate::validate::{
    country_code, language_tag, line, opt_line, opt_text, Path, Problems, LINE, LONG, ROOT, SHORT,
};

/// What kind of name a [`PersonName`] is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NameKind {
    /// The name on identity documents, or the name the person uses.
    #[default]
    Official,
    /// Another name the person is known by.
    Alias,
    /// Another spelling or transliteration of a name.
    SpellingVariant,
    /// Name at birth, if changed since.
    BirthName,
    /// Name taken on marriage.
    MarriedName,
    /// Nickname or family pet name.
    Nickname,
    /// Religious or honorific name.
    Religious,
    /// Anything else.
    Other,
}

/// One name of a person. At least one of `given` and `family` must be set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonName {
    /// Given name(s).
    #[serde(default)]
    pub given: String,
    /// Family name / surname (may be empty where none is used).
    #[serde(default)]
    pub family: String,
    /// Other name parts: father's or grandfather's name, patronymic,
    /// middle names, clan name used as a name, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<String>,
    /// ISO 15924 script code of this writing, e.g. `Latn`, `Arab`, `Cyrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// What kind of name this is.
    #[serde(default)]
    pub kind: NameKind,
}

impl PersonName {
    /// An official name with given and family parts, script unspecified.
    #[must_use]
    pub fn new(given: impl Into<String>, family: impl Into<String>) -> Self {
        Self {
            given: given.into(),
            family: family.into(),
            other: None,
            script: None,
            kind: NameKind::Official,
        }
    }

    /// Sets the script (builder style).
    #[must_use]
    pub fn in_script(mut self, script: impl Into<String>) -> Self {
        self.script = Some(script.into());
        self
    }

    /// Sets the kind (builder style).
    #[must_use]
    pub fn with_kind(mut self, kind: NameKind) -> Self {
        self.kind = kind;
        self
    }

    /// Validates this name on its own.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(&ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, path: &Path<'_>, p: &mut Problems) {
        if self.given.trim().is_empty() && self.family.trim().is_empty() {
            p.push(path, "has neither a given nor a family name");
        }
        line(p, &path.field("given"), &self.given, false, SHORT);
        line(p, &path.field("family"), &self.family, false, SHORT);
        opt_line(p, &path.field("other"), self.other.as_deref(), SHORT);
        if let Some(s) = &self.script {
            if !is_iso15924(s) {
                p.push(
                    path.field("script"),
                    "is not an ISO 15924 script code such as \"Latn\" or \"Arab\"",
                );
            }
        }
    }
}

/// `Xxxx`: four ASCII letters, first upper case, the rest lower case.
fn is_iso15924(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 4 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_lowercase)
}

/// Sex as recorded.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Not known.
    #[default]
    Unknown,
}

/// A place, as precisely as known. At least one field must be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    /// Town, village, camp or neighbourhood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// District / second-level administrative area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    /// Region / province / governorate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Free-text precision ("near the market", "camp sector C").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl Place {
    /// A locality in a country.
    #[must_use]
    pub fn locality_in(locality: impl Into<String>, country: impl Into<String>) -> Self {
        Self {
            locality: Some(locality.into()),
            country: Some(country.into()),
            ..Self::default()
        }
    }

    /// Validates this place.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(&ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, path: &Path<'_>, p: &mut Problems) {
        if self.locality.is_none()
            && self.district.is_none()
            && self.region.is_none()
            && self.country.is_none()
            && self.details.is_none()
        {
            p.push(path, "has no information");
        }
        opt_line(p, &path.field("locality"), self.locality.as_deref(), SHORT);
        opt_line(p, &path.field("district"), self.district.as_deref(), SHORT);
        opt_line(p, &path.field("region"), self.region.as_deref(), SHORT);
        if let Some(c) = &self.country {
            country_code(p, &path.field("country"), c);
        }
        opt_text(p, &path.field("details"), self.details.as_deref(), LINE);
    }
}

/// A phone number.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    /// The number, preferably international (`+963 ...`).
    pub number: String,
    /// Label ("mobile", "neighbour's phone", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Phone {
    pub(crate) fn check(&self, path: &Path<'_>, p: &mut Problems) {
        let np = path.field("number");
        let n = self.number.trim();
        let allowed =
            |c: char| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')' | '/');
        let body = n.strip_prefix('+').unwrap_or(n);
        let digits = body.chars().filter(char::is_ascii_digit).count();
        if n.is_empty() {
            p.push(np, "is empty");
        } else if !body.chars().all(allowed) {
            p.push(
                np,
                "may contain only digits, spaces, - . ( ) / and a leading +",
            );
        } else if !(5..=20).contains(&digits) {
            p.push(np, "must have between 5 and 20 digits");
        }
        opt_line(p, &path.field("label"), self.label.as_deref(), SHORT);
    }
}

/// A postal or descriptive address.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street, building, or description lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Town or city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Address {
    pub(crate) fn check(&self, path: &Path<'_>, p: &mut Problems) {
        if self.lines.is_empty() && self.locality.is_none() {
            p.push(path, "has neither address lines nor a locality");
        }
        if self.lines.len() > 8 {
            p.push(path.field("lines"), "has more than 8 lines");
        }
        for (i, l) in self.lines.iter().enumerate() {
            line(p, &path.index("lines", i), l, true, SHORT);
        }
        opt_line(p, &path.field("locality"), self.locality.as_deref(), SHORT);
        opt_line(
            p,
            &path.field("postal_code"),
            self.postal_code.as_deref(),
            20,
        );
        if let Some(c) = &self.country {
            country_code(p, &path.field("country"), c);
        }
    }
}

/// Ways to reach a person.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactDetails {
    /// Phone numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<Phone>,
    /// E-mail addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
}

impl ContactDetails {
    /// Whether nothing is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty() && self.emails.is_empty() && self.addresses.is_empty()
    }

    /// Validates these contact details.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(&ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, path: &Path<'_>, p: &mut Problems) {
        for (i, ph) in self.phones.iter().enumerate() {
            ph.check(&path.index("phones", i), p);
        }
        for (i, e) in self.emails.iter().enumerate() {
            if !is_plausible_email(e) {
                p.push(path.index("emails", i), "is not a plausible e-mail address");
            }
        }
        for (i, a) in self.addresses.iter().enumerate() {
            a.check(&path.index("addresses", i), p);
        }
    }
}

/// `local@domain.tld`, no whitespace or control characters, at most 254
/// characters. Deliberately light: real validation is delivery.
fn is_plausible_email(e: &str) -> bool {
    if e.chars().count() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// Where and when a person was last known to be.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastKnownLocation {
    /// The place.
    pub place: Place,
    /// When they were there, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<ApproxDate>,
}

impl LastKnownLocation {
    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        self.place.check(&path.field("place"), p);
        if let Some(d) = &self.date {
            d.check(today, &path.field("date"), p);
        }
    }
}

/// Where a sought person was found: the most sensitive part of a case.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Where they are.
    pub place: Place,
    /// When they were located.
    pub located_on: Date,
    /// How to reach them now.
    #[serde(default, skip_serializing_if = "ContactDetails::is_empty")]
    pub contact: ContactDetails,
    /// Free-text details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl Location {
    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        self.place.check(&path.field("place"), p);
        if self.located_on > today {
            p.push(path.field("located_on"), "is in the future");
        }
        self.contact.check(&path.field("contact"), p);
        opt_text(p, &path.field("details"), self.details.as_deref(), LONG);
    }
}

/// A person: enquirer or sought.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// All names, official first. At least one.
    pub names: Vec<PersonName>,
    /// Sex.
    #[serde(default)]
    pub sex: Sex,
    /// Date of birth, as precisely as known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<ApproxDate>,
    /// Place of birth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_of_birth: Option<Place>,
    /// Nationalities, ISO 3166-1 alpha-2 codes. Empty if stateless or unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nationalities: Vec<String>,
    /// Languages spoken, BCP 47 tags (`ar`, `ps`, `uk`, `so`, `ti`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// Ethnic or clan origin, only where the society records it (it helps
    /// tracing in some contexts and endangers people in others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ethnic_or_clan_origin: Option<String>,
    /// Contact details.
    #[serde(default, skip_serializing_if = "ContactDetails::is_empty")]
    pub contact: ContactDetails,
    /// Last known location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_location: Option<LastKnownLocation>,
}

impl Person {
    /// A person with just these names; everything else unknown.
    #[must_use]
    pub fn named(names: Vec<PersonName>) -> Self {
        Self {
            names,
            sex: Sex::Unknown,
            birth_date: None,
            place_of_birth: None,
            nationalities: Vec::new(),
            languages: Vec::new(),
            ethnic_or_clan_origin: None,
            contact: ContactDetails::default(),
            last_known_location: None,
        }
    }

    /// Validates this person; `today` bounds dates.
    pub fn validate(&self, today: Date) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(today, &ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        if self.names.is_empty() {
            p.push(path.field("names"), "must contain at least one name");
        }
        if self.names.len() > 32 {
            p.push(path.field("names"), "has more than 32 names");
        }
        for (i, n) in self.names.iter().enumerate() {
            n.check(&path.index("names", i), p);
        }
        if let Some(b) = &self.birth_date {
            b.check(today, &path.field("birth_date"), p);
        }
        if let Some(pl) = &self.place_of_birth {
            pl.check(&path.field("place_of_birth"), p);
        }
        for (i, n) in self.nationalities.iter().enumerate() {
            country_code(p, &path.index("nationalities", i), n);
        }
        for (i, l) in self.languages.iter().enumerate() {
            language_tag(p, &path.index("languages", i), l);
        }
        opt_line(
            p,
            &path.field("ethnic_or_clan_origin"),
            self.ethnic_or_clan_origin.as_deref(),
            SHORT,
        );
        self.contact.check(&path.field("contact"), p);
        if let Some(l) = &self.last_known_location {
            l.check(today, &path.field("last_known_location"), p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2025, 6, 15).unwrap()
    }

    fn good_person() -> Person {
        Person {
            names: vec![
                PersonName {
                    given: "Amina".into(),
                    family: "Haddad".into(),
                    other: Some("bint Yusuf".into()),
                    script: Some("Latn".into()),
                    kind: NameKind::Official,
                },
                PersonName::new("أمينة", "حداد").in_script("Arab"),
                PersonName::new("Aminah", "Hadad").with_kind(NameKind::SpellingVariant),
            ],
            sex: Sex::Female,
            birth_date: Some(ApproxDate::about(1988, 2)),
            place_of_birth: Some(Place::locality_in("Aleppo", "SY")),
            nationalities: vec!["SY".into()],
            languages: vec!["ar".into(), "ku".into()],
            ethnic_or_clan_origin: None,
            contact: ContactDetails {
                phones: vec![Phone {
                    number: "+963 944 123 456".into(),
                    label: Some("mobile".into()),
                }],
                emails: vec!["amina.h@example.org".into()],
                addresses: vec![Address {
                    lines: vec!["Building 4, Al-Jamiliyah".into()],
                    locality: Some("Aleppo".into()),
                    postal_code: None,
                    country: Some("SY".into()),
                }],
            },
            last_known_location: Some(LastKnownLocation {
                place: Place {
                    details: Some("Bus station".into()),
                    ..Place::locality_in("Gaziantep", "TR")
                },
                date: Some(ApproxDate::year_month(2016, 3)),
            }),
        }
    }

    fn paths_of(e: &ValidationError) -> Vec<&str> {
        e.paths().collect()
    }

    #[test]
    fn good_person_validates() {
        assert_eq!(good_person().validate(today()), Ok(()));
        assert_eq!(
            Person::named(vec![PersonName::new("Yonas", "")]).validate(today()),
            Ok(())
        );
    }

    #[test]
    fn every_problem_is_listed_with_paths_and_no_values() {
        let mut p = good_person();
        p.names[1].family = "   ".into();
        p.names[1].given = String::new();
        p.names[2].script = Some("latin".into());
        p.birth_date = Some(ApproxDate::full(1988, 2, 30));
        p.nationalities.push("Syria".into());
        p.languages.push("Kurdish".into());
        p.ethnic_or_clan_origin = Some(String::new());
        p.contact.phones[0].number = "call 0944-SECRET".into();
        p.contact.emails[0] = "amina-at-example".into();
        p.contact.addresses[0].country = Some("Syria".into());
        p.last_known_location = Some(LastKnownLocation {
            place: Place::default(),
            date: Some(ApproxDate::year(2099)),
        });
        let err = p.validate(today()).unwrap_err();
        assert_eq!(
            paths_of(&err),
            vec![
                "names[1]",
                "names[1].family",
                "names[2].script",
                "birth_date.day",
                "nationalities[1]",
                "languages[2]",
                "ethnic_or_clan_origin",
                "contact.phones[0].number",
                "contact.emails[0]",
                "contact.addresses[0].country",
                "last_known_location.place",
                "last_known_location.date",
            ]
        );
        let msg = err.to_string();
        for secret in [
            "Syria", "Kurdish", "SECRET", "0944", "amina", "latin", "1988", "2099", "Haddad",
        ] {
            assert!(!msg.contains(secret), "{msg} leaks {secret}");
        }
    }

    #[test]
    fn names_required() {
        let err = Person::named(vec![]).validate(today()).unwrap_err();
        assert_eq!(paths_of(&err), vec!["names"]);
    }

    #[test]
    fn name_rules() {
        assert!(PersonName::new("", "Tesfay").validate().is_ok());
        let err = PersonName::new("", "").validate().unwrap_err();
        assert_eq!(
            err.problems[0].message,
            "has neither a given nor a family name"
        );
        let long = "x".repeat(201);
        let err = PersonName::new(long.clone(), "ok").validate().unwrap_err();
        assert_eq!(paths_of(&err), vec!["given"]);
        assert!(!err.to_string().contains(&long));
        let err = PersonName::new("a\u{7}b", "ok").validate().unwrap_err();
        assert_eq!(err.problems[0].message, "contains control characters");
        for s in ["Latn", "Arab", "Cyrl", "Ethi", "Mymr"] {
            assert!(
                PersonName::new("a", "b").in_script(s).validate().is_ok(),
                "{s}"
            );
        }
        for s in ["latn", "LATN", "Lat", "Latin", "La1n", ""] {
            assert!(
                PersonName::new("a", "b").in_script(s).validate().is_err(),
                "{s}"
            );
        }
        let mut n = PersonName::new("a", "b");
        n.other = Some(String::new());
        assert_eq!(paths_of(&n.validate().unwrap_err()), vec!["other"]);
    }

    #[test]
    fn phone_rules() {
        let check = |n: &str| {
            ContactDetails {
                phones: vec![Phone {
                    number: n.into(),
                    label: None,
                }],
                ..ContactDetails::default()
            }
            .validate()
        };
        for good in [
            "+963 944 123 456",
            "0944-123-456",
            "(030) 1234.5678",
            "+252615551234",
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1234",
            "+1 234 567 890 123 456 789 01",
            "++963944123",
            "0944 abc 123",
            "+",
        ] {
            let err = check(bad).unwrap_err();
            assert_eq!(paths_of(&err), vec!["phones[0].number"], "{bad}");
            if !bad.is_empty() && bad != "+" {
                assert!(!err.to_string().contains(bad));
            }
        }
    }

    #[test]
    fn email_rules() {
        for good in ["a@b.org", "first.last+tag@sub.example.co.uk"] {
            assert!(is_plausible_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@b.org",
            "a@b",
            "a@@b.org",
            "a@.b.org",
            "a@b.org.",
            "a b@c.org",
            "a@b..org",
        ] {
            assert!(!is_plausible_email(bad), "{bad}");
        }
    }

    #[test]
    fn place_and_address_rules() {
        assert!(Place::default().validate().is_err());
        assert!(Place::locality_in("Mosul", "IQ").validate().is_ok());
        let pl = Place {
            country: Some("IRQ".into()),
            ..Place::default()
        };
        assert_eq!(paths_of(&pl.validate().unwrap_err()), vec!["country"]);
        let c = ContactDetails {
            addresses: vec![Address::default()],
            ..ContactDetails::default()
        };
        assert_eq!(paths_of(&c.validate().unwrap_err()), vec!["addresses[0]"]);
    }

    #[test]
    fn location_future_rejected() {
        let loc = Location {
            place: Place::locality_in("Kharkiv", "UA"),
            located_on: Date::new(2025, 6, 16).unwrap(),
            contact: ContactDetails::default(),
            details: None,
        };
        let mut p = Problems::new();
        loc.check(today(), &ROOT.field("located"), &mut p);
        let err = p.finish().unwrap_err();
        assert_eq!(paths_of(&err), vec!["located.located_on"]);
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let p = good_person();
        let json = serde_json::to_string(&p).unwrap();
        let back: Person = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);

        let minimal = r#"{"names":[{"given":"Yonas"}]}"#;
        let m: Person = serde_json::from_str(minimal).unwrap();
        assert_eq!(m.sex, Sex::Unknown);
        assert_eq!(m.names[0].kind, NameKind::Official);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"names":[{"given":"Yonas","family":"","kind":"official"}],"sex":"unknown"}"#
        );

        for bad in [
            r#"{"names":[{"given":"Yonas"}],"religion":"x"}"#,
            r#"{"names":[{"given":"Yonas","title":"Dr"}]}"#,
            r#"{"names":[{"given":"Yonas"}],"contact":{"fax":[]}}"#,
            r#"{"names":[{"given":"Yonas"}],"place_of_birth":{"city":"x"}}"#,
            r#"{"names":[{"given":"Yonas"}],"sex":"F"}"#,
            r#"{"names":[{"given":"Yonas","kind":"official_name"}]}"#,
        ] {
            assert!(serde_json::from_str::<Person>(bad).is_err(), "{bad}");
        }
    }
}
