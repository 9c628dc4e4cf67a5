//! A caseworker's note on a case.

use super::{Record, RecordKind};
use crate::date::Date;
use crate::error::ValidationError;
use crate::validate::{line, text, Path, Problems, ROOT, SHORT};

/// A caseworker's note.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Who wrote it (a label, e.g. initials or role, not an account id).
    pub author: String,
    /// The note.
    pub text: String,
    /// When it was written.
    pub created: Date,
}

impl Note {
    /// Longest note accepted, in characters.
    pub const MAX_TEXT_CHARS: usize = 20_000;

    /// Validates the note.
    pub fn validate(&self, today: Date) -> Result<(), ValidationError> {
        let mut p = Problems::new();
        self.check(today, &ROOT, &mut p);
        p.finish()
    }

    pub(crate) fn check(&self, today: Date, path: &Path<'_>, p: &mut Problems) {
        line(p, &path.field("author"), &self.author, true, SHORT);
        text(
            p,
            &path.field("text"),
            &self.text,
            true,
            Self::MAX_TEXT_CHARS,
        );
        if self.created > today {
            p.push(path.field("created"), "is in the future");
        }
    }
}

impl Record for Note {
    const KIND: RecordKind = RecordKind::Note;
    fn validate_record(&self, today: Date) -> Result<(), ValidationError> {
        self.validate(today)
    }
}
