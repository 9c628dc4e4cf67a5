//! Internal helpers to collect validation problems without echoing values.

use crate::error::{Problem, ValidationError};

/// Collects problems while walking a value.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), ValidationError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(ValidationError {
                problems: self.list,
            })
        }
    }
}

/// `prefix.field`, or `field` at the root.
pub(crate) fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// `prefix.field[i]`.
pub(crate) fn index(prefix: &str, field: &str, i: usize) -> String {
    format!("{}[{i}]", join(prefix, field))
}

/// Length limits, in characters.
pub(crate) const SHORT: usize = 200;
pub(crate) const LINE: usize = 500;
pub(crate) const LONG: usize = 10_000;

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// A single-line text field.
pub(crate) fn line(p: &mut Problems, path: &str, value: &str, required: bool, max: usize) {
    if is_blank(value) {
        if required || !value.is_empty() {
            p.push(path, "is empty");
        }
        return;
    }
    if value.chars().count() > max {
        p.push(path, format!("is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        p.push(path, "contains control characters");
    }
}

/// An optional single-line field: absent is fine, present must be non-empty.
pub(crate) fn opt_line(p: &mut Problems, path: &str, value: Option<&str>, max: usize) {
    if let Some(v) = value {
        line(p, path, v, true, max);
    }
}

/// Free text: line breaks and tabs allowed, other control characters not.
pub(crate) fn text(p: &mut Problems, path: &str, value: &str, required: bool, max: usize) {
    if is_blank(value) {
        if required || !value.is_empty() {
            p.push(path, "is empty");
        }
        return;
    }
    if value.chars().count() > max {
        p.push(path, format!("is longer than {max} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        p.push(path, "contains control characters");
    }
}

/// Optional free text.
pub(crate) fn opt_text(p: &mut Problems, path: &str, value: Option<&str>, max: usize) {
    if let Some(v) = value {
        text(p, path, v, true, max);
    }
}

/// ISO 3166-1 alpha-2 country code, e.g. `SY`.
pub(crate) fn country_code(p: &mut Problems, path: &str, value: &str) {
    if !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())) {
        p.push(
            path,
            "is not an ISO 3166-1 alpha-2 country code (two capital letters)",
        );
    }
}

/// BCP 47-style language tag, lightly checked: a 2–3 letter lowercase primary
/// language subtag, then optional `-` separated alphanumeric subtags of 1–8.
pub(crate) fn language_tag(p: &mut Problems, path: &str, value: &str) {
    let mut parts = value.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|s| (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase()));
    let rest_ok =
        parts.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !(primary_ok && rest_ok) {
        p.push(path, "is not a language tag such as \"ar\" or \"uk\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce(&mut Problems)) -> Vec<String> {
        let mut p = Problems::new();
        f(&mut p);
        match p.finish() {
            Ok(()) => vec![],
            Err(e) => e.problems.into_iter().map(|p| p.message).collect(),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a", "b"), "a.b");
        assert_eq!(index("a", "b", 3), "a.b[3]");
        assert_eq!(index("", "b", 0), "b[0]");
    }

    #[test]
    fn line_rules() {
        assert!(run(|p| line(p, "x", "ok", true, 5)).is_empty());
        assert!(run(|p| line(p, "x", "", false, 5)).is_empty());
        assert_eq!(run(|p| line(p, "x", "", true, 5)), vec!["is empty"]);
        assert_eq!(run(|p| line(p, "x", "   ", false, 5)), vec!["is empty"]);
        assert_eq!(
            run(|p| line(p, "x", "toolong", true, 5)),
            vec!["is longer than 5 characters"]
        );
        // Characters, not bytes.
        assert!(run(|p| line(p, "x", "ЖЖЖЖЖ", true, 5)).is_empty());
        assert_eq!(
            run(|p| line(p, "x", "a\nb", true, 5)),
            vec!["contains control characters"]
        );
        assert!(run(|p| text(p, "x", "a\nb\tc", true, 10)).is_empty());
        assert_eq!(
            run(|p| text(p, "x", "a\u{0}b", true, 10)),
            vec!["contains control characters"]
        );
    }

    #[test]
    fn codes() {
        assert!(run(|p| country_code(p, "c", "SY")).is_empty());
        for bad in ["sy", "SYR", "S", "", "S1"] {
            assert_eq!(run(|p| country_code(p, "c", bad)).len(), 1, "{bad}");
        }
        for good in ["ar", "uk", "so", "prs", "ar-SY", "sr-Cyrl", "zh-Hant-TW"] {
            assert!(run(|p| language_tag(p, "l", good)).is_empty(), "{good}");
        }
        for bad in ["", "Arabic", "a", "ar-", "ar_SY", "ar-toolongsubtag"] {
            assert_eq!(run(|p| language_tag(p, "l", bad)).len(), 1, "{bad}");
        }
    }
}
