//! Typed errors of the domain.
//!
//! None of these messages ever contains personal data: they say *where* and
//! *what kind* of problem, never the offending value.

use std::fmt;

use crate::status::CaseStatus;

/// Errors raised by domain rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The status workflow does not allow this step.
    #[error("a case cannot go from {} to {}", from.as_str(), to.as_str())]
    IllegalTransition {
        /// Current status.
        from: CaseStatus,
        /// Requested status.
        to: CaseStatus,
    },
    /// Case content failed validation.
    #[error(transparent)]
    Validation(#[from] ValidationError),
}

/// One problem found during validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// Where the problem is, e.g. `persons[1].person.names[0].family`.
    /// Empty for the validated value itself.
    pub path: String,
    /// What is wrong, e.g. `is empty`. Never contains the value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found while validating a value (never empty when returned
/// as an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(&self.problems))]
pub struct ValidationError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl ValidationError {
    /// The problems found.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Whether a problem was reported at exactly this path.
    #[must_use]
    pub fn has_path(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.path == path)
    }

    /// The paths with problems, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.problems.iter().map(|p| p.path.as_str())
    }
}

fn render(problems: &[Problem]) -> String {
    let mut out = format!(
        "{} validation problem{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for (i, p) in problems.iter().enumerate() {
        out.push_str(if i == 0 { ": " } else { "; " });
        out.push_str(&p.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illegal_transition_message() {
        let e = DomainError::IllegalTransition {
            from: CaseStatus::Located,
            to: CaseStatus::Open,
        };
        assert_eq!(e.to_string(), "a case cannot go from located to open");
    }

    #[test]
    fn validation_error_display() {
        let e = ValidationError {
            problems: vec![
                Problem {
                    path: "names[0].family".into(),
                    message: "is empty".into(),
                },
                Problem {
                    path: String::new(),
                    message: "no enquirer".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "2 validation problems: names[0].family: is empty; no enquirer"
        );
        assert!(e.has_path("names[0].family"));
        assert_eq!(e.paths().count(), 2);
        let d: DomainError = e.into();
        assert!(d.to_string().starts_with("2 validation problems"));
    }
}
