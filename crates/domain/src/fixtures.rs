//! Deterministic synthetic cases for tests and benchmarks (cargo feature
//! `fixtures`).
//!
//! All names, places and numbers are combined at random from small pools;
//! any resemblance to a real case is coincidental. Every case produced is
//! valid for any `today` on or after [`REFERENCE_TODAY`].

use uuid::Builder;

use crate::case::{CaseFile, Entry};
use crate::date::{days_in_month, ApproxDate, Date};
use crate::ids::RecordId;
use crate::person::{
    Address, ContactDetails, LastKnownLocation, Location, NameKind, Person, PersonName, Phone,
    Place, Sex,
};
use crate::records::{
    AttachmentMeta, CaseCategory, CaseHeader, ConsentRecording, DeliveryStatus, Note, PersonRecord,
    PersonRef, ProcessingConsent, RedCrossMessage, Relationship, Separation, SeparationEvent,
    TracingStatus, Vulnerability, WhereaboutsConsent,
};

/// The earliest "today" for which every synthetic case validates
/// (all fixture dates are before it).
pub const REFERENCE_TODAY: (i32, u8, u8) = (2025, 1, 1);

/// [`REFERENCE_TODAY`] as a [`Date`].
#[must_use]
pub fn reference_today() -> Date {
    let (y, m, d) = REFERENCE_TODAY;
    Date::new(y, m, d).unwrap_or_else(|_| unreachable!("constant date is valid"))
}

/// SplitMix64: tiny, fast, good enough for fixtures. Not for cryptography.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn range_i32(&mut self, lo: i32, hi_inclusive: i32) -> i32 {
        let span = u64::try_from(hi_inclusive - lo + 1).unwrap_or(1);
        lo + i32::try_from(self.below(span)).unwrap_or(0)
    }

    fn range_u8(&mut self, lo: u8, hi_inclusive: u8) -> u8 {
        lo + u8::try_from(self.below(u64::from(hi_inclusive - lo) + 1)).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let len = u64::try_from(items.len()).unwrap_or(1);
        let i = usize::try_from(self.below(len)).unwrap_or(0);
        &items[i.min(items.len() - 1)]
    }

    fn record_id(&mut self) -> RecordId {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        RecordId::from_uuid(Builder::from_random_bytes(b).into_uuid())
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + u8::try_from(self.below(10)).unwrap_or(0)))
            .collect()
    }

    fn date_in(&mut self, year_lo: i32, year_hi: i32) -> Date {
        let y = self.range_i32(year_lo, year_hi);
        let m = self.range_u8(1, 12);
        let d = self.range_u8(1, days_in_month(y, m));
        Date::new(y, m, d).unwrap_or_else(|_| unreachable!("generated within month bounds"))
    }
}

/// A name written natively and in Latin transliteration. For profiles
/// written in Latin script, `native` is the local spelling and `latin` a
/// common variant.
type Pair = (&'static str, &'static str);

struct Profile {
    script: &'static str,
    female: &'static [Pair],
    male: &'static [Pair],
    family: &'static [Pair],
    /// (locality, region, ISO country)
    home: &'static [(&'static str, &'static str, &'static str)],
    transit: &'static [(&'static str, &'static str)],
    country: &'static str,
    language: &'static str,
    phone_prefix: &'static str,
    events: &'static [SeparationEvent],
    society: &'static str,
}

const PROFILES: &[Profile] = &[
    Profile {
        script: "Arab",
        female: &[
            ("فاطمة", "Fatima"),
            ("أمينة", "Amina"),
            ("ريم", "Reem"),
            ("نور", "Nour"),
        ],
        male: &[
            ("محمد", "Mohammed"),
            ("أحمد", "Ahmad"),
            ("يوسف", "Youssef"),
            ("عمر", "Omar"),
        ],
        family: &[
            ("حداد", "Haddad"),
            ("الأحمد", "Al-Ahmad"),
            ("خليل", "Khalil"),
            ("السيد", "Al-Sayed"),
        ],
        home: &[
            ("Aleppo", "Aleppo", "SY"),
            ("Homs", "Homs", "SY"),
            ("Idlib", "Idlib", "SY"),
        ],
        transit: &[
            ("Gaziantep", "TR"),
            ("Izmir", "TR"),
            ("Mytilene", "GR"),
            ("Munich", "DE"),
        ],
        country: "SY",
        language: "ar",
        phone_prefix: "+963",
        events: &[SeparationEvent::ArmedConflict, SeparationEvent::Migration],
        society: "SARC",
    },
    Profile {
        script: "Cyrl",
        female: &[
            ("Олена", "Olena"),
            ("Марія", "Mariia"),
            ("Ірина", "Iryna"),
            ("Оксана", "Oksana"),
        ],
        male: &[
            ("Андрій", "Andrii"),
            ("Олександр", "Oleksandr"),
            ("Тарас", "Taras"),
            ("Микола", "Mykola"),
        ],
        family: &[
            ("Шевченко", "Shevchenko"),
            ("Коваленко", "Kovalenko"),
            ("Бондаренко", "Bondarenko"),
            ("Ткачук", "Tkachuk"),
        ],
        home: &[
            ("Mariupol", "Donetsk", "UA"),
            ("Kharkiv", "Kharkiv", "UA"),
            ("Kherson", "Kherson", "UA"),
        ],
        transit: &[
            ("Przemyśl", "PL"),
            ("Warsaw", "PL"),
            ("Zaporizhzhia", "UA"),
            ("Chișinău", "MD"),
        ],
        country: "UA",
        language: "uk",
        phone_prefix: "+380",
        events: &[
            SeparationEvent::ArmedConflict,
            SeparationEvent::InternalDisplacement,
            SeparationEvent::Detention,
        ],
        society: "URCS",
    },
    Profile {
        script: "Latn",
        female: &[
            ("Faadumo", "Fadumo"),
            ("Xaliimo", "Halimo"),
            ("Hodan", "Hodan"),
            ("Sahra", "Sahro"),
        ],
        male: &[
            ("Cabdullaahi", "Abdullahi"),
            ("Maxamed", "Mohamed"),
            ("Cabdi", "Abdi"),
            ("Xasan", "Hassan"),
        ],
        family: &[
            ("Cali", "Ali"),
            ("Warsame", "Warsame"),
            ("Nuur", "Nur"),
            ("Cumar", "Omar"),
        ],
        home: &[
            ("Baidoa", "Bay", "SO"),
            ("Mogadishu", "Banaadir", "SO"),
            ("Kismayo", "Lower Juba", "SO"),
        ],
        transit: &[
            ("Dadaab", "KE"),
            ("Nairobi", "KE"),
            ("Dollo Ado", "ET"),
            ("Aden", "YE"),
        ],
        country: "SO",
        language: "so",
        phone_prefix: "+252",
        events: &[
            SeparationEvent::Disaster,
            SeparationEvent::ArmedConflict,
            SeparationEvent::InternalDisplacement,
        ],
        society: "SRCS",
    },
    Profile {
        script: "Ethi",
        female: &[
            ("ሳባ", "Saba"),
            ("ሉላ", "Lula"),
            ("ኤልሳ", "Elsa"),
            ("ሰላም", "Selam"),
        ],
        male: &[
            ("ዮናስ", "Yonas"),
            ("ተስፋይ", "Tesfay"),
            ("ዳኒኤል", "Daniel"),
            ("ሚካኤል", "Mikael"),
        ],
        family: &[
            ("ገብረሂወት", "Gebrehiwet"),
            ("ተኽለ", "Tekle"),
            ("ሃይለ", "Haile"),
            ("ብርሃነ", "Berhane"),
        ],
        home: &[
            ("Asmara", "Maekel", "ER"),
            ("Mendefera", "Debub", "ER"),
            ("Keren", "Anseba", "ER"),
        ],
        transit: &[
            ("Khartoum", "SD"),
            ("Tripoli", "LY"),
            ("Catania", "IT"),
            ("Calais", "FR"),
        ],
        country: "ER",
        language: "ti",
        phone_prefix: "+291",
        events: &[SeparationEvent::Migration, SeparationEvent::Detention],
        society: "RCSE",
    },
    Profile {
        script: "Arab",
        female: &[
            ("مریم", "Maryam"),
            ("زهرا", "Zahra"),
            ("پروین", "Parwin"),
            ("شکیبا", "Shakiba"),
        ],
        male: &[
            ("نجیب", "Najib"),
            ("فرید", "Farid"),
            ("احمد", "Ahmad"),
            ("جاوید", "Jawid"),
        ],
        family: &[
            ("رحیمی", "Rahimi"),
            ("احمدزی", "Ahmadzai"),
            ("حیدری", "Haidari"),
            ("نوری", "Noori"),
        ],
        home: &[
            ("Kabul", "Kabul", "AF"),
            ("Herat", "Herat", "AF"),
            ("Kunduz", "Kunduz", "AF"),
        ],
        transit: &[
            ("Mashhad", "IR"),
            ("Peshawar", "PK"),
            ("Van", "TR"),
            ("Bihać", "BA"),
        ],
        country: "AF",
        language: "fa-AF",
        phone_prefix: "+93",
        events: &[
            SeparationEvent::ArmedConflict,
            SeparationEvent::Migration,
            SeparationEvent::Disaster,
        ],
        society: "ARCS",
    },
    Profile {
        script: "Mymr",
        female: &[("အေးအေး", "Aye Aye"), ("သီတာ", "Thida"), ("နန္ဒာ", "Nanda")],
        male: &[
            ("ကျော်ကျော်", "Kyaw Kyaw"),
            ("မောင်မောင်", "Maung Maung"),
            ("ဇော်မင်း", "Zaw Min"),
        ],
        // Burmese names have no family name: exercise given-only names.
        family: &[("", "")],
        home: &[
            ("Sittwe", "Rakhine", "MM"),
            ("Hpa-An", "Kayin", "MM"),
            ("Lashio", "Shan", "MM"),
        ],
        transit: &[
            ("Cox's Bazar", "BD"),
            ("Mae Sot", "TH"),
            ("Kuala Lumpur", "MY"),
        ],
        country: "MM",
        language: "my",
        phone_prefix: "+95",
        events: &[
            SeparationEvent::ArmedConflict,
            SeparationEvent::Disaster,
            SeparationEvent::InternalDisplacement,
        ],
        society: "MRCS",
    },
];

const DESCRIPTIONS: &[&str] = &[
    "Separated in the crowd at the checkpoint while fleeing.",
    "Group split between two vehicles at the border.",
    "Lost contact after the phone was taken at a transit centre.",
    "Taken to different evacuation sites after the house collapsed.",
    "Taken away by armed men; no news since.",
    "Boarded different boats on the same night.",
];

const NOTES: &[&str] = &[
    "Interviewed at the branch. Photo provided.",
    "Name variants checked; no match yet.",
    "Request forwarded to the sister society.",
    "Last known address visited; neighbours moved away.",
];

const MESSAGES: &[&str] = &[
    "We are all well and safe. Please send news when you can.",
    "Your mother and sisters are with me. We pray for you.",
    "The children are at school. Write to us through the Red Cross.",
];

fn name(rng: &mut SplitMix64, p: &Profile, sex: Sex) -> (Pair, Pair) {
    let given = if sex == Sex::Female {
        *rng.pick(p.female)
    } else {
        *rng.pick(p.male)
    };
    (given, *rng.pick(p.family))
}

fn names(p: &Profile, given: Pair, family: Pair) -> Vec<PersonName> {
    let mut v = vec![PersonName::new(given.0, family.0).in_script(p.script)];
    if given.0 != given.1 || family.0 != family.1 {
        let kind = if p.script == "Latn" {
            NameKind::SpellingVariant
        } else {
            NameKind::Official
        };
        v.push(
            PersonName::new(given.1, family.1)
                .in_script("Latn")
                .with_kind(kind),
        );
    }
    v
}

fn phone(rng: &mut SplitMix64, prefix: &str) -> Phone {
    Phone {
        number: format!(
            "{prefix} {} {} {}",
            rng.digits(3),
            rng.digits(3),
            rng.digits(3)
        ),
        label: if rng.chance(30) {
            Some((*rng.pick(&["mobile", "WhatsApp", "neighbour"])).to_owned())
        } else {
            None
        },
    }
}

fn transit_place(rng: &mut SplitMix64, p: &Profile) -> Place {
    let (loc, c) = *rng.pick(p.transit);
    Place::locality_in(loc, c)
}

/// A realistic, valid case, deterministically derived from `seed`.
///
/// One enquirer and one or two sought persons with names in the profile's
/// native script plus Latin transliteration, phone numbers, approximate and
/// exact dates, places along a displacement route, and usually a message, a
/// note and a photo. Roughly 1.5–2 KB as JSON.
#[must_use]
pub fn synthetic_case(seed: u64) -> CaseFile {
    let mut rng = SplitMix64(seed);
    let p = rng.pick(PROFILES);
    let (home_loc, home_region, home_country) = *rng.pick(p.home);
    let home = Place {
        locality: Some(home_loc.to_owned()),
        region: Some(home_region.to_owned()),
        country: Some(home_country.to_owned()),
        ..Place::default()
    };

    // Separation.
    let sep_date = rng.date_in(2011, 2022);
    let separation = Separation {
        event: *rng.pick(p.events),
        place: Some(if rng.chance(50) {
            home.clone()
        } else {
            transit_place(&mut rng, p)
        }),
        date: Some(if rng.chance(50) {
            ApproxDate::from(sep_date)
        } else {
            ApproxDate::year_month(sep_date.year(), sep_date.month())
        }),
        description: Some((*rng.pick(DESCRIPTIONS)).to_owned()),
    };

    // Enquirer.
    let enq_sex = if rng.chance(60) {
        Sex::Female
    } else {
        Sex::Male
    };
    let (g, f) = name(&mut rng, p, enq_sex);
    let enq_birth = rng.date_in(1955, 2000);
    let enquirer = Person {
        names: names(p, g, f),
        sex: enq_sex,
        birth_date: Some(if rng.chance(30) {
            ApproxDate::from(enq_birth)
        } else {
            ApproxDate::year(enq_birth.year())
        }),
        place_of_birth: Some(Place::locality_in(home_loc, home_country)),
        nationalities: vec![p.country.to_owned()],
        languages: vec![p.language.to_owned()],
        ethnic_or_clan_origin: None,
        contact: ContactDetails {
            phones: vec![phone(&mut rng, "+49")],
            emails: Vec::new(),
            addresses: Vec::new(),
        },
        last_known_location: None,
    };
    let enquirer_id = rng.record_id();
    let mut persons = vec![Entry::new(enquirer_id, PersonRecord::enquirer(enquirer))];

    // Sought persons: the first shares the enquirer's family name.
    let n_sought = if rng.chance(20) { 2 } else { 1 };
    let mut vulnerabilities = Vec::new();
    for i in 0..n_sought {
        let sex = if rng.chance(50) {
            Sex::Female
        } else {
            Sex::Male
        };
        let (g2, f2) = name(&mut rng, p, sex);
        let family = if i == 0 { f } else { f2 };
        let relationship = rng
            .pick(&[
                Relationship::Parent,
                Relationship::Child,
                Relationship::Sibling,
                Relationship::Spouse,
                Relationship::Grandchild,
            ])
            .clone();
        let birth_year =
            if relationship == Relationship::Child || relationship == Relationship::Grandchild {
                rng.range_i32(2005, 2015)
            } else {
                rng.range_i32(1945, 1995)
            };
        if birth_year >= 2007 && i == 0 {
            vulnerabilities.push(Vulnerability::SeparatedMinor);
        } else if birth_year < 1955 && i == 0 {
            vulnerabilities.push(Vulnerability::Elderly);
        }
        let last_seen = rng.date_in(sep_date.year(), 2023);
        let person = Person {
            names: names(p, g2, family),
            sex,
            birth_date: Some(ApproxDate::about(birth_year, rng.range_u8(1, 5))),
            place_of_birth: None,
            nationalities: if rng.chance(50) {
                vec![p.country.to_owned()]
            } else {
                Vec::new()
            },
            languages: Vec::new(),
            ethnic_or_clan_origin: None,
            contact: ContactDetails {
                phones: if rng.chance(35) {
                    vec![phone(&mut rng, p.phone_prefix)]
                } else {
                    Vec::new()
                },
                emails: Vec::new(),
                addresses: Vec::new(),
            },
            last_known_location: Some(LastKnownLocation {
                place: transit_place(&mut rng, p),
                date: Some(ApproxDate::year_month(last_seen.year(), last_seen.month())),
            }),
        };
        let mut rec = PersonRecord::sought(person, relationship);
        if rng.chance(35) {
            let (loc, c) = *rng.pick(p.transit);
            rec.tracing_status = TracingStatus::Located;
            rec.located = Some(Location {
                place: Place {
                    details: Some("Reception centre".to_owned()),
                    ..Place::locality_in(loc, c)
                },
                located_on: rng.date_in(2024, 2024),
                contact: ContactDetails {
                    phones: vec![phone(&mut rng, p.phone_prefix)],
                    emails: Vec::new(),
                    addresses: vec![Address {
                        lines: vec![format!(
                            "Block {}, room {}",
                            rng.range_u8(1, 20),
                            rng.range_u8(1, 99)
                        )],
                        locality: Some(loc.to_owned()),
                        postal_code: None,
                        country: Some(c.to_owned()),
                    }],
                },
                details: None,
            });
            rec.whereabouts_consent = *rng.pick(&[
                WhereaboutsConsent::Agreed,
                WhereaboutsConsent::Agreed,
                WhereaboutsConsent::Refused,
                WhereaboutsConsent::NotAsked,
            ]);
        }
        persons.push(Entry::new(rng.record_id(), rec));
    }
    let first_sought = persons.get(1).map_or(enquirer_id, |e| e.id);
    if separation.event == SeparationEvent::Detention {
        vulnerabilities.push(Vulnerability::Detained);
    }
    if rng.chance(15) {
        vulnerabilities.push(Vulnerability::Medical);
    }

    let category = if vulnerabilities.contains(&Vulnerability::SeparatedMinor) {
        CaseCategory::UnaccompaniedOrSeparatedChild
    } else if separation.event == SeparationEvent::Detention {
        CaseCategory::Detainee
    } else if separation.event == SeparationEvent::Disaster {
        CaseCategory::MissingAfterDisaster
    } else {
        CaseCategory::TracingRequest
    };
    let opened = rng.date_in(2023, 2023);
    let header = CaseHeader {
        category,
        separation,
        vulnerabilities,
        consent: ProcessingConsent {
            given: true,
            date: Some(opened),
            recorded_how: Some(*rng.pick(&[
                ConsentRecording::Written,
                ConsentRecording::OralWitnessed,
                ConsentRecording::Electronic,
            ])),
        },
        reference: Some(format!(
            "{}-RFL-{}-{}",
            p.society,
            opened.year(),
            rng.digits(5)
        )),
    };

    let mut messages = Vec::new();
    if rng.chance(50) {
        messages.push(Entry::new(
            rng.record_id(),
            RedCrossMessage {
                from: PersonRef::Enquirer,
                to: if rng.chance(50) {
                    PersonRef::Index(1)
                } else {
                    PersonRef::Record(first_sought)
                },
                date: rng.date_in(2024, 2024),
                language: "en".to_owned(),
                body: (*rng.pick(MESSAGES)).to_owned(),
                delivery_status: *rng.pick(&[
                    DeliveryStatus::Collected,
                    DeliveryStatus::InTransit,
                    DeliveryStatus::Delivered,
                ]),
            },
        ));
    }
    let notes = vec![Entry::new(
        rng.record_id(),
        Note {
            author: format!("caseworker {}", rng.pick(&["AB", "KM", "SN", "TO", "LR"])),
            text: (*rng.pick(NOTES)).to_owned(),
            created: rng.date_in(2023, 2024),
        },
    )];
    let mut attachments = Vec::new();
    if rng.chance(40) {
        let size = 40_000 + rng.below(3_000_000);
        let sha: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
        attachments.push(Entry::new(
            rng.record_id(),
            AttachmentMeta {
                file_name: format!("photo_{}.jpg", rng.digits(4)),
                media_type: "image/jpeg".to_owned(),
                size_bytes: size,
                chunk_count: u32::try_from(size.div_ceil(65_536)).unwrap_or(u32::MAX),
                sha256: sha,
                description: Some("Family photo".to_owned()),
                depicts: Some(first_sought),
            },
        ));
    }

    CaseFile {
        header,
        persons,
        messages,
        notes,
        attachments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deterministic() {
        for seed in [0, 1, 42, u64::MAX] {
            assert_eq!(synthetic_case(seed), synthetic_case(seed));
        }
        assert_ne!(synthetic_case(1), synthetic_case(2));
    }

    #[test]
    fn sizes_and_variety() {
        let mut sizes = Vec::new();
        let mut scripts = std::collections::BTreeSet::new();
        let mut consents = std::collections::BTreeSet::new();
        for seed in 0..500 {
            let c = synthetic_case(seed);
            c.validate(reference_today()).unwrap();
            sizes.push(serde_json::to_vec(&c).unwrap().len());
            for e in &c.persons {
                for n in &e.record.person.names {
                    scripts.insert(n.script.clone().unwrap_or_default());
                }
                consents.insert(format!("{:?}", e.record.whereabouts_consent));
            }
        }
        sizes.sort_unstable();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        eprintln!(
            "min {} median {} mean {mean} max {}",
            sizes[0],
            sizes[sizes.len() / 2],
            sizes[sizes.len() - 1]
        );
        assert!((1400..=2200).contains(&mean), "mean size {mean}");
        for s in ["Latn", "Arab", "Cyrl", "Ethi", "Mymr"] {
            assert!(scripts.contains(s), "{s}");
        }
        assert_eq!(consents.len(), 3);
    }

    proptest! {
        #[test]
        fn synthetic_case_validates_and_round_trips(seed in any::<u64>()) {
            let c = synthetic_case(seed);
            prop_assert_eq!(c.validate(reference_today()), Ok(()));
            // Later "today"s too.
            prop_assert_eq!(c.validate(Date::new(2040, 12, 31).unwrap()), Ok(()));
            let json = serde_json::to_string(&c).unwrap();
            let back: CaseFile = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &c);
            let value = serde_json::to_value(&c).unwrap();
            let back2: CaseFile = serde_json::from_value(value).unwrap();
            prop_assert_eq!(back2, c);
        }
    }
}
