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

    pub(crate) fn push(&mut self, path: impl std::fmt::Display, message: impl Into<String>) {
        self.list.push(Problem {
            path: path.to_string(),
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

/// Where a value sits in what is validated: `persons[0].record.names[1].given`. Built on the stack
/// as the walk goes down and written out only for a problem, so a valid case costs no string work
/// (formatting every field's path was about a third of validating one).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path<'a> {
    /// The value validated itself: written as the empty string.
    Root,
    /// `parent.name`, or `name` at the root.
    Field(&'a Path<'a>, &'static str),
    /// `parent.name[i]`, or `name[i]` at the root.
    Index(&'a Path<'a>, &'static str, usize),
}

/// The root of every walk.
pub(crate) static ROOT: Path<'static> = Path::Root;

impl Path<'_> {
    /// `self.name`.
    pub(crate) fn field(&self, name: &'static str) -> Path<'_> {
        Path::Field(self, name)
    }

    /// `self.name[i]`.
    pub(crate) fn index(&self, name: &'static str, i: usize) -> Path<'_> {
        Path::Index(self, name, i)
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (parent, name) = match self {
            Path::Root => return Ok(()),
            Path::Field(parent, name) | Path::Index(parent, name, _) => (parent, name),
        };
        if !matches!(parent, Path::Root) {
            write!(f, "{parent}.")?;
        }
        f.write_str(name)?;
        if let Path::Index(_, _, i) = self {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

/// Whether `value` has more than `max` characters (a string of at most `max` bytes has not).
fn longer_than(value: &str, max: usize) -> bool {
    value.len() > max && value.chars().count() > max
}

/// Length limits, in characters.
pub(crate) const SHORT: usize = 200;
pub(crate) const LINE: usize = 500;
pub(crate) const LONG: usize = 10_000;

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// A single-line text field.
pub(crate) fn line(p: &mut Problems, path: &Path<'_>, value: &str, required: bool, max: usize) {
    if is_blank(value) {
        if required || !value.is_empty() {
            p.push(path, "is empty");
        }
        return;
    }
    if longer_than(value, max) {
        p.push(path, format!("is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        p.push(path, "contains control characters");
    }
}

/// An optional single-line field: absent is fine, present must be non-empty.
pub(crate) fn opt_line(p: &mut Problems, path: &Path<'_>, value: Option<&str>, max: usize) {
    if let Some(v) = value {
        line(p, path, v, true, max);
    }
}

/// Free text: line breaks and tabs allowed, other control characters not.
pub(crate) fn text(p: &mut Problems, path: &Path<'_>, value: &str, required: bool, max: usize) {
    if is_blank(value) {
        if required || !value.is_empty() {
            p.push(path, "is empty");
        }
        return;
    }
    if longer_than(value, max) {
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
pub(crate) fn opt_text(p: &mut Problems, path: &Path<'_>, value: Option<&str>, max: usize) {
    if let Some(v) = value {
        text(p, path, v, true, max);
    }
}

/// ISO 3166-1 alpha-2 country code, e.g. `SY`.
pub(crate) fn country_code(p: &mut Problems, path: &Path<'_>, value: &str) {
    if !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())) {
        p.push(
            path,
            "is not an ISO 3166-1 alpha-2 country code (two capital letters)",
        );
    }
}

/// BCP 47-style language tag, lightly checked: a 2–3 letter lowercase primary
/// language subtag, then optional `-` separated alphanumeric subtags of 1–8.
pub(crate) fn language_tag(p: &mut Problems, path: &Path<'_>, value: &str) {
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
        assert_eq!(ROOT.to_string(), "");
        assert_eq!(ROOT.field("a").to_string(), "a");
        assert_eq!(ROOT.field("a").field("b").to_string(), "a.b");
        assert_eq!(ROOT.field("a").index("b", 3).to_string(), "a.b[3]");
        assert_eq!(ROOT.index("b", 0).to_string(), "b[0]");
        assert_eq!(
            ROOT.index("persons", 2)
                .field("record")
                .index("names", 0)
                .field("given")
                .to_string(),
            "persons[2].record.names[0].given"
        );
    }

    #[test]
    fn lengths_are_counted_in_characters_whatever_the_bytes() {
        assert!(!longer_than("", 0));
        assert!(!longer_than("abcde", 5));
        assert!(longer_than("abcdef", 5));
        assert!(!longer_than("ЖЖЖЖЖ", 5)); // 10 bytes, 5 characters
        assert!(longer_than("ЖЖЖЖЖЖ", 5));
    }

    #[test]
    fn line_rules() {
        assert!(run(|p| line(p, &ROOT.field("x"), "ok", true, 5)).is_empty());
        assert!(run(|p| line(p, &ROOT.field("x"), "", false, 5)).is_empty());
        assert_eq!(
            run(|p| line(p, &ROOT.field("x"), "", true, 5)),
            vec!["is empty"]
        );
        assert_eq!(
            run(|p| line(p, &ROOT.field("x"), "   ", false, 5)),
            vec!["is empty"]
        );
        assert_eq!(
            run(|p| line(p, &ROOT.field("x"), "toolong", true, 5)),
            vec!["is longer than 5 characters"]
        );
        // Characters, not bytes.
        assert!(run(|p| line(p, &ROOT.field("x"), "ЖЖЖЖЖ", true, 5)).is_empty());
        assert_eq!(
            run(|p| line(p, &ROOT.field("x"), "a\nb", true, 5)),
            vec!["contains control characters"]
        );
        assert!(run(|p| text(p, &ROOT.field("x"), "a\nb\tc", true, 10)).is_empty());
        assert_eq!(
            run(|p| text(p, &ROOT.field("x"), "a\u{0}b", true, 10)),
            vec!["contains control characters"]
        );
    }

    #[test]
    fn codes() {
        assert!(run(|p| country_code(p, &ROOT.field("c"), "SY")).is_empty());
        for bad in ["sy", "SYR", "S", "", "S1"] {
            assert_eq!(
                run(|p| country_code(p, &ROOT.field("c"), bad)).len(),
                1,
                "{bad}"
            );
        }
        for good in ["ar", "uk", "so", "prs", "ar-SY", "sr-Cyrl", "zh-Hant-TW"] {
            assert!(
                run(|p| language_tag(p, &ROOT.field("l"), good)).is_empty(),
                "{good}"
            );
        }
        for bad in ["", "Arabic", "a", "ar-", "ar_SY", "ar-toolongsubtag"] {
            assert_eq!(
                run(|p| language_tag(p, &ROOT.field("l"), bad)).len(),
                1,
                "{bad}"
            );
        }
    }
}
