//! Calendar dates and approximate dates.
//!
//! No clock is read here: rules that reject the future take `today` as a
//! parameter.

use std::fmt;
use std::str::FromStr;

use crate::validate::{Path, Problems, ROOT};

/// A date string or triple is not a valid calendar date.
///
/// Messages never repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not written as `YYYY-MM-DD`.
    #[error("a date must be written as YYYY-MM-DD")]
    Malformed,
    /// Year outside 1..=9999, month outside 1..=12, or a day the month does
    /// not have (e.g. 30 February).
    #[error("not a valid calendar date")]
    OutOfRange,
}

/// Whether `year` is a Gregorian leap year.
#[must_use]
pub fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1–12) of `year`; 0 for an invalid month.
#[must_use]
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// An exact, valid Gregorian calendar date (years 1–9999).
///
/// Serialised as `"YYYY-MM-DD"`. Ordered chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// A checked date.
    pub fn new(year: i32, month: u8, day: u8) -> Result<Self, DateError> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(DateError::OutOfRange);
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateError::OutOfRange);
        }
        Ok(Self { year, month, day })
    }

    /// The year.
    #[must_use]
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1–12.
    #[must_use]
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, 1–31.
    #[must_use]
    pub fn day(self) -> u8 {
        self.day
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Self, DateError> {
        let b = s.as_bytes();
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return Err(DateError::Malformed);
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, DateError> {
            s.get(r)
                .and_then(|x| x.parse::<u32>().ok())
                .ok_or(DateError::Malformed)
        };
        let year = i32::try_from(num(0..4)?).map_err(|_| DateError::Malformed)?;
        let month = u8::try_from(num(5..7)?).map_err(|_| DateError::Malformed)?;
        let day = u8::try_from(num(8..10)?).map_err(|_| DateError::Malformed)?;
        Date::new(year, month, day)
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date as YYYY-MM-DD")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Date, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A date as people actually remember it: a year, a month, a full date, or
/// "about 1975, give or take 5 years".
///
/// JSON: `{"precision":"year","year":1984}`,
/// `{"precision":"year_month","year":2015,"month":8}`,
/// `{"precision":"full","year":2011,"month":3,"day":15}`,
/// `{"precision":"about","year":1960,"plus_minus_years":5}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "precision", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApproxDate {
    /// Only the year is known.
    Year {
        /// The year.
        year: i32,
    },
    /// Year and month are known.
    YearMonth {
        /// The year.
        year: i32,
        /// The month, 1–12.
        month: u8,
    },
    /// The exact date is known.
    Full {
        /// The year.
        year: i32,
        /// The month, 1–12.
        month: u8,
        /// The day, which must exist in that month.
        day: u8,
    },
    /// Around `year`, give or take `plus_minus_years` (1–25).
    About {
        /// The central year.
        year: i32,
        /// Uncertainty in years.
        plus_minus_years: u8,
    },
}

impl ApproxDate {
    /// Earliest year accepted (older records are out of scope for tracing).
    pub const MIN_YEAR: i32 = 1850;
    /// Largest accepted uncertainty for [`ApproxDate::About`].
    pub const MAX_PLUS_MINUS_YEARS: u8 = 25;

    /// Only the year.
    #[must_use]
    pub fn year(year: i32) -> Self {
        Self::Year { year }
    }

    /// Year and month.
    #[must_use]
    pub fn year_month(year: i32, month: u8) -> Self {
        Self::YearMonth { year, month }
    }

    /// A full date (validated by [`ApproxDate::validate`], not here).
    #[must_use]
    pub fn full(year: i32, month: u8, day: u8) -> Self {
        Self::Full { year, month, day }
    }

    /// About `year`, give or take `plus_minus_years`.
    #[must_use]
    pub fn about(year: i32, plus_minus_years: u8) -> Self {
        Self::About {
            year,
            plus_minus_years,
        }
    }

    /// The (central) year.
    #[must_use]
    pub fn year_value(self) -> i32 {
        match self {
            Self::Year { year }
            | Self::YearMonth { year, .. }
            | Self::Full { year, .. }
            | Self::About { year, .. } => year,
        }
    }

    /// Checks ranges, that a full date exists, and that the date is not after
    /// `today` (for "about" dates: that the central year is not after
    /// today's year).
    pub fn validate(&self, today: Date) -> Result<(), crate::ValidationError> {
        let mut p = Problems::new();
        self.check(today, &ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        let year = self.year_value();
        let sub = |f: &'static str| path.field(f);
        if !(Self::MIN_YEAR..=9999).contains(&year) {
            p.push(
                sub("year"),
                format!("is outside the accepted range ({} onwards)", Self::MIN_YEAR),
            );
            return;
        }
        let in_future = match *self {
            Self::Year { year } | Self::About { year, .. } => year > today.year(),
            Self::YearMonth { year, month } => {
                if !(1..=12).contains(&month) {
                    p.push(sub("month"), "is not a month (1-12)");
                    return;
                }
                (year, month) > (today.year(), today.month())
            }
            Self::Full { year, month, day } => {
                if !(1..=12).contains(&month) {
                    p.push(sub("month"), "is not a month (1-12)");
                    return;
                }
                match Date::new(year, month, day) {
                    Ok(d) => d > today,
                    Err(_) => {
                        p.push(sub("day"), "does not exist in that month");
                        return;
                    }
                }
            }
        };
        if let Self::About {
            plus_minus_years, ..
        } = *self
        {
            if plus_minus_years == 0 || plus_minus_years > Self::MAX_PLUS_MINUS_YEARS {
                p.push(
                    sub("plus_minus_years"),
                    format!("must be between 1 and {} years", Self::MAX_PLUS_MINUS_YEARS),
                );
            }
        }
        if in_future {
            p.push(path, "is in the future");
        }
    }
}

impl From<Date> for ApproxDate {
    fn from(d: Date) -> Self {
        Self::full(d.year(), d.month(), d.day())
    }
}

impl fmt::Display for ApproxDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Year { year } => write!(f, "{year:04}"),
            Self::YearMonth { year, month } => write!(f, "{year:04}-{month:02}"),
            Self::Full { year, month, day } => write!(f, "{year:04}-{month:02}-{day:02}"),
            Self::About {
                year,
                plus_minus_years,
            } => write!(f, "about {year:04} ± {plus_minus_years}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u8, day: u8) -> Date {
        Date::new(y, m, day).unwrap()
    }

    fn today() -> Date {
        d(2025, 6, 15)
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000));
        assert!(is_leap_year(2024));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2023));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2023, 4), 30);
        assert_eq!(days_in_month(2023, 13), 0);
    }

    #[test]
    fn date_new_checks_calendar() {
        assert!(Date::new(2024, 2, 29).is_ok());
        assert_eq!(Date::new(2023, 2, 29), Err(DateError::OutOfRange));
        assert_eq!(Date::new(2023, 2, 30), Err(DateError::OutOfRange));
        assert_eq!(Date::new(2023, 4, 31), Err(DateError::OutOfRange));
        assert_eq!(Date::new(2023, 0, 1), Err(DateError::OutOfRange));
        assert_eq!(Date::new(2023, 13, 1), Err(DateError::OutOfRange));
        assert_eq!(Date::new(2023, 1, 0), Err(DateError::OutOfRange));
        assert_eq!(Date::new(0, 1, 1), Err(DateError::OutOfRange));
        assert_eq!(Date::new(10_000, 1, 1), Err(DateError::OutOfRange));
        assert!(Date::new(1900, 2, 28).is_ok());
        assert!(Date::new(1900, 2, 29).is_err());
    }

    #[test]
    fn date_ordering_and_accessors() {
        assert!(d(2024, 12, 31) < d(2025, 1, 1));
        assert!(d(2025, 1, 31) < d(2025, 2, 1));
        let x = d(2011, 3, 15);
        assert_eq!((x.year(), x.month(), x.day()), (2011, 3, 15));
    }

    #[test]
    fn date_string_round_trip() {
        let x = d(987, 3, 5);
        assert_eq!(x.to_string(), "0987-03-05");
        assert_eq!("0987-03-05".parse::<Date>().unwrap(), x);
        for bad in [
            "",
            "2024-1-01",
            "2024/01/01",
            "20240101",
            "2024-01-01T",
            "+024-01-01",
            "２０２４-01-01",
        ] {
            assert_eq!(bad.parse::<Date>(), Err(DateError::Malformed), "{bad}");
        }
        assert_eq!("2023-02-29".parse::<Date>(), Err(DateError::OutOfRange));
        assert_eq!("0000-01-01".parse::<Date>(), Err(DateError::OutOfRange));
    }

    #[test]
    fn date_serde() {
        let x = d(2024, 2, 29);
        let json = serde_json::to_string(&x).unwrap();
        assert_eq!(json, "\"2024-02-29\"");
        assert_eq!(serde_json::from_str::<Date>(&json).unwrap(), x);
        let err = serde_json::from_str::<Date>("\"2023-02-30\"").unwrap_err();
        assert!(!err.to_string().contains("2023"));
        assert!(serde_json::from_str::<Date>("20230101").is_err());
    }

    #[test]
    fn approx_valid_forms() {
        for a in [
            ApproxDate::year(1984),
            ApproxDate::year(ApproxDate::MIN_YEAR),
            ApproxDate::year(2025),
            ApproxDate::year_month(2025, 6),
            ApproxDate::year_month(2015, 12),
            ApproxDate::full(2024, 2, 29),
            ApproxDate::full(2025, 6, 15),
            ApproxDate::about(1960, 5),
            ApproxDate::about(1960, 1),
            ApproxDate::about(2025, 25),
            ApproxDate::from(d(2000, 1, 1)),
        ] {
            assert_eq!(a.validate(today()), Ok(()), "{a}");
        }
    }

    fn problems(a: ApproxDate) -> Vec<(String, String)> {
        a.validate(today())
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    #[test]
    fn approx_invalid_forms() {
        assert_eq!(problems(ApproxDate::full(2023, 2, 29))[0].0, "day");
        assert_eq!(
            problems(ApproxDate::full(2023, 2, 30))[0].1,
            "does not exist in that month"
        );
        assert_eq!(problems(ApproxDate::full(2023, 6, 31))[0].0, "day");
        assert_eq!(problems(ApproxDate::full(2023, 1, 0))[0].0, "day");
        assert_eq!(problems(ApproxDate::full(2023, 13, 1))[0].0, "month");
        assert_eq!(problems(ApproxDate::year_month(2023, 0))[0].0, "month");
        assert_eq!(problems(ApproxDate::year(1849))[0].0, "year");
        assert_eq!(problems(ApproxDate::year(-5))[0].0, "year");
        assert_eq!(
            problems(ApproxDate::about(1960, 0))[0].0,
            "plus_minus_years"
        );
        assert_eq!(
            problems(ApproxDate::about(1960, 26))[0].0,
            "plus_minus_years"
        );
    }

    #[test]
    fn approx_future_rejected_against_given_today() {
        let future = [
            ApproxDate::year(2026),
            ApproxDate::year_month(2025, 7),
            ApproxDate::full(2025, 6, 16),
            ApproxDate::about(2026, 3),
        ];
        for a in future {
            assert_eq!(
                problems(a),
                vec![(String::new(), "is in the future".to_owned())],
                "{a}"
            );
            // The same date is fine once "today" has moved on.
            assert_eq!(a.validate(d(2030, 1, 1)), Ok(()));
        }
    }

    #[test]
    fn approx_messages_do_not_echo_values() {
        for a in [
            ApproxDate::full(1977, 2, 30),
            ApproxDate::year(1777),
            ApproxDate::about(1977, 99),
            ApproxDate::year_month(2077, 11),
        ] {
            let msg = a.validate(today()).unwrap_err().to_string();
            for v in ["1977", "1777", "99", "2077", "30"] {
                assert!(!msg.contains(v), "{msg} contains {v}");
            }
        }
    }

    #[test]
    fn approx_serde_shapes() {
        let cases = [
            (
                ApproxDate::year(1984),
                r#"{"precision":"year","year":1984}"#,
            ),
            (
                ApproxDate::year_month(2015, 8),
                r#"{"precision":"year_month","year":2015,"month":8}"#,
            ),
            (
                ApproxDate::full(2011, 3, 15),
                r#"{"precision":"full","year":2011,"month":3,"day":15}"#,
            ),
            (
                ApproxDate::about(1960, 5),
                r#"{"precision":"about","year":1960,"plus_minus_years":5}"#,
            ),
        ];
        for (a, json) in cases {
            assert_eq!(serde_json::to_string(&a).unwrap(), json);
            assert_eq!(serde_json::from_str::<ApproxDate>(json).unwrap(), a);
        }
        assert!(serde_json::from_str::<ApproxDate>(
            r#"{"precision":"year","year":1984,"month":2}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<ApproxDate>(r#"{"precision":"decade","year":1980}"#).is_err()
        );
        assert!(serde_json::from_str::<ApproxDate>(r#"{"year":1980}"#).is_err());
    }

    #[test]
    fn approx_display() {
        assert_eq!(ApproxDate::about(1960, 5).to_string(), "about 1960 ± 5");
        assert_eq!(ApproxDate::year_month(2015, 8).to_string(), "2015-08");
    }
}
