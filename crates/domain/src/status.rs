//! The server-visible case workflow and member roles.

use std::fmt;

use crate::error::DomainError;

/// Status of a case. This is the only part of a case's progress the server
/// sees in clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CaseStatus {
    /// Enquiry registered.
    Open,
    /// Tracing is under way.
    Tracing,
    /// At least one sought person has been located.
    Located,
    /// The family has been informed of the outcome.
    FamilyInformed,
    /// The family has been reunited.
    Reunited,
    /// Closed after a successful outcome.
    Closed,
    /// Closed without locating the sought person(s).
    ClosedUnsuccessful,
    /// Closed because the enquirer asked for it.
    ClosedAtEnquirerRequest,
}

impl CaseStatus {
    /// The status's code in a signed case commit (its position in [`CaseStatus::ALL`]). Fixed by
    /// the commit format: never renumber.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            CaseStatus::Open => 0,
            CaseStatus::Tracing => 1,
            CaseStatus::Located => 2,
            CaseStatus::FamilyInformed => 3,
            CaseStatus::Reunited => 4,
            CaseStatus::Closed => 5,
            CaseStatus::ClosedUnsuccessful => 6,
            CaseStatus::ClosedAtEnquirerRequest => 7,
        }
    }

    /// The status with this commit code.
    #[must_use]
    pub fn from_code(code: u8) -> Option<CaseStatus> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Every status, in workflow order.
    pub const ALL: [CaseStatus; 8] = [
        CaseStatus::Open,
        CaseStatus::Tracing,
        CaseStatus::Located,
        CaseStatus::FamilyInformed,
        CaseStatus::Reunited,
        CaseStatus::Closed,
        CaseStatus::ClosedUnsuccessful,
        CaseStatus::ClosedAtEnquirerRequest,
    ];

    /// The snake_case name, as used in JSON and in the database.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Tracing => "tracing",
            CaseStatus::Located => "located",
            CaseStatus::FamilyInformed => "family_informed",
            CaseStatus::Reunited => "reunited",
            CaseStatus::Closed => "closed",
            CaseStatus::ClosedUnsuccessful => "closed_unsuccessful",
            CaseStatus::ClosedAtEnquirerRequest => "closed_at_enquirer_request",
        }
    }

    /// Parses the snake_case name; `None` if unknown.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Closed statuses are final.
    #[must_use]
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            CaseStatus::Closed
                | CaseStatus::ClosedUnsuccessful
                | CaseStatus::ClosedAtEnquirerRequest
        )
    }

    /// Whether the workflow allows going from `self` to `to`.
    ///
    /// open → tracing → located → family_informed | reunited;
    /// family_informed → reunited | closed; reunited → closed; any status
    /// that is not closed → closed_unsuccessful | closed_at_enquirer_request.
    /// Closed statuses are final; staying put is not a transition.
    #[must_use]
    pub fn can_transition_to(self, to: CaseStatus) -> bool {
        use CaseStatus::*;
        if self.is_closed() || self == to {
            return false;
        }
        matches!(
            (self, to),
            (_, ClosedUnsuccessful | ClosedAtEnquirerRequest)
                | (Open, Tracing)
                | (Tracing, Located)
                | (Located, FamilyInformed | Reunited)
                | (FamilyInformed, Reunited | Closed)
                | (Reunited, Closed)
        )
    }

    /// Performs the transition, or explains why it is illegal.
    pub fn transition(self, to: CaseStatus) -> Result<CaseStatus, DomainError> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(DomainError::IllegalTransition { from: self, to })
        }
    }

    /// The statuses reachable in one step from `self`.
    pub fn next_statuses(self) -> impl Iterator<Item = CaseStatus> {
        Self::ALL
            .into_iter()
            .filter(move |to| self.can_transition_to(*to))
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role within a society (or across the Movement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Works cases; reads and writes case content.
    Caseworker,
    /// Administers a society; may read case content.
    SocietyAdmin,
    /// Reads audit trails and metadata, never case content.
    Auditor,
    /// A machine identity that moves ciphertext between nodes.
    SyncAgent,
    /// Administers the Movement-wide directory; never reads case content.
    MovementAdmin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Caseworker,
        Role::SocietyAdmin,
        Role::Auditor,
        Role::SyncAgent,
        Role::MovementAdmin,
    ];

    /// The snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Caseworker => "caseworker",
            Role::SocietyAdmin => "society_admin",
            Role::Auditor => "auditor",
            Role::SyncAgent => "sync_agent",
            Role::MovementAdmin => "movement_admin",
        }
    }

    /// Parses the snake_case name; `None` if unknown.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether members with this role may be given keys to decrypt case
    /// content (caseworkers and society admins only).
    #[must_use]
    pub fn reads_case_content(self) -> bool {
        matches!(self, Role::Caseworker | Role::SocietyAdmin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::CaseStatus::*;
    use super::*;

    /// The complete table of legal transitions; everything else is illegal.
    const LEGAL: &[(CaseStatus, CaseStatus)] = &[
        (Open, Tracing),
        (Open, ClosedUnsuccessful),
        (Open, ClosedAtEnquirerRequest),
        (Tracing, Located),
        (Tracing, ClosedUnsuccessful),
        (Tracing, ClosedAtEnquirerRequest),
        (Located, FamilyInformed),
        (Located, Reunited),
        (Located, ClosedUnsuccessful),
        (Located, ClosedAtEnquirerRequest),
        (FamilyInformed, Reunited),
        (FamilyInformed, Closed),
        (FamilyInformed, ClosedUnsuccessful),
        (FamilyInformed, ClosedAtEnquirerRequest),
        (Reunited, Closed),
        (Reunited, ClosedUnsuccessful),
        (Reunited, ClosedAtEnquirerRequest),
    ];

    #[test]
    fn every_pair_of_all_x_all() {
        let mut legal_seen = 0;
        for from in CaseStatus::ALL {
            for to in CaseStatus::ALL {
                let expected = LEGAL.contains(&(from, to));
                assert_eq!(
                    from.can_transition_to(to),
                    expected,
                    "{from} -> {to} should be {}",
                    if expected { "legal" } else { "illegal" }
                );
                match from.transition(to) {
                    Ok(s) => {
                        assert!(expected);
                        assert_eq!(s, to);
                        legal_seen += 1;
                    }
                    Err(DomainError::IllegalTransition { from: f, to: t }) => {
                        assert!(!expected);
                        assert_eq!((f, t), (from, to));
                    }
                    Err(other) => panic!("unexpected error {other:?}"),
                }
            }
        }
        assert_eq!(legal_seen, LEGAL.len());
    }

    #[test]
    fn same_status_is_illegal() {
        for s in CaseStatus::ALL {
            assert!(!s.can_transition_to(s));
            assert!(s.transition(s).is_err());
        }
    }

    #[test]
    fn closed_states_are_final() {
        for from in CaseStatus::ALL.into_iter().filter(|s| s.is_closed()) {
            assert_eq!(from.next_statuses().count(), 0, "{from}");
        }
        for s in CaseStatus::ALL.into_iter().filter(|s| !s.is_closed()) {
            assert!(s.can_transition_to(ClosedUnsuccessful));
            assert!(s.can_transition_to(ClosedAtEnquirerRequest));
        }
    }

    #[test]
    fn is_closed() {
        let closed: Vec<_> = CaseStatus::ALL
            .into_iter()
            .filter(|s| s.is_closed())
            .collect();
        assert_eq!(
            closed,
            vec![Closed, ClosedUnsuccessful, ClosedAtEnquirerRequest]
        );
    }

    #[test]
    fn error_message() {
        let e = Located.transition(Open).unwrap_err();
        assert_eq!(e.to_string(), "a case cannot go from located to open");
        let e = Closed.transition(Tracing).unwrap_err();
        assert_eq!(e.to_string(), "a case cannot go from closed to tracing");
    }

    #[test]
    fn status_names_and_serde_agree() {
        for s in CaseStatus::ALL {
            assert_eq!(CaseStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<CaseStatus>(&json).unwrap(), s);
        }
        assert_eq!(CaseStatus::parse("Open"), None);
        assert_eq!(CaseStatus::parse(""), None);
        assert_eq!(
            CaseStatus::parse("closed_at_enquirer_request"),
            Some(ClosedAtEnquirerRequest)
        );
    }

    #[test]
    fn role_names_serde_and_content_access() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), r);
        }
        assert_eq!(Role::parse("admin"), None);
        let readers: Vec<_> = Role::ALL
            .into_iter()
            .filter(|r| r.reads_case_content())
            .collect();
        assert_eq!(readers, vec![Role::Caseworker, Role::SocietyAdmin]);
    }
}
